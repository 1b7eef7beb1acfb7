"""`steer walk`."""
import json
from pathlib import Path

import click

from ..errors import SteerError
from .common import (
    model_option, device_option, seed_option, walk_type_option, writable_dir, command_line, parse_layers,
    open_generator,
)
from .common import (
    MAX_COUNT, POSITIVE, STEPS, check_batch_memory, checkpoint_minutes_option, restart_option, whole,
)


# The defaults of a linear walk: on the main job (zoom, dssgan-mnist) 100 cosine steps from a
# peak lr of 0.2 reach a held-out loss 11 % below the old 800 constant steps at the edit's lr,
# and no worse than 150 steps from 0.1 on the other bundled models' zoom, rotate and colour;
# shift walks end 4-7 % above the old default (experiments/bench/main_job.py levers, others).
# Nonlinear and slider walks keep the old defaults, which those studies did not measure.
LINEAR_STEPS, OTHER_STEPS = 100, 800
COSINE_PEAK_LR = 0.2


def fit_defaults(walk_type: str, edit, steps=None, schedule=None, lr=None):
    """(steps, schedule, lr) with the defaults filled in for what the user left out."""
    linear = walk_type == "linear"
    steps = steps or (LINEAR_STEPS if linear else OTHER_STEPS)
    schedule = schedule or ("cosine" if linear else "constant")
    if lr is None:
        if linear and schedule == "cosine":
            lr = COSINE_PEAK_LR
        else:  # the nonlinear walk is an MLP: a gentler step than for a few direction vectors
            lr = edit.lr / 5 if walk_type == "nonlinear" else edit.lr
    return steps, schedule, lr


@click.command("walk")
@model_option
@click.option("--edit", "edit_name", default="zoom", show_default=True,
              help="zoom, shift_x, shift_y, rotate, colour or brightness.")
@walk_type_option
@click.option("--loss", default="l2", show_default=True, type=click.Choice(["l2", "lpips"]))
@click.option("--steps", default=None, type=STEPS,
              help=f"Training steps [linear walks: {LINEAR_STEPS}; nonlinear and slider: {OTHER_STEPS}].")
@click.option("--batch", default=16, show_default=True, type=whole(1, MAX_COUNT))
@click.option("--lr", default=None, type=POSITIVE,
              help=f"Adam learning rate [linear walk on the cosine schedule: {COSINE_PEAK_LR:g} at its peak; "
                   "otherwise the edit's, a fifth of it for a nonlinear walk].")
@click.option("--schedule", default=None, type=click.Choice(["constant", "cosine"]),
              help="Learning rate over the steps: constant, or cosine down to 0 at the last step "
                   "[linear walks: cosine; nonlinear and slider: constant].")
@click.option("--patience", default=None, type=whole(1, 10**6),
              help="Stop early after this many validations (every --validate-every steps, on latents apart from "
                   "training and the held-out ones) without a 1 % improvement, and keep the best walk [never].")
@click.option("--validate-every", default=50, show_default=True, type=whole(1, 10**6),
              help="Steps between validations when --patience is given.")
@click.option("--grad-checkpoint", is_flag=True,
              help="Recompute the synthesis layers' activations in the backward pass instead of keeping them "
                   "(BigGAN-deep, StyleGAN-XL): less memory per step (BigGAN-deep-512, batch 16: 21.2 to "
                   "12.2 GiB), for recomputing the forward.")
@click.option("--space", default=None, help="Latent space to walk in (default: the model's).")
@click.option("--layers", default=None,
              help="w+ only: move layers START:STOP (0-based, STOP excluded) and leave the rest.")
@click.option("--truncation", default=None, type=POSITIVE,
              help="StyleGAN: psi for the training latents; BigGAN: truncation of z and of the batch-norm "
                   "statistics, in (0, 1]; others: the bound of a truncated normal z.")
@click.option("--method", default="learned", show_default=True,
              type=click.Choice(["learned", "closed-form", "sefa", "pca", "svm", "jacobian"]),
              help="learned: optimise the walk; closed-form: a linear direction solved from the first layer's "
                   "weights (zoom, shift_x, shift_y; models with a linear first layer onto a grid). Directions "
                   "without an edit (--edit is not used): sefa (eigenvectors of the style affines or first "
                   "layer), pca (GANSpace), svm (InterFaceGAN, --attribute), jacobian (top singular vectors).")
@click.option("--components", default=5, show_default=True, type=whole(1, 4096),
              help="sefa/pca/jacobian: how many directions to find (each saved under OUT/components/).")
@click.option("--component", default=0, show_default=True, type=whole(0, 4095),
              help="sefa/pca/jacobian: which one OUT/walk.safetensors holds (0: the strongest).")
@click.option("--samples", default=None, type=whole(1, 10**6),
              help="pca: latents for the PCA [2000]; svm: seeds scored [1000]; jacobian global: latents averaged [8].")
@click.option("--layer", "feature_layer", default="image", show_default=True,
              help="pca in z: the module whose activations are analysed (a name from the model's modules, or "
                   "image).")
@click.option("--attribute", default=None,
              help="svm: the score: an estimator (area, centre_x, centre_y, colour, slant, ink_area, ...), "
                   "class:NAME (the bundled shapes or digit classifier's probability), or a CSV of seed,score.")
@click.option("--share", default=0.2, show_default=True, type=POSITIVE,
              help="svm: the fraction of the scores kept at each end (top and bottom).")
@click.option("--condition", "conditions", multiple=True,
              help="svm: another attribute (same kinds as --attribute) or a linear walk file whose direction is "
                   "projected out (conditional manipulation); repeatable.")
@click.option("--jacobian", "jacobian_kind", default="global", show_default=True,
              type=click.Choice(["global", "local"]),
              help="jacobian: directions of the mean J'J over --samples latents, or at the --seed latent only.")
@click.option("--step", default=1.5, show_default=True, type=POSITIVE,
              help="sefa/pca/svm/jacobian: alpha = 1 moves the latent by this many standard deviations of "
                   "the sampled latents along the direction.")
@click.option("--alpha-max", default=None, type=POSITIVE,
              help="Draw training alphas up to this instead of the edit's range (rotate/shift: whole units in "
                   "+-1..MAX; zoom: a factor in [1/MAX, MAX]) [the edit's: zoom 4, shifts S/2, rotate 45].")
@click.option("--rank", default=4, show_default=True, type=whole(1, 256),
              help="--walk slider: the rank of each layer's weight offset.")
@click.option("--slider-layers", default=None,
              help="--walk slider: a regular expression picking the layers offset, searched in the model's module "
                   "names [the first linear layer and every convolution but the last].")
@click.option("--class", "class_", default=None, help="Train on this class only (index or name).")
@click.option("--classes", "classes_", default=None, help="Train on these classes (comma-separated indices or names).")
@seed_option
@click.option("--out", default=None, type=click.Path(file_okay=False),
              help="Output folder [default: runs/walks/MODEL-EDIT-WALK]; resumed when it holds a checkpoint "
                   "of the same settings.")
@restart_option
@checkpoint_minutes_option
@device_option
def walk_command(model, edit_name, walk_type, loss, steps, batch, lr, schedule, patience, validate_every,
                 grad_checkpoint, space, layers, truncation, method, components,
                 component, samples, feature_layer, attribute, share, conditions, jacobian_kind, step, alpha_max,
                 rank, slider_layers, class_, classes_, seed, out, restart, checkpoint_minutes, device):
    """Learn a walk that reproduces an edit, with the generator frozen.

    Writes OUT/walk.safetensors, OUT/loss.png (+ loss.json) and OUT/strip.png (rows are
    samples, columns alphas across the training range). Interrupt with Ctrl-C and rerun
    the same command to resume (a checkpoint of other settings is refused; --restart starts
    over; only --steps may grow). With --method closed-form nothing is trained: the direction
    is solved from the generator's first layer (Spingarn et al.) and saved as a linear walk.

    \b
    Example:
      steer walk --edit zoom
      steer walk --edit shift_x --walk nonlinear --steps 3000 --out runs/shiftx-nl
      steer walk --model imagenet128.pkl --space w+ --layers 0:8 --edit colour
      steer walk --method closed-form --edit zoom
      steer walk --model path/to/biggan-deep-256/ --class 'golden retriever' --truncation 0.5 --edit zoom
      steer walk --method sefa --model dcgan-mnist --components 5
      steer walk --method svm --model dcgan-shapes32 --attribute area --condition centre_x
      steer walk --method jacobian --jacobian local --seed 3
      steer walk --edit zoom --walk slider --rank 4

    With --method sefa, pca, svm or jacobian no edit is imitated: the directions are found from
    the weights (sefa), the spread of samples (pca), an attribute (svm) or the Jacobian, and
    written as one-slider linear walks: OUT/walk.safetensors (--component), OUT/components/NN,
    strip.png, components.png and directions.json (the method, settings and report).
    """
    if method in ("sefa", "pca", "svm", "jacobian"):
        return _direction_command(model, method, space, parse_layers(layers), truncation, components, component,
                                  samples, feature_layer, attribute, share, conditions, jacobian_kind, step,
                                  class_, classes_, seed, out, device, walk_type, loss)
    import time

    from ..edits import get_edit, with_training_limit
    from ..fit import FitConfig, evaluate_walk, fit_walk
    from ..generators.base import pick_classes
    from ..losses import MaskedLPIPS
    from ..steering import Steering, source_record
    from ..viz import save_loss_plot, save_strip_grid
    from ..walks import LinearWalk, make_walk

    edit = get_edit(edit_name)
    if alpha_max is not None:
        edit = with_training_limit(edit, alpha_max)
    G = open_generator(model, device)
    G.set_gradient_checkpointing(grad_checkpoint)
    space = space or G.default_space
    G.check_space(space)
    layers = parse_layers(layers)
    truncation = G.check_truncation(truncation)
    train_classes = pick_classes(G, class_, G.num_classes or 1, classes_) if (class_ or classes_) else None
    if train_classes is not None:
        train_classes = sorted(set(train_classes.tolist()))
    closed_form = method == "closed-form"
    if closed_form and (walk_type != "linear" or layers or space != "z" or loss != "l2"):
        raise SteerError("--method closed-form gives a linear walk in z: drop --walk nonlinear, --layers, "
                         "--space and --loss")
    if walk_type == "slider" and (closed_form or layers):
        raise SteerError("--walk slider moves weights, not a latent: drop --method closed-form and --layers "
                         "(pick its layers with --slider-layers)")
    if walk_type != "slider" and (slider_layers is not None or rank != 4):
        raise SteerError("--rank and --slider-layers are for --walk slider")
    label = "closed-form" if closed_form else walk_type
    check_batch_memory("--batch", batch, G.resolution, G.device)
    out = writable_dir(out or Path("runs") / "walks" / f"{G.name}-{edit.name}-{label}")
    lpips = MaskedLPIPS() if loss == "lpips" else None
    steps, schedule, lr = fit_defaults(walk_type, edit, steps, schedule, lr)
    config = FitConfig(steps=steps, batch=batch, lr=lr, seed=seed, loss=loss, space=space,
                       truncation=truncation, classes=train_classes, checkpoint_seconds=checkpoint_minutes * 60,
                       schedule=schedule, patience=patience, validate_every=validate_every)
    latent_shape = G.latent_shape(space)
    if closed_form:
        from ..directions import closed_form_walk
        started = time.perf_counter()
        w = closed_form_walk(G, edit)
        solve_seconds = time.perf_counter() - started
        history = []
    else:
        if walk_type == "slider":
            from ..directions.weight_slider import make_weight_slider
            w = make_weight_slider(G, edit, space, rank=rank, pattern=slider_layers, seed=seed).to(G.device)
        else:
            w = make_walk(walk_type, edit, latent_shape, G.resolution, seed=seed, layers=layers)
        # with the config (seed, batch, lr, loss, truncation, classes) what a resumed run must share
        source = source_record(G) or {}
        run_id = {"model": G.name, "model_sha256": source.get("sha256"), "edit": edit.name, "walk": walk_type,
                  "space": space, "loss": loss, "alpha_max": alpha_max, "layers": list(layers) if layers else None,
                  **({"rank": rank, "slider_layers": slider_layers} if walk_type == "slider" else {})}
        fitted = fit_walk(G, w, edit, config, checkpoint=out / "checkpoint.pt", lpips=lpips, run_id=run_id,
                          restart=restart)
        history = fitted.history
    held_out = evaluate_walk(G, w, edit, config)
    zero = LinearWalk(latent_shape, sliders=edit.sliders, init_std=0.0, layers=layers)
    # the zero walk (the unmoved generator) is every linear walk's and slider's starting point
    baseline = evaluate_walk(G, zero.to(G.device), edit, config) if walk_type in ("linear", "slider") else None
    steering = Steering(G, w, edit, space, truncation=truncation, classes=train_classes)
    extra = {"method": method, "held_out_l2": held_out, "zero_walk_l2": baseline, "train_alpha_max": alpha_max,
             "command": command_line()}
    if closed_form:
        extra["closed_form"] = {"latent": [G.first_layer().latent.start, G.first_layer().latent.stop],
                                "alphas": list(edit.show_alphas(G.resolution)), "seconds": solve_seconds}
    else:
        extra.update(training={k: v for k, v in vars(config).items() if k != "checkpoint_seconds"},
                     loss_history=[round(v, 6) for v in history])
        if patience:
            extra["early_stopping"] = {
                "rule": f"validation masked L2 (2 batches of {batch}, seeds apart from training and held-out) every "
                        f"{validate_every} steps; stop after {patience} without a 1 % improvement; keep the best",
                "stopped_early": fitted.stopped_early, "steps_run": fitted.steps_done, "kept_step": fitted.best_step,
                "validation": [[s, round(v, 6)] for s, v in fitted.validation]}
    steering.save(out / "walk.safetensors", **extra)
    files = f"walk: {out / 'walk.safetensors'}"
    if not closed_form:
        save_loss_plot(history, out / "loss.png", title=f"{edit.name} {walk_type} walk on {G.name} ({loss})")
        files += f"  plot: {out / 'loss.png'}"
    (out / "loss.json").write_text(json.dumps({"loss": history, "held_out_l2": held_out,
                                               "zero_walk_l2": baseline, "method": method}) + "\n")
    latent, classes = steering.sample(6, seed=seed + 12345, classes=pick_classes(G, class_, 6, classes_))
    alphas = edit.show_alphas(G.resolution)
    strips = steering.strips(latent, classes, alphas)
    save_strip_grid(strips, alphas, out / "strip.png", upscale=max(1, 64 // G.resolution),
                    title=f"{edit.name} {label} walk on {G.name}: columns are alpha")
    summary = f"held-out masked L2 {held_out:.4f}" + (f" (zero walk {baseline:.4f})" if baseline is not None else "")
    if not closed_form and patience:
        summary += (f"; stopped early at step {fitted.steps_done}, kept step {fitted.best_step}" if fitted.stopped_early
                    else f"; ran all {fitted.steps_done} steps, kept step {fitted.best_step}")
    if closed_form:
        summary += f"; direction solved in {solve_seconds:.3f} s"
    click.echo(f"{files}  strip: {out / 'strip.png'}  {summary}")


def _direction_command(model, method, space, layers, truncation, components, component, samples, feature_layer,
                       attribute, share, conditions, jacobian_kind, step, class_, classes_, seed, out, device,
                       walk_type, loss):
    """`steer walk --method sefa|pca|svm|jacobian`: find directions, write them as walks."""
    from ..directions.methods import find_directions, save_directions
    from ..generators.base import pick_classes

    if walk_type != "linear" or loss != "l2":
        raise SteerError(f"--method {method} gives linear walks and trains nothing: drop --walk and --loss")
    if method == "svm" and not attribute:
        raise SteerError("--method svm needs --attribute: an estimator (e.g. area), class:NAME or a CSV of seed,score")
    if method != "svm" and (attribute or conditions):
        raise SteerError(f"--attribute and --condition are for --method svm, not {method}")
    G = open_generator(model, device)
    truncation = G.check_truncation(truncation)
    options = {"space": space, "layers": layers, "truncation": truncation}
    if method == "sefa":
        if truncation is not None or samples is not None:
            raise SteerError("--method sefa reads only the weights: drop --samples and --truncation")
        options = {"space": space, "layers": layers, "components": components}
    elif method == "pca":
        options.update(components=components, samples=samples or 2000, layer=feature_layer, seed=seed)
    elif method == "svm":
        from ..walks import load
        walks = [c for c in conditions if c.endswith(".safetensors")]
        vectors = []
        for path in walks:
            w, _ = load(path)
            if getattr(w, "kind", None) != "linear":
                raise SteerError(f"--condition {path}: only a linear walk's direction can be projected out")
            vectors.append(w.directions.detach()[0].cpu())
        options.update(attribute=attribute, samples=samples or 1000, share=share, seed=seed,
                       conditions=[c for c in conditions if c not in walks], condition_vectors=vectors)
    else:
        options.update(components=components, kind=jacobian_kind, samples=samples or 8, seed=seed)
    found = find_directions(G, method, **options)
    if method == "svm" and found.settings.get("conditions") is not None:
        found.settings["condition_walks"] = [c for c in conditions if c.endswith(".safetensors")]
    tag = {"svm": f"svm-{Path(str(attribute)).stem.replace(':', '-')}", "jacobian": f"jacobian-{jacobian_kind}"}
    out = writable_dir(out or Path("runs") / "walks" / f"{G.name}-{tag.get(method, method)}")
    record = save_directions(G, found, out, component=component if method != "svm" else 0, step=step,
                             truncation=truncation, seed=seed, extra={"command": command_line()},
                             classes=pick_classes(G, class_, 4, classes_))
    report = found.report
    summary = f"{method}: {len(found.values)} direction(s) in {found.where.space}"
    if method == "sefa":
        summary += f", factorised in {report['seconds'] * 1000:.1f} ms"
    elif method == "svm":
        acc = report["validation_accuracy"]
        summary += (f", validation accuracy {acc:.3f}" if acc is not None else "") + \
            f" ({report['kept_per_side']} kept at each end of {report['scored']})"
        if "validation_accuracy_after_projection" in report:
            summary += f", {report['validation_accuracy_after_projection']:.3f} after projecting out the conditions"
    else:
        summary += f" in {report['total_seconds']:.1f} s"
    click.echo(f"walk: {record['walk']}  components: {out / 'components'}  strip: {out / 'strip.png'}  "
               f"report: {out / 'directions.json'}  {summary}")

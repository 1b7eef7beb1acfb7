"""The `steer` command. Thin: parse options, call the library, print where results went.

Mistakes a user can fix raise SteerError (or click's usage errors): one line on stderr,
exit status 2, no traceback.
"""
from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path

import click

from .errors import SteerError

from .generators.base import class_index
from .generators.registry import DEFAULT_MODEL


def writable_dir(path) -> Path:
    """Create `path` if needed and prove it is writable, before any long work starts."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".steer-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise SteerError(f"cannot write to --out {path}: {e.strerror or e}; choose a writable folder") from None
    return path


def command_line() -> str:
    return "steer " + " ".join(shlex.quote(a) for a in sys.argv[1:])


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="steer")
def cli():
    """Steer and edit the latent spaces of pretrained GANs.

    \b
    Example:
      steer walk --edit zoom          # learn a zoom walk on the bundled model
    """


@cli.command()
@click.option("--arch", default="dcgan", show_default=True, type=click.Choice(["dcgan", "dssgan"]),
              help="dcgan: the conv baseline; dssgan: DSS-GAN (Mamba) with the official recipe.")
@click.option("--data", default="shapes", show_default=True,
              help="'shapes' (procedural) or a folder of images (sub-folders are classes).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Run folder (resumed when it holds a checkpoint).")
@click.option("--shapes-config", default=None, type=click.Path(dir_okay=False),
              help="JSON of the shapes data's attribute ranges (ShapesConfig fields, e.g. "
                   '{"scale": [0.18, 0.22]} or per-class {"class_scale": {"circle": [0.1, 0.4]}}).')
@click.option("--resolution", default=32, show_default=True, type=int)
@click.option("--steps", default=6000, show_default=True, type=click.IntRange(1))
@click.option("--batch", default=32, show_default=True, type=click.IntRange(1),
              help="Global batch (split across processes under torchrun).")
@click.option("--lr", default=None, type=click.FloatRange(0, min_open=True),
              help="G learning rate [dcgan 2e-4 for G and D; dssgan 9e-5, D 3e-5 (official)].")
@click.option("--lr-d", default=None, type=click.FloatRange(0, min_open=True), help="D learning rate (dssgan).")
@click.option("--base-channels", default=32, show_default=True, type=click.IntRange(4),
              help="dcgan: width at full resolution.")
@click.option("--channels", default=None,
              help="dssgan: widths from 8 px up to the resolution, e.g. 64,48,32 for 32 px.")
@click.option("--d-state", default=16, show_default=True, type=click.IntRange(1), help="dssgan: Mamba state size.")
@click.option("--directions", default="row_fwd,col_fwd,diag_left", show_default=True,
              help="dssgan: scan directions, each with its own chunk of z (row_fwd, row_bwd, col_fwd, col_bwd, "
                   "diag_left, diag_right).")
@click.option("--r1-gamma", default=None, type=click.FloatRange(0),
              help="R1 weight [dcgan 1 (every 16 steps, scaled); dssgan 5 (every 4, official)].")
@click.option("--mode-seeking", default=0.0, show_default=True, type=click.FloatRange(0),
              help="Weight of MSGAN's mode-seeking term (pairs of latents sharing a class); 0: off.")
@click.option("--ema-rampup", default=None, type=click.FloatRange(0, min_open=True),
              help="Ramp G's EMA up as StyleGAN2-ADA does (0.05 there): it spans at most this share of the "
                   "steps so far, so short runs do not average in the untrained start [off].")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--device", default=None, help="cpu or cuda (default: cuda when present).")
def train(arch, data, out, shapes_config, resolution, steps, batch, lr, lr_d, base_channels, channels, d_state, directions,
          r1_gamma, mode_seeking, ema_rampup, seed, device):
    """Train a class-conditional generator on shapes or an image folder.

    Writes OUT/checkpoint.pt while training (Ctrl-C saves; rerun to resume), then the
    model in bundled format under OUT/model/ and a sample grid OUT/samples.png. Runs
    data-parallel under torchrun (gloo on CPU, nccl on CUDA).

    \b
    Examples:
      steer train --data shapes --out runs/dcgan-shapes32 --steps 6000
      steer train --arch dssgan --data shapes --out runs/dssgan-shapes32
      torchrun --nproc_per_node=2 --no-python steer train --arch dssgan --out runs/d2
    """
    import torch

    from .data.folder import folder_batches, load_folder
    from .data.shapes import SHAPE_CLASSES, read_shapes_config, shapes_batches
    from .train import TrainConfig, train_gan

    out = writable_dir(out)
    if resolution < 8 or resolution & (resolution - 1) or (arch == "dssgan" and resolution < 16):
        raise SteerError(f"--resolution {resolution} must be a power of two, at least "
                         f"{16 if arch == 'dssgan' else 8}")
    extra_config = {}
    if shapes_config is not None and data != "shapes":
        raise SteerError("--shapes-config sets the procedural shapes data: use it with --data shapes")
    if data == "shapes":
        class_names = list(SHAPE_CLASSES)
        config = read_shapes_config(shapes_config) if shapes_config else None
        if config is not None:
            extra_config["shapes_config"] = config.to_dict()
        next_batch = shapes_batches(config, resolution=resolution, seed=seed)
    else:
        images, classes, class_names = load_folder(data, resolution)
        next_batch = folder_batches(images, classes, seed=seed)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(seed)
    if arch == "dssgan":
        G, D, config, about = _dssgan_setup(resolution, len(class_names), channels, d_state, directions, steps,
                                            batch, lr, lr_d, r1_gamma, seed)
        config.mode_seeking = mode_seeking
        config.ema_rampup = ema_rampup
    else:
        from .finetune import discriminator_for
        from .generators.dcgan import DCGANGenerator
        G = DCGANGenerator(resolution=resolution, num_classes=len(class_names), base_channels=base_channels)
        D = discriminator_for(G)
        config = TrainConfig(steps=steps, batch=batch, lr=lr or 2e-4, seed=seed,
                             r1_gamma=1.0 if r1_gamma is None else r1_gamma, mode_seeking=mode_seeking,
                             ema_rampup=ema_rampup)
        about = "A class-conditional conv generator (steer's `dcgan` family)"
    if os.environ.get("WORLD_SIZE", "1") != "1":
        from .train.gan import distributed_device
        device = str(distributed_device())
    G_ema = train_gan(G.to(device), D.to(device), next_batch, out, config)
    if int(os.environ.get("RANK", "0")) != 0:
        return  # under torchrun, rank 0 writes the model
    minutes = G_ema.train_seconds / 60
    card = (f"# {out.name}\n\n{about} at {resolution}x{resolution}, trained by steer on `{data}` "
            f"data.\n\n- classes: {', '.join(class_names)}\n- latent: z ~ N(0, I), {G.latent_dim}-d\n"
            f"- training command: `{command_line()}`\n- steps: {config.steps}, batch {config.batch}\n"
            f"- wall time: {minutes:.1f} min on {device} ({torch.get_num_threads()} threads)\n")
    if extra_config:
        card += f"- shapes data: `{json.dumps(extra_config['shapes_config'])}`\n"
    save_model_and_samples(G_ema, out, card, {"class_names": class_names, **extra_config})
    click.echo(f"model: {out / 'model'}  samples: {out / 'samples.png'}  ({minutes:.1f} min)")


def save_model_and_samples(G, out: Path, card: str, extra_config: dict) -> None:
    """OUT/model/ in bundled format and OUT/samples.png (64 samples, cycling the classes)."""
    import torch

    from .generators.registry import save_generator
    from .viz import save_grid

    save_generator(G, out / "model", card, extra_config)
    z, c = G.sample(64, seed=0, classes=torch.arange(64) % G.num_classes if G.num_classes else None)
    with torch.no_grad():
        save_grid(G.synthesize(z, c), out / "samples.png", columns=8, upscale=max(1, 64 // G.resolution))


def _dssgan_setup(resolution, num_classes, channels, d_state, directions, steps, batch, lr, lr_d, r1_gamma, seed):
    """A small DSS-GAN, its discriminator and the official training recipe."""
    from .generators.dssgan.configs import default_channels, small_config
    from .finetune import discriminator_for
    from .generators.dssgan.generator import DIRECTIONS, DSSGANGenerator, init_for_training
    from .train import TrainConfig

    sizes = []
    while 8 * 2 ** len(sizes) <= resolution:
        sizes.append(8 * 2 ** len(sizes))
    if channels is None:
        widths = default_channels(resolution)
    else:
        widths = parse_numbers(channels, "--channels", int)
        if len(widths) != len(sizes) or min(widths) < 1:
            raise SteerError(f"--channels needs {len(sizes)} positive widths, one per size "
                             f"{', '.join(map(str, sizes))}")
    scan_directions = [d for d in directions.replace(" ", "").split(",") if d]
    unknown = [d for d in scan_directions if d not in DIRECTIONS]
    if unknown or not scan_directions or len(set(scan_directions)) != len(scan_directions):
        raise SteerError(f"--directions must list distinct scan directions from {', '.join(DIRECTIONS)}; "
                         f"got '{directions}'")
    G = init_for_training(DSSGANGenerator(small_config(resolution, num_classes, channels=widths, d_state=d_state,
                                                       directions=scan_directions)))
    D = discriminator_for(G)
    overrides = {"steps": steps, "batch": batch, "seed": seed}
    overrides.update({k: v for k, v in (("lr", lr), ("lr_d", lr_d), ("r1_gamma", r1_gamma)) if v is not None})
    config = TrainConfig.dssgan_official(**overrides)
    return G, D, config, "A class-conditional DSS-GAN (Mamba generator, steer's `dssgan` family)"



def parse_numbers(text: str, what: str, cast=float) -> list:
    try:
        values = [cast(v) for v in text.replace(" ", "").split(",") if v != ""]
    except ValueError:
        raise SteerError(f"{what} must be a comma-separated list of numbers, got '{text}'") from None
    if not values:
        raise SteerError(f"{what} is empty")
    return values


def open_generator(model, device):
    from .generators import load_generator
    return load_generator(model, device=device)


def set_w_truncation(generator, truncation, centroids):
    """Generators that truncate in W (StyleGAN) take psi and centroids as settings; returns
    what is left for truncating z (None for those). BigGAN truncates z and its batch-norm
    statistics alike: the setting goes to synthesis and the value is returned for z."""
    if not hasattr(generator, "truncation_psi"):
        if centroids:
            raise SteerError(f"--centroids is for StyleGAN-XL models; {generator.name} has no W space")
        if truncation is not None and hasattr(generator, "check_truncation"):
            generator.truncation = generator.check_truncation(truncation)
        return truncation
    if truncation is not None:
        generator.truncation_psi = truncation
    if centroids:
        generator.set_centroids(centroids)
    return None


def parse_layers(text):
    """'START:STOP' -> (START, STOP), or None."""
    if not text:
        return None
    try:
        start, stop = (int(v) for v in text.split(":"))
    except ValueError:
        raise SteerError(f"--layers must be START:STOP (e.g. 0:8), got '{text}'") from None
    return start, stop


def pick_classes(generator, class_option, n, classes_option=None):
    """--class K -> K for every sample; --classes A,B,... -> cycled over the samples; none ->
    cycle through all the classes. Classes are indices or names."""
    import torch
    if not generator.num_classes:
        if class_option is not None or classes_option:
            raise SteerError(f"{generator.name} is unconditional: drop --class")
        return None
    if class_option is not None and classes_option:
        raise SteerError("give --class or --classes, not both")
    if classes_option:
        chosen = [class_index(generator, part, "--classes") for part in classes_option.split(",") if part.strip()]
        if not chosen:
            raise SteerError("--classes is empty")
        return torch.tensor(chosen, dtype=torch.int64).repeat(n // len(chosen) + 1)[:n]
    if class_option is None:
        return torch.arange(n) % generator.num_classes
    return torch.full((n,), class_index(generator, class_option), dtype=torch.int64)


model_option = click.option("--model", default=DEFAULT_MODEL, show_default=True,
                            help="Bundled model name, a model folder, or an official checkpoint file "
                                 "(e.g. DSS-GAN's G_full_ema_epoch_XXX.pt, read without running it).")
device_option = click.option("--device", default=None, help="cpu or cuda (default: cuda when present).")


@cli.command()
@click.option("--model", default=None,
              help="Describe this model (bundled name, folder or official checkpoint file) instead.")
def models(model):
    """List the bundled generators: resolution, classes and latent spaces.

    With --model, describe one model, including its latent layout where it has one
    (DSS-GAN: the z_base slice and one slice per scan direction).

    \b
    Examples:
      steer models
      steer models --model path/to/G_full_ema_epoch_100.pt
    """
    from .generators import bundled_models, load_generator
    from .generators.registry import models_dir
    names = [model] if model else bundled_models()
    if not names:
        click.echo(f"no bundled models in {models_dir()}")
        return
    generators = [(name, load_generator(name, device="cpu")) for name in names]
    click.echo(f"{'name':<22}{'family':<12}{'resolution':>10}{'classes':>9}  spaces")
    for name, g in generators:
        family = getattr(g, "family", "?")
        click.echo(f"{g.name:<22}{family:<12}{g.resolution:>10}{g.num_classes:>9}  {', '.join(g.spaces)}"
                   + ("  (default)" if name == DEFAULT_MODEL else ""))
    if model:
        n_params = sum(p.numel() for p in g.parameters())
        click.echo(f"latent z: {g.latent_dim} dims; parameters: {n_params:,}")
        if hasattr(g, "num_ws"):
            click.echo(f"latent w: {g.w_dim} dims; w+: {g.num_ws} layers x {g.w_dim}")
        if hasattr(g, "latent_layout"):
            for part, span in g.latent_layout().items():
                click.echo(f"  {part:<12} z[{span.start}:{span.stop}]")


@cli.command()
@model_option
@click.option("-n", "--num", default=16, show_default=True, type=click.IntRange(1, 1024), help="How many images.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--class", "class_", default=None,
              help="Class for every image, by index or name (e.g. 207 or 'golden retriever') [default: cycle].")
@click.option("--classes", "classes_", default=None,
              help="Comma-separated classes (indices or names), cycled over the images.")
@click.option("--truncation", default=None, type=click.FloatRange(0, min_open=True),
              help="StyleGAN: psi toward the (class) mean w, e.g. 0.7; BigGAN: z from a normal truncated to "
                   "+-2 times it and the matching batch-norm statistics, in (0, 1]; others: bound of a "
                   "truncated normal z.")
@click.option("--centroids", default=None, type=click.Path(dir_okay=False),
              help="StyleGAN-XL: .npy of w centroids (imagenet_centroids.npy) for multimodal truncation.")
@click.option("--out", default="samples.png", show_default=True, type=click.Path(dir_okay=False), help="PNG grid to write.")
@device_option
def sample(model, num, seed, class_, classes_, truncation, centroids, out, device):
    """Draw samples from a generator and write them as a grid PNG.

    \b
    Examples:
      steer sample -n 32 --seed 1 --out samples.png
      steer sample --model imagenet128.pkl --class 207 --truncation 0.7
      steer sample --model path/to/biggan-deep-256/ --classes 'golden retriever,tabby' --truncation 0.4
    """
    import torch

    from .viz import save_grid
    G = open_generator(model, device)
    writable_dir(Path(out).parent)
    classes = pick_classes(G, class_, num, classes_)
    truncation = set_w_truncation(G, truncation, centroids)
    z, c = G.sample(num, seed=seed, truncation=truncation, classes=classes)
    with torch.no_grad():
        images = G(z, c)
    columns = min(num, 8)
    save_grid(images, out, columns=columns, upscale=max(1, 128 // G.resolution))
    click.echo(f"wrote {out}")


@cli.command()
@model_option
@click.option("--data", default="shapes", show_default=True,
              help="Real images to compare with: 'shapes' or a folder of images (sub-folders are classes).")
@click.option("--samples", default=2000, show_default=True, type=click.IntRange(20), help="Generated samples.")
@click.option("--class", "class_", default=None, type=int, help="Evaluate one class only.")
@click.option("--features", default=None,
              type=click.Choice(["shapes", "pixels", "fid", "resnet18", "resnet50", "inception"]),
              help="Feature network [shapes data: the shapes classifier; folders: pixels]; "
                   "fid: standard FID (pytorch-fid's Inception weights in torch's cache).")
@click.option("--bins", default=50, show_default=True, type=click.IntRange(2), help="k-means bins for NDB/JSD.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--out", default=None, type=click.Path(dir_okay=False),
              help="JSON to write [default: runs/evaluate/MODEL.json].")
@device_option
def evaluate(model, data, samples, class_, features, bins, seed, out, device):
    """Offline quality and diversity of a generator against real images.

    Frechet distance in a feature network's features, NDB and JSD over k-means bins,
    precision/recall and density/coverage (k = 3), LPIPS diversity between same-class
    samples (pixel distance when LPIPS weights are absent, and it says so), and for shapes
    models how often the classifier recognises the asked class; overall and per class.

    \b
    Example:
      steer evaluate --model dcgan-shapes32 --samples 2000
    """
    import torch
    from tqdm.auto import tqdm

    from .metrics import evaluate_generator

    G = open_generator(model, device)
    out = Path(out or Path("runs") / "evaluate" / f"{G.name}.json")
    writable_dir(out.parent)
    if class_ is not None and not 0 <= class_ < max(G.num_classes, 1):
        raise SteerError(f"--class {class_} is out of range: {G.name} has {G.num_classes} classes")
    from .metrics import feature_network
    name = features or ("shapes" if data == "shapes" else "pixels")
    features = feature_network(name)  # a missing weights file stops us before any work
    if data == "shapes":
        from .data.shapes import sample_shapes
        real, attrs = sample_shapes(samples, seed=seed + 1, resolution=G.resolution,
                                    config=training_shapes(model))
        real_classes = attrs["class"]
    else:
        from .data.folder import load_folder
        real, real_classes, _ = load_folder(data, G.resolution)
    stages = ["generating", "features", "overall"] + [f"class {c}" for c in range(G.num_classes)
                                                       if class_ is None or c == class_]
    bar = tqdm(total=len(stages), desc="evaluate", dynamic_ncols=True)

    def progress(label):
        bar.set_postfix_str(label)
        bar.update(0 if label == "generating" else 1)

    with torch.no_grad():
        result = evaluate_generator(G, real, real_classes, samples, features=features, only_class=class_,
                                    bins=bins, seed=seed, progress=progress)
    bar.update(bar.total - bar.n)
    bar.close()
    result.update(data=data, features=name, command=command_line())
    out.write_text(json.dumps(result, indent=2) + "\n")
    click.echo(f"{G.name} vs {data}, features: {result['feature_network']}")
    click.echo(f"{'':<9}{'FD':>9}{'NDB':>9}{'JSD':>8}{'prec':>7}{'recall':>7}{'dens':>7}{'cover':>7}"
               f"{'div':>8}{'class ok':>9}")
    rows = [("overall", result["overall"])] + [(f"class {c}", r) for c, r in result.get("per_class", {}).items()]
    for label, r in rows:
        recognised = f"{r['class_recognised'] * 100:8.1f}%" if "class_recognised" in r else f"{'':>9}"
        click.echo(f"{label:<9}{r['frechet_distance']:9.2f}{r['ndb']:>5}/{r['bins']:<3}{r['jsd']:8.4f}"
                   f"{r['precision']:7.3f}{r['recall']:7.3f}{r['density']:7.3f}{r['coverage']:7.3f}"
                   f"{r['lpips_diversity']['diversity']:8.4f}{recognised}")
    click.echo(f"diversity: {result['overall']['lpips_diversity']['distance']}; JSON: {out}")


@cli.command()
@model_option
@click.option("--edit", "edit_name", default="zoom", show_default=True,
              help="zoom, shift_x, shift_y, rotate, colour or brightness.")
@click.option("--walk", "walk_type", default="linear", show_default=True, type=click.Choice(["linear", "nonlinear"]))
@click.option("--loss", default="l2", show_default=True, type=click.Choice(["l2", "lpips"]))
@click.option("--steps", default=800, show_default=True, type=click.IntRange(1))
@click.option("--batch", default=16, show_default=True, type=click.IntRange(1))
@click.option("--lr", default=None, type=click.FloatRange(0, min_open=True), help="Adam learning rate (default: the edit's).")
@click.option("--space", default=None, help="Latent space to walk in (default: the model's).")
@click.option("--layers", default=None,
              help="w+ only: move layers START:STOP (0-based, STOP excluded) and leave the rest.")
@click.option("--truncation", default=None, type=click.FloatRange(0, min_open=True),
              help="StyleGAN: psi for the training latents; BigGAN: truncation of z and of the batch-norm "
                   "statistics, in (0, 1].")
@click.option("--method", default="learned", show_default=True, type=click.Choice(["learned", "closed-form"]),
              help="learned: optimise the walk; closed-form: a linear direction solved from the first layer's "
                   "weights (zoom, shift_x, shift_y; models with a linear first layer onto a grid).")
@click.option("--class", "class_", default=None, help="Train on this class only (index or name).")
@click.option("--classes", "classes_", default=None, help="Train on these classes (comma-separated indices or names).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--out", default=None, type=click.Path(file_okay=False),
              help="Output folder [default: runs/walks/MODEL-EDIT-WALK]; resumed when it holds a checkpoint.")
@device_option
def walk(model, edit_name, walk_type, loss, steps, batch, lr, space, layers, truncation, method, class_, classes_,
         seed, out, device):
    """Learn a walk that reproduces an edit, with the generator frozen.

    Writes OUT/walk.safetensors, OUT/loss.png (+ loss.json) and OUT/strip.png (rows are
    samples, columns alphas across the training range). Interrupt with Ctrl-C and rerun
    the same command to resume. With --method closed-form nothing is trained: the direction
    is solved from the generator's first layer (Spingarn et al.) and saved as a linear walk.

    \b
    Example:
      steer walk --edit zoom
      steer walk --edit shift_x --walk nonlinear --steps 3000 --out runs/shiftx-nl
      steer walk --model imagenet128.pkl --space w+ --layers 0:8 --edit colour
      steer walk --method closed-form --edit zoom
      steer walk --model path/to/biggan-deep-256/ --class 'golden retriever' --truncation 0.5 --edit zoom
    """
    import time

    from .edits import get_edit
    from .fit import FitConfig, evaluate_walk, fit_walk
    from .losses import MaskedLPIPS
    from .render import render_walk
    from .viz import save_loss_plot, save_strip_grid
    from .walks import LinearWalk, make_walk, save

    edit = get_edit(edit_name)
    G = open_generator(model, device)
    space = space or G.default_space
    G.check_space(space)
    layers = parse_layers(layers)
    z_truncation = set_w_truncation(G, truncation, None)
    if z_truncation is not None and not hasattr(G, "check_truncation"):
        raise SteerError(f"--truncation is for StyleGAN and BigGAN models; {G.name} has neither W space nor "
                         "truncated batch-norm statistics")
    train_classes = pick_classes(G, class_, G.num_classes or 1, classes_) if (class_ or classes_) else None
    if train_classes is not None:
        train_classes = sorted(set(train_classes.tolist()))
    closed_form = method == "closed-form"
    if closed_form and (walk_type != "linear" or layers or space != "z" or loss != "l2"):
        raise SteerError("--method closed-form gives a linear walk in z: drop --walk nonlinear, --layers, "
                         "--space and --loss")
    label = "closed-form" if closed_form else walk_type
    out = writable_dir(out or Path("runs") / "walks" / f"{G.name}-{edit.name}-{label}")
    lpips = MaskedLPIPS() if loss == "lpips" else None
    # the nonlinear walk is an MLP: a gentler default step than for a few direction vectors
    default_lr = edit.lr if walk_type == "linear" else edit.lr / 5
    config = FitConfig(steps=steps, batch=batch, lr=lr or default_lr, seed=seed, loss=loss, space=space,
                       truncation=z_truncation, classes=train_classes)
    z, classes = G.sample(1, seed=0)
    latent_shape = tuple(G.to_space(z, classes, space).shape[1:])
    if closed_form:
        from .directions import closed_form_walk
        started = time.perf_counter()
        w = closed_form_walk(G, edit)
        solve_seconds = time.perf_counter() - started
        history = []
    else:
        w = make_walk(walk_type, edit, latent_shape, G.resolution, seed=seed, layers=layers)
        run_id = {"model": G.name, "edit": edit.name, "walk": walk_type, "space": space, "loss": loss}
        if layers:
            run_id["layers"] = list(layers)
        if train_classes is not None:
            run_id["classes"] = train_classes
        history = fit_walk(G, w, edit, config, checkpoint=out / "checkpoint.pt", lpips=lpips, run_id=run_id).history
    held_out = evaluate_walk(G, w, edit, config)
    zero = LinearWalk(latent_shape, sliders=edit.sliders, init_std=0.0, layers=layers)
    baseline = evaluate_walk(G, zero.to(G.device), edit, config) if walk_type == "linear" else None
    meta = {"model": G.name, "space": space, "edit": edit.name, "alpha_convention": edit.convention,
            "resolution": G.resolution, "method": method, "held_out_l2": held_out,
            "zero_walk_l2": baseline, "command": command_line()}
    if closed_form:
        meta["closed_form"] = {"latent": [G.first_layer().latent.start, G.first_layer().latent.stop],
                               "alphas": list(edit.show_alphas(G.resolution)), "seconds": solve_seconds}
    else:
        meta.update(training={k: v for k, v in vars(config).items()},
                    loss_history=[round(v, 6) for v in history])
    if hasattr(G, "truncation_psi"):
        meta["truncation"] = G.truncation_psi
    elif hasattr(G, "check_truncation"):
        meta["truncation"] = G.truncation
    save(w, out / "walk.safetensors", meta)
    files = f"walk: {out / 'walk.safetensors'}"
    if not closed_form:
        save_loss_plot(history, out / "loss.png", title=f"{edit.name} {walk_type} walk on {G.name} ({loss})")
        files += f"  plot: {out / 'loss.png'}"
    (out / "loss.json").write_text(json.dumps({"loss": history, "held_out_l2": held_out,
                                               "zero_walk_l2": baseline, "method": method}) + "\n")
    seeds_z, seeds_c = G.sample(6, seed=seed + 12345, classes=pick_classes(G, class_, 6, classes_))
    latent = G.to_space(seeds_z, seeds_c, space)
    alphas = edit.show_alphas(G.resolution)
    strips = render_walk(G, w, edit, latent, seeds_c, alphas, space=space)
    save_strip_grid(strips, alphas, out / "strip.png", upscale=max(1, 64 // G.resolution),
                    title=f"{edit.name} {label} walk on {G.name}: columns are alpha")
    summary = f"held-out masked L2 {held_out:.4f}" + (f" (zero walk {baseline:.4f})" if baseline is not None else "")
    if closed_form:
        summary += f"; direction solved in {solve_seconds:.3f} s"
    click.echo(f"{files}  strip: {out / 'strip.png'}  {summary}")


@cli.command()
@model_option
@click.option("--edit", "edit_name", required=True, help="The edit the walk learns and the data is augmented by.")
@click.option("--data", default="shapes", show_default=True,
              help="'shapes' (the spreads the model was trained on) or a folder of images (sub-folders are classes).")
@click.option("--shapes-config", default=None, type=click.Path(dir_okay=False),
              help="JSON of the shapes data's attribute ranges [default: the model's own].")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Run folder (resumed when it holds a checkpoint).")
@click.option("--steps", default=1000, show_default=True, type=click.IntRange(1), help="Steps, the D warm-up included.")
@click.option("--batch", default=32, show_default=True, type=click.IntRange(2))
@click.option("--walk", "walk_type", default="linear", show_default=True, type=click.Choice(["linear", "nonlinear"]))
@click.option("--walk-weight", default=1.0, show_default=True, type=click.FloatRange(0),
              help="Weight of the walk loss in G's loss; 0: no walk, G is fine-tuned on edited data alone.")
@click.option("--edit-share", default=0.5, show_default=True, type=click.FloatRange(0, 1),
              help="Share of each batch walked (fakes) and edited (reals).")
@click.option("--ramp-steps", default=0, show_default=True, type=click.IntRange(0),
              help="The share and the walk weight grow linearly from 0 over these steps after the warm-up.")
@click.option("--lr", default=None, type=click.FloatRange(0, min_open=True), help="G's learning rate [the family's].")
@click.option("--lr-d", default=None, type=click.FloatRange(0, min_open=True), help="D's learning rate [the family's].")
@click.option("--walk-lr", default=None, type=click.FloatRange(0, min_open=True), help="The walk's [the edit's].")
@click.option("--discriminator", "d_path", default=None, type=click.Path(dir_okay=False),
              help="A `steer train` checkpoint.pt whose D to start from [default: a fresh D, warmed up first].")
@click.option("--warmup-steps", default=None, type=click.IntRange(0),
              help="Steps that train D alone first [200 with a fresh D, 0 with --discriminator].")
@click.option("--r1-gamma", default=None, type=click.FloatRange(0), help="R1 weight [the family's].")
@click.option("--mode-seeking", default=0.0, show_default=True, type=click.FloatRange(0),
              help="Weight of MSGAN's mode-seeking term; 0: off.")
@click.option("--amp/--no-amp", default=None, help="bfloat16 mixed precision [on with CUDA].")
@click.option("--seed", default=0, show_default=True, type=int)
@device_option
def finetune(model, edit_name, data, shapes_config, out, steps, batch, walk_type, walk_weight, edit_share,
             ramp_steps, lr, lr_d, walk_lr, d_path, warmup_steps, r1_gamma, mode_seeking, amp, seed, device):
    """Fine-tune a generator and a walk together, the data augmented by the same edit.

    G's loss adds the walk loss (G(walk(z, a)) against edit(G(z), a)) and the adversarial
    loss on walked fakes; D sees walked fakes and reals edited with alphas from the walk's
    training range. Writes OUT/checkpoint.pt while training (Ctrl-C saves; rerun to resume),
    then OUT/model/ (bundled format), OUT/walk.safetensors and OUT/strip.png. Runs
    data-parallel under torchrun like `steer train`.

    \b
    Examples:
      steer finetune --model dcgan-shapes32 --edit zoom --out runs/joint-zoom
      steer finetune --edit zoom --walk-weight 0 --out runs/aug-zoom   # augmented data, no walk
      torchrun --nproc_per_node=2 --no-python steer finetune --edit zoom --out runs/j2
    """
    import copy

    import torch

    from .checkpoint import load_checkpoint
    from .data.folder import folder_batches, load_folder
    from .data.shapes import SHAPE_CLASSES, read_shapes_config, shapes_batches
    from .edits import get_edit
    from .finetune import JointSettings, JointWalk, discriminator_for
    from .fit import FitConfig, evaluate_walk
    from .render import render_walk
    from .train import TrainConfig, train_gan
    from .viz import save_strip_grid
    from .walks import save

    edit = get_edit(edit_name)
    G = open_generator(model, device or "cpu")
    out = writable_dir(out)
    extra_config = {}
    if data == "shapes":
        config_shapes = read_shapes_config(shapes_config) if shapes_config else training_shapes(model)
        if config_shapes is None:
            raise SteerError(f"{G.name} was not trained on steer's shapes data: give --data FOLDER of its images")
        if G.num_classes != len(SHAPE_CLASSES):
            raise SteerError(f"{G.name} has {G.num_classes} classes, the shapes data {len(SHAPE_CLASSES)}: "
                             "give --data FOLDER of its images")
        next_batch = shapes_batches(config_shapes, resolution=G.resolution, seed=seed)
        extra_config["shapes_config"] = config_shapes.to_dict()
        class_names = list(SHAPE_CLASSES)
    else:
        if shapes_config:
            raise SteerError("--shapes-config sets the procedural shapes data: use it with --data shapes")
        images, classes, class_names = load_folder(data, G.resolution)
        if G.num_classes and len(class_names) != G.num_classes:
            raise SteerError(f"{data} has {len(class_names)} classes (sub-folders) but {G.name} has "
                             f"{G.num_classes}: give one sub-folder per class, in the model's class order")
        next_batch = folder_batches(images, classes, seed=seed)
    if os.environ.get("WORLD_SIZE", "1") != "1":
        from .train.gan import distributed_device
        device = str(distributed_device())
    else:
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    G = G.to(device)
    if not any(p.is_floating_point() for p in G.parameters()):
        raise SteerError(f"{G.name} has no weights to fine-tune")
    D = discriminator_for(G)
    if d_path is not None:
        state = load_checkpoint(d_path) if Path(d_path).is_file() else None
        if not isinstance(state, dict) or "D" not in state:
            raise SteerError(f"{d_path} is not a `steer train` checkpoint with a discriminator")
        from .generators.registry import load_strict
        load_strict(D, state["D"], f"the discriminator in {d_path}")
    warmup = (0 if d_path else 200) if warmup_steps is None else warmup_steps
    if warmup >= steps:
        raise SteerError(f"--warmup-steps {warmup} leaves no step for G: give --steps above it")
    family = getattr(G, "family", None)
    recipe = TrainConfig.dssgan_official if family == "dssgan" else TrainConfig
    overrides = {k: v for k, v in (("lr", lr), ("lr_d", lr_d), ("r1_gamma", r1_gamma)) if v is not None}
    config = recipe(steps=steps, batch=batch, seed=seed, d_only_steps=warmup, mode_seeking=mode_seeking,
                    amp=(torch.device(device).type == "cuda") if amp is None else amp, **overrides)
    settings = JointSettings(edit=edit.name, walk_type=walk_type, train_walk=walk_weight > 0,
                             edit_share=edit_share, walk_weight=walk_weight, walk_lr=walk_lr,
                             ramp_start=warmup, ramp_steps=ramp_steps)
    joint = JointWalk(settings, (G.latent_dim,), G.resolution, seed=seed)
    G_ema = train_gan(G.train().requires_grad_(True), D.to(device), next_batch, out, config, joint=joint)
    if int(os.environ.get("RANK", "0")) != 0:
        return
    minutes = G_ema.train_seconds / 60
    card = (f"# {out.name}\n\n{G.name} fine-tuned by `steer finetune` "
            + (f"jointly with a {walk_type} {edit.name} walk" if settings.train_walk else "without a walk")
            + f", the data augmented by the {edit.name} edit (share {edit_share:g}).\n\n"
            f"- classes: {', '.join(class_names)}\n- command: `{command_line()}`\n"
            f"- steps: {steps} ({warmup} of them D alone), batch {batch}\n"
            f"- wall time: {minutes:.1f} min on {device} ({torch.get_num_threads()} threads)\n")
    save_model_and_samples(G_ema, out, card, {"class_names": class_names, **extra_config})
    message = f"model: {out / 'model'}  samples: {out / 'samples.png'}"
    if settings.train_walk:
        walk = copy.deepcopy(joint.walk).cpu().eval()
        G_ema.eval().requires_grad_(False)
        fit_config = FitConfig(batch=16, seed=seed)
        held_out = evaluate_walk(G_ema, walk.to(G_ema.device), edit, fit_config)
        meta = {"model": str(out / "model"), "space": G_ema.default_space, "edit": edit.name,
                "alpha_convention": edit.convention, "resolution": G_ema.resolution, "method": "joint",
                "held_out_l2": held_out, "joint": settings.to_dict(), "command": command_line()}
        save(walk, out / "walk.safetensors", meta)
        sz, sc = G_ema.sample(6, seed=seed + 12345)
        alphas = edit.show_alphas(G_ema.resolution)
        strips = render_walk(G_ema, walk, edit, G_ema.to_space(sz, sc, G_ema.default_space), sc, alphas)
        save_strip_grid(strips, alphas, out / "strip.png", upscale=max(1, 64 // G_ema.resolution),
                        title=f"{edit.name} walk learned jointly with {out.name}: columns are alpha")
        message += f"  walk: {out / 'walk.safetensors'} (held-out masked L2 {held_out:.4f})  strip: {out / 'strip.png'}"
    click.echo(message + f"  ({minutes:.1f} min)")


def read_render_settings(path) -> dict:
    """A render.json, or the JSON steer explore's Save writes: the keys `steer render` reads
    (walk, model, seeds, class, classes, alphas, truncation, channel); other keys are notes."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise SteerError(f"--settings {path} does not exist") from None
    except (OSError, ValueError) as e:
        raise SteerError(f"--settings {path} is not a readable JSON file ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("walk"), str):
        raise SteerError(f"--settings {path} must be a JSON object naming a \"walk\" file, as render.json "
                         "or steer explore's Save write it")
    walk = Path(data["walk"])
    beside = Path(path).parent / walk
    if not walk.is_absolute() and not walk.exists() and beside.exists():
        data["walk"] = str(beside)  # a relative walk path is also looked up next to the settings file
    return data


def settings_alphas(values, sliders: int) -> list:
    """Alphas from a settings file: numbers, or for a colour walk also [r, g, b] triples."""
    def number(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    ok = isinstance(values, list) and values and all(
        number(v) or (sliders > 1 and isinstance(v, list) and len(v) == sliders and all(map(number, v)))
        for v in values)
    if not ok:
        shape = " (or lists of one value per slider)" if sliders > 1 else ""
        raise SteerError(f"--settings: \"alphas\" must be a list of numbers{shape}, got {json.dumps(values)}")
    return values


@cli.command()
@click.option("--walk", "walk_path", default=None, type=click.Path(dir_okay=False),
              help="A walk.safetensors file (required unless --settings names one).")
@click.option("--model", default=None, help="Generator (default: the model the walk was learned on).")
@click.option("--alphas", default=None, help="Comma-separated alphas (default: the edit's test range).")
@click.option("--seeds", default="0,1,2,3", show_default=True, help="Comma-separated seeds, one row each.")
@click.option("--class", "class_", default=None, help="Class for every row, index or name (default: cycle).")
@click.option("--classes", "classes_", default=None, help="Comma-separated classes (indices or names), one per row, cycled.")
@click.option("--truncation", default=None, type=click.FloatRange(0, min_open=True),
              help="Override the truncation the walk was learned under (StyleGAN psi, BigGAN truncation).")
@click.option("--channel", default="all", show_default=True, type=click.Choice(["r", "g", "b", "all"]),
              help="For colour walks: which channel alpha moves.")
@click.option("--targets", is_flag=True, help="Add the target edit under each row (undefined pixels grey).")
@click.option("--settings", "settings_path", default=None, type=click.Path(dir_okay=False),
              help="Read walk, model, seeds, class(es), alphas, truncation and channel from a JSON: a "
                   "render.json or what steer explore's Save writes. Options given here override it.")
@click.option("--frames", is_flag=True,
              help="Also write each walked image alone at the model's resolution: OUT/frames/rowR_alphaI.png.")
@click.option("--out", default="render", show_default=True, type=click.Path(file_okay=False))
@device_option
def render(walk_path, model, alphas, seeds, class_, classes_, truncation, channel, targets, settings_path, frames,
           out, device):
    """Apply a saved walk over a range of alphas: OUT/strip.png, OUT/strip.gif and OUT/render.json
    (the settings, which --settings reads back).

    \b
    Examples:
      steer render --walk walks/dcgan-shapes32/zoom/walk.safetensors --alphas 0.25,0.5,1,2,4
      steer render --settings runs/explore/explore-0001.json --frames
    """
    from .edits import get_edit
    from .render import render_walk, sample_rows, set_truncation, truncation_setting
    from .viz import png_bytes, save_gif, save_strip_grid
    from .walks import load

    settings = read_render_settings(settings_path) if settings_path else {}
    ctx = click.get_current_context()

    def given(name):  # on the command line, which wins over the settings file
        return ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE

    walk_path = walk_path or settings.get("walk")
    if not walk_path:
        raise SteerError("give --walk FILE (or --settings FILE.json naming one)")
    out = writable_dir(out)
    w, meta = load(walk_path)
    edit = get_edit(meta["edit"])
    model_spec = model or settings.get("model") or meta["model"]
    G = open_generator(model_spec, device)
    space = meta.get("space", G.default_space)
    G.check_space(space)
    if truncation is None and not given("truncation") and settings.get("truncation") is not None:
        truncation = settings["truncation"]
        if not isinstance(truncation, (int, float)) or isinstance(truncation, bool) or truncation <= 0:
            raise SteerError(f"--settings: \"truncation\" must be a positive number or null, got {truncation!r}")
    if not given("channel") and "channel" in settings:
        channel = settings["channel"]
        if channel not in ("r", "g", "b", "all"):
            raise SteerError(f"--settings: \"channel\" must be r, g, b or all, got {channel!r}")
    learned_under = meta.get("truncation") if truncation is None else truncation
    if truncation_setting(G) and learned_under is not None:
        set_truncation(G, learned_under)  # the truncation the walk was learned under, unless overridden
    elif truncation is not None:
        raise SteerError(f"--truncation is for StyleGAN and BigGAN models, not {G.name}")
    if alphas:
        alpha_list = parse_numbers(alphas, "--alphas")
    elif settings.get("alphas") is not None:
        alpha_list = settings_alphas(settings["alphas"], edit.sliders)
    else:
        alpha_list = edit.test_alphas(G.resolution)
    edit.check_alphas(alpha_list, G.resolution)
    if not given("seeds") and "seeds" in settings:
        seed_list = settings["seeds"]
        if not (isinstance(seed_list, list) and seed_list
                and all(isinstance(v, int) and not isinstance(v, bool) for v in seed_list)):
            raise SteerError(f"--settings: \"seeds\" must be a list of whole numbers, got {json.dumps(seed_list)}")
    else:
        seed_list = parse_numbers(seeds, "--seeds", int)
    if class_ is None and not classes_:
        class_, classes_ = settings.get("class"), settings.get("classes")
        if isinstance(classes_, list):
            classes_ = ",".join(str(v) for v in classes_)
    row_classes = None if class_ is None and not classes_ else pick_classes(G, class_, len(seed_list), classes_)
    latent, c = sample_rows(G, seed_list, row_classes, space)
    if tuple(latent.shape[1:]) != tuple(w.latent_shape):
        raise SteerError(f"{walk_path} was learned for latents of shape {tuple(w.latent_shape)} "
                         f"({meta['model']}), but {G.name} has {tuple(latent.shape[1:])} in {space}")
    w = w.to(G.device)
    strips = render_walk(G, w, edit, latent, c, alpha_list, space=space, channel=channel, targets=targets)
    upscale = max(1, 64 // G.resolution)
    save_strip_grid(strips, alpha_list, out / "strip.png", upscale=upscale,
                    title=f"{edit.name} walk ({meta['walk']}) on {G.name}")
    save_gif(strips.transpose(0, 1), out / "strip.gif", upscale=upscale)
    record = {"walk": str(walk_path), "model": model_spec, "space": space, "seeds": seed_list, "class": class_,
              "classes": classes_, "channel": channel, "alphas": alpha_list, "truncation": truncation}
    if frames:
        (out / "frames").mkdir(exist_ok=True)
        names = []
        for r in range(len(seed_list)):
            row = strips[2 * r] if targets else strips[r]  # with --targets every other row is a target
            for i, image in enumerate(row):
                name = f"frames/row{r}_alpha{i}.png"
                (out / name).write_bytes(png_bytes(image))
                names.append(name)
        record["frames"] = names
    (out / "render.json").write_text(json.dumps(record, indent=2) + "\n")
    click.echo(f"wrote {out / 'strip.png'} and {out / 'strip.gif'}" + (f" and {out / 'frames'}/" if frames else ""))


@cli.command()
@model_option
@click.option("--walks", "walks_dir", default=None, type=click.Path(file_okay=False),
              help="Folder searched (recursively) for walk files [walks/<model>/].")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (the default serves this machine only).")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on; 0 picks a free one.")
@click.option("--save-dir", default="runs/explore", show_default=True, type=click.Path(file_okay=False),
              help="Where the page's Save writes its PNG and settings JSON.")
@device_option
def explore(model, walks_dir, host, port, save_dir, device):
    """Serve a local page for driving walks by hand: sliders, seed, class, and a Save that
    `steer render --settings` reproduces. Works offline; Ctrl-C stops it.

    \b
    Example:
      steer explore --model dssgan-shapes32
    """
    from .explore import Explorer, default_walks_dir, find_walks, make_server

    G = open_generator(model, device)
    folder = Path(walks_dir) if walks_dir else default_walks_dir(G.name)
    if not folder.is_dir():
        raise SteerError(f"no walks folder {folder}: learn one with 'steer walk --model {model}' "
                         "or point --walks at a folder of walk files")
    walks = find_walks(G, folder)
    if not walks:
        raise SteerError(f"no walks for {G.name} under {folder}: learn one with 'steer walk --model {model}' "
                         "or point --walks at a folder holding walk.safetensors files learned on it")
    spec = str(Path(model).resolve()) if Path(model).exists() else model  # so Save's JSON works from any folder
    server = make_server(Explorer(G, walks, spec, save_dir), host, port)
    click.echo(f"steer explore: {G.name} with {len(walks)} walk(s) ({', '.join(w.id for w in walks)}) "
               f"at {server.url}  (Ctrl-C stops)")
    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        click.echo("stopped")
    finally:
        server.server_close()


def reconstruction_loss_module(allow_l2: bool):
    """The LPIPS module for inversion, or None (L2 only) when its backbone weights are missing
    and the user allowed L2; without that permission a missing backbone is a SteerError."""
    from .losses import MaskedLPIPS, lpips_backbone_path
    path = lpips_backbone_path("alex")
    if path.is_file():
        return MaskedLPIPS()
    if not allow_l2:
        raise SteerError(f"inversion uses LPIPS, which needs the torchvision alex weights: put {path.name} in "
                         f"{path.parent}/ (or set TORCH_HOME), or pass --allow-l2 to invert with L2 only")
    click.echo(f"warning: {path.name} is not in {path.parent}/, so LPIPS is unavailable: inverting with L2 "
               "only (--allow-l2)", err=True)
    return None


def check_walk_for(walk_path, generator, space, latent_shape):
    """Load a walk and make sure it moves latents of this shape in this space."""
    from .edits import get_edit
    from .walks import load
    w, meta = load(walk_path)
    walk_space = meta.get("space", generator.default_space)
    if walk_space != space or tuple(w.latent_shape) != tuple(latent_shape):
        raise SteerError(f"{walk_path} walks {tuple(w.latent_shape)} latents in {walk_space} "
                         f"({meta.get('model')}), but the inversion's pivot is {tuple(latent_shape)} in {space}: "
                         "give a walk learned on the same model and space")
    return w.to(generator.device), meta, get_edit(meta["edit"])


@cli.command()
@model_option
@click.option("--image", required=True, help="The photo: any image Pillow reads (RGB, greyscale, RGBA, 16-bit, ...).")
@click.option("--class", "class_", default=None,
              help="The photo's class, index or name [default: try every class for 30 steps and keep the best; "
                   "give it for models with many classes, e.g. ImageNet's].")
@click.option("--out", default=None, type=click.Path(file_okay=False),
              help="Output folder [default: runs/invert/IMAGE-NAME].")
@click.option("--allow-l2", is_flag=True,
              help="Invert with L2 alone when LPIPS's backbone weights are missing (a warning says so).")
@click.option("--project-steps", default=450, show_default=True, type=click.IntRange(1),
              help="Most projection steps (PTI: 450).")
@click.option("--tune-steps", default=350, show_default=True, type=click.IntRange(0),
              help="Most pivotal-tuning steps (PTI: 350); 0 skips tuning.")
@click.option("--patience", default=40, show_default=True, type=click.IntRange(0),
              help="Stop projecting once the loss has not improved by 0.1 % for this many steps; 0: never.")
@click.option("--target-psnr", default=33.0, show_default=True, type=click.FloatRange(0),
              help="Stop either phase once the reconstruction reaches this PSNR (dB); 0: never.")
@click.option("--full-schedule", is_flag=True,
              help="PTI's fixed schedule: every step of both phases, no early stopping.")
@click.option("--tune-lr", default=3e-4, show_default=True, type=click.FloatRange(0, min_open=True))
@click.option("--locality", default=0.0, show_default=True, type=click.FloatRange(0),
              help="Weight of PTI's locality regulariser (PTI: 0.1): latents between the pivot and random "
                   "ones must render as before tuning; 0: off.")
@click.option("--walk", "walk_path", default=None, type=click.Path(dir_okay=False),
              help="Also measure this walk's error at the pivot after tuning against its error on the base model.")
@click.option("--max-pixels", default=89_478_485, show_default=True, type=click.IntRange(1),
              help="Refuse photos with more pixels than this (Pillow's decompression-bomb limit).")
@click.option("--seed", default=0, show_default=True, type=int)
@device_option
def invert(model, image, class_, out, allow_l2, project_steps, tune_steps, patience, target_psnr, full_schedule,
           tune_lr, locality, walk_path, max_pixels, seed, device):
    """Invert a photo: project it into the model's latent space, then fine-tune the model
    around that pivot (pivotal tuning, PTI).

    Writes OUT/crop.png (the square the model saw), OUT/projected.png and OUT/tuned.png
    (reconstructions after each phase), OUT/reconstruction.png (the three, enlarged),
    OUT/measurements.json (PSNR, LPIPS when available, seconds and steps per phase, walk
    health with --walk), OUT/inversion.json with the pivot latent and the tuned model as a
    small delta against the base weights (latent.safetensors, delta.safetensors).

    \b
    Examples:
      steer invert --model dcgan-shapes32 --image photo.jpg --allow-l2 --out runs/invert/photo
      steer invert --image photo.png --class circle --walk walks/dssgan-shapes32/zoom/walk.safetensors
    """
    import torch

    from .invert import InvertConfig, invert as run_inversion, load_photo, save_inversion, walk_health
    from .viz import save_grid, save_image

    G = open_generator(model, device)
    photo, crop = load_photo(image, G.resolution, max_pixels=max_pixels)
    out = writable_dir(out or Path("runs") / "invert" / Path(image).stem)
    if class_ is not None and not G.num_classes:
        raise SteerError(f"{G.name} is unconditional: drop --class")
    class_index_ = None if class_ is None else class_index(G, class_)
    lpips = reconstruction_loss_module(allow_l2)
    walk = None
    if walk_path:
        latent_shape = tuple(G.to_space(*G.sample(1, seed=0), G.default_space).shape[1:])
        walk, walk_meta, edit = check_walk_for(walk_path, G, G.default_space, latent_shape)
    settings = dict(project_steps=project_steps, tune_steps=tune_steps, tune_lr=tune_lr, locality_weight=locality,
                    seed=seed, patience=patience or None, target_psnr=target_psnr or None)
    config = InvertConfig.official(**{k: v for k, v in settings.items() if k not in ("patience", "target_psnr")}) \
        if full_schedule else InvertConfig(**settings)
    click.echo(f"inverting {image} into {G.name} ({G.default_space}, {'L2 + LPIPS' if lpips else 'L2 only'})")
    result = run_inversion(G, photo.to(G.device), config, class_index=class_index_, lpips=lpips)
    upscale = max(1, 128 // G.resolution)
    save_image(photo, out / "crop.png")
    save_image(result.projected_image, out / "projected.png")
    save_image(result.tuned_image, out / "tuned.png")
    save_grid(torch.cat([photo.to(G.device), result.projected_image, result.tuned_image]), out / "reconstruction.png",
              columns=3, upscale=upscale)
    measurements = {"projection": None, "tuning": None}
    if walk is not None:
        measurements["walk_health"] = dict(walk_health(G, result.generator, walk, edit, result.latent,
                                                       result.classes, result.space, seed=seed),
                                           walk=str(walk_path))
    info = save_inversion(out, result, G, model, crop, "l2+lpips" if lpips else "l2 (LPIPS unavailable)",
                          extra={"command": command_line()})
    measurements.update(info["measurements"], loss=info["loss"], lpips_available=lpips is not None)
    (out / "measurements.json").write_text(json.dumps(measurements, indent=2) + "\n")
    p, t = info["measurements"]["projection"], info["measurements"]["tuning"]
    chosen = "" if info["class"] is None else f"class {info['class']} ({info['class_chosen_by']}); "
    click.echo(f"{chosen}PSNR {p['psnr_db']:.2f} dB after projection ({p['steps']} steps, {p['seconds']:.1f} s), "
               f"{t['psnr_db']:.2f} dB after tuning ({t['steps']} steps, {t['seconds']:.1f} s)")
    if walk is not None:
        h = measurements["walk_health"]
        click.echo(f"walk error: {h['tuned_at_pivot']:.4f} at the pivot on the tuned model, "
                   f"{h['base_at_samples']:.4f} on the base model at {h['samples']} samples")
    click.echo(f"wrote {out / 'inversion.json'}, {out / 'reconstruction.png'} and {out / 'measurements.json'}")


@cli.command()
@click.option("--inversion", "inversion_dir", required=True, type=click.Path(file_okay=False),
              help="The --out folder of steer invert.")
@click.option("--walk", "walk_path", required=True, type=click.Path(dir_okay=False), help="A walk.safetensors file.")
@click.option("--alphas", default=None, help="Comma-separated alphas (default: a few across the training range).")
@click.option("--model", default=None, help="The base model (default: the one the inversion names).")
@click.option("--out", default=None, type=click.Path(file_okay=False),
              help="Output folder [default: INVERSION/edit-EDIT].")
@device_option
def edit(inversion_dir, walk_path, alphas, model, out, device):
    """Edit an inverted photo: apply a walk to its pivot latent in the tuned model.

    Writes OUT/strip.png (one column per alpha), OUT/strip.gif and OUT/edit.json (the alphas,
    the walk's error at the pivot after tuning against the base model's, and for shapes models
    the measured attribute per alpha).

    \b
    Example:
      steer edit --inversion runs/invert/photo --walk walks/dcgan-shapes32/zoom/walk.safetensors --alphas 0.5,1,2
    """
    from .attributes import EDIT_ESTIMATORS, get_estimator
    from .invert import load_inversion, read_inversion, walk_health
    from .render import render_walk
    from .viz import save_gif, save_strip_grid

    info = read_inversion(inversion_dir)
    base = open_generator(model or info["model"], device)
    tuned, latent, classes, info = load_inversion(inversion_dir, base)
    walk, meta, edit_ = check_walk_for(walk_path, base, info["space"], latent.shape[1:])
    alpha_list = parse_numbers(alphas, "--alphas") if alphas else edit_.show_alphas(base.resolution)
    edit_.check_alphas(alpha_list, base.resolution)
    out = writable_dir(out or Path(inversion_dir) / f"edit-{edit_.name}")
    strips = render_walk(tuned, walk, edit_, latent, classes, alpha_list, space=info["space"])
    upscale = max(1, 64 // base.resolution)
    save_strip_grid(strips, alpha_list, out / "strip.png", upscale=upscale,
                    title=f"{edit_.name} walk on the inverted {Path(info['crop']['source']).name}")
    save_gif(strips.transpose(0, 1), out / "strip.gif", upscale=upscale)
    result = {"inversion": str(inversion_dir), "walk": str(walk_path), "edit": edit_.name, "alphas": alpha_list,
              "walk_health": walk_health(base, tuned, walk, edit_, latent, classes, info["space"])}
    if training_shapes(model or info["model"]) and edit_.name in EDIT_ESTIMATORS:
        estimator = get_estimator(None, edit_.name)
        values = estimator(strips[0]).tolist()
        result["attribute"] = {"name": estimator.name, "units": estimator.units,
                               "values": [None if v != v else v for v in values]}
    (out / "edit.json").write_text(json.dumps(result, indent=2) + "\n")
    click.echo(f"wrote {out / 'strip.png'}, {out / 'strip.gif'} and {out / 'edit.json'}")


def training_shapes(model):
    """The ShapesConfig a model folder says it was trained on (its class names are the shapes
    classes; `shapes_config` in config.json when the spreads were not the default), else None."""
    from .data.shapes import SHAPE_CLASSES, ShapesConfig
    from .generators.registry import read_config, resolve_model_folder
    try:
        config = read_config(resolve_model_folder(model))
    except (SteerError, OSError, ValueError):
        return None
    if config.get("class_names") != list(SHAPE_CLASSES):
        return None
    return ShapesConfig.from_dict(config["shapes_config"]) if "shapes_config" in config else ShapesConfig()


@cli.command()
@click.option("--walk", "walk_path", required=True, type=click.Path(dir_okay=False), help="A walk.safetensors file.")
@click.option("--model", default=None, help="Generator (default: the model the walk was learned on).")
@click.option("--estimator", default=None,
              help="area, centre_x, centre_y, colour, colour_r/g/b, luminance, object_colour, or detector "
                   "(detector_area, detector_centre_x/y) [default: what the walk's edit moves].")
@click.option("--alphas", default=None,
              help="Comma-separated alphas [default: the edit's test range: zoom 1/16..16, shifts +-S px, colour +-1].")
@click.option("--samples", default=200, show_default=True, type=click.IntRange(2), help="Latents walked per alpha.")
@click.option("--data", default=None,
              help="Training data to compare with: 'shapes', a folder of images, or 'none' "
                   "[default: shapes for models trained on it, else none].")
@click.option("--data-samples", default=1000, show_default=True, type=click.IntRange(2),
              help="Real shapes drawn for the data distribution.")
@click.option("--tolerance", default=None, type=click.FloatRange(0, min_open=True),
              help="Reach rule: how far the walked median may sit from the target's [area 0.25 relative; "
                   "centre 0.05 of the width; colour 0.1 absolute].")
@click.option("--features", default=None, type=click.Choice(["shapes", "pixels", "none"]),
              help="Feature network for realism (Frechet distance to the data) [shapes data: shapes; else none].")
@click.option("--class", "class_", default=None, type=int, help="Class for every sample (default: cycle).")
@click.option("--coco-category", default=None, help="Detector: the COCO category to find [default: each "
                                                    "sample's ImageNet class through steer's COCO table].")
@click.option("--detector", default="fasterrcnn_mobilenet_v3_large_fpn", show_default=True,
              type=click.Choice(["fasterrcnn_mobilenet_v3_large_fpn", "fasterrcnn_mobilenet_v3_large_320_fpn"]))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--batch", default=50, show_default=True, type=click.IntRange(1))
@click.option("--out", default=None, type=click.Path(file_okay=False),
              help="Output folder [default: runs/quantify/MODEL-EDIT].")
@device_option
def quantify(walk_path, model, estimator, alphas, samples, data, data_samples, tolerance, features, class_,
             coco_category, detector, seed, batch, out, device):
    """Measure how far a walk moves an attribute: sweep alpha past the training range.

    For each alpha, the attribute is measured on the walked samples, on the target edits
    of the same samples and on the training data. Writes OUT/quantify.json (per-alpha
    medians and spreads, Wasserstein and Frechet distances to the data, the reach and the
    rule behind it, every value), OUT/distributions.png (per-alpha violins over the data's
    spread) and OUT/achieved_vs_target.png. The reach on each side is the furthest alpha,
    contiguous from the identity, where the walked median stays within --tolerance of the
    target median.

    \b
    Example:
      steer quantify --walk walks/dcgan-shapes32/zoom/walk.safetensors
      steer quantify --walk shiftx.safetensors --alphas -32,-16,-8,0,8,16,32 --samples 500
    """
    import torch
    from tqdm.auto import tqdm

    from .attributes import get_estimator
    from .edits import get_edit
    from .steerability import sweep
    from .viz import save_achieved_vs_target, save_attribute_distributions
    from .walks import load

    w, meta = load(walk_path)
    edit = get_edit(meta["edit"])
    model = model or meta.get("model")
    if not model:
        raise SteerError(f"{walk_path} does not name its model: give --model")
    G = open_generator(model, device)
    space = meta.get("space", G.default_space)
    G.check_space(space)
    if hasattr(G, "truncation_psi") and meta.get("truncation") is not None:
        G.truncation_psi = float(meta["truncation"])
    alpha_list = parse_numbers(alphas, "--alphas") if alphas else edit.test_alphas(G.resolution)
    edit.check_alphas(alpha_list, G.resolution)
    est = get_estimator(estimator, edit.name, category=coco_category, arch=detector, device=G.device) \
        if (estimator or "").startswith("detector") else get_estimator(estimator, edit.name)
    shapes_config = training_shapes(model)
    data = data or ("shapes" if shapes_config else "none")
    classes = pick_classes(G, class_, samples)
    if est.name.startswith("detector_") and coco_category is None:
        from .attributes import coco_to_imagenet
        if G.num_classes != 1000:
            raise SteerError(f"the detector finds ImageNet classes through their COCO category; {G.name} has "
                             f"{G.num_classes} classes: give --coco-category")
        if class_ is None:  # as the paper's code: only classes a COCO detector can find
            covered = torch.tensor(sorted(i for v in coco_to_imagenet().values() for i in v))
            classes = covered[torch.arange(samples) % len(covered)]
    z, c = G.sample(1, seed=0, classes=None if classes is None else classes[:1])
    if tuple(G.to_space(z, c, space).shape[1:]) != tuple(w.latent_shape):
        raise SteerError(f"{walk_path} was learned for latents of shape {tuple(w.latent_shape)} "
                         f"({meta.get('model')}), but {G.name} has {tuple(G.to_space(z, c, space).shape[1:])} in {space}")
    out = writable_dir(out or Path("runs") / "quantify" / f"{G.name}-{edit.name}")
    real = real_classes = None
    if data == "shapes":
        from .data.shapes import sample_shapes
        real, attrs = sample_shapes(data_samples, seed=seed + 1, resolution=G.resolution, config=shapes_config)
        real_classes = attrs["class"]
    elif data != "none":
        from .data.folder import load_folder
        real, real_classes, _ = load_folder(data, G.resolution)
    features = features or ("shapes" if data == "shapes" else "none")
    feature_fn = None
    if features != "none" and real is not None:
        from .metrics import feature_network
        feature_fn = feature_network(features)
    bar = tqdm(total=1, desc=f"quantify {edit.name}", dynamic_ncols=True)

    def progress(done, total):
        bar.total = total
        bar.update(done - bar.n)

    with torch.no_grad():
        result = sweep(G, w.to(G.device).eval(), edit, est, alphas=alpha_list, samples=samples, seed=seed,
                       space=space, classes=classes, data=real, data_classes=real_classes, features=feature_fn,
                       tolerance=tolerance, batch=batch, progress=progress)
    bar.close()
    result = {"model": G.name, "walk": str(walk_path), "data": result.pop("data", None),
              "data_source": data, **result, "command": command_line()}
    (out / "quantify.json").write_text(json.dumps(result, indent=1) + "\n")
    save_attribute_distributions(result, out / "distributions.png")
    save_achieved_vs_target(result, out / "achieved_vs_target.png")

    def number(v):
        return f"{v:9.4f}" if v is not None else f"{'-':>9}"

    click.echo(f"{G.name} {edit.name} walk, estimator {est.name} ({est.units}), {samples} samples per alpha, "
               f"data: {data}")
    click.echo(f"{'alpha':>8} {'walked':>9} {'[10%':>9} {'90%]':>9} {'target':>9} {'W->data':>9} {'FD->data':>9}")
    for row in result["per_alpha"]:
        click.echo(f"{row['alpha']:8.4g} {number(row['walked']['median'])} {number(row['walked']['q10'])} "
                   f"{number(row['walked']['q90'])} {number(row['target']['median'])} "
                   f"{number(row.get('wasserstein_walked_to_data'))} {number(row.get('frechet_walked_to_data'))}")
    d = result["data"]
    if d and d["median"] is not None:
        click.echo(f"data ({d['samples']} samples): median {d['median']:.4f}, 10-90 % {d['q10']:.4f} .. {d['q90']:.4f}")
    elif d:
        click.echo(f"data ({d['samples']} samples): none measurable")
    missing = sum(row[k]["missing"] for row in result["per_alpha"] for k in ("walked", "target"))
    if missing:
        click.echo(f"{missing} of {2 * samples * len(alpha_list)} walked and target images could not be measured "
                   f"(no object or box found); medians are over the rest (counts in the JSON)")
    r = result["reach"]
    click.echo(f"reach: {r['low']:.4g} .. {r['high']:.4g}"
               + "".join(f" ({side} end of the grid: may reach further)" for side in ("low", "high")
                         if r[f"{side}_at_grid_end"])
               + "".join(f" ({side}: the nearest alpha already misses the target)" for side in ("low", "high")
                         if r[side] == edit.identity)
               + f"  [rule: {result['tolerance']['rule']}]")
    click.echo(f"JSON: {out / 'quantify.json'}  plots: {out / 'distributions.png'}, {out / 'achieved_vs_target.png'}")


@cli.command()
@click.option("--model", default=None, help="A DSS-GAN: bundled name, folder or official checkpoint file.")
@click.option("--samples", default=64, show_default=True, type=click.IntRange(4), help="Latents per measurement.")
@click.option("--sigma", default=1.0, show_default=True, type=click.FloatRange(0, min_open=True),
              help="Norm of each perturbation of a chunk of z.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--out", default=None, type=click.Path(file_okay=False), help="Folder [default: runs/probe/MODEL].")
@device_option
def probe(model, samples, sigma, seed, out, device):
    """Probe a DSS-GAN's directional latent subvectors.

    Perturbs each scan direction's chunk of z (and, as controls, z_base and a direction
    spread over all chunks), measures how the change's spectral energy splits across
    horizontal, vertical, "/" and "\\" lines, per direction and per Mamba stage, with
    bootstrap intervals and permutation tests; records the routing weights per block and
    class; and overrides the class of each subset of directions. Writes OUT/probe.json and
    OUT/orientations.png, examples.png, routing.png and class_override.png.

    \b
    Example:
      steer probe --model dssgan-shapes32 --samples 64
    """
    from .probe import ORIENTATION_INDEX, perturbation_examples, run_probe
    from .viz import save_probe_figures

    G = open_generator(model, device)
    if not hasattr(G, "latent_layout") or not hasattr(G, "stage_sizes"):
        raise SteerError(f"{G.name} is not a DSS-GAN: the probe needs per-direction latent chunks")
    classifier = None
    if training_shapes(model) and G.resolution == 32:
        from .classifier import load_classifier
        classifier = load_classifier(device=G.device).eval()
    out = writable_dir(out or Path("runs") / "probe" / G.name)
    click.echo(f"probing {G.name}: {samples} samples, sigma {sigma:g}")
    result = run_probe(G, samples=samples, sigma=sigma, seed=seed, classifier=classifier)
    result["command"] = command_line()
    (out / "probe.json").write_text(json.dumps(result, indent=1) + "\n")
    z, classes = G.sample(4, seed=seed + 7)
    examples, labels = perturbation_examples(G, z, classes, sigma, seed)
    paths = save_probe_figures(result, examples, labels, out)

    click.echo(f"{'direction':>12} {'lines':>10} {'share':>6}   vs z_base: score [95% CI] p"
               f"   vs all directions: score [95% CI] p")
    for name, s in result["perturbation"]["scores"].items():
        share = result["perturbation"]["mean_shares"][name][ORIENTATION_INDEX[s["orientation"]]]
        cells = [f"{c['score']:+.3f} [{c['ci95'][0]:+.3f}, {c['ci95'][1]:+.3f}] {c['p_permutation']:.3g}"
                 for c in (s["vs_z_base"], s["vs_all_directions"])]
        click.echo(f"{name:>12} {s['orientation']:>10} {share:6.3f}   {cells[0]}   {cells[1]}")
    for block, r in result.get("routing", {}).items():
        weights = ", ".join(f"{w:.3f}" for w in r["mean_weights"])
        entropy = f"{r['entropy']:.3f}" if r["entropy"] is not None else "- (one direction)"
        click.echo(f"routing {block}: [{weights}]  entropy {entropy}  "
                   f"max deviation from uniform {r['max_deviation_from_uniform']:.3f}")
    for subset, r in result.get("class_override", {}).items():
        if "pixel_movement" in r:
            extra = f"  read as new class {r['read_as_new_class']:.2f}" if "read_as_new_class" in r else ""
            click.echo(f"override {subset}: pixel movement {r['pixel_movement']:.3f}{extra}")
    click.echo(f"JSON: {out / 'probe.json'}  figures: {', '.join(str(p) for p in paths)}")


@cli.group()
def bench():
    """Benchmarks that print ratios measured side by side in one run."""


@bench.command("walk")
@model_option
@click.option("--edit", "edit_name", default="zoom", show_default=True)
@click.option("--batch", default=16, show_default=True, type=click.IntRange(1))
@click.option("--steps", default=30, show_default=True, type=click.IntRange(1), help="Steps per timing round.")
@click.option("--rounds", default=5, show_default=True, type=click.IntRange(1))
@click.option("--json", "json_out", default=None, type=click.Path(dir_okay=False), help="Also write the figures here.")
@device_option
def bench_walk_command(model, edit_name, batch, steps, rounds, json_out, device):
    """Time a walk step against the work it cannot avoid and against a plain reference loop,
    and measure the peak memory of `steer walk`.

    \b
    Example:
      steer bench walk --batch 16
    """
    from .bench import bench_walk
    from .edits import get_edit
    get_edit(edit_name)
    G = open_generator(model, device)
    r = bench_walk(G, edit_name, batch=batch, steps=steps, rounds=rounds, model_name=model)
    click.echo(f"model {r['model']}, edit {r['edit']}, batch {r['batch']}, {r['device']}, {r['threads']} threads")
    click.echo(f"(a) walk step / unavoidable work: {r['step_ms']:.2f} ms / {r['floor_ms']:.2f} ms = "
               f"{r['step_over_floor']:.3f}  (target <= 1.15)")
    click.echo(f"(b) reference loop / our step:    {r['reference_step_ms']:.2f} ms / {r['step_ms']:.2f} ms = "
               f"{r['speedup_over_reference']:.2f}x speed-up")
    click.echo(f"(c) peak memory of steer walk at batch {batch}: {r['peak_rss_gb_steer_walk']:.2f} GB  (target < 1.5 GB)")
    if json_out:
        Path(json_out).write_text(json.dumps(r, indent=2) + "\n")


def main():
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("interrupted; the last checkpoint is kept, rerun the same command to resume", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        click.echo("interrupted; the last checkpoint is kept, rerun the same command to resume", err=True)
        sys.exit(130)
    except click.exceptions.NoArgsIsHelpError as e:
        click.echo(e.ctx.get_help() if e.ctx else str(e))
        sys.exit(0)
    except click.exceptions.UsageError as e:
        where = e.ctx.command_path if e.ctx else "steer"
        click.echo(f"error: {e.format_message()} (see '{where} --help')", err=True)
        sys.exit(2)
    except click.exceptions.ClickException as e:
        click.echo(f"error: {e.format_message()}", err=True)
        sys.exit(2)
    except SteerError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()

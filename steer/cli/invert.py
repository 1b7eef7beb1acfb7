"""`steer invert` and `steer edit`."""
import json
from pathlib import Path

import click

from ..errors import SteerError
from ..defaults import DEFAULT_MODEL
from .common import (
    device_option, seed_option, walk_file_option, writable_dir, command_line, parse_numbers,
    open_generator, walk_for_pivot, reconstruction_loss_module,
)
from .common import MAX_COUNT, NON_NEGATIVE, POSITIVE, whole


@click.command("invert")
@click.option("--model", default=None,
              help="Bundled model name, model folder or official checkpoint file [the model --walk was learned "
                   "on; without --walk, the default model].")
@click.option("--image", required=True, help="The photo: any image Pillow reads (RGB, greyscale, RGBA, 16-bit, ...).")
@click.option("--class", "class_", default=None,
              help="The photo's class, index or name [default: try every class for 30 steps and keep the best; "
                   "give it for models with many classes, e.g. ImageNet's].")
@click.option("--out", default=None, type=click.Path(file_okay=False),
              help="Output folder [default: runs/invert/IMAGE-NAME].")
@click.option("--allow-l2", is_flag=True,
              help="Invert with L2 alone when LPIPS's backbone weights are missing (a warning says so).")
@click.option("--project-steps", default=450, show_default=True, type=whole(1, MAX_COUNT),
              help="Most projection steps (PTI: 450).")
@click.option("--tune-steps", default=350, show_default=True, type=whole(0, MAX_COUNT),
              help="Most pivotal-tuning steps (PTI: 350); 0 skips tuning.")
@click.option("--patience", default=40, show_default=True, type=whole(0, MAX_COUNT),
              help="Stop projecting once the loss has not improved by 0.1 % for this many steps; 0: never.")
@click.option("--target-psnr", default=33.0, show_default=True, type=NON_NEGATIVE,
              help="Stop either phase once the reconstruction reaches this PSNR (dB); 0: never.")
@click.option("--full-schedule", is_flag=True,
              help="PTI's fixed schedule: every step of both phases, no early stopping.")
@click.option("--tune-lr", default=3e-4, show_default=True, type=POSITIVE)
@click.option("--locality", default=0.0, show_default=True, type=NON_NEGATIVE,
              help="Weight of PTI's locality regulariser (PTI: 0.1): latents between the pivot and random "
                   "ones must render as before tuning; 0: off.")
@click.option("--walk", "walk_path", default=None, type=click.Path(dir_okay=False),
              help="Also measure this walk's error at the pivot after tuning against its error on the base model.")
@click.option("--max-pixels", default=89_478_485, show_default=True, type=whole(1, 2**31),
              help="Refuse photos with more pixels than this (Pillow's decompression-bomb limit).")
@seed_option
@device_option
def invert_command(model, image, class_, out, allow_l2, project_steps, tune_steps, patience, target_psnr, full_schedule,
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

    from ..generators.base import class_index
    from ..invert import InvertConfig, invert as run_inversion, load_photo, save_inversion, walk_health
    from ..viz import save_grid, save_image

    if model is None and walk_path:
        from ..steering import model_for
        from ..walks import read_meta
        G = model_for(read_meta(walk_path), None, device, what=str(walk_path))
    else:
        G = open_generator(model or DEFAULT_MODEL, device)
    photo, crop = load_photo(image, G.resolution, max_pixels=max_pixels)
    out = writable_dir(out or Path("runs") / "invert" / Path(image).stem)
    if class_ is not None and not G.num_classes:
        raise SteerError(f"{G.name} is unconditional: drop --class")
    class_index_ = None if class_ is None else class_index(G, class_)
    lpips = reconstruction_loss_module(allow_l2)
    steering = walk_for_pivot(walk_path, G, G.default_space)[0] if walk_path else None
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
    if steering is not None:
        measurements["walk_health"] = dict(walk_health(G, result.generator, steering.walk, steering.edit,
                                                       result.latent, result.classes, result.space, seed=seed),
                                           walk=str(walk_path))
    info = save_inversion(out, result, G, crop, "l2+lpips" if lpips else "l2 (LPIPS unavailable)",
                          extra={"command": command_line()})
    measurements.update(info["measurements"], loss=info["loss"], lpips_available=lpips is not None)
    (out / "measurements.json").write_text(json.dumps(measurements, indent=2) + "\n")
    p, t = info["measurements"]["projection"], info["measurements"]["tuning"]
    chosen = "" if info["class"] is None else f"class {info['class']} ({info['class_chosen_by']}); "
    click.echo(f"{chosen}PSNR {p['psnr_db']:.2f} dB after projection ({p['steps']} steps, {p['seconds']:.1f} s), "
               f"{t['psnr_db']:.2f} dB after tuning ({t['steps']} steps, {t['seconds']:.1f} s)")
    if steering is not None:
        h = measurements["walk_health"]
        click.echo(f"walk error: {h['tuned_at_pivot']:.4f} at the pivot on the tuned model, "
                   f"{h['base_at_samples']:.4f} on the base model at {h['samples']} samples")
    click.echo(f"wrote {out / 'inversion.json'}, {out / 'reconstruction.png'} and {out / 'measurements.json'}")


@click.command("edit")
@click.option("--inversion", "inversion_dir", required=True, type=click.Path(file_okay=False),
              help="The --out folder of steer invert.")
@walk_file_option
@click.option("--alphas", default=None, help="Comma-separated alphas (default: a few across the training range).")
@click.option("--model", default=None, help="The base model (default: the one the inversion names).")
@click.option("--out", default=None, type=click.Path(file_okay=False),
              help="Output folder [default: INVERSION/edit-EDIT].")
@device_option
def edit_command(inversion_dir, walk_path, alphas, model, out, device):
    """Edit an inverted photo: apply a walk to its pivot latent in the tuned model.

    Writes OUT/strip.png (one column per alpha), OUT/strip.gif and OUT/edit.json (the alphas,
    the walk's error at the pivot after tuning against the base model's, and for shapes models
    the measured attribute per alpha).

    \b
    Example:
      steer edit --inversion runs/invert/photo --walk walks/dcgan-shapes32/zoom/walk.safetensors --alphas 0.5,1,2
    """
    from ..attributes import EDIT_ESTIMATORS, get_estimator
    from ..data import training_data
    from ..invert import load_inversion, read_inversion, walk_health
    from ..steering import Steering, model_for
    from ..viz import save_gif, save_strip_grid

    info = read_inversion(inversion_dir)
    base = model_for(info, model, device, what=f"the inversion in {inversion_dir}")
    tuned, latent, classes, info = load_inversion(inversion_dir, base)
    steering = walk_for_pivot(walk_path, base, info["space"])[0]
    walk, edit_ = steering.walk, steering.edit
    alpha_list = parse_numbers(alphas, "--alphas") if alphas else edit_.show_alphas(base.resolution)
    edit_.check_alphas(alpha_list, base.resolution)
    out = writable_dir(out or Path(inversion_dir) / f"edit-{edit_.name}")
    strips = Steering(tuned, walk, edit_, info["space"], truncation=steering.truncation).strips(latent, classes,
                                                                                               alpha_list)
    upscale = max(1, 64 // base.resolution)
    save_strip_grid(strips, alpha_list, out / "strip.png", upscale=upscale,
                    title=f"{edit_.name} walk on the inverted {Path(info['crop']['source']).name}")
    save_gif(strips.transpose(0, 1), out / "strip.gif", upscale=upscale)
    result = {"inversion": str(inversion_dir), "walk": str(walk_path), "edit": edit_.name, "alphas": alpha_list,
              "walk_health": walk_health(base, tuned, walk, edit_, latent, classes, info["space"])}
    if training_data(base) == "shapes" and edit_.name in EDIT_ESTIMATORS:
        estimator = get_estimator(None, edit_.name)
        values = estimator(strips[0]).tolist()
        result["attribute"] = {"name": estimator.name, "units": estimator.units,
                               "values": [None if v != v else v for v in values]}
    else:
        # steer's attribute estimators read its own data (one object on a plain background);
        # on a photo in another model's domain their numbers would mean nothing
        result["attribute"] = {"applies": False,
                               "why": f"no attribute estimator applies to {base.name}'s data for the "
                                      f"{edit_.name} edit (they are made for steer's shapes data)"}
    (out / "edit.json").write_text(json.dumps(result, indent=2) + "\n")
    click.echo(f"wrote {out / 'strip.png'}, {out / 'strip.gif'} and {out / 'edit.json'}")

"""`steer directions import` and `steer directions export`: direction files of InterFaceGAN,
GANSpace and SeFa as steer walks, and back (steer.peer_directions does the work)."""
import math
from pathlib import Path

import click

from ..errors import SteerError
from .common import command_line, device_option, model_option, open_generator, parse_layers, writable_dir
from .common import whole

FORMATS = ("interfacegan", "ganspace", "sefa")
format_option = click.option("--format", "fmt", required=True, type=click.Choice(FORMATS),
                             help="interfacegan: a boundary .npy [1, d]; ganspace: the components .npz; "
                                  "sefa: the eigenvectors .npy [K, w_dim].")


@click.group("directions")
def directions_group():
    """Import direction files of InterFaceGAN, GANSpace and SeFa as walks, or export walks to them."""


@directions_group.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@format_option
@model_option
@click.option("--space", default=None, help="Latent space the directions live in (default: the model's).")
@click.option("--index", default=0, show_default=True, type=whole(0, 10**6),
              help="GANSpace/SeFa: which component.")
@click.option("--layers", default=None, help="w+ only: move layers START:STOP (0-based, STOP excluded), e.g. SeFa's.")
@click.option("--no-stdev", is_flag=True, help="GANSpace: keep the unit component, not scaled by its lat_stdev.")
@click.option("--alphas", default="-2,-1,0,1,2", show_default=True,
              help="Comma-separated alphas for the strip (multiples of the direction, within +-2).")
@click.option("--out", default=None, type=click.Path(file_okay=False),
              help="Output folder [default: runs/directions/MODEL-FORMAT-FILE].")
@device_option
def import_command(file, fmt, model, space, index, layers, no_stdev, alphas, out, device):
    """Turn a peer tool's direction file into a one-slider linear walk on a model.

    Writes OUT/walk.safetensors (the model's source and the peer file in its metadata;
    render, explore, quantify and edit take it like any walk) and OUT/strip.png (rows are
    samples, columns alphas). The file is read with numpy, pickles refused, and its shape
    checked against the model's latent in the space.

    \b
    Examples:
      steer directions import smile_w.npy --format interfacegan --model ffhq.pkl --space w
      steer directions import sefa.npy --format sefa --model ffhq.pkl --space w+ --layers 0:4 --index 1
    """
    from ..peer_directions import import_direction
    from ..steering import Steering
    from ..viz import save_strip_grid
    from .common import parse_numbers

    G = open_generator(model, device)
    alpha_list = parse_numbers(alphas, "--alphas", low=-2.0, high=2.0)
    walk, meta = import_direction(file, G, fmt, space=space, index=index, layers=parse_layers(layers),
                                  scale_by_stdev=not no_stdev)
    out = writable_dir(out or Path("runs") / "directions" / f"{G.name}-{fmt}-{Path(file).stem}")
    steering = Steering(G, walk.to(G.device), "brightness", meta["space"])
    steering.save(out / "walk.safetensors", method="imported", peer=meta["peer"], command=command_line())
    latent, classes = steering.sample(4, seed=12345)
    strips = steering.strips(latent, classes, alpha_list)
    save_strip_grid(strips, alpha_list, out / "strip.png", upscale=max(1, 64 // G.resolution),
                    title=f"{fmt} direction {Path(file).name} on {G.name} ({meta['space']}): columns are alpha")
    click.echo(f"walk: {out / 'walk.safetensors'}  strip: {out / 'strip.png'}  ({fmt} {Path(file).name}, "
               f"space {meta['space']}" + (f", layers {layers}" if layers else "") + ")")


@directions_group.command("export")
@click.option("--walk", "walk_path", required=True, type=click.Path(dir_okay=False), help="A linear walk.safetensors.")
@format_option
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="File to write (.npy for interfacegan and sefa, .npz for ganspace).")
@click.option("--raw", is_flag=True, help="InterFaceGAN: keep the walk's length instead of a unit boundary.")
def export_command(walk_path, fmt, out, raw):
    """Write a linear walk as a peer tool's direction file, over the whole latent of its
    space (zeros outside the layers it moves).

    \b
    Example:
      steer directions export --walk runs/walks/m-zoom-linear/walk.safetensors --format interfacegan --out zoom.npy
    """
    from ..peer_directions import export_direction
    from ..walks import load

    suffix = ".npz" if fmt == "ganspace" else ".npy"
    if Path(out).suffix != suffix:
        # numpy would append its own suffix and write a file other than the one asked for
        raise SteerError(f"--out for {fmt} must end in {suffix}, got '{out}'")
    writable_dir(Path(out).parent)
    walk, meta = load(walk_path)
    path = export_direction(walk, out, fmt, normalise=not raw)
    size = math.prod(walk.latent_shape)
    click.echo(f"wrote {path} ({fmt}, {walk.directions.shape[0]} direction(s) of {size} numbers in "
               f"{meta.get('space', '?')})")

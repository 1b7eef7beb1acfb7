"""What the commands share: options declared once and the helpers behind them.

Torch-free at import; every heavy import is inside the function that needs it.
"""
import os
import shlex
import sys
from pathlib import Path

import click

from ..defaults import DEFAULT_MODEL
from ..errors import SteerError

model_option = click.option("--model", default=DEFAULT_MODEL, show_default=True,
                            help="Bundled model name, a model folder, or an official checkpoint file "
                                 "(e.g. DSS-GAN's G_full_ema_epoch_XXX.pt, read without running it).")
device_option = click.option("--device", default=None, help="cpu or cuda (default: cuda when present).")
seed_option = click.option("--seed", default=0, show_default=True, type=int)
run_folder_option = click.option("--out", required=True, type=click.Path(file_okay=False),
                                 help="Run folder (resumed when it holds a checkpoint).")
walk_type_option = click.option("--walk", "walk_type", default="linear", show_default=True,
                                type=click.Choice(["linear", "nonlinear"]))
walk_file_option = click.option("--walk", "walk_path", required=True, type=click.Path(dir_okay=False),
                                help="A walk.safetensors file.")
walk_model_option = click.option("--model", default=None,
                                 help="Generator (default: the model the walk was learned on).")


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


def parse_numbers(text: str, what: str, cast=float) -> list:
    try:
        values = [cast(v) for v in text.replace(" ", "").split(",") if v != ""]
    except ValueError:
        raise SteerError(f"{what} must be a comma-separated list of numbers, got '{text}'") from None
    if not values:
        raise SteerError(f"{what} is empty")
    return values


def parse_layers(text):
    """'START:STOP' -> (START, STOP), or None."""
    if not text:
        return None
    try:
        start, stop = (int(v) for v in text.split(":"))
    except ValueError:
        raise SteerError(f"--layers must be START:STOP (e.g. 0:8), got '{text}'") from None
    return start, stop


def open_generator(model, device):
    from ..generators import load_generator
    return load_generator(model, device=device)


def real_images(generator, data: str, n: int, seed: int, mnist_split: str = "train"):
    """(images, classes) of real data to compare a generator with: 'shapes' (drawn with the
    spreads the model was trained on), 'mnist' (a split of the digits) or an image folder."""
    if data == "shapes":
        from ..data import training_shapes
        from ..data.shapes import sample_shapes
        images, attrs = sample_shapes(n, seed=seed, resolution=generator.resolution, config=training_shapes(generator))
        return images, attrs["class"]
    if data == "mnist":
        from ..data.mnist import load_mnist
        images, classes, _ = load_mnist(mnist_split, generator.resolution)
        return images, classes
    from ..data.folder import load_folder
    images, classes, _ = load_folder(data, generator.resolution)
    return images, classes


def walk_for_pivot(walk_path, generator, space):
    """The walk at `walk_path` on `generator`, checked to move latents of that space."""
    from ..steering import Steering
    steering, meta = Steering.load(walk_path, model=generator)
    if steering.space != space:
        raise SteerError(f"{walk_path} walks in {steering.space}, but the inversion's pivot is in {space}: "
                         "give a walk learned on the same model and space")
    return steering, meta


def reconstruction_loss_module(allow_l2: bool):
    """The LPIPS module for inversion, or None (L2 only) when its backbone weights are missing
    and the user allowed L2; without that permission a missing backbone is a SteerError."""
    from ..losses import MaskedLPIPS, lpips_backbone_path
    path = lpips_backbone_path("alex")
    if path.is_file():
        return MaskedLPIPS()
    if not allow_l2:
        raise SteerError(f"inversion uses LPIPS, which needs the torchvision alex weights: put {path.name} in "
                         f"{path.parent}/ (or set TORCH_HOME), or pass --allow-l2 to invert with L2 only")
    click.echo(f"warning: {path.name} is not in {path.parent}/, so LPIPS is unavailable: inverting with L2 "
               "only (--allow-l2)", err=True)
    return None


def save_model_and_samples(G, out: Path, card: str, extra_config: dict) -> None:
    """OUT/model/ in bundled format and OUT/samples.png (64 samples, cycling the classes)."""
    import torch

    from ..generators.registry import save_generator
    from ..viz import save_grid

    save_generator(G, out / "model", card, extra_config)
    z, c = G.sample(64, seed=0, classes=torch.arange(64) % G.num_classes if G.num_classes else None)
    with torch.no_grad():
        save_grid(G.synthesize(z, c), out / "samples.png", columns=8, upscale=max(1, 64 // G.resolution))

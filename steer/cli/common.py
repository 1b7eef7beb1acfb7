"""What the commands share: options declared once and the helpers behind them.

Torch-free at import; every heavy import is inside the function that needs it.
"""
import math
import os
import re
import shlex
import sys
from pathlib import Path

import click

from ..defaults import DEFAULT_MODEL
from ..errors import SteerError

MAX_SEED = 2**32 - 1  # as the explore server; seeds add offsets, so far below 2**63
MAX_STEPS = 10**9  # more is a typo, not a plan: a billion steps is years of training
MAX_COUNT = 10**9  # batches, samples: beyond this a typo; below it check_batch_memory judges
_INT = re.compile(r"[+-]?[0-9]+")  # ASCII digits only: int() would also take '²'-like digits and '1_0'


class Number(click.ParamType):
    """A finite number in a range, for every numeric option: NaN and inf are refused (they pass
    click's FloatRange and then hang or poison a run), and so are values past `high`."""

    def __init__(self, low=None, high=None, low_open=False, high_open=False, whole=False):
        self.low, self.high, self.low_open, self.high_open, self.whole = low, high, low_open, high_open, whole
        self.name = "integer" if whole else "number"

    def describe(self) -> str:
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '>='} {self.low:g}" if not self.whole else f">= {self.low}")
        if self.high is not None:
            parts.append(f"{'<' if self.high_open else '<='} {self.high:g}" if not self.whole else f"<= {self.high}")
        return (("a whole number" if self.whole else "a finite number") + (" " + " and ".join(parts) if parts else ""))

    def convert(self, value, param, ctx):
        if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
            number = value
        else:
            text = str(value).strip()
            if len(text) > 64:
                self.fail(f"'{text[:20]}...' is too long for a number: give {self.describe()}", param, ctx)
            try:
                if self.whole:
                    if not _INT.fullmatch(text):
                        raise ValueError
                    number = int(text)
                else:
                    number = float(text)
            except ValueError:
                self.fail(f"'{text}' is not {self.describe()}", param, ctx)
        if number is None:
            return None
        if not self.whole and not math.isfinite(number):
            self.fail(f"{number} is not {self.describe()}", param, ctx)
        low_bad = self.low is not None and (number <= self.low if self.low_open else number < self.low)
        high_bad = self.high is not None and (number >= self.high if self.high_open else number > self.high)
        if low_bad or high_bad:
            shown = f"{number:g}" if not self.whole else (str(number) if len(str(number)) < 30 else f"{number:.3g}")
            self.fail(f"{shown} is out of range: give {self.describe()}", param, ctx)
        return number


def real(low=None, high=None, low_open=False, high_open=False) -> Number:
    return Number(low, high, low_open, high_open)


def whole(low=None, high=None) -> Number:
    return Number(low, high, whole=True)


POSITIVE = real(0, 1e6, low_open=True)  # learning rates, sigmas, tolerances
NON_NEGATIVE = real(0, 1e6)  # loss weights
SHARE = real(0, 1)
STEPS = whole(1, MAX_STEPS)


def check_device(ctx, param, value):
    """--device: cpu, cuda, cuda:N or mps, and only one this machine has (else torch raises a
    multi-line RuntimeError deep inside the first .to())."""
    if value is None:
        return None
    text = str(value).strip().lower()
    match = re.fullmatch(r"(cpu|mps|cuda)(?::([0-9]{1,3}))?", text)
    if not match or (match.group(2) is not None and match.group(1) != "cuda"):
        raise click.BadParameter(f"'{value[:40]}' is not a device: give cpu, cuda or cuda:N", ctx, param)
    import torch
    if match.group(1) == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise click.BadParameter("this machine has no CUDA GPU that torch can use: give --device cpu", ctx, param)
        if match.group(2) is not None and int(match.group(2)) >= count:
            raise click.BadParameter(f"{text} does not exist: this machine has cuda:0..cuda:{count - 1}", ctx, param)
    if match.group(1) == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise click.BadParameter("this machine has no MPS device: give --device cpu", ctx, param)
    return text


model_option = click.option("--model", default=DEFAULT_MODEL, show_default=True,
                            help="Bundled model name, a model folder, an official checkpoint file "
                                 "(e.g. DSS-GAN's G_full_ema_epoch_XXX.pt, read without running it), or "
                                 "hf:ORG/REPO/FILE[@REVISION] (downloaded into the Hugging Face cache).")
device_option = click.option("--device", default=None, callback=check_device,
                             help="cpu, cuda or cuda:N (default: cuda when present).")
seed_option = click.option("--seed", default=0, show_default=True, type=whole(0, MAX_SEED))
restart_option = click.option("--restart", is_flag=True,
                              help="Start over even if OUT holds a checkpoint (it is replaced).")
checkpoint_minutes_option = click.option(
    "--checkpoint-minutes", default=5.0, show_default=True, type=real(0, 10**4, low_open=True),
    help="Also write OUT/checkpoint.pt at least this often, whatever the step count.")
run_folder_option = click.option("--out", required=True, type=click.Path(file_okay=False),
                                 help="Run folder (resumed when it holds a checkpoint).")
walk_type_option = click.option("--walk", "walk_type", default="linear", show_default=True,
                                type=click.Choice(["linear", "nonlinear", "slider"]),
                                help="linear or nonlinear: a walk in the latent; slider: a low-rank offset "
                                     "of the generator's weights scaled by alpha (the latent stays).")
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


def parse_numbers(text: str, what: str, cast=float, low=None, high=None) -> list:
    """A comma-separated list of finite numbers (whole ones when cast is int), each in
    [low, high] when given; at most 10,000 of them."""
    parts = [v for v in str(text).replace(" ", "").split(",") if v != ""]
    if len(parts) > 10_000:
        raise SteerError(f"{what} has {len(parts)} values: give at most 10000")
    if cast is int:
        low = -MAX_SEED if low is None else low
        high = MAX_SEED if high is None else high
    values = []
    for part in parts:
        try:
            if cast is int and not _INT.fullmatch(part[:64]):
                raise ValueError
            value = cast(part[:64]) if len(part) <= 64 else cast("x")
        except ValueError:
            raise SteerError(f"{what} must be a comma-separated list of {'whole ' if cast is int else ''}numbers, "
                             f"got '{str(text)[:80]}'") from None
        if cast is float and not math.isfinite(value):
            raise SteerError(f"{what}: {value} is not a finite number")
        if (low is not None and value < low) or (high is not None and value > high):
            shown = str(value) if len(str(value)) < 30 else f"{value:.3g}"
            raise SteerError(f"{what}: {shown} is out of range: give values in [{low:g}, {high:g}]" if cast is float
                             else f"{what}: {shown} is out of range: give whole numbers in {low}..{high}")
        values.append(value)
    if not values:
        raise SteerError(f"{what} is empty")
    return values


def check_batch_memory(what: str, count: int, resolution: int, device=None, images_per_item: int = 8) -> None:
    """Refuse a batch whose images alone cannot fit, before the allocator fails with a
    traceback. A lower bound, not a forecast: `images_per_item` float32 RGB images per
    item (a step holds the source, walked and target images, the mask and their gradients),
    against the memory free now (the GPU's on CUDA)."""
    import torch
    need = int(count) * images_per_item * 3 * int(resolution) ** 2 * 4
    where = str(device or "cpu")
    free = None
    if where.startswith("cuda") and torch.cuda.is_available():
        free = torch.cuda.mem_get_info(torch.device(where))[0]
    else:
        try:
            with open("/proc/meminfo") as f:
                info = dict(line.split(":", 1) for line in f)
            free = int(info["MemAvailable"].split()[0]) * 1024
        except (OSError, KeyError, ValueError):
            free = None
    if free is not None and need > free:
        raise SteerError(f"{what} {count} needs at least {need / 2**30:.1f} GiB for its {resolution} px images "
                         f"alone, and {where} has {free / 2**30:.1f} GiB free: give a smaller {what}")


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
                         f"{path.parent}/ (or set TORCH_HOME, or run steer fetch lpips-alexnet), or pass --allow-l2 "
                         "to invert with L2 only")
    click.echo(f"warning: {path.name} is not in {path.parent}/, so LPIPS is unavailable: inverting with L2 "
               "only (--allow-l2)", err=True)
    return None


def save_model_and_samples(G, out: Path, card: str, extra_config: dict) -> None:
    """OUT/model/ in bundled format and OUT/samples.png (64 samples, cycling the classes)."""
    import torch

    from ..generators.registry import save_generator
    from ..viz import class_labels, save_labelled_grid

    save_generator(G, out / "model", card, extra_config)
    z, c = G.sample(64, seed=0, classes=torch.arange(64) % G.num_classes if G.num_classes else None)
    with torch.no_grad():
        save_labelled_grid(G.synthesize(z, c), out / "samples.png", columns=8, labels=class_labels(G, c))

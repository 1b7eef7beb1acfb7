"""What the commands share: options declared once and the helpers behind them.

Torch-free at import; every heavy import is inside the function that needs it.
"""
import json
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


def pick_classes(generator, class_option, n, classes_option=None):
    """--class K -> K for every sample; --classes A,B,... -> cycled over the samples; none ->
    cycle through all the classes. Classes are indices or names."""
    import torch

    from ..generators.base import class_index
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


def open_generator(model, device):
    from ..generators import load_generator
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


def training_shapes(model):
    """The ShapesConfig a model folder says it was trained on (its class names are the shapes
    classes; `shapes_config` in config.json when the spreads were not the default), else None."""
    from ..data.shapes import SHAPE_CLASSES, ShapesConfig
    from ..generators.registry import read_config, resolve_model_folder
    try:
        config = read_config(resolve_model_folder(model))
    except (SteerError, OSError, ValueError):
        return None
    if config.get("class_names") != list(SHAPE_CLASSES):
        return None
    return ShapesConfig.from_dict(config["shapes_config"]) if "shapes_config" in config else ShapesConfig()


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


def check_walk_for(walk_path, generator, space, latent_shape):
    """Load a walk and make sure it moves latents of this shape in this space."""
    from ..edits import get_edit
    from ..walks import load
    w, meta = load(walk_path)
    walk_space = meta.get("space", generator.default_space)
    if walk_space != space or tuple(w.latent_shape) != tuple(latent_shape):
        raise SteerError(f"{walk_path} walks {tuple(w.latent_shape)} latents in {walk_space} "
                         f"({meta.get('model')}), but the inversion's pivot is {tuple(latent_shape)} in {space}: "
                         "give a walk learned on the same model and space")
    return w.to(generator.device), meta, get_edit(meta["edit"])


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


def _dssgan_setup(resolution, num_classes, channels, d_state, directions, steps, batch, lr, lr_d, r1_gamma, seed):
    """A small DSS-GAN, its discriminator and the official training recipe."""
    from ..generators.dssgan.configs import default_channels, small_config
    from ..finetune import discriminator_for
    from ..generators.dssgan.generator import DIRECTIONS, DSSGANGenerator, init_for_training
    from ..train import TrainConfig

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

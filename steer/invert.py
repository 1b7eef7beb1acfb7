"""Invert a photo into a generator with pivotal tuning (PTI, Roich et al. 2022), then edit it.

1. Projection: optimise the generator's preferred latent (its default space: z for DCGAN,
   DSS-GAN and BigGAN, w for StyleGAN-XL, started from the class's mean w) and the class (given,
   or the best after a short trial of every class) so that G(latent) reconstructs the photo,
   with L2 + LPIPS, PTI's learning-rate ramp and early stopping when the loss stops improving.
2. Pivotal tuning: fine-tune the generator's tunable parameters so that G(pivot) matches the
   photo (Adam, lr 3e-4), stopping once a PSNR is reached, optionally with PTI's locality
   regulariser (latents between random ones and the pivot must render as before).
3. The tuned generator is stored as a float16 delta of the changed tensors against the base
   weights; the tuned generator *is* base + delta, so what is measured is what is saved.

Everything goes through the Generator interface, so every family inverts the same way.
"""
from __future__ import annotations

import copy
import hashlib
import json
import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes

from .data.folder import MAX_PIXELS
from .checkpoint import atomic_write
from .errors import SteerError
from .losses import masked_l2_per_sample
from .steering import Steering, model_label, source_record

# PTI's published schedule: 450 projection steps, then 350 tuning steps at lr 3e-4
OFFICIAL_PROJECT_STEPS = 450
OFFICIAL_TUNE_STEPS = 350
DELTA_FORMAT = 1
# above Pillow's own bomb limit (89.5 million pixels) a photo is refused, not decoded; the
# same limit as training data folders
MAX_PIXELS_DEFAULT = MAX_PIXELS


@dataclass
class InvertConfig:
    project_steps: int = OFFICIAL_PROJECT_STEPS
    # Adam on the latent; PTI uses 5e-3 in StyleGAN's W, whose scale is far smaller than a
    # unit-normal z's. z-space families get project_lr_z.
    project_lr: float = 5e-3
    project_lr_z: float = 5e-2
    rampup: float = 0.05  # fraction of the steps the lr warms up over (PTI)
    rampdown: float = 0.25  # fraction of the steps it cosines down over (PTI)
    patience: int | None = 40  # stop once the loss has not improved for this many steps; None: never
    min_improvement: float = 1e-3  # relative drop of the best loss that counts as improving
    class_trial_steps: int = 30  # per class, when the class is not given
    tune_steps: int = OFFICIAL_TUNE_STEPS
    tune_lr: float = 3e-4
    target_psnr: float | None = 33.0  # stop tuning once G(pivot) reaches it (dB); None: never
    l2_weight: float = 1.0
    lpips_weight: float = 1.0
    locality_weight: float = 0.0  # PTI's locality regulariser (0.1 there when on); 0: off
    locality_fraction: float = 0.5  # how far from the pivot toward a random latent it checks
    seed: int = 0

    @classmethod
    def official(cls, **overrides):
        """PTI's fixed schedule: every step of both phases, no early stopping."""
        return cls(**dict(dict(patience=None, target_psnr=None), **overrides))


@dataclass
class Phase:
    """What one phase did: steps taken, wall seconds, loss per step, reconstruction quality."""

    steps: int = 0
    seconds: float = 0.0
    losses: list = field(default_factory=list)
    psnr: float = float("nan")
    lpips: float | None = None
    stopped: str = ""  # why it ended


# ---- reconstruction measures ----------------------------------------------------------

def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB of images in [-1, 1] (peak-to-peak 2), per sample."""
    mse = (a.clamp(-1, 1) - b.clamp(-1, 1)).square().flatten(1).mean(1)
    return 10 * torch.log10(4.0 / mse.clamp_min(1e-12))


class ReconstructionLoss:
    """Per-sample l2_weight * MSE + lpips_weight * LPIPS (when an LPIPS module is given)."""

    def __init__(self, lpips=None, l2_weight: float = 1.0, lpips_weight: float = 1.0):
        self.lpips, self.l2_weight, self.lpips_weight = lpips, l2_weight, lpips_weight

    def __call__(self, images, target) -> torch.Tensor:
        ones = images.new_ones(1, 1, 1, 1)
        loss = self.l2_weight * masked_l2_per_sample(images, target.expand_as(images), ones)
        if self.lpips is not None and self.lpips_weight:
            loss = loss + self.lpips_weight * self.perceptual(images, target)
        return loss

    def perceptual(self, images, target) -> torch.Tensor:
        # MaskedLPIPS averages over the batch; its lpips model gives one value per sample
        return self.lpips.model(images, target.expand_as(images)).flatten()


def lr_ramp(step: int, steps: int, rampup: float, rampdown: float) -> float:
    """PTI's schedule as a factor of the base lr: a linear warm-up over the first `rampup` of
    the steps and a cosine fall to 0 over the last `rampdown`."""
    t = step / max(1, steps)
    down = min(1.0, (1.0 - t) / rampdown) if rampdown > 0 else 1.0
    factor = 0.5 - 0.5 * math.cos(down * math.pi)
    return factor * (min(1.0, t / rampup) if rampup > 0 else 1.0)


# ---- projection -----------------------------------------------------------------------

def start_latent(generator, classes, space: str, samples: int = 256, seed: int = 0) -> torch.Tensor:
    """Where projection starts: z = 0 (the mode of z's prior); in other spaces the class's
    mean latent: StyleGAN's stored w_avg when there is one, else the mean of sampled latents."""
    n = classes.shape[0] if classes is not None else 1
    if space == "z":
        return torch.zeros(n, generator.latent_dim, device=generator.device)
    mapping = getattr(generator, "mapping", None)
    if mapping is not None and hasattr(mapping, "centre"):
        w = mapping.centre(classes).to(generator.device).expand(n, -1).clone()
        return w if space == "w" else w[:, None].repeat(1, generator.num_ws, 1)
    latents = []
    for i in range(n):
        cls = None if classes is None else classes[i:i + 1]
        z, c = generator.sample(samples, seed=seed, classes=cls)
        with torch.no_grad():
            latents.append(generator.to_space(z, c, space).mean(0))
    return torch.stack(latents)


def _optimise_latents(generator, target, latent, classes, space, loss_fn, steps, lr, config,
                      early_stop: bool, progress=None):
    """Adam on a batch of latents, one per row, each against the same target, with PTI's lr
    ramp. With early_stop, a single latent stops once its loss has stopped improving or its
    image reaches config.target_psnr. Returns (best latents, best per-sample losses, Phase)."""
    phase = Phase()
    start = time.perf_counter()
    latent = latent.detach().clone().requires_grad_(True)
    optimiser = torch.optim.Adam([latent], lr=lr, betas=(0.9, 0.999))
    best = torch.full((latent.shape[0],), float("inf"), device=latent.device)
    best_latent = latent.detach().clone()
    best_step = 0
    phase.stopped = "schedule done"
    for step in range(steps):
        for group in optimiser.param_groups:
            group["lr"] = lr * lr_ramp(step, steps, config.rampup, config.rampdown)
        images = generator.synthesize(latent, classes, space)
        losses = loss_fn(images, target)
        with torch.no_grad():
            better = losses < best
            best_latent[better] = latent.detach()[better]
            if early_stop and float(losses.min()) < float(best.min()) * (1 - config.min_improvement):
                best_step = step
            best = torch.minimum(best, losses.detach())
        phase.losses.append(float(losses.detach().min()))
        phase.steps = step + 1
        if progress:
            progress(step, float(losses.detach().min()))
        if early_stop and config.patience is not None and step - best_step >= config.patience:
            phase.stopped = f"no improvement for {config.patience} steps"
            break
        if early_stop and config.target_psnr is not None and float(psnr(images.detach(), target).max()) >= config.target_psnr:
            phase.stopped = f"reached {config.target_psnr:g} dB"
            break
        optimiser.zero_grad(set_to_none=True)
        losses.sum().backward()  # rows are independent: the sum gives each its own gradient
        optimiser.step()
    phase.seconds = time.perf_counter() - start
    return best_latent, best, phase


def choose_class(generator, target, space, loss_fn, config, progress=None, chunk: int = 32):
    """Try every class for config.class_trial_steps steps, all classes of a chunk as one batch;
    returns (best class, its latent after the trial, {class: trial loss})."""
    trial_losses, latents = {}, {}
    for first in range(0, generator.num_classes, chunk):
        classes = torch.arange(first, min(first + chunk, generator.num_classes), device=generator.device)
        start = start_latent(generator, classes, space, seed=config.seed)
        lr = config.project_lr_z if space == "z" else config.project_lr
        latent, losses, _ = _optimise_latents(generator, target, start, classes, space, loss_fn,
                                              config.class_trial_steps, lr, config, early_stop=False)
        for k, c in enumerate(classes.tolist()):
            trial_losses[c] = float(losses[k])
            latents[c] = latent[k:k + 1]
        if progress:
            progress(first, min(first + chunk, generator.num_classes))
    best = min(trial_losses, key=trial_losses.get)
    return best, latents[best], trial_losses


def project(generator, target, config: InvertConfig, class_index: int | None = None, space: str | None = None,
            loss_fn: ReconstructionLoss | None = None, progress=None):
    """Find the pivot: the latent (and class) whose image best reconstructs `target` (1,3,S,S).

    Returns (latent (1, ...), classes (1,) or None, Phase, {class: trial loss} or None)."""
    space = space or generator.default_space
    generator.check_space(space)
    loss_fn = loss_fn or ReconstructionLoss()
    generator.eval().requires_grad_(False)
    target = target.to(generator.device)
    trials = None
    trial_seconds = 0.0
    if generator.num_classes and class_index is None:
        begin = time.perf_counter()
        class_index, latent, trials = choose_class(generator, target, space, loss_fn, config)
        trial_seconds = time.perf_counter() - begin
        classes = torch.tensor([class_index], device=generator.device)
    elif generator.num_classes:
        classes = torch.tensor([int(class_index)], device=generator.device)
        latent = start_latent(generator, classes, space, seed=config.seed)
    else:
        classes = None
        latent = start_latent(generator, None, space, seed=config.seed)
    lr = config.project_lr_z if space == "z" else config.project_lr
    latent, _, phase = _optimise_latents(generator, target, latent, classes, space, loss_fn,
                                         config.project_steps, lr, config, early_stop=True, progress=progress)
    phase.seconds += trial_seconds
    _measure(phase, generator, latent, classes, space, target, loss_fn)
    return latent.detach(), classes, phase, trials


@torch.no_grad()
def _measure(phase: Phase, generator, latent, classes, space, target, loss_fn):
    image = generator.synthesize(latent, classes, space)
    phase.psnr = float(psnr(image, target)[0])
    if loss_fn.lpips is not None:
        phase.lpips = float(loss_fn.perceptual(image, target)[0])


# ---- pivotal tuning -------------------------------------------------------------------

def pivotal_tune(generator, target, latent, classes, space: str, config: InvertConfig,
                 loss_fn: ReconstructionLoss | None = None, progress=None):
    """Fine-tune a copy of `generator` around the pivot. Returns (tuned generator, delta, Phase).

    The base generator is left as it was. The tuned copy is snapped to base + float16 delta,
    so saving the delta and loading it again gives exactly this generator."""
    loss_fn = loss_fn or ReconstructionLoss()
    phase = Phase()
    start = time.perf_counter()
    base = generator.eval().requires_grad_(False)
    tuned = copy.deepcopy(base).eval()  # eval: batch-norm statistics stay the base's
    params = tuned.tunable_parameters()
    for p in params:
        p.requires_grad_(True)
    optimiser = torch.optim.Adam(params, lr=config.tune_lr)
    target = target.to(base.device)
    latent = latent.detach().to(base.device)
    phase.stopped = "schedule done"
    for step in range(config.tune_steps):
        image = tuned.synthesize(latent, classes, space)
        loss = loss_fn(image, target).sum()
        with torch.no_grad():
            reached = float(psnr(image, target)[0])
        phase.losses.append(float(loss.detach()))
        if config.target_psnr is not None and reached >= config.target_psnr:
            phase.stopped = f"reached {config.target_psnr:g} dB"
            break
        if config.locality_weight > 0:
            loss = loss + config.locality_weight * _locality_loss(base, tuned, latent, space, loss_fn, config, step)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        phase.steps = step + 1
        if progress:
            progress(step, float(loss.detach()))
    tuned.requires_grad_(False)
    delta = generator_delta(base, tuned)
    tuned = apply_delta(base, delta)
    phase.seconds = time.perf_counter() - start
    _measure(phase, tuned, latent, classes, space, target, loss_fn)
    return tuned, delta, phase


def _locality_loss(base, tuned, pivot, space, loss_fn, config, step):
    """PTI's locality regulariser: a latent part of the way from the pivot toward a random one
    must render as the base generator renders it. PTI steps a fixed 30 units in StyleGAN's W;
    a fraction of the distance carries over to spaces of other scales (z, w)."""
    z, classes = base.sample(1, seed=config.seed * 100_003 + step + 1)
    with torch.no_grad():
        away = base.to_space(z, classes, space)
        between = pivot + config.locality_fraction * (away - pivot)
        expected = base.synthesize(between, classes, space)
    return loss_fn(tuned.synthesize(between, classes, space), expected).sum()


# ---- the delta: tuned = base + delta --------------------------------------------------

def generator_delta(base, tuned, dtype=torch.float16) -> dict:
    """{name: tuned - base} for the tensors tuning changed, stored in `dtype` (float16 halves
    the file; the differences are small, so their rounding is far below the weights' scale)."""
    base_state = base.state_dict()
    delta = {}
    for name, value in tuned.state_dict().items():
        diff = value.detach() - base_state[name].detach()
        if value.is_floating_point() and bool(diff.any()):
            delta[name] = diff.to(dtype).cpu().contiguous()
    return delta


def apply_delta(base, delta: dict, what: str = "delta"):
    """A copy of `base` with every tensor in `delta` added to its own. Strict: a name the base
    lacks or a shape that differs is a SteerError."""
    state = base.state_dict()
    for name, diff in delta.items():
        if name not in state:
            raise SteerError(f"{what} changes '{name}', which {base.name or 'the base model'} does not have: "
                             "it was made for another model")
        if tuple(diff.shape) != tuple(state[name].shape):
            raise SteerError(f"{what} changes '{name}' with shape {tuple(diff.shape)}, but the base model's is "
                             f"{tuple(state[name].shape)}: it was made for another model")
    tuned = copy.deepcopy(base)
    with torch.no_grad():
        tuned_state = tuned.state_dict()
        for name, diff in delta.items():
            target = tuned_state[name]
            target.copy_(state[name] + diff.to(device=target.device, dtype=target.dtype))
    return tuned.eval().requires_grad_(False)


def weights_fingerprint(generator) -> str:
    """sha256 of the generator's tensors (names, shapes, bytes): which base a delta belongs to."""
    h = hashlib.sha256()
    for name, value in sorted(generator.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(value.shape)).encode())
        h.update(value.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def save_delta(path, delta: dict, meta: dict) -> None:
    data = safetensors_bytes(delta, metadata={"steer": json.dumps(dict(meta, format=DELTA_FORMAT))})
    atomic_write(path, lambda f: f.write(data))


def load_delta(path) -> tuple:
    """Returns (delta tensors, metadata)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {})["steer"])
        return load_file(str(path)), meta
    except FileNotFoundError:
        raise SteerError(f"delta file {path} does not exist") from None
    except Exception as e:
        raise SteerError(f"{path} is not a steer delta file ({type(e).__name__}: {e})") from None


# ---- walk health ----------------------------------------------------------------------

def walk_error(generator, walk, edit, latent, classes, space, alphas) -> float:
    """Mean over alphas of the masked L2 between G(walk(latent, a)) and edit(G(latent), a)."""
    return Steering(generator, walk, edit, space).error_over_alphas(latent, classes, alphas)


def walk_health(base, tuned, walk, edit, pivot, classes, space, samples: int = 16, seed: int = 0,
                alphas=None) -> dict:
    """Does the walk still do its edit after tuning? Its masked L2 to its target at the pivot on
    the tuned generator, against the same on the base generator at sampled latents (what the
    walk was trained for) and at the pivot."""
    alphas = list(alphas if alphas is not None else edit.show_alphas(base.resolution))
    alphas = [a for a in alphas if a != edit.identity]
    walk = walk.to(base.device)
    z, c = base.sample(samples, seed=seed, classes=None if classes is None else classes[:1])
    sampled = walk_error(base, walk, edit, base.to_space(z, c, space), c, space, alphas)
    at_pivot_base = walk_error(base, walk, edit, pivot, classes, space, alphas)
    at_pivot_tuned = walk_error(tuned, walk, edit, pivot, classes, space, alphas)
    return {"edit": edit.name, "alphas": alphas, "samples": samples,
            "tuned_at_pivot": at_pivot_tuned, "base_at_pivot": at_pivot_base, "base_at_samples": sampled,
            "ratio_tuned_pivot_to_base_samples": at_pivot_tuned / sampled if sampled > 0 else None,
            "rule": "mean over alphas of the masked L2 between G(walk(latent, alpha)) and edit(G(latent), alpha)"}


# ---- a whole inversion, saved and loaded ---------------------------------------------

@dataclass
class Inversion:
    generator: object  # the tuned generator
    latent: torch.Tensor
    classes: torch.Tensor | None
    space: str
    projected_image: torch.Tensor
    tuned_image: torch.Tensor
    delta: dict
    projection: Phase
    tuning: Phase
    class_trials: dict | None
    config: InvertConfig


def invert(generator, target, config: InvertConfig, class_index: int | None = None, lpips=None,
           space: str | None = None, progress=None) -> Inversion:
    """Project `target` (1,3,S,S in [-1, 1]) and tune the generator around the pivot."""
    if target.shape[-1] != generator.resolution or target.shape[-2] != generator.resolution:
        raise SteerError(f"the photo must be {generator.resolution}x{generator.resolution} for {generator.name}, "
                         f"got {tuple(target.shape[-2:])}")
    space = space or generator.default_space
    loss_fn = ReconstructionLoss(lpips.to(generator.device) if lpips is not None else None,
                                 config.l2_weight, config.lpips_weight)
    torch.manual_seed(config.seed)
    latent, classes, projection, trials = project(generator, target, config, class_index, space, loss_fn,
                                                  progress=progress and (lambda s, l: progress("project", s, l)))
    with torch.no_grad():
        projected = generator.synthesize(latent, classes, space)
    tuned, delta, tuning = pivotal_tune(generator, target, latent, classes, space, config, loss_fn,
                                        progress=progress and (lambda s, l: progress("tune", s, l)))
    with torch.no_grad():
        tuned_image = tuned.synthesize(latent, classes, space)
    return Inversion(tuned, latent, classes, space, projected, tuned_image, delta, projection, tuning,
                     trials, config)


def phase_summary(phase: Phase) -> dict:
    out = {"steps": phase.steps, "seconds": round(phase.seconds, 3), "psnr_db": round(phase.psnr, 3),
           "stopped": phase.stopped, "final_loss": phase.losses[-1] if phase.losses else None}
    if phase.lpips is not None:
        out["lpips"] = round(phase.lpips, 5)
    return out


def save_inversion(folder, inversion: Inversion, base, crop: dict, loss: str, extra: dict | None = None) -> dict:
    """Write latent.safetensors, delta.safetensors and inversion.json into `folder`;
    returns the JSON written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fingerprint = weights_fingerprint(base)
    save_delta(folder / "delta.safetensors", inversion.delta,
               {"model": model_label(base), "base_fingerprint": fingerprint})
    latent_tensors = {"latent": inversion.latent.detach().cpu().contiguous()}
    atomic_write(folder / "latent.safetensors", lambda f: f.write(safetensors_bytes(latent_tensors)))
    info = {
        "model": model_label(base), "source": source_record(base), "space": inversion.space, "latent_shape": list(inversion.latent.shape[1:]),
        "class": None if inversion.classes is None else int(inversion.classes[0]),
        "class_chosen_by": None if inversion.classes is None else ("trial" if inversion.class_trials else "user"),
        "class_trial_losses": inversion.class_trials, "loss": loss,
        "latent_file": "latent.safetensors", "delta_file": "delta.safetensors",
        "delta_dtype": "float16", "delta_tensors": len(inversion.delta),
        "delta_parameters": sum(v.numel() for v in inversion.delta.values()),
        "base_fingerprint": fingerprint, "crop": crop, "config": asdict(inversion.config),
        "measurements": {"projection": phase_summary(inversion.projection),
                         "tuning": phase_summary(inversion.tuning)},
    }
    info.update(extra or {})
    atomic_write(folder / "inversion.json", lambda f: f.write((json.dumps(info, indent=2) + "\n").encode()))
    return info


def read_inversion(folder) -> dict:
    path = Path(folder) / "inversion.json"
    if not path.is_file():
        raise SteerError(f"{folder} is not an inversion folder (no inversion.json): give the --out of steer invert")
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise SteerError(f"cannot read {path}: {e}") from None


def load_inversion(folder, base):
    """(tuned generator, latent, classes, info) from an inversion folder and its base generator;
    refuses a base whose weights differ from the ones tuned."""
    folder = Path(folder)
    info = read_inversion(folder)
    delta, meta = load_delta(folder / info.get("delta_file", "delta.safetensors"))
    if meta.get("base_fingerprint") != weights_fingerprint(base):
        raise SteerError(f"{folder} was tuned from other weights than {base.name}'s (fingerprints differ): "
                         f"load the model it names, {meta.get('model')}")
    tuned = apply_delta(base, delta, what=str(folder / "delta.safetensors"))
    try:
        latent = load_file(str(folder / info.get("latent_file", "latent.safetensors")))["latent"]
    except Exception as e:
        raise SteerError(f"cannot read the pivot latent in {folder}: {e}") from None
    latent = latent.to(base.device)
    classes = None if info.get("class") is None else torch.tensor([int(info["class"])], device=base.device)
    return tuned, latent, classes, info


# ---- photos ---------------------------------------------------------------------------

def load_photo(path, resolution: int, max_pixels: int = MAX_PIXELS_DEFAULT):
    """A photo file -> ((1, 3, S, S) in [-1, 1], crop info): read with EXIF orientation,
    transparency on white, greyscale and 16-bit handled, centre-cropped to a square and
    resized to S. Unreadable, empty and oversized files are a SteerError."""
    from PIL import Image, UnidentifiedImageError

    from .data.folder import open_rgb, to_tensor

    path = Path(path)
    if not path.exists():
        raise SteerError(f"image {path} does not exist")
    if path.is_dir():
        raise SteerError(f"image {path} is a folder: give one image file")
    if path.stat().st_size == 0:
        raise SteerError(f"image {path} is empty (0 bytes): give a photo Pillow can read")
    try:
        with Image.open(path) as probe:
            width, height = probe.size
            source_mode = probe.mode
    except Image.DecompressionBombError as e:
        raise SteerError(f"image {path} is too large to decode safely ({e}): downscale it first") from None
    except UnidentifiedImageError:
        raise SteerError(f"cannot read image {path}: Pillow does not recognise it as an image") from None
    except OSError as e:
        raise SteerError(f"cannot read image {path}: {e}") from None
    if width * height > max_pixels:
        raise SteerError(f"image {path} has {width}x{height} = {width * height:,} pixels, more than the limit "
                         f"of {max_pixels:,}: downscale it first")
    if width == 0 or height == 0:
        raise SteerError(f"image {path} has no pixels ({width}x{height})")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = open_rgb(path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise SteerError(f"image {path} is too large to decode safely ({e}): downscale it first") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise SteerError(f"cannot read image {path}: {e}") from None
    w, h = im.size  # after EXIF rotation
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    box = (left, top, left + side, top + side)
    crop = im.crop(box).resize((resolution, resolution), Image.Resampling.LANCZOS, reducing_gap=3.0)
    info = {"source": str(path), "source_mode": source_mode, "source_size": [width, height],
            "oriented_size": [w, h], "box": list(box), "resolution": resolution,
            "rule": "centre square of the EXIF-oriented image, resized with Lanczos"}
    return to_tensor(crop)[None], info

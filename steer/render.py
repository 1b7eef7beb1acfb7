"""Apply a walk across a row of alphas: the pictures `steer render` and `steer walk` write."""
from __future__ import annotations

import torch

from .edits import Edit

CHANNELS = {"r": (1.0, 0.0, 0.0), "g": (0.0, 1.0, 0.0), "b": (0.0, 0.0, 1.0), "all": (1.0, 1.0, 1.0)}


def expand_alpha(edit: Edit, alpha, channel: str = "all"):
    """An alpha as the edit takes it: a scalar colour alpha becomes an RGB offset along
    `channel`; a colour alpha given as three values (one per slider) is used as it is."""
    if edit.sliders == 3:
        if isinstance(alpha, (list, tuple)):
            return [float(v) for v in alpha]
        return [alpha * c for c in CHANNELS[channel]]
    return alpha


def sample_rows(generator, seeds, row_classes=None, space=None):
    """One latent per seed, each drawn alone (so a seed gives the same latent whatever else is
    drawn beside it), mapped into `space`. row_classes: int64 per seed, or None to take the
    class each seed draws. Returns (latent, classes or None)."""
    latents, classes = [], []
    for i, s in enumerate(seeds):
        z, c = generator.sample(1, seed=s, classes=None if row_classes is None else row_classes[i:i + 1])
        latents.append(z)
        classes.append(c)
    z = torch.cat(latents)
    c = torch.cat(classes) if classes[0] is not None else None
    return generator.to_space(z, c, space or generator.default_space), c


def truncation_setting(generator):
    """Which truncation a generator takes as a setting: "psi" (StyleGAN, toward the mean w),
    "biggan" (z and batch-norm statistics) or None (it has none)."""
    if hasattr(generator, "truncation_psi"):
        return "psi"
    if hasattr(generator, "check_truncation"):
        return "biggan"
    return None


def set_truncation(generator, value) -> None:
    """Make `value` the generator's truncation (checked where the family checks it)."""
    kind = truncation_setting(generator)
    if kind == "psi":
        generator.truncation_psi = float(value)
    elif kind == "biggan":
        generator.truncation = generator.check_truncation(value)


@torch.no_grad()
def render_walk(generator, walk, edit: Edit, latent, classes, alphas, space=None, channel="all",
                targets: bool = False):
    """Returns (rows, len(alphas), 3, H, W): G(walk(latent, alpha)) per sample and alpha;
    with targets=True, each sample's row is followed by its target row edit(G(latent), alpha)."""
    space = space or generator.default_space
    n = latent.shape[0]
    base = generator.synthesize(latent, classes, space) if targets else None
    walked, wanted = [], []
    for a in alphas:
        alpha = torch.as_tensor(expand_alpha(edit, a, channel), dtype=torch.float32)
        alpha = alpha.expand(n, *alpha.shape).clone()
        moved = walk.apply(latent, alpha, edit, generator.resolution)
        walked.append(generator.synthesize(moved, classes, space).cpu())
        if targets:
            target, mask = edit(base, alpha.to(base.device))
            # undefined pixels become 0, mid-grey, so the mask is visible
            wanted.append((target * mask).cpu())
    walked = torch.stack(walked, dim=1)
    if not targets:
        return walked
    wanted = torch.stack(wanted, dim=1)
    return torch.stack([walked, wanted], dim=1).reshape(2 * n, len(alphas), *walked.shape[2:])

"""Apply a walk across a row of alphas: the pictures `steer render` and `steer walk` write."""
from __future__ import annotations

import torch

from .edits import Edit

CHANNELS = {"r": (1.0, 0.0, 0.0), "g": (0.0, 1.0, 0.0), "b": (0.0, 0.0, 1.0), "all": (1.0, 1.0, 1.0)}


def expand_alpha(edit: Edit, alpha: float, channel: str = "all"):
    """A scalar alpha as the edit takes it: colour alphas become an RGB offset along `channel`."""
    if edit.sliders == 3:
        return [alpha * c for c in CHANNELS[channel]]
    return alpha


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

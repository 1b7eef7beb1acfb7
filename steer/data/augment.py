"""Real data augmented by an edit, for the "GAN trained on augmented data" arm of the
steerability paper: a share of each batch is edited by a random alpha, the pixels the edit
leaves undefined painted in the image's background colour.

The paper's MNIST recipe rotates 50,000 of the 60,000 training digits per epoch (a share of
5/6) by a whole number of degrees drawn uniformly from -20..20; `augmented_batches` draws
the same per image, for rotations and shifts (whole units in -max..max) and zoom (a factor
drawn log-uniformly in [1/max, max]).
"""
from __future__ import annotations

import math

import torch

from ..errors import SteerError
from ..seeding import step_seed

_AUGMENT_STREAM = 31  # step_seed stream, apart from the trainer's and the data's
PAPER_SHARE = 5 / 6


def parse_augment(text: str):
    """'EDIT:MAX' (e.g. 'rotate:20') -> (Edit, max alpha)."""
    from ..edits import get_edit
    name, _, value = str(text).partition(":")
    try:
        limit = float(value)
    except ValueError:
        limit = float("nan")
    edit = get_edit(name.strip())
    if edit.sliders != 1 or not math.isfinite(limit) or limit <= 0 or (edit.name == "zoom" and limit <= 1):
        raise SteerError(f"--augment must be EDIT:MAX for rotate, shift_x, shift_y (whole units up to MAX) or "
                         f"zoom (MAX > 1), e.g. rotate:20; got '{text}'")
    return edit, limit


def augment_alphas(edit, n: int, limit: float, gen: torch.Generator) -> torch.Tensor:
    if edit.name == "zoom":
        return torch.exp((torch.rand(n, generator=gen) * 2 - 1) * math.log(limit))
    return torch.randint(-int(limit), int(limit) + 1, (n,), generator=gen).float()


def augmented_batches(next_batch, edit, limit: float, share: float = PAPER_SHARE, seed: int = 0):
    """next_batch(step, n) whose images are, with probability `share` each, edited by a random alpha."""
    from ..steerability import background_fill

    def batch(step, n):
        images, classes = next_batch(step, n)
        gen = torch.Generator().manual_seed(step_seed(seed, step, _AUGMENT_STREAM))
        on = torch.rand(n, generator=gen) < share
        alpha = augment_alphas(edit, n, limit, gen)
        if on.any():
            edited, mask = edit(images[on], alpha[on].to(images.device))
            images = images.clone()
            images[on] = background_fill(edited, mask, images[on])
        return images, classes
    return batch

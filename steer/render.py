"""Apply a walk across a row of alphas: the pictures `steer render` and `steer walk` write.
Thin wrappers over steer.steering.Steering, for callers that hold the parts separately."""
from __future__ import annotations

from .edits import Edit
from .steering import CHANNELS, Steering, expand_alpha  # noqa: F401  (re-exported)


def sample_rows(generator, seeds, row_classes=None, space=None, truncation=None):
    """One latent per seed, each drawn alone, mapped into `space` (see Steering.rows)."""
    return Steering(generator, None, None, space, truncation=truncation).rows(seeds, row_classes)


def render_walk(generator, walk, edit: Edit, latent, classes, alphas, space=None, channel="all",
                targets: bool = False, truncation=None):
    """(rows, len(alphas), 3, H, W) walked images, with target rows interleaved when
    targets=True (see Steering.strips)."""
    return Steering(generator, walk, edit, space, truncation=truncation).strips(latent, classes, alphas,
                                                                               channel=channel, targets=targets)

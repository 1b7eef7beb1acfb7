"""Attributes measured from an image alone: the object's area, centre and colour.

For images of one object on a plain background (the shapes data and generators trained
on it): the background colour is the median of the border pixels, and the object is
every pixel whose colour differs from it by more than a threshold.
"""
from __future__ import annotations

import torch


def object_mask(images: torch.Tensor, threshold: float = 0.25) -> torch.Tensor:
    """(N,3,H,W) in [-1,1] -> (N,H,W) float mask of object pixels."""
    border = torch.cat([images[:, :, 0], images[:, :, -1], images[:, :, :, 0], images[:, :, :, -1]], dim=2)
    background = border.median(dim=2).values[:, :, None, None]
    distance = (images - background).abs().amax(dim=1)
    return (distance > threshold).float()


def object_area(images, threshold: float = 0.25) -> torch.Tensor:
    """Fraction of the image the object covers, (N,)."""
    return object_mask(images, threshold).mean((1, 2))


def object_centre(images, threshold: float = 0.25) -> torch.Tensor:
    """Object centre (x, y) as fractions of the image size, (N, 2); NaN with no object."""
    mask = object_mask(images, threshold)
    h, w = mask.shape[1:]
    ys = (torch.arange(h, dtype=torch.float32, device=mask.device) + 0.5) / h
    xs = (torch.arange(w, dtype=torch.float32, device=mask.device) + 0.5) / w
    total = mask.sum((1, 2))
    cx = (mask * xs[None, None, :]).sum((1, 2)) / total
    cy = (mask * ys[None, :, None]).sum((1, 2)) / total
    return torch.stack([cx, cy], dim=1)


def mean_colour(images, threshold: float | None = 0.25) -> torch.Tensor:
    """Mean RGB in [-1,1], (N,3): of the object when a threshold is given, else the image."""
    if threshold is None:
        return images.mean((2, 3))
    mask = object_mask(images, threshold)[:, None]
    return (images * mask).sum((2, 3)) / mask.sum((2, 3)).clamp_min(1)

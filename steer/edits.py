"""Image edits a walk learns to reproduce. Built on kornia, differentiable and batched.

Every edit is `edit(images, alpha) -> (edited, mask)`: images (N,3,H,W) in [-1,1], alpha a
number or one value per sample (colour: three per sample), mask (N,1,H,W) with 0 where the
edit leaves a pixel undefined (the border uncovered by a zoom-out, shift or rotation).

Geometry is in pixel-centre coordinates: the image centre is ((W-1)/2, (H-1)/2), and a
pixel counts as defined when its bilinear sample reads only real pixels.

`EDITS` registers each edit with how training draws alpha, the range a sweep tests, how
a walk sees alpha, and the range the toolkit accepts at all.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import kornia
import numpy as np
import torch

from .errors import SteerError


def _per_sample(alpha, n: int, device, width: int = 1) -> torch.Tensor:
    """alpha as a float tensor of shape (n,) (or (n, width) when width > 1)."""
    a = torch.as_tensor(alpha, dtype=torch.float32, device=device)
    if width == 1:
        return a.reshape(-1).expand(n) if a.numel() == 1 else a.reshape(n)
    if a.numel() == 1:
        return a.reshape(1, 1).expand(n, width)
    if a.numel() == width and a.dim() == 1:
        return a.reshape(1, width).expand(n, width)
    return a.reshape(n, width)


def _warp(images: torch.Tensor, matrix: torch.Tensor):
    """Affine warp (matrix maps source to destination pixel coordinates) and its mask."""
    n, _, h, w = images.shape
    out = kornia.geometry.transform.warp_affine(images, matrix, (h, w), mode="bilinear",
                                               padding_mode="zeros", align_corners=True)
    with torch.no_grad():
        ones = images.new_ones(n, 1, h, w)
        cover = kornia.geometry.transform.warp_affine(ones, matrix, (h, w), mode="bilinear",
                                                     padding_mode="zeros", align_corners=True)
        # a pixel blended even slightly with the zero padding is undefined
        mask = (cover > 0.999).to(images.dtype)
    return out, mask


def _centre(images):
    h, w = images.shape[-2:]
    return (w - 1) / 2.0, (h - 1) / 2.0


def zoom(images: torch.Tensor, alpha):
    """Zoom about the centre by alpha: alpha > 1 zooms in, alpha < 1 zooms out (the
    uncovered border is masked)."""
    a = _per_sample(alpha, images.shape[0], images.device)
    if (a <= 0).any():
        raise ValueError("zoom factor must be positive")
    cx, cy = _centre(images)
    matrix = torch.zeros(images.shape[0], 2, 3, device=images.device)
    matrix[:, 0, 0] = a
    matrix[:, 1, 1] = a
    matrix[:, 0, 2] = (1 - a) * cx
    matrix[:, 1, 2] = (1 - a) * cy
    return _warp(images, matrix)


def _translate(images, dx, dy):
    matrix = torch.zeros(images.shape[0], 2, 3, device=images.device)
    matrix[:, 0, 0] = 1
    matrix[:, 1, 1] = 1
    matrix[:, 0, 2] = dx
    matrix[:, 1, 2] = dy
    return _warp(images, matrix)


def shift_x(images: torch.Tensor, pixels):
    """Move content right by `pixels` (left when negative); the uncovered columns are masked."""
    dx = _per_sample(pixels, images.shape[0], images.device)
    return _translate(images, dx, torch.zeros_like(dx))


def shift_y(images: torch.Tensor, pixels):
    """Move content down by `pixels` (up when negative); the uncovered rows are masked."""
    dy = _per_sample(pixels, images.shape[0], images.device)
    return _translate(images, torch.zeros_like(dy), dy)


def rotate(images: torch.Tensor, degrees):
    """Rotate about the centre by `degrees`, counter-clockwise as seen; corners are masked."""
    angle = _per_sample(degrees, images.shape[0], images.device)
    cx, cy = _centre(images)
    centre = torch.tensor([[cx, cy]], device=images.device).expand(images.shape[0], 2)
    matrix = kornia.geometry.transform.get_rotation_matrix2d(centre, angle, torch.ones_like(centre))
    return _warp(images, matrix)


def colour(images: torch.Tensor, offsets):
    """Add one offset per RGB channel (in [-1,1] image units), clipped to the valid range."""
    off = _per_sample(offsets, images.shape[0], images.device, width=3)
    out = (images + off[:, :, None, None]).clamp(-1, 1)
    return out, images.new_ones(images.shape[0], 1, *images.shape[-2:])


def brightness(images: torch.Tensor, offset):
    """Add the same offset to every channel (in [-1,1] units, so 1.0 is half the range)."""
    off = _per_sample(offset, images.shape[0], images.device)
    # kornia works on [0, 1] images: the offset halves there
    out = kornia.enhance.adjust_brightness((images + 1) / 2, off / 2, clip_output=True) * 2 - 1
    return out, images.new_ones(images.shape[0], 1, *images.shape[-2:])


@dataclass(frozen=True)
class Edit:
    """An edit and its alpha conventions.

    sample_train(n, gen, resolution): training alphas, (n,) or (n, sliders).
    test_alphas(resolution): the sweep, running well past the training range.
    show_alphas(resolution): a few alphas across the training range, for strips.
    walk_input(alpha, resolution): what a linear walk multiplies its vectors by, (n, sliders).
    valid(resolution): (low, high) alphas accepted at all.
    identity: the alpha that leaves an image unchanged.
    step_mode: how n steps of a nonlinear walk map to alpha ("multiply": eps**n, "add": n*eps).
    step_eps(resolution), max_steps: nonlinear walk defaults.
    lr: default learning rate for a linear walk.
    """

    name: str
    apply: Callable
    sliders: int
    sample_train: Callable
    test_alphas: Callable
    walk_input: Callable
    valid: Callable
    identity: float
    step_mode: str
    step_eps: Callable
    max_steps: int
    lr: float
    convention: str
    show_alphas: Callable

    def __call__(self, images, alpha):
        return self.apply(images, alpha)

    def check_alphas(self, alphas, resolution: int):
        low, high = self.valid(resolution)
        for a in np.asarray(alphas, dtype=np.float64).reshape(-1):
            if not (low <= a <= high) or not math.isfinite(a):
                raise SteerError(f"alpha {a:g} is out of range for {self.name}: use values in "
                                 f"[{low:g}, {high:g}]")

    def steps_to_alpha(self, steps, resolution: int):
        eps = self.step_eps(resolution)
        return eps**steps if self.step_mode == "multiply" else steps * eps

    def alpha_to_steps(self, alpha, resolution: int) -> int:
        """The nearest whole number of nonlinear steps for a (scalar) alpha."""
        eps = self.step_eps(resolution)
        a = float(np.mean(alpha))
        return int(round(math.log(a) / math.log(eps))) if self.step_mode == "multiply" else int(round(a / eps))


def _signed_ints(n, gen, high):
    """Whole numbers in +-(1..high), never 0, as the official code draws shifts and angles."""
    magnitude = torch.randint(1, int(high) + 1, (n,), generator=gen).float()
    sign = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    return magnitude * sign


def _log_uniform(n, gen, low, high):
    return torch.exp(math.log(low) + (math.log(high) - math.log(low)) * torch.rand(n, generator=gen))


def _column(t):
    return t.reshape(-1, 1)


def _shift_edit(name, fn):
    return Edit(
        name=name, apply=fn, sliders=1,
        sample_train=lambda n, gen, s: _signed_ints(n, gen, s // 2),
        test_alphas=lambda s: np.linspace(-s, s, 9).tolist(),
        walk_input=lambda a, s: _column(torch.as_tensor(a, dtype=torch.float32) / (s // 2)),
        valid=lambda s: (-2.0 * s, 2.0 * s), identity=0.0,
        step_mode="add", step_eps=lambda s: s / 10, max_steps=5, lr=3e-2,
        convention="pixels; the walk sees alpha / (S/2)",
        show_alphas=lambda s: np.linspace(-(s // 2), s // 2, 7).tolist(),
    )


EDITS = {
    "zoom": Edit(
        name="zoom", apply=zoom, sliders=1,
        sample_train=lambda n, gen, s: _log_uniform(n, gen, 0.25, 4.0),
        test_alphas=lambda s: (2.0 ** np.linspace(-4, 4, 9)).tolist(),
        walk_input=lambda a, s: _column(torch.log(torch.as_tensor(a, dtype=torch.float32))),
        valid=lambda s: (1 / 64, 64.0), identity=1.0,
        step_mode="multiply", step_eps=lambda s: 1.41, max_steps=4, lr=5e-3,
        convention="zoom factor (>1 in); the walk sees log(alpha)",
        show_alphas=lambda s: (2.0 ** np.linspace(-2, 2, 7)).tolist(),
    ),
    "shift_x": _shift_edit("shift_x", shift_x),
    "shift_y": _shift_edit("shift_y", shift_y),
    "rotate": Edit(
        name="rotate", apply=rotate, sliders=1,
        sample_train=lambda n, gen, s: _signed_ints(n, gen, 45),
        test_alphas=lambda s: np.linspace(-90, 90, 7).tolist(),
        walk_input=lambda a, s: _column(torch.as_tensor(a, dtype=torch.float32) / 45.0),
        valid=lambda s: (-360.0, 360.0), identity=0.0,
        step_mode="add", step_eps=lambda s: 10.0, max_steps=5, lr=5e-3,
        convention="degrees counter-clockwise; the walk sees alpha / 45",
        show_alphas=lambda s: np.linspace(-45, 45, 7).tolist(),
    ),
    "colour": Edit(
        name="colour", apply=colour, sliders=3,
        sample_train=lambda n, gen, s: torch.rand(n, 3, generator=gen) - 0.5,
        test_alphas=lambda s: np.linspace(-1, 1, 9).tolist(),
        walk_input=lambda a, s: torch.as_tensor(a, dtype=torch.float32).reshape(-1, 3),
        valid=lambda s: (-2.0, 2.0), identity=0.0,
        step_mode="add", step_eps=lambda s: 0.1, max_steps=5, lr=5e-3,
        convention="RGB offsets in [-1,1] image units, one slider per channel",
        show_alphas=lambda s: np.linspace(-0.5, 0.5, 7).tolist(),
    ),
    "brightness": Edit(
        name="brightness", apply=brightness, sliders=1,
        sample_train=lambda n, gen, s: torch.rand(n, generator=gen) - 0.5,
        test_alphas=lambda s: np.linspace(-1, 1, 9).tolist(),
        walk_input=lambda a, s: _column(torch.as_tensor(a, dtype=torch.float32)),
        valid=lambda s: (-2.0, 2.0), identity=0.0,
        step_mode="add", step_eps=lambda s: 0.1, max_steps=5, lr=5e-3,
        convention="offset on all channels in [-1,1] image units",
        show_alphas=lambda s: np.linspace(-0.5, 0.5, 7).tolist(),
    ),
}
EDITS["color"] = EDITS["colour"]  # the spelling of the paper's code
EDITS["shiftx"] = EDITS["shift_x"]  # ... and its names for the shifts
EDITS["shifty"] = EDITS["shift_y"]
ALIASES = ("color", "shiftx", "shifty")


def with_training_limit(edit: Edit, limit: float) -> Edit:
    """The same edit with its training alphas drawn up to `limit` instead of its default range:
    whole units in +-(1..limit) for shifts and rotation, a factor log-uniform in
    [1/limit, limit] for zoom (the steerability paper's MNIST walks train rotations to 20 deg)."""
    import dataclasses
    if edit.name == "zoom":
        if not limit > 1:
            raise SteerError(f"--alpha-max for zoom is a factor above 1, got {limit:g}")
        sample = lambda n, gen, s: _log_uniform(n, gen, 1 / limit, limit)  # noqa: E731
    elif edit.name in ("rotate", "shift_x", "shift_y"):
        if not limit >= 1:
            raise SteerError(f"--alpha-max for {edit.name} is at least 1 (whole units), got {limit:g}")
        sample = lambda n, gen, s: _signed_ints(n, gen, int(limit))  # noqa: E731
    else:
        raise SteerError(f"--alpha-max applies to zoom, shift_x, shift_y and rotate, not {edit.name}")
    return dataclasses.replace(edit, sample_train=sample)


def get_edit(name: str) -> Edit:
    if name not in EDITS:
        raise SteerError(f"unknown edit '{name}': choose one of {', '.join(n for n in EDITS if n not in ALIASES)}")
    return EDITS[name]

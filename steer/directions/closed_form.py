"""Closed-form walk directions (Spingarn-Eliezer, Banner & Michaeli, "GAN steerability
without optimization", ICLR 2021), for generators whose first layer is a linear map from
(part of) the latent onto a k x k grid (the `first_layer()` hook, see generators.base).

With the first layer f(z) = W z + b on the grid, an edit of the image is asked of the grid:
P, the same zoom or shift applied to the k x k map (a shift of s pixels is s*k/S cells),
and D, the cells that edit leaves defined. Moving z by t*q changes the grid by t*W q, so q
should make D W q t match D (P - I) b, the change the edit makes to the bias. Averaged over
z ~ N(0, I) the part of the error that depends on z does not depend on q (E[z] = 0), so
this least-squares problem is the whole expected error:

    q = argmin sum_alpha || t_alpha D_alpha W q - D_alpha (P_alpha - I) b ||^2
      = (sum t^2 W'D W)^-1 sum t W'D (P - I) b

with t_alpha what a linear walk multiplies its direction by (log alpha for zoom, alpha/(S/2)
for shifts) over a spread of alphas across the training range: the paper's
q = (W'D'DW)^-1 W'D'(P - D) b, pooled over the alphas so that one direction serves the
whole range. The result is a LinearWalk, saved and rendered like a learned one.
"""
from __future__ import annotations

import torch

from ..edits import Edit
from ..errors import SteerError
from ..walks import LinearWalk

CLOSED_FORM_EDITS = ("zoom", "shift_x", "shift_y")


def grid_alpha(edit: Edit, alpha: float, grid: int, resolution: int) -> float:
    """The image edit's alpha as the same edit of the k x k grid: zoom factors are the same,
    pixel shifts shrink by k / S."""
    return alpha if edit.name == "zoom" else alpha * grid / resolution


def closed_form_direction(layer, edit: Edit, resolution: int, alphas=None) -> torch.Tensor:
    """The direction q (d,) over the latent slice the first layer reads."""
    if edit.name not in CLOSED_FORM_EDITS:
        raise SteerError(f"closed-form directions exist for {', '.join(CLOSED_FORM_EDITS)}, not {edit.name}")
    weight = layer.weight.detach().double().cpu()  # (C, k, k, d)
    bias = layer.bias.detach().double().cpu()      # (C, k, k)
    channels, grid, _, d = weight.shape
    alphas = edit.show_alphas(resolution) if alphas is None else alphas
    # W'W per grid cell, once: each alpha's W'DW is then a masked sum of these
    per_cell = weight.reshape(channels, grid * grid, d).permute(1, 2, 0).float()  # (k*k, d, C)
    cell_gram = torch.bmm(per_cell, per_cell.transpose(1, 2)).double()
    gram = torch.zeros(d, d, dtype=torch.float64)
    rhs = torch.zeros(d, dtype=torch.float64)
    for alpha in alphas:
        t = float(edit.walk_input(alpha, resolution).reshape(-1)[0])
        if t == 0:
            continue  # the identity asks nothing of the direction
        # P b and D: the edit itself, applied to the bias grid as if it were an image
        moved, mask = edit(bias[None].float(), grid_alpha(edit, alpha, grid, resolution))
        moved, mask = moved[0].double(), mask[0, 0].double()  # (C, k, k), (k, k)
        gram += t * t * torch.einsum("p,pde->de", mask.reshape(-1), cell_gram)
        rhs += t * torch.einsum("cijd,cij->d", weight * mask[None, :, :, None], moved - bias)
    if not rhs.abs().sum() > 0:
        raise SteerError("the first layer's bias is flat under this edit, so it fixes no direction")
    # a whisper of ridge keeps the solve defined when W has (near) null directions
    ridge = 1e-10 * gram.diagonal().mean().clamp_min(1e-30)
    return torch.linalg.solve(gram + ridge * torch.eye(d, dtype=torch.float64), rhs).float()


def closed_form_walk(generator, edit: Edit, alphas=None) -> LinearWalk:
    """A LinearWalk in z whose direction is the closed-form one (zero outside the latent
    slice the first layer reads)."""
    if not hasattr(generator, "first_layer"):
        raise SteerError(f"{generator.name or type(generator).__name__} has no linear first layer onto a "
                         "spatial grid (first_layer()), so closed-form directions do not apply; "
                         "learn a walk instead (--method learned)")
    if edit.sliders != 1:
        raise SteerError(f"closed-form directions exist for {', '.join(CLOSED_FORM_EDITS)}, not {edit.name}")
    layer = generator.first_layer()
    q = closed_form_direction(layer, edit, generator.resolution, alphas)
    walk = LinearWalk((generator.latent_dim,), sliders=1, init_std=0.0)
    with torch.no_grad():
        walk.directions[0, layer.latent] = q
    return walk.to(generator.device)


def first_layer_error(layer, direction: torch.Tensor, edit: Edit, resolution: int, alpha: float) -> float:
    """Relative masked error of the first layer's bias grid moved by the direction against
    the edited bias grid, at one alpha (0: perfect, 1: no better than not moving)."""
    weight, bias = layer.weight.detach().double(), layer.bias.detach().double()
    grid = weight.shape[1]
    t = float(edit.walk_input(alpha, resolution).reshape(-1)[0])
    target, mask = edit(bias[None].float(), grid_alpha(edit, alpha, grid, resolution))
    target, mask = target[0].double(), mask[0].double()
    moved = bias + t * torch.einsum("cijd,d->cij", weight, direction.double())
    return float(((moved - target) ** 2 * mask).sum() / ((bias - target) ** 2 * mask).sum().clamp_min(1e-30))


__all__ = ["CLOSED_FORM_EDITS", "closed_form_direction", "closed_form_walk", "first_layer_error"]

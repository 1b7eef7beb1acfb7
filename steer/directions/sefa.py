"""SeFa: closed-form factorisation of latent semantics (Shen & Zhou, CVPR 2021).

The first thing a generator does with a latent is a linear map A: a style affine per
StyleGAN layer (A: w -> styles), or the first layer of a z-fed generator (A: z -> a grid).
Moving the latent by n changes that map's output by A n, so the directions that change it
most are the unit n maximising |A n|^2 = n'A'A n: the top eigenvectors of A'A. For a range
of StyleGAN layers A stacks their affines (the same w feeds them all). As in the paper's
code each row of A (one output unit) is scaled to unit length first, so no layer or channel
counts more because of its weight scale.

Nothing is sampled or run through the generator: the hooks give the weights
(`style_affines()` for the StyleGAN families, `first_layer()` for the others).
"""
from __future__ import annotations

import time

import torch

from ..errors import SteerError
from .common import Directions, DirectionSpace, check_count, direction_space


def factorise(weight: torch.Tensor, k: int, normalise: bool = True):
    """The top-k eigenvectors (k, d) and eigenvalues of A'A for A (m, d), largest first."""
    a = weight.detach().double().cpu()
    if normalise:
        a = a / a.norm(dim=1, keepdim=True).clamp_min(1e-30)
    values, vectors = torch.linalg.eigh(a.T @ a)  # ascending
    order = torch.argsort(values, descending=True)[:k]
    vectors = vectors[:, order].T
    # an eigenvector's sign is arbitrary: point each toward its largest entry, so reruns agree
    flip = torch.sign(vectors.gather(1, vectors.abs().argmax(1, keepdim=True)))
    return (vectors * flip).float(), values[order].tolist()


def latent_weights(generator, where: DirectionSpace) -> torch.Tensor:
    """A: the linear map from the direction space onto what first reads it, (m, dim)."""
    if where.sampled_space == "w":
        if not hasattr(generator, "style_affines"):
            raise SteerError(f"{generator.name} has no style affines (style_affines()), so SeFa cannot work in w")
        rows = generator.style_affines()
        start, stop = where.layers if where.layers else (0, len(rows))
        mats = [m for row in rows[start:stop] for m in row]
        if not mats:
            raise SteerError(f"layers {start}:{stop} read no style affine")
        return torch.cat([m.detach().float().reshape(-1, where.dim) for m in mats])
    if where.space != "z":
        raise SteerError(f"SeFa works in z (the first layer) or w (the style affines), not {where.space}")
    if not hasattr(generator, "first_layer"):
        raise SteerError(f"{generator.name} has no linear first layer reading z (first_layer()), so SeFa does "
                         "not apply in z")
    layer = generator.first_layer()
    weight = layer.weight.detach()
    return weight.reshape(-1, weight.shape[-1])


def sefa_space(generator, space: str | None = None, layers=None) -> DirectionSpace:
    """SeFa's direction space: w (or w+ rows) where the model has style affines, else the
    part of z its first layer reads."""
    if layers is None and space is None and hasattr(generator, "style_affines") and "w" in generator.spaces:
        space = "w"
    where = direction_space(generator, space, layers)
    if where.space == "z" and hasattr(generator, "first_layer"):
        latent = generator.first_layer().latent
        where = DirectionSpace("z", latent.stop - latent.start, latent=latent)
    return where


def sefa(generator, components: int = 5, space: str | None = None, layers=None, normalise: bool = True) -> Directions:
    """The top `components` SeFa directions of a model (see the module's docstring)."""
    where = sefa_space(generator, space, layers)
    k = check_count(components, where.dim)
    started = time.perf_counter()
    weight = latent_weights(generator, where)
    vectors, values = factorise(weight, k, normalise)
    seconds = time.perf_counter() - started
    return Directions("sefa", vectors, values, "eigenvalue of A'A", where,
                      settings={"components": k, "normalise_rows": normalise, "weight_rows": int(weight.shape[0])},
                      report={"seconds": seconds})

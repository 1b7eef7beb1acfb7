"""Jacobian (pullback) directions: the top right-singular vectors of the generator's
Jacobian J = d image / d latent (LowRankGAN, Zhu et al. 2021; the pullback directions of
Park et al. 2023 for diffusion models).

A unit move n of the latent changes the image by about J n, so the directions that change
the image most are the top eigenvectors of J'J: at one latent (local directions), or of the
mean of J'J over sampled latents (global directions, one set for the whole space).

J is never formed. Subspace (block power) iteration only needs J'J V for a few vectors V:
J V by forward-mode products (torch.func.jvp; double backward where an op has no forward
rule, central differences where neither works), then J'(J V) by one backward pass. The vectors go through the generator `chunk` at a
time as a batch, so memory is that of a `chunk`-image batch with gradients, whatever the
resolution. A Rayleigh-Ritz step at the end turns the iterated subspace into the vectors.
"""
from __future__ import annotations

import torch

from .common import Directions, DirectionSpace, check_count, direction_space, seed_latents, truncation_kw


JVP_METHODS = ("forward-mode", "double-backward", "finite-difference")
FD_STEP = 1e-2  # central differences, in latent units (z has unit spread): error ~ step^2


def _jvp(f, u0, tangents, state: dict):
    """J tangents for the function f at u0 (rows are separate samples). Tries forward mode,
    then double backward (J v = d/dr [(J' r) . v]), then central differences, for ops that
    have no forward rule or no differentiable backward (DSS-GAN's CPU scan); `state` keeps
    the first that worked, so later calls go straight to it."""
    for how in JVP_METHODS[JVP_METHODS.index(state.get("jvp", JVP_METHODS[0])):]:
        try:
            if how == "forward-mode":
                jv = torch.func.jvp(f, (u0,), (tangents,))[1]
            elif how == "double-backward":
                u = u0.clone().requires_grad_(True)
                y = f(u)
                r = torch.zeros_like(y, requires_grad=True)
                (jt_r,) = torch.autograd.grad(y, u, r, create_graph=True)
                (jv,) = torch.autograd.grad(jt_r, r, tangents)
            else:
                with torch.no_grad():
                    jv = (f(u0 + FD_STEP * tangents) - f(u0 - FD_STEP * tangents)) / (2 * FD_STEP)
        except (RuntimeError, NotImplementedError):
            if how == JVP_METHODS[-1]:
                raise
            continue
        state["jvp"] = how
        return jv.detach()


def gram_product(f, dim: int, vectors: torch.Tensor, chunk: int = 4, state: dict | None = None) -> torch.Tensor:
    """J'J applied to each column of `vectors` (dim, r), `chunk` columns per batch."""
    state = {} if state is None else state
    out = []
    for i in range(0, vectors.shape[1], chunk):
        v = vectors[:, i:i + chunk].T.contiguous()  # (c, dim)
        u0 = torch.zeros_like(v)
        jv = _jvp(f, u0, v, state)
        u = u0.clone().requires_grad_(True)
        (jtjv,) = torch.autograd.grad(f(u), u, jv)
        out.append(jtjv.detach().T)
    return torch.cat(out, dim=1)


def image_map(generator, base, classes, where: DirectionSpace, truncation=None):
    """u (c, dim) -> the images (c, pixels) of the one latent `base` moved by each row of u."""
    shape = tuple(base.shape[1:])
    kw = truncation_kw(truncation)

    def f(u):
        latent = base.expand(u.shape[0], *shape) + where.embed(u, shape)
        c = None if classes is None else classes.expand(u.shape[0])
        return generator.synthesize(latent, c, where.space, **kw).reshape(u.shape[0], -1).float()
    return f


def top_singular(maps, dim: int, k: int, iterations: int = 10, oversample: int = 4, chunk: int = 4,
                 seed: int = 0, device=None, state: dict | None = None):
    """The top-k eigenvectors (k, dim) and eigenvalues of the mean of J_i'J_i over the maps
    f_i (u -> image), by subspace iteration with `oversample` extra vectors."""
    r = min(dim, k + oversample)
    gen = torch.Generator().manual_seed(seed)
    v = torch.linalg.qr(torch.randn(dim, r, generator=gen, dtype=torch.float64))[0]
    for it in range(max(1, iterations)):
        vf = v.float().to(device)
        w = sum(gram_product(f, dim, vf, chunk, state).double().cpu() for f in maps) / len(maps)
        if it < iterations - 1:
            v = torch.linalg.qr(w)[0]
    # Rayleigh-Ritz: the best k vectors inside the subspace, with their eigenvalues
    h = v.T @ w
    values, small = torch.linalg.eigh(0.5 * (h + h.T))
    order = torch.argsort(values, descending=True)[:k]
    vectors = (v @ small[:, order]).T
    flip = torch.sign(vectors.gather(1, vectors.abs().argmax(1, keepdim=True)))
    return (vectors * flip).float(), values[order].tolist()


def default_chunk(resolution: int) -> int:
    """Vectors per batch: 16 at 64 px and below, one at 256 px (a batch of gradient-carrying
    images of about 64 k pixels each pass, whatever the resolution)."""
    return max(1, min(16, (64 * 64 * 16) // (resolution * resolution)))


def jacobian(generator, components: int = 5, kind: str = "global", samples: int = 8, space: str | None = None,
             layers=None, seed: int = 0, iterations: int = 10, oversample: int = 4, chunk: int | None = None,
             truncation=None) -> Directions:
    """Local (at seed's latent) or global (averaged over `samples` seeds' latents) Jacobian
    directions; see the module's docstring."""
    chunk = default_chunk(generator.resolution) if chunk is None else max(1, int(chunk))
    from ..errors import SteerError
    if kind not in ("local", "global"):
        raise SteerError(f"Jacobian directions are local or global, not {kind!r}")
    where = direction_space(generator, space, layers)
    k = check_count(components, where.dim)
    seeds = [seed] if kind == "local" else list(range(seed, seed + int(samples)))
    base, classes = seed_latents(generator, seeds, where.space, truncation)
    maps = [image_map(generator, base[i:i + 1], None if classes is None else classes[i:i + 1], where, truncation)
            for i in range(len(seeds))]
    state = {}
    vectors, values = top_singular(maps, where.dim, k, iterations, oversample, chunk, seed, generator.device, state)
    pixels = generator.resolution ** 2 * 3
    return Directions("jacobian", vectors, values, "eigenvalue of the mean J'J", where,
                      settings={"components": k, "kind": kind, "seeds": seeds if kind == "local" else
                                [seeds[0], seeds[-1] + 1], "iterations": iterations, "oversample": oversample,
                                "chunk": chunk},
                      report={"jvp": state.get("jvp"), "singular_values_per_pixel": [max(v, 0) ** 0.5 / pixels ** 0.5 for v in values]})

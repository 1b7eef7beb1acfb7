"""Probe DSS-GAN's directional latent subvectors: does each scan direction's chunk of z
specialise in structure along that direction, does routing leave uniform, and which
directions carry the class?

- Perturbation: move one chunk of z by +-sigma along random unit vectors (and along each
  of its coordinates), render, and split the 2-D power spectrum of the change G(z+d) -
  G(z-d) into four 45-degree wedges named by the lines that make them up: horizontal,
  vertical, "/" (x + y constant, what diagonal scans trace) and "\\". A direction's
  specialisation score is its change's energy share in its own scan's orientation minus the
  share for a control of the same norm: z_base, and a random direction spread over all
  direction chunks. Bootstrap confidence intervals and a permutation test come with it.
- Per scale: the perturbed latent feeds one Mamba stage at a time.
- Routing: the softmax weights of every directional block, per stage, sample and class.
- Class override: each subset of directions gets the next class's embedding.

Works on any generator with `latent_layout()`; the per-scale, routing and override parts
need DSS-GAN's stages and are skipped for generators without them.
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import torch

ORIENTATIONS = ("horizontal", "vertical", "slash", "backslash")
ORIENTATION_INDEX = {name: i for i, name in enumerate(ORIENTATIONS)}
# the lines each scan runs along (rows, columns, anti-diagonals i + j = k)
SCAN_LINES = {"row_fwd": "horizontal", "row_bwd": "horizontal", "col_fwd": "vertical",
              "col_bwd": "vertical", "diag_left": "slash", "diag_right": "slash"}
CONTROLS = ("z_base", "all_directions")


def orientation_shares(images: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, 4): each image's spectral energy (mean removed) split by the
    orientation of the lines it is made of, in ORIENTATIONS order; rows sum to 1."""
    h, w = images.shape[-2:]
    x = images.float() - images.float().mean((-2, -1), keepdim=True)
    power = torch.fft.fft2(x).abs().square().sum(1)
    fy, fx = torch.fft.fftfreq(h)[:, None], torch.fft.fftfreq(w)[None, :]
    # a frequency vector at angle theta makes lines perpendicular to it: 0 -> vertical lines,
    # pi/4 -> "/" (y points down), pi/2 -> horizontal, 3pi/4 -> "\"
    theta = torch.atan2(fy.expand(h, w), fx.expand(h, w)) % math.pi
    wedge = torch.round(theta / (math.pi / 4)).long() % 4
    order = torch.tensor([1, 2, 0, 3])  # wedge index -> position in ORIENTATIONS
    wedge = order[wedge]
    wedge[0, 0] = -1  # the mean is removed; keep the DC bin out of every wedge
    shares = torch.stack([(power * (wedge == k)).sum((1, 2)) for k in range(4)], 1)
    return shares / shares.sum(1, keepdim=True).clamp_min(1e-20)


def _random_unit(n: int, dim: int, gen) -> torch.Tensor:
    v = torch.randn(n, dim, generator=gen)
    return v / v.norm(dim=1, keepdim=True)


def _perturbation(z, part: slice | list, unit) -> torch.Tensor:
    """A (N, z_dim) perturbation that is `unit` on the coordinates of `part`, zero elsewhere."""
    delta = torch.zeros_like(z)
    index = torch.arange(z.shape[1])[part] if isinstance(part, slice) else torch.tensor(part)
    delta[:, index.to(z.device)] = unit.to(z)
    return delta


@torch.no_grad()
def _change_shares(G, z, classes, delta, stage=None) -> torch.Tensor:
    """Orientation shares of G(z + delta) - G(z - delta), optionally fed to one stage only."""
    if stage is None:
        change = G.synthesize(z + delta, classes) - G.synthesize(z - delta, classes)
    else:
        change = (G.synthesize(z, classes, stage_latents={stage: z + delta})
                  - G.synthesize(z, classes, stage_latents={stage: z - delta}))
    return orientation_shares(change.cpu())


def bootstrap_ci(a: np.ndarray, b: np.ndarray, rounds: int = 2000, level: float = 0.95, seed: int = 0):
    """Confidence interval of mean(a) - mean(b) by resampling each group."""
    rng = np.random.default_rng(seed)
    diffs = [rng.choice(a, len(a)).mean() - rng.choice(b, len(b)).mean() for _ in range(rounds)]
    tail = (1 - level) / 2
    return float(np.quantile(diffs, tail)), float(np.quantile(diffs, 1 - tail))


def permutation_p(a: np.ndarray, b: np.ndarray, rounds: int = 2000, seed: int = 0) -> float:
    """Two-sided permutation p-value of mean(a) - mean(b) (add-one, so never exactly 0)."""
    rng = np.random.default_rng(seed)
    pooled, observed = np.concatenate([a, b]), abs(a.mean() - b.mean())
    hits = 0
    for _ in range(rounds):
        rng.shuffle(pooled)
        hits += abs(pooled[:len(a)].mean() - pooled[len(a):].mean()) >= observed - 1e-12
    return float((hits + 1) / (rounds + 1))


def _score(own: np.ndarray, control: np.ndarray, seed: int) -> dict:
    low, high = bootstrap_ci(own, control, seed=seed)
    return {"score": float(own.mean() - control.mean()), "ci95": [low, high],
            "p_permutation": permutation_p(own, control, seed=seed)}


def _parts(G) -> dict:
    """name -> coordinates of z: each direction's chunk, z_base, and all direction chunks."""
    layout = G.latent_layout()
    directions = [name for name in layout if name != "z_base"]
    parts = {name: layout[name] for name in directions}
    parts["z_base"] = layout["z_base"]
    parts["all_directions"] = [i for name in directions for i in range(layout[name].start, layout[name].stop)]
    return parts


def _size(part) -> int:
    return part.stop - part.start if isinstance(part, slice) else len(part)


def perturbation_probe(G, z, classes, sigma: float = 1.0, seed: int = 0, coordinate_samples: int = 8) -> dict:
    """Orientation shares per part of z under random +-sigma perturbations, the per-direction
    specialisation scores against both controls, and per-coordinate shares."""
    parts, gen = _parts(G), torch.Generator().manual_seed(seed)
    shares = {}
    for name, part in parts.items():
        unit = _random_unit(len(z), _size(part), gen) * sigma
        shares[name] = _change_shares(G, z, classes, _perturbation(z, part, unit)).numpy()
    result = {"sigma": sigma, "samples": len(z), "orientations": list(ORIENTATIONS),
              "mean_shares": {name: s.mean(0).tolist() for name, s in shares.items()}, "scores": {},
              "coordinates": {}}
    for name in parts:
        if name in CONTROLS:
            continue
        k = ORIENTATION_INDEX[SCAN_LINES[name]]
        result["scores"][name] = {"orientation": ORIENTATIONS[k], **{
            f"vs_{control}": _score(shares[name][:, k], shares[control][:, k], seed) for control in CONTROLS}}
        # one coordinate at a time, on the first few samples (sigma along each axis)
        m, part = min(coordinate_samples, len(z)), parts[name]
        per_coordinate = []
        for i in range(_size(part)):
            unit = torch.zeros(m, _size(part))
            unit[:, i] = sigma
            s = _change_shares(G, z[:m], classes[:m] if classes is not None else None,
                               _perturbation(z[:m], part, unit))
            per_coordinate.append(s.mean(0).tolist())
        result["coordinates"][name] = per_coordinate
    return result


def scale_probe(G, z, classes, sigma: float = 1.0, seed: int = 0) -> dict:
    """direction x stage x orientation mean shares, the perturbed latent fed to one Mamba
    stage at a time; the control is a random direction spread over all direction chunks
    (z_base feeds the token stage only, so it has no per-stage control)."""
    parts, gen = _parts(G), torch.Generator().manual_seed(seed + 1)
    names = [name for name in parts if name != "z_base"]
    units = {name: _random_unit(len(z), _size(parts[name]), gen) * sigma for name in names}
    table, scores = {}, {}
    for stage in G.stage_sizes:
        shares = {name: _change_shares(G, z, classes, _perturbation(z, parts[name], units[name]), stage).numpy()
                  for name in names}
        table[str(stage)] = {name: s.mean(0).tolist() for name, s in shares.items()}
        scores[str(stage)] = {}
        for name in names:
            if name == "all_directions":
                continue
            k = ORIENTATION_INDEX[SCAN_LINES[name]]
            scores[str(stage)][name] = _score(shares[name][:, k], shares["all_directions"][:, k], seed)
    return {"mean_shares": table, "scores_vs_all_directions": scores}


def _entropy(weights: torch.Tensor) -> torch.Tensor:
    """Entropy of each row of weights, divided by log K (1 = uniform)."""
    return -(weights * weights.clamp_min(1e-12).log()).sum(-1) / math.log(weights.shape[-1])


@torch.no_grad()
def routing_probe(G, z, classes) -> dict:
    """The routing softmax weights of every directional block: mean weights, normalised
    entropy and largest deviation from uniform, per block and per class."""
    from .generators.dssgan.generator import DirectionalWeighting

    records, hooks = {}, []
    for name, module in G.named_modules():
        if isinstance(module, DirectionalWeighting):
            block = name.rsplit(".direction_weighting", 1)[0]
            hooks.append(module.register_forward_hook(
                lambda m, args, out, block=block: records.__setitem__(block, out.detach().cpu())))
    try:
        G.synthesize(z, classes)
    finally:
        for hook in hooks:
            hook.remove()

    def summary(w):
        k = w.shape[-1]
        # one direction: the softmax is 1 whatever it sees, and a normalised entropy means nothing
        entropy = float(_entropy(w).mean()) if k > 1 else None
        return {"mean_weights": w.mean(0).tolist(), "entropy": entropy,
                "max_deviation_from_uniform": float((w - 1 / k).abs().amax(-1).mean())}

    result = {}
    for block, w in records.items():
        w = w.expand(len(z), -1)
        entry = summary(w)
        if classes is not None:
            entry["per_class"] = {str(c): summary(w[classes.cpu() == c]) for c in classes.unique().tolist()}
        result[block] = entry
    return result


@torch.no_grad()
def override_probe(G, z, classes, classifier=None) -> dict:
    """Each non-empty subset of directions gets class (y + 1) mod C for its DLR embedding.
    Movement: pixel distance to the unchanged image over that of the all-directions
    override; with a classifier, how often the image is then read as the new class."""
    directions = list(G.scan_directions)
    target = (classes + 1) % G.num_classes
    base = G.synthesize(z, classes)
    full = G.synthesize(z, classes, direction_classes=target[:, None].expand(-1, len(directions)))
    full_distance = (full - base).flatten(1).norm(dim=1).clamp_min(1e-8)
    result = {}
    for r in range(1, len(directions) + 1):
        for subset in itertools.combinations(range(len(directions)), r):
            chosen = torch.zeros(len(directions), dtype=torch.bool)
            chosen[list(subset)] = True
            per_direction = torch.where(chosen.to(z.device)[None], target[:, None], classes[:, None])
            images = G.synthesize(z, classes, direction_classes=per_direction)
            entry = {"pixel_movement": float(((images - base).flatten(1).norm(dim=1) / full_distance).mean())}
            if classifier is not None:
                predicted = classifier(images).argmax(1)
                entry["read_as_new_class"] = float((predicted == target).float().mean())
                entry["read_as_own_class"] = float((predicted == classes).float().mean())
            result["+".join(directions[i] for i in subset)] = entry
    if classifier is not None:
        result["none"] = {"read_as_own_class": float((classifier(base).argmax(1) == classes).float().mean())}
    return result


def run_probe(G, samples: int = 64, sigma: float = 1.0, seed: int = 0, classifier=None) -> dict:
    """Every part of the probe that `G` supports, as one JSON-ready dict."""
    z, classes = G.sample(samples, seed=seed)
    result = {"model": getattr(G, "name", ""), "samples": samples, "sigma": sigma, "seed": seed,
              "layout": {k: [v.start, v.stop] for k, v in G.latent_layout().items()},
              "perturbation": perturbation_probe(G, z, classes, sigma, seed)}
    if hasattr(G, "stage_sizes"):
        result["scales"] = scale_probe(G, z, classes, sigma, seed)
        result["routing"] = routing_probe(G, z, classes)
        if G.num_classes > 1:
            result["class_override"] = override_probe(G, z, classes, classifier)
    return result


@torch.no_grad()
def perturbation_examples(G, z, classes, sigma: float = 1.0, seed: int = 0):
    """(rows, columns, 3, H, W) pictures for a figure: each row a sample, its image first,
    then the change G(z+d) - G(z-d) for each part of z, each scaled to fill [-1, 1]."""
    parts, gen = _parts(G), torch.Generator().manual_seed(seed + 2)
    columns = [G.synthesize(z, classes)]
    for part in parts.values():
        delta = _perturbation(z, part, _random_unit(len(z), _size(part), gen) * sigma)
        change = G.synthesize(z + delta, classes) - G.synthesize(z - delta, classes)
        columns.append(change / change.flatten(1).abs().amax(1).clamp_min(1e-8)[:, None, None, None])
    return torch.stack(columns, 1).cpu(), ["image", *parts]

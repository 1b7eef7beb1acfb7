"""How far a walk can move an attribute: sweeps of alpha beyond the training range.

For each alpha the same latents are walked; the attribute is measured on the walked images
G(walk(z, alpha)), on the target edits edit(G(z), alpha) of the same samples, and once on
the training data. Per alpha we report the median and spread of each, the 1-D Wasserstein
distance of the walked (and target) values to the data's, and the Frechet distance of the
walked images to the data in a feature network (realism).

Three summaries say how far the walk steers (`steerability_summary`):
  slope       of the achieved attribute on the target, per sample, over the edit's training
              range (log area for zoom): 1 follows the edit fully, 0 not at all; a bootstrap
              interval that resamples latents (each latent gives one point per alpha);
  saturation  the alpha on each side beyond which the walked median stays within 5 % of its
              extreme change, interpolated on a fine grid;
  reach       the alpha range around the identity where the walked median stays within half
              the data's interquartile range of the target median: the tolerance is in units
              of how much the attribute varies in the training data.
The older rule (`follows_target`: the walked median within a fraction of the target median,
on the sweep's own grid) is kept in the JSON. The steerability paper's claim is that reach
follows the attribute's spread in the training data.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from scipy.stats import wasserstein_distance

from .attributes import Estimator
from .edits import Edit
from .metrics import frechet_distance
from .stats import reach_relative_to_spread, saturation_alpha, slope_with_interval
from .steering import Steering

QUANTILES = {"q10": 0.10, "q25": 0.25, "q75": 0.75, "q90": 0.90}
REACH_TOLERANCE = 0.5  # of the data's interquartile range


def summarise(values) -> dict:
    """Median, quartiles, 10th/90th percentiles and mean of the measurable values."""
    v = np.asarray(values, dtype=np.float64)
    ok = v[np.isfinite(v)]
    if len(ok) == 0:
        return {"median": None, **{k: None for k in QUANTILES}, "mean": None, "measured": 0, "missing": len(v)}
    return {"median": float(np.median(ok)), **{k: float(np.quantile(ok, q)) for k, q in QUANTILES.items()},
            "mean": float(ok.mean()), "measured": int(len(ok)), "missing": int(len(v) - len(ok))}


def _wasserstein(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    return float(wasserstein_distance(a, b)) if len(a) and len(b) else None


def follows(walked: float | None, target: float | None, tolerance: float, relative: bool) -> bool:
    """Whether a walked median is within tolerance of the target median."""
    if walked is None or target is None:
        return False
    allowed = tolerance * abs(target) if relative else tolerance
    return abs(walked - target) <= allowed


def reach(alphas, walked_medians, target_medians, identity: float, tolerance: float, relative: bool) -> dict:
    """The furthest alpha on each side of the identity up to which every alpha's walked median
    follows the target (contiguous from the identity). `at_grid_end`: every alpha on that side
    followed, so the true reach may lie beyond the grid."""
    rows = sorted(zip(alphas, walked_medians, target_medians), key=lambda r: r[0])
    out = {}
    for side, pick in (("low", lambda a: a < identity), ("high", lambda a: a > identity)):
        side_rows = [r for r in rows if pick(r[0])]
        side_rows.sort(key=lambda r: abs(r[0] - identity))
        furthest, all_followed = identity, True
        for a, w, t in side_rows:
            if not follows(w, t, tolerance, relative):
                all_followed = False
                break
            furthest = a
        out[side] = furthest
        out[f"{side}_at_grid_end"] = all_followed and bool(side_rows)
    return out


def background_fill(target: torch.Tensor, mask: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """The target with the pixels the edit left undefined painted in the source image's
    background colour (its border median), so a zoomed-out or shifted target reads as the
    object on its own background rather than on a black frame."""
    border = torch.cat([source[:, :, 0], source[:, :, -1], source[:, :, :, 0], source[:, :, :, -1]], dim=2)
    background = border.median(dim=2).values[:, :, None, None]
    return target * mask + background * (1 - mask)


def _alpha_batch(edit: Edit, alpha: float, n: int) -> torch.Tensor:
    """One sweep alpha for n samples; colour's three sliders move together."""
    return torch.full((n, edit.sliders), float(alpha)) if edit.sliders > 1 else torch.full((n,), float(alpha))


@torch.no_grad()
def sweep(generator, walk, edit: Edit, estimator: Estimator, alphas=None, samples: int = 200, seed: int = 0,
          space: str | None = None, classes=None, data=None, data_classes=None, features=None,
          tolerance: float | None = None, relative: bool | None = None, batch: int = 50, progress=None,
          truncation=None, reach_tolerance: float = None) -> dict:
    """Measure `estimator` along `walk` over `alphas` (default: the edit's test range).

    classes: one class per sample (conditional models; default: cycle through them).
    data: training images to compare with, or None. features: (fn, description) of a
    feature network for realism (Frechet distance to the data), or None.
    tolerance, relative: the older follows_target rule (default: the estimator's).
    reach_tolerance: the reach's share of the data's interquartile range (default 0.5).
    progress(done, total) is called after each batch. truncation: the walk's (None: none).
    """
    steering = Steering(generator, walk, edit, space, truncation=truncation)
    space = steering.space
    device = generator.device
    alphas = [float(a) for a in (edit.test_alphas(generator.resolution) if alphas is None else alphas)]
    tolerance = estimator.tolerance if tolerance is None else float(tolerance)
    relative = estimator.relative if relative is None else bool(relative)
    if generator.num_classes and classes is None:
        classes = torch.arange(samples) % generator.num_classes
    latent, c = steering.sample(samples, seed=seed, classes=classes)
    starts = list(range(0, samples, batch))
    total, done = len(starts) * (len(alphas) + 1), 0

    def tick():
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    def part(x, i):
        return None if x is None else x[i:i + batch]

    # the unwalked images, the source of every target edit
    source = []
    for i in starts:
        source.append(steering.synthesize(part(latent, i), part(c, i)).float().clamp(-1, 1))
        tick()
    feature_fn = features[0] if features is not None else None

    def feats(images):  # the feature networks offered (shapes classifier, pixels) are small: CPU
        return feature_fn(images.cpu()).double().numpy()

    walked_values, target_values, walked_fd, target_fd = [], [], [], []
    data_values = data_feats = None
    if data is not None:
        data_values = torch.cat([estimator(data[i:i + batch], part(data_classes, i)).cpu()
                                 for i in range(0, len(data), batch)]).numpy()
        if feature_fn is not None:
            data_feats = np.concatenate([feats(data[i:i + batch]) for i in range(0, len(data), batch)])
    for a in alphas:
        walked, target, f_walked, f_target = [], [], [], []
        for k, i in enumerate(starts):
            lat, cls = part(latent, i), part(c, i)
            n = len(lat)
            images, edited, mask = steering.pair(lat, cls, _alpha_batch(edit, a, n).to(device), source=source[k])
            images = images.float().clamp(-1, 1)
            edited = background_fill(edited, mask, source[k])
            walked.append(estimator(images, cls).cpu())
            target.append(estimator(edited, cls).cpu())
            if data_feats is not None:
                f_walked.append(feats(images))
                f_target.append(feats(edited))
            tick()
        walked_values.append(torch.cat(walked).numpy())
        target_values.append(torch.cat(target).numpy())
        if data_feats is not None:
            walked_fd.append(frechet_distance(np.concatenate(f_walked), data_feats))
            target_fd.append(frechet_distance(np.concatenate(f_target), data_feats))

    per_alpha = []
    for j, a in enumerate(alphas):
        row = {"alpha": a, "walked": summarise(walked_values[j]), "target": summarise(target_values[j])}
        if data_values is not None:
            row["wasserstein_walked_to_data"] = _wasserstein(walked_values[j], data_values)
            row["wasserstein_target_to_data"] = _wasserstein(target_values[j], data_values)
        if walked_fd:
            row["frechet_walked_to_data"] = walked_fd[j]
            row["frechet_target_to_data"] = target_fd[j]
        per_alpha.append(row)
    result = {
        "edit": edit.name, "alpha_convention": edit.convention, "identity": edit.identity, "alphas": alphas,
        "space": space, "samples": samples, "seed": seed,
        "estimator": {"name": estimator.name, "description": estimator.description, "units": estimator.units},
        "tolerance": {"value": tolerance, "relative": relative,
                      "rule": (f"|walked median - target median| <= {tolerance:g} x |target median|" if relative
                               else f"|walked median - target median| <= {tolerance:g} ({estimator.units})")},
        "per_alpha": per_alpha,
        "follows_target": reach(alphas, [r["walked"]["median"] for r in per_alpha],
                                [r["target"]["median"] for r in per_alpha], edit.identity, tolerance, relative),
        **steerability_summary(edit, estimator, alphas, walked_values, target_values, data_values,
                               generator.resolution, REACH_TOLERANCE if reach_tolerance is None else reach_tolerance),
        "values": {"walked": [_clean(v) for v in walked_values], "target": [_clean(v) for v in target_values]},
    }
    if data_values is not None:
        result["data"] = summarise(data_values)
        result["data"]["samples"] = len(data_values)
        result["values"]["data"] = _clean(data_values)
    if walked_fd:
        result["realism"] = {
            "feature_network": features[1], "samples_walked": samples, "samples_data": len(data),
            "note": f"Frechet distance from {samples} walked and {len(data)} data samples: biased upward at this "
                    "size and noisy; compare values within one run, against the identity alpha's"}
    return result


def attribute_scale(estimator: Estimator):
    """(transform, name): ratios such as areas are compared in logs, so that doubling and
    halving weigh the same; everything else as measured."""
    if estimator.relative:
        return (lambda v: np.log(np.where(np.asarray(v, dtype=np.float64) > 0, v, np.nan))), f"log {estimator.name}"
    return (lambda v: np.asarray(v, dtype=np.float64)), estimator.name


def alpha_scale(edit: Edit):
    """(to, back): the coordinate alpha is interpolated in, log2 for zoom (a factor)."""
    if edit.name == "zoom":
        return (lambda a: np.log2(np.asarray(a, dtype=np.float64))), (lambda x: float(2.0 ** x))
    return (lambda a: np.asarray(a, dtype=np.float64)), float


def steerability_summary(edit: Edit, estimator: Estimator, alphas, walked_values, target_values, data_values,
                         resolution: int, reach_tolerance: float = REACH_TOLERANCE, slope_boot: int = 1000) -> dict:
    """The slope of achieved on target, the saturation alpha and the reach relative to the data's
    spread (see the module docstring). walked_values, target_values: per alpha, one value per
    latent (NaN: not measurable); data_values: the training data's values, or None.
    slope_boot: bootstrap resamples for the slope's interval (0: the slope alone, for callers
    that bootstrap around this function themselves)."""
    value, scale_name = attribute_scale(estimator)
    to_alpha, back = alpha_scale(edit)
    show = edit.show_alphas(resolution)
    low, high = min(show), max(show)
    inside = [j for j, a in enumerate(alphas) if low - 1e-9 <= a <= high + 1e-9]
    x, y, latent = [], [], []
    for j in inside:
        t, w = value(target_values[j]), value(walked_values[j])
        ok = np.isfinite(t) & np.isfinite(w)
        x.append(t[ok]), y.append(w[ok]), latent.append(np.flatnonzero(ok))
    slope = None
    if x and sum(len(v) for v in x) > 2 and np.ptp(np.concatenate(x)) > 0:
        if slope_boot:
            fit = slope_with_interval(np.concatenate(x), np.concatenate(y), groups=np.concatenate(latent),
                                      n_boot=slope_boot, within=False)
        else:
            value_only = slope_with_interval(np.concatenate(x), np.concatenate(y), n_boot=1)
            fit = value_only._replace(low=float("nan"), high=float("nan"))
        slope = {"value": fit.slope, "low": fit.low, "high": fit.high, "level": fit.level,
                 "of": f"achieved {scale_name} on target {scale_name}, per sample",
                 "alphas": [alphas[j] for j in inside],
                 "interval": "bootstrap over latents (each latent's points at every alpha move together)"}

    def medians(values):
        return np.array([np.nanmedian(value(v)) if np.isfinite(value(v)).any() else np.nan for v in values])

    walked_median, target_median = medians(walked_values), medians(target_values)
    measured = np.isfinite(walked_median)
    saturation = {"low": None, "high": None, "fraction": 0.05,
                  "rule": "the alpha beyond which the walked median stays within 5 % of its extreme change on "
                          "that side (None: no plateau inside the sweep)"}
    if measured.sum() >= 3:
        sat_low, sat_high = saturation_alpha(to_alpha(np.asarray(alphas)[measured]), walked_median[measured],
                                             identity=float(to_alpha(edit.identity)))
        saturation.update(low=None if sat_low is None else back(sat_low),
                          high=None if sat_high is None else back(sat_high))
    reach_block = {"low": None, "high": None, "low_at_grid_end": False, "high_at_grid_end": False,
                   "tolerance": reach_tolerance, "data_spread": None,
                   "rule": f"|walked median - target median| <= {reach_tolerance:g} x the data's interquartile "
                           f"range of {scale_name}, interpolated on a fine alpha grid"}
    data = None if data_values is None else value(data_values)
    data = None if data is None else data[np.isfinite(data)]
    both = measured & np.isfinite(target_median)
    if data is None or len(data) < 4:
        reach_block["note"] = "needs the training data's spread (--data)"
    elif both.sum() >= 2:
        spread = float(np.subtract(*np.percentile(data, [75, 25])))
        reach_block["data_spread"] = spread
        found = reach_relative_to_spread(to_alpha(np.asarray(alphas)[both]), walked_median[both],
                                         target_median[both], spread, tolerance=reach_tolerance,
                                         identity=float(to_alpha(edit.identity)))
        if found is None:
            reach_block["note"] = "the walked median misses the target already at the identity"
        else:
            reach_block.update(low=back(found.low), high=back(found.high), low_at_grid_end=found.low_at_edge,
                               high_at_grid_end=found.high_at_edge)
    return {"slope": slope, "saturation": saturation, "reach": reach_block}


def _clean(values) -> list:
    """Values for JSON: NaN (not measurable) becomes null."""
    return [None if not math.isfinite(v) else round(float(v), 6) for v in np.asarray(values, dtype=np.float64)]

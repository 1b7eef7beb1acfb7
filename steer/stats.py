"""Small statistics for steerability results, in the form a reviewer accepts with few runs:
exact permutation p-values of correlations (a handful of models or walks, so no normal
approximation), bootstrap intervals for slopes that respect how the runs are grouped
(training seed, walk seed), and where along alpha a walk's effect saturates or leaves the
spread of the training data. numpy and scipy only."""
from __future__ import annotations

import itertools
import math
from typing import NamedTuple

import numpy as np
from scipy.stats import rankdata

EXACT_UP_TO = 8  # 8! = 40,320 permutations: enumerating them all is cheap
MONTE_CARLO_PERMUTATIONS = 100_000
TIE_TOLERANCE = 1e-9  # permuted statistics this close to the observed count as reaching it


class PermutationTest(NamedTuple):
    statistic: float  # the observed correlation
    pvalue: float  # two-sided
    permutations: int  # how many were counted (n! when exact)
    exact: bool


def _correlations(x: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Pearson correlation of x (n,) with each row of ys (m, n)."""
    xc = x - x.mean()
    yc = ys - ys.mean(1, keepdims=True)
    return (yc @ xc) / np.sqrt((xc ** 2).sum() * (yc ** 2).sum(1))


def exact_permutation_pvalue(x, y, statistic: str = "spearman", permutations: int = MONTE_CARLO_PERMUTATIONS,
                             seed: int = 0) -> PermutationTest:
    """Two-sided permutation test of the correlation of x and y: the share of orderings of y
    whose |correlation| reaches the observed one. For n <= 8 every one of the n! orderings is
    counted (the observed among them), so p is exact; above that `permutations` random
    orderings are drawn (seeded) and p = (1 + count) / (1 + permutations), the observed
    ordering counted once so p is never 0. Spearman is Pearson on ranks (ties share ranks)."""
    if statistic not in ("spearman", "pearson"):
        raise ValueError(f"statistic must be 'spearman' or 'pearson', not {statistic!r}")
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or len(x) < 3:
        raise ValueError("x and y must be 1-D of the same length, at least 3")
    if statistic == "spearman":
        x, y = rankdata(x), rankdata(y)
    observed = float(_correlations(x, y[None])[0])
    n = len(x)
    if n <= EXACT_UP_TO:
        orders = np.array(list(itertools.permutations(range(n))))
        values = _correlations(x, y[orders])
        count = int((np.abs(values) >= abs(observed) - TIE_TOLERANCE).sum())
        return PermutationTest(observed, count / len(orders), math.factorial(n), True)
    rng = np.random.default_rng(seed)
    count = 0
    for start in range(0, permutations, 10_000):  # in chunks to bound memory
        m = min(10_000, permutations - start)
        orders = rng.permuted(np.tile(np.arange(n), (m, 1)), axis=1)
        count += int((np.abs(_correlations(x, y[orders])) >= abs(observed) - TIE_TOLERANCE).sum())
    return PermutationTest(observed, (1 + count) / (1 + permutations), permutations, False)


class MeanInterval(NamedTuple):
    mean: float
    low: float  # NaN with fewer than two values
    high: float
    n: int


def mean_with_t_interval(values, level: float = 0.95) -> MeanInterval:
    """Mean over independent runs (training seeds) with Student's t interval: the interval a
    reviewer expects over a handful of seeds, wide at n = 3 as it should be."""
    from scipy.stats import t

    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return MeanInterval(float("nan"), float("nan"), float("nan"), 0)
    mean = float(v.mean())
    if len(v) < 2:
        return MeanInterval(mean, float("nan"), float("nan"), 1)
    half = float(t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))
    return MeanInterval(mean, mean - half, mean + half, len(v))


class Slope(NamedTuple):
    slope: float
    low: float
    high: float
    level: float
    method: str  # "pairs" or "groups then points within groups"


def _slope(x, y) -> float:
    xc = x - x.mean()
    denominator = (xc ** 2).sum()
    return float((xc * (y - y.mean())).sum() / denominator) if denominator > 0 else float("nan")


def slope_with_interval(x, y, groups=None, n_boot: int = 1000, level: float = 0.95, seed: int = 0,
                        within: bool = True) -> Slope:
    """Least-squares slope of y on x, with a bootstrap percentile interval.

    Without groups the (x, y) pairs are resampled. With groups (a label per point, e.g. the
    training seed or walk seed it came from) points of one group are not independent, so
    the bootstrap is two-level: draw whole groups with replacement, then draw points with
    replacement within each drawn group. Its interval reflects how much the slope varies
    between groups, which resampling pairs alone would hide. within=False keeps each drawn
    group's points as they are (for points that are fixed design values, such as the alphas of
    a sweep, rather than draws). Resamples whose x is constant have no slope and are dropped."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    rng = np.random.default_rng(seed)
    if groups is None:
        members = [np.arange(len(x))]
        method = "pairs"
    else:
        labels = np.asarray(groups)
        members = [np.flatnonzero(labels == g) for g in np.unique(labels)]
        method = "groups then points within groups" if within else "whole groups"
    slopes = np.empty(n_boot)
    for b in range(n_boot):
        chosen = [members[i] for i in rng.integers(len(members), size=len(members))] if groups is not None else members
        index = np.concatenate([rng.choice(m, size=len(m)) if within else m for m in chosen])
        slopes[b] = _slope(x[index], y[index])
    slopes = slopes[np.isfinite(slopes)]
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(slopes, [tail, 100 - tail])
    return Slope(_slope(x, y), float(low), float(high), level, method)


def _fine(alphas, values, fine: int):
    """alphas sorted, and values linearly interpolated on `fine` evenly spaced alphas."""
    a, v = np.asarray(alphas, dtype=np.float64), np.asarray(values, dtype=np.float64)
    order = np.argsort(a)
    a, v = a[order], v[order]
    grid = np.linspace(a[0], a[-1], fine)
    return a, grid, np.interp(grid, a, v)


def saturation_alpha(alphas, achieved, identity: float = 0.0, fraction: float = 0.05, fine: int = 4001):
    """(low side, high side): on each side of `identity`, the alpha nearest identity beyond
    which the achieved attribute stays within `fraction` of its extreme change on that side,
    i.e. |achieved - extreme| <= fraction * |extreme - achieved(identity)|, where the extreme
    is the value farthest from the identity value on that side. Achieved is interpolated
    linearly in the given alpha coordinates (pass log alpha for zoom).

    A side gets None when the plateau is not seen: fewer than two measured alphas lie on it
    (a curve still growing at the end of the sweep), or the curve does not stay near its
    extreme (it turns back)."""
    a, grid, values = _fine(alphas, achieved, fine)
    at_identity = float(np.interp(identity, grid, values))
    result = []
    for side in (grid <= identity, grid >= identity):
        g, v = grid[side], values[side]
        if side[0]:  # the low side: walk outwards from identity, so reverse
            g, v = g[::-1], v[::-1]
        if len(g) < 2:
            result.append(None)
            continue
        extreme = v[np.argmax(np.abs(v - at_identity))]
        near = np.abs(v - extreme) <= fraction * abs(extreme - at_identity) + 1e-12
        outside = np.flatnonzero(~near)
        start = outside[-1] + 1 if len(outside) else 0  # from here outwards it stays near
        if start == len(g):  # it turns back: the far end is not near its extreme
            result.append(None)
            continue
        # a plateau is seen when at least two measured alphas lie on it, not only the sweep's end
        on_plateau = (a <= g[start] + 1e-9) if side[0] else (a >= g[start] - 1e-9)
        result.append(float(g[start]) if on_plateau.sum() >= 2 else None)
    return tuple(result)


class Reach(NamedTuple):
    low: float  # the alpha range where the walk follows the target ...
    high: float
    low_at_edge: bool  # ... True where that range runs to the end of the sweep (the reach is longer)
    high_at_edge: bool


def reach_relative_to_spread(alphas, achieved, target, data_spread: float, tolerance: float = 0.5,
                             identity: float = 0.0, fine: int = 4001) -> Reach | None:
    """The contiguous alpha range around `identity` where |achieved - target| <= tolerance *
    data_spread (data_spread: e.g. the IQR of that attribute over the training data), so the
    reach is judged in units of how much the data itself varies. Both curves are interpolated
    linearly on a fine alpha grid, so the bounds fall between sweep points. None when the walk
    misses the target already at identity."""
    a, grid, got = _fine(alphas, achieved, fine)
    _, _, want = _fine(alphas, target, fine)
    ok = np.abs(got - want) <= tolerance * data_spread + 1e-12
    centre = int(np.argmin(np.abs(grid - identity)))
    if not ok[centre]:
        return None
    lo = centre
    while lo > 0 and ok[lo - 1]:
        lo -= 1
    hi = centre
    while hi < len(grid) - 1 and ok[hi + 1]:
        hi += 1
    return Reach(float(grid[lo]), float(grid[hi]), lo == 0, hi == len(grid) - 1)

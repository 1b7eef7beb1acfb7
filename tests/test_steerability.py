"""Sweeps on a walk whose effect is known exactly, so the reach can be worked out by hand."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from steer.attributes import ESTIMATORS
from steer.edits import EDITS
from steer.generators.base import Generator
from steer.steerability import reach, steerability_summary, summarise, sweep

R0, R_MIN, R_MAX = 0.10, 0.05, 0.20  # radii as fractions of the image width


class DiscGenerator(Generator):
    """An anti-aliased disc at the centre whose radius is latent coordinate 0 (as a fraction
    of the width), clamped to [R_MIN, R_MAX]; coordinate 1 sets its red level."""

    name, resolution, latent_dim = "disc", 64, 2

    def __init__(self):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))  # gives the module a device

    def sample(self, n, seed=0, truncation=None, classes=None):
        gen = torch.Generator().manual_seed(seed)
        z = torch.stack([torch.full((n,), R0), torch.randn(n, generator=gen)], dim=1)
        return z, None

    def synthesize(self, latent, classes, space=None):
        s = self.resolution
        radius = latent[:, 0].clamp(R_MIN, R_MAX)[:, None, None]
        coords = (torch.arange(s, dtype=torch.float32) + 0.5) / s
        yy, xx = torch.meshgrid(coords, coords, indexing="ij")
        edge = torch.sqrt((xx - 0.5) ** 2 + (yy - 0.5) ** 2)[None] - radius
        coverage = (0.5 - edge * s).clamp(0, 1)[:, None]
        colour = torch.stack([0.5 + 0.3 * torch.tanh(latent[:, 1]), torch.full_like(latent[:, 1], 0.8),
                              torch.full_like(latent[:, 1], -0.2)], dim=1)[:, :, None, None]
        return coverage * colour + (1 - coverage) * -0.6


class RadiusWalk:
    """A walk with a known effect: it multiplies the radius coordinate by alpha, so the
    walked disc is exactly the zoomed disc until the generator's clamp stops it."""

    def apply(self, latent, alpha, edit, resolution):
        out = latent.clone()
        out[:, 0] = out[:, 0] * torch.as_tensor(alpha, dtype=torch.float32).reshape(-1)
        return out


ALPHAS = (2.0 ** (np.arange(-4, 5) / 2)).tolist()  # 0.25, 0.354, 0.5, 0.707, 1, 1.41, 2, 2.83, 4


def hand_reach(tolerance):
    """Area goes as radius squared. Above R_MAX/R0 the walked area stays pi R_MAX^2 while the
    target's grows as (alpha R0)^2: it follows while (R_MAX / (alpha R0))^2 >= 1 - tol.
    Below R_MIN/R0 it follows while (R_MIN / (alpha R0))^2 <= 1 + tol."""
    high = max(a for a in ALPHAS if a >= 1 and (a <= R_MAX / R0 or (R_MAX / (a * R0)) ** 2 >= 1 - tolerance))
    low = min(a for a in ALPHAS if a <= 1 and (a >= R_MIN / R0 or (R_MIN / (a * R0)) ** 2 <= 1 + tolerance))
    return low, high


@pytest.fixture(scope="module")
def disc_sweep():
    G = DiscGenerator()
    data = G(*G.sample(40, seed=7))
    features = (lambda x: nn.functional.avg_pool2d(x, 16).flatten(1), "4x4 pooled pixels")
    return sweep(G, RadiusWalk(), EDITS["zoom"], ESTIMATORS["area"], alphas=ALPHAS, samples=40, seed=7,
                 data=data, features=features, batch=16)


def test_reach_of_the_clamped_disc_matches_the_hand_computation(disc_sweep):
    r = disc_sweep
    assert hand_reach(0.25) == (0.5, 2.0)  # 0.5 / sqrt(1.25) = 0.447 and 2 / sqrt(0.75) = 2.31
    assert (r["follows_target"]["low"], r["follows_target"]["high"]) == pytest.approx((0.5, 2.0))
    assert not r["follows_target"]["low_at_grid_end"] and not r["follows_target"]["high_at_grid_end"]
    assert r["tolerance"] == {"value": 0.25, "relative": True, "rule": r["tolerance"]["rule"]}
    # the measured areas themselves: pi r^2 of the radius each side sets
    medians = {row["alpha"]: (row["walked"]["median"], row["target"]["median"]) for row in r["per_alpha"]}
    for a in ALPHAS:
        walked_r = min(max(a * R0, R_MIN), R_MAX)
        assert medians[a][0] == pytest.approx(math.pi * walked_r**2, rel=0.03), a
        if a >= 0.5:  # a zoom-out by 1/4 samples a 1.6 px disc without anti-aliasing: too coarse to check
            assert medians[a][1] == pytest.approx(math.pi * (a * R0) ** 2, rel=0.08), a


def test_a_looser_tolerance_reaches_further():
    G = DiscGenerator()
    r = sweep(G, RadiusWalk(), EDITS["zoom"], ESTIMATORS["area"], alphas=ALPHAS, samples=8, tolerance=0.6)
    # 2 / sqrt(0.4) = 3.16 above; 0.5 / sqrt(1.6) = 0.395 below
    assert hand_reach(0.6) == (0.5, 2.0 ** 1.5)
    assert (r["follows_target"]["low"], r["follows_target"]["high"]) == pytest.approx((0.5, 2.0 ** 1.5))
    assert r["tolerance"]["value"] == 0.6 and "data" not in r and "realism" not in r


def test_distances_to_the_data(disc_sweep):
    rows = {row["alpha"]: row for row in disc_sweep["per_alpha"]}
    # the data are the unwalked samples themselves: identical at alpha 1, apart elsewhere
    assert rows[1.0]["wasserstein_walked_to_data"] == pytest.approx(0, abs=1e-6)
    assert rows[1.0]["frechet_walked_to_data"] == pytest.approx(0, abs=1e-6)
    assert rows[4.0]["wasserstein_walked_to_data"] == pytest.approx(math.pi * (R_MAX**2 - R0**2), rel=0.05)
    assert rows[4.0]["wasserstein_target_to_data"] > 3 * rows[4.0]["wasserstein_walked_to_data"]
    assert rows[4.0]["frechet_walked_to_data"] > 0.01
    assert disc_sweep["data"]["samples"] == 40 and disc_sweep["data"]["median"] == pytest.approx(math.pi * R0**2, rel=0.03)
    assert disc_sweep["realism"]["samples_walked"] == 40 and "40" in disc_sweep["realism"]["note"]
    assert len(disc_sweep["values"]["walked"]) == len(ALPHAS) and len(disc_sweep["values"]["walked"][0]) == 40


def test_reach_rule():
    alphas = [-2, -1, 0, 1, 2, 3]
    target = [-2.0, -1.0, 0.0, 1.0, 2.0, 3.0]
    walked = [-1.0, -0.95, 0.0, 1.05, 2.05, 2.5]
    r = reach(alphas, walked, target, 0, tolerance=0.1, relative=False)
    assert r == {"low": -1, "low_at_grid_end": False, "high": 2, "high_at_grid_end": False}
    # contiguous from the identity: a later alpha that follows again does not count
    r = reach(alphas, [-2, -1, 0, 3, 2, 3], target, 0, tolerance=0.1, relative=False)
    assert r["high"] == 0 and r["low"] == -2 and r["low_at_grid_end"]
    # a missing measurement (no object found) does not follow
    assert reach([1, 2], [1.0, None], [1.0, 2.0], 1, 0.25, True)["high"] == 1


def test_summary_ignores_unmeasurable_values():
    s = summarise([1.0, 2.0, 3.0, float("nan")])
    assert s["median"] == 2.0 and s["measured"] == 3 and s["missing"] == 1 and s["q10"] == pytest.approx(1.2)


def clamped_zoom_values(alphas, n=30):
    """Areas of a disc of radius R0 whose walk follows a zoom until a clamp at 0.5x and 2x;
    every latent the same disc, so each alpha's values are constant."""
    walked = [np.full(n, math.pi * (R0 * min(max(a, 0.5), 2.0)) ** 2) for a in alphas]
    target = [np.full(n, math.pi * (R0 * a) ** 2) for a in alphas]
    return walked, target


def test_summary_of_a_clamped_zoom_by_hand():
    walked, target = clamped_zoom_values(ALPHAS)
    # data whose log area has an interquartile range of exactly 0.8
    data = np.exp(np.log(math.pi * R0**2) + np.array([-0.4, -0.4, 0.0, 0.4, 0.4]))
    r = steerability_summary(EDITS["zoom"], ESTIMATORS["area"], ALPHAS, walked, target, data, 32)
    # slope in log area over the training range 0.25..4: x = 2 log a, y = 2 log clamp(a), per
    # point at log2 a = -2..2 by 0.5: sum(xy) / sum(x^2) = 9.5 / 15
    assert r["slope"]["value"] == pytest.approx(9.5 / 15, abs=1e-9)
    assert r["slope"]["low"] == pytest.approx(9.5 / 15) and r["slope"]["high"] == pytest.approx(9.5 / 15)
    # the effect stops changing at the clamps: within 5 % of the full change (log 4, reached at
    # log2 a = 1). The last segment rises by log 2, so 0.05 log 4 is its last tenth: log2 a = 0.95
    assert (r["saturation"]["low"], r["saturation"]["high"]) == pytest.approx((2 ** -0.95, 2 ** 0.95), rel=1e-3)
    # reach: |2 log(2 / a)| <= 0.5 x 0.8 beyond the clamp, so up to 2 e^0.2 and down to 0.5 e^-0.2
    assert r["reach"]["data_spread"] == pytest.approx(0.8)
    assert (r["reach"]["low"], r["reach"]["high"]) == pytest.approx((0.5 * math.exp(-0.2), 2 * math.exp(0.2)), rel=2e-3)
    assert not r["reach"]["low_at_grid_end"] and not r["reach"]["high_at_grid_end"]
    # a walk that does nothing: slope 0, and it misses the target as soon as alpha moves
    still = [np.full(30, math.pi * R0**2) for _ in ALPHAS]
    r = steerability_summary(EDITS["zoom"], ESTIMATORS["area"], ALPHAS, still, target, data, 32)
    assert r["slope"]["value"] == pytest.approx(0, abs=1e-12)
    assert r["reach"]["low"] == pytest.approx(math.exp(-0.2), rel=2e-3)
    # without data there is no spread to judge the reach by, and it says so
    r = steerability_summary(EDITS["zoom"], ESTIMATORS["area"], ALPHAS, walked, target, None, 32)
    assert r["reach"]["low"] is None and "--data" in r["reach"]["note"]


def test_slope_interval_reflects_noise_between_latents():
    rng = np.random.default_rng(0)
    alphas = [-16.0, -8.0, 0.0, 8.0, 16.0]
    gains = rng.uniform(0.2, 0.8, size=50)  # each latent follows a shift by its own share
    walked = [0.5 + gains * a / 32 for a in alphas]
    target = [np.full(50, 0.5 + a / 32) for a in alphas]
    r = steerability_summary(EDITS["shift_x"], ESTIMATORS["centre_x"], alphas, walked, target, None, 32)
    s = r["slope"]
    assert s["value"] == pytest.approx(gains.mean(), abs=1e-9)
    assert s["low"] < gains.mean() < s["high"] and s["high"] - s["low"] < 0.2

import numpy as np
import pytest

from steer import stats
from steer.stats import (exact_permutation_pvalue, mean_with_t_interval, reach_relative_to_spread, saturation_alpha,
                         slope_with_interval)


def test_exact_spearman_p_of_perfect_order_is_two_of_n_factorial():
    # only the identity and the reversal reach |rho| = 1: 2 of 4! orderings
    result = exact_permutation_pvalue([1, 2, 3, 4], [10, 20, 30, 40])
    assert result.exact and result.permutations == 24
    assert result.statistic == pytest.approx(1.0)
    assert result.pvalue == pytest.approx(2 / 24)
    assert exact_permutation_pvalue([1, 2, 3, 4], [40, 30, 20, 10]).pvalue == pytest.approx(2 / 24)


def test_exact_spearman_p_with_one_swap_by_hand():
    # y = (1,2,4,3): sum d^2 = 2, rho = 1 - 6*2/60 = 0.8. |rho| >= 0.8 needs sum d^2 <= 2
    # (the identity and the 3 adjacent swaps) or >= 18 (the reversal and its 3 swaps): 8 of 24
    result = exact_permutation_pvalue([1, 2, 3, 4], [1, 2, 4, 3])
    assert result.statistic == pytest.approx(0.8)
    assert result.pvalue == pytest.approx(8 / 24)


def test_exact_pearson_p_by_hand():
    # x = (0,1,2): r is proportional to y3 - y1; over the 6 orderings of (0,1,10) that is
    # 10, 1, 9, -1, -9, -10, and only +-10 reach the observed 10: p = 2/6. Spearman sees
    # ranks only, so there the same data are perfectly ordered as well: also 2/6.
    assert exact_permutation_pvalue([0, 1, 2], [0, 1, 10], "pearson").pvalue == pytest.approx(2 / 6)
    # x = (0,1,2), y = (0,10,1): r is prop. to 1; orderings give |1|, |1|, 9, 9, 10, 10: all 6 reach it
    assert exact_permutation_pvalue([0, 1, 2], [0, 10, 1], "pearson").pvalue == pytest.approx(1.0)


def test_monte_carlo_p_counts_the_observed_ordering():
    # n = 10 in perfect order: a random ordering reaching |rho| = 1 has chance 2/10! (5e-7),
    # so none of 2,000 does and p is exactly 1 / (1 + 2000)
    x = np.arange(10.0)
    result = exact_permutation_pvalue(x, 3 * x + 1, permutations=2000, seed=1)
    assert not result.exact and result.pvalue == pytest.approx(1 / 2001)


def test_monte_carlo_p_approaches_the_exact_one(monkeypatch):
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=8), rng.normal(size=8)
    y = y + 0.8 * x
    exact = exact_permutation_pvalue(x, y, "pearson")
    monkeypatch.setattr(stats, "EXACT_UP_TO", 7)
    sampled = exact_permutation_pvalue(x, y, "pearson", permutations=40_000, seed=0)
    assert exact.exact and not sampled.exact
    assert 0.01 < exact.pvalue < 0.5
    assert abs(sampled.pvalue - exact.pvalue) < 0.01  # binomial s.e. at 40k draws is < 0.0025


def test_slope_interval_covers_the_true_slope_and_is_narrow():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, 200)
    y = 2 * x + rng.normal(0, 0.1, 200)
    fit = slope_with_interval(x, y, n_boot=1000)
    assert fit.method == "pairs"
    assert fit.low < 2 < fit.high
    assert fit.low < fit.slope < fit.high
    assert fit.high - fit.low < 0.15  # s.e. of the slope is 0.1 / (sqrt(200) * 0.29) = 0.025


def test_cluster_bootstrap_is_wider_when_groups_carry_an_offset():
    # 6 groups (say training seeds), each at its own x and with its own offset: the 180
    # points hold only 6 independent offsets, which resampling points alone ignores
    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(6), 30)
    x = rng.uniform(0, 1, 180) + groups * 0.5
    y = 2 * x + rng.normal(0, 1.0, 6)[groups] + rng.normal(0, 0.05, 180)
    naive = slope_with_interval(x, y, n_boot=1000)
    cluster = slope_with_interval(x, y, groups=groups, n_boot=1000)
    assert cluster.method.startswith("groups")
    assert cluster.slope == pytest.approx(naive.slope)
    assert cluster.high - cluster.low > 1.5 * (naive.high - naive.low)


def test_saturation_of_a_clipped_linear_curve():
    # achieved = alpha clipped to [-2, 3]: within 5 % of the extreme change from alpha = -1.9
    # on the low side and from 2.85 on the high side
    alphas = np.arange(-5, 6, dtype=float)
    low, high = saturation_alpha(alphas, np.clip(alphas, -2, 3))
    assert low == pytest.approx(-1.9, abs=0.005)
    assert high == pytest.approx(2.85, abs=0.005)
    # a 10 % fraction moves the points to 0.9 of the knee
    assert saturation_alpha(alphas, np.clip(alphas, -2, 3), fraction=0.1) == pytest.approx((-1.8, 2.7), abs=0.005)


def test_saturation_needs_a_plateau_seen_in_the_sweep():
    alphas = np.arange(-5, 6, dtype=float)
    assert saturation_alpha(alphas, alphas) == (None, None)  # still growing at both ends
    # clipped below; above, it peaks at alpha = 3 and falls back: no plateau there
    turns_back = np.array([-2, -2, -2, -2, -1, 0, 1, 2, 3, 2, 1], dtype=float)
    low, high = saturation_alpha(alphas, turns_back)
    assert low == pytest.approx(-1.9, abs=0.005) and high is None
    # a knee between the last two sweep points cannot be told from growth: only one point on it
    assert saturation_alpha(alphas, np.clip(alphas, -4.5, 4.5)) == (None, None)


def test_saturation_around_a_zoom_identity_in_log_alpha():
    log_alpha = np.log2([1 / 16, 1 / 8, 1 / 4, 1 / 2, 1, 2, 4, 8, 16])
    achieved = np.clip(log_alpha, -2, 2)
    low, high = saturation_alpha(log_alpha, achieved, identity=0.0)
    assert low == pytest.approx(-1.9, abs=0.005) and high == pytest.approx(1.9, abs=0.005)


def test_reach_relative_to_spread_is_interpolated_between_sweep_points():
    alphas = np.arange(-5, 6, dtype=float)
    achieved, target = np.clip(alphas, -2, 3), alphas
    # |clip - alpha| <= 0.5 * 1: from -2.5 to 3.5, between the integer sweep points
    reach = reach_relative_to_spread(alphas, achieved, target, data_spread=1.0)
    assert reach.low == pytest.approx(-2.5, abs=0.005) and reach.high == pytest.approx(3.5, abs=0.005)
    assert not reach.low_at_edge and not reach.high_at_edge
    # twice the spread: from -3 to 4
    wide = reach_relative_to_spread(alphas, achieved, target, data_spread=2.0)
    assert wide.low == pytest.approx(-3.0, abs=0.005) and wide.high == pytest.approx(4.0, abs=0.005)


def test_reach_at_the_sweep_edge_and_missing_at_identity():
    alphas = np.linspace(-1, 1, 5)
    follows = reach_relative_to_spread(alphas, alphas, alphas, data_spread=0.1)
    assert (follows.low, follows.high, follows.low_at_edge, follows.high_at_edge) == (-1.0, 1.0, True, True)
    assert reach_relative_to_spread(alphas, alphas + 1, alphas, data_spread=0.1) is None


def test_t_interval_over_three_seeds_by_hand():
    # mean 2, sd 1, n 3: half width t(0.975, 2) * 1 / sqrt(3) = 4.3027 / 1.7321 = 2.4841
    m = mean_with_t_interval([1.0, 2.0, 3.0])
    assert m.mean == pytest.approx(2.0) and m.n == 3
    assert m.high - m.mean == pytest.approx(2.4841, abs=1e-4)
    assert m.mean - m.low == pytest.approx(2.4841, abs=1e-4)
    one = mean_with_t_interval([5.0, float("nan")])
    assert one.mean == 5.0 and one.n == 1 and one.low != one.low  # NaN: no interval from one seed

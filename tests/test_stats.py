"""The statistics against values worked out by hand (formulas in the comments)."""

import math

import numpy as np
import pytest

from kerasbn.stats import (
    binomial_std,
    holm,
    mcnemar,
    paired_t,
    recipe_difference,
    seeds_needed,
    t_interval,
    verdict,
    wilson_interval,
)


def test_wilson_interval_of_90_out_of_100():
    # p = 0.9, z = 1.959964, z^2 = 3.841459: centre (p + z^2/2n) / (1 + z^2/n) = 0.919207 /
    # 1.038415 = 0.885202, half width z / (1 + z^2/n) * sqrt(p(1-p)/n + z^2/4n^2) =
    # 1.887457 * 0.031560 = 0.059568.
    ci = wilson_interval(90, 100)
    assert ci.mean == 0.9 and ci.method == "wilson"
    assert ci.low == pytest.approx(0.885202 - 0.059568, abs=2e-6)
    assert ci.high == pytest.approx(0.885202 + 0.059568, abs=2e-6)


def test_t_interval_of_one_to_five():
    # mean 3, sd sqrt(2.5) = 1.581139, se 0.707107, t(0.975, 4) = 2.776445.
    ci = t_interval([1, 2, 3, 4, 5, float("nan")])
    assert (ci.mean, ci.n) == (3.0, 5)
    assert ci.std == pytest.approx(1.581139, abs=1e-6)
    assert ci.low == pytest.approx(3 - 2.776445 * 0.707107, abs=1e-5)
    assert ci.high == pytest.approx(3 + 2.776445 * 0.707107, abs=1e-5)
    one = t_interval([0.5])
    assert one.mean == 0.5 and math.isnan(one.low) and math.isnan(one.std)


def test_paired_t_on_three_seeds():
    # d = (0.02, 0.03, 0.01): mean 0.02, sd 0.01, t = 0.02 / (0.01/sqrt 3) = 3.464102.
    # With 2 degrees of freedom F(t) = 1/2 + t / (2 sqrt(2 + t^2)) = 0.962910, so
    # p = 2 (1 - F) = 0.074180; half width t(0.975, 2) * se = 4.302653 * 0.005774.
    test = paired_t([0.90, 0.92, 0.91], [0.88, 0.89, 0.90])
    assert test.difference == pytest.approx(0.02)
    assert test.sd == pytest.approx(0.01)
    assert test.p_value == pytest.approx(0.074180, abs=1e-5)
    assert test.low == pytest.approx(0.02 - 4.302653 * 0.01 / math.sqrt(3), abs=1e-6)
    assert test.high == pytest.approx(0.02 + 4.302653 * 0.01 / math.sqrt(3), abs=1e-6)
    assert verdict(test) == "no detectable difference"
    assert "3 seeds" in test.test


def test_paired_t_without_spread_is_undetermined_and_one_seed_has_no_test():
    same = paired_t([0.9, 0.8, 0.7], [0.9, 0.8, 0.7])
    assert same.undetermined and math.isnan(same.p_value) and math.isnan(same.low)
    assert verdict(same) == "undetermined (no spread)"
    shifted = paired_t([0.5, 0.75, 0.25], [0.25, 0.5, 0.0])  # exactly 0.25 each
    assert shifted.undetermined and verdict(shifted) == "undetermined (no spread)"
    assert math.isnan(seeds_needed(shifted.difference, shifted.sd))
    # One test image apart on each of two seeds of 10,000 images, as float32 accuracies
    # (what Keras reports): the differences read 1.00017e-4 and 0.99957e-4.
    a = np.float32([9900 / 10_000, 9902 / 10_000]).astype(float)
    b = np.float32([9899 / 10_000, 9901 / 10_000]).astype(float)
    assert not paired_t(a, b).undetermined  # float32 noise reads as a tiny spread...
    one_image = paired_t(a, b, resolution=1e-4)  # ...unless the image grid is known
    assert one_image.undetermined and math.isnan(one_image.p_value)
    assert verdict(paired_t([0.9], [0.8])) == "n/a"


def test_exact_mcnemar_by_hand():
    # 10 images only A gets right, 2 only B: p = 2 P(X <= 2 | n = 12, 1/2)
    # = 2 (1 + 12 + 66) / 4096 = 0.0385742; difference (10 - 2) / 100.
    a = np.array([True] * 10 + [False] * 2 + [True] * 80 + [False] * 8)
    b = np.array([False] * 10 + [True] * 2 + [True] * 80 + [False] * 8)
    test = mcnemar(a, b)
    assert test.p_value == pytest.approx(158 / 4096)
    assert test.difference == pytest.approx(0.08)
    assert test.low < 0.08 < test.high and test.low > 0  # significant: excludes 0
    assert verdict(test) == "better" and verdict(mcnemar(b, a)) == "worse"
    assert "10 vs 2 discordant" in test.test
    assert mcnemar(a, a).p_value == 1.0
    with pytest.raises(ValueError, match="equal-length"):
        mcnemar(a, b[:-1])


@pytest.mark.parametrize("only_a, only_b", [(10, 2), (4, 0), (0, 6), (30, 31), (0, 0)])
def test_mcnemar_p_matches_statsmodels(only_a, only_b):
    from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar

    both, neither = 300, 20
    a = np.array([True] * only_a + [False] * only_b + [True] * both + [False] * neither)
    b = np.array([False] * only_a + [True] * only_b + [True] * both + [False] * neither)
    table = [[both, only_a], [only_b, neither]]
    expected = sm_mcnemar(table, exact=True).pvalue if only_a + only_b else 1.0
    assert mcnemar(a, b).p_value == pytest.approx(expected, rel=1e-12)


def test_one_seed_interval_is_bonett_price_and_never_ends_at_the_estimate():
    # 4 vs 0 discordant of 360 (the README's digits bn): pseudo-counts give
    # p12 = 5/362, p21 = 1/362, centre 4/362 = 0.0110497; variance
    # (6/362 - (4/362)^2) / 362 = (0.0165746 - 0.0001221) / 362 = 4.54489e-5,
    # half width 1.959964 * 0.00674159 = 0.0132133.
    a = np.array([True] * 4 + [True] * 300 + [False] * 56)
    b = np.array([False] * 4 + [True] * 300 + [False] * 56)
    test = mcnemar(a, b)
    assert test.difference == pytest.approx(4 / 360)
    assert test.low == pytest.approx(0.0110497 - 0.0132133, abs=1e-6)
    assert test.high == pytest.approx(0.0110497 + 0.0132133, abs=1e-6)
    assert test.low < test.difference < test.high  # not the collapsed [.., +1.11]


def _coverage_of_one_seed_interval(n, p_only_a, p_only_b):
    """The exact probability, over the multinomial of (only A right, only B right,
    neither discordant) images, that the one-seed interval covers p_only_a - p_only_b:
    every (b, c) enumerated with scipy's binomial pmf, no simulation error."""
    from scipy import stats

    truth = p_only_a - p_only_b
    covered = 0.0
    b_max = int(n * p_only_a + 10 * math.sqrt(n * p_only_a + 1) + 5)
    c_max = int(n * p_only_b + 10 * math.sqrt(n * p_only_b + 1) + 5)
    for b_count in range(min(b_max, n) + 1):
        weight_b = stats.binom.pmf(b_count, n, p_only_a)
        rest = n - b_count
        for c_count in range(min(c_max, rest) + 1):
            weight = weight_b * stats.binom.pmf(c_count, rest, p_only_b / (1 - p_only_a))
            if weight < 1e-12:
                continue
            a = np.zeros(n, bool)
            b = np.zeros(n, bool)
            a[:b_count] = True
            b[b_count : b_count + c_count] = True
            test = mcnemar(a, b)
            covered += weight * (test.low <= truth <= test.high)
    return covered


@pytest.mark.parametrize(
    "n, p_only_a, p_only_b",
    [(360, 0.011, 0.0), (360, 0.013, 0.002), (360, 0.020, 0.005), (2000, 0.004, 0.001)],
)
def test_one_seed_interval_covers_the_true_difference(n, p_only_a, p_only_b):
    # The old interval (the exact interval of b/(b+c) scaled by the observed (b+c)/n)
    # covered 56%, 71% and 85% of the time at the first three settings.
    assert _coverage_of_one_seed_interval(n, p_only_a, p_only_b) >= 0.945


def test_holm_by_hand():
    # Sorted p: 0.01 x 3 = 0.03; 0.03 x 2 = 0.06; 0.04 x 1 = 0.04 -> max(0.06, 0.04).
    adjusted = holm([0.01, 0.04, float("nan"), 0.03])
    assert adjusted[[0, 1, 3]] == pytest.approx([0.03, 0.06, 0.06])
    assert math.isnan(adjusted[2])


def test_recipe_difference_by_hand():
    # Per-image differences (A - B), two seeds x four images:
    #   seed 0: 1 0 0 0 -> 0.25;  seed 1: 1 1 0 1 -> 0.75;  mean 0.5.
    # Seeds: var(0.25, 0.75) = 0.125, / 2 seeds = 0.0625.
    # Test set: per-image means 1, .5, 0, .5 have variance 1/6; the seed noise in them,
    # mean over images of var over seeds (0, .5, 0, .5) = 0.25, / 2 seeds = 0.125;
    # (1/6 - 0.125) / 4 images = 0.0104167.
    # Half width sqrt(t(.975, 1)^2 0.0625 + z^2 0.0104167)
    # = sqrt(161.4475 * 0.0625 + 3.841459 * 0.0104167) = sqrt(10.130486) = 3.182842.
    a = np.array([[1, 0, 0, 0], [1, 1, 1, 1]], bool)
    b = np.array([[0, 0, 0, 0], [0, 0, 1, 0]], bool)
    test = recipe_difference(a, b)
    assert test.difference == pytest.approx(0.5)
    assert test.test_var == pytest.approx(0.0104167, abs=1e-7)
    assert test.high - test.difference == pytest.approx(3.182842, abs=1e-5)
    assert test.sd == pytest.approx(math.sqrt(0.125))
    # A difference of one image on each of two seeds: no spread, no p-value, no verdict.
    one_image = recipe_difference(np.eye(2, 360, dtype=bool), np.zeros((2, 360), bool))
    assert one_image.undetermined and math.isnan(one_image.p_value)
    assert verdict(one_image) == "undetermined (no spread)"
    with pytest.raises(ValueError, match="one shape"):
        recipe_difference(a, b[:, :3])


def test_recipe_p_value_is_where_the_interval_reaches_zero():
    from scipy import stats

    rng = np.random.default_rng(3)
    a, b = rng.random((3, 500)) < 0.9, rng.random((3, 500)) < 0.86
    test = recipe_difference(a, b)
    x = a.astype(float) - b.astype(float)
    seed_part = x.mean(axis=1).var(ddof=1) / 3
    test_part = test.test_var
    # The interval at level 1 - p ends at 0 (same combination, critical values from p).
    half = math.sqrt(
        stats.t.ppf(1 - test.p_value / 2, 2) ** 2 * seed_part
        + stats.norm.ppf(1 - test.p_value / 2) ** 2 * test_part
    )
    assert half == pytest.approx(abs(test.difference), rel=1e-6)


def test_binomial_std_of_a_test_accuracy():
    # 10,000 test images at 99%: sqrt(0.99 * 0.01 / 10000) = 0.000995.
    assert binomial_std(0.99, 10_000) == pytest.approx(0.000995, abs=1e-6)


def test_seeds_needed_matches_the_power_tables():
    # A paired t-test needs 10 pairs for 80% power at an effect of one standard
    # deviation (two-sided, alpha 0.05): power 0.803 at n = 10, 0.759 at n = 9
    # (Cohen 1988, G*Power).
    assert seeds_needed(0.01, 0.01) == 10
    assert seeds_needed(0.0, 0.01) == math.inf
    assert math.isnan(seeds_needed(0.01, float("nan")))


@pytest.mark.parametrize("seed", range(5))
def test_every_quantity_matches_scipy_stats(seed):
    """kerasbn.stats calls scipy.special directly (scipy.stats is slow to import); each
    quantity equals what scipy.stats' own functions give."""
    from scipy import stats

    from kerasbn.stats import _two_sided_power

    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 10_000))
    k = int(rng.integers(1, n))
    ci = stats.binomtest(k, n).proportion_ci(0.95, method="wilson")
    ours = wilson_interval(k, n)
    assert (ours.low, ours.high) == pytest.approx((ci.low, ci.high), rel=1e-12)

    values = rng.normal(0.9, 0.01, int(rng.integers(2, 8)))
    low, high = stats.t.interval(
        0.95, values.size - 1, loc=values.mean(), scale=values.std(ddof=1) / math.sqrt(values.size)
    )
    ours = t_interval(values)
    assert (ours.low, ours.high) == pytest.approx((low, high), rel=1e-12)

    other = values - rng.normal(0.005, 0.01, values.size)
    expected = stats.ttest_rel(values, other)
    test = paired_t(values, other)
    assert test.p_value == pytest.approx(expected.pvalue, rel=1e-9)
    interval = expected.confidence_interval(0.95)
    assert (test.low, test.high) == pytest.approx((interval.low, interval.high), rel=1e-9)

    discordant = int(rng.integers(1, 200))
    only_a = int(rng.integers(0, discordant + 1))
    a = np.array([True] * only_a + [False] * (discordant - only_a) + [True] * 50)
    b = np.array([False] * only_a + [True] * (discordant - only_a) + [True] * 50)
    p = stats.binomtest(only_a, discordant, 0.5).pvalue
    assert mcnemar(a, b).p_value == pytest.approx(p, rel=1e-9)

    df, critical, shift = int(rng.integers(1, 30)), rng.uniform(1.5, 5), rng.uniform(0, 6)
    power = stats.nct.sf(critical, df, shift) + stats.nct.sf(critical, df, -shift)
    assert _two_sided_power(critical, df, shift) == pytest.approx(power, rel=1e-9, abs=1e-15)

"""The statistics against values worked out by hand (formulas in the comments)."""

import math

import numpy as np
import pytest

from kerasbn.stats import (
    binomial_std,
    mcnemar,
    paired_t,
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


def test_paired_t_without_spread_and_with_one_seed():
    same = paired_t([0.9, 0.8, 0.7], [0.9, 0.8, 0.7])
    assert (same.difference, same.p_value) == (0.0, 1.0)
    assert verdict(same) == "no detectable difference"
    shifted = paired_t([0.5, 0.75, 0.25], [0.25, 0.5, 0.0])  # exactly 0.25 each
    assert shifted.p_value == 0.0 and verdict(shifted) == "better"
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

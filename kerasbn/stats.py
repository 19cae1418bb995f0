"""The statistics behind every verdict: intervals, paired tests, and the seeds needed.

All distributions and tests come from :mod:`scipy.stats`; this module only chooses
which one answers which question and handles the degenerate cases (one seed, no
spread) that scipy reports as NaN.

* one trained model: a Wilson interval on its test accuracy (n test images);
* two models evaluated on the same test images: an exact McNemar test on the images
  exactly one of them gets right. It tests those two *trained models*, not the recipes
  that made them: another seed may rank them otherwise;
* several seeds: a t-interval per variant, and a paired t-test on the per-seed
  differences (same seed = same split, batch order and initial random state);
* the seeds a paired t-test needs to detect a difference at a given power.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = [
    "ALPHA",
    "CONFIDENCE",
    "Interval",
    "PairedTest",
    "binomial_std",
    "mcnemar",
    "paired_t",
    "seeds_needed",
    "t_interval",
    "verdict",
    "wilson_interval",
]

CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE  # a difference is "detected" at p < ALPHA


@dataclass(frozen=True)
class Interval:
    """A mean (or proportion) with its spread and confidence interval."""

    mean: float
    std: float  # sample standard deviation over seeds (NaN for one value)
    low: float
    high: float
    n: int
    method: str  # "t" (over seeds) or "wilson" (over test images); "" when none


@dataclass(frozen=True)
class PairedTest:
    """``a - b`` for paired measurements, its interval and the test's p-value."""

    difference: float
    low: float
    high: float
    p_value: float
    test: str  # which test, in words
    n: int  # pairs: seeds, or test images for McNemar
    sd: float  # std of the per-seed differences (NaN for McNemar or one seed)


def _finite(values) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    return array[np.isfinite(array)]


def wilson_interval(correct: int, n: int, confidence: float = CONFIDENCE) -> Interval:
    """Accuracy ``correct / n`` with its Wilson score interval (one trained model)."""
    ci = stats.binomtest(int(correct), int(n)).proportion_ci(confidence, method="wilson")
    return Interval(correct / n, math.nan, float(ci.low), float(ci.high), int(n), "wilson")


def t_interval(values, confidence: float = CONFIDENCE) -> Interval:
    """Mean over seeds with the sample std and a Student-t interval (NaN values, e.g.
    diverged runs, are left out; one value has no interval)."""
    x = _finite(values)
    if x.size == 0:
        return Interval(math.nan, math.nan, math.nan, math.nan, 0, "")
    mean = float(x.mean())
    if x.size == 1:
        return Interval(mean, math.nan, math.nan, math.nan, 1, "")
    std = float(x.std(ddof=1))
    if std == 0:
        return Interval(mean, 0.0, mean, mean, int(x.size), "t")
    low, high = stats.t.interval(confidence, x.size - 1, loc=mean, scale=std / math.sqrt(x.size))
    return Interval(mean, std, float(low), float(high), int(x.size), "t")


def paired_t(a, b, confidence: float = CONFIDENCE) -> PairedTest:
    """Paired t-test of ``a`` against ``b`` (one value per seed, pairs with a NaN dropped)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    d = a - b
    n = int(d.size)
    if n < 2:
        mean = float(d.mean()) if n else math.nan
        return PairedTest(mean, math.nan, math.nan, math.nan, "", n, math.nan)
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    test = f"paired t-test over {n} seeds"
    if sd == 0:
        # Every seed moved by exactly the same amount: no spread to test against.
        return PairedTest(mean, mean, mean, 1.0 if mean == 0 else 0.0, test, n, 0.0)
    result = stats.ttest_rel(a, b)
    ci = result.confidence_interval(confidence)
    return PairedTest(mean, float(ci.low), float(ci.high), float(result.pvalue), test, n, sd)


def mcnemar(correct_a, correct_b, confidence: float = CONFIDENCE) -> PairedTest:
    """Exact McNemar test of two models' per-image correctness on the same test images.

    Only the discordant images count: ``b`` that only A gets right, ``c`` that only B
    does; under "no difference" each is A's with probability 1/2 (a binomial test).
    The accuracy difference is ``(b - c) / n``; its interval maps the exact
    (Clopper-Pearson) interval of ``b / (b + c)`` onto that scale, given ``b + c``.
    """
    a, b_ = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    if a.shape != b_.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(
            "McNemar needs two equal-length, non-empty per-image results. "
            f"Received: shapes {a.shape} and {b_.shape}"
        )
    n = int(a.size)
    only_a, only_b = int((a & ~b_).sum()), int((~a & b_).sum())
    test = f"exact McNemar on {n} test images ({only_a} vs {only_b} discordant)"
    if only_a + only_b == 0:
        return PairedTest(0.0, 0.0, 0.0, 1.0, test, n, math.nan)
    result = stats.binomtest(only_a, only_a + only_b, 0.5)
    ci = result.proportion_ci(confidence, method="exact")
    scale = (only_a + only_b) / n
    return PairedTest(
        (only_a - only_b) / n,
        scale * (2 * float(ci.low) - 1),
        scale * (2 * float(ci.high) - 1),
        float(result.pvalue),
        test,
        n,
        math.nan,
    )


def binomial_std(accuracy: float, n: int) -> float:
    """The seed-to-seed std of a test accuracy that ``n`` test images alone explain:
    ``sqrt(p (1 - p) / n)``. A measured std near it is mostly finite-sample noise."""
    if not (np.isfinite(accuracy) and n > 0):
        return math.nan
    return math.sqrt(accuracy * (1 - accuracy) / n)


def seeds_needed(
    difference: float,
    sd: float,
    power: float = 0.8,
    alpha: float = ALPHA,
    max_seeds: int = 1000,
) -> float:
    """The fewest seeds for which a two-sided paired t-test at ``alpha`` detects a true
    per-seed difference ``difference`` with probability ``power``, when the per-seed
    differences spread with std ``sd`` (the noncentral t distribution). ``inf``: no
    difference, or more than ``max_seeds``; NaN: the spread is unknown."""
    if not (np.isfinite(difference) and np.isfinite(sd)):
        return math.nan
    if difference == 0:
        return math.inf
    if sd == 0:
        return 2.0
    effect = abs(difference) / sd
    for n in range(2, max_seeds + 1):
        df = n - 1
        critical = stats.t.ppf(1 - alpha / 2, df)
        shift = effect * math.sqrt(n)
        achieved = stats.nct.sf(critical, df, shift) + stats.nct.cdf(-critical, df, shift)
        if achieved >= power:
            return float(n)
    return math.inf


def verdict(test: PairedTest, higher: str = "better", lower: str = "worse") -> str:
    """``higher`` / ``lower`` when the difference is detected (p < ALPHA), else
    ``no detectable difference``; ``n/a`` when there is no test."""
    if not np.isfinite(test.p_value):
        return "n/a"
    if test.p_value >= ALPHA or test.difference == 0:
        return "no detectable difference"
    return higher if test.difference > 0 else lower

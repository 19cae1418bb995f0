"""The statistics behind every verdict: intervals, paired tests, multiplicity and the
seeds needed.

The distributions are SciPy's, called through :mod:`scipy.special` (the t, normal,
binomial and noncentral-t functions that :mod:`scipy.stats` itself calls): importing
``scipy.stats`` costs more CPU than the whole of ``kerasbn results RUN`` may. The tests
check every quantity here against :mod:`scipy.stats` and :mod:`statsmodels`. This
module chooses which test answers which question and handles the degenerate cases (one
seed, no spread) that would otherwise read as certainty.

* one trained model: a Wilson interval on its test accuracy (n test images);
* two models on the same test images (one seed each): the exact McNemar test on the
  images exactly one of them gets right, and the Bonett-Price adjusted Wald interval
  of the paired difference (Bonett & Price 2012, one of the intervals Fagerland,
  Lydersen & Laake 2014 recommend; it does not assume the discordance rate known, so
  it never ends at the point estimate). It compares those two *trained models*, not
  the recipes that made them;
* several seeds, per-image results kept: the interval of the *recipe* difference,
  which includes both the seed-to-seed spread and the sampling of the test set
  (:func:`recipe_difference`), and the seed-only paired t-interval beside it;
* several seeds, figures only: a paired t-test on the per-seed differences;
* Holm's step-down correction over a family of comparisons (:func:`holm`);
* the seeds a test needs to detect a difference at a given power (:func:`seeds_needed`).

Seeds whose differences do not spread at all give no test: one cannot estimate a
spread from none, so such a comparison is "undetermined (no spread)", never certain.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special

__all__ = [
    "ALPHA",
    "CONFIDENCE",
    "NO_SPREAD",
    "Interval",
    "PairedTest",
    "binomial_std",
    "holm",
    "mcnemar",
    "paired_t",
    "recipe_difference",
    "recipe_interval",
    "seeds_needed",
    "t_interval",
    "verdict",
    "wilson_interval",
]

CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE  # a difference is "detected" at (Holm-adjusted) p < ALPHA
NO_SPREAD = "undetermined (no spread)"


@dataclass(frozen=True)
class Interval:
    """A mean (or proportion) with its spread and confidence interval."""

    mean: float
    std: float  # sample standard deviation over seeds (NaN for one value)
    low: float
    high: float
    n: int
    # "t" (over seeds), "wilson" (over test images), "seeds+test set" (both), "" when
    # none, NO_SPREAD when several seeds gave the same value.
    method: str


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
    undetermined: bool = False  # several seeds, no spread: no p-value, no verdict
    test_var: float = 0.0  # the test set's share of the variance of the difference


def _z(confidence: float) -> float:
    """The two-sided normal critical value (1.96 at 95%)."""
    return float(special.ndtri(0.5 + confidence / 2))


def _t_interval(centre: float, se: float, df: int, confidence: float) -> tuple[float, float]:
    """``centre`` -/+ the Student-t critical value times ``se`` (scipy.stats.t.interval)."""
    alpha = 1 - confidence
    return (
        float(special.stdtrit(df, alpha / 2) * se + centre),
        float(special.stdtrit(df, 1 - alpha / 2) * se + centre),
    )


def _finite(values) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    return array[np.isfinite(array)]


def _no_spread(values: np.ndarray) -> bool:
    # Exact ties only, up to float round-off: values on a grid are rounded to it first.
    return bool(np.ptp(values) <= 1e-9 * max(1.0, float(np.abs(values).max())))


def _on_grid(values: np.ndarray, resolution: float) -> np.ndarray:
    """``values`` rounded to multiples of ``resolution`` (e.g. 1/n for an accuracy on n
    test images, stored as float32): two runs one image apart are never "0.99999 images"
    apart, and equal counts compare equal."""
    return np.round(values / resolution) * resolution if resolution > 0 else values


def wilson_interval(correct: int, n: int, confidence: float = CONFIDENCE) -> Interval:
    """Accuracy ``correct / n`` with its Wilson score interval (one trained model)."""
    # Wilson's score interval, as scipy.stats.binomtest(...).proportion_ci("wilson").
    k, n = int(correct), int(n)
    z = _z(confidence)
    centre, scale = k + z * z / 2, n + z * z
    half = z * math.sqrt(k * (n - k) / n + z * z / 4)
    low, high = (centre - half) / scale, (centre + half) / scale
    return Interval(k / n, math.nan, max(0.0, low), min(1.0, high), n, "wilson")


def t_interval(values, confidence: float = CONFIDENCE) -> Interval:
    """Mean over seeds with the sample std and a Student-t interval (NaN values, e.g.
    diverged runs, are left out; one value has no interval, and several equal values
    have no spread to build one from)."""
    x = _finite(values)
    if x.size == 0:
        return Interval(math.nan, math.nan, math.nan, math.nan, 0, "")
    mean = float(x.mean())
    if x.size == 1:
        return Interval(mean, math.nan, math.nan, math.nan, 1, "")
    std = float(x.std(ddof=1))
    if _no_spread(x):
        return Interval(mean, 0.0, math.nan, math.nan, int(x.size), NO_SPREAD)
    low, high = _t_interval(mean, std / math.sqrt(x.size), x.size - 1, confidence)
    return Interval(mean, std, float(low), float(high), int(x.size), "t")


def paired_t(a, b, confidence: float = CONFIDENCE, resolution: float = 0.0) -> PairedTest:
    """Paired t-test of ``a`` against ``b`` (one value per seed, pairs with a NaN
    dropped). ``resolution``: the grid the values lie on (1/n for an accuracy on n
    images), so that float round-off never reads as spread."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = _on_grid(a[keep], resolution), _on_grid(b[keep], resolution)
    d = a - b
    n = int(d.size)
    if n < 2:
        mean = float(d.mean()) if n else math.nan
        return PairedTest(mean, math.nan, math.nan, math.nan, "", n, math.nan)
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    test = f"paired t-test over {n} seeds"
    if _no_spread(d):
        # Every seed moved by the same amount: the spread is unknown, not zero.
        return PairedTest(mean, math.nan, math.nan, math.nan, test, n, 0.0, undetermined=True)
    # scipy.stats.ttest_rel's statistic, two-sided p-value and interval.
    se = sd / math.sqrt(n)
    p = 2 * float(special.stdtr(n - 1, -abs(mean / se)))
    low, high = _t_interval(mean, se, n - 1, confidence)
    return PairedTest(mean, low, high, min(p, 1.0), test, n, sd)


def bonett_price(only_a: int, only_b: int, n: int, confidence: float = CONFIDENCE):
    """Bonett & Price's (2012) adjusted Wald interval of a paired difference of
    proportions, ``(only_a - only_b) / n``: one pseudo-count added to each discordant
    cell and two to n."""
    z = _z(confidence)
    p12, p21 = (only_a + 1) / (n + 2), (only_b + 1) / (n + 2)
    centre = p12 - p21
    half = z * math.sqrt((p12 + p21 - centre**2) / (n + 2))
    return max(-1.0, centre - half), min(1.0, centre + half)


def mcnemar(correct_a, correct_b, confidence: float = CONFIDENCE) -> PairedTest:
    """Exact McNemar test of two models' per-image correctness on the same test images,
    with the Bonett-Price interval of the accuracy difference.

    Only the discordant images count in the test: ``b`` that only A gets right, ``c``
    that only B does; under "no difference" each is A's with probability 1/2 (a
    binomial test). The accuracy difference is ``(b - c) / n``.
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
    low, high = bonett_price(only_a, only_b, n, confidence)
    # Two-sided exact binomial test at 1/2 (symmetric: twice the smaller tail, as
    # scipy.stats.binomtest computes it).
    discordant, fewer = only_a + only_b, min(only_a, only_b)
    p = 1.0 if 2 * fewer == discordant else 2 * float(special.bdtr(fewer, discordant, 0.5))
    return PairedTest((only_a - only_b) / n, low, high, min(p, 1.0), test, n, math.nan)


def _variance_parts(x: np.ndarray) -> tuple[float, float, float]:
    """For per-image values ``x`` of shape (seeds, images): the mean, the variance of the
    mean that the seeds explain (``A``: spread of the per-seed means / k) and the part
    that sampling the test images adds (``B``: the spread of each image's seed-averaged
    value / n, less its seed-noise share, estimated without bias and floored at 0)."""
    k, n = x.shape
    per_seed = x.mean(axis=1)
    seed_part = float(per_seed.var(ddof=1)) / k
    per_image_seed_noise = float(x.var(axis=0, ddof=1).mean()) / k
    test_part = max(float(x.mean(axis=0).var(ddof=1)) - per_image_seed_noise, 0.0) / n
    return float(per_seed.mean()), seed_part, test_part


def _half_width(seed_part: float, test_part: float, k: int, alpha: float) -> float:
    # Graybill & Wang's modified large-sample combination: each variance component
    # keeps its own critical value (Student t on k-1 for the seeds, normal for the
    # thousands of test images), so the interval is the paired t-interval when the test
    # set adds nothing and the paired-proportion Wald interval when the seeds add nothing.
    # isf, not ppf(1 - alpha/2): the p-value search below asks for alphas near 1e-100.
    square = special.stdtrit(k - 1, alpha / 2) ** 2 * seed_part if seed_part > 0 else 0.0
    if test_part > 0:
        square += special.ndtri(alpha / 2) ** 2 * test_part
    return math.sqrt(square)


def _two_level_p(mean: float, seed_part: float, test_part: float, k: int) -> float:
    """The p-value that matches the interval: the alpha at which it just reaches 0."""
    if mean == 0:
        return 1.0

    def gap(log_alpha: float) -> float:  # falls as alpha grows; < 0 at alpha = 1
        return _half_width(seed_part, test_part, k, 10.0**log_alpha) - abs(mean)

    if gap(-100.0) < 0:  # t(1 df) quantiles beyond 1e-100 overflow when squared
        return 0.0
    # Bisection on log10(alpha) to 1e-10 (about 40 halvings): scipy.optimize's brentq
    # does it in fewer steps, but importing scipy.optimize costs more than all of these.
    low, high = -100.0, 0.0  # gap(low) >= 0 > gap(high)
    while high - low > 1e-10:
        middle = (low + high) / 2
        if gap(middle) >= 0:
            low = middle
        else:
            high = middle
    return float(10.0 ** ((low + high) / 2))


def _per_image(correct) -> np.ndarray:
    x = np.asarray(correct, dtype=float)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 2:
        raise ValueError(
            "Expected per-image results of shape (seeds >= 2, images >= 2). "
            f"Received: shape {x.shape}"
        )
    return x


def recipe_interval(correct, confidence: float = CONFIDENCE) -> Interval:
    """A recipe's expected test accuracy from several seeds' per-image correctness
    (shape: seeds x images): the interval covers both another seed and another test set
    drawn like this one (see :func:`recipe_difference`)."""
    x = _per_image(correct)
    accuracies = x.mean(axis=1)
    std = float(accuracies.std(ddof=1))
    mean, seed_part, test_part = _variance_parts(x)
    if _no_spread(accuracies):
        return Interval(mean, 0.0, math.nan, math.nan, x.shape[0], NO_SPREAD)
    half = _half_width(seed_part, test_part, x.shape[0], 1 - confidence)
    low, high = max(0.0, mean - half), min(1.0, mean + half)
    return Interval(mean, std, low, high, x.shape[0], "seeds+test set")


def recipe_difference(correct_a, correct_b, confidence: float = CONFIDENCE) -> PairedTest:
    """Recipe A minus recipe B from per-image correctness of the same seeds on the same
    test images (each of shape: seeds x images).

    The per-seed differences spread from training noise (the seed-only t-interval sees
    only this), and every seed is scored on one shared test set, whose sampling moves
    all of them together. Both enter the interval (:func:`_half_width`); its p-value is
    the level at which the interval just touches 0.
    """
    xa, xb = _per_image(correct_a), _per_image(correct_b)
    if xa.shape != xb.shape:
        raise ValueError(
            f"Paired per-image results must have one shape. Received: {xa.shape} and {xb.shape}"
        )
    x = xa - xb
    k, n = x.shape
    per_seed = x.mean(axis=1)
    sd = float(per_seed.std(ddof=1))
    mean, seed_part, test_part = _variance_parts(x)
    test = f"seeds + test set ({k} seeds x {n} images)"
    if _no_spread(per_seed):
        return PairedTest(mean, math.nan, math.nan, math.nan, test, k, 0.0, True, test_part)
    half = _half_width(seed_part, test_part, k, 1 - confidence)
    p = _two_level_p(mean, seed_part, test_part, k)
    return PairedTest(mean, mean - half, mean + half, p, test, k, sd, False, test_part)


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values of one family (NaN entries are not tests and
    stay NaN): the k-th smallest of m p-values times (m - k + 1), made non-decreasing
    in that order and capped at 1 (Holm 1979)."""
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full(p.shape, math.nan)
    tested = np.flatnonzero(np.isfinite(p))
    if tested.size:
        # Four lines rather than statsmodels' ``multipletests``: that one calls
        # ``gc.collect()`` on every Holm correction, which in a process holding
        # TensorFlow's graphs costs seconds each (the published-figure check, which
        # corrects a few dozen families, took 72 s inside the test run and 6 s alone).
        # The tests check these values against statsmodels.
        order = tested[np.argsort(p[tested], kind="stable")]
        steps = p[order] * np.arange(order.size, 0, -1)
        adjusted[order] = np.minimum(np.maximum.accumulate(steps), 1.0)
    return adjusted


def binomial_std(accuracy: float, n: int) -> float:
    """The seed-to-seed std of a test accuracy that ``n`` test images alone explain:
    ``sqrt(p (1 - p) / n)``. A measured std near it is mostly finite-sample noise."""
    if not (np.isfinite(accuracy) and n > 0):
        return math.nan
    return math.sqrt(accuracy * (1 - accuracy) / n)


def _two_sided_power(critical: float, df: int, shift: float) -> float:
    """P(|T| > critical) for T noncentral t with ``df`` and noncentrality ``shift``.

    scipy's noncentral t returns NaN in its far lower tail for large noncentrality
    (``nct.cdf(-c, df, 30)``); the lower tail is taken as the upper tail of the mirrored
    distribution, and where that fails too it is below ``Phi(-shift)``, which bounds it.
    """
    upper = 1.0 - float(special.nctdtr(df, shift, critical))
    lower = 1.0 - float(special.nctdtr(df, -shift, critical))
    if not math.isfinite(lower):
        lower = float(special.ndtr(-shift))
    if not math.isfinite(upper):  # the upper tail is ~1 exactly where scipy gives up
        upper = float(special.ndtr(shift - critical))
    return min(1.0, upper + lower)


def seeds_needed(
    difference: float,
    sd: float,
    power: float = 0.8,
    alpha: float = ALPHA,
    max_seeds: int = 1000,
    test_var: float = 0.0,
) -> float:
    """The fewest seeds for which a two-sided test at ``alpha`` detects a true per-seed
    difference ``difference`` with probability ``power``, when the per-seed differences
    spread with std ``sd``.

    With ``test_var == 0`` this is the paired t-test's power (noncentral t). A shared
    test set adds ``test_var`` to the variance of the mean whatever the number of seeds;
    the power is then that of :func:`recipe_difference`'s test, approximated with the
    same noncentral t on the total variance. ``inf``: no difference, more than
    ``max_seeds``, or a test set too small for any number of seeds; NaN: the spread is
    unknown (NaN, or 0: several seeds with no spread).
    """
    if not (np.isfinite(difference) and np.isfinite(sd)) or sd <= 0:
        return math.nan
    if difference == 0:
        return math.inf
    z = -float(special.ndtri(alpha / 2))
    if test_var > 0 and special.ndtr(abs(difference) / math.sqrt(test_var) - z) < power:
        return math.inf  # even infinitely many seeds leave the test set's noise
    for k in range(2, max_seeds + 1):
        total = sd * sd / k + test_var
        critical = _half_width(sd * sd / k, test_var, k, alpha) / math.sqrt(total)
        if _two_sided_power(critical, k - 1, abs(difference) / math.sqrt(total)) >= power:
            return float(k)
    return math.inf


def verdict(
    test: PairedTest, higher: str = "better", lower: str = "worse", p_value: float | None = None
) -> str:
    """``higher`` / ``lower`` when the difference is detected (``p_value``, by default
    the test's own, below ALPHA), else ``no detectable difference``; NO_SPREAD when
    several seeds did not spread; ``n/a`` when there is no test."""
    if test.undetermined:
        return NO_SPREAD
    p = test.p_value if p_value is None else p_value
    if not np.isfinite(p):
        return "n/a"
    if p >= ALPHA or test.difference == 0:
        return "no detectable difference"
    return higher if test.difference > 0 else lower

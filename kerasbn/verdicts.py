"""Verdicts: is each variant's difference from a baseline real, how large, how sure?

From a comparison's per-run rows (``runs.csv``) and, where recorded, each run's
per-image test predictions:

* :func:`intervals`: per variant and metric, the mean, std and 95% interval over seeds
  (one seed: a Wilson interval on the test accuracy from the test-set size; a t-interval
  of an accuracy is clipped to [0, 1]), and the
  seed-to-seed std that the test-set size alone predicts;
* :func:`verdicts`: per variant and metric, the difference from the baseline with its
  interval, p-value, test, a verdict word and the seeds needed for 80% power.

Several seeds are compared seed by seed (same seed = same split, batch order and
initial random state) with a paired t-test. One seed has no spread to test against, so
the test accuracy is compared image by image with an exact McNemar test: that compares
the two trained models, not the recipes, and the table says so.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd

from kerasbn import stats
from kerasbn.registry import unknown_name

__all__ = [
    "INTERVAL_COLUMNS",
    "METRICS",
    "VERDICT_COLUMNS",
    "choose_baseline",
    "intervals",
    "verdict_markdown",
    "verdicts",
]

# Compared metrics: what a positive difference is called when it is detected. Only a
# higher test accuracy is "better"; for the overfitting figures and epochs-to-target
# the table states the direction and leaves the judgement to the reader.
METRICS: dict[str, tuple[str, str]] = {
    "test_accuracy": ("better", "worse"),
    "final_train_val_gap": ("higher", "lower"),
    "val_loss_overfit": ("higher", "lower"),
    "epochs_to_target": ("higher", "lower"),
}

INTERVAL_COLUMNS = [
    "dataset",
    "variant",
    "metric",
    "seeds",
    "mean",
    "std",
    "ci_low",
    "ci_high",
    "method",
    "binomial_std",
]

VERDICT_COLUMNS = [
    "dataset",
    "variant",
    "baseline",
    "metric",
    "seeds",
    "difference",
    "ci_low",
    "ci_high",
    "p_value",
    "test",
    "verdict",
    "seeds_needed",
]


def choose_baseline(variants: list[str], baseline: str | None = None) -> str:
    """``baseline`` if it is one of ``variants``; by default ``base`` when present, else
    the first variant."""
    if baseline is None:
        return "base" if "base" in variants else variants[0]
    if baseline not in variants:
        raise unknown_name("baseline", variants, baseline, "baselines (this comparison's variants)")
    return baseline


def _values(runs: pd.DataFrame, metric: str) -> pd.Series:
    # A diverged run has no figures: NaN, never a low score.
    values = runs[metric].astype(float)
    return values.where(~runs["diverged"].astype(bool))


def intervals(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (variant, metric): mean, std and 95% interval over the seeds."""
    rows = []
    for (dataset, variant), group in runs.groupby(["dataset", "variant"], sort=False):
        for metric in METRICS:
            values = _values(group, metric)
            ci = stats.t_interval(values)
            binomial = math.nan
            if metric == "test_accuracy" and "test_examples" in group:
                n = int(group["test_examples"].iloc[0])
                binomial = stats.binomial_std(ci.mean, n)
                if ci.n == 1:
                    correct = round(float(values.dropna().iloc[0]) * n)
                    ci = stats.wilson_interval(correct, n)
                elif ci.n > 1:  # a t-interval knows no bounds; an accuracy lies in [0, 1]
                    ci = replace(ci, low=max(0.0, ci.low), high=min(1.0, ci.high))
            rows.append(
                {
                    "dataset": dataset,
                    "variant": variant,
                    "metric": metric,
                    "seeds": ci.n,
                    "mean": ci.mean,
                    "std": ci.std,
                    "ci_low": ci.low,
                    "ci_high": ci.high,
                    "method": ci.method,
                    "binomial_std": binomial,
                }
            )
    return pd.DataFrame(rows, columns=INTERVAL_COLUMNS)


def _paired(runs: pd.DataFrame, variant: str, baseline: str, metric: str):
    def by_seed(name: str) -> pd.Series:
        group = runs[runs["variant"] == name]
        return _values(group, metric).set_axis(group["seed"].to_numpy())

    pairs = pd.concat([by_seed(variant), by_seed(baseline)], axis=1, join="inner").dropna()
    return pairs.iloc[:, 0].to_numpy(), pairs.iloc[:, 1].to_numpy(), list(pairs.index)


def verdicts(
    runs: pd.DataFrame,
    baseline: str,
    correct: dict[tuple[str, int], np.ndarray] | None = None,
) -> pd.DataFrame:
    """One row per (variant other than ``baseline``, metric).

    ``correct[(variant, seed)]`` holds that run's per-image correctness on the test set;
    it is used for one-seed test-accuracy comparisons (McNemar).
    """
    correct = correct or {}
    rows = []
    dataset = runs["dataset"].iloc[0] if len(runs) else ""
    for variant in dict.fromkeys(runs["variant"]):
        if variant == baseline:
            continue
        for metric, (higher, lower) in METRICS.items():
            ours, theirs, seeds = _paired(runs, variant, baseline, metric)
            test = stats.paired_t(ours, theirs)
            if len(seeds) == 1 and metric == "test_accuracy":
                a, b = correct.get((variant, seeds[0])), correct.get((baseline, seeds[0]))
                if a is not None and b is not None and len(a) == len(b):
                    test = stats.mcnemar(a, b)
            rows.append(
                {
                    "dataset": dataset,
                    "variant": variant,
                    "baseline": baseline,
                    "metric": metric,
                    "seeds": len(seeds),
                    "difference": test.difference,
                    "ci_low": test.low,
                    "ci_high": test.high,
                    "p_value": test.p_value,
                    "test": test.test or f"none: {len(seeds)} paired seed(s)",
                    "verdict": stats.verdict(test, higher, lower),
                    "seeds_needed": stats.seeds_needed(test.difference, test.sd),
                }
            )
    return pd.DataFrame(rows, columns=VERDICT_COLUMNS)


def _points(value: float) -> str:
    return "n/a" if not np.isfinite(value) else f"{100 * value:+.2f}"


def _seeds_text(value: float) -> str:
    if np.isnan(value):
        return "n/a (needs ≥ 2 seeds)"
    return "> 1000" if math.isinf(value) else f"{value:.0f}"


def verdict_markdown(verdict_table: pd.DataFrame, interval_table: pd.DataFrame) -> str:
    """The verdict section of ``summary.md``: test accuracy of each variant against the
    baseline, and how the seed-to-seed spread compares with the test-set size."""
    rows = verdict_table[verdict_table["metric"] == "test_accuracy"]
    if rows.empty:
        return ""
    baseline = rows["baseline"].iloc[0]
    table = pd.DataFrame(
        {
            "variant": rows["variant"],
            "Δ test acc (pp)": rows["difference"].map(_points),
            "95% CI (pp)": [
                "n/a" if not np.isfinite(lo) else f"[{_points(lo)}, {_points(hi)}]"
                for lo, hi in zip(rows["ci_low"], rows["ci_high"], strict=True)
            ],
            "p": rows["p_value"].map(lambda p: "n/a" if np.isnan(p) else f"{p:.3g}"),
            "test": rows["test"],
            "verdict": rows["verdict"],
            "seeds for 80% power": rows["seeds_needed"].map(_seeds_text),
        }
    )
    lines = [
        f"### Verdicts: each variant against `{baseline}` (test accuracy)",
        "",
        # disable_numparse: keep "+0.65" signed, as written.
        table.to_markdown(index=False, disable_numparse=True),
        "",
        f"A difference is called detected at p < {stats.ALPHA:.2f} (two-sided, per "
        "comparison); the interval is 95%.",
    ]
    if (rows["seeds"] == 1).any():
        lines.append(
            "One seed: McNemar's test compares these two trained models image by image; it "
            "says nothing about another seed of the same recipe. Use `--seeds 3` or more "
            "to compare the recipes."
        )
    accuracy = interval_table[interval_table["metric"] == "test_accuracy"]
    spread = [
        f"`{r.variant}` {100 * r.std:.2f} pp (test-set size alone: {100 * r.binomial_std:.2f})"
        for r in accuracy.itertuples()
        if np.isfinite(r.std) and np.isfinite(r.binomial_std)
    ]
    if spread:
        lines.append(
            "Seed-to-seed std of test accuracy against the std the test-set size alone "
            "predicts (binomial): " + "; ".join(spread) + "."
        )
    return "\n".join(lines) + "\n"

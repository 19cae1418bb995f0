"""The verdicts in words: the verdict section of a comparison's ``summary.md`` and the
line under every verdict table that names its test, family and correction."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from kerasbn import stats
from kerasbn.verdicts import ONE_SEED, SEEDS_AND_TEST_SET, SEEDS_ONLY

__all__ = ["family_note", "p_text", "points_text", "span_text", "verdict_markdown"]


def points_text(value: float) -> str:
    return "n/a" if not np.isfinite(value) else f"{100 * value:+.2f}"


def _seeds_text(value: float) -> str:
    if np.isnan(value):
        return "n/a (needs ≥ 2 seeds with spread)"
    return "> 1000" if math.isinf(value) else f"{value:.0f}"


def p_text(p: float) -> str:
    return "n/a" if not np.isfinite(p) else f"{p:.3g}"


def span_text(low, high) -> list[str]:
    return [
        "n/a" if not np.isfinite(lo) else f"[{points_text(lo)}, {points_text(hi)}]"
        for lo, hi in zip(low, high, strict=True)
    ]


def family_note(rows: pd.DataFrame, against: str | None = None) -> str:
    """One paragraph under a verdict table: the test, the family, the correction and
    what the interval includes, for the test-accuracy rows ``rows``; ``against`` words
    what each row is compared with where that is not one baseline."""
    if rows.empty:
        return ""
    baseline, size = rows["baseline"].iloc[0], int(rows["family_size"].max())
    kinds = set(rows["interval"])
    parts = [
        f"Family: the {size} test-accuracy comparison{'s' if size != 1 else ''} "
        f"{against or f'against `{baseline}`'} in this table; "
        f"Holm's step-down correction; a difference is called detected at Holm-adjusted "
        f"p < {stats.ALPHA:.2f} (two-sided)."
    ]
    if SEEDS_AND_TEST_SET in kinds:
        parts.append(
            "Test: the recipe difference over seeds, with a 95% interval that adds the "
            "test set's own sampling noise to the seed-to-seed spread (Graybill-Wang "
            "combination; the p-value is the level at which it reaches 0); the seed-only "
            "paired t-interval, which ignores the test set's noise, is shown beside it."
        )
    if SEEDS_ONLY in kinds:
        parts.append(
            "Test: paired t-test over seeds (no per-image results in this folder): its "
            "interval holds the seed-to-seed spread only, not the test set's noise."
        )
    if ONE_SEED in kinds:
        parts.append(
            "One seed: McNemar's exact test compares these two trained models image by "
            "image, with a Bonett-Price 95% interval; it says nothing about another seed "
            "of the same recipe. Use `--seeds 3` or more to compare the recipes."
        )
    if (rows["verdict"] == stats.NO_SPREAD).any():
        parts.append(
            f"{stats.NO_SPREAD}: every seed moved by exactly the same amount, so the "
            "spread cannot be estimated; more seeds are needed for any verdict."
        )
    parts.append(
        "Seeds for 80% power: at Holm's strictest level (0.05 / family size), test set "
        "noise included; '> 1000' where the test set is too small for any number of seeds."
    )
    return " ".join(parts)


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
            "Δ test acc (pp)": rows["difference"].map(points_text),
            "95% CI (pp)": span_text(rows["ci_low"], rows["ci_high"]),
            "interval": rows["interval"],
            "seed-only 95% CI (pp)": span_text(rows["seed_ci_low"], rows["seed_ci_high"]),
            "p": rows["p_value"].map(p_text),
            "p (Holm)": rows["p_holm"].map(p_text),
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
        family_note(rows),
    ]
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

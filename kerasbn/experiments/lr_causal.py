"""lr-robustness's causal test of Bjorck et al.'s claim (BN's gain comes from the larger
learning rate it allows): each variant against ``base`` at each one's own best rate, at
``base``'s best rate and at the variant's best rate, paired over seeds, Holm-corrected
over the table."""

from __future__ import annotations

import numpy as np
import pandas as pd

from kerasbn.verdict_text import p_text, points_text, span_text

__all__ = ["CAUSAL_COLUMNS", "best_rates", "causal_markdown", "causal_tests"]


def best_rates(cells: pd.DataFrame) -> dict[str, float]:
    """Each variant's best rate: the highest mean final validation accuracy among the
    rates where no seed diverged (ties: the lower rate)."""
    ok = cells[cells["diverged_seeds"] == 0].sort_values("learning_rate")
    best = ok.loc[ok.groupby("variant", sort=False)["val_accuracy_mean"].idxmax()]
    return dict(zip(best["variant"], best["learning_rate"], strict=True))


CAUSAL_COLUMNS = [
    "variant",
    "comparison",
    "variant_rate",
    "base_rate",
    "seeds",
    "difference",
    "ci_low",
    "ci_high",
    "p_value",
    "p_holm",
    "verdict",
    "note",
]


def causal_tests(runs: pd.DataFrame, cells: pd.DataFrame, baseline: str = "base") -> pd.DataFrame:
    """Bjorck et al.'s causal claim, tested: each variant against ``baseline`` (final
    validation accuracy, paired seed by seed) at each one's own best rate, at the
    baseline's best rate, and at the variant's best rate. A seed that diverged has no
    accuracy: its pair is left out, and a comparison with no pair left says so. The
    family is every row; Holm's correction; the verdict uses the adjusted p."""
    from kerasbn import stats

    best = best_rates(cells)
    if baseline not in best:
        return pd.DataFrame(columns=CAUSAL_COLUMNS)

    def accuracies(variant: str, lr: float) -> pd.Series:
        rows = runs[(runs["variant"] == variant) & np.isclose(runs["learning_rate"], lr)]
        return rows.set_index("seed")["val_accuracy"].astype(float)

    rows, tests = [], []
    for variant in [v for v in best if v != baseline]:
        # One comparison per pair of rates: where the best rates coincide, the three
        # questions are one, asked once (a repeated test would only swell the family).
        plans: dict[tuple[float, float], list[str]] = {}
        for comparison, mine, theirs in (
            ("each at its own best rate", best[variant], best[baseline]),
            (f"both at {baseline}'s best rate", best[baseline], best[baseline]),
            (f"both at {variant}'s best rate", best[variant], best[variant]),
        ):
            plans.setdefault((mine, theirs), []).append(comparison)
        for (mine, theirs), names in plans.items():
            comparison = " = ".join(names)
            pairs = pd.concat(
                {variant: accuracies(variant, mine), baseline: accuracies(baseline, theirs)},
                axis=1,
                join="inner",
            )
            lost = pairs.isna().any(axis=1)
            note = ""
            if lost.any():
                who = " and ".join(n for n in (variant, baseline) if pairs[n].isna().any())
                note = f"{who} diverged with {int(lost.sum())} of {len(pairs)} seeds"
            pairs = pairs[~lost]
            test = stats.paired_t(pairs[variant].to_numpy(), pairs[baseline].to_numpy())
            tests.append(test)
            rows.append(
                {
                    "variant": variant,
                    "comparison": comparison,
                    "variant_rate": mine,
                    "base_rate": theirs,
                    "seeds": test.n,
                    "difference": test.difference,
                    "ci_low": test.low,
                    "ci_high": test.high,
                    "p_value": test.p_value,
                    "note": note,
                }
            )
    adjusted = stats.holm([t.p_value for t in tests])
    for row, test, p_holm in zip(rows, tests, adjusted, strict=True):
        row["p_holm"] = p_holm
        row["verdict"] = stats.verdict(test, "better", "worse", p_holm)
    return pd.DataFrame(rows, columns=CAUSAL_COLUMNS)


def causal_markdown(tests: pd.DataFrame, baseline: str = "base") -> str:
    if tests.empty:
        return f"No causal test: `{baseline}` trained at none of the rates."

    table = pd.DataFrame(
        {
            "variant": [f"`{v}`" for v in tests["variant"]],
            f"against `{baseline}`": tests["comparison"],
            "rates (variant, base)": [
                f"{a:g}, {b:g}"
                for a, b in zip(tests["variant_rate"], tests["base_rate"], strict=True)
            ],
            "Δ val acc (pp)": tests["difference"].map(points_text),
            "95% CI (pp)": span_text(tests["ci_low"], tests["ci_high"]),
            "seeds": tests["seeds"],
            "p (Holm)": tests["p_holm"].map(p_text),
            "verdict": tests["verdict"],
            "note": tests["note"],
        }
    )
    return (
        "### Is BN's gain the larger rate? (Bjorck et al.'s causal claim)\n\n"
        f"{table.to_markdown(index=False, disable_numparse=True)}\n\n"
        f"Test: paired t-test over seeds of the final validation accuracy; family: the "
        f"{len(tests)} comparison{'s' if len(tests) != 1 else ''} of this table, "
        "Holm's step-down correction, detected at "
        "Holm-adjusted p < 0.05. Each best rate is chosen on the same validation accuracies "
        "it is scored on (both sides alike). If the gain comes from the larger rate, it is "
        f"there at the own-best rates and gone when both train at `{baseline}`'s.\n"
    )

"""Comparison tables from per-epoch histories (the figures are in :mod:`kerasbn.plots`).

Inputs are plain pandas frames, so notebooks can rebuild any table or figure from a run
folder's ``history.csv`` and ``runs.csv``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from kerasbn._io import write_text
from kerasbn.training.options import EPOCH_COLUMNS
from kerasbn.verdict_text import verdict_markdown
from kerasbn.verdicts import intervals, verdicts

if TYPE_CHECKING:  # the training loop imports Keras; the tables do not need it
    from kerasbn.training import TrainResult

__all__ = [
    "HISTORY_COLUMNS",
    "SUMMARY_COLUMNS",
    "format_mean_std",
    "mean_std",
    "run_metrics",
    "run_row",
    "summarize",
    "summary_markdown",
    "data_choices",
    "write_results",
    "write_tables",
]

# Learning figures only: with the timing columns left out (they live in logs/<run>.csv),
# the same seed gives a byte-identical history.csv.
HISTORY_COLUMNS = ["dataset", "variant", "seed", *EPOCH_COLUMNS[:5]]

SUMMARY_COLUMNS = [
    "dataset",
    "variant",
    "params",
    "seeds",
    "test_accuracy_mean",
    "test_accuracy_std",
    "test_accuracy_ci_low",
    "test_accuracy_ci_high",
    "test_accuracy_binomial_std",
    "test_loss_mean",
    "best_val_accuracy",
    "best_val_epoch",
    "final_train_val_gap",
    "val_loss_overfit",
    "target_val_accuracy",
    "epochs_to_target",
    "seconds_per_epoch",
    "train_images_per_s",
    "diverged_runs",
]


_RUN_METRICS = (
    "best_val_accuracy",
    "best_val_epoch",
    "final_train_val_gap",
    "val_loss_overfit",
    "epochs_to_target",
    "seconds_per_epoch",
    "train_images_per_s",
)


def run_metrics(history: pd.DataFrame, target: float, train_examples: int) -> dict:
    """Per-run figures from one run's per-epoch history (sorted by epoch).

    * best val accuracy and its (1-based) epoch;
    * final train-minus-val accuracy gap (positive: the model fits train better);
    * final val loss minus the lowest val loss (how far val loss climbed back: overfitting);
    * first epoch whose val accuracy reaches ``target`` (NaN if never);
    * seconds per epoch and training images/s, medians that skip epoch 1 when there
      are more, since epoch 1 includes graph tracing.

    A run that diverged in its first epoch has no history: every figure is NaN.
    """
    h = history.sort_values("epoch")
    if h.empty:
        return dict.fromkeys(_RUN_METRICS, np.nan)
    last = h.iloc[-1]
    best = h.loc[h["val_accuracy"].idxmax()] if h["val_accuracy"].notna().any() else None
    reached = h.loc[h["val_accuracy"] >= target, "epoch"]
    steady = h.iloc[1:] if len(h) > 1 else h
    train_seconds = float(steady["train_seconds"].median())
    return {
        "best_val_accuracy": float(best["val_accuracy"]) if best is not None else np.nan,
        "best_val_epoch": int(best["epoch"]) if best is not None else np.nan,
        "final_train_val_gap": float(last["accuracy"] - last["val_accuracy"]),
        "val_loss_overfit": float(last["val_loss"] - h["val_loss"].min()),
        "epochs_to_target": int(reached.iloc[0]) if len(reached) else np.nan,
        "seconds_per_epoch": float(steady["seconds"].median()),
        "train_images_per_s": train_examples / train_seconds if train_seconds > 0 else np.nan,
    }


def run_row(result: TrainResult, scores: dict) -> dict:
    """One row of ``runs.csv``: a trained run's test scores and :func:`run_metrics`."""
    return {
        "dataset": result.dataset,
        "variant": result.variant.name,
        "seed": result.config.seed,
        "params": result.params,
        **scores,
        **run_metrics(result.history, result.config.target_val_accuracy, result.train_examples),
        "target_val_accuracy": result.config.target_val_accuracy,
        "epochs": len(result.history),
        "diverged": result.diverged,
        "diverged_at": result.diverged_at or "",
        "replicas": result.replicas,
        "global_batch_size": result.global_batch_size,
    }


def summarize(runs: pd.DataFrame, correct: dict | None = None) -> pd.DataFrame:
    """One row per (dataset, variant) from per-run rows (one per seed).

    ``runs`` has the columns of :func:`run_metrics` plus dataset, variant, seed, params,
    test_accuracy, test_loss and diverged. Test accuracy is given as mean and sample
    standard deviation over seeds (std is empty for a single seed) with a 95% interval
    (Student t over seeds; Wilson over the test images for one seed, see
    :mod:`kerasbn.verdicts`) and the std the test-set size alone predicts; the other
    figures are means over seeds. Diverged runs are counted, and left out of the means: a variant
    whose every seed diverged has no figures (NaN), never a misleading low accuracy.
    """
    rows = []
    for (dataset, variant), group in runs.groupby(["dataset", "variant"], sort=False):
        stats = group[~group["diverged"].astype(bool)]

        def mean(col: str, frame: pd.DataFrame = stats) -> float:
            values = frame[col].astype(float)
            return float(values.mean()) if values.notna().any() else np.nan

        reached = stats["epochs_to_target"].astype(float)
        rows.append(
            {
                "dataset": dataset,
                "variant": variant,
                "params": int(group["params"].iloc[0]),
                "seeds": len(group),
                "test_accuracy_mean": mean("test_accuracy"),
                "test_accuracy_std": (
                    float(stats["test_accuracy"].std(ddof=1)) if len(stats) > 1 else np.nan
                ),
                "test_loss_mean": mean("test_loss"),
                "best_val_accuracy": mean("best_val_accuracy"),
                "best_val_epoch": mean("best_val_epoch"),
                "final_train_val_gap": mean("final_train_val_gap"),
                "val_loss_overfit": mean("val_loss_overfit"),
                "target_val_accuracy": float(group["target_val_accuracy"].iloc[0]),
                # A seed that never reaches the target makes the mean meaningless: NaN.
                "epochs_to_target": float(reached.mean()) if reached.notna().all() else np.nan,
                "seconds_per_epoch": mean("seconds_per_epoch"),
                "train_images_per_s": mean("train_images_per_s"),
                "diverged_runs": int(group["diverged"].astype(bool).sum()),
            }
        )
    accuracy = intervals(runs, correct).query("metric == 'test_accuracy'")
    accuracy = accuracy.set_index(["dataset", "variant"])
    for row in rows:
        interval = accuracy.loc[(row["dataset"], row["variant"])]
        row["test_accuracy_ci_low"] = interval["ci_low"]
        row["test_accuracy_ci_high"] = interval["ci_high"]
        row["test_accuracy_binomial_std"] = interval["binomial_std"]
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def format_mean_std(mean: float, std: float, scale: float = 100.0, digits: int = 2) -> str:
    """``"mean ± std"`` scaled (percent by default); ``"n/a"`` without a mean, the mean
    alone without a std (one seed)."""
    if np.isnan(mean):
        return "n/a"
    text = f"{scale * mean:.{digits}f}"
    return text + ("" if np.isnan(std) else f" ± {scale * std:.{digits}f}")


def mean_std(
    values, scale: float = 100.0, digits: int = 2, missing: str | None = "n/a"
) -> str | None:
    """:func:`format_mean_std` of the finite ``values`` (std only with two or more);
    ``missing`` when there is none."""
    arr = np.asarray(values, dtype=float)
    finite = arr[np.isfinite(arr)]
    if finite.size == 0:
        return missing
    std = finite.std(ddof=1) if finite.size > 1 else np.nan
    return format_mean_std(finite.mean(), std, scale, digits)


def summary_markdown(summary: pd.DataFrame, title: str | None = None) -> str:
    """The summary as a Markdown table for humans (percentages, mean ± std)."""
    table = pd.DataFrame(
        {
            "variant": summary["variant"],
            "params": summary["params"].map("{:,}".format),
            "seeds": summary["seeds"],
            "test acc % (mean ± std)": [
                "diverged" if d == n else format_mean_std(m, s)
                for m, s, d, n in zip(
                    summary["test_accuracy_mean"],
                    summary["test_accuracy_std"],
                    summary["diverged_runs"],
                    summary["seeds"],
                    strict=True,
                )
            ],
            "95% CI %": [
                "n/a" if np.isnan(lo) else f"[{100 * lo:.2f}, {100 * hi:.2f}]"
                for lo, hi in zip(
                    summary["test_accuracy_ci_low"], summary["test_accuracy_ci_high"], strict=True
                )
            ],
            "best val acc % (epoch)": [
                "n/a" if np.isnan(a) else f"{100 * a:.2f} ({e:.0f})"
                for a, e in zip(
                    summary["best_val_accuracy"], summary["best_val_epoch"], strict=True
                )
            ],
            "train−val acc gap (pp)": (100 * summary["final_train_val_gap"]).map("{:+.2f}".format),
            "val loss − min": summary["val_loss_overfit"].map("{:.4f}".format),
            "epochs to target": [
                f"not reached (≥{100 * t:g}%)" if np.isnan(e) else f"{e:g} (≥{100 * t:g}%)"
                for e, t in zip(
                    summary["epochs_to_target"], summary["target_val_accuracy"], strict=True
                )
            ],
            "s / epoch": summary["seconds_per_epoch"].map("{:.1f}".format),
            "train img/s": summary["train_images_per_s"].map("{:,.0f}".format),
            "diverged": summary["diverged_runs"],
        }
    )
    lines = [f"## {title}", ""] if title else []
    lines.append(table.to_markdown(index=False))
    return "\n".join(lines) + "\n"


def write_tables(
    summary: pd.DataFrame, out_dir: str | os.PathLike, title: str, sections: str = ""
) -> None:
    """``summary.csv`` and ``summary.md`` (with ``sections`` appended, e.g. the
    verdicts) in ``out_dir``, each written atomically."""
    out_dir = Path(out_dir)
    write_text(out_dir / "summary.csv", summary.to_csv(index=False))
    markdown = summary_markdown(summary, title)
    write_text(out_dir / "summary.md", markdown + ("\n" + sections if sections else ""))


def data_choices(dataset: dict) -> list[tuple[str, str]]:
    """What kerasbn chose for your own data set, from ``config.json``'s ``dataset``
    record, as (choice, value) pairs; empty for the built-in sets (nothing inferred)."""
    from kerasbn._text import markdown_safe

    if not isinstance(dataset, dict) or not isinstance(dataset.get("inferred"), dict):
        return []
    pairs = [
        ("source", markdown_safe(dataset.get("source", "?"))),
        (
            "images",
            f"{dataset.get('train', '?')} training, {dataset.get('val', '?')} validation, "
            f"{dataset.get('test', '?')} test",
        ),
        ("split", markdown_safe(dataset.get("split", "?"))),
    ]
    for what in ("skipped", "converted"):
        counts = dataset.get(what) or {}
        text = ", ".join(f"{n} {markdown_safe(k)}" for k, n in counts.items())
        pairs.append((what, text or "none"))
    pairs += [(markdown_safe(k), markdown_safe(v)) for k, v in dataset["inferred"].items()]
    return pairs


def _data_choices(out_dir: Path) -> str:
    """:func:`data_choices` of a run folder as a Markdown section of ``summary.md``."""
    import json

    try:
        data = json.loads((out_dir / "config.json").read_text(encoding="utf-8"))["dataset"]
    except (OSError, ValueError, KeyError, TypeError):
        return ""
    pairs = data_choices(data)
    if not pairs:
        return ""
    lines = ["", "### Your data set: what kerasbn chose", ""]
    lines += [f"- {key}: {value}" for key, value in pairs]
    return "\n".join(lines) + "\n"


def write_results(
    out_dir: str | os.PathLike,
    history: pd.DataFrame,
    runs: pd.DataFrame,
    title: str,
    baseline: str,
    correct: dict | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every table and figure of a comparison folder, each file written atomically:
    ``history.csv``, ``runs.csv``, ``summary.csv`` / ``summary.md`` (with the verdict
    section, and each variant's tuned values after ``compare --tune``), ``intervals.csv``,
    ``verdicts.csv``, ``curves.png`` and, with two or more variants, ``differences.png``.
    Returns (summary, verdicts)."""
    out_dir = Path(out_dir)
    summary = summarize(runs, correct)
    interval_table = intervals(runs, correct)
    verdict_table = verdicts(runs, baseline, correct)
    write_text(out_dir / "history.csv", history.to_csv(index=False))
    write_text(out_dir / "runs.csv", runs.to_csv(index=False))
    write_text(out_dir / "intervals.csv", interval_table.to_csv(index=False))
    write_text(out_dir / "verdicts.csv", verdict_table.to_csv(index=False))
    extra = verdict_markdown(verdict_table, interval_table) + _data_choices(out_dir)
    tuned = out_dir / "tuning" / "tuning.md"
    if tuned.is_file():  # compare --tune: each variant trained at its own chosen values
        extra += "\n### Tuned values (compare --tune)\n\n" + tuned.read_text(encoding="utf-8")
    write_tables(summary, out_dir, title, extra)
    # matplotlib is loaded here, where a figure is drawn: reading tables needs none of it.
    from kerasbn.plots import plot_curves, plot_differences

    plot_curves(history, summary, out_dir / "curves.png", title=title)
    if len(verdict_table):
        plot_differences(verdict_table, out_dir / "differences.png", title=title)
    return summary, verdict_table


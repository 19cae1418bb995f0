"""Comparison tables and overfitting curves from per-epoch histories.

Inputs are plain pandas frames, so notebooks can rebuild any table or figure from a run
folder's ``history.csv`` and ``runs.csv``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from kerasbn._io import atomic_path, write_text
from kerasbn.train import EPOCH_COLUMNS, TrainResult

__all__ = [
    "HISTORY_COLUMNS",
    "SUMMARY_COLUMNS",
    "plot_curves",
    "run_metrics",
    "run_row",
    "summarize",
    "summary_markdown",
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


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, variant) from per-run rows (one per seed).

    ``runs`` has the columns of :func:`run_metrics` plus dataset, variant, seed, params,
    test_accuracy, test_loss and diverged. Test accuracy is given as mean and sample
    standard deviation over seeds (std is empty for a single seed); the other figures are
    means over seeds. Diverged runs are counted, and left out of the means: a variant
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
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def _pct(mean: float, std: float) -> str:
    if np.isnan(mean):
        return "n/a"
    return f"{100 * mean:.2f}" + ("" if np.isnan(std) else f" ± {100 * std:.2f}")


def summary_markdown(summary: pd.DataFrame, title: str | None = None) -> str:
    """The summary as a Markdown table for humans (percentages, mean ± std)."""
    table = pd.DataFrame(
        {
            "variant": summary["variant"],
            "params": summary["params"].map("{:,}".format),
            "seeds": summary["seeds"],
            "test acc % (mean ± std)": [
                "diverged" if d == n else _pct(m, s)
                for m, s, d, n in zip(
                    summary["test_accuracy_mean"],
                    summary["test_accuracy_std"],
                    summary["diverged_runs"],
                    summary["seeds"],
                    strict=True,
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


def write_tables(summary: pd.DataFrame, out_dir: str | os.PathLike, title: str) -> None:
    out_dir = Path(out_dir)
    write_text(out_dir / "summary.csv", summary.to_csv(index=False))
    write_text(out_dir / "summary.md", summary_markdown(summary, title))


def pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend (works on headless machines)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | os.PathLike) -> Path:
    """Write ``fig`` as PNG atomically (temp file + rename) and close it."""
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    pyplot().close(fig)
    return Path(path)


def plot_curves(
    history: pd.DataFrame, summary: pd.DataFrame, path: str | os.PathLike, title: str = ""
) -> Path:
    """Loss and accuracy per epoch (train solid, val dashed, one colour per variant; mean
    over seeds with a ±std band) and a test-accuracy bar chart, in one PNG."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6), gridspec_kw={"width_ratios": [1, 1, 0.8]})
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    variants = list(dict.fromkeys(history["variant"]))
    for k, variant in enumerate(variants):
        colour = colours[k % len(colours)]
        per_epoch = history[history["variant"] == variant].groupby("epoch")
        for ax, metric in zip(axes[:2], ("loss", "accuracy"), strict=True):
            for prefix, style in (("", "-"), ("val_", "--")):
                col = prefix + metric
                mean, std = per_epoch[col].mean(), per_epoch[col].std(ddof=1)
                label = f"{variant} {'val' if prefix else 'train'}"
                ax.plot(mean.index, mean.values, style, color=colour, label=label)
                if std.notna().any():
                    ax.fill_between(mean.index, mean - std, mean + std, color=colour, alpha=0.15)
    for ax, metric in zip(axes[:2], ("loss", "accuracy"), strict=True):
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.set_title(f"{metric}: train (solid) vs validation (dashed)")
        ax.grid(alpha=0.3)
    if axes[1].get_legend_handles_labels()[0]:  # nothing to label if every run diverged
        axes[1].legend(fontsize=8, ncol=2)
    bars = summary.set_index("variant").loc[variants]
    acc = 100 * bars["test_accuracy_mean"].to_numpy(dtype=float)
    err = 100 * bars["test_accuracy_std"].fillna(0).to_numpy(dtype=float)
    axes[2].bar(
        variants,
        acc,
        yerr=err,
        capsize=4,
        color=[colours[k % len(colours)] for k in range(len(variants))],
    )
    finite = acc[np.isfinite(acc)]
    if finite.size:
        low = max(0.0, float(finite.min()) - max(2.0, 3 * float(err.max(initial=0))))
        axes[2].set_ylim(low, min(100.0, float(finite.max()) + 1.0))
    bottom = axes[2].get_ylim()[0]
    for x, value in enumerate(acc):
        text, y = (f"{value:.2f}", value) if np.isfinite(value) else ("diverged", bottom)
        axes[2].annotate(text, (x, y), ha="center", va="bottom", fontsize=8)
    axes[2].set_ylabel("test accuracy (%)")
    axes[2].set_title("test accuracy (mean ± std over seeds)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)

"""Figures: matplotlib set up for headless machines, atomic PNG writes, mean ± std bands,
and the comparison's curves."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from kerasbn._io import atomic_path

__all__ = [
    "heatmap",
    "plot_curves",
    "plot_differences",
    "plot_mean_band",
    "pyplot",
    "save_figure",
]


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


def heatmap(ax, values, rows, columns, labels, *, vmin=0.0, vmax=1.0, dark_below=0.6):
    """Draw ``values`` (rows x columns, NaN for cells with no figure, shown grey) on ``ax``
    with each cell's text from ``labels`` (same shape); returns the image for a colour bar.
    Text is white on cells darker than ``dark_below``."""
    plt = pyplot()
    values = np.asarray(values, dtype=float)
    cmap = plt.get_cmap("viridis").with_extremes(bad="0.85")
    image = ax.imshow(np.ma.masked_invalid(values), vmin=vmin, vmax=vmax, cmap=cmap, aspect="auto")
    ax.set_xticks(range(len(columns)), columns, rotation=20)
    ax.set_yticks(range(len(rows)), rows)
    for (i, j), value in np.ndenumerate(values):
        dark = np.isfinite(value) and value < dark_below
        colour = "white" if dark else "black"
        ax.text(j, i, labels[i][j], ha="center", va="center", color=colour, fontsize=8)
    return image


def plot_mean_band(
    ax,
    runs: pd.DataFrame,
    column: str,
    *,
    colour,
    label: str | None,
    by: str = "epoch",
    style: str = "-",
    alpha: float = 0.15,
) -> None:
    """``column``'s mean over the runs (seeds) per ``by`` value as a line, with a ±std band
    where there are several runs."""
    grouped = runs.groupby(by)[column]
    mean, std = grouped.mean(), grouped.std(ddof=1)
    ax.plot(mean.index, mean.values, style, color=colour, label=label)
    if std.notna().any():
        ax.fill_between(mean.index, mean - std, mean + std, color=colour, alpha=alpha)


def plot_curves(
    history: pd.DataFrame, summary: pd.DataFrame, path: str | os.PathLike, title: str = ""
) -> Path:
    """Loss and accuracy per epoch (train solid, val dashed, one colour per variant; mean
    over seeds with a ±std band) and a test-accuracy bar chart with 95% intervals, in one
    PNG."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6), gridspec_kw={"width_ratios": [1, 1, 0.8]})
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    variants = list(dict.fromkeys(history["variant"]))
    for k, variant in enumerate(variants):
        colour = colours[k % len(colours)]
        runs = history[history["variant"] == variant]
        for ax, metric in zip(axes[:2], ("loss", "accuracy"), strict=True):
            for prefix, style in (("", "-"), ("val_", "--")):
                # One legend entry per variant (its colour); the line style is in the title.
                label = variant if prefix == "" else None
                plot_mean_band(ax, runs, prefix + metric, colour=colour, label=label, style=style)
    for ax, metric in zip(axes[:2], ("loss", "accuracy"), strict=True):
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.set_title(f"{metric}: train (solid) vs validation (dashed)")
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole
    if axes[1].get_legend_handles_labels()[0]:  # nothing to label if every run diverged
        axes[1].legend(fontsize=8, ncol=1 if len(variants) < 4 else 2)
    bars = summary.set_index("variant").loc[variants]
    acc = 100 * bars["test_accuracy_mean"].to_numpy(dtype=float)
    # Error bars: the 95% interval (over seeds, or over test images for one seed).
    low_ci = 100 * bars["test_accuracy_ci_low"].to_numpy(dtype=float)
    high_ci = 100 * bars["test_accuracy_ci_high"].to_numpy(dtype=float)
    err = np.nan_to_num(np.vstack([acc - low_ci, high_ci - acc]), nan=0.0).clip(min=0)
    axes[2].bar(
        variants,
        acc,
        yerr=err,
        capsize=4,
        color=[colours[k % len(colours)] for k in range(len(variants))],
    )
    finite = acc[np.isfinite(acc)]
    if finite.size:
        low = max(0.0, float(finite.min()) - max(2.0, 1.5 * float(err.max(initial=0))))
        # Room above the highest cap for its number.
        axes[2].set_ylim(low, min(100.0, float(np.nanmax(acc + err[1])) + 1.5))
    bottom = axes[2].get_ylim()[0]
    if bottom > 0:  # bars that do not start at zero must say so
        axes[2].set_xlabel(f"(y axis starts at {bottom:.1f}%, not 0)", fontsize=8)
    for x, value in enumerate(acc):
        # Above the interval's cap, so the number and the error bar do not overlap.
        top = value + err[1][x]
        text, y = (f"{value:.2f}", top) if np.isfinite(value) else ("diverged", bottom)
        axes[2].annotate(
            text, (x, y), xytext=(0, 2), textcoords="offset points", ha="center",
            va="bottom", fontsize=8,
        )  # fmt: skip
    if len(variants) > 3 or max(map(len, variants), default=0) > 8:
        # Long names (bn+head-dropout) side by side collide: tilt them.
        axes[2].tick_params(axis="x", labelrotation=25)
        for label in axes[2].get_xticklabels():
            label.set_horizontalalignment("right")
    axes[2].set_ylabel("test accuracy (%)")
    axes[2].set_title("test accuracy (mean, 95% interval)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_differences(verdicts: pd.DataFrame, path: str | os.PathLike, title: str = "") -> Path:
    """A forest plot: each variant's test-accuracy difference from the baseline (points)
    with its 95% interval, a line at zero, and the verdict beside it."""
    plt = pyplot()
    rows = verdicts[verdicts["metric"] == "test_accuracy"].reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.6 * max(1, len(rows))))
    y = np.arange(len(rows))[::-1]
    diff = 100 * rows["difference"].to_numpy(dtype=float)
    low = 100 * rows["ci_low"].to_numpy(dtype=float)
    high = 100 * rows["ci_high"].to_numpy(dtype=float)
    err = np.nan_to_num(np.vstack([diff - low, high - diff]), nan=0.0).clip(min=0)
    ax.errorbar(diff, y, xerr=err, fmt="o", capsize=4, color="tab:blue")
    ax.axvline(0, color="grey", lw=1)
    for k, row in rows.iterrows():
        ax.annotate(
            f"  {row['verdict']} (p_Holm={row['p_holm']:.2g})"
            if np.isfinite(row.get("p_holm", np.nan))
            else f"  {row['verdict']}",
            (diff[k] if np.isfinite(diff[k]) else 0, y[k]),
            va="bottom",
            fontsize=8,
        )
    ax.set_yticks(y, rows["variant"])
    ax.set_ylim(-0.7, len(rows) - 0.3)
    baseline = rows["baseline"].iloc[0] if len(rows) else ""
    ax.set_xlabel(f"test accuracy minus {baseline}'s (percentage points, 95% interval)")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title or f"difference from {baseline}")
    fig.tight_layout()
    return save_figure(fig, path)

"""The diagnostics' files in a comparison folder, rewritten after every run from the
runs' records:

* ``variance_shift.csv``: per BN variant, seed and BN layer, the mean and largest
  ``max(a/b, b/a)`` of inference input variance ``a`` and moving variance ``b``;
* ``bn_statistics.png``: per BN variant, test accuracy with the moving averages and
  with precise BN statistics, and the variance shift of each BN layer;
* ``calibration.png``: the reliability diagram (accuracy against confidence in 15
  equal-width bins) of each variant's test predictions, all seeds pooled;
* ``activations.csv`` / ``activations.png`` (``compare --activations``): the 15th,
  50th and 85th percentiles of each ReLU's input over training, per variant.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from kerasbn._io import write_text
from kerasbn.diagnostics.activations import ACTIVATION_COLUMNS
from kerasbn.diagnostics.calibration import CALIBRATION_BINS
from kerasbn.plots import pyplot, save_figure
from kerasbn.runfolder import file_in

__all__ = [
    "ACTIVATION_IMAGES",
    "PRECISE_BN_SUFFIX",
    "plot_activations",
    "plot_bn_statistics",
    "plot_reliability",
    "write_diagnostics",
]

# The fixed validation batch the activation percentiles are taken on.
ACTIVATION_IMAGES = 256
# A model saved with precise BN statistics: <dataset>-<variant>-precise-bn.keras.
PRECISE_BN_SUFFIX = "-precise-bn"


def write_diagnostics(out_dir: str | os.PathLike, records: list[dict], y_test, title: str):
    """Write the files above that ``records`` (the runs' JSON records) have data for."""
    out_dir = Path(out_dir)
    shifts = [
        {"dataset": r["row"]["dataset"], "variant": r["row"]["variant"], "seed": r["row"]["seed"]}
        | layer
        for r in records
        for layer in r.get("variance_shift") or ()
    ]
    if shifts:
        table = pd.DataFrame(shifts)
        write_text(out_dir / "variance_shift.csv", table.to_csv(index=False))
        rows = pd.DataFrame([r["row"] for r in records])
        plot_bn_statistics(rows, table, out_dir / "bn_statistics.png", title)
    pooled: dict[str, list[np.ndarray]] = {}
    for r in records:
        if r.get("probabilities"):
            path = file_in(out_dir, r["probabilities"], f"the record of {r['row']['variant']}")
            probs = np.load(path, allow_pickle=False)
            pooled.setdefault(r["row"]["variant"], []).append(probs)
    if pooled:
        plot_reliability(
            {v: np.concatenate(p) for v, p in pooled.items()},
            {v: np.tile(y_test[: len(p[0])], len(p)) for v, p in pooled.items()},
            out_dir / "calibration.png",
            title,
        )
    frames = [
        pd.read_csv(file_in(out_dir, r["activations"], "a run record")).assign(
            variant=r["row"]["variant"], seed=r["row"]["seed"]
        )
        for r in records
        if r.get("activations") and file_in(out_dir, r["activations"], "a run record").exists()
    ]
    if frames:
        table = pd.concat(frames, ignore_index=True)[["variant", "seed", *ACTIVATION_COLUMNS]]
        write_text(out_dir / "activations.csv", table.to_csv(index=False))
        plot_activations(table, out_dir / "activations.png", title)


def plot_bn_statistics(runs: pd.DataFrame, shifts: pd.DataFrame, path, title: str = "") -> Path:
    """Left: per BN variant, test accuracy with BN's moving averages and with precise
    statistics (mean over seeds). Right: each BN layer's mean variance shift per variant
    (mean over seeds; 1 = none)."""
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    bn = runs[runs["test_accuracy_precise_bn"].notna()]
    accuracy = bn.groupby("variant", sort=False)[["test_accuracy", "test_accuracy_precise_bn"]]
    accuracy = 100 * accuracy.mean()
    accuracy.columns = ["moving averages", "precise BN"]
    accuracy.plot.bar(ax=left, rot=0)
    low = float(accuracy.min().min())
    left.set(ylabel="test accuracy %", title="BN statistics at inference")
    left.set_ylim(max(0.0, low - 2.0), min(100.0, float(accuracy.max().max()) + 1.0))
    left.text(0.01, 0.01, "y axis does not start at 0", transform=left.transAxes, fontsize=7)
    layers = shifts.groupby(["layer", "variant"], sort=False)["mean_shift"].mean().unstack()
    layers.plot.bar(ax=right, rot=30)
    right.axhline(1.0, color="grey", linestyle=":")
    right.set(ylabel="mean max(a/b, b/a)", title="variance shift per BN layer (1 = none)")
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_reliability(probabilities: dict, labels: dict, path, title: str = "") -> Path:
    """Reliability diagram: per variant, the accuracy of the test images in each of
    :data:`CALIBRATION_BINS` equal-width bins of top-class confidence against the bin's
    mean confidence; on the diagonal a net is calibrated, below it over-confident."""
    from sklearn.calibration import calibration_curve

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot([0, 1], [0, 1], ":", color="grey", label="calibrated")
    for variant, probs in probabilities.items():
        confidence = probs.max(axis=1)
        correct = (probs.argmax(axis=1) == labels[variant]).astype(int)
        if correct.min() == correct.max():  # calibration_curve needs both outcomes
            continue
        accuracy, mean_confidence = calibration_curve(
            correct, confidence, n_bins=CALIBRATION_BINS, strategy="uniform"
        )
        ax.plot(mean_confidence, accuracy, "o-", markersize=3, label=variant)
    ax.set(
        xlabel="confidence (top-class probability)",
        ylabel="accuracy",
        title=f"{title}\nreliability (below the diagonal: over-confident)",
    )
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_activations(table: pd.DataFrame, path, title: str = "") -> Path:
    """One panel per layer (rows) and variant (columns): the median of the layer's
    pre-activation over epochs with a band from the 15th to the 85th percentile (the
    first seed; Ioffe & Szegedy 2015, figure 1 b, c)."""
    plt = pyplot()
    first = table[table["seed"] == table.groupby("variant")["seed"].transform("min")]
    layers = list(dict.fromkeys(first["layer"]))
    variants = list(dict.fromkeys(first["variant"]))
    fig, axes = plt.subplots(
        len(layers),
        len(variants),
        figsize=(3.2 * len(variants), 1.9 * len(layers)),
        sharex=True,
        squeeze=False,
    )
    for i, layer in enumerate(layers):
        for j, variant in enumerate(variants):
            ax = axes[i][j]
            rows = first[(first["layer"] == layer) & (first["variant"] == variant)]
            rows = rows.sort_values("epoch")
            ax.fill_between(rows["epoch"], rows["p15"], rows["p85"], alpha=0.3)
            ax.plot(rows["epoch"], rows["p50"], "-", linewidth=1.2)
            if i == 0:
                ax.set_title(variant, fontsize=9)
            if j == 0:
                ax.set_ylabel(layer, fontsize=8)
            ax.tick_params(labelsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("epoch", fontsize=8)
    fig.suptitle(f"{title}\nReLU inputs: median and 15th-85th percentile", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)

"""lr-robustness: the learning rates each variant trains at (Ioffe & Szegedy 2015; Bjorck
et al. 2018, "Understanding Batch Normalization": BN's main benefit is that it allows
larger learning rates).

Every variant of the data set's CNN is trained with SGD (Nesterov momentum 0.9, a
constant rate, no weight decay) at ``rates`` learning rates spaced logarithmically from
``lr_min`` to ``lr_max``, for the same number of epochs on the first ``train_images``
training images, with each seed. A run whose loss becomes NaN, Inf or > 1e6 is stopped
by the divergence guard and marked diverged: it gets no accuracy. The figure of merit is
the final validation accuracy (the whole validation split, or its first ``val_images``).

A learning rate counts as one the variant *trains at* when no seed diverged and the mean
final validation accuracy is within ``tolerance`` of the best cell of the whole table;
the summary gives each variant's widest run of neighbouring such rates.

Bjorck et al.'s claim is causal: BN allows larger rates, and *that* is why it converges
faster and generalizes better. The experiment tests it directly (:func:`causal_tests`):
each variant against ``base`` at each one's own best rate, at ``base``'s best rate and
at the variant's best rate, paired over seeds with Holm's correction over all of them.
If BN's gain comes from the larger rate, it is there at the own-best rates and gone at
``base``'s. ``schedule="warmup_cosine"`` trains with a linear warmup and a cosine decay
instead of the constant rate (a large rate that diverges in the first steps may train
with a warmup).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from kerasbn._io import write_text
from kerasbn._signals import raise_if_stopped
from kerasbn.experiments._common import (
    ExperimentResult,
    constant_sgd_config,
    first_images,
    json_unit,
    pyplot,
    save_figure,
    write_outputs,
)
from kerasbn.experiments.lr_causal import best_rates, causal_markdown, causal_tests
from kerasbn.plots import heatmap
from kerasbn.training import train

__all__ = [
    "QUICK",
    "SCHEDULES",
    "Config",
    "best_rates",
    "causal_tests",
    "learning_rates",
    "run",
    "summarize",
    "trained_range",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Config:
    dataset: str = "mnist"
    variants: tuple[str, ...] = ("base", "bn", "bn+dropout")
    rates: int = 8
    lr_min: float = 1e-3
    lr_max: float = 3.0
    seeds: int = 3
    epochs: int = 3
    schedule: str = "constant"  # or "warmup_cosine"
    warmup_epochs: int = 1  # with "warmup_cosine"
    # 32: 768 steps in 3 epochs, enough for BN's moving averages (momentum 0.99) to
    # forget their initial values (0.99**768 < 0.001); at 128 a fifth of them would remain.
    batch_size: int = 32
    momentum: float = 0.9
    train_images: int | None = 8192  # None: the whole training split
    val_images: int | None = None  # None: the whole validation split
    tolerance: float = 0.05  # "trains at": within this of the best cell's accuracy


QUICK = {
    "dataset": "digits",
    "variants": ("base", "bn"),
    "rates": 3,
    "lr_min": 0.01,
    "lr_max": 100.0,  # 100 diverges for sure: the quick run shows a marked cell
    "seeds": 2,
    "epochs": 2,
    "train_images": None,
}
SCHEDULES = ("constant", "warmup_cosine")


def learning_rates(config: Config) -> list[float]:
    """The configured grid: ``rates`` values log-spaced from ``lr_min`` to ``lr_max``."""
    if config.schedule not in SCHEDULES:
        raise ValueError(
            f"lr-robustness schedules are {', '.join(SCHEDULES)}. Received: {config.schedule!r}"
        )
    if config.rates < 2 or not 0 < config.lr_min < config.lr_max:
        raise ValueError(
            "lr-robustness needs rates >= 2 and 0 < lr_min < lr_max. Received: "
            f"rates={config.rates}, lr_min={config.lr_min}, lr_max={config.lr_max}"
        )
    grid = np.logspace(math.log10(config.lr_min), math.log10(config.lr_max), config.rates)
    return [float(f"{lr:.4g}") for lr in grid]  # readable names; the grid is still log


def _one_run(config: Config, data, variant: str, lr: float, seed: int) -> dict:
    schedule = {}
    if config.schedule == "warmup_cosine":
        schedule = {"lr_schedule": "cosine", "warmup_epochs": config.warmup_epochs}
    settings = constant_sgd_config(
        config.dataset,
        learning_rate=lr,
        momentum=config.momentum,
        epochs=config.epochs,
        batch_size=config.batch_size,
        seed=seed,
        **schedule,
    )
    result = train(data, variant, settings)
    last = result.history.iloc[-1] if len(result.history) else None
    row = {
        "variant": variant,
        "learning_rate": lr,
        "seed": seed,
        "diverged": result.diverged,
        "diverged_at": result.diverged_at or "",
        "epochs_done": len(result.history),
        "val_accuracy": np.nan if result.diverged else float(last["val_accuracy"]),
        "val_loss": np.nan if result.diverged else float(last["val_loss"]),
        "train_loss": np.nan if result.diverged else float(last["loss"]),
    }
    log.info(
        "%s lr %g seed %d: %s",
        variant,
        lr,
        seed,
        "diverged" if row["diverged"] else f"val accuracy {row['val_accuracy']:.4f}",
    )
    return row


def summarize(runs: pd.DataFrame, tolerance: float) -> pd.DataFrame:
    """One row per variant x learning rate: seeds, diverged seeds, mean and std of the
    final validation accuracy over the seeds that did not diverge (NaN when every seed
    did), and whether the variant *trains at* that rate."""
    grouped = runs.groupby(["variant", "learning_rate"], sort=False)
    cells = grouped.agg(
        seeds=("seed", "size"),
        diverged_seeds=("diverged", "sum"),
        val_accuracy_mean=("val_accuracy", "mean"),
        val_accuracy_std=("val_accuracy", "std"),
    ).reset_index()
    best = cells["val_accuracy_mean"].max()
    cells["trains"] = (cells["diverged_seeds"] == 0) & (
        cells["val_accuracy_mean"] >= best - tolerance
    )
    return cells


def trained_range(cells: pd.DataFrame, variant: str) -> tuple[float, float] | None:
    """The lowest and highest rate of ``variant``'s widest run of neighbouring rates it
    trains at (``None`` if there is none)."""
    mine = cells[cells["variant"] == variant].sort_values("learning_rate")
    best, start = None, None
    flags = mine["trains"].tolist() + [False]
    for k, ok in enumerate(flags):
        if ok and start is None:
            start = k
        elif not ok and start is not None:
            if best is None or k - start > best[1] - best[0]:
                best = (start, k)
            start = None
    if best is None:
        return None
    rates = mine["learning_rate"].tolist()
    return rates[best[0]], rates[best[1] - 1]


def _variant_line(cells: pd.DataFrame, variant: str) -> str:
    best = best_rates(cells).get(variant)
    if best is None:
        return f"- `{variant}`: every rate diverged with some seed"
    mine = cells[(cells["variant"] == variant) & np.isclose(cells["learning_rate"], best)]
    text = (
        f"- `{variant}`: best rate {best:g} "
        f"({100 * mine['val_accuracy_mean'].iloc[0]:.2f}% mean validation accuracy); "
    )
    span = trained_range(cells, variant)
    if span is None:
        return text + "trains at none of the rates"
    if span[0] == span[1]:
        return text + f"trains only at {span[0]:g}"
    return text + (
        f"trains from {span[0]:g} to {span[1]:g} ({math.log10(span[1] / span[0]):.1f} decades)"
    )


def _cell_label(row) -> str:
    if row.diverged_seeds == row.seeds:
        return "diverged"
    text = f"{row.val_accuracy_mean:.1%}"
    if row.diverged_seeds:
        text += f"\n{row.diverged_seeds}/{row.seeds} div."
    return text


def plot(cells: pd.DataFrame, runs: pd.DataFrame, config: Config, path: Path) -> Path:
    variants = list(config.variants)
    rates = learning_rates(config)
    plt = pyplot()
    fig, axes = plt.subplots(
        1, 2, figsize=(15, 1.6 + 0.9 * len(variants)), gridspec_kw={"width_ratios": [3, 2]}
    )
    grid = cells.set_index(["variant", "learning_rate"])
    values = [[grid.loc[(v, lr), "val_accuracy_mean"] for lr in rates] for v in variants]
    labels = [[_cell_label(grid.loc[(v, lr)].rename(None)) for lr in rates] for v in variants]
    image = heatmap(axes[0], values, variants, [f"{lr:g}" for lr in rates], labels)
    for i, variant in enumerate(variants):  # the trained range, boxed
        span = trained_range(cells, variant)
        if span is not None:
            left, right = rates.index(span[0]) - 0.5, rates.index(span[1]) + 0.5
            axes[0].add_patch(
                plt.Rectangle((left, i - 0.5), right - left, 1, fill=False, ec="red", lw=2)
            )
    axes[0].set_xlabel("learning rate (SGD, Nesterov momentum, constant)")
    axes[0].set_title(
        f"final validation accuracy, mean of {config.seeds} seed(s); "
        f"red box: trains (within {100 * config.tolerance:g} points of the best cell)",
        fontsize=9,
    )
    fig.colorbar(image, ax=axes[0], fraction=0.04)
    for variant in variants:
        mine = runs[runs["variant"] == variant]
        ok = mine[~mine["diverged"].astype(bool)]
        line = axes[1].plot(
            ok.groupby("learning_rate")["val_accuracy"].mean(), marker="o", label=variant
        )[0]
        axes[1].scatter(ok["learning_rate"], ok["val_accuracy"], color=line.get_color(), s=10)
        bad = mine[mine["diverged"].astype(bool)]
        axes[1].scatter(
            bad["learning_rate"], np.zeros(len(bad)), marker="x", color=line.get_color()
        )
    axes[1].set_xscale("log")
    axes[1].set_ylim(-0.03, 1.02)
    axes[1].set_xlabel("learning rate")
    axes[1].set_ylabel("final validation accuracy (x at 0: diverged)")
    axes[1].grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.suptitle(
        f"{config.dataset}: {config.epochs} epochs on {runs.attrs.get('train_images', '?')} "
        f"training images, batch {config.batch_size}"
    )
    fig.tight_layout()
    return save_figure(fig, path)


def run(config: Config, out_dir: Path, data_dir=None) -> ExperimentResult:
    rates = learning_rates(config)  # a bad grid fails before any data is read
    data = first_images(config.dataset, data_dir, train=config.train_images, val=config.val_images)
    units = Path(out_dir) / "units"
    rows = []
    for variant in config.variants:
        for lr in rates:
            for seed in range(config.seeds):
                raise_if_stopped()
                labels = {"variant": variant, "lr": f"{lr:g}", "seed": seed}
                rows.append(
                    json_unit(units, labels, partial(_one_run, config, data, variant, lr, seed))
                )
    runs = pd.DataFrame(rows)
    runs["diverged"] = runs["diverged"].astype(bool)
    runs.attrs["train_images"] = len(data.x_train)
    cells = summarize(runs, config.tolerance)

    tests = causal_tests(runs, cells)
    lines = [_variant_line(cells, variant) for variant in config.variants]
    table = pd.DataFrame(
        {
            "variant": [f"`{v}`" for v in cells["variant"]],
            "learning rate": cells["learning_rate"].map("{:g}".format),
            "val acc % (mean ± std)": [
                "diverged"
                if r.diverged_seeds == r.seeds
                else f"{100 * r.val_accuracy_mean:.2f}"
                + ("" if np.isnan(r.val_accuracy_std) else f" ± {100 * r.val_accuracy_std:.2f}")
                for r in cells.itertuples()
            ],
            "diverged seeds": [f"{r.diverged_seeds}/{r.seeds}" for r in cells.itertuples()],
            "trains": cells["trains"].map({True: "yes", False: "no"}),
        }
    ).to_markdown(index=False, disable_numparse=True)
    schedule = (
        "constant rate"
        if config.schedule == "constant"
        else f"{config.warmup_epochs}-epoch linear warmup then cosine decay"
    )
    notes = (
        f"{config.dataset}, first {len(data.x_train)} training images, {len(data.x_val)} "
        f"validation images; SGD with Nesterov momentum {config.momentum}, {schedule}, "
        f"batch {config.batch_size}, {config.epochs} epochs, {config.seeds} seed(s). "
        f"'trains': no seed diverged and the mean accuracy is within "
        f"{100 * config.tolerance:g} points of the best cell.\n\nEach variant's best rate "
        "and the widest range of neighbouring rates it trains at:\n\n"
        + "\n".join(lines)
        + "\n\n"
        + causal_markdown(tests)
    )
    result = ExperimentResult("lr-robustness", cells, runs, notes=notes)
    write_text(Path(out_dir) / "causal.csv", tests.to_csv(index=False))
    result.figures.append(plot(cells, runs, config, Path(out_dir) / "lr_robustness.png"))
    return write_outputs(result, out_dir, "lr-robustness", table)

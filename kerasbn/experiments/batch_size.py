"""batch-size: where small batches break BN, and whether population statistics repair it
(Wu & Johnson 2021, "Rethinking 'Batch' in BatchNorm"; Summers & Dinneen 2020, "Four
things everyone should know to improve batch normalization": Ghost BN).

``base`` and ``bn`` of the data set's CNN are trained at each per-step batch size with
SGD (Nesterov momentum 0.9, constant rate) scaled linearly from ``learning_rate`` at
``reference_batch``, for the same number of epochs on the first ``train_images``
training images (so a batch of 2 takes 256 times the steps of a batch of 512). Above
``ghost_batch``, ``bn`` is also trained with Ghost BN: statistics over virtual
sub-batches of ``ghost_batch`` examples (:class:`kerasbn.layers.GhostBatchNormalization`).

Each trained net's test error on the first ``test_images`` test images is measured three
ways: with the moving averages BN kept while training (EMA, Keras' inference), with
precise BN statistics (population statistics of the training images under the final
weights, :func:`kerasbn.diagnostics.recalibrate_bn`), and in training mode (every BN
normalizing each run of the training batch size, or the ghost batch size, of test images
by its own statistics).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from kerasbn._signals import raise_if_stopped
from kerasbn.diagnostics import recalibrate_bn
from kerasbn.experiments._common import (
    ExperimentResult,
    constant_sgd_config,
    first_images,
    json_unit,
    pyplot,
    save_figure,
    write_outputs,
)
from kerasbn.layers import GhostBatchNormalization, clone_with
from kerasbn.training import train
from kerasbn.variants import get_variant

__all__ = ["QUICK", "Config", "run", "training_mode_predictions"]

log = logging.getLogger(__name__)

# How BN normalizes at test time: its moving averages, population statistics, or the
# statistics of each batch (of the training batch size) of test images.
METHODS = {"ema_error": "EMA", "precise_error": "precise BN", "train_mode_error": "training mode"}


@dataclass(frozen=True)
class Config:
    dataset: str = "mnist"
    # gn: the batch-independent baseline (Wu & He, 2018), whose error should not depend
    # on the batch size the way BN's does.
    variants: tuple[str, ...] = ("base", "bn", "gn")
    batch_sizes: tuple[int, ...] = (2, 4, 8, 16, 32, 128, 512)
    learning_rate: float = 0.01  # at reference_batch; scaled linearly with the batch
    reference_batch: int = 32
    momentum: float = 0.9
    epochs: int = 3
    train_images: int | None = 8192
    test_images: int = 4096  # a multiple of every batch size: whole batches in training mode
    ghost_batch: int | None = 32  # Ghost BN rows at batch sizes above it; None: none
    seeds: int = 2
    precise_batch: int = 256


QUICK = {
    "dataset": "digits",
    "batch_sizes": (4, 64),
    "epochs": 1,
    "train_images": None,
    "test_images": 128,
    "ghost_batch": 8,
    "seeds": 1,
}


def training_mode_predictions(
    model: keras.Model, images, batch_size: int, chunk: int = 512
) -> np.ndarray:
    """Class probabilities with every BN normalizing each run of ``batch_size`` images by
    their own statistics, as in training (Dropout off). The model is not changed: a copy
    with Ghost BN of that size is called in training mode on chunks of whole batches."""

    def ghost(layer):
        if isinstance(layer, keras.layers.Dropout):
            return keras.layers.Identity(name=layer.name)
        if isinstance(layer, keras.layers.BatchNormalization):  # fused and ghost BN too
            config = {k: v for k, v in layer.get_config().items() if k != "virtual_batch_size"}
            return GhostBatchNormalization(virtual_batch_size=batch_size, **config)
        return None

    copy = clone_with(model, ghost)
    step = batch_size * max(1, chunk // batch_size)
    parts = [
        keras.ops.convert_to_numpy(copy(images[start : start + step], training=True))
        for start in range(0, len(images), step)
    ]
    return np.concatenate(parts)


def _error(probabilities: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(probabilities, axis=1) != labels))


def _versions(config: Config) -> list[tuple[str, object, int]]:
    """(label, variant, batch size) for every run, in training order."""
    runs = [(v, get_variant(v), b) for v in config.variants for b in config.batch_sizes]
    if config.ghost_batch is not None:
        ghost = replace(
            get_variant("bn"), name=f"bn-ghost{config.ghost_batch}", ghost_batch=config.ghost_batch
        )
        runs += [(ghost.name, ghost, b) for b in config.batch_sizes if b > config.ghost_batch]
    return runs


def _one_run(config: Config, data, label: str, variant, batch: int, seed: int) -> dict:
    lr = config.learning_rate * batch / config.reference_batch
    settings = constant_sgd_config(
        config.dataset,
        learning_rate=lr,
        momentum=config.momentum,
        epochs=config.epochs,
        batch_size=batch,
        seed=seed,
    )
    result = train(data, variant, settings)
    row = {
        "variant": label,
        "batch_size": batch,
        "learning_rate": lr,
        "seed": seed,
        "steps": int(np.ceil(len(data.x_train) / batch)) * config.epochs,
        "diverged": result.diverged,
        **dict.fromkeys(METHODS, np.nan),
    }
    if not result.diverged:
        model = result.inference_model()
        images, labels = data.x_test, data.y_test
        row["ema_error"] = _error(model.predict(images, batch_size=512, verbose=0), labels)
        if variant.uses_bn:
            precise = recalibrate_bn(
                model, data.x_train, batch_size=config.precise_batch, num_batches=None
            )
            row["precise_error"] = _error(
                precise.predict(images, batch_size=512, verbose=0), labels
            )
            normalized_over = min(batch, variant.ghost_batch or batch)
            row["train_mode_error"] = _error(
                training_mode_predictions(model, images, normalized_over), labels
            )
        else:  # without BN the three are one and the same network
            row["precise_error"] = row["train_mode_error"] = row["ema_error"]
    log.info(
        "%s batch %d seed %d: %s",
        label,
        batch,
        seed,
        "diverged" if row["diverged"] else ", ".join(f"{k} {100 * row[k]:.2f}%" for k in METHODS),
    )
    return row


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """Per variant x batch size: the mean test error of each method over the seeds that
    did not diverge, and how many diverged."""
    grouped = runs.groupby(["variant", "batch_size"], sort=False)
    summary = grouped[list(METHODS)].mean()
    summary["learning_rate"] = grouped["learning_rate"].first()
    summary["steps"] = grouped["steps"].first()
    summary["seeds"] = grouped["seed"].size()
    summary["diverged_seeds"] = grouped["diverged"].sum()
    return summary.reset_index()


def plot(summary: pd.DataFrame, config: Config, path: Path) -> Path:
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6), sharey=True)
    colours = dict(zip(dict.fromkeys(summary.variant), plt.get_cmap("tab10").colors, strict=False))
    for ax, (column, title) in zip(axes, METHODS.items(), strict=True):
        for variant, rows in summary.groupby("variant", sort=False):
            ax.plot(
                rows["batch_size"],
                100 * rows[column],
                marker="o",
                color=colours[variant],
                label=variant,
            )
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(list(config.batch_sizes), [str(b) for b in config.batch_sizes])
        ax.set_xlabel("batch size per step (learning rate scaled linearly)")
        ax.set_title(f"test error, BN statistics at test time: {title}", fontsize=10)
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("test error % (log scale; mean over seeds)")
    axes[0].legend(fontsize=8)
    fig.suptitle(
        f"{config.dataset}: {config.epochs} epochs on {config.train_images or 'all'} training "
        f"images, SGD lr {config.learning_rate:g} x batch / {config.reference_batch}"
    )
    fig.tight_layout()
    return save_figure(fig, path)


def run(config: Config, out_dir: Path, data_dir=None) -> ExperimentResult:
    data = first_images(
        config.dataset, data_dir, train=config.train_images, test=config.test_images
    )
    units = Path(out_dir) / "units"
    rows = []
    for label, variant, batch in _versions(config):
        for seed in range(config.seeds):
            raise_if_stopped()
            unit = {"variant": label, "batch": batch, "seed": seed}
            compute = partial(_one_run, config, data, label, variant, batch, seed)
            rows.append(json_unit(units, unit, compute))
    runs = pd.DataFrame(rows)
    runs["diverged"] = runs["diverged"].astype(bool)
    summary = summarize(runs)

    def pct(value):
        return "diverged" if pd.isna(value) else f"{100 * value:.2f}"

    table = pd.DataFrame(
        {
            "variant": [f"`{v}`" for v in summary.variant],
            "batch": summary.batch_size.astype(str),
            "lr": summary.learning_rate.map("{:g}".format),
            "steps": summary.steps.astype(str),
            **{f"test err % {title}": summary[c].map(pct) for c, title in METHODS.items()},
            # Errors are means over the seeds that did not diverge: say how many did.
            "diverged seeds": [f"{r.diverged_seeds}/{r.seeds}" for r in summary.itertuples()],
        }
    ).to_markdown(index=False, disable_numparse=True)
    notes = (
        f"{config.dataset}, first {len(data.x_train)} training images, {len(data.x_test)} "
        f"test images; {config.epochs} epochs; SGD with Nesterov momentum "
        f"{config.momentum}, constant rate {config.learning_rate:g} x batch / "
        f"{config.reference_batch}; {config.seeds} seed(s), mean over those that did not "
        "diverge shown. EMA: BN's moving "
        "averages as trained (Keras' inference). Precise BN: "
        f"population statistics over the training images in batches of "
        f"{config.precise_batch}. Training mode: each run of the training batch size "
        "(Ghost BN: of the ghost batch size) of test images normalized by its own "
        "statistics. Without BN the three columns are the same network."
    )
    result = ExperimentResult("batch-size", summary, runs, notes=notes)
    result.figures.append(plot(summary, config, Path(out_dir) / "batch_size.png"))
    return write_outputs(result, out_dir, "batch-size", table)

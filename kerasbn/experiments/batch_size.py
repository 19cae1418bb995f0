"""batch-size: where small batches break BN, and what Wu & Johnson's remedies and Ghost
BN do about it (Wu & Johnson 2021, "Rethinking 'Batch' in BatchNorm"; Hoffer et al.
2017, "Train longer, generalize better"; Summers & Dinneen 2020, "Four things everyone
should know to improve batch normalization").

``base``, ``bn`` and ``gn`` of the data set's CNN are trained at each per-step batch
size with SGD (Nesterov momentum 0.9, constant rate) scaled linearly from
``learning_rate`` at ``reference_batch``, for the same number of epochs on the first
``train_images`` training images (so a batch of 2 takes 256 times the steps of a batch
of 512). Further rows:

* ``bn-frozen`` (at ``reference_batch`` and below): Wu & Johnson's FrozenBN remedy for
  small batches: BN as usual for all
  but the last ``frozen_epochs``, then BN's statistics set to the population statistics
  of the training images and frozen, with its scale and shift, for the rest of training
  (train and test then normalize alike).
* ``bn-ghost<g>`` above the ghost batch ``g``: Ghost BN, statistics over virtual
  sub-batches of ``g`` examples (:class:`kerasbn.layers.GhostBatchNormalization`), for
  the same epochs; and ``bn-ghost<g>-steps``, Hoffer et al.'s regime adaptation: as many
  steps as a batch of ``g`` takes (``batch / g`` times the epochs).

Each trained net's test error on the first ``test_images`` test images is measured three
ways: with the statistics BN kept while training (EMA, Keras' inference; FrozenBN: its
frozen ones), with precise BN statistics (population statistics of the training images
under the final weights, :func:`kerasbn.diagnostics.recalibrate_bn`, gathered over
batches of the ghost size for Ghost BN nets, as they normalize), and in training mode
(every BN normalizing each run of the training batch size, or the ghost batch size, of
test images by its own statistics: Wu & Johnson's other remedy, evaluation with
mini-batch statistics). At each batch size every row is judged against ``bn`` at that
size, paired over seeds, Holm over the rows of that size.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from kerasbn._io import write_text
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
from kerasbn.experiments._inference import judge_each, judged_each_markdown
from kerasbn.experiments.batch_remedies import frozen_bn_phase, training_mode_predictions
from kerasbn.training import train
from kerasbn.variants import get_variant

__all__ = ["QUICK", "Config", "run"]

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
    ghost_steps_matched: bool = True  # also Ghost BN rows with the ghost batch's steps
    frozen_epochs: int | None = 1  # bn-frozen rows: the last epochs with FrozenBN; None: none
    seeds: int = 3
    precise_batch: int = 256


QUICK = {
    "dataset": "digits",
    "variants": ("base", "bn"),
    "batch_sizes": (8, 64),
    "train_images": 512,
    "test_images": 128,
    "epochs": 2,
    "ghost_batch": 8,
    "ghost_steps_matched": True,
    "frozen_epochs": 1,
    "seeds": 2,
}


def _error(probabilities: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(probabilities, axis=1) != labels))


@dataclass(frozen=True)
class Version:
    """One row of the table: a variant trained at one batch size for some epochs."""

    label: str
    variant: object
    batch: int
    epochs: int
    frozen_epochs: int = 0  # the last epochs with FrozenBN


def _versions(config: Config) -> list[Version]:
    """Every row, in training order."""
    runs = [
        Version(v, get_variant(v), b, config.epochs)
        for v in config.variants
        for b in config.batch_sizes
    ]
    if config.frozen_epochs:
        bn = get_variant("bn")
        # A remedy for small batches: at the reference batch and below.
        runs += [
            Version("bn-frozen", bn, b, config.epochs, config.frozen_epochs)
            for b in config.batch_sizes
            if b <= config.reference_batch
        ]
    if config.ghost_batch is not None:
        g = config.ghost_batch
        ghost = replace(get_variant("bn"), name=f"bn-ghost{g}", ghost_batch=g)
        larger = [b for b in config.batch_sizes if b > g]
        runs += [Version(ghost.name, ghost, b, config.epochs) for b in larger]
        if config.ghost_steps_matched:  # Hoffer et al.: the small batch's number of steps
            runs += [
                Version(f"{ghost.name}-steps", ghost, b, config.epochs * b // g) for b in larger
            ]
    return runs


def _check(config: Config) -> None:
    if config.frozen_epochs is not None and not 0 <= config.frozen_epochs < config.epochs:
        raise ValueError(
            "frozen_epochs is how many of the last epochs train with FrozenBN, after at "
            f"least one with BN as usual: 0 to {config.epochs - 1} (or none). "
            f"Received: {config.frozen_epochs}"
        )
    if config.ghost_batch is not None and config.ghost_steps_matched:
        uneven = [
            b for b in config.batch_sizes if b > config.ghost_batch and b % config.ghost_batch
        ]
        if uneven:
            raise ValueError(
                "steps-matched Ghost BN rows need batch sizes that are multiples of "
                f"ghost_batch {config.ghost_batch}: change them or set "
                f"ghost_steps_matched=false. Received: {uneven}"
            )


def _settings(config: Config, version: Version, seed: int, epochs: int):
    lr = config.learning_rate * version.batch / config.reference_batch
    return constant_sgd_config(
        config.dataset,
        learning_rate=lr,
        momentum=config.momentum,
        epochs=epochs,
        batch_size=version.batch,
        seed=seed,
    )


def _one_run(config: Config, data, version: Version, seed: int) -> dict:
    variant, batch = version.variant, version.batch
    settings = _settings(config, version, seed, version.epochs - version.frozen_epochs)
    result = train(data, variant, settings)
    model, diverged = None, result.diverged
    if not diverged:
        model = result.inference_model()
        if version.frozen_epochs:
            model, diverged = frozen_bn_phase(
                model, data, settings, version.frozen_epochs, config.precise_batch
            )
    row = {
        "variant": version.label,
        "batch_size": batch,
        "learning_rate": settings.learning_rate,
        "epochs": version.epochs,
        "seed": seed,
        "steps": int(np.ceil(len(data.x_train) / batch)) * version.epochs,
        "diverged": diverged,
        **dict.fromkeys(METHODS, np.nan),
    }
    if not diverged:
        images, labels = data.x_test, data.y_test
        row["ema_error"] = _error(model.predict(images, batch_size=512, verbose=0), labels)
        if variant.uses_bn:
            # Ghost BN nets normalize over ghost batches: their population statistics are
            # gathered the same way (each ghost batch normalized by itself on the way).
            precise = recalibrate_bn(
                model,
                data.x_train,
                batch_size=variant.ghost_batch or config.precise_batch,
                num_batches=None,
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
        version.label,
        batch,
        seed,
        "diverged" if row["diverged"] else ", ".join(f"{k} {100 * row[k]:.2f}%" for k in METHODS),
    )
    return row


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """Per variant x batch size: the mean and std test error of each method over the
    seeds that did not diverge, and how many diverged."""
    grouped = runs.groupby(["variant", "batch_size"], sort=False)
    summary = grouped[list(METHODS)].mean()
    for column in METHODS:
        summary[column.replace("_error", "_std")] = grouped[column].std(ddof=1)
    summary["learning_rate"] = grouped["learning_rate"].first()
    summary["epochs"] = grouped["epochs"].first()
    summary["steps"] = grouped["steps"].first()
    summary["seeds"] = grouped["seed"].size()
    summary["diverged_seeds"] = grouped["diverged"].sum()
    return summary.reset_index()


# Each scoring its own family at a batch size; a higher error is "worse".
ERRORS = {column: ("worse", "better") for column in METHODS}


def _verdict_markdown(verdicts: pd.DataFrame) -> str:
    """At each batch size, every row against ``bn`` (a positive Δ: more errors)."""
    return judged_each_markdown(
        verdicts,
        group="batch_size",
        group_title="batch",
        titles={column: f"test error, {title}" for column, title in METHODS.items()},
        delta_title="Δ error (pp)",
    )


def plot(summary: pd.DataFrame, config: Config, path: Path) -> Path:
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6), sharey=True)
    colours = dict(zip(dict.fromkeys(summary.variant), plt.get_cmap("tab10").colors, strict=False))
    for ax, (column, title) in zip(axes, METHODS.items(), strict=True):
        for variant, rows in summary.groupby("variant", sort=False):
            ax.errorbar(
                rows["batch_size"],
                100 * rows[column],
                yerr=100 * rows[column.replace("_error", "_std")].fillna(0),
                marker="o",
                capsize=3,
                color=colours[variant],
                label=variant,
            )
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(list(config.batch_sizes), [str(b) for b in config.batch_sizes])
        ax.set_xlabel("batch size per step (learning rate scaled linearly)")
        ax.set_title(f"test error, BN statistics at test time: {title}", fontsize=10)
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel(f"test error % (log scale; mean ± std over {config.seeds} seeds)")
    axes[0].legend(fontsize=8)
    fig.suptitle(
        f"{config.dataset}: {config.epochs} epochs on {config.train_images or 'all'} training "
        f"images, SGD lr {config.learning_rate:g} x batch / {config.reference_batch}"
    )
    fig.tight_layout()
    return save_figure(fig, path)


def run(config: Config, out_dir: Path, data_dir=None) -> ExperimentResult:
    _check(config)
    data = first_images(
        config.dataset, data_dir, train=config.train_images, test=config.test_images
    )
    units = Path(out_dir) / "units"
    rows = []
    for seed in range(config.seeds):  # seed-major: a stopped run keeps whole seeds
        for version in _versions(config):
            raise_if_stopped()
            unit = {"variant": version.label, "batch": version.batch, "seed": seed}
            compute = partial(_one_run, config, data, version, seed)
            rows.append(json_unit(units, unit, compute))
    runs = pd.DataFrame(rows)
    runs["diverged"] = runs["diverged"].astype(bool)
    summary = summarize(runs)
    verdicts = judge_each(
        runs,
        group="batch_size",
        by="variant",
        baseline="bn",
        dataset=config.dataset,
        metrics=ERRORS,
    )

    def pct(value, spread):
        if pd.isna(value):
            return "diverged"
        return f"{100 * value:.2f}" + ("" if pd.isna(spread) else f" ± {100 * spread:.2f}")

    table = pd.DataFrame(
        {
            "variant": [f"`{v}`" for v in summary.variant],
            "batch": summary.batch_size.astype(str),
            "lr": summary.learning_rate.map("{:g}".format),
            "epochs": summary.epochs.astype(str),
            "steps": summary.steps.astype(str),
            **{
                f"test err % {title}": [
                    pct(v, s)
                    for v, s in zip(summary[c], summary[c.replace("_error", "_std")], strict=True)
                ]
                for c, title in METHODS.items()
            },
            # Errors are means over the seeds that did not diverge: say how many did.
            "diverged seeds": [f"{r.diverged_seeds}/{r.seeds}" for r in summary.itertuples()],
        }
    ).to_markdown(index=False, disable_numparse=True)
    notes = (
        f"{config.dataset}, first {len(data.x_train)} training images, {len(data.x_test)} "
        f"test images; {config.epochs} epochs (steps-matched Ghost BN rows: more); SGD "
        f"with Nesterov momentum {config.momentum}, constant rate {config.learning_rate:g} "
        f"x batch / {config.reference_batch}; {config.seeds} seed(s), mean ± std over "
        "those that did not diverge. EMA: BN's moving averages as trained (Keras' "
        "inference; `bn-frozen`: its frozen population statistics). Precise BN: "
        "population statistics over the training images in batches of "
        f"{config.precise_batch} (Ghost BN: of the ghost batch). Training mode: each run "
        "of the training batch size (Ghost BN: of the ghost batch size) of test images "
        "normalized by its own statistics. Without BN the three columns are the same "
        "network."
    )
    result = ExperimentResult("batch-size", summary, runs, notes=notes)
    result.figures.append(plot(summary, config, Path(out_dir) / "batch_size.png"))
    write_text(Path(out_dir) / "verdicts.csv", verdicts.to_csv(index=False))
    return write_outputs(result, out_dir, "batch-size", f"{table}\n\n{_verdict_markdown(verdicts)}")

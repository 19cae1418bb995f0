"""corruption-robustness: accuracy under common corruptions, and what re-estimating BN's
statistics on the corrupted images recovers (Hendrycks & Dietterich 2019; Schneider et
al. 2020, "Improving robustness against common corruptions by covariate shift
adaptation").

For each variant: the trained CIFAR-10 net (read from ``models_dir``, e.g. the
``saved_models/`` a ``compare`` run wrote, or trained here with the data set's default
recipe), the first ``test_images`` test images under each corruption of
:mod:`kerasbn.corruptions` at each severity, scored as trained and, for BN variants,
after test-time BN adaptation: every BN layer's moving mean and variance replaced by the
statistics of corrupted images (no labels; Schneider et al.'s full adaptation, N = 0
source samples), computed with :func:`kerasbn.diagnostics.recalibrate_bn`.

The statistics come from a held-out part of each set (its first ``adapt_fraction``),
and every accuracy is scored on the rest, so no image is scored by statistics it helped
to make. The clean set is adapted the same way: its adapted accuracy is the reference
of "the drop won back", ``(adapted corrupted - corrupted) / (adapted clean -
corrupted)``; measured against the unadapted clean accuracy instead, adaptation would
also be credited for repairing moving averages that lag on clean images.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from kerasbn._signals import raise_if_stopped
from kerasbn.corruptions import CORRUPTIONS, corrupt, list_corruptions
from kerasbn.data import load_dataset
from kerasbn.diagnostics import recalibrate_bn
from kerasbn.experiments._common import ExperimentResult, pyplot, save_figure, write_outputs
from kerasbn.loading import load_model
from kerasbn.plots import heatmap
from kerasbn.saving import save_model
from kerasbn.training import default_config, train
from kerasbn.variants import get_variant

__all__ = ["QUICK", "Config", "run"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Config:
    dataset: str = "cifar10"
    # gn normalizes each image by itself: robustness without batch statistics to adapt.
    variants: tuple[str, ...] = ("base", "bn", "bn+dropout", "gn")
    corruptions: tuple[str, ...] = tuple(list_corruptions())
    severities: tuple[int, ...] = (1, 2, 3, 4, 5)
    # per set: the first half adapts BN, the other 2,000 are scored (8 x 5 sets, 2 ways)
    test_images: int = 4000
    models_dir: str | None = None  # <dataset>-<variant>.keras files; None: train here
    epochs: int | None = None  # when training here; None: the data set's default recipe
    train_images: int | None = None  # when training here: the first N (None: all)
    seed: int = 0
    adapt_batch: int = 256
    adapt_fraction: float = 0.5  # of each set: the images BN's statistics come from


QUICK = {
    "dataset": "mnist",
    "train_images": 2048,
    "variants": ("base", "bn"),
    "corruptions": ("gaussian_noise", "contrast", "pixelate"),
    "severities": (1, 5),
    "test_images": 200,
    "epochs": 3,
}


def _model(config: Config, variant: str, data, units: Path):
    """The variant's trained inference model: from ``models_dir``, from an earlier
    (resumed) run's unit, or trained now and kept as a unit."""
    if config.models_dir is not None:
        path = Path(config.models_dir) / f"{config.dataset}-{variant}.keras"
        if not path.exists():
            raise ValueError(
                f"{path} does not exist: run python -m kerasbn.compare --dataset "
                f"{config.dataset} --variants {variant} --save-models "
                f"{config.models_dir} first, or leave models_dir out to train here. "
                f"Received: {path}"
            )
        return load_model(path, check_manifest=False)
    unit = units / f"{variant}.keras"
    if unit.exists():
        log.info("%s: trained earlier, read back", variant)
        return load_model(unit, check_manifest=False)
    settings = {"seed": config.seed, "verbose": 0}
    if config.epochs is not None:
        settings["epochs"] = config.epochs
    if config.train_images is not None:
        data = data.limit(min(config.train_images, len(data.x_train)))
    result = train(data, variant, default_config(config.dataset, **settings))
    model = result.inference_model()
    save_model(model, unit, {"dataset": config.dataset, "variant": variant})
    return model


def _accuracy(model, images, labels) -> float:
    predicted = np.argmax(model.predict(images, batch_size=512, verbose=0), axis=1)
    return float(np.mean(predicted == labels))


def _score(model, batch_norm: bool, images, labels, config: Config) -> dict:
    """Accuracy on the scored part of one set, as trained and (BN) after adapting BN's
    statistics on the set's held-out part."""
    held_out = int(round(config.adapt_fraction * len(images)))
    scored, scored_labels = images[held_out:], labels[held_out:]
    row = {
        "accuracy": _accuracy(model, scored, scored_labels),
        "adapted_accuracy": np.nan,
        "adapt_images": held_out,
        "scored_images": len(scored),
    }
    if batch_norm:
        adapted = recalibrate_bn(
            model, images[:held_out], batch_size=config.adapt_batch, num_batches=None
        )
        row["adapted_accuracy"] = _accuracy(adapted, scored, scored_labels)
    return row


def summarize(rows: pd.DataFrame) -> pd.DataFrame:
    """Per variant: clean accuracy (as trained and adapted), mean accuracy over every
    corrupted set, the same after BN adaptation, and the share of the drop adaptation
    wins back, against the adapted clean accuracy (the same adaptation on clean images)."""
    clean = rows[rows.corruption == "clean"].set_index("variant")
    corrupted = rows[rows.corruption != "clean"].groupby("variant", sort=False)
    summary = pd.DataFrame(
        {
            "clean_accuracy": clean["accuracy"],
            "adapted_clean_accuracy": clean["adapted_accuracy"],
            "corruption_accuracy": corrupted["accuracy"].mean(),
            "adapted_corruption_accuracy": corrupted["adapted_accuracy"].mean(),
            "worst_set_accuracy": corrupted["accuracy"].min(),
        }
    )
    drop = summary.adapted_clean_accuracy - summary.corruption_accuracy
    summary["drop_recovered"] = (
        summary.adapted_corruption_accuracy - summary.corruption_accuracy
    ) / drop
    return summary.reset_index()


def _markdown(summary: pd.DataFrame) -> str:
    def pct(value):
        return "–" if pd.isna(value) else f"{100 * value:.2f}"

    table = pd.DataFrame(
        {
            "variant": [f"`{v}`" for v in summary.variant],
            "clean test acc %": summary.clean_accuracy.map(pct),
            "clean, BN adapted %": summary.adapted_clean_accuracy.map(pct),
            "corrupted: mean acc %": summary.corruption_accuracy.map(pct),
            "corrupted, BN adapted: mean acc %": summary.adapted_corruption_accuracy.map(pct),
            "worst set acc %": summary.worst_set_accuracy.map(pct),
            "drop won back by adaptation": [
                "–" if pd.isna(v) else f"{v:.0%}" for v in summary.drop_recovered
            ],
        }
    )
    return table.to_markdown(index=False, disable_numparse=True)


def plot(rows: pd.DataFrame, path: Path) -> Path:
    corrupted = rows[rows.corruption != "clean"]
    variants = list(dict.fromkeys(rows.variant))
    names = list(dict.fromkeys(corrupted.corruption))
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8), constrained_layout=True)
    for ax, column, title in (
        (axes[0], "accuracy", "as trained"),
        (axes[1], "adapted_accuracy", "BN statistics re-estimated on the corrupted images"),
    ):
        grid = corrupted.pivot_table(index="corruption", columns="variant", values=column)
        grid = grid.reindex(index=names, columns=variants).to_numpy()
        labels = [["no BN" if np.isnan(v) else f"{v:.0%}" for v in row] for row in grid]
        image = heatmap(ax, grid, names, variants, labels)
        ax.set_title(f"test accuracy, mean over severities:\n{title}", fontsize=10)
    fig.colorbar(image, ax=axes[1], fraction=0.05)
    for variant in variants:
        by = corrupted[corrupted.variant == variant].groupby("severity")
        line = axes[2].plot(by["accuracy"].mean(), marker="o", label=f"{variant}")[0]
        if by["adapted_accuracy"].mean().notna().any():
            axes[2].plot(
                by["adapted_accuracy"].mean(),
                marker="o",
                ls="--",
                color=line.get_color(),
                label=f"{variant}, BN adapted",
            )
    axes[2].set_xticks(sorted(set(corrupted.severity)))
    axes[2].set_xlabel("severity")
    axes[2].set_ylabel("test accuracy (mean over corruptions)")
    axes[2].legend(fontsize=8)
    return save_figure(fig, path)


def run(config: Config, out_dir: Path, data_dir=None) -> ExperimentResult:
    if not 0 < config.adapt_fraction < 1:
        raise ValueError(
            "adapt_fraction is the share of each set BN's statistics come from, the rest "
            f"being scored: between 0 and 1. Received: {config.adapt_fraction}"
        )
    for name in config.corruptions:
        CORRUPTIONS.lookup(name)  # an unknown name fails before any training
    data = load_dataset(config.dataset, data_dir)
    images, labels = data.x_test[: config.test_images], data.y_test[: config.test_images]
    models = {v: _model(config, v, data, Path(out_dir) / "units") for v in config.variants}
    sets = [("clean", "clean", 0, images)]
    for k, name in enumerate(config.corruptions):
        for severity in config.severities:
            seed = config.seed * 1000 + 10 * k + severity  # a fixed draw per set
            family = CORRUPTIONS.lookup(name).family
            sets.append((name, family, severity, corrupt(images, name, severity, seed)))
    rows = []
    for name, family, severity, x in sets:
        for variant, model in models.items():
            raise_if_stopped()
            scores = _score(model, get_variant(variant).uses_bn, x, labels, config)
            rows.append(
                dict(
                    variant=variant,
                    corruption=name,
                    family=family,
                    severity=severity,
                    images=len(x),
                    **scores,
                )
            )
        log.info("%s severity %s: scored", name, severity)
    rows = pd.DataFrame(rows)
    summary = summarize(rows)
    table = _markdown(summary)
    notes = (
        f"{len(images)} test images of {config.dataset}; corruptions: "
        f"{', '.join(config.corruptions)} at severities {list(config.severities)}. "
        f"adapted: BN moving statistics re-estimated on the first "
        f"{config.adapt_fraction:.0%} of each set (no labels), every accuracy scored on "
        "the rest; drop won back: (adapted corrupted - corrupted) / (adapted clean - "
        "corrupted)."
    )
    result = ExperimentResult("corruption-robustness", summary, rows, notes=notes)
    result.figures.append(plot(rows, Path(out_dir) / "corruption_robustness.png"))
    return write_outputs(result, out_dir, "corruption-robustness", table)

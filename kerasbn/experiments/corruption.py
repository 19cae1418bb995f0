"""corruption-robustness: accuracy under common corruptions, and what re-estimating BN's
statistics on the corrupted images recovers (Hendrycks & Dietterich 2019; Schneider et
al. 2020, "Improving robustness against common corruptions by covariate shift
adaptation").

For each variant, ``seeds`` trained CIFAR-10 nets (trained here with the data set's
default recipe, or read from ``models_dir``), the first ``test_images`` test images
under each corruption of :mod:`kerasbn.corruptions` at each severity, scored as trained
and, for BN variants, after test-time BN adaptation: every BN layer's moving mean and
variance replaced by the statistics of corrupted images (no labels; Schneider et al.'s
full adaptation, N = 0 source samples; :func:`kerasbn.diagnostics.adapt_bn`). On the
sets of ``mixing_severities``, Schneider et al.'s sweep adapts to n target images with
the training statistics weighted as N images (:mod:`.corruption_adaptation`). "More robust
as trained" is tested as ``compare`` tests a recipe: each variant's mean corrupted
accuracy, and its drop from clean accuracy, against the baseline's, paired over seeds,
Holm over the variants.

The statistics come from a held-out part of each set (its first ``adapt_fraction``),
and every accuracy is scored on the rest, so no image is scored by statistics it helped
to make. The clean set is adapted the same way: its adapted accuracy is the reference
of "the drop won back", ``(adapted corrupted - corrupted) / (adapted clean -
corrupted)``; measured against the unadapted clean accuracy instead, adaptation would
also be credited for repairing moving averages that lag on clean images.

Each model's scores are a JSON unit (``units/scores-<variant>-seed<k>.json``), its
trained model a ``.keras`` unit beside it (with its sidecar ``<variant>-seed<k>.json``): a
stopped run, or a copy of an archived piece (which keeps the scores, not the models),
reads finished models' scores back and trains only the others, so the CIFAR-10 run
(twelve 15-epoch trainings, about 13 min each here) can grow across sessions.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from kerasbn._io import write_text
from kerasbn._signals import raise_if_stopped
from kerasbn.corruptions import CORRUPTIONS, corrupt, list_corruptions
from kerasbn.data import load_dataset
from kerasbn.diagnostics import adapt_bn
from kerasbn.diagnostics.adapt_bn import adaptable_copy
from kerasbn.experiments._common import (
    ExperimentResult,
    json_unit,
    mean_std,
    pyplot,
    save_figure,
    write_outputs,
)
from kerasbn.experiments._inference import judge, judged_each_markdown
from kerasbn.experiments.corruption_adaptation import (
    adaptation_verdicts,
    check_targets,
    mixing_markdown,
    mixing_rows,
    plot_mixing,
)
from kerasbn.experiments.corruption_models import trained_model
from kerasbn.plots import heatmap
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
    # <dataset>-<variant>-seed<k>.keras files (seed 0 may be the <dataset>-<variant>.keras
    # that compare --save-models writes); None: train here
    models_dir: str | None = None
    epochs: int | None = None  # when training here; None: the data set's default recipe
    train_images: int | None = None  # when training here: the first N (None: all)
    seeds: int = 3  # trained models per variant (seeds 0, 1, ...): the paired test's pairs
    adapt_batch: int = 256
    adapt_fraction: float = 0.5  # of each set: the images BN's statistics come from
    # Schneider et al.'s sweep: n target images (0: all held-out ones) x N source weight
    mixing_targets: tuple[int, ...] = (1, 8, 32, 256, 0)
    mixing_sources: tuple[int, ...] = (0, 16, 64)
    mixing_severities: tuple[int, ...] = (3,)  # its sets: these severities, and clean


QUICK = {
    "dataset": "mnist",
    "train_images": 2048,
    "variants": ("base", "bn"),
    "corruptions": ("gaussian_noise", "contrast", "pixelate"),
    "severities": (5,),
    "test_images": 200,
    "epochs": 3,
    "seeds": 2,
    "mixing_targets": (1, 8, 0),
    "mixing_sources": (0, 16),
    "mixing_severities": (5,),
}

# Schneider et al.'s abstract, for the number next to ours.
PAPER = (
    'Schneider et al. (2020, abstract): "Using the corrected statistics, ResNet-50 '
    'reaches 62.2% mCE on ImageNet-C compared to 76.7% without adaptation." Their mCE '
    "is each corruption's error divided by AlexNet's, over ImageNet-C's 15 corruptions; "
    "ours is the plain mean error over the sets above"
)


def _accuracy(model, images, labels) -> float:
    predicted = np.argmax(model.predict(images, batch_size=512, verbose=0), axis=1)
    return float(np.mean(predicted == labels))


def _score(model, adaptable, images, labels, config: Config) -> dict:
    """Accuracy on the scored part of one set, as trained and (BN) after adapting BN's
    statistics on the set's held-out part (N = 0: full adaptation). ``adaptable``: a
    plain-BN copy of ``model`` and its statistics as trained, or ``None`` (no BN)."""
    held_out = int(round(config.adapt_fraction * len(images)))
    scored, scored_labels = images[held_out:], labels[held_out:]
    row = {
        "accuracy": _accuracy(model, scored, scored_labels),
        "adapted_accuracy": np.nan,
        "adapt_images": held_out,
        "scored_images": len(scored),
    }
    if adaptable is not None:
        work, source = adaptable
        adapt_bn(work, images[:held_out], 0, config.adapt_batch, source=source, in_place=True)
        row["adapted_accuracy"] = _accuracy(work, scored, scored_labels)
    return row


def _adaptable(model):
    """A copy of a BN ``model`` to adapt in place, set after set (one copy: no clone and
    no retraced prediction per set), with its statistics as trained; ``None`` without BN."""
    work, source = adaptable_copy(model)
    return (work, source) if source else None


def per_model(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per variant and seed: clean accuracy (as trained and adapted), mean
    accuracy over every corrupted set (as trained and adapted), the worst set's, the
    drop from clean to corrupted as trained, and the share of the drop adaptation wins
    back, against the adapted clean accuracy (the same adaptation on clean images)."""
    keys = ["variant", "seed"]
    clean = rows[rows.corruption == "clean"].set_index(keys)
    corrupted = rows[rows.corruption != "clean"].groupby(keys, sort=False)
    table = pd.DataFrame(
        {
            "clean_accuracy": clean["accuracy"],
            "adapted_clean_accuracy": clean["adapted_accuracy"],
            "corruption_accuracy": corrupted["accuracy"].mean(),
            "adapted_corruption_accuracy": corrupted["adapted_accuracy"].mean(),
            "worst_set_accuracy": corrupted["accuracy"].min(),
        }
    )
    table["corruption_drop"] = table.clean_accuracy - table.corruption_accuracy
    table["drop_recovered"] = (table.adapted_corruption_accuracy - table.corruption_accuracy) / (
        table.adapted_clean_accuracy - table.corruption_accuracy
    )
    return table.reset_index()


def summarize(models: pd.DataFrame, judged, baseline: str) -> pd.DataFrame:
    """Per variant: the mean over its models of each measure, the std of the corrupted
    accuracy, and the verdict of the paired test on it."""
    grouped = models.groupby("variant", sort=False)
    summary = grouped.mean(numeric_only=True).drop(columns="seed")
    summary["corruption_accuracy_std"] = grouped["corruption_accuracy"].std(ddof=1)
    summary["seeds"] = grouped.size()
    summary = summary.reset_index()
    summary["verdict"] = [
        "baseline" if v == baseline else judged.word(v, "corruption_accuracy")
        for v in summary.variant
    ]
    return summary


def _markdown(models: pd.DataFrame) -> str:
    def pct(values):
        values = values.dropna()
        return "–" if values.empty else mean_std(values)

    def won(values):
        values = values.dropna()
        return "–" if values.empty else f"{values.mean():.0%}"

    groups = list(models.groupby("variant", sort=False))
    table = pd.DataFrame(
        {
            "variant": [f"`{v}`" for v, _ in groups],
            "seeds": [len(g) for _, g in groups],
            "clean test acc %": [pct(g.clean_accuracy) for _, g in groups],
            "clean, BN adapted %": [pct(g.adapted_clean_accuracy) for _, g in groups],
            "corrupted: mean acc %": [pct(g.corruption_accuracy) for _, g in groups],
            "corrupted, BN adapted %": [pct(g.adapted_corruption_accuracy) for _, g in groups],
            "drop clean → corrupted (pp)": [
                f"{100 * g.corruption_drop.mean():.2f}" for _, g in groups
            ],
            "worst set acc %": [pct(g.worst_set_accuracy) for _, g in groups],
            "drop won back by adaptation": [won(g.drop_recovered) for _, g in groups],
        }
    )
    return table.to_markdown(index=False, disable_numparse=True)


def plot(rows: pd.DataFrame, path: Path, title: str) -> Path:
    corrupted = rows[rows.corruption != "clean"]
    variants = list(dict.fromkeys(rows.variant))
    names = list(dict.fromkeys(corrupted.corruption))
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(16, 5.2), constrained_layout=True)
    for ax, column, kind in (
        (axes[0], "accuracy", "as trained"),
        (axes[1], "adapted_accuracy", "BN statistics re-estimated on the corrupted images"),
    ):
        grid = corrupted.pivot_table(index="corruption", columns="variant", values=column)
        grid = grid.reindex(index=names, columns=variants).to_numpy()
        labels = [["no BN" if np.isnan(v) else f"{v:.0%}" for v in row] for row in grid]
        image = heatmap(ax, grid, names, variants, labels)
        ax.set_title(f"accuracy, mean over severities and seeds:\n{kind}", fontsize=10)
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
    axes[2].set_ylabel("accuracy (mean over corruptions and seeds)")
    axes[2].legend(fontsize=8)
    fig.suptitle(title, fontsize=11)
    return save_figure(fig, path)


def _check(config: Config) -> None:
    """Refuse bad settings before any training."""
    if not 0 < config.adapt_fraction < 1:
        raise ValueError(
            "adapt_fraction is the share of each set BN's statistics come from, the rest "
            f"being scored: between 0 and 1. Received: {config.adapt_fraction}"
        )
    if config.seeds < 1:
        raise ValueError(
            f"seeds is the number of models per variant: 1 or more. Received: {config.seeds}"
        )
    for name in config.corruptions:
        CORRUPTIONS.lookup(name)  # an unknown name fails before any training
    unswept = sorted(set(config.mixing_severities) - set(config.severities))
    if unswept:
        raise ValueError(
            "mixing_severities must be among severities (the sweep reuses their sets): "
            f"add them to severities or drop them. Received: {unswept}"
        )
    check_targets(config.mixing_targets, int(round(config.adapt_fraction * config.test_images)))


def _sets(config: Config, images) -> list[tuple]:
    sets = [("clean", "clean", 0, images)]
    for k, name in enumerate(config.corruptions):
        for severity in config.severities:
            seed = 10 * k + severity  # a fixed draw per set, the same for every model
            family = CORRUPTIONS.lookup(name).family
            sets.append((name, family, severity, corrupt(images, name, severity, seed)))
    return sets


def _scored_model(config, variant, seed, data, units, sets, labels) -> dict:
    """One model's unit: its accuracy on every set, as trained and (BN) adapted, and its
    mixing sweep (BN). The model comes from ``models_dir``, from its ``.keras`` unit (a
    run stopped while scoring), or is trained now."""
    model = trained_model(config, variant, seed, data, units)
    adaptable = _adaptable(model) if get_variant(variant).uses_bn else None
    scored = []
    for name, family, severity, x in sets:
        raise_if_stopped()
        scores = _score(model, adaptable, x, labels, config)
        scored.append(
            dict(corruption=name, family=family, severity=severity, images=len(x), **scores)
        )
    mixing = []
    if adaptable is not None:
        mixing_sets = [
            (name, severity, x)
            for name, _, severity, x in sets
            if name == "clean" or severity in config.mixing_severities
        ]
        mixing = mixing_rows(*adaptable, mixing_sets, labels, config, _accuracy)
    log.info("%s seed %d: every set scored", variant, seed)
    return {"sets": scored, "mixing": mixing}


def run(config: Config, out_dir: Path, data_dir=None) -> ExperimentResult:
    _check(config)
    data = load_dataset(config.dataset, data_dir)
    images, labels = data.x_test[: config.test_images], data.y_test[: config.test_images]
    sets = _sets(config, images)
    rows, mixing = [], []
    units = Path(out_dir) / "units"
    for seed in range(config.seeds):  # seed-major: a stopped run keeps whole seeds' units
        for variant in config.variants:
            # One model's scores are its JSON unit: a resumed run, or a copy of an archived
            # piece (which keeps no model), reads them back instead of training again.
            # Named scores-<variant>-seed<k>: <variant>-seed<k>.json is the model's sidecar.
            score = partial(_scored_model, config, variant, seed, data, units, sets, labels)
            unit = json_unit(units, {"scores": "scores", "variant": variant, "seed": seed}, score)
            rows += [dict(variant=variant, seed=seed, **row) for row in unit["sets"]]
            mixing += [dict(variant=variant, seed=seed, **row) for row in unit["mixing"]]
    rows = pd.DataFrame(rows)
    models = per_model(rows)
    baseline = "base" if "base" in config.variants else config.variants[0]
    judged = judge(
        models,
        by="variant",
        baseline=baseline,
        dataset=config.dataset,
        metrics={
            "corruption_accuracy": ("better", "worse"),
            "corruption_drop": ("larger drop", "smaller drop"),
        },
    )
    summary = summarize(models, judged, baseline)
    adaptation = adaptation_verdicts(models, config.dataset)
    described = (
        f"{len(images)} test images of {config.dataset}, {config.seeds} trained model(s) "
        f"per variant; corruptions: {', '.join(config.corruptions)} at severities "
        f"{list(config.severities)}"
    )
    notes = (
        f"{described}. adapted: BN moving statistics re-estimated on the first "
        f"{config.adapt_fraction:.0%} of each set (no labels; N = 0), every accuracy scored "
        "on the rest; drop won back: (adapted corrupted - corrupted) / (adapted clean - "
        "corrupted), mean over models."
    )
    sections = [_markdown(models), judged.markdown()]
    if len(adaptation):
        sections.append(
            judged_each_markdown(
                adaptation,
                group="net",
                group_title="BN variant",
                titles={"corruption_accuracy": "mean accuracy on the corrupted sets"},
                delta_title="Δ acc (pp)",
            )
        )
    result = ExperimentResult("corruption-robustness", summary, rows, notes=notes)
    if mixing:
        mixing = pd.DataFrame(mixing)
        swept = rows[(rows.corruption != "clean") & rows.severity.isin(config.mixing_severities)]
        # as trained on the sweep's corrupted sets: the mean over sets per model, then models
        as_trained = swept.groupby(["variant", "seed"])["accuracy"].mean().groupby(level=0).mean()
        sections.append(
            f"Source/target mixing (Schneider et al.): accuracy on the corrupted sets of "
            f"severity {list(config.mixing_severities)} after adapting to the first n "
            "held-out images of each set, the training statistics weighted as N images "
            f"(n = {int(round(config.adapt_fraction * len(images)))} is all of them; "
            "mean ± std over models):\n\n" + mixing_markdown(mixing, as_trained)
        )
        title = (
            f"{config.dataset}, corrupted sets of severity "
            f"{list(config.mixing_severities)}:\nmean over {config.seeds} model(s)"
        )
        figure = plot_mixing(mixing, as_trained, Path(out_dir) / "bn_mixing.png", title)
        result.figures.append(figure)
        mixing.to_csv(Path(out_dir) / "mixing.csv", index=False)
    adapted = models.dropna(subset=["adapted_corruption_accuracy"])
    if len(adapted):
        first = adapted.groupby("variant", sort=False).mean(numeric_only=True).iloc[0]
        sections.append(
            f"{PAPER}: `{adapted.variant.iloc[0]}` here, mean error "
            f"{100 * (1 - first.corruption_accuracy):.1f}% as trained, "
            f"{100 * (1 - first.adapted_corruption_accuracy):.1f}% adapted."
        )
    result.figures.append(
        plot(
            rows, Path(out_dir) / "corruption_robustness.png", f"corruption robustness: {described}"
        )
    )
    models.to_csv(Path(out_dir) / "models.csv", index=False)
    judged.write(out_dir)
    write_text(Path(out_dir) / "adaptation_verdicts.csv", adaptation.to_csv(index=False))
    return write_outputs(result, out_dir, "corruption-robustness", "\n\n".join(sections))

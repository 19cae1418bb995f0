"""corruption-robustness, part two: what test-time BN adaptation wins. Whether it helps
(:func:`adaptation_verdicts`: each BN variant's models adapted against the same models
as trained), and Schneider et al.'s sweep over the number of target images ``n`` that
BN adapts to and the weight ``N`` of the training statistics mixed with theirs
(:func:`kerasbn.diagnostics.adapt_bn`).

Each BN model is adapted on the first ``n`` images of a set's held-out part and scored
on the rest of the set, as the full adaptation is; ``n = 0`` stands for the whole
held-out part. One copy of the model is adapted in place for every (set, N, n), from
its statistics as trained, so the sweep costs no model clone (nor a retraced
prediction) per point.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from kerasbn._signals import raise_if_stopped
from kerasbn.diagnostics.adapt_bn import adapt_bn
from kerasbn.experiments._common import pyplot, save_figure
from kerasbn.experiments._inference import judge_each

__all__ = [
    "adaptation_verdicts",
    "adapted_corner",
    "check_targets",
    "mixing_markdown",
    "mixing_rows",
    "plot_mixing",
]


def adaptation_verdicts(models: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """Does adaptation help? For each BN variant (column ``net``), its models' mean
    corrupted accuracy after adaptation against the same models as trained, paired model
    by model."""
    adapted = models.dropna(subset=["adapted_corruption_accuracy"])
    rows = pd.concat(
        [
            adapted.assign(scoring="as trained"),
            adapted.assign(
                scoring="BN adapted", corruption_accuracy=adapted.adapted_corruption_accuracy
            ),
        ]
    )[["variant", "scoring", "seed", "corruption_accuracy"]].rename(columns={"variant": "net"})
    return judge_each(
        rows,
        group="net",
        by="scoring",
        baseline="as trained",
        dataset=dataset,
        metrics={"corruption_accuracy": ("better", "worse")},
    )


def check_targets(targets, held_out: int) -> None:
    """Refuse a target count the held-out part of a set cannot supply."""
    bad = [n for n in targets if n < 0 or n > held_out]
    if bad:
        raise ValueError(
            f"mixing_targets are target image counts n, at most the {held_out} held-out "
            "images of each set (0: all of them); lower them or raise test_images. "
            f"Received: {bad}"
        )


def mixing_rows(work, source, sets, labels, config, scorer) -> list[dict]:
    """One row per (set, N, n): the scored part's accuracy after adapting ``work`` (a
    plain-BN model, in place) on the first n held-out images with its statistics as
    trained, ``source``, weighted as N images. ``sets``: ``(corruption, severity,
    images)``; ``scorer(model, images, labels)``: accuracy."""
    rows = []
    for corruption, severity, images in sets:
        held_out = int(round(config.adapt_fraction * len(images)))
        scored, scored_labels = images[held_out:], labels[held_out:]
        for n in config.mixing_targets:
            target = images[: n or held_out]
            for weight in config.mixing_sources:
                raise_if_stopped()
                adapt_bn(work, target, weight, config.adapt_batch, source=source, in_place=True)
                rows.append(
                    dict(
                        corruption=corruption,
                        severity=severity,
                        source_weight=weight,
                        target_images=len(target),
                        accuracy=scorer(work, scored, scored_labels),
                    )
                )
    return rows


def _mean_over_sets(rows: pd.DataFrame) -> pd.DataFrame:
    """Per variant, N and n: accuracy on the corrupted sets, the mean over sets for each
    model, then the mean and std over models (seeds)."""
    corrupted = rows[rows.corruption != "clean"]
    per_model = corrupted.groupby(
        ["variant", "source_weight", "target_images", "seed"], sort=False
    )["accuracy"].mean()
    return per_model.groupby(level=[0, 1, 2], sort=False).agg(["mean", "std", "count"])


def mixing_markdown(rows: pd.DataFrame, as_trained: pd.Series) -> str:
    """Mean accuracy over the sweep's corrupted sets (mean ± std over models), one row
    per variant and N, one column per n; ``as_trained``: each variant's accuracy on the
    same sets without adaptation (mean over models)."""
    table = _mean_over_sets(rows).reset_index()
    cells = table.assign(
        cell=[
            f"{100 * m:.2f}" + ("" if c < 2 else f" ± {100 * s:.2f}")
            for m, s, c in zip(table["mean"], table["std"], table["count"], strict=True)
        ]
    )
    grid = cells.pivot(index=["variant", "source_weight"], columns="target_images", values="cell")
    grid.columns = [f"n = {n}" for n in grid.columns]
    grid = grid.reset_index()
    grid.insert(2, "as trained", [f"{100 * as_trained[v]:.2f}" for v in grid["variant"]])
    grid = grid.rename(columns={"source_weight": "N"})
    grid["variant"] = [f"`{v}`" for v in grid["variant"]]
    return grid.to_markdown(index=False, disable_numparse=True)


def plot_mixing(rows: pd.DataFrame, as_trained: pd.Series, path: Path, title: str = "") -> Path:
    table = _mean_over_sets(rows)["mean"]
    variants = list(dict.fromkeys(table.index.get_level_values(0)))
    plt = pyplot()
    fig, axes = plt.subplots(
        1, len(variants), figsize=(5.5 * len(variants), 4), squeeze=False, sharey=True
    )
    for ax, variant in zip(axes[0], variants, strict=True):
        mine = table.loc[variant]
        for weight in dict.fromkeys(mine.index.get_level_values(0)):
            line = mine.loc[weight]
            ax.plot(line.index, line.to_numpy(), marker="o", label=f"N = {weight}")
        ax.axhline(as_trained[variant], color="grey", ls=":", label="as trained")
        ax.set_xscale("log")
        ax.set(
            title=f"{variant}",
            xlabel="target images n that BN adapts to",
            ylabel="accuracy on the corrupted sets",
        )
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def adapted_corner(rows: pd.DataFrame) -> pd.DataFrame:
    """The sweep's full-adaptation points (N = 0, all held-out images): what the main
    table's adapted accuracies are on the same sets."""
    largest = rows.groupby(["variant", "seed", "corruption", "severity"])[
        "target_images"
    ].transform("max")
    return rows[(rows.source_weight == 0) & (rows.target_images == largest)]

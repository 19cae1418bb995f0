"""The verdicts of ``compare`` for the named experiments: the same paired tests over
seeds, intervals and Holm correction, applied to an experiment's headline comparison.

An experiment's final rows (one per version and seed) become a comparison's
``runs.csv``-like table, judged by :func:`kerasbn.verdicts.verdicts` against the
experiment's baseline version; the per-image correctness saved by
:func:`~kerasbn.experiments._common.train_versions` (``score=``) adds the test set's
own noise to the interval, as in a comparison folder. The verdict word in an
experiment's gallery entry is the word of this table, never a judgement of the means.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from kerasbn._io import write_text
from kerasbn.experiments._common import unit_path
from kerasbn.verdict_text import p_text, points_text, span_text, verdict_markdown
from kerasbn.verdicts import intervals, verdicts

__all__ = ["ACCURACY", "Judged", "judge", "judge_each", "judged_each_markdown", "read_correct"]


def _signed(value: float) -> str:
    return "n/a" if not np.isfinite(value) else f"{value:+.4g}"


# The headline measure of most experiments: a higher test accuracy is "better".
ACCURACY = {"test_accuracy": ("better", "worse")}


def read_correct(
    folder: str | os.PathLike, final: pd.DataFrame, by: str
) -> dict[tuple[str, int], np.ndarray]:
    """The per-image correctness that ``train_versions(..., score=(x, y, folder))``
    saved for each (version, seed) of ``final``, keyed as :func:`verdicts` reads it;
    a unit without its file (trained before the file existed) is left out."""
    found = {}
    for version, seed in zip(final[by], final["seed"], strict=True):
        path = unit_path(folder, {by: version, "seed": int(seed)}).with_suffix(".npy")
        if path.is_file():
            found[(str(version), int(seed))] = np.load(path, allow_pickle=False)
    return found


class Judged:
    """An experiment's verdicts and intervals, and their Markdown section."""

    def __init__(self, verdict_table: pd.DataFrame, interval_table: pd.DataFrame):
        self.verdicts = verdict_table
        self.intervals = interval_table

    def word(self, version: str, metric: str = "test_accuracy") -> str:
        """The verdict word of ``version`` against the baseline on ``metric``."""
        rows = self.verdicts[
            (self.verdicts["variant"] == version) & (self.verdicts["metric"] == metric)
        ]
        return str(rows["verdict"].iloc[0]) if len(rows) else "n/a"

    def markdown(self) -> str:
        """The test-accuracy verdicts as ``compare`` writes them, then one row per
        other measure (each measure its own family, as in ``compare``)."""
        text = verdict_markdown(self.verdicts, self.intervals)
        others = self.verdicts[self.verdicts["metric"] != "test_accuracy"]
        if others.empty:
            return text
        table = pd.DataFrame(
            {
                "measure": others["metric"],
                "variant": others["variant"],
                "Δ": others["difference"].map(_signed),
                "95% CI": [
                    "n/a" if not np.isfinite(lo) else f"[{_signed(lo)}, {_signed(hi)}]"
                    for lo, hi in zip(others["ci_low"], others["ci_high"], strict=True)
                ],
                "p (Holm)": others["p_holm"].map(p_text),
                "test": others["test"],
                "verdict": others["verdict"],
            }
        )
        return (
            f"{text}\nOther measures against `{others['baseline'].iloc[0]}` (each measure "
            "its own family, Holm-corrected; paired t-test over seeds):\n\n"
            f"{table.to_markdown(index=False, disable_numparse=True)}\n"
        )

    def write(self, out_dir: str | os.PathLike) -> None:
        """``verdicts.csv`` and ``intervals.csv``, as a comparison folder has them."""
        write_text(Path(out_dir) / "verdicts.csv", self.verdicts.to_csv(index=False))
        write_text(Path(out_dir) / "intervals.csv", self.intervals.to_csv(index=False))


def judge(
    final: pd.DataFrame,
    *,
    by: str,
    baseline: str,
    dataset: str,
    metrics: dict[str, tuple[str, str]] = ACCURACY,
    correct: dict[tuple[str, int], np.ndarray] | None = None,
    one_family: bool = False,
) -> Judged:
    """Each version of ``final`` (one row per ``by`` value and seed, with a ``seed``
    column and each metric's column) against ``baseline``, paired seed by seed.

    A row with ``diverged`` true has no figures (NaN, never a low score). The family is
    one metric's comparisons across the versions, Holm-corrected, as in ``compare``
    (``one_family``: every version and metric together, see :func:`verdicts`).
    """
    runs = pd.DataFrame(
        {
            "dataset": dataset,
            "variant": final[by].astype(str).to_numpy(),
            "seed": final["seed"].astype(int).to_numpy(),
            "diverged": (
                final["diverged"].astype(bool).to_numpy() if "diverged" in final else False
            ),
            **{metric: final[metric].astype(float).to_numpy() for metric in metrics},
        }
    )
    if correct:
        # The test-set size: what the binomial spread and the recipe interval need.
        runs["test_examples"] = len(next(iter(correct.values())))
    return Judged(
        verdicts(runs, baseline, correct, metrics, one_family=one_family),
        intervals(runs, correct, metrics),
    )


def judge_each(
    final: pd.DataFrame,
    *,
    group: str,
    by: str,
    baseline: str,
    dataset: str,
    metrics: dict[str, tuple[str, str]],
    one_family: bool = False,
) -> pd.DataFrame:
    """:func:`judge` within each value of ``group`` (a batch size, a learning rate):
    there the versions against ``baseline``, each metric a family, Holm over the
    versions of that group; the verdict rows of every group, with its ``group`` value.
    ``one_family``: one family per group instead, Holm over every version and metric of
    it (where the metrics are several measures of one question, such as smoothness's,
    a family per metric would leave them uncorrected). A group without ``baseline`` or
    without another version is left out."""
    frames = []
    for value, rows in final.groupby(group, sort=True):
        if baseline in set(rows[by]) and rows[by].nunique() > 1:
            judged = judge(
                rows,
                by=by,
                baseline=baseline,
                dataset=dataset,
                metrics=metrics,
                one_family=one_family,
            )
            frames.append(judged.verdicts.assign(**{group: value}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def judged_each_markdown(
    verdicts: pd.DataFrame,
    *,
    group: str,
    group_title: str,
    titles: dict[str, str],
    delta_title: str,
    points: bool = True,
    group_format: str = "{:g}",
    one_family: bool = False,
) -> str:
    """The verdicts of :func:`judge_each` as one table: a row per group, version and
    metric (``titles``: each metric's name in the table), the difference in percentage
    points (``points``) or as it is, then the test, family and correction; a float
    group value is written with ``group_format``; ``one_family``: the family that
    :func:`judge_each` was given, named in the note."""
    if verdicts.empty:
        return "No test: no group has the baseline and another version."
    baseline = verdicts["baseline"].iloc[0]
    family = (
        f"every version and measure of one {group_title} together"
        if one_family
        else f"the versions of one {group_title} under one measure"
    )
    if points:
        deltas = verdicts["difference"].map(points_text)
        spans = span_text(verdicts["ci_low"], verdicts["ci_high"])
    else:
        deltas = verdicts["difference"].map(_signed)
        spans = [
            "n/a" if not np.isfinite(lo) else f"[{_signed(lo)}, {_signed(hi)}]"
            for lo, hi in zip(verdicts["ci_low"], verdicts["ci_high"], strict=True)
        ]
    table = pd.DataFrame(
        {
            group_title: verdicts[group].map(
                lambda v: group_format.format(v) if isinstance(v, float) else str(v)
            ),
            "variant": [f"`{v}`" for v in verdicts["variant"]],
            "measure": verdicts["metric"].map(titles),
            delta_title: deltas,
            "95% CI": spans,
            "p (Holm)": verdicts["p_holm"].map(p_text),
            "verdict": verdicts["verdict"],
        }
    )
    return (
        f"### Each version against `{baseline}` at its {group_title}\n\n"
        f"{table.to_markdown(index=False, disable_numparse=True)}\n\n"
        f"Test: {verdicts['test'].iloc[0]}; family: {family}, Holm's step-down "
        "correction; detected at Holm-adjusted p < 0.05.\n"
    )

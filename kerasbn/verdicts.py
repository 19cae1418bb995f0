"""Verdicts: is each variant's difference from a baseline real, how large, how sure?

From a comparison's per-run rows (``runs.csv``) and, where recorded, each run's
per-image test correctness (``correct/<run>.npy``):

* :func:`intervals`: per variant and metric, the mean, std and 95% interval over seeds.
  A test accuracy with several seeds and per-image results gets the interval of the
  recipe's accuracy, seeds and test-set sampling both included (the seed-only
  t-interval is kept beside it); one seed gets a Wilson interval over the test images;
* :func:`verdicts`: per variant and metric, the difference from the baseline with its
  interval, raw and Holm-adjusted p-values, the test, a verdict word and the seeds
  needed for 80% power.

The family: one measure across the variants of one comparison (each variant against
the baseline), corrected with Holm's step-down method; the verdict word uses the
adjusted p. Several seeds are compared seed by seed (same seed = same split, batch
order and initial random state). One seed has no spread to test against, so its test
accuracy is compared image by image (exact McNemar): that compares the two trained
models, not the recipes, and the table says so.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from kerasbn import stats
from kerasbn._csv import RUN_TEXT_COLUMNS, read_table
from kerasbn.registry import unknown_name
from kerasbn.runfolder import file_in

__all__ = [
    "INTERVAL_COLUMNS",
    "METRICS",
    "VERDICT_COLUMNS",
    "choose_baseline",
    "folder_judgement",
    "intervals",
    "paired_verdicts",
    "read_correct",
    "read_folder",
    "stored_baseline",
    "verdicts",
]

# Compared metrics: what a positive difference is called when it is detected. Only a
# higher test accuracy is "better"; for the overfitting figures and epochs-to-target
# the table states the direction and leaves the judgement to the reader.
METRICS: dict[str, tuple[str, str]] = {
    "test_accuracy": ("better", "worse"),
    "final_train_val_gap": ("higher", "lower"),
    "val_loss_overfit": ("higher", "lower"),
    "epochs_to_target": ("higher", "lower"),
}

INTERVAL_COLUMNS = [
    "dataset",
    "variant",
    "metric",
    "seeds",
    "mean",
    "std",
    "ci_low",
    "ci_high",
    "method",
    "seed_ci_low",
    "seed_ci_high",
    "binomial_std",
]

VERDICT_COLUMNS = [
    "dataset",
    "variant",
    "baseline",
    "metric",
    "seeds",
    "difference",
    "ci_low",
    "ci_high",
    "interval",
    "seed_ci_low",
    "seed_ci_high",
    "p_value",
    "p_holm",
    "family_size",
    "test",
    "verdict",
    "seeds_needed",
]

# What ci_low / ci_high of a verdict row are, in words a learner reads.
SEEDS_AND_TEST_SET = "seeds + test set"
SEEDS_ONLY = "seeds only (paired t)"
ONE_SEED = "Bonett-Price (these two models, test images)"


def choose_baseline(variants: list[str], baseline: str | None = None) -> str:
    """``baseline`` if it is one of ``variants``; by default ``base`` when present, else
    the first variant."""
    if baseline is None:
        return "base" if "base" in variants else variants[0]
    if baseline not in variants:
        raise unknown_name("baseline", variants, baseline, "baselines (this comparison's variants)")
    return baseline


def _values(runs: pd.DataFrame, metric: str) -> pd.Series:
    # A diverged run has no figures: NaN, never a low score.
    values = runs[metric].astype(float)
    return values.where(~runs["diverged"].astype(bool))


def _test_examples(runs: pd.DataFrame) -> int:
    if "test_examples" not in runs or runs["test_examples"].isna().all():
        return 0
    return int(runs["test_examples"].dropna().iloc[0])


def _stacked(correct: dict, variant: str, seeds) -> np.ndarray | None:
    """The per-image results of ``variant`` on ``seeds`` as (seeds, images), or None
    when one is missing or they differ in length."""
    rows = [correct.get((variant, int(seed))) for seed in seeds]
    if not rows or any(r is None for r in rows) or len({len(r) for r in rows}) != 1:
        return None
    return np.vstack(rows)


def _clipped(ci: stats.Interval) -> stats.Interval:
    # A t-interval knows no bounds; an accuracy lies in [0, 1].
    if not np.isfinite(ci.low):
        return ci
    return replace(ci, low=max(0.0, ci.low), high=min(1.0, ci.high))


def intervals(
    runs: pd.DataFrame,
    correct: dict | None = None,
    metrics: dict[str, tuple[str, str]] | None = None,
) -> pd.DataFrame:
    """One row per (variant, metric): mean, std and 95% interval over the seeds.

    ``correct[(variant, seed)]``: that run's per-image test correctness; with it, a test
    accuracy over several seeds gets the seeds-and-test-set interval. ``metrics``: the
    columns of ``runs`` to summarize (default :data:`METRICS`)."""
    correct = correct or {}
    rows = []
    for (dataset, variant), group in runs.groupby(["dataset", "variant"], sort=False):
        for metric in METRICS if metrics is None else metrics:
            values = _values(group, metric)
            ci = stats.t_interval(values)
            seed_ci = ci
            binomial = math.nan
            if metric == "test_accuracy" and "test_examples" in group:
                n = int(group["test_examples"].iloc[0])
                binomial = stats.binomial_std(ci.mean, n)
                seeds = group.loc[values.notna(), "seed"]
                per_image = _stacked(correct, variant, seeds) if len(seeds) > 1 else None
                if ci.n == 1:
                    hits = round(float(values.dropna().iloc[0]) * n)
                    ci = seed_ci = stats.wilson_interval(hits, n)
                elif per_image is not None and per_image.shape[1] == n:
                    ci = stats.recipe_interval(per_image)
                ci, seed_ci = _clipped(ci), _clipped(seed_ci)
            rows.append(
                {
                    "dataset": dataset,
                    "variant": variant,
                    "metric": metric,
                    "seeds": ci.n,
                    "mean": ci.mean,
                    "std": seed_ci.std,
                    "ci_low": ci.low,
                    "ci_high": ci.high,
                    "method": ci.method,
                    "seed_ci_low": seed_ci.low,
                    "seed_ci_high": seed_ci.high,
                    "binomial_std": binomial,
                }
            )
    return pd.DataFrame(rows, columns=INTERVAL_COLUMNS)


def _paired(runs: pd.DataFrame, variant: str, baseline: str, metric: str):
    def by_seed(name: str) -> pd.Series:
        group = runs[runs["variant"] == name]
        return _values(group, metric).set_axis(group["seed"].to_numpy())

    pairs = pd.concat([by_seed(variant), by_seed(baseline)], axis=1, join="inner").dropna()
    return pairs.iloc[:, 0].to_numpy(), pairs.iloc[:, 1].to_numpy(), list(pairs.index)


def _accuracy_tests(runs, variant, baseline, correct):
    """(test behind the verdict, seed-only paired t, which interval) for test accuracy."""
    ours, theirs, seeds = _paired(runs, variant, baseline, "test_accuracy")
    n = _test_examples(runs)
    seed_only = stats.paired_t(ours, theirs, resolution=1 / n if n else 0.0)
    if len(seeds) == 1:
        a, b = correct.get((variant, seeds[0])), correct.get((baseline, seeds[0]))
        if a is not None and b is not None and len(a) == len(b):
            return stats.mcnemar(a, b), seed_only, ONE_SEED
    elif len(seeds) > 1:
        a, b = _stacked(correct, variant, seeds), _stacked(correct, baseline, seeds)
        if a is not None and b is not None and a.shape == b.shape:
            return stats.recipe_difference(a, b), seed_only, SEEDS_AND_TEST_SET
    return seed_only, seed_only, SEEDS_ONLY if len(seeds) > 1 else ""


def verdicts(
    runs: pd.DataFrame,
    baseline: str,
    correct: dict[tuple[str, int], np.ndarray] | None = None,
    metrics: dict[str, tuple[str, str]] | None = None,
    one_family: bool = False,
) -> pd.DataFrame:
    """One row per (variant other than ``baseline``, metric).

    ``correct[(variant, seed)]`` holds that run's per-image correctness on the test set:
    with one seed it gives McNemar's test, with several the seeds-and-test-set interval
    of the test-accuracy difference. Each metric's comparisons form one family: their
    p-values are Holm-adjusted together, and the verdict word uses the adjusted p.
    ``metrics``: each compared column of ``runs`` with the words for a detected higher
    and a detected lower value (default :data:`METRICS`). ``one_family``: every
    comparison of every metric in one family instead, for metrics that are several
    readings of one question (a family per metric would leave them uncorrected).
    """
    others = [v for v in dict.fromkeys(runs["variant"]) if v != baseline]
    pairs = [(variant, baseline) for variant in others]
    return paired_verdicts(runs, pairs, correct, metrics, one_family=one_family)


def paired_verdicts(
    runs: pd.DataFrame,
    pairs: Sequence[tuple[str, str]],
    correct: dict[tuple[str, int], np.ndarray] | None = None,
    metrics: dict[str, tuple[str, str]] | None = None,
    one_family: bool = False,
) -> pd.DataFrame:
    """:func:`verdicts` for any ``(variant, baseline)`` pairs of ``runs``' variants, each
    pair compared seed by seed; one metric's pairs form one Holm family (all of them
    together with ``one_family``). With one baseline for every pair this is
    :func:`verdicts`; with a baseline per pair it judges one change made to each of
    several variants (e.g. the same runs in bfloat16)."""
    correct = correct or {}
    dataset = runs["dataset"].iloc[0] if len(runs) else ""
    words = METRICS if metrics is None else metrics
    tested = []
    for metric in words:
        for variant, baseline in pairs:
            if metric == "test_accuracy":
                test, seed_only, interval = _accuracy_tests(runs, variant, baseline, correct)
            else:
                ours, theirs, _ = _paired(runs, variant, baseline, metric)
                test = seed_only = stats.paired_t(ours, theirs)
                interval = SEEDS_ONLY if test.n > 1 else ""
            tested.append((metric, variant, baseline, test, seed_only, interval))
    families: dict[str, list[int]] = {}
    for k, (metric, *_) in enumerate(tested):
        families.setdefault("all" if one_family else metric, []).append(k)
    p_holm = np.full(len(tested), math.nan)
    size = np.zeros(len(tested), dtype=int)
    for members in families.values():
        p_values = [tested[k][3].p_value for k in members]
        p_holm[members] = stats.holm(p_values)
        size[members] = int(np.isfinite(p_values).sum())
    rows = []
    for k, (metric, variant, baseline, test, seed_only, interval) in enumerate(tested):
        higher, lower = words[metric]
        undetermined = test.undetermined or seed_only.undetermined
        rows.append(
            {
                "dataset": dataset,
                "variant": variant,
                "baseline": baseline,
                "metric": metric,
                "seeds": seed_only.n,
                "difference": test.difference,
                "ci_low": test.low,
                "ci_high": test.high,
                "interval": interval,
                "seed_ci_low": seed_only.low,
                "seed_ci_high": seed_only.high,
                "p_value": math.nan if undetermined else test.p_value,
                "p_holm": math.nan if undetermined else p_holm[k],
                "family_size": size[k],
                "test": test.test or f"none: {seed_only.n} paired seed(s)",
                "verdict": stats.NO_SPREAD
                if undetermined
                else stats.verdict(test, higher, lower, p_holm[k]),
                # At Holm's strictest step (alpha / family size), where 80% power
                # holds whatever the other comparisons' p-values.
                "seeds_needed": stats.seeds_needed(
                    test.difference,
                    seed_only.sd,
                    alpha=stats.ALPHA / max(size[k], 1),
                    test_var=test.test_var,
                ),
            }
        )
    order = {variant: k for k, (variant, _) in enumerate(pairs)}
    table = pd.DataFrame(rows, columns=VERDICT_COLUMNS)
    if table.empty:
        return table
    # One variant's metrics together, in the variants' order, as before.
    table["_order"] = table["variant"].map(order)
    return (
        table.sort_values(["_order"], kind="stable").drop(columns="_order").reset_index(drop=True)
    )


def read_folder(run_dir: str | Path) -> tuple[pd.DataFrame, dict, str]:
    """What every reader of a comparison folder (live or archived) judges it from: its
    per-run rows, each run's per-image test correctness and the baseline."""
    runs = read_table(Path(run_dir) / "runs.csv", RUN_TEXT_COLUMNS)
    return runs, read_correct(run_dir), stored_baseline(run_dir, runs)


def folder_judgement(
    folder: str | Path, baseline: str | None = None, summary: bool = False
) -> dict[str, pd.DataFrame]:
    """The ``verdicts`` and ``intervals`` of a finished (or archived) folder: a
    comparison folder judged now, with the current methods, against ``baseline`` (by
    default the one it was judged against), and with ``summary`` its results table from
    the same read; a named experiment's folder, whose per-seed figures are in its
    history, as it judged them when it finished."""
    folder = Path(folder)
    # A comparison keeps a record per run under runs/; an experiment's folder has none
    # (smoothness writes a runs.csv of its own, which is not a comparison's).
    if not ((folder / "runs.csv").is_file() and (folder / "runs").is_dir()):
        return {
            name: read_table(folder / f"{name}.csv")
            if name == "verdicts" or (folder / f"{name}.csv").is_file()
            else pd.DataFrame()  # an experiment without intervals (smoothness)
            for name in ("verdicts", "intervals")
        }
    runs, correct, stored = read_folder(folder)
    tables = {
        "verdicts": verdicts(runs, baseline or stored, correct),
        "intervals": intervals(runs, correct),
    }
    if summary:
        from kerasbn.report import summarize  # report builds on this module

        tables["summary"] = summarize(runs, correct)
    return tables


def stored_baseline(run_dir: str | Path, runs: pd.DataFrame) -> str:
    """The baseline a comparison folder was judged against: its ``verdicts.csv`` names
    it; a folder without one gets the default for its variants."""
    stored = Path(run_dir) / "verdicts.csv"
    if stored.is_file():
        table = read_table(stored)
        named = table["baseline"].dropna() if "baseline" in table else table.iloc[:0, 0]
        if len(named) and named.iloc[0] in set(runs["variant"]):
            return str(named.iloc[0])
    return choose_baseline(list(dict.fromkeys(runs["variant"])))


def read_correct(run_dir: str | Path) -> dict[tuple[str, int], np.ndarray]:
    """Each finished run's per-image test correctness in a comparison folder, keyed by
    (variant, seed), read from the files its ``runs/<run>.json`` records name (runs
    from before these files have none, and are left out).

    Raises:
        ValueError: a record names a file outside the folder, or one that is not a
            one-dimensional boolean array.
    """
    run_dir = Path(run_dir)
    correct = {}
    for record_path in sorted((run_dir / "runs").glob("*.json")):
        record = json.loads(record_path.read_text(encoding="utf-8"))
        name = record.get("correct")
        if not name:
            continue
        path = file_in(run_dir, name, record_path)
        array = np.load(path, allow_pickle=False)
        if array.dtype != bool or array.ndim != 1:
            raise ValueError(
                f"{path} is not one run's per-image correctness (a 1-D boolean array). "
                f"Re-run the comparison into a new folder. Received: {array.dtype} "
                f"{array.shape}"
            )
        correct[(str(record["row"]["variant"]), int(record["row"]["seed"]))] = array
    return correct

"""Time to accuracy: how long the default recipe takes to give its answer.

Users wait for a comparison, not for images per second. For each data set and variant
this trains kerasbn's default recipe (its preset: epochs, batch, schedule, augmentation)
and reports the wall-clock seconds and epochs until the validation accuracy first
reaches the preset's ``speed_target`` (MNIST 99%, Fashion-MNIST 92%, CIFAR-10 85%), and
the whole run's wall time, which summed over variants is the time of a comparison.
"""

from __future__ import annotations

import logging
import math
import time

import pandas as pd

from kerasbn._csv import read_table

__all__ = [
    "RUN_COLUMNS",
    "TIME_TO_ACCURACY_COLUMNS",
    "first_at_target",
    "time_from_run_markdown",
    "time_from_runs",
    "time_from_runs_markdown",
    "time_to_accuracy",
    "time_to_accuracy_from_run",
    "time_to_accuracy_markdown",
]

log = logging.getLogger(__name__)

TIME_TO_ACCURACY_COLUMNS = [
    "dataset",
    "variant",
    "target",
    "epochs_to_target",
    "seconds_to_target",
    "epochs",
    "best_val_accuracy",
    "total_seconds",
]


def first_at_target(epoch_log: pd.DataFrame, target: float) -> tuple[int, float] | None:
    """The first epoch whose validation accuracy reaches ``target`` and the wall seconds
    of the epochs up to and including it (training and validation), or ``None``."""
    reached = epoch_log.index[epoch_log["val_accuracy"] >= target]
    if not len(reached):
        return None
    first = reached[0]
    return int(epoch_log.loc[first, "epoch"]), float(epoch_log.loc[:first, "seconds"].sum())


def time_to_accuracy(
    dataset: str,
    variants: tuple[str, ...],
    data_dir: str | None = None,
    limit: int | None = None,
    epochs: int | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Train each variant with the data set's default recipe (``epochs`` / ``limit``
    shrink it for quick looks) and time it to the preset's target."""
    from kerasbn.data import load_dataset
    from kerasbn.presets import get_preset
    from kerasbn.training import default_config, train

    data = load_dataset(dataset, data_dir).limit(limit)
    target = get_preset(dataset).speed_target
    overrides = {"epochs": epochs} if epochs else {}
    rows = []
    for variant in variants:
        config = default_config(dataset, verbose=0, seed=seed, **overrides)
        start = time.perf_counter()
        history = train(data, variant, config).history
        total = time.perf_counter() - start
        # Seconds to the end of the first epoch at the target: every epoch's wall time
        # (training and validation) up to it; model building and tracing count too.
        first = first_at_target(history, target)
        before_fit = total - float(history["seconds"].sum())
        rows.append(
            {
                "dataset": data.name,
                "variant": variant,
                "target": target,
                "epochs_to_target": first[0] if first is not None else math.nan,
                "seconds_to_target": before_fit + first[1] if first is not None else math.nan,
                "epochs": len(history),
                "best_val_accuracy": float(history["val_accuracy"].max()),
                "total_seconds": total,
            }
        )
        log.info(
            "%s %s: %s, %.0f s in all",
            data.name,
            variant,
            "target not reached"
            if first is None
            else f"{100 * target:g}% val at epoch {rows[-1]['epochs_to_target']} "
            f"after {rows[-1]['seconds_to_target']:.0f} s",
            total,
        )
    return pd.DataFrame(rows, columns=TIME_TO_ACCURACY_COLUMNS)


def time_to_accuracy_markdown(table: pd.DataFrame) -> str:
    """The table, with each data set's total (the wall time of its comparison)."""
    shown = pd.DataFrame(
        {
            "data set": table["dataset"],
            "variant": table["variant"],
            "target val acc": table["target"].map("{:.0%}".format),
            "epochs to target": [
                "not reached" if math.isnan(e) else f"{e:.0f} of {n}"
                for e, n in zip(table["epochs_to_target"], table["epochs"], strict=True)
            ],
            "time to target": [
                "—" if math.isnan(s) else f"{s / 60:.1f} min" for s in table["seconds_to_target"]
            ],
            "best val acc": table["best_val_accuracy"].map("{:.2%}".format),
            "whole run": table["total_seconds"].map(lambda s: f"{s / 60:.1f} min"),
        }
    )
    totals = table.groupby("dataset", sort=False)["total_seconds"].sum()
    lines = [shown.to_markdown(index=False, disable_numparse=True), ""]
    lines += [
        f"{dataset}: all {int((table['dataset'] == dataset).sum())} variants in "
        f"{seconds / 60:.1f} min"
        for dataset, seconds in totals.items()
    ]
    return "\n".join(lines) + "\n"


RUN_COLUMNS = [
    "run",
    "dataset",
    "variant",
    "target",
    "seeds",
    "seeds_reaching",
    "epochs_to_target",
    "seconds_to_target",
    "seconds_to_target_std",
    "epochs",
    "best_val_accuracy",
    "total_seconds",
]


def time_to_accuracy_from_run(out_dir) -> pd.DataFrame:
    """Time to the preset's target, read from a finished ``compare`` folder instead of
    training again: per variant, over its seeds, the training seconds (the epochs' wall
    time, training and validation; data loading and model building excluded) until the
    validation accuracy first reaches the target. With several seeds this is the
    better figure: a mean with its spread, from the runs the README reports."""
    from pathlib import Path

    from kerasbn.comparison import load_comparison
    from kerasbn.presets import get_preset

    out_dir = Path(out_dir)
    result = load_comparison(out_dir)  # refuses an unfinished folder
    rows = []
    for (dataset, variant), runs in result.runs.groupby(["dataset", "variant"], sort=False):
        target = get_preset(dataset).speed_target
        seconds, epochs, best, totals = [], [], [], []
        for seed in runs["seed"]:
            log_csv = out_dir / "logs" / f"{dataset}-{variant}-seed{seed}.csv"
            epoch_log = read_table(log_csv, text=())
            best.append(float(epoch_log["val_accuracy"].max()))
            totals.append(float(epoch_log["seconds"].sum()))
            first = first_at_target(epoch_log, target)
            if first is not None:
                epochs.append(first[0])
                seconds.append(first[1])
        rows.append(
            {
                "run": out_dir.name,
                "dataset": dataset,
                "variant": variant,
                "target": target,
                "seeds": len(runs),
                "seeds_reaching": len(seconds),
                "epochs_to_target": float(pd.Series(epochs).mean()) if epochs else math.nan,
                "seconds_to_target": float(pd.Series(seconds).mean()) if seconds else math.nan,
                "seconds_to_target_std": float(pd.Series(seconds).std(ddof=1))
                if len(seconds) > 1
                else math.nan,
                "epochs": int(len(epoch_log)),
                "best_val_accuracy": float(pd.Series(best).mean()),
                "total_seconds": float(pd.Series(totals).mean()),
            }
        )
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


def _runs(n: int) -> str:
    return f"{n} run" if n == 1 else f"{n} runs"


def time_from_run_markdown(table: pd.DataFrame) -> str:
    """The run table, with each run folder's whole comparison time (every run's epochs;
    per folder, since two folders may hold the same data set)."""

    def minutes(mean: float, std: float) -> str:
        if math.isnan(mean):
            return "—"
        return f"{mean / 60:.1f} min" + ("" if math.isnan(std) else f" ± {std / 60:.1f}")

    shown = pd.DataFrame(
        {
            "data set": table["dataset"],
            "variant": table["variant"],
            "target val acc": table["target"].map("{:.0%}".format),
            "seeds reaching it": [
                f"{r} of {n}" for r, n in zip(table["seeds_reaching"], table["seeds"], strict=True)
            ],
            "epochs to target (mean)": [
                "—" if math.isnan(e) else f"{e:.1f} of {n}"
                for e, n in zip(table["epochs_to_target"], table["epochs"], strict=True)
            ],
            "time to target (mean ± std)": [
                minutes(m, s)
                for m, s in zip(
                    table["seconds_to_target"], table["seconds_to_target_std"], strict=True
                )
            ],
            "best val acc (mean)": table["best_val_accuracy"].map("{:.2%}".format),
            "one run (mean)": table["total_seconds"].map(lambda s: f"{s / 60:.1f} min"),
        }
    )
    by_folder = table.assign(whole=table["total_seconds"] * table["seeds"]).groupby(
        ["run", "dataset"], sort=False
    )
    lines = [shown.to_markdown(index=False, disable_numparse=True), ""]
    lines += [
        f"- `{run}` ({dataset}): the whole comparison ({_runs(int(group['seeds'].sum()))}) "
        f"trained for {group['whole'].sum() / 60:.0f} min"
        for (run, dataset), group in by_folder
    ]
    return "\n".join(lines) + "\n"


def time_from_runs(run_dirs) -> tuple[pd.DataFrame, str]:
    """Time to the target of finished comparison folders: the table, and its Markdown
    with each folder's command and commit under it (the folder named by its last part,
    so that where it lies does not show in a published block)."""
    from pathlib import Path

    from kerasbn.results_tables import finished_config, source_line

    run_dirs = [Path(d) for d in run_dirs]
    table = pd.concat([time_to_accuracy_from_run(d) for d in run_dirs], ignore_index=True)
    markdown = time_from_run_markdown(table) + "".join(
        f"\nFrom `{d.name}`: {source_line(d, finished_config(d))}.\n" for d in run_dirs
    )
    return table, markdown


def time_from_runs_markdown(run_dirs) -> str:
    """The Markdown of :func:`time_from_runs` (``python -m kerasbn.results --table time``)."""
    return time_from_runs(run_dirs)[1]

"""The README's diagnostics table, generated from finished comparison folders
(``python -m kerasbn.results --table diagnostics RUN_DIR ... --into README.md``)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from kerasbn._csv import RUN_TEXT_COLUMNS, read_table
from kerasbn.report import mean_std
from kerasbn.results_tables import dataset_title, finished_config, source_line

__all__ = ["diagnostics_markdown"]


def _training_seconds(run_dir: Path, runs: pd.DataFrame) -> float:
    """Training time of the folder's runs: the sum of their logged epoch times."""
    total = 0.0
    for r in runs.itertuples():
        log = run_dir / "logs" / f"{r.dataset}-{r.variant}-seed{r.seed}.csv"
        if log.exists():
            total += float(read_table(log, text=())["seconds"].sum())
    return total


def _mean_std(values: pd.Series, scale: float = 100.0, digits: int = 2) -> str:
    return mean_std(values, scale, digits, missing="–")  # "–": no BN to measure


def _column(runs: pd.DataFrame, name: str) -> pd.Series:
    # Folders measured before a diagnostic existed have no column: "–", not an error.
    return runs[name] if name in runs else pd.Series(np.nan, index=runs.index)


def diagnostics_markdown(run_dirs: list[str | os.PathLike]) -> str:
    """Per data set and variant (mean ± std over seeds): test accuracy with BN's moving
    averages and with precise BN statistics (augmentation and Dropout off; on),
    expected calibration error raw and after temperature scaling with its temperature,
    NLL, Brier score and the largest variance shift; then per folder what the diagnostics cost
    against the training time, and the command and commit.

    Raises:
        FileNotFoundError: a folder is not a finished comparison.
        KeyError: a folder from before the diagnostics (no ``ece`` column).
    """
    rows, notes = [], []
    for run_dir in map(Path, run_dirs):
        config = finished_config(run_dir)
        runs = read_table(run_dir / "runs.csv", RUN_TEXT_COLUMNS)
        if "ece" not in runs:
            raise KeyError(f"{run_dir} was measured before the diagnostics (no ece column)")
        for variant, group in runs.groupby("variant", sort=False):
            shift = group.get("variance_shift", pd.Series(dtype=float))
            rows.append(
                {
                    "data set": dataset_title(group["dataset"].iloc[0]),
                    "variant": f"`{variant}`",
                    "seeds": len(group),
                    "test acc %": _mean_std(group["test_accuracy"]),
                    "precise-BN test acc %": _mean_std(group["test_accuracy_precise_bn"]),
                    "precise BN, augmentation + Dropout on": _mean_std(
                        _column(group, "test_accuracy_precise_bn_as_trained")
                    ),
                    "ECE %": _mean_std(group["ece"]),
                    "ECE % after T": _mean_std(_column(group, "ece_temperature_scaled")),
                    "T": _mean_std(_column(group, "temperature"), scale=1.0, digits=2),
                    "NLL": _mean_std(group["nll"], scale=1.0, digits=3),
                    "Brier": _mean_std(group["brier"], scale=1.0, digits=3),
                    "variance shift": _mean_std(shift, scale=1.0, digits=3),
                }
            )
        cost = runs.get("diagnostics_seconds", pd.Series(dtype=float)).sum()
        trained = _training_seconds(run_dir, runs)
        share = f"{100 * cost / trained:.1f}% of the {trained / 60:.1f} min of training"
        notes.append(
            f"Measured by {source_line(run_dir, config)}."
            + (f" The diagnostics took {cost:.0f} s, {share}." if cost and trained else "")
        )
    table = pd.DataFrame(rows)
    # Folders measured before a diagnostic existed have no column for it: leave it out
    # rather than show a column of dashes that would read as "no BN to measure".
    newer = ["precise BN, augmentation + Dropout on", "ECE % after T", "T"]
    table = table.drop(columns=[c for c in newer if (table[c] == "–").all()])
    lines = [table.to_markdown(index=False, disable_numparse=True), ""]
    return "\n".join(lines + notes) + "\n"

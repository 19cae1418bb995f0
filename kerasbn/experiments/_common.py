"""Shared pieces of the named experiments: results, output files, small fits."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from kerasbn._io import write_json, write_text
from kerasbn._versions import library_versions
from kerasbn.plots import plot_mean_band, pyplot, save_figure
from kerasbn.report import format_mean_std
from kerasbn.training import compile_classifier

__all__ = [
    "ExperimentResult",
    "fit_per_epoch",
    "mean_std",
    "plot_mean_band",
    "pyplot",
    "save_figure",
    "train_versions",
    "write_outputs",
]


@dataclass
class ExperimentResult:
    """What an experiment produced: a summary table, per-epoch history, figures."""

    name: str
    summary: pd.DataFrame
    history: pd.DataFrame
    figures: list[Path] = field(default_factory=list)
    out_dir: Path | None = None
    notes: str = ""


def mean_std(values, scale: float = 100.0, digits: int = 2) -> str:
    """'mean ± std' of ``values`` (std only with two or more finite values)."""
    arr = np.asarray(values, dtype=float)
    finite = arr[np.isfinite(arr)]
    if finite.size == 0:
        return "n/a"
    std = finite.std(ddof=1) if finite.size > 1 else np.nan
    return format_mean_std(finite.mean(), std, scale, digits)


def fit_per_epoch(
    model: keras.Model,
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    extra: Callable[[keras.Model], dict] | None = None,
) -> pd.DataFrame:
    """Fit and return one row per epoch: loss, accuracy (and val_*), plus ``extra(model)``
    evaluated after each epoch (e.g. training accuracy in inference mode)."""
    rows: list[dict] = []

    class _Collect(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            row = {"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}}
            if extra is not None:
                row.update(extra(self.model))
            rows.append(row)

    model.fit(
        x,
        y,
        batch_size=batch_size,
        epochs=epochs,
        validation_data=validation,
        shuffle=True,
        verbose=0,
        callbacks=[_Collect()],
    )
    return pd.DataFrame(rows)


def train_versions(
    builds: Iterable[tuple[dict, Callable[[], keras.Model]]],
    optimizer: Callable[[], keras.optimizers.Optimizer],
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    seeds: Iterable[int] = (0,),
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    extra: Callable[[keras.Model], dict] | None = None,
) -> pd.DataFrame:
    """Train every (labels, build) version with every seed; one history frame.

    Each run is seeded with ``keras.utils.set_random_seed(seed)`` before its model is
    built, so versions that share a seed start from the same random state. The rows of
    a run carry its ``labels`` (e.g. ``{"version": "BN"}``) and ``seed``.
    """
    histories = []
    for labels, build in builds:
        for seed in seeds:
            keras.utils.set_random_seed(seed)
            model = build()
            compile_classifier(model, optimizer())
            h = fit_per_epoch(
                model,
                x,
                y,
                epochs=epochs,
                batch_size=batch_size,
                validation=validation,
                extra=extra,
            )
            histories.append(h.assign(**labels, seed=seed))
    return pd.concat(histories, ignore_index=True)


def write_outputs(
    result: ExperimentResult, out_dir: str | os.PathLike, config, title: str, table: str
) -> ExperimentResult:
    """Write summary.csv / summary.md / history.csv / config.json into ``out_dir``."""
    out_dir = Path(out_dir)
    write_text(out_dir / "summary.csv", result.summary.to_csv(index=False))
    text = f"## {title}\n\n{table}\n"
    if result.notes:
        text += f"\n{result.notes}\n"
    write_text(out_dir / "summary.md", text)
    if len(result.history):
        write_text(out_dir / "history.csv", result.history.to_csv(index=False))
    write_json(
        out_dir / "config.json",
        {"experiment": result.name, "config": asdict(config), "versions": library_versions()},
    )
    result.out_dir = out_dir
    return result

"""Shared pieces of the named experiments: results, output files, small fits."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from kerasbn._io import save_array, write_text
from kerasbn._signals import raise_if_stopped
from kerasbn.plots import plot_mean_band, pyplot, save_figure
from kerasbn.report import mean_std
from kerasbn.training import StopOnSignal, compile_classifier, default_config

__all__ = [
    "ExperimentResult",
    "constant_sgd_config",
    "first_images",
    "json_unit",
    "fit_per_epoch",
    "mean_std",
    "plot_mean_band",
    "pyplot",
    "save_figure",
    "train_versions",
    "unit_path",
    "with_and_without_bn",
    "whole_training_set",
    "write_outputs",
]

log = logging.getLogger(__name__)


@dataclass
class ExperimentResult:
    """What an experiment produced: a summary table, per-epoch history, figures."""

    name: str
    summary: pd.DataFrame
    history: pd.DataFrame
    figures: list[Path] = field(default_factory=list)
    out_dir: Path | None = None
    notes: str = ""


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
        callbacks=[_Collect(), StopOnSignal()],  # Ctrl-C / SIGTERM within a batch
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
    units: str | os.PathLike | None = None,
    score: tuple[np.ndarray, np.ndarray, str | os.PathLike] | None = None,
) -> pd.DataFrame:
    """Train every (labels, build) version with every seed; one history frame.

    Each run is seeded with ``keras.utils.set_random_seed(seed)`` before its model is
    built, so versions that share a seed start from the same random state. The rows of
    a run carry its ``labels`` (e.g. ``{"version": "BN"}``) and ``seed``. With
    ``units`` (a folder), each finished run is recorded there and read back by a
    resumed experiment instead of being trained again. With ``score`` (images, labels,
    folder), each trained model's per-image correctness on those images is saved as
    ``<folder>/<label>-seed<k>.npy`` (booleans): what the experiment's paired tests
    over seeds and test images read (:func:`kerasbn.experiments._inference.read_correct`).
    """
    histories = []
    for labels, build in builds:
        for seed in seeds:
            raise_if_stopped()
            record = unit_path(units, {**labels, "seed": seed}) if units else None
            if record is not None and record.exists():
                log.info("%s: finished earlier, read back", record.stem)
                histories.append(pd.read_csv(record))
                continue
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
            h = h.assign(**labels, seed=seed)
            if score is not None:
                images, targets, folder = score
                predicted = model.predict(images, batch_size=1024, verbose=0).argmax(axis=-1)
                # Written before the unit's record, so a recorded unit always has it.
                save_array(
                    unit_path(folder, {**labels, "seed": seed}).with_suffix(".npy"),
                    predicted == np.asarray(targets).reshape(-1),
                )
            if record is not None:
                write_text(record, h.to_csv(index=False))  # full float precision
            histories.append(h)
    return pd.concat(histories, ignore_index=True)


def unit_path(folder: str | os.PathLike, labels: dict) -> Path:
    """``<folder>/<label>-<label>-seed<k>.csv``: where one finished unit is recorded."""
    name = "-".join(
        str(value) if key != "seed" else f"seed{value}" for key, value in labels.items()
    )
    safe = "".join(c if c.isalnum() or c in "-_.+" else "_" for c in name)
    return Path(folder) / f"{safe}.csv"


def write_outputs(
    result: ExperimentResult, out_dir: str | os.PathLike, title: str, table: str
) -> ExperimentResult:
    """Write summary.csv / summary.md / history.csv into ``out_dir`` (its config.json
    is written when the run folder is opened, see :func:`kerasbn.experiments.run_experiment`)."""
    out_dir = Path(out_dir)
    write_text(out_dir / "summary.csv", result.summary.to_csv(index=False))
    text = f"## {title}\n\n{table}\n"
    if result.notes:
        text += f"\n{result.notes}\n"
    write_text(out_dir / "summary.md", text)
    if len(result.history):
        write_text(out_dir / "history.csv", result.history.to_csv(index=False))
    result.out_dir = out_dir
    return result


def with_and_without_bn(build: Callable[[bool], keras.Model]) -> list[tuple[dict, Callable]]:
    """The two versions most experiments compare, for :func:`train_versions`:
    ``build(False)`` labelled "no BN" and ``build(True)`` labelled "BN"."""
    return [({"version": v}, partial(build, bn)) for v, bn in (("no BN", False), ("BN", True))]


def whole_training_set(data) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation images together, as the tutorials train on all of them
    (and track the test set)."""
    return np.concatenate([data.x_train, data.x_val]), np.concatenate([data.y_train, data.y_val])


def json_unit(units: str | os.PathLike, labels: dict, compute: Callable[[], object]):
    """The finished unit ``labels`` (e.g. one variant, rate and seed) read back from its
    JSON record under ``units``, or ``compute()`` now and recorded, so that a resumed
    experiment skips what it has done."""
    record = unit_path(units, labels).with_suffix(".json")
    if record.exists():
        log.info("%s: finished earlier, read back", record.stem)
        return json.loads(record.read_text())
    value = compute()
    write_text(record, json.dumps(value, allow_nan=True))
    return value


def constant_sgd_config(dataset: str, **settings):
    """The data set's training recipe with SGD at a constant rate instead (Nesterov
    momentum, no warmup, no weight decay, silent): what the papers' sweeps vary."""
    return default_config(
        dataset,
        **{
            "optimizer": "sgd",
            "lr_schedule": "constant",
            "warmup_epochs": 0,
            "weight_decay": 0.0,
            "verbose": 0,
            **settings,
        },
    )


def first_images(dataset: str, data_dir=None, *, train=None, val=None, test=None):
    """``dataset`` keeping the first ``train`` / ``val`` / ``test`` images of each split
    (``None``: all; a number above a split's size keeps all of it, so a setting made for
    MNIST also runs on the small ``digits``)."""
    from kerasbn.data import load_dataset

    data = load_dataset(dataset, data_dir)

    def keep(count, split):
        return None if count is None else min(count, len(getattr(data, f"x_{split}")))

    return data.limit(keep(train, "train"), val=keep(val, "val"), test=keep(test, "test"))

"""One run of a comparison: train (or resume) a variant with one seed, score it, run
the diagnostics, save its model(s) and write the record that marks it finished
(``runs/<dataset>-<variant>-seed<k>.json``). :mod:`kerasbn.comparison` loops over the
runs and writes the tables."""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from kerasbn._io import save_array, write_json
from kerasbn._versions import command_line, library_versions
from kerasbn.data import Dataset
from kerasbn.diagnostics.activations import ActivationPercentiles
from kerasbn.diagnostics.files import ACTIVATION_IMAGES, PRECISE_BN_SUFFIX
from kerasbn.diagnostics.summary import run_diagnostics
from kerasbn.report import run_row
from kerasbn.runfolder import file_in
from kerasbn.saving import read_sidecar, save_model
from kerasbn.tensorboard import hparams_of, run_folder, tensorboard_callback, write_hparams
from kerasbn.training import (
    TrainConfig,
    class_ids,
    evaluate,
    predict_test_probabilities,
    train,
)
from kerasbn.variants import Variant

__all__ = [
    "Job",
    "check_model_names",
    "finished_record",
    "flip_tta_accuracy",
    "model_metadata",
    "other_owner",
    "train_one",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """What one comparison trains, and where its models go."""

    data: Dataset
    variants: list[Variant]
    config: TrainConfig
    seeds: int
    baseline: str
    models_dir: Path | None
    tensorboard: bool = True
    precise_bn: bool = False  # also save each BN model with precise BN statistics
    activations: bool = False  # record activation percentiles over training
    tuned: dict = field(default_factory=dict)  # variant -> its tuned values
    overwrite_models: bool = False  # may replace a model another comparison saved
    jobs: int = 1  # runs trained at once, in worker processes (kerasbn.comparison_parallel)
    threads: int | None = None  # CPU threads per run (None: TensorFlow's default, all)


def model_metadata(
    data: Dataset,
    variant: Variant,
    config: TrainConfig,
    row: dict,
    out_dir,
    train_seconds,
    module: str = "kerasbn.compare",
):
    """What a saved model's sidecar and card record (``row``: its run's figures; those
    it lacks, such as the test accuracy of a model an experiment scores otherwise, are
    left out; ``module``: the command that trains it)."""
    return {
        "dataset": data.name,
        "variant": variant.to_dict(),
        "seed": config.seed,
        "input_shape": list(data.input_shape),
        "input_dtype": "uint8",
        "class_names": list(data.class_names),
        "preprocessing": "inside the model: uint8 pixels x 1/255",
        "train_config": config.to_dict(),
        "metrics": {
            key: row[key]
            for key in ("test_accuracy", "test_loss", "test_examples", "best_val_accuracy")
            if key in row
        },
        "parameters": int(row["params"]),
        "train_seconds": float(train_seconds),
        "data_source": data.describe(),
        "command": command_line(module),
        "run_folder": str(out_dir),
        "versions": library_versions(),
        "created": _dt.datetime.now().isoformat(timespec="seconds"),
    }


def other_owner(model_path: Path, out_dir: Path) -> str | None:
    """The run folder of another comparison whose model is at ``model_path`` (named by
    its sidecar), or ``None``: no file, a file of this run folder, or one no kerasbn
    record names (no readable sidecar), which saving may move aside safely."""
    if not model_path.exists():
        return None
    try:
        owner = read_sidecar(model_path).get("run_folder")
    except (OSError, ValueError):
        return None
    if not isinstance(owner, str) or not owner:
        return None
    try:
        return None if Path(owner).resolve() == Path(out_dir).resolve() else owner
    except (OSError, ValueError):
        return owner


def check_model_names(paths, out_dir: Path, overwrite: bool) -> None:
    """Refuse, before training, to save over a model another comparison saved: its
    records would then name a file holding this comparison's model.

    Raises:
        ValueError: one of ``paths`` holds another comparison's model and ``overwrite``
            is not set.
    """
    if overwrite:
        return
    for path in paths:
        owner = other_owner(path, out_dir)
        if owner is not None:
            raise ValueError(
                f"{path} holds the model of another comparison ({owner}); saving this one "
                "there would leave that comparison's records naming a model that is not "
                f"its own. Pass another --save-models folder, or --overwrite-models to move "
                f"that model to a name of its own and save this one in its place. Received: "
                f"--save-models {path.parent}"
            )


def _own_model_path(model_path: Path, out_dir: Path, overwrite: bool) -> Path:
    """``model_path``, or a name of this run folder's own when another comparison saved
    a model there while this one trained (the check before training passed)."""
    owner = None if overwrite else other_owner(model_path, out_dir)
    if owner is None:
        return model_path
    stem = f"{model_path.stem}.{Path(out_dir).name}"
    own, k = model_path.with_name(f"{stem}.keras"), 1
    while other_owner(own, out_dir) is not None:
        k += 1
        own = model_path.with_name(f"{stem}-{k}.keras")
    log.warning(
        "%s now holds the model of another comparison (%s), saved while this one trained; "
        "this run's model is saved as %s instead",
        model_path,
        owner,
        own.name,
    )
    return own


def flip_tta_accuracy(model, data, probabilities) -> float:
    """Test accuracy of horizontal-flip test-time augmentation: each image's class from
    the sum of its probabilities and its mirror image's. An extra figure for nets that
    trained with flips; it never replaces the plain test accuracy."""
    mirrored = replace(data, x_test=np.ascontiguousarray(data.x_test[:, :, ::-1]))
    both = probabilities + predict_test_probabilities(model, mirrored)
    return float(np.mean(class_ids(both) == data.y_test[: len(both)]))


def train_one(
    job: Job,
    variant: Variant,
    config: TrainConfig,
    out_dir: Path,
    tag: str,
    model_path,
    callbacks: Sequence = (),
) -> dict:
    """Train (or resume) one run, save its model, and return its record. ``callbacks``:
    extra Keras callbacks (the comparison's progress report)."""
    data = job.data
    backup_dir = out_dir / "backup" / tag
    callbacks = list(callbacks)
    # None where TensorFlow's summary API is missing (a JAX-only install): no logs then.
    folder = run_folder(variant.name, config.seed)
    board = tensorboard_callback(out_dir / "tensorboard" / folder) if job.tensorboard else None
    if board is not None:
        callbacks.append(board)
    activations = f"activations/{tag}.csv" if job.activations else None
    if activations:
        images = data.x_val[:ACTIVATION_IMAGES]
        callbacks.append(ActivationPercentiles(images, out_dir / activations))
    result = train(
        data,
        variant,
        config,
        log_csv=out_dir / "logs" / f"{tag}.csv",
        backup_dir=backup_dir,
        callbacks=callbacks,
    )
    if result.diverged:
        # A diverged net's test score would read as "low accuracy"; it is not one.
        scores = {"test_loss": math.nan, "test_accuracy": math.nan}
        scores["test_examples"] = len(data.x_test)
        log.info("%s: diverged (%s); no model saved", tag, result.diverged_at)
    else:
        scores = evaluate(result.model, data)
        log.info("%s: test accuracy %.2f%%", tag, 100 * scores["test_accuracy"])
    predictions = probabilities = correct = diagnostics = None
    # The net to serve (no augmentation layers), built once where it is saved; the
    # diagnostics use it too, or build it themselves where they need it.
    saving = model_path is not None and not result.diverged
    served = result.inference_model() if saving else None
    probs = None if result.diverged else predict_test_probabilities(result.model, data)
    if probs is not None:
        # Per-image predictions: what a one-seed McNemar comparison of two runs needs;
        # the probabilities are what calibration is measured on, after the fact too.
        predictions = f"predictions/{tag}.npy"
        probabilities = f"probabilities/{tag}.npy"
        # Per-image correctness: all a paired test needs, readable without the data set's
        # labels (a folder copied to a machine without the data still yields verdicts).
        correct = f"correct/{tag}.npy"
        classes = class_ids(probs)
        hits = classes == np.asarray(data.y_test[: len(classes)])
        for name, array in ((predictions, classes), (probabilities, probs), (correct, hits)):
            save_array(out_dir / name, array)
        if "augment_flip" in {layer.name for layer in result.model.layers}:
            scores["test_accuracy_flip_tta"] = flip_tta_accuracy(result.model, data, probs)
            log.info("%s: with flip TTA %.2f%%", tag, 100 * scores["test_accuracy_flip_tta"])
        started = time.perf_counter()
        log.info("%s: diagnostics (calibration, precise BN, variance shift)", tag)
        diagnostics = run_diagnostics(result, data, probs, served)  # calibration, precise BN
        scores.update(diagnostics.scores)
        # Their cost, against the training time (the README states the ratio).
        scores["diagnostics_seconds"] = time.perf_counter() - started
        log.info("%s: diagnostics took %.0f s", tag, scores["diagnostics_seconds"])
    row = run_row(result, scores)
    if job.tensorboard:
        write_hparams(out_dir / "tensorboard", folder, hparams_of(variant, config), row)
    saved = saved_precise = None
    if saving:
        model_path = _own_model_path(Path(model_path), out_dir, job.overwrite_models)
        seconds = result.history["seconds"].sum()
        metadata = model_metadata(data, variant, config, row, out_dir, seconds)
        saved = str(save_model(served, model_path, metadata))
        if job.precise_bn and diagnostics is not None and diagnostics.precise_model is not None:
            # The same net with population BN statistics, scored as such in its card.
            precise_row = {**row, "test_accuracy": row["test_accuracy_precise_bn"]}
            metadata = model_metadata(data, variant, config, precise_row, out_dir, seconds)
            metadata["precise_bn"] = True
            path = model_path.with_name(f"{model_path.stem}{PRECISE_BN_SUFFIX}.keras")
            saved_precise = str(save_model(diagnostics.precise_model, path, metadata))
    record = {
        "row": row,
        "history": result.history.to_dict("records"),
        "model": saved,
        "model_precise_bn": saved_precise,
        "predictions": predictions,
        "probabilities": probabilities,
        "correct": correct,
        "variance_shift": diagnostics.variance_shift if diagnostics else [],
        "activations": activations,
        "resumed_from_epoch": result.resumed_from_epoch,
    }
    # The record marks the run finished; only then is its checkpoint dropped.
    write_json(out_dir / "runs" / f"{tag}.json", record)
    shutil.rmtree(backup_dir, ignore_errors=True)
    return record


def finished_record(path: Path) -> dict | None:
    """A finished run's record, or ``None`` when there is none, or a damaged one (cut
    short, not an object, without its row or history, or naming a per-image array that
    no longer reads: written atomically by kerasbn, so damaged by something else), which
    is then set aside with a warning: the run trains again and, being deterministic,
    ends as it did."""
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        record, why = None, f"{type(exc).__name__}: {exc}"
    else:
        why = _damage(path, record)
    if why is None:
        return record
    aside = path.with_name(f"{path.name}.damaged")
    path.replace(aside)
    log.warning("%s is damaged (%s); moved to %s, and the run trains again", path, why, aside.name)
    return None


def _damage(path: Path, record) -> str | None:
    """What is wrong with ``record``, read from ``path`` (``None``: nothing).

    Raises:
        ValueError: it names a file outside its folder (a hostile record is refused,
            not set aside).
    """
    if not (isinstance(record, dict) and {"row", "history"} <= set(record)):
        return "it is not a run record"
    for key in ("correct", "predictions"):
        name = record.get(key)
        if name:
            # What the verdicts read back; an empty or cut .npy fails here, by name.
            target = file_in(path.parent.parent, name, path)  # outside: refused, not retrained
            try:
                np.load(target, allow_pickle=False)
            except (OSError, ValueError, EOFError) as exc:
                return f"its {name} does not read: {type(exc).__name__}: {exc}"
    return None

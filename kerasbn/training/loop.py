"""Shared train / evaluate for every variant, on CPU or GPU, through ``tf.distribute``.

The model is built and compiled inside ``strategy.scope()`` of the run's placement
(:mod:`kerasbn.distribute`: one device, ``MirroredStrategy`` / ``DataParallel`` over
this machine's devices, or several machines). ``batch_size`` in the config is per
replica; the global batch is ``batch_size * replicas``, and with several replicas the
learning rate is scaled (``lr_scaling``) and ragged last batches are dropped.

A run is reproducible and resumable: the training order of epoch ``e`` is a permutation
drawn from ``(seed, e)`` alone, and the dropout / augmentation random streams restart
from ``(their seed, e)`` at every epoch, so a run resumed from a checkpoint after epoch
``e`` sees exactly what an uninterrupted run sees from epoch ``e + 1`` on.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from kerasbn.architectures import Architecture
from kerasbn.data import Dataset, load_dataset
from kerasbn.models import build_model, dtype_policy, inference_copy
from kerasbn.training.batches import EpochBatches
from kerasbn.training.callbacks import (
    DivergedError,
    EpochLog,
    EpochRandomness,
    EpochTimer,
    LogProgress,
    ResumableBackup,
    StopOnDivergence,
    StopOnSignal,
    blown_up,
)
from kerasbn.training.config import (
    TrainConfig,
    batch_plan,
    compile_classifier,
    default_config,
    make_optimizer,
    use_fused_bn,
)
from kerasbn.training.distribute import current_placement, resolve
from kerasbn.training.precision import on_gpu, resolve_precision
from kerasbn.variants import Variant, get_variant

__all__ = [
    "TrainResult",
    "evaluate",
    "get_strategy",
    "class_ids",
    "predict_test_classes",
    "predict_test_probabilities",
    "set_determinism",
    "train",
]

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """A trained model and what happened while training it."""

    model: keras.Model
    history: pd.DataFrame  # one row per epoch
    dataset: str
    variant: Variant
    config: TrainConfig
    train_examples: int
    replicas: int
    global_batch_size: int
    diverged: bool = False
    architecture: Architecture | None = None  # None: the data set's own
    diverged_at: str | None = None  # where the loss became NaN / Inf / > DIVERGED_LOSS
    resumed_from_epoch: int = 0  # epochs restored from a checkpoint
    learning_rate: float | None = None  # peak rate after scaling for the replicas
    lr_rule: str = ""
    placement: dict | None = None

    @property
    def params(self) -> int:
        return int(self.model.count_params())

    def inference_model(self) -> keras.Model:
        """The trained network without augmentation layers: what gets saved and served."""
        return inference_copy(self.model, self.architecture or self.dataset, self.variant)


def get_strategy(name: str = "auto"):
    """The ``tf.distribute`` strategy for ``name`` on this machine (``None`` off the
    TensorFlow backend); see :func:`kerasbn.distribute.resolve`."""
    return resolve(name).tf_strategy


def set_determinism(enabled: bool) -> None:
    """Bit-identical TensorFlow ops for a given seed (a no-op on other backends)."""
    if keras.backend.backend() != "tensorflow":
        return
    # TensorFlow exports only the switch on; the switch off lives next to it (so a
    # non-deterministic run after a deterministic one in one process is not slowed).
    from tensorflow.python.framework import config as tf_config

    if enabled:
        tf_config.enable_op_determinism()
    else:
        tf_config.disable_op_determinism()


def _as_dataset(data: Dataset | str, data_dir=None) -> Dataset:
    return data if isinstance(data, Dataset) else load_dataset(data, data_dir)


def train(
    data: Dataset | str,
    variant: str | Variant,
    config: TrainConfig | None = None,
    *,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    log_csv: str | Path | None = None,
    backup_dir: str | Path | None = None,
    data_dir: str | Path | None = None,
    architecture: Architecture | None = None,
) -> TrainResult:
    """Build, compile (inside the strategy scope) and fit one variant.

    Args:
        data: a :class:`~kerasbn.data.Dataset` or a data set name (then loaded with
            :func:`~kerasbn.data.load_dataset` from ``data_dir``).
        variant: a registered variant name or a :class:`~kerasbn.variants.Variant`.
        config: training settings; ``None`` uses :func:`default_config` of the data set.
        callbacks: extra Keras callbacks.
        log_csv: the per-epoch history CSV, rewritten after every epoch.
        backup_dir: checkpoint folder (:class:`ResumableBackup`, after every epoch). If it
            holds a checkpoint, training resumes from it (and continues ``log_csv``); the
            result equals an uninterrupted run's. The caller removes it when done.
        architecture: a custom :class:`~kerasbn.architectures.Architecture` (default: the
            data set's own).

    Returns:
        A :class:`TrainResult` with the fitted model and a per-epoch history frame
        (epoch, loss, accuracy, val_loss, val_accuracy, seconds, train_seconds). A run
        whose loss became NaN, Inf or > 1e6 stops there and comes back with
        ``diverged=True``.
    """
    data = _as_dataset(data, data_dir)
    variant = get_variant(variant)
    config = config or default_config(data.name)
    # First: multi-worker set-up must happen before any other backend work.
    placement = resolve(config.strategy)
    set_determinism(config.deterministic)
    keras.utils.set_random_seed(config.seed)

    plan = batch_plan(config, placement.replicas)
    shard = (placement.process_index, placement.processes)
    batches = EpochBatches(
        data.x_train,
        data.y_train,
        plan.global_batch,
        config.seed,
        drop_remainder=plan.drop_remainder,
        shard=shard,
    )
    # Validation covers every image unless JAX needs whole, evenly split batches.
    val_batches = EpochBatches(
        data.x_val,
        data.y_val,
        plan.global_batch,
        config.seed,
        shuffle=False,
        drop_remainder=placement.batch_unit > 1,
        shard=shard,
    )
    precision = resolve_precision(config.precision, gpu=on_gpu()).precision
    with placement.scope(), dtype_policy(precision):
        model = build_model(
            architecture or data.name,
            variant,
            augment=config.augment,
            seed=config.seed,
            fused_bn=use_fused_bn(config),
        )
        optimizer = make_optimizer(config, len(batches), plan.learning_rate)
        compile_classifier(model, optimizer, config.jit_compile, config.label_smoothing)

    backup = ResumableBackup(backup_dir) if backup_dir is not None else None
    done = backup.completed_epochs() if backup is not None else 0
    earlier = EpochLog.read(log_csv, done) if done and log_csv else []
    if done and log_csv and [int(row["epoch"]) for row in earlier] != list(range(1, done + 1)):
        # The log must hold every epoch the checkpoint holds; one that lost rows would
        # publish a history with holes. Start over: a deterministic run ends the same.
        backup.discard(f"{log_csv} holds {len(earlier)} of the {done} epochs it should")
        done, earlier = 0, []
    timer = EpochTimer()
    epoch_log = EpochLog(log_csv, timer, earlier)
    # Order matters at epoch end: the log is written before the checkpoint, so after a
    # kill it always covers the epochs the checkpoint holds.
    all_callbacks = [
        EpochRandomness(batches),
        timer,
        epoch_log,
        StopOnDivergence(),
        StopOnSignal(),
        *callbacks,
    ]
    if backup is not None:
        all_callbacks.append(backup)
    diverged_at: DivergedError | None = None
    try:
        feed = batches.pipeline(done, config.epochs)
        model.fit(
            feed,
            steps_per_epoch=None if feed is batches else len(batches),
            epochs=config.epochs,
            initial_epoch=done,
            # Not Keras' own array pipeline: that is a parallel tf.data map, which op
            # determinism rewrites with a logged C++ error on every run.
            validation_data=val_batches.pipeline(),
            shuffle=False,  # EpochBatches orders each epoch itself
            callbacks=all_callbacks,
            verbose=config.verbose,
        )
    except DivergedError as exc:
        diverged_at = exc
        log.info("%s seed %d diverged: %s", variant.name, config.seed, exc)
    history = epoch_log.frame()
    # Diverged only where a divergence was seen (a NaN / Inf / huge loss), never from a
    # short history: a callback may stop a run early for other reasons.
    diverged = diverged_at is not None or bool(blown_up(history["loss"]).any())
    return TrainResult(
        model=model,
        history=history,
        dataset=data.name,
        architecture=architecture,
        variant=variant,
        config=config,
        train_examples=batches.examples,
        replicas=plan.replicas,
        global_batch_size=plan.global_batch,
        learning_rate=plan.learning_rate,
        lr_rule=plan.lr_rule,
        placement=placement.describe(),
        diverged=bool(diverged),
        diverged_at=str(diverged_at) if diverged_at is not None else None,
        resumed_from_epoch=done,
    )


def _test_batches(data: Dataset, batch_size: int) -> EpochBatches:
    placement = current_placement()
    unit = placement.batch_unit
    batch_size = min(batch_size, len(data.x_test))
    batch_size = max(unit, batch_size - batch_size % unit)
    return EpochBatches(
        data.x_test,
        data.y_test,
        batch_size,
        seed=0,
        shuffle=False,
        drop_remainder=unit > 1,
        shard=(placement.process_index, placement.processes),
    )


def evaluate(model: keras.Model, data: Dataset, batch_size: int = 512) -> dict[str, float]:
    """Test-set loss and accuracy, and how many test images they cover (the test set is
    used only here). In a multi-worker run every process evaluates its equal share; where
    batches must split evenly over devices (JAX), a ragged rest of the test set is left
    out and ``test_examples`` says how many were used."""
    batches = _test_batches(data, batch_size)
    progress = LogProgress(f"evaluating {batches.examples} test images", len(batches))
    scores = model.evaluate(
        batches.pipeline(), verbose=0, return_dict=True, callbacks=[StopOnSignal(), progress]
    )
    return {
        "test_loss": float(scores["loss"]),
        "test_accuracy": float(scores["accuracy"]),
        "test_examples": batches.examples,
    }


def predict_test_probabilities(model: keras.Model, data: Dataset, batch_size: int = 512):
    """Class probabilities (float32) of each test image :func:`evaluate` scores, in
    test-set order (what calibration is measured on); ``None`` in a multi-worker run,
    where each process sees only its share."""
    if current_placement().processes > 1:
        return None
    batches = _test_batches(data, batch_size)
    progress = LogProgress(f"predicting {batches.examples} test images", len(batches))
    probabilities = model.predict(
        batches.pipeline(), verbose=0, callbacks=[StopOnSignal(), progress]
    )
    return np.asarray(probabilities, dtype=np.float32)


def predict_test_classes(model: keras.Model, data: Dataset, batch_size: int = 512):
    """The predicted class of each test image :func:`evaluate` scores, in test-set order
    (uint8 / int16 ids), for paired per-image comparisons of two models; ``None`` in a
    multi-worker run."""
    probabilities = predict_test_probabilities(model, data, batch_size)
    return None if probabilities is None else class_ids(probabilities)


def class_ids(probabilities: np.ndarray) -> np.ndarray:
    """The most probable class per row, as compact uint8 / int16 ids."""
    dtype = np.uint8 if probabilities.shape[-1] <= 256 else np.int16
    return np.argmax(probabilities, axis=-1).astype(dtype)

"""Shared train / evaluate for every variant, on CPU or GPU, through ``tf.distribute``.

The model is built and compiled inside ``strategy.scope()``: ``MirroredStrategy`` when
several GPUs are visible, the default strategy otherwise. ``batch_size`` in the config
is per replica; the global batch is ``batch_size * replicas``.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from kerasbn.architectures import Architecture
from kerasbn.data import Dataset, get_dataset_info, load_dataset
from kerasbn.models import build_model, inference_copy
from kerasbn.variants import Variant, get_variant

__all__ = [
    "EPOCH_COLUMNS",
    "TrainConfig",
    "TrainResult",
    "default_config",
    "evaluate",
    "get_strategy",
    "train",
]


# Columns of TrainResult.history, one row per epoch.
EPOCH_COLUMNS = [
    "epoch",
    "loss",
    "accuracy",
    "val_loss",
    "val_accuracy",
    "seconds",
    "train_seconds",
]


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run, besides the data and the variant.

    Tests shrink it with ``dataclasses.replace(default_config("mnist"), epochs=1)``.

    Attributes:
        epochs: passes over the training set.
        batch_size: examples per replica per step (global batch = this x replicas).
        optimizer: ``"adam"`` or ``"sgd"`` (SGD uses Nesterov momentum).
        learning_rate: peak learning rate.
        lr_schedule: ``"cosine"`` (decay to 1% over the run) or ``"constant"``.
        warmup_epochs: with ``"cosine"``, a linear warmup from 10% of the peak learning
            rate over this many epochs first (lets BN nets start at a high rate); shorter
            runs warm up for at most ``epochs - 1`` epochs.
        momentum: SGD momentum (ignored by Adam).
        augment: pad-and-crop + horizontal flip; ``None`` = the data set's default.
        seed: seed for weights, shuffling, dropout and augmentation.
        target_val_accuracy: the summary reports the first epoch reaching it.
        verbose: Keras progress output (0 silent, 1 progress bar, 2 one line per epoch).
        jit_compile: passed to ``model.compile`` (``"auto"``: Keras decides per device;
            XLA on CPU was measured slower for these nets).
    """

    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    lr_schedule: str = "cosine"
    warmup_epochs: int = 0
    momentum: float = 0.9
    augment: bool | None = None
    seed: int = 0
    target_val_accuracy: float = 0.99
    verbose: int = 1
    jit_compile: bool | str = "auto"

    def __post_init__(self) -> None:
        if not isinstance(self.epochs, int) or self.epochs <= 0:
            raise ValueError(f"epochs must be a positive integer. Received: {self.epochs!r}")
        if not isinstance(self.batch_size, int) or self.batch_size <= 0:
            raise ValueError(
                f"batch_size must be a positive integer. Received: {self.batch_size!r}"
            )
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive. Received: {self.learning_rate!r}")
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(
                f"Unknown optimizer. Valid optimizers are: adam, sgd. Received: {self.optimizer!r}"
            )
        if not isinstance(self.warmup_epochs, int) or self.warmup_epochs < 0:
            raise ValueError(
                f"warmup_epochs must be a whole number >= 0. Received: {self.warmup_epochs!r}"
            )
        if self.lr_schedule not in ("cosine", "constant"):
            raise ValueError(
                "Unknown lr_schedule. Valid schedules are: cosine, constant. "
                f"Received: {self.lr_schedule!r}"
            )

    def to_dict(self) -> dict:
        return asdict(self)


# Per-data-set defaults, chosen to reach the README's accuracies on 2 CPU cores.
_DEFAULTS: dict[str, dict] = {
    "mnist": dict(epochs=10, batch_size=128, learning_rate=1e-3, target_val_accuracy=0.99),
    "fashion_mnist": dict(epochs=15, batch_size=128, learning_rate=1e-3, target_val_accuracy=0.9),
    # A 15-epoch budget with augmentation under-fitted at Adam 1e-3 (75% val at epoch 11);
    # BN tolerates a higher peak rate after a short warmup.
    "cifar10": dict(
        epochs=15, batch_size=128, learning_rate=3e-3, warmup_epochs=1, target_val_accuracy=0.75
    ),
    "digits": dict(epochs=30, batch_size=32, learning_rate=3e-3, target_val_accuracy=0.95),
}


def default_config(dataset: str, **overrides) -> TrainConfig:
    """The default :class:`TrainConfig` for ``dataset``, with ``overrides`` applied."""
    name = get_dataset_info(dataset).name
    return replace(TrainConfig(**_DEFAULTS[name]), **overrides)


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

    @property
    def params(self) -> int:
        return int(self.model.count_params())

    def inference_model(self) -> keras.Model:
        """The trained network without augmentation layers: what gets saved and served."""
        return inference_copy(self.model, self.architecture or self.dataset, self.variant)


def get_strategy():
    """The ``tf.distribute`` strategy for this machine (``None`` off the TF backend).

    ``MirroredStrategy`` over the visible GPUs when there are several, else the default
    strategy (one device, no overhead).
    """
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def _strategy_scope(strategy):
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


def _learning_rate(config: TrainConfig, steps_per_epoch: int):
    if config.lr_schedule == "constant":
        return config.learning_rate
    # A quick look (--epochs 1) must still decay: warm up for at most epochs - 1.
    warmup_steps = steps_per_epoch * min(config.warmup_epochs, config.epochs - 1)
    decay_steps = max(1, steps_per_epoch * config.epochs - warmup_steps)
    if not warmup_steps:
        return keras.optimizers.schedules.CosineDecay(
            config.learning_rate, decay_steps=decay_steps, alpha=0.01
        )
    return keras.optimizers.schedules.CosineDecay(
        config.learning_rate / 10,
        decay_steps=decay_steps,
        alpha=0.01,
        warmup_target=config.learning_rate,
        warmup_steps=warmup_steps,
    )


def _optimizer(config: TrainConfig, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    lr = _learning_rate(config, steps_per_epoch)
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(lr, momentum=config.momentum, nesterov=True)
    return keras.optimizers.Adam(lr)


class EpochTimer(keras.callbacks.Callback):
    """Wall time per epoch, and the part of it spent on training steps alone.

    Validation runs between the last training step and ``on_epoch_end``; splitting at
    ``on_test_begin`` gives training throughput that validation does not dilute.
    """

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []
        self.train_seconds: list[float] = []
        self._start = 0.0
        self._train_end: float | None = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()
        self._train_end = None

    def on_test_begin(self, logs=None):
        if self._train_end is None:
            self._train_end = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        end = time.perf_counter()
        self.seconds.append(end - self._start)
        self.train_seconds.append((self._train_end or end) - self._start)


def _as_dataset(data: Dataset | str, data_dir=None) -> Dataset:
    return data if isinstance(data, Dataset) else load_dataset(data, data_dir)


def compile_model(model: keras.Model, config: TrainConfig, steps_per_epoch: int) -> None:
    model.compile(
        optimizer=_optimizer(config, steps_per_epoch),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=config.jit_compile,
    )


def train(
    data: Dataset | str,
    variant: str | Variant,
    config: TrainConfig | None = None,
    *,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    log_csv: str | Path | None = None,
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
        log_csv: where Keras' ``CSVLogger`` writes the per-epoch log while training.
        architecture: a custom :class:`~kerasbn.architectures.Architecture` (default: the
            data set's own).

    Returns:
        A :class:`TrainResult` with the fitted model and a per-epoch history frame
        (epoch, loss, accuracy, val_loss, val_accuracy, seconds, train_seconds).
    """
    data = _as_dataset(data, data_dir)
    variant = get_variant(variant)
    config = config or default_config(data.name)
    keras.utils.set_random_seed(config.seed)

    strategy = get_strategy()
    replicas = strategy.num_replicas_in_sync if strategy is not None else 1
    global_batch = config.batch_size * replicas
    steps_per_epoch = math.ceil(len(data.x_train) / global_batch)
    with _strategy_scope(strategy):
        model = build_model(
            architecture or data.name, variant, augment=config.augment, seed=config.seed
        )
        compile_model(model, config, steps_per_epoch)

    timer = EpochTimer()
    all_callbacks = [timer, keras.callbacks.TerminateOnNaN(), *callbacks]
    if log_csv is not None:
        Path(log_csv).parent.mkdir(parents=True, exist_ok=True)
        all_callbacks.append(keras.callbacks.CSVLogger(str(log_csv)))
    fit = model.fit(
        data.x_train,
        data.y_train,
        batch_size=global_batch,
        epochs=config.epochs,
        validation_data=(data.x_val, data.y_val),
        shuffle=True,
        callbacks=all_callbacks,
        verbose=config.verbose,
    )
    epochs_run = len(timer.seconds)
    logs = {
        "epoch": list(range(1, epochs_run + 1)),
        **fit.history,
        "seconds": timer.seconds,
        "train_seconds": timer.train_seconds,
    }
    history = pd.DataFrame(
        {col: list(logs.get(col, [np.nan] * epochs_run))[:epochs_run] for col in EPOCH_COLUMNS}
    )
    diverged = epochs_run < config.epochs or not np.all(np.isfinite(history["loss"]))
    return TrainResult(
        model=model,
        history=history,
        dataset=data.name,
        architecture=architecture,
        variant=variant,
        config=config,
        train_examples=len(data.x_train),
        replicas=replicas,
        global_batch_size=global_batch,
        diverged=bool(diverged),
    )


def evaluate(model: keras.Model, data: Dataset, batch_size: int = 512) -> dict[str, float]:
    """Test-set loss and accuracy, and how many test images they cover (the test set is
    used only here)."""
    scores = model.evaluate(
        data.x_test, data.y_test, batch_size=batch_size, verbose=0, return_dict=True
    )
    return {
        "test_loss": float(scores["loss"]),
        "test_accuracy": float(scores["accuracy"]),
        "test_examples": len(data.x_test),
    }

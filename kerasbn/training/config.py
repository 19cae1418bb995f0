"""Training settings: :class:`TrainConfig`, per-data-set defaults, and what they imply
(learning-rate schedule and scaling, optimizer, batch sizes over replicas)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import keras

from kerasbn.presets import get_preset
from kerasbn.registry import check_choice
from kerasbn.training.options import (
    LR_SCALING_RULES,
    LR_SCHEDULES,
    OPTIMIZERS,
    PRECISIONS,
    STRATEGIES,
)
from kerasbn.training.precision import PRECISION_CHOICES

__all__ = [
    "LR_SCALING_RULES",
    "LR_SCHEDULES",
    "OPTIMIZERS",
    "PRECISIONS",
    "BatchPlan",
    "SmoothedSparseCrossentropy",
    "TrainConfig",
    "batch_plan",
    "compile_classifier",
    "default_config",
    "learning_rate_schedule",
    "make_optimizer",
    "scaled_learning_rate",
    "use_fused_bn",
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
        weight_decay: decoupled weight decay (Keras optimizers' ``weight_decay``: each
            step shrinks every weight by ``weight_decay x learning rate``; with Adam this
            is AdamW). SGD's classic coupled L2 of ``c`` at momentum 0.9 corresponds to
            about ``10 c`` here. 0 turns it off.
        label_smoothing: train towards ``1 - s + s / K`` for the true class and ``s / K``
            for the other K - 1 (Szegedy et al. 2016); 0 is plain cross-entropy. The
            reported losses (training, validation, test) are then the smoothed loss too,
            so ``val loss - min`` compares only runs with the same setting.
        augment: pad-and-crop + horizontal flip; ``None`` = the data set's default.
        seed: seed for weights, shuffling, dropout and augmentation.
        target_val_accuracy: the summary reports the first epoch reaching it.
        verbose: Keras progress output (0 silent, 1 progress bar, 2 one line per epoch).
        jit_compile: passed to ``model.compile`` (``"auto"``: Keras decides per device;
            XLA on CPU was measured slower for these nets).
        deterministic: on the TensorFlow backend, enable op determinism so the same seed
            gives bit-identical runs (also across a resume).
        strategy: ``auto``, ``default``, ``mirrored`` or ``multiworker`` (see
            :mod:`kerasbn.distribute`).
        lr_scaling: how the learning rate grows with the number of replicas R:
            ``linear`` (x R), ``sqrt`` (x sqrt(R)), ``none``, or ``auto`` (sqrt for Adam,
            linear for SGD). With one replica it changes nothing.
        precision: ``float32``, or a mixed policy for GPUs: ``mixed_bfloat16`` (Ampere
            and newer) or ``mixed_float16`` (older GPUs; Keras adds loss scaling). CPUs
            without 16-bit units only get slower with it. Saved models are float32.
            ``auto``: chosen when training starts by
            :func:`~kerasbn.training.precision.resolve_precision` (bfloat16 on a GPU;
            float32 on CPUs for now).
        fused_bn: train BN with TensorFlow's fused kernel
            (:class:`~kerasbn.layers.FusedBatchNormalization`: same variables, same
            update, faster); ``"auto"`` fuses on the TensorFlow backend. Saved models
            hold Keras' plain BN either way.
    """

    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    lr_schedule: str = "cosine"
    warmup_epochs: int = 0
    momentum: float = 0.9
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    augment: bool | None = None
    seed: int = 0
    target_val_accuracy: float = 0.99
    verbose: int = 1
    jit_compile: bool | str = "auto"
    deterministic: bool = True
    strategy: str = "auto"
    lr_scaling: str = "auto"
    precision: str = "float32"
    fused_bn: bool | str = "auto"

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer. Received: {value!r}")
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            raise ValueError(
                f"learning_rate must be a positive, finite number. Received: {self.learning_rate!r}"
            )
        if not (0 <= self.weight_decay < 1):
            raise ValueError(f"weight_decay must be in [0, 1). Received: {self.weight_decay!r}")
        if not (0 <= self.label_smoothing < 1):
            raise ValueError(
                f"label_smoothing must be in [0, 1). Received: {self.label_smoothing!r}"
            )
        for name in ("warmup_epochs", "seed"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a whole number >= 0. Received: {value!r}")
        check_choice(self.optimizer, OPTIMIZERS, "optimizer")
        check_choice(self.strategy, STRATEGIES, "strategy", "strategies")
        check_choice(self.lr_scaling, LR_SCALING_RULES, "lr_scaling", "rules")
        check_choice(self.precision, PRECISION_CHOICES, "precision")
        check_choice(self.lr_schedule, LR_SCHEDULES, "lr_schedule", "schedules")
        if self.fused_bn not in ("auto", True, False):
            raise ValueError(f"fused_bn must be 'auto', True or False. Received: {self.fused_bn!r}")

    def to_dict(self) -> dict:
        return asdict(self)


def default_config(dataset: str, **overrides) -> TrainConfig:
    """The default :class:`TrainConfig` for ``dataset`` (its row in
    :mod:`kerasbn.presets`), with ``overrides`` applied."""
    return replace(TrainConfig(**get_preset(dataset).training), **overrides)


def scaled_learning_rate(config: TrainConfig, replicas: int) -> tuple[float, str]:
    """The learning rate for ``replicas`` data-parallel replicas, and the rule in words.

    The per-replica batch is the user's, so the global batch grows with the replicas;
    the rate grows with it (linear for SGD after Goyal et al. 2017; square root for Adam,
    whose update size does not grow with the batch the way SGD's does).
    """
    rule = config.lr_scaling
    if rule == "auto":
        rule = "sqrt" if config.optimizer == "adam" else "linear"
    factor = {"none": 1.0, "linear": float(replicas), "sqrt": math.sqrt(replicas)}[rule]
    lr = config.learning_rate * factor
    text = f"{rule} rule: {config.learning_rate:g} x {factor:g} ({replicas} replicas) = {lr:g}"
    return lr, text


@dataclass(frozen=True)
class BatchPlan:
    """What ``replicas`` data-parallel replicas do to a config's batch and learning rate."""

    replicas: int
    per_replica_batch: int
    global_batch: int  # per-replica batch x replicas
    learning_rate: float  # peak rate after scaling
    lr_rule: str  # the scaling rule, in words
    drop_remainder: bool  # with several replicas, ragged last batches are dropped


def batch_plan(config: TrainConfig, replicas: int) -> BatchPlan:
    """The one place the global batch, the scaled learning rate and the ragged-batch rule
    are worked out (training and the comparison's ``config.json`` both read it)."""
    learning_rate, rule = scaled_learning_rate(config, replicas)
    return BatchPlan(
        replicas=replicas,
        per_replica_batch=config.batch_size,
        global_batch=config.batch_size * replicas,
        learning_rate=learning_rate,
        lr_rule=rule,
        # BN statistics of a tiny per-replica remainder are a known failure.
        drop_remainder=replicas > 1,
    )


def learning_rate_schedule(config: TrainConfig, steps_per_epoch: int, peak: float | None = None):
    """The config's learning rate: a constant, or a cosine decay to 1% (with a linear warmup
    from 10% of the peak when ``warmup_epochs`` is set); ``peak`` overrides the rate."""
    peak = config.learning_rate if peak is None else peak
    if config.lr_schedule == "constant":
        return peak
    # A quick look (--epochs 1) must still decay: warm up for at most epochs - 1.
    warmup_steps = steps_per_epoch * min(config.warmup_epochs, config.epochs - 1)
    decay_steps = max(1, steps_per_epoch * config.epochs - warmup_steps)
    if not warmup_steps:
        return keras.optimizers.schedules.CosineDecay(peak, decay_steps=decay_steps, alpha=0.01)
    return keras.optimizers.schedules.CosineDecay(
        peak / 10,
        decay_steps=decay_steps,
        alpha=0.01,
        warmup_target=peak,
        warmup_steps=warmup_steps,
    )


def make_optimizer(
    config: TrainConfig, steps_per_epoch: int, peak: float | None = None
) -> keras.optimizers.Optimizer:
    lr = learning_rate_schedule(config, steps_per_epoch, peak)
    decay = config.weight_decay or None  # None: Keras skips the decay step entirely
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(lr, momentum=config.momentum, nesterov=True, weight_decay=decay)
    return keras.optimizers.Adam(lr, weight_decay=decay)


# Registered: Keras' clone_model re-creates a compiled model's loss from its config
# (precise BN with augmentation on clones the training net).
@keras.saving.register_keras_serializable(package="kerasbn")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Cross-entropy of integer labels with label smoothing (Keras' sparse loss has none).

    The labels are one-hot encoded to the width of the predictions and handed to Keras'
    ``categorical_crossentropy``, which does the smoothing.
    """

    def __init__(
        self,
        label_smoothing: float,
        name: str = "smoothed_sparse_categorical_crossentropy",
        **kwargs,
    ) -> None:
        super().__init__(name=name, **kwargs)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        labels = keras.ops.reshape(keras.ops.cast(y_true, "int32"), (-1,))
        one_hot = keras.ops.one_hot(labels, keras.ops.shape(y_pred)[-1], dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(
            one_hot, y_pred, label_smoothing=self.label_smoothing
        )

    def get_config(self) -> dict:
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


def compile_classifier(
    model: keras.Model,
    optimizer,
    jit_compile: bool | str = "auto",
    label_smoothing: float = 0.0,
) -> None:
    """Compile for integer labels: sparse cross-entropy (smoothed when
    ``label_smoothing`` > 0) and accuracy (every kerasbn net)."""
    # Without smoothing Keras' own sparse loss: the numbers of earlier runs re-derive.
    loss = (
        SmoothedSparseCrossentropy(label_smoothing)
        if label_smoothing
        else "sparse_categorical_crossentropy"
    )
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"], jit_compile=jit_compile)


def use_fused_bn(config: TrainConfig) -> bool:
    """Whether training builds BN on TensorFlow's fused kernel."""
    # The fused kernel is TensorFlow's; JAX's XLA fuses BN by itself.
    if config.fused_bn == "auto":
        return keras.backend.backend() == "tensorflow"
    return bool(config.fused_bn)

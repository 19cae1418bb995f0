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

import json
import math
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from kerasbn._io import atomic_path, write_json, write_text
from kerasbn.architectures import Architecture
from kerasbn.data import Dataset, get_dataset_info, load_dataset
from kerasbn.distribute import STRATEGIES, current_placement, resolve
from kerasbn.models import build_model, dtype_policy, inference_copy
from kerasbn.variants import Variant, get_variant

__all__ = [
    "EPOCH_COLUMNS",
    "DivergedError",
    "EpochLog",
    "ResumableBackup",
    "EpochBatches",
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


LR_SCALING_RULES = ("auto", "none", "linear", "sqrt")
# Keras dtype policies: mixed ones compute in 16 bits with float32 weights; Keras' BN
# upcasts to float32 for its statistics, and the softmax head stays float32.
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


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
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a whole number >= 0. Received: {self.seed!r}")
        if self.strategy not in STRATEGIES:
            raise ValueError(
                f"Unknown strategy. Valid strategies are: {', '.join(STRATEGIES)}. "
                f"Received: {self.strategy!r}"
            )
        if self.lr_scaling not in LR_SCALING_RULES:
            raise ValueError(
                f"Unknown lr_scaling. Valid rules are: {', '.join(LR_SCALING_RULES)}. "
                f"Received: {self.lr_scaling!r}"
            )
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"Unknown precision. Valid precisions are: {', '.join(PRECISIONS)}. "
                f"Received: {self.precision!r}"
            )
        if self.fused_bn not in ("auto", True, False):
            raise ValueError(f"fused_bn must be 'auto', True or False. Received: {self.fused_bn!r}")
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


def _learning_rate(config: TrainConfig, steps_per_epoch: int, peak: float | None = None):
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


def _optimizer(
    config: TrainConfig, steps_per_epoch: int, peak: float | None = None
) -> keras.optimizers.Optimizer:
    lr = _learning_rate(config, steps_per_epoch, peak)
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

    def _finished(self) -> float:
        # JAX dispatches steps asynchronously: the loop can reach validation while the
        # device still works through the queued steps. Reading one weight back waits for
        # the last step (all of a step's outputs come from one computation).
        keras.ops.convert_to_numpy(self.model.trainable_variables[-1])
        return time.perf_counter()

    def on_test_begin(self, logs=None):
        if self._train_end is None:
            self._train_end = self._finished()

    def on_epoch_end(self, epoch, logs=None):
        end = self._finished()
        self.seconds.append(end - self._start)
        self.train_seconds.append((self._train_end or end) - self._start)


# ----------------------------------------------------------------- resumable training


class EpochBatches(keras.utils.PyDataset):
    """Batches of uint8 arrays whose order in epoch ``e`` depends only on ``(seed, e)``.

    Keras' own ``shuffle=True`` draws from the backend's global random state, which a
    restarted process cannot reproduce; this permutation can. Images stay uint8 (the
    model rescales), so a batch copies ``batch_size`` images, never the whole set.
    """

    def __init__(
        self,
        x,
        y,
        batch_size: int,
        seed: int,
        shuffle: bool = True,
        drop_remainder: bool = False,
        shard: tuple[int, int] = (0, 1),
    ) -> None:
        """``batch_size`` is the global batch. ``drop_remainder`` drops a ragged last
        batch (with several replicas, BN statistics of a tiny per-replica remainder are a
        known failure). ``shard=(i, n)``: this process feeds the i-th of n equal slices
        of every global batch (multi-worker runs)."""
        super().__init__()
        index, count = shard
        if not 0 <= index < count or batch_size % count:
            raise ValueError(
                f"shard {shard} does not split a global batch of {batch_size} evenly. "
                f"Received: shard={shard}"
            )
        if len(x) != len(y) or len(x) == 0:
            raise ValueError(
                f"x and y must hold the same, non-zero number of examples. "
                f"Received: {len(x)} and {len(y)}"
            )
        self.x, self.y = x, y
        self.batch_size, self.seed, self.shuffle = batch_size, seed, shuffle
        self.drop_remainder, self.shard = drop_remainder or count > 1, shard
        if self.drop_remainder and len(x) < batch_size:
            raise ValueError(
                f"{len(x)} examples are fewer than one global batch of {batch_size}; "
                f"use a smaller --batch-size or fewer replicas. Received: {len(x)} examples"
            )
        self.epoch = 0
        self._cache: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        if self.drop_remainder:
            return len(self.x) // self.batch_size
        return math.ceil(len(self.x) / self.batch_size)

    @property
    def examples(self) -> int:
        """How many examples one epoch covers (over all processes)."""
        return len(self) * self.batch_size if self.drop_remainder else len(self.x)

    def order(self, epoch: int) -> np.ndarray:
        """The example order of ``epoch`` (0-based)."""
        if not self.shuffle:
            return np.arange(len(self.x))
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.x))

    def pipeline(self, first_epoch: int = 0, epochs: int = 1):
        """What ``fit`` and ``evaluate`` should read: the same batches in the same order,
        for epochs ``first_epoch`` to ``epochs - 1`` (0-based).

        On TensorFlow that is a ``tf.data`` pipeline that gathers each batch from the
        uint8 arrays in C++ and prefetches it while the previous step runs (measured on 2
        CPU cores: about 1.85x the training throughput of feeding this ``PyDataset``,
        whose Python batch assembly competes with TensorFlow's threads for the cores);
        ``fit`` then needs ``steps_per_epoch=len(self)`` so its iterator runs on across
        epochs. Elsewhere (JAX, or sharded multi-worker feeding) it is this object.
        """
        if keras.backend.backend() != "tensorflow" or self.shard[1] > 1:
            return self
        import tensorflow as tf

        x, y = tf.constant(self.x), tf.constant(self.y)
        size, drop, n = self.batch_size, self.drop_remainder, len(self.x)

        def order(epoch):  # the permutation of numpy's generator, once per epoch
            return self.order(int(epoch)).astype(np.int32)

        def epoch_batches(epoch):
            idx = tf.numpy_function(order, [epoch], tf.int32, stateful=False)
            idx = tf.ensure_shape(idx, [n])
            return tf.data.Dataset.from_tensor_slices(idx).batch(size, drop_remainder=drop)

        return (
            tf.data.Dataset.range(first_epoch, epochs)
            .flat_map(epoch_batches)
            .map(lambda idx: (tf.gather(x, idx), tf.gather(y, idx)))
            # flat_map hides the length; Keras needs it to end evaluation cleanly.
            .apply(tf.data.experimental.assert_cardinality(len(self) * (epochs - first_epoch)))
            .prefetch(tf.data.AUTOTUNE)
        )

    def __getitem__(self, index: int):
        cache = self._cache  # one read: a prefetch thread may swap it meanwhile
        if cache is None or cache[0] != self.epoch:
            cache = (self.epoch, self.order(self.epoch))
            self._cache = cache
        idx = cache[1][index * self.batch_size : (index + 1) * self.batch_size]
        part, parts = self.shard
        if parts > 1:
            size = len(idx) // parts
            idx = idx[part * size : (part + 1) * size]
        return self.x[idx], self.y[idx]


def _seed_states(model: keras.Model) -> list:
    return [v for v in model.variables if v.path.endswith("seed_generator_state")]


class EpochRandomness(keras.callbacks.Callback):
    """At the start of epoch ``e``: the batch order of ``e``, and every dropout and
    augmentation random stream restarted at ``(its seed, e * STRIDE)``.

    Keras does not store these stream counters in a checkpoint, so without this a resumed
    run would replay the dropout masks of epoch 1.
    """

    STRIDE = 2**20  # random draws per layer per epoch before two epochs' streams overlap

    def __init__(self, batches: EpochBatches) -> None:
        super().__init__()
        self.batches = batches

    def on_epoch_begin(self, epoch, logs=None):
        self.batches.epoch = epoch
        for state in _seed_states(self.model):
            seed = int(keras.ops.convert_to_numpy(state.value)[0])
            state.assign(np.array([seed, epoch * self.STRIDE], dtype=state.dtype))


class EpochLog(keras.callbacks.Callback):
    """The run's per-epoch history, rewritten whole (atomically) after every epoch.

    ``CSVLogger`` appends lines in place: a kill can leave a torn row that a resumed run
    then appends to. This file is always complete, and a resumed run continues it.
    """

    def __init__(self, path: str | Path | None, timer: EpochTimer, rows=()) -> None:
        super().__init__()
        self.path = Path(path) if path is not None else None
        self.timer = timer
        self.rows: list[dict] = list(rows)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        row = {"epoch": epoch + 1}
        row.update({k: float(logs.get(k, np.nan)) for k in EPOCH_COLUMNS[1:5]})
        row.update(seconds=self.timer.seconds[-1], train_seconds=self.timer.train_seconds[-1])
        self.rows = [r for r in self.rows if r["epoch"] < epoch + 1] + [row]
        if self.path is not None:
            write_text(self.path, self.frame().to_csv(index=False))

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=EPOCH_COLUMNS)

    @staticmethod
    def read(path: str | Path, epochs: int) -> list[dict]:
        """The first ``epochs`` rows of a log written by an earlier (killed) process."""
        path = Path(path)
        if not path.exists():
            return []
        frame = pd.read_csv(path)
        return frame[frame["epoch"] <= epochs].to_dict("records")


class ResumableBackup(keras.callbacks.BackupAndRestore):
    """Keras' ``BackupAndRestore`` with every checkpoint written atomically.

    Keras writes the weights file and then the epoch file in place, so a kill during a
    save can leave a torn file, or weights of one epoch labelled with another. Here each
    epoch's weights (model and optimizer) go to their own file (temp + rename), then a
    small state file naming that file and the epoch is replaced atomically, and older
    weights are removed last: a kill at any moment leaves a consistent checkpoint.
    """

    # Saves only at epoch end, so its per-batch hook is a counter: safe to run in Keras'
    # callback thread, which keeps JAX steps from being synchronized after each batch.
    async_safe = True

    def __init__(self, backup_dir: str | Path) -> None:
        super().__init__(str(backup_dir), save_freq="epoch", delete_checkpoint=False)
        self.state_path = Path(backup_dir) / "state.json"

    def completed_epochs(self) -> int:
        """Epochs finished by the checkpoint in the folder (0: none)."""
        try:
            return int(json.loads(self.state_path.read_text())["epoch"])
        except FileNotFoundError:
            return 0

    def on_train_begin(self, logs=None):
        self._load_model()

    def _load_model(self):
        if not self.state_path.exists():
            return
        state = json.loads(self.state_path.read_text())
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        self.model.load_weights(Path(self.backup_dir) / state["weights"])
        self.model._initial_epoch = int(state["epoch"])  # what Keras' own callback sets

    def _save_model(self):
        folder = Path(self.backup_dir)
        name = f"epoch-{self._current_epoch:04d}.weights.h5"
        with atomic_path(folder / name, suffix=".weights.h5") as tmp:
            self.model.save_weights(tmp)
        write_json(self.state_path, {"epoch": self._current_epoch, "weights": name})
        for old in folder.glob("epoch-*.weights.h5"):
            if old.name != name:
                old.unlink(missing_ok=True)

    def remove(self) -> None:
        shutil.rmtree(self.backup_dir, ignore_errors=True)


# A mean cross-entropy this large (a network at chance scores ln(classes), about 2.3)
# only comes from weights that blew up: float rounding decides whether such a run ends
# in NaN or in a finite 1e20, and either way it has diverged.
DIVERGED_LOSS = 1e6


def _blown_up(loss) -> np.ndarray:
    """Where a loss (a value or an array of them) counts as diverged."""
    loss = np.asarray(loss, dtype="float64")
    return ~np.isfinite(loss) | (loss > DIVERGED_LOSS)


class DivergedError(RuntimeError):
    """The training loss became NaN, Inf or larger than ``DIVERGED_LOSS``."""

    def __init__(self, epoch: int, batch: int, loss) -> None:
        super().__init__(f"loss became {loss} at epoch {epoch}, batch {batch}")
        self.epoch, self.batch, self.loss = epoch, batch, loss


class _StopOnNaN(keras.callbacks.TerminateOnNaN):
    """Keras' NaN check plus ``DIVERGED_LOSS``, raising a :class:`DivergedError` that
    says where it happened.

    Raising (not a graceful stop) keeps the last good checkpoint: no callback's
    ``on_epoch_end`` runs on the diverged weights.

    ``async_safe``: on backends that allow it (JAX), Keras runs this check in its
    callback thread, so reading the loss does not stall the device after every step;
    an error there is raised in the training loop at the next step or, at the latest,
    before any ``on_epoch_end``.
    """

    async_safe = True

    def __init__(self) -> None:
        super().__init__(raise_error=True)
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        try:
            super().on_batch_end(batch, logs)
        except RuntimeError as exc:
            raise DivergedError(self.epoch + 1, batch + 1, loss) from exc
        if loss is not None and _blown_up(loss):
            raise DivergedError(self.epoch + 1, batch + 1, float(loss))


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


def _use_fused_bn(config: TrainConfig) -> bool:
    # The fused kernel is TensorFlow's; JAX's XLA fuses BN by itself.
    if config.fused_bn == "auto":
        return keras.backend.backend() == "tensorflow"
    return bool(config.fused_bn)


def compile_model(
    model: keras.Model, config: TrainConfig, steps_per_epoch: int, peak: float | None = None
) -> None:
    model.compile(
        optimizer=_optimizer(config, steps_per_epoch, peak),
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

    replicas = placement.replicas
    global_batch = config.batch_size * replicas
    peak_lr, lr_rule = scaled_learning_rate(config, replicas)
    shard = (placement.process_index, placement.processes)
    batches = EpochBatches(
        data.x_train,
        data.y_train,
        global_batch,
        config.seed,
        drop_remainder=replicas > 1,
        shard=shard,
    )
    # Validation covers every image unless JAX needs whole, evenly split batches.
    val_batches = EpochBatches(
        data.x_val,
        data.y_val,
        global_batch,
        config.seed,
        shuffle=False,
        drop_remainder=placement.batch_unit > 1,
        shard=shard,
    )
    with placement.scope(), dtype_policy(config.precision):
        model = build_model(
            architecture or data.name,
            variant,
            augment=config.augment,
            seed=config.seed,
            fused_bn=_use_fused_bn(config),
        )
        compile_model(model, config, len(batches), peak_lr)

    backup = ResumableBackup(backup_dir) if backup_dir is not None else None
    done = backup.completed_epochs() if backup is not None else 0
    timer = EpochTimer()
    log = EpochLog(log_csv, timer, EpochLog.read(log_csv, done) if done and log_csv else ())
    # Order matters at epoch end: the log is written before the checkpoint, so after a
    # kill it always covers the epochs the checkpoint holds.
    all_callbacks = [EpochRandomness(batches), timer, log, _StopOnNaN(), *callbacks]
    if backup is not None:
        all_callbacks.append(backup)
    diverged_at: DivergedError | None = None
    try:
        feed = batches.pipeline(done, config.epochs)
        model.fit(
            feed,
            steps_per_epoch=None if feed is batches else len(batches),
            epochs=config.epochs,
            # Not Keras' own array pipeline: that is a parallel tf.data map, which op
            # determinism rewrites with a logged C++ error on every run.
            validation_data=val_batches.pipeline(),
            shuffle=False,  # EpochBatches orders each epoch itself
            callbacks=all_callbacks,
            verbose=config.verbose,
        )
    except DivergedError as exc:
        diverged_at = exc
        print(f"[kerasbn] {variant.name} seed {config.seed} diverged: {exc}", flush=True)
    history = log.frame()
    diverged = (
        diverged_at is not None
        or len(history) < config.epochs
        or bool(_blown_up(history["loss"]).any())
    )
    return TrainResult(
        model=model,
        history=history,
        dataset=data.name,
        architecture=architecture,
        variant=variant,
        config=config,
        train_examples=batches.examples,
        replicas=replicas,
        global_batch_size=global_batch,
        learning_rate=peak_lr,
        lr_rule=lr_rule,
        placement=placement.describe(),
        diverged=bool(diverged),
        diverged_at=str(diverged_at) if diverged_at is not None else None,
        resumed_from_epoch=done,
    )


def evaluate(model: keras.Model, data: Dataset, batch_size: int = 512) -> dict[str, float]:
    """Test-set loss and accuracy, and how many test images they cover (the test set is
    used only here). In a multi-worker run every process evaluates its equal share; where
    batches must split evenly over devices (JAX), a ragged rest of the test set is left
    out and ``test_examples`` says how many were used."""
    placement = current_placement()
    unit = placement.batch_unit
    batch_size = min(batch_size, len(data.x_test))
    batch_size = max(unit, batch_size - batch_size % unit)
    batches = EpochBatches(
        data.x_test,
        data.y_test,
        batch_size,
        seed=0,
        shuffle=False,
        drop_remainder=unit > 1,
        shard=(placement.process_index, placement.processes),
    )
    scores = model.evaluate(batches.pipeline(), verbose=0, return_dict=True)
    return {
        "test_loss": float(scores["loss"]),
        "test_accuracy": float(scores["accuracy"]),
        "test_examples": batches.examples,
    }

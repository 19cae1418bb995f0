"""The Keras callbacks of a kerasbn training run, one concern each.

* :class:`EpochTimer`: wall time per epoch, and the training-steps part of it;
* :class:`EpochRandomness`: batch order and dropout / augmentation streams per epoch;
* :class:`EpochLog`: the per-epoch history CSV, rewritten atomically;
* :class:`ResumableBackup`: an atomic checkpoint after every epoch, restored on resume;
* :class:`StopOnDivergence`: stops a run whose loss became NaN, Inf or huge;
* :class:`StopOnSignal`: raises a Ctrl-C / SIGTERM that arrived where Python could not.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from kerasbn._io import atomic_path, write_json, write_text
from kerasbn._signals import raise_if_stopped
from kerasbn.training.batches import EpochBatches
from kerasbn.training.options import EPOCH_COLUMNS

log = logging.getLogger(__name__)

__all__ = [
    "DIVERGED_LOSS",
    "EPOCH_COLUMNS",
    "DivergedError",
    "EpochLog",
    "EpochRandomness",
    "EpochTimer",
    "LogProgress",
    "ResumableBackup",
    "StopOnDivergence",
    "StopOnSignal",
    "blown_up",
]



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


def _seed_states(model: keras.Model) -> list:
    # Keras' SeedGenerator keeps (seed, counter) in a variable of this name.
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
        try:
            frame = pd.read_csv(path)
            return frame[frame["epoch"] <= epochs].to_dict("records")
        except (OSError, ValueError, KeyError, TypeError):
            # Missing, empty or damaged: no usable rows (the caller checks the count).
            return []


# A mean cross-entropy this large (a network at chance scores ln(classes), about 2.3)
# only comes from weights that blew up: float rounding decides whether such a run ends
# in NaN or in a finite 1e20, and either way it has diverged.
DIVERGED_LOSS = 1e6


def blown_up(loss) -> np.ndarray:
    """Where a loss (a value or an array of them) counts as diverged."""
    loss = np.asarray(loss, dtype="float64")
    return ~np.isfinite(loss) | (loss > DIVERGED_LOSS)


class DivergedError(RuntimeError):
    """The training loss became NaN, Inf or larger than ``DIVERGED_LOSS``."""

    def __init__(self, epoch: int, batch: int, loss) -> None:
        super().__init__(f"loss became {loss} at epoch {epoch}, batch {batch}")
        self.epoch, self.batch, self.loss = epoch, batch, loss


class StopOnSignal(keras.callbacks.Callback):
    """After every batch, raise a stop signal that arrived meanwhile (see
    :mod:`kerasbn._signals`), so that a run stops within one batch.

    ``async_safe``: on JAX, Keras may run it in its callback thread (keeping the device
    busy); what it raises there reaches the training loop at the next step.
    """

    async_safe = True

    def on_train_batch_end(self, batch, logs=None):
        raise_if_stopped()

    def on_test_batch_end(self, batch, logs=None):
        raise_if_stopped()

    def on_predict_batch_end(self, batch, logs=None):
        raise_if_stopped()


class LogProgress(keras.callbacks.Callback):
    """A log line at most every ``every_seconds`` while a long evaluation or prediction
    runs (``what: batch k of total``): quick ones print nothing, and a log file gets no
    progress bar redrawn for every batch. Loops outside Keras call :meth:`update`.

    ``async_safe``: logging from Keras' callback thread on JAX is fine.
    """

    async_safe = True

    def __init__(
        self, what: str, total: int, every_seconds: float = 10.0, unit: str = "batch"
    ) -> None:
        super().__init__()
        self.what, self.total, self.every, self.unit = what, total, every_seconds, unit
        self._last = time.monotonic()

    def update(self, done: int) -> None:
        """Log ``done`` of the total if ``every_seconds`` passed since the last line."""
        now = time.monotonic()
        if now - self._last >= self.every:
            log.info("%s: %s %d of %d", self.what, self.unit, done, self.total)
            self._last = now

    def _start(self, logs=None):
        self._last = time.monotonic()

    on_test_begin = on_predict_begin = _start

    def _batch_end(self, batch, logs=None):
        self.update(batch + 1)

    on_test_batch_end = on_predict_batch_end = _batch_end


class StopOnDivergence(keras.callbacks.TerminateOnNaN):
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
        if loss is not None and blown_up(loss):
            raise DivergedError(self.epoch + 1, batch + 1, float(loss))


def _bytes(model: keras.Model) -> int:
    # Model and optimizer variables, plus room for the HDF5 layout.
    variables = [*model.variables, *(model.optimizer.variables if model.optimizer else [])]
    size = sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in variables)
    return int(size * 1.1) + 2**20


class ResumableBackup(keras.callbacks.Callback):
    """A checkpoint after every epoch, written atomically, and restored at the start.

    Keras' ``BackupAndRestore`` writes the weights file and then the epoch file in place,
    so a kill during a save can leave a torn file, or weights of one epoch labelled with
    another. Here each epoch's weights (model and optimizer) go to their own file (temp +
    rename), then a small state file naming that file and the epoch is replaced
    atomically, and older weights are removed last: a kill at any moment leaves a
    consistent checkpoint. The caller passes :meth:`completed_epochs` to ``fit`` as
    ``initial_epoch`` (public API, instead of Keras' private ``model._initial_epoch``).
    """

    # Saves only at epoch end and has no per-batch hook: safe to run in Keras' callback
    # thread, which keeps JAX steps from being synchronized after each batch.
    async_safe = True

    def __init__(self, backup_dir: str | Path) -> None:
        super().__init__()
        self.backup_dir = Path(backup_dir)
        self.state_path = self.backup_dir / "state.json"

    def completed_epochs(self) -> int:
        """Epochs finished by the checkpoint in the folder (0: none).

        A damaged checkpoint (an unreadable state file, weights missing or cut short, as
        a copy cut short or a full disk outside kerasbn's writes leaves them) is removed
        with a warning and counts as none: the run starts over, and since a run is
        deterministic it ends as an uninterrupted one would.
        """
        if not self.state_path.exists():
            return 0
        damaged = self.state_path.name
        try:
            state = json.loads(self.state_path.read_text())
            epoch = int(state["epoch"])
            damaged = str(state["weights"])
            import h5py  # Keras' own dependency for .weights.h5

            with h5py.File(self.backup_dir / damaged, "r"):
                pass
            return epoch
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self.discard(f"the checkpoint's {damaged} is damaged ({type(exc).__name__}: {exc})")
            return 0

    def discard(self, why: str) -> None:
        """Drop the checkpoint, saying why: the run then trains from epoch 0."""
        log.warning(
            "%s: %s; the run starts again from epoch 0 (it ends as an uninterrupted run "
            "would)",
            self.backup_dir,
            why,
        )
        self.remove()

    def on_train_begin(self, logs=None):
        if not self.state_path.exists():
            return
        state = json.loads(self.state_path.read_text())
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        self.model.load_weights(self.backup_dir / state["weights"])

    def on_epoch_end(self, epoch, logs=None):
        done = epoch + 1
        name = f"epoch-{done:04d}.weights.h5"
        with atomic_path(self.backup_dir / name, ".weights.h5", _bytes(self.model)) as tmp:
            self.model.save_weights(tmp)
        write_json(self.state_path, {"epoch": done, "weights": name})
        for old in self.backup_dir.glob("epoch-*.weights.h5"):
            if old.name != name:
                old.unlink(missing_ok=True)

    def remove(self) -> None:
        shutil.rmtree(self.backup_dir, ignore_errors=True)

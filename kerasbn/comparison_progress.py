"""Where a comparison stands: run k of N, the epoch, and the time left.

On a terminal a tqdm bar counts the comparison's epochs (run, variant, seed and the
estimate in its label); when the output goes to a file or a pipe, one log line per run
start and end and one per epoch say the same, so a log shows progress without a bar
redrawn for every batch. The time left is the mean epoch time measured so far in this
process times the epochs still to train (runs read back from an earlier session count
as done).
"""

from __future__ import annotations

import logging
import math
import sys
import time

import keras
from tqdm import tqdm

__all__ = ["ComparisonProgress", "duration"]

log = logging.getLogger(__name__)


def duration(seconds: float) -> str:
    """``"2 h 05 min"``, ``"14 min"``, ``"40 s"``; ``"unknown"`` before any measurement."""
    if not math.isfinite(seconds):
        return "unknown"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


class ComparisonProgress:
    """Counts a comparison's epochs: ``runs`` runs of ``epochs`` epochs each.

    ``bar``: draw a tqdm bar (default: when standard error is a terminal).
    """

    def __init__(self, runs: int, epochs: int, *, bar: bool | None = None) -> None:
        self.runs, self.epochs = runs, epochs
        self.total = runs * epochs
        self.done = 0  # epochs finished, earlier sessions included
        self.measured: list[float] = []  # seconds of the epochs trained in this process
        self.run_index = 0
        self.tag = ""
        self._bar = tqdm(
            total=self.total,
            unit="epoch",
            disable=not (sys.stderr.isatty() if bar is None else bar),
            leave=False,
            dynamic_ncols=True,
        )

    @property
    def seconds_left(self) -> float:
        if not self.measured:
            return math.nan
        return (self.total - self.done) * sum(self.measured) / len(self.measured)

    def _advance(self, epochs: int) -> None:
        self.done += epochs
        self._bar.update(epochs)

    def read_back(self, tag: str, epochs: int) -> None:
        """A run finished earlier: its epochs count as done."""
        self.run_index += 1
        self._advance(epochs)

    def start(self, tag: str, resumed_epochs: int = 0) -> None:
        self.run_index += 1
        self.tag = tag
        if resumed_epochs:
            self._advance(resumed_epochs)
        self._bar.set_description(f"run {self.run_index}/{self.runs} {tag}")
        left = self.seconds_left
        if math.isfinite(left) or resumed_epochs:
            where = f", resuming after epoch {resumed_epochs}" if resumed_epochs else ""
            estimate = f", about {duration(left)} left" if math.isfinite(left) else ""
            log.info("%s is run %d of %d%s%s", tag, self.run_index, self.runs, where, estimate)

    def epoch_end(self, epoch: int, seconds: float, logs: dict | None) -> None:
        self.measured.append(seconds)
        self._advance(1)
        left = duration(self.seconds_left)
        accuracy = (logs or {}).get("val_accuracy")
        if not self._bar.disable:
            self._bar.set_postfix_str(f"about {left} left", refresh=True)
            return
        shown = f", val accuracy {100 * accuracy:.2f}%" if accuracy is not None else ""
        log.info(
            "run %d of %d: %s epoch %d of %d%s; comparison %d%% done, about %s left",
            self.run_index,
            self.runs,
            self.tag,
            epoch + 1,
            self.epochs,
            shown,
            round(100 * self.done / max(self.total, 1)),
            left,
        )

    def callback(self) -> keras.callbacks.Callback:
        """The Keras callback that reports each epoch of the current run."""
        return _EpochReport(self)

    def close(self) -> None:
        self._bar.close()


class _EpochReport(keras.callbacks.Callback):
    # Logging only: safe from Keras' callback thread on JAX.
    async_safe = True

    def __init__(self, progress: ComparisonProgress) -> None:
        super().__init__()
        self.progress = progress
        self._started = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.progress.epoch_end(epoch, time.perf_counter() - self._started, logs)

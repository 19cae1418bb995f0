"""Activation statistics over training (Ioffe & Szegedy 2015, figure 1 b, c).

The paper follows the input of one sigmoid of the last hidden layer through training:
without BN its 15th, 50th and 85th percentiles drift (the "internal covariate shift"),
with BN they stay put. :class:`ActivationPercentiles` records the same three
percentiles for the input of every ReLU of a kerasbn net (the pre-activation, after BN
where there is one), pooled over all units of the layer, on one fixed batch of held-out
images: before training (epoch 0) and after every epoch.

``compare --activations`` adds it to every run and writes ``activations.csv`` and
``activations.png`` (see :mod:`kerasbn.diagnostics.files`).
"""

from __future__ import annotations

import os
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from kerasbn._io import write_text

__all__ = ["ACTIVATION_COLUMNS", "PERCENTILES", "ActivationPercentiles", "pre_activations"]

PERCENTILES = (15, 50, 85)
ACTIVATION_COLUMNS = ("epoch", "layer", "p15", "p50", "p85")


def pre_activations(model: keras.Model) -> list[str]:
    """Names of the layers whose input is a pre-activation: every ReLU layer."""
    return [layer.name for layer in model.layers if isinstance(layer, keras.layers.ReLU)]


class ActivationPercentiles(keras.callbacks.Callback):
    """Record the 15th / 50th / 85th percentiles of each ReLU's input on ``images``.

    Args:
        images: a fixed batch of held-out images (the model's input dtype and shape),
            e.g. the first 256 validation images; the same batch at every epoch, so
            a change is the network's, not the data's.
        path: optional CSV file, rewritten after every epoch (atomically). A resumed run
            reads it back and keeps the epochs before the one it resumes from.
        every: record after every ``every``-th epoch (and always before training).

    ``rows`` holds the records: ``epoch`` (0 = before training), ``layer``, ``p15``,
    ``p50``, ``p85``. The net is called in inference mode (Dropout off, BN with its
    moving statistics), as a user of the trained net would see it.
    """

    def __init__(self, images, path: str | os.PathLike | None = None, every: int = 1) -> None:
        super().__init__()
        if every < 1:
            raise ValueError(f"every must be a positive number of epochs. Received: {every}")
        self.images = np.asarray(images)
        self.path = Path(path) if path is not None else None
        self.every = every
        self.rows: list[dict] = []
        self._probe = None

    def on_train_begin(self, logs=None):
        layers = pre_activations(self.model)
        if not layers:
            raise ValueError(
                "ActivationPercentiles found no ReLU layer in the model; it records the "
                f"inputs of ReLU layers. Received: a model with layers "
                f"{[layer.name for layer in self.model.layers]}"
            )
        inputs = [self.model.get_layer(name).input for name in layers]
        self._probe = keras.Model(self.model.input, inputs)
        self._names = layers
        if self.path is not None and self.path.exists():
            self.rows = pd.read_csv(self.path).to_dict("records")
        if not any(row["epoch"] == 0 for row in self.rows):
            self._record(0)

    def on_epoch_end(self, epoch, logs=None):
        done = epoch + 1
        if done % self.every == 0:
            self._record(done)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=ACTIVATION_COLUMNS)

    def _record(self, epoch: int) -> None:
        outputs = self._probe(self.images, training=False)
        outputs = outputs if isinstance(outputs, list | tuple) else [outputs]
        # A resumed run replaces what a killed one recorded for this epoch and later.
        self.rows = [row for row in self.rows if row["epoch"] < epoch]
        for name, tensor in zip(self._names, outputs, strict=True):
            values = keras.ops.convert_to_numpy(tensor).reshape(-1)
            p15, p50, p85 = np.percentile(values, PERCENTILES)
            self.rows.append({"epoch": epoch, "layer": name, "p15": p15, "p50": p50, "p85": p85})
        if self.path is not None:
            write_text(self.path, self.frame().to_csv(index=False))

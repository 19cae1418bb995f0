"""Per-channel mean and variance of every BN layer's input, over many batches (what
precise BN and the variance-shift meter both measure)."""

from __future__ import annotations

import keras
import numpy as np

from kerasbn._signals import raise_if_stopped
from kerasbn.training.callbacks import LogProgress

__all__ = ["bn_layers", "input_moments"]


def bn_layers(model: keras.Model) -> list:
    return [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]


def input_moments(
    model: keras.Model, images, batch_size: int, training: bool, limit: int | None = None
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per BN layer of ``model`` (by name): the per-channel mean and biased variance of
    its input over the first ``limit`` ``images`` (all when ``None``), with the model
    called in ``training`` mode. Sums are kept in float64, batch by batch."""
    layers = bn_layers(model)
    if not layers:
        return {}
    probe = keras.Model(model.input, [layer.input for layer in layers])
    sums = [0.0] * len(layers)
    squares = [0.0] * len(layers)
    counts = [0] * len(layers)  # positions per channel: images x height x width
    total = len(images) if limit is None else min(len(images), limit)
    progress = LogProgress("BN input statistics", total, unit="image")
    for start in range(0, total, batch_size):
        raise_if_stopped()
        progress.update(start)
        outputs = probe(images[start : min(start + batch_size, total)], training=training)
        outputs = outputs if isinstance(outputs, list | tuple) else [outputs]
        for k, tensor in enumerate(outputs):
            values = np.asarray(keras.ops.convert_to_numpy(tensor), dtype=np.float64)
            flat = values.reshape(-1, values.shape[-1])
            sums[k] = sums[k] + flat.sum(axis=0)
            squares[k] = squares[k] + (flat**2).sum(axis=0)
            counts[k] += len(flat)
    moments = {}
    for k, layer in enumerate(layers):
        mean = sums[k] / counts[k]
        moments[layer.name] = (mean, np.maximum(squares[k] / counts[k] - mean**2, 0.0))
    return moments

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


def _moments_probe(model: keras.Model, layers: list) -> keras.Model:
    # Reduce on the device: each batch then returns two short vectors per BN layer,
    # not its whole activations (copying and summing those on the host took about 80 s
    # of a 30-epoch CIFAR-10 compare on a GPU, whose training epochs take 1 s).
    outputs = []
    for layer in layers:
        values = keras.ops.cast(layer.input, "float32")
        outputs += keras.ops.moments(values, axes=list(range(len(values.shape) - 1)))
    return keras.Model(model.input, outputs)


def input_moments(
    model: keras.Model,
    images,
    batch_size: int,
    training: bool,
    limit: int | None = None,
    layers: list | None = None,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per BN layer of ``model`` (by name; ``layers``: only these): the per-channel mean
    and biased variance of its input over the first ``limit`` ``images`` (all when
    ``None``), with the model called in ``training`` mode. Each batch's mean and
    variance (float32, on the device) are pooled in float64 with Chan et al.'s update,
    which stays exact where the mean is large next to the spread (a running sum of
    squares would cancel)."""
    layers = bn_layers(model) if layers is None else layers
    if not layers:
        return {}
    probe = _moments_probe(model, layers)
    positions = [int(np.prod(layer.input.shape[1:-1])) for layer in layers]  # per image
    means = [0.0] * len(layers)
    squares = [0.0] * len(layers)  # sum of squared deviations from the running mean
    counts = [0] * len(layers)  # positions per channel so far: images x height x width
    total = len(images) if limit is None else min(len(images), limit)
    progress = LogProgress("BN input statistics", total, unit="image")
    for start in range(0, total, batch_size):
        raise_if_stopped()
        progress.update(start)
        batch = images[start : min(start + batch_size, total)]
        outputs = probe(batch, training=training)
        for k in range(len(layers)):
            mean, variance = (
                np.asarray(keras.ops.convert_to_numpy(t), dtype=np.float64)
                for t in outputs[2 * k : 2 * k + 2]
            )
            n, before = len(batch) * positions[k], counts[k]
            delta = mean - means[k]
            means[k] = means[k] + delta * n / (before + n)
            squares[k] = squares[k] + variance * n + delta**2 * before * n / (before + n)
            counts[k] = before + n
    return {
        layer.name: (means[k], np.maximum(squares[k] / counts[k], 0.0))
        for k, layer in enumerate(layers)
    }

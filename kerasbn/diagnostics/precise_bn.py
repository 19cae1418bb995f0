"""Precise BN: replace BN's moving averages with the population statistics of each BN
layer's input (PreciseBN in fvcore's ``update_bn_stats``; Wu & Johnson 2021,
"Rethinking 'Batch' in BatchNorm").

Keras' moving averages (momentum 0.99) trail the weights: after a short run they still
mix in statistics of much earlier weights, and a BN net's inference accuracy suffers
(kerasbn's MNIST 1-epoch case). Here the inputs of every BN layer are gathered over
training batches with BN normalizing by batch statistics, as in training, and their
exact mean and variance become the moving statistics of a copy of the model.

Dropout and random augmentation are off by default, as in fvcore, which leaves both to
the caller: the statistics are then those of the images and activations the net sees at
inference. ``augment=True`` / ``dropout=True`` keep them on, so the statistics are
those of training (what the moving averages estimate); which is better depends on the
net, and the comparison reports both.
"""

from __future__ import annotations

import keras
import numpy as np

from kerasbn.diagnostics._moments import bn_layers, input_moments
from kerasbn.layers import clone_with, unfuse_batch_norm

__all__ = ["bn_input_statistics", "has_randomness", "recalibrate_bn"]


def _dropout_like(layer) -> bool:
    return isinstance(layer, keras.layers.Dropout | keras.layers.GaussianNoise)


def _augmentation(layer) -> bool:
    # Keras' random preprocessing layers (RandomFlip, RandomTranslation, ...).
    return type(layer).__name__.startswith("Random")


def has_randomness(model: keras.Model) -> bool:
    """Whether ``model`` has a layer that is random in training (Dropout, Gaussian noise,
    random augmentation): where it has none, ``augment`` and ``dropout`` change nothing."""
    return any(_dropout_like(layer) or _augmentation(layer) for layer in model.layers)


def _without_randomness(model: keras.Model, augment: bool, dropout: bool) -> keras.Model:
    def identity(layer):
        off = (_augmentation(layer) and not augment) or (_dropout_like(layer) and not dropout)
        return keras.layers.Identity(name=layer.name) if off else None

    return clone_with(model, identity)


def bn_input_statistics(
    model: keras.Model,
    images,
    batch_size: int = 256,
    num_batches: int | None = None,
    *,
    augment: bool = False,
    dropout: bool = False,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per BN layer (by name): the per-channel mean and (biased) variance of its input
    over ``num_batches`` batches of ``images`` (all of them when ``None``), with BN in
    training mode; random augmentation and Dropout off unless ``augment`` / ``dropout``."""
    copy = _without_randomness(unfuse_batch_norm(model), augment, dropout)
    limit = None if num_batches is None else num_batches * batch_size
    return input_moments(copy, images, batch_size, training=True, limit=limit)


def recalibrate_bn(
    model: keras.Model,
    images,
    batch_size: int = 256,
    num_batches: int | None = 200,
    *,
    augment: bool = False,
    dropout: bool = False,
) -> keras.Model:
    """A copy of ``model`` whose BN moving mean and variance are the population
    statistics of :func:`bn_input_statistics` (every other weight unchanged); ``images``
    are training images as the model takes them (uint8). ``augment`` / ``dropout``: keep
    the model's random augmentation / Dropout on while the statistics are gathered."""
    stats = bn_input_statistics(
        model, images, batch_size, num_batches, augment=augment, dropout=dropout
    )
    copy = clone_with(unfuse_batch_norm(model), lambda layer: None)  # a copy to change
    for layer in bn_layers(copy):
        mean, variance = stats[layer.name]
        layer.moving_mean.assign(mean.astype(np.float32))
        layer.moving_variance.assign(variance.astype(np.float32))
    return copy

"""Two training-time forms of Keras' BN: ``FusedBatchNormalization`` (TensorFlow's fused
kernel) and ``GhostBatchNormalization`` (statistics over virtual sub-batches).

Keras 3 computes BN on TensorFlow from separate ops (moments, then normalize, each with
its own gradient); TensorFlow's ``FusedBatchNormV3`` does the forward pass and its
gradient in one kernel each. Measured on 2 CPU cores, forward + backward of a
(128, 28, 28, 32) activation: 43.6 ms unfused, 29.4 ms fused (``benchmarks/README.md``).

The layer *is* a ``keras.layers.BatchNormalization``: same variables, same config, same
moving-average update (with the biased batch variance, as Keras uses), so weights move
freely between the two. Saved models get the plain layer back (:func:`unfuse_batch_norm`
in :func:`kerasbn.save_model`), so a saved file never needs kerasbn to load.
Where the fused kernel does not apply (another backend, a mask, renorm, synchronized BN,
a non-channels-last axis, an epsilon below the kernel's minimum), it runs Keras' own BN.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import keras
from keras import ops

__all__ = [
    "FusedBatchNormalization",
    "GhostBatchNormalization",
    "clone_with",
    "unfuse_batch_norm",
]

# TensorFlow's fused kernel clamps epsilon to at least this (a cuDNN limit); below it
# the fused result would differ from Keras', so the plain path runs instead.
_MIN_FUSED_EPSILON = 1.001e-5


@keras.saving.register_keras_serializable(package="kerasbn")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """Keras' ``BatchNormalization`` on TensorFlow's fused kernel (channels-last).

    Accepts the same arguments; inputs of rank 2 (a dense layer's output) or rank 4
    (images, channels last) are fused.
    """

    def _fusable(self, inputs, mask) -> bool:
        rank = len(inputs.shape)
        return (
            keras.backend.backend() == "tensorflow"
            and mask is None
            and not self.renorm
            and not self.synchronized
            and rank in (2, 4)
            and self.axis in (-1, rank - 1)
            and self.epsilon >= _MIN_FUSED_EPSILON
        )

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        # Statistics in float32 whatever the compute dtype, as Keras' BN does.
        x = tf.cast(inputs, "float32")
        channels = x.shape[-1]
        rank = len(x.shape)
        if rank == 2:
            x = tf.reshape(x, (-1, 1, 1, channels))
        gamma = self.gamma if self.scale else tf.ones((channels,), "float32")
        beta = self.beta if self.center else tf.zeros((channels,), "float32")
        if training and self.trainable:
            y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
                x, gamma, beta, epsilon=self.epsilon, data_format="NHWC", is_training=True
            )
            # The kernel returns the unbiased (n / (n - 1)) batch variance for the
            # running average; Keras averages the biased one, so undo the correction.
            count = tf.cast(tf.size(x) // channels, "float32")
            variance = variance * tf.maximum(count - 1.0, 0.0) / count
            momentum = self.momentum
            self.moving_mean.assign(self.moving_mean * momentum + mean * (1.0 - momentum))
            self.moving_variance.assign(
                self.moving_variance * momentum + variance * (1.0 - momentum)
            )
        else:
            y, _, _ = tf.compat.v1.nn.fused_batch_norm(
                x,
                gamma,
                beta,
                mean=tf.cast(self.moving_mean, "float32"),
                variance=tf.cast(self.moving_variance, "float32"),
                epsilon=self.epsilon,
                data_format="NHWC",
                is_training=False,
            )
        if rank == 2:
            y = tf.reshape(y, (-1, channels))
        return ops.cast(y, self.compute_dtype)


@keras.saving.register_keras_serializable(package="kerasbn")
class GhostBatchNormalization(keras.layers.BatchNormalization):
    """BN whose training-time statistics come from virtual sub-batches ("ghost batches",
    Hoffer et al. 2017; Summers & Dinneen 2020): each run of ``virtual_batch_size``
    consecutive examples is normalized by its own mean and variance, as if the batch
    were that small. Keras 3 dropped ``virtual_batch_size``; this restores it.

    The moving mean and variance are updated once per step with the average of the
    ghost batches' means and variances (weighted by their sizes; a ragged last ghost
    batch counts less), as TensorFlow 1's ``virtual_batch_size`` did. Inference is
    Keras' BN unchanged, so a trained layer's weights serve in a plain
    ``BatchNormalization`` (:func:`unfuse_batch_norm` swaps it in before saving).
    With ``virtual_batch_size=None``, or at least the batch, it is Keras' BN.

    Args:
        virtual_batch_size: examples per ghost batch (``None``: the whole batch).
        **kwargs: ``BatchNormalization``'s arguments (channels-last ``axis=-1`` only).
    """

    def __init__(self, virtual_batch_size: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if virtual_batch_size is not None and (
            int(virtual_batch_size) != virtual_batch_size or virtual_batch_size < 1
        ):
            raise ValueError(
                "virtual_batch_size must be a positive whole number or None. "
                f"Received: {virtual_batch_size!r}"
            )
        self.virtual_batch_size = None if virtual_batch_size is None else int(virtual_batch_size)

    def call(self, inputs, training=None, mask=None):
        size = self.virtual_batch_size
        rank = len(inputs.shape)
        if (
            not (training and self.trainable)
            or size is None
            or mask is not None
            or self.renorm
            or self.synchronized
            or self.axis not in (-1, rank - 1)
        ):
            return super().call(inputs, training=training, mask=mask)
        x = ops.cast(inputs, "float32")
        rest = tuple(x.shape[1:])
        batch = ops.shape(x)[0]
        # Zero rows fill the last ghost batch; their weight 0 keeps them out of every sum.
        pad = (size - batch % size) % size
        x = ops.pad(x, [[0, pad]] + [[0, 0]] * (rank - 1))
        weight = ops.pad(ops.ones((batch,), "float32"), [[0, pad]])
        x = ops.reshape(x, (-1, size, *rest))  # (ghosts, size, ..., channels)
        weight = ops.reshape(weight, (-1, size) + (1,) * (rank - 1))
        axes = tuple(range(1, rank))  # all but the ghost axis and the channels
        positions = math.prod(rest[:-1]) if rank > 2 else 1
        count = ops.sum(weight, axis=axes, keepdims=True) * positions
        safe = ops.maximum(count, 1.0)
        mean = ops.sum(x * weight, axis=axes, keepdims=True) / safe
        variance = ops.sum(weight * ops.square(x - mean), axis=axes, keepdims=True) / safe
        y = (x - mean) * ops.rsqrt(variance + self.epsilon)
        if self.scale:
            y = y * ops.cast(self.gamma, "float32")
        if self.center:
            y = y + ops.cast(self.beta, "float32")
        y = ops.reshape(y, (-1, *rest))[:batch]

        share = count / ops.sum(count)
        batch_mean = ops.reshape(ops.sum(mean * share, axis=0), (-1,))
        batch_variance = ops.reshape(ops.sum(variance * share, axis=0), (-1,))
        momentum = self.momentum
        self.moving_mean.assign(self.moving_mean * momentum + batch_mean * (1.0 - momentum))
        self.moving_variance.assign(
            self.moving_variance * momentum + batch_variance * (1.0 - momentum)
        )
        return ops.cast(y, self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "virtual_batch_size": self.virtual_batch_size}


def unfuse_batch_norm(model: keras.Model) -> keras.Model:
    """``model`` with every :class:`FusedBatchNormalization` and
    :class:`GhostBatchNormalization` replaced by Keras' own BN (same name, config and
    weights; both differ from it only while training); ``model`` itself when it has
    none.

    Saved files then name only Keras classes: they load without kerasbn, on any backend,
    and pass :func:`kerasbn.load_model`'s check for classes from outside Keras.
    """
    own = (FusedBatchNormalization, GhostBatchNormalization)
    if not any(isinstance(layer, own) for layer in model.layers):
        return model

    def plain_bn(layer):
        if not isinstance(layer, own):
            return None
        config = layer.get_config()
        config.pop("virtual_batch_size", None)
        return keras.layers.BatchNormalization.from_config(config)

    return clone_with(model, plain_bn)


def clone_with(
    model: keras.Model, replace: Callable[[keras.layers.Layer], keras.layers.Layer | None]
) -> keras.Model:
    """A copy of ``model`` with the same weights in which ``replace(layer)`` stands in
    for every layer where it returns a layer; the others are fresh copies from their
    config. ``model`` is not changed."""

    def clone(layer):
        stand_in = replace(layer)
        return layer.__class__.from_config(layer.get_config()) if stand_in is None else stand_in

    copy = keras.models.clone_model(model, clone_function=clone)
    # The clone keeps the layer order (an unnamed input layer gets a new name); a stand-in
    # without weights (Identity for Dropout) takes none.
    for source, layer in zip(model.layers, copy.layers, strict=True):
        if source.weights and layer.weights:
            layer.set_weights(source.get_weights())
    return copy

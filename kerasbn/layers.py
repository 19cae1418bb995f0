"""``FusedBatchNormalization``: Keras' BN computed by TensorFlow's fused kernel.

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

import keras
from keras import ops

__all__ = ["FusedBatchNormalization", "unfuse_batch_norm"]

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


def unfuse_batch_norm(model: keras.Model) -> keras.Model:
    """``model`` with every :class:`FusedBatchNormalization` replaced by Keras' own BN
    (same name, config and weights); ``model`` itself when it has none.

    Saved files then name only Keras classes: they load without kerasbn, on any backend,
    and pass :func:`kerasbn.load_model`'s check for classes from outside Keras.
    """
    if not any(isinstance(layer, FusedBatchNormalization) for layer in model.layers):
        return model

    def clone(layer):
        if isinstance(layer, FusedBatchNormalization):
            return keras.layers.BatchNormalization.from_config(layer.get_config())
        return layer.__class__.from_config(layer.get_config())

    plain = keras.models.clone_model(model, clone_function=clone)
    plain.set_weights(model.get_weights())
    return plain

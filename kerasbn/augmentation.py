"""``RandomShift``: pad-and-crop augmentation as a per-image integer shift.

Zero-padding an image by ``p`` pixels and cropping a random window of the original size
back out is the same as shifting the image by a whole number of pixels in ``[-p, p]``
along each axis, with zeros shifted in. Keras' ``RandomTranslation`` can express it, but
it resamples through a general affine transform; on the JAX backend that is
``jax.scipy.ndimage.map_coordinates``, which on a GPU trained kerasbn's CIFAR-10 net at
about 320 images/s instead of about 33,000 without augmentation (measured on an H100,
see benchmarks/README.md). Here a shift is a 0/1 matrix per image and axis, and two
batched matrix products apply them: the same ops on every backend, exact in any float
dtype (each output is one input value times 1, plus zeros), and a few per cent of the
net's own arithmetic at 32x32.
"""

from __future__ import annotations

import keras
from keras import ops

__all__ = ["RandomShift", "shift_matrices"]


def shift_matrices(shifts, size: int, dtype="float32"):
    """``(batch, size, size)`` matrices ``S`` with ``(S @ v)[i] = v[i - shift]`` (zero
    where ``i - shift`` falls outside ``[0, size)``), one per entry of ``shifts``."""
    positions = ops.arange(size, dtype="int32")
    source = positions[None, :, None] - ops.cast(shifts, "int32")[:, None, None]
    return ops.cast(ops.equal(source, positions[None, None, :]), dtype)


@keras.saving.register_keras_serializable(package="kerasbn")
class RandomShift(keras.layers.Layer):
    """Shift each training image by its own random whole number of pixels, drawn
    uniformly from ``[-max_pixels, max_pixels]`` per axis, filling with zeros (the
    pad-and-crop augmentation of the CIFAR-10 literature). The identity at inference.

    Args:
        max_pixels: the largest shift (the padding of pad-and-crop).
        seed: seed of the layer's random stream (``None``: Keras' global seed).
    """

    def __init__(self, max_pixels: int = 4, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if int(max_pixels) != max_pixels or max_pixels < 0:
            raise ValueError(f"max_pixels must be a whole number >= 0. Received: {max_pixels!r}")
        self.max_pixels = int(max_pixels)
        self.seed = seed
        # Named like every Keras random layer's, so kerasbn's per-epoch restart of random
        # streams (training.callbacks.EpochRandomness) finds it.
        self.seed_generator = keras.random.SeedGenerator(seed, name="seed_generator")
        self.supports_masking = True

    def call(self, inputs, training=False):
        if not training or self.max_pixels == 0:
            return inputs
        batch = ops.shape(inputs)[0]
        height, width = inputs.shape[1], inputs.shape[2]
        draws = keras.random.randint(
            (2, batch), -self.max_pixels, self.max_pixels + 1, seed=self.seed_generator
        )
        rows = shift_matrices(draws[0], height, inputs.dtype)
        cols = shift_matrices(draws[1], width, inputs.dtype)
        shifted = ops.einsum("bik,bkwc->biwc", rows, inputs)
        return ops.einsum("bjl,bhlc->bhjc", cols, shifted)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "max_pixels": self.max_pixels, "seed": self.seed}

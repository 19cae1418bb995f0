"""Wu & Johnson's (2021, "Rethinking 'Batch' in BatchNorm") two remedies for BN at
small batches, as the batch-size experiment applies them: evaluating with mini-batch
statistics (:func:`training_mode_predictions`) and training the last part with the
statistics frozen at the population ones (:func:`frozen_bn_phase`, FrozenBN)."""

from __future__ import annotations

import keras
import numpy as np

from kerasbn.diagnostics import recalibrate_bn
from kerasbn.layers import GhostBatchNormalization, clone_with
from kerasbn.training.callbacks import blown_up
from kerasbn.training.config import compile_classifier

__all__ = ["frozen_bn_phase", "training_mode_predictions"]


def training_mode_predictions(
    model: keras.Model, images, batch_size: int, chunk: int = 512
) -> np.ndarray:
    """Class probabilities with every BN normalizing each run of ``batch_size`` images by
    their own statistics, as in training (Dropout off). The model is not changed: a copy
    with Ghost BN of that size is called in training mode on chunks of whole batches."""

    def ghost(layer):
        if isinstance(layer, keras.layers.Dropout):
            return keras.layers.Identity(name=layer.name)
        if isinstance(layer, keras.layers.BatchNormalization):  # fused and ghost BN too
            config = {k: v for k, v in layer.get_config().items() if k != "virtual_batch_size"}
            return GhostBatchNormalization(virtual_batch_size=batch_size, **config)
        return None

    copy = clone_with(model, ghost)
    step = batch_size * max(1, chunk // batch_size)
    parts = [
        keras.ops.convert_to_numpy(copy(images[start : start + step], training=True))
        for start in range(0, len(images), step)
    ]
    return np.concatenate(parts)


def frozen_bn_phase(model: keras.Model, data, settings, epochs: int, precise_batch: int):
    """Wu & Johnson's FrozenBN phase: ``model`` (trained, plain BN) with every BN layer's
    statistics set to the training images' population statistics and frozen with its
    scale and shift (Keras: a BN layer that is not trainable normalizes as at
    inference), then trained ``epochs`` more at the same rate. The optimizer starts
    afresh (momentum state is not carried over from the first phase)."""
    frozen = recalibrate_bn(model, data.x_train, batch_size=precise_batch, num_batches=None)
    for layer in frozen.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
    optimizer = keras.optimizers.SGD(
        settings.learning_rate, momentum=settings.momentum, nesterov=True
    )
    compile_classifier(frozen, optimizer, label_smoothing=settings.label_smoothing)
    keras.utils.set_random_seed(settings.seed + 1)
    history = frozen.fit(
        data.x_train, data.y_train, batch_size=settings.batch_size, epochs=epochs, verbose=0
    )
    diverged = bool(blown_up(np.asarray(history.history["loss"])).any())
    for layer in frozen.layers:  # trainable again: scored in training mode like the others
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = True
    return frozen, diverged

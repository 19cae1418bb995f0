"""The variance shift between training and inference that Dropout before BN causes
(Li et al. 2019, "Understanding the Disharmony between Dropout and Batch Normalization
by Variance Shift").

In training, Dropout scales the kept activations by 1 / (1 - rate), which changes
their variance; BN learns its moving variance from those. At inference Dropout is the
identity, so a BN layer after a Dropout layer sees inputs whose variance differs from
the moving variance it normalizes with. The meter compares, per channel, the variance
of each BN layer's input in inference mode on held-out images with the layer's moving
variance: ``max(a / b, b / a)``, 1 when they agree.
"""

from __future__ import annotations

import keras
import numpy as np
import pandas as pd

from kerasbn.diagnostics._moments import bn_layers, input_moments
from kerasbn.layers import unfuse_batch_norm

__all__ = ["variance_shift"]


def variance_shift(model: keras.Model, images, batch_size: int = 512) -> pd.DataFrame:
    """One row per BN layer: ``layer``, ``mean_shift`` and ``max_shift`` over its
    channels (``max(a/b, b/a)`` of inference input variance ``a`` and moving variance
    ``b``, each plus BN's epsilon, as BN divides by them), for ``images`` held out from
    training (e.g. the validation split)."""
    model = unfuse_batch_norm(model)
    moments = input_moments(model, images, batch_size, training=False)
    rows = []
    for layer in bn_layers(model):
        # The variances BN divides by: each plus its epsilon. A channel whose variance is
        # far below epsilon (a dead ReLU before a BN placed after it) is scaled by the
        # epsilon alone, whichever its variance; the bare ratio would read as a huge shift.
        eps = float(layer.epsilon)
        inference = np.asarray(moments[layer.name][1], dtype=np.float64) + eps
        moving = np.asarray(layer.moving_variance, dtype=np.float64) + eps
        shift = np.maximum(inference / moving, moving / inference)
        rows.append(
            {
                "layer": layer.name,
                "mean_shift": float(shift.mean()),
                "max_shift": float(shift.max()),
            }
        )
    return pd.DataFrame(rows, columns=["layer", "mean_shift", "max_shift"])

"""Test-time BN adaptation with a source prior (Schneider et al. 2020, "Improving
robustness against common corruptions by covariate shift adaptation").

Each BN layer normalizes by a mix of the statistics it learned in training (the
*source*, its moving mean and variance) and those of ``n`` unlabelled *target* images:

    mean = N/(N+n) · mean_source + n/(N+n) · mean_target
    var  = N/(N+n) · var_source  + n/(N+n) · var_target

``N`` (``source_weight``) counts the source statistics as that many images: ``N = 0``
is full adaptation (the target statistics alone), a large ``N`` keeps the net as
trained. Few target images (small ``n``) give noisy statistics, which a source prior
steadies; that trade-off is what the paper's sweep over ``n`` and ``N`` measures.

The layers are adapted in the net's order, each from its input with every earlier layer
already adapted, as in a forward pass that normalizes with the mixed statistics.
"""

from __future__ import annotations

import keras
import numpy as np

from kerasbn.diagnostics._moments import bn_layers, input_moments
from kerasbn.layers import clone_with, unfuse_batch_norm

__all__ = ["adaptable_copy", "adapt_bn", "source_statistics"]


def source_statistics(model: keras.Model) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each BN layer's moving mean and variance (by name), in float64: the source
    statistics that :func:`adapt_bn` mixes with a target's."""
    return {
        layer.name: tuple(
            keras.ops.convert_to_numpy(v).astype(np.float64)
            for v in (layer.moving_mean, layer.moving_variance)
        )
        for layer in bn_layers(model)
    }


def adaptable_copy(model: keras.Model) -> tuple[keras.Model, dict]:
    """A plain-BN copy of ``model`` to adapt in place (``adapt_bn(..., in_place=True)``)
    target after target, and its statistics as trained, the ``source`` each starts from."""
    copy = clone_with(unfuse_batch_norm(model), lambda layer: None)
    return copy, source_statistics(copy)


def adapt_bn(
    model: keras.Model,
    images,
    source_weight: float = 0.0,
    batch_size: int = 256,
    *,
    source: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
    in_place: bool = False,
) -> keras.Model:
    """A copy of ``model`` whose BN statistics mix its own (weight ``source_weight``,
    Schneider et al.'s N) with those of ``images`` (weight ``len(images)``, their n);
    every other weight unchanged. ``images`` as the model takes them (uint8).

    ``in_place``: change ``model`` itself (a plain-BN model) instead of a copy, with
    ``source`` the statistics to mix in (:func:`source_statistics` of the model as
    trained): adapting one copy to many targets then costs no clone per target."""
    if source_weight < 0:
        raise ValueError(
            "source_weight is N, the number of images the training statistics count "
            f"as: 0 or more. Received: {source_weight}"
        )
    if len(images) == 0:
        raise ValueError("adapt_bn needs at least one target image. Received: 0 images")
    if in_place and source is None:
        raise ValueError(
            "adapt_bn(in_place=True) needs source=source_statistics(model as trained): "
            "the model's own statistics change as it adapts. Received: source=None"
        )
    if in_place:
        copy = model
    else:
        copy, trained = adaptable_copy(model)
        source = trained if source is None else source
    n = len(images)
    share = source_weight / (source_weight + n)  # the source's part of the mix
    for layer in bn_layers(copy):
        # Inference mode: the earlier layers normalize with their adapted statistics.
        target = input_moments(copy, images, batch_size, training=False, layers=[layer])
        for variable, old, new in zip(
            (layer.moving_mean, layer.moving_variance),
            source[layer.name],
            target[layer.name],
            strict=True,
        ):
            variable.assign((share * old + (1 - share) * new).astype(np.float32))
    return copy

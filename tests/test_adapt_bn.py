"""Test-time BN adaptation with a source prior (Schneider et al.'s N/(N+n) mixing),
against the mixed statistics computed here in NumPy from known source statistics."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from kerasbn.diagnostics import adapt_bn
from kerasbn.diagnostics.adapt_bn import source_statistics


def _net() -> keras.Model:
    keras.utils.set_random_seed(3)
    inputs = keras.Input((4,), name="x")
    h = keras.layers.Dense(3, name="d1")(inputs)
    h = keras.layers.BatchNormalization(name="bn1")(h)
    h = keras.layers.ReLU(name="relu")(h)
    h = keras.layers.Dropout(0.5, name="drop")(h)  # off at inference: no effect here
    h = keras.layers.Dense(2, name="d2")(h)
    outputs = keras.layers.BatchNormalization(name="bn2")(h)
    model = keras.Model(inputs, outputs)
    # Known source statistics and non-trivial scale and shift for both layers.
    model.get_layer("bn1").set_weights(
        [
            np.array(v, "float32")
            for v in ([1.5, 0.5, 2.0], [0.1, -0.2, 0.3], [1, -1, 0.5], [4, 2, 1])
        ]
    )
    model.get_layer("bn2").set_weights(
        [np.array(v, "float32") for v in ([1, 1], [0, 0], [0.3, -0.7], [2.5, 0.4])]
    )
    return model


def _expected(model, x, n_source: float):
    """Each layer's mixed statistics, layer after layer, in NumPy (float64)."""
    w = n_source / (n_source + len(x))
    d1 = [np.asarray(v, np.float64) for v in model.get_layer("d1").get_weights()]
    d2 = [np.asarray(v, np.float64) for v in model.get_layer("d2").get_weights()]
    g1, b1, m1, v1 = (np.asarray(v, np.float64) for v in model.get_layer("bn1").get_weights())
    m2, v2 = (np.asarray(v, np.float64) for v in model.get_layer("bn2").get_weights()[2:])
    eps = model.get_layer("bn1").epsilon
    h1 = x @ d1[0] + d1[1]
    mean1, var1 = w * m1 + (1 - w) * h1.mean(0), w * v1 + (1 - w) * h1.var(0)
    # The second layer sees the first normalized with its mixed statistics.
    h2 = np.maximum(g1 * (h1 - mean1) / np.sqrt(var1 + eps) + b1, 0) @ d2[0] + d2[1]
    mean2, var2 = w * m2 + (1 - w) * h2.mean(0), w * v2 + (1 - w) * h2.var(0)
    return {"bn1": (mean1, var1), "bn2": (mean2, var2)}


@pytest.mark.parametrize(("n_source", "n_target"), [(0, 50), (16, 8), (64, 1), (5, 300)])
def test_mixed_statistics_are_the_n_weighted_mean_of_source_and_target(n_source, n_target):
    model = _net()
    x = np.random.default_rng(n_target).normal(1.0, 2.0, (n_target, 4)).astype("float32")
    before = {w.path: keras.ops.convert_to_numpy(w).copy() for w in model.weights}
    adapted = adapt_bn(model, x, n_source, batch_size=32)
    for name, (mean, variance) in _expected(model, x.astype(np.float64), n_source).items():
        layer = adapted.get_layer(name)
        np.testing.assert_allclose(layer.moving_mean, mean, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(layer.moving_variance, variance, rtol=1e-4, atol=1e-5)
    for weight in model.weights:  # the model passed in is left alone
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(weight), before[weight.path])


def test_in_place_adaptation_starts_from_the_given_source_each_time():
    model = _net()
    source = source_statistics(model)
    first = np.random.default_rng(0).normal(size=(20, 4)).astype("float32")
    second = np.random.default_rng(1).normal(3.0, 1.0, (30, 4)).astype("float32")
    work = adapt_bn(model, first, 0)  # a plain-BN copy to adapt in place
    adapt_bn(work, second, 16, source=source, in_place=True)
    expected = _expected(_net(), second.astype(np.float64), 16)  # from the source, not `first`
    for name, (mean, variance) in expected.items():
        np.testing.assert_allclose(work.get_layer(name).moving_mean, mean, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(
            work.get_layer(name).moving_variance, variance, rtol=1e-4, atol=1e-5
        )


def test_bad_arguments_are_refused_naming_the_fix():
    model = _net()
    x = np.zeros((4, 4), "float32")
    with pytest.raises(ValueError, match=r"0 or more\. Received: -1"):
        adapt_bn(model, x, -1)
    with pytest.raises(ValueError, match="at least one target image"):
        adapt_bn(model, x[:0], 0)
    with pytest.raises(ValueError, match=r"source=source_statistics"):
        adapt_bn(model, x, 0, in_place=True)

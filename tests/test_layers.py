"""FusedBatchNormalization must be Keras' BN, computed by another kernel."""

import dataclasses

import keras
import numpy as np
import pytest

import kerasbn
from kerasbn.layers import FusedBatchNormalization, unfuse_batch_norm
from kerasbn.models import count_layers, inference_copy

SHAPES = {"conv": (16, 6, 5, 3), "dense": (32, 7)}


def _pair(shape, **kwargs):
    """A plain and a fused BN built on ``shape`` with the same non-trivial weights."""
    plain = keras.layers.BatchNormalization(momentum=0.9, **kwargs)
    fused = FusedBatchNormalization(momentum=0.9, **kwargs)
    plain.build(shape)
    fused.build(shape)
    rng = np.random.default_rng(0)
    weights = [rng.normal(1.0, 0.3, w.shape).astype("float32") for w in plain.weights]
    weights = [
        np.abs(w) if "variance" in v.path else w
        for w, v in zip(weights, plain.weights, strict=True)
    ]
    plain.set_weights(weights)
    fused.set_weights(weights)
    return plain, fused


def _inputs(shape, seed=1):
    # A shifted, scaled input, so mean and variance corrections both matter.
    return np.random.default_rng(seed).normal(2.0, 3.0, shape).astype("float32")


@pytest.mark.parametrize("kind", sorted(SHAPES))
def test_training_step_matches_keras_bn(kind):
    shape = SHAPES[kind]
    plain, fused = _pair(shape)
    x = _inputs(shape)
    y_plain = keras.ops.convert_to_numpy(plain(x, training=True))
    y_fused = keras.ops.convert_to_numpy(fused(x, training=True))
    np.testing.assert_allclose(y_fused, y_plain, atol=2e-5)
    # Same moving-average update, with the biased batch variance as Keras uses.
    for a, b in zip(fused.non_trainable_weights, plain.non_trainable_weights, strict=True):
        np.testing.assert_allclose(*map(keras.ops.convert_to_numpy, (a, b)), rtol=1e-5)
    assert not np.allclose(keras.ops.convert_to_numpy(plain.moving_variance), 1.0)


@pytest.mark.parametrize("kind", sorted(SHAPES))
def test_inference_matches_keras_bn(kind):
    shape = SHAPES[kind]
    plain, fused = _pair(shape)
    x = _inputs(shape, seed=2)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(fused(x, training=False)),
        keras.ops.convert_to_numpy(plain(x, training=False)),
        atol=2e-5,
    )


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow gradients")
@pytest.mark.parametrize("kind", sorted(SHAPES))
def test_gradients_match_keras_bn(kind):
    import tensorflow as tf

    shape = SHAPES[kind]
    plain, fused = _pair(shape)
    x = tf.constant(_inputs(shape, seed=3))
    # A loss that is not symmetric in the outputs, so all three gradients are non-zero.
    weight = tf.constant(_inputs(shape, seed=4))
    grads = []
    for layer in (plain, fused):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.nn.relu(layer(x, training=True)) * weight)
        grads.append(tape.gradient(loss, [x, layer.gamma, layer.beta]))
    for a, b in zip(*grads, strict=True):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "kwargs", [{"epsilon": 1e-6}, {"renorm": True}, {"center": False, "scale": False}]
)
def test_options_outside_the_kernel_still_match(kwargs):
    # Small epsilon and renorm fall back to Keras' BN; no gamma/beta is fused with ones
    # and zeros.
    shape = SHAPES["conv"]
    plain, fused = _pair(shape, **kwargs)
    x = _inputs(shape, seed=5)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(fused(x, training=True)),
        keras.ops.convert_to_numpy(plain(x, training=True)),
        atol=2e-5,
    )


def _fused_model_with_statistics():
    model = kerasbn.build_model("mnist", "bn+dropout", fused_bn=True)
    plain = kerasbn.build_model("mnist", "bn+dropout")
    bn_layers = count_layers(plain, keras.layers.BatchNormalization)
    assert count_layers(model, FusedBatchNormalization) == bn_layers > 0
    for layer in model.layers:
        if isinstance(layer, FusedBatchNormalization):
            layer.moving_mean.assign(np.full(layer.moving_mean.shape, 0.2, "float32"))
    return model


@pytest.mark.parametrize("copy", ["inference_copy", "unfuse_batch_norm"])
def test_fused_model_becomes_plain_keras_bn(copy):
    model = _fused_model_with_statistics()
    if copy == "inference_copy":
        clean = inference_copy(model, "mnist", "bn+dropout")
    else:
        clean = unfuse_batch_norm(model)
    assert count_layers(clean, FusedBatchNormalization) == 0
    assert [layer.name for layer in clean.layers] == [layer.name for layer in model.layers]
    images = np.random.default_rng(6).integers(0, 256, (4, 28, 28, 1), dtype=np.uint8)
    np.testing.assert_allclose(
        clean.predict(images, verbose=0), model.predict(images, verbose=0), atol=1e-5
    )
    assert unfuse_batch_norm(clean) is clean


def test_save_model_writes_plain_keras_bn(tmp_path):
    model = _fused_model_with_statistics()
    # The saved file names only Keras classes, so kerasbn's safe loader accepts it.
    path = kerasbn.save_model(model, tmp_path / "m.keras", {"dataset": "mnist"})
    loaded = kerasbn.load_model(path)
    assert count_layers(loaded, FusedBatchNormalization) == 0
    images = np.random.default_rng(7).integers(0, 256, (4, 28, 28, 1), dtype=np.uint8)
    np.testing.assert_allclose(
        loaded.predict(images, verbose=0), model.predict(images, verbose=0), atol=1e-5
    )


def test_training_fused_or_not_gives_the_same_model(digits, quick_config):
    config = quick_config(epochs=1, seed=3)
    fused = kerasbn.train(digits, "bn", dataclasses.replace(config, fused_bn=True))
    plain = kerasbn.train(digits, "bn", dataclasses.replace(config, fused_bn=False))
    assert count_layers(fused.model, FusedBatchNormalization) > 0
    assert count_layers(plain.model, FusedBatchNormalization) == 0
    # Float rounding differs between the kernels and Adam amplifies it in single weights
    # whose gradients are near zero, so each weight tensor is compared as a whole.
    for a, b in zip(fused.model.weights, plain.model.weights, strict=True):
        a, b = keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b)
        assert np.linalg.norm(a - b) <= 1e-2 * np.linalg.norm(b) + 1e-6
    last = [result.history["val_accuracy"].iloc[-1] for result in (fused, plain)]
    assert abs(last[0] - last[1]) <= 0.02


def test_fused_bn_setting_is_checked():
    with pytest.raises(ValueError, match=r"fused_bn must be .*Received: 'yes'"):
        kerasbn.TrainConfig(fused_bn="yes")

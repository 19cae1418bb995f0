"""GhostBatchNormalization against a NumPy reference of BN over virtual sub-batches."""

import zipfile

import keras
import numpy as np
import pytest

from kerasbn.layers import GhostBatchNormalization, unfuse_batch_norm
from kerasbn.loading import load_model
from kerasbn.saving import save_model

MOMENTUM, EPSILON = 0.9, 1e-3


def _layer(shape, virtual_batch_size):
    layer = GhostBatchNormalization(
        virtual_batch_size=virtual_batch_size, momentum=MOMENTUM, epsilon=EPSILON
    )
    layer.build(shape)
    rng = np.random.default_rng(1)
    channels = shape[-1]
    layer.set_weights(
        [
            rng.normal(1.0, 0.3, channels).astype("float32"),  # gamma
            rng.normal(0.0, 0.3, channels).astype("float32"),  # beta
            rng.normal(0.0, 1.0, channels).astype("float32"),  # moving mean
            rng.uniform(0.5, 2.0, channels).astype("float32"),  # moving variance
        ]
    )
    return layer


def _reference(x, size, gamma, beta, moving_mean, moving_variance):
    """Each slice of ``size`` examples (the last one shorter) normalized by its own biased
    mean and variance over examples and positions; the moving statistics updated with
    the example-weighted average of the slices' moments."""
    axes = tuple(range(x.ndim - 1))
    y, means, variances, counts = [], [], [], []
    for start in range(0, len(x), size):
        part = x[start : start + size].astype(np.float64)
        mean, variance = part.mean(axis=axes), part.var(axis=axes)
        y.append((part - mean) / np.sqrt(variance + EPSILON) * gamma + beta)
        means.append(mean)
        variances.append(variance)
        counts.append(len(part))
    share = np.array(counts, float)[:, None] / len(x)
    new_mean = MOMENTUM * moving_mean + (1 - MOMENTUM) * (share * means).sum(0)
    new_variance = MOMENTUM * moving_variance + (1 - MOMENTUM) * (share * variances).sum(0)
    return np.concatenate(y), new_mean, new_variance


@pytest.mark.parametrize(
    "shape, size",
    [((12, 5, 4, 3), 4), ((10, 5, 4, 3), 4), ((9, 6), 2), ((9, 6), 1 + 8)],
    ids=["conv-even", "conv-ragged", "dense-ragged", "dense-one-ghost"],
)
def test_training_step_normalizes_each_ghost_batch(shape, size):
    layer = _layer(shape, size)
    gamma, beta, mean0, var0 = (w.copy() for w in layer.get_weights())
    x = np.random.default_rng(2).normal(3.0, 2.0, shape).astype("float32")
    got = keras.ops.convert_to_numpy(layer(x, training=True))
    want, want_mean, want_var = _reference(x, size, gamma, beta, mean0, var0)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(layer.moving_mean.numpy(), want_mean, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(layer.moving_variance.numpy(), want_var, rtol=1e-5, atol=1e-5)


def test_without_ghosts_and_at_inference_it_is_keras_bn():
    shape = (8, 3, 3, 4)
    x = np.random.default_rng(3).normal(1.0, 2.0, shape).astype("float32")
    for size in (None, 8, 64):  # no ghost batches, or one covering the batch
        ghost = _layer(shape, size)
        plain = keras.layers.BatchNormalization(momentum=MOMENTUM, epsilon=EPSILON)
        plain.build(shape)
        plain.set_weights(ghost.get_weights())
        for training in (True, False):
            np.testing.assert_allclose(
                keras.ops.convert_to_numpy(ghost(x, training=training)),
                keras.ops.convert_to_numpy(plain(x, training=training)),
                rtol=1e-5,
                atol=1e-5,
            )
    small = _layer(shape, 2)
    before = small.get_weights()
    inference = keras.ops.convert_to_numpy(small(x, training=False))
    moving_mean, moving_variance = before[2], before[3]
    want = (x - moving_mean) / np.sqrt(moving_variance + EPSILON) * before[0] + before[1]
    np.testing.assert_allclose(inference, want, rtol=1e-4, atol=1e-4)
    for a, b in zip(small.get_weights(), before, strict=True):
        np.testing.assert_array_equal(a, b)  # inference updates nothing


def test_a_ghost_model_trains_with_a_ragged_batch_and_saves_as_plain_bn(tmp_path):
    inputs = keras.Input((6, 6, 1))
    x = keras.layers.Conv2D(4, 3, use_bias=False, name="conv")(inputs)
    x = GhostBatchNormalization(virtual_batch_size=4, name="bn")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
    model.compile("sgd", "sparse_categorical_crossentropy")
    rng = np.random.default_rng(4)
    images, labels = rng.normal(size=(22, 6, 6, 1)), rng.integers(0, 3, 22)
    # Batches of 10, 10 and 2: the compiled step sees an unknown batch size.
    history = model.fit(images, labels, batch_size=10, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert model.get_layer("bn").moving_mean.numpy().any()

    plain = unfuse_batch_norm(model)
    assert type(plain.get_layer("bn")) is keras.layers.BatchNormalization
    np.testing.assert_allclose(plain.predict(images, verbose=0), model.predict(images, verbose=0))
    path = save_model(model, tmp_path / "ghost.keras", {})
    with zipfile.ZipFile(path) as archive:
        config = archive.read("config.json").decode()
    assert '"BatchNormalization"' in config and "Ghost" not in config
    loaded = load_model(path, check_manifest=False)
    np.testing.assert_allclose(loaded.predict(images, verbose=0), model.predict(images, verbose=0))


@pytest.mark.parametrize("bad", [0, -2, 2.5, "4"])
def test_bad_virtual_batch_sizes_are_refused(bad):
    with pytest.raises((ValueError, TypeError), match="virtual_batch_size|Received"):
        GhostBatchNormalization(virtual_batch_size=bad)


def test_a_variant_with_ghost_batches_trains_and_serves_plain_bn(digits, quick_config):
    from dataclasses import replace

    from kerasbn.models import count_layers
    from kerasbn.training import train
    from kerasbn.variants import get_variant

    bn = get_variant("bn")
    ghost = replace(bn, name="bn-ghost8", ghost_batch=8)
    assert "ghost_batch" not in bn.to_dict() and ghost.to_dict()["ghost_batch"] == 8
    result = train(digits, ghost, quick_config(epochs=1))
    layers = [la for la in result.model.layers if isinstance(la, GhostBatchNormalization)]
    assert layers and {la.virtual_batch_size for la in layers} == {8}
    served = result.inference_model()
    assert count_layers(served, GhostBatchNormalization) == 0
    assert count_layers(served, keras.layers.BatchNormalization) == len(layers)
    images = digits.x_test[:64]
    np.testing.assert_allclose(
        served.predict(images, verbose=0), result.model.predict(images, verbose=0), atol=1e-6
    )
    with pytest.raises(ValueError, match="ghost_batch .*Received: 0"):
        replace(bn, ghost_batch=0)


def test_compare_with_ghost_batches_records_them_and_saves_plain_bn(digits, quick_config, tmp_path):
    import json

    from kerasbn import compare

    compare(
        digits,
        "base,bn",
        quick_config(epochs=1),
        out_dir=tmp_path / "run",
        save_models=tmp_path / "models",
        ghost_batch=8,
        tensorboard=False,
    )
    recorded = {
        v["name"]: v.get("ghost_batch")
        for v in json.loads((tmp_path / "run" / "config.json").read_text())["variants"]
    }
    assert recorded == {"base": None, "bn": 8}  # only the BN variant has BN to split
    with zipfile.ZipFile(tmp_path / "models" / "digits-bn.keras") as archive:
        assert "Ghost" not in archive.read("config.json").decode()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--ghost-batch", "0"], "N must be at least 2. Received: 0"),
        # One example normalized by itself is all zeros: no ghost batch at all.
        (["--ghost-batch", "1"], "N must be at least 2. Received: 1"),
        (["--ghost-batch", "8", "--sync-bn"], "choose one"),
        # No BN layer to split the batch for: the flag would do nothing.
        (["--ghost-batch", "8", "--variants", "base,dropout"], "none of these variants has BN"),
    ],
)
def test_compare_cli_refuses_bad_ghost_batches(argv, message, tmp_path, capsys):
    from kerasbn.cli.compare import main

    with pytest.raises(SystemExit) as stop:
        main(["--dataset", "digits", "--variants", "bn", "--out", str(tmp_path / "r"), *argv])
    assert not (tmp_path / "r").exists()  # refused before anything was written
    assert stop.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "r" / "complete.json").exists()

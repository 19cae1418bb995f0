"""BN diagnostics (issue 16): precise BN statistics against NumPy, computed here
independently, and calibration scores against hand-computed values."""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest

from kerasbn import build_model, load_model, save_model
from kerasbn.diagnostics import (
    bn_input_statistics,
    calibration_scores,
    expected_calibration_error,
    recalibrate_bn,
)
from kerasbn.diagnostics._moments import input_moments


def _dense_bn_net(seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((4,), name="x")
    h = keras.layers.Dense(3, name="d1")(inputs)
    h = keras.layers.BatchNormalization(name="bn1")(h)
    h = keras.layers.ReLU(name="relu")(h)
    h = keras.layers.Dropout(0.5, name="drop")(h)
    h = keras.layers.Dense(2, name="d2")(h)
    outputs = keras.layers.BatchNormalization(name="bn2")(h)
    model = keras.Model(inputs, outputs)
    # Non-trivial BN parameters, so that the second layer's input depends on them.
    model.get_layer("bn1").gamma.assign([1.5, 0.5, 2.0])
    model.get_layer("bn1").beta.assign([0.1, -0.2, 0.3])
    return model


def _numpy_statistics(model: keras.Model, x: np.ndarray, batch: int):
    """Both BN layers' input statistics, with BN on batch statistics and no Dropout."""
    w1, b1 = model.get_layer("d1").get_weights()
    gamma, beta, _, _ = model.get_layer("bn1").get_weights()
    w2, b2 = model.get_layer("d2").get_weights()
    eps = model.get_layer("bn1").epsilon
    first = x @ w1 + b1
    second = []
    for start in range(0, len(x), batch):
        h = first[start : start + batch]
        normed = gamma * (h - h.mean(0)) / np.sqrt(h.var(0) + eps) + beta
        second.append(np.maximum(normed, 0) @ w2 + b2)
    second = np.concatenate(second)
    return {"bn1": (first.mean(0), first.var(0)), "bn2": (second.mean(0), second.var(0))}


def test_precise_statistics_are_numpys_mean_and_variance_of_the_bn_inputs():
    model = _dense_bn_net()
    x = np.random.default_rng(1).normal(2.0, 3.0, (640, 4)).astype("float32")
    expected = _numpy_statistics(model, x.astype(np.float64), batch=64)
    stats = bn_input_statistics(model, x, batch_size=64)
    for name in ("bn1", "bn2"):
        np.testing.assert_allclose(stats[name][0], expected[name][0], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(stats[name][1], expected[name][1], rtol=1e-4, atol=1e-4)
    before = {w.path: keras.ops.convert_to_numpy(w).copy() for w in model.weights}
    precise = recalibrate_bn(model, x, batch_size=64, num_batches=None)
    for name in ("bn1", "bn2"):
        layer = precise.get_layer(name)
        np.testing.assert_allclose(layer.moving_mean, expected[name][0], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(layer.moving_variance, expected[name][1], rtol=1e-4, atol=1e-4)
    for weight in precise.weights:  # everything but the moving statistics is unchanged
        if "moving" not in weight.path:
            np.testing.assert_array_equal(keras.ops.convert_to_numpy(weight), before[weight.path])
    for weight in model.weights:  # and the model passed in is left alone
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(weight), before[weight.path])


def test_moments_pool_batches_of_layers_with_different_spatial_sizes():
    # Two BN layers at 6x6 and 3x3 positions, a mean 20 times the spread (where a
    # running sum of squares would cancel), and a last batch of 7 of 64 images: the
    # pooled moments must equal NumPy's over all positions of all images at once.
    keras.utils.set_random_seed(3)
    inputs = keras.Input((6, 6, 2))
    h = keras.layers.Conv2D(3, 3, padding="same", name="conv")(inputs)
    h = keras.layers.BatchNormalization(name="bn_a")(h)
    h = keras.layers.MaxPooling2D()(h)
    outputs = keras.layers.BatchNormalization(name="bn_b")(h)
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(4).normal(100.0, 5.0, (64, 6, 6, 2)).astype("float32")
    taps = keras.Model(inputs, [model.get_layer(n).input for n in ("bn_a", "bn_b")])
    expected = [np.asarray(t, np.float64).reshape(-1, 3) for t in taps.predict(x, verbose=0)]
    moments = input_moments(model, x, batch_size=19, training=False)
    for name, values in zip(("bn_a", "bn_b"), expected, strict=True):
        np.testing.assert_allclose(moments[name][0], values.mean(0), rtol=1e-5)
        np.testing.assert_allclose(moments[name][1], values.var(0), rtol=1e-3)


def test_precise_bn_works_on_a_saved_kerasbn_model(tmp_path, digits):
    path = save_model(build_model("digits", "bn+dropout"), tmp_path / "m.keras", {})
    model = load_model(path)
    # Quietly: a probe built on model.inputs (a list) made Keras warn on every batch.
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        precise = recalibrate_bn(model, digits.x_train, batch_size=128, num_batches=4)
    bn = [layer for layer in precise.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert bn and all(not np.allclose(layer.moving_variance, 1.0) for layer in bn)
    probabilities = keras.ops.convert_to_numpy(precise(digits.x_test[:8], training=False))
    np.testing.assert_allclose(probabilities.sum(1), 1.0, rtol=1e-5)


def test_temperature_fit_recovers_the_temperature_the_labels_were_drawn_at():
    from scipy.special import log_softmax, softmax

    from kerasbn.diagnostics import fit_temperature, scale_temperature

    rng = np.random.default_rng(0)
    logits = rng.normal(0.0, 3.0, size=(20_000, 5))
    # Labels drawn from softmax(logits / 2): the model's own softmax(logits) is
    # over-confident, and T = 2 is the calibrated temperature.
    drawn = softmax(logits / 2.0, axis=1)
    labels = np.array([rng.choice(5, p=row) for row in drawn])
    probabilities = softmax(logits, axis=1)
    t = fit_temperature(probabilities, labels)
    assert t == pytest.approx(2.0, rel=0.05)

    def nll(temperature):
        return -log_softmax(logits / temperature, axis=1)[np.arange(len(labels)), labels].mean()

    assert nll(t) <= min(nll(t * 0.97), nll(t * 1.03))
    scaled = scale_temperature(probabilities, t)
    np.testing.assert_allclose(scaled, softmax(logits / t, axis=1), atol=1e-9)
    assert (scaled.argmax(1) == probabilities.argmax(1)).all()  # no prediction changes
    np.testing.assert_allclose(scale_temperature(probabilities, 1.0), probabilities, atol=1e-12)


def test_precise_bn_can_keep_dropout_and_augmentation_on():
    # Dropout(0.5) on constant ones: 0 or 2 with equal odds, so the BN input has mean 1
    # and variance 1 with Dropout on, variance 0 with it off.
    inputs = keras.Input((1,))
    outputs = keras.layers.BatchNormalization(name="bn")(keras.layers.Dropout(0.5)(inputs))
    dropout_net = keras.Model(inputs, outputs)
    ones = np.ones((256 * 40, 1), dtype=np.float32)
    keras.utils.set_random_seed(0)
    mean, variance = bn_input_statistics(dropout_net, ones, 256, dropout=True)["bn"]
    assert mean[0] == pytest.approx(1.0, abs=0.03) and variance[0] == pytest.approx(1.0, abs=0.03)
    mean, variance = bn_input_statistics(dropout_net, ones, 256)["bn"]
    assert mean[0] == pytest.approx(1.0) and variance[0] == pytest.approx(0.0, abs=1e-9)
    # A horizontal flip of images whose left column is 0 and right column 1: each
    # position is 0 or 1 with equal odds when flipping is on (mean 0.5, variance 0.25).
    inputs = keras.Input((1, 2, 1))
    flipped = keras.layers.RandomFlip("horizontal", seed=1)(inputs)
    outputs = keras.layers.BatchNormalization(name="bn")(keras.layers.Flatten()(flipped))
    flip_net = keras.Model(inputs, outputs)
    images = np.tile(np.array([0.0, 1.0], np.float32).reshape(1, 1, 2, 1), (256 * 40, 1, 1, 1))
    mean, variance = bn_input_statistics(flip_net, images, 256, augment=True)["bn"]
    np.testing.assert_allclose(mean, [0.5, 0.5], atol=0.03)
    np.testing.assert_allclose(variance, [0.25, 0.25], atol=0.01)
    mean, variance = bn_input_statistics(flip_net, images, 256)["bn"]
    np.testing.assert_allclose(mean, [0.0, 1.0], atol=1e-7)
    np.testing.assert_allclose(variance, [0.0, 0.0], atol=1e-9)
    # recalibrate_bn passes the choice on: the copy's moving variance is Dropout's 1.
    copy = recalibrate_bn(dropout_net, ones, 256, num_batches=None, dropout=True)
    assert copy.get_layer("bn").moving_variance.numpy()[0] == pytest.approx(1.0, abs=0.03)


def test_ece_is_zero_when_confidence_matches_accuracy():
    # Confidence 0.75 on every image, right on 3 of every 4: perfectly calibrated.
    probabilities = np.tile([[0.75, 0.25]], (8, 1))
    labels = np.array([0, 0, 0, 1] * 2)
    assert expected_calibration_error(probabilities, labels) == pytest.approx(0.0)


def test_calibration_scores_match_hand_computed_values():
    probabilities = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.45, 0.55]])
    labels = np.array([0, 1, 1, 0])
    # Confidences 0.9, 0.6, 0.8, 0.55 fall in 15 bins of width 1/15: bins 13, 8, 11, 8.
    # Bin 13: right, |1 - 0.9| = 0.1; bin 11: right, 0.2; bin 8: 0.6 and 0.55 both
    # wrong, mean confidence 0.575: |0 - 0.575|, weighted by its two images.
    ece = (0.1 + 0.2 + 2 * 0.575) / 4
    nll = -(np.log(0.9) + np.log(0.4) + np.log(0.8) + np.log(0.45)) / 4
    brier = (2 * 0.1**2 + 2 * 0.6**2 + 2 * 0.2**2 + 2 * 0.55**2) / 4
    scores = calibration_scores(probabilities, labels)
    assert scores == pytest.approx({"ece": ece, "nll": nll, "brier": brier})
    with pytest.raises(ValueError, match="Received"):
        calibration_scores(probabilities, labels[:3])


def test_every_comparison_run_reports_calibration_and_precise_bn(tmp_path, digits):
    import pandas as pd

    from kerasbn import compare, default_config

    out, models = tmp_path / "run", tmp_path / "models"
    config = default_config("digits", epochs=2, verbose=0)
    compare(
        digits,
        "base,bn",
        config,
        out_dir=out,
        save_models=models,
        tensorboard=False,
        precise_bn=True,
        activations=True,
    )
    runs = pd.read_csv(out / "runs.csv").set_index("variant")
    for variant in ("base", "bn"):
        probabilities = np.load(out / "probabilities" / f"digits-{variant}-seed0.npy")
        true = probabilities[np.arange(len(digits.y_test)), digits.y_test]
        assert runs.loc[variant, "nll"] == pytest.approx(-np.log(true).mean(), rel=1e-5)
        assert 0 <= runs.loc[variant, "ece"] <= 1
    assert np.isnan(runs.loc["base", "test_accuracy_precise_bn"])  # no BN to recalibrate
    assert 0.1 < runs.loc["bn", "test_accuracy_precise_bn"] <= 1
    # Variance shift: one row per BN layer of the BN variant, none for base.
    shift = pd.read_csv(out / "variance_shift.csv")
    bn_model = load_model(models / "digits-bn.keras")
    bn_names = [
        la.name for la in bn_model.layers if isinstance(la, keras.layers.BatchNormalization)
    ]
    assert set(shift["variant"]) == {"bn"} and list(shift["layer"]) == bn_names
    assert (shift["max_shift"] >= shift["mean_shift"]).all() and (shift["mean_shift"] >= 1).all()
    assert runs.loc["bn", "variance_shift"] == pytest.approx(shift["mean_shift"].max())
    # --precise-bn: the saved copy holds the population statistics of the BN inputs.
    precise = load_model(models / "digits-bn-precise-bn.keras")
    expected = bn_input_statistics(bn_model, digits.x_train, batch_size=256, num_batches=200)
    name = bn_names[0]
    mean, variance = expected[name]
    np.testing.assert_allclose(precise.get_layer(name).moving_mean.numpy(), mean, rtol=1e-4)
    np.testing.assert_allclose(
        precise.get_layer(name).moving_variance.numpy(), variance, rtol=1e-3, atol=1e-6
    )
    assert not (models / "digits-base-precise-bn.keras").exists()
    # --activations: epochs 0..2 for each ReLU of each variant, percentiles ordered.
    acts = pd.read_csv(out / "activations.csv")
    relus = [la.name for la in bn_model.layers if isinstance(la, keras.layers.ReLU)]
    for variant in ("base", "bn"):
        rows = acts[acts["variant"] == variant]
        assert sorted(set(rows["epoch"])) == [0, 1, 2] and len(rows) == 3 * len(relus)
    assert (acts["p15"] <= acts["p50"]).all() and (acts["p50"] <= acts["p85"]).all()
    for figure in ("calibration.png", "activations.png", "bn_statistics.png"):
        assert (out / figure).stat().st_size > 10_000
    # The README's diagnostics table shows these numbers.
    from kerasbn.diagnostics.table import diagnostics_markdown

    table = diagnostics_markdown([out])
    bn_row = next(line for line in table.splitlines() if "| `bn` " in line)
    base_row = next(line for line in table.splitlines() if "| `base` " in line)
    assert f"| {100 * runs.loc['bn', 'test_accuracy_precise_bn']:.2f} " in bn_row
    assert f"| {runs.loc['bn', 'variance_shift']:.3f} " in bn_row
    assert f"| {100 * runs.loc['base', 'ece']:.2f} " in base_row and base_row.count("–") == 3
    # Temperature scaling: T from the validation split; the test ECE after dividing the
    # log-probabilities by it (softmax written out here).
    for variant in ("base", "bn"):
        t = runs.loc[variant, "temperature"]
        assert 0.05 < t < 20
        p = np.load(out / "probabilities" / f"digits-{variant}-seed0.npy").astype(np.float64)
        z = np.log(p) / t
        scaled = np.exp(z - z.max(1, keepdims=True))
        scaled /= scaled.sum(1, keepdims=True)
        assert runs.loc[variant, "ece_temperature_scaled"] == pytest.approx(
            expected_calibration_error(scaled, digits.y_test), abs=1e-6
        )
    assert 0.1 < runs.loc["bn", "test_accuracy_precise_bn_as_trained"] <= 1
    assert np.isnan(runs.loc["base", "test_accuracy_precise_bn_as_trained"])
    assert "The diagnostics took" in table and "code at" in table


def test_activation_percentiles_are_numpys_percentiles_of_the_relu_inputs(tmp_path):
    from kerasbn.diagnostics import ActivationPercentiles

    keras.utils.set_random_seed(6)
    inputs = keras.Input((5,))
    h = keras.layers.Dense(7, name="hidden")(inputs)
    h = keras.layers.ReLU(name="relu")(h)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="out")(h))
    model.compile("sgd", "sparse_categorical_crossentropy")
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(64, 5)).astype("float32"), rng.integers(0, 3, 64)
    probe_images = x[:16]
    seen = []

    class Weights(keras.callbacks.Callback):  # the Dense weights each record is taken with
        def on_train_begin(self, logs=None):
            seen.append(self.model.get_layer("hidden").get_weights())

        def on_epoch_end(self, epoch, logs=None):
            seen.append(self.model.get_layer("hidden").get_weights())

    path = tmp_path / "acts.csv"
    recorder = ActivationPercentiles(probe_images, path)
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[Weights(), recorder])
    table = recorder.frame()
    assert list(table["epoch"]) == [0, 1, 2] and set(table["layer"]) == {"relu"}
    for (w, b), (_, row) in zip(seen, table.iterrows(), strict=True):
        pre = probe_images.astype(np.float64) @ w + b
        np.testing.assert_allclose(
            [row["p15"], row["p50"], row["p85"]], np.percentile(pre, [15, 50, 85]), rtol=1e-5
        )
    # A resumed run reads the file back and replaces the epochs it trains again.
    again = ActivationPercentiles(probe_images, path)
    model.fit(x, y, epochs=2, initial_epoch=1, verbose=0, callbacks=[again])
    assert list(again.frame()["epoch"]) == [0, 1, 2]
    assert again.frame()["p50"].iloc[:2].tolist() == table["p50"].iloc[:2].tolist()
    with pytest.raises(ValueError, match="no ReLU layer"):
        plain = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)])
        plain.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        plain.fit(x, y % 3, epochs=1, verbose=0, callbacks=[ActivationPercentiles(x, every=1)])


def _dense_then_bn(rate: float) -> keras.Model:
    keras.utils.set_random_seed(3)
    inputs = keras.Input((6,))
    h = keras.layers.Dense(4, name="dense")(inputs)
    if rate:
        h = keras.layers.Dropout(rate, name="drop")(h)
    outputs = keras.layers.BatchNormalization(name="bn")(h)
    return keras.Model(inputs, outputs)


def test_variance_shift_is_one_without_dropout_and_above_one_with_it():
    from kerasbn.diagnostics import variance_shift

    x = np.random.default_rng(4).normal(1.0, 2.0, (2000, 6)).astype("float32")
    plain = recalibrate_bn(_dense_then_bn(0.0), x, batch_size=250, num_batches=None)
    shift = variance_shift(plain, x).set_index("layer")
    assert shift.loc["bn", "mean_shift"] == pytest.approx(1.0, abs=1e-4)
    # With Dropout before BN, training statistics see the dropped, rescaled inputs:
    # their variance, computed here from the Dense outputs and a Bernoulli mask, is what
    # the moving variance holds after training; at inference the inputs are undropped.
    dropped = _dense_then_bn(0.5)
    w, b = dropped.get_layer("dense").get_weights()
    h = x.astype(np.float64) @ w + b
    mask = np.random.default_rng(5).random(h.shape) >= 0.5
    training_variance = (h * mask / 0.5).var(axis=0)
    dropped.get_layer("bn").moving_variance.assign(training_variance.astype("float32"))
    # Each variance plus BN's epsilon, as BN divides by them.
    eps = dropped.get_layer("bn").epsilon
    a, b = h.var(0) + eps, training_variance + eps
    expected = np.maximum(a / b, b / a)
    shift = variance_shift(dropped, x).set_index("layer")
    assert shift.loc["bn", "mean_shift"] == pytest.approx(expected.mean(), rel=1e-4)
    assert shift.loc["bn", "max_shift"] == pytest.approx(expected.max(), rel=1e-4)
    assert shift.loc["bn", "mean_shift"] > 1.2


def test_a_dead_channel_reads_as_no_shift():
    """BN after a ReLU: a unit that never fires has no variance at all, at training and
    at inference; BN scales it by its epsilon alone either way, so there is no shift."""
    from kerasbn.diagnostics import variance_shift

    x = np.random.default_rng(6).normal(0.0, 1.0, (500, 6)).astype("float32")
    model = _dense_then_bn(0.0)
    w, b = model.get_layer("dense").get_weights()
    w[:, 0], b[0] = 0.0, 0.0  # unit 0 outputs exactly 0 for every image
    model.get_layer("dense").set_weights([w, b])
    moving = np.ones(w.shape[1], dtype="float32")
    moving[0] = 1e-9  # what a long run's moving average of a zero variance comes to
    model.get_layer("bn").moving_variance.assign(moving)
    shift = variance_shift(model, x).set_index("layer")
    eps = model.get_layer("bn").epsilon
    assert shift.loc["bn", "max_shift"] < 1e3  # the bare ratio 1e-9 / 1e-12 would be 1000
    h = x.astype(np.float64) @ w + b
    a, m = h.var(0)[1:] + eps, 1.0 + eps
    assert shift.loc["bn", "max_shift"] == pytest.approx(np.maximum(a / m, m / a).max(), rel=1e-4)


def test_precise_bn_as_trained_clones_a_net_compiled_with_label_smoothing():
    # The training net is compiled (CIFAR-10's recipe smooths labels); cloning it for
    # precise BN with Dropout on re-creates its loss from the config.
    from kerasbn.training import compile_classifier

    model = _dense_bn_net()
    compile_classifier(model, "sgd", label_smoothing=0.1)
    x = np.random.default_rng(0).normal(size=(512, 4)).astype("float32")
    copy = recalibrate_bn(model, x, 256, num_batches=None, dropout=True)
    assert copy.get_layer("bn1").moving_variance.numpy().shape == (3,)

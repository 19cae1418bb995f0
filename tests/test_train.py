from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

import kerasbn
from kerasbn import TrainConfig, default_config, evaluate, get_strategy, train


def test_default_configs_differ_per_dataset_and_validate():
    assert default_config("cifar10").epochs == 15
    assert default_config("digits").batch_size == 32
    assert default_config("mnist", epochs=3).epochs == 3
    for bad in (
        dict(epochs=0),
        dict(batch_size=-1),
        dict(learning_rate=0.0),
        dict(optimizer="rmsprop"),
        dict(lr_schedule="step"),
        dict(precision="float16"),
        dict(weight_decay=-1e-4),
        dict(label_smoothing=1.0),
        dict(label_smoothing=-0.1),
    ):
        with pytest.raises(ValueError, match="Received"):
            replace(TrainConfig(), **bad)


def test_warmup_then_cosine_and_short_runs_still_decay():
    from kerasbn.training import learning_rate_schedule

    warm = default_config("cifar10", learning_rate=1e-2, warmup_epochs=2)
    schedule = learning_rate_schedule(warm, 10)
    assert float(schedule(0)) == pytest.approx(1e-3)  # 10% of the peak
    assert float(schedule(20)) == pytest.approx(1e-2)  # the peak after 2 epochs
    assert float(schedule(149)) < 1e-3  # decayed by the end of 15 epochs
    short = learning_rate_schedule(default_config("cifar10", epochs=1, learning_rate=1e-2), 10)
    assert float(short(0)) == pytest.approx(1e-2) and float(short(9)) < 1e-2
    with pytest.raises(ValueError, match="warmup_epochs"):
        default_config("cifar10", warmup_epochs=-1)


def test_label_smoothing_loss_matches_the_formula_and_zero_is_keras_sparse_loss():
    import keras

    from kerasbn.training import SmoothedSparseCrossentropy

    probs = np.array([[0.5, 0.25, 0.125, 0.125], [0.1, 0.2, 0.3, 0.4]], "float32")
    labels = np.array([0, 3])
    # s = 0.2 over K = 4 classes: target 0.85 for the true class, 0.05 for the others.
    by_hand = [
        -(0.85 * np.log(0.5) + 0.05 * (np.log(0.25) + 2 * np.log(0.125))),
        -(0.85 * np.log(0.4) + 0.05 * (np.log(0.1) + np.log(0.2) + np.log(0.3))),
    ]
    smoothed = SmoothedSparseCrossentropy(0.2)(labels, probs)
    np.testing.assert_allclose(float(smoothed), np.mean(by_hand), rtol=1e-5)
    plain = SmoothedSparseCrossentropy(0.0)(labels[:, None], probs)
    np.testing.assert_allclose(float(plain), -np.mean(np.log([0.5, 0.4])), rtol=1e-5)
    assert SmoothedSparseCrossentropy(0.2).get_config()["label_smoothing"] == 0.2
    assert keras.losses.deserialize(
        keras.losses.serialize(SmoothedSparseCrossentropy(0.1)),
        custom_objects={"SmoothedSparseCrossentropy": SmoothedSparseCrossentropy},
    ).label_smoothing == pytest.approx(0.1)


def test_label_smoothing_trains_and_reports_the_smoothed_loss(digits, quick_config):
    config = quick_config(epochs=2, label_smoothing=0.3)
    result = train(digits, "base", config)
    assert result.model.loss.label_smoothing == pytest.approx(0.3)
    # The smoothed loss never drops below the smoothed targets' entropy (10 classes).
    target = np.full(10, 0.03)
    target[0] = 0.73
    floor = -np.sum(target * np.log(target))
    assert result.history["loss"].min() > floor
    assert result.history["val_accuracy"].iloc[-1] > 0.5


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_weight_decay_shrinks_weights_by_decay_times_rate_each_step(optimizer):
    import keras

    from kerasbn.training.config import make_optimizer

    config = TrainConfig(
        optimizer=optimizer, learning_rate=0.1, lr_schedule="constant", weight_decay=0.01
    )
    weight = keras.Variable(np.full((3,), 2.0, "float32"))
    make_optimizer(config, steps_per_epoch=1).apply_gradients([(np.zeros(3, "float32"), weight)])
    # A zero gradient leaves only the decoupled decay: 2 x (1 - 0.1 x 0.01).
    np.testing.assert_allclose(keras.ops.convert_to_numpy(weight), 2 * (1 - 1e-3), rtol=1e-6)
    plain = keras.Variable(np.full((3,), 2.0, "float32"))
    no_decay = replace(config, weight_decay=0.0)
    make_optimizer(no_decay, steps_per_epoch=1).apply_gradients([(np.zeros(3, "float32"), plain)])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(plain), 2.0)


def test_default_strategy_on_cpu_has_one_replica():
    strategy = get_strategy()
    assert strategy.num_replicas_in_sync == 1


@pytest.mark.parametrize("variant", ["base", "bn+dropout"])
def test_short_training_learns_digits(digits, quick_config, variant):
    result = train(digits, variant, quick_config(epochs=3))
    h = result.history
    assert list(h.columns) == [
        "epoch",
        "loss",
        "accuracy",
        "val_loss",
        "val_accuracy",
        "seconds",
        "train_seconds",
    ]
    assert list(h["epoch"]) == [1, 2, 3]
    assert h["loss"].iloc[-1] < h["loss"].iloc[0]
    assert (h["seconds"] >= h["train_seconds"]).all() and (h["train_seconds"] > 0).all()
    scores = evaluate(result.model, digits)
    assert scores["test_accuracy"] > 0.5  # 10 classes: chance is 0.1
    assert result.global_batch_size == 32 * result.replicas
    assert not result.diverged


def test_same_seed_same_history_and_weights_other_seed_differs(digits, quick_config):
    first = train(digits, "bn+dropout", quick_config(seed=3))
    second = train(digits, "bn+dropout", quick_config(seed=3))
    cols = ["loss", "accuracy", "val_loss", "val_accuracy"]
    pd.testing.assert_frame_equal(first.history[cols], second.history[cols])
    for a, b in zip(first.model.get_weights(), second.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    other = train(digits, "bn+dropout", quick_config(seed=4))
    assert not np.allclose(first.history["loss"], other.history["loss"])


def test_real_mnist_slice_trains(mnist_slice, quick_config):
    result = train(mnist_slice, "bn", quick_config("mnist", epochs=2, batch_size=64))
    assert evaluate(result.model, mnist_slice)["test_accuracy"] > 0.5


def test_train_accepts_a_dataset_name(quick_config):
    result = train("digits", "base", quick_config(epochs=1))
    assert result.dataset == "digits" and len(result.history) == 1


def test_huge_learning_rate_is_marked_diverged(digits, quick_config):
    config = quick_config(epochs=3, learning_rate=1e6, lr_schedule="constant", optimizer="sgd")
    result = train(digits, "base", config)
    assert result.diverged


def test_public_api_is_flat():
    for name in (
        "list_variants",
        "get_variant",
        "build_model",
        "load_dataset",
        "train",
        "evaluate",
        "compare",
        "load_model",
        "predict",
    ):
        assert callable(getattr(kerasbn, name))


@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_computes_in_16_bits_and_saves_float32(digits, quick_config, precision):
    import keras

    result = train(digits.limit(256), "bn+dropout", quick_config(epochs=1, precision=precision))
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored
    model = result.model
    assert model.get_layer("block1_conv1").compute_dtype == precision.split("_")[1]
    bn = model.get_layer("block1_bn1")
    assert all(w.dtype == "float32" for w in bn.weights)  # statistics and weights
    assert model.output.dtype == "float32"  # the softmax head
    assert np.isfinite(result.history["loss"]).all()
    served = result.inference_model()
    assert all(layer.dtype_policy.name in ("float32", "uint8") for layer in served.layers[1:])
    x = digits.x_test[:64]
    np.testing.assert_allclose(served.predict(x, verbose=0), model.predict(x, verbose=0), atol=0.05)


@pytest.mark.parametrize("drop_remainder", [False, True])
def test_tf_data_pipeline_serves_exactly_the_pydatasets_batches(drop_remainder):
    import keras

    from kerasbn.training import EpochBatches

    if keras.backend.backend() != "tensorflow":
        pytest.skip("the tf.data pipeline is TensorFlow's feed")
    x = np.arange(50 * 2 * 2, dtype=np.uint8).reshape(50, 2, 2, 1)
    y = np.arange(50, dtype=np.int64)
    batches = EpochBatches(x, y, 8, seed=3, drop_remainder=drop_remainder)
    feed = batches.pipeline(1, 3)  # epochs 1 and 2, as when resuming after epoch 1
    assert int(feed.cardinality()) == 2 * len(batches)
    want = []
    for epoch in (1, 2):
        batches.epoch = epoch
        want += [batches[i] for i in range(len(batches))]
    got = [(xb.numpy(), yb.numpy()) for xb, yb in feed]
    assert len(got) == len(want) == 2 * (6 if drop_remainder else 7)
    for (gx, gy), (wx, wy) in zip(got, want, strict=True):
        np.testing.assert_array_equal(gx, wx)
        np.testing.assert_array_equal(gy, wy)
    assert not np.array_equal(want[0][1], want[len(batches)][1])  # epochs differ


def test_non_deterministic_training_switches_op_determinism_off_again(digits, quick_config):
    import keras

    if keras.backend.backend() != "tensorflow":
        pytest.skip("op determinism is a TensorFlow switch")
    from tensorflow.python.framework import config as tf_config

    train(digits.limit(128), "base", quick_config(epochs=1, deterministic=True))
    assert tf_config.is_op_determinism_enabled()
    result = train(digits.limit(128), "base", quick_config(epochs=1, deterministic=False))
    assert not tf_config.is_op_determinism_enabled()
    assert np.isfinite(result.history["loss"]).all()


@pytest.mark.parametrize(
    ("loss", "diverges"), [(2.3, False), (float("nan"), True), (float("inf"), True), (1e20, True)]
)
def test_divergence_check_catches_nan_inf_and_blown_up_losses(loss, diverges):
    from kerasbn.training import DivergedError, StopOnDivergence

    check = StopOnDivergence()
    check.on_epoch_begin(1)
    if diverges:
        with pytest.raises(DivergedError, match="at epoch 2, batch 4"):
            check.on_batch_end(3, {"loss": loss})
    else:
        check.on_batch_end(3, {"loss": loss})

import json
import zipfile

import numpy as np
import pytest

from kerasbn import build_model, load_model, predict, save_model, train
from kerasbn.saving import read_sidecar


@pytest.fixture(scope="module")
def trained(digits, tmp_path_factory):
    from kerasbn import default_config

    result = train(digits, "bn+dropout", default_config("digits", epochs=2, verbose=0))
    path = tmp_path_factory.mktemp("models") / "digits-bn+dropout.keras"
    save_model(result.model, path, {"dataset": "digits", "variant": "bn+dropout"})
    return result.model, path


def test_round_trip_gives_identical_predictions(trained, digits):
    model, path = trained
    loaded = load_model(path)
    before = predict(model, digits.x_test)
    after = predict(loaded, digits.x_test)
    np.testing.assert_array_equal(before.class_ids, after.class_ids)
    np.testing.assert_allclose(before.probabilities, after.probabilities, rtol=0, atol=1e-6)
    assert read_sidecar(path) == {"dataset": "digits", "variant": "bn+dropout"}
    assert json.loads(path.with_suffix(".json").read_text())["variant"] == "bn+dropout"
    # No temporary file is left beside the model.
    assert sorted(p.name for p in path.parent.iterdir()) == [
        "digits-bn+dropout.json",
        "digits-bn+dropout.keras",
    ]


def test_prediction_does_not_depend_on_the_batch(trained, digits):
    model, _ = trained
    full = predict(model, digits.x_test[:64]).probabilities
    single = predict(model, digits.x_test[5]).probabilities  # one (8, 8, 1) image
    np.testing.assert_allclose(single[0], full[5], atol=1e-5)
    shuffled = predict(model, digits.x_test[:64][::-1], batch_size=7).probabilities[::-1]
    np.testing.assert_allclose(shuffled, full, atol=1e-5)


def test_predict_shapes_and_dtypes(trained, digits):
    model, path = trained
    pred = predict(path, digits.x_test[:4, ..., 0])  # (N, H, W): channel added
    assert pred.class_ids.shape == (4,) and pred.probabilities.shape == (4, 10)
    assert np.all((pred.confidences > 0) & (pred.confidences <= 1))
    assert predict(model, digits.x_test[0, ..., 0]).class_ids.shape == (1,)
    assert predict(model, digits.x_test[:2].astype(np.int64)).class_ids.shape == (2,)
    with pytest.raises(ValueError, match=r"uint8 images.*Received: dtype float32"):
        predict(model, digits.x_test[:2].astype(np.float32) / 255)
    with pytest.raises(ValueError, match=r"expects images of shape \(8, 8, 1\).*Received: shape"):
        predict(model, np.zeros((2, 28, 28, 1), np.uint8))


def test_load_model_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="No model file"):
        load_model(tmp_path / "missing.keras")
    h5 = tmp_path / "model.h5"
    h5.write_bytes(b"\x89HDF\r\n")
    with pytest.raises(ValueError, match="Only the native .keras format"):
        load_model(h5)
    for payload in (b"", b"garbage"):
        bad = tmp_path / "bad.keras"
        bad.write_bytes(payload)
        with pytest.raises(ValueError, match="corrupted or truncated"):
            load_model(bad)
    with pytest.raises(ValueError, match="native .keras format"):
        save_model(build_model("digits", "base"), tmp_path / "m.h5", {})


def test_truncated_keras_file(trained, tmp_path):
    _, path = trained
    cut = tmp_path / "cut.keras"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert not zipfile.is_zipfile(cut)
    with pytest.raises(ValueError, match="corrupted or truncated"):
        load_model(cut)

"""predict(), its input checks, the predict CLI, and the SavedModel export."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kerasbn import (
    build_model,
    compare,
    default_config,
    export_saved_model,
    load_dataset,
    load_model,
    predict,
    prepare_images,
    train,
)
from kerasbn.cli.predict import main
from kerasbn.saving import read_manifest


@pytest.fixture(scope="module")
def mnist_model(shared_data_dir, tmp_path_factory):
    """A bn+dropout model trained by compare on 512 real MNIST images and evaluated on the
    full real test set, with its manifest."""
    data = load_dataset("mnist", shared_data_dir).limit(512)
    root = tmp_path_factory.mktemp("mnist-model")
    config = default_config("mnist", epochs=1, batch_size=64, verbose=0)
    result = compare(data, "bn+dropout", config, out_dir=root / "run", save_models=root / "models")
    return result.model_paths["bn+dropout"]


# ----------------------------------------------------------------- input handling


def test_prepare_accepts_the_natural_shapes():
    image = np.arange(64, dtype=np.uint8).reshape(8, 8)
    assert prepare_images(image, (8, 8, 1)).shape == (1, 8, 8, 1)
    assert prepare_images(image[..., None], (8, 8, 1)).shape == (1, 8, 8, 1)
    assert prepare_images(np.stack([image] * 5), (8, 8, 1)).shape == (5, 8, 8, 1)
    assert prepare_images(np.stack([image] * 5)[..., None], (8, 8, 1)).shape == (5, 8, 8, 1)
    # Whole-valued integer and float arrays within 0..255 are unambiguous.
    assert prepare_images(image.astype(np.int64), (8, 8, 1)).dtype == np.uint8
    assert prepare_images(image.astype(np.float32) * 3, (8, 8, 1)).max() == 189


def test_grayscale_and_rgb_are_converted_when_unambiguous():
    rgb = np.zeros((28, 28, 3), np.uint8)
    rgb[..., 0] = 200  # pure red -> luma 0.299 * 200
    gray = prepare_images(rgb, (28, 28, 1))
    assert gray.shape == (1, 28, 28, 1) and gray[0, 0, 0, 0] == round(0.299 * 200)
    rgba = np.concatenate([rgb, np.full((28, 28, 1), 255, np.uint8)], axis=-1)
    assert prepare_images(rgba, (28, 28, 3)).shape == (1, 28, 28, 3)
    expanded = prepare_images(np.full((32, 32), 7, np.uint8), (32, 32, 3))
    assert expanded.shape == (1, 32, 32, 3) and (expanded == 7).all()


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (np.random.default_rng(0).random((2, 8, 8)), r"floats scaled to \[0, 1\].*\* 255"),
        (np.full((8, 8), np.nan), "NaN or Inf"),
        (np.full((8, 8), np.inf, np.float32), "NaN or Inf"),
        (np.full((8, 8), 300, np.int32), r"0\.\.255.*range 300\.\.300"),
        (np.full((8, 8), -1, np.int16), r"0\.\.255"),
        (np.full((8, 8), 12.5), "fractional"),
        (np.zeros((8, 8), bool), "numeric"),
        (np.zeros((28, 28), np.uint8), r"28x28 but the model expects 8x8.*resize"),
        (np.zeros((1, 8, 8, 2), np.uint8), "cannot be converted"),
        (np.zeros((1, 2, 8, 8, 1), np.uint8), "Expected one image"),
    ],
)
def test_bad_inputs_are_explained(images, message):
    with pytest.raises(ValueError, match=message):
        prepare_images(images, (8, 8, 1))


def test_resize_on_request():
    out = prepare_images(np.zeros((2, 32, 32, 3), np.uint8), (28, 28, 1), resize=True)
    assert out.shape == (2, 28, 28, 1)


# ----------------------------------------------------------------- inference mode


def test_prediction_is_independent_of_batch_composition(digits):
    result = train(digits, "bn+dropout", default_config("digits", epochs=2, verbose=0))
    images = digits.x_test[:64]
    full = predict(result.model, images).probabilities
    for i in (0, 17, 63):  # batch size 1
        np.testing.assert_allclose(
            predict(result.model, images[i]).probabilities[0], full[i], atol=1e-5
        )
    shuffled = np.random.default_rng(0).permutation(64)
    mixed = predict(result.model, images[shuffled], batch_size=5).probabilities
    np.testing.assert_allclose(mixed, full[shuffled], atol=1e-5)
    # Other images in the batch (here: all-white ones) change nothing either.
    noisy = np.concatenate([images[:4], np.full((60, 8, 8, 1), 255, np.uint8)])
    np.testing.assert_allclose(predict(result.model, noisy).probabilities[:4], full[:4], atol=1e-5)


def test_saved_model_reproduces_manifest_accuracy_on_the_real_test_set(
    mnist_model, shared_data_dir
):
    data = load_dataset("mnist", shared_data_dir)  # the full real 10,000-image test set
    entry = read_manifest(mnist_model.parent)["models"][mnist_model.name]
    assert entry["metrics"]["test_examples"] == 10_000
    model = load_model(mnist_model)
    accuracy = float((predict(model, data.x_test).class_ids == data.y_test).mean())
    assert entry["metrics"]["test_accuracy"] == pytest.approx(accuracy, abs=1e-7)


# ----------------------------------------------------------------- CLI


def test_cli_predicts_files_arrays_and_folders(mnist_model, mnist_slice, tmp_path, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(mnist_slice.x_test[i, ..., 0]).save(folder / f"d{i}.png")
    rgb = np.repeat(mnist_slice.x_test[3], 3, axis=-1)
    Image.fromarray(rgb).save(tmp_path / "rgb.jpg", quality=95)
    np.save(tmp_path / "batch.npy", mnist_slice.x_test[4:6])
    (folder / "broken.png").write_bytes(b"not an image")
    empty = tmp_path / "empty"
    empty.mkdir()

    code = main(
        [
            "--model",
            str(mnist_model),
            "--json",
            "--top-k",
            "2",
            str(folder),
            str(tmp_path / "rgb.jpg"),
            str(tmp_path / "batch.npy"),
            str(empty),
        ]
    )
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert code == 1  # some inputs failed, the others were predicted
    inputs = [p["input"] for p in report["predictions"]]
    assert len(inputs) == 6 and inputs[-2].endswith("batch.npy[0]")
    assert all(len(p["top_k"]) == 2 for p in report["predictions"])
    top = report["predictions"][0]["top_k"]
    assert top[0]["probability"] >= top[1]["probability"]
    assert top[0]["class_name"] == str(top[0]["class_id"])
    errors = " ".join(e["error"] for e in report["errors"])
    assert "broken.png is not a readable image" in errors
    assert "holds no PNG, JPEG or .npy files" in errors
    assert "broken.png" in captured.err
    # Same predictions as the API on the same pixels.
    api = predict(load_model(mnist_model), mnist_slice.x_test[:3]).class_ids
    assert [p["top_k"][0]["class_id"] for p in report["predictions"][:3]] == list(api)


def test_cli_table_and_size_mismatch(mnist_model, tmp_path, capsys):
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(tmp_path / "big.png")
    assert main(["--model", str(mnist_model), str(tmp_path / "big.png")]) == 1
    err = capsys.readouterr().err
    # The failed file is named before the reason.
    assert err.startswith(f"error: {tmp_path / 'big.png'}: ") and "expects 28x28" in err
    assert main(["--model", str(mnist_model), "--resize", str(tmp_path / "big.png")]) == 0
    header, line = capsys.readouterr().out.strip().splitlines()
    assert header.startswith("input") and "top 3 classes" in header
    assert line.startswith(str(tmp_path / "big.png")) and line.endswith("%")


def test_cli_refused_model_exits_2(tmp_path, capsys):
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"junk")
    with pytest.raises(SystemExit) as info:
        main(["--model", str(bad), str(tmp_path)])
    assert info.value.code == 2 and "corrupted or truncated" in capsys.readouterr().err


def test_cli_runs_as_a_module(mnist_model, mnist_slice, tmp_path):
    np.save(tmp_path / "one.npy", mnist_slice.x_test[0])
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "kerasbn.predict",
            "--model",
            str(mnist_model),
            str(tmp_path / "one.npy"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "one.npy" in proc.stdout and "RuntimeWarning" not in proc.stderr


# ----------------------------------------------------------------- export


@pytest.mark.parametrize("dataset", ["digits", "cifar10"])
def test_export_saved_model_matches_keras(dataset, tmp_path):
    tf = pytest.importorskip("tensorflow")
    model = build_model(dataset, "bn+dropout")  # cifar10 carries augmentation layers
    path = tmp_path / "m.keras"
    model.save(path)
    out = export_saved_model(path, tmp_path / "served")
    served = tf.saved_model.load(str(out))
    shape = model.input_shape[1:]
    images = np.random.default_rng(0).integers(0, 256, (6, *shape), dtype=np.uint8)
    expected = predict(model, images).probabilities
    got = served.serve(tf.constant(images)).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)
    with pytest.raises(FileExistsError):
        export_saved_model(path, out)


def test_export_cli(tmp_path):
    from kerasbn.cli.export import main as export_main

    path = tmp_path / "m.keras"
    build_model("digits", "bn").save(path)
    assert export_main(["--model", str(path), "--out", str(tmp_path / "s")]) == 0
    assert (tmp_path / "s" / "saved_model.pb").exists()
    with pytest.raises(SystemExit) as info:
        export_main(["--model", str(tmp_path / "nope.keras"), "--out", str(tmp_path / "t")])
    assert info.value.code == 2


def test_export_on_a_full_disk_exits_2_and_leaves_no_partial_folder(tmp_path, monkeypatch, capsys):
    import errno

    import keras

    from kerasbn.cli.export import main as export_main

    path = tmp_path / "m.keras"
    build_model("digits", "bn").save(path)

    def write_out(self, filepath, **kwargs):  # the disk fills up half way
        (Path(filepath) / "variables_temp").mkdir(parents=True)
        (Path(filepath) / "variables_temp" / "part").write_bytes(b"x" * 100)
        raise OSError(errno.ENOSPC, "No space left on device")

    # ExportArchive() builds the backend's archive class; patch the class it returns.
    monkeypatch.setattr(type(keras.export.ExportArchive()), "write_out", write_out)
    with pytest.raises(SystemExit) as info:
        export_main(["--model", str(path), "--out", str(tmp_path / "s")])
    assert info.value.code == 2 and "Free some space" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()  # the retry is not blocked

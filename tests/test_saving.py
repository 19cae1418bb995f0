"""Saving, the manifest, and safe loading: every refused file is crafted here."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

from kerasbn import (
    ModelFileError,
    build_model,
    default_config,
    list_models,
    load_model,
    predict,
    save_model,
    train,
)
from kerasbn.saving import MANIFEST_NAME, read_manifest, read_sidecar, sha256_file

METADATA = {
    "dataset": "digits",
    "variant": {"name": "bn+dropout"},
    "input_shape": [8, 8, 1],
    "input_dtype": "uint8",
    "class_names": [str(i) for i in range(10)],
    "preprocessing": "inside the model: uint8 pixels x 1/255",
    "metrics": {"test_accuracy": 0.5},
}


@pytest.fixture(scope="module")
def trained(digits, tmp_path_factory):
    result = train(digits, "bn+dropout", default_config("digits", epochs=2, verbose=0))
    path = tmp_path_factory.mktemp("models") / "digits-bn+dropout.keras"
    save_model(result.model, path, METADATA)
    return result.model, path


@pytest.fixture
def model_copy(trained, tmp_path) -> Path:
    """A private copy of the saved model (with its manifest) that a test may damage."""
    _, path = trained
    for name in (path.name, path.with_suffix(".json").name, MANIFEST_NAME):
        shutil.copy(path.parent / name, tmp_path / name)
    return tmp_path / path.name


def rewrite_config(src: Path, dst: Path, edit) -> None:
    """Copy a .keras archive, passing its config.json through ``edit``."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                edit(config)
                data = json.dumps(config).encode()
            zout.writestr(item, data)


# ----------------------------------------------------------------- round trip, manifest


def test_round_trip_gives_identical_predictions(trained, digits):
    model, path = trained
    loaded = load_model(path)
    before = predict(model, digits.x_test)
    after = predict(loaded, digits.x_test)
    np.testing.assert_array_equal(before.class_ids, after.class_ids)
    np.testing.assert_allclose(before.probabilities, after.probabilities, rtol=0, atol=1e-6)
    assert read_sidecar(path) == METADATA
    # No temporary file is left beside the model.
    assert sorted(p.name for p in path.parent.iterdir()) == [
        "digits-bn+dropout.json",
        "digits-bn+dropout.keras",
        "digits-bn+dropout.md",  # its model card
        MANIFEST_NAME,
    ]


def test_manifest_records_every_field(trained):
    _, path = trained
    entry = read_manifest(path.parent)["models"][path.name]
    assert entry["sha256"] == sha256_file(path) and entry["bytes"] == path.stat().st_size
    assert entry["variant"] == "bn+dropout" and entry["dataset"] == "digits"
    assert entry["input_shape"] == [8, 8, 1] and entry["input_dtype"] == "uint8"
    assert entry["class_names"][3] == "3" and entry["metrics"]["test_accuracy"] == 0.5
    assert entry["preprocessing"].startswith("inside the model")
    assert entry["versions"]["keras"] == keras.__version__ and entry["created"]
    models = list_models(path.parent)
    assert list(models["file"]) == [path.name] and models["test_accuracy"].iloc[0] == 0.5


def test_manifest_keeps_other_models(model_copy):
    save_model(
        build_model("digits", "base"),
        model_copy.parent / "digits-base.keras",
        {"dataset": "digits", "variant": "base"},
    )
    assert set(read_manifest(model_copy.parent)["models"]) == {
        "digits-base.keras",
        "digits-bn+dropout.keras",
    }


def test_wrong_hash_is_refused(model_copy):
    manifest = read_manifest(model_copy.parent)
    manifest["models"][model_copy.name]["sha256"] = "0" * 64
    (model_copy.parent / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(ModelFileError, match=r"SHA-256 of .* does not match manifest\.json"):
        load_model(model_copy)
    assert load_model(model_copy, check_manifest=False) is not None


def test_replaced_file_is_refused(model_copy):
    # Same file name, different (valid) model: the manifest catches the swap.
    build_model("digits", "base").save(model_copy)
    with pytest.raises(ModelFileError, match="was changed or replaced"):
        load_model(model_copy)


def test_unlisted_file_loads_with_a_warning(model_copy):
    renamed = model_copy.with_name("other.keras")
    model_copy.rename(renamed)
    with pytest.warns(UserWarning, match="not listed in"):
        load_model(renamed)


def test_corrupt_manifest_is_reported(model_copy):
    (model_copy.parent / MANIFEST_NAME).write_text("{not json")
    with pytest.raises(ModelFileError, match=r"manifest\.json is corrupted"):
        load_model(model_copy)


# ----------------------------------------------------------------- refused files


def test_lambda_layer_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "ran"
    inputs = keras.Input((8, 8, 1))
    outputs = keras.layers.Lambda(lambda x: x * 2, name="sneaky")(inputs)
    path = tmp_path / "lambda.keras"
    keras.Model(inputs, outputs).save(path)
    with pytest.raises(ModelFileError, match="holds a Lambda layer"):
        load_model(path)
    assert not marker.exists()


def test_foreign_function_in_config_is_refused(model_copy, tmp_path):
    marker = tmp_path / "pwned"

    def plant(config):
        dense = next(
            layer for layer in config["config"]["layers"] if layer["class_name"] == "Dense"
        )
        dense["config"]["activation"] = {
            "module": "os",
            "class_name": "function",
            "config": "system",
            "registered_name": "function",
        }

    evil = tmp_path / "evil.keras"
    rewrite_config(model_copy, evil, plant)
    with pytest.raises(ModelFileError, match=r"names os\.system .*outside Keras"):
        load_model(evil)
    assert not marker.exists()


def test_custom_registered_object_is_refused(model_copy, tmp_path):
    def plant(config):
        config["config"]["layers"][1]["registered_name"] = "evilpkg>Backdoor"

    custom = tmp_path / "custom.keras"
    rewrite_config(model_copy, custom, plant)
    with pytest.raises(ModelFileError, match="custom object 'evilpkg>Backdoor'"):
        load_model(custom)


def test_a_kerasbn_layer_under_another_registered_name_is_refused(model_copy, tmp_path):
    # kerasbn's own RandomShift is allowed only as kerasbn>RandomShift: the same module
    # and class with a foreign registered name would make Keras look up that object.
    def plant(config):
        layer = config["config"]["layers"][1]
        layer.update(
            module="kerasbn.augmentation", class_name="RandomShift", registered_name="evil>X"
        )

    custom = tmp_path / "custom.keras"
    rewrite_config(model_copy, custom, plant)
    with pytest.raises(ModelFileError, match="custom object 'evil>X'"):
        load_model(custom)


def test_legacy_h5_needs_an_explicit_opt_in(tmp_path, digits):
    model = build_model("digits", "bn")
    path = tmp_path / "legacy.h5"
    model.save(path)
    with pytest.raises(ModelFileError, match="legacy HDF5 model.*allow_h5=True"):
        load_model(path)
    loaded = load_model(path, allow_h5=True)
    np.testing.assert_allclose(
        predict(loaded, digits.x_test[:8]).probabilities,
        predict(model, digits.x_test[:8]).probabilities,
        atol=1e-6,
    )


def test_h5_with_lambda_is_refused_even_with_opt_in(tmp_path):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda x: x + 1)(inputs))
    path = tmp_path / "lambda.h5"
    model.save(path)
    with pytest.raises(ModelFileError, match="holds a Lambda layer"):
        load_model(path, allow_h5=True)


def test_oversize_file_is_refused_before_reading(model_copy):
    with pytest.raises(ModelFileError, match="over the 1,000-byte cap"):
        load_model(model_copy, max_bytes=1000)


@pytest.mark.parametrize("kind", ["empty", "garbage", "truncated", "flipped"])
def test_damaged_files_are_corrupted_or_truncated(model_copy, tmp_path, kind):
    blob = model_copy.read_bytes()
    damaged = tmp_path / f"{kind}.keras"
    if kind == "empty":
        damaged.write_bytes(b"")
    elif kind == "garbage":
        damaged.write_bytes(b"this is not a zip archive" * 10)
    elif kind == "truncated":
        damaged.write_bytes(blob[: len(blob) // 2])
    else:  # one flipped byte inside the weights: the zip CRC catches it
        data = bytearray(blob)
        data[len(data) // 2] ^= 0xFF
        damaged.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="corrupted or truncated"):
        load_model(damaged, check_manifest=False)


def test_missing_and_foreign_suffix(tmp_path):
    with pytest.raises(FileNotFoundError, match="No model file"):
        load_model(tmp_path / "missing.keras")
    other = tmp_path / "model.pt"
    other.write_bytes(b"\x80\x02")
    with pytest.raises(ModelFileError, match="Only the native .keras format"):
        load_model(other)
    with pytest.raises(ValueError, match="native .keras format"):
        save_model(build_model("digits", "base"), tmp_path / "m.h5", {})


@pytest.mark.parametrize("variant", ["base", "bn"])
def test_saved_models_hold_no_optimizer_state(digits, tmp_path, variant):
    # A trained base net is not rebuilt before saving (no fused BN, no augmentation),
    # a bn net is; both files must hold the network's weights and nothing else.
    import h5py

    model = train(digits, variant, default_config("digits", epochs=1, verbose=0)).model
    assert model.optimizer is not None and model.optimizer.variables  # Adam's moments
    path = tmp_path / f"digits-{variant}.keras"
    save_model(model, path, {**METADATA, "variant": {"name": variant}})
    groups: list[str] = []
    with (
        zipfile.ZipFile(path) as archive,
        archive.open("model.weights.h5") as raw,
        h5py.File(raw) as weights,
    ):
        weights.visit(groups.append)
    assert not [name for name in groups if "optimizer" in name], groups
    loaded = load_model(path)
    np.testing.assert_allclose(
        loaded.predict(digits.x_test[:16], verbose=0),
        model.predict(digits.x_test[:16], verbose=0),
        rtol=1e-5,
        atol=1e-6,
    )
    entry = read_manifest(tmp_path)["models"][path.name]
    assert entry["bytes"] == path.stat().st_size  # the size is in the listing


def test_a_second_save_keeps_the_first_model_addressable(digits, tmp_path, messages):
    first = build_model("digits", "base")
    second = build_model("digits", "base")  # other random weights
    path = tmp_path / "digits-base.keras"
    save_model(first, path, {**METADATA, "metrics": {"test_accuracy": 0.1}})
    save_model(second, path, {**METADATA, "metrics": {"test_accuracy": 0.2}})
    models = read_manifest(tmp_path)["models"]
    assert len(models) == 2 and models[path.name]["metrics"]["test_accuracy"] == 0.2
    (kept,) = [name for name in models if name != path.name]
    assert models[kept]["metrics"]["test_accuracy"] == 0.1 and "replaced" in models[kept]
    assert read_sidecar(tmp_path / kept)["metrics"]["test_accuracy"] == 0.1
    x = digits.x_test[:8]
    # Both load through the checked loader, each with its own weights.
    np.testing.assert_allclose(
        load_model(tmp_path / kept).predict(x, verbose=0), first.predict(x, verbose=0), rtol=1e-6
    )
    np.testing.assert_allclose(
        load_model(path).predict(x, verbose=0), second.predict(x, verbose=0), rtol=1e-6
    )
    assert any(kept in m and "replaced" in m for m in messages)

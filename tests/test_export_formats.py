"""Export formats (issue 19): each artifact is reloaded with its own runtime and must
predict what kerasbn predicts, on real (bundled digits) images."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

from kerasbn import default_config, load_dataset, predict, save_model, train
from kerasbn.cli.export import main as export_main

ENV = {**os.environ, "KERASBN_OFFLINE": "1"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    data = load_dataset("digits")
    result = train(data, "bn+dropout", default_config("digits", epochs=3, verbose=0))
    path = tmp_path_factory.mktemp("models") / "digits-bn+dropout.keras"
    save_model(result.inference_model(), path, {"dataset": "digits", "variant": "bn+dropout"})
    return path, data


def test_onnx_export_predicts_what_kerasbn_predicts(trained, tmp_path):
    for module in ("onnxruntime", "torch", "onnx", "onnxscript"):
        pytest.importorskip(module)
    import onnxruntime

    path, data = trained
    out = tmp_path / "digits.onnx"
    done = subprocess.run(
        [sys.executable, "-m", "kerasbn.export", "--model", str(path), "--out", str(out)]
        + ["--format", "onnx"],
        env=ENV,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    session = onnxruntime.InferenceSession(str(out))
    (feed,) = session.get_inputs()
    assert feed.type == "tensor(uint8)"
    # The SavedModel's names, not the exporter's numbering.
    assert feed.name == "images"
    assert [o.name for o in session.get_outputs()] == ["probabilities"]
    probabilities = session.run(None, {feed.name: data.x_test})[0]
    from kerasbn import load_model

    expected = predict(load_model(path), data.x_test)
    np.testing.assert_allclose(probabilities, expected.probabilities, atol=1e-5)
    assert (probabilities.argmax(1) == expected.class_ids).all()


def test_a_missing_export_library_names_its_extra(trained, tmp_path, capsys):
    if importlib.util.find_spec("ai_edge_litert") is not None:
        pytest.skip("ai-edge-litert is installed here")
    path, _ = trained
    with pytest.raises(SystemExit) as info:
        export_main(
            ["--model", str(path), "--out", str(tmp_path / "m.tflite"), "--format", "litert"]
        )
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "needs ai_edge_litert" in err and 'pip install -e ".[litert]"' in err
    assert not (tmp_path / "m.tflite").exists()


def test_an_export_file_must_be_new_and_named_for_its_format(trained, tmp_path, capsys):
    path, _ = trained
    taken = tmp_path / "taken.onnx"
    taken.write_bytes(b"mine")
    from kerasbn.exporting import _new_file

    with pytest.raises(FileExistsError, match="pass a new file name"):
        _new_file(taken, ".onnx")
    with pytest.raises(ValueError, match=r"name it \*\.onnx"):
        _new_file(tmp_path / "model.bin", ".onnx")
    assert taken.read_bytes() == b"mine"

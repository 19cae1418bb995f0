"""Two comparisons saving into one --save-models folder: each run's records keep naming
the file that holds its own model, and stale temporary files of a killed save go."""

from __future__ import annotations

import json
import logging

import pytest

from kerasbn import compare, default_config
from kerasbn.cli.compare import main
from kerasbn.comparison_run import _own_model_path
from kerasbn.saving import read_manifest, read_sidecar, sha256_file

CONFIG = default_config("digits", epochs=1, verbose=0)


def _compare(out, models, **extra):
    return compare(
        "digits", "base", CONFIG, out_dir=out, save_models=models, limit=200,
        tensorboard=False, **extra,
    )  # fmt: skip


def _record_model(out):
    return json.loads((out / "runs" / "digits-base-seed0.json").read_text())["model"]


def test_another_comparisons_model_is_not_replaced_without_being_asked(tmp_path, capsys):
    models = tmp_path / "sm"
    (models).mkdir()
    (models / ".tmp-killed-save.keras").write_bytes(b"half a model")
    first = _compare(tmp_path / "a", models)
    assert not (models / ".tmp-killed-save.keras").exists()  # the next save removed it
    path = first.model_paths["base"]
    before = sha256_file(path)
    # A second comparison naming the same folder: refused before anything is written.
    argv = ["--dataset", "digits", "--variants", "base", "--epochs", "1", "--limit", "200",
            "--save-models", str(models), "--out", str(tmp_path / "b"), "--no-tensorboard"]
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"{path} holds the model of another comparison ({tmp_path / 'a'})" in err
    assert "--overwrite-models" in err and "another --save-models folder" in err
    assert not (tmp_path / "b" / "config.json").exists()
    assert sha256_file(path) == before
    # Asked for: the first model moves to a name of its own, and each record names the
    # file holding its own model.
    second = _compare(tmp_path / "b", models, overwrite_models=True)
    # (main() above sent the kerasbn logger to standard output.)
    assert "the model it replaced is kept as" in capsys.readouterr().out
    assert read_sidecar(second.model_paths["base"])["run_folder"] == str(tmp_path / "b")
    kept = [e for e in read_manifest(models)["models"].values() if e.get("replaced")]
    assert len(kept) == 1 and sha256_file(models / kept[0]["file"]) == before


def test_a_model_saved_by_another_comparison_while_this_one_trained_gets_its_own_name(
    tmp_path, caplog
):
    models = tmp_path / "sm"
    first = _compare(tmp_path / "a", models)
    path = first.model_paths["base"]
    with caplog.at_level(logging.WARNING, logger="kerasbn"):
        own = _own_model_path(path, tmp_path / "b", overwrite=False)
    assert own == models / "digits-base.b.keras"
    assert any("now holds the model of another comparison" in m for m in caplog.messages)
    # Its own folder, spelled another way, is not another comparison.
    assert _own_model_path(path, tmp_path / "x" / ".." / "a", overwrite=False) == path
    assert _own_model_path(path, tmp_path / "b", overwrite=True) == path

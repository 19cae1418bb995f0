"""A run folder is an input too: a subfolder linked elsewhere or a record naming a file
outside the folder is refused, and nothing outside --out is written or removed."""

from __future__ import annotations

import json
import os

import pytest

from kerasbn.cli.compare import main
from kerasbn.runfolder import file_in


def _compare(out, *extra):
    return main(
        ["--dataset", "digits", "--variants", "base", "--epochs", "1", "--out", str(out),
         "--no-save-models", "--no-tensorboard", "--verbose", "0", *extra]
    )  # fmt: skip


def _listing(folder):
    return sorted(
        (str(p.relative_to(folder)), p.stat().st_mtime_ns) for p in folder.rglob("*")
    )


@pytest.mark.parametrize("linked", ["logs", "backup", "runs"])
def test_a_subfolder_linked_elsewhere_is_refused_and_the_target_untouched(
    linked, tmp_path, capsys
):
    out, elsewhere = tmp_path / "run", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (elsewhere / ".tmp-keep").write_text("not kerasbn's")
    (elsewhere / "digits-base-seed0").mkdir()
    (out / linked).symlink_to(elsewhere, target_is_directory=True)
    before = _listing(elsewhere)
    with pytest.raises(SystemExit) as stop:
        _compare(out)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert f"{out / linked} is a symbolic link" in err and "nothing was changed" in err
    assert _listing(elsewhere) == before


def test_a_record_naming_a_file_outside_the_folder_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    assert _compare(out) == 0
    secret = tmp_path / "secret.npy"
    secret.write_bytes(b"x")
    record_path = out / "runs" / "digits-base-seed0.json"
    record = json.loads(record_path.read_text())
    record["correct"] = str(secret)  # an absolute path
    record_path.write_text(json.dumps(record))
    (out / "complete.json").unlink()  # an unfinished folder, resumed
    with pytest.raises(SystemExit) as stop:
        _compare(out)
    assert stop.value.code == 2
    assert "names a file outside its folder" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["/etc/passwd", "../outside.npy", "correct/../../x.npy"])
def test_file_in_refuses_names_that_leave_the_folder(name, tmp_path):
    with pytest.raises(ValueError, match="outside its folder"):
        file_in(tmp_path, name, "runs/a.json")
    os.makedirs(tmp_path / "correct", exist_ok=True)
    inside = file_in(tmp_path, "correct/a.npy", "runs/a.json")
    assert inside == (tmp_path / "correct" / "a.npy").resolve()


@pytest.mark.parametrize(
    "make",
    [
        lambda path: path.write_text('["a", "list"]'),
        lambda path: path.write_text("{not json"),
        lambda path: os.mkfifo(path),
    ],
)
def test_a_config_that_is_not_a_json_object_is_refused_naming_it(make, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    make(out / "config.json")
    with pytest.raises(SystemExit) as stop:
        _compare(out)  # a FIFO would hang a plain read
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert f"{out / 'config.json'} is not a kerasbn config.json" in err and "new --out" in err

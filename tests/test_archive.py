"""The results archive: a finished folder's light files, read and grown like the folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kerasbn import compare, default_config, load_comparison
from kerasbn.archive import archive
from kerasbn.cli.results import main as results_main
from kerasbn.results_tables import results_markdown


@pytest.fixture(scope="module")
def one_seed_folder(digits, tmp_path_factory):
    config = default_config("digits", epochs=2, verbose=0)
    out = tmp_path_factory.mktemp("archive") / "dg"
    compare(digits, "base,bn", config, seeds=1, out_dir=out, save_models=None)
    return out, config


def test_archive_keeps_light_files_only(one_seed_folder, tmp_path):
    out, _ = one_seed_folder
    target = archive(out, "dg", root=tmp_path / "results")
    kept = {p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file()}
    assert {"config.json", "complete.json", "runs.csv", "history.csv", "verdicts.csv"} <= kept
    assert {"runs/digits-bn-seed0.json", "correct/digits-bn-seed0.npy"} <= kept
    assert "logs/digits-base-seed0.csv" in kept
    # No figure, no TensorBoard event, no checkpoint.
    assert not [k for k in kept if k.endswith(".png") or k.startswith(("tensorboard", "backup"))]
    probs = np.load(out / "probabilities" / "digits-bn-seed0.npy")
    light = np.load(target / "probabilities" / "digits-bn-seed0.npy")
    assert light.dtype == np.float16 and np.allclose(light, probs, atol=1e-3)
    assert np.load(target / "predictions" / "digits-bn-seed0.npy").dtype == np.uint8
    assert np.array_equal(
        np.load(target / "correct" / "digits-bn-seed0.npy"),
        np.load(out / "correct" / "digits-bn-seed0.npy"),
    )
    # The archived folder publishes the same table as the folder it came from.
    assert results_markdown([target]) == results_markdown([out])


def test_an_archived_folder_grows_by_the_missing_runs_only(
    one_seed_folder, digits, tmp_path, messages
):
    out, config = one_seed_folder
    archived = archive(out, "dg", root=tmp_path / "results")
    copy = tmp_path / "grown"
    shutil.copytree(archived, copy)
    messages.clear()
    grown = compare(digits, "base,bn", config, seeds=2, out_dir=copy, save_models=None)
    trained = [m for m in messages if m.startswith("training ")]
    assert trained == [
        "training digits-base-seed1 (1150 images)",
        "training digits-bn-seed1 (1150 images)",
    ]
    assert len(grown.runs) == 4 and (copy / "complete.json").exists()
    first = pd.read_csv(out / "runs.csv").set_index(["variant", "seed"])["test_accuracy"]
    again = grown.runs.set_index(["variant", "seed"])["test_accuracy"].loc[first.index]
    assert again.to_list() == first.to_list()  # read back, not retrained
    assert load_comparison(copy).verdicts["seeds"].max() == 2


def test_archive_refuses_unfinished_folders_machine_paths_and_odd_names(
    one_seed_folder, tmp_path, capsys
):
    out, _ = one_seed_folder
    unfinished = tmp_path / "unfinished"
    shutil.copytree(out, unfinished)
    (unfinished / "complete.json").unlink()
    assert_exit_2(["archive", str(unfinished), "--name", "u", "--root", str(tmp_path)])
    assert "not a finished run" in capsys.readouterr().err
    assert not (tmp_path / "u").exists()

    leaky = tmp_path / "leaky"
    shutil.copytree(out, leaky)
    config = json.loads((leaky / "config.json").read_text())
    config["command"] = f"python -m kerasbn.compare --out {leaky.resolve()}"
    (leaky / "config.json").write_text(json.dumps(config))
    assert_exit_2(["archive", str(leaky), "--name", "l", "--root", str(tmp_path / "r")])
    assert "names a path of this machine" in capsys.readouterr().err
    assert not (tmp_path / "r" / "l").exists() and not list((tmp_path / "r").iterdir())

    for name in ("../x", "", ".hidden", "a/b"):
        assert_exit_2(["archive", str(out), "--name", name, "--root", str(tmp_path / "r")])
        assert "plain folder name" in capsys.readouterr().err


def assert_exit_2(argv):
    with pytest.raises(SystemExit) as exit_info:
        results_main(argv)
    assert exit_info.value.code == 2


def test_refresh_rewrites_the_verdicts_of_an_older_folder_only(one_seed_folder, tmp_path):
    out, _ = one_seed_folder
    older = tmp_path / "older"
    shutil.copytree(out, older)
    # A folder from before Holm's correction: no p_holm column, no family line.
    table = pd.read_csv(older / "verdicts.csv").drop(columns=["p_holm", "family_size"])
    table.to_csv(older / "verdicts.csv", index=False)
    (older / "summary.md").write_text("## digits: base, bn\n\nold\n")
    before = {p: (older / p).read_bytes() for p in ("runs.csv", "history.csv", "config.json")}
    assert results_main(["refresh", str(older)]) == 0
    assert "p_holm" in pd.read_csv(older / "verdicts.csv")
    assert "Holm's step-down correction" in (older / "summary.md").read_text()
    assert (older / "summary.md").read_text().startswith("## digits: base, bn\n")
    for name, content in before.items():  # the runs themselves are not touched
        assert (older / name).read_bytes() == content
    (older / "complete.json").unlink()
    assert_exit_2(["refresh", str(older)])


def test_an_unfinished_folder_is_kept_as_a_piece_that_grows_to_the_same_runs(
    one_seed_folder, digits, tmp_path, messages
):
    out, config = one_seed_folder
    # As if stopped while bn trained: its record gone, its log half written.
    stopped = tmp_path / "stopped"
    shutil.copytree(out, stopped)
    (stopped / "complete.json").unlink()
    (stopped / "runs" / "digits-bn-seed0.json").unlink()
    piece = archive(stopped, "piece", root=tmp_path / "results", unfinished=True)
    kept = {p.relative_to(piece).as_posix() for p in piece.rglob("*") if p.is_file()}
    assert "runs/digits-base-seed0.json" in kept and "logs/digits-base-seed0.csv" in kept
    assert "correct/digits-base-seed0.npy" in kept
    # Nothing of the unfinished run, and nothing that says "finished".
    assert not [k for k in kept if "digits-bn-seed0" in k] and "complete.json" not in kept
    assert "1 finished run(s)" in (piece / ".unfinished").read_text()
    with pytest.raises(FileNotFoundError):  # never published as a table
        results_markdown([piece])
    # Grown elsewhere: only bn trains, and the folder ends as the uninterrupted one did.
    grown = tmp_path / "grown"
    shutil.copytree(piece, grown)
    messages.clear()
    again = compare(digits, "base,bn", config, seeds=1, out_dir=grown, save_models=None)
    assert [m for m in messages if m.startswith("training ")] == [
        "training digits-bn-seed0 (1150 images)"
    ]
    first = pd.read_csv(out / "runs.csv").set_index(["variant", "seed"])["test_accuracy"]
    assert again.runs.set_index(["variant", "seed"])["test_accuracy"].loc[
        first.index
    ].to_list() == (first.to_list())
    # The grown folder archives as a finished one, without the piece's note.
    final = archive(grown, "final", root=tmp_path / "results")
    assert not (final / ".unfinished").exists() and (final / "complete.json").exists()


def test_a_tune_in_progress_is_kept_as_its_studies(tmp_path):
    # compare --tune writes config.json after tuning: until then the folder is its
    # tuning studies (Optuna's journal and the settings, with the command).
    folder = tmp_path / "runs" / "mnist-tuned"
    (folder / "tuning").mkdir(parents=True)
    command = "python -m kerasbn.compare --dataset mnist --tune lr,wd --out runs/mnist-tuned"
    (folder / "tuning" / "tuning.json").write_text(json.dumps({"command": command}))
    journal = '{"op_code": 0, "study_name": "mnist-tuned/base"}\n'
    (folder / "tuning" / "study.log").write_text(journal)
    with pytest.raises(FileNotFoundError, match="not a finished run"):
        archive(folder, "mnist-tuned", root=tmp_path / "results")
    piece = archive(folder, "mnist-tuned", root=tmp_path / "results", unfinished=True)
    assert (piece / "tuning" / "study.log").read_text() == journal
    note = (piece / ".unfinished").read_text()
    assert "tuning studies" in note and command in note
    # A folder with neither a run nor a tune is still refused.
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no config.json"):
        archive(tmp_path / "empty", "empty", root=tmp_path / "results", unfinished=True)


def test_an_unfinished_experiment_is_kept_as_its_units_and_grows_to_the_same_table(
    quick_run, tmp_path, messages, monkeypatch
):
    from kerasbn.experiments import run_experiment

    monkeypatch.chdir(tmp_path)  # relative paths, as a folder meant for the archive is made
    done = quick_run("batch-size").out_dir
    units = sorted(p.name for p in (done / "units").glob("*.json"))
    assert len(units) >= 4
    # As if stopped after all but the last unit: no completion marker, no last record.
    stopped = tmp_path / "runs" / "batch-size"
    shutil.copytree(done, stopped)
    (stopped / "complete.json").unlink()
    (stopped / "units" / units[-1]).unlink()
    piece = archive(stopped, "batch-size", root=tmp_path / "results", unfinished=True)
    kept = sorted(p.name for p in (piece / "units").glob("*.json"))
    assert kept == units[:-1] and not (piece / "complete.json").exists()
    assert f"{len(units) - 1} finished unit(s)" in (piece / ".unfinished").read_text()
    with pytest.raises(FileNotFoundError):  # never published as a table
        results_markdown([piece])
    # Grown elsewhere: the kept units are read back, only the missing one runs, and the
    # table is the uninterrupted run's.
    grown = Path("grown")
    shutil.copytree(piece, grown)
    messages.clear()
    run_experiment("batch-size", quick=True, out_dir=grown)
    read_back = [m for m in messages if m.endswith("finished earlier, read back")]
    assert len(read_back) == len(units) - 1
    assert (grown / "summary.csv").read_text() == (done / "summary.csv").read_text()
    # The finished folder's archive keeps its units: a copy re-judges without training.
    final = archive(grown, "final", root=tmp_path / "results")
    assert sorted(p.name for p in (final / "units").glob("*.json")) == units
    assert (final / "complete.json").exists() and not (final / ".unfinished").exists()

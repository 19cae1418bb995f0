"""The one `kerasbn` command: dispatch to every command line, fast --help (TensorFlow
not imported), clear errors, and the lazily imported package behind it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kerasbn.cli.main import COMMANDS, main

REPO = Path(__file__).resolve().parents[1]


def _python(code: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert f"\n  {name} " in out


def test_no_command_prints_the_overview_and_exits_2(capsys):
    assert main([]) == 2
    assert "commands:" in capsys.readouterr().out


def test_an_unknown_command_lists_the_valid_ones(capsys):
    assert main(["train"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown command. Valid commands are: compare, tune")
    assert err.rstrip().endswith("Received: 'train'")


FAST = tuple(COMMANDS)  # every command


def test_help_of_the_overview_and_of_each_command_loads_no_tensorflow():
    """What a user types first answers without TensorFlow, Keras or Optuna."""
    done = _python(
        f"""
        import sys
        from kerasbn.cli.main import main
        main(["--help"])
        for command in {FAST!r}:
            try:
                main([command, "--help"])
            except SystemExit as stop:
                assert stop.code == 0, stop.code
        heavy = ("tensorflow", "keras", "optuna", "jax")
        print("LOADED", [m for m in heavy if m in sys.modules])
        """
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "LOADED []" in done.stdout
    assert "--tune NAMES" in done.stdout and "--dataset DATASET" in done.stdout


def test_listing_models_and_printing_a_table_load_no_tensorflow(tmp_path):
    """`zoo list` reads manifests and `results RUN` reads tables: no Keras needed."""
    done = _python(
        f"""
        import sys
        from kerasbn.cli.main import main
        assert main(["zoo", "list", {str(REPO / "zoo")!r}]) == 0
        assert main(["results", {str(REPO / "results" / "readme-digits")!r}]) == 0
        print("LOADED", [m for m in ("tensorflow", "keras") if m in sys.modules])
        """
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "LOADED []" in done.stdout
    assert "mnist-bn+dropout" in done.stdout and "`bn+dropout`" in done.stdout


def test_the_package_imports_lazily_and_every_public_name_resolves():
    done = _python(
        """
        import sys, json
        import kerasbn
        first = "keras" in sys.modules
        names = {name: type(getattr(kerasbn, name)).__name__ for name in kerasbn.__all__}
        from kerasbn.train import TrainConfig  # the old module name still works ...
        import kerasbn.train
        # ... and kerasbn.train stays the function, as before the imports were lazy.
        print(json.dumps({"first": first, "names": names, "train": callable(kerasbn.train),
                          "same": kerasbn.TrainConfig is TrainConfig,
                          "dir": sorted(set(kerasbn.__all__) - set(dir(kerasbn)))}))
        """
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["first"] is False
    assert result["train"] and result["same"] and result["dir"] == []
    assert result["names"]["train"] == "function" and result["names"]["Variant"] == "type"
    assert result["names"]["load_model"] == result["names"]["compare"] == "function"
    assert result["names"]["Dataset"] == result["names"]["TrainConfig"] == "type"


def test_python_dash_m_kerasbn_is_the_same_command():
    done = subprocess.run(
        [sys.executable, "-m", "kerasbn", "nope"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert done.returncode == 2 and "Valid commands are" in done.stderr


def test_the_models_module_is_not_a_command():
    done = subprocess.run(
        [sys.executable, "-m", "kerasbn.models"], capture_output=True, text=True, cwd=REPO
    )
    assert done.returncode != 0 and "kerasbn zoo list" in done.stderr


def test_the_console_script_is_installed():
    script = Path(sys.executable).with_name("kerasbn")
    if not script.exists():
        pytest.skip("kerasbn is not installed in this environment (pip install -e .)")
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "commands:" in done.stdout


def test_compare_runs_through_the_one_command(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(
        ["compare", "--dataset", "digits", "--variants", "base,bn", "--epochs", "2", "--out",
         str(out), "--no-save-models", "--no-tensorboard", "--verbose", "0"]
    )  # fmt: skip
    assert code == 0
    assert (out / "complete.json").is_file()
    assert "| bn " in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["compare", "--epochs", "abc"], "argument --epochs: invalid int value: 'abc'"),
        (["tune", "--trials"], "argument --trials: expected one argument"),
        (["zoo"], "the following arguments are required: command"),
        (["results", "x", "--table", "nope"], "argument --table: invalid choice: 'nope'"),
    ],
)
def test_a_usage_error_is_one_line_pointing_at_help(argv, message, capsys):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    err = capsys.readouterr().err
    assert stop.value.code == 2
    assert err.count("\n") == 1 and err.startswith(f"error: {message}")
    assert err.rstrip().endswith("--help")


def test_zoo_list_of_a_missing_folder_exits_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["zoo", "list", str(tmp_path / "nowhere")])
    assert stop.value.code == 2
    assert "is not a folder" in capsys.readouterr().err


@pytest.mark.parametrize(
    "assignment, message",
    [
        ("learning_rate=nan", "must be a finite number"),
        ("learning_rate=0", "must be greater than 0"),
        ("epochs=0", "from 1 to 100,000"),
        ("seeds=-1", "from 1 to 100,000"),
        ("hidden_units=10000000", "from 1 to 8,192"),
    ],
)
def test_experiment_settings_are_checked_before_anything_is_written(
    assignment, message, tmp_path, capsys
):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as stop:
        main(["experiments", "run", "mnist-mlp", "--set", assignment, "--out", str(out)])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --set ") and message in err
    assert not out.exists()

"""Per-variant tuning (kerasbn.tuning, python -m kerasbn.tune, compare --tune): the search
space, bad input, the chosen values against the trial table, pruning, the test split
left alone, resuming after a kill, and two workers sharing one study."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from kerasbn.cli import compare as compare_cli
from kerasbn.cli import tune as tune_cli
from kerasbn.training import default_config
from kerasbn.tuning import (
    HYPERPARAMETERS,
    Range,
    apply_params,
    parse_ranges,
    parse_tune,
    search_space,
    tune,
)
from kerasbn.tuning.study import open_storage, open_study
from kerasbn.variants import get_variant

REPO = Path(__file__).resolve().parents[1]


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}


# --- the search space -----------------------------------------------------------------


def test_parse_tune_lists_the_valid_names_for_an_unknown_one():
    assert parse_tune("lr, wd,lr") == ("lr", "wd")
    with pytest.raises(ValueError, match=r"Valid .* are: lr, wd, dropout.*Received: 'momentum'"):
        parse_tune("lr,momentum")


@pytest.mark.parametrize(
    "spec, message",
    [
        ("lr=1e-2:1e-4", "low < high"),
        ("lr=1e-3:1e-3", "low < high"),
        ("lr=0:1e-2", "inside"),
        ("wd=0.1:2", "inside"),
        ("lr=1e-3", "NAME=LOW:HIGH"),
        ("lr=a:b", "two numbers"),
        ("beta=0:1", "Received: 'beta'"),
    ],
)
def test_bad_ranges_are_refused(spec, message):
    with pytest.raises(ValueError, match=message):
        search_space("digits", HYPERPARAMETERS, parse_ranges([spec]))


def test_a_range_for_an_untuned_value_is_refused():
    with pytest.raises(ValueError, match="not tuned; add it to --tune"):
        search_space("mnist", ["lr"], {"wd": (1e-4, 1e-2)})


def test_edges_are_measured_on_the_scale_that_was_searched():
    span = Range("lr", 1e-4, 1e-2, log=True)
    # The geometric midpoint is the middle of a log range; 1.2e-4 is 4% of the way up.
    assert span.position(1e-3) == pytest.approx(0.5)
    assert span.edge(1.2e-4) == "low" and span.edge(9e-3) == "high"
    assert span.edge(1e-3) is None and span.edge(2e-4) is None  # 15% up: inside
    linear = Range("dropout", 0.0, 0.6)
    assert linear.position(0.3) == pytest.approx(0.5) and linear.edge(0.58) == "high"


def test_tuned_values_go_into_the_config_and_the_variant():
    config = default_config("cifar10")
    variant = get_variant("bn+dropout")
    params = {"learning_rate": 2e-3, "batch_size": 64.0, "head_dropout": 0.5}
    tuned_config, tuned_variant = apply_params(config, variant, params)
    assert tuned_config.learning_rate == 2e-3 and tuned_config.batch_size == 64
    assert isinstance(tuned_config.batch_size, int)
    assert tuned_config.weight_decay == config.weight_decay == 0.1  # untouched
    assert tuned_variant.head_dropout == 0.5 and tuned_variant.block_dropout == 0.1
    assert tuned_variant.name == "bn+dropout"


# --- bad input on the command line: exit 2 before any training -------------------------


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--tune", "lr,momentum"], "Received: 'momentum'"),
        (["--range", "lr=1e-2:1e-4"], "low < high"),
        (["--trials", "0"], "--trials must be a whole number of at least 1"),
        (["--worker"], "pass --storage URL"),
        (["--epochs", "0"], "--epochs must be"),
    ],
)
def test_tune_cli_bad_input_exits_2_naming_the_fix(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(
        "kerasbn.tuning.run.load_dataset", lambda *a, **k: pytest.fail("data was loaded")
    )
    with pytest.raises(SystemExit) as exit_info:
        tune_cli.main(["--dataset", "digits", "--out", str(tmp_path / "t"), *argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--tune", "lr,momentum"], "Received: 'momentum'"),
        (["--tune", "lr", "--range", "lr=1:0.1"], "low < high"),
        (["--tune", "lr", "--trials", "0"], "--trials must be at least 1"),
    ],
)
def test_compare_tune_bad_input_exits_2(argv, message, tmp_path, capsys, monkeypatch):
    # kerasbn.comparison binds load_dataset when first imported: patched (and so imported)
    # first, it gets the real one back afterwards instead of keeping the stand-in.
    for where in ("kerasbn.comparison", "kerasbn.data"):
        monkeypatch.setattr(f"{where}.load_dataset", lambda *a, **k: pytest.fail("data was loaded"))
    with pytest.raises(SystemExit) as exit_info:
        compare_cli.main(["--dataset", "digits", "--out", str(tmp_path / "c"), *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


# --- a real tune on digits ----------------------------------------------------------------


@pytest.fixture(scope="module")
def digits_tune(digits, tmp_path_factory):
    """Two variants x 4 trials of 3 epochs, over a learning-rate range so wide (1e-5 to 1)
    that some trials cannot learn and are pruned."""
    out = tmp_path_factory.mktemp("tune") / "digits"
    result = tune(
        digits,
        "base,bn",
        names=["lr", "wd"],
        ranges={"lr": (1e-5, 1.0)},
        trials=4,
        epochs=3,
        out_dir=out,
    )
    return result, out


@pytest.mark.slow  # the 24-epoch digits tune (about 1.5 min on 2 cores)
def test_the_chosen_values_are_the_best_completed_trial_of_the_table(digits_tune):
    result, out = digits_tune
    table = pd.read_csv(out / "trials.csv")
    best = json.loads((out / "best.json").read_text())
    for variant in ("base", "bn"):
        rows = table[table["variant"] == variant]
        assert len(rows) == 4 and set(rows["state"]) <= {"complete", "pruned"}
        done = rows[rows["state"] == "complete"]
        top = done.loc[done["val_accuracy"].idxmax()]
        assert best[variant]["trial"] == int(top["trial"])
        assert best[variant]["params"]["learning_rate"] == pytest.approx(top["learning_rate"])
        assert result.params(variant)["weight_decay"] == pytest.approx(top["weight_decay"])
        # Every value stayed inside its range.
        assert rows["learning_rate"].between(1e-5, 1.0).all()
        assert rows["weight_decay"].between(1e-4, 0.3).all()


@pytest.mark.slow  # the 24-epoch digits tune (about 1.5 min on 2 cores)
def test_a_hopeless_rate_range_gets_trials_pruned(digits_tune):
    _, out = digits_tune
    table = pd.read_csv(out / "trials.csv")
    pruned = table[table["state"] == "pruned"]
    assert len(pruned) >= 1
    # A pruned trial stopped before the budget of 3 epochs.
    assert (pruned["epochs"] < 3).all()
    assert (out / "tuning.png").stat().st_size > 10_000
    assert "completed" in (out / "tuning.md").read_text()
    runs = {p.name for p in (out / "tensorboard").iterdir() if p.is_dir()}
    assert runs == {f"{v}-trial{k}" for v in ("base", "bn") for k in range(4)}


@pytest.mark.slow  # the 24-epoch digits tune (about 1.5 min on 2 cores)
def test_the_trial_table_matches_the_study_journal(digits_tune):
    """The table is read back against Optuna's own record of the study, trial by trial."""
    _, out = digits_tune
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(out / "study.log"))
    )
    table = pd.read_csv(out / "trials.csv")
    for variant in ("base", "bn"):
        study = optuna.load_study(study_name=f"digits/{variant}", storage=storage)
        for trial in study.trials:
            row = table[(table["variant"] == variant) & (table["trial"] == trial.number)].iloc[0]
            assert row["learning_rate"] == pytest.approx(trial.params["learning_rate"])
            if trial.state == TrialState.COMPLETE:
                assert row["val_accuracy"] == pytest.approx(trial.value)
                assert row["epochs"] == 3 == len(trial.intermediate_values)


class _Untouchable:
    """Stands in for the test split: any use fails the test."""

    def __getattr__(self, name):
        raise AssertionError(f"the test split was read ({name})")

    def __len__(self):
        raise AssertionError("the test split was read (len)")

    def __getitem__(self, key):
        raise AssertionError("the test split was read ([])")

    def __array__(self, *args, **kwargs):
        raise AssertionError("the test split was read (as an array)")


def test_tuning_never_reads_the_test_split(digits, tmp_path):
    guarded = replace(digits, x_test=_Untouchable(), y_test=_Untouchable())
    result = tune(guarded, "bn", names=["lr"], trials=2, epochs=1, out_dir=tmp_path / "t")
    assert set(result.best) == {"bn"}
    assert (
        "test"
        not in json.loads((tmp_path / "t" / "tuning.json").read_text())["studies"]["bn"]["dataset"]
    )


def test_a_study_grows_by_its_budget_and_refuses_other_settings(digits, tmp_path):
    out = tmp_path / "t"
    first = tune(digits, "base", names=["lr"], trials=1, epochs=1, out_dir=out, tensorboard=False)
    with pytest.raises(ValueError, match="started with other settings .*epochs"):
        tune(digits, "base", names=["lr"], trials=1, epochs=2, out_dir=out)
    grown = tune(digits, "base", names=["lr"], trials=2, epochs=1, out_dir=out, tensorboard=False)
    assert list(grown.trials["trial"]) == [0, 1]
    # The first piece's trial is kept as it was: grown, not redone.
    assert grown.trials.iloc[0]["learning_rate"] == first.trials.iloc[0]["learning_rate"]
    assert grown.trials.iloc[0]["val_accuracy"] == first.trials.iloc[0]["val_accuracy"]
    with pytest.raises(ValueError, match="asks for fewer"):
        tune(digits, "base", names=["lr"], trials=1, epochs=1, out_dir=out)


@pytest.mark.parametrize("pieces", [(2, 5), (3, 4, 7, 10)])
def test_a_study_run_in_pieces_never_proposes_a_finished_trials_values(tmp_path, pieces):
    """Each piece re-opens the study, as a re-run command does; the MNIST dropout tune
    (results/mnist-tuned) once repeated trial 0's values in its second piece."""
    storage = open_storage(None, tmp_path / "study.log")

    def objective(trial):  # no training: only the proposals are under test
        return -abs(math.log10(trial.suggest_float("lr", 1e-5, 1.0, log=True)) + 2)

    for budget in pieces:
        study = open_study(storage, "s/base", {"trials": 10}, sampler_seed=0)
        study.optimize(objective, n_trials=budget - len(study.trials))
    values = [t.params["lr"] for t in study.trials]
    assert len(values) == pieces[-1]
    assert len(set(values)) == len(values), values


@pytest.fixture(scope="module")
def tuned_and_shared(tmp_path_factory):
    """A digits comparison at each variant's tuned rate, and one at the shared recipe."""
    root = tmp_path_factory.mktemp("recipes")
    common = ["--dataset", "digits", "--variants", "base,bn", "--epochs", "2", "--verbose", "0"]
    tuned = ["--tune", "lr", "--trials", "2", "--tune-epochs", "1"]
    here = Path.cwd()
    os.chdir(root)  # relative paths, as a folder meant for the archive is made
    try:
        for name, extra in (("tuned", tuned), ("shared", ["--no-save-models"])):
            models = ["--save-models", "models"] if name == "tuned" else []
            argv = [*common, *extra, *models, "--out", name, "--no-tensorboard"]
            assert compare_cli.main(argv) == 0
    finally:
        os.chdir(here)
    return root


def test_compare_tune_trains_each_variant_at_its_chosen_values(tuned_and_shared):
    out, models = tuned_and_shared / "tuned", tuned_and_shared / "models"
    best = json.loads((out / "tuning" / "best.json").read_text())
    config = json.loads((out / "config.json").read_text())
    recipe = default_config("digits")
    for variant in ("base", "bn"):
        chosen = best[variant]["params"]["learning_rate"]
        assert config["tuned"][variant] == {"learning_rate": chosen}
        # The saved model's card records the settings it was trained with.
        card = json.loads((models / f"digits-{variant}.json").read_text())
        assert card["train_config"]["learning_rate"] == chosen != recipe.learning_rate
        assert card["train_config"]["epochs"] == 2
        assert card["train_config"]["weight_decay"] == recipe.weight_decay
    # The comparison's own summary says at which values each variant was trained.
    summary = (out / "summary.md").read_text()
    assert "### Tuned values (compare --tune)" in summary
    assert f"learning_rate {best['bn']['params']['learning_rate']:.3g}" in summary


def test_the_two_verdicts_side_by_side(tuned_and_shared, capsys):
    from kerasbn.cli import results as results_cli

    shared, tuned = tuned_and_shared / "shared", tuned_and_shared / "tuned"
    assert results_cli.main([str(shared), str(tuned), "--table", "recipes"]) == 0
    text = capsys.readouterr().out
    row = next(line for line in text.splitlines() if line.startswith("| `bn`"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    for folder, acc_cell, verdict_cell in ((shared, 2, 3), (tuned, 6, 7)):
        runs = pd.read_csv(folder / "runs.csv").set_index("variant")["test_accuracy"]
        assert cells[acc_cell] == f"{100 * runs['bn']:.2f}"
        assert f"({100 * (runs['bn'] - runs['base']):+.2f} pp" in cells[verdict_cell]
    best = json.loads((tuned / "tuning" / "best.json").read_text())
    assert cells[4] == f"learning_rate {best['bn']['params']['learning_rate']:.3g}"
    assert "Holm" in text and text.count("measured by") == 2
    # Shared first, tuned second: the other order is refused with the fix.
    with pytest.raises(SystemExit) as exit_info:
        results_cli.main([str(tuned), str(shared), "--table", "recipes"])
    assert exit_info.value.code == 2


def test_an_archived_tuned_comparison_keeps_its_tune(tuned_and_shared, tmp_path):
    from kerasbn.archive import archive

    archived = archive(tuned_and_shared / "tuned", "tuned", root=tmp_path)
    for name in ("trials.csv", "best.json", "tuning.md", "study.log", "tuning.json"):
        assert (archived / "tuning" / name).read_bytes() == (
            tuned_and_shared / "tuned" / "tuning" / name
        ).read_bytes()
    # The archived journal is Optuna's own: the studies load from it, all trials there.
    trials = _journal_trials(archived / "tuning" / "study.log", "tuning/bn")
    assert len([t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]) == 2
    assert not (archived / "tuning" / "tuning.png").exists()  # figures stay out


# --- resuming after a kill; two workers on one database ------------------------------------


def _journal_trials(path, name):
    if not path.exists():
        return []
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
    try:
        return optuna.load_study(study_name=name, storage=storage).trials
    except KeyError:
        return []


def test_a_killed_tune_resumes_without_repeating_a_finished_trial(tmp_path):
    out = tmp_path / "t"
    command = [
        sys.executable, "-m", "kerasbn.tune", "--dataset", "digits", "--variants", "base",
        "--tune", "lr", "--trials", "3", "--epochs", "6", "--out", str(out), "--no-tensorboard",
    ]  # fmt: skip
    errors = tmp_path / "stderr.txt"
    with errors.open("w") as sink:  # a file, not a pipe: TensorFlow's log could fill a pipe
        process = subprocess.Popen(command, env=_env(), stdout=subprocess.DEVNULL, stderr=sink)
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:
            trials = _journal_trials(out / "study.log", "t/base")
            finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
            running = [t for t in trials if t.state == TrialState.RUNNING]
            if finished and running and running[0].intermediate_values:
                break  # killed mid-trial: one epoch of it is done
            assert process.poll() is None, errors.read_text()[-2000:]
            time.sleep(0.1)
        else:
            pytest.fail("the tune did not reach a second trial in time")
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    before = {t.number: t for t in finished}
    killed = running[0]
    done = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "cut off" in done.stdout
    trials = _journal_trials(out / "study.log", "t/base")
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 3
    # Finished trials were kept as they were, none ran twice ...
    for number, trial in before.items():
        assert trials[number].state == trial.state and trials[number].params == trial.params
    assert len({t.params["learning_rate"] for t in finished}) == 3
    # ... and the cut-off trial ran again with its own values.
    assert trials[killed.number].state == TrialState.FAIL
    retries = [t for t in trials if t.user_attrs.get("retry_of") == killed.number]
    assert len(retries) == 1 and retries[0].params == killed.params
    assert retries[0].state in (TrialState.COMPLETE, TrialState.PRUNED)
    assert len(pd.read_csv(out / "trials.csv")) == 4  # 3 finished + the failed one


def test_two_workers_share_one_study_on_a_database(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    budget = 6
    errors = tmp_path / "stderr.txt"
    with errors.open("w") as sink:
        leader = subprocess.Popen(
            [
                sys.executable, "-m", "kerasbn.tune", "--dataset", "digits", "--variants", "base",
                "--tune", "lr,wd", "--trials", str(budget), "--epochs", "3", "--storage", url,
                "--study", "shared", "--out", str(tmp_path / "t"), "--no-tensorboard",
            ],
            env=_env(), stdout=subprocess.DEVNULL, stderr=sink,
        )  # fmt: skip
    try:
        storage = optuna.storages.RDBStorage(url)
        deadline = time.monotonic() + 120
        while "shared/base" not in optuna.get_all_study_names(storage):
            assert time.monotonic() < deadline and leader.poll() is None, errors.read_text()
            time.sleep(0.2)
        worker = subprocess.run(
            [sys.executable, "-m", "kerasbn.tune", "--worker", "--storage", url],
            env=_env(), capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert worker.returncode == 0, worker.stderr[-2000:]
        assert leader.wait(timeout=300) == 0, errors.read_text()[-2000:]
    finally:
        leader.kill()
    study = optuna.load_study(study_name="shared/base", storage=storage)
    finished = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == budget
    assert len({t.number for t in finished}) == budget
    assert len({(t.params["learning_rate"], t.params["weight_decay"]) for t in finished}) == budget
    # Both processes ran trials.
    assert len({t.user_attrs["worker"] for t in finished}) == 2
    table = pd.read_csv(tmp_path / "t" / "trials.csv")
    assert len(table[table["state"].isin(["complete", "pruned"])]) == budget
    assert not math.isnan(table["val_accuracy"].max())

"""Damaged run-folder state never turns into a wrong result: an epoch log that lost rows
or a checkpoint cut short makes the run start over (and, being deterministic, end as an
uninterrupted run), with a warning naming the file; a short history is never read as a
divergence."""

from __future__ import annotations

import json
import logging
from dataclasses import replace

import keras
import numpy as np
import pandas as pd
import pytest

from kerasbn import default_config
from kerasbn.training import train

COLUMNS = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy"]


class _Cut(Exception):
    pass


class _CutBeforeEpoch(keras.callbacks.Callback):
    """Stops a run at the start of epoch ``index`` (0-based): the checkpoint and the log
    then hold the epochs before it, as after a kill."""

    def __init__(self, index: int) -> None:
        super().__init__()
        self.index = index

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.index:
            raise _Cut()


@pytest.fixture(scope="module")
def uninterrupted(digits, tmp_path_factory):
    config = replace(default_config("digits"), epochs=3, verbose=0)
    log = tmp_path_factory.mktemp("whole") / "log.csv"
    result = train(digits, "bn", config, log_csv=log)
    return config, result.history[COLUMNS]


def _cut_after_two_epochs(digits, config, folder):
    log, backup = folder / "log.csv", folder / "backup"
    with pytest.raises(_Cut):
        train(digits, "bn", config, log_csv=log, backup_dir=backup, callbacks=[_CutBeforeEpoch(2)])
    assert len(pd.read_csv(log)) == 2 and (backup / "state.json").exists()
    return log, backup


def _damage_log(log, backup):
    rows = log.read_text().splitlines()
    log.write_text("\n".join(rows[:-1]) + "\n")  # the last epoch's row is lost
    return str(log)


def _empty_state(log, backup):
    (backup / "state.json").write_text("")
    return "state.json"


def _cut_weights(log, backup):
    weights = next(backup.glob("epoch-*.weights.h5"))
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    return "damaged"


@pytest.mark.parametrize(
    "damage",
    [_damage_log, pytest.param(_empty_state, marks=pytest.mark.slow),
     pytest.param(_cut_weights, marks=pytest.mark.slow)],
)  # fmt: skip
def test_damaged_state_restarts_the_run_and_ends_as_an_uninterrupted_one(
    digits, uninterrupted, tmp_path, caplog, damage
):
    config, expected = uninterrupted
    log, backup = _cut_after_two_epochs(digits, config, tmp_path)
    named = damage(log, backup)
    with caplog.at_level(logging.WARNING, logger="kerasbn"):
        result = train(digits, "bn", config, log_csv=log, backup_dir=backup)
    warning = " ".join(caplog.messages)
    assert named in warning and "starts again from epoch 0" in warning
    assert not result.diverged and result.resumed_from_epoch == 0
    # Epoch for epoch what the uninterrupted run recorded.
    pd.testing.assert_frame_equal(result.history[COLUMNS], expected, check_exact=False, rtol=1e-6)
    assert list(pd.read_csv(log)["epoch"]) == [1, 2, 3]


def test_a_run_stopped_early_by_a_callback_is_not_called_diverged(digits):
    class StopAfterOne(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.model.stop_training = True

    config = replace(default_config("digits"), epochs=3, verbose=0)
    result = train(digits, "base", config, callbacks=[StopAfterOne()])
    assert len(result.history) == 1 and not result.diverged


def test_resuming_with_other_code_is_said_and_recorded(tmp_path, caplog):
    import json

    from kerasbn.results_tables import source_line
    from kerasbn.runfolder import ResumeRule, RunFolder

    rule = ResumeRule(keys=("dataset",))
    first = {"command": "python -m kerasbn.compare ...", "kerasbn_version": "0.1.0",
             "git": {"commit": "a" * 40, "dirty": False}}  # fmt: skip
    with RunFolder(tmp_path, rule).open({"dataset": "digits"}, first):
        pass  # stopped before finishing
    second = {**first, "git": {"commit": "b" * 40, "dirty": False}}
    with (
        caplog.at_level(logging.WARNING, logger="kerasbn"),
        RunFolder(tmp_path, rule).open({"dataset": "digits"}, second) as folder,
    ):
        assert folder.resuming
    warning = " ".join(caplog.messages)
    assert "a" * 40 in warning and "b" * 40 in warning and "new --out" in warning
    config = json.loads((tmp_path / "config.json").read_text())
    assert [part["git"]["commit"] for part in config["resumed"]] == ["b" * 40]
    assert "code at `aaaaaaa`, then `bbbbbbb`" in source_line(tmp_path, config)
    # The same code again: nothing to say.
    caplog.clear()
    with (
        caplog.at_level(logging.WARNING, logger="kerasbn"),
        RunFolder(tmp_path, rule).open({"dataset": "digits"}, second),
    ):
        pass
    assert not caplog.messages


@pytest.mark.parametrize(
    "damage",
    ["", pytest.param('{"row": {}', marks=pytest.mark.slow),
     pytest.param("[1, 2]", marks=pytest.mark.slow)],
)  # fmt: skip
def test_a_damaged_run_record_is_set_aside_and_the_run_trained_again(tmp_path, caplog, damage):
    from kerasbn import compare

    config = replace(default_config("digits"), epochs=2, verbose=0)
    out = tmp_path / "run"
    first = compare("digits", "base,bn", config, out_dir=out, save_models=None, tensorboard=False)
    record = out / "runs" / "digits-bn-seed0.json"
    record.write_text(damage)
    (out / "complete.json").unlink()  # as if the folder had been copied before it ended
    with caplog.at_level(logging.WARNING, logger="kerasbn"):
        again = compare(
            "digits", "base,bn", config, out_dir=out, save_models=None, tensorboard=False
        )
    assert any(f"{record} is damaged" in m and "trains again" in m for m in caplog.messages)
    assert (out / "runs" / "digits-bn-seed0.json.damaged").read_text() == damage
    columns = ["variant", "seed", "test_accuracy", "best_val_accuracy"]
    pd.testing.assert_frame_equal(again.runs[columns], first.runs[columns])


@pytest.mark.parametrize("content", [b"", b"\x93NUMPY\x01\x00v\x00{'descr': '|b1'"])
def test_an_unreadable_per_image_array_sets_its_record_aside(tmp_path, caplog, content):
    from kerasbn.comparison_run import finished_record

    (tmp_path / "runs").mkdir()
    (tmp_path / "correct").mkdir()
    record = tmp_path / "runs" / "digits-bn-seed0.json"
    body = {"row": {"variant": "bn"}, "history": [], "correct": "correct/digits-bn-seed0.npy"}
    record.write_text(json.dumps(body))
    np.save(tmp_path / "correct" / "digits-bn-seed0.npy", np.array([True, False]))
    assert finished_record(record) == body  # a sound one reads back as it is
    (tmp_path / "correct" / "digits-bn-seed0.npy").write_bytes(content)  # emptied / cut
    with caplog.at_level(logging.WARNING, logger="kerasbn"):
        assert finished_record(record) is None
    (message,) = caplog.messages
    assert "correct/digits-bn-seed0.npy does not read" in message and "trains again" in message
    assert not record.exists() and record.with_name(record.name + ".damaged").exists()

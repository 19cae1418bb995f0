"""Comparison-level progress: the epoch count, the time-left estimate, and a piped log
that stays short."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kerasbn.comparison_progress import ComparisonProgress, duration

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "seconds, text",
    [(float("nan"), "unknown"), (40.4, "40 s"), (59.6, "1 min"), (14 * 60 + 10, "14 min"),
     (2 * 3600 + 5 * 60, "2 h 05 min"), (3600 - 20, "1 h 00 min")],
)  # fmt: skip
def test_durations_read_as_people_say_them(seconds, text):
    assert duration(seconds) == text


def test_time_left_is_the_mean_epoch_time_over_the_epochs_still_to_train(caplog):
    progress = ComparisonProgress(runs=3, epochs=4, bar=False)
    progress.read_back("a-seed0", 4)  # finished in an earlier session: no time measured
    progress.start("b-seed0", resumed_epochs=1)  # one epoch restored from a checkpoint
    assert progress.done == 5
    with caplog.at_level(logging.INFO, logger="kerasbn"):
        progress.epoch_end(1, 2.0, {"val_accuracy": 0.5})
        progress.epoch_end(2, 4.0, {"val_accuracy": 0.75})
    # 12 epochs in all, 7 done; the two measured took 3 s on average: 5 x 3 = 15 s.
    assert progress.seconds_left == pytest.approx(15.0)
    last = caplog.messages[-1]
    assert "run 2 of 3: b-seed0 epoch 3 of 4, val accuracy 75.00%" in last
    assert "58% done" in last and "about 15 s left" in last
    progress.close()


def test_a_piped_comparison_log_shows_runs_epochs_and_diagnostics_briefly(tmp_path):
    log = tmp_path / "log.txt"
    with log.open("w") as sink:
        done = subprocess.run(
            [sys.executable, "-m", "kerasbn", "compare", "--dataset", "digits", "--variants",
             "base,bn", "--epochs", "2", "--out", str(tmp_path / "run"), "--no-save-models",
             "--no-tensorboard"],
            stdout=sink, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(REPO)},
            timeout=600,
        )  # fmt: skip
    text = log.read_text()
    assert done.returncode == 0, text[-2000:]
    assert log.stat().st_size < 20_000
    assert "run 2 of 2: digits-bn-seed0 epoch 2 of 2" in text and "100% done" in text
    assert "digits-bn-seed0: diagnostics took" in text
    assert "\r" not in text  # no bar redrawn into a file

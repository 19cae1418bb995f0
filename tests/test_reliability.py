"""Runs survive kills, outputs are never partial, one writer per folder, NaN runs are
flagged, and the same seed gives the same numbers (issue: reliability)."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kerasbn import compare, default_config, load_model
from kerasbn._lock import FolderLock, FolderLockedError, process_start_time
from kerasbn.cli.compare import main
from kerasbn.training import train

TESTS = Path(__file__).resolve().parent
ENV = {**os.environ, "KERASBN_OFFLINE": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
# Wall-clock figures: they differ between any two runs.
TIMING = ["seconds_per_epoch", "train_images_per_s", "diagnostics_seconds"]


def _cli(out: Path, *extra: str) -> list[str]:
    # Batch 8 makes a digits epoch long enough (about a second) to be killed inside.
    return [
        sys.executable,
        "-m",
        "kerasbn.compare",
        "--dataset",
        "digits",
        "--variants",
        "base,bn+dropout",
        "--epochs",
        "4",
        "--batch-size",
        "8",
        "--out",
        str(out),
        "--save-models",
        str(out / "models"),
        "--verbose",
        "0",
        *extra,
    ]


def _wait_for(predicate, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process ended early with {proc.returncode}")
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


def _rows(path: Path) -> int:
    try:
        return len(pd.read_csv(path))
    except (OSError, pd.errors.EmptyDataError):
        return 0


def _weights(path: Path) -> list[np.ndarray]:
    return load_model(path).get_weights()


def _assert_same(weights_a: list[np.ndarray], weights_b: list[np.ndarray]) -> None:
    for a, b in zip(weights_a, weights_b, strict=True):
        np.testing.assert_array_equal(a, b)


def test_sigkill_mid_epoch_then_rerun_equals_uninterrupted(tmp_path):
    ref, cut = tmp_path / "ref", tmp_path / "cut"
    done = subprocess.run(_cli(ref), env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]

    proc = subprocess.Popen(_cli(cut), env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    log = cut / "logs" / "digits-bn+dropout-seed0.csv"
    _wait_for(lambda: _rows(log) >= 2, timeout=300, proc=proc)
    time.sleep(0.3)  # into epoch 3 of 4
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    state = json.loads((cut / "backup" / "digits-bn+dropout-seed0" / "state.json").read_text())
    assert 2 <= state["epoch"] < 4, state
    assert not (cut / "complete.json").exists()

    again = subprocess.run(_cli(cut), env=ENV, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "resuming the unfinished run" in again.stdout
    assert "digits-base-seed0: finished earlier, read back" in again.stdout
    record = json.loads((cut / "runs" / "digits-bn+dropout-seed0.json").read_text())
    assert record["resumed_from_epoch"] == state["epoch"]
    assert (cut / "complete.json").exists() and not (cut / "backup").exists()

    # The learning figures, test scores and weights equal the uninterrupted run's.
    assert (cut / "history.csv").read_bytes() == (ref / "history.csv").read_bytes()
    runs_ref, runs_cut = (pd.read_csv(p / "runs.csv").drop(columns=TIMING) for p in (ref, cut))
    pd.testing.assert_frame_equal(runs_cut, runs_ref)
    for name in ("digits-base.keras", "digits-bn+dropout.keras"):
        _assert_same(_weights(ref / "models" / name), _weights(cut / "models" / name))


def _check_complete(out: Path) -> None:
    """Every result file present in ``out`` is one whole version, never a torn one."""
    csv = out / "history.csv"
    if csv.exists():
        frame = pd.read_csv(csv)
        assert len(frame) == 50_000 and frame["version"].nunique() == 1, "torn CSV"
    runs = out / "runs.json"
    if runs.exists():
        assert len(json.loads(runs.read_text())["pad"]) == 5_000, "torn JSON"
    png = out / "curves.png"
    if png.exists():
        assert png.read_bytes().endswith(b"IEND\xaeB`\x82"), "torn PNG"
    model = out / "models" / "m.keras"
    if model.exists():
        with zipfile.ZipFile(model) as archive:
            assert archive.testzip() is None, "torn .keras"
        load_model(model, check_manifest=False)
    manifest = out / "models" / "manifest.json"
    if manifest.exists():
        assert "m.keras" in json.loads(manifest.read_text())["models"], "torn manifest"


# The stress form (many kills at random moments, ~40 s): `slow`, to keep the default run
# inside CI's 15 minutes; the single-kill tests beside it run by default.
@pytest.mark.slow
def test_kills_at_random_moments_never_leave_a_partial_file(tmp_path):
    out = tmp_path / "out"
    rng = random.Random(0)
    kills = int(os.environ.get("KERASBN_KILL_ROUNDS", "8"))
    seen: set[Path] = set()
    cut_short = 0
    for _ in range(kills):
        proc = subprocess.Popen(
            [sys.executable, str(TESTS / "_write_loop.py"), str(out)],
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        _check_complete(out)
        # Temp files a kill left behind show a write was cut short; they are hidden and
        # removed by the next run that holds the folder's lock.
        new = set(out.rglob(".tmp-*")) - seen
        cut_short += bool(new)
        seen |= new
    print(f"{kills} kills, {cut_short} of them during a write")


def _hold_lock_with(pid: int, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ".kerasbn.lock").write_text(
        json.dumps(
            {"pid": pid, "host": socket.gethostname(), "start_time": process_start_time(pid)},
        )
    )


def test_second_writer_is_refused_and_a_stale_lock_is_taken_over(digits, tmp_path, capsys):
    out = tmp_path / "out"
    config = default_config("digits", epochs=1, verbose=0)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        _hold_lock_with(other.pid, out)
        with pytest.raises(FolderLockedError, match=f"process {other.pid} on"):
            compare(digits, "base", config, out_dir=out, save_models=None)
        with pytest.raises(SystemExit) as exit_info:
            main(["--dataset", "digits", "--out", str(out), "--no-save-models"])
        assert exit_info.value.code == 2
        assert f"process {other.pid}" in capsys.readouterr().err
        assert not (out / "config.json").exists()
    finally:
        other.kill()
        other.wait()
    # The owner is dead now: its lock is stale and taken over.
    result = compare(digits, "base", config, out_dir=out, save_models=None, limit=200)
    assert (result.out_dir / "complete.json").exists()
    assert not (out / ".kerasbn.lock").exists()


def test_lock_of_a_reused_pid_is_stale(tmp_path):
    # Our own pid, but a different start time: the pid was reused by another process.
    (tmp_path / ".kerasbn.lock").write_text(
        json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "start_time": "1"})
    )
    with FolderLock(tmp_path) as lock:
        assert lock.took_over["start_time"] == "1"
        assert json.loads(lock.path.read_text())["pid"] == os.getpid()
    with FolderLock(tmp_path), pytest.raises(FolderLockedError):
        FolderLock(tmp_path).acquire()  # held by a live process (this one)


def test_diverging_variant_is_flagged_and_the_others_go_on(digits, tmp_path):
    # Adam at 30 blows the plain net's loss up (NaN, or about 1e10: past DIVERGED_LOSS)
    # within a few steps; BN keeps the activations bounded, so that variant finishes
    # (its loss peaks near 2e3 in epoch 1, then falls).
    config = default_config("digits", epochs=2, verbose=0, learning_rate=30.0)
    result = compare(
        digits, "base,bn", config, out_dir=tmp_path / "out", save_models=tmp_path / "models"
    )
    runs = result.runs.set_index("variant")
    assert bool(runs.loc["base", "diverged"]) and not bool(runs.loc["bn", "diverged"])
    assert re.match(r"loss became \S+ at epoch 1, batch \d+$", runs.loc["base", "diverged_at"])
    assert np.isnan(runs.loc["base", "test_accuracy"])
    summary = result.summary.set_index("variant")
    assert summary.loc["base", "diverged_runs"] == 1
    assert np.isnan(summary.loc["base", "test_accuracy_mean"])
    markdown = (result.out_dir / "summary.md").read_text()
    assert "| base " in markdown and "diverged" in markdown.split("| base")[1].split("\n")[0]
    assert set(result.model_paths) == {"bn"}  # no model saved for the diverged run
    assert (result.out_dir / "complete.json").exists()


JAX_DIVERGE = """
import json, sys, threading
import keras
from kerasbn import default_config, load_dataset
from kerasbn.training import ResumableBackup, train

class Probe(keras.callbacks.Callback):
    async_safe = True
    threads = set()
    def on_train_batch_end(self, batch, logs=None):
        self.threads.add(threading.current_thread() is threading.main_thread())

data = load_dataset("digits").limit(400)
backup = sys.argv[1]
result = train(data, "base", default_config("digits", epochs=3, verbose=0, learning_rate=1e20),
               backup_dir=backup, callbacks=[Probe()])
print("RESULT " + json.dumps({
    "diverged": result.diverged, "at": result.diverged_at,
    "saved_epochs": ResumableBackup(backup).completed_epochs(),
    "batch_hooks_on_main_thread": sorted(Probe.threads),
}))
"""


def test_divergence_stops_training_on_jax_where_the_check_runs_asynchronously(tmp_path):
    # On JAX, Keras runs the NaN check in its callback thread (async_safe), so the
    # error reaches the training loop a step later: it must still stop the run before
    # any epoch-end checkpoint of NaN weights. (JAX's float32 cross-entropy stays
    # finite at Adam lr 1e6, where TensorFlow's overflows; 1e20 overflows on both.)
    pytest.importorskip("jax")
    done = subprocess.run(
        [sys.executable, "-c", JAX_DIVERGE, str(tmp_path / "backup")],
        env={**ENV, "KERAS_BACKEND": "jax"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.split("RESULT ", 1)[1])
    assert out["diverged"] and "loss became nan at epoch 1" in out["at"], out
    assert out["saved_epochs"] == 0, out
    # kerasbn's own callbacks keep Keras' asynchronous dispatch on.
    assert out["batch_hooks_on_main_thread"] == [False], out


def test_same_seed_gives_identical_history_and_weights(digits, tmp_path):
    config = default_config("digits", epochs=2, verbose=0)
    outs = [tmp_path / name for name in ("a", "b", "c")]
    for out, seed in zip(outs, (0, 0, 1), strict=True):
        compare(
            digits,
            "bn+dropout",
            replace(config, seed=seed),
            out_dir=out,
            save_models=out / "models",
            limit=400,
        )
    history = [(out / "history.csv").read_bytes() for out in outs]
    assert history[0] == history[1]
    losses = [pd.read_csv(out / "history.csv")["loss"].to_numpy() for out in outs]
    assert not np.array_equal(losses[0], losses[2])
    weights = [_weights(out / "models" / "digits-bn+dropout.keras") for out in outs]
    _assert_same(weights[0], weights[1])
    assert any(not np.array_equal(a, c) for a, c in zip(weights[0], weights[2], strict=True))


def test_resume_refuses_other_settings_and_finished_folders(digits, tmp_path):
    out = tmp_path / "out"
    config = default_config("digits", epochs=1, verbose=0)
    compare(digits, "base", config, out_dir=out, save_models=None, limit=200)
    with pytest.raises(FileExistsError, match="finished run"):
        compare(digits, "base", config, out_dir=out, save_models=None, limit=200)
    (out / "complete.json").unlink()  # pretend it was killed before the end
    # The message names the field and both values.
    with pytest.raises(FileExistsError, match="train_config.epochs: 1 stored, 2 now"):
        compare(
            digits,
            "base",
            replace(config, epochs=2),
            out_dir=out,
            save_models=None,
            limit=200,
        )
    result = compare(digits, "base", config, out_dir=out, save_models=None, limit=200)
    assert (result.out_dir / "complete.json").exists()


def test_train_resumes_from_a_checkpoint_exactly(digits, tmp_path):
    import keras

    config = default_config("digits", epochs=3, verbose=0)

    class Crash(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if int(self.model.optimizer.iterations.numpy()) == 50:  # inside epoch 2
                raise KeyboardInterrupt

    whole = train(digits, "bn+dropout", config)
    paths = dict(backup_dir=tmp_path / "b", log_csv=tmp_path / "log.csv")
    with pytest.raises(KeyboardInterrupt):
        train(digits, "bn+dropout", config, callbacks=[Crash()], **paths)
    assert len(pd.read_csv(tmp_path / "log.csv")) == 1
    resumed = train(digits, "bn+dropout", config, **paths)
    assert resumed.resumed_from_epoch == 1
    _assert_same(whole.model.get_weights(), resumed.model.get_weights())
    cols = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy"]
    pd.testing.assert_frame_equal(whole.history[cols], resumed.history[cols])


def _damage(folder: Path, how: str) -> None:
    from test_data import write_mnist_folder

    write_mnist_folder(folder / "mnist")
    target = folder / "mnist" / "train-images-idx3-ubyte.gz"
    if how == "missing":
        (folder / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    elif how == "empty":
        target.write_bytes(b"")
    else:
        target.write_bytes(target.read_bytes()[:100])


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("missing", "Missing file"),
        ("empty", "train-images-idx3-ubyte.gz is empty (0 bytes)"),
        ("corrupt", "train-images-idx3-ubyte.gz is corrupted or truncated"),
    ],
)
def test_cli_bad_data_folder_exits_2(tmp_path, capsys, how, message):
    _damage(tmp_path / "data", how)
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        main(["--data-dir", str(tmp_path / "data"), "--out", str(out), "--no-save-models"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and ("--data-dir" in err or "Replace it" in err), err
    assert not out.exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--out", "{file}/sub"], "Cannot write to the output folder"),
        (["--seeds", "0"], "seeds must be at least 1"),
        (["--seed", "-1"], "seed must be a whole number >= 0"),
    ],
)
def test_cli_more_bad_input_exits_2(tmp_path, capsys, argv, message):
    (tmp_path / "file").write_text("not a folder")
    argv = [a.replace("{file}", str(tmp_path / "file")) for a in argv]
    with pytest.raises(SystemExit) as exit_info:
        main(["--dataset", "digits", "--no-save-models", "--out", str(tmp_path / "o"), *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_rerun_without_out_resumes_the_newest_matching_folder(digits, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = default_config("digits", epochs=1, verbose=0)
    first = compare(digits, "base", config, save_models=None, limit=200)
    assert first.out_dir.parent == Path("runs")
    (first.out_dir / "complete.json").unlink()  # as if killed before the end
    again = compare(digits, "base", config, save_models=None, limit=200)
    assert again.out_dir == first.out_dir
    other = compare(digits, "base", replace(config, epochs=2), save_models=None, limit=200)
    assert other.out_dir != first.out_dir  # other settings: a new folder


def test_a_run_started_before_a_new_setting_existed_still_resumes(tmp_path):
    from kerasbn.comparison import RESUME_RULE
    from kerasbn.runfolder import RunFolder

    config = default_config("digits", epochs=2, verbose=0)
    settings = {
        "dataset": "digits",
        "variants": ["bn"],
        "seeds": [0],
        "train_config": config.to_dict(),
        "save_models": None,
    }
    older = json.loads(json.dumps(settings))
    del older["train_config"]["fused_bn"]  # a field this version added
    (tmp_path / "config.json").write_text(json.dumps(older))
    folder = RunFolder(tmp_path, RESUME_RULE)
    assert folder.differences(settings) == []
    # A field the old run set to something else than the default still differs.
    changed = {**settings, "train_config": {**settings["train_config"], "fused_bn": False}}
    assert folder.differences(changed) == ["train_config"]
    # verbosity may change on resume; the data set may not.
    louder = {**settings, "train_config": {**settings["train_config"], "verbose": 2}}
    assert folder.differences(louder) == []
    assert folder.differences({**settings, "dataset": "mnist"}) == ["dataset"]


def test_output_locations_are_checked_before_training(digits, tmp_path, capsys):
    from kerasbn.cli.experiments import main as experiments_main
    from kerasbn.cli.export import main as export_main

    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as info:
        main(
            [
                "--dataset",
                "digits",
                "--epochs",
                "1",
                "--out",
                str(out),
                "--save-models",
                str(a_file),
            ]
        )
    assert info.value.code == 2
    assert "is a file, not a folder. Pass a folder to --save-models" in capsys.readouterr().err
    assert not (out / "logs").exists()  # nothing trained
    with pytest.raises(SystemExit) as info:
        experiments_main(["run", "numpy-reference", "--quick", "--out", str(a_file)])
    assert info.value.code == 2 and "Pass a folder to --out" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        export_main(["--model", str(tmp_path / "missing.keras"), "--out", str(a_file / "x")])
    assert info.value.code == 2 and "Pass a writable --out" in capsys.readouterr().err


def test_where_models_are_saved_may_change_on_resume(digits, tmp_path):
    config = default_config("digits", epochs=1, verbose=0)
    out = tmp_path / "out"
    compare(digits, "base", config, out_dir=out, save_models=tmp_path / "m1", limit=200)
    (out / "complete.json").unlink()  # as if killed before the end
    (out / "runs" / "digits-base-seed0.json").unlink()
    result = compare(digits, "base", config, out_dir=out, save_models=tmp_path / "m2", limit=200)
    assert result.model_paths["base"] == tmp_path / "m2" / "digits-base.keras"
    assert result.model_paths["base"].exists()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_ends_with_one_line_the_lock_released_and_a_resumable_folder(tmp_path, sig):
    out = tmp_path / "out"
    proc = subprocess.Popen(
        _cli(out), env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    _wait_for(lambda: _rows(out / "logs" / "digits-base-seed0.csv") >= 1, timeout=300, proc=proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, err[-3000:]  # 130 / 143, as a shell reports them
    assert "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"stopped by {signal.Signals(sig).name}: ")
    assert "resume with: python -m kerasbn.compare --dataset digits" in line and str(out) in line
    assert not (out / ".kerasbn.lock").exists()  # released
    assert not [p for p in out.rglob(".tmp-*")], "a half-written file was left behind"
    if sig == signal.SIGTERM:
        return
    again = subprocess.run(_cli(out), env=ENV, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "resuming the unfinished run" in again.stdout
    assert (out / "complete.json").exists()


class _SignalsWhenCollected:
    def __init__(self, sig):
        self.sig = sig

    def __del__(self):
        # Python runs the handler inside this __del__, where an exception is dropped.
        os.kill(os.getpid(), self.sig)
        for _ in range(1000):  # bytecodes, so that the pending handler runs in here
            pass


def test_a_signal_that_lands_in_a_finalizer_still_stops_the_run(capsys):
    from kerasbn._signals import Stopped, stop_on_signals
    from kerasbn.training.callbacks import StopOnSignal

    reached = []
    with pytest.raises(Stopped) as info, stop_on_signals():
        _SignalsWhenCollected(signal.SIGTERM)  # collected at once
        reached.append("after the finalizer")
        StopOnSignal().on_train_batch_end(0)  # the training loop's next safe point
        reached.append("after the next batch")
    assert info.value.exit_code == 143
    assert reached == ["after the finalizer"]
    assert "Exception ignored" not in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored
    StopOnSignal().on_train_batch_end(0)  # outside a command line: nothing to raise


def _signal_self(sig) -> None:
    os.kill(os.getpid(), sig)
    for _ in range(1000):  # bytecodes, so that the pending handler runs in here
        pass


def test_a_signal_is_raised_at_the_next_safe_point_not_where_code_could_swallow_it():
    from kerasbn._signals import Stopped, stop_on_signals
    from kerasbn.training.callbacks import StopOnSignal

    swallowed, reached = [], []
    with pytest.raises(Stopped) as info, stop_on_signals():
        try:  # like a C callback that turns any error into its own, or drops it
            _signal_self(signal.SIGINT)
        except BaseException as exc:
            swallowed.append(exc)
        reached.append("after the swallowing code")
        StopOnSignal().on_predict_batch_end(0)  # the next batch
        reached.append("after the next batch")
    assert swallowed == [] and reached == ["after the swallowing code"]
    assert info.value.exit_code == 130


def test_a_second_signal_stops_at_once_when_no_safe_point_came():
    from kerasbn._signals import Stopped, stop_on_signals

    reached = []
    with pytest.raises(Stopped) as info, stop_on_signals():
        _signal_self(signal.SIGTERM)
        reached.append("after the first")  # stuck where no batch ends, e.g. a download
        _signal_self(signal.SIGINT)
        reached.append("after the second")
    assert reached == ["after the first"]
    assert info.value.exit_code == 143  # the first signal is the one reported


# The atomic writes of this comparison, in order (1: the --save-models probe); one of
# each kind of file meets the full disk.
WRITES = {
    "probe": 1,
    "lock": 2,
    "config": 3,
    "epoch-log": 4,
    "checkpoint": 5,
    "state": 6,
    "predictions": 10,
    "probabilities": 11,
    "model": 13,
    "sidecar": 14,
    "model-card": 15,
    "manifest": 16,
    "record": 17,
    "history": 18,
    "curves": 24,
    "differences": 46,
    "complete": 47,
}


# Each case trains twice, so by default six sites run (the lock, the epoch log, the
# checkpoint, a saved model, the manifest, the completion marker); -m slow runs the rest.
DEFAULT_WRITES = ("lock", "epoch-log", "checkpoint", "model", "manifest", "complete")


@pytest.mark.parametrize(
    "failing_write",
    [
        pytest.param(n, id=k, marks=() if k in DEFAULT_WRITES else pytest.mark.slow)
        for k, n in WRITES.items()
    ],
)
def test_a_full_disk_at_any_write_exits_2_and_the_same_command_resumes(
    tmp_path, monkeypatch, capsys, failing_write
):
    import errno

    from kerasbn import _io

    real_mkstemp, calls = _io.tempfile.mkstemp, []

    def mkstemp(*args, **kwargs):
        calls.append(kwargs.get("prefix"))
        if len(calls) == failing_write:  # this write site meets a full disk
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_mkstemp(*args, **kwargs)

    out = tmp_path / "out"
    argv = [
        "--dataset",
        "digits",
        "--variants",
        "base,bn",
        "--epochs",
        "2",
        "--out",
        str(out),
        "--save-models",
        str(tmp_path / "models"),
        "--verbose",
        "0",
    ]
    monkeypatch.setattr(_io.tempfile, "mkstemp", mkstemp)
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2, calls
    err = capsys.readouterr().err
    assert "No space left" in err and "run the same command again" in err
    assert not [p for p in tmp_path.rglob(".tmp-*")] and not (out / ".kerasbn.lock").exists()
    monkeypatch.setattr(_io.tempfile, "mkstemp", real_mkstemp)
    assert main(argv) == 0  # space freed: the same command finishes the run
    assert (out / "complete.json").exists()


def test_a_checkpoint_that_would_not_fit_is_refused_before_writing(digits, tmp_path, monkeypatch):
    import shutil as shutil_module
    from collections import namedtuple

    from kerasbn import _io

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(_io.shutil, "disk_usage", lambda path: usage(10**9, 10**9, 1000))
    with pytest.raises(OSError, match="No space left: .*backup"):
        train(
            digits,
            "bn",
            default_config("digits", epochs=1, verbose=0),
            backup_dir=tmp_path / "backup",
        )
    assert shutil_module.disk_usage is not None
    assert not list((tmp_path / "backup").glob("*.h5"))


def test_a_full_disk_under_tensorboards_writer_exits_2_with_one_line(tmp_path, monkeypatch, capsys):
    import tensorflow as tf
    import tensorflow.summary

    # Keras' callback writes through the tensorflow.summary module, the HParams records
    # through tf.summary (TensorBoard's module when it is installed): both meet the disk.
    modules = {sys.modules[tensorflow.summary.__name__], tf.summary}

    def full(logdir, *args, **kwargs):  # what TensorFlow raises on a full disk (seen here)
        raise tf.errors.ResourceExhaustedError(
            None,
            None,
            "{{function_node __wrapped__CreateSummaryFileWriter_device_/job:localhost/replica:0"
            f"/task:0/device:CPU:0}} {logdir}/events.out.tfevents.1.v2; No space left on "
            f"device\n\tFailed to flush 1 events to {logdir}/events.out.tfevents.1.v2",
        )

    out = tmp_path / "out"
    argv = ["--dataset", "digits", "--variants", "base", "--epochs", "1", "--limit", "200",
            "--out", str(out), "--no-save-models", "--verbose", "0"]  # fmt: skip
    for module in modules:
        monkeypatch.setattr(module, "create_file_writer", full)
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error: No space left on device: '") and "events.out.tfevents" in err
    assert "run the same command again" in err and "function_node" not in err
    assert not (out / ".kerasbn.lock").exists()
    monkeypatch.undo()
    assert main(argv) == 0  # space freed: the same command finishes
    assert (out / "complete.json").exists()


def test_resume_refuses_another_distribution_or_new_outputs_by_name(tmp_path):
    from kerasbn.comparison import RESUME_RULE
    from kerasbn.runfolder import RunFolder

    config = default_config("digits", epochs=2, verbose=0)
    distribution = {"strategy": "default", "backend": "tensorflow", "replicas": 1,
                    "processes": 1, "global_batch": 32, "learning_rate": 0.003,
                    "lr_rule": "sqrt rule", "summary": "one device", "jobs": 1,
                    "threads_per_run": None}  # fmt: skip
    stored = {
        "dataset": "digits",
        "variants": ["bn"],
        "seeds": [0],
        "train_config": config.to_dict(),
        "distribution": distribution,
        "outputs": {"activations": False, "precise_bn": False},
    }
    (tmp_path / "config.json").write_text(json.dumps(stored))
    folder = RunFolder(tmp_path, RESUME_RULE)

    def now(**changes):
        settings = json.loads(json.dumps(stored))
        for key, fields in changes.items():
            settings[key].update(fields)
        return settings

    # How many runs train at once, and on how many threads, may change (another machine).
    assert folder.differences(now(distribution={"jobs": 4, "threads_per_run": 1})) == []
    # A field recorded only by a later version is not compared with a folder without it.
    assert folder.differences(now(distribution={"drop_remainder": True})) == []
    two = now(distribution={"replicas": 2, "global_batch": 64})
    assert folder.differences(two) == ["distribution"]
    assert "distribution.replicas: 1 stored, 2 now" in RESUME_RULE.explain(stored, two)
    jax = now(distribution={"backend": "jax"})
    assert "distribution.backend: 'tensorflow' stored, 'jax' now" in RESUME_RULE.explain(
        stored, jax
    )
    added = now(outputs={"activations": True})
    assert RESUME_RULE.explain(stored, added) == ["outputs.activations: False stored, True now"]
    # A folder from before both were recorded resumes as before.
    older = {k: v for k, v in stored.items() if k not in ("distribution", "outputs")}
    (tmp_path / "config.json").write_text(json.dumps(older))
    assert RunFolder(tmp_path, RESUME_RULE).differences(now(outputs={"precise_bn": True})) == []


def test_activations_added_on_resume_are_refused_before_training(digits, tmp_path):
    config = default_config("digits", epochs=1, verbose=0)
    out = tmp_path / "out"
    compare(digits, "base", config, out_dir=out, save_models=None, limit=200, tensorboard=False)
    (out / "complete.json").unlink()  # as if killed before the end
    with pytest.raises(FileExistsError, match=r"outputs\.activations: False stored, True now"):
        compare(
            digits, "base", config, out_dir=out, save_models=None, limit=200,
            tensorboard=False, activations=True,
        )  # fmt: skip
    assert not (out / "activations").exists()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_while_tensorflow_starts_ends_with_one_line(tmp_path, sig):
    out = tmp_path / "out"
    proc = subprocess.Popen(
        _cli(out), env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    time.sleep(1.0)  # the command's own imports take a fraction of this; TensorFlow's, more
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 128 + sig, err[-3000:]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert err.strip().splitlines()[-1].startswith(f"stopped by {signal.Signals(sig).name}: ")

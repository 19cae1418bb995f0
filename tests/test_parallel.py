"""``compare --jobs N``: runs trained in worker processes equal the sequential run with
the same ``--threads`` byte for byte (slow), and a stop signal ends every worker with one
line and a folder that resumes."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from kerasbn.cli.compare import main

ENV = {**os.environ, "KERASBN_OFFLINE": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
RUNS = ["digits-base-seed0", "digits-bn-seed0"]
# Wall-clock columns: they differ between any two runs.
CLOCKS = ["seconds", "train_seconds"]


def _cli(out: Path, *extra: str) -> list[str]:
    # Batch 8: an epoch long enough (about a second) to be stopped inside.
    return [
        sys.executable,
        "-m",
        "kerasbn.compare",
        "--dataset",
        "digits",
        "--variants",
        "base,bn",
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--out",
        str(out),
        "--no-save-models",
        "--no-tensorboard",
        "--verbose",
        "0",
        *extra,
    ]


def _histories(out: Path) -> dict[str, pd.DataFrame]:
    return {run: pd.read_csv(out / "logs" / f"{run}.csv").drop(columns=CLOCKS) for run in RUNS}


def _assert_same_histories(a: Path, b: Path) -> None:
    for run, history in _histories(a).items():
        other = _histories(b)[run]
        assert len(history) == 2, run
        # Byte for byte: every float printed by the log is the same.
        assert history.to_csv(index=False) == other.to_csv(index=False), run


@pytest.fixture(scope="module")
def sequential(tmp_path_factory) -> Path:
    """The comparison run one run after another on one thread, in a fresh process (the
    thread count is fixed when TensorFlow starts)."""
    out = tmp_path_factory.mktemp("sequential") / "out"
    done = subprocess.run(
        _cli(out, "--jobs", "1", "--threads", "1"),
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return out


@pytest.mark.slow  # the SIGINT test below also compares parallel runs with the sequential ones
def test_two_jobs_equal_one_job_on_the_same_threads(sequential, tmp_path):
    out = tmp_path / "out"
    done = subprocess.run(
        _cli(out, "--jobs", "2"), env=ENV, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # Each worker got cores // 2 threads; this test's machines have 2 cores.
    if (os.cpu_count() or 1) == 2:
        _assert_same_histories(out, sequential)
    workers = set(re.findall(r"in worker (\d+)", done.stdout))
    assert len(workers) == 2  # one process per run
    distribution = json.loads((out / "config.json").read_text())["distribution"]
    assert distribution["jobs"] == 2
    assert distribution["threads_per_run"] == max(1, len(os.sched_getaffinity(0)) // 2)
    runs = pd.read_csv(out / "runs.csv").set_index(["variant", "seed"]).sort_index()
    alone = pd.read_csv(sequential / "runs.csv").set_index(["variant", "seed"]).sort_index()
    assert runs["test_accuracy"].to_list() == alone["test_accuracy"].to_list()
    assert (out / "complete.json").is_file()


def test_bad_job_and_thread_counts_are_refused_before_anything_is_written(tmp_path, capsys):
    for argv, message in (
        (["--jobs", "0"], "--jobs must be a whole number from 1 to 256"),
        (["--threads", "0"], "--threads must be a whole number from 1"),
        (["--jobs", "2", "--strategy", "mirrored"], "trains each run on one device"),
    ):
        out = tmp_path / argv[1]
        with pytest.raises(SystemExit) as info:
            main(["--dataset", "digits", "--out", str(out), "--no-save-models", *argv])
        assert info.value.code == 2
        err = capsys.readouterr().err
        assert message in err and "Received:" in err
        assert not (out / "config.json").exists()  # refused before anything is written


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) is not running.
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "zombie" in status.read_text())


def test_sigint_stops_every_worker_and_the_folder_resumes(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen(
        _cli(out, "--jobs", "2", "--threads", "1", "--verbose", "2"),
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 300
    while not list((out / "logs").glob("*.csv")) if (out / "logs").exists() else True:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "no epoch finished in 300 s"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)  # the parent alone, as `kill -INT` does
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr
    line = stderr.strip().splitlines()[-1]
    assert line.startswith("stopped by SIGINT: ") and "resume with:" in line
    workers = [int(pid) for pid in re.findall(r"in worker (\d+)", stdout)]
    assert workers, stdout[-2000:]
    assert not [pid for pid in workers if _alive(pid)], "a worker outlived the parent"
    assert not (out / ".kerasbn.lock").exists()
    assert not list(out.rglob(".tmp-*")), "a half-written file was left behind"
    assert not (out / "complete.json").exists()
    assert len(list((out / "runs").glob("*.json"))) < len(RUNS), "stopped too late to test"
    again = subprocess.run(
        _cli(out, "--jobs", "2", "--threads", "1"),
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert (out / "complete.json").is_file()
    # Every run finished, each with its whole history (the byte-for-byte comparison with
    # a sequential run is the slow test above).
    for run, history in _histories(out).items():
        assert history["epoch"].to_list() == [1, 2], run


def _rounds(*speedups: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "dataset": "digits",
            "round": range(len(speedups)),
            "runs": 4,
            "sequential_seconds": [10.0 * s for s in speedups],
            "parallel_seconds": 10.0,
            "speedup": speedups,
        }
    )


def test_jobs_auto_uses_what_the_benchmark_found_faster_on_this_machine(tmp_path, monkeypatch):
    from kerasbn.bench import jobs as bench_jobs

    monkeypatch.setenv("KERASBN_CACHE", str(tmp_path / "cache"))
    assert bench_jobs.auto_jobs() == 1  # nothing measured: one run at a time
    # Faster in one round only: not enough.
    assert bench_jobs.record_choice(_rounds(1.1, 0.97, 1.2), 2) == 1
    assert bench_jobs.auto_jobs() == 1
    assert bench_jobs.record_choice(_rounds(1.06, 1.02, 1.1), 2) == 2
    assert bench_jobs.auto_jobs() == 2
    kept = json.loads((tmp_path / "cache" / "jobs.json").read_text())
    assert kept[bench_jobs.machine_key()]["median_speedup"] == pytest.approx(1.06)
    # A measurement of another machine does not count here; a damaged file reads as none.
    monkeypatch.setattr(bench_jobs, "machine_key", lambda: "another CPU x 64 cores")
    assert bench_jobs.auto_jobs() == 1
    (tmp_path / "cache" / "jobs.json").write_text("{not json")
    monkeypatch.undo()
    monkeypatch.setenv("KERASBN_CACHE", str(tmp_path / "cache"))
    assert bench_jobs.auto_jobs() == 1


def test_jobs_auto_on_the_command_line(tmp_path, monkeypatch, capsys):
    from kerasbn.bench import jobs as bench_jobs

    monkeypatch.setenv("KERASBN_CACHE", str(tmp_path / "cache"))
    bench_jobs.record_choice(_rounds(1.5), 2)
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as info:  # --jobs 2 (from the cache) and mirrored
        main(["--dataset", "digits", "--jobs", "auto", "--strategy", "mirrored", "--out", str(out)])
    assert info.value.code == 2 and "--jobs 2 trains each run on one device" in (
        capsys.readouterr().err
    )
    with pytest.raises(SystemExit) as info:
        main(["--dataset", "digits", "--jobs", "many"])
    assert info.value.code == 2
    assert "--jobs takes a whole number or auto" in capsys.readouterr().err


@pytest.mark.slow  # two whole digits comparisons in subprocesses (about a minute)
def test_bench_times_whole_comparisons_with_and_without_jobs(tmp_path, monkeypatch, capsys):
    from kerasbn.cli.bench import main as bench

    monkeypatch.setenv("KERASBN_CACHE", str(tmp_path / "cache"))
    assert bench(["--quick", "--jobs", "2", "--variants", "base", "--out", str(tmp_path)]) == 0
    assert "--jobs 2 s (median)" in capsys.readouterr().out
    rows = json.loads((tmp_path / "jobs.json").read_text())["rows"]
    assert len(rows) == 1 and rows[0]["runs"] == 2
    row = rows[0]
    assert row["speedup"] == pytest.approx(row["sequential_seconds"] / row["parallel_seconds"])
    assert (tmp_path / "cache" / "jobs.json").is_file()

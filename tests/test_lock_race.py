"""The stale-lock takeover is atomic: processes that find the same stale lock at the same
moment never both hold the folder; odd lock files (a link to /dev/zero, a pid of 1e400)
count as stale instead of crashing."""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import subprocess

import pytest

from kerasbn._lock import FolderLock, FolderLockedError


def _dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def _contend(root: str, trials: int, barrier, results) -> None:
    from pathlib import Path

    for trial in range(trials):
        barrier.wait()  # every process tries trial k at the same moment
        lock = FolderLock(Path(root) / f"t{trial}")
        try:
            lock.acquire()
            got = True
        except FolderLockedError:
            got = False
        barrier.wait()  # all have tried while a winner still holds its lock
        if got:
            lock.release()
        results.put((trial, got))


def _race(tmp_path, processes: int, trials: int) -> dict[int, int]:
    stale = {"pid": _dead_pid(), "host": socket.gethostname(), "start_time": "1"}
    for trial in range(trials):
        folder = tmp_path / f"t{trial}"
        folder.mkdir()
        (folder / ".kerasbn.lock").write_text(json.dumps(stale))
    context = multiprocessing.get_context("spawn")  # no fork of a process with threads
    barrier, results = context.Barrier(processes), context.Queue()
    workers = [
        context.Process(target=_contend, args=(str(tmp_path), trials, barrier, results))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    winners = {trial: 0 for trial in range(trials)}
    for _ in range(processes * trials):
        trial, got = results.get(timeout=120)
        winners[trial] += got
    for worker in workers:
        worker.join(timeout=60)
    return winners


@pytest.mark.parametrize("processes", [2, 3])
def test_a_stale_lock_is_taken_over_by_exactly_one_process(tmp_path, processes):
    winners = _race(tmp_path, processes, trials=100)
    assert set(winners.values()) == {1}, {t: n for t, n in winners.items() if n != 1}


@pytest.mark.slow
@pytest.mark.parametrize("processes", [2, 3])
def test_the_takeover_holds_over_500_races(tmp_path, processes):
    winners = _race(tmp_path, processes, trials=500)
    assert set(winners.values()) == {1}


@pytest.mark.parametrize(
    "make",
    [
        lambda path: path.symlink_to("/dev/zero"),
        lambda path: path.write_text(f'{{"pid": 1e400, "host": "{socket.gethostname()}"}}'),
        lambda path: path.write_text('["not", "an", "object"]'),
        lambda path: os.mkfifo(path),
    ],
)
def test_an_odd_lock_file_counts_as_stale(tmp_path, make):
    make(tmp_path / ".kerasbn.lock")
    with FolderLock(tmp_path) as lock:
        assert lock.read()["pid"] == os.getpid()
    assert not (tmp_path / ".kerasbn.lock").exists()

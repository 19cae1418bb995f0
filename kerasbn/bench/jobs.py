"""Whole comparisons one run at a time against ``--jobs N`` (``python -m kerasbn.bench
--jobs N``), and the choice ``compare --jobs auto`` reads.

A user waits for a comparison, so this times the whole command: ``python -m
kerasbn.compare`` of the benchmark's data sets and variants with two seeds each, once
with ``--jobs 1`` (one run after another on every core) and once with ``--jobs N``
(N runs at once on cores // N threads each), back to back in each round, alternating
which goes first. Each round gives one ratio (sequential seconds / parallel seconds);
the table reports its median, min and max, and the verdict rule of the throughput
table: faster only when every round agrees.

The outcome is kept per machine (CPU model and cores) in ``~/.cache/kerasbn/jobs.json``
(``KERASBN_CACHE`` overrides the folder): ``compare --jobs auto`` then uses N only on a
machine where the benchmark found it faster in every round, else 1.
"""

from __future__ import annotations

import json
import logging
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from kerasbn._io import write_json
from kerasbn._paths import cache_root
from kerasbn.training.threads import available_cores

__all__ = [
    "auto_jobs",
    "cache_file",
    "jobs_markdown",
    "machine_key",
    "record_choice",
    "time_jobs",
]

log = logging.getLogger(__name__)

SEEDS = 2  # runs per variant in the timed comparison


def cache_file() -> Path:
    return cache_root() / "jobs.json"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_key() -> str:
    """What a measured choice holds for: the CPU model and the cores this process has."""
    return f"{_cpu_model()} x {available_cores()} cores"


def _compare(dataset, variants, epochs, limit, data_dir, jobs: int, out: Path) -> float:
    argv = [
        sys.executable, "-m", "kerasbn.compare", "--dataset", dataset,
        "--variants", ",".join(variants), "--seeds", str(SEEDS), "--jobs", str(jobs),
        "--out", str(out), "--no-save-models", "--no-tensorboard", "--verbose", "0",
    ]  # fmt: skip
    if epochs:
        argv += ["--epochs", str(epochs)]
    if limit:
        argv += ["--limit", str(limit)]
    if data_dir:
        argv += ["--data-dir", str(data_dir)]
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"compare --jobs {jobs} on {dataset} failed:\n{done.stderr[-3000:]}")
    return seconds


def time_jobs(config, jobs: int) -> pd.DataFrame:
    """One row per (data set, round): the seconds of the whole comparison with
    ``--jobs 1`` and with ``--jobs jobs``, and their ratio."""
    rows = []
    for dataset in config.datasets:
        for round_ in range(config.repeats):
            order = (1, jobs) if round_ % 2 == 0 else (jobs, 1)
            seconds = {}
            with tempfile.TemporaryDirectory(prefix="kerasbn-jobs-") as tmp:
                for n in order:
                    out = Path(tmp) / f"jobs{n}"
                    seconds[n] = _compare(
                        dataset, config.variants, config.epochs, config.limit,
                        config.data_dir, n, out,
                    )  # fmt: skip
                    log.info("%s round %d: --jobs %d took %.1f s", dataset, round_, n, seconds[n])
            rows.append(
                {
                    "dataset": dataset,
                    "round": round_,
                    "runs": len(config.variants) * SEEDS,
                    "sequential_seconds": seconds[1],
                    "parallel_seconds": seconds[jobs],
                    "speedup": seconds[1] / seconds[jobs],
                }
            )
    return pd.DataFrame(rows)


def _verdict(speedups: pd.Series) -> str:
    return "faster" if speedups.min() > 1 else "slower" if speedups.max() < 1 else "mixed"


def jobs_markdown(rounds: pd.DataFrame, jobs: int, threads: int) -> str:
    rows = []
    for dataset, group in rounds.groupby("dataset", sort=False):
        rows.append(
            {
                "data set": dataset,
                "runs": int(group["runs"].iloc[0]),
                "--jobs 1 s (median)": f"{group['sequential_seconds'].median():.1f}",
                f"--jobs {jobs} s (median)": f"{group['parallel_seconds'].median():.1f}",
                "speed-up (median)": f"{group['speedup'].median():.2f}x",
                "min–max over rounds": (
                    f"{group['speedup'].min():.2f}–{group['speedup'].max():.2f}x"
                ),
                "rounds": len(group),
                "verdict": _verdict(group["speedup"]),
            }
        )
    return (
        pd.DataFrame(rows).to_markdown(index=False)
        + f"\n\nWhole `python -m kerasbn.compare` commands ({SEEDS} seeds per variant), "
        f"`--jobs 1` on all {available_cores()} cores against `--jobs {jobs}` on {threads} "
        f"thread(s) per run, back to back in each round; machine: {machine_key()}.\n"
    )


def record_choice(rounds: pd.DataFrame, jobs: int) -> int:
    """Keep, for this machine, the ``--jobs`` that was faster in every round of every
    data set (else 1), for ``compare --jobs auto``; return it."""
    faster = bool(len(rounds)) and bool((rounds["speedup"] > 1).all())
    choice = jobs if faster else 1
    path = cache_file()
    try:
        known = json.loads(path.read_text()) if path.is_file() else {}
        known = known if isinstance(known, dict) else {}
    except (OSError, ValueError):
        known = {}
    known[machine_key()] = {
        "jobs": choice,
        "measured_jobs": jobs,
        "median_speedup": float(rounds["speedup"].median()),
        "date": time.strftime("%Y-%m-%d"),
    }
    try:
        write_json(path, known)
    except OSError as exc:  # a read-only home: the figures are still printed
        log.warning("could not keep the --jobs choice in %s (%s)", path, exc)
    return choice


def auto_jobs() -> int:
    """``compare --jobs auto``: the ``--jobs`` the benchmark found faster on this machine,
    else 1 (no measurement here: one run at a time, as before)."""
    path = cache_file()
    try:
        entry = json.loads(path.read_text()).get(machine_key()) if path.is_file() else None
        jobs = int(entry["jobs"]) if isinstance(entry, dict) else None
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        jobs = None
    if jobs is None or not 1 <= jobs <= available_cores() * 4:
        log.info(
            "--jobs auto: no measurement for this machine (%s); one run at a time. "
            "python -m kerasbn.bench --jobs 2 measures it.",
            machine_key(),
        )
        return 1
    log.info("--jobs auto: %d (measured faster on this machine by kerasbn.bench)", jobs)
    return jobs

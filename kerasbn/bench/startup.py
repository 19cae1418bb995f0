"""How long a command takes to answer (``python -m kerasbn.bench --startup``).

Daily use is mostly short commands: ``--help``, ``zoo list``, ``results RUN``. Each is
run as a fresh process ``repeats`` times and timed by the CPU it used (user + system,
from the operating system's accounting of the child, so a busy machine's waiting does
not count) and by wall-clock time; the table gives the medians beside ``import
tensorflow`` alone, for scale, and marks the 1 s of CPU target met or not.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["STARTUP_TARGET_S", "startup_commands", "startup_markdown", "time_startup"]

STARTUP_TARGET_S = 1.0  # CPU seconds a short command may take


def startup_commands(run_dir: str | os.PathLike | None) -> dict[str, list[str]]:
    """The commands timed: label -> argv (``results RUN`` only with a run folder)."""
    python = sys.executable
    commands = {
        "kerasbn --help": [python, "-m", "kerasbn", "--help"],
        "kerasbn compare --help": [python, "-m", "kerasbn", "compare", "--help"],
        "kerasbn zoo list": [python, "-m", "kerasbn", "zoo", "list"],
    }
    if run_dir is not None:
        commands["kerasbn results RUN"] = [python, "-m", "kerasbn", "results", str(run_dir)]
    commands["import tensorflow (for scale)"] = [python, "-c", "import tensorflow"]
    return commands


def _run_once(argv: list[str]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one run of ``argv``."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    with tempfile.TemporaryFile() as err:  # a file, not a pipe: it never fills and blocks
        start = time.perf_counter()
        process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, env=env)
        # wait4: this child's own CPU time, whatever else the machine runs.
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        process.returncode = code = os.waitstatus_to_exitcode(status)
        if code != 0:
            err.seek(0)
            text = err.read().decode(errors="replace")[-2000:]
            raise RuntimeError(f"{' '.join(argv)} failed ({code}):\n{text}")
    return usage.ru_utime + usage.ru_stime, wall


def time_startup(run_dir: str | os.PathLike | None, repeats: int) -> pd.DataFrame:
    """One row per command: median and max CPU seconds and median wall seconds."""
    rows = []
    for label, argv in startup_commands(run_dir).items():
        _run_once(argv)  # warm the file cache, like a second use of the day
        cpu, wall = zip(*(_run_once(argv) for _ in range(repeats)), strict=True)
        rows.append(
            {
                "command": label,
                "cpu_s_median": float(np.median(cpu)),
                "cpu_s_max": float(np.max(cpu)),
                "wall_s_median": float(np.median(wall)),
                "repeats": repeats,
            }
        )
    return pd.DataFrame(rows)


def startup_markdown(table: pd.DataFrame, run_dir: str | os.PathLike | None) -> str:
    shown = table.assign(
        target=[
            "for scale" if "tensorflow" in c else ("met" if s <= STARTUP_TARGET_S else "not met")
            for c, s in zip(table["command"], table["cpu_s_median"], strict=True)
        ]
    ).rename(
        columns={
            "cpu_s_median": "CPU s (median)",
            "cpu_s_max": "CPU s (max)",
            "wall_s_median": "wall s (median)",
            "target": f"≤ {STARTUP_TARGET_S:g} s CPU",
        }
    )
    where = f" `RUN` is `{Path(run_dir).name}`." if run_dir is not None else ""
    return (
        shown.to_markdown(index=False, floatfmt=".2f")
        + "\n\nEach command a fresh process, timed by the CPU it used (user + system) and "
        f"by the wall clock, after one untimed run.{where}\n"
    )

"""A benchmark run as a file: what ``bench --out DIR`` keeps in ``DIR/bench.json``,
and its published text made again from that file alone.

The record holds every round of every path (so the ratios, taken round by round, can
be recomputed), the medians, the matmul peaks, the notes, the machine (CPU model,
cores, bfloat16 flags) and the command and commit. ``python -m kerasbn.results DIR
--table bench`` prints what the run printed; the README's benchmark blocks are made
and checked that way, like the result tables.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from kerasbn.bench.table import BenchResult, add_flop_rates, median_rows, ratios, to_markdown
from kerasbn.bench.targets import targets_markdown

__all__ = ["bench_markdown", "bench_text", "read_bench", "result_record"]

RECORD = "bench.json"


def result_record(result: BenchResult) -> dict:
    """The parts of ``result`` its published text is made from, as JSON values."""
    return {
        "peak_flops": result.peak_flops,
        "bfloat16_peak_flops": result.bfloat16_peak_flops,
        "notes": list(result.notes),
        "raw": None if result.raw is None else result.raw.to_dict("records"),
    }


def bench_text(result: BenchResult, record: dict) -> str:
    """The benchmark's output: its tables, the targets (for a record that names its
    machine) and the command and commit (for one that names its command)."""
    text = to_markdown(result)
    if record.get("machine_info"):
        targets = targets_markdown(result, record["machine_info"])
        text += f"\n{targets}" if targets else ""
    if record.get("command"):
        commit = ((record.get("git") or {}).get("commit") or "unknown")[:7]
        text += f"\nMeasured by `{record['command']}` (code at `{commit}`).\n"
    return text


def read_bench(path: str | os.PathLike) -> tuple[BenchResult, dict]:
    """The :class:`BenchResult` and the record kept in ``path`` (a ``bench --out``
    folder, or its JSON file).

    Raises:
        FileNotFoundError: no record there.
        ValueError: a record of several rounds without its per-round rows (kept since
            this module exists), whose ratios cannot be recomputed.
    """
    path = Path(path)
    file = path / RECORD if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(
            f"{path} holds no benchmark record ({RECORD}); pass the --out folder of a "
            "python -m kerasbn.bench run."
        )
    record = json.loads(file.read_text(encoding="utf-8"))
    if record.get("raw"):
        raw = pd.DataFrame(record["raw"])
        # The rounds are the measurement: the row of each path follows from them as
        # this version aggregates (a record written before a change of rule agrees).
        table = median_rows(raw)
        add_flop_rates(table, record["peak_flops"], record.get("bfloat16_peak_flops"))
    else:
        table = pd.DataFrame(record["rows"])
        if not (table.get("rounds", pd.Series([1])) == 1).all():
            raise ValueError(
                f"{file} keeps medians over several rounds but not the rounds, so its ratios "
                "cannot be recomputed; run the benchmark again with this version."
            )
        raw = table.assign(round=0)  # one round: its medians are the round
    result = BenchResult(
        table,
        ratios(raw),
        record["peak_flops"],
        list(record.get("notes", [])),
        record.get("bfloat16_peak_flops"),
        raw,
    )
    return result, record


def bench_markdown(paths: list[str | os.PathLike]) -> str:
    """The published text of one benchmark record (``--table bench``)."""
    if len(paths) != 1:
        raise ValueError(
            f"--table bench takes one benchmark folder. Received: {len(paths)} folder(s)"
        )
    return bench_text(*read_bench(paths[0]))

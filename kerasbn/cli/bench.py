"""``python -m kerasbn.bench``: the flags, calling :func:`kerasbn.bench.run_benchmark`.

Exit status: 0 measured, 2 bad flags.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path

import pandas as pd

from kerasbn._io import write_json, write_text
from kerasbn._logging import configure_logging
from kerasbn._text import terminal_safe
from kerasbn._versions import command_line, provenance
from kerasbn.bench import DEFAULT_PATHS, PATHS, QUICK, BenchConfig, run_benchmark
from kerasbn.bench.child import child_main
from kerasbn.bench.record import bench_text, result_record
from kerasbn.bench.speed_to_target import (
    time_from_runs,
    time_to_accuracy,
    time_to_accuracy_markdown,
)
from kerasbn.bench.targets import targets_table, this_machine
from kerasbn.cli._parser import ArgumentParser
from kerasbn.data import get_dataset_info
from kerasbn.registry import check_choice
from kerasbn.results_tables import replace_block, source_line
from kerasbn.training.precision import PRECISION_CHOICES
from kerasbn.variants import get_variant

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(
        prog="python -m kerasbn.bench",
        description="Training throughput of kerasbn vs the naive Keras path vs PyTorch eager "
        "(or, with --time-to-accuracy, how long the default recipe takes to its target).",
    )
    parser.add_argument("--datasets", help="comma list (default: mnist,cifar10)")
    parser.add_argument("--variants", default="base,bn+dropout")
    parser.add_argument(
        "--paths", default=",".join(DEFAULT_PATHS), help=f"subset of {', '.join(PATHS)}"
    )
    parser.add_argument(
        "--epochs", type=int, help=f"1 warm-up + timed (default: {BenchConfig.epochs})"
    )
    parser.add_argument(
        "--limit",
        type=int,
        help=f"training images (default: {BenchConfig.limit} for throughput, all for "
        "--time-to-accuracy)",
    )
    parser.add_argument("--data-dir")
    parser.add_argument(
        "--repeats", type=int, help=f"rounds over the paths (default: {BenchConfig.repeats})"
    )
    parser.add_argument(
        "--batch-size", type=int, help="kerasbn and PyTorch batch (default: per data set)"
    )
    parser.add_argument(
        "--precision",
        default="auto",
        choices=PRECISION_CHOICES,
        help="kerasbn and PyTorch compute precision; auto: mixed_bfloat16 on a GPU, "
        "else float32 (the naive path always uses Keras' float32 default)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny offline run (digits, 512 images, 2 epochs, 1 round); flags given too win",
    )
    parser.add_argument("--out", help="also write the table as JSON and Markdown here")
    parser.add_argument(
        "--time-to-accuracy",
        action="store_true",
        help="instead of throughput: train each data set's default recipe (whole training "
        "set unless --limit) and time it to the preset's validation-accuracy target",
    )
    parser.add_argument(
        "--from-run",
        nargs="+",
        metavar="DIR",
        help="with --time-to-accuracy: read the times from finished compare folders (all "
        "their seeds) instead of training again",
    )
    parser.add_argument(
        "--into",
        help="also write the table into this Markdown file, between <!-- results:NAME --> "
        "markers (as python -m kerasbn.results does)",
    )
    parser.add_argument("--name", default="bench", help="the marker name for --into")
    parser.add_argument(
        "--startup",
        nargs="?",
        const="",
        metavar="RUN",
        help="instead of throughput: the CPU and wall time of short commands (--help, zoo "
        "list, results RUN when a finished run folder is given) beside import tensorflow",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        metavar="N",
        help="instead of throughput: time whole comparisons (the variants x 2 seeds) with "
        "compare --jobs 1 and --jobs N, as a ratio per round; the faster choice is kept "
        "for compare --jobs auto on this machine",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child_main(args.child)
        return 0
    configure_logging()
    try:
        config = _config(args)
    except ValueError as exc:
        parser.exit(2, f"error: {exc}\n")
    if args.from_run and not args.time_to_accuracy:
        parser.exit(2, "error: --from-run goes with --time-to-accuracy.\n")
    if args.time_to_accuracy:
        return _time_from_runs(args) if args.from_run else _time_to_accuracy(args, config)
    if args.jobs is not None:
        return _jobs(args, config)
    if args.startup is not None:
        return _startup(args, config)
    result = run_benchmark(config)
    record = {
        "config": asdict(config),
        **result_record(result),
        "machine_info": this_machine(),
        "targets": targets_table(result).to_dict("records"),
        "command": command_line("kerasbn.bench") or "kerasbn.cli.bench.main() from Python",
        **provenance(),
    }
    # One text for the terminal, --into and --out: what `results --table bench` remakes.
    markdown = bench_text(result, record)
    print(markdown)
    _into(args, markdown)
    if args.out:
        _write(Path(args.out), "bench", markdown, result.table, record)
    return 0


def _commit() -> str:
    return ((provenance().get("git") or {}).get("commit") or "unknown")[:7]


def _into(args: argparse.Namespace, markdown: str) -> None:
    """Write ``markdown`` into ``args.into`` between its ``args.name`` markers."""
    if args.into:
        path = Path(args.into)
        write_text(path, replace_block(path.read_text(encoding="utf-8"), args.name, markdown))


def _write(out: Path, name: str, markdown: str, table: pd.DataFrame, record: dict) -> None:
    """``<name>.md`` and ``<name>.json`` (rows, machine, date, commit) in ``out``."""
    write_text(out / f"{name}.md", markdown)
    write_json(
        out / f"{name}.json",
        {
            **record,
            "rows": table.to_dict("records"),
            "machine": platform.platform(),
            "cpus": os.cpu_count(),
            "date": time.strftime("%Y-%m-%d"),
            **provenance(),
        },
    )


def _config(args: argparse.Namespace) -> BenchConfig:
    """The run's settings: the defaults, then --quick's, then every flag given; names and
    numbers checked before anything trains."""
    config = replace(BenchConfig(), **QUICK) if args.quick else BenchConfig()
    given = {
        "datasets": tuple(args.datasets.split(",")) if args.datasets else None,
        "variants": tuple(args.variants.split(",")),
        "paths": tuple(args.paths.split(",")),
        "epochs": args.epochs,
        "limit": args.limit,
        "repeats": args.repeats,
        "batch_size": args.batch_size,
        "data_dir": args.data_dir,
        "precision": args.precision,
    }
    config = replace(config, **{k: v for k, v in given.items() if v is not None})
    config = replace(config, datasets=tuple(get_dataset_info(d).name for d in config.datasets))
    for variant in config.variants:
        get_variant(variant)
    for path in config.paths:
        check_choice(path, PATHS, "path")
    for name, low in (("epochs", 2), ("repeats", 1), ("limit", 1), ("batch_size", 1)):
        value = getattr(config, name)
        if value is not None and value < low:
            flag = "--" + name.replace("_", "-")
            why = " (one warm-up epoch, one timed)" if name == "epochs" else ""
            raise ValueError(f"{flag} must be at least {low}{why}. Received: {value}")
    return config


def _time_from_runs(args: argparse.Namespace) -> int:
    try:
        table, markdown = time_from_runs(args.from_run)
    except (FileNotFoundError, ValueError) as exc:  # ValueError: a damaged or hostile file
        print(f"error: {terminal_safe(str(exc))}", file=sys.stderr)
        return 2
    print(markdown)
    if args.out:
        sources = []
        for folder in args.from_run:
            config = json.loads((Path(folder) / "config.json").read_text())
            commit = (config.get("git") or {}).get("commit") or "unknown"
            sources.append(
                {
                    "dir": folder,
                    "command": config.get("command"),
                    "commit": commit,
                    "source": source_line(Path(folder), config),
                }
            )
        _write(Path(args.out), "time_to_accuracy", markdown, table, {"runs": sources})
    _into(args, markdown)
    return 0


def _startup(args: argparse.Namespace, config: BenchConfig) -> int:
    from kerasbn.bench.startup import startup_markdown, time_startup

    run_dir = args.startup or None
    if run_dir is not None and not (Path(run_dir) / "complete.json").is_file():
        print(f"error: {run_dir} is not a finished run folder (no complete.json)", file=sys.stderr)
        return 2
    table = time_startup(run_dir, config.repeats)
    return _report(args, "startup", startup_markdown(table, run_dir), table, {"run": run_dir})


def _report(args: argparse.Namespace, name: str, markdown: str, table, record: dict) -> int:
    """Print a measured table with the command and commit that made it, and write it
    where --out and --into say."""
    command = command_line("kerasbn.bench") or "kerasbn.cli.bench.main() from Python"
    markdown += f"\nMeasured by `{command}` (code at `{_commit()}`).\n"
    print(markdown)
    if args.out:
        _write(Path(args.out), name, markdown, table, record)
    _into(args, markdown)
    return 0


def _jobs(args: argparse.Namespace, config: BenchConfig) -> int:
    from kerasbn.bench.jobs import jobs_markdown, record_choice, time_jobs
    from kerasbn.comparison_options import check_jobs

    try:
        jobs, threads = check_jobs(args.jobs, None)
        if jobs < 2:
            raise ValueError(
                f"--jobs compares --jobs 1 with more; pass 2 or more. Received: {jobs}"
            )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rounds = time_jobs(config, jobs)
    choice = record_choice(rounds, jobs)
    markdown = jobs_markdown(rounds, jobs, threads) + f"\n`compare --jobs auto` here: {choice}.\n"
    return _report(args, "jobs", markdown, rounds, {"jobs": jobs, "auto": choice})


def _time_to_accuracy(args: argparse.Namespace, config: BenchConfig) -> int:
    limit = args.limit if args.limit is not None else QUICK["limit"] if args.quick else None
    epochs = args.epochs or (3 if args.quick else None)  # None: the recipe's epochs
    table = pd.concat(
        [
            time_to_accuracy(dataset, config.variants, config.data_dir, limit, epochs)
            for dataset in config.datasets
        ],
        ignore_index=True,
    )
    markdown = time_to_accuracy_markdown(table)
    print(markdown)
    if args.out:
        _write(Path(args.out), "time_to_accuracy", markdown, table, {"limit": limit})
    return 0

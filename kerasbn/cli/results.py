"""``python -m kerasbn.results RUN_DIR [RUN_DIR ...] [--table NAME] [--into README.md
--name NAME]`` and ``python -m kerasbn.results archive RUN_DIR --name
NAME``.

Prints the results table (``--table diagnostics``: the BN diagnostics table) of finished
comparison folders, or writes it into a Markdown
file between ``<!-- results:NAME -->`` and ``<!-- /results:NAME -->``: how the README's
tables are made, never by hand. ``archive`` copies a finished folder's light files into
``results/NAME`` (see :mod:`kerasbn.archive`), where the tables are read from.
Exit status: 0 written, 2 an unfinished or missing folder, a file without the markers,
or a folder that cannot be archived.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

from kerasbn._io import write_text
from kerasbn.archive import ARCHIVE_ROOT, archive
from kerasbn.cli._parser import ArgumentParser

# Each table's function, imported when asked for (the statistics and plotting stacks
# load only for the table printed, never for --help).
TABLES = {
    "main": ("kerasbn.results_tables", "results_markdown"),
    "data": ("kerasbn.results_tables", "data_markdown"),
    "headline": ("kerasbn.results_tables", "headline_markdown"),
    "diagnostics": ("kerasbn.diagnostics.table", "diagnostics_markdown"),
    "experiment": ("kerasbn.results_tables", "experiment_markdown"),
    "recipes": ("kerasbn.tuning.recipes", "recipes_markdown"),
    "setting": ("kerasbn.setting_effect", "setting_markdown"),
    "bench": ("kerasbn.bench.record", "bench_markdown"),
    "ledger": ("kerasbn.experiments.ledger", "ledger_markdown"),
    "time": ("kerasbn.bench.speed_to_target", "time_from_runs_markdown"),
}


def table_function(name: str):
    module, function = TABLES[name]
    return getattr(importlib.import_module(module), function)


__all__ = ["TABLES", "main", "table_function"]


def archive_main(argv: Sequence[str]) -> int:
    parser = ArgumentParser(
        prog="python -m kerasbn.results archive",
        description="Copy a finished run folder's light files into the results archive.",
    )
    parser.add_argument("run_dir", help="a finished run folder (compare or experiment)")
    parser.add_argument("--name", required=True, help="the archive folder's name")
    parser.add_argument("--root", default=str(ARCHIVE_ROOT), help="default: %(default)s")
    parser.add_argument(
        "--unfinished",
        action="store_true",
        help="keep a folder still training as a piece to grow elsewhere: its finished "
        "runs only, never published as a table",
    )
    args = parser.parse_args(argv)
    try:
        target = archive(args.run_dir, args.name, args.root, unfinished=args.unfinished)
    except (FileNotFoundError, ValueError, OSError) as exc:
        parser.exit(2, f"error: {exc}\n")
    print(target)
    return 0


def published_main(command: str) -> int:
    """``check``: exit 1 naming each published block that differs from what its archived
    folders generate; ``regenerate``: rewrite them all (run from the repository root)."""
    from kerasbn import published

    if command == "regenerate":
        for name in published.regenerate():
            print(f"regenerated {name}")
        return 0
    drifted = published.differences() + published.stale_references()
    for name in drifted:
        print(f"differs from its archived folders: {name}", file=sys.stderr)
    return 1 if drifted else 0


def refresh_main(argv: Sequence[str]) -> int:
    parser = ArgumentParser(
        prog="python -m kerasbn.results refresh",
        description="Rewrite finished comparison folders' summary, intervals, verdicts and "
        "figures with the current methods (the runs are not touched).",
    )
    parser.add_argument("run_dirs", nargs="+", help="finished compare output folders")
    args = parser.parse_args(argv)
    from kerasbn.results_tables import refresh

    try:
        for run_dir in args.run_dirs:
            refresh(run_dir)
            print(f"refreshed {run_dir}")
    except (FileNotFoundError, ValueError, KeyError) as exc:
        parser.exit(2, f"error: {exc}\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["archive"]:
        return archive_main(argv[1:])
    if argv[:1] in (["check"], ["regenerate"]):
        return published_main(argv[0])
    if argv[:1] == ["refresh"]:
        return refresh_main(argv[1:])
    parser = ArgumentParser(prog="python -m kerasbn.results", description=__doc__)
    parser.add_argument("run_dirs", nargs="+", help="finished compare output folders")
    parser.add_argument("--into", help="a Markdown file to write the table into")
    parser.add_argument("--name", default="main", help="the marker name in that file")
    parser.add_argument(
        "--table",
        choices=sorted(TABLES),
        default="main",
        help="main: accuracy, verdicts and overfitting; diagnostics: precise BN, "
        "calibration and variance shift; experiment: a named experiment's table; "
        "recipes: two folders, the shared recipe then compare --tune, side by side; "
        "setting: two folders with one setting changed (e.g. --precision), each variant "
        "judged against itself; bench: a python -m kerasbn.bench --out folder; "
        "data: what kerasbn chose for your own data set (--dataset PATH)",
    )
    args = parser.parse_args(argv)
    try:
        from kerasbn.results_tables import replace_block

        table = table_function(args.table)(args.run_dirs)
        if args.into:
            path = Path(args.into)
            write_text(path, replace_block(path.read_text(encoding="utf-8"), args.name, table))
    except (FileNotFoundError, ValueError, KeyError) as exc:
        parser.exit(2, f"error: {exc}\n")
    print(table, end="")
    return 0

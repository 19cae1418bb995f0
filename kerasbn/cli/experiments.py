"""``python -m kerasbn.experiments list | ledger | run NAME [--quick] [--out DIR]``.

Exit status: 0 done, 2 an unknown experiment, unusable data, a full disk, or an output
folder that is finished, in use or holds another experiment; 130 / 143 stopped by Ctrl-C
/ SIGTERM (one line says what is saved and the command that resumes).
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from kerasbn._io import disk_full, disk_full_text
from kerasbn._lock import FolderLockedError
from kerasbn._logging import configure_logging
from kerasbn._signals import Stopped, raise_if_stopped, stop_on_signals
from kerasbn.cli._parser import ArgumentParser
from kerasbn.data import DataError
from kerasbn.experiments import (
    get_experiment,
    list_experiments,
    parse_overrides,
    run_experiment,
)
from kerasbn.runfolder import default_out_dir

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(
        prog="python -m kerasbn.experiments", description="Named BatchNorm experiments."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="name the experiments and their claims")
    sub.add_parser(
        "ledger",
        help="each paper claim, the archived run that tests it, our effect and the verdict "
        "(read from ./results)",
    )
    run = sub.add_parser("run", help="run one experiment")
    run.add_argument("name", help=", ".join(list_experiments()))
    run.add_argument("--quick", action="store_true", help="shrunken settings (for tests)")
    run.add_argument("--out", help="output folder (default runs/experiments/<time>-<name>)")
    run.add_argument("--data-dir", help="local data folder (default $KERASBN_DATA_DIR)")
    run.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a field of the experiment's config (repeatable; a comma list for "
        "tuples), e.g. --set models_dir=saved_models for corruption-robustness",
    )
    args = parser.parse_args(argv)
    configure_logging()
    if args.command == "list":
        for name in list_experiments():
            print(f"{name:<20} {get_experiment(name).claim}")
        return 0
    if args.command == "ledger":
        from kerasbn.experiments.ledger import ledger_markdown

        try:
            print(ledger_markdown(), end="")
        except (OSError, ValueError) as exc:
            parser.exit(2, f"error: {exc}. Run it from the repository root (it reads results/)\n")
        return 0
    # The folder is named here, so that a stopped run can say how to resume it.
    out = Path(args.out) if args.out else default_out_dir(args.name, "runs/experiments")
    again = ["python", "-m", "kerasbn.experiments", "run", args.name, "--out", str(out)]
    again += ["--quick"] * args.quick + (["--data-dir", args.data_dir] if args.data_dir else [])
    try:
        overrides = parse_overrides(args.name, args.set) if args.set else {}
    except ValueError as exc:
        parser.exit(2, f"error: {exc}\n")
    for assignment in args.set:
        again += ["--set", assignment]
    with stop_on_signals():
        try:
            result = run_experiment(
                args.name, quick=args.quick, out_dir=out, data_dir=args.data_dir, **overrides
            )
            raise_if_stopped()  # a signal that arrived where it could not be raised
        except (ValueError, DataError, PermissionError, FileExistsError, FolderLockedError) as exc:
            parser.exit(2, f"error: {exc}\n")
        except Exception as exc:  # a full disk; TensorFlow's writers raise no OSError
            if not disk_full(exc):
                raise
            line = f"error: {disk_full_text(exc)}. Free some space, then: {shlex.join(again)}"
            parser.exit(2, line + "\n")
        except Stopped as stop:
            print(
                f"stopped by {stop}: the finished units are saved in {out}; resume with: "
                f"{shlex.join(again)}",
                file=sys.stderr,
            )
            return stop.exit_code
    print((result.out_dir / "summary.md").read_text())
    for figure in result.figures:
        print(f"[kerasbn] figure {figure}")
    print(f"[kerasbn] results in {result.out_dir}")
    return 0

"""``python -m kerasbn.tune``: the flags, calling :func:`kerasbn.tuning.tune` (or
:func:`kerasbn.tuning.work` with ``--worker``).

Exit status: 0 done, 2 bad input (unknown hyperparameter, a range with low >= high,
``--trials 0``, unusable data, output folder or database), with one ``error: ...`` line
that says how to fix it, before any training; 130 (Ctrl-C) or 143 (SIGTERM) stopped, with
one line saying what is kept and the command that continues the study.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from kerasbn._io import disk_full, disk_full_text
from kerasbn._lock import FolderLockedError
from kerasbn._logging import configure_logging
from kerasbn._signals import Stopped, raise_if_stopped, stop_on_signals
from kerasbn.cli._parser import (
    ArgumentParser,
    add_data_flags,
    add_dataset_flags,
    check_limit,
    prepare_dataset,
)
from kerasbn.data.catalog import DataError
from kerasbn.runfolder import default_out_dir
from kerasbn.tuning.space import HYPERPARAMETERS, parse_ranges, parse_tune

__all__ = ["add_tuning_flags", "build_parser", "main"]


def add_tuning_flags(parser: argparse.ArgumentParser, *, prefix: str = "") -> None:
    """The search flags ``tune`` and ``compare --tune`` share."""
    parser.add_argument(
        f"--{prefix}trials",
        type=int,
        default=20,
        help="finished trials (completed or pruned) per variant (default: %(default)s)",
    )
    parser.add_argument(
        "--range",
        action="append",
        default=[],
        metavar="NAME=LOW:HIGH",
        help="replace a tuned value's default range, e.g. --range lr=1e-4:1e-2 (repeatable)",
    )
    parser.add_argument(
        "--storage",
        help="an SQLAlchemy database URL (e.g. postgresql://user@host/db) that "
        "'python -m kerasbn.tune --worker --storage URL' processes on other machines join "
        "(default: the journal file study.log in the tune folder)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="python -m kerasbn.tune",
        description="Tune each variant's nuisance hyperparameters (learning rate, weight "
        "decay, ...) on the validation split with Optuna, so that variants are compared "
        "at their own best settings.",
    )
    add_dataset_flags(parser)
    parser.add_argument(
        "--tune",
        default="lr,wd",
        help=f"what to tune, a comma list of {', '.join(HYPERPARAMETERS)} (default: %(default)s)",
    )
    add_tuning_flags(parser)
    parser.add_argument("--epochs", type=int, help="epochs per trial (default: the recipe's)")
    parser.add_argument("--out", help="tune folder (default: runs/<time>-<dataset>-tune)")
    parser.add_argument("--study", help="the studies' name prefix (default: the folder's name)")
    parser.add_argument(
        "--worker",
        action="store_true",
        help="join the studies on --storage and run trials until each has its budget "
        "(the settings come from the studies; only --data-dir and --study apply)",
    )
    parser.add_argument("--sampler-seed", type=int, default=0, help="TPE's seed (default: 0)")
    add_data_flags(parser)
    parser.add_argument("--no-tensorboard", action="store_true", help="no HParams records")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging()
    argv = list(sys.argv[1:] if argv is None else argv)
    if args.worker and not args.storage:
        parser.exit(2, "error: --worker joins a shared study: pass --storage URL too.\n")
    out = None
    if not args.worker:
        # Named here, so that a stopped tune can say how to continue it.
        from kerasbn.data.user import dataset_label, is_user_spec

        label = dataset_label(args.dataset) if is_user_spec(args.dataset) else args.dataset
        out = Path(args.out) if args.out else default_out_dir(f"{label}-tune")
        if not args.out:
            argv += ["--out", str(out)]
    again = shlex.join(["python", "-m", "kerasbn.tune", *argv])
    with stop_on_signals():
        try:
            result = _run(args, out)
            raise_if_stopped()
        except (ValueError, DataError, PermissionError, FileExistsError, FolderLockedError) as exc:
            parser.exit(2, f"error: {exc}\n")
        except Exception as exc:  # a full disk; TensorFlow's writers raise no OSError
            if not disk_full(exc):
                raise
            parser.exit(2, f"error: {disk_full_text(exc)}. Free some space, then: {again}\n")
        except Stopped as stop:
            print(
                f"stopped by {stop}: every finished trial is kept in the study; the one cut "
                f"off runs again. Continue with: {again}",
                file=sys.stderr,
            )
            return stop.exit_code
    if result is None:
        return 0
    print((result.out_dir / "tuning.md").read_text())
    print(f"[kerasbn] results in {result.out_dir}")
    return 0


def _run(args: argparse.Namespace, out: Path | None):
    from kerasbn.tuning import tune, work  # Optuna, Keras: after argparse

    if args.worker:
        work(args.storage, study=args.study, data_dir=args.data_dir)
        return None
    check_limit(args.limit)
    return tune(
        prepare_dataset(args),
        args.variants,
        names=parse_tune(args.tune),
        ranges=parse_ranges(args.range),
        trials=args.trials,
        epochs=args.epochs,
        out_dir=out,
        storage=args.storage,
        study=args.study,
        sampler_seed=args.sampler_seed,
        limit=args.limit,
        data_dir=args.data_dir,
        tensorboard=not args.no_tensorboard,
    )

"""``python -m kerasbn.compare``: the flags, calling :func:`kerasbn.compare`.

Exit status: 0 done, 2 bad input (unknown name, bad value, unusable data or output
folder), with one ``error: ...`` line that says how to fix it; 1 a worker process of
``--jobs`` failed (the line names its run; the finished runs are kept); 130 (Ctrl-C) or 143
(SIGTERM) stopped, with one line saying what is saved and the command that resumes.
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
from kerasbn.cli.tune import add_tuning_flags
from kerasbn.data.catalog import DataError
from kerasbn.runfolder import default_out_dir
from kerasbn.training.options import LR_SCALING_RULES, OPTIMIZERS, STRATEGIES
from kerasbn.training.precision import PRECISION_CHOICES
from kerasbn.tuning.space import HYPERPARAMETERS, parse_ranges, parse_tune, search_space
from kerasbn.variants import parse_variants

# Keras, TensorFlow, SciPy and the comparison code are imported in _run, after argparse:
# --help and a bad flag answer at once.

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="python -m kerasbn.compare",
        description="Train BatchNorm / Dropout variants on one data set and export a "
        "comparison table, per-epoch history, overfitting curves and saved models.",
    )
    add_dataset_flags(parser)
    parser.add_argument("--epochs", type=int, help="default: per data set")
    parser.add_argument("--batch-size", type=int, help="per replica; default: per data set")
    parser.add_argument("--learning-rate", type=float, help="default: per data set")
    parser.add_argument(
        "--optimizer", choices=OPTIMIZERS, help="sgd uses Nesterov momentum; default: per data set"
    )
    parser.add_argument(
        "--weight-decay", type=float, help="decoupled weight decay; default: per data set"
    )
    parser.add_argument(
        "--label-smoothing",
        type=float,
        help="label smoothing in [0, 1) (the reported losses are then smoothed too); "
        "default: per data set",
    )
    parser.add_argument(
        "--warmup-epochs",
        type=int,
        help="linear warmup before the cosine decay; default: per data set",
    )
    parser.add_argument(
        "--seeds",
        type=int,
        default=1,
        help="seeds per variant (mean ± std, paired tests); a larger number on a finished "
        "--out folder trains only the missing seeds",
    )
    parser.add_argument(
        "--baseline",
        help="the variant the others are judged against (default: base if compared, "
        "else the first)",
    )
    parser.add_argument("--seed", type=int, default=0, help="first seed (default: 0)")
    add_data_flags(parser)
    parser.add_argument("--out", help="output folder (default: runs/<time>-<dataset>)")
    parser.add_argument(
        "--save-models",
        default="saved_models",
        help="folder for trained .keras models (default: %(default)s)",
    )
    parser.add_argument("--no-save-models", action="store_true", help="save no model")
    parser.add_argument(
        "--overwrite-models",
        action="store_true",
        help="where --save-models holds a model of another comparison under the same "
        "name, move it to a name of its own and save this one in its place (default: "
        "refuse before training)",
    )
    parser.add_argument(
        "--no-tensorboard",
        action="store_true",
        help="write no TensorBoard logs (default: <out>/tensorboard, with HParams)",
    )
    parser.add_argument(
        "--precise-bn",
        action="store_true",
        help="also save each BN model with precise (population) BN statistics, as "
        "<dataset>-<variant>-precise-bn.keras beside the others",
    )
    parser.add_argument(
        "--activations",
        action="store_true",
        help="record the 15/50/85th percentiles of every ReLU's input over training "
        "(activations.csv, activations.png)",
    )
    parser.add_argument(
        "--augment",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="pad-and-crop + flip augmentation (default: on for cifar10)",
    )
    parser.add_argument(
        "--strategy",
        choices=STRATEGIES,
        default="auto",
        help="auto: several machines when TF_CONFIG names them, else all local GPUs when "
        "there are several, else one device (default: %(default)s)",
    )
    parser.add_argument(
        "--jobs",
        type=_jobs,
        default=1,
        metavar="N",
        help="train up to N runs at once, each in its own process on one device (one GPU "
        "each where there are several); auto: what python -m kerasbn.bench --jobs found "
        "faster on this machine, else 1; default: %(default)s, one after another",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="T",
        help="CPU threads per run (default: all cores with --jobs 1, else cores // N). "
        "The count changes float rounding: --jobs N equals --jobs 1 with the same "
        "--threads byte for byte",
    )
    parser.add_argument(
        "--sync-bn",
        action="store_true",
        help="compute BN batch statistics over the global batch of all replicas",
    )
    parser.add_argument(
        "--ghost-batch",
        type=int,
        default=None,
        metavar="N",
        help="Ghost BN: while training, every BN variant normalizes each run of N examples "
        "of a batch by its own statistics (inference unchanged)",
    )
    parser.add_argument(
        "--lr-scaling",
        choices=LR_SCALING_RULES,
        default="auto",
        help="learning rate vs replicas: auto = sqrt for Adam, linear for SGD",
    )
    parser.add_argument(
        "--precision",
        choices=PRECISION_CHOICES,
        default=None,
        help="mixed_bfloat16 / mixed_float16 compute in 16 bits on GPUs (BN statistics, "
        "softmax and weights stay float32; default: float32); auto: mixed_bfloat16 on a "
        "GPU, float32 on CPUs (the choice and the CPU's bfloat16 flags go in config.json)",
    )
    parser.add_argument(
        "--tune",
        metavar="NAMES",
        help="first tune each variant's nuisance hyperparameters on the validation split "
        f"(a comma list of {', '.join(HYPERPARAMETERS)}, e.g. lr,wd), into <out>/tuning, "
        "then train each variant at its own chosen values (see python -m kerasbn.tune)",
    )
    parser.add_argument(
        "--tune-epochs", type=int, help="with --tune: epochs per trial (default: --epochs)"
    )
    add_tuning_flags(parser)
    parser.add_argument(
        "--verbose",
        type=int,
        default=None,
        choices=(0, 1, 2),
        help="Keras progress: 0 silent, 1 bar, 2 one line per epoch (also shows "
        "TensorFlow's C++ log); default: 1 on a terminal, 2 when output goes to a file",
    )
    return parser


def _jobs(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--jobs takes a whole number or auto (e.g. --jobs 2). Received: {text!r}"
        ) from None


def _config_from_args(args: argparse.Namespace):
    from kerasbn.training import default_config

    overrides = {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "optimizer": args.optimizer,
        "weight_decay": args.weight_decay,
        "warmup_epochs": args.warmup_epochs,
        "label_smoothing": args.label_smoothing,
        "augment": args.augment,
        "seed": args.seed,
        # A progress bar redrawn hundreds of times per epoch floods a log file.
        "verbose": args.verbose if args.verbose is not None else 1 if sys.stdout.isatty() else 2,
        "strategy": args.strategy,
        "lr_scaling": args.lr_scaling,
        "precision": args.precision,
    }
    return default_config(args.dataset, **{k: v for k, v in overrides.items() if v is not None})


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging()
    with stop_on_signals():
        try:
            result = _run(parser, args)
            raise_if_stopped()  # a signal that arrived where it could not be raised
        except Stopped as stop:
            if args.out and (Path(args.out) / "complete.json").is_file():
                # The signal came after the last file was written: nothing to resume.
                print(
                    f"stopped by {stop} after the comparison had finished; its results are "
                    f"in {args.out}",
                    file=sys.stderr,
                )
                return stop.exit_code
            where = (
                f"in {args.out}"
                if args.out
                else f"in the newest unfinished runs/*-{args.dataset} folder"
            )
            given = list(sys.argv[1:] if argv is None else argv)
            if args.out and "--out" not in given:  # named by --tune: the tune lives there
                given += ["--out", args.out]
            again = shlex.join(["python", "-m", "kerasbn.compare", *given])
            print(
                f"stopped by {stop}: the finished runs and the last completed epoch are saved "
                f"{where}; resume with: {again}",
                file=sys.stderr,
            )
            return stop.exit_code
    if result.out_dir is None:  # a multi-worker run's non-chief worker
        return 0
    print((result.out_dir / "summary.md").read_text())
    print(f"[kerasbn] results in {result.out_dir}")
    for path in result.model_paths.values():
        print(f"[kerasbn] saved model {path}")
    return 0


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace):
    from kerasbn.comparison import compare
    from kerasbn.comparison_options import check_jobs
    from kerasbn.comparison_parallel import WorkerError
    from kerasbn.verdicts import choose_baseline

    try:
        # Validate everything cheap before loading data or training.
        variants = parse_variants(args.variants)
        choose_baseline([v.name for v in variants], args.baseline)
        check_limit(args.limit)
        if args.jobs == "auto":
            from kerasbn.bench.jobs import auto_jobs

            args.jobs = auto_jobs()
        check_jobs(args.jobs, args.threads, args.strategy)
        # Your own images are read here: their recipe depends on their size and count.
        args.dataset = prepare_dataset(args)
        config = _config_from_args(args)
        dataset, tuned = args.dataset, None
        if args.tune:
            dataset, tuned = _tune_first(args, variants, config)
        return compare(
            dataset,
            variants,
            config,
            seeds=args.seeds,
            out_dir=args.out,
            save_models=None if args.no_save_models else args.save_models,
            limit=args.limit,
            data_dir=args.data_dir,
            sync_bn=args.sync_bn,
            ghost_batch=args.ghost_batch,
            baseline=args.baseline,
            tensorboard=not args.no_tensorboard,
            precise_bn=args.precise_bn,
            activations=args.activations,
            tuned=tuned,
            jobs=args.jobs,
            threads=args.threads,
            overwrite_models=args.overwrite_models,
        )
    except (
        ValueError,
        DataError,
        FileExistsError,
        PermissionError,
        FileNotFoundError,
        FolderLockedError,
    ) as exc:  # DistributionError is a ValueError
        parser.exit(2, f"error: {exc}\n")
    except WorkerError as exc:
        parser.exit(1, f"error: {exc}\n")
    except Exception as exc:  # a full disk; TensorFlow's writers raise no OSError
        if not disk_full(exc):
            raise
        parser.exit(
            2,
            f"error: {disk_full_text(exc)}. Free some space and run the same command again: "
            "the finished runs and the last completed epoch are kept, and nothing was left "
            "half-written.\n",
        )


def _tune_first(args: argparse.Namespace, variants, config):
    """``--tune``: tune every variant into ``<out>/tuning`` (resumable like the rest), and
    return the loaded data with each variant's chosen values."""
    from kerasbn.data import load_dataset
    from kerasbn.tuning import tune

    names, ranges = parse_tune(args.tune), parse_ranges(args.range)
    search_space(args.dataset, names, ranges)  # bad names or ranges: refused before loading
    if args.trials < 1:
        raise ValueError(f"--trials must be at least 1 (e.g. --trials 20). Received: {args.trials}")
    if args.tune_epochs is not None and args.tune_epochs < 1:
        raise ValueError(f"--tune-epochs must be at least 1. Received: {args.tune_epochs}")
    if args.out is None:
        # The tune and the comparison share one folder, so it is named here.
        args.out = str(default_out_dir(args.dataset))
    data = load_dataset(args.dataset, args.data_dir)
    result = tune(
        data,
        variants,
        config,
        names=names,
        ranges=ranges,
        trials=args.trials,
        epochs=args.tune_epochs,
        out_dir=f"{args.out}/tuning",
        storage=args.storage,
        limit=args.limit,
        tensorboard=not args.no_tensorboard,
    )
    return data, {name: choice["params"] for name, choice in result.best.items()}

"""Train several variants on one data set and export a comparison (the logic behind
``python -m kerasbn.compare``).

    python -m kerasbn.compare --dataset mnist --variants base,bn,bn+dropout

writes, into one output folder (default ``runs/<time>-<dataset>``):

* ``config.json``: the resolved configuration, data source and library versions;
* ``history.csv``: per-epoch history in long format;
* ``runs.csv``: one row per (variant, seed) with its test and overfitting figures;
* ``summary.csv`` / ``summary.md``: one row per variant (mean ± std over seeds);
* ``curves.png``: train vs validation loss and accuracy, and test accuracy bars;
* ``logs/<run>.csv``: each run's per-epoch history, rewritten after every epoch;
* ``runs/<run>.json``: a finished run's record (its row, history and saved model);
* ``backup/<run>/``: the checkpoint of the run in progress (removed when it finishes);
* ``complete.json``: written last, once everything else is in place;

and saves ``<save_models>/<dataset>-<variant>.keras`` with a JSON sidecar.

A run that is killed can be resumed by running the same command again (with the same
``--out``, or with none: the newest unfinished matching folder under ``runs/`` is
picked up). Finished runs are read back, the interrupted one continues from its last
completed epoch, and the result equals an uninterrupted run's. A lock file keeps a
second process out of a folder in use.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import pandas as pd

from kerasbn._io import remove_stale_temps, write_json, write_text
from kerasbn._lock import FolderLock, FolderLockedError
from kerasbn._versions import library_versions
from kerasbn.data import DataError, Dataset, list_datasets, load_dataset
from kerasbn.distribute import STRATEGIES, DistributionError, Placement, resolve
from kerasbn.report import HISTORY_COLUMNS, plot_curves, run_row, summarize, write_tables
from kerasbn.saving import save_model
from kerasbn.train import (
    EPOCH_COLUMNS,
    LR_SCALING_RULES,
    PRECISIONS,
    TrainConfig,
    default_config,
    evaluate,
    scaled_learning_rate,
    train,
)
from kerasbn.variants import Variant, get_variant, list_variants, parse_variants

__all__ = ["CompareResult", "compare", "find_resumable", "main"]


@dataclass
class CompareResult:
    out_dir: Path | None  # None on a multi-worker run's non-chief workers
    summary: pd.DataFrame
    history: pd.DataFrame
    runs: pd.DataFrame
    model_paths: dict[str, Path]


COMPLETE = "complete.json"
# Settings that must match for a folder to be resumed (verbosity may change).
_RESUME_KEYS = ("dataset", "variants", "seeds", "train_config", "save_models")


def default_out_dir(dataset: str, root: str | os.PathLike = "runs") -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    folder = Path(root) / f"{stamp}-{dataset}"
    suffix = 1
    while folder.exists():  # two runs started within one second
        suffix += 1
        folder = Path(root) / f"{stamp}.{suffix}-{dataset}"
    return folder


def _comparable(settings: dict) -> dict:
    # JSON round trip: tuples become lists, as in the stored config.json.
    picked = json.loads(json.dumps({k: settings.get(k) for k in _RESUME_KEYS}, default=str))
    if isinstance(picked.get("train_config"), dict):
        picked["train_config"].pop("verbose", None)
    return picked


def _settings_differ(out_dir: Path, settings: dict) -> list[str]:
    """Which resume settings of the unfinished run in ``out_dir`` differ from these."""
    try:
        stored = json.loads((out_dir / "config.json").read_text())
    except (OSError, ValueError):
        return ["config.json (unreadable)"]
    old, new = _comparable(stored), _comparable(settings)
    if isinstance(old.get("train_config"), dict):
        # A training setting added after the run started reads as its default there.
        defaults = _comparable({"train_config": asdict(TrainConfig())})["train_config"]
        old["train_config"] = {**defaults, **old["train_config"]}
    return [k for k in _RESUME_KEYS if old.get(k) != new.get(k)]


def find_resumable(dataset: str, settings: dict, root: str | os.PathLike = "runs") -> Path | None:
    """The newest unfinished folder under ``root`` started with the same settings."""
    root = Path(root)
    if not root.is_dir():
        return None
    for folder in sorted(root.glob(f"*-{dataset}"), reverse=True):
        if (
            (folder / "config.json").exists()
            and not (folder / COMPLETE).exists()
            and not _settings_differ(folder, settings)
        ):
            return folder
    return None


def _check_out_dir(out_dir: Path, settings: dict) -> bool:
    """Whether ``out_dir`` (locked by us) resumes an unfinished run; raise if it may not
    be used."""
    # (A summary without run records is a folder from before runs could resume.)
    if (out_dir / COMPLETE).exists() or (
        (out_dir / "summary.csv").exists() and not (out_dir / "runs").exists()
    ):
        raise FileExistsError(
            f"{out_dir} already holds the results of an earlier, finished run. Pass a new "
            "--out folder, or move that one away; nothing was overwritten."
        )
    if not (out_dir / "config.json").exists():
        return False
    differ = _settings_differ(out_dir, settings)
    if differ:
        raise FileExistsError(
            f"{out_dir} already holds the results of an unfinished run with other settings "
            f"({', '.join(differ)}); resuming it with these would mix results. Re-run the "
            "original command to resume it, or pass a new --out; nothing was overwritten."
        )
    return True


def _lock_out_dir(out_dir: Path) -> FolderLock:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        return FolderLock(out_dir).acquire()
    except OSError as exc:
        raise PermissionError(
            f"Cannot write to the output folder {out_dir} ({exc}). Pass a writable --out."
        ) from exc


def _model_metadata(data: Dataset, variant: Variant, config: TrainConfig, row: dict, out_dir):
    return {
        "dataset": data.name,
        "variant": asdict(variant),
        "seed": config.seed,
        "input_shape": list(data.input_shape),
        "input_dtype": "uint8",
        "class_names": list(data.class_names),
        "preprocessing": "inside the model: uint8 pixels x 1/255",
        "train_config": config.to_dict(),
        "metrics": {
            key: row[key]
            for key in ("test_accuracy", "test_loss", "test_examples", "best_val_accuracy")
        },
        "data_source": data.describe(),
        "run_folder": str(out_dir),
        "versions": library_versions(),
        "created": _dt.datetime.now().isoformat(timespec="seconds"),
    }


def _train_one(
    data: Dataset,
    variant: Variant,
    config: TrainConfig,
    out_dir: Path,
    tag: str,
    model_path: Path | None,
) -> dict:
    """Train (or resume) one run, save its model, and return its record."""
    backup_dir = out_dir / "backup" / tag
    result = train(
        data, variant, config, log_csv=out_dir / "logs" / f"{tag}.csv", backup_dir=backup_dir
    )
    if result.diverged:
        # A diverged net's test score would read as "low accuracy"; it is not one.
        scores = {"test_loss": math.nan, "test_accuracy": math.nan}
        scores["test_examples"] = len(data.x_test)
        print(f"[kerasbn] {tag}: diverged ({result.diverged_at}); no model saved", flush=True)
    else:
        scores = evaluate(result.model, data)
        print(f"[kerasbn] {tag}: test accuracy {100 * scores['test_accuracy']:.2f}%", flush=True)
    row = run_row(result, scores)
    saved = None
    if model_path is not None and not result.diverged:
        metadata = _model_metadata(data, variant, config, row, out_dir)
        saved = str(save_model(result.inference_model(), model_path, metadata))
    record = {
        "row": row,
        "history": result.history.to_dict("records"),
        "model": saved,
        "resumed_from_epoch": result.resumed_from_epoch,
    }
    # The record marks the run finished; only then is its checkpoint dropped.
    write_json(out_dir / "runs" / f"{tag}.json", record)
    shutil.rmtree(backup_dir, ignore_errors=True)
    return record


def compare(
    dataset: str | Dataset,
    variants: Sequence[str | Variant] | str = "all",
    config: TrainConfig | None = None,
    *,
    seeds: int = 1,
    out_dir: str | os.PathLike | None = None,
    save_models: str | os.PathLike | None = "saved_models",
    limit: int | None = None,
    data_dir: str | os.PathLike | None = None,
    sync_bn: bool = False,
) -> CompareResult:
    """Train each variant with ``seeds`` seeds (``config.seed``, ``config.seed + 1``, ...)
    and write the comparison files into ``out_dir`` (see the module docstring).

    Args:
        dataset: a data set name or an already loaded :class:`~kerasbn.data.Dataset`.
        variants: names, :class:`~kerasbn.variants.Variant` objects, or a comma string
            such as ``"base,bn"`` / ``"all"``.
        config: training settings (default: :func:`~kerasbn.train.default_config`).
        seeds: how many seeds per variant; the table shows mean ± std over them.
        out_dir: output folder. A folder holding an unfinished run with the same settings
            is resumed; one with a finished run, or other settings, is refused. ``None``:
            the newest resumable ``runs/*-<dataset>`` folder, else a new one.
        save_models: folder for ``<dataset>-<variant>.keras`` (the first seed's model);
            ``None`` saves no model.
        limit: keep only the first ``limit`` training examples.
        data_dir: local data folder (default: ``KERASBN_DATA_DIR`` or tensorflow-datasets).
        sync_bn: synchronize BN batch statistics across replicas in every variant.

    In a multi-worker run (``TF_CONFIG``) only the chief writes anything; the other
    workers train in lockstep and return a result whose ``out_dir`` is ``None``.

    Raises:
        FolderLockedError: another live process is writing to ``out_dir``.
    """
    if isinstance(variants, str):
        variants = parse_variants(variants)
    else:
        # Variant objects pass through (custom ones need not be registered); names are
        # looked up; duplicates are dropped.
        variants = list({v.name: v for v in map(get_variant, variants)}.values())
        if not variants:
            raise ValueError(f"No variant given. Received: {variants!r}")
    if seeds < 1:
        raise ValueError(f"seeds must be at least 1. Received: {seeds}")
    config = config or default_config(dataset if isinstance(dataset, str) else dataset.name)
    # Before anything else: a multi-worker set-up must precede other backend work.
    placement = resolve(config.strategy)
    if sync_bn:
        variants = [replace(v, sync_bn=True) for v in variants]
    data = dataset if isinstance(dataset, Dataset) else load_dataset(dataset, data_dir)
    data = data.limit(limit)
    models_dir = Path(save_models) if save_models is not None else None
    settings = {
        "dataset": data.describe(),
        "variants": [asdict(v) for v in variants],
        "seeds": [config.seed + k for k in range(seeds)],
        "train_config": config.to_dict(),
        "save_models": str(models_dir) if models_dir else None,
    }
    out_dir = Path(out_dir) if out_dir is not None else None
    settings["distribution"] = distribution = _distribution(placement, config)
    print(f"[kerasbn] {distribution['summary']}", flush=True)
    if placement.is_chief:
        if out_dir is None:
            out_dir = find_resumable(data.name, settings) or default_out_dir(data.name)
        return _compare_into(out_dir, models_dir, data, variants, config, seeds, settings)
    # The other workers of a multi-worker run take part in every collective step, saves
    # included (JAX's multi-process arrays need all processes there), so they run the
    # same code into a private folder that is deleted afterwards. They start from a copy
    # of the chief's folder (when --out is on storage every machine sees) so that they
    # resume at the same point as the chief.
    print(
        f"[kerasbn] worker {placement.process_index} of {placement.processes}: results "
        "are written by the chief only",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix=f"kerasbn-worker{placement.process_index}-") as tmp:
        private = Path(tmp) / "run"
        _mirror_chief_state(out_dir, private)
        result = _compare_into(
            private,
            Path(tmp) / "models" if models_dir is not None else None,
            data,
            variants,
            config,
            seeds,
            settings,
        )
    return replace(result, out_dir=None, model_paths={})


def _mirror_chief_state(chief_dir: Path | None, private: Path) -> None:
    private.mkdir(parents=True)
    if chief_dir is None or not chief_dir.is_dir():
        return
    for name in ("config.json", COMPLETE):
        if (chief_dir / name).exists():
            shutil.copy2(chief_dir / name, private / name)
    for name in ("runs", "backup", "logs"):
        if (chief_dir / name).is_dir():
            shutil.copytree(chief_dir / name, private / name)


def _compare_into(
    out_dir: Path,
    models_dir: Path | None,
    data: Dataset,
    variants: Sequence[Variant],
    config: TrainConfig,
    seeds: int,
    settings: dict,
) -> CompareResult:
    out_dir = Path(out_dir)
    lock = _lock_out_dir(out_dir)
    try:
        resuming = _check_out_dir(out_dir, settings)
        if resuming:
            print(f"[kerasbn] resuming the unfinished run in {out_dir}", flush=True)
            for folder in (out_dir, out_dir / "logs", out_dir / "runs"):
                remove_stale_temps(folder)
        else:
            write_json(
                out_dir / "config.json",
                {
                    **settings,
                    "command": sys.argv if Path(sys.argv[0]).name.startswith("compare") else None,
                    "started": _dt.datetime.now().isoformat(timespec="seconds"),
                    "versions": library_versions(devices=True),
                },
            )
        return _run_all(data, variants, config, seeds, out_dir, models_dir)
    finally:
        lock.release()


def _distribution(placement: Placement, config: TrainConfig) -> dict:
    """How the run is spread and what that does to batch and learning rate (printed and
    stored in config.json)."""
    global_batch = config.batch_size * placement.replicas
    learning_rate, rule = scaled_learning_rate(config, placement.replicas)
    summary = (
        f"strategy {placement.strategy} ({placement.backend}): {placement.replicas} "
        f"replica(s) in {placement.processes} process(es); global batch {global_batch} = "
        f"{config.batch_size} per replica x {placement.replicas}; learning rate {rule}"
    )
    return {
        **placement.describe(),
        "per_replica_batch": config.batch_size,
        "global_batch": global_batch,
        "learning_rate": learning_rate,
        "lr_rule": rule,
        "drop_remainder": placement.replicas > 1,
        "summary": summary,
    }


def _run_all(
    data: Dataset,
    variants: Sequence[Variant],
    config: TrainConfig,
    seeds: int,
    out_dir: Path,
    models_dir: Path | None,
) -> CompareResult:
    histories: list[pd.DataFrame] = []
    run_rows: list[dict] = []
    model_paths: dict[str, Path] = {}
    title = f"{data.name}: " + ", ".join(v.name for v in variants)
    if any(v.sync_bn and v.batch_norm for v in variants):
        title += " (BN statistics synchronized across replicas)"
    for variant in variants:
        for k in range(seeds):
            seed = config.seed + k
            tag = f"{data.name}-{variant.name}-seed{seed}"
            record_path = out_dir / "runs" / f"{tag}.json"
            if record_path.exists():
                print(f"[kerasbn] {tag}: finished earlier, read back", flush=True)
                record = json.loads(record_path.read_text())
            else:
                print(f"[kerasbn] training {tag} ({len(data.x_train)} images)", flush=True)
                model_path = None
                if models_dir is not None and k == 0:
                    model_path = models_dir / f"{data.name}-{variant.name}.keras"
                record = _train_one(
                    data, variant, replace(config, seed=seed), out_dir, tag, model_path
                )
            run_rows.append(record["row"])
            histories.append(
                pd.DataFrame(record["history"], columns=EPOCH_COLUMNS).assign(
                    dataset=data.name, variant=variant.name, seed=seed
                )
            )
            if record["model"]:
                model_paths[variant.name] = Path(record["model"])
            # Tables are rewritten after every run, so a long comparison shows its
            # finished variants while the rest trains.
            history = pd.concat(histories, ignore_index=True)[HISTORY_COLUMNS]
            runs = pd.DataFrame(run_rows)
            summary = summarize(runs)
            write_text(out_dir / "history.csv", history.to_csv(index=False))
            write_text(out_dir / "runs.csv", runs.to_csv(index=False))
            write_tables(summary, out_dir, title)
            plot_curves(history, summary, out_dir / "curves.png", title=title)
    shutil.rmtree(out_dir / "backup", ignore_errors=True)
    # Written last: its presence says every file above is final.
    write_json(
        out_dir / COMPLETE,
        {
            "finished": _dt.datetime.now().isoformat(timespec="seconds"),
            "runs": len(run_rows),
            "diverged_runs": int(runs["diverged"].astype(bool).sum()),
        },
    )
    return CompareResult(out_dir, summary, history, runs, model_paths)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m kerasbn.compare",
        description="Train BatchNorm / Dropout variants on one data set and export a "
        "comparison table, per-epoch history, overfitting curves and saved models.",
    )
    parser.add_argument("--dataset", default="mnist", help=f"one of {', '.join(list_datasets())}")
    parser.add_argument(
        "--variants",
        default="base,bn,bn+dropout",
        help=f"comma list of {', '.join(list_variants())}, or 'all' (default: %(default)s)",
    )
    parser.add_argument("--epochs", type=int, help="default: per data set")
    parser.add_argument("--batch-size", type=int, help="per replica; default: per data set")
    parser.add_argument("--learning-rate", type=float, help="default: per data set")
    parser.add_argument("--seeds", type=int, default=1, help="seeds per variant (mean ± std)")
    parser.add_argument("--seed", type=int, default=0, help="first seed (default: 0)")
    parser.add_argument(
        "--data-dir",
        help="local data folder (default: $KERASBN_DATA_DIR, else tensorflow-datasets)",
    )
    parser.add_argument("--out", help="output folder (default: runs/<time>-<dataset>)")
    parser.add_argument("--limit", type=int, help="use only the first N training examples")
    parser.add_argument(
        "--save-models",
        default="saved_models",
        help="folder for trained .keras models (default: %(default)s)",
    )
    parser.add_argument("--no-save-models", action="store_true", help="save no model")
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
        "--sync-bn",
        action="store_true",
        help="compute BN batch statistics over the global batch of all replicas",
    )
    parser.add_argument(
        "--lr-scaling",
        choices=LR_SCALING_RULES,
        default="auto",
        help="learning rate vs replicas: auto = sqrt for Adam, linear for SGD",
    )
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=None,
        help="mixed_bfloat16 / mixed_float16 compute in 16 bits on GPUs (BN statistics, "
        "softmax and weights stay float32; default: float32)",
    )
    parser.add_argument(
        "--verbose",
        type=int,
        default=1,
        choices=(0, 1, 2),
        help="Keras progress: 0 silent, 1 bar, 2 one line per epoch",
    )
    return parser


def _config_from_args(args: argparse.Namespace) -> TrainConfig:
    overrides = {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "augment": args.augment,
        "seed": args.seed,
        "verbose": args.verbose,
        "strategy": args.strategy,
        "lr_scaling": args.lr_scaling,
        "precision": args.precision,
    }
    return default_config(args.dataset, **{k: v for k, v in overrides.items() if v is not None})


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        # Validate everything cheap before loading data or training.
        variants = parse_variants(args.variants)
        config = _config_from_args(args)
        if args.limit is not None and args.limit <= 0:
            raise ValueError(
                f"--limit must be a positive number of examples. Received: {args.limit}"
            )
        result = compare(
            args.dataset,
            variants,
            config,
            seeds=args.seeds,
            out_dir=args.out,
            save_models=None if args.no_save_models else args.save_models,
            limit=args.limit,
            data_dir=args.data_dir,
            sync_bn=args.sync_bn,
        )
    except (
        ValueError,
        DataError,
        FileExistsError,
        PermissionError,
        FileNotFoundError,
        FolderLockedError,
        DistributionError,
    ) as exc:
        parser.exit(2, f"error: {exc}\n")
    if result.out_dir is None:  # a multi-worker run's non-chief worker
        return 0
    print((result.out_dir / "summary.md").read_text())
    print(f"[kerasbn] results in {result.out_dir}")
    for path in result.model_paths.values():
        print(f"[kerasbn] saved model {path}")
    return 0

"""Train several variants on one data set and export a comparison: :func:`compare`,
the logic behind ``python -m kerasbn.compare`` (whose flags are in :mod:`kerasbn.cli.compare`).

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
second process out of a folder in use (:mod:`kerasbn.runfolder`).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from kerasbn._csv import read_table
from kerasbn._io import check_output_folder
from kerasbn._signals import raise_if_stopped
from kerasbn._versions import run_record
from kerasbn.comparison_options import (
    check_jobs,
    check_tuned,
    choose_precision,
    distribution_record,
    with_bn_options,
)
from kerasbn.comparison_parallel import planned_runs, train_unfinished
from kerasbn.comparison_progress import ComparisonProgress
from kerasbn.comparison_run import Job, check_model_names, finished_record, train_one
from kerasbn.data import Dataset, load_dataset
from kerasbn.data.user import is_user_spec
from kerasbn.diagnostics.files import write_diagnostics
from kerasbn.report import HISTORY_COLUMNS, summarize, write_results
from kerasbn.runfolder import (
    COMPLETE,
    ResumeRule,
    RunFolder,
    copy_state,
    default_out_dir,
    file_in,
)
from kerasbn.tensorboard import hparams_of, write_hparams_config
from kerasbn.training import (
    EPOCH_COLUMNS,
    ResumableBackup,
    TrainConfig,
    default_config,
)
from kerasbn.training.distribute import resolve
from kerasbn.training.threads import set_cpu_threads
from kerasbn.variants import DEFAULT_VARIANTS, Variant, get_variant, parse_variants
from kerasbn.verdicts import choose_baseline, read_folder, verdicts

__all__ = [
    "RESUME_RULE",
    "CompareResult",
    "compare",
    "find_resumable",
    "load_comparison",
]

log = logging.getLogger(__name__)


@dataclass
class CompareResult:
    out_dir: Path | None  # None on a multi-worker run's non-chief workers
    summary: pd.DataFrame
    history: pd.DataFrame
    runs: pd.DataFrame
    model_paths: dict[str, Path]
    verdicts: pd.DataFrame | None = None  # each variant against the baseline
    # Per-image test correctness keyed by (variant, seed): the test set's share of the
    # intervals (kerasbn.verdicts.intervals(runs, correct)).
    correct: dict | None = None


# Settings that must match for a folder to be resumed (verbosity may change, a
# training setting added after a run started reads as its default there, and more
# seeds may be added to a finished comparison).
RESUME_RULE = ResumeRule(
    # Where models are saved is not a training setting: it may change on resume. How
    # the runs are spread must not (replicas, global batch, backend), but how many train
    # at once and on how many threads may (a resume on another machine).
    keys=("dataset", "variants", "seeds", "train_config", "tuned", "distribution", "outputs"),
    may_change={
        "train_config": ("verbose",),
        "distribution": ("summary", "lr_rule", "jobs", "threads_per_run"),
    },
    defaults={"train_config": asdict(TrainConfig())},
    may_grow=("seeds",),
    records="runs",
    # Recorded since later versions: older folders resume without being compared on them.
    partial=("distribution", "outputs"),
)


def load_comparison(out_dir: str | os.PathLike) -> CompareResult:
    """A finished comparison read back from its folder (tables, verdicts and the saved
    models' paths), e.g. to show it again in a notebook without retraining.

    Raises:
        FileNotFoundError: the folder holds no finished comparison (``complete.json``).
    """
    out_dir = Path(out_dir)
    if not (out_dir / COMPLETE).is_file():
        raise FileNotFoundError(
            f"{out_dir} holds no finished comparison (no {COMPLETE}). Re-run its compare "
            "command to finish it, or pass the folder of a finished one."
        )
    models = {}
    for record_path in sorted((out_dir / "runs").glob("*.json")):
        record = json.loads(record_path.read_text())
        if record.get("model"):
            models[record["row"]["variant"]] = Path(record["model"])
    # Summary and verdicts are recomputed from the per-run rows and per-image results,
    # so a folder measured before a change to the statistics shows the current methods.
    runs, correct, baseline = read_folder(out_dir)
    return CompareResult(
        out_dir,
        summarize(runs, correct),
        read_table(out_dir / "history.csv", text=("dataset", "variant")),
        runs,
        models,
        verdicts(runs, baseline, correct),
        correct,
    )


def find_resumable(dataset: str, settings: dict, root: str | os.PathLike = "runs") -> Path | None:
    """The newest unfinished folder under ``root`` started with the same settings."""
    return RunFolder.find(root, dataset, RESUME_RULE, settings)


def compare(
    dataset: str | Dataset,
    variants: Sequence[str | Variant] | str = DEFAULT_VARIANTS,
    config: TrainConfig | None = None,
    *,
    seeds: int = 1,
    out_dir: str | os.PathLike | None = None,
    save_models: str | os.PathLike | None = "saved_models",
    limit: int | None = None,
    data_dir: str | os.PathLike | None = None,
    sync_bn: bool = False,
    ghost_batch: int | None = None,
    baseline: str | None = None,
    tensorboard: bool = True,
    precise_bn: bool = False,
    activations: bool = False,
    tuned: Mapping[str, Mapping[str, float]] | None = None,
    jobs: int | str = 1,
    threads: int | None = None,
    overwrite_models: bool = False,
) -> CompareResult:
    """Train each variant with ``seeds`` seeds (``config.seed``, ``config.seed + 1``, ...)
    and write the comparison files into ``out_dir`` (see the module docstring).

    Args:
        dataset: a data set name or an already loaded :class:`~kerasbn.data.Dataset`.
        variants: names, :class:`~kerasbn.variants.Variant` objects, or a comma string
            such as ``"base,bn"`` / ``"all"`` (default: ``base,bn,bn+dropout``, as the CLI).
        config: training settings (default: :func:`~kerasbn.training.default_config`).
        seeds: how many seeds per variant; the table shows mean ± std over them.
        out_dir: output folder. A folder holding an unfinished run with the same settings
            is resumed; one with a finished run, or other settings, is refused. ``None``:
            the newest resumable ``runs/*-<dataset>`` folder, else a new one.
        save_models: folder for ``<dataset>-<variant>.keras`` (the first seed's model);
            ``None`` saves no model.
        limit: keep only the first ``limit`` training examples.
        data_dir: local data folder (default: ``KERASBN_DATA_DIR`` or tensorflow-datasets).
        sync_bn: synchronize BN batch statistics across replicas in every variant.
        ghost_batch: Ghost BN in every BN variant: while training, each run of this many
            examples of a (per-replica) batch is normalized by its own statistics
            (:class:`~kerasbn.layers.GhostBatchNormalization`); not with ``sync_bn``.
        baseline: the variant every other one is judged against in ``verdicts.csv``
            (default: ``base`` when compared, else the first variant).
        tensorboard: also write TensorBoard logs and HParams records into
            ``out_dir/tensorboard`` (:mod:`kerasbn.tensorboard`).
        precise_bn: also save each BN variant's model with precise BN statistics, as
            ``<dataset>-<variant>-precise-bn.keras`` (:func:`~kerasbn.diagnostics.recalibrate_bn`).
        activations: record the 15/50/85th percentiles of every ReLU's input over
            training (:class:`~kerasbn.diagnostics.ActivationPercentiles`), into
            ``activations.csv`` and ``activations.png``.
        tuned: per variant name, the values its own tune chose (``learning_rate``,
            ``weight_decay``, ``block_dropout``, ...; :func:`kerasbn.tuning.tune`), put
            into ``config`` / the variant for that variant's runs; recorded in
            ``config.json``. Variants not named train at ``config``.
        jobs: train up to this many runs at once, each in its own worker process on one
            device (:mod:`kerasbn.comparison_parallel`); 1 trains them one after another
            in this process; ``"auto"``: what ``python -m kerasbn.bench --jobs N`` found
            faster on this machine, else 1 (:func:`kerasbn.bench.jobs.auto_jobs`).
        threads: CPU threads per run (default: TensorFlow's, all cores, when ``jobs``
            is 1; else cores // ``jobs``). The count changes float rounding, so a
            ``jobs`` > 1 comparison equals a ``jobs=1`` one with the same ``threads``
            byte for byte, not one with another count.
        overwrite_models: let a model of another comparison in ``save_models`` (same
            name) be moved to a name of its own and replaced; without it, that is
            refused before training.

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
    baseline = choose_baseline([v.name for v in variants], baseline)
    if isinstance(dataset, str) and is_user_spec(dataset):  # its recipe depends on its images
        dataset = load_dataset(dataset, data_dir)
    config = config or default_config(dataset if isinstance(dataset, str) else dataset.name)
    if jobs == "auto":
        from kerasbn.bench.jobs import auto_jobs

        jobs = auto_jobs()
    jobs, threads = check_jobs(jobs, threads, config.strategy)
    if jobs == 1:
        set_cpu_threads(threads)  # before TensorFlow runs anything
    # Before anything else: a multi-worker set-up must precede other backend work. With
    # --jobs each run has one device (one GPU each where there are several).
    placement = resolve("default" if jobs > 1 and config.strategy == "auto" else config.strategy)
    if jobs > 1 and (placement.replicas > 1 or placement.processes > 1):
        raise ValueError(
            f"--jobs {jobs} trains each run on one device; --strategy {config.strategy} "
            f"spreads one run over {placement.replicas} replicas. Pass --jobs 1, or "
            f"--strategy default. Received: --jobs {jobs} --strategy {config.strategy}"
        )
    config, precision = choose_precision(config)
    variants = with_bn_options(variants, sync_bn=sync_bn, ghost_batch=ghost_batch)
    if activations and placement.processes > 1:
        log.warning("--activations is not recorded in a multi-worker run; training goes on")
        activations = False
    data = dataset if isinstance(dataset, Dataset) else load_dataset(dataset, data_dir)
    data = data.limit(limit)
    distribution = distribution_record(placement, config)
    global_batch = distribution["global_batch"]
    if global_batch > len(data.x_train):
        # Not an error (a tiny quick look may want it), but every epoch is then one
        # partial batch: say so before training, with the fix.
        log.warning(
            "the batch of %d is larger than the %d training examples: each epoch is one "
            "step. Pass a smaller --batch-size or a larger --limit.",
            global_batch,
            len(data.x_train),
        )
    models_dir = Path(save_models) if save_models is not None else None
    if models_dir is not None and placement.is_chief:
        check_output_folder(models_dir, "--save-models")
    settings = {
        "dataset": data.describe(),
        "variants": [v.to_dict() for v in variants],
        "seeds": [config.seed + k for k in range(seeds)],
        "train_config": config.to_dict(),
        "save_models": str(models_dir) if models_dir else None,
        "tuned": check_tuned(tuned, variants, config),
        "precision": precision,
    }
    out_dir = Path(out_dir) if out_dir is not None else None
    settings["distribution"] = {**distribution, "jobs": jobs, "threads_per_run": threads}
    # Files that only runs trained with these options have: every run or none.
    settings["outputs"] = {"activations": activations, "precise_bn": precise_bn}
    log.info("%s", distribution["summary"])
    job = Job(
        data,
        variants,
        config,
        seeds,
        baseline,
        models_dir,
        tensorboard=tensorboard,
        precise_bn=precise_bn,
        activations=activations,
        tuned=settings["tuned"] or {},
        jobs=jobs,
        threads=threads,
        overwrite_models=overwrite_models,
    )
    if placement.is_chief:
        if out_dir is None:
            out_dir = find_resumable(data.name, settings) or default_out_dir(data.name)
        if models_dir is not None:
            planned = {t.model_path for t in planned_runs(job) if t.model_path}
            check_model_names(sorted(planned), out_dir, overwrite_models)
        return _compare_into(out_dir, job, settings)
    # The other workers of a multi-worker run take part in every collective step, saves
    # included (JAX's multi-process arrays need all processes there), so they run the
    # same code into a private folder that is deleted afterwards. They start from a copy
    # of the chief's folder (when --out is on storage every machine sees) so that they
    # resume at the same point as the chief.
    log.info(
        "worker %d of %d: results are written by the chief only",
        placement.process_index,
        placement.processes,
    )
    with tempfile.TemporaryDirectory(prefix=f"kerasbn-worker{placement.process_index}-") as tmp:
        private = Path(tmp) / "run"
        copy_state(out_dir, private)
        models = Path(tmp) / "models" if models_dir is not None else None
        # The workers' own outputs are thrown away: no logs or extra models to write.
        job = replace(
            job, models_dir=models, tensorboard=False, precise_bn=False, activations=False
        )
        result = _compare_into(private, job, settings)
    return replace(result, out_dir=None, model_paths={})


def _compare_into(out_dir: Path, job: Job, settings: dict) -> CompareResult:
    record = run_record("kerasbn.compare", devices=True)
    with RunFolder(out_dir, RESUME_RULE).open(settings, record) as folder:
        if folder.extended:
            log.info("adding seeds to the finished run in %s", out_dir)
        elif folder.resuming:
            log.info("resuming the unfinished run in %s", out_dir)
        return _run_all(job, folder)


def _run_all(job: Job, folder: RunFolder) -> CompareResult:
    data, variants = job.data, job.variants
    title = f"{data.name}: " + ", ".join(v.name for v in variants)
    if any(v.sync_bn and v.uses_bn for v in variants):
        title += " (BN statistics synchronized across replicas)"
    progress = ComparisonProgress(len(variants) * job.seeds, job.config.epochs)
    try:
        return _train_all(job, folder, title, progress)
    finally:
        progress.close()


def _train_all(job: Job, folder: RunFolder, title: str, progress) -> CompareResult:
    data, variants, config = job.data, job.variants, job.config
    out_dir = folder.path
    histories: list[pd.DataFrame] = []
    run_rows: list[dict] = []
    records: list[dict] = []
    model_paths: dict[str, Path] = {}
    correct: dict[tuple[str, int], np.ndarray] = {}
    hparams: list[dict] = []  # every run's, for TensorBoard's HParams domains
    if job.jobs > 1:
        # The unfinished runs first, several at once; the loop below then reads them
        # back like runs finished in an earlier session.
        train_unfinished(job, out_dir)
    for listed in variants:
        if job.tuned.get(listed.name):
            # With a tune, the variant trains at its own chosen values (same name, tag).
            values = ", ".join(f"{k} {v:.3g}" for k, v in job.tuned[listed.name].items())
            log.info("%s trains at its tuned values: %s", listed.name, values)
    for task in planned_runs(job):  # the runs, their tags and model paths: one list
        raise_if_stopped()  # a signal during the last run's saving and diagnostics
        variant, seed, tag = task.variant, task.config.seed, task.tag
        hparams.append(hparams_of(variant, task.config))
        record_path = out_dir / "runs" / f"{tag}.json"
        record = finished_record(record_path)
        if record is not None:
            log.info("%s: finished earlier, read back", tag)
            progress.read_back(tag, config.epochs)
        else:
            log.info("training %s (%d images)", tag, len(data.x_train))
            progress.start(tag, ResumableBackup(out_dir / "backup" / tag).completed_epochs())
            record = train_one(
                job,
                variant,
                task.config,
                out_dir,
                tag,
                task.model_path,
                callbacks=[progress.callback()],
            )
        run_rows.append(record["row"])
        records.append(record)
        histories.append(
            pd.DataFrame(record["history"], columns=EPOCH_COLUMNS).assign(
                dataset=data.name, variant=variant.name, seed=seed
            )
        )
        if record["model"]:
            model_paths[variant.name] = Path(record["model"])
        if record.get("correct"):
            correct[(variant.name, seed)] = np.load(
                file_in(out_dir, record["correct"], record_path), allow_pickle=False
            )
        elif record.get("predictions"):  # folders from before per-image correctness
            classes = np.load(
                file_in(out_dir, record["predictions"], record_path), allow_pickle=False
            )
            correct[(variant.name, seed)] = classes == data.y_test[: len(classes)]
        # Tables are rewritten after every run, so a long comparison shows its
        # finished variants while the rest trains.
        history = pd.concat(histories, ignore_index=True)[HISTORY_COLUMNS]
        runs = pd.DataFrame(run_rows)
        summary, verdict_table = write_results(
            out_dir, history, runs, title, job.baseline, correct
        )
        write_diagnostics(out_dir, records, data.y_test, title)
    if job.tensorboard:
        write_hparams_config(out_dir / "tensorboard", hparams)
    shutil.rmtree(out_dir / "backup", ignore_errors=True)
    # Written last: its presence says every file above is final.
    folder.complete(
        {"runs": len(run_rows), "diverged_runs": int(runs["diverged"].astype(bool).sum())}
    )
    return CompareResult(out_dir, summary, history, runs, model_paths, verdict_table, correct)

"""Tune every variant of a comparison: :func:`tune` (the leader, which also writes the
report) and :func:`work` (a worker that joins the studies on a shared database).

    python -m kerasbn.tune --dataset mnist --variants all --trials 20 --epochs 4

writes into one folder (default ``runs/<time>-<dataset>-tune``):

* ``study.log``: Optuna's journal of every study (unless ``--storage`` names a database);
* ``tuning.json``: the settings, command, versions and commit;
* ``trials.csv``: one row per trial (variant, state, validation accuracy, values);
* ``best.json``: each variant's chosen values (:func:`~kerasbn.tuning.report.best_settings`);
* ``tuning.md`` and ``tuning.png``: the chosen values with edge warnings, and the
  isolation plots;
* ``tensorboard/``: the trials in TensorBoard's HParams view.

Only the training and validation splits are read; the test split is never touched.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import optuna
import pandas as pd

from kerasbn._io import atomic_path, write_json, write_text
from kerasbn._lock import FolderLock
from kerasbn._versions import command_line, run_record
from kerasbn.data import Dataset, load_dataset
from kerasbn.data.user import is_user_spec
from kerasbn.runfolder import default_out_dir
from kerasbn.training import TrainConfig, default_config
from kerasbn.tuning.report import (
    best_settings,
    edge_notes,
    plot_isolation,
    trial_table,
    tuning_markdown,
    write_trial_hparams,
)
from kerasbn.tuning.space import DEFAULT_TUNE, Range, search_space
from kerasbn.tuning.study import (
    TuneJob,
    data_record,
    open_storage,
    open_study,
    recover_trials,
    redact,
    run_study,
    study_settings,
)
from kerasbn.variants import DEFAULT_VARIANTS, Variant, get_variant, parse_variants

__all__ = ["TuneResult", "load_tuning", "tune", "work"]

log = logging.getLogger(__name__)

BEST = "best.json"


@dataclass
class TuneResult:
    """A finished tune: each variant's chosen values and every trial."""

    out_dir: Path
    best: dict[str, dict]  # variant -> {"trial", "val_accuracy", "params"}
    trials: pd.DataFrame
    notes: list[str]  # edge warnings

    def params(self, variant: str) -> dict:
        return dict(self.best[variant]["params"])


def _variants(variants) -> list[Variant]:
    if isinstance(variants, str):
        return parse_variants(variants)
    return list({v.name: v for v in map(get_variant, variants)}.values())


def tune(
    dataset: str | Dataset,
    variants: Sequence[str | Variant] | str = DEFAULT_VARIANTS,
    config: TrainConfig | None = None,
    *,
    names: Iterable[str] = DEFAULT_TUNE,
    ranges: Mapping[str, tuple[float, float]] | None = None,
    trials: int = 20,
    epochs: int | None = None,
    out_dir: str | os.PathLike | None = None,
    storage: str | None = None,
    study: str | None = None,
    sampler_seed: int = 0,
    limit: int | None = None,
    data_dir: str | os.PathLike | None = None,
    tensorboard: bool = True,
) -> TuneResult:
    """Search each variant's nuisance hyperparameters on the validation split.

    Args:
        dataset: a data set name or a loaded :class:`~kerasbn.data.Dataset`.
        variants: the variants (names, objects or a comma string), one study each.
        config: the recipe the trials start from (default: the data set's); each trial
            replaces the tuned values, and ``epochs`` (default: the recipe's).
        names: what to tune (:data:`~kerasbn.tuning.space.HYPERPARAMETERS`).
        ranges: ``{name: (low, high)}`` replacing the data set's default ranges.
        trials: finished trials (completed or pruned) per variant.
        out_dir: the tune folder; re-running the same command there continues the
            studies without repeating a finished trial.
        storage: an SQLAlchemy database URL shared with ``python -m kerasbn.tune
            --worker`` processes (default: the journal file ``study.log`` in ``out_dir``).
        study: the studies' name prefix (default: the folder's name).
        sampler_seed: the TPE sampler's seed (each trial trains with ``config.seed``).
        limit: keep only the first ``limit`` training examples.

    Raises:
        ValueError: bad settings (before any training), or a study started with others.
        FolderLockedError: another process is tuning into ``out_dir``.
    """
    if not isinstance(trials, int) or trials < 1:
        raise ValueError(
            f"--trials must be a whole number of at least 1 (e.g. --trials 20). Received: {trials}"
        )
    if epochs is not None and (not isinstance(epochs, int) or epochs < 1):
        raise ValueError(f"--epochs must be a whole number of at least 1. Received: {epochs}")
    variants = _variants(variants)
    if isinstance(dataset, str) and is_user_spec(dataset):  # its recipe depends on its images
        dataset = load_dataset(dataset, data_dir)
    name = dataset if isinstance(dataset, str) else dataset.name
    config = config or default_config(name)
    config = replace(config, epochs=epochs or config.epochs, verbose=0)
    space = search_space(name, names, ranges)
    data = dataset if isinstance(dataset, Dataset) else load_dataset(dataset, data_dir)
    data = data.limit(limit)
    out_dir = Path(out_dir) if out_dir is not None else default_out_dir(f"{data.name}-tune")
    prefix = study or out_dir.name
    jobs = {v.name: TuneJob(data, v, config, _space_for(space, v), trials) for v in variants}
    with FolderLock(out_dir):
        record = run_record("kerasbn.tune")
        # compare --tune tunes here too: its command is the one that grows the folder.
        record["command"] = record["command"] or command_line("kerasbn.compare")
        write_json(
            out_dir / "tuning.json",
            {
                "study": prefix,
                "storage": "study.log" if storage is None else redact(storage),
                "sampler_seed": sampler_seed,
                "studies": {v: study_settings(job) for v, job in jobs.items()},
                **record,
            },
        )
        store = open_storage(storage, out_dir / "study.log")
        studies = {}
        for variant, job in jobs.items():
            one = open_study(store, f"{prefix}/{variant}", study_settings(job), sampler_seed)
            queued = recover_trials(one, running_are_stale=storage is None)
            if queued:
                log.info("%s: %d cut-off trial(s) queued to run again", one.study_name, queued)
            log.info(
                "tuning %s: %s over %s, %d trials of %d epochs",
                variant,
                ", ".join(job.space),
                "its validation split",
                trials,
                config.epochs,
            )
            run_study(one, job, wait=True, shared=storage is not None)
            studies[variant] = one
        return _report(out_dir, studies, jobs, config, tensorboard)


def _space_for(space: dict[str, Range], variant: Variant) -> dict[str, Range]:
    """Dropout is tuned only where the variant has Dropout."""
    if variant.uses_dropout or "dropout" not in space:
        return space
    return {k: v for k, v in space.items() if k != "dropout"} or space


def _report(out_dir: Path, studies, jobs, config: TrainConfig, tensorboard: bool) -> TuneResult:
    trials = trial_table(studies)
    with atomic_path(out_dir / "trials.csv", suffix=".csv") as tmp:
        trials.to_csv(tmp, index=False)
    best = best_settings(trials)
    spaces = {v: job.space for v, job in jobs.items()}
    write_json(out_dir / BEST, best)
    notes = edge_notes(best, spaces)
    for note in notes:
        log.warning("%s", note)
    write_text(out_dir / "tuning.md", tuning_markdown(best, trials, spaces, config.epochs))
    plot_isolation(trials, best, spaces, out_dir / "tuning.png")
    if tensorboard:
        fixed = {
            v: {**job.config.to_dict(), **job.variant.to_dict()} for v, job in jobs.items()
        }
        write_trial_hparams(out_dir / "tensorboard", trials, fixed)
    log.info("tuning results in %s", out_dir)
    return TuneResult(out_dir, best, trials, notes)


def load_tuning(out_dir: str | os.PathLike) -> TuneResult:
    """A finished tune read back from its folder (``best.json`` and ``trials.csv``)."""
    out_dir = Path(out_dir)
    if not (out_dir / BEST).is_file():
        raise FileNotFoundError(
            f"{out_dir} holds no finished tune (no {BEST}). Re-run its kerasbn.tune command."
        )
    best = json.loads((out_dir / BEST).read_text())
    return TuneResult(out_dir, best, pd.read_csv(out_dir / "trials.csv"), [])


def work(
    storage: str,
    *,
    study: str | None = None,
    data_dir: str | os.PathLike | None = None,
) -> int:
    """Join the kerasbn studies on the database ``storage`` (those named
    ``<study>/<variant>`` when ``study`` is given) and run trials until each has its
    budget; returns how many studies were worked on. Writes no files: the leader
    (:func:`tune`) writes the report when every study is done."""
    store = open_storage(storage)
    names = [
        n
        for n in optuna.get_all_study_names(storage=store)
        if study is None or n.startswith(f"{study}/")
    ]
    if not names:
        raise ValueError(
            f"No kerasbn study on {redact(storage)}"
            + (f" named {study}/<variant>" if study else "")
            + ": start one with python -m kerasbn.tune --storage URL first (or check --study)."
        )
    loaded: dict[tuple, Dataset] = {}
    for name in names:
        one = open_study(store, name, None, sampler_seed=None)
        settings = one.user_attrs["kerasbn"]
        job = _job_from(settings, loaded, data_dir)
        log.info("worker: joining %s", name)
        run_study(one, job, wait=False, shared=True)
    return len(names)


def _job_from(settings: dict, loaded: dict, data_dir) -> TuneJob:
    """The :class:`TuneJob` a study's stored settings describe (data loaded once)."""
    wanted = settings["dataset"]
    key = (wanted["name"], wanted.get("limit"), wanted.get("val_limit"))
    if key not in loaded:
        # Your own images are found again by what was passed (folder or tfds:NAME).
        spec = wanted.get("spec", wanted["name"])
        data = load_dataset(spec, data_dir, image_size=wanted.get("image_size")).limit(
            wanted.get("limit"), val=wanted.get("val_limit")
        )
        if data_record(data) != wanted:
            raise ValueError(
                f"This machine's {wanted['name']} differs from the study's (its data record "
                f"is {wanted}); point --data-dir at the same files. Received: {data_record(data)}"
            )
        loaded[key] = data
    space = {
        name: Range(name, **{k: v for k, v in span.items()})
        for name, span in settings["space"].items()
    }
    return TuneJob(
        loaded[key],
        Variant(**settings["variant"]),
        TrainConfig(**{**settings["train_config"], "verbose": 0}),
        space,
        int(settings["trials"]),
    )

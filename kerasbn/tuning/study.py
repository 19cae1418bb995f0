"""One Optuna study per variant: where it is stored, how a trial trains, and the loop
that runs trials until the study holds its budget of finished ones.

Optuna does the searching and stopping: its TPE sampler proposes each trial's values and
its successive-halving pruner (ASHA, Li et al. 2020) stops a trial whose validation
accuracy after a few epochs is below most trials' at that epoch, through
``optuna_integration``'s Keras pruning callback. kerasbn adds what a run folder needs:

* **storage**: Optuna's journal file ``study.log`` in the tune folder by default (no
  server), or any database Optuna's RDB storage takes (``--storage URL``), which several
  worker processes on several machines then share;
* **a fixed budget**: a study is done when ``trials`` trials finished (completed or
  pruned). Workers that start at once may start one trial too many; the later of two
  such trials sees it is beyond the budget and ends at once as a failed "surplus" trial,
  so exactly ``trials`` trials finish;
* **resuming**: a trial that a kill left "running" is marked failed (in the tune's own
  folder at once, since its lock proves no other process runs there; on a shared
  database when its heartbeat is older than the grace period) and retried with the
  same values. Finished trials are never repeated.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass

import keras
import optuna
from optuna.trial import TrialState
from optuna_integration.keras import KerasPruningCallback

from kerasbn._signals import raise_if_stopped
from kerasbn.data import Dataset
from kerasbn.training import TrainConfig, train
from kerasbn.tuning.space import Range, apply_params, suggest
from kerasbn.variants import Variant

__all__ = [
    "FINISHED",
    "TuneJob",
    "data_record",
    "finished_trials",
    "open_storage",
    "open_study",
    "recover_trials",
    "redact",
    "run_study",
    "study_settings",
]

log = logging.getLogger(__name__)

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
# A worker on a shared database beats every HEARTBEAT seconds; a running trial silent for
# GRACE seconds belonged to a worker that died, and is retried.
HEARTBEAT, GRACE = 20, 120
SURPLUS = "surplus"
RETRY_OF = "retry_of"


class _Surplus(Exception):
    """A trial started after the study already had its budget of trials."""


@dataclass(frozen=True)
class TuneJob:
    """What one variant's study trains: ``config`` with the trial's values put in."""

    data: Dataset
    variant: Variant
    config: TrainConfig
    space: dict[str, Range]
    trials: int


def data_record(data: Dataset) -> dict:
    # Not Dataset.describe(): that counts the test images, and tuning never reads them.
    shape = list(data.x_train.shape[1:])
    return {
        "name": data.name,
        "source": data.source,
        "input_shape": shape,
        "train": len(data.x_train),
        "val": len(data.x_val),
        # A worker on another machine reads your own images again from spec and size.
        **{
            k: v
            for k, v in data.metadata.items()
            if k in ("limit", "val_limit", "spec", "image_size")
        },
    }


def study_settings(job: TuneJob) -> dict:
    """What a study stores about itself; a later run must match it to continue the study
    (its progress output may differ)."""
    config = {k: v for k, v in job.config.to_dict().items() if k != "verbose"}
    return {
        "dataset": data_record(job.data),
        "variant": job.variant.to_dict(),
        "train_config": config,
        "space": {name: span.to_dict() for name, span in job.space.items()},
        "trials": job.trials,
    }


def open_storage(url: str | None, journal_path=None):
    """A database at ``url`` (with worker heartbeats), else the journal file at
    ``journal_path``."""
    if url:
        try:
            return optuna.storages.RDBStorage(url, heartbeat_interval=HEARTBEAT, grace_period=GRACE)
        except Exception as exc:  # SQLAlchemy's URL and driver errors have many types
            raise ValueError(
                f"Cannot open the study database {redact(url)}: {exc}. Pass an SQLAlchemy URL "
                "such as sqlite:///study.db or postgresql://user@host/db. "
                f"Received: --storage {redact(url)}"
            ) from None
    backend = optuna.storages.journal.JournalFileBackend(str(journal_path))
    return optuna.storages.JournalStorage(backend)


def redact(url: str) -> str:
    """The URL without its password (it would end up in logs and files)."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in credentials else url


def open_study(
    storage, name: str, settings: dict | None, sampler_seed: int | None = 0
) -> optuna.Study:
    """Create or load the study ``name``. ``settings`` (the leader) are stored on a new
    study and must equal a stored one's; ``None`` (a worker) takes what is stored.
    ``sampler_seed``: ``None`` for a worker, whose proposals must differ from the
    leader's (same-seeded samplers propose the same values); a study that already holds
    N trials is sampled with ``sampler_seed + N``."""
    trials = (settings or {}).get("trials", 20)
    # ASHA: a trial goes on past epochs 2, 6, 18, ... only if it is in the best third
    # of the trials that reached that epoch.
    pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        direction="maximize",
        sampler=_sampler(sampler_seed, trials),
        pruner=pruner,
        load_if_exists=True,
    )
    held = len(study.get_trials(deepcopy=False))
    if held and sampler_seed is not None:
        # A resumed study: a sampler seeded as the first piece's was would propose the
        # first piece's values again (its random draws restart), so a study of N trials
        # goes on with seed + N, still reproducible from the folder.
        study = optuna.load_study(
            study_name=name,
            storage=storage,
            sampler=_sampler(sampler_seed + held, trials),
            pruner=pruner,
        )
    stored = study.user_attrs.get("kerasbn")
    if settings is None:
        if stored is None:
            raise ValueError(
                f"The study {name!r} was not made by kerasbn.tune; start the tune with "
                f"python -m kerasbn.tune (without --worker) first. Received: {name!r}"
            )
        return study
    if stored is None:
        study.set_user_attr("kerasbn", settings)
        return study
    changed = sorted(key for key in settings if stored.get(key) != settings.get(key))
    if changed == ["trials"] and settings["trials"] > stored["trials"]:
        # A larger budget grows the study (as more seeds grow a comparison): the finished
        # trials count towards it, so a long tune can be run in pieces.
        log.info("%s: budget grows from %d to %d trials", name, stored["trials"], trials)
        study.set_user_attr("kerasbn", settings)
    elif changed == ["trials"]:
        raise ValueError(
            f"The study {name!r} has a budget of {stored['trials']} trials; this asks for "
            f"fewer. Ask for at least {stored['trials']} (more grow the study), or pass "
            f"another --out. Received: --trials {settings['trials']}"
        )
    elif changed:
        raise ValueError(
            f"The study {name!r} was started with other settings ({', '.join(changed)} "
            "differ); re-run its own command to continue it, or pass another --out (or "
            f"--study). Received: {', '.join(f'{k}={settings[k]!r}' for k in changed)}"
        )
    return study


def _sampler(seed: int | None, trials: int) -> optuna.samplers.TPESampler:
    return optuna.samplers.TPESampler(
        seed=seed,
        # Half the budget random first, as TPE's own default of 10 does for 20 trials.
        n_startup_trials=min(10, max(1, trials // 2)),
        # Parallel workers: a running trial counts as a poor one, so two workers
        # do not propose the same values.
        constant_liar=True,
    )


def finished_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(deepcopy=False, states=FINISHED)


def recover_trials(study: optuna.Study, *, running_are_stale: bool) -> int:
    """Mark left-over running trials failed (when ``running_are_stale``: this process
    holds the study's folder) and queue each failed trial's values once more. Returns
    how many were queued."""
    trials = study.get_trials(deepcopy=False)
    if running_are_stale:
        for trial in trials:
            if trial.state == TrialState.RUNNING:
                log.info("%s: trial %d was cut off; it runs again", study.study_name, trial.number)
                study.tell(trial.number, state=TrialState.FAIL)
        trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get(RETRY_OF) for t in trials}
    queued = 0
    for trial in trials:
        if trial.state != TrialState.FAIL or trial.user_attrs.get(SURPLUS):
            continue
        if trial.number in retried or not trial.params:
            continue
        study.enqueue_trial(trial.params, user_attrs={RETRY_OF: trial.number})
        queued += 1
    return queued


def _objective(trial: optuna.Trial, job: TuneJob) -> float:
    _check_budget(trial, job.trials)
    trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
    params = suggest(trial, job.space, job.variant)
    config, variant = apply_params(job.config, job.variant, params)
    started = time.perf_counter()
    try:
        result = train(
            job.data,
            variant,
            config,
            callbacks=[KerasPruningCallback(trial, "val_accuracy")],
        )
    finally:
        trial.set_user_attr("seconds", round(time.perf_counter() - started, 2))
        keras.backend.clear_session()  # each trial builds a new net; free the last one
    history = result.history
    trial.set_user_attr("epochs", len(history))
    if result.diverged:
        # A diverged net is a bad trial, not a failed one: the sampler should learn from it.
        trial.set_user_attr("diverged", result.diverged_at or "loss became NaN or Inf")
        raise optuna.TrialPruned(f"diverged: {result.diverged_at}")
    # The last epoch's accuracy: compare trains for a fixed number of epochs and keeps
    # the last epoch's net, so that is what a tuned setting must be good at.
    return float(history["val_accuracy"].iloc[-1])


def _check_budget(trial: optuna.Trial, budget: int) -> None:
    states = (*FINISHED, TrialState.RUNNING)
    ahead = [
        t
        for t in trial.study.get_trials(deepcopy=False, states=states)
        if t.number < trial.number and not t.user_attrs.get(SURPLUS)
    ]
    if len(ahead) >= budget:
        trial.set_user_attr(SURPLUS, True)
        raise _Surplus(f"trial {trial.number}: the study already has {budget} trials")


def _log_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    if trial.user_attrs.get(SURPLUS):
        return
    values = ", ".join(f"{k}={v:.3g}" for k, v in trial.params.items())
    epochs = trial.user_attrs.get("epochs", len(trial.intermediate_values))
    seconds = trial.user_attrs.get("seconds", float("nan"))
    if trial.state == TrialState.COMPLETE:
        outcome = f"val accuracy {100 * trial.value:.2f}%"
    elif trial.user_attrs.get("diverged"):
        outcome = "diverged"
    else:
        outcome = f"pruned after epoch {epochs}"
    done = len(finished_trials(study))
    log.info(
        "%s trial %d (%d finished): %s -> %s (%d epochs, %.0f s)",
        study.study_name,
        trial.number,
        done,
        values,
        outcome,
        epochs,
        seconds,
    )


def run_study(
    study: optuna.Study, job: TuneJob, *, wait: bool, shared: bool = False, poll: float = 5.0
) -> None:
    """Run trials until ``job.trials`` have finished. When the remaining ones are running
    in other workers, wait for them (``wait``) or return. ``shared``: the study is on a
    database with heartbeats, where other workers' trials may be running."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # kerasbn logs each trial itself
    while True:
        raise_if_stopped()
        trials = study.get_trials(deepcopy=False)
        finished = sum(t.state in FINISHED for t in trials)
        if finished >= job.trials:
            return
        running = sum(t.state == TrialState.RUNNING for t in trials)
        queued = any(t.state == TrialState.WAITING for t in trials)
        if finished + running >= job.trials and not queued:
            if not wait:
                return
            # Another worker is on the last trials; a dead one's trial is failed once
            # its heartbeat is stale, and queued again here.
            if shared:
                optuna.storages.fail_stale_trials(study)
                recover_trials(study, running_are_stale=False)
            time.sleep(poll)
            continue
        study.optimize(
            lambda trial: _objective(trial, job),
            n_trials=1,
            catch=(_Surplus,),
            callbacks=[_log_trial],
            gc_after_trial=True,
        )

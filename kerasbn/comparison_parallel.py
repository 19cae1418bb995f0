"""A comparison's runs trained several at a time, in worker processes
(``compare --jobs N``).

The runs of a comparison are independent, so the ones not finished yet are handed to
up to ``N`` worker processes at once, each training one run with
:func:`~kerasbn.comparison_run.train_one` into the same run folder, exactly as the
sequential loop does (the same checkpoint, log and record files). The parent keeps the
folder's lock and, when they are all done, the sequential loop of
:mod:`kerasbn.comparison` reads their records back and writes the tables: the folder
is the same one a sequential run leaves, and resumes the same way.

Each worker runs on ``threads`` CPU threads (:func:`~kerasbn.training.threads.set_cpu_threads`),
so that a run's numbers equal the sequential run's with the same ``--threads`` byte
for byte. On a machine with several GPUs each worker sees one of them (one run per
GPU); with one GPU the workers share it and allocate its memory as they need it.

Workers are started with ``spawn`` (a fresh interpreter, no copy of the parent's
TensorFlow state) and ignore Ctrl-C: the parent stops them. On a stop signal, or when
one worker fails, the parent sends the others SIGTERM; each stops after its current
batch the way a sequential run does (:mod:`kerasbn._signals`), keeping its last
completed epoch, and the parent reports the first failure (a full disk as the
``OSError`` it was).
"""

from __future__ import annotations

import errno as _errno
import logging
import multiprocessing
import multiprocessing.connection
import os
import pickle
import signal
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Task", "WorkerError", "planned_runs", "train_in_parallel", "train_unfinished"]

log = logging.getLogger(__name__)

# How long a worker may take to stop after SIGTERM (it stops within a batch, then
# writes nothing more), before it is killed; its checkpoint is written atomically.
_STOP_SECONDS = 120


@dataclass(frozen=True)
class Task:
    """One run for a worker: what :func:`~kerasbn.comparison_run.train_one` needs."""

    variant: object  # kerasbn.variants.Variant (kept untyped: no Keras import here)
    config: object  # kerasbn.training.TrainConfig
    tag: str
    model_path: Path | None


def planned_runs(job) -> list[Task]:
    """Every run of the comparison ``job``, in the sequential loop's order (each variant
    at its tuned values, if any; the first seed's model saved)."""
    from dataclasses import replace

    from kerasbn.tuning.space import apply_params

    planned = []
    for listed in job.variants:
        variant_config, variant = apply_params(job.config, listed, job.tuned.get(listed.name, {}))
        for k in range(job.seeds):
            seed = job.config.seed + k
            tag = f"{job.data.name}-{variant.name}-seed{seed}"
            model_path = None
            if job.models_dir is not None and k == 0:
                model_path = job.models_dir / f"{job.data.name}-{variant.name}.keras"
            planned.append(Task(variant, replace(variant_config, seed=seed), tag, model_path))
    return planned


def train_unfinished(job, out_dir: Path) -> None:
    """Train the runs of ``job`` that have no finished record in ``out_dir``, up to
    ``job.jobs`` at a time on ``job.threads`` threads each."""
    from kerasbn.comparison_run import finished_record

    left = [
        task
        for task in planned_runs(job)
        if finished_record(out_dir / "runs" / f"{task.tag}.json") is None
    ]
    if left:
        train_in_parallel(job, left, out_dir, job.jobs, job.threads)


class WorkerError(RuntimeError):
    """A worker process failed; the message names its run and what went wrong."""


def _gpu_count() -> int:
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return len(tf.config.list_physical_devices("GPU"))
    if keras.backend.backend() == "jax":
        import jax

        return sum(d.platform == "gpu" for d in jax.devices())
    return 0


def train_in_parallel(
    job, tasks: Sequence[Task], out_dir: Path, jobs: int, threads: int | None
) -> None:
    """Train ``tasks`` (runs of ``job``) into ``out_dir``, up to ``jobs`` at a time.

    Raises:
        Stopped: a stop signal reached the parent; the workers were stopped first.
        OSError: a worker's disk filled up (the others were stopped).
        WorkerError: a worker failed otherwise, or died without a word.
    """
    from kerasbn._signals import raise_if_stopped

    context = multiprocessing.get_context("spawn")
    gpus = _gpu_count()
    payload = pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL)  # the data, once
    level = logging.getLogger("kerasbn").getEffectiveLevel()
    pending = list(tasks)
    running: dict = {}  # process -> (task, connection, slot)
    free = list(range(jobs))
    finished = 0
    log.info(
        "%d run(s) to train, %d at a time (%s CPU thread(s) each%s)",
        len(pending),
        min(jobs, len(pending)),
        threads if threads is not None else "all",
        f", one of {gpus} GPUs each" if gpus > 1 else ", sharing the GPU" if gpus else "",
    )
    try:
        while pending or running:
            raise_if_stopped()
            while pending and free:
                task, slot = pending.pop(0), free.pop(0)
                gpu = slot % gpus if gpus > 1 else None
                receive, send = context.Pipe(duplex=False)
                process = context.Process(
                    target=_work,
                    args=(payload, task, str(out_dir), threads, level, gpu, gpus, send),
                    name=f"kerasbn-{task.tag}",
                )
                process.start()
                send.close()  # the parent's copy: EOF reaches us when the worker exits
                running[process] = (task, receive, slot)
            sentinels = [p.sentinel for p in running]
            multiprocessing.connection.wait(sentinels, timeout=0.5)
            for process in [p for p in running if not p.is_alive()]:
                task, receive, slot = running.pop(process)
                process.join()
                free.append(slot)
                _raise_for(task, _outcome(receive), process.exitcode)
                finished += 1
                log.info("%s: finished (%d of %d runs)", task.tag, finished, len(tasks))
    finally:
        _stop(running)


def _outcome(receive) -> tuple | None:
    try:
        return receive.recv() if receive.poll() else None
    except (EOFError, OSError):
        return None
    finally:
        receive.close()


def _raise_for(task: Task, outcome: tuple | None, exitcode: int | None) -> None:
    if outcome is not None and outcome[0] == "ok":
        return
    if outcome is not None and outcome[0] == "error":
        _, name, number, message, details = outcome
        log.debug("%s failed in its worker:\n%s", task.tag, details)
        if number == _errno.ENOSPC:
            raise OSError(number, f"{message} (training {task.tag})")
        raise WorkerError(f"training {task.tag} failed in its worker process: {name}: {message}")
    if outcome is not None and outcome[0] == "stopped":
        # A worker is only stopped by the parent; one stopped from outside (someone
        # sent it SIGTERM) ends the comparison the same way, resumably.
        from kerasbn._signals import Stopped

        raise Stopped(outcome[1])
    raise WorkerError(
        f"the worker process training {task.tag} ended with exit code {exitcode} and no "
        "result (killed, e.g. by the out-of-memory killer?). Its last completed epoch is "
        "kept: run the same command again, with fewer --jobs if memory is short."
    )


def _stop(running: dict) -> None:
    """SIGTERM every live worker, then wait for each to finish its batch and unwind."""
    for process in running:
        if process.is_alive():
            os.kill(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + _STOP_SECONDS
    for process, (task, receive, _) in running.items():
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            log.warning("%s: its worker did not stop in %d s; killed", task.tag, _STOP_SECONDS)
            process.kill()
            process.join()
        receive.close()


def _work(payload, task, out_dir, threads, level, gpu, gpus, send) -> None:
    """A worker process: train one run, send back how it ended."""
    # Before TensorFlow starts: which GPU this worker sees, and memory on demand when
    # several workers share one.
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
    elif gpus == 1:
        os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    from kerasbn._logging import configure_logging
    from kerasbn._signals import Stopped, raise_if_stopped, stop_on_signals

    configure_logging(level)
    try:
        with stop_on_signals():
            # Ctrl-C reaches every process of the terminal's group; the parent alone
            # decides, and stops the workers with SIGTERM.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            from kerasbn.training.threads import set_cpu_threads

            set_cpu_threads(threads)
            job = pickle.loads(payload)
            from kerasbn.data.user import register_from_metadata

            # A fresh interpreter knows the built-in sets only; your own set's row and
            # recipe are rebuilt from what the data records.
            data = job.data
            register_from_metadata(data.name, data.class_names, data.input_shape, data.metadata)
            _train(job, task, Path(out_dir))
            raise_if_stopped()
        send.send(("ok",))
    except Stopped as stop:
        send.send(("stopped", stop.signum))
    except BaseException as exc:  # reported to the parent, which decides
        from kerasbn._io import disk_full, disk_full_text

        if disk_full(exc):  # TensorFlow's writers raise no OSError: one errno for all
            send.send(("error", "OSError", _errno.ENOSPC, disk_full_text(exc), ""))
            return
        send.send(
            (
                "error",
                type(exc).__name__,
                getattr(exc, "errno", None),
                str(exc),
                traceback.format_exc(),
            )
        )
    finally:
        send.close()


def _train(job, task: Task, out_dir: Path) -> None:
    from dataclasses import replace

    from kerasbn.comparison_run import train_one
    from kerasbn.training import ResumableBackup

    start = ResumableBackup(out_dir / "backup" / task.tag).completed_epochs()
    where = f", resuming after epoch {start}" if start else ""
    log.info(
        "training %s (%d images) in worker %d%s",
        task.tag,
        len(job.data.x_train),
        os.getpid(),
        where,
    )
    # Keras' own progress bars of several workers would interleave: one line per epoch.
    config = replace(task.config, verbose=0)
    train_one(
        job,
        task.variant,
        config,
        out_dir,
        task.tag,
        task.model_path,
        callbacks=[_epoch_lines(task.tag, config.epochs)],
    )


def _epoch_lines(tag: str, epochs: int):
    import keras

    class EpochLines(keras.callbacks.Callback):
        async_safe = True  # logging only

        def on_epoch_end(self, epoch, logs=None):
            accuracy = (logs or {}).get("val_accuracy")
            shown = f", val accuracy {100 * accuracy:.2f}%" if accuracy is not None else ""
            log.info("%s: epoch %d of %d%s", tag, epoch + 1, epochs, shown)

    return EpochLines()

"""How many CPU threads one run's ops use (``compare --threads T``).

The thread count is part of what a run computes, not only of its speed: TensorFlow
splits a reduction over its intra-op threads, so the same seed gives slightly other
float sums with another count (MNIST, 3 epochs: 97.24% with 2 threads, 97.21% with 1).
A comparison run in parallel (``--jobs N``, :mod:`kerasbn.comparison_parallel`) gives
each worker ``cores // N`` threads, so the sequential run that equals it byte for byte
is the one with that same ``--threads``.
"""

from __future__ import annotations

import logging
import os

__all__ = ["available_cores", "set_cpu_threads"]

log = logging.getLogger(__name__)


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity, e.g. a container's share)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def set_cpu_threads(threads: int | None) -> None:
    """Run this process's TensorFlow ops on ``threads`` intra-op and as many inter-op
    threads (``None``: TensorFlow's default, every core). It must come before
    TensorFlow runs its first op; later, a different count is refused with the fix.

    Raises:
        ValueError: ``threads`` < 1, or TensorFlow has already started with another
            count in this process.
    """
    if threads is None:
        return
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a whole number of at least 1. Received: {threads!r}")
    import keras

    if keras.backend.backend() != "tensorflow":
        # XLA's CPU thread pool is fixed when JAX starts; kerasbn does not set it.
        log.warning(
            "--threads applies to the TensorFlow backend only; the %s backend uses its "
            "own thread count",
            keras.backend.backend(),
        )
        return
    import tensorflow as tf

    threading = tf.config.threading
    if (
        threading.get_intra_op_parallelism_threads() == threads
        and threading.get_inter_op_parallelism_threads() == threads
    ):
        return
    try:
        threading.set_intra_op_parallelism_threads(threads)
        threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError as exc:
        raise ValueError(
            f"TensorFlow has already started in this process with another thread count, "
            f"so it cannot run on {threads} thread(s) now: pass threads in a fresh process "
            "(a new Python or notebook kernel), or leave it out. Received: "
            f"threads={threads}"
        ) from exc

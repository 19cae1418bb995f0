"""Where training runs: one device, several on one machine, or several machines.

``resolve(name)`` turns a strategy name into a :class:`Placement`:

* ``default``: one device, no distribution.
* ``mirrored``: data parallel over this machine's devices (all GPUs, else all logical
  CPUs): ``tf.distribute.MirroredStrategy`` on TensorFlow,
  ``keras.distribution.DataParallel`` on JAX.
* ``multiworker``: data parallel over several machines (processes) named by
  ``TF_CONFIG``. On JAX this is Keras 3's own multi-process path,
  ``keras.distribution.initialize`` + ``DataParallel``. On TensorFlow,
  ``MultiWorkerMirroredStrategy`` cannot train a Keras 3 model: ``fit`` fails in
  ``_maybe_symbolic_build`` (keras-team/keras#20585, open; also
  tensorflow/tensorflow#72388), so it is refused with that reason.
* ``auto``: ``multiworker`` when ``TF_CONFIG`` names several workers, ``mirrored`` when
  several GPUs (JAX: devices) are visible, else ``default``.

The same ``TF_CONFIG`` variable describes the cluster for both backends, so the same
command line runs on every machine.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field

import keras

from kerasbn.registry import check_choice
from kerasbn.training.options import STRATEGIES

__all__ = [
    "STRATEGIES",
    "Cluster",
    "DistributionError",
    "Placement",
    "cluster_from_env",
    "current_placement",
    "resolve",
]

TF_MULTIWORKER_ISSUE = "https://github.com/keras-team/keras/issues/20585"


class DistributionError(ValueError):
    """The requested distribution cannot run here (wrong backend, bad TF_CONFIG)."""


@dataclass(frozen=True)
class Cluster:
    """The machines of a multi-worker run, chief first, and this process's rank."""

    addresses: tuple[str, ...]
    rank: int

    @property
    def size(self) -> int:
        return len(self.addresses)

    @property
    def is_chief(self) -> bool:
        return self.rank == 0


def cluster_from_env(environ=os.environ) -> Cluster | None:
    """The cluster in ``TF_CONFIG``; ``None`` when unset or a single worker.

    The chief (task type ``chief``, or ``worker`` 0 when there is no chief) has rank 0.
    """
    raw = environ.get("TF_CONFIG")
    if not raw:
        return None
    try:
        config = json.loads(raw)
        cluster, task = config.get("cluster", {}), config.get("task", {})
        chiefs, workers = list(cluster.get("chief", [])), list(cluster.get("worker", []))
        kind, index = task.get("type"), int(task.get("index", 0))
    except (ValueError, AttributeError, TypeError) as exc:
        raise DistributionError(
            f"TF_CONFIG is not valid JSON of the form {{'cluster': {{'worker': "
            f"['host:port', ...]}}, 'task': {{'type': 'worker', 'index': 0}}}}. Received: "
            f"{raw!r}"
        ) from exc
    addresses = tuple(chiefs + workers)
    if len(addresses) <= 1:
        return None
    if kind == "chief" and index < len(chiefs):
        rank = index
    elif kind == "worker" and index < len(workers):
        rank = len(chiefs) + index
    else:
        raise DistributionError(
            f"TF_CONFIG's task {task!r} is not in its cluster {cluster!r}; set task.type to "
            f"'chief' or 'worker' and task.index to this machine's position. Received: {raw!r}"
        )
    return Cluster(addresses, rank)


@dataclass
class Placement:
    """What one training run is spread over."""

    strategy: str  # resolved: default | mirrored | multiworker
    backend: str
    replicas: int = 1  # devices over all processes; global batch = per-replica x this
    processes: int = 1
    process_index: int = 0
    tf_strategy: object | None = field(default=None, repr=False)

    @property
    def is_chief(self) -> bool:
        return self.process_index == 0

    @property
    def batch_unit(self) -> int:
        """Every batch must be a multiple of this. JAX shards each batch evenly over all
        devices, so ragged batches (validation, test) are dropped there; TensorFlow's
        strategies split uneven batches themselves."""
        return self.replicas if self.backend == "jax" else 1

    def scope(self):
        """Build and compile models inside this (``strategy.scope()`` on TensorFlow)."""
        if self.tf_strategy is not None:
            return self.tf_strategy.scope()
        return contextlib.nullcontext()

    def describe(self) -> dict:
        return {
            "strategy": self.strategy,
            "backend": self.backend,
            "replicas": self.replicas,
            "processes": self.processes,
            "tf_strategy": type(self.tf_strategy).__name__ if self.tf_strategy else None,
        }


_RESOLVED: dict[tuple[str, str], Placement] = {}
_CURRENT: Placement | None = None


def _pick(name: str, cluster: Cluster | None, local_accelerators: int) -> str:
    try:
        check_choice(name, STRATEGIES, "strategy", "strategies")
    except ValueError as exc:
        raise DistributionError(str(exc)) from None
    if name != "auto":
        return name
    if cluster is not None:
        return "multiworker"
    return "mirrored" if local_accelerators > 1 else "default"


def _tensorflow(name: str, cluster: Cluster | None) -> Placement:
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    name = _pick(name, cluster, len(gpus))
    if name == "multiworker":
        raise DistributionError(
            "Multi-worker training with the TensorFlow backend is blocked by a Keras 3 bug: "
            "model.fit under MultiWorkerMirroredStrategy fails before the first step "
            f"({TF_MULTIWORKER_ISSUE}, open as of Keras 3.15). Run the same command with "
            "KERAS_BACKEND=jax on every machine: kerasbn then uses Keras' own multi-process "
            "path (keras.distribution) with the same TF_CONFIG."
        )
    if name == "mirrored":
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        strategy = tf.distribute.MirroredStrategy(devices)
        return Placement("mirrored", "tensorflow", strategy.num_replicas_in_sync, 1, 0, strategy)
    return Placement("default", "tensorflow", 1, 1, 0, tf.distribute.get_strategy())


def _jax(name: str, cluster: Cluster | None) -> Placement:
    import jax

    # No device query before jax.distributed.initialize: it must come first.
    if not (cluster is not None and name in ("auto", "multiworker")):
        name = _pick(name, cluster, len(jax.local_devices()))
    else:
        name = "multiworker"
    if name == "multiworker":
        if cluster is None:
            raise DistributionError(
                "--strategy multiworker needs TF_CONFIG naming every worker (see the "
                "README's multi-worker section). Received: TF_CONFIG unset or one worker"
            )
        # Cross-process collectives between CPU devices (CPU clusters, tests) go through
        # gloo; the setting leaves GPU collectives alone.
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        keras.distribution.initialize(
            job_addresses=cluster.addresses[0],
            num_processes=cluster.size,
            process_id=cluster.rank,
        )
        devices = keras.distribution.list_devices()
        # Each process feeds its own slice of every global batch (EpochBatches(shard=)).
        keras.distribution.set_distribution(
            keras.distribution.DataParallel(devices=devices, auto_shard_dataset=False)
        )
        return Placement("multiworker", "jax", len(devices), cluster.size, cluster.rank)
    if name == "mirrored" and len(jax.local_devices()) > 1:
        devices = keras.distribution.list_devices()
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
        return Placement("mirrored", "jax", len(devices))
    keras.distribution.set_distribution(None)
    return Placement(name, "jax")


def resolve(name: str = "auto") -> Placement:
    """The placement for strategy ``name`` (created once per process and reused:
    multi-worker set-up can only happen once)."""
    global _CURRENT
    key = (name, os.environ.get("TF_CONFIG", ""))
    if key not in _RESOLVED:
        cluster = cluster_from_env()
        backend = keras.backend.backend()
        if backend == "tensorflow":
            placement = _tensorflow(name, cluster)
        elif backend == "jax":
            placement = _jax(name, cluster)
        else:
            if _pick(name, cluster, 0) != "default":
                raise DistributionError(
                    f"Distributed training needs the tensorflow or jax backend. Received: "
                    f"KERAS_BACKEND={backend!r} with strategy {name!r}"
                )
            placement = Placement("default", backend)
        _RESOLVED[key] = placement
    placement = _RESOLVED[key]
    if placement.backend == "jax" and placement.processes == 1:
        # Re-selecting a local placement re-installs its global JAX distribution.
        keras.distribution.set_distribution(
            keras.distribution.DataParallel(devices=keras.distribution.list_devices())
            if placement.replicas > 1
            else None
        )
    _CURRENT = placement
    return _CURRENT


def current_placement() -> Placement:
    """The placement of the most recent :func:`resolve` (default when none)."""
    return _CURRENT if _CURRENT is not None else resolve("default")

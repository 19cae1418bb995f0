"""``--precision auto``: which compute precision a run uses on the machine at hand.

A GPU computes in bfloat16 on its tensor cores (``mixed_bfloat16``: float32 weights,
BN statistics and softmax). A CPU does so only with bfloat16 units, which Linux lists
among the CPU flags: ``amx_bf16`` (Intel AMX tiles, Sapphire Rapids and later) and
``avx512_bf16`` (AVX-512 dot products of bfloat16 pairs, Cooper Lake, Zen 4). Without
them oneDNN converts to float32 and a bfloat16 step is slower than a float32 one.

On CPUs ``auto`` stays float32 until the float32-against-bfloat16 comparisons
(three seeds each on MNIST and CIFAR-10, judged like every comparison) show that
bfloat16 costs no accuracy: :data:`CPU_BFLOAT16` says whether that evidence is in.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

from kerasbn.training.options import PRECISIONS

__all__ = [
    "BFLOAT16_FLAGS",
    "CPU_BFLOAT16",
    "PRECISION_CHOICES",
    "PrecisionChoice",
    "bfloat16_units",
    "cpu_flags",
    "cpu_model",
    "on_gpu",
    "resolve_precision",
]

PRECISION_CHOICES = ("auto", *PRECISIONS)
# The CPU flags that mean bfloat16 arithmetic in hardware, strongest first.
BFLOAT16_FLAGS = ("amx_bf16", "avx512_bf16")
# Whether ``auto`` picks mixed_bfloat16 on a CPU with bfloat16 units. False: the accuracy
# parity runs the choice waits for have not been measured yet (benchmarks/README.md).
CPU_BFLOAT16 = False
# Set to a space-separated flag list to stand in for /proc/cpuinfo (tests, or a user
# checking what ``auto`` would pick on another CPU).
FLAGS_ENV = "KERASBN_CPU_FLAGS"


def _cpuinfo_field(name: str, cpuinfo: str | os.PathLike) -> str | None:
    """The value of the first ``name : value`` line of ``cpuinfo`` (Linux), if any."""
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == name:
            return value.strip()
    return None


def cpu_flags(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU's feature flags: ``$KERASBN_CPU_FLAGS`` when set, else the first
    ``flags`` line of ``cpuinfo`` (Linux); empty where there is none (macOS, Windows),
    which ``auto`` treats as a CPU without bfloat16 units."""
    faked = os.environ.get(FLAGS_ENV)
    if faked is not None:
        return frozenset(faked.split())
    return frozenset((_cpuinfo_field("flags", cpuinfo) or "").split())


def cpu_model(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> str:
    """The CPU's model name (Linux), or the platform's processor string elsewhere."""
    import platform

    return _cpuinfo_field("model name", cpuinfo) or platform.processor() or "unknown CPU"


def bfloat16_units(flags: frozenset[str] | None = None) -> list[str]:
    """The bfloat16 flags among ``flags`` (default: this CPU's), strongest first."""
    flags = cpu_flags() if flags is None else flags
    return [flag for flag in BFLOAT16_FLAGS if flag in flags]


@dataclass(frozen=True)
class PrecisionChoice:
    """What ``--precision`` resolved to, and why (stored in a comparison's config.json)."""

    requested: str
    precision: str
    why: str
    cpu_bfloat16_units: tuple[str, ...]

    def to_dict(self) -> dict:
        return {**asdict(self), "cpu_bfloat16_units": list(self.cpu_bfloat16_units)}


def resolve_precision(
    requested: str,
    *,
    gpu: bool,
    flags: frozenset[str] | None = None,
    cpu_bfloat16: bool | None = None,
) -> PrecisionChoice:
    """The Keras dtype policy for ``requested`` (``auto`` or one of
    :data:`~kerasbn.training.options.PRECISIONS`) on a machine with or without a GPU
    and with CPU ``flags`` (default: this CPU's). ``cpu_bfloat16`` overrides
    :data:`CPU_BFLOAT16`."""
    if requested not in PRECISION_CHOICES:
        raise ValueError(
            f"Unknown precision. Valid choices: {', '.join(PRECISION_CHOICES)}. "
            f"Received: {requested!r}"
        )
    units = tuple(bfloat16_units(flags))
    cpu_bfloat16 = CPU_BFLOAT16 if cpu_bfloat16 is None else cpu_bfloat16
    if requested != "auto":
        return PrecisionChoice(requested, requested, "asked for", units)
    if gpu:
        return PrecisionChoice(requested, "mixed_bfloat16", "auto: a GPU", units)
    if not units:
        why = "auto: float32, the CPU flags name no bfloat16 units"
        return PrecisionChoice(requested, "float32", why, units)
    if cpu_bfloat16:
        why = f"auto: the CPU has bfloat16 units ({', '.join(units)})"
        return PrecisionChoice(requested, "mixed_bfloat16", why, units)
    why = (
        f"auto: float32; the CPU has bfloat16 units ({', '.join(units)}), but bfloat16 on "
        "CPUs waits for its accuracy-parity runs (pass --precision mixed_bfloat16 to use it)"
    )
    return PrecisionChoice(requested, "float32", why, units)


def on_gpu() -> bool:
    """Whether the Keras backend of this process trains on a GPU."""
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return jax.devices()[0].platform == "gpu"
    if backend == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))
    if backend == "torch":
        import torch

        return torch.cuda.is_available()
    return False

"""What a benchmark run measures: :class:`BenchConfig` and the paths it can compare."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_PATHS", "LEVER_PATHS", "PATHS", "QUICK", "BenchConfig"]

PATHS = (
    "kerasbn",
    "kerasbn-jax",
    "naive",
    "naive-same-batch",
    "torch",
    "torch-compile",
    "kerasbn-unfused",
    "kerasbn-no-onednn",
)
DEFAULT_PATHS = PATHS[:6]
# Paths that isolate one of kerasbn's levers; run on request (--paths).
LEVER_PATHS = PATHS[6:]


@dataclass(frozen=True)
class BenchConfig:
    datasets: tuple[str, ...] = ("mnist", "cifar10")
    variants: tuple[str, ...] = ("base", "bn+dropout")
    paths: tuple[str, ...] = DEFAULT_PATHS
    epochs: int = 3  # the first is warm-up; the rest are timed
    limit: int | None = 4096  # training images per epoch (None: the whole set)
    data_dir: str | None = None
    seed: int = 0
    batch_size: int | None = None  # kerasbn and PyTorch paths; None: the data set's default
    precision: str = "auto"  # kerasbn and PyTorch paths; auto: mixed_bfloat16 on a GPU
    # Rounds over the paths, in alternating order: medians are reported, with min and max,
    # and a ratio counts as a win only when every round agrees.
    repeats: int = 3


QUICK = {"datasets": ("digits",), "epochs": 2, "limit": 512, "repeats": 1}

"""What a benchmark run measures: :class:`BenchConfig` and the paths it can compare."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_PATHS", "PATHS", "QUICK", "BenchConfig"]

PATHS = ("kerasbn", "kerasbn-jax", "naive", "torch", "kerasbn-unfused")
DEFAULT_PATHS = PATHS[:4]


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
    repeats: int = 2  # rounds over the paths, in alternating order; medians are reported


QUICK = {"datasets": ("digits",), "epochs": 2, "limit": 512, "repeats": 1}

"""What a benchmark run measures: :class:`BenchConfig` and the paths it can compare."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "BFLOAT16",
    "BFLOAT16_PATHS",
    "DEFAULT_PATHS",
    "LEVER_PATHS",
    "PATHS",
    "QUICK",
    "BenchConfig",
]

DEFAULT_PATHS = ("kerasbn", "kerasbn-jax", "naive", "naive-same-batch", "torch", "torch-compile")
# Paths that isolate one of kerasbn's levers; run on request (--paths).
LEVER_PATHS = ("kerasbn-unfused", "kerasbn-no-onednn")
# kerasbn and its PyTorch peers in mixed bfloat16 whatever --precision says, so that one
# run times both precisions round by round (on request: --paths kerasbn,kerasbn-bf16,...).
BFLOAT16 = "mixed_bfloat16"
BFLOAT16_PATHS = ("kerasbn-bf16", "torch-bf16", "torch-compile-bf16")
PATHS = DEFAULT_PATHS + LEVER_PATHS + BFLOAT16_PATHS


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

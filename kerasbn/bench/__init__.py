"""Side-by-side training benchmark (``python -m kerasbn.bench``; flags in
:mod:`kerasbn.cli.bench`).

For each data set and variant it times, on the same machine in the same run:

1. ``kerasbn``: kerasbn's own training path (:func:`kerasbn.train`) on the default Keras
   backend (``KERAS_BACKEND``, TensorFlow unless set), and ``kerasbn-jax``: the same path
   on Keras' JAX backend (skipped with a note when JAX is absent); on request
   (``--paths``), ``kerasbn-unfused``: kerasbn's path with Keras' own BN instead of the
   fused kernel (``TrainConfig.fused_bn=False``), to see what fusing is worth;
2. ``naive``: what the tutorials do: the same Keras model, ``model.fit`` on float32
   NumPy arrays with default settings (batch 32, Keras' own shuffling);
3. ``torch``: the same architecture and optimizer in PyTorch eager mode, and
   ``torch-compile``: the same under ``torch.compile`` (inductor; its compile time is
   reported apart, like kerasbn's tracing), both skipped with a note when PyTorch is
   not installed.

Each path runs in its own subprocess, so its peak memory (RSS, and GPU memory where
there is a GPU) is its own and no path warms another's caches. Throughput is
steady state: training images per second over the timed epochs after a warm-up epoch
(median), counting training steps only. The achieved model FLOP/s (3 x the forward
FLOPs per image, the usual forward + backward estimate) is given as a fraction of a
float32 matrix-multiply peak measured in the same run. Validation accuracy after the
timed epochs is printed too, so a speed-up that hurts learning shows. Augmentation is
off in every path: it is a CIFAR-10 training choice, not part of the compute compared.
"""

from __future__ import annotations

import importlib.util
import logging

import pandas as pd

from kerasbn.bench.child import NEEDS, run_child
from kerasbn.bench.config import DEFAULT_PATHS, LEVER_PATHS, PATHS, QUICK, BenchConfig
from kerasbn.bench.measure import bfloat16_matmul_peak, forward_flops, matmul_peak
from kerasbn.bench.table import BenchResult, add_flop_rates, median_rows, ratios, to_markdown

__all__ = [
    "DEFAULT_PATHS",
    "LEVER_PATHS",
    "PATHS",
    "QUICK",
    "BenchConfig",
    "BenchResult",
    "forward_flops",
    "matmul_peak",
    "median_rows",
    "run_benchmark",
    "to_markdown",
]

log = logging.getLogger(__name__)


def run_benchmark(config: BenchConfig) -> BenchResult:
    """Run every path for every data set and variant (``config.repeats`` rounds) and
    return the table of medians, the ratios and the machine's matmul peak."""
    peaks = [matmul_peak()]
    log.info("float32 matmul peak (NumPy BLAS, 2048^3): %.1f GFLOP/s", peaks[0] / 1e9)
    paths, notes = [], []
    for path in config.paths:
        needs = NEEDS.get(path)
        if needs and importlib.util.find_spec(needs) is None:
            notes.append(f"{path}: {needs} is not installed (pip install {needs} to include it)")
            log.info("%s: skipped (%s)", path, notes[-1])
        else:
            paths.append(path)
    rows = []
    for dataset in config.datasets:
        for variant in config.variants:
            # Shared machines drift: alternate the order of the paths between rounds so
            # a slow spell does not land on one path only, and report medians.
            for round_ in range(config.repeats):
                for path in paths if round_ % 2 == 0 else paths[::-1]:
                    out = run_child(path, dataset, variant, config)
                    rows.append(
                        {"dataset": dataset, "variant": variant, "path": path, "round": round_}
                        | out
                    )
                    log.info(
                        f"{dataset} {variant} {path}: {out['images_per_s']:,.0f} img/s, "
                        f"{out['seconds_per_epoch']:.2f} s/epoch, val acc "
                        f"{out['val_accuracy']:.4f}, peak RSS {out['peak_rss_mb']:,.0f} MB"
                    )
    # The peak again at the end: the best of both is the machine's capacity.
    peaks.append(matmul_peak())
    peak = max(peaks)
    log.info("float32 matmul peak at the end: %.1f GFLOP/s", peaks[1] / 1e9)
    raw = pd.DataFrame(rows)
    table = median_rows(raw)
    bfloat16_peak = None
    if (raw.get("precision") == "mixed_bfloat16").any():
        bfloat16_peak = bfloat16_matmul_peak()
        log.info("bfloat16 matmul peak (TensorFlow, 2048^3): %.1f GFLOP/s", bfloat16_peak / 1e9)
    notes += add_flop_rates(table, peak, bfloat16_peak)
    path_ratios = ratios(raw)
    return BenchResult(table, path_ratios, peak, notes, bfloat16_peak, raw)

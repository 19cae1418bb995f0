"""Measurements shared by every path: model FLOPs, the machine's matmul peak, steady-state
throughput and peak memory."""

from __future__ import annotations

import math
import platform
import time
from collections.abc import Sequence

import numpy as np

__all__ = [
    "bfloat16_matmul_peak",
    "forward_flops",
    "gpu_peak_mb",
    "matmul_peak",
    "peak_rss_mb",
    "steady",
]


def forward_flops(model) -> int:
    """Multiply-adds x 2 of one image's forward pass through the conv and dense layers
    (BN, pooling and activations are a few percent and left out)."""
    total = 0
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "Conv2D":
            h, w, c_out = layer.output.shape[1:]
            k_h, k_w, c_in, _ = layer.kernel.shape
            total += 2 * h * w * c_out * k_h * k_w * c_in
        elif kind == "Dense":
            n_in, n_out = layer.kernel.shape
            total += 2 * n_in * n_out
    return int(total)


def matmul_peak(size: int = 2048, repeats: int = 5) -> float:
    """Best float32 matrix-multiply FLOP/s of this machine, through NumPy's BLAS."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    a @ b  # warm-up
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def bfloat16_matmul_peak(size: int = 2048, repeats: int = 5) -> float:
    """Best bfloat16 matrix-multiply FLOP/s of this CPU, through TensorFlow (oneDNN:
    AMX or AVX-512 BF16 where the CPU has them; NumPy has no bfloat16). The yardstick
    of the bfloat16 rows: a float32 peak would flatter them."""
    import tensorflow as tf

    with tf.device("/CPU:0"):
        a = tf.cast(tf.random.stateless_normal((size, size), seed=(0, 1)), tf.bfloat16)
        b = tf.cast(tf.random.stateless_normal((size, size), seed=(0, 2)), tf.bfloat16)
        tf.matmul(a, b).numpy()  # warm-up
        best = math.inf
        for _ in range(repeats):
            start = time.perf_counter()
            tf.matmul(a, b).numpy()
            best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def peak_rss_mb() -> float:
    import resource

    # ru_maxrss is in KiB on Linux, bytes on macOS.
    scale = 1 if platform.system() == "Darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def steady(seconds: Sequence[float], images: int) -> tuple[float, float]:
    """Median seconds per epoch after the warm-up epoch, and images/s from it."""
    timed = list(seconds[1:]) or list(seconds)
    median = float(np.median(timed))
    return median, images / median


def gpu_peak_mb() -> float | None:
    import keras

    if keras.backend.backend() == "jax":
        import jax

        device = jax.devices()[0]
        if device.platform == "gpu":
            stats = device.memory_stats() or {}
            return stats.get("peak_bytes_in_use", 0) / 2**20
    return None

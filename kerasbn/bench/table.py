"""The benchmark's tables: medians over rounds, ratios between paths, Markdown."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

__all__ = ["RATIOS", "BenchResult", "add_flop_rates", "median_rows", "ratios", "to_markdown"]


@dataclass
class BenchResult:
    table: pd.DataFrame
    ratios: pd.DataFrame
    peak_flops: float
    notes: list[str] = field(default_factory=list)
    bfloat16_peak_flops: float | None = None  # measured when a row trained in bfloat16
    raw: pd.DataFrame | None = None  # one row per path and round, before the medians


# (numerator, denominator, what the ratio isolates); shown where both paths ran.
RATIOS = (
    ("kerasbn", "naive", "vs the tutorial path (batch 32, TensorFlow defaults)"),
    ("kerasbn", "naive-same-batch", "vs model.fit at the same batch"),
    ("kerasbn", "torch", "vs PyTorch eager"),
    ("kerasbn", "torch-compile", "vs PyTorch torch.compile"),
    ("torch-compile", "torch", "torch.compile vs PyTorch eager"),
    ("naive-same-batch", "naive", "batch size alone"),
    ("kerasbn", "kerasbn-no-onednn", "oneDNN kernels"),
    ("kerasbn", "kerasbn-unfused", "fused BN kernel"),
    ("kerasbn-jax", "naive", "JAX backend vs the tutorial path"),
    ("kerasbn-jax", "torch", "JAX backend vs PyTorch eager"),
    ("kerasbn-bf16", "kerasbn", "bfloat16 vs float32 (kerasbn)"),
    ("kerasbn-bf16", "torch-bf16", "vs PyTorch eager, both bfloat16"),
    ("kerasbn-bf16", "torch-compile-bf16", "vs PyTorch torch.compile, both bfloat16"),
    ("torch-bf16", "torch", "bfloat16 vs float32 (PyTorch eager)"),
)


def median_rows(raw: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, variant, path): the median of its rounds (and the min and
    max of images/s over them), peak memory max, compile time max (the cold compile:
    later rounds load torch.compile's kernels from inductor's on-disk cache)."""
    keys = ["dataset", "variant", "path"]
    raw = raw.drop(columns="round", errors="ignore")
    grouped = raw.groupby(keys, sort=False)
    table = grouped.median(numeric_only=True)
    table["images_per_s_min"] = grouped["images_per_s"].min()
    table["images_per_s_max"] = grouped["images_per_s"].max()
    for column in ("peak_rss_mb", "gpu_peak_mb", "compile_seconds"):
        if column in raw:
            table[column] = grouped[column].max()
    for column in raw.columns.difference(table.columns).difference(keys):
        table[column] = grouped[column].first()
    table["rounds"] = grouped.size()
    return table.reset_index()


def add_flop_rates(
    table: pd.DataFrame, peak: float, bfloat16_peak: float | None = None
) -> list[str]:
    """Add the model FLOP rate (3 x forward FLOPs x images/s) and its fraction of the
    host's matmul peak in the row's precision (float32 ``peak``; ``bfloat16_peak`` for
    rows that computed in bfloat16) to ``table``; returns the notes the table needs."""
    # FLOPs per image are the model's, the same for every path of a (dataset, variant).
    flops = table.groupby(["dataset", "variant"])["flops_per_image"].transform("max")
    table["model_gflops_per_s"] = 3 * flops * table["images_per_s"] / 1e9
    peaks = pd.Series(peak, index=table.index, dtype=float)
    if bfloat16_peak is not None and "precision" in table:
        peaks[table["precision"] == "mixed_bfloat16"] = bfloat16_peak
    table["fraction_of_matmul_peak"] = table["model_gflops_per_s"] * 1e9 / peaks
    # The NumPy peak is the host CPU's: no yardstick for a path that trained on a GPU.
    on_gpu = table.get("gpu_peak_mb", pd.Series(index=table.index, dtype=float)).notna()
    if not on_gpu.any():
        return []
    table.loc[on_gpu, "fraction_of_matmul_peak"] = float("nan")
    return ["'of matmul peak' is left out for paths on a GPU (the peak is the host CPU's)"]


def ratios(raw: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, variant) and pair of paths: the images/s ratio in each round (both
    paths of a round ran back to back), its median, min and max, and a verdict: ``win``
    when every round is above 1, ``loss`` when every round is below, else ``mixed``."""
    if "round" not in raw:
        raw = raw.assign(round=0)
    wide = raw.pivot_table(
        index=["dataset", "variant", "round"], columns="path", values="images_per_s"
    )
    rows = []
    for ours, other, meaning in RATIOS:
        if ours not in wide or other not in wide:
            continue
        per_round = (wide[ours] / wide[other]).dropna()
        for (dataset, variant), values in per_round.groupby(level=[0, 1], sort=False):
            verdict = "win" if values.min() > 1 else "loss" if values.max() < 1 else "mixed"
            rows.append(
                {
                    "dataset": dataset,
                    "variant": variant,
                    "ratio": f"{ours} / {other}",
                    "measures": meaning,
                    "median": float(values.median()),
                    "min": float(values.min()),
                    "max": float(values.max()),
                    "rounds": len(values),
                    "verdict": verdict,
                }
            )
    columns = ["dataset", "variant", "ratio", "measures", "median", "min", "max", "rounds"]
    return pd.DataFrame(rows, columns=[*columns, "verdict"])


def to_markdown(result: BenchResult) -> str:
    cols = {
        "dataset": "data set",
        "variant": "variant",
        "path": "path",
        "backend": "backend",
        "batch_size": "batch",
        "precision": "precision",
        "images_per_s": "train img/s (median)",
        "images_per_s_min": "min",
        "images_per_s_max": "max",
        "seconds_per_epoch": "s / epoch",
        "compile_seconds": "compile s, cold (not timed)",
        "val_accuracy": "val acc",
        "peak_rss_mb": "peak RSS MB",
        "gpu_peak_mb": "GPU peak MB",
        "model_gflops_per_s": "model GFLOP/s",
        "fraction_of_matmul_peak": "of matmul peak",
        "rounds": "rounds",
    }
    table = result.table[[c for c in cols if c in result.table]].rename(columns=cols)
    fmt = {
        "train img/s (median)": "{:,.0f}",
        "min": "{:,.0f}",
        "max": "{:,.0f}",
        "s / epoch": "{:.2f}",
        "compile s, cold (not timed)": "{:.1f}",
        "val acc": "{:.4f}",
        "peak RSS MB": "{:,.0f}",
        "GPU peak MB": "{:,.0f}",
        "model GFLOP/s": "{:.1f}",
        "of matmul peak": "{:.1%}",
    }
    for col, f in fmt.items():
        if col in table:
            table[col] = [("" if v is None or pd.isna(v) else f.format(v)) for v in table[col]]
    ratios = result.ratios.copy()
    ratios["median"] = ratios["median"].map("{:.2f}x".format)
    ratios["min–max over rounds"] = [
        f"{lo:.2f}–{hi:.2f}x" for lo, hi in zip(ratios.pop("min"), ratios.pop("max"), strict=True)
    ]
    ratios = ratios[
        [
            "dataset",
            "variant",
            "ratio",
            "measures",
            "median",
            "min–max over rounds",
            "rounds",
            "verdict",
        ]
    ]
    lines = [
        table.to_markdown(index=False),
        "",
        ratios.to_markdown(index=False),
        "",
        f"float32 matmul peak: {result.peak_flops / 1e9:.1f} GFLOP/s (NumPy BLAS, 2048^3)",
    ]
    if result.bfloat16_peak_flops is not None:
        lines.append(
            f"bfloat16 matmul peak: {result.bfloat16_peak_flops / 1e9:.1f} GFLOP/s (TensorFlow, "
            "2048^3); the bfloat16 rows' 'of matmul peak' is of this one"
        )
    lines += [f"note: {n}" for n in dict.fromkeys(result.notes)]
    return "\n".join(lines) + "\n"

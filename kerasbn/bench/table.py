"""The benchmark's tables: medians over rounds, ratios between paths, Markdown."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

__all__ = ["BenchResult", "median_rows", "ratios", "to_markdown"]


@dataclass
class BenchResult:
    table: pd.DataFrame
    ratios: pd.DataFrame
    peak_flops: float
    notes: list[str] = field(default_factory=list)


def median_rows(raw: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, variant, path): the median of its rounds, peak memory max."""
    keys = ["dataset", "variant", "path"]
    grouped = raw.groupby(keys, sort=False)
    table = grouped.median(numeric_only=True)
    for column in ("peak_rss_mb", "gpu_peak_mb"):
        if column in raw:
            table[column] = grouped[column].max()
    for column in raw.columns.difference(table.columns).difference(keys):
        table[column] = grouped[column].first()
    table["rounds"] = grouped.size()
    return table.reset_index()


def ratios(table: pd.DataFrame) -> pd.DataFrame:
    wide = table.pivot_table(index=["dataset", "variant"], columns="path", values="images_per_s")
    out = pd.DataFrame(index=wide.index)
    for ours in ("kerasbn", "kerasbn-jax"):
        for other in ("naive", "torch", "kerasbn-unfused"):
            if ours in wide and other in wide:
                out[f"{ours} / {other}"] = wide[ours] / wide[other]
    return out.reset_index()


def to_markdown(result: BenchResult) -> str:
    cols = {
        "dataset": "data set",
        "variant": "variant",
        "path": "path",
        "backend": "backend",
        "batch_size": "batch",
        "precision": "precision",
        "images_per_s": "train img/s",
        "seconds_per_epoch": "s / epoch",
        "val_accuracy": "val acc",
        "peak_rss_mb": "peak RSS MB",
        "gpu_peak_mb": "GPU peak MB",
        "model_gflops_per_s": "model GFLOP/s",
        "fraction_of_matmul_peak": "of matmul peak",
        "rounds": "rounds",
    }
    table = result.table[[c for c in cols if c in result.table]].rename(columns=cols)
    fmt = {
        "train img/s": "{:,.0f}",
        "s / epoch": "{:.2f}",
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
    for col in ratios.columns[2:]:
        ratios[col] = ratios[col].map("{:.2f}x".format)
    lines = [
        table.to_markdown(index=False),
        "",
        ratios.to_markdown(index=False),
        "",
        f"float32 matmul peak: {result.peak_flops / 1e9:.1f} GFLOP/s (NumPy BLAS, 2048^3)",
    ]
    lines += [f"note: {n}" for n in dict.fromkeys(result.notes)]
    return "\n".join(lines) + "\n"

"""The benchmark's performance targets, each marked met or not met from the ratios and
FLOP rates measured in the same run, with the machine and its CPU flags beside them.

A target is judged on the median over rounds (the min over rounds is shown, so a
target met only in some rounds reads as such). A target for a kind of CPU (bfloat16 on
one with AMX units) is still measured elsewhere, but marked as not applying there.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pandas as pd

from kerasbn.bench.table import BenchResult
from kerasbn.training.precision import bfloat16_units, cpu_flags, cpu_model

__all__ = [
    "TARGETS",
    "Target",
    "machine_line",
    "targets_markdown",
    "targets_table",
    "this_machine",
]


@dataclass(frozen=True)
class Target:
    """``ratio`` (``"a / b"``, a row of the ratio table) or, with ``peak_of``, the
    fraction of the matmul peak that path reached, at least ``at_least``, on
    ``dataset``/``variant``; ``needs``: the CPU flag without which it does not apply."""

    dataset: str
    variant: str
    at_least: float
    ratio: str | None = None
    peak_of: str | None = None
    needs: str | None = None

    def words(self) -> str:
        what = self.ratio if self.ratio else f"{self.peak_of} of the matmul peak"
        bound = f"{self.at_least:.0%}" if self.peak_of else f"{self.at_least:g}x"
        return f"{self.dataset} `{self.variant}`: {what} >= {bound}"


_FLOAT32_ROWS = [(d, v) for d in ("mnist", "cifar10") for v in ("base", "bn+dropout")]
TARGETS = (
    Target("cifar10", "bn+dropout", 2.0, ratio="kerasbn-bf16 / kerasbn", needs="amx_bf16"),
    Target("cifar10", "bn+dropout", 1.3, ratio="kerasbn-bf16 / torch-bf16", needs="amx_bf16"),
    Target(
        "cifar10", "bn+dropout", 1.0, ratio="kerasbn-bf16 / torch-compile-bf16", needs="amx_bf16"
    ),
    Target("cifar10", "bn+dropout", 0.30, peak_of="kerasbn-bf16", needs="amx_bf16"),
    *(Target(d, v, 1.0, ratio="kerasbn / torch-compile") for d, v in _FLOAT32_ROWS),
)


def _measured(target: Target, result: BenchResult) -> tuple[float, float] | None:
    """(median, min over rounds) of the target's quantity, or None where not measured."""
    if target.ratio:
        rows = result.ratios[
            (result.ratios["dataset"] == target.dataset)
            & (result.ratios["variant"] == target.variant)
            & (result.ratios["ratio"] == target.ratio)
        ]
        return (float(rows["median"].iloc[0]), float(rows["min"].iloc[0])) if len(rows) else None
    table = result.table
    rows = table[
        (table["dataset"] == target.dataset)
        & (table["variant"] == target.variant)
        & (table["path"] == target.peak_of)
    ]
    if not len(rows) or "fraction_of_matmul_peak" not in rows:
        return None
    fraction = float(rows["fraction_of_matmul_peak"].iloc[0])
    if pd.isna(fraction):
        return None
    # The slowest round's images/s gives the slowest round's fraction.
    low = fraction * float(rows["images_per_s_min"].iloc[0] / rows["images_per_s"].iloc[0])
    return fraction, low


def targets_table(result: BenchResult, flags: frozenset[str] | None = None) -> pd.DataFrame:
    """One row per target whose data set and variant this run measured: what was
    measured, and ``met`` / ``not met`` / ``not measured`` (a path not in the run) /
    ``does not apply`` (a CPU without the target's flag)."""
    flags = cpu_flags() if flags is None else flags
    ran = set(zip(result.table["dataset"], result.table["variant"], strict=True))
    rows = []
    for target in TARGETS:
        if (target.dataset, target.variant) not in ran:
            continue
        found = _measured(target, result)
        if found is None:
            measured, status = "", "not measured (a path is not in --paths)"
        else:
            median, low = found
            fmt = "{:.1%}" if target.peak_of else "{:.2f}x"
            measured = f"{fmt.format(median)} (slowest round {fmt.format(low)})"
            status = "met" if median >= target.at_least else "not met"
            if target.needs and target.needs not in flags:
                status = f"does not apply here (no {target.needs}); {status} on this CPU"
        rows.append({"target": target.words(), "measured": measured, "status": status})
    return pd.DataFrame(rows, columns=["target", "measured", "status"])


def this_machine() -> dict:
    """The CPU a benchmark ran on, as its record keeps it: model, cores, bfloat16 flags."""
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "bfloat16_flags": bfloat16_units()}


def machine_line(machine: dict | None = None) -> str:
    """The CPU, its core count and its bfloat16 flags (default: this machine's)."""
    machine = this_machine() if machine is None else machine
    units = ", ".join(machine["bfloat16_flags"]) or "none"
    return f"machine: {machine['cpu']}, {machine['cores']} cores; CPU bfloat16 flags: {units}"


def targets_markdown(result: BenchResult, machine: dict | None = None) -> str:
    """The targets section of the benchmark's output for a run on ``machine`` (default:
    this one); "" when no target's data set and variant ran."""
    machine = this_machine() if machine is None else machine
    table = targets_table(result, frozenset(machine["bfloat16_flags"]))
    if table.empty:
        return ""
    return (
        "Targets (median over rounds):\n\n"
        f"{table.to_markdown(index=False)}\n\n{machine_line(machine)}\n"
    )

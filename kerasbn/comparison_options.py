"""The options of a comparison that change its variants (synchronized or Ghost BN),
their settings (tuned values) or how its runs are spread (``--jobs``, ``--threads``),
checked before anything is loaded or trained."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace

from kerasbn.training import TrainConfig, batch_plan
from kerasbn.training.precision import on_gpu, resolve_precision
from kerasbn.training.threads import available_cores
from kerasbn.tuning.space import apply_params
from kerasbn.variants import Variant

__all__ = [
    "MAX_JOBS",
    "check_jobs",
    "check_tuned",
    "choose_precision",
    "distribution_record",
    "with_bn_options",
]

log = logging.getLogger(__name__)

MAX_JOBS = 256  # worker processes at once; more is a typo, not a machine


def with_bn_options(
    variants: Sequence[Variant], *, sync_bn: bool = False, ghost_batch: int | None = None
) -> list[Variant]:
    """``variants`` with ``--sync-bn`` / ``--ghost-batch`` put into their BN layers."""
    variants = list(variants)
    if sync_bn and ghost_batch is not None:
        raise ValueError(
            "--sync-bn normalizes over the global batch and --ghost-batch over sub-batches "
            f"of each replica's; choose one. Received: --sync-bn and --ghost-batch {ghost_batch}"
        )
    if sync_bn:
        variants = [replace(v, sync_bn=True) for v in variants]
    if ghost_batch is not None and (not isinstance(ghost_batch, int) or ghost_batch < 2):
        raise ValueError(
            "--ghost-batch N normalizes each run of N examples by their own mean and "
            f"variance; N must be at least 2. Received: {ghost_batch!r}"
        )
    if ghost_batch is not None and not any(v.uses_bn for v in variants):
        raise ValueError(
            "--ghost-batch changes how BN layers normalize, and none of these variants has "
            f"BN; add a BN variant (e.g. bn) or drop it. Received: "
            f"{', '.join(v.name for v in variants)}"
        )
    if ghost_batch is not None:
        # Variant checks the size; variants without BN have nothing to normalize.
        variants = [replace(v, ghost_batch=ghost_batch) if v.uses_bn else v for v in variants]
    return variants


def check_tuned(
    tuned: Mapping | None, variants: Sequence[Variant], config: TrainConfig
) -> dict | None:
    """``tuned`` as plain JSON values, after checking that every name is a compared
    variant and every value a valid setting (before any training)."""
    if not tuned:
        return None
    names = {v.name: v for v in variants}
    plain = {}
    for name, params in tuned.items():
        if name not in names:
            raise ValueError(
                f"Tuned values are given for {name!r}, which is not compared; compared are "
                f"{', '.join(names)}. Received: {sorted(tuned)}"
            )
        apply_params(config, names[name], params)  # raises on an unknown or bad value
        plain[name] = {k: v.item() if hasattr(v, "item") else v for k, v in params.items()}
    return plain


def _count(value, flag: str, most: int, example: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
        raise ValueError(
            f"{flag} must be a whole number from 1 to {most} (e.g. {flag} {example}). "
            f"Received: {value!r}"
        )
    return value


def check_jobs(jobs, threads, strategy: str = "auto") -> tuple[int, int | None]:
    """``--jobs`` and ``--threads`` checked, with the threads per run filled in: with
    several jobs, this machine's cores shared among them (at least one each)."""
    jobs = _count(jobs, "--jobs", MAX_JOBS, "2")
    if jobs > 1 and strategy in ("mirrored", "multiworker"):
        raise ValueError(
            f"--jobs {jobs} trains each run on one device; --strategy {strategy} spreads one "
            "run over several. Pass --jobs 1, or --strategy default. Received: "
            f"--jobs {jobs} --strategy {strategy}"
        )
    if threads is not None:
        threads = _count(threads, "--threads", 4096, "1")
    elif jobs > 1:
        threads = max(1, available_cores() // jobs)
    return jobs, threads


def distribution_record(placement, config: TrainConfig) -> dict:
    """How the run is spread and what that does to batch and learning rate (printed and
    stored in config.json)."""
    plan = batch_plan(config, placement.replicas)
    summary = (
        f"strategy {placement.strategy} ({placement.backend}): {placement.replicas} "
        f"replica(s) in {placement.processes} process(es); global batch {plan.global_batch} = "
        f"{config.batch_size} per replica x {placement.replicas}; learning rate {plan.lr_rule}"
    )
    return {
        **placement.describe(),
        "per_replica_batch": plan.per_replica_batch,
        "global_batch": plan.global_batch,
        "learning_rate": plan.learning_rate,
        "lr_rule": plan.lr_rule,
        "drop_remainder": plan.drop_remainder,
        "summary": summary,
    }


def choose_precision(config: TrainConfig) -> tuple[TrainConfig, dict]:
    """``config`` with ``precision="auto"`` resolved for this machine (so config.json
    and a resume compare the precision the runs use), and the choice with its reason
    and the CPU's bfloat16 flags (stored in config.json). Call after the placement is
    resolved: it asks the backend for a GPU."""
    choice = resolve_precision(config.precision, gpu=on_gpu())
    units = ", ".join(choice.cpu_bfloat16_units) or "none"
    log.info("precision %s (%s; CPU bfloat16 units: %s)", choice.precision, choice.why, units)
    return replace(config, precision=choice.precision), choice.to_dict()

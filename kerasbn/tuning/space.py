"""What a tune may change: the nuisance hyperparameters, their ranges per data set, and
how a trial's values become a training config and a variant.

The tuning playbook (Godbole et al., 2023) separates *scientific* hyperparameters, whose
effect a study measures (here: BN and Dropout, i.e. the variant), from *nuisance* ones,
which must be re-tuned for each value of the scientific ones before they are compared.
This module names the nuisance ones kerasbn can tune:

=========  ====================================  =========================================
name       what it sets                          scale
=========  ====================================  =========================================
lr         ``TrainConfig.learning_rate``          log
wd         ``TrainConfig.weight_decay``           log
dropout    the variant's block and head rates     linear (variants with Dropout only)
warmup     ``TrainConfig.warmup_epochs``          whole epochs
ls         ``TrainConfig.label_smoothing``        linear
batch      ``TrainConfig.batch_size``             powers of two between the bounds
=========  ====================================  =========================================

The default ranges of each data set live in :mod:`kerasbn.presets` (``search_space``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from kerasbn.presets import get_preset
from kerasbn.registry import unknown_name
from kerasbn.variants import Variant

if TYPE_CHECKING:  # the config module imports Keras; --help must not wait for it
    from kerasbn.training import TrainConfig

__all__ = [
    "DEFAULT_TUNE",
    "HYPERPARAMETERS",
    "INTEGER_PARAMS",
    "Range",
    "apply_params",
    "parse_ranges",
    "parse_tune",
    "range_of",
    "search_space",
    "suggest",
]

# Each name -> the Optuna parameter(s) it samples and how.
HYPERPARAMETERS = ("lr", "wd", "dropout", "warmup", "ls", "batch")
DEFAULT_TUNE = ("lr", "wd")
_LOG = {"lr", "wd", "batch"}
_INTEGER = {"warmup", "batch"}
# Optuna parameter names: the TrainConfig / Variant field each sets.
_CONFIG_FIELDS = {
    "learning_rate": "lr",
    "weight_decay": "wd",
    "warmup_epochs": "warmup",
    "label_smoothing": "ls",
    "batch_size": "batch",
}
_VARIANT_FIELDS = {"block_dropout": "dropout", "head_dropout": "dropout"}
INTEGER_PARAMS = frozenset({"warmup_epochs", "batch_size"})
# Values a field must stay inside whatever range a user asks for (TrainConfig's checks).
_LIMITS = {
    "lr": (0.0, math.inf),
    "wd": (0.0, 1.0),
    "dropout": (0.0, 1.0),
    "warmup": (0, 1000),
    "ls": (0.0, 1.0),
    "batch": (1, 1 << 16),
}
# Where the best value counts as "at the edge": the outer 5% of the (log) range.
EDGE_FRACTION = 0.05


@dataclass(frozen=True)
class Range:
    """A search range: ``low`` to ``high``, sampled on a log scale when ``log``."""

    name: str
    low: float
    high: float
    log: bool = False
    integer: bool = False

    def __post_init__(self) -> None:
        floor, ceiling = _LIMITS[self.name]
        if not self.low < self.high:
            raise ValueError(
                f"The range of {self.name!r} must have low < high; pass e.g. "
                f"--range {self.name}=<low>:<high>. Received: {self.low:g}:{self.high:g}"
            )
        if self.low < floor or self.high > ceiling or (self.log and self.low <= 0):
            bounds = f"({floor:g}, {ceiling:g})" if self.log else f"[{floor:g}, {ceiling:g}]"
            raise ValueError(
                f"The range of {self.name!r} must lie inside {bounds}. "
                f"Received: {self.low:g}:{self.high:g}"
            )

    def position(self, value: float) -> float:
        """Where ``value`` lies in the range, 0 at ``low`` to 1 at ``high`` (log scale when
        the range is sampled so)."""
        if self.log:
            return math.log(value / self.low) / math.log(self.high / self.low)
        return (value - self.low) / (self.high - self.low)

    def edge(self, value: float) -> str | None:
        """``"low"`` / ``"high"`` when ``value`` is in the range's outer 5% on that side."""
        where = self.position(value)
        if where <= EDGE_FRACTION:
            return "low"
        if where >= 1 - EDGE_FRACTION:
            return "high"
        return None

    def to_dict(self) -> dict:
        return {"low": self.low, "high": self.high, "log": self.log, "integer": self.integer}


def parse_tune(spec: str | Iterable[str]) -> tuple[str, ...]:
    """``"lr,wd"`` -> ``("lr", "wd")``; an unknown name lists the valid ones."""
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    names = [name.strip() for name in names if name.strip()]
    if not names:
        raise ValueError(
            f"--tune needs at least one hyperparameter, e.g. --tune lr,wd. Valid ones are: "
            f"{', '.join(HYPERPARAMETERS)}. Received: {spec!r}"
        )
    for name in names:
        if name not in HYPERPARAMETERS:
            raise unknown_name("hyperparameter to tune", HYPERPARAMETERS, name)
    return tuple(dict.fromkeys(names))


def parse_ranges(specs: Iterable[str]) -> dict[str, tuple[float, float]]:
    """``["lr=1e-4:1e-2"]`` -> ``{"lr": (1e-4, 1e-2)}`` (checked again by :class:`Range`)."""
    ranges = {}
    for spec in specs:
        name, sep, bounds = spec.partition("=")
        low, colon, high = bounds.partition(":")
        name = name.strip()
        if not sep or not colon:
            raise ValueError(
                f"--range takes NAME=LOW:HIGH, e.g. --range lr=1e-4:1e-2. Received: {spec!r}"
            )
        if name not in HYPERPARAMETERS:
            raise unknown_name("hyperparameter in --range", HYPERPARAMETERS, name)
        try:
            ranges[name] = (float(low), float(high))
        except ValueError:
            raise ValueError(
                f"--range {name} needs two numbers, e.g. {name}=1e-4:1e-2. Received: {spec!r}"
            ) from None
        if not all(math.isfinite(v) for v in ranges[name]):
            raise ValueError(f"--range {name} needs finite numbers. Received: {spec!r}")
    return ranges


def search_space(
    dataset: str,
    names: Iterable[str] = DEFAULT_TUNE,
    ranges: Mapping[str, tuple[float, float]] | None = None,
) -> dict[str, Range]:
    """The :class:`Range` of each name in ``names``: the data set's preset, or ``ranges``.

    A range given for a name that is not tuned is refused (it would silently do nothing).
    """
    names = parse_tune(names)
    ranges = dict(ranges or {})
    unused = sorted(set(ranges) - set(names))
    if unused:
        raise ValueError(
            f"--range {unused[0]} is given but {unused[0]!r} is not tuned; add it to --tune "
            f"({','.join(names)},{unused[0]}) or drop the range. Received: --tune {','.join(names)}"
        )
    preset = get_preset(dataset).search_space
    space = {}
    for name in names:
        low, high = ranges.get(name, preset[name])
        space[name] = Range(name, low, high, log=name in _LOG, integer=name in _INTEGER)
    return space


def _batch_choices(span: Range) -> list[int]:
    low = max(0, math.ceil(math.log2(span.low)))
    choices = [1 << k for k in range(low, int(math.log2(span.high)) + 1)]
    if not choices:
        raise ValueError(
            f"The batch range {span.low:g}:{span.high:g} holds no power of two; widen it."
        )
    return choices


def suggest(trial, space: Mapping[str, Range], variant: Variant) -> dict[str, float | int]:
    """Sample one trial's values (Optuna parameter names: ``learning_rate``, ...,
    ``block_dropout``); ``dropout`` samples only the rates the variant has."""
    params: dict[str, float | int] = {}
    for name, span in space.items():
        if name == "dropout":
            for field_name in _VARIANT_FIELDS:
                if getattr(variant, field_name) > 0:
                    params[field_name] = trial.suggest_float(field_name, span.low, span.high)
        elif name == "batch":
            params["batch_size"] = trial.suggest_categorical("batch_size", _batch_choices(span))
        elif span.integer:
            field_name = _field(name)
            params[field_name] = trial.suggest_int(field_name, int(span.low), int(span.high))
        else:
            field_name = _field(name)
            params[field_name] = trial.suggest_float(field_name, span.low, span.high, log=span.log)
    return params


def _field(name: str) -> str:
    return next(field for field, short in _CONFIG_FIELDS.items() if short == name)


def range_of(param: str, space: Mapping[str, Range]) -> Range:
    """The range an Optuna parameter (``learning_rate``, ``head_dropout``, ...) came from."""
    return space[{**_CONFIG_FIELDS, **_VARIANT_FIELDS}[param]]


def apply_params(
    config: TrainConfig, variant: Variant, params: Mapping[str, float | int]
) -> tuple[TrainConfig, Variant]:
    """``config`` and ``variant`` with a trial's (or the tuned) values put in."""
    config_values = {k: v for k, v in params.items() if k in _CONFIG_FIELDS}
    variant_values = {k: v for k, v in params.items() if k in _VARIANT_FIELDS}
    unknown = set(params) - set(config_values) - set(variant_values)
    if unknown:
        raise ValueError(f"Not a tunable setting: {sorted(unknown)}. Received: {dict(params)}")
    for key in INTEGER_PARAMS:
        if key in config_values:
            config_values[key] = int(config_values[key])
    return replace(config, **config_values), replace(variant, **variant_values)

"""Named BatchNorm experiments: classic tutorial studies reproduced on real data.

    python -m kerasbn.experiments list
    python -m kerasbn.experiments run NAME [--quick] [--out DIR] [--data-dir DIR]

Each run writes ``summary.csv``, ``summary.md``, ``config.json``, ``history.csv`` and its
figure(s) into the output folder. ``--quick`` shrinks the run for tests.

Output folders follow the comparison's protocol (:mod:`kerasbn.runfolder`): one writer
per folder, a finished folder or one started with other settings is refused, each
finished unit (version and seed) is recorded under ``units/`` so a killed experiment
resumes where it stopped when the same command runs again, and ``complete.json`` is
written last.
"""

from __future__ import annotations

import importlib
import logging
import math
import os
import shutil
from dataclasses import MISSING, asdict, dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING

from kerasbn._io import check_output_folder
from kerasbn._versions import run_record
from kerasbn.registry import Registry
from kerasbn.runfolder import ResumeRule, RunFolder, default_out_dir

if TYPE_CHECKING:
    from kerasbn.experiments._common import ExperimentResult


def __getattr__(name: str):
    # The shared experiment code imports Keras: loaded with the first experiment run,
    # not by `experiments list` or --help.
    if name == "ExperimentResult":
        from kerasbn.experiments._common import ExperimentResult

        return ExperimentResult
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "EXPERIMENTS",
    "RESUME_RULE",
    "Experiment",
    "ExperimentResult",
    "get_experiment",
    "list_experiments",
    "parse_overrides",
    "run_experiment",
]


@dataclass(frozen=True)
class Experiment:
    """A named experiment: the claim it checks and the module that runs it."""

    name: str
    claim: str
    module: str  # kerasbn.experiments.<module> defines Config, QUICK and run()
    needs_data: tuple[str, ...] = ()

    def load(self):
        return importlib.import_module(f"kerasbn.experiments.{self.module}")


log = logging.getLogger(__name__)

# An experiment's folder resumes only with the same experiment and settings.
RESUME_RULE = ResumeRule(keys=("experiment", "config"))

EXPERIMENTS: Registry[Experiment] = Registry("experiment")
for _experiment in (
    Experiment(
        "breast-cancer-mlp",
        "BN on raw, unscaled inputs lets plain SGD learn "
        "(tutorial: 61.4% val without BN, 99.1% with)",
        "breast_cancer",
    ),
    Experiment(
        "init-scale-sweep",
        "with BN an MLP trains across weight scales from 1 to "
        "1e-4; without BN it stalls at large and small scales",
        "init_scale",
        ("mnist",),
    ),
    Experiment(
        "cifar10-cnn",
        "BN and Dropout in the plain Keras CIFAR-10 CNN (tutorial: "
        "77.9% val after 10 epochs with both)",
        "cifar10_cnn",
        ("cifar10",),
    ),
    Experiment(
        "numpy-reference",
        "BN written in NumPy matches Keras' forward and backward pass, and trains the same MLP",
        "numpy_bn",
    ),
    Experiment(
        "ioffe-szegedy-mnist",
        "Ioffe & Szegedy 2015, figure 1: with BN the MNIST sigmoid MLP reaches higher test "
        "accuracy sooner, and a sigmoid's input distribution stays stable over training",
        "ioffe_szegedy",
        ("mnist",),
    ),
    Experiment(
        "corruption-robustness",
        "Hendrycks & Dietterich 2019; Schneider et al. 2020: common corruptions cut a "
        "CIFAR-10 net's accuracy, and re-estimating BN's statistics on the corrupted "
        "images (no labels) wins much of it back",
        "corruption",
        ("cifar10",),
    ),
    Experiment(
        "lr-robustness",
        "Ioffe & Szegedy 2015; Bjorck et al. 2018: BN's main benefit is that it lets a net "
        "train at much larger learning rates",
        "lr_robustness",
        ("mnist",),
    ),
    Experiment(
        "batch-size",
        "Wu & Johnson 2021; Summers & Dinneen 2020: BN fails at very small batches, "
        "population statistics repair part of it, and Ghost BN helps at large batches",
        "batch_size",
        ("mnist",),
    ),
    Experiment(
        "smoothness",
        "Santurkar et al. 2018: BN makes the loss landscape smoother: the loss and its "
        "gradient change less along the gradient, and the effective beta-smoothness is lower",
        "smoothness",
        ("cifar10",),
    ),
    Experiment(
        "mnist-mlp",
        "BN in a small MNIST MLP: training vs inference mode, train and test curves",
        "mnist_mlp",
        ("mnist",),
    ),
):
    EXPERIMENTS.register(_experiment.name, _experiment)


def list_experiments() -> list[str]:
    return EXPERIMENTS.names()


def get_experiment(name: str) -> Experiment:
    """The :class:`Experiment` called ``name`` (a ValueError listing valid names if unknown)."""
    return EXPERIMENTS.lookup(name)


def _parse(text: str, default, annotation: str):
    if text.lower() == "none" and (default is None or "None" in annotation):
        return None
    if isinstance(default, tuple):
        kind = type(default[0]) if default else str
        return tuple(kind(part) for part in text.split(",") if part)
    if isinstance(default, bool):
        if text.lower() not in ("true", "false", "1", "0"):
            raise ValueError(f"expected true or false. Received: {text!r}")
        return text.lower() in ("true", "1")
    if default is None:  # an optional field: its annotation names the type
        kind = int if "int" in annotation else float if "float" in annotation else str
        return kind(text)
    return type(default)(text)


def parse_overrides(name: str, assignments: list[str]) -> dict:
    """``["epochs=3", "variants=base,bn"]`` as typed fields of experiment ``name``'s
    config (the type of each field's default; a comma list for tuples; ``none``)."""
    config_fields = {f.name: f for f in fields(get_experiment(name).load().Config)}
    overrides = {}
    for assignment in assignments:
        key, sep, text = assignment.partition("=")
        if not sep or key not in config_fields:
            raise ValueError(
                f"--set takes FIELD=VALUE with a field of {name}'s config: "
                f"{', '.join(config_fields)}. Received: {assignment!r}"
            )
        field = config_fields[key]
        default = field.default if field.default is not MISSING else None
        try:
            overrides[key] = _parse(text, default, str(field.type))
        except ValueError as exc:
            raise ValueError(f"--set {key}: {exc}. Received: {text!r}") from None
        values = overrides[key] if isinstance(overrides[key], tuple) else (overrides[key],)
        for value in values:
            _check_value(key, value, text)
    return overrides


# Bounds of --set values by what the field is: checked before anything is written, so a
# value that cannot train (epochs=0, a NaN rate, a net too large to allocate) is refused
# with its range instead of failing mid-run.
_POSITIVE = ("learning_rate", "lr_min", "lr_max", "epsilon", "tolerance", "init_stddev")
_UNIT_INTERVAL = ("momentum", "bn_momentum", "val_fraction")
_SEEDS = ("seed", "split_seed")
# Counts where 0 means something: no source weight (Schneider et al.'s N = 0), all the
# held-out target images (n = 0), no FrozenBN epochs.
_FROM_ZERO = ("mixing_sources", "mixing_targets", "frozen_epochs")
MAX_COUNT = 100_000  # images, epochs, steps, batch sizes
MAX_UNITS = 8_192  # a hidden layer's width: 8,192 x 3,072 CIFAR-10 inputs is 100 MB


def _check_value(key: str, value, text: str) -> None:
    if value is None or isinstance(value, bool | str):
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"--set {key} must be a finite number. Received: {text!r}")
    if key in _POSITIVE and not value > 0:
        raise ValueError(f"--set {key} must be greater than 0. Received: {text!r}")
    if key in _UNIT_INTERVAL and not 0 <= value < 1:
        raise ValueError(f"--set {key} must be in [0, 1). Received: {text!r}")
    if isinstance(value, int):
        low, high = (0, 2**31 - 1) if key in _SEEDS else (0 if key in _FROM_ZERO else 1, MAX_COUNT)
        if key.startswith("hidden_units"):
            high = MAX_UNITS
        if not low <= value <= high:
            raise ValueError(
                f"--set {key} must be a whole number from {low} to {high:,}. Received: {text!r}"
            )


def run_experiment(
    name: str,
    *,
    quick: bool = False,
    out_dir: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    **overrides,
) -> ExperimentResult:
    """Run one experiment and write its table, figure(s) and resolved config.

    Args:
        name: one of :func:`list_experiments`.
        quick: the shrunken settings the tests use.
        out_dir: output folder (default ``runs/experiments/<time>-<name>``).
        data_dir: local data folder (default ``KERASBN_DATA_DIR`` / tensorflow-datasets).
        overrides: fields of the experiment's config, e.g. ``seeds=3``.
    """
    experiment = get_experiment(name)
    module = experiment.load()
    config = module.Config()
    if quick:
        config = replace(config, **module.QUICK)
    config = replace(config, **overrides)
    out_dir = Path(out_dir) if out_dir is not None else default_out_dir(name, "runs/experiments")
    check_output_folder(out_dir, "--out")
    settings = {"experiment": name, "config": asdict(config)}
    record = run_record("kerasbn.experiments")
    with RunFolder(out_dir, RESUME_RULE).open(settings, record) as folder:
        if folder.resuming:
            log.info("resuming the unfinished experiment in %s", out_dir)
        result = module.run(config, out_dir, data_dir)
        shutil.rmtree(out_dir / "backup", ignore_errors=True)
        # Written last: its presence says every file above is final.
        folder.complete({"figures": [str(f) for f in result.figures]})
    return result

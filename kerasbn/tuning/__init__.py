"""Per-variant tuning of the nuisance hyperparameters, so that a comparison judges each
variant at its own best recipe (the tuning playbook's scientific vs nuisance split).

* :mod:`~kerasbn.tuning.space`: what may be tuned, the ranges, applying a trial's values;
* :mod:`~kerasbn.tuning.study`: Optuna studies (storage, trials, pruning, resuming);
* :mod:`~kerasbn.tuning.report`: the trial table, chosen values, isolation plots;
* :mod:`~kerasbn.tuning.run`: :func:`tune` and :func:`work`, behind ``python -m kerasbn.tune``.
"""

from kerasbn.tuning.space import (
    DEFAULT_TUNE,
    HYPERPARAMETERS,
    Range,
    apply_params,
    parse_ranges,
    parse_tune,
    search_space,
)

__all__ = [
    "DEFAULT_TUNE",
    "HYPERPARAMETERS",
    "Range",
    "TuneResult",
    "apply_params",
    "load_tuning",
    "parse_ranges",
    "parse_tune",
    "search_space",
    "tune",
    "work",
]

_RUN_NAMES = ("TuneResult", "load_tuning", "tune", "work")


def __getattr__(name: str):
    # Optuna is imported on first use: `compare` reads only the space module.
    if name in _RUN_NAMES:
        from kerasbn.tuning import run

        return getattr(run, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

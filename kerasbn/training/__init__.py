"""Training one variant: settings, the feed, callbacks, the loop, and where it runs.

* :mod:`~kerasbn.training.options`: the settings' choices (no Keras);
* :mod:`~kerasbn.training.config`: :class:`TrainConfig`, defaults, learning-rate rules;
* :mod:`~kerasbn.training.batches`: :class:`EpochBatches` and its ``tf.data`` feed;
* :mod:`~kerasbn.training.callbacks`: timer, random streams, log, checkpoint, divergence;
* :mod:`~kerasbn.training.loop`: :func:`train` and :func:`evaluate`;
* :mod:`~kerasbn.training.distribute`: one device, several, or several machines.
"""

import importlib

# The public names and their modules, imported on first use (PEP 562): the settings'
# choices (options) load without Keras, so command lines list them in --help quickly.
_EXPORTS = {
    "kerasbn.training.batches": ["EpochBatches"],
    "kerasbn.training.callbacks": [
        "DIVERGED_LOSS",
        "DivergedError",
        "EpochLog",
        "EpochRandomness",
        "EpochTimer",
        "LogProgress",
        "ResumableBackup",
        "StopOnDivergence",
        "StopOnSignal",
    ],
    "kerasbn.training.options": ["EPOCH_COLUMNS", "LR_SCALING_RULES", "OPTIMIZERS", "PRECISIONS"],
    "kerasbn.training.config": [
        "BatchPlan",
        "SmoothedSparseCrossentropy",
        "TrainConfig",
        "batch_plan",
        "compile_classifier",
        "default_config",
        "learning_rate_schedule",
        "scaled_learning_rate",
    ],
    "kerasbn.training.loop": [
        "TrainResult",
        "class_ids",
        "evaluate",
        "get_strategy",
        "predict_test_classes",
        "predict_test_probabilities",
        "set_determinism",
        "train",
    ],
}
_HOME = {name: module for module, names in _EXPORTS.items() for name in names}


def __getattr__(name: str):
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module 'kerasbn.training' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "DIVERGED_LOSS",
    "EPOCH_COLUMNS",
    "LR_SCALING_RULES",
    "OPTIMIZERS",
    "PRECISIONS",
    "BatchPlan",
    "DivergedError",
    "EpochBatches",
    "EpochLog",
    "EpochRandomness",
    "EpochTimer",
    "LogProgress",
    "ResumableBackup",
    "SmoothedSparseCrossentropy",
    "StopOnDivergence",
    "StopOnSignal",
    "TrainConfig",
    "TrainResult",
    "batch_plan",
    "compile_classifier",
    "default_config",
    "evaluate",
    "get_strategy",
    "learning_rate_schedule",
    "class_ids",
    "predict_test_classes",
    "predict_test_probabilities",
    "scaled_learning_rate",
    "set_determinism",
    "train",
]

"""Training one variant: settings, the feed, callbacks, the loop, and where it runs.

* :mod:`~kerasbn.training.config`: :class:`TrainConfig`, defaults, learning-rate rules;
* :mod:`~kerasbn.training.batches`: :class:`EpochBatches` and its ``tf.data`` feed;
* :mod:`~kerasbn.training.callbacks`: timer, random streams, log, checkpoint, divergence;
* :mod:`~kerasbn.training.loop`: :func:`train` and :func:`evaluate`;
* :mod:`~kerasbn.training.distribute`: one device, several, or several machines.
"""

from kerasbn.training.batches import EpochBatches
from kerasbn.training.callbacks import (
    DIVERGED_LOSS,
    EPOCH_COLUMNS,
    DivergedError,
    EpochLog,
    EpochRandomness,
    EpochTimer,
    LogProgress,
    ResumableBackup,
    StopOnDivergence,
    StopOnSignal,
)
from kerasbn.training.config import (
    LR_SCALING_RULES,
    OPTIMIZERS,
    PRECISIONS,
    BatchPlan,
    SmoothedSparseCrossentropy,
    TrainConfig,
    batch_plan,
    compile_classifier,
    default_config,
    learning_rate_schedule,
    scaled_learning_rate,
)
from kerasbn.training.loop import (
    TrainResult,
    class_ids,
    evaluate,
    get_strategy,
    predict_test_classes,
    predict_test_probabilities,
    set_determinism,
    train,
)

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

"""The choices of the training settings, as plain tuples: what the command lines offer
(``--optimizer``, ``--strategy``, ...) and :class:`~kerasbn.training.TrainConfig` checks;
and the columns of a run's per-epoch log, which the tables read.

Kept apart from the modules that use them, which import Keras, so that a command's
``--help`` lists them without starting TensorFlow.
"""

__all__ = [
    "EPOCH_COLUMNS",
    "LR_SCALING_RULES",
    "LR_SCHEDULES",
    "OPTIMIZERS",
    "PRECISIONS",
    "STRATEGIES",
]

OPTIMIZERS = ("adam", "sgd")
LR_SCHEDULES = ("cosine", "constant")
LR_SCALING_RULES = ("auto", "none", "linear", "sqrt")
# Keras dtype policies: mixed ones compute in 16 bits with float32 weights; Keras' BN
# upcasts to float32 for its statistics, and the softmax head stays float32.
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
# Where a run goes (kerasbn.training.distribute): one device, this machine's devices, or
# several machines.
STRATEGIES = ("auto", "default", "mirrored", "multiworker")

# Columns of TrainResult.history (and of logs/<run>.csv), one row per epoch.
EPOCH_COLUMNS = [
    "epoch",
    "loss",
    "accuracy",
    "val_loss",
    "val_accuracy",
    "seconds",
    "train_seconds",
]

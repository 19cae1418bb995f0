"""The diagnostics every comparison run reports next to its test accuracy (columns of
``runs.csv``): calibration of its test probabilities and, for BN variants, the test
accuracy with precise BN statistics in place of the moving averages."""

from __future__ import annotations

import logging
import math

import numpy as np

from kerasbn.diagnostics.calibration import calibration_scores
from kerasbn.diagnostics.precise_bn import recalibrate_bn

__all__ = ["DIAGNOSTIC_COLUMNS", "PRECISE_BN_BATCHES", "run_diagnostics"]

log = logging.getLogger(__name__)

DIAGNOSTIC_COLUMNS = ("ece", "nll", "brier", "test_accuracy_precise_bn")
# 200 batches of 256 = 51,200 training images: all of MNIST's and CIFAR-10's training
# split but a few thousand; one inference-cost pass, a few percent of a run.
PRECISE_BN_BATCHES = 200


def run_diagnostics(result, data, probabilities: np.ndarray) -> dict[str, float]:
    """Calibration of ``probabilities`` (test set, in order) and, when the model has BN
    and trained on one replica, the precise-BN test accuracy (NaN otherwise)."""
    from kerasbn.training import compile_classifier, evaluate

    scores = calibration_scores(probabilities, data.y_test[: len(probabilities)])
    scores["test_accuracy_precise_bn"] = math.nan
    if result.variant.batch_norm and result.replicas == 1:
        precise = recalibrate_bn(
            result.inference_model(), data.x_train, batch_size=256, num_batches=PRECISE_BN_BATCHES
        )
        compile_classifier(precise, "sgd")
        scores["test_accuracy_precise_bn"] = evaluate(precise, data)["test_accuracy"]
        log.info(
            "%s-%s: precise-BN test accuracy %.2f%%",
            data.name,
            result.variant.name,
            100 * scores["test_accuracy_precise_bn"],
        )
    return scores

"""The diagnostics every comparison run reports next to its test accuracy (columns of
``runs.csv``): calibration of its test probabilities, raw and after temperature scaling
fitted on the validation split, and, for BN variants, the test accuracy with precise BN
statistics in place of the moving averages (gathered with augmentation and Dropout off,
and again with both on, as in training) and the largest train/inference variance shift
of a BN layer."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import keras
import numpy as np

from kerasbn.diagnostics.calibration import (
    calibration_scores,
    expected_calibration_error,
    fit_temperature,
    scale_temperature,
)
from kerasbn.diagnostics.precise_bn import has_randomness, recalibrate_bn
from kerasbn.diagnostics.variance_shift import variance_shift

__all__ = [
    "DIAGNOSTIC_COLUMNS",
    "PRECISE_BN_BATCHES",
    "VARIANCE_SHIFT_IMAGES",
    "RunDiagnostics",
    "run_diagnostics",
]

log = logging.getLogger(__name__)

DIAGNOSTIC_COLUMNS = (
    "ece",
    "nll",
    "brier",
    "temperature",
    "ece_temperature_scaled",
    "test_accuracy_precise_bn",
    "test_accuracy_precise_bn_as_trained",
    "variance_shift",
)
# 200 batches of 256 = 51,200 training images: all of MNIST's and CIFAR-10's training
# split but a few thousand; one inference-cost pass, a few percent of a run.
PRECISE_BN_BATCHES = 200
# Validation images the variance shift is measured on (all 5,000 of MNIST's and CIFAR-10's).
VARIANCE_SHIFT_IMAGES = 5000


@dataclass
class RunDiagnostics:
    """``scores``: the :data:`DIAGNOSTIC_COLUMNS` of one run; ``variance_shift``: one
    row per BN layer (``layer``, ``mean_shift``, ``max_shift``); ``precise_model``: the
    net with precise BN statistics (``None`` without BN)."""

    scores: dict[str, float]
    variance_shift: list[dict] = field(default_factory=list)
    precise_model: keras.Model | None = None


def _temperature_scores(model, data, probabilities: np.ndarray) -> dict[str, float]:
    """T fitted on the validation images' probabilities, and the test ECE after it."""
    from dataclasses import replace

    from kerasbn.training import predict_test_probabilities

    if model is None or not len(data.x_val):
        return {"temperature": math.nan, "ece_temperature_scaled": math.nan}
    # The validation split stands in for the test split of the prediction helper.
    val = predict_test_probabilities(model, replace(data, x_test=data.x_val, y_test=data.y_val))
    if val is None:
        return {"temperature": math.nan, "ece_temperature_scaled": math.nan}
    temperature = fit_temperature(val, data.y_val[: len(val)])
    scaled = scale_temperature(probabilities, temperature)
    labels = data.y_test[: len(probabilities)]
    return {
        "temperature": temperature,
        "ece_temperature_scaled": expected_calibration_error(scaled, labels),
    }


def run_diagnostics(result, data, probabilities: np.ndarray, model=None) -> RunDiagnostics:
    """Calibration of ``probabilities`` (test set, in order), raw and after temperature
    scaling fitted on the validation split, and, when the model has BN and trained on
    one replica, the precise-BN test accuracy (statistics gathered with augmentation and
    Dropout off, and with both on) and the variance shift on the validation images (NaN
    otherwise). ``variance_shift`` in the scores is the largest per-layer mean of
    ``max(a/b, b/a)``: 1 when no BN layer is shifted. ``model``:
    ``result.inference_model()`` where the caller has it already."""
    from kerasbn.training import compile_classifier, evaluate

    scores = calibration_scores(probabilities, data.y_test[: len(probabilities)])
    scores.update(_temperature_scores(result.model, data, probabilities))
    scores["test_accuracy_precise_bn"] = math.nan
    scores["test_accuracy_precise_bn_as_trained"] = math.nan
    scores["variance_shift"] = math.nan
    if not (result.variant.uses_bn and result.replicas == 1):
        return RunDiagnostics(scores)
    model = model if model is not None else result.inference_model()
    precise = recalibrate_bn(model, data.x_train, batch_size=256, num_batches=PRECISE_BN_BATCHES)
    compile_classifier(precise, "sgd")
    scores["test_accuracy_precise_bn"] = evaluate(precise, data)["test_accuracy"]
    if has_randomness(result.model):
        # The training net (its augmentation layers included), with its randomness on.
        as_trained = recalibrate_bn(
            result.model,
            data.x_train,
            batch_size=256,
            num_batches=PRECISE_BN_BATCHES,
            augment=True,
            dropout=True,
        )
        compile_classifier(as_trained, "sgd")
        accuracy = evaluate(as_trained, data)["test_accuracy"]
    else:  # nothing to turn on: the same statistics, the same net
        accuracy = scores["test_accuracy_precise_bn"]
    scores["test_accuracy_precise_bn_as_trained"] = accuracy
    shift = variance_shift(model, data.x_val[:VARIANCE_SHIFT_IMAGES])
    scores["variance_shift"] = float(shift["mean_shift"].max())
    log.info(
        "%s-%s: precise-BN test accuracy %.2f%% (augmentation and Dropout off), %.2f%% "
        "(on); temperature %.3f, ECE %.2f%% -> %.2f%%; largest variance shift %.3f (%s)",
        data.name,
        result.variant.name,
        100 * scores["test_accuracy_precise_bn"],
        100 * scores["test_accuracy_precise_bn_as_trained"],
        scores["temperature"],
        100 * scores["ece"],
        100 * scores["ece_temperature_scaled"],
        scores["variance_shift"],
        shift.loc[shift["mean_shift"].idxmax(), "layer"],
    )
    return RunDiagnostics(scores, shift.to_dict("records"), precise)

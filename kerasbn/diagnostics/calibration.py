"""How well a model's confidence matches its accuracy (Guo et al. 2017, "On Calibration
of Modern Neural Networks"). Guo et al. name depth, width, weight decay and Batch
Normalization as what made modern nets miscalibrated (deeper and wider nets, less
weight decay and BN went with a larger ECE in their experiments); they do not study
Dropout. Their remedy is temperature scaling: one number T, fitted on the validation
split, divides the logits before the softmax; it changes no prediction, only the
confidence. ECE is reported raw and after temperature scaling, so a recipe whose
confidence is merely shifted (label smoothing makes nets under-confident) is told apart
from one whose confidence does not follow its accuracy.

Computed from the class probabilities a comparison saves for every run
(``probabilities/<run>.npy``), so it can be measured on finished runs too.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "CALIBRATION_BINS",
    "calibration_scores",
    "expected_calibration_error",
    "fit_temperature",
    "scale_temperature",
]

CALIBRATION_BINS = 15  # equal-width confidence bins, as in Guo et al.


def _check(probabilities, labels) -> tuple[np.ndarray, np.ndarray]:
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels).reshape(-1)
    if probabilities.ndim != 2 or len(probabilities) != len(labels) or not len(labels):
        raise ValueError(
            "Expected probabilities (N, classes) and N labels, N > 0. Received: "
            f"{probabilities.shape} and {labels.shape}"
        )
    return probabilities, labels


def expected_calibration_error(probabilities, labels, bins: int = CALIBRATION_BINS) -> float:
    """ECE: over equal-width bins of the top-class confidence, the image-weighted mean
    of |accuracy - mean confidence| in each bin (0 = perfectly calibrated)."""
    probabilities, labels = _check(probabilities, labels)
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    # Bin k holds confidences in (k/bins, (k+1)/bins]; a confidence of exactly 0 joins bin 0.
    which = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    total = 0.0
    for k in range(bins):
        members = which == k
        if members.any():
            gap = abs(correct[members].mean() - confidence[members].mean())
            total += members.sum() * gap
    return float(total / len(labels))


def calibration_scores(probabilities, labels, bins: int = CALIBRATION_BINS) -> dict[str, float]:
    """``ece``, ``nll`` (mean negative log-likelihood of the true class) and ``brier``
    (mean squared distance to the one-hot label, summed over classes)."""
    probabilities, labels = _check(probabilities, labels)
    rows = np.arange(len(labels))
    true = np.clip(probabilities[rows, labels], np.finfo(np.float32).tiny, 1.0)
    onehot = np.zeros_like(probabilities)
    onehot[rows, labels] = 1.0
    return {
        "ece": expected_calibration_error(probabilities, labels, bins),
        "nll": float(-np.log(true).mean()),
        "brier": float(((probabilities - onehot) ** 2).sum(axis=1).mean()),
    }


def scale_temperature(probabilities, temperature: float) -> np.ndarray:
    """``softmax(log p / T)``: the probabilities of logits divided by ``temperature``
    (log-probabilities are the logits up to a per-row constant, which the softmax
    ignores)."""
    logits = np.log(np.clip(np.asarray(probabilities, dtype=np.float64), 1e-300, 1.0))
    scaled = logits / float(temperature)
    scaled -= scaled.max(axis=1, keepdims=True)
    exp = np.exp(scaled)
    return exp / exp.sum(axis=1, keepdims=True)


# The search range of T; a fit at either end means the probabilities are degenerate
# (e.g. all one-hot) rather than a real temperature.
TEMPERATURE_RANGE = (0.05, 20.0)


def fit_temperature(probabilities, labels) -> float:
    """The T that minimizes the negative log-likelihood of ``labels`` under
    :func:`scale_temperature` (Guo et al.'s temperature scaling; fit it on validation
    images, never on the test set). Searched over log T with scipy's bounded scalar
    minimizer."""
    from scipy.optimize import minimize_scalar  # scipy loads only where T is fitted

    probabilities, labels = _check(probabilities, labels)
    rows = np.arange(len(labels))

    def nll(log_t: float) -> float:
        scaled = scale_temperature(probabilities, np.exp(log_t))
        return float(-np.log(np.clip(scaled[rows, labels], 1e-300, 1.0)).mean())

    low, high = np.log(TEMPERATURE_RANGE)
    fit = minimize_scalar(nll, bounds=(low, high), method="bounded", options={"xatol": 1e-6})
    return float(np.exp(fit.x))

"""How well a model's confidence matches its accuracy (Guo et al. 2017, "On Calibration
of Modern Neural Networks"): BN tends to make nets over-confident, Dropout less so.

Computed from the class probabilities a comparison saves for every run
(``probabilities/<run>.npy``), so it can be measured on finished runs too.
"""

from __future__ import annotations

import numpy as np

__all__ = ["CALIBRATION_BINS", "calibration_scores", "expected_calibration_error"]

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

"""BN diagnostics: measurements that explain what BN and Dropout do (issue 16).

* :mod:`~kerasbn.diagnostics.calibration`: expected calibration error, negative
  log-likelihood and Brier score of a model's test probabilities;
* :mod:`~kerasbn.diagnostics.precise_bn`: population ("precise") BN statistics in place
  of the moving averages.
"""

from kerasbn.diagnostics.calibration import calibration_scores, expected_calibration_error
from kerasbn.diagnostics.precise_bn import bn_input_statistics, recalibrate_bn

__all__ = [
    "bn_input_statistics",
    "calibration_scores",
    "expected_calibration_error",
    "recalibrate_bn",
]

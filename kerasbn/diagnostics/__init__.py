"""BN diagnostics: measurements that explain what BN and Dropout do (issue 16).

* :mod:`~kerasbn.diagnostics.calibration`: expected calibration error, negative
  log-likelihood and Brier score of a model's test probabilities;
* :mod:`~kerasbn.diagnostics.precise_bn`: population ("precise") BN statistics in place
  of the moving averages;
* :mod:`~kerasbn.diagnostics.variance_shift`: the train/inference variance shift that
  Dropout before BN causes (Li et al. 2019);
* :mod:`~kerasbn.diagnostics.summary`: what every comparison run reports of them.
"""

from kerasbn.diagnostics.calibration import calibration_scores, expected_calibration_error
from kerasbn.diagnostics.precise_bn import bn_input_statistics, recalibrate_bn
from kerasbn.diagnostics.summary import DIAGNOSTIC_COLUMNS, run_diagnostics
from kerasbn.diagnostics.variance_shift import variance_shift

__all__ = [
    "DIAGNOSTIC_COLUMNS",
    "bn_input_statistics",
    "calibration_scores",
    "expected_calibration_error",
    "recalibrate_bn",
    "run_diagnostics",
    "variance_shift",
]

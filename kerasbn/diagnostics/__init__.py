"""BN diagnostics: measurements that explain what BN and Dropout do (issue 16).

* :mod:`~kerasbn.diagnostics.calibration`: expected calibration error, negative
  log-likelihood and Brier score of a model's test probabilities, and temperature
  scaling (Guo et al. 2017);
* :mod:`~kerasbn.diagnostics.precise_bn`: population ("precise") BN statistics in place
  of the moving averages;
* :mod:`~kerasbn.diagnostics.adapt_bn`: test-time BN adaptation to unlabelled images,
  with a prior on the training statistics (Schneider et al. 2020);
* :mod:`~kerasbn.diagnostics.variance_shift`: the train/inference variance shift that
  Dropout before BN causes (Li et al. 2019);
* :mod:`~kerasbn.diagnostics.activations`: percentiles of the pre-activations over
  training (Ioffe & Szegedy 2015, figure 1), as a Keras callback;
* :mod:`~kerasbn.diagnostics.summary`: what every comparison run reports of them;
* :mod:`~kerasbn.diagnostics.files`: their files and figures in a comparison folder.
"""

from kerasbn.diagnostics.activations import ActivationPercentiles
from kerasbn.diagnostics.adapt_bn import adapt_bn
from kerasbn.diagnostics.calibration import (
    calibration_scores,
    expected_calibration_error,
    fit_temperature,
    scale_temperature,
)
from kerasbn.diagnostics.files import plot_activations, plot_bn_statistics, plot_reliability
from kerasbn.diagnostics.precise_bn import bn_input_statistics, recalibrate_bn
from kerasbn.diagnostics.summary import DIAGNOSTIC_COLUMNS, RunDiagnostics, run_diagnostics
from kerasbn.diagnostics.variance_shift import variance_shift

__all__ = [
    "DIAGNOSTIC_COLUMNS",
    "ActivationPercentiles",
    "RunDiagnostics",
    "adapt_bn",
    "bn_input_statistics",
    "calibration_scores",
    "expected_calibration_error",
    "fit_temperature",
    "plot_activations",
    "plot_bn_statistics",
    "plot_reliability",
    "recalibrate_bn",
    "run_diagnostics",
    "scale_temperature",
    "variance_shift",
]

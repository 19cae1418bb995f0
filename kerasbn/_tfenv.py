"""TensorFlow CPU settings that have to exist before TensorFlow is imported.

Imported first by ``kerasbn/__init__.py``. TensorFlow turns its oneDNN CPU kernels on by
itself only on CPUs it recognizes as recent Intel ones; elsewhere (this project's AMD
EPYC machines, for one) they stay off, and with them on kerasbn's nets train 1.2-1.8x
faster there (``benchmarks/README.md``). PyTorch uses oneDNN on every x86 CPU.

The setting is a default: an explicit ``TF_ENABLE_ONEDNN_OPTS`` wins,
``KERASBN_TF_DEFAULTS=1`` leaves TensorFlow's own choice, and it has no effect when
TensorFlow was imported before kerasbn (import kerasbn first, or export the variable).
"""

from __future__ import annotations

import os

__all__ = ["KEEP_TF_DEFAULTS_VARIABLE", "ONEDNN_VARIABLE", "USER_ONEDNN", "apply_cpu_defaults"]

ONEDNN_VARIABLE = "TF_ENABLE_ONEDNN_OPTS"
KEEP_TF_DEFAULTS_VARIABLE = "KERASBN_TF_DEFAULTS"


# What the user had set before kerasbn's default (None: unset); the benchmark gives its
# naive path exactly this, i.e. TensorFlow's own defaults.
USER_ONEDNN = os.environ.get(ONEDNN_VARIABLE)


def apply_cpu_defaults(environ=os.environ) -> None:
    """Default ``TF_ENABLE_ONEDNN_OPTS`` to ``1`` unless the user chose otherwise."""
    if environ.get(KEEP_TF_DEFAULTS_VARIABLE, "") not in ("", "0"):
        return
    environ.setdefault(ONEDNN_VARIABLE, "1")


apply_cpu_defaults()

"""TensorFlow CPU settings that have to exist before TensorFlow is imported.

Imported first by ``kerasbn/__init__.py``, which imports nothing heavy itself (a
command's ``--help`` starts without TensorFlow). TensorFlow turns its oneDNN CPU kernels on by
itself only on CPUs it recognizes as recent Intel ones; elsewhere (this project's AMD
EPYC machines, for one) they stay off, and with them on kerasbn's nets train 1.2-1.8x
faster there (``benchmarks/README.md``). PyTorch uses oneDNN on every x86 CPU.

The same goes for TensorFlow's C++ start-up log (the oneDNN banner, "Could not find
cuda drivers", CUDA initialisation errors on machines without a GPU): kerasbn defaults
``TF_CPP_MIN_LOG_LEVEL`` to 3, so a command's output is its own. TensorFlow errors still
reach the user as Python exceptions; ``--verbose 2`` on a command line, an explicit
``TF_CPP_MIN_LOG_LEVEL`` (e.g. ``0``) or ``KERASBN_TF_DEFAULTS=1`` shows the log again.

TensorFlow is imported the first time anything imports ``keras`` or ``tensorflow``
after kerasbn: :class:`QuietFirstImport` on ``sys.meta_path`` runs
:func:`import_tensorflow_quietly` just before that import, then takes itself off.

These settings are defaults: an explicit variable wins, ``KERASBN_TF_DEFAULTS=1``
leaves TensorFlow's own choices, and they have no effect when TensorFlow was imported
before kerasbn (import kerasbn first, or export the variables).
"""

from __future__ import annotations

import contextlib
import importlib.abc
import os
import re
import sys
import tempfile

__all__ = [
    "KEEP_TF_DEFAULTS_VARIABLE",
    "LOG_LEVEL_VARIABLE",
    "ONEDNN_VARIABLE",
    "QuietFirstImport",
    "USER_ONEDNN",
    "apply_cpu_defaults",
    "import_tensorflow_quietly",
    "install_quiet_first_import",
]

ONEDNN_VARIABLE = "TF_ENABLE_ONEDNN_OPTS"
KEEP_TF_DEFAULTS_VARIABLE = "KERASBN_TF_DEFAULTS"
LOG_LEVEL_VARIABLE = "TF_CPP_MIN_LOG_LEVEL"


# What the user had set before kerasbn's default (None: unset); the benchmark gives its
# naive path exactly this, i.e. TensorFlow's own defaults.
USER_ONEDNN = os.environ.get(ONEDNN_VARIABLE)


def _asks_for_detail(argv: list[str]) -> bool:
    # Read before argparse runs: TensorFlow reads its log level when it is imported.
    pairs = zip(argv, [*argv[1:], ""], strict=True)
    return "--verbose=2" in argv or any(a == "--verbose" and b == "2" for a, b in pairs)


def apply_cpu_defaults(environ=os.environ, argv: list[str] = sys.argv) -> None:
    """Default ``TF_ENABLE_ONEDNN_OPTS`` to ``1`` and a quiet C++ log, unless the user
    chose otherwise."""
    if environ.get(KEEP_TF_DEFAULTS_VARIABLE, "") not in ("", "0"):
        return
    environ.setdefault(ONEDNN_VARIABLE, "1")
    if not _asks_for_detail(argv):
        environ.setdefault(LOG_LEVEL_VARIABLE, "3")


# TensorFlow's C++ log lines (glog style: "I0000 12:00:00.000 ...") and absl's banner.
# Recent TensorFlow prints its start-up lines before absl's logging is initialised,
# where TF_CPP_MIN_LOG_LEVEL does not reach them yet.
_START_UP_NOISE = re.compile(
    rb"^(WARNING: All log messages before absl::InitializeLog\(\)|[IWE]\d{4} \d\d:\d\d:\d\d)"
)


def import_tensorflow_quietly(environ=os.environ) -> None:
    """Import TensorFlow and find its devices with its C++ start-up lines filtered out
    of standard error (every other line is passed through), when the log level is
    kerasbn's quiet default and TensorFlow is the backend."""
    if environ.get(LOG_LEVEL_VARIABLE) != "3" or "tensorflow" in sys.modules:
        return
    if environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow":
        return
    try:
        saved = os.dup(2)
    except OSError:  # no standard error to guard
        return
    with tempfile.TemporaryFile() as sink:
        sys.stderr.flush()
        os.dup2(sink.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()  # CUDA's start-up errors come here
        except ImportError:
            pass  # another backend's install: Keras reports what is missing
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            kept = [ln for ln in sink.read().splitlines(True) if not _START_UP_NOISE.match(ln)]
            if kept:
                os.write(2, b"".join(kept))


class QuietFirstImport(importlib.abc.MetaPathFinder):
    """Imports TensorFlow quietly when ``keras`` or ``tensorflow`` is first imported.

    kerasbn's modules import Keras wherever they need it, and the package imports them
    only when used, so the first of them to load may be any; this finder makes sure that
    whichever it is, TensorFlow's start-up log is filtered. It finds nothing itself (the
    normal import goes on) and leaves ``sys.meta_path`` after its one use.
    """

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("keras", "tensorflow"):
            with contextlib.suppress(ValueError):  # a concurrent first import took it off
                sys.meta_path.remove(self)
            import_tensorflow_quietly()
        return None


def install_quiet_first_import() -> None:
    """Put :class:`QuietFirstImport` first on ``sys.meta_path`` (once), unless
    TensorFlow is already imported."""
    if "tensorflow" in sys.modules or any(isinstance(f, QuietFirstImport) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, QuietFirstImport())


apply_cpu_defaults()
install_quiet_first_import()

"""What produced a result: library versions, the command line, kerasbn's version and
git commit (recorded with every result, saved model and experiment)."""

from __future__ import annotations

import datetime
import platform
import shlex
import subprocess
import sys
from pathlib import Path

__all__ = ["command_line", "library_versions", "provenance", "run_record"]


def library_versions(devices: bool = False) -> dict:
    """Python, Keras (and its backend), NumPy, pandas and, where installed, TensorFlow.

    ``devices=True`` adds TensorFlow's logical devices (what the run trained on).
    """
    import keras
    import numpy
    import pandas

    versions = {
        "python": platform.python_version(),
        "keras": keras.__version__,
        "backend": keras.backend.backend(),
        "numpy": numpy.__version__,
        "pandas": pandas.__version__,
    }
    try:
        import tensorflow as tf
    except ImportError:  # the JAX / PyTorch GPU machine has no TensorFlow
        return versions
    versions["tensorflow"] = tf.__version__
    if devices:
        versions["devices"] = [d.name for d in tf.config.list_logical_devices()]
    return versions


def command_line(module: str) -> str | None:
    """The command that started this process, as ``python -m <module> <args>`` when it
    was that module's CLI, ``python scripts/<name>.py <args>`` for one of the checkout's
    scripts (else ``None``: called from Python)."""
    script = Path(sys.argv[0])
    # `python -m pkg.sub` runs pkg/sub.py, or pkg/sub/__main__.py for a package.
    name = script.parent.name if script.stem == "__main__" else script.stem
    if name == module.rsplit(".", 1)[-1]:
        return shlex.join(["python", "-m", module, *sys.argv[1:]])
    # One of the checkout's own scripts (scripts/*.py) calling the Python API.
    try:
        relative = script.resolve().relative_to(Path(__file__).resolve().parents[1])
    except (ValueError, OSError):
        return None
    if relative.parts[:1] != ("scripts",) or script.suffix != ".py":
        return None
    return shlex.join(["python", relative.as_posix(), *sys.argv[1:]])


def provenance() -> dict:
    """kerasbn's version and, when it runs from a git checkout, the commit and whether
    tracked files differ from it (``git: None`` for an installed copy)."""
    from kerasbn import __version__

    package = Path(__file__).resolve().parent
    git = None
    try:
        # Only when kerasbn's own files are tracked there (not a copy in a venv that
        # happens to sit inside some repository).
        tracked = _git(package, "ls-files", "--error-unmatch", "__init__.py")
        if tracked.returncode == 0:
            commit = _git(package, "rev-parse", "HEAD").stdout.strip()
            status = _git(package, "status", "--porcelain", "--untracked-files=no", ".")
            git = {"commit": commit, "dirty": bool(status.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        pass  # no git, or it hung: the version alone is recorded
    return {"kerasbn_version": __version__, "git": git}


def run_record(module: str, devices: bool = False) -> dict:
    """What a run folder's ``config.json`` records beside the settings: the command line
    (when run as ``python -m <module>``), the start time, the library versions (with the
    devices, ``devices=True``), kerasbn's version and git commit."""
    return {
        "command": command_line(module),
        "started": datetime.datetime.now().isoformat(timespec="seconds"),
        "versions": library_versions(devices=devices),
        **provenance(),
    }


def _git(folder: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=10
    )

"""The ``kerasbn`` logger's output for command lines and notebooks.

Library code logs status lines (``training mnist-bn-seed0``, ``resuming ...``) to the
``kerasbn`` logger and never prints; whoever runs it decides where they go. The CLIs
call :func:`configure_logging`; in a notebook, call ``kerasbn.configure_logging()`` to
see them.
"""

from __future__ import annotations

import logging
import sys

__all__ = ["configure_logging"]


class _StdoutHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stdout`` is at the time (pytest and Jupyter swap it)."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value):  # StreamHandler's constructor assigns it; the property wins
        pass


class _Prefixed(logging.Formatter):
    """``[kerasbn] message``, and ``[bench] message`` for the benchmark's lines."""

    def format(self, record: logging.LogRecord) -> str:
        prefix = "bench" if record.name.startswith("kerasbn.bench") else "kerasbn"
        return f"[{prefix}] {record.getMessage()}"


def configure_logging(level: int = logging.INFO) -> logging.Logger:
    """Send the ``kerasbn`` logger's records of ``level`` and above to standard output,
    one ``[kerasbn] ...`` line each. Calling it again changes only the level."""
    logger = logging.getLogger("kerasbn")
    logger.setLevel(level)
    if not any(isinstance(h, _StdoutHandler) for h in logger.handlers):
        handler = _StdoutHandler()
        handler.setFormatter(_Prefixed())
        logger.addHandler(handler)
    # Our handler prints them; the root logger's handlers (if any) would print them twice.
    logger.propagate = False
    return logger

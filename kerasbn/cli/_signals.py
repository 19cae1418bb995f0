"""Ctrl-C (SIGINT) and SIGTERM end a command line cleanly.

While :func:`stop_on_signals` is active, either signal raises :class:`Stopped` in the
main thread. Like ``KeyboardInterrupt`` it is a ``BaseException`` (library code that
catches ``Exception`` lets it through), so it unwinds the call stack and every
``finally`` runs: the folder lock is released and temporary files of half-done writes
are removed. The CLI then prints one line and exits ``128 + signal`` (130, 143).
"""

from __future__ import annotations

import contextlib
import signal
import threading

__all__ = ["SIGNALS", "Stopped", "stop_on_signals"]

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stopped(BaseException):
    """A stop signal arrived; ``exit_code`` is the shell's 128 + signal number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


@contextlib.contextmanager
def stop_on_signals():
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set in the main thread
        return

    def handler(signum, frame):
        # A second signal while the first unwinds would cut the clean-up short.
        for sig in SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        raise Stopped(signum)

    previous = {sig: signal.getsignal(sig) for sig in SIGNALS}
    for sig in SIGNALS:
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)

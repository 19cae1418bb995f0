"""Ctrl-C (SIGINT) and SIGTERM end a command line cleanly.

While :func:`stop_on_signals` is active, the first of either signal is recorded, and
:func:`raise_if_stopped` raises it as :class:`Stopped` at the next safe point: after
every training, validation or prediction batch (:class:`~kerasbn.training.StopOnSignal`),
between runs, between chunks of data loading and of the diagnostics, and on the way out
of :func:`stop_on_signals`. Like ``KeyboardInterrupt`` it is a ``BaseException``
(library code that catches ``Exception`` lets it through), so it unwinds the call stack
and every ``finally`` runs: the folder lock is released and temporary files of
half-done writes are removed. The CLI then prints one line and exits ``128 + signal``
(130, 143).

Why not raise in the handler itself: Python runs a handler wherever the main thread is,
and some places there drop or transform an exception. In a ``__del__`` or a
garbage-collector callback it is printed as "Exception ignored" and the run goes on;
inside a callback from C code (HDF5 writing a checkpoint, TensorFlow running Python)
it can come back as some other error. Both happened in this project's tests (a run
that finished with exit 0 after SIGTERM, one that ended with exit 1 after SIGINT).
A safe point comes within one batch, a fraction of a second. A second signal while the
first waits (the main thread is stuck where no safe point comes) raises at once.
"""

from __future__ import annotations

import contextlib
import signal
import threading

__all__ = ["SIGNALS", "Stopped", "raise_if_stopped", "stop_on_signals"]

SIGNALS = (signal.SIGINT, signal.SIGTERM)
# Frames in which a raised exception would be swallowed by the interpreter.
_UNSAFE_FRAMES = frozenset({"__del__", "__call__", "_remove", "_cleanup"})


class Stopped(BaseException):
    """A stop signal arrived; ``exit_code`` is the shell's 128 + signal number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class _State:
    received: int | None = None  # the first stop signal, until it has been raised
    raised: bool = False


_state = _State()


def raise_if_stopped() -> None:
    """Raise :class:`Stopped` if a stop signal arrived and has not been raised yet."""
    if _state.received is not None and not _state.raised:
        _state.raised = True
        raise Stopped(_state.received)


def _in_finalizer(frame) -> bool:
    depth = 0
    while frame is not None and depth < 64:
        code = frame.f_code
        if code.co_name == "__del__" or (
            code.co_name in _UNSAFE_FRAMES and "weakref" in code.co_filename
        ):
            return True
        frame, depth = frame.f_back, depth + 1
    return False


@contextlib.contextmanager
def stop_on_signals():
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set in the main thread
        return

    def handler(signum, frame):
        if _state.received is None:
            _state.received = signum  # raised at the next safe point
        elif not _state.raised and not _in_finalizer(frame):
            # Asked twice and no safe point came: stop here. Once raised, further
            # signals are ignored, so that they cannot cut the clean-up short.
            raise_if_stopped()

    previous = {sig: signal.getsignal(sig) for sig in SIGNALS}
    _state.received, _state.raised = None, False
    for sig in SIGNALS:
        signal.signal(sig, handler)
    try:
        yield
        raise_if_stopped()  # one that arrived where it could not be raised
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        _state.received, _state.raised = None, False

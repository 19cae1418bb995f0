"""One writer per output folder: a lock file that names the process holding it.

The lock file is created atomically with its content (written to a temporary file, then
hard-linked into place, which fails if a lock already exists), so a reader never sees a
half-written lock. A lock left behind by a process that no longer runs (killed, machine
rebooted) is detected and taken over, by one process at a time: two processes that find
the same stale lock never both hold the folder.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import json
import os
import socket
import stat
import tempfile
import time
from pathlib import Path

__all__ = ["FolderLock", "FolderLockedError", "process_start_time"]

LOCK_NAME = ".kerasbn.lock"
MAX_LOCK_BYTES = 4096  # a lock kerasbn writes is about 120 bytes


class FolderLockedError(RuntimeError):
    """Another live process holds the folder's lock."""


def process_start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (Linux), to tell a reused pid from the owner."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces; the fields after its ')' are fixed.
    fields = stat.rsplit(")", 1)[1].split()
    return fields[19] if fields[0] != "Z" else "zombie"


def _alive(info: dict) -> bool:
    if info.get("host") != socket.gethostname():
        return True  # cannot check a process on another machine: assume it runs
    try:
        pid = int(info.get("pid", -1))
    except (TypeError, ValueError, OverflowError):
        return False  # not a pid kerasbn wrote (1e400, "x"): stale
    if not 0 < pid < 2**31:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    started = process_start_time(pid)
    if started == "zombie":
        return False
    # A different start time means the pid was reused by an unrelated process.
    return started is None or info.get("start_time") in (None, started)


@contextlib.contextmanager
def _folder_mutex(folder: Path):
    """Exclusive ``flock`` on the folder itself (released with the descriptor, also
    when the process dies): serializes stale-lock takeovers without another file."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the flock


class FolderLock:
    """``with FolderLock(folder):`` holds ``folder/.kerasbn.lock`` for this process.

    ``wait`` (seconds) retries while a live process holds it, for short critical
    sections such as a manifest update; 0 fails at once.
    """

    def __init__(self, folder: str | os.PathLike, name: str = LOCK_NAME, wait: float = 0) -> None:
        self.folder = Path(folder)
        self.path = self.folder / name
        self.wait = wait
        self.took_over: dict | None = None  # the stale lock this process replaced, if any

    def _info(self) -> dict:
        return {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "start_time": process_start_time(os.getpid()),
            "started": _dt.datetime.now().isoformat(timespec="seconds"),
        }

    def read(self) -> dict | None:
        """The lock's content; ``None`` when absent or not a lock kerasbn wrote (not a
        regular file, too large, not a JSON object): such a lock counts as stale."""
        try:
            if not stat.S_ISREG(os.lstat(self.path).st_mode):
                return None  # a link to /dev/zero or a FIFO is never read
            with open(self.path, "rb") as f:
                info = json.loads(f.read(MAX_LOCK_BYTES + 1)[:MAX_LOCK_BYTES])
        except (OSError, ValueError):
            return None
        return info if isinstance(info, dict) else None

    def acquire(self) -> FolderLock:
        deadline = time.monotonic() + self.wait
        while True:
            try:
                return self._acquire_once()
            except FolderLockedError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.05)

    def _acquire_once(self) -> FolderLock:
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".lock.", dir=self.folder)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(self._info(), f)
            for _ in range(3):
                try:
                    os.link(tmp, self.path)  # atomic: fails if a lock exists
                    return self
                except FileExistsError:
                    pass
                self._refuse_if_live(self.read())
                # Stale (dead owner) or unreadable. Taking it over is a read, a removal
                # and a link: done by one process at a time (a lock on the folder itself),
                # and the lock is read again inside, so a process that judged it stale a
                # moment ago cannot remove the fresh lock another process just made.
                with _folder_mutex(self.folder):
                    current = self.read()
                    self._refuse_if_live(current)
                    self.path.unlink(missing_ok=True)
                    try:
                        os.link(tmp, self.path)
                        self.took_over = current or {}
                        return self
                    except FileExistsError:
                        pass  # a plain link won in between: look again
            raise FolderLockedError(f"Could not take the lock {self.path}; try again.")
        finally:
            os.unlink(tmp)

    def _refuse_if_live(self, other: dict | None) -> None:
        if other is not None and _alive(other):
            raise FolderLockedError(
                f"{self.folder} is in use by another kerasbn run (process "
                f"{other.get('pid')} on {other.get('host')}, started "
                f"{other.get('started')}). Wait for it to finish or pass a different "
                f"--out. If no such run exists, delete {self.path}."
            )

    def release(self) -> None:
        info = self.read()
        if info is not None and info.get("pid") == os.getpid():
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

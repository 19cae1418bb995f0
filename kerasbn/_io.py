"""Small file helpers: every result file is written next to its target and renamed in.

A crash or kill while writing then leaves either the old file or the new one, never a
half-written table.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "atomic_path",
    "check_output_folder",
    "disk_full",
    "disk_full_text",
    "ensure_space",
    "remove_stale_temps",
    "save_array",
    "write_json",
    "write_text",
]

TEMP_PREFIX = ".tmp-"  # temporary files of atomic writes; a kill may leave some behind


def ensure_space(folder: str | os.PathLike, needed: int) -> None:
    """Raise ``OSError(ENOSPC)`` before writing ``needed`` bytes into ``folder`` when the
    disk lacks them: a full disk met in the middle of an HDF5 write can crash the
    process instead of raising."""
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise OSError(
            errno.ENOSPC,
            f"No space left: {folder} needs about {needed / 2**20:.1f} MiB and its disk has "
            f"{free / 2**20:.1f} MiB free",
        )


@contextmanager
def atomic_path(target: str | os.PathLike, suffix: str = "", needed: int = 0):
    """Yield a temporary path beside ``target``; rename it onto ``target`` on success.

    ``needed``: bytes the write will take, checked against the free space first."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if needed:
        ensure_space(target.parent, needed)
    fd, tmp = tempfile.mkstemp(
        prefix=f"{TEMP_PREFIX}{target.name}.", suffix=suffix or target.suffix, dir=target.parent
    )
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp makes 0600 files; results should get what a plain open() would give.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _write(target: str | os.PathLike, writer: Callable[[Path], None]) -> Path:
    with atomic_path(target) as tmp:
        writer(tmp)
    return Path(target)


def write_text(target: str | os.PathLike, text: str) -> Path:
    return _write(target, lambda p: p.write_text(text, encoding="utf-8"))


def save_array(target: str | os.PathLike, array) -> Path:
    """``np.save`` through a temporary file and a rename (no pickled objects)."""
    import numpy as np  # here: the CLI's light paths import this module

    return _write(target, lambda p: np.save(p, np.asarray(array), allow_pickle=False))


def _plain(value):
    # NumPy scalars (np.int64, np.float32, np.bool_) as Python numbers, anything else as text.
    return value.item() if hasattr(value, "item") else str(value)


def write_json(target: str | os.PathLike, obj) -> Path:
    return write_text(target, json.dumps(obj, indent=2, sort_keys=False, default=_plain) + "\n")


def remove_stale_temps(folder: str | os.PathLike) -> int:
    """Delete temporary files that killed writers left in ``folder`` (not recursive).

    Only call this while holding the folder's lock: a live writer's temp file looks the
    same. Returns how many were removed.
    """
    removed = 0
    for path in Path(folder).glob(f"{TEMP_PREFIX}*"):
        if path.is_file():
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def check_output_folder(path: str | os.PathLike, flag: str, create: bool = True) -> Path:
    """Fail now, not after hours of training, if ``path`` cannot hold output files.

    ``create``: make the folder and write (then remove) a probe file in it; otherwise the
    folder is left for its writer to create, and its nearest existing parent must be a
    writable folder. Raises ``PermissionError`` naming ``flag`` and the fix.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise PermissionError(f"{path} is a file, not a folder. Pass a folder to {flag}.")
    try:
        if create:
            path.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=path)
            os.close(fd)
            os.unlink(probe)
            return path
        parent = next(p for p in (path, *path.parents) if p.exists())
        if not parent.is_dir():
            raise NotADirectoryError(f"{parent} is a file")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise PermissionError(f"{parent} is not writable")
    except OSError as exc:
        if disk_full(exc):
            raise  # the folder is fine; the disk is full, and the message says so
        raise PermissionError(f"Cannot write to {path} ({exc}). Pass a writable {flag}.") from exc
    return path


# TensorFlow's own file writers (TensorBoard's event files, tf.io) fail with its OpError
# classes, not OSError; only their text carries the operating system's reason.
_FULL_TEXTS = (os.strerror(errno.ENOSPC), os.strerror(errno.EDQUOT))
_TF_FILE = re.compile(r"(?:\}\}\s*)?(\S+?);\s*(" + "|".join(map(re.escape, _FULL_TEXTS)) + ")")


def _tf_error(exc: BaseException) -> bool:
    return any(cls.__name__ == "OpError" for cls in type(exc).__mro__)


def disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` is the file system running out of space (or quota), raised by
    Python or by one of TensorFlow's file writers."""
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    return _tf_error(exc) and any(text in str(exc) for text in _FULL_TEXTS)


def disk_full_text(exc: BaseException) -> str:
    """One line for a :func:`disk_full` error: TensorFlow's multi-line text cut to the
    file and the reason, as an ``OSError`` reads."""
    if isinstance(exc, OSError):
        return str(exc)
    found = _TF_FILE.search(str(exc))
    if found is None:
        return next((t for t in _FULL_TEXTS if t in str(exc)), str(exc).splitlines()[0])
    return f"{found.group(2)}: {found.group(1)!r}"

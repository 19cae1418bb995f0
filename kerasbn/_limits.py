"""Bounded reading of files kerasbn did not write: regular files only, and a cap on how
many bytes a file may expand to, checked before the bytes are read.

A size cap on the file on disk is not enough: a small gzip, zip or tar member can
inflate to gigabytes, and a symlink to ``/dev/zero`` or a FIFO reads forever. Every
reader of a user path goes through :func:`require_regular_file` and reads with
:func:`read_capped` (or checks a declared size with :func:`check_declared`). The
errors here are ``ValueError`` subclasses; each loader re-raises them as its own error
type (``DataError``, ``ModelFileError``) or, in ``predict``, reports and skips the input.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "MAX_READ_BYTES_ENV",
    "ReadLimitError",
    "check_declared",
    "max_read_bytes",
    "read_capped",
    "require_regular_file",
]

MAX_READ_BYTES_ENV = "KERASBN_MAX_READ_BYTES"
# The largest file kerasbn reads whole is an MNIST-size IDX (47 MB inflated) or a model
# of a few MB; 1 GiB leaves a wide margin and still keeps a bomb from filling memory.
_DEFAULT_MAX_READ_BYTES = 1 << 30
_CHUNK = 1 << 20


class ReadLimitError(ValueError):
    """A file was refused before or while reading it: not a regular file, or too big."""


def max_read_bytes() -> int:
    """The cap on what one file may expand to (``$KERASBN_MAX_READ_BYTES``, default 1 GiB)."""
    raw = os.environ.get(MAX_READ_BYTES_ENV)
    if raw is None:
        return _DEFAULT_MAX_READ_BYTES
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise ReadLimitError(
            f"{MAX_READ_BYTES_ENV} must be a positive number of bytes. Received: {raw!r}"
        )
    return value


def _raise_hint(limit: int, fix: str | None) -> str:
    fix = fix or f"if you trust the file, raise it with {MAX_READ_BYTES_ENV}=<bytes>"
    return f"the {limit:,}-byte limit; {fix}"


def require_regular_file(path: str | os.PathLike) -> Path:
    """``path`` if it is (or links to) a regular file; a device, FIFO or socket is
    refused before it is opened, since reading one may never end."""
    path = Path(path)
    mode = path.stat().st_mode  # follows symlinks: a link to /dev/zero is a device
    if not stat.S_ISREG(mode):
        kind = (
            "directory"
            if stat.S_ISDIR(mode)
            else "FIFO"
            if stat.S_ISFIFO(mode)
            else "socket"
            if stat.S_ISSOCK(mode)
            else "device"
        )
        raise ReadLimitError(
            f"{path} is a {kind}, not a regular file; kerasbn reads only regular files. "
            "Point it at the file itself."
        )
    return path


def check_declared(
    size: int, origin: str, limit: int | None = None, fix: str | None = None
) -> None:
    """Refuse ``origin`` whose header declares ``size`` bytes, over the cap, unread
    (``fix``: how to raise a ``limit`` other than the read limit)."""
    limit = max_read_bytes() if limit is None else limit
    if size > limit:
        raise ReadLimitError(f"{origin} declares {size:,} bytes, over {_raise_hint(limit, fix)}")


def read_capped(
    fh: BinaryIO, origin: str, limit: int | None = None, fix: str | None = None
) -> bytes:
    """All of ``fh`` (a file or a decompressing stream), refused once it passes the cap;
    at most one chunk more than the cap is ever held."""
    limit = max_read_bytes() if limit is None else limit
    chunks, total = [], 0
    while True:
        chunk = fh.read(min(_CHUNK, limit + 1 - total))
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > limit:
            raise ReadLimitError(f"{origin} expands past {_raise_hint(limit, fix)}")
        chunks.append(chunk)

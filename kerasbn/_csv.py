"""Reading a table of a run folder (``runs.csv``, ``logs/<run>.csv``, ...), which may be
damaged or hostile like any other file there: a regular file only (a FIFO would block
forever), under the read limit, parsed by pandas, and with its number columns holding
numbers, so that a bad cell is named here rather than as a TypeError deep in the
statistics."""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path

import pandas as pd

from kerasbn._limits import ReadLimitError, check_declared, require_regular_file

__all__ = ["RUN_TEXT_COLUMNS", "read_table"]

# The columns of runs.csv that hold text or flags; every other one holds numbers.
RUN_TEXT_COLUMNS = frozenset({"dataset", "variant", "diverged", "diverged_at"})


def read_table(path: str | os.PathLike, text: Collection[str] | None = None) -> pd.DataFrame:
    """The CSV at ``path``; every column but those in ``text`` must hold numbers (or
    nothing). ``text=None`` checks no column.

    Raises:
        ValueError: the file is not a regular file, is over the read limit, does not
            parse, or a number column holds something else (file, column and value
            named, with the fix).
    """
    path = Path(path)
    fix = "Restore it from a copy of the folder, or re-run the command that made it"
    try:
        require_regular_file(path)
        check_declared(path.stat().st_size, str(path))
        frame = pd.read_csv(path)
    except ReadLimitError as exc:
        raise ValueError(f"{str(exc).rstrip('.')}. {fix}.") from exc
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not a readable table ({exc}). {fix}.") from exc
    if text is None:
        return frame
    for column in frame.columns.difference(list(text)):
        values = frame[column]
        numbers = pd.to_numeric(values, errors="coerce")
        bad = numbers.isna() & values.notna()
        if bad.any():
            raise ValueError(
                f"{path}: column {column!r} holds {values[bad].iloc[0]!r} where a number "
                f"belongs. {fix}."
            )
        frame[column] = numbers
    return frame

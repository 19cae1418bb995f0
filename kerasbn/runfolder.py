"""The output-folder protocol: one writer, resume or refuse, ``complete.json`` last.

A run folder holds ``config.json`` (the settings it was started with), the results so
far, and finally ``complete.json``, written once every other file is final. Opening a
folder:

* takes its lock (:class:`~kerasbn._lock.FolderLock`): a second live writer is refused;
* refuses a finished folder, and an unfinished one started with other settings
  (nothing is overwritten; the message names the settings that differ);
* resumes an unfinished folder with the same settings, after removing temporary files
  that a killed writer left behind;
* reopens a folder, finished or not, whose only difference is a longer list of what
  may grow (more seeds): the stored list must be its start;
* otherwise writes ``config.json`` and starts.

Which settings must match is a :class:`ResumeRule`; settings that may change on resume
(verbosity) and fields added to a settings record after a folder was started are part
of it.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from kerasbn._io import disk_full, remove_stale_temps, write_json
from kerasbn._limits import read_capped, require_regular_file
from kerasbn._lock import FolderLock

__all__ = [
    "COMPLETE",
    "CONFIG",
    "ResumeRule",
    "RunFolder",
    "copy_state",
    "default_out_dir",
    "file_in",
    "refuse_links",
]

COMPLETE = "complete.json"
CONFIG = "config.json"


log = logging.getLogger(__name__)

MAX_CONFIG_BYTES = 16 * 2**20  # a config.json of kerasbn's is a few kB


def file_in(folder: str | os.PathLike, name: str, named_by: str | os.PathLike) -> Path:
    """The file ``name`` that a record in ``folder`` names, resolved, if it lies inside
    ``folder``: a record is a file, and one naming ``/etc/...`` or ``../..`` must not make
    kerasbn read (or overwrite) something elsewhere.

    Raises:
        ValueError: ``name`` is absolute or leads outside ``folder``.
    """
    root = Path(folder).resolve()
    path = (root / str(name)).resolve()
    if Path(str(name)).is_absolute() or root not in path.parents:
        raise ValueError(
            f"{named_by} names a file outside its folder {folder}; a run folder's records "
            f"name files inside it. Re-run into a new --out. Received: {name!r}"
        )
    return path


def refuse_links(folder: str | os.PathLike) -> None:
    """Refuse a run folder in which a file or subfolder is a symbolic link: resuming
    writes, and removes checkpoints, only inside ``--out``, never where a link points.

    Raises:
        FileExistsError: naming the link and where it points.
    """
    folder = Path(folder)
    entries = [*folder.iterdir()]
    entries += [child for entry in entries if entry.is_dir() and not entry.is_symlink()
                for child in entry.iterdir()]  # fmt: skip
    for entry in entries:
        if entry.is_symlink():
            raise FileExistsError(
                f"{entry} is a symbolic link (to {os.readlink(entry)}); kerasbn writes and "
                f"deletes only inside --out. Replace it with a real folder or file, or pass "
                f"a new --out; nothing was changed. Received: {folder}"
            )

def default_out_dir(name: str, root: str | os.PathLike = "runs") -> Path:
    """A new folder ``<root>/<YYYYmmdd-HHMMSS>-<name>`` (``.2``, ``.3`` ... when two runs
    start within one second)."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    folder = Path(root) / f"{stamp}-{name}"
    suffix = 1
    while folder.exists():
        suffix += 1
        folder = Path(root) / f"{stamp}.{suffix}-{name}"
    return folder


def _now() -> str:
    return _dt.datetime.now().isoformat(timespec="seconds")


def _json_copy(value):
    # The form config.json stores: tuples become lists, other objects their text.
    return json.loads(json.dumps(value, default=str))


@dataclass(frozen=True)
class ResumeRule:
    """Which settings must match for a folder to be resumed.

    Attributes:
        keys: top-level settings compared.
        may_change: per key, fields that may differ on resume (e.g. verbosity).
        defaults: per key, the values of fields added after a folder was started; a
            stored record lacking such a field reads as that default.
        may_grow: list-valued keys (the seeds) that a later run may extend, finished
            folder or not: the new list must start with the stored one.
        records: the subfolder of per-run records, if the writer keeps one; a folder
            with a summary but no records predates resuming and counts as finished.
        partial: keys recorded only by later versions, compared on the fields the
            stored record has (a folder without the key at all is not compared on it).
    """

    keys: tuple[str, ...]
    may_change: dict[str, tuple[str, ...]] = field(default_factory=dict)
    defaults: dict[str, dict] = field(default_factory=dict)
    may_grow: tuple[str, ...] = ()
    records: str | None = None
    partial: tuple[str, ...] = ()

    def _comparable(self, settings: dict, fill: bool) -> dict:
        picked = _json_copy({key: settings.get(key) for key in self.keys})
        for key, value in picked.items():
            if not isinstance(value, dict):
                continue
            if fill and key in self.defaults:
                value = picked[key] = {**_json_copy(self.defaults[key]), **value}
            for name in self.may_change.get(key, ()):
                value.pop(name, None)
        return picked

    def _pair(self, stored: dict, settings: dict) -> tuple[dict, dict]:
        old, new = self._comparable(stored, fill=True), self._comparable(settings, fill=False)
        for key in self.partial:
            if old.get(key) is None:
                new[key] = None  # recorded after this folder was made: not compared
            elif isinstance(old[key], dict) and isinstance(new.get(key), dict):
                new[key] = {name: new[key].get(name) for name in old[key]}
        return old, new

    def differences(self, stored: dict, settings: dict) -> list[str]:
        """The keys whose stored value differs from ``settings``."""
        old, new = self._pair(stored, settings)
        return [key for key in self.keys if old.get(key) != new.get(key)]

    def explain(self, stored: dict, settings: dict) -> list[str]:
        """Each difference in words, down to the field: ``train_config.epochs: 3 stored,
        5 now``."""
        old, new = self._pair(stored, settings)
        lines = []
        for key in self.differences(stored, settings):
            a, b = old.get(key), new.get(key)
            if isinstance(a, dict) and isinstance(b, dict):
                for name in [*a, *(n for n in b if n not in a)]:
                    if a.get(name) != b.get(name):
                        lines.append(f"{key}.{name}: {a.get(name)!r} stored, {b.get(name)!r} now")
            else:
                lines.append(f"{key}: {a!r} stored, {b!r} now")
        return lines


class RunFolder:
    """One output folder under the protocol of the module docstring.

    Use as ``with RunFolder(path, rule).open(settings) as folder:``; ``folder.resuming``
    says whether an unfinished run continues.
    """

    def __init__(self, path: str | os.PathLike, rule: ResumeRule) -> None:
        self.path, self.rule = Path(path), rule
        self.resuming = False
        self.extended = False  # a grown key (more seeds) reopened the folder
        self._lock: FolderLock | None = None

    @property
    def finished(self) -> bool:
        return (self.path / COMPLETE).exists() or self._legacy()

    def _legacy(self) -> bool:
        # A summary without run records: a folder from before runs could resume.
        records = self.rule.records
        return bool(records) and (
            (self.path / "summary.csv").exists() and not (self.path / records).exists()
        )

    def stored(self) -> dict:
        """The folder's ``config.json``.

        Raises:
            FileExistsError: it is not a regular file, is over 16 MiB or is not a JSON
                object (a FIFO would hang a plain read, a list would fail later with a
                traceback); the message names the file and the way out.
        """
        path = self.path / CONFIG
        try:
            require_regular_file(path)
            with open(path, "rb") as fh:
                stored = json.loads(read_capped(fh, str(path), MAX_CONFIG_BYTES))
        except FileNotFoundError:
            raise
        except (OSError, ValueError) as exc:
            stored = exc
        if not isinstance(stored, dict):
            why = stored if isinstance(stored, Exception) else "not a JSON object"
            raise FileExistsError(
                f"{path} is not a kerasbn config.json ({why}), so this folder cannot be "
                "resumed or grown. Pass a new --out; nothing was changed."
            )
        return stored

    def differences(self, settings: dict) -> list[str]:
        """Which settings of the run stored here differ from ``settings``."""
        try:
            stored = self.stored()
        except (OSError, ValueError):
            return [f"{CONFIG} (unreadable)"]
        return self.rule.differences(stored, settings)

    def resumable(self, settings: dict) -> bool:
        """An unfinished run with these settings is stored here."""
        return (
            (self.path / CONFIG).exists()
            and not (self.path / COMPLETE).exists()
            and not self.differences(settings)
        )

    @classmethod
    def find(cls, root: str | os.PathLike, name: str, rule: ResumeRule, settings: dict):
        """The newest unfinished ``<root>/*-<name>`` folder started with ``settings``."""
        root = Path(root)
        if not root.is_dir():
            return None
        for path in sorted(root.glob(f"*-{name}"), reverse=True):
            if cls(path, rule).resumable(settings):
                return path
        return None

    def open(self, settings: dict, record: dict | None = None) -> RunFolder:
        """Lock, then resume or start (writing ``config.json``: ``settings`` plus
        ``record``); raises ``FileExistsError`` for a folder that may not be used and
        ``PermissionError`` for one that cannot be written."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self._lock = FolderLock(self.path).acquire()
        except OSError as exc:
            if disk_full(exc):
                raise
            raise PermissionError(
                f"Cannot write to the output folder {self.path} ({exc}). Pass a writable --out."
            ) from exc
        try:
            refuse_links(self.path)
            self.resuming = self._check(settings, record or {})
            if self.resuming:
                for folder in (self.path, *(p for p in self.path.iterdir() if p.is_dir())):
                    remove_stale_temps(folder)
                self._note_code_change(record or {})
            else:
                write_json(self.path / CONFIG, {**settings, **(record or {})})
        except BaseException:
            self.close()
            raise
        return self

    def _note_code_change(self, record: dict) -> None:
        """Resuming with other code (another kerasbn version or commit) is allowed, as a
        fix may be what the resume is for, but said, and recorded in ``config.json``
        (``resumed``), so a table from the folder can name every commit that trained it."""
        if not record:
            return
        stored = self.stored()
        earlier = [stored, *stored.get("extended", []), *stored.get("resumed", [])][-1]

        def code(part: dict) -> tuple:
            return part.get("kerasbn_version"), (part.get("git") or {}).get("commit")

        if code(earlier) == code(record):
            return
        log.warning(
            "%s was last run by kerasbn %s (commit %s); it is resumed by %s (commit %s): "
            "its runs will come from both. Use a new --out to keep one version.",
            self.path,
            *(value or "unknown" for value in (*code(earlier), *code(record))),
        )
        keys = ("command", "kerasbn_version", "git")
        resumed = {"time": _now(), **{k: record.get(k) for k in keys}}
        write_json(self.path / CONFIG, {**stored, "resumed": [*stored.get("resumed", []), resumed]})

    def _check(self, settings: dict, record: dict) -> bool:
        grows = (self.path / CONFIG).exists() and self._grow(settings, record)
        if self.finished and not grows:
            raise FileExistsError(
                f"{self.path} already holds the results of an earlier, finished run. Pass a "
                "new --out folder, or move that one away; nothing was overwritten."
            )
        if not (self.path / CONFIG).exists():
            return False
        differ = self.differences(settings)
        if differ:
            detail = "; ".join(self.rule.explain(self.stored(), settings))
            raise FileExistsError(
                f"{self.path} already holds the results of an unfinished run with other "
                f"settings ({detail}); resuming it with these would mix results. "
                "Re-run the original command to resume it, or pass a new --out; nothing was "
                "overwritten."
            )
        return True

    def _grow(self, settings: dict, record: dict) -> bool:
        """Extend the stored run when the only differences are longer ``may_grow`` lists;
        refuse shorter ones. False when nothing may grow."""
        differ = self.differences(settings)
        if not differ or not set(differ) <= set(self.rule.may_grow):
            return False
        if self._legacy():
            return False  # from before per-run records: nothing to build on
        stored = self.stored()
        for key in differ:
            old, new = stored.get(key), _json_copy(settings.get(key))
            if not (isinstance(old, list) and isinstance(new, list)):
                return False
            if len(new) < len(old) and old[: len(new)] == new:
                raise FileExistsError(
                    f"{self.path} holds a run with {key} {old}; this asks for fewer ({new}). "
                    f"Ask for at least those {len(old)} (more are added to the run), or pass "
                    "a new --out; nothing was changed."
                )
            if new[: len(old)] != old:
                return False
        # complete.json goes first: a kill in between leaves an unfinished folder that
        # the same command extends again.
        (self.path / COMPLETE).unlink(missing_ok=True)
        grown = {key: settings[key] for key in differ}
        # What trained the added part (command, versions, commit) may differ: keep it.
        history = [*stored.get("extended", []), {"time": _now(), **grown, **record}]
        write_json(self.path / CONFIG, {**stored, **grown, "extended": history})
        self.extended = True
        return True

    def complete(self, info: dict) -> None:
        """Write ``complete.json`` (``info`` plus the time): every other file is final."""
        write_json(self.path / COMPLETE, {"finished": _now(), **info})

    def close(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> RunFolder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def copy_state(source: Path | None, target: Path, folders=("runs", "backup", "logs")) -> None:
    """Copy a run folder's settings, records and checkpoints (not its tables) into a new
    ``target``, e.g. so a multi-worker run's workers resume where the chief does."""
    target.mkdir(parents=True)
    if source is None or not source.is_dir():
        return
    for name in (CONFIG, COMPLETE):
        if (source / name).exists():
            shutil.copy2(source / name, target / name)
    for name in folders:
        if (source / name).is_dir():
            shutil.copytree(source / name, target / name)

"""The results archive: a finished run folder's light files, committed under
``results/<name>/``, so that every published table can be checked (and regenerated)
from a fresh clone.

    python -m kerasbn.results archive runs/mnist-3seeds --name mnist-3seeds

What goes in: the settings and completion marker, every table (CSV, Markdown, JSON
records), the per-run epoch logs, a named experiment's finished units (its records of
each trained version and seed, from which a copy re-judges or redraws without training),
and the per-image arrays that paired tests and the
calibration figure need: correctness as booleans, predicted classes as the smallest
integer type that holds them, probabilities as float16. What stays out: checkpoints,
saved models, TensorBoard events, figures (the published ones live in ``docs/images``)
and anything else. An archived folder reads like the original: ``kerasbn.results``,
``load_comparison`` and ``verdicts`` accept it, and ``compare`` pointed at a copy of it
trains only the runs it lacks.

A long comparison that will not finish on this machine is kept as a piece
(``archive(..., unfinished=True)``, ``--unfinished``): the finished runs' files only
(the run in progress starts over wherever the piece is grown), no ``complete.json``, so
no table is ever published from it, and a ``.unfinished`` note naming what is in it.
A named experiment is kept the same way, as its finished units: the experiment pointed at
a copy reads them back and runs the others.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np

from kerasbn._io import save_array, write_text
from kerasbn.runfolder import COMPLETE
from kerasbn.saving import MANIFEST_NAME

__all__ = ["ARCHIVE_ROOT", "UNFINISHED", "archive", "archived_files"]

log = logging.getLogger(__name__)

ARCHIVE_ROOT = Path("results")
# Light files, by where they stand in a run folder.
TOP_LEVEL_SUFFIXES = (".csv", ".json", ".md")
SUBFOLDERS = {
    "logs": (".csv",),
    "runs": (".json",),
    "activations": (".csv",),
    # compare --tune: the trial table, the choice, and Optuna's journal of the studies
    # (what a later `compare --tune` on a copy continues from).
    "tuning": (".csv", ".json", ".md", ".log"),
    # A named experiment's finished units (a run's history or a JSON record each);
    # corruption's trained models (.keras, their sidecars and manifest, kept beside its
    # JSON scores) are not light files.
    "units": (".csv", ".json"),
}
ARRAYS = ("correct", "predictions", "probabilities")
# The note in an unfinished piece (hidden: a later archive of the grown folder skips it).
UNFINISHED = ".unfinished"
# Larger than any table or record of ours: such a file is not a light file.
MAX_TEXT_BYTES = 8 * 2**20


def archived_files(run_dir: Path) -> list[Path]:
    """The files of ``run_dir`` that an archive keeps, relative to it, sorted."""
    keep = [p for p in run_dir.iterdir() if p.is_file() and p.suffix in TOP_LEVEL_SUFFIXES]
    for folder, suffixes in SUBFOLDERS.items():
        if (run_dir / folder).is_dir():
            keep += [
                p
                for p in (run_dir / folder).iterdir()
                if p.is_file() and p.suffix in suffixes and not _of_a_model(p)
            ]
    for folder in ARRAYS:
        if (run_dir / folder).is_dir():
            keep += [p for p in (run_dir / folder).iterdir() if p.suffix == ".npy"]
    # A temporary file of an interrupted write, or a link, is never archived.
    keep = [p for p in keep if not p.name.startswith(".") and not p.is_symlink()]
    return sorted(p.relative_to(run_dir) for p in keep)


def _of_a_model(path: Path) -> bool:
    """A saved model's sidecar or the manifest of a folder of models (corruption's
    units): they describe a model the archive does not keep."""
    return path.with_suffix(".keras").exists() or (
        path.name == MANIFEST_NAME and any(path.parent.glob("*.keras"))
    )


def _machine_paths(run_dir: Path) -> list[str]:
    """Absolute paths of this machine that a published file must not name."""
    places = {str(run_dir.resolve()), str(Path.cwd()), str(Path.home())}
    return sorted((p for p in places if p not in ("/", "")), key=len, reverse=True)


def _light_array(array: np.ndarray, folder: str) -> np.ndarray:
    if folder == "probabilities":
        return array.astype(np.float16)  # enough for a reliability diagram
    if folder == "predictions" and array.size and array.min() >= 0 and array.max() < 256:
        return array.astype(np.uint8)
    return array


def _finished_runs_only(run_dir: Path, files: list[Path]) -> tuple[list[Path], list[str]]:
    """The files of the runs that have a record (and the folder's own tables); the
    tags of those runs."""
    finished = (
        sorted(p.stem for p in (run_dir / "runs").glob("*.json"))
        if (run_dir / "runs").is_dir()
        else []
    )
    per_run = ("logs", "runs", "activations", *ARRAYS)
    kept = [
        f for f in files if len(f.parts) == 1 or f.parts[0] not in per_run or f.stem in finished
    ]
    return kept, finished


def archive(
    run_dir: str | os.PathLike,
    name: str,
    root: str | os.PathLike = ARCHIVE_ROOT,
    unfinished: bool = False,
):
    """Copy the light files of the finished folder ``run_dir`` into ``root/name``
    (with ``unfinished``, of a folder still training: its finished runs, as a piece to
    grow elsewhere).

    Returns the archive folder. The copy is built beside it and renamed in, so an
    interrupted archive leaves the previous one (or none), never half of one.

    Raises:
        FileNotFoundError: ``run_dir`` is not a finished run (no ``complete.json``)
            and ``unfinished`` is not set, or it has no ``config.json`` at all.
        ValueError: ``name`` is not a plain folder name, or a file names an absolute
            path of this machine (publish commands with the paths a user would type).
    """
    run_dir = Path(run_dir)
    if not name or name != Path(name).name or name.startswith("."):
        raise ValueError(
            f"An archive name is one plain folder name, e.g. mnist-3seeds. Received: {name!r}"
        )
    complete = (run_dir / COMPLETE).is_file()
    if not complete and not unfinished:
        raise FileNotFoundError(
            f"{run_dir} is not a finished run (no {COMPLETE}); a partial run is never "
            "archived as finished. Finish it by re-running its command, then archive it, "
            "or keep it as a piece to grow elsewhere with --unfinished."
        )
    tuning = run_dir / "tuning" / "tuning.json"
    # compare --tune writes config.json once tuning is done: before that a tune in
    # progress is its tuning studies alone, kept as a piece like any unfinished folder.
    tuning_only = unfinished and tuning.is_file() and not (run_dir / "config.json").is_file()
    if not (run_dir / "config.json").is_file() and not tuning_only:
        raise FileNotFoundError(f"{run_dir} holds no run (no config.json); nothing archived.")
    files = archived_files(run_dir)
    note = None
    if tuning_only:
        command = json.loads(tuning.read_text(encoding="utf-8")).get("command")
        note = (
            f"An unfinished piece: the tuning studies of {run_dir.name} so far (Optuna's "
            "journal, tuning/study.log); no run has trained yet. No table is published from "
            "it. To grow it, copy it to runs/ and run "
            f"{command or 'the compare --tune command that started it'} (with the same "
            "--out): finished trials are kept, the study goes on.\n"
        )
    elif not complete and not (run_dir / "runs").is_dir():
        # A named experiment: a unit's record is written last, once the unit is done.
        units = [f for f in files if f.parts[0] == "units"]
        note = (
            f"An unfinished piece: {len(units)} finished unit(s) of the experiment "
            f"{run_dir.name}. No table is published from it. To grow it, copy it to "
            "runs/experiments/ and run the command in its config.json (with the same "
            "--out): the finished units are read back, the others run.\n"
        )
    elif not complete:
        files, finished = _finished_runs_only(run_dir, files)
        note = (
            f"An unfinished piece: {len(finished)} finished run(s) of {run_dir.name} "
            f"({', '.join(finished) or 'none'}). No table is published from it. To grow it, "
            "copy it to runs/ and run the command in its config.json (with the same --out): "
            "the finished runs are read back, the others train.\n"
        )
    machine = _machine_paths(run_dir)
    root = Path(root)
    target = root / name
    staging = root / f".{name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        for relative in files:
            source, dest = run_dir / relative, staging / relative
            dest.parent.mkdir(parents=True, exist_ok=True)
            if source.suffix == ".npy":
                array = np.load(source, allow_pickle=False)
                save_array(dest, _light_array(array, relative.parts[0]))
                continue
            if source.stat().st_size > MAX_TEXT_BYTES:
                raise ValueError(
                    f"{source} is larger than any table a run writes "
                    f"({source.stat().st_size} bytes); it is not archived. Move it out of "
                    "the run folder and archive again."
                )
            text = source.read_text(encoding="utf-8")
            named = [p for p in machine if p in text]
            if named:
                raise ValueError(
                    f"{source} names a path of this machine ({named[0]}); a published "
                    "file must not. Re-run with relative paths (e.g. --data-dir "
                    "../shared/data --out runs/NAME) and archive that folder."
                )
            write_text(dest, text)
        if note is not None:
            write_text(staging / UNFINISHED, note)
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log.info("archived %d files of %s into %s", len(files), run_dir, target)
    return target

"""Two verdicts side by side: the variants compared at one shared recipe, and each at
its own tuned recipe (``compare --tune``), from two finished comparison folders.

    python -m kerasbn.results runs/<shared> runs/<tuned> --table recipes

Each folder's verdicts are computed afresh from its runs and per-image results, and
Holm-corrected within that folder's family, exactly as the main table does; the two
columns are two separate experiments, not one test.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from kerasbn.report import format_mean_std, summarize
from kerasbn.results_tables import dataset_title, finished_config, source_line
from kerasbn.verdict_text import family_note
from kerasbn.verdicts import read_folder, verdicts

__all__ = ["recipes_markdown"]


def _verdict_words(verdict: pd.DataFrame, variant: str) -> str:
    if variant not in verdict.index:
        return "baseline"
    v = verdict.loc[variant]
    held = "" if not np.isfinite(v["p_holm"]) else f", p_Holm = {v['p_holm']:.2g}"
    return f"{v['verdict']} ({100 * v['difference']:+.2f} pp{held})"


def _values_words(params: dict) -> str:
    if not params:
        return "the shared recipe"
    return ", ".join(f"{name} {value:.3g}" for name, value in params.items())


def _side(run_dir: Path):
    config = finished_config(run_dir)
    runs, correct, baseline = read_folder(run_dir)
    summary = summarize(runs, correct).set_index("variant")
    table = verdicts(runs, baseline, correct)
    verdict = table.query("metric == 'test_accuracy'").set_index("variant")
    return config, summary, verdict, baseline


def recipes_markdown(run_dirs: list[str | os.PathLike]) -> str:
    """The side-by-side table of a shared-recipe folder and a tuned one (in that order).

    Raises:
        ValueError: not two folders, the second not tuned, or different data / variants.
        FileNotFoundError: a folder is not a finished comparison.
    """
    if len(run_dirs) != 2:
        raise ValueError(
            "--table recipes takes two folders: the shared-recipe comparison, then the "
            f"tuned one (compare --tune). Received: {len(run_dirs)} folder(s)"
        )
    shared_dir, tuned_dir = map(Path, run_dirs)
    shared, tuned = _side(shared_dir), _side(tuned_dir)
    if not tuned[0].get("tuned"):
        raise ValueError(
            f"{tuned_dir} was not tuned (its config.json has no tuned values); pass the "
            f"folder of a compare --tune run second. Received: {tuned_dir}"
        )
    if shared[0].get("tuned"):
        raise ValueError(f"{shared_dir} is a tuned comparison; pass the shared recipe first.")
    names = [list(side[1].index) for side in (shared, tuned)]
    datasets = {side[1]["dataset"].iloc[0] for side in (shared, tuned)}
    if len(datasets) != 1 or set(names[0]) != set(names[1]) or shared[3] != tuned[3]:
        raise ValueError(
            "The two folders must compare the same variants on the same data set against "
            f"the same baseline. Received: {sorted(datasets)}, {names[0]} vs {names[1]}, "
            f"baselines {shared[3]!r} and {tuned[3]!r}"
        )
    rows = []
    for variant in names[0]:
        row = {"variant": f"`{variant}`"}
        for label, (config, summary, verdict, _) in (("shared", shared), ("tuned", tuned)):
            r = summary.loc[variant]
            if label == "tuned":
                row["tuned values"] = _values_words(config["tuned"].get(variant, {}))
            row[f"{label}: seeds"] = int(r["seeds"])
            row[f"{label}: test acc %"] = format_mean_std(
                r["test_accuracy_mean"], r["test_accuracy_std"]
            )
            row[f"{label}: verdict"] = _verdict_words(verdict, variant)
        rows.append(row)
    table = pd.DataFrame(rows).to_markdown(index=False, disable_numparse=True)
    title = dataset_title(datasets.pop())
    lines = [f"{title}: each variant at the shared recipe and at its own tuned recipe.", ""]
    lines += [table, ""]
    notes = [family_note(side[2].reset_index()) for side in (shared, tuned)]
    if notes[0] == notes[1]:
        lines += [f"Each column on its own: {notes[0]}", ""]
    else:
        lines += [f"Shared: {notes[0]}", "", f"Tuned: {notes[1]}", ""]
    for label, run_dir, side in (("Shared", shared_dir, shared), ("Tuned", tuned_dir, tuned)):
        lines += [f"{label} recipe measured by {source_line(run_dir, side[0])}.", ""]
    return "\n".join(lines).rstrip() + "\n"

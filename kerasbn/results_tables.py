"""The published tables: the README's results table from finished (or archived) run
folders, a named experiment's table, the line naming the command and commit each came
from, and the marked block of a Markdown file they are written into.

``python -m kerasbn.results`` is the command line of this module.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from kerasbn._csv import read_table
from kerasbn._text import markdown_safe
from kerasbn.report import format_mean_std, mean_std, summarize, write_results
from kerasbn.verdict_text import family_note
from kerasbn.verdicts import intervals, read_folder, verdicts

__all__ = [
    "FLIP_TTA",
    "FLIP_TTA_RUNS",
    "data_markdown",
    "dataset_title",
    "experiment_markdown",
    "finished_config",
    "headline_markdown",
    "replace_block",
    "refresh",
    "results_markdown",
    "source_line",
]


def dataset_title(dataset: str) -> str:
    from kerasbn.data import get_dataset_info

    try:
        title = get_dataset_info(dataset).title
    except ValueError:  # your own data set, registered only while it trained
        return dataset
    # The shared CIFAR-10 copy is JPEG-encoded: its figures are not the original's.
    return f"{title} (JPEG copy)" if dataset == "cifar10" else title


# runs.csv column and table header of the flip test-time-augmentation accuracy.
FLIP_TTA_RUNS = "test_accuracy_flip_tta"
FLIP_TTA = "flip-TTA test acc % (extra)"


def _rows_and_sources(run_dirs) -> tuple[list[dict], list[tuple[str, str, str]]]:
    """Per variant of each folder, its row of the results table; per folder, its family
    note, interval words and source line."""
    rows, sources = [], []
    for run_dir in map(Path, run_dirs):
        config = finished_config(run_dir)
        runs, correct, baseline = read_folder(run_dir)
        summary = summarize(runs, correct)
        verdict_table = verdicts(runs, baseline, correct)
        verdict = verdict_table.query("metric == 'test_accuracy'").set_index("variant")
        for r in summary.itertuples():
            if r.variant in verdict.index:
                v = verdict.loc[r.variant]
                held = "" if not np.isfinite(v["p_holm"]) else f", p_Holm = {v['p_holm']:.2g}"
                word = (
                    f"{v['verdict']} vs `{markdown_safe(v['baseline'])}` "
                    f"({100 * v['difference']:+.2f} pp{held})"
                )
            else:
                word = "baseline"
            rows.append(
                {
                    "data set": dataset_title(r.dataset),
                    "variant": f"`{markdown_safe(r.variant)}`",
                    "seeds": r.seeds,
                    "epochs": config["train_config"]["epochs"],
                    "test acc % (mean ± std)": format_mean_std(
                        r.test_accuracy_mean, r.test_accuracy_std
                    ),
                    "95% CI %": ("no spread" if r.seeds > 1 else "n/a")
                    if not np.isfinite(r.test_accuracy_ci_low)
                    else f"[{100 * r.test_accuracy_ci_low:.2f}, "
                    f"{100 * r.test_accuracy_ci_high:.2f}]",
                    # Nets trained with flips: an extra figure, never the test accuracy.
                    FLIP_TTA: mean_std(
                        runs.loc[runs["variant"] == r.variant, FLIP_TTA_RUNS], missing=None
                    )
                    if FLIP_TTA_RUNS in runs
                    else None,
                    "verdict": word,
                    "train−val gap (pp)": f"{100 * r.final_train_val_gap:+.2f}",
                    "val loss − min": f"{r.val_loss_overfit:.4f}",
                    "epochs to target": "not reached"
                    if np.isnan(r.epochs_to_target)
                    else f"{r.epochs_to_target:.3g} (≥{100 * r.target_val_accuracy:g}% val)",
                }
            )
        note = family_note(verdict.reset_index())
        interval = _interval_words(intervals(runs, correct))
        sources.append((note, interval, source_line(run_dir, config)))
    return rows, sources


def results_markdown(run_dirs: list[str | os.PathLike]) -> str:
    """The README's results table from finished comparison folders: per variant, mean ±
    std over seeds with the 95% interval, the flip test-time-augmentation accuracy where
    the folders have it, the verdict against the baseline (Holm-adjusted within each
    folder), and the overfitting figures; then, per folder, the family and correction
    and the command, commit and seeds it came from.

    Summary and verdicts are computed afresh from each folder's ``runs.csv`` and
    per-image results, so a folder measured before a change to the statistics is
    published with the current methods.

    Raises:
        FileNotFoundError: a folder is not a finished comparison (no ``complete.json``);
            a partial run is never published as complete.
    """
    rows, sources = _rows_and_sources(run_dirs)
    table = pd.DataFrame(rows)
    if table[FLIP_TTA].isna().all():  # no net of these folders was trained with flips
        table = table.drop(columns=FLIP_TTA)
    lines = [table.fillna("n/a").to_markdown(index=False, disable_numparse=True), ""]
    for note, interval, source in sources:
        lines += [f"{interval} {note}".strip(), "", f"Measured by {source}.", ""]
    return "\n".join(lines).rstrip() + "\n"


HEADLINE_COLUMNS = ["data set", "variant", "seeds", "test acc % (mean ± std)", "verdict"]


def headline_markdown(run_dirs: list[str | os.PathLike]) -> str:
    """The README's headline: the results table's variant, seeds, test accuracy and
    verdict columns, with the family, test and correction in one line per folder and
    the source; the full table (intervals, overfitting) is the ``main`` kind.

    Raises:
        FileNotFoundError: a folder is not a finished comparison.
    """
    rows, sources = _rows_and_sources(run_dirs)
    table = pd.DataFrame(rows)[HEADLINE_COLUMNS]
    lines = [table.to_markdown(index=False, disable_numparse=True), ""]
    for note, _, source in sources:
        lines += [f"{note} Measured by {source}.", ""]
    return "\n".join(lines).rstrip() + "\n"


def _interval_words(interval_table: pd.DataFrame) -> str:
    """What the "95% CI %" column of a folder's rows is, in one sentence."""
    methods = set(interval_table.query("metric == 'test_accuracy'")["method"])
    words = {
        "seeds+test set": "over seeds and the test set's sampling together",
        "t": "Student t over seeds (the test set's noise not included)",
        "wilson": "Wilson over the test images (one seed)",
    }
    said = [words[m] for m in sorted(methods) if m in words]
    return f"95% CI %: {'; '.join(said)}." if said else ""


def refresh(run_dir: str | os.PathLike) -> pd.DataFrame:
    """Rewrite a finished comparison folder's derived tables and figures (summary,
    intervals, verdicts, curves, differences) from its per-run rows, histories and
    per-image results with the current methods, e.g. after a change to the statistics.
    The runs themselves are not touched. Returns the verdict table.

    Raises:
        FileNotFoundError: not a finished comparison (no ``complete.json``).
    """
    run_dir = Path(run_dir)
    finished_config(run_dir)
    runs, correct, baseline = read_folder(run_dir)
    history = read_table(run_dir / "history.csv", text=("dataset", "variant"))
    heading = (run_dir / "summary.md").read_text(encoding="utf-8").splitlines()[:1]
    title = heading[0].removeprefix("## ") if heading else run_dir.name
    return write_results(run_dir, history, runs, title, baseline, correct)[1]


def experiment_markdown(run_dirs: list[str | os.PathLike]) -> str:
    """The table of finished named-experiment folders (their ``summary.md`` without its
    heading), each followed by the command and commit it came from."""
    parts = []
    for run_dir in map(Path, run_dirs):
        config = finished_config(run_dir)
        lines = (run_dir / "summary.md").read_text(encoding="utf-8").splitlines()
        body = "\n".join(lines[1:] if lines and lines[0].startswith("## ") else lines).strip()
        parts.append(f"{body}\n\nMeasured by {source_line(run_dir, config)}.\n")
    return "\n".join(parts)


def finished_config(run_dir: Path) -> dict:
    """``config.json`` of a finished comparison folder.

    Raises:
        FileNotFoundError: no ``complete.json``; a partial run is never published.
    """
    if not (run_dir / "complete.json").is_file():
        raise FileNotFoundError(
            f"{run_dir} is not a finished run (no complete.json). Finish it by "
            "re-running its command, or leave it out."
        )
    return json.loads((run_dir / "config.json").read_text())


def _commit(part: dict) -> str:
    git = part.get("git") or {}
    dirty = " with uncommitted changes" if git.get("dirty") else ""
    return git.get("commit", "unknown")[:7] + dirty


def source_line(run_dir: Path, config: dict) -> str:
    """The command, folder and commit a published table came from.

    A folder whose seeds grew names the last command (on an empty folder it trains the
    whole of it) and every commit that trained a part, in order."""
    parts = [config, *config.get("extended", [])]
    last = parts[-1].get("command") or config.get("command")
    command = f"`{markdown_safe(last)}`" if last else "a call from Python"
    # Parts resumed by other code trained some runs too.
    commits = list(dict.fromkeys(map(_commit, [*parts, *config.get("resumed", [])])))
    code = "`, then `".join(commits)
    grown = (
        f"; grown from `{markdown_safe(config['command'])}`"
        if len(parts) > 1 and config.get("command")
        else ""
    )
    return f"{command} (`{markdown_safe(run_dir.name)}`, code at `{code}`{grown})"


def replace_block(text: str, name: str, block: str) -> str:
    """``text`` with what lies between ``<!-- results:NAME -->`` and
    ``<!-- /results:NAME -->`` replaced by ``block`` (the markers stay)."""
    start, end = f"<!-- results:{name} -->", f"<!-- /results:{name} -->"
    if text.count(start) != 1 or text.count(end) != 1 or text.index(start) > text.index(end):
        lines = text.splitlines()
        where = [
            f"{marker} on line {k}"
            for k, line in enumerate(lines, start=1)
            for marker in (start, end)
            if marker in line
        ]
        raise ValueError(
            f"Expected one {start} ... {end} pair in the file, in that order. Add the two "
            f"markers where the table belongs (or remove the extra ones). Received: "
            f"{text.count(start)} start and {text.count(end)} end markers"
            + (f" ({'; '.join(where)})" if where else "")
        )
    before, rest = text.split(start)
    after = rest.split(end)[1]
    return f"{before}{start}\n{block.rstrip()}\n{end}{after}"


def data_markdown(run_dirs: list[str | os.PathLike]) -> str:
    """What kerasbn chose for each folder's own data set (``compare --dataset PATH`` or
    ``tfds:NAME``): one column per folder, one row per choice with its reason, then each
    folder's source line.

    Raises:
        FileNotFoundError: a folder is not a finished comparison.
        ValueError: a folder trained a built-in data set (nothing was chosen).
    """
    from kerasbn.report import data_choices

    columns, sources = {}, []
    for run_dir in map(Path, run_dirs):
        config = finished_config(run_dir)
        pairs = data_choices(config.get("dataset"))
        if not pairs:
            raise ValueError(
                f"{run_dir} trained a built-in data set: kerasbn chose nothing for it. "
                "Pass folders of compare --dataset PATH or tfds:NAME runs."
            )
        used = config.get("train_config", {})
        # The choices above are the preset's; flags such as --epochs override them.
        pairs.append(
            (
                "trained with",
                f"{used.get('epochs')} epochs, batch {used.get('batch_size')}, rate "
                f"{used.get('learning_rate')}",
            )
        )
        columns[f"`{markdown_safe(config['dataset']['name'])}`"] = dict(pairs)
        sources.append(source_line(run_dir, config))
    table = pd.DataFrame(columns).rename_axis("choice").reset_index().fillna("")
    lines = [table.to_markdown(index=False, disable_numparse=True), ""]
    lines += [f"Measured by {source}." for source in sources]
    return "\n".join(lines).rstrip() + "\n"

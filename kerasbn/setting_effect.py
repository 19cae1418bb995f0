"""What one changed setting does to each variant: two finished comparison folders with
the same data, variants and seeds that differ in a setting (``--precision``,
``--threads``, the backend, ...), judged variant by variant.

    python -m kerasbn.results runs/<float32> runs/<bfloat16> --table setting

Each variant of the second folder is compared with the same variant of the first, seed
by seed (the same seed has the same split, batch order and initial weights), with the
tests of :mod:`kerasbn.verdicts`; the variants' comparisons form one family, Holm-
corrected. "no detectable difference" is the word a parity claim rests on, and the
interval says how large a difference the seeds cannot rule out.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from kerasbn.report import format_mean_std, summarize
from kerasbn.results_tables import dataset_title, finished_config, source_line
from kerasbn.verdict_text import family_note, p_text, points_text, span_text
from kerasbn.verdicts import paired_verdicts, read_folder

__all__ = ["changed_settings", "setting_markdown", "setting_verdicts"]

# Settings that describe how a run was watched, not what it computed.
_NOT_SETTINGS = {"verbose"}
# The parts of a folder's distribution record that can change results.
_DISTRIBUTION = ("backend", "strategy", "replicas", "threads_per_run")


def _settings(config: dict) -> dict:
    found = {
        name: value
        for name, value in config.get("train_config", {}).items()
        if name not in _NOT_SETTINGS
    }
    distribution = config.get("distribution", {})
    found.update({name: distribution.get(name) for name in _DISTRIBUTION})
    return found


def changed_settings(config_a: dict, config_b: dict) -> dict[str, tuple]:
    """The settings whose values differ between two comparisons' ``config.json``:
    ``{name: (value in a, value in b)}``."""
    a, b = _settings(config_a), _settings(config_b)
    return {name: (a.get(name), b.get(name)) for name in {**a, **b} if a.get(name) != b.get(name)}


def _data(config: dict) -> dict:
    # Where the files were read from may differ between machines; the images may not.
    return {k: v for k, v in config.get("dataset", {}).items() if k != "source"}


def _label(changed: dict[str, tuple], side: int, fallback: str) -> str:
    if not changed:
        return fallback
    return ", ".join(f"{name} {values[side]}" for name, values in sorted(changed.items()))


def setting_verdicts(run_dir_a: str | os.PathLike, run_dir_b: str | os.PathLike) -> dict:
    """The verdicts of each variant in ``run_dir_b`` against itself in ``run_dir_a``.

    Returns a dict: ``verdicts`` (the rows of :func:`~kerasbn.verdicts.verdicts`; the
    ``variant`` column names the variant, ``label_a``/``label_b`` the two sides),
    ``summary`` (each side's :func:`~kerasbn.report.summarize`, by ``side``), ``changed``
    (:func:`changed_settings`), ``configs``.

    Raises:
        FileNotFoundError: a folder is not a finished comparison.
        ValueError: other data, no variant in common, or a variant without a seed in
            common.
    """
    dirs = [Path(run_dir_a), Path(run_dir_b)]
    configs = [finished_config(d) for d in dirs]
    sides = [read_folder(d) for d in dirs]
    if _data(configs[0]) != _data(configs[1]):
        raise ValueError(
            "The two folders must hold runs on the same data (set, split sizes, image "
            f"shape). Received: {_data(configs[0])} and {_data(configs[1])}"
        )
    runs_a, runs_b = sides[0][0], sides[1][0]
    common = [v for v in dict.fromkeys(runs_a["variant"]) if v in set(runs_b["variant"])]
    if not common:
        raise ValueError(
            "The two folders have no variant in common; compare the same variants with "
            f"the one setting changed. Received: {sorted(set(runs_a['variant']))} and "
            f"{sorted(set(runs_b['variant']))}"
        )
    keys = []  # the (variant, seed) runs both folders have: only they are paired
    for variant in common:
        seeds = [set(r.loc[r["variant"] == variant, "seed"]) for r in (runs_a, runs_b)]
        if not seeds[0] & seeds[1]:
            raise ValueError(
                f"{variant} has no seed in both folders, so nothing can be paired; run "
                f"the same --seed and --seeds in both. Received: {sorted(seeds[0])} and "
                f"{sorted(seeds[1])}"
            )
        keys += [(variant, seed) for seed in sorted(seeds[0] & seeds[1])]
    keys = pd.MultiIndex.from_tuples(keys)
    runs_a, runs_b = (
        r[pd.MultiIndex.from_frame(r[["variant", "seed"]]).isin(keys)] for r in (runs_a, runs_b)
    )
    changed = changed_settings(*configs)
    label_a, label_b = _label(changed, 0, dirs[0].name), _label(changed, 1, dirs[1].name)
    # The second folder's runs under their own names, so both sides fit one table.
    renamed = {v: f"{v} [{label_b}]" for v in common}
    runs = pd.concat(
        [runs_a, runs_b.assign(variant=runs_b["variant"].map(renamed))], ignore_index=True
    )
    correct = {key: value for key, value in sides[0][1].items() if key[0] in renamed}
    correct |= {(renamed[v], s): value for (v, s), value in sides[1][1].items() if v in renamed}
    table = paired_verdicts(runs, [(renamed[v], v) for v in common], correct)
    table["variant"] = table["baseline"]
    summary = pd.concat(
        [
            summarize(r, side[1]).assign(side=name)
            for r, side, name in zip((runs_a, runs_b), sides, "ab", strict=True)
        ],
        ignore_index=True,
    )
    return {
        "verdicts": table,
        "summary": summary,
        "changed": changed,
        "label_a": label_a,
        "label_b": label_b,
        "configs": configs,
    }


def setting_markdown(run_dirs: list[str | os.PathLike]) -> str:
    """The per-variant table of :func:`setting_verdicts` for two folders (the reference
    first), with its test, family and correction, and the commands that made them."""
    if len(run_dirs) != 2:
        raise ValueError(
            "--table setting takes two folders: the reference comparison, then the one "
            f"with the setting changed. Received: {len(run_dirs)} folder(s)"
        )
    judged = setting_verdicts(*run_dirs)
    label_a, label_b = judged["label_a"], judged["label_b"]
    rows = judged["verdicts"].query("metric == 'test_accuracy'").reset_index(drop=True)
    summary = judged["summary"].set_index(["side", "variant"])

    def accuracy(side: str, variant: str) -> str:
        r = summary.loc[(side, variant)]
        return format_mean_std(r["test_accuracy_mean"], r["test_accuracy_std"])

    table = pd.DataFrame(
        {
            "variant": rows["variant"].map(lambda v: f"`{v}`"),
            "seeds": rows["seeds"].astype(int).astype(str),
            f"{label_a}: test acc %": [accuracy("a", v) for v in rows["variant"]],
            f"{label_b}: test acc %": [accuracy("b", v) for v in rows["variant"]],
            "Δ (pp)": rows["difference"].map(points_text),
            "95% CI (pp)": span_text(rows["ci_low"], rows["ci_high"]),
            "seed-only 95% CI (pp)": span_text(rows["seed_ci_low"], rows["seed_ci_high"]),
            "p (Holm)": rows["p_holm"].map(p_text),
            "verdict": rows["verdict"],
        }
    ).to_markdown(index=False, disable_numparse=True)
    dataset = judged["summary"]["dataset"].iloc[0]
    changed = ", ".join(f"`{name}`" for name in sorted(judged["changed"])) or "nothing"
    against = f"(each variant at {label_b} against itself at {label_a}, paired by seed)"
    lines = [
        f"{dataset_title(dataset)}: each variant at {label_b} against {label_a} "
        f"(settings that differ: {changed}).",
        "",
        table,
        "",
        family_note(rows, against=against),
        "",
    ]
    for label, run_dir, config in zip((label_a, label_b), run_dirs, judged["configs"], strict=True):
        lines += [f"{label.capitalize()} measured by {source_line(Path(run_dir), config)}.", ""]
    return "\n".join(lines).rstrip() + "\n"

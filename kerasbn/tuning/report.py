"""What a tune shows: the trial table, each variant's chosen settings (with a warning
when the best value sits at the edge of its range), the playbook's isolation plots and
the trials in TensorBoard's HParams view.

The chosen settings are read from the trial table, not from Optuna's ``best_trial``:
the completed trial with the highest validation accuracy (the earliest of equals), so
what a reader checks in ``trials.csv`` is what was chosen.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

from kerasbn._io import atomic_path  # noqa: E402
from kerasbn.tensorboard import write_hparams, write_hparams_config  # noqa: E402
from kerasbn.tuning.space import INTEGER_PARAMS, Range, range_of  # noqa: E402
from kerasbn.tuning.study import RETRY_OF, SURPLUS  # noqa: E402

__all__ = [
    "TRIAL_COLUMNS",
    "best_settings",
    "edge_notes",
    "plot_isolation",
    "state_counts",
    "trial_table",
    "tuning_markdown",
    "write_trial_hparams",
]

TRIAL_COLUMNS = [
    "variant",
    "trial",
    "state",
    "val_accuracy",
    "epochs",
    "seconds",
    "diverged",
    "retry_of",
]


def trial_table(studies: Mapping[str, object]) -> pd.DataFrame:
    """One row per trial of each variant's study (surplus trials left out): its state
    (``complete``, ``pruned``, ``failed``, ``running``), validation accuracy (the last
    epoch's; for a pruned trial the last one it reached), epochs, seconds, and values."""
    rows = []
    for variant, study in studies.items():
        for trial in study.get_trials(deepcopy=False):
            if trial.user_attrs.get(SURPLUS):
                continue
            reached = trial.intermediate_values
            last = reached[max(reached)] if reached else math.nan
            value = trial.value if trial.state == TrialState.COMPLETE else last
            rows.append(
                {
                    "variant": variant,
                    "trial": trial.number,
                    "state": _STATE_NAMES.get(trial.state, trial.state.name.lower()),
                    "val_accuracy": value,
                    "epochs": trial.user_attrs.get("epochs", len(reached)),
                    "seconds": trial.user_attrs.get("seconds", math.nan),
                    "diverged": bool(trial.user_attrs.get("diverged")),
                    "retry_of": trial.user_attrs.get(RETRY_OF),
                    **trial.params,
                }
            )
    table = pd.DataFrame(rows)
    if table.empty:
        return pd.DataFrame(columns=TRIAL_COLUMNS)
    return table


_STATE_NAMES = {
    TrialState.COMPLETE: "complete",
    TrialState.PRUNED: "pruned",
    TrialState.FAIL: "failed",
    TrialState.RUNNING: "running",
    TrialState.WAITING: "queued",
}


def param_columns(trials: pd.DataFrame) -> list[str]:
    return [c for c in trials.columns if c not in TRIAL_COLUMNS]


def best_settings(trials: pd.DataFrame) -> dict[str, dict]:
    """Per variant: the values of its completed trial with the highest validation
    accuracy (ties: the earliest trial), with ``trial`` and ``val_accuracy``."""
    chosen = {}
    for variant, rows in trials.groupby("variant", sort=False):
        done = rows[(rows["state"] == "complete") & rows["val_accuracy"].notna()]
        if done.empty:
            raise ValueError(
                f"No trial of {variant!r} completed (all were pruned, diverged or failed): "
                "widen the search space or raise --trials. Received: "
                f"{len(rows)} trials"
            )
        best = done.sort_values(["val_accuracy", "trial"], ascending=[False, True]).iloc[0]
        values = {c: _plain(c, best[c]) for c in param_columns(trials) if pd.notna(best[c])}
        chosen[variant] = {
            "trial": int(best["trial"]),
            "val_accuracy": float(best["val_accuracy"]),
            "params": values,
        }
    return chosen


def _plain(param: str, value):
    """A table cell as the Python number the setting takes (a column with gaps is float)."""
    value = value.item() if hasattr(value, "item") else value
    return int(value) if param in INTEGER_PARAMS else float(value)


def edge_notes(best: Mapping[str, dict], spaces: Mapping[str, Mapping[str, Range]]) -> list[str]:
    """A sentence for every chosen value in the outer 5% of its range."""
    notes = []
    for variant, choice in best.items():
        for param, value in choice["params"].items():
            span = range_of(param, spaces[variant])
            side = span.edge(float(value))
            if side is not None:
                notes.append(
                    f"{variant}: {param} = {value:.3g} is at the {side} edge of its range "
                    f"{span.low:g}..{span.high:g}; the best value may lie beyond it: widen "
                    f"the range (--range {span.name}=...) and tune again."
                )
    return notes


def plot_isolation(
    trials: pd.DataFrame,
    best: Mapping[str, dict],
    spaces: Mapping[str, Mapping[str, Range]],
    path: Path,
) -> None:
    """Per variant (rows) and tuned value (columns): every trial's validation accuracy
    against that value, pruned trials hollow, the chosen trial starred."""
    variants = list(best)
    params = param_columns(trials)
    fig, axes = plt.subplots(
        len(variants),
        len(params),
        figsize=(3.6 * len(params), 2.8 * len(variants)),
        squeeze=False,
        constrained_layout=True,
    )
    for i, variant in enumerate(variants):
        rows = trials[trials["variant"] == variant]
        for j, param in enumerate(params):
            ax = axes[i][j]
            have = rows[rows[param].notna()] if param in rows else rows.iloc[:0]
            if have.empty:
                ax.set_axis_off()
                ax.set_title(f"{variant}: {param} not tuned", fontsize=9)
                continue
            span = range_of(param, spaces[variant])
            done = have[have["state"] == "complete"]
            cut = have[have["state"] == "pruned"]
            ax.scatter(done[param], 100 * done["val_accuracy"], s=18, color="tab:blue")
            ax.scatter(
                cut[param],
                100 * cut["val_accuracy"],
                s=18,
                facecolors="none",
                edgecolors="tab:gray",
                label="pruned (last epoch reached)",
            )
            chosen = best[variant]
            if param in chosen["params"]:
                ax.scatter(
                    [chosen["params"][param]],
                    [100 * chosen["val_accuracy"]],
                    marker="*",
                    s=160,
                    color="tab:red",
                    label="chosen",
                )
            ax.axvspan(span.low, span.high, color="0.95", zorder=-1)
            if span.log:
                ax.set_xscale("log")
            ax.set_xlabel(param)
            ax.set_ylabel("val accuracy (%)")
            ax.set_title(variant, fontsize=9)
            if i == 0 and j == 0:
                ax.legend(fontsize=7)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def write_trial_hparams(
    root: Path, trials: pd.DataFrame, fixed: Mapping[str, Mapping[str, float]]
) -> None:
    """Each finished trial as a run in TensorBoard's HParams view. A value a variant
    does not tune is shown at its fixed setting (``fixed[variant]``), so every run has
    every column."""
    params = param_columns(trials)
    every = []
    for row in trials.itertuples(index=False):
        row = row._asdict()
        if row["state"] not in ("complete", "pruned"):
            continue
        variant = row["variant"]
        run = f"{variant}-trial{row['trial']}"
        hparams = {"variant": variant}
        for param in params:
            value = row.get(param)
            if value is None or (isinstance(value, float) and math.isnan(value)):
                value = fixed[variant].get(param, 0.0)
            hparams[param] = float(value)
        every.append(hparams)
        if (root / run).exists():  # written by an earlier call on this folder
            continue
        metrics = {"best_val_accuracy": row["val_accuracy"], "epochs": row["epochs"]}
        write_hparams(root, run, hparams, metrics)
    # The tuned values vary over a range: declared so, they show without ticking.
    write_hparams_config(root, every)


def state_counts(trials: pd.DataFrame, variant: str) -> dict[str, int]:
    """How many of ``variant``'s trials completed and how many were pruned."""
    counts = trials.loc[trials["variant"] == variant, "state"].value_counts()
    return {state: int(counts.get(state, 0)) for state in ("complete", "pruned")}


def tuning_markdown(
    best: Mapping[str, dict],
    trials: pd.DataFrame,
    spaces: Mapping[str, Mapping[str, Range]],
    epochs: int,
) -> str:
    """The chosen settings per variant, the trial counts, and any edge warnings."""
    lines = [
        f"Each variant's values: its completed trial with the highest validation accuracy "
        f"after {epochs} epochs (test set not used).",
        "",
    ]
    table = []
    for variant, choice in best.items():
        counts = state_counts(trials, variant)
        values = ", ".join(f"{k} {v:.3g}" for k, v in choice["params"].items())
        ranges = ", ".join(f"{name} {s.low:g}..{s.high:g}" for name, s in spaces[variant].items())
        table.append(
            {
                "variant": variant,
                "chosen": values,
                "val accuracy": f"{100 * choice['val_accuracy']:.2f}%",
                "trial": choice["trial"],
                "completed": counts["complete"],
                "pruned": counts["pruned"],
                "ranges": ranges,
            }
        )
    lines.append(pd.DataFrame(table).to_markdown(index=False))
    notes = edge_notes(best, spaces)
    if notes:
        lines += ["", *[f"- {note}" for note in notes]]
    return "\n".join(lines) + "\n"

"""smoothness: BN makes the loss landscape smoother (Santurkar et al. 2018, "How Does
Batch Normalization Help Optimization?", figure 4).

``base`` and ``bn`` of the data set's VGG-style CNN (the CIFAR-10 preset: 3x3 conv
blocks of 32, 64-64, 128-128 filters, a dense head) are trained with SGD (momentum 0.9,
constant rate, no augmentation) on the first ``train_images`` training images, at each
of the ``learning_rates``. Every ``probe_every`` steps, on the step's own batch, with the
loss L as training computes it (BN on batch statistics) and its gradient g at the
weights w, the probe moves along the gradient to ``w - eta g`` for every step size
``eta = m x learning rate``, m in ``step_multiples``, and records:

* loss landscape variation: the range (max - min) of L over w and those points, and
  how far L rises above L(w) along the way (0 when every step lowers it: the range
  is then all descent, not roughness);
* gradient predictiveness: ``||g - grad L(w - eta g)||`` (l2) at each step size, shown
  as a band from the smallest to the largest;
* effective beta-smoothness: the largest ``||g - grad L(w - eta g)|| / ||eta g||``.

The same three measures are taken along two more grids of steps:

* ``_abs``: absolute distances ``d`` in ``step_distances`` along the unit gradient,
  ``w - d g / ||g||``: the two nets compared at the same distance in weight space (a
  rate multiple moves a net with larger gradients further);
* ``_rel``: the scale-invariant variant: each weight tensor ``w_l`` moves by ``r ||w_l||``
  (``r`` in ``relative_steps``) along its own unit gradient, and gradients are compared
  as ``||w_l|| g_l``. Why: a layer followed by BN computes the same loss at ``c w_l``
  for any ``c > 0``, so its gradient shrinks as ``1 / ||w_l||`` and its curvature as
  ``1 / ||w_l||^2``; weights that grow during training would then make BN look smoother
  on the raw measures without the landscape changing. Relative steps and weight-scaled
  gradients are unchanged by such rescaling.

Each run is repeated for ``seeds`` seeds. The two variants are compared at matched
steps (medians over the probes of a run) and at matched training loss (medians over
the probes nearest to common loss levels), by a paired t-test over seeds of the log10
of each measure (ratios are what is compared), Holm over the variants at each rate.

The probes change nothing: they evaluate the loss at other weights without assigning
them, and training resumes from w. The step-size grids are our choice; the paper states
its figure only as a range of steps along the gradient.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from kerasbn._io import write_text
from kerasbn._signals import raise_if_stopped
from kerasbn.experiments._common import (
    ExperimentResult,
    first_images,
    json_unit,
    pyplot,
    save_figure,
    write_outputs,
)
from kerasbn.experiments._inference import judge_each, judged_each_markdown
from kerasbn.experiments.smoothness_probe import loss_and_gradient, probe
from kerasbn.models import build_model
from kerasbn.training import compile_classifier

__all__ = ["QUICK", "Config", "loss_and_gradient", "probe", "run"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Config:
    dataset: str = "cifar10"
    variants: tuple[str, ...] = ("base", "bn")
    learning_rates: tuple[float, ...] = (0.01, 0.05, 0.2)
    step_multiples: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0)
    steps: int = 400
    probe_every: int = 25
    batch_size: int = 128
    momentum: float = 0.9
    train_images: int | None = 10_000
    seeds: int = 3
    step_distances: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3)  # absolute, in weight space
    relative_steps: tuple[float, ...] = (0.001, 0.003, 0.01, 0.03)  # x each tensor's norm
    loss_levels: int = 5  # matched-loss comparison: common training-loss levels


QUICK = {
    "dataset": "digits",
    "learning_rates": (0.05,),
    "step_multiples": (0.5, 2.0),
    "steps": 20,
    "probe_every": 10,
    "batch_size": 64,
    "train_images": None,
    "seeds": 2,
    "step_distances": (0.1,),
    "relative_steps": (0.01,),
    "loss_levels": 2,
}


def _one_run(config: Config, data, variant: str, lr: float, seed: int) -> list[dict]:
    keras.utils.set_random_seed(seed)
    model = build_model(config.dataset, variant, augment=False, seed=seed)
    compile_classifier(model, keras.optimizers.SGD(lr, momentum=config.momentum))
    rng = np.random.default_rng(seed)
    x, y = data.x_train, data.y_train
    order = rng.permutation(len(x))
    rows, position = [], 0
    for step in range(1, config.steps + 1):
        raise_if_stopped()
        if position + config.batch_size > len(x):  # a new epoch, reshuffled
            order, position = rng.permutation(len(x)), 0
        batch = order[position : position + config.batch_size]
        position += config.batch_size
        images, labels = x[batch], y[batch]
        if step == 1 or step % config.probe_every == 0:
            row = probe(
                model,
                images,
                labels,
                lr,
                config.step_multiples,
                config.step_distances,
                config.relative_steps,
            )
            rows.append(
                {"variant": variant, "learning_rate": lr, "seed": seed, "step": step, **row}
            )
            if not np.isfinite(row["loss"]):
                log.info("%s lr %g: the loss is no longer finite at step %d", variant, lr, step)
                break
        model.train_on_batch(images, labels)
    log.info("%s lr %g seed %d: %d probes", variant, lr, seed, len(rows))
    return rows


def plot(history: pd.DataFrame, config: Config, path: Path) -> Path:
    plt = pyplot()
    rates = list(config.learning_rates)
    fig, axes = plt.subplots(len(rates), 3, figsize=(15, 3.4 * len(rates)), squeeze=False)
    colours = dict(zip(config.variants, ("tab:orange", "tab:blue", "tab:green"), strict=False))
    for row, lr in zip(axes, rates, strict=True):
        for variant in config.variants:
            mine = history[(history.variant == variant) & (history.learning_rate == lr)]
            h = mine.groupby("step").mean(numeric_only=True).reset_index()  # over seeds
            c = colours.get(variant)
            row[0].fill_between(h.step, h.loss_min, h.loss_max, color=c, alpha=0.4, label=variant)
            row[0].plot(h.step, h.loss, color=c, lw=0.8, ls="--")  # L(w) itself
            row[1].fill_between(
                h.step, h.grad_change_min, h.grad_change_max, color=c, alpha=0.4, label=variant
            )
            row[2].plot(h.step, h.beta_smoothness, color=c, marker=".", label=variant)
            if "beta_smoothness_rel" in h:
                row[2].plot(
                    h.step, h.beta_smoothness_rel, color=c, ls=":", label=f"{variant}, scale-inv."
                )
        row[0].set_ylabel(f"lr {lr:g}\nloss along the gradient\n(dashed: at w)")
        row[1].set_ylabel("||g - g(w - eta g)||")
        row[2].set_ylabel("max gradient change / distance")
        for ax in row:
            ax.set_yscale("log")
            ax.grid(alpha=0.3, which="both")
            ax.legend(fontsize=8)
    titles = ("loss landscape", "gradient predictiveness", "effective beta-smoothness")
    for ax, title in zip(axes[0], titles, strict=True):
        ax.set_title(title)
    for ax in axes[-1]:
        ax.set_xlabel("training step")
    multiples = ", ".join(f"{m:g}" for m in config.step_multiples)
    fig.suptitle(
        f"{config.dataset}: bands over step sizes eta = ({multiples}) x learning rate, "
        f"batch {config.batch_size}; mean over {config.seeds} seed(s)"
    )
    fig.tight_layout()
    return save_figure(fig, path)


# The measures compared between the variants (together one family at a rate), and
# their names in the tables.
MEASURES = {
    "loss_range": "loss range (rate multiples)",
    "beta_smoothness": "beta-smoothness (rate multiples)",
    "beta_smoothness_abs": "beta-smoothness (absolute steps)",
    "beta_smoothness_rel": "beta-smoothness (scale-invariant)",
    "beta_smoothness_at_loss": "beta-smoothness at matched loss",
    "beta_smoothness_rel_at_loss": "scale-invariant beta at matched loss",
}
_AT_LOSS = ("beta_smoothness", "beta_smoothness_rel")  # also read at matched loss


def _matched_loss(history: pd.DataFrame, levels: int) -> pd.DataFrame:
    """Per run (variant, rate, seed): the median of each of ``_AT_LOSS`` over the probes
    nearest (in log loss) to ``levels`` training-loss levels common to every run at that
    rate, spaced geometrically over the range all of them pass through. NaN where the
    runs of a rate share no range."""
    rows = []
    for lr, at_rate in history.groupby("learning_rate", sort=False):
        runs = at_rate[np.isfinite(at_rate["loss"]) & (at_rate["loss"] > 0)]
        grouped = runs.groupby(["variant", "seed"], sort=False)
        low, high = grouped["loss"].min().max(), grouped["loss"].max().min()
        targets = np.geomspace(low, high, levels) if low < high else None
        for (variant, seed), mine in grouped:
            row = {"variant": variant, "learning_rate": lr, "seed": seed}
            for measure in _AT_LOSS:
                value = np.nan
                if targets is not None and measure in mine:
                    logs = np.log(mine["loss"].to_numpy())
                    nearest = [int(np.argmin(np.abs(logs - np.log(t)))) for t in targets]
                    value = float(np.nanmedian(mine[measure].to_numpy()[nearest]))
                row[f"{measure}_at_loss"] = value
            rows.append(row)
    return pd.DataFrame(rows)


def per_run(history: pd.DataFrame, levels: int) -> pd.DataFrame:
    """Per variant, rate and seed: the median over the probes of each measure (with the
    rise of the loss above L(w) along the gradient), the same at matched loss, the last
    probe's training loss, and log10 of each compared measure."""
    history = history.assign(loss_rise=history["loss_max"] - history["loss"])
    keys = ["variant", "learning_rate", "seed"]
    grouped = history.groupby(keys, sort=False)
    columns = [c for c in history.columns if c in {*MEASURES, "loss_rise", "grad_change_max"}]
    runs = grouped[columns].median()
    runs["probes"] = grouped.size()
    runs["last_loss"] = grouped["loss"].last()
    runs = runs.reset_index().merge(_matched_loss(history, levels), on=keys)
    for measure in MEASURES:
        if measure in runs:
            with np.errstate(divide="ignore", invalid="ignore"):
                runs[f"log10_{measure}"] = np.log10(runs[measure].astype(float))
    return runs


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """Per variant and rate: the mean and std over seeds of each run's medians."""
    grouped = runs.groupby(["variant", "learning_rate"], sort=False)
    columns = [c for c in runs.columns if c not in {"variant", "learning_rate", "seed"}]
    summary = grouped[columns].mean()
    for measure in MEASURES:
        if measure in runs:
            summary[f"{measure}_std"] = grouped[measure].std(ddof=1)
    summary["seeds"] = grouped.size()
    return summary.reset_index()


def _cell(summary: pd.DataFrame, measure: str) -> list[str]:
    if measure not in summary:
        return ["–"] * len(summary)
    std = summary.get(f"{measure}_std", pd.Series(np.nan, index=summary.index))
    return [
        f"{m:.3g}" + ("" if pd.isna(s) else f" ± {s:.2g}")
        for m, s in zip(summary[measure], std, strict=True)
    ]


def run(config: Config, out_dir: Path, data_dir=None) -> ExperimentResult:
    if not config.step_multiples or min(config.step_multiples) <= 0:
        raise ValueError(f"step_multiples must be positive. Received: {config.step_multiples}")
    for name in ("step_distances", "relative_steps"):
        if any(v <= 0 for v in getattr(config, name)):
            raise ValueError(f"{name} must be positive. Received: {getattr(config, name)}")
    if config.seeds < 1 or config.loss_levels < 1:
        raise ValueError(
            "seeds and loss_levels must be 1 or more. "
            f"Received: seeds={config.seeds}, loss_levels={config.loss_levels}"
        )
    data = first_images(config.dataset, data_dir, train=config.train_images)
    units = Path(out_dir) / "units"
    rows = []
    for seed in range(config.seeds):  # seed-major: a stopped run keeps whole seeds
        for lr in config.learning_rates:
            for variant in config.variants:
                labels = {"variant": variant, "lr": f"{lr:g}", "seed": seed}
                compute = partial(_one_run, config, data, variant, lr, seed)
                rows += json_unit(units, labels, compute)
    history = pd.DataFrame(rows)
    runs = per_run(history, config.loss_levels)
    summary = summarize(runs)
    baseline = "base" if "base" in config.variants else config.variants[0]
    compared = {f"log10_{m}": ("rougher", "smoother") for m in MEASURES if f"log10_{m}" in runs}
    verdicts = judge_each(
        runs,
        group="learning_rate",
        by="variant",
        baseline=baseline,
        dataset=config.dataset,
        metrics=compared,
        # The measures are six readings of one question (is BN's landscape smoother at
        # this rate?): one family per rate, or each would go uncorrected.
        one_family=True,
    )
    table = pd.DataFrame(
        {
            "variant": [f"`{v}`" for v in summary.variant],
            "lr": summary.learning_rate.map("{:g}".format),
            "seeds": summary.seeds.astype(str),
            **{title: _cell(summary, m) for m, title in MEASURES.items()},
            "loss rise above L(w)": summary.loss_rise.map("{:.3g}".format),
            "training loss at the last probe": summary.last_loss.map("{:.3f}".format),
        }
    ).to_markdown(index=False, disable_numparse=True)
    verdict_text = judged_each_markdown(
        verdicts,
        group="learning_rate",
        group_title="rate",
        titles={f"log10_{m}": f"log10 {title}" for m, title in MEASURES.items()},
        delta_title="Δ log10 (−: smoother)",
        points=False,
        one_family=True,
    )
    notes = (
        f"{config.dataset}, first {len(data.x_train)} training images, batch "
        f"{config.batch_size}, SGD momentum {config.momentum}, {config.steps} steps, a "
        f"probe every {config.probe_every} steps; step sizes "
        f"{list(config.step_multiples)} x the learning rate, absolute distances "
        f"{list(config.step_distances)}, relative steps {list(config.relative_steps)} x "
        f"each tensor's norm; {config.seeds} seed(s). Each run's medians over its probes "
        f"(at matched loss: over the probes nearest {config.loss_levels} common loss "
        "levels), then mean ± std over seeds."
    )
    result = ExperimentResult("smoothness", summary, history, notes=notes)
    result.figures.append(plot(history, config, Path(out_dir) / "smoothness.png"))
    runs.to_csv(Path(out_dir) / "runs.csv", index=False)
    write_text(Path(out_dir) / "verdicts.csv", verdicts.to_csv(index=False))
    return write_outputs(result, out_dir, "smoothness", f"{table}\n\n{verdict_text}")

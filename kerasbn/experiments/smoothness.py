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

The probes change nothing: they evaluate the loss at other weights without assigning
them, and training resumes from w. The step-size grid (multiples of the rate) is our
choice; the paper states its figure only as a range of steps along the gradient.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from kerasbn._signals import raise_if_stopped
from kerasbn.experiments._common import (
    ExperimentResult,
    first_images,
    json_unit,
    pyplot,
    save_figure,
    write_outputs,
)
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
    seed: int = 0


QUICK = {
    "dataset": "digits",
    "learning_rates": (0.05,),
    "step_multiples": (0.5, 2.0),
    "steps": 20,
    "probe_every": 10,
    "batch_size": 64,
    "train_images": None,
}


def loss_and_gradient(model: keras.Model, weights: list, images, labels):
    """The training loss (BN on batch statistics, random layers active as in training)
    of ``model`` with its trainable weights set to ``weights`` (arrays in the order of
    ``model.trainable_variables``), and its gradient as NumPy arrays. Nothing is
    assigned: the model's own weights and BN statistics stay as they are."""
    non_trainable = [v.value for v in model.non_trainable_variables]
    loss_fn = keras.losses.SparseCategoricalCrossentropy()

    def loss_of(trainable):
        outputs, _ = model.stateless_call(trainable, non_trainable, images, training=True)
        return loss_fn(labels, outputs)

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        trainable = [tf.convert_to_tensor(w) for w in weights]
        with tf.GradientTape() as tape:
            tape.watch(trainable)
            loss = loss_of(trainable)
        grads = tape.gradient(loss, trainable)
    elif backend == "jax":
        import jax

        loss, grads = jax.value_and_grad(loss_of)([jax.numpy.asarray(w) for w in weights])
    else:
        raise ValueError(
            "the smoothness probe computes gradients on the tensorflow or jax backend; set "
            f"KERAS_BACKEND to one of them. Received: {backend!r}"
        )
    return float(loss), [np.asarray(g, dtype=np.float64) for g in grads]


def _norm(arrays) -> float:
    return float(np.sqrt(sum(np.sum(np.square(a)) for a in arrays)))


def probe(model: keras.Model, images, labels, learning_rate: float, multiples) -> dict:
    """The three smoothness measures at the model's current weights on one batch."""
    weights = [np.asarray(v.numpy()) for v in model.trainable_variables]
    loss, grad = loss_and_gradient(model, weights, images, labels)
    grad_norm = _norm(grad)
    losses, changes, betas = [loss], [], []
    for m in multiples:
        eta = m * learning_rate
        moved = [(w - eta * g).astype(w.dtype) for w, g in zip(weights, grad, strict=True)]
        moved_loss, moved_grad = loss_and_gradient(model, moved, images, labels)
        change = _norm([a - b for a, b in zip(grad, moved_grad, strict=True)])
        losses.append(moved_loss)
        changes.append(change)
        betas.append(change / (eta * grad_norm) if grad_norm > 0 else np.nan)
    finite = np.isfinite(losses).all() and np.isfinite(changes).all()
    return {
        "loss": loss,
        "grad_norm": grad_norm,
        "loss_min": float(np.min(losses)) if finite else np.nan,
        "loss_max": float(np.max(losses)) if finite else np.nan,
        "loss_range": float(np.ptp(losses)) if finite else np.nan,
        "grad_change_min": float(np.min(changes)) if finite else np.nan,
        "grad_change_max": float(np.max(changes)) if finite else np.nan,
        "beta_smoothness": float(np.max(betas)) if finite else np.nan,
        "grad_changes": [float(c) for c in changes],
    }


def _one_run(config: Config, data, variant: str, lr: float) -> list[dict]:
    keras.utils.set_random_seed(config.seed)
    model = build_model(config.dataset, variant, augment=False, seed=config.seed)
    compile_classifier(model, keras.optimizers.SGD(lr, momentum=config.momentum))
    rng = np.random.default_rng(config.seed)
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
            row = probe(model, images, labels, lr, config.step_multiples)
            rows.append({"variant": variant, "learning_rate": lr, "step": step, **row})
            if not np.isfinite(row["loss"]):
                log.info("%s lr %g: the loss is no longer finite at step %d", variant, lr, step)
                break
        model.train_on_batch(images, labels)
    log.info("%s lr %g: %d probes", variant, lr, len(rows))
    return rows


def plot(history: pd.DataFrame, config: Config, path: Path) -> Path:
    plt = pyplot()
    rates = list(config.learning_rates)
    fig, axes = plt.subplots(len(rates), 3, figsize=(15, 3.4 * len(rates)), squeeze=False)
    colours = dict(zip(config.variants, ("tab:orange", "tab:blue", "tab:green"), strict=False))
    for row, lr in zip(axes, rates, strict=True):
        for variant in config.variants:
            h = history[(history.variant == variant) & (history.learning_rate == lr)]
            c = colours.get(variant)
            row[0].fill_between(h.step, h.loss_min, h.loss_max, color=c, alpha=0.4, label=variant)
            row[0].plot(h.step, h.loss, color=c, lw=0.8, ls="--")  # L(w) itself
            row[1].fill_between(
                h.step, h.grad_change_min, h.grad_change_max, color=c, alpha=0.4, label=variant
            )
            row[2].plot(h.step, h.beta_smoothness, color=c, marker=".", label=variant)
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
        f"batch {config.batch_size}"
    )
    fig.tight_layout()
    return save_figure(fig, path)


def summarize(history: pd.DataFrame) -> pd.DataFrame:
    """Per variant and rate: the median over the probes of each measure (with the rise of
    the loss above L(w) along the gradient), and the last probe's training loss."""
    history = history.assign(loss_rise=history["loss_max"] - history["loss"])
    grouped = history.groupby(["variant", "learning_rate"], sort=False)
    columns = ["loss_range", "loss_rise", "grad_change_max", "beta_smoothness"]
    summary = grouped[columns].median()
    summary["probes"] = grouped.size()
    summary["last_loss"] = grouped["loss"].last()
    return summary.reset_index()


def run(config: Config, out_dir: Path, data_dir=None) -> ExperimentResult:
    if not config.step_multiples or min(config.step_multiples) <= 0:
        raise ValueError(f"step_multiples must be positive. Received: {config.step_multiples}")
    data = first_images(config.dataset, data_dir, train=config.train_images)
    units = Path(out_dir) / "units"
    rows = []
    for lr in config.learning_rates:
        for variant in config.variants:
            labels = {"variant": variant, "lr": f"{lr:g}", "seed": config.seed}
            rows += json_unit(units, labels, partial(_one_run, config, data, variant, lr))
    history = pd.DataFrame(rows)
    summary = summarize(history)
    table = pd.DataFrame(
        {
            "variant": [f"`{v}`" for v in summary.variant],
            "lr": summary.learning_rate.map("{:g}".format),
            "loss range (median)": summary.loss_range.map("{:.3g}".format),
            "loss rise above L(w) (median)": summary.loss_rise.map("{:.3g}".format),
            "max gradient change (median)": summary.grad_change_max.map("{:.3g}".format),
            "beta-smoothness (median)": summary.beta_smoothness.map("{:.3g}".format),
            "training loss at the last probe": summary.last_loss.map("{:.3f}".format),
        }
    ).to_markdown(index=False, disable_numparse=True)
    notes = (
        f"{config.dataset}, first {len(data.x_train)} training images, batch "
        f"{config.batch_size}, SGD momentum {config.momentum}, {config.steps} steps, a "
        f"probe every {config.probe_every} steps; step sizes "
        f"{list(config.step_multiples)} x the learning rate; seed {config.seed}. Medians "
        "over the probes of one run each."
    )
    result = ExperimentResult("smoothness", summary, history, notes=notes)
    result.figures.append(plot(history, config, Path(out_dir) / "smoothness.png"))
    return write_outputs(result, out_dir, "smoothness", table)

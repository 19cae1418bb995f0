"""ioffe-szegedy-mnist: the MNIST study of Ioffe & Szegedy (2015, section 4.1) as written.

Three fully connected hidden layers of 100 sigmoid units, weights drawn from a small
Gaussian, a 10-way softmax with cross-entropy, plain SGD on mini-batches of 60 for
50,000 steps, with and without BN before each sigmoid. The paper's figure 1: (a) test
accuracy against training steps, (b, c) the 15th, 50th and 85th percentiles of the
input of one sigmoid of the last hidden layer over training. The paper names neither
its learning rate nor the scale of its Gaussian; this uses 0.1 for both (``Config``),
and MNIST's pixels scaled to [0, 1] where the paper says "binary" images.

Test accuracy and the percentiles are taken every 1,000 steps (an "epoch" here is
1,000 steps over 60,000 training images, so the full run sees each image 50 times);
the percentiles on 1,000 fixed test images, in inference mode (BN's moving averages).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from kerasbn.data import load_dataset
from kerasbn.diagnostics.activations import PERCENTILES
from kerasbn.experiments._common import (
    ExperimentResult,
    mean_std,
    pyplot,
    save_figure,
    train_versions,
    whole_training_set,
    with_and_without_bn,
    write_outputs,
)
from kerasbn.experiments._inference import ACCURACY, judge, read_correct

__all__ = ["QUICK", "Config", "build", "run", "steps_to_reach"]


@dataclass(frozen=True)
class Config:
    steps: int = 50_000
    eval_every: int = 1000  # steps between test evaluations
    batch_size: int = 60
    hidden_units: tuple[int, ...] = (100, 100, 100)
    learning_rate: float = 0.1
    init_stddev: float = 0.1
    seeds: int = 3
    probe_images: int = 1000  # fixed test images the sigmoid input is measured on
    unit: int = 0  # which sigmoid of the last hidden layer is followed


QUICK = {"steps": 400, "eval_every": 100, "seeds": 2, "probe_images": 200}


def build(config: Config, batch_norm: bool) -> keras.Model:
    """The paper's MLP; layers ``dense{i}``, ``bn{i}`` (with BN), ``sigmoid{i}``."""
    init = keras.initializers.RandomNormal(stddev=config.init_stddev)
    inputs = keras.Input((28, 28, 1), dtype="uint8", name="image")
    x = keras.layers.Rescaling(1 / 255, name="rescale")(inputs)
    x = keras.layers.Flatten(name="flatten")(x)
    for i, units in enumerate(config.hidden_units, start=1):
        x = keras.layers.Dense(
            units, use_bias=not batch_norm, kernel_initializer=init, name=f"dense{i}"
        )(x)
        if batch_norm:
            x = keras.layers.BatchNormalization(name=f"bn{i}")(x)
        x = keras.layers.Activation("sigmoid", name=f"sigmoid{i}")(x)
    outputs = keras.layers.Dense(
        10, activation="softmax", kernel_initializer=init, name="predictions"
    )(x)
    return keras.Model(inputs, outputs)


def _sigmoid_input(config: Config, images: np.ndarray):
    """``extra`` for :func:`train_versions`: percentiles of the followed unit's input."""
    last = f"sigmoid{len(config.hidden_units)}"

    def measure(model: keras.Model) -> dict:
        probe = keras.Model(model.input, model.get_layer(last).input)
        values = keras.ops.convert_to_numpy(probe(images, training=False))[:, config.unit]
        found = np.percentile(values, PERCENTILES)
        return {f"p{p}": float(v) for p, v in zip(PERCENTILES, found, strict=True)}

    return measure


def steps_to_reach(history: pd.DataFrame, accuracy: float) -> float:
    """The first evaluated step with test accuracy at or above ``accuracy`` (NaN if none)."""
    reached = history.loc[history["test_accuracy"] >= accuracy, "step"]
    return float(reached.min()) if len(reached) else float("nan")


def run(config: Config, out_dir: Path, data_dir=None) -> ExperimentResult:
    if config.steps % config.eval_every:
        raise ValueError(
            f"steps must be a multiple of eval_every ({config.eval_every}). "
            f"Received: {config.steps}"
        )
    data = load_dataset("mnist", data_dir)
    x_train, y_train = whole_training_set(data)
    x_train, y_train = (a[: config.eval_every * config.batch_size] for a in (x_train, y_train))
    probe = data.x_test[: config.probe_images]
    history = train_versions(
        with_and_without_bn(partial(build, config)),
        lambda: keras.optimizers.SGD(config.learning_rate),
        x_train,
        y_train,
        epochs=config.steps // config.eval_every,
        batch_size=config.batch_size,
        seeds=range(config.seeds),
        validation=(data.x_test, data.y_test),
        extra=_sigmoid_input(config, probe),
        units=Path(out_dir) / "units",
        score=(data.x_test, data.y_test, Path(out_dir) / "correct"),
    ).rename(columns={"val_loss": "test_loss", "val_accuracy": "test_accuracy"})
    history["step"] = history["epoch"] * config.eval_every
    mean = history.groupby(["version", "step"], sort=False)["test_accuracy"].mean().reset_index()
    final = {v: g["test_accuracy"].iloc[-1] for v, g in mean.groupby("version", sort=False)}
    last = history[history["step"] == config.steps]
    # The headline tests: BN's final test accuracy against the plain net's, paired seed
    # by seed with the test images' own noise in the interval; and "sooner": the test
    # accuracy at the first tenth of training, paired over seeds.
    early_step = _early_step(config)
    early = history.loc[history["step"] == early_step, ["version", "seed", "test_accuracy"]]
    last = last.merge(
        early.rename(columns={"test_accuracy": "test_accuracy_early"}), on=["version", "seed"]
    )
    judged = judge(
        last,
        by="version",
        baseline="no BN",
        dataset="mnist",
        metrics={**ACCURACY, "test_accuracy_early": ("higher", "lower")},
        correct=read_correct(Path(out_dir) / "correct", last, "version"),
    )
    rows = []
    for version, g in last.groupby("version", sort=False):
        other = "BN" if version == "no BN" else "no BN"
        rows.append(
            {
                "version": version,
                "seeds": len(g),
                "test_accuracy_mean": g["test_accuracy"].mean(),
                "test_accuracy_std": g["test_accuracy"].std(ddof=1),
                "early_step": early_step,
                "test_accuracy_early_mean": g["test_accuracy_early"].mean(),
                # On the seed-mean curve: when this version reaches the other's final accuracy.
                "steps_to_other_final": steps_to_reach(
                    mean[mean["version"] == version], final[other]
                ),
                # How far the median wandered: its range over the evaluations, per seed.
                "p50_range": _per_seed(history, version, lambda r: r["p50"].max() - r["p50"].min()),
                "width_first": _per_seed(history, version, lambda r: _width(r).iloc[0]),
                "width_last": _per_seed(history, version, lambda r: _width(r).iloc[-1]),
                "verdict": "baseline" if version == "no BN" else judged.word(version),
            }
        )
    summary = pd.DataFrame(rows)
    table = pd.DataFrame(
        {
            "version": summary["version"],
            "test acc % (mean ± std)": [
                mean_std(
                    history.loc[
                        (history["step"] == config.steps) & (history["version"] == v),
                        "test_accuracy",
                    ]
                )
                for v in summary["version"]
            ],
            f"test acc % at step {early_step:,}": [
                mean_std(last.loc[last["version"] == v, "test_accuracy_early"])
                for v in summary["version"]
            ],
            "steps to the other's final accuracy": [
                "not reached" if np.isnan(s) else f"{s:,.0f}"
                for s in summary["steps_to_other_final"]
            ],
            "sigmoid input median: range over training": summary["p50_range"].map("{:.3f}".format),
            "15th-85th width: first → last evaluation": [
                f"{a:.3f} → {b:.3f}"
                for a, b in zip(summary["width_first"], summary["width_last"], strict=True)
            ],
        }
    ).to_markdown(index=False)
    figure = _plot(history, config, Path(out_dir) / "ioffe_szegedy_mnist.png")
    result = ExperimentResult("ioffe-szegedy-mnist", summary, history, [figure])
    judged.write(out_dir)
    return write_outputs(result, out_dir, "ioffe-szegedy-mnist", f"{table}\n\n{judged.markdown()}")


def _early_step(config: Config) -> int:
    """The evaluation nearest a tenth of training (at least the first)."""
    evaluations = config.steps // config.eval_every
    return max(1, round(evaluations / 10)) * config.eval_every


def _per_seed(history: pd.DataFrame, version: str, measure) -> float:
    """The mean over seeds of ``measure`` on one seed's rows (in step order)."""
    rows = history[history["version"] == version].sort_values("step")
    return float(np.mean([measure(r) for _, r in rows.groupby("seed")]))


def _width(rows: pd.DataFrame) -> pd.Series:
    return rows["p85"] - rows["p15"]


def _plot(history: pd.DataFrame, config: Config, path: Path) -> Path:
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    # One y-axis for both percentile panels, so their spreads compare by eye.
    axes[2].sharey(axes[1])
    colours = {"no BN": "tab:red", "BN": "tab:blue"}
    for version, colour in colours.items():
        rows = history[history["version"] == version].groupby("step").mean(numeric_only=True)
        axes[0].plot(rows.index, rows["test_accuracy"], color=colour, label=version)
    axes[0].set(xlabel="training step", ylabel="test accuracy", title="(a) test accuracy")
    axes[0].legend()
    for ax, (version, colour) in zip(axes[1:], colours.items(), strict=True):
        rows = history[(history["version"] == version) & (history["seed"] == 0)]
        ax.plot(rows["step"], rows["p50"], color=colour)
        ax.fill_between(rows["step"], rows["p15"], rows["p85"], color=colour, alpha=0.25)
        ax.set(xlabel="training step", title=f"({'b' if version == 'no BN' else 'c'}) {version}")
    axes[1].set_ylabel(f"input of sigmoid {config.unit} (last hidden layer)")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.suptitle(
        "Ioffe & Szegedy (2015) MNIST MLP 784-100-100-100-10, sigmoid, SGD "
        f"lr {config.learning_rate}, batch {config.batch_size}; percentiles 15/50/85 (seed 0)"
    )
    fig.tight_layout()
    return save_figure(fig, path)

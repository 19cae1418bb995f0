"""init-scale-sweep: with BN, training no longer depends on the weight scale.

The first 1,000 MNIST training images; an MLP with five hidden layers of 100 ReLU units;
SGD lr 0.01, batch 100, 20 epochs; all weights drawn from N(0, std^2) with std at 16
values spaced logarithmically from 1 to 1e-4; each with and without BN after every
hidden linear layer; ``seeds`` seeds each. Training accuracy is measured on the 1,000
images in inference mode after every epoch. At each scale, BN's final training accuracy
is tested against the plain net's, paired over seeds, each scale its own family. The
claim ("BN trains at every scale") holds only where every scale's test detects it: an
intersection-union test, whose level is each test's, so no correction across scales.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from kerasbn._io import write_text
from kerasbn.data import load_dataset, split_indices
from kerasbn.experiments._common import (
    ExperimentResult,
    pyplot,
    save_figure,
    train_versions,
    write_outputs,
)
from kerasbn.experiments._inference import judge_each, judged_each_markdown

__all__ = ["QUICK", "Config", "run"]


@dataclass(frozen=True)
class Config:
    train_images: int = 1000
    hidden_layers: int = 5
    hidden_units: int = 100
    learning_rate: float = 0.01
    batch_size: int = 100
    epochs: int = 20
    scales: int = 16  # np.logspace(0, -4, scales)
    seeds: int = 3
    # The tutorial's BN layer: eps 10e-7 and running averages with momentum 0.9. Keras'
    # defaults (1e-3, 0.99) break the scale invariance for tiny weights (their pre-BN
    # variance is far below eps) and leave the moving statistics behind in 200 steps.
    bn_epsilon: float = 1e-6
    bn_momentum: float = 0.9


QUICK = {"train_images": 200, "epochs": 1, "scales": 4, "seeds": 2}


def build(config: Config, std: float, batch_norm: bool) -> keras.Model:
    init = keras.initializers.RandomNormal(stddev=std)
    inputs = keras.Input((784,), name="pixels")
    x = inputs
    for i in range(1, config.hidden_layers + 1):
        x = keras.layers.Dense(config.hidden_units, kernel_initializer=init, name=f"dense{i}")(x)
        if batch_norm:
            x = keras.layers.BatchNormalization(
                epsilon=config.bn_epsilon, momentum=config.bn_momentum, name=f"bn{i}"
            )(x)
        x = keras.layers.ReLU(name=f"relu{i}")(x)
    outputs = keras.layers.Dense(
        10, kernel_initializer=init, activation="softmax", name="predictions"
    )(x)
    return keras.Model(inputs, outputs)


def run(config: Config, out_dir: Path, data_dir=None) -> ExperimentResult:
    data = load_dataset("mnist", data_dir)
    x, y = _first_training_images(data, config.train_images)
    x = x.reshape(len(x), -1).astype("float32") / 255.0
    scales = np.logspace(0, -4, config.scales)

    def train_accuracy(model: keras.Model) -> dict:
        # Accuracy on the 1,000 training images in inference mode, as the tutorial plots.
        probs = model.predict(x, batch_size=1000, verbose=0)
        return {"train_accuracy": float(np.mean(probs.argmax(1) == y))}

    history = train_versions(
        [
            ({"weight_std": float(std), "version": version}, partial(build, config, float(std), bn))
            for std in scales
            for version, bn in (("BN", True), ("no BN", False))
        ],
        lambda: keras.optimizers.SGD(config.learning_rate),
        x,
        y,
        epochs=config.epochs,
        batch_size=config.batch_size,
        seeds=range(config.seeds),
        extra=train_accuracy,
        units=Path(out_dir) / "units",
    )
    final = history[history["epoch"] == config.epochs]
    verdicts = judge_each(
        final,
        group="weight_std",
        by="version",
        baseline="no BN",
        dataset="mnist",
        metrics={"train_accuracy": ("better", "worse")},
    )
    grouped = final.groupby(["weight_std", "version"])["train_accuracy"]
    means, stds = grouped.mean().unstack(), grouped.std(ddof=1).unstack()
    words = verdicts.set_index("weight_std")["verdict"] if len(verdicts) else pd.Series()
    summary = pd.DataFrame(
        {
            "weight_std": means.index,
            "bn_final_train_accuracy": means["BN"].to_numpy(),
            "bn_final_train_accuracy_std": stds["BN"].to_numpy(),
            "plain_final_train_accuracy": means["no BN"].to_numpy(),
            "plain_final_train_accuracy_std": stds["no BN"].to_numpy(),
            "seeds": config.seeds,
            "verdict": [words.get(std, "n/a") for std in means.index],
        }
    ).sort_values("weight_std", ascending=False, ignore_index=True)

    def cells(column: str) -> list[str]:
        spread = summary[f"{column}_std"]
        return [
            f"{100 * m:.1f}" + ("" if pd.isna(s) else f" ± {100 * s:.1f}")
            for m, s in zip(summary[column], spread, strict=True)
        ]

    table = pd.DataFrame(
        {
            "weight std": summary["weight_std"].map("{:.2e}".format),
            "BN train acc %": cells("bn_final_train_accuracy"),
            "no-BN train acc %": cells("plain_final_train_accuracy"),
            "BN vs no BN": summary["verdict"],
        }
    ).to_markdown(index=False, disable_numparse=True)
    table += "\n\n" + judged_each_markdown(
        verdicts,
        group="weight_std",
        group_title="weight std",
        titles={"train_accuracy": "final training accuracy"},
        delta_title="Δ train acc (pp)",
        group_format="{:.2e}",
    )

    plt = pyplot()
    side = int(np.ceil(np.sqrt(len(scales))))
    fig, axes = plt.subplots(
        side, side, figsize=(3.2 * side, 2.6 * side), squeeze=False, sharex=True, sharey=True
    )
    for ax, std in zip(axes.flat, scales, strict=False):
        for version, style in (("BN", "-"), ("no BN", "--")):
            mine = history[(history["weight_std"] == float(std)) & (history["version"] == version)]
            h = mine.groupby("epoch", as_index=False)["train_accuracy"].mean()  # over seeds
            ax.plot(
                h["epoch"],
                h["train_accuracy"],
                style,
                color="tab:blue" if version == "BN" else "tab:orange",
                label=version,
            )
        ax.set_title(f"w std = {std:.2e}", fontsize=9)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(scales) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.supxlabel("epoch")
    fig.supylabel("training accuracy")
    fig.suptitle(
        f"MNIST ({config.train_images} images), 5x100 ReLU MLP, SGD lr {config.learning_rate}: "
        f"BN (solid, eps {config.bn_epsilon:g}, momentum {config.bn_momentum:g}) vs none "
        f"(dashed); mean over {config.seeds} seeds"
    )
    fig.tight_layout()
    figure = save_figure(fig, Path(out_dir) / "init_scale_sweep.png")
    result = ExperimentResult("init-scale-sweep", summary, history, [figure])
    write_text(Path(out_dir) / "verdicts.csv", verdicts.to_csv(index=False))
    return write_outputs(result, out_dir, "init-scale-sweep", table)


def _first_training_images(data, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` images of the official MNIST training order.

    load_dataset moved a fixed random 5,000 into validation; putting them back at their
    original indices restores the official order.
    """
    total = len(data.x_train) + len(data.x_val)
    train_idx, val_idx = split_indices(total, len(data.x_val))
    x = np.empty((total, *data.x_train.shape[1:]), np.uint8)
    y = np.empty(total, np.int64)
    x[train_idx], y[train_idx] = data.x_train, data.y_train
    x[val_idx], y[val_idx] = data.x_val, data.y_val
    return x[:n], y[:n]

"""mnist-mlp: a small MLP on MNIST with and without BN after each hidden layer.

MLP 784 -> 32 -> 32 -> 10, Adam lr 0.01, batch 32, 10 epochs, trained on all 60,000
training images; BN uses batch statistics in training and moving statistics when the
test set is evaluated after every epoch (Keras' training / inference modes).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import keras
import pandas as pd

from kerasbn.data import load_dataset
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
from kerasbn.experiments._inference import judge, read_correct

__all__ = ["QUICK", "Config", "run"]


@dataclass(frozen=True)
class Config:
    epochs: int = 10
    learning_rate: float = 0.01
    batch_size: int = 32
    hidden_units: tuple[int, ...] = (32, 32)
    seeds: int = 3
    limit: int | None = None  # training images (None: all 60,000)


QUICK = {"epochs": 1, "seeds": 2, "limit": 2000}


def build(config: Config, batch_norm: bool) -> keras.Model:
    inputs = keras.Input((28, 28, 1), dtype="uint8", name="image")
    x = keras.layers.Rescaling(1 / 255, name="rescale")(inputs)
    x = keras.layers.Flatten(name="flatten")(x)
    for i, units in enumerate(config.hidden_units, start=1):
        x = keras.layers.Dense(units, use_bias=not batch_norm, name=f"dense{i}")(x)
        if batch_norm:
            x = keras.layers.BatchNormalization(name=f"bn{i}")(x)
        x = keras.layers.ReLU(name=f"relu{i}")(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs)


def run(config: Config, out_dir: Path, data_dir=None) -> ExperimentResult:
    data = load_dataset("mnist", data_dir)
    # The tutorial trains on the whole training set and tracks the test set per epoch.
    x_train, y_train = whole_training_set(data)
    if config.limit:
        x_train, y_train = x_train[: config.limit], y_train[: config.limit]
    history = train_versions(
        with_and_without_bn(partial(build, config)),
        lambda: keras.optimizers.Adam(config.learning_rate),
        x_train,
        y_train,
        epochs=config.epochs,
        batch_size=config.batch_size,
        seeds=range(config.seeds),
        validation=(data.x_test, data.y_test),
        units=Path(out_dir) / "units",
        score=(data.x_test, data.y_test, Path(out_dir) / "correct"),
    ).rename(columns={"val_loss": "test_loss", "val_accuracy": "test_accuracy"})
    final = history[history["epoch"] == history["epoch"].max()]
    groups = list(final.groupby("version", sort=False))
    judged = judge(
        final,
        by="version",
        baseline="no BN",
        dataset="mnist",
        correct=read_correct(Path(out_dir) / "correct", final, "version"),
    )
    summary = pd.DataFrame(
        [
            {
                "version": version,
                "seeds": len(g),
                "test_accuracy_mean": g["test_accuracy"].mean(),
                "test_accuracy_std": g["test_accuracy"].std(ddof=1),
                "test_loss_mean": g["test_loss"].mean(),
                "train_accuracy_mean": g["accuracy"].mean(),
                "verdict": "baseline" if version == "no BN" else judged.word(version),
            }
            for version, g in groups
        ]
    )
    table = pd.DataFrame(
        {
            "version": [v for v, _ in groups],
            "test acc % (mean ± std)": [mean_std(g["test_accuracy"]) for _, g in groups],
            "train acc % (last epoch, training mode)": [mean_std(g["accuracy"]) for _, g in groups],
            "test loss": [f"{g['test_loss'].mean():.4f}" for _, g in groups],
        }
    ).to_markdown(index=False)

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for version, colour in (("no BN", "tab:red"), ("BN", "tab:blue")):
        per_epoch = history[history["version"] == version].groupby("epoch").mean(numeric_only=True)
        for ax, metric in ((axes[0], "loss"), (axes[1], "accuracy")):
            ax.plot(per_epoch.index, per_epoch[metric], "-", color=colour, label=f"{version} train")
            ax.plot(
                per_epoch.index,
                per_epoch[f"test_{metric}"],
                "--",
                color=colour,
                label=f"{version} test",
            )
    for ax, metric in ((axes[0], "loss"), (axes[1], "accuracy")):
        ax.set(xlabel="epoch", ylabel=metric, title=f"{metric}: train (solid) vs test (dashed)")
        ax.grid(alpha=0.3)
    axes[1].legend()
    fig.suptitle(
        f"MNIST MLP 784-32-32-10, Adam lr {config.learning_rate} (mean over {config.seeds} seeds)"
    )
    fig.tight_layout()
    figure = save_figure(fig, Path(out_dir) / "mnist_mlp.png")
    result = ExperimentResult("mnist-mlp", summary, history, [figure])
    judged.write(out_dir)
    return write_outputs(result, out_dir, "mnist-mlp", f"{table}\n\n{judged.markdown()}")

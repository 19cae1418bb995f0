"""breast-cancer-mlp: BN on raw, unscaled inputs rescues plain SGD.

scikit-learn's breast-cancer data (569 x 30 features, ranging from ~0.001 to ~4,000),
an MLP 30 -> 10 -> 2 with ReLU, SGD lr 0.01, 30 epochs, a fixed stratified train /
validation split; with and without a BatchNormalization layer on the inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from kerasbn.experiments._common import (
    ExperimentResult,
    mean_std,
    plot_mean_band,
    pyplot,
    save_figure,
    train_versions,
    write_outputs,
)
from kerasbn.experiments._inference import judge

__all__ = ["QUICK", "Config", "run"]

VERSIONS = (("no BN", False), ("BN on inputs", True))
# The tutorial's figures (validation accuracy after 30 epochs).
REFERENCE = {"no BN": 0.614, "BN on inputs": 0.991}


@dataclass(frozen=True)
class Config:
    epochs: int = 30
    learning_rate: float = 0.01
    batch_size: int = 32  # Keras' default, which the tutorial kept
    hidden_units: int = 10
    val_fraction: float = 0.3
    split_seed: int = 1
    seeds: int = 5
    bn_momentum: float = 0.99  # Keras' default, as in the tutorial


QUICK = {"epochs": 2, "seeds": 2}


def load_split(config: Config):
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    x, y = load_breast_cancer(return_X_y=True)
    # Deliberately unscaled: the point is what BN does to raw inputs.
    return train_test_split(
        x.astype("float32"),
        y,
        test_size=config.val_fraction,
        stratify=y,
        random_state=config.split_seed,
    )


def build(config: Config, batch_norm: bool) -> keras.Model:
    inputs = keras.Input((30,), name="features")
    x = (
        keras.layers.BatchNormalization(momentum=config.bn_momentum, name="input_bn")(inputs)
        if batch_norm
        else inputs
    )
    x = keras.layers.Dense(config.hidden_units, activation="relu", name="hidden")(x)
    outputs = keras.layers.Dense(2, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs)


def run(config: Config, out_dir: Path, data_dir=None) -> ExperimentResult:
    x_train, x_val, y_train, y_val = load_split(config)
    history = train_versions(
        [({"version": v}, partial(build, config, bn)) for v, bn in VERSIONS],
        lambda: keras.optimizers.SGD(config.learning_rate),
        x_train,
        y_train,
        epochs=config.epochs,
        batch_size=config.batch_size,
        seeds=range(config.seeds),
        validation=(x_val, y_val),
        units=Path(out_dir) / "units",
    )
    final = history[history["epoch"] == history["epoch"].max()]
    majority = max(np.mean(y_val), 1 - np.mean(y_val))
    # The held-out split chooses nothing here (no tuning, no early stopping): the
    # verdict is on its accuracy, paired over seeds.
    judged = judge(
        final,
        by="version",
        baseline="no BN",
        dataset="breast_cancer",
        metrics={"val_accuracy": ("better", "worse")},
    )
    rows = []
    for version, group in final.groupby("version", sort=False):
        diverged = int((~np.isfinite(group["loss"])).sum())
        rows.append(
            {
                "version": version,
                "seeds": len(group),
                "val_accuracy_mean": group["val_accuracy"].mean(),
                "val_accuracy_std": group["val_accuracy"].std(ddof=1),
                "train_accuracy_mean": group["accuracy"].mean(),
                "diverged_seeds": diverged,
                "tutorial_val_accuracy": REFERENCE[version],
                "verdict": "baseline"
                if version == "no BN"
                else judged.word(version, "val_accuracy"),
            }
        )
    summary = pd.DataFrame(rows)
    table = pd.DataFrame(
        {
            "version": summary["version"],
            "val acc % (mean ± std)": [
                mean_std(g["val_accuracy"]) for _, g in final.groupby("version", sort=False)
            ],
            "tutorial val acc %": (100 * summary["tutorial_val_accuracy"]).map("{:.1f}".format),
            "seeds (diverged)": [
                f"{s} ({d})"
                for s, d in zip(summary["seeds"], summary["diverged_seeds"], strict=True)
            ],
        }
    ).to_markdown(index=False)
    notes = (
        f"Validation set: {len(y_val)} samples; always predicting the majority class "
        f"scores {100 * majority:.1f}%."
    )

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for version, colour in (("no BN", "tab:red"), ("BN on inputs", "tab:blue")):
        runs = history[history["version"] == version]
        for ax, col in ((axes[0], "val_accuracy"), (axes[1], "val_loss")):
            plot_mean_band(ax, runs, col, colour=colour, label=version, alpha=0.2)
    axes[0].axhline(majority, color="grey", ls=":", label="majority class")
    axes[0].set(xlabel="epoch", ylabel="validation accuracy", title="validation accuracy")
    axes[1].set(xlabel="epoch", ylabel="validation loss", title="validation loss", yscale="log")
    axes[0].legend()
    fig.suptitle(
        f"breast-cancer MLP, raw inputs, SGD lr {config.learning_rate} "
        f"(mean ± std over {config.seeds} seeds)"
    )
    fig.tight_layout()
    figure = save_figure(fig, Path(out_dir) / "breast_cancer_mlp.png")
    result = ExperimentResult("breast-cancer-mlp", summary, history, [figure], notes=notes)
    judged.write(out_dir)
    return write_outputs(result, out_dir, "breast-cancer-mlp", f"{table}\n{judged.markdown()}")

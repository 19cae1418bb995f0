"""cifar10-cnn: the plain Keras CIFAR-10 CNN in four versions, 10 epochs.

The classic Keras example network (Conv32-Conv32-Pool-Conv64-Conv64-Pool-Dense512),
trained 10 epochs on a 40,000 / 10,000 train / validation split of the CIFAR-10
training set, without augmentation, as base, dropout (0.25 after each pooling stage,
0.5 before the classifier), bn, and bn+dropout, ``seeds`` seeds each. It reuses
kerasbn's own model builder and trainer: the network is an Architecture and the versions
are Variants. Each version is judged against ``base`` as ``compare`` judges a recipe:
paired over seeds, with the test set's own noise from each run's per-image correctness
(``correct/``), Holm over the versions.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from kerasbn._io import save_array, write_json
from kerasbn.architectures import Architecture
from kerasbn.data import load_dataset
from kerasbn.experiments._common import ExperimentResult, mean_std, unit_path, write_outputs
from kerasbn.experiments._inference import judge, read_correct
from kerasbn.plots import plot_curves
from kerasbn.report import run_row, summarize, summary_markdown
from kerasbn.training import default_config, evaluate, predict_test_probabilities, train
from kerasbn.variants import Variant

__all__ = ["QUICK", "Config", "run"]

REFERENCE_BN_DROPOUT_VAL = 0.779  # the tutorial's validation accuracy after 10 epochs

NETWORK = Architecture("cifar10", (32, 32, 3), 10, ((32, 32), (64, 64)), 512, augment=False)
VERSIONS = (
    Variant("base", "no BN, no Dropout"),
    Variant("dropout", "Dropout 0.25 / 0.5", block_dropout=0.25, head_dropout=0.5),
    Variant("bn", "BN after every conv and dense layer", batch_norm=True),
    Variant(
        "bn+dropout",
        "BN + Dropout 0.25 / 0.5",
        batch_norm=True,
        block_dropout=0.25,
        head_dropout=0.5,
    ),
)


@dataclass(frozen=True)
class Config:
    epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 1e-3
    val_size: int = 10_000
    seeds: int = 3
    limit: int | None = None  # training images (None: all 40,000)
    val_limit: int | None = None
    test_limit: int | None = None


QUICK = {"epochs": 1, "limit": 256, "val_limit": 256, "test_limit": 500, "seeds": 2}


def run(config: Config, out_dir: Path, data_dir=None) -> ExperimentResult:
    # Quick runs keep fewer validation / test images (both sets are in random order).
    data = load_dataset("cifar10", data_dir, val_size=config.val_size).limit(
        config.limit, val=config.val_limit, test=config.test_limit
    )
    train_config = default_config(
        "cifar10",
        epochs=config.epochs,
        batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        lr_schedule="constant",
        augment=False,
        verbose=2,
        target_val_accuracy=0.7,
    )
    histories, runs = [], []
    correct_dir = Path(out_dir) / "correct"
    for variant in VERSIONS:
        for seed in range(config.seeds):
            # One record per finished run, a checkpoint per epoch of the one in progress:
            # a killed experiment resumes where it stopped.
            record = unit_path(Path(out_dir) / "units", {"variant": variant.name, "seed": seed})
            record = record.with_suffix(".json")
            if record.exists():
                saved = json.loads(record.read_text())
            else:
                backup = Path(out_dir) / "backup" / record.stem
                result = train(
                    data,
                    variant,
                    replace(train_config, seed=seed),
                    architecture=NETWORK,
                    backup_dir=backup,
                )
                row = run_row(result, evaluate(result.model, data))
                probabilities = predict_test_probabilities(result.model, data)
                hits = np.argmax(probabilities, axis=1) == data.y_test[: len(probabilities)]
                save_array(correct_dir / record.with_suffix(".npy").name, hits)
                saved = {"row": row, "history": result.history.to_dict("records")}
                write_json(record, saved)
                shutil.rmtree(backup, ignore_errors=True)
            history = pd.DataFrame(saved["history"])
            histories.append(history.assign(dataset="cifar10", variant=variant.name, seed=seed))
            runs.append(saved["row"])
    history = pd.concat(histories, ignore_index=True)
    runs = pd.DataFrame(runs)
    correct = read_correct(correct_dir, runs, "variant")
    summary = summarize(runs, correct)
    judged = judge(runs, by="variant", baseline="base", dataset="cifar10", correct=correct)
    final = history[history["epoch"] == history["epoch"].max()]
    val_table = pd.DataFrame(
        {
            "version": [v.name for v in VERSIONS],
            f"val acc % after {config.epochs} epochs": [
                mean_std(final[final["variant"] == v.name]["val_accuracy"]) for v in VERSIONS
            ],
            "tutorial val acc %": ["", "", "", f"{100 * REFERENCE_BN_DROPOUT_VAL:.1f}"],
        }
    ).to_markdown(index=False)
    table = (
        f"{val_table}\n\nFull comparison (test set evaluated once at the end):\n\n"
        + summary_markdown(summary)
        + f"\n\n{judged.markdown()}"
    )
    figure = plot_curves(
        history,
        summary,
        Path(out_dir) / "cifar10_cnn.png",
        title="plain Keras CIFAR-10 CNN, 10 epochs (CIFAR-10 JPEG copy)",
    )
    result = ExperimentResult("cifar10-cnn", summary, history, [figure])
    runs.to_csv(Path(out_dir) / "runs_by_seed.csv", index=False)
    judged.write(out_dir)
    return write_outputs(result, out_dir, "cifar10-cnn", table)

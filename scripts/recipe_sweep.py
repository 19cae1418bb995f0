"""Recipe levers for CIFAR-10 ``bn`` (issue 18): train each lever with several seeds and
tabulate test accuracy (mean ± std), flip-TTA accuracy and the epoch where validation
accuracy first reaches 85%.

Meant for a GPU machine (JAX, ``--precision mixed_bfloat16``), where a 15-epoch run takes
seconds; on these 2-core CPUs one run takes 15-25 minutes. Not part of the kerasbn
package: it drives its public training API, one process per lever list, so several can
share a GPU. Each finished (lever, seed) is one line of ``OUT/<lever>.csv`` and is
skipped when the command runs again (an unfinished seed starts over).

    python scripts/recipe_sweep.py --levers default,ls --seeds 3 --out runs/sweep
    python scripts/recipe_sweep.py --summarize --out runs/sweep   # the markdown table

Levers change one setting of the default recipe (``default_config``), add one to label
smoothing (``ls-*``), or combine the ones that helped; ``ls-wide1`` moves channels from
the last block to the first at the default net's multiply-adds (within 1%, ``MMAC``
column). ``--variant`` trains another variant with the same levers (rows ``NAME@VARIANT``).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import time
from pathlib import Path

import pandas as pd

from kerasbn.bench.speed_to_target import first_at_target
from kerasbn.presets import get_preset

TARGET = get_preset("cifar10").speed_target  # 85%
LS = dict(label_smoothing=0.1)
# name -> (TrainConfig overrides, Variant overrides, conv blocks or None)
LEVERS = {
    "default": ({}, {}, None),
    "ls": (LS, {}, None),
    "ls-wd": ({**LS, "weight_decay": 0.05}, {}, None),
    "ls-lr5e-3": ({**LS, "learning_rate": 5e-3}, {}, None),
    "ls-warmup3": ({**LS, "warmup_epochs": 3}, {}, None),
    "ls-bnmom0.9": (LS, {"bn_momentum": 0.9}, None),
    "ls-wide1": (LS, {}, ((48,), (64, 64), (112, 112))),
    "ls-sgd": ({**LS, "optimizer": "sgd", "learning_rate": 0.1, "weight_decay": 5e-4}, {}, None),
    "ls-30": ({**LS, "epochs": 30}, {}, None),
    "ls-wd-30": ({**LS, "weight_decay": 0.05, "epochs": 30}, {}, None),
    "wd": ({"weight_decay": 0.05}, {}, None),
    "lr5e-3": ({"learning_rate": 5e-3}, {}, None),
    "wd-lr5e-3": ({"weight_decay": 0.05, "learning_rate": 5e-3}, {}, None),
    "ls-wd-lr5e-3": ({**LS, "weight_decay": 0.05, "learning_rate": 5e-3}, {}, None),
    "ls-wd-lr8e-3": ({**LS, "weight_decay": 0.05, "learning_rate": 8e-3}, {}, None),
    "ls-wd0.1-lr5e-3": ({**LS, "weight_decay": 0.1, "learning_rate": 5e-3}, {}, None),
    "default-30": ({"epochs": 30}, {}, None),
    "ls-wd-lr8e-3-30": (
        {**LS, "weight_decay": 0.05, "learning_rate": 8e-3, "epochs": 30},
        {},
        None,
    ),
    "ls-wd0.1-lr8e-3": ({**LS, "weight_decay": 0.1, "learning_rate": 8e-3}, {}, None),
    "ls-wd-lr5e-3-30": (
        {**LS, "weight_decay": 0.05, "learning_rate": 5e-3, "epochs": 30},
        {},
        None,
    ),
}


def multiply_adds(blocks, dense_units: int, size: int = 32, channels: int = 3) -> float:
    """Millions of multiply-adds of one forward pass (3x3 convs, 2x2 pooling per block)."""
    total = 0
    for block in blocks:
        for filters in block:
            total += size * size * 9 * channels * filters
            channels = filters
        size //= 2
    return (total + size * size * channels * dense_units + dense_units * 10) / 1e6


def run_lever(name: str, seed: int, data, out: Path, precision: str, variant="bn") -> dict:
    from kerasbn.architectures import get_architecture
    from kerasbn.comparison_run import flip_tta_accuracy
    from kerasbn.training import default_config, evaluate, train
    from kerasbn.training.loop import predict_test_probabilities
    from kerasbn.variants import get_variant

    overrides, variant_overrides, blocks = LEVERS[name]
    name = name if variant == "bn" else f"{name}@{variant}"
    architecture = get_architecture("cifar10")
    if blocks is not None:
        architecture = dataclasses.replace(architecture, blocks=blocks)
    variant = dataclasses.replace(get_variant(variant), **variant_overrides)
    config = default_config(
        "cifar10", seed=seed, verbose=0, precision=precision, **{"epochs": 15, **overrides}
    )
    start = time.perf_counter()
    result = train(
        data,
        variant,
        config,
        log_csv=out / f"{name}-seed{seed}-epochs.csv",
        architecture=architecture,
    )
    seconds = time.perf_counter() - start
    history = result.history
    first = first_at_target(history, TARGET)
    probabilities = predict_test_probabilities(result.model, data)
    return {
        "lever": name,
        "seed": seed,
        "epochs": config.epochs,
        "MMAC": round(multiply_adds(architecture.blocks, architecture.dense_units), 2),
        "test_accuracy": evaluate(result.model, data)["test_accuracy"],
        "test_accuracy_flip_tta": flip_tta_accuracy(result.model, data, probabilities),
        "best_val_accuracy": float(history["val_accuracy"].max()),
        "epoch_val85": first[0] if first is not None else None,
        "seconds_to_val85": first[1] if first is not None else None,
        "train_seconds": seconds,
        "precision": precision,
    }


def summarize(out: Path) -> str:
    frames = [pd.read_csv(path) for path in sorted(out.glob("*.csv")) if "-seed" not in path.name]
    runs = pd.concat(frames, ignore_index=True)
    table = runs.groupby("lever", sort=False).agg(
        seeds=("seed", "count"),
        epochs=("epochs", "first"),
        MMAC=("MMAC", "first"),
        test_mean=("test_accuracy", "mean"),
        test_std=("test_accuracy", "std"),
        flip_tta_mean=("test_accuracy_flip_tta", "mean"),
        seeds_at_85_test=("test_accuracy", lambda s: int((s >= TARGET).sum())),
        epoch_val85_mean=("epoch_val85", "mean"),
        seeds_reaching_val85=("epoch_val85", "count"),
    )
    for column in ("test_mean", "test_std", "flip_tta_mean"):
        table[column] = (100 * table[column]).round(2)
    table["epoch_val85_mean"] = table["epoch_val85_mean"].round(1)
    order = [name for name in LEVERS if name in table.index]
    order += sorted(set(table.index) - set(order))
    return table.loc[order].to_markdown()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--levers", default=",".join(LEVERS), help="comma list of " + ", ".join(LEVERS)
    )
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--variant", default="bn", help="the variant to train (default: bn)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--data-dir", default=os.environ.get("KERASBN_DATA_DIR"))
    parser.add_argument("--precision", default="mixed_bfloat16")
    parser.add_argument("--summarize", action="store_true", help="print the table and stop")
    parser.add_argument(
        "--into", type=Path, help="with --summarize: write the table into this file"
    )
    parser.add_argument("--name", default="recipe-sweep", help="its <!-- results:NAME --> block")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.summarize:
        table = summarize(args.out)
        if args.into is None:
            print(table)
        else:
            from kerasbn.results_tables import replace_block

            text = args.into.read_text(encoding="utf-8")
            args.into.write_text(replace_block(text, args.name, table), encoding="utf-8")
        return 0
    names = args.levers.split(",")
    unknown = sorted(set(names) - set(LEVERS))
    if unknown:
        parser.error(
            f"unknown lever(s) {unknown}; valid: {', '.join(LEVERS)}. Received: {args.levers}"
        )
    from kerasbn.data import load_dataset

    args.out.mkdir(parents=True, exist_ok=True)
    data = load_dataset("cifar10", args.data_dir)
    for name in names:
        tag = name if args.variant == "bn" else f"{name}@{args.variant}"
        path = args.out / f"{tag}.csv"
        done = set(pd.read_csv(path)["seed"]) if path.exists() else set()
        for seed in range(args.seeds):
            if seed in done:
                continue
            row = run_lever(name, seed, data, args.out, args.precision, args.variant)
            logging.info("%s", row)
            pd.DataFrame([row]).to_csv(path, mode="a", header=not path.exists(), index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())

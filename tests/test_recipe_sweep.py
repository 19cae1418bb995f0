"""scripts/recipe_sweep.py (the GPU lever sweep behind benchmarks/README.md): its
multiply-add count against a hand count, and its summary against made-up seeds."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "recipe_sweep.py"


@pytest.fixture(scope="module")
def sweep():
    spec = importlib.util.spec_from_file_location("recipe_sweep", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_multiply_adds_by_hand(sweep):
    # 4x4x1 input, one block of 2 filters: 16 positions x 9 taps x 1 channel x 2 = 288;
    # pooled to 2x2x2 = 8 values into 3 dense units = 24; 3 x 10 classes = 30.
    assert sweep.multiply_adds(((2,),), 3, size=4, channels=1) == pytest.approx(342e-6)
    # The sweep's claim: the wide-first-block net has the default's multiply-adds (1%).
    default = sweep.multiply_adds(((32,), (64, 64), (128, 128)), 256)
    wide = sweep.multiply_adds(sweep.LEVERS["ls-wide1"][2], 256)
    assert wide == pytest.approx(default, rel=0.01)


def test_summary_of_made_up_seeds(sweep, tmp_path):
    rows = {
        "default": [(0.84, 0.85, None), (0.86, 0.87, 14)],
        "ls": [(0.85, 0.86, 12), (0.85, 0.86, 13), (0.87, 0.88, 11)],
    }
    for lever, seeds in rows.items():
        pd.DataFrame(
            [
                {
                    "lever": lever,
                    "seed": seed,
                    "epochs": 15,
                    "MMAC": 29.72,
                    "test_accuracy": test,
                    "test_accuracy_flip_tta": flip,
                    "epoch_val85": epoch,
                }
                for seed, (test, flip, epoch) in enumerate(seeds)
            ]
        ).to_csv(tmp_path / f"{lever}.csv", index=False)
    pd.DataFrame({"epoch": [1], "val_accuracy": [0.5]}).to_csv(
        tmp_path / "ls-seed0-epochs.csv", index=False
    )  # a per-epoch log beside them is not a result
    lines = sweep.summarize(tmp_path).splitlines()
    assert lines[2].split("|")[1].strip() == "default"  # the LEVERS order
    default = [cell.strip() for cell in lines[2].split("|")[1:-1]]
    ls = [cell.strip() for cell in lines[3].split("|")[1:-1]]
    # lever, seeds, epochs, MMAC, mean, std, flip mean, seeds >= 85%, epoch mean, reaching
    assert default == ["default", "2", "15", "29.72", "85", "1.41", "86", "1", "14", "1"]
    assert ls == ["ls", "3", "15", "29.72", "85.67", "1.15", "86.67", "3", "12", "3"]

import math

import numpy as np
import pandas as pd

from kerasbn.report import SUMMARY_COLUMNS, run_metrics, summarize, summary_markdown


def history(val_acc, val_loss, acc=None):
    n = len(val_acc)
    return pd.DataFrame(
        {
            "epoch": range(1, n + 1),
            "loss": np.linspace(1, 0.1, n),
            "accuracy": acc or [0.99] * n,
            "val_loss": val_loss,
            "val_accuracy": val_acc,
            "seconds": [9.0] + [2.0] * (n - 1),
            "train_seconds": [8.0] + [1.0] * (n - 1),
        }
    )


def test_run_metrics_reads_overfitting_from_the_curves():
    h = history([0.90, 0.95, 0.97, 0.96], [0.40, 0.25, 0.20, 0.30])
    m = run_metrics(h, target=0.95, train_examples=500)
    assert m["best_val_accuracy"] == 0.97 and m["best_val_epoch"] == 3
    assert math.isclose(m["final_train_val_gap"], 0.99 - 0.96)
    assert math.isclose(m["val_loss_overfit"], 0.30 - 0.20)
    assert m["epochs_to_target"] == 2
    # Epoch 1 (tracing) is skipped: 2 s per epoch, 500 images in 1 s of training.
    assert m["seconds_per_epoch"] == 2.0 and m["train_images_per_s"] == 500.0
    assert math.isnan(run_metrics(h, target=0.99, train_examples=500)["epochs_to_target"])


def run_row(variant, seed, test_acc, reached=2.0, diverged=False):
    return {
        "dataset": "d",
        "variant": variant,
        "seed": seed,
        "params": 10,
        "test_accuracy": test_acc,
        "test_loss": 0.1,
        "best_val_accuracy": 0.9,
        "best_val_epoch": 3,
        "final_train_val_gap": 0.01,
        "val_loss_overfit": 0.0,
        "target_val_accuracy": 0.9,
        "epochs_to_target": reached,
        "seconds_per_epoch": 1.0,
        "train_images_per_s": 100.0,
        "diverged": diverged,
    }


def test_summary_is_mean_and_std_over_seeds():
    runs = pd.DataFrame(
        [run_row("bn", 0, 0.90), run_row("bn", 1, 0.92), run_row("base", 0, 0.80, reached=np.nan)]
    )
    summary = summarize(runs)
    assert list(summary.columns) == SUMMARY_COLUMNS
    bn = summary.set_index("variant").loc["bn"]
    assert math.isclose(bn["test_accuracy_mean"], 0.91)
    assert math.isclose(bn["test_accuracy_std"], np.std([0.90, 0.92], ddof=1))
    base = summary.set_index("variant").loc["base"]
    assert math.isnan(base["test_accuracy_std"]) and math.isnan(base["epochs_to_target"])
    text = summary_markdown(summary, "title")
    assert "91.00 ± 1.41" in text and "not reached (≥90%)" in text and text.startswith("## title")


def test_diverged_runs_are_counted_not_averaged():
    runs = pd.DataFrame([run_row("bn", 0, 0.90), run_row("bn", 1, 0.10, diverged=True)])
    row = summarize(runs).iloc[0]
    assert row["diverged_runs"] == 1 and math.isclose(row["test_accuracy_mean"], 0.90)

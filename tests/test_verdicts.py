"""Verdicts on real (digits) comparisons: a real advantage is detected, identical variants
are not told apart, seeds can be added to a finished comparison, one seed uses McNemar."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from kerasbn import compare, default_config
from kerasbn.cli.compare import main
from kerasbn.report import source_line
from kerasbn.verdicts import verdicts


def test_a_real_advantage_is_called_better(digits_three_seeds):
    result, _ = digits_three_seeds
    table = pd.read_csv(result.out_dir / "verdicts.csv")
    row = table[(table["variant"] == "bn") & (table["metric"] == "test_accuracy")].iloc[0]
    assert row["baseline"] == "base" and row["seeds"] == 3
    assert row["verdict"] == "better" and row["p_value"] < 0.05
    assert row["test"] == "paired t-test over 3 seeds"
    # The difference is the mean of the per-seed differences in runs.csv.
    runs = pd.read_csv(result.out_dir / "runs.csv").set_index(["variant", "seed"])
    per_seed = [
        runs.loc[("bn", s), "test_accuracy"] - runs.loc[("base", s), "test_accuracy"]
        for s in range(3)
    ]
    assert row["difference"] == pytest.approx(np.mean(per_seed))
    assert row["ci_low"] > 0
    summary = (result.out_dir / "summary.md").read_text()
    assert "### Verdicts: each variant against `base`" in summary and "| better" in summary
    assert (result.out_dir / "differences.png").read_bytes()[:4] == b"\x89PNG"


def test_identical_variants_are_not_told_apart(digits_three_seeds):
    result, _ = digits_three_seeds
    table = verdicts(result.runs, "bn")
    row = table[(table["variant"] == "bn-copy") & (table["metric"] == "test_accuracy")].iloc[0]
    assert row["difference"] == 0 and row["verdict"] == "no detectable difference"
    worse = table[(table["variant"] == "base") & (table["metric"] == "test_accuracy")]
    assert worse["verdict"].item() == "worse"


def test_intervals_cover_every_metric(digits_three_seeds):
    result, _ = digits_three_seeds
    table = pd.read_csv(result.out_dir / "intervals.csv")
    assert set(table["metric"]) == {
        "test_accuracy",
        "final_train_val_gap",
        "val_loss_overfit",
        "epochs_to_target",
    }
    bn = table[(table["variant"] == "bn") & (table["metric"] == "test_accuracy")].iloc[0]
    assert bn["method"] == "t" and bn["ci_low"] <= bn["mean"] <= bn["ci_high"]
    # 360 test images: sqrt(p (1 - p) / 360) at the mean accuracy.
    assert bn["binomial_std"] == pytest.approx(np.sqrt(bn["mean"] * (1 - bn["mean"]) / 360))


def test_seeds_are_added_to_a_finished_comparison(digits, tmp_path, messages):
    config = default_config("digits", epochs=2, verbose=0)
    out = tmp_path / "out"
    first = compare(digits, "base,bn", config, seeds=1, out_dir=out, save_models=None)
    old_records = {p.name: p.read_bytes() for p in (out / "runs").iterdir()}
    messages.clear()
    more = compare(digits, "base,bn", config, seeds=2, out_dir=out, save_models=None)
    trained = [m for m in messages if m.startswith("training ")]
    assert trained == [
        "training digits-base-seed1 (1150 images)",
        "training digits-bn-seed1 (1150 images)",
    ]
    for name, content in old_records.items():  # earlier runs read back, not retrained
        assert (out / "runs" / name).read_bytes() == content
    old = first.runs.set_index(["variant", "seed"])
    new = more.runs.set_index(["variant", "seed"]).loc[old.index]
    pd.testing.assert_frame_equal(
        new.drop(columns=["seconds_per_epoch", "train_images_per_s"]),
        old.drop(columns=["seconds_per_epoch", "train_images_per_s"]),
    )
    stored = json.loads((out / "config.json").read_text())
    assert stored["seeds"] == [0, 1] and stored["extended"][0]["seeds"] == [0, 1]
    # The published source line names what reproduces the whole folder: the 2-seed call.
    stored["command"], stored["extended"][0]["command"] = "kb --seeds 1", "kb --seeds 2"
    stored["git"], stored["extended"][0]["git"] = {"commit": "a" * 40}, {"commit": "b" * 40}
    assert source_line(out, stored) == (
        "`kb --seeds 2` (`out`, code at `aaaaaaa`, then `bbbbbbb`; grown from `kb --seeds 1`)"
    )
    assert (out / "complete.json").exists()
    with pytest.raises(FileExistsError, match="asks for fewer"):
        compare(digits, "base,bn", config, seeds=1, out_dir=out, save_models=None)


def test_one_seed_compares_the_two_models_image_by_image(digits, tmp_path):
    config = default_config("digits", epochs=2, verbose=0)
    result = compare(digits, "base,bn", config, out_dir=tmp_path / "out", save_models=None)
    row = result.verdicts.query("metric == 'test_accuracy'").iloc[0]
    assert row["test"].startswith("exact McNemar on 360 test images")
    # McNemar's difference (only-bn-right minus only-base-right, over 360) is the
    # difference of the two test accuracies that evaluate() reported.
    accuracy = result.runs.set_index("variant")["test_accuracy"]
    assert row["difference"] == pytest.approx(accuracy["bn"] - accuracy["base"], abs=1e-6)
    assert "says nothing about another seed" in (result.out_dir / "summary.md").read_text()


def test_unknown_baseline_exits_2_before_training(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "--dataset",
                "digits",
                "--variants",
                "base,bn",
                "--baseline",
                "dropout",
                "--out",
                str(tmp_path / "out"),
            ]
        )
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Unknown baseline" in err and "base, bn" in err and err.strip().endswith("'dropout'")
    assert not (tmp_path / "out").exists()


def test_a_finished_comparison_reads_back_without_training(digits_three_seeds, tmp_path):
    from kerasbn import load_comparison

    result, _ = digits_three_seeds
    again = load_comparison(result.out_dir)
    pd.testing.assert_frame_equal(
        again.runs, pd.read_csv(result.out_dir / "runs.csv"), check_dtype=False
    )
    assert list(again.summary["variant"]) == ["base", "bn", "bn-copy"]
    assert again.verdicts is not None and len(again.verdicts) == 2 * 4  # 2 variants x 4 metrics
    with pytest.raises(FileNotFoundError, match="no finished comparison"):
        load_comparison(tmp_path)

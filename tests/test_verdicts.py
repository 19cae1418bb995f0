"""Verdicts on real (digits) comparisons: a real advantage is detected, identical variants
are not told apart, seeds can be added to a finished comparison, one seed uses McNemar."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from kerasbn import compare, default_config
from kerasbn.cli.compare import main
from kerasbn.results_tables import source_line
from kerasbn.stats import holm
from kerasbn.verdicts import read_correct, verdicts


def test_a_real_advantage_is_called_better(digits_three_seeds):
    result, _ = digits_three_seeds
    table = pd.read_csv(result.out_dir / "verdicts.csv")
    row = table[(table["variant"] == "bn") & (table["metric"] == "test_accuracy")].iloc[0]
    assert row["baseline"] == "base" and row["seeds"] == 3
    assert row["verdict"] == "better" and row["p_holm"] < 0.05
    assert row["test"] == "seeds + test set (3 seeds x 360 images)"
    assert row["interval"] == "seeds + test set" and row["family_size"] == 2
    # The seed-only interval beside it is scipy's paired t-interval on runs.csv.
    runs_by_seed = pd.read_csv(result.out_dir / "runs.csv").pivot(
        index="seed", columns="variant", values="test_accuracy"
    )
    expected = stats.ttest_rel(runs_by_seed["bn"], runs_by_seed["base"]).confidence_interval()
    assert row["seed_ci_low"] == pytest.approx(expected.low, abs=1e-6)
    assert row["seed_ci_high"] == pytest.approx(expected.high, abs=1e-6)
    # Adding the test set's noise never narrows the interval.
    assert row["ci_high"] - row["ci_low"] >= row["seed_ci_high"] - row["seed_ci_low"] - 1e-12
    # Holm over the family (bn, bn-copy against base): the smaller p doubled, the larger
    # no smaller than that.
    family = table[table["metric"] == "test_accuracy"].set_index("variant")
    small, large = sorted(family["p_value"])
    assert sorted(family["p_holm"]) == pytest.approx([min(1, 2 * small), max(2 * small, large)])
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
    # Bit-identical runs differ by exactly 0 on every seed: no spread, so no verdict.
    assert row["difference"] == 0 and row["verdict"] == "undetermined (no spread)"
    assert np.isnan(row["p_value"]) and np.isnan(row["p_holm"])
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
    assert bn["method"] == "seeds+test set" and bn["ci_low"] <= bn["mean"] <= bn["ci_high"]
    assert bn["seed_ci_low"] <= bn["mean"] <= bn["seed_ci_high"]
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


def _made_up_runs(accuracy: dict[tuple[str, int], int], images: int) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "dataset": "made-up",
                "variant": variant,
                "seed": seed,
                # float32, as Keras reports it
                "test_accuracy": float(np.float32(hits / images)),
                "test_examples": images,
                "final_train_val_gap": 0.01 * seed,
                "val_loss_overfit": 0.0,
                "epochs_to_target": 3,
                "diverged": False,
            }
            for (variant, seed), hits in accuracy.items()
        ]
    )


def test_one_image_better_on_each_of_two_seeds_is_undetermined():
    images = 10_000
    correct = {}
    for seed, hits in enumerate((9900, 9902)):
        base = np.zeros(images, bool)
        base[:hits] = True
        better = base.copy()
        better[hits] = True  # one more image right
        correct[("base", seed)], correct[("new", seed)] = base, better
    hits = {key: int(value.sum()) for key, value in correct.items()}
    runs = _made_up_runs(hits, images)
    for per_image in (correct, None):  # with and without per-image results
        row = verdicts(runs, "base", per_image).query("metric == 'test_accuracy'").iloc[0]
        assert row["verdict"] == "undetermined (no spread)"
        assert np.isnan(row["p_value"]) and np.isnan(row["p_holm"])
        assert np.isnan(row["seeds_needed"])
        assert row["difference"] == pytest.approx(1 / images)


def test_holm_turns_two_one_seed_detections_into_one():
    # One seed, 300 images: "a" is right on 8 images base misses (exact McNemar
    # p = 2 / 2^8 = 0.0078), "b" on 6 (p = 2 / 2^6 = 0.03125). Holm: 0.0078 x 2 =
    # 0.0156 (detected), max(0.0156, 0.03125 x 1) = 0.03125 (detected); with "c" at
    # 5 images (p = 0.0625) in the family: 0.0234, 0.0625, 0.0625: only "a".
    images = 300
    base = np.zeros(images, bool)
    base[:250] = True
    correct = {("base", 0): base}
    for name, extra in (("a", 8), ("b", 6), ("c", 5)):
        run = base.copy()
        run[250 : 250 + extra] = True
        correct[(name, 0)] = run
    hits = {key: int(value.sum()) for key, value in correct.items()}
    table = verdicts(_made_up_runs(hits, images), "base", correct)
    rows = table.query("metric == 'test_accuracy'").set_index("variant")
    assert rows["p_value"].to_list() == pytest.approx([2 / 256, 2 / 64, 2 / 32])
    assert rows["p_holm"].to_list() == pytest.approx([6 / 256, 2 / 32, 2 / 32])
    assert rows["verdict"].to_list() == ["better", *["no detectable difference"] * 2]
    assert (rows["family_size"] == 3).all()
    # Without "c" the family is two, and both are detected.
    two = verdicts(_made_up_runs(hits, images).query("variant != 'c'"), "base", correct)
    assert set(two.query("metric == 'test_accuracy'")["verdict"]) == {"better"}


def test_read_correct_refuses_files_outside_the_folder_and_wrong_arrays(tmp_path):
    (tmp_path / "runs").mkdir()
    (tmp_path / "correct").mkdir()
    np.save(tmp_path / "correct" / "ok.npy", np.array([True, False]))
    record = {"row": {"variant": "bn", "seed": 0}, "correct": "correct/ok.npy"}
    (tmp_path / "runs" / "r.json").write_text(json.dumps(record))
    assert read_correct(tmp_path)[("bn", 0)].tolist() == [True, False]
    np.save(tmp_path / "outside.npy", np.array([True]))
    record["correct"] = "../outside.npy"
    (tmp_path / "runs" / "r.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match="outside its folder"):
        read_correct(tmp_path / ".")
    np.save(tmp_path / "correct" / "floats.npy", np.array([0.5, 1.0]))
    record["correct"] = "correct/floats.npy"
    (tmp_path / "runs" / "r.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match="1-D boolean"):
        read_correct(tmp_path)


@pytest.mark.parametrize("seed", range(5))
def test_holm_equals_statsmodels_and_leaves_untested_entries_out(seed):
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(seed)
    p = rng.uniform(0, 0.2, size=7) ** rng.uniform(1, 3)
    p[rng.integers(7)] = p[rng.integers(7)]  # a tie
    with_gaps = np.insert(p, [2, 5], np.nan)
    adjusted = holm(with_gaps)
    assert np.isnan(adjusted[[2, 6]]).all()
    expected = multipletests(p, method="holm")[1]
    assert np.delete(adjusted, [2, 6]) == pytest.approx(expected, rel=1e-12)


def test_one_family_corrects_every_variant_and_metric_together():
    from statsmodels.stats.multitest import multipletests

    # Two readings of one question ("x", "y") for two variants against base, 4 seeds.
    rng = np.random.default_rng(3)
    rows = []
    for seed in range(4):
        for variant, shift in (("base", 0.0), ("a", 0.3), ("b", 0.05)):
            noise = rng.normal(0, 0.1, size=2)
            x, y = shift + noise[0], 2 * shift + noise[1]
            rows.append({"dataset": "d", "variant": variant, "seed": seed, "x": x, "y": y})
    runs = pd.DataFrame(rows).assign(diverged=False)
    words = {"x": ("higher", "lower"), "y": ("higher", "lower")}
    split = verdicts(runs, "base", metrics=words).set_index(["variant", "metric"])
    joint = verdicts(runs, "base", metrics=words, one_family=True).set_index(["variant", "metric"])
    by_seed = runs.pivot(index="seed", columns="variant")
    raw = {
        (v, m): stats.ttest_rel(by_seed[(m, v)], by_seed[(m, "base")]).pvalue
        for v in ("a", "b")
        for m in ("x", "y")
    }
    keys = list(raw)
    assert joint.loc[keys, "p_value"].to_list() == pytest.approx([raw[k] for k in keys])
    want = multipletests([raw[k] for k in keys], method="holm")[1]
    assert joint.loc[keys, "p_holm"].to_list() == pytest.approx(want)
    assert (joint["family_size"] == 4).all() and (split["family_size"] == 2).all()
    for m in ("x", "y"):  # a family per metric: Holm over the two variants only
        mine = [k for k in keys if k[1] == m]
        want = multipletests([raw[k] for k in mine], method="holm")[1]
        assert split.loc[mine, "p_holm"].to_list() == pytest.approx(want)
    for key, row in joint.iterrows():  # each word from its own family's adjusted p
        detected = row["p_holm"] < 0.05
        word = "higher" if row["difference"] > 0 else "lower"
        assert row["verdict"] == (word if detected else "no detectable difference"), key
    # Power at Holm's strictest step of the larger family asks for at least as many seeds.
    assert (joint["seeds_needed"] >= split.loc[joint.index, "seeds_needed"]).all()

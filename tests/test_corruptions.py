"""Corruptions against hand-derived values, and the corruption-robustness experiment."""

import colorsys
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from kerasbn.cli.experiments import main as experiments_main
from kerasbn.corruptions import corrupt, list_corruptions
from kerasbn.models import build_model
from kerasbn.saving import save_model

GREY = np.full((64, 32, 32, 3), 128, np.uint8)


def test_contrast_pulls_each_channel_toward_its_image_mean():
    image = np.array([0, 255], np.uint8).reshape(1, 1, 2, 1)
    # mean 0.5; severity 1 keeps 0.75 of the distance: 0.125 and 0.875 of 255
    np.testing.assert_array_equal(corrupt(image, "contrast", 1)[0, 0, :, 0], [32, 223])


def test_brightness_raises_the_hsv_value_and_keeps_hue_and_saturation():
    image = np.array([100, 50, 20], np.uint8).reshape(1, 1, 1, 3)
    h, s, v = colorsys.rgb_to_hsv(100 / 255, 50 / 255, 20 / 255)
    expected = np.round(np.array(colorsys.hsv_to_rgb(h, s, min(v + 0.3, 1.0))) * 255)
    np.testing.assert_array_equal(corrupt(image, "brightness", 5)[0, 0, 0], expected)
    black = np.zeros((1, 1, 1, 3), np.uint8)  # saturation 0: grey at the new value
    np.testing.assert_array_equal(corrupt(black, "brightness", 1)[0, 0, 0], [13, 13, 13])


def test_noises_have_the_severity_parameters_spread():
    diff = corrupt(GREY, "gaussian_noise", 5).astype(float) - 128
    assert abs(diff.std() - 0.10 * 255) < 0.03 * 25.5 and abs(diff.mean()) < 0.5
    # Poisson(x c) / c has variance x / c: 0.502 / 50 -> std 0.1002 of 255.
    shot = corrupt(GREY, "shot_noise", 5).astype(float) / 255
    assert (
        abs(shot.std() - np.sqrt((128 / 255) / 50)) < 0.003 and abs(shot.mean() - 128 / 255) < 0.002
    )
    impulse = corrupt(GREY, "impulse_noise", 5)
    changed = impulse != 128
    assert abs(changed.mean() - 0.07) < 0.005
    assert set(np.unique(impulse[changed])) == {0, 255}
    assert abs((impulse[changed] == 255).mean() - 0.5) < 0.03


def test_gaussian_blur_spreads_a_point_as_a_sampled_gaussian():
    point = np.zeros((1, 15, 15, 1), np.uint8)
    point[0, 7, 7, 0] = 255
    blurred = corrupt(point, "gaussian_blur", 5)[0, :, :, 0]  # sigma 1
    one_d = np.exp(-(np.arange(-4, 5) ** 2) / 2)
    kernel = np.outer(one_d, one_d) / one_d.sum() ** 2
    np.testing.assert_allclose(blurred[3:12, 3:12], np.round(255 * kernel), atol=1)


@pytest.mark.parametrize("name", list_corruptions())
def test_every_corruption_keeps_shape_dtype_and_a_constant_image_close(name):
    for channels in (1, 3):
        images = np.full((3, 32, 32, channels), 128, np.uint8)
        out = corrupt(images, name, 3, seed=1)
        assert out.shape == images.shape and out.dtype == np.uint8
        if name in ("gaussian_blur", "contrast", "pixelate", "jpeg_compression"):
            assert np.abs(out.astype(int) - 128).max() <= 1  # nothing to blur or compress
    noisy = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    np.testing.assert_array_equal(corrupt(noisy, name, 2, seed=4), corrupt(noisy, name, 2, seed=4))


def test_pixelate_and_jpeg_smooth_fine_detail():
    noisy = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)

    def roughness(x):
        return np.abs(np.diff(x.astype(int), axis=2)).mean()

    assert roughness(corrupt(noisy, "pixelate", 5)) < 0.8 * roughness(noisy)
    assert roughness(corrupt(noisy, "jpeg_compression", 5)) < roughness(noisy)


def test_bad_corruption_arguments_are_refused_with_the_valid_choices():
    with pytest.raises(ValueError, match=r"contrast.*Received: 'fog'"):
        corrupt(GREY, "fog", 1)
    with pytest.raises(ValueError, match=r"severity must be one of \[1, 2, 3, 4, 5\]"):
        corrupt(GREY, "contrast", 6)
    with pytest.raises(ValueError, match="must be uint8"):
        corrupt(GREY.astype(float), "contrast", 1)


def test_quick_corruption_robustness_scores_every_set_and_adapts_only_bn(quick_run):
    result = quick_run("corruption-robustness")
    rows = result.history
    # 2 seeds x (clean + 3 corruptions at severity 5), for each of base and bn
    assert len(rows) == 2 * 2 * (1 + 3)
    assert rows.loc[rows.variant == "base", "adapted_accuracy"].isna().all()
    assert rows.loc[rows.variant == "bn", "adapted_accuracy"].between(0, 1).all()
    # Each trained unit's card names its data, recipe and command, not "?".
    card = (result.out_dir / "units" / "bn-seed1.md").read_text(encoding="utf-8")
    assert "variant **`bn`** (with Batch Normalization)" in card
    assert "mnist: 2048 training, 5000 validation" in card and "optimizer adam" in card
    assert "?" not in card
    models = pd.read_csv(result.out_dir / "models.csv").set_index(["variant", "seed"])
    corrupted = rows[rows.corruption != "clean"]
    for (variant, seed), mine in corrupted.groupby(["variant", "seed"]):
        assert models.loc[(variant, seed), "corruption_accuracy"] == pytest.approx(
            mine.accuracy.mean()
        )
    # Statistics from the first half of each set, accuracies on the other half.
    assert (rows["adapt_images"] == 100).all() and (rows["scored_images"] == 100).all()
    # Won back, per model: against the clean accuracy after the same adaptation.
    bn = rows[rows.variant == "bn"]
    for seed, mine in bn.groupby("seed"):
        adapted_clean = mine.loc[mine.corruption == "clean", "adapted_accuracy"].iloc[0]
        hit = mine[mine.corruption != "clean"]
        expected = (hit.adapted_accuracy.mean() - hit.accuracy.mean()) / (
            adapted_clean - hit.accuracy.mean()
        )
        assert models.loc[("bn", seed), "drop_recovered"] == pytest.approx(expected)
        assert expected <= 1.0  # no seed wins back more than the whole drop
    # "More robust as trained": a paired t-test over seeds, recomputed here with scipy.
    verdicts = pd.read_csv(result.out_dir / "verdicts.csv")
    row = verdicts[(verdicts.metric == "corruption_accuracy") & (verdicts.variant == "bn")]
    per_seed = corrupted.groupby(["variant", "seed"])["accuracy"].mean()
    p = stats.ttest_rel(per_seed["bn"], per_seed["base"]).pvalue
    assert row["p_value"].iloc[0] == pytest.approx(p)  # one comparison: Holm keeps it
    assert row["p_holm"].iloc[0] == pytest.approx(p)
    # Does adaptation help: bn's models adapted against the same models as trained.
    adaptation = pd.read_csv(result.out_dir / "adaptation_verdicts.csv")
    assert list(adaptation.variant) == ["BN adapted"] and list(adaptation.net) == ["bn"]
    adapted = bn[bn.corruption != "clean"].groupby("seed")["adapted_accuracy"].mean()
    as_trained = bn[bn.corruption != "clean"].groupby("seed")["accuracy"].mean()
    assert adaptation.difference.iloc[0] == pytest.approx((adapted - as_trained).mean())
    p = stats.ttest_rel(adapted, as_trained).pvalue
    assert adaptation.p_value.iloc[0] == pytest.approx(p)
    # The mixing sweep: 2 seeds x (clean + 3 corruptions at severity 5) x n (1, 8, all)
    # x N (0, 16) for bn; its full-adaptation corner is the main table's adapted score.
    mixing = pd.read_csv(result.out_dir / "mixing.csv")
    assert set(mixing.variant) == {"bn"} and len(mixing) == 2 * 4 * 3 * 2
    assert sorted(set(mixing.target_images)) == [1, 8, 100]
    corner = mixing[(mixing.source_weight == 0) & (mixing.target_images == 100)]
    main = bn[(bn.corruption == "clean") | (bn.severity == 5)]
    merged = corner.merge(main, on=["seed", "corruption", "severity"])
    assert len(merged) == 8
    np.testing.assert_allclose(merged.accuracy_x, merged.adapted_accuracy)
    for name in ("corruption_robustness.png", "bn_mixing.png"):
        assert (result.out_dir / name).stat().st_size > 10_000
    assert sorted(p.name for p in (result.out_dir / "units").glob("*.keras")) == [
        "base-seed0.keras",
        "base-seed1.keras",
        "bn-seed0.keras",
        "bn-seed1.keras",
    ]


def test_a_corruption_piece_keeps_each_models_scores_and_grows_without_retraining(
    quick_run, shared_data_dir, tmp_path, messages, monkeypatch
):
    from kerasbn.archive import archive
    from kerasbn.experiments import run_experiment

    monkeypatch.chdir(tmp_path)  # relative paths, as a folder meant for the archive is made
    done = quick_run("corruption-robustness").out_dir
    scores = sorted(p.name for p in (done / "units").glob("scores-*.json"))
    assert scores == [f"scores-{v}-seed{k}.json" for v in ("base", "bn") for k in (0, 1)]
    # Stopped while scoring bn's seed 1: its model is kept, its scores are not.
    stopped = Path("runs") / "corruption"
    shutil.copytree(done, stopped)
    (stopped / "complete.json").unlink()
    (stopped / "units" / "scores-bn-seed1.json").unlink()
    piece = archive(stopped, "corruption", root=tmp_path / "results", unfinished=True)
    assert sorted(p.name for p in (piece / "units").iterdir() if p.suffix != ".md") == scores[:3]
    # Grown from the piece (no model in it) plus bn seed 1's model: nothing is trained.
    grown = Path("grown")
    shutil.copytree(piece, grown)
    shutil.copy(done / "units" / "bn-seed1.keras", grown / "units")

    def refuse(*args, **kwargs):
        raise AssertionError("a model was trained again")

    monkeypatch.setattr("kerasbn.experiments.corruption_models.train", refuse)
    messages.clear()
    run_experiment("corruption-robustness", quick=True, out_dir=grown, data_dir=shared_data_dir)
    assert sum(m.endswith("finished earlier, read back") for m in messages) == 3
    assert "bn seed 1: trained earlier, read back" in messages
    for table in ("models.csv", "verdicts.csv", "mixing.csv", "adaptation_verdicts.csv"):
        assert (grown / table).read_text() == (done / table).read_text(), table


def test_set_overrides_are_typed_by_the_config_fields():
    from kerasbn.experiments import parse_overrides

    got = parse_overrides(
        "corruption-robustness",
        ["variants=base,bn", "severities=1,5", "test_images=50", "epochs=none", "models_dir=m"],
    )
    assert got == {
        "variants": ("base", "bn"),
        "severities": (1, 5),
        "test_images": 50,
        "epochs": None,
        "models_dir": "m",
    }
    assert parse_overrides("corruption-robustness", ["epochs=4"]) == {"epochs": 4}
    with pytest.raises(ValueError, match=r"--set test_images: .*Received: 'many'"):
        parse_overrides("corruption-robustness", ["test_images=many"])
    with pytest.raises(ValueError, match=r"dataset, variants.*Received: 'speed=3'"):
        parse_overrides("corruption-robustness", ["speed=3"])
    # 0 means something in the sweep (N = 0: full adaptation; n = 0: every held-out
    # image) and for FrozenBN (none); it is still refused where it cannot run.
    sweep = ["mixing_sources=0,16", "mixing_targets=1,0"]
    assert parse_overrides("corruption-robustness", sweep) == {
        "mixing_sources": (0, 16),
        "mixing_targets": (1, 0),
    }
    assert parse_overrides("batch-size", ["frozen_epochs=0"]) == {"frozen_epochs": 0}
    for refused in ("seeds=0", "mixing_sources=-1", "test_images=0"):
        with pytest.raises(ValueError, match="must be a whole number"):
            parse_overrides("corruption-robustness", [refused])


def test_models_from_a_folder_are_scored_without_training(tmp_path, capsys, shared_data_dir):
    models = tmp_path / "models"
    for variant in ("base", "bn"):  # --quick scores 2 MNIST models per variant
        # seed 0 under compare --save-models' name, seed 1 under its own
        save_model(build_model("mnist", variant, seed=0), models / f"mnist-{variant}.keras", {})
        seed1 = models / f"mnist-{variant}-seed1.keras"
        save_model(build_model("mnist", variant, seed=1), seed1, {})

    def argv(out, models_dir):
        return [
            "run",
            "corruption-robustness",
            "--quick",
            "--data-dir",
            str(shared_data_dir),
            "--out",
            str(out),
            "--set",
            f"models_dir={models_dir}",
            "--set",  # the smallest sweep: this test is about where the models come from
            "mixing_targets=0",
            "--set",
            "mixing_sources=0",
        ]

    out = tmp_path / "run"
    assert experiments_main(argv(out, models)) == 0
    # Nothing trained: the units are the four models' scores only.
    assert sorted(p.name for p in (out / "units").iterdir()) == [
        f"scores-{v}-seed{k}.json" for v in ("base", "bn") for k in (0, 1)
    ]
    rows = pd.read_csv(out / "history.csv")
    assert set(rows.variant) == {"base", "bn"} and set(rows.seed) == {0, 1}
    missing = argv(tmp_path / "x", tmp_path / "empty")
    with pytest.raises(SystemExit) as stop:
        experiments_main(missing)
    assert stop.value.code == 2 and "--save-models" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        experiments_main(["run", "mnist-mlp", "--set", f"models_dir={models}"])
    assert stop.value.code == 2 and "Received: 'models_dir=" in capsys.readouterr().err

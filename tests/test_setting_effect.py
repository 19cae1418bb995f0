"""``--table setting``: each variant of one comparison folder judged against itself in
another that differs in one setting. The second folder is the first with its
per-image results edited (a known change per run), so every expected figure is
computed here from the arrays, with scipy and statsmodels."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats
from statsmodels.stats.multitest import multipletests

from kerasbn.setting_effect import setting_markdown, setting_verdicts

# Images each run of "bn" gets wrong (seed: count) and "base" gets right in the changed
# folder: bn loses 3, 5, 4 images; base wins 1, 0, 2 (a near-zero change).
LOSSES = {"bn": {0: 3, 1: 5, 2: 4}, "base": {0: -1, 1: 0, 2: -2}}


def _changed_copy(source, target, precision="mixed_bfloat16"):
    """``source`` copied, with each run's correct array changed by LOSSES and its
    runs.csv test accuracy, config.json precision and command following."""
    shutil.copytree(source, target)
    runs = pd.read_csv(target / "runs.csv")
    for record_path in sorted((target / "runs").glob("*.json")):
        record = json.loads(record_path.read_text(encoding="utf-8"))
        variant, seed = record["row"]["variant"], int(record["row"]["seed"])
        if variant not in LOSSES:
            continue
        path = target / record["correct"]
        correct = np.load(path)
        change = LOSSES[variant][seed]
        flip = np.flatnonzero(correct if change > 0 else ~correct)[: abs(change)]
        assert len(flip) == abs(change)
        correct[flip] = ~correct[flip]
        np.save(path, correct)
        row = (runs["variant"] == variant) & (runs["seed"] == seed)
        runs.loc[row, "test_accuracy"] = correct.mean()
    runs.to_csv(target / "runs.csv", index=False)
    config = json.loads((target / "config.json").read_text(encoding="utf-8"))
    config["train_config"]["precision"] = precision
    (target / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return target


def _accuracy(folder, variant):
    runs = pd.read_csv(folder / "runs.csv")
    return runs[runs["variant"] == variant].sort_values("seed")["test_accuracy"].to_numpy()


@pytest.fixture(scope="module")
def two_folders(digits_three_seeds, tmp_path_factory):
    reference = digits_three_seeds[0].out_dir
    return reference, _changed_copy(reference, tmp_path_factory.mktemp("setting") / "bf16")


def test_each_variant_is_judged_against_itself_with_holm_over_the_variants(two_folders):
    reference, changed = two_folders
    judged = setting_verdicts(reference, changed)
    assert judged["changed"] == {"precision": ("float32", "mixed_bfloat16")}
    rows = judged["verdicts"].query("metric == 'test_accuracy'").set_index("variant")
    assert list(rows.index) == ["base", "bn", "bn-copy"]
    # bn-copy is unchanged: no spread, no test, so it is not in the family.
    assert (rows["family_size"] == 2).all()
    assert rows.loc["bn-copy", "verdict"] == "undetermined (no spread)"
    n = len(np.load(next((reference / "correct").glob("*.npy"))))
    for variant in ("base", "bn"):
        a, b = _accuracy(reference, variant), _accuracy(changed, variant)
        expected = -np.array([LOSSES[variant][s] for s in range(3)]) / n
        np.testing.assert_allclose(b - a, expected, atol=1e-6)
        assert rows.loc[variant, "difference"] == pytest.approx(expected.mean(), abs=1e-6)
        # The seed-only interval is the paired t-interval over the three seeds.
        t = scipy_stats.ttest_rel(b, a)
        low, high = t.confidence_interval(0.95)
        assert rows.loc[variant, "seed_ci_low"] == pytest.approx(low, abs=1e-6)
        assert rows.loc[variant, "seed_ci_high"] == pytest.approx(high, abs=1e-6)
    assert rows.loc["bn-copy", "difference"] == 0
    finite = rows["p_value"].dropna()
    holm = multipletests(finite.to_numpy(), method="holm")[1]
    np.testing.assert_allclose(rows.loc[finite.index, "p_holm"], holm)


def test_the_table_names_the_setting_the_test_and_both_commands(two_folders):
    reference, changed = two_folders
    text = setting_markdown([reference, changed])
    assert "each variant at precision mixed_bfloat16 against precision float32" in text
    assert "settings that differ: `precision`" in text
    assert "against itself at precision float32, paired by seed" in text
    assert "Holm" in text
    assert text.count("measured by") == 2
    # bn's mean over seeds, as the table prints it, from runs.csv.
    assert f"{100 * _accuracy(changed, 'bn').mean():.2f} ±" in text


def test_folders_that_cannot_be_paired_are_refused(two_folders, tmp_path):
    reference, changed = two_folders
    with pytest.raises(ValueError, match="two folders"):
        setting_markdown([reference])
    other = shutil.copytree(changed, tmp_path / "other")
    config = json.loads((other / "config.json").read_text(encoding="utf-8"))
    config["dataset"]["test"] = 1
    (other / "config.json").write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(ValueError, match="same data"):
        setting_verdicts(reference, other)
    seeds = shutil.copytree(changed, tmp_path / "seeds")
    runs = pd.read_csv(seeds / "runs.csv")
    runs.assign(seed=runs["seed"] + 10).to_csv(seeds / "runs.csv", index=False)
    with pytest.raises(ValueError, match="no seed in both folders"):
        setting_verdicts(reference, seeds)
    (seeds / "complete.json").unlink()
    with pytest.raises(FileNotFoundError, match="not a finished run"):
        setting_verdicts(reference, seeds)

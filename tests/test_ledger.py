"""The claims ledger: its cells are the archived runs' numbers, its words follow the test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kerasbn.experiments import ledger

ROOT = Path(__file__).resolve().parent.parent


def _mean_difference(folder: Path, claim: ledger.Claim) -> float:
    """The claim's effect from the archived per-run table alone: the mean over seeds of
    (variant - baseline) on the claim's measure, pairs with a missing value left out."""
    if claim.metric in ledger._CAUSAL:  # lr-robustness: per-run rows at the two rates
        causal = pd.read_csv(folder / "causal.csv")
        asked = ledger._CAUSAL[claim.metric].format(baseline=claim.baseline, variant=claim.variant)
        row = causal[causal["comparison"].str.split(" = ").map(lambda q: asked in q)]
        row = row[row["variant"] == claim.variant].iloc[0]
        runs = pd.read_csv(folder / "history.csv")

        def at(variant, rate):
            mine = runs[(runs["variant"] == variant) & np.isclose(runs["learning_rate"], rate)]
            return mine.set_index("seed")["val_accuracy"]

        pairs = pd.concat(
            [at(claim.variant, row["variant_rate"]), at(claim.baseline, row["base_rate"])],
            axis=1,
        ).dropna()
        return float((pairs.iloc[:, 0] - pairs.iloc[:, 1]).mean())
    if claim.table == "adaptation_verdicts":  # corruption: each model adapted vs as trained
        models = pd.read_csv(folder / "models.csv")
        mine = models[models["variant"] == dict(claim.where)["net"]]
        return float((mine["adapted_corruption_accuracy"] - mine["corruption_accuracy"]).mean())
    if claim.folder == "smoothness":
        rate = float(dict(claim.where)["learning_rate"])
        if claim.metric == "log10_beta_smoothness":
            # From the probes themselves: each run's median over its probes, in log10.
            history = pd.read_csv(folder / "history.csv")
            mine = history[np.isclose(history["learning_rate"], rate)]
            medians = mine.groupby(["variant", "seed"])["beta_smoothness"].median()
            table = np.log10(medians).unstack("variant")
        else:  # at matched loss: the per-run figures the experiment kept, at that rate
            runs = pd.read_csv(folder / "runs.csv")
            mine = runs[np.isclose(runs["learning_rate"], rate)]
            table = mine.pivot_table(index="seed", columns="variant", values=claim.metric)
    elif claim.folder == "batch-size":  # its per-run rows, at the claim's batch size
        runs = pd.read_csv(folder / "history.csv")
        mine = runs[runs["batch_size"] == int(dict(claim.where)["batch_size"])]
        table = mine.pivot_table(index="seed", columns="variant", values=claim.metric)
    elif (folder / "runs.csv").is_file():
        runs = pd.read_csv(folder / "runs.csv")
        table = runs.pivot_table(index="seed", columns="variant", values=claim.metric)
    else:  # a named experiment: its rows at the last evaluation (or the early one)
        history = pd.read_csv(folder / "history.csv")
        if claim.metric == "test_accuracy_early":
            step = int(pd.read_csv(folder / "summary.csv")["early_step"].iloc[0])
            rows = history[history["step"] == step]
        else:
            rows = history[history["epoch"] == history["epoch"].max()]
        table = rows.pivot_table(index="seed", columns="version", values="test_accuracy")
    pairs = table[[claim.variant, claim.baseline]].dropna()
    return float((pairs[claim.variant] - pairs[claim.baseline]).mean())


def test_every_cell_is_the_archived_runs_number():
    rows = ledger.ledger_rows(ROOT)
    assert len(rows) == len(ledger.CLAIMS) >= 5
    for claim, row in zip(ledger.CLAIMS, rows.itertuples(), strict=True):
        folder = ROOT / "results" / claim.folder
        expected = _mean_difference(folder, claim)
        # runs.csv holds float32 accuracies; the verdict counts images (1e-4 each).
        assert row.difference == pytest.approx(expected, abs=1e-6), claim
        if claim.metric in ledger._CAUSAL:
            continue  # seeds: the pairs left where no seed diverged, checked above
        if claim.table == "adaptation_verdicts":
            models = pd.read_csv(folder / "models.csv")
            seeds = models[models["variant"] == dict(claim.where)["net"]]["seed"]
        elif (folder / "runs.csv").is_file() or claim.folder == "batch-size":
            table = "history.csv" if claim.folder == "batch-size" else "runs.csv"
            seeds = pd.read_csv(folder / table).query("variant == @claim.variant")["seed"]
        else:
            seeds = pd.read_csv(folder / "history.csv").query("version == @claim.variant")["seed"]
        assert row.seeds == seeds.nunique()
        assert row.verdict.split(" ")[0] in {"confirmed", "contradicted", "not"}
    # The README shows exactly what the archive gives (the regeneration test checks the
    # whole block; here one number a reader would quote).
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    cifar = rows[(rows["folder"] == "cifar10-3seeds")].iloc[0]
    assert f"{100 * cifar['difference']:+.2f} pp" in readme


def test_the_word_follows_the_verdict_and_the_claims_direction():
    claim = ledger.CLAIMS[0]  # predicts "better" on test accuracy
    assert ledger.word(claim, "better") == "confirmed"
    assert ledger.word(claim, "worse") == "contradicted"
    assert ledger.word(claim, "no detectable difference").startswith("not shown")
    speed = next(c for c in ledger.CLAIMS if c.metric == "epochs_to_target")
    assert speed.predicts == "lower" and ledger.word(speed, "higher") == "contradicted"


def _quoting(paper: str, words: str) -> list:
    """The ledger's claims of ``paper``, each checked to quote a span of ``words``."""
    quoted = [c for c in ledger.CLAIMS if c.paper == paper]
    assert quoted and all(c.says in words for c in quoted), paper
    return quoted


def test_the_quotes_are_the_papers_words():
    # Ioffe & Szegedy (2015), abstract: each quoted claim is a span of it.
    abstract = (
        "Batch Normalization allows us to use much higher learning rates and be less "
        "careful about initialization. It also acts as a regularizer, in some cases "
        "eliminating the need for Dropout. Applied to a state-of-the-art image "
        "classification model, Batch Normalization achieves the same accuracy with 14 "
        "times fewer training steps, and beats the original model by a significant margin."
    )
    _quoting("Ioffe & Szegedy 2015", abstract)
    # Schneider et al. (2020), abstract: the sentence quoted, and the numbers beside it.
    schneider = (
        "Replacing the activation statistics estimated by batch normalization on the "
        "training set with the statistics of the corrupted images consistently improves "
        "the robustness across 25 different popular computer vision models. Using the "
        "corrected statistics, ResNet-50 reaches 62.2% mCE on ImageNet-C compared to "
        "76.7% without adaptation."
    )
    quoted = _quoting("Schneider et al. 2020", schneider)
    assert all("62.2%" in c.paper_number and "76.7%" in c.paper_number for c in quoted)
    # Wu & He (2018), abstract.
    group_norm = (
        "However, normalizing along the batch dimension introduces problems --- BN's error "
        "increases rapidly when the batch size becomes smaller, caused by inaccurate batch "
        "statistics estimation. [...] On ResNet-50 trained in ImageNet, GN has 10.6% lower "
        "error than its BN counterpart when using a batch size of 2"
    )
    quoted = _quoting("Wu & He 2018", group_norm)
    assert all(c.paper_number.split('"')[1] in group_norm for c in quoted)
    # Hoffer et al. (2017), abstract.
    hoffer = (
        "Following this hypothesis we conducted experiments to show empirically that the "
        "“generalization gap” stems from the relatively small number of updates rather than "
        "the batch size, and can be completely eliminated by adapting the training regime "
        "used. We further investigate different techniques to train models in the "
        "large-batch regime and present a novel algorithm named “Ghost Batch "
        "Normalization” which enables significant decrease in the generalization gap "
        "without increasing the number of updates."
    )
    assert len(_quoting("Hoffer et al. 2017", hoffer)) == 2


def test_the_cli_prints_the_ledger_and_refuses_outside_a_checkout(capsys, monkeypatch, tmp_path):
    from kerasbn.cli.experiments import main

    monkeypatch.chdir(ROOT)
    assert main(["ledger"]) == 0
    assert "| paper " in capsys.readouterr().out
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(["ledger"])
    assert info.value.code == 2 and "repository root" in capsys.readouterr().err


def test_a_claim_on_a_missing_comparison_is_refused(tmp_path):
    import dataclasses
    import shutil

    shutil.copytree(ROOT / "results" / "mnist-3seeds", tmp_path / "results" / "mnist-3seeds")
    claim = dataclasses.replace(ledger.CLAIMS[1], variant="gn")  # not in that folder
    with pytest.raises(ValueError, match="no single verdict of gn"):
        ledger._verdict_row(claim, tmp_path / "results" / "mnist-3seeds", {})
    assert np.isfinite(
        ledger._verdict_row(ledger.CLAIMS[1], tmp_path / "results" / "mnist-3seeds", {})[
            "difference"
        ]
    )


def test_lr_robustness_causal_rows_become_one_verdict_per_question():
    causal = pd.DataFrame(
        {
            "variant": ["bn", "bn"],
            "comparison": [
                "each at its own best rate",
                "both at base's best rate = both at bn's best rate",
            ],
            "variant_rate": [0.1, 0.01],
            "base_rate": [0.01, 0.01],
            "seeds": [3, 3],
            "difference": [0.02, 0.001],
            "ci_low": [0.01, -0.01],
            "ci_high": [0.03, 0.012],
            "p_value": [0.01, 0.8],
            "p_holm": [0.02, 0.8],
            "verdict": ["better", "no detectable difference"],
            "note": ["", ""],
        }
    )
    rows = ledger._causal_verdicts(causal, "base").set_index("metric")
    assert list(rows.index) == ["own_best_rates", "at_base_best_rate", "at_variant_best_rate"]
    assert rows.loc["own_best_rates", "verdict"] == "better"
    assert rows.loc["at_variant_best_rate", "difference"] == 0.001
    assert (rows["family_size"] == 2).all()
    claim = ledger.Claim(
        "p", "s", "n", "f", "bn", "base", "at_variant_best_rate", "better", "setup"
    )
    assert claim.opposite == "worse" and ledger.word(claim, "worse") == "contradicted"

"""The claims ledger: each paper claim kerasbn tests, the archived run that tests it, our
effect with its interval and seeds, the paper's own number, and the verdict word that
follows from the test.

    python -m kerasbn.experiments ledger      # print it
    python -m kerasbn.results regenerate      # the README's copy, from results/

A claim names one comparison in one archived folder (``results/<folder>``): a variant
against a baseline on one measure. For a comparison folder the verdicts are recomputed
from its runs with :func:`kerasbn.verdicts.verdicts` at the claim's baseline (the family
is every variant of that folder against that baseline, Holm-corrected); for a named
experiment they are the ``verdicts.csv`` it wrote when it finished. The word:
**confirmed** when the verdict is the direction the claim predicts, **contradicted**
when it is the opposite one, **not shown** otherwise (no detectable difference is not
evidence of no difference; nor is a single seed).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from kerasbn.verdicts import METRICS

__all__ = ["CLAIMS", "Claim", "ledger_markdown", "ledger_rows", "word"]

# Ioffe & Szegedy (2015), abstract, word for word.
_IOFFE_FASTER = "Batch Normalization achieves the same accuracy with 14 times fewer training steps"
_IOFFE_BEATS = "and beats the original model by a significant margin"
_IOFFE_DROPOUT = "It also acts as a regularizer, in some cases eliminating the need for Dropout."
_IOFFE_RATES = "Batch Normalization allows us to use much higher learning rates"
# Their ImageNet figures (section 4.2.2): Inception reached 72.2% top-1 after 31 million
# steps; BN alone matched it in under half the steps, BN-x5 in 14 times fewer.
_IOFFE_STEPS = "ImageNet, Inception: 72.2% top-1 reached in 1/14 of the steps (BN-x5)"
_IOFFE_MARGIN = "ImageNet, Inception: above Inception's 72.2% top-1 (figure 3)"
_IOFFE_MNIST = "MNIST: figure 1(a) only, no number in the text"
# Schneider et al. (2020), abstract, word for word, and their headline number.
_SCHNEIDER = (
    "Replacing the activation statistics estimated by batch normalization on the training "
    "set with the statistics of the corrupted images consistently improves the robustness "
    "across 25 different popular computer vision models."
)
_SCHNEIDER_NUMBER = "ImageNet-C, ResNet-50: 76.7% mCE as trained, 62.2% adapted (abstract)"
# Santurkar et al. (2018), abstract, word for word; their evidence is a figure.
_SANTURKAR = "it makes the optimization landscape significantly smoother"
_SANTURKAR_NUMBER = (
    "VGG on CIFAR-10: figure 4 only (effective beta-smoothness), no number in the text"
)
# Wu & He (2018), Group Normalization, abstract, word for word, and its number.
_WU_HE = (
    "BN's error increases rapidly when the batch size becomes smaller, caused by "
    "inaccurate batch statistics estimation."
)
_WU_HE_NUMBER = (
    'ImageNet, ResNet-50, batch 2: "GN has 10.6% lower error than its BN counterpart" (abstract)'
)
# Hoffer et al. (2017), "Train longer, generalize better", abstract, word for word.
_HOFFER_GHOST = (
    "a novel algorithm named “Ghost Batch Normalization” which enables significant "
    "decrease in the generalization gap without increasing the number of updates"
)
_HOFFER_REGIME = (
    "the “generalization gap” stems from the relatively small number of updates rather "
    "than the batch size, and can be completely eliminated by adapting the training regime"
)
_HOFFER_NUMBER = "MNIST, CIFAR-10/100, ImageNet: per-model tables, no number in the abstract"


@dataclass(frozen=True)
class Claim:
    paper: str
    says: str  # the paper's own words
    paper_number: str  # the paper's figure for it, with its setting
    folder: str  # under results/
    variant: str
    baseline: str
    metric: str
    predicts: str  # the verdict word that confirms the claim ("better", "lower", ...)
    setup: str  # ours, in a few words
    # An experiment's other table of verdicts (e.g. "adaptation_verdicts"), and the
    # (column, value) pairs that pick the claim's row in it.
    table: str = "verdicts"
    where: tuple[tuple[str, str], ...] = ()

    @property
    def opposite(self) -> str:
        words = _words(self.metric)
        return words[1] if self.predicts == words[0] else words[0]


def _words(metric: str) -> tuple[str, str]:
    # The experiments' own measures follow the same words as compare's; lr-robustness's
    # causal tests and corruption's accuracies compare accuracies ("better" / "worse").
    if metric in _CAUSAL or metric == "corruption_accuracy":
        return ("better", "worse")
    if metric.startswith("log10_"):  # smoothness's measures: larger is rougher
        return ("rougher", "smoother")
    if metric.endswith("_error"):  # batch-size's test errors: more is worse
        return ("worse", "better")
    return METRICS.get(metric, ("higher", "lower"))


def _smoothness_claim(metric: str, setup: str) -> Claim:
    """Santurkar et al.'s claim on one of smoothness's measures, `bn` against `base` at
    the rate 0.01 (where both nets train)."""
    return Claim(
        "Santurkar et al. 2018",
        _SANTURKAR,
        _SANTURKAR_NUMBER,
        "smoothness",
        "bn",
        "base",
        metric,
        "smoother",
        setup,
        where=(("learning_rate", "0.01"),),
    )


CLAIMS: tuple[Claim, ...] = (
    Claim(
        "Ioffe & Szegedy 2015",
        _IOFFE_BEATS,
        _IOFFE_MARGIN,
        "cifar10-3seeds",
        "bn",
        "base",
        "test_accuracy",
        "better",
        "CIFAR-10 (JPEG copy), the preset CNN, 15 epochs",
    ),
    Claim(
        "Ioffe & Szegedy 2015",
        _IOFFE_BEATS,
        _IOFFE_MARGIN,
        "mnist-3seeds",
        "bn",
        "base",
        "test_accuracy",
        "better",
        "MNIST, the preset CNN, 10 epochs",
    ),
    Claim(
        "Ioffe & Szegedy 2015",
        _IOFFE_FASTER,
        _IOFFE_STEPS,
        "cifar10-3seeds",
        "bn",
        "base",
        "epochs_to_target",
        "lower",
        "CIFAR-10 (JPEG copy): epochs to the preset's validation target",
    ),
    Claim(
        "Ioffe & Szegedy 2015",
        _IOFFE_FASTER,
        _IOFFE_STEPS,
        "mnist-3seeds",
        "bn",
        "base",
        "epochs_to_target",
        "lower",
        "MNIST: epochs to the preset's validation target",
    ),
    Claim(
        "Ioffe & Szegedy 2015",
        _IOFFE_BEATS,
        _IOFFE_MNIST,
        "ioffe-szegedy-mnist",
        "BN",
        "no BN",
        "test_accuracy",
        "better",
        "MNIST, the paper's sigmoid MLP (section 4.1), 50,000 steps",
    ),
    Claim(
        "Ioffe & Szegedy 2015",
        _IOFFE_FASTER,
        _IOFFE_MNIST,
        "ioffe-szegedy-mnist",
        "BN",
        "no BN",
        "test_accuracy_early",
        "higher",
        "MNIST, the paper's sigmoid MLP: test accuracy at a tenth of training",
    ),
    Claim(
        "Ioffe & Szegedy 2015",
        _IOFFE_RATES,
        "ImageNet: BN-x5 and BN-x30 at 5 and 30 times Inception's initial rate (4.2.2)",
        "lr-robustness",
        "bn+dropout",
        "base",
        "at_variant_best_rate",
        "better",
        "MNIST subset, 3 epochs, constant-rate SGD: both at bn+dropout's best rate (above base's)",
    ),
    Claim(
        "Ioffe & Szegedy 2015",
        _IOFFE_RATES,
        "ImageNet: BN-x5 and BN-x30 at 5 and 30 times Inception's initial rate (4.2.2)",
        "lr-robustness-cifar10",
        "bn+dropout",
        "base",
        "at_variant_best_rate",
        "better",
        "CIFAR-10 (JPEG copy) subset, 2 epochs, constant-rate SGD: both at bn+dropout's best "
        "rate (above base's)",
    ),
    Claim(
        "Ioffe & Szegedy 2015",
        _IOFFE_DROPOUT,
        "Inception without Dropout among BN's changes (section 4.2.1); no separate number",
        "cifar10-3seeds",
        "bn+dropout",
        "bn",
        "test_accuracy",
        "worse",
        "CIFAR-10 (JPEG copy): Dropout added to the BN net",
    ),
    Claim(
        "Schneider et al. 2020",
        _SCHNEIDER,
        _SCHNEIDER_NUMBER,
        "corruption-fashion",
        "BN adapted",
        "as trained",
        "corruption_accuracy",
        "better",
        "Fashion-MNIST, `bn+dropout`'s 3 models: mean accuracy over 8 corruptions x 5 "
        "severities, BN adapted on a held-out half of each set",
        table="adaptation_verdicts",
        where=(("net", "bn+dropout"),),
    ),
    _smoothness_claim(
        "log10_beta_smoothness",
        "CIFAR-10 (JPEG copy), the preset CNN, SGD at 0.01, 400 steps: Δ log10 of the "
        "median effective beta-smoothness at the same step (at 0.05 the same word)",
    ),
    _smoothness_claim(
        "log10_beta_smoothness_at_loss",
        "CIFAR-10 (JPEG copy), as above, compared at the same training loss instead "
        "(at 0.05 the same word)",
    ),
    Claim(
        "Wu & He 2018",
        _WU_HE,
        _WU_HE_NUMBER,
        "batch-size",
        "gn",
        "bn",
        "ema_error",
        "better",
        "MNIST subset, the preset CNN with GroupNorm in place of BN, per-step batch 2, "
        "3 epochs: test error (BN with its moving averages)",
        where=(("batch_size", "2"),),
    ),
    Claim(
        "Hoffer et al. 2017",
        _HOFFER_GHOST,
        _HOFFER_NUMBER,
        "batch-size",
        "bn-ghost32",
        "bn",
        "precise_error",
        "better",
        "MNIST subset, batch 512, same 3 epochs (48 steps): Ghost BN over 32 against BN over "
        "512, test error with precise BN statistics",
        where=(("batch_size", "512"),),
    ),
    Claim(
        "Hoffer et al. 2017",
        _HOFFER_REGIME,
        _HOFFER_NUMBER,
        "batch-size",
        "bn-ghost32-steps",
        "bn",
        "precise_error",
        "better",
        "MNIST subset, batch 512: Ghost BN over 32 with a batch of 32's steps (768) against "
        "BN with 48 steps, test error with precise BN statistics",
        where=(("batch_size", "512"),),
    ),
)


def _percent_points(metric: str) -> bool:
    return (
        metric.startswith(("test_accuracy", "val_accuracy"))
        or metric.endswith("_error")
        or metric
        in (
            "final_train_val_gap",
            "corruption_accuracy",
            *_CAUSAL,
        )
    )


def _number(value: float, metric: str) -> str:
    if not math.isfinite(value):
        return "n/a"
    return f"{100 * value:+.2f} pp" if _percent_points(metric) else f"{value:+.2f}"


# lr-robustness's questions (causal.csv), as a claim's measure names them.
_CAUSAL = {
    "own_best_rates": "each at its own best rate",
    "at_base_best_rate": "both at {baseline}'s best rate",
    "at_variant_best_rate": "both at {variant}'s best rate",
}


def _causal_verdicts(causal: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """lr-robustness's causal tests as verdict rows: one per variant and question (a
    row that answers several questions, where best rates coincide, stands for each)."""
    rows = []
    for r in causal.itertuples():
        asked = str(r.comparison).split(" = ")
        for metric, question in _CAUSAL.items():
            if question.format(baseline=baseline, variant=r.variant) in asked:
                rows.append(
                    {
                        "variant": r.variant,
                        "baseline": baseline,
                        "metric": metric,
                        "seeds": r.seeds,
                        "difference": r.difference,
                        "ci_low": r.ci_low,
                        "ci_high": r.ci_high,
                        "p_holm": r.p_holm,
                        "family_size": len(causal),
                        "test": f"paired t-test over {r.seeds} seeds (validation accuracy)",
                        "verdict": r.verdict,
                    }
                )
    return pd.DataFrame(rows)


def _verdict_row(claim: Claim, folder: Path, cache: dict) -> pd.Series:
    from kerasbn._csv import read_table
    from kerasbn.verdicts import folder_judgement

    key = (folder, claim.baseline, claim.table)
    if key not in cache:
        if claim.table != "verdicts":  # an experiment's other table, as it wrote it
            cache[key] = read_table(folder / f"{claim.table}.csv")
        elif claim.metric in _CAUSAL:  # lr-robustness: its table of causal tests
            cache[key] = _causal_verdicts(read_table(folder / "causal.csv"), claim.baseline)
        else:  # a comparison re-judged at the claim's baseline, or an experiment's own
            cache[key] = folder_judgement(folder, claim.baseline)["verdicts"]
    table = cache[key]
    rows = table[
        (table["variant"] == claim.variant)
        & (table["metric"] == claim.metric)
        & (table["baseline"] == claim.baseline)
    ]
    for column, value in claim.where:
        rows = rows[rows[column].astype(str) == value]
    if len(rows) != 1:
        raise ValueError(
            f"{folder} has no single verdict of {claim.variant} against {claim.baseline} "
            f"on {claim.metric}. Archive the run the claim names, or correct the claim."
        )
    return rows.iloc[0]


def word(claim: Claim, verdict: str) -> str:
    """The ledger's word for a claim whose comparison got ``verdict``."""
    if verdict == claim.predicts:
        return "confirmed"
    if verdict == claim.opposite:
        return "contradicted"
    return f"not shown ({verdict})"


def ledger_rows(root: str | os.PathLike = ".") -> pd.DataFrame:
    """One row per claim, computed from ``<root>/results``."""
    root, cache, rows = Path(root), {}, []
    for claim in CLAIMS:
        row = _verdict_row(claim, root / "results" / claim.folder, cache)
        interval = (
            f"[{_number(row['ci_low'], claim.metric)}, {_number(row['ci_high'], claim.metric)}]"
            if math.isfinite(row["ci_low"])
            else "n/a"
        )
        family = int(row["family_size"]) if math.isfinite(row["family_size"]) else 0
        rows.append(
            {
                "paper": claim.paper,
                "claim (the paper's words)": f"“{claim.says}”",
                "paper's number": claim.paper_number,
                "our comparison": (
                    f"`{claim.variant}` vs `{claim.baseline}`, {claim.metric.replace('_', ' ')}; "
                    f"{claim.setup}"
                ),
                "run": f"[{claim.folder}](results/{claim.folder})",
                "our effect (95% CI)": f"{_number(row['difference'], claim.metric)} {interval}",
                "seeds": int(row["seeds"]),
                "test": (
                    f"{row['test']}; Holm over {family}, p = {row['p_holm']:.2g}"
                    if math.isfinite(row["p_holm"])
                    else str(row["test"])
                ),
                "verdict": word(claim, str(row["verdict"])),
                "difference": float(row["difference"]),
                "folder": claim.folder,
            }
        )
    return pd.DataFrame(rows)


def ledger_markdown(run_dirs: list[str | os.PathLike] | None = None) -> str:
    """The ledger as Markdown. ``run_dirs``: the archived folders (they must lie under
    one ``results/`` folder, as a published block's do); default: ``./results``."""
    root = Path(".")
    if run_dirs:
        parents = {Path(d).parent for d in run_dirs}
        if len(parents) != 1:
            raise ValueError(f"The ledger reads one results folder. Received: {sorted(parents)}")
        root = parents.pop().parent
    from kerasbn.results_tables import finished_config, source_line

    rows = ledger_rows(root)
    table = rows.drop(columns=["difference", "folder"])
    sources = [
        f"Measured by {source_line(root / 'results' / f, finished_config(root / 'results' / f))}."
        for f in dict.fromkeys(rows["folder"])
    ]
    note = (
        "Verdict words: **confirmed** when the paired test finds the difference the claim "
        "predicts (Holm-adjusted p < 0.05), **contradicted** when it finds the opposite, "
        "**not shown** otherwise (no detectable difference is not evidence of none). Each "
        "row's test, family and correction are in its `test` cell. The papers' claims "
        "were measured mostly on ImageNet (Ioffe & Szegedy: Inception; Schneider et al.: "
        "ImageNet-C, 25 models; Wu & He: ResNet-50; Hoffer et al. also on MNIST and "
        "CIFAR); ours test them on the data set and net each row names, so a row says "
        "whether the claim holds there, not whether the paper's own figure is right."
    )
    return (
        "\n\n".join([table.to_markdown(index=False, disable_numparse=True), note, *sources]) + "\n"
    )

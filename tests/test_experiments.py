"""The named experiments: registry, CLI, and every --quick run."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from kerasbn.cli.experiments import main
from kerasbn.experiments import get_experiment, list_experiments, run_experiment
from kerasbn.experiments.numpy_bn import Config as NumpyConfig
from kerasbn.experiments.numpy_bn import bn_backward, bn_forward, gradient_check

ALL = list_experiments()


def test_registry_and_cli_list(capsys):
    assert ALL == [
        "breast-cancer-mlp",
        "init-scale-sweep",
        "cifar10-cnn",
        "numpy-reference",
        "ioffe-szegedy-mnist",
        "corruption-robustness",
        "lr-robustness",
        "batch-size",
        "smoothness",
        "mnist-mlp",
    ]
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ALL) and "99.1%" in out


def test_unknown_experiment(capsys):
    with pytest.raises(ValueError, match=r"Valid experiments are: .*Received: 'nope'"):
        get_experiment("nope")
    with pytest.raises(SystemExit) as info:
        main(["run", "nope", "--quick"])
    assert info.value.code == 2 and "Unknown experiment" in capsys.readouterr().err


# No experiment may make Keras warn (a probe once warned about the input structure on
# every call).
@pytest.mark.filterwarnings("error::UserWarning")
@pytest.mark.parametrize(
    "name",
    # cifar10-cnn: plain Keras layers, unchanged since it was published, and the
    # slowest quick run (about 20 s): in the full run only.
    [pytest.param(n, marks=pytest.mark.slow) if n == "cifar10-cnn" else n for n in ALL],
)
def test_quick_run_writes_table_figure_and_config(name, quick_run):
    result = quick_run(name)
    out = result.out_dir
    for file in ("summary.csv", "summary.md", "config.json"):
        assert (out / file).stat().st_size > 0
    assert result.figures and all(f.read_bytes()[:4] == b"\x89PNG" for f in result.figures)
    config = json.loads((out / "config.json").read_text())
    assert config["experiment"] == name and config["versions"]["keras"]
    assert len(pd.read_csv(out / "summary.csv")) == len(result.summary) >= 2
    assert (out / "summary.md").read_text().startswith(f"## {name}")


def test_numpy_bn_matches_keras_forward_and_backward():
    check = gradient_check(NumpyConfig())
    assert set(check["input shape"]) == {"(16, 5)", "(4, 6, 6, 3)"}
    assert check["agrees (<= tol)"].all() and (check["max abs diff"] <= 1e-5).all()


def test_numpy_bn_backward_matches_finite_differences():
    rng = np.random.default_rng(1)
    x, dy = rng.normal(size=(6, 3)), rng.normal(size=(6, 3))
    gamma, beta = rng.normal(size=3), rng.normal(size=3)
    _, cache = bn_forward(x, gamma, beta, 1e-3)
    dx, _, _ = bn_backward(dy, cache)
    h, numeric = 1e-6, np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        plus, minus = x.copy(), x.copy()
        plus[idx] += h
        minus[idx] -= h
        numeric[idx] = (
            (bn_forward(plus, gamma, beta, 1e-3)[0] * dy).sum()
            - (bn_forward(minus, gamma, beta, 1e-3)[0] * dy).sum()
        ) / (2 * h)
    np.testing.assert_allclose(dx, numeric, atol=1e-6)


def test_numpy_and_keras_mlps_train_alike(tmp_path):
    result = run_experiment("numpy-reference", quick=True, out_dir=tmp_path, epochs=3)
    h = result.history
    np.testing.assert_allclose(h["numpy_train_loss"], h["keras_train_loss"], rtol=1e-3)
    np.testing.assert_allclose(h["numpy_test_accuracy"], h["keras_test_accuracy"], atol=0.02)


def test_experiment_folders_refuse_reuse_and_resume_unit_by_unit(tmp_path, capsys, messages):
    out = tmp_path / "out"
    first = run_experiment("breast-cancer-mlp", quick=True, out_dir=out)
    assert (out / "complete.json").exists()
    units = sorted((out / "units").iterdir())
    assert len(units) == 2 * 2  # two versions x two seeds (the quick settings)
    # A finished folder is refused: a --quick run no longer replaces a full run's files.
    before = (out / "summary.csv").read_bytes()
    with pytest.raises(SystemExit) as info:
        main(["run", "breast-cancer-mlp", "--quick", "--out", str(out)])
    assert info.value.code == 2 and "finished run" in capsys.readouterr().err
    assert (out / "summary.csv").read_bytes() == before
    # As if killed after three units: other settings are refused, naming the field, and
    # the same call trains only the fourth.
    (out / "complete.json").unlink()
    units[-1].unlink()
    with pytest.raises(FileExistsError, match="config.epochs: 2 stored, 3 now"):
        run_experiment("breast-cancer-mlp", quick=True, out_dir=out, epochs=3)
    kept = {p.name: p.read_bytes() for p in units[:-1]}
    messages.clear()
    again = run_experiment("breast-cancer-mlp", quick=True, out_dir=out)
    assert sum("finished earlier, read back" in m for m in messages) == 3
    assert all((out / "units" / name).read_bytes() == data for name, data in kept.items())
    assert (out / "complete.json").exists() and units[-1].exists()
    pd.testing.assert_frame_equal(again.summary, first.summary, atol=1e-6)


def test_sigterm_ends_an_experiment_with_the_command_that_resumes_it(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "out"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    cmd = [
        sys.executable,
        "-m",
        "kerasbn.experiments",
        "run",
        "breast-cancer-mlp",
        "--out",
        str(out),
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not list((out / "units").glob("*.csv")):  # 10 units of 30 epochs: time to stop
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143 and "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith("stopped by SIGTERM: the finished units are saved in")
    assert line.endswith(f"python -m kerasbn.experiments run breast-cancer-mlp --out {out}")
    assert not (out / ".kerasbn.lock").exists() and not (out / "complete.json").exists()


def test_a_second_writer_is_refused(tmp_path, capsys):
    from kerasbn._lock import FolderLock

    out = tmp_path / "out"
    # A live writer holds the folder (this process, as far as the lock can tell).
    with FolderLock(out), pytest.raises(SystemExit) as info:
        main(["run", "numpy-reference", "--quick", "--out", str(out)])
    assert info.value.code == 2 and "lock" in capsys.readouterr().err.lower()
    assert not (out / "summary.csv").exists()


@pytest.mark.filterwarnings("error::UserWarning")
def test_ioffe_szegedy_mlp_is_the_papers_and_its_quick_run_is_sane(quick_run):
    import keras

    from kerasbn.experiments.ioffe_szegedy import Config, build, steps_to_reach

    config = Config()
    assert config.batch_size == 60 and config.steps == 50_000
    for batch_norm in (False, True):
        model = build(config, batch_norm)
        sigmoids = [la for la in model.layers if isinstance(la, keras.layers.Activation)]
        assert [la.output.shape[-1] for la in sigmoids] == [100, 100, 100]
        assert all(la.activation is keras.activations.sigmoid for la in sigmoids)
        bns = [la for la in model.layers if isinstance(la, keras.layers.BatchNormalization)]
        assert len(bns) == (3 if batch_norm else 0)
    result = quick_run("ioffe-szegedy-mnist")
    history = result.history
    for _, rows in history.groupby(["version", "seed"]):
        assert rows["step"].tolist() == [100, 200, 300, 400]  # QUICK: every 100 of 400 steps
    assert sorted(history["seed"].unique()) == [0, 1]  # QUICK: two seeds
    assert (history["p15"] <= history["p50"]).all() and (history["p50"] <= history["p85"]).all()
    summary = result.summary.set_index("version")
    for version in ("no BN", "BN"):
        ranges = [
            g["p50"].max() - g["p50"].min()
            for _, g in history[history["version"] == version].groupby("seed")
        ]
        assert summary.loc[version, "p50_range"] == pytest.approx(np.mean(ranges))
    # The headline verdict: BN's final test accuracy against the plain net's, seed by seed.
    last = history[history["step"] == 400].set_index(["version", "seed"])["test_accuracy"]
    verdict = pd.read_csv(result.out_dir / "verdicts.csv").set_index("metric")
    expected = np.mean([last[("BN", s)] - last[("no BN", s)] for s in (0, 1)])
    assert verdict.loc["test_accuracy", "difference"] == pytest.approx(expected, abs=1e-6)
    assert summary.loc["BN", "verdict"] == verdict.loc["test_accuracy", "verdict"]
    # "Sooner": the accuracy at a tenth of training (QUICK: the first evaluation, 100).
    first = history[history["step"] == 100].set_index(["version", "seed"])["test_accuracy"]
    expected = np.mean([first[("BN", s)] - first[("no BN", s)] for s in (0, 1)])
    assert verdict.loc["test_accuracy_early", "difference"] == pytest.approx(expected, abs=1e-6)
    assert "test acc % at step 100" in (result.out_dir / "summary.md").read_text()
    # steps_to_reach: the first evaluated step at or above the accuracy, on a made-up curve.
    curve = pd.DataFrame({"step": [1000, 2000, 3000], "test_accuracy": [0.5, 0.97, 0.96]})
    assert steps_to_reach(curve, 0.96) == 2000 and np.isnan(steps_to_reach(curve, 0.98))


def test_lr_robustness_grid_cells_and_diverged_marks(quick_run):
    from kerasbn.experiments.lr_robustness import trained_range

    result = quick_run("lr-robustness")
    runs, cells = result.history, result.summary
    # QUICK: 3 rates log-spaced over 0.01 .. 100, variants base and bn, two seeds.
    assert sorted(set(runs["learning_rate"])) == pytest.approx([0.01, 1.0, 100.0])
    assert len(cells) == 2 * 3 and not cells.duplicated(["variant", "learning_rate"]).any()
    # A rate of 100 blows the loss up for both: marked diverged, given no accuracy.
    at_100 = cells[cells["learning_rate"] == 100.0]
    assert (at_100["diverged_seeds"] == 2).all() and at_100["val_accuracy_mean"].isna().all()
    assert not at_100["trains"].any()
    rows = [r for r in (result.out_dir / "summary.md").read_text().splitlines() if "| `" in r]
    assert sum("| diverged " in r for r in rows) == 2
    finished = runs[~runs["diverged"]]
    assert finished["val_accuracy"].between(0, 1).all() and len(finished) == 2 * 2 * 2
    # The causal table of the run: bn against base, paired over the two seeds.
    causal = pd.read_csv(result.out_dir / "causal.csv")
    assert len(causal) >= 1 and (causal["seeds"] == 2).all()

    # trained_range: the widest run of neighbouring rates, on a made-up table.
    made_up = pd.DataFrame(
        {
            "variant": ["v"] * 5,
            "learning_rate": [0.001, 0.01, 0.1, 1.0, 10.0],
            "trains": [True, False, True, True, False],
        }
    )
    assert trained_range(made_up, "v") == (0.1, 1.0)
    assert trained_range(made_up.assign(trains=False), "v") is None


def test_lr_robustness_causal_tests_on_a_made_up_grid():
    from scipy import stats as sps
    from statsmodels.stats.multitest import multipletests

    from kerasbn.experiments.lr_robustness import best_rates, causal_tests, summarize

    # base trains best at 0.01, bn at 0.1; base diverges at 0.1 with seed 2.
    accuracy = {
        ("base", 0.01): [0.90, 0.91, 0.92],
        ("base", 0.1): [0.80, 0.70, np.nan],
        ("bn", 0.01): [0.905, 0.915, 0.93],
        ("bn", 0.1): [0.95, 0.96, 0.955],
    }
    runs = pd.DataFrame(
        [
            {
                "variant": v,
                "learning_rate": lr,
                "seed": seed,
                "val_accuracy": acc,
                "diverged": bool(np.isnan(acc)),
            }
            for (v, lr), values in accuracy.items()
            for seed, acc in enumerate(values)
        ]
    )
    cells = summarize(runs, tolerance=0.05)
    assert best_rates(cells) == {"base": 0.01, "bn": 0.1}
    table = causal_tests(runs, cells).set_index("comparison")
    assert len(table) == 3
    own = table.loc["each at its own best rate"]
    diffs = np.subtract(accuracy[("bn", 0.1)], accuracy[("base", 0.01)])
    assert own["difference"] == pytest.approx(diffs.mean())
    assert own["p_value"] == pytest.approx(
        sps.ttest_rel(accuracy[("bn", 0.1)], accuracy[("base", 0.01)]).pvalue
    )
    at_base = table.loc["both at base's best rate"]
    assert at_base["difference"] == pytest.approx(np.mean([0.005, 0.005, 0.01]))
    # At bn's rate base lost seed 2: two pairs left, and the note says why.
    at_bn = table.loc["both at bn's best rate"]
    assert at_bn["seeds"] == 2 and "base diverged with 1 of 3 seeds" in at_bn["note"]
    assert at_bn["difference"] == pytest.approx(np.mean([0.95 - 0.80, 0.96 - 0.70]))
    # Holm over the three rows, as statsmodels computes it.
    expected = multipletests(table["p_value"].to_numpy(), method="holm")[1]
    np.testing.assert_allclose(table["p_holm"].to_numpy(), expected)
    # Where both best rates coincide the three questions are one row.
    same = runs[runs["learning_rate"] == 0.01]
    one = causal_tests(same, summarize(same, 0.05))
    assert len(one) == 1 and one["comparison"].iloc[0].count(" = ") == 2


def test_batch_size_rows_scaling_and_three_ways_to_score(quick_run):
    from statsmodels.stats.multitest import multipletests

    result = quick_run("batch-size")
    summary = result.summary.set_index(["variant", "batch_size"])
    # QUICK: base and bn at batches 8 and 64; FrozenBN at the reference batch (32) and
    # below; Ghost BN of 8 above 8, at the same epochs and at batch 8's steps.
    assert sorted(summary.index) == sorted(
        [
            ("base", 8),
            ("base", 64),
            ("bn", 8),
            ("bn", 64),
            ("bn-frozen", 8),
            ("bn-ghost8", 64),
            ("bn-ghost8-steps", 64),
        ]
    )
    for (_, batch), row in summary.iterrows():
        assert row["learning_rate"] == pytest.approx(0.01 * batch / 32)  # linear scaling
    # Hoffer et al.'s regime adaptation: 8 times the epochs, the steps of a batch of 8.
    assert summary.loc[("bn-ghost8-steps", 64), "epochs"] == 2 * 64 // 8
    assert summary.loc[("bn-ghost8-steps", 64), "steps"] == 512 // 8 * 2
    assert summary.loc[("bn-ghost8-steps", 64), "steps"] == summary.loc[("bn", 8), "steps"]
    errors = summary[["ema_error", "precise_error", "train_mode_error"]]
    assert errors.notna().all().all() and ((errors >= 0) & (errors <= 1)).all().all()
    assert (summary["diverged_seeds"] == 0).all() and (summary["seeds"] == 2).all()
    text = (result.out_dir / "summary.md").read_text()
    rows = [r for r in text.split("### Each version")[0].splitlines() if "| `" in r]
    assert len(rows) == 7 and all("| 0/2 " in r for r in rows)
    plain = summary.loc["base"]  # no batch statistics: the three scorings are one network
    assert (plain["ema_error"] == plain["precise_error"]).all()
    assert (plain["ema_error"] == plain["train_mode_error"]).all()
    # Each row against bn at its batch size: scipy's paired t-test, statsmodels' Holm.
    runs = result.history
    verdicts = pd.read_csv(result.out_dir / "verdicts.csv")
    family = verdicts[(verdicts.batch_size == 64) & (verdicts.metric == "precise_error")]
    assert sorted(family.variant) == ["base", "bn-ghost8", "bn-ghost8-steps"]
    at64 = runs[runs.batch_size == 64].pivot(
        index="seed", columns="variant", values="precise_error"
    )
    raw = [stats.ttest_rel(at64[v], at64["bn"]).pvalue for v in family.variant]
    np.testing.assert_allclose(family.p_value, raw)
    np.testing.assert_allclose(family.p_holm, multipletests(raw, method="holm")[1])


def test_frozen_bn_phase_trains_with_the_population_statistics_fixed():
    from types import SimpleNamespace

    import keras

    from kerasbn.experiments.batch_remedies import frozen_bn_phase

    keras.utils.set_random_seed(0)
    inputs = keras.Input((5,))
    x = keras.layers.Dense(4, name="dense")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="head")(x))
    rng = np.random.default_rng(0)
    data = SimpleNamespace(
        x_train=rng.normal(1.0, 2.0, (64, 5)).astype("float32"), y_train=rng.integers(0, 3, 64)
    )
    settings = SimpleNamespace(
        learning_rate=0.05, momentum=0.9, label_smoothing=0.0, seed=0, batch_size=8
    )
    w, b = (np.asarray(v, np.float64) for v in model.get_layer("dense").get_weights())
    population = data.x_train.astype(np.float64) @ w + b  # bn's input before the phase
    head = model.get_layer("head").get_weights()[0].copy()
    gamma_beta = [v.copy() for v in model.get_layer("bn").get_weights()[:2]]
    frozen, diverged = frozen_bn_phase(model, data, settings, epochs=2, precise_batch=16)
    assert not diverged
    layer = frozen.get_layer("bn")
    # The statistics are the training images' population ones, kept through training;
    # scale and shift frozen too, while the other layers learned.
    np.testing.assert_allclose(layer.moving_mean, population.mean(0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(layer.moving_variance, population.var(0), rtol=1e-4, atol=1e-5)
    for before, after in zip(gamma_beta, layer.get_weights()[:2], strict=True):
        np.testing.assert_array_equal(before, after)
    assert not np.allclose(frozen.get_layer("head").get_weights()[0], head)
    assert layer.trainable  # scored in training mode like every other net


def test_training_mode_predictions_normalize_each_batch_by_itself():
    import keras

    from kerasbn.experiments.batch_remedies import training_mode_predictions

    inputs = keras.Input((5,))
    x = keras.layers.Dense(4, name="dense")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="head")(x))
    images = np.random.default_rng(0).normal(size=(24, 5)).astype("float32")
    got = training_mode_predictions(model, images, batch_size=4, chunk=8)
    # Keras' own training-mode call, one batch of 4 at a time.
    want = np.concatenate(
        [
            keras.ops.convert_to_numpy(model(images[k : k + 4], training=True))
            for k in range(0, 24, 4)
        ]
    )
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    whole = keras.ops.convert_to_numpy(model(images, training=True))
    assert not np.allclose(got, whole, atol=1e-3)  # the batch it is normalized over matters


def test_smoothness_probes_are_on_the_configured_grid_and_non_negative(quick_run):
    from statsmodels.stats.multitest import multipletests

    result = quick_run("smoothness")
    history = result.history
    for (variant, seed), mine in history.groupby(["variant", "seed"]):
        assert mine["step"].tolist() == [1, 10, 20], (variant, seed)
    assert set(history["seed"]) == {0, 1}
    # QUICK: step sizes 0.5 and 2 x the rate; one gradient change per step size; one
    # absolute distance and one relative step.
    assert all(len(changes) == 2 for changes in history["grad_changes"])
    assert all(len(changes) == 1 for changes in history["grad_changes_abs"])
    assert all(len(changes) == 1 for changes in history["grad_changes_rel"])
    for suffix in ("", "_abs", "_rel"):
        for column in ("loss_range", "grad_change_min", "grad_change_max", "beta_smoothness"):
            assert (history[column + suffix] >= 0).all(), column + suffix
        assert (history["loss_min" + suffix] <= history["loss"]).all()
        assert (history["loss"] <= history["loss_max" + suffix]).all()
    assert (result.summary["loss_rise"] >= 0).all()
    config = json.loads((result.out_dir / "config.json").read_text())["config"]
    assert config["step_multiples"] == [0.5, 2.0]
    # bn against base: scipy's paired t-test over the seeds of log10 of each run's
    # median of each measure; the measures of the rate form one family, whose Holm
    # adjustment statsmodels makes.
    verdicts = pd.read_csv(result.out_dir / "verdicts.csv").set_index("metric")
    for column in ("loss_range", "beta_smoothness", "beta_smoothness_abs", "beta_smoothness_rel"):
        medians = history.groupby(["variant", "seed"])[column].median()
        p = stats.ttest_rel(np.log10(medians["bn"]), np.log10(medians["base"])).pvalue
        assert verdicts.loc[f"log10_{column}", "p_value"] == pytest.approx(p), column
    assert (verdicts["baseline"] == "base").all()
    tested = verdicts[np.isfinite(verdicts["p_value"])]
    assert len(tested) >= 4 and (tested["family_size"] == len(tested)).all()
    np.testing.assert_allclose(tested["p_holm"], multipletests(tested["p_value"], method="holm")[1])
    for row in tested.itertuples():  # each word from its adjusted p
        detected = row.p_holm < 0.05 and row.difference != 0
        want = ("rougher" if row.difference > 0 else "smoother") if detected else None
        assert row.verdict == (want or "no detectable difference"), row


def test_scale_invariant_measures_ignore_the_scale_of_weights_before_bn():
    import keras

    from kerasbn.experiments.smoothness_probe import probe

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 5)).astype("float32")
    y = rng.integers(0, 3, 32)
    inputs = keras.Input((5,))
    h = keras.layers.Dense(4, use_bias=False, name="d1")(inputs)
    h = keras.layers.BatchNormalization(epsilon=1e-9, name="bn")(h)
    h = keras.layers.ReLU()(h)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="head")(h))
    kwargs = {"learning_rate": 0.1, "multiples": (1.0,), "distances": (0.3,), "relative": (0.05,)}
    before = probe(model, x, y, **kwargs)
    layer = model.get_layer("d1")
    layer.kernel.assign(layer.kernel.numpy() * 0.1)  # the loss cannot tell (BN follows)
    after = probe(model, x, y, **kwargs)
    assert after["loss"] == pytest.approx(before["loss"], rel=1e-5)
    for column in ("loss_range_rel", "grad_change_max_rel", "beta_smoothness_rel"):
        assert after[column] == pytest.approx(before[column], rel=1e-3), column
    # The raw measure does change: d1's gradient grows 10-fold, its curvature 100-fold.
    assert after["beta_smoothness_abs"] != pytest.approx(before["beta_smoothness_abs"], rel=0.1)


def test_smoothness_gradient_is_softmax_regressions_and_assigns_nothing():
    import keras

    from kerasbn.experiments.smoothness import loss_and_gradient, probe

    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 5)).astype("float32")
    y = rng.integers(0, 3, 16)
    inputs = keras.Input((5,))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(inputs))
    kernel = rng.normal(size=(5, 3)).astype("float32")
    bias = rng.normal(size=3).astype("float32")
    loss, (g_kernel, g_bias) = loss_and_gradient(model, [kernel, bias], x, y)
    # Softmax regression by hand: mean cross-entropy and its gradient X^T (p - onehot) / n.
    logits = x.astype(np.float64) @ kernel + bias
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    onehot = np.eye(3)[y]
    assert loss == pytest.approx(-np.mean(np.log(p[np.arange(16), y])), rel=1e-5)
    np.testing.assert_allclose(g_kernel, x.T @ (p - onehot) / 16, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(g_bias, (p - onehot).mean(0), rtol=1e-4, atol=1e-6)

    bn_inputs = keras.Input((5,))
    hidden = keras.layers.BatchNormalization()(keras.layers.Dense(4)(bn_inputs))
    bn_model = keras.Model(bn_inputs, keras.layers.Dense(3, activation="softmax")(hidden))
    before = [w.copy() for w in bn_model.get_weights()]
    probe(bn_model, x, y, 0.1, (0.5, 1.0))
    for a, b in zip(bn_model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(a, b)  # weights and BN statistics untouched


def test_mnist_mlp_verdict_is_the_paired_test_of_its_saved_test_images(quick_run):
    result = quick_run("mnist-mlp")
    out = result.out_dir
    final = result.history[result.history["epoch"] == result.history["epoch"].max()]
    # Each saved per-image record is the run's own test accuracy, image by image.
    correct = {}
    for row in final.itertuples():
        hits = np.load(out / "correct" / f"{row.version.replace(' ', '_')}-seed{row.seed}.npy")
        assert hits.dtype == bool and hits.shape == (10_000,)
        assert hits.mean() == pytest.approx(row.test_accuracy, abs=1e-6)
        correct[(row.version, row.seed)] = hits
    seeds = sorted(final["seed"].unique())
    assert len(seeds) >= 2
    verdict = pd.read_csv(out / "verdicts.csv")
    row = verdict[(verdict["variant"] == "BN") & (verdict["metric"] == "test_accuracy")].iloc[0]
    assert row["baseline"] == "no BN" and row["family_size"] == 1
    # The difference is the mean over seeds of the per-seed accuracy differences.
    expected = np.mean([correct[("BN", s)].mean() - correct[("no BN", s)].mean() for s in seeds])
    assert row["difference"] == pytest.approx(expected, abs=1e-9)
    # The seed-only interval is the paired t-interval of those differences (scipy).
    from scipy import stats as sps

    diffs = [correct[("BN", s)].mean() - correct[("no BN", s)].mean() for s in seeds]
    low, high = sps.t.interval(0.95, len(diffs) - 1, loc=np.mean(diffs), scale=sps.sem(diffs))
    assert (row["seed_ci_low"], row["seed_ci_high"]) == pytest.approx((low, high), abs=1e-9)
    assert row["test"] and row["verdict"] in {"better", "worse", "no detectable difference"}
    summary = (out / "summary.md").read_text()
    assert "Verdicts: each variant against `no BN`" in summary and "Holm" in summary
    assert (
        pd.read_csv(out / "summary.csv").set_index("version").loc["BN", "verdict"]
        == (row["verdict"])
    )


def test_breast_cancer_verdict_is_the_paired_difference_of_its_seeds(quick_run):
    result = quick_run("breast-cancer-mlp")
    final = result.history[result.history["epoch"] == result.history["epoch"].max()]
    by = final.pivot_table(index="seed", columns="version", values="val_accuracy")
    verdict = pd.read_csv(result.out_dir / "verdicts.csv").iloc[0]
    assert verdict["metric"] == "val_accuracy" and verdict["baseline"] == "no BN"
    assert verdict["difference"] == pytest.approx((by["BN on inputs"] - by["no BN"]).mean())
    assert verdict["seeds"] == len(by) == 2


def test_init_scale_verdicts_are_scipys_paired_tests_at_each_scale(quick_run):
    result = quick_run("init-scale-sweep")
    final = result.history[result.history["epoch"] == result.history["epoch"].max()]
    assert sorted(set(final["seed"])) == [0, 1] and final["weight_std"].nunique() == 4
    verdicts = pd.read_csv(result.out_dir / "verdicts.csv")
    assert len(verdicts) == 4 and (verdicts["family_size"] <= 1).all()
    for row in verdicts.itertuples():
        mine = final[np.isclose(final["weight_std"], row.weight_std)]
        bn = mine[mine.version == "BN"].sort_values("seed")["train_accuracy"].to_numpy()
        plain = mine[mine.version == "no BN"].sort_values("seed")["train_accuracy"].to_numpy()
        assert row.difference == pytest.approx(np.mean(bn - plain))
        if np.std(bn - plain) > 0:
            assert row.p_value == pytest.approx(stats.ttest_rel(bn, plain).pvalue)
        else:  # no spread between the seeds' differences: no test, never a verdict word
            assert row.verdict == "undetermined (no spread)"
    summary = result.summary.set_index("weight_std")
    assert set(summary["verdict"]) == set(verdicts["verdict"])
    # Both tables write the scales alike (4.64e-02, not 0.0464159).
    tests = (result.out_dir / "summary.md").read_text().split("### Each version")[1]
    assert "| 4.64e-02 " in tests and "0.0464" not in tests


@pytest.mark.slow
def test_cifar10_cnn_verdicts_come_from_its_saved_test_images(quick_run):
    result = quick_run("cifar10-cnn")
    out = result.out_dir
    runs = pd.read_csv(out / "runs_by_seed.csv")
    assert sorted(set(runs["seed"])) == [0, 1]
    accuracy = {}
    for row in runs.itertuples():
        hits = np.load(out / "correct" / f"{row.variant}-seed{row.seed}.npy")
        assert hits.dtype == bool and hits.shape == (500,)  # QUICK keeps 500 test images
        assert hits.mean() == pytest.approx(row.test_accuracy, abs=1e-6)
        accuracy[(row.variant, row.seed)] = hits.mean()
    verdicts = pd.read_csv(out / "verdicts.csv").set_index("variant")
    assert set(verdicts.index) == {"dropout", "bn", "bn+dropout"}
    for variant in verdicts.index:
        expected = np.mean([accuracy[(variant, s)] - accuracy[("base", s)] for s in (0, 1)])
        assert verdicts.loc[variant, "difference"] == pytest.approx(expected, abs=1e-9)
    assert (verdicts["family_size"] == 3).all()

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from kerasbn import compare, default_config, load_model, predict
from kerasbn.cli.compare import main
from kerasbn.report import HISTORY_COLUMNS, SUMMARY_COLUMNS


@pytest.fixture(scope="module")
def run(digits, tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    config = default_config("digits", epochs=2, verbose=0)
    result = compare(
        digits,
        "base,bn+dropout",
        config,
        seeds=2,
        out_dir=root / "out",
        save_models=root / "models",
        limit=400,
    )
    return result, root


def test_every_output_file_is_written(run):
    result, root = run
    out = result.out_dir
    for name in (
        "config.json",
        "history.csv",
        "runs.csv",
        "summary.csv",
        "summary.md",
        "curves.png",
    ):
        assert (out / name).stat().st_size > 0, name
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    logs = sorted(p.name for p in (out / "logs").iterdir())
    assert logs == [
        "digits-base-seed0.csv",
        "digits-base-seed1.csv",
        "digits-bn+dropout-seed0.csv",
        "digits-bn+dropout-seed1.csv",
    ]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left


def test_config_json_records_the_resolved_run(run):
    result, _ = run
    config = json.loads((result.out_dir / "config.json").read_text())
    assert config["seeds"] == [0, 1]
    assert config["dataset"]["train"] == 400 and config["dataset"]["limit"] == 400
    assert config["train_config"]["epochs"] == 2
    assert [v["name"] for v in config["variants"]] == ["base", "bn+dropout"]
    assert config["versions"]["keras"] >= "3.15.1"


def test_history_and_summary_tables(run):
    result, _ = run
    history = pd.read_csv(result.out_dir / "history.csv")
    assert list(history.columns) == HISTORY_COLUMNS
    assert len(history) == 2 * 2 * 2  # variants x seeds x epochs
    assert set(history["seed"]) == {0, 1}
    summary = pd.read_csv(result.out_dir / "summary.csv")
    assert list(summary.columns) == SUMMARY_COLUMNS
    assert list(summary["variant"]) == ["base", "bn+dropout"]
    assert (summary["seeds"] == 2).all()
    assert summary["test_accuracy_std"].notna().all()
    assert summary["test_accuracy_mean"].between(0.1, 1.0).all()
    markdown = (result.out_dir / "summary.md").read_text()
    assert "±" in markdown and "| bn+dropout" in markdown


def test_saved_models_reproduce_the_recorded_test_accuracy(run, digits):
    result, root = run
    for variant, path in result.model_paths.items():
        assert path == root / "models" / f"digits-{variant}.keras"
        sidecar = json.loads(path.with_suffix(".json").read_text())
        assert sidecar["variant"]["name"] == variant and sidecar["seed"] == 0
        assert sidecar["input_shape"] == [8, 8, 1] and len(sidecar["class_names"]) == 10
        ids = predict(load_model(path), digits.x_test).class_ids
        accuracy = float((ids == digits.y_test).mean())
        assert accuracy == pytest.approx(sidecar["metrics"]["test_accuracy"], abs=1e-6)


def test_existing_results_are_never_overwritten(run, digits):
    result, _ = run
    before = (result.out_dir / "summary.csv").read_bytes()
    with pytest.raises(FileExistsError, match="already holds the results"):
        compare(
            digits,
            "base",
            default_config("digits", epochs=1, verbose=0),
            out_dir=result.out_dir,
            save_models=None,
        )
    assert (result.out_dir / "summary.csv").read_bytes() == before


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--variants", "base,bogus"], "Unknown variant. Valid variants are: base, dropout"),
        (["--dataset", "svhn"], "Unknown dataset"),
        (["--epochs", "0"], "epochs must be a positive integer"),
        (["--batch-size", "-4"], "batch_size must be a positive integer"),
        (["--learning-rate", "inf"], "learning_rate must be a positive, finite number"),
        (["--learning-rate", "nan"], "learning_rate must be a positive, finite number"),
        (["--limit", "0"], "--limit must be a positive"),
        (["--dataset", "digits", "--limit", "99999"], "larger than the 1150 training"),
        (["--dataset", "mnist", "--data-dir", "/nonexistent/kerasbn"], "does not exist"),
    ],
)
def test_cli_bad_input_exits_2_before_training(tmp_path, capsys, argv, message):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--out", str(out), "--no-save-models"])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (out / "history.csv").exists()


def test_cli_on_real_mnist_slice(shared_data_dir, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "kerasbn.compare",
            "--dataset",
            "mnist",
            "--variants",
            "base,bn",
            "--epochs",
            "1",
            "--limit",
            "512",
            "--data-dir",
            str(shared_data_dir),
            "--out",
            str(out),
            "--save-models",
            str(tmp_path / "models"),
            "--verbose",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "RuntimeWarning" not in proc.stderr
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["variant"]) == ["base", "bn"]
    assert (summary["test_accuracy_mean"] > 0.3).all()  # 512 real images, 1 epoch
    assert (tmp_path / "models" / "mnist-bn.keras").exists()
    assert "results in" in proc.stdout


def test_saved_cifar10_model_has_no_augmentation_layers(tmp_path):
    import numpy as np

    from kerasbn import Dataset

    rng = np.random.default_rng(0)

    def images(n):
        return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n)

    (x_train, y_train), (x_val, y_val), (x_test, y_test) = images(64), images(16), images(16)
    data = Dataset(
        "cifar10",
        x_train,
        y_train,
        x_val,
        y_val,
        x_test,
        y_test,
        tuple("abcdefghij"),
        "made by the test",
    )
    config = default_config("cifar10", epochs=1, verbose=0)
    result = compare(data, "bn", config, out_dir=tmp_path / "out", save_models=tmp_path / "m")
    saved = load_model(result.model_paths["bn"])
    assert not [layer.name for layer in saved.layers if layer.name.startswith("augment_")]
    assert len(saved.layers) > 5


def test_compare_accepts_an_unregistered_custom_variant(digits, tmp_path):
    from kerasbn import Variant, list_variants

    heavy = Variant("heavy-dropout", "not registered", head_dropout=0.6)
    config = default_config("digits", epochs=1, verbose=0)
    result = compare(
        digits, [heavy, "bn"], config, out_dir=tmp_path / "out", save_models=None, limit=200
    )
    assert list(result.summary["variant"]) == ["heavy-dropout", "bn"]
    assert "heavy-dropout" not in list_variants()
    saved = json.loads((tmp_path / "out" / "config.json").read_text())
    assert saved["variants"][0]["head_dropout"] == 0.6 and "tensorflow" in saved["versions"]


def test_a_batch_larger_than_the_training_set_is_named_before_training(digits, tmp_path, messages):
    config = default_config("digits", epochs=1, verbose=0, batch_size=64)
    compare(digits, "base", config, out_dir=tmp_path / "out", save_models=None, limit=20)
    warning = next(m for m in messages if "larger than the 20 training examples" in m)
    assert "--batch-size" in warning
    assert messages.index(warning) < next(
        i for i, m in enumerate(messages) if m.startswith("training ")
    )


def test_progress_is_one_line_per_epoch_unless_on_a_terminal(monkeypatch):
    from kerasbn.cli.compare import _config_from_args, build_parser

    args = build_parser().parse_args(["--dataset", "digits"])
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False)  # a log file or a pipe
    assert _config_from_args(args).verbose == 2
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert _config_from_args(args).verbose == 1
    chosen = build_parser().parse_args(["--dataset", "digits", "--verbose", "0"])
    assert _config_from_args(chosen).verbose == 0


def test_nets_trained_with_flips_also_report_flip_tta_accuracy(digits, tmp_path):
    import keras

    config = default_config("digits", epochs=2, verbose=0, augment=True)
    result = compare(
        digits, "bn", config, out_dir=tmp_path / "out", save_models=tmp_path / "m", limit=300
    )
    runs = pd.read_csv(result.out_dir / "runs.csv")
    # Recomputed from the saved (inference) model: mean of image and mirror probabilities.
    model = keras.saving.load_model(tmp_path / "m" / "digits-bn.keras", compile=False)
    x = digits.x_test
    both = model.predict(x, verbose=0) + model.predict(x[:, :, ::-1], verbose=0)
    expected = np.mean(both.argmax(1) == digits.y_test)
    assert runs.loc[0, "test_accuracy_flip_tta"] == pytest.approx(expected, abs=1e-9)
    plain = compare(
        digits,
        "bn",
        default_config("digits", epochs=1, verbose=0),
        out_dir=tmp_path / "plain",
        save_models=None,
        limit=100,
    )
    assert "test_accuracy_flip_tta" not in pd.read_csv(plain.out_dir / "runs.csv")

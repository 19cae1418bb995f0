"""The benchmark's --quick form produces its figures (their values are not asserted:
speed targets live in the benchmark output, not in tests)."""

import json
import shutil

import pytest

from kerasbn import _tfenv
from kerasbn.bench import forward_flops, matmul_peak, median_rows
from kerasbn.bench.record import bench_markdown, read_bench
from kerasbn.bench.table import ratios
from kerasbn.cli.bench import main
from kerasbn.models import build_model


def test_quick_benchmark_produces_every_figure(tmp_path, capsys):
    assert main(["--quick", "--variants", "bn+dropout", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "kerasbn / naive" in out and "float32 matmul peak" in out
    assert "kerasbn / naive-same-batch" in out and "batch size alone" in out
    rows = json.loads((tmp_path / "bench.json").read_text())["rows"]
    paths = {row["path"] for row in rows}
    assert {"kerasbn", "naive", "naive-same-batch"} <= paths
    batches = {row["path"]: row["batch_size"] for row in rows}
    # digits trains at 32 by default, so both naive paths match kerasbn's batch here.
    assert batches["naive"] == 32 and batches["naive-same-batch"] == batches["kerasbn"]
    for row in rows:
        assert row["images_per_s"] > 0 and row["peak_rss_mb"] > 0
        assert 0 < row["fraction_of_matmul_peak"] < 10
        assert 0 <= row["val_accuracy"] <= 1
        assert row["backend"]
    backends = {row["path"]: row["backend"] for row in rows}
    if _tfenv.USER_ONEDNN is None and backends["kerasbn"].startswith("tensorflow"):
        # kerasbn turns oneDNN on; the naive path keeps TensorFlow's own defaults.
        assert backends["kerasbn"] == "tensorflow +oneDNN" and backends["naive"] == "tensorflow"
    markdown = (tmp_path / "bench.md").read_text()
    for path, package in (("torch", "torch"), ("torch-compile", "torch"), ("kerasbn-jax", "jax")):
        if path not in paths:
            assert f"{path}: {package} is not installed" in markdown
    # The record keeps every round of every path that ran, and remakes the printed text.
    record = json.loads((tmp_path / "bench.json").read_text())
    assert len(record["raw"]) == len(paths) * record["config"]["repeats"]
    assert "Measured by `python -m kerasbn.bench --quick" in out or "from Python" in out
    assert bench_markdown([tmp_path]) == markdown and markdown.strip() in out


# Slow: a second benchmark of its own (about 20 s); the quick benchmark covers the paths.
@pytest.mark.slow
def test_unfused_path_measures_what_fusing_bn_is_worth(tmp_path, capsys):
    argv = ["--quick", "--variants", "bn", "--paths", "kerasbn,kerasbn-unfused"]
    assert main([*argv, "--out", str(tmp_path)]) == 0
    assert "kerasbn / kerasbn-unfused" in capsys.readouterr().out
    rows = json.loads((tmp_path / "bench.json").read_text())["rows"]
    assert sorted(row["path"] for row in rows) == ["kerasbn", "kerasbn-unfused"]


def test_forward_flops_counts_convs_and_dense_layers():
    model = build_model("digits", "base", augment=False)
    # conv 8x8x16 (3x3x1), conv 4x4x32 (3x3x16), dense 2*2*32 -> 64, dense 64 -> 10
    expected = 2 * (8 * 8 * 16 * 9 * 1 + 4 * 4 * 32 * 9 * 16 + 128 * 64 + 64 * 10)
    assert forward_flops(model) == expected
    assert matmul_peak(size=256, repeats=2) > 1e8


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--paths", "kerasbn,jaxpr"], "Unknown path. Valid paths are: kerasbn"),
        (["--datasets", "foo"], "Unknown dataset. Valid datasets are: mnist"),
        (["--variants", "base,nope"], "Unknown variant"),
        (["--limit", "0"], "--limit must be at least 1"),
        # Flags given with --quick are honoured, so they are checked too.
        (["--quick", "--epochs", "1"], "--epochs must be at least 2 (one warm-up"),
        (["--quick", "--repeats", "0"], "--repeats must be at least 1"),
    ],
)
def test_bad_input_exits_2_before_measuring(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_rounds_are_reduced_to_medians_with_the_peak_memory():
    import pandas as pd

    raw = pd.DataFrame(
        [
            {
                "dataset": "d",
                "variant": "v",
                "path": p,
                "images_per_s": ips,
                "peak_rss_mb": rss,
                "gpu_peak_mb": None,
                "backend": "tensorflow",
            }
            for p, ips, rss in [("a", 100, 5), ("b", 50, 7), ("a", 300, 9), ("a", 200, 1)]
        ]
    )
    table = median_rows(raw).set_index("path")
    assert table.loc["a", "images_per_s"] == 200 and table.loc["a", "peak_rss_mb"] == 9
    assert table.loc["a", "images_per_s_min"] == 100 and table.loc["a", "images_per_s_max"] == 300
    assert table.loc["a", "rounds"] == 3 and table.loc["b", "rounds"] == 1
    assert table.loc["b", "backend"] == "tensorflow"


def test_flop_rates_use_three_times_the_forward_flops_and_skip_gpu_rows():
    import pandas as pd

    from kerasbn.bench.table import add_flop_rates

    table = pd.DataFrame(
        {
            "dataset": ["d", "d"],
            "variant": ["v", "v"],
            "path": ["cpu", "gpu"],
            "flops_per_image": [2e6, 2e6],
            "images_per_s": [1000.0, 50000.0],
            "gpu_peak_mb": [None, 150.0],
        }
    )
    notes = add_flop_rates(table, peak=12e9)
    # forward + backward = 3 x 2 MFLOP per image, 1000 images/s: 6 GFLOP/s, half of 12.
    assert table["model_gflops_per_s"].tolist() == [6.0, 300.0]
    assert table.loc[0, "fraction_of_matmul_peak"] == 0.5
    assert pd.isna(table.loc[1, "fraction_of_matmul_peak"]) and "GPU" in notes[0]
    assert add_flop_rates(table.iloc[:1].copy(), peak=12e9) == []


def test_bfloat16_rows_are_measured_against_the_bfloat16_peak():
    import pandas as pd

    from kerasbn.bench.measure import bfloat16_matmul_peak
    from kerasbn.bench.table import add_flop_rates

    table = pd.DataFrame(
        {
            "dataset": ["d", "d"],
            "variant": ["v", "v"],
            "path": ["kerasbn", "kerasbn"],
            "precision": ["float32", "mixed_bfloat16"],
            "flops_per_image": [2e6, 2e6],
            "images_per_s": [1000.0, 2000.0],
        }
    )
    add_flop_rates(table, peak=12e9, bfloat16_peak=48e9)
    # 6 GFLOP/s of 12 (float32) and 12 GFLOP/s of 48 (bfloat16).
    assert table["fraction_of_matmul_peak"].tolist() == [0.5, 0.25]
    assert bfloat16_matmul_peak(size=256, repeats=2) > 1e8


def test_ratios_are_taken_round_by_round_and_called_a_win_only_when_all_agree():
    import pandas as pd

    speeds = {  # round -> images/s of kerasbn, naive, torch
        0: (300, 100, 250),
        1: (200, 100, 210),
        2: (240, 120, 200),
    }
    raw = pd.DataFrame(
        [
            {"dataset": "d", "variant": "v", "path": path, "round": r, "images_per_s": ips}
            for r, row in speeds.items()
            for path, ips in zip(("kerasbn", "naive", "torch"), row, strict=True)
        ]
    )
    table = ratios(raw).set_index("ratio")
    naive = table.loc["kerasbn / naive"]  # 3.0, 2.0, 2.0 per round
    assert (naive["median"], naive["min"], naive["max"]) == (2.0, 2.0, 3.0)
    assert naive["verdict"] == "win" and naive["rounds"] == 3
    torch = table.loc["kerasbn / torch"]  # 1.2, 0.952, 1.2: one round disagrees
    assert torch["median"] == pytest.approx(1.2) and torch["verdict"] == "mixed"
    assert "kerasbn / kerasbn-unfused" not in table.index  # that path did not run


def test_quick_time_to_accuracy_produces_its_table(tmp_path, capsys):
    assert (
        main(["--quick", "--time-to-accuracy", "--variants", "base,bn", "--out", str(tmp_path)])
        == 0
    )
    assert "all 2 variants in" in capsys.readouterr().out
    rows = json.loads((tmp_path / "time_to_accuracy.json").read_text())["rows"]
    assert [row["variant"] for row in rows] == ["base", "bn"]
    for row in rows:
        assert row["target"] == 0.95 and row["epochs"] == 3  # digits' preset, --quick epochs
        assert row["total_seconds"] > 0 and 0 < row["best_val_accuracy"] <= 1
        if row["epochs_to_target"] == row["epochs_to_target"]:  # reached (not NaN)
            assert 1 <= row["epochs_to_target"] <= 3
            assert 0 < row["seconds_to_target"] <= row["total_seconds"]


def test_time_to_accuracy_from_a_finished_comparison(
    digits_three_seeds, tmp_path, capsys, monkeypatch
):
    import dataclasses

    import pandas as pd

    from kerasbn import presets

    # base stays near chance in this run while bn and bn-copy train: some seeds reach
    # the target, some do not.
    out = digits_three_seeds[0].out_dir
    target = 0.5
    real = presets.get_preset
    monkeypatch.setattr(
        presets,
        "get_preset",
        lambda name: dataclasses.replace(real(name), speed_target=target),
    )
    page = tmp_path / "page.md"
    page.write_text("before\n<!-- results:tta -->\nold\n<!-- /results:tta -->\nafter\n")
    argv = ["--time-to-accuracy", "--from-run", str(out), "--out", str(tmp_path)]
    assert main([*argv, "--into", str(page), "--name", "tta"]) == 0
    shown = capsys.readouterr().out
    text = page.read_text()
    assert text.startswith("before\n<!-- results:tta -->\n| data set") and "old" not in text
    assert text.endswith("<!-- /results:tta -->\nafter\n") and f"From `{out.name}`:" in text
    assert (
        "the whole comparison (9 runs)" in shown
        and f"From `{out.name}`:" in shown
        and str(out) not in shown
    )
    rows = {
        r["variant"]: r
        for r in json.loads((tmp_path / "time_to_accuracy.json").read_text())["rows"]
    }
    assert sorted(rows) == ["base", "bn", "bn-copy"]
    for variant in ("base", "bn", "bn-copy"):
        times, totals = [], []
        for seed in (0, 1, 2):
            log = pd.read_csv(out / "logs" / f"digits-{variant}-seed{seed}.csv")
            totals.append(sum(log["seconds"]))
            elapsed = 0.0
            for acc, seconds in zip(log["val_accuracy"], log["seconds"], strict=True):
                elapsed += seconds
                if acc >= target:
                    times.append(elapsed)
                    break
        row = rows[variant]
        assert row["seeds"] == 3 and row["seeds_reaching"] == len(times)
        assert row["total_seconds"] == pytest.approx(sum(totals) / 3)
        if times:
            assert row["seconds_to_target"] == pytest.approx(sum(times) / len(times))
    # Two folders of the same data set: one whole-comparison time each, not their sum.
    other = tmp_path / "again"
    shutil.copytree(out, other, ignore=shutil.ignore_patterns("tensorboard", "*.keras"))
    assert main(["--time-to-accuracy", "--from-run", str(out), str(other)]) == 0
    shown = capsys.readouterr().out
    assert f"`{out.name}` (digits): the whole comparison (9 runs)" in shown
    assert "`again` (digits): the whole comparison (9 runs)" in shown


def test_from_run_needs_time_to_accuracy_and_a_finished_folder(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["--from-run", str(tmp_path)])
    assert info.value.code == 2 and "goes with --time-to-accuracy" in capsys.readouterr().err
    assert main(["--time-to-accuracy", "--from-run", str(tmp_path)]) == 2
    assert "error:" in capsys.readouterr().err


def test_startup_rows_time_each_command_in_a_fresh_process(monkeypatch, tmp_path):
    import sys

    from kerasbn.bench import startup

    commands = {
        "kerasbn --help": [sys.executable, "-m", "kerasbn", "--help"],
        # 0.3 s of CPU spent on purpose, the rest of a second asleep: CPU time is what
        # the row reports, whatever the wall clock says.
        "busy": [sys.executable, "-c", "import time\nt=time.process_time()\n"
                 "while time.process_time() - t < 0.3: pass\ntime.sleep(0.7)"],
    }  # fmt: skip
    monkeypatch.setattr(startup, "startup_commands", lambda run_dir: commands)
    table = startup.time_startup(None, repeats=1).set_index("command")
    assert table.loc["kerasbn --help", "cpu_s_median"] < startup.STARTUP_TARGET_S
    busy = table.loc["busy"]
    assert 0.3 <= busy["cpu_s_median"] < 0.9 and busy["wall_s_median"] >= 1.0
    markdown = startup.startup_markdown(table.reset_index(), None)
    assert "| kerasbn --help" in markdown and "met" in markdown


def _bench_result(speeds: dict[str, tuple[float, ...]], dataset="cifar10", variant="bn+dropout"):
    """A BenchResult from images/s per path and round (2 MFLOP per image)."""
    import pandas as pd

    from kerasbn.bench.table import BenchResult, add_flop_rates

    raw = pd.DataFrame(
        [
            {
                "dataset": dataset,
                "variant": variant,
                "path": path,
                "round": r,
                "images_per_s": ips,
                "flops_per_image": 2e6,
                "precision": "mixed_bfloat16" if path.endswith("bf16") else "float32",
            }
            for path, rounds in speeds.items()
            for r, ips in enumerate(rounds)
        ]
    )
    table = median_rows(raw)
    add_flop_rates(table, peak=12e9, bfloat16_peak=60e9)
    return BenchResult(table, ratios(raw), 12e9, [], 60e9)


AMX = frozenset({"avx512_bf16", "amx_bf16"})


def test_targets_are_judged_on_the_median_and_marked_where_they_do_not_apply():
    from kerasbn.bench.targets import targets_markdown, targets_table

    result = _bench_result(
        {
            # bf16 / f32 per round: 2.5, 1.5, 2.2 -> median 2.2 (met), slowest 1.5
            "kerasbn": (1000, 1000, 1000),
            "kerasbn-bf16": (2500, 1500, 2200),
            # kerasbn-bf16 / torch-bf16: 1.25, 1.0, 1.1 -> median 1.1 (not met at 1.3)
            "torch-bf16": (2000, 1500, 2000),
            # float32: kerasbn / torch-compile 1.0 every round (met: at least 1.0)
            "torch-compile": (1000, 1000, 1000),
        }
    )
    table = targets_table(result, AMX).set_index("target")
    ratio = table.loc["cifar10 `bn+dropout`: kerasbn-bf16 / kerasbn >= 2x"]
    assert ratio["measured"] == "2.20x (slowest round 1.50x)" and ratio["status"] == "met"
    torch = table.loc["cifar10 `bn+dropout`: kerasbn-bf16 / torch-bf16 >= 1.3x"]
    assert torch["status"] == "not met"
    compiled = table.loc["cifar10 `bn+dropout`: kerasbn-bf16 / torch-compile-bf16 >= 1x"]
    assert compiled["status"].startswith("not measured")
    # 3 x 2 MFLOP x 2200 images/s = 13.2 GFLOP/s of the 60 bfloat16 peak: 22%, not 30%.
    peak = table.loc["cifar10 `bn+dropout`: kerasbn-bf16 of the matmul peak >= 30%"]
    assert peak["measured"].startswith("22.0%") and peak["status"] == "not met"
    assert table.loc["cifar10 `bn+dropout`: kerasbn / torch-compile >= 1x", "status"] == "met"
    # MNIST did not run: its float32 targets are not listed.
    assert not any(name.startswith("mnist") for name in table.index)
    # Without AMX the bfloat16 targets are measured but do not apply.
    plain = targets_table(result, frozenset({"avx512_bf16"})).set_index("target")
    assert plain.loc[ratio.name, "status"] == "does not apply here (no amx_bf16); met on this CPU"
    zen4 = {"cpu": "AMD EPYC", "cores": 2, "bfloat16_flags": ["avx512_bf16"]}
    text = targets_markdown(result, zen4)
    assert "does not apply here (no amx_bf16)" in text
    assert "machine: AMD EPYC, 2 cores; CPU bfloat16 flags: avx512_bf16" in text
    digits = _bench_result({"kerasbn": (1, 1)}, dataset="digits")
    assert targets_markdown(digits, {**zen4, "bfloat16_flags": sorted(AMX)}) == ""


# Slow: a second benchmark of its own, like the unfused path's.
@pytest.mark.slow
def test_the_bfloat16_path_trains_in_bfloat16_beside_float32(tmp_path, capsys, monkeypatch):
    argv = ["--quick", "--variants", "bn", "--paths", "kerasbn,kerasbn-bf16,torch-bf16"]
    assert main([*argv, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    rows = {row["path"]: row for row in json.loads((tmp_path / "bench.json").read_text())["rows"]}
    assert rows["kerasbn"]["precision"] == "float32"
    assert rows["kerasbn-bf16"]["precision"] == "mixed_bfloat16"
    assert "kerasbn-bf16 / kerasbn" in out and "bfloat16 matmul peak" in out
    if "torch-bf16" not in rows:
        assert "torch-bf16: torch is not installed" in out


def test_a_record_without_its_rounds_is_refused_unless_it_had_one(tmp_path):
    rows = [{"dataset": "d", "variant": "v", "path": p, "images_per_s": ips, "rounds": 1}
            for p, ips in (("kerasbn", 300.0), ("torch", 200.0))]  # fmt: skip
    (tmp_path / "bench.json").write_text(json.dumps({"rows": rows, "peak_flops": 1e9}))
    result, _ = read_bench(tmp_path)
    # One round: its medians are the round, so the ratio is 300 / 200.
    assert result.ratios.set_index("ratio").loc["kerasbn / torch", "median"] == 1.5
    for row in rows:
        row["rounds"] = 3
    (tmp_path / "bench.json").write_text(json.dumps({"rows": rows, "peak_flops": 1e9}))
    with pytest.raises(ValueError, match="cannot be recomputed"):
        read_bench(tmp_path / "bench.json")
    with pytest.raises(FileNotFoundError, match="no benchmark record"):
        read_bench(tmp_path / "elsewhere")


def test_a_records_rows_follow_from_its_rounds_and_compile_time_is_the_cold_one(tmp_path):
    # Three rounds of a torch-compile path: the first compiles cold (9 s), the later ones
    # load inductor's cache (about 2 s); the stored rows say something else on purpose.
    raw = [
        {"dataset": "d", "variant": "v", "path": "torch-compile", "round": r,
         "images_per_s": ips, "compile_seconds": s, "flops_per_image": 1e6}
        for r, (ips, s) in enumerate(((100.0, 9.0), (300.0, 1.6), (200.0, 1.8)))
    ]  # fmt: skip
    stale = [{"dataset": "d", "variant": "v", "path": "torch-compile", "images_per_s": 1.0}]
    (tmp_path / "bench.json").write_text(json.dumps({"rows": stale, "raw": raw, "peak_flops": 1e9}))
    result, _ = read_bench(tmp_path)
    row = result.table.iloc[0]
    assert row["images_per_s"] == 200.0  # the median of 100, 300, 200
    assert row["compile_seconds"] == 9.0  # the cold compile, not the median 1.8
    assert row["fraction_of_matmul_peak"] == pytest.approx(3 * 1e6 * 200.0 / 1e9)

"""The README's results tables come from finished run folders, through the CLI."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from kerasbn import compare, default_config
from kerasbn.cli.results import main


@pytest.fixture(scope="module")
def finished(digits, tmp_path_factory):
    config = default_config("digits", epochs=2, verbose=0)
    out = tmp_path_factory.mktemp("results") / "run"
    return compare(digits, "base,bn", config, seeds=2, out_dir=out, save_models=None).out_dir


def test_table_is_written_between_the_markers(finished, tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("# Title\n\n<!-- results:digits -->\nold\n<!-- /results:digits -->\nend\n")
    assert main([str(finished), "--into", str(readme), "--name", "digits"]) == 0
    text = readme.read_text()
    assert "old" not in text and text.startswith("# Title") and text.endswith("end\n")
    summary = pd.read_csv(finished / "summary.csv").set_index("variant")
    bn = summary.loc["bn"]
    mean, std = 100 * bn["test_accuracy_mean"], 100 * bn["test_accuracy_std"]
    assert f"{mean:.2f} ± {std:.2f}" in text
    low, high = 100 * bn["test_accuracy_ci_low"], 100 * bn["test_accuracy_ci_high"]
    assert f"[{low:.2f}, {high:.2f}]" in text
    verdict = pd.read_csv(finished / "verdicts.csv").query("metric == 'test_accuracy'").iloc[0]
    assert f"{verdict['verdict']} vs `base`" in text
    commit = (json.loads((finished / "config.json").read_text())["git"] or {}).get("commit")
    assert f"code at `{(commit or 'unknown')[:7]}" in text
    assert "| Digits" in text or "| digits" in text
    assert "flip-TTA" not in text  # digits nets are not trained with flips
    assert capsys.readouterr().out.strip().startswith("| data set")


def test_flip_tta_is_an_extra_column_where_runs_have_it(finished, tmp_path, capsys):
    import shutil

    copy = tmp_path / "with-tta"
    shutil.copytree(finished, copy)
    runs = pd.read_csv(copy / "runs.csv")
    # Made-up figures: base's seeds 0.90 and 0.92, bn's seed 0 only (seed 1 lacks it).
    tta = {("base", 0): 0.90, ("base", 1): 0.92, ("bn", 0): 0.95}
    keys = zip(runs.variant, runs.seed, strict=True)
    runs["test_accuracy_flip_tta"] = [tta.get(key) for key in keys]
    runs.to_csv(copy / "runs.csv", index=False)
    assert main([str(copy), str(finished)]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = [cell.strip() for cell in lines[0].split("|")]
    column = header.index("flip-TTA test acc % (extra)")
    cells = [[cell.strip() for cell in line.split("|")] for line in lines[2:6]]
    # std of 90 and 92 is sqrt(2) = 1.41; one seed: the mean alone; the folder without
    # the column: n/a.
    assert [row[column] for row in cells] == ["91.00 ± 1.41", "95.00", "n/a", "n/a"]
    assert header.index("95% CI %") < column < header.index("verdict")


def test_unfinished_folder_or_missing_markers_exit_2(finished, tmp_path, capsys):
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "config.json").write_text("{}")
    with pytest.raises(SystemExit) as info:
        main([str(partial)])
    assert info.value.code == 2 and "not a finished run" in capsys.readouterr().err
    readme = tmp_path / "README.md"
    readme.write_text("no markers\n")
    with pytest.raises(SystemExit) as info:
        main([str(finished), "--into", str(readme)])
    assert info.value.code == 2 and "<!-- results:main -->" in capsys.readouterr().err
    assert readme.read_text() == "no markers\n"


def test_an_experiment_table_is_written_with_its_command(tmp_path, capsys):
    from kerasbn.cli.experiments import main as experiments_main
    from kerasbn.cli.results import main as results_main

    out = tmp_path / "bc"
    assert experiments_main(["run", "breast-cancer-mlp", "--quick", "--out", str(out)]) == 0
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- results:bc -->\nold\n<!-- /results:bc -->\nend\n")
    argv = [str(out), "--table", "experiment", "--into", str(readme), "--name", "bc"]
    assert results_main(argv) == 0
    text = readme.read_text()
    assert "old" not in text and text.startswith("intro\n") and text.endswith("end\n")
    assert "## breast-cancer-mlp" not in text  # the heading is the README's to give
    assert "| no BN " in text and "| BN on inputs " in text  # the versions' rows
    assert "Measured by a call from Python (`bc`, code at `" in text  # main() ran in-process
    (out / "complete.json").unlink()  # an unfinished experiment is not published
    with pytest.raises(SystemExit) as info:
        results_main(argv)
    assert info.value.code == 2 and "not a finished run" in capsys.readouterr().err

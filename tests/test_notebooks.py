"""Every notebook runs top to bottom with reduced settings (a tiny limit, one epoch).

The parameters cell (tagged ``parameters``) is replaced by the reduced settings, as
papermill would, and the notebook is executed with nbclient; any cell error fails.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from kerasbn import compare, default_config

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def _execute(name: str, params: dict, cwd: Path) -> nbformat.NotebookNode:
    book = nbformat.read(NOTEBOOKS / name, as_version=4)
    tagged = [c for c in book.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{name} needs exactly one cell tagged 'parameters'"
    cell = tagged[0]
    names = {line.split("=")[0].strip() for line in cell.source.splitlines() if "=" in line}
    unknown = set(params) - names
    assert not unknown, f"{name} has no parameters {unknown}"
    cell.source += "\n# test overrides\n" + "\n".join(f"{k} = {v!r}" for k, v in params.items())
    NotebookClient(
        book,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(cwd)}},
    ).execute()
    return book


def _figures(book: nbformat.NotebookNode) -> int:
    return sum("image/png" in o.get("data", {}) for c in book.cells for o in c.get("outputs", []))


def _text(book: nbformat.NotebookNode) -> str:
    parts = []
    for cell in book.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            parts.extend(str(v) for k, v in output.get("data", {}).items() if k.startswith("text"))
    return "\n".join(parts)


@pytest.mark.parametrize(
    ("name", "extra"),
    [
        # Notebooks 01 and 02 show a finished run folder (RUN); here each trains a tiny
        # one of two variants.
        # 02 in the full run only (about 35 s, 01's about 20 s): its cells are 01's on
        # another data set.
        ("01_compare_mnist.ipynb", {"RUN": None, "SEEDS": 1, "VARIANTS": "base,bn+dropout"}),
        pytest.param(
            "02_cifar10_bn_dropout.ipynb",
            {"RUN": None, "SEEDS": 1, "VARIANTS": "base,bn+dropout"},
            marks=pytest.mark.slow,
        ),
    ],
)
def test_compare_notebooks_run(shared_data_dir, tmp_path, name, extra):
    book = _execute(
        name,
        {
            "LIMIT": 256,
            "EPOCHS": 1,
            "EVAL_LIMIT": 300,
            "DATA_DIR": str(shared_data_dir),
            "OUT": str(tmp_path / "run"),
            "SAVE_MODELS": str(tmp_path / "models"),
            **extra,
        },
        tmp_path,
    )
    assert (tmp_path / "run" / "complete.json").exists()
    text = _text(book)
    assert "| bn+dropout" in text  # the summary table was shown
    assert _figures(book) >= 1, "no figure shown inline"
    if "RUN" in extra:  # the verdicts and the differences plot are shown
        assert "### Verdicts: each variant against `base`" in text
        assert _figures(book) >= 2


def test_inference_notebook_runs(digits, tmp_path):
    models = tmp_path / "models"
    compare(
        digits,
        "bn",
        default_config("digits", epochs=2, verbose=0),
        out_dir=tmp_path / "run",
        save_models=models,
    )
    book = _execute(
        "03_inference.ipynb",
        {"MODEL": str(models / "digits-bn.keras"), "N_IMAGES": 6},
        tmp_path,
    )
    recorded = json.loads((models / "digits-bn.json").read_text())["metrics"]["test_accuracy"]
    assert f"recorded {recorded:.4f}" in _text(book)


def test_experiments_notebook_runs(shared_data_dir, tmp_path, quick_run):
    from kerasbn.experiments import list_experiments

    shown = [n for n in list_experiments() if n != "cifar10-cnn"]  # 04 shows the others
    # Finished folders are read back (the suite's quick runs); one experiment the
    # notebook runs itself.
    runs = {name: str(quick_run(name).out_dir) for name in shown if name != "breast-cancer-mlp"}
    book = _execute(
        "04_bn_experiments.ipynb",
        {
            "QUICK": True,
            "DATA_DIR": str(shared_data_dir),
            "OUT": str(tmp_path / "exp"),
            "RUNS": runs,
        },
        tmp_path,
    )
    assert (tmp_path / "exp" / "breast-cancer-mlp" / "summary.md").exists()
    text = _text(book)
    assert "(`breast-cancer-mlp`, code at" in text  # the folder it ran into
    assert text.count("(`run`, code at") == len(shown) - 1  # the folders it read back
    assert text.count("Measured by ") == len(shown)
    assert _figures(book) >= len(shown)


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.name)
def test_committed_notebook_carries_outputs_and_stays_small(path):
    book = nbformat.read(path, as_version=4)
    code = [c for c in book.cells if c.cell_type == "code"]
    # Every cell ran (in order), and there is something to see.
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1)), path.name
    assert any(c.outputs for c in code), f"{path.name} was committed without outputs"
    assert all(not any(o.get("output_type") == "error" for o in c.outputs) for c in code)
    assert path.stat().st_size < 1_500_000, f"{path.name} is too large to commit"


def test_why_bn_works_notebook_runs(shared_data_dir, tmp_path):
    book = _execute(
        "05_why_bn_works.ipynb",
        {
            "LIMIT": 256,
            "EPOCHS": 1,
            "EVAL_LIMIT": 300,
            "DATA_DIR": str(shared_data_dir),
            "OUT": str(tmp_path / "run"),
            "RUN": None,
            "LAG_RUN": None,
            "VARIANTS": "bn+dropout,bn+head-dropout",  # two of four keep it quick
        },
        tmp_path,
    )
    out = tmp_path / "run"
    assert (out / "complete.json").exists() and (out / "activations.csv").exists()
    text = _text(book)
    assert "precise-BN test acc %" in text and "The diagnostics took" in text
    assert "head_bn" in text  # the variance-shift table names the BN layers
    assert _figures(book) >= 3  # variance shift bars, reliability diagram, activations

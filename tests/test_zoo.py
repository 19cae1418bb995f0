"""Model cards beside saved models, the zoo listing, and loading by name (issue 19)."""

from __future__ import annotations

import json
import math

import pytest

from kerasbn import compare, default_config, load_model
from kerasbn.cli.zoo import main as zoo_main


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    root = tmp_path_factory.mktemp("zoo")
    config = default_config("digits", epochs=2, verbose=0)
    result = compare(
        "digits", "base,bn", config, out_dir=root / "run", save_models=root / "saved_models"
    )
    return root, result


def _wilson(correct: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    # The closed form (Wilson 1927), written out here rather than taken from scipy.
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def test_each_saved_model_has_a_card_with_its_figures(zoo):
    root, result = zoo
    for variant in ("base", "bn"):
        model_path = root / "saved_models" / f"digits-{variant}.keras"
        card = model_path.with_suffix(".md").read_text()
        sidecar = json.loads(model_path.with_suffix(".json").read_text())
        accuracy = sidecar["metrics"]["test_accuracy"]
        n = sidecar["metrics"]["test_examples"]
        low, high = _wilson(round(accuracy * n), n)
        assert f"# digits-{variant}.keras" in card and f"variant **`{variant}`**" in card
        assert (
            f"**{100 * accuracy:.2f}%** (95% interval {100 * low:.2f}% to {100 * high:.2f}%" in card
        )
        params = load_model(model_path).count_params()
        assert f"| parameters | {params:,} |" in card
        assert "## Intended use and limitations" in card and 'kerasbn.load_model("' in card


def test_zoo_list_shows_every_model_and_a_name_loads(zoo, capsys, monkeypatch):
    root, _ = zoo
    assert zoo_main(["list", str(root / "saved_models")]) == 0
    out = capsys.readouterr().out
    for variant in ("base", "bn"):
        params = load_model(root / "saved_models" / f"digits-{variant}.keras").count_params()
        row = next(line for line in out.splitlines() if f"| digits-{variant} " in line)
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert cells[:4] == [f"digits-{variant}", "digits", variant, f"{params:,}"]
    monkeypatch.chdir(root)  # saved_models/ is the default folder
    assert (
        load_model("digits-bn").count_params()
        == load_model(root / "saved_models" / "digits-bn.keras").count_params()
    )
    with pytest.raises(FileNotFoundError, match=r"digits-base, digits-bn\)"):
        load_model("digits-dropout")
    assert zoo_main(["list", str(root / "nowhere")]) == 0
    assert "No saved models in" in capsys.readouterr().out

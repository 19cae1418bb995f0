"""Model cards beside saved models, the zoo listing, and loading by name (issue 19)."""

from __future__ import annotations

import json
import math
import shutil

import pytest

from kerasbn import _paths, compare, default_config, load_model
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
    monkeypatch.setattr(_paths, "SHIPPED_MODEL_FOLDER", root / "no-shipped-models")
    assert (
        load_model("digits-bn").count_params()
        == load_model(root / "saved_models" / "digits-bn.keras").count_params()
    )
    with pytest.raises(FileNotFoundError, match=r"digits-base, digits-bn\)"):
        load_model("digits-dropout")
    (root / "empty").mkdir()
    assert zoo_main(["list", str(root / "empty")]) == 0
    assert "No saved models in" in capsys.readouterr().out
    with pytest.raises(SystemExit) as stop:  # a folder that is not there is a mistake
        zoo_main(["list", str(root / "nowhere")])
    assert stop.value.code == 2 and "is not a folder" in capsys.readouterr().err


def test_a_shipped_model_loads_by_name_and_lists_after_a_clone(zoo, tmp_path, monkeypatch, capsys):
    root, _ = zoo
    shipped = tmp_path / "zoo"
    monkeypatch.setattr(_paths, "SHIPPED_MODEL_FOLDER", shipped)
    source = root / "saved_models" / "digits-bn.keras"
    assert zoo_main(["ship", str(source), "--into", str(shipped)]) == 0
    for suffix in (".keras", ".json", ".md"):
        assert (shipped / f"digits-bn{suffix}").read_bytes() == source.with_suffix(
            suffix
        ).read_bytes()
    recorded = json.loads((root / "saved_models" / "manifest.json").read_text())["models"]
    copied = json.loads((shipped / "manifest.json").read_text())["models"]
    assert copied == {"digits-bn.keras": recorded["digits-bn.keras"]}
    # A fresh clone: no saved_models/ where the user stands, the shipped folder found.
    monkeypatch.chdir(tmp_path)
    assert load_model("digits-bn").count_params() == load_model(source).count_params()
    capsys.readouterr()
    assert zoo_main(["list"]) == 0
    out = capsys.readouterr().out
    assert f"{shipped}/" in out and "| digits-bn " in out
    # A model changed after it was saved is not shipped.
    tampered = tmp_path / "tampered"
    shutil.copytree(root / "saved_models", tampered)
    with (tampered / "digits-base.keras").open("r+b") as fh:
        fh.seek(100)
        fh.write(b"\x00\x01\x02")
    with pytest.raises(SystemExit) as exit_info:
        zoo_main(["ship", str(tampered / "digits-base.keras"), "--into", str(shipped)])
    assert exit_info.value.code == 2 and "SHA-256" in capsys.readouterr().err
    assert "digits-base.keras" not in json.loads((shipped / "manifest.json").read_text())["models"]
    assert not (shipped / "digits-base.keras").exists()

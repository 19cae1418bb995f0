"""The models shipped in zoo/: found by name from a fresh clone, loaded through the safe
loader, and as accurate on the real test set as their cards say."""

from __future__ import annotations

import json

import numpy as np
import pytest

import kerasbn
from kerasbn import loading

SHIPPED = loading.SHIPPED_MODEL_FOLDER
MANIFEST = json.loads((SHIPPED / "manifest.json").read_text()) if SHIPPED.is_dir() else {}
NAMES = sorted(name.removesuffix(".keras") for name in MANIFEST.get("models", {}))


def test_the_published_comparisons_ship_their_models():
    # base and the best BN variant (by mean test accuracy over the three seeds) of the
    # MNIST comparison published in the README, seed 0; CIFAR-10's base and bn, seed 0 of
    # results/cifar10-3seeds (load_model("cifar10-bn") works after a clone).
    assert {"mnist-base", "cifar10-base", "cifar10-bn"} <= set(NAMES)
    assert any(n.startswith("mnist-bn") for n in NAMES)
    total = sum((SHIPPED / f"{n}.keras").stat().st_size for n in NAMES)
    assert total < 30 * 2**20


# Scoring a CIFAR-10 model decodes the whole JPEG test set: heavier, so marked slow.
CASES = [
    pytest.param(name, marks=pytest.mark.slow) if name.startswith("cifar10") else name
    for name in NAMES
]


@pytest.mark.parametrize("name", CASES)
def test_a_shipped_model_matches_its_card(name, shared_data_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no saved_models/ here: the name resolves to zoo/
    model = kerasbn.load_model(name)
    entry = MANIFEST["models"][f"{name}.keras"]
    card = (SHIPPED / f"{name}.md").read_text(encoding="utf-8")
    recorded = entry["metrics"]["test_accuracy"]
    assert f"**{100 * recorded:.2f}%**" in card
    data = kerasbn.load_dataset(entry["dataset"], shared_data_dir)
    predicted = kerasbn.predict(model, data.x_test).class_ids
    assert np.mean(predicted == data.y_test) == pytest.approx(recorded, abs=1e-6)

"""Registries: one error shape for every unknown name, and a data set added as two rows."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import kerasbn
from kerasbn.data.catalog import DATASETS, DatasetInfo
from kerasbn.experiments import get_experiment, list_experiments
from kerasbn.presets import PRESETS, Preset
from kerasbn.registry import Registry

LOOKUPS = [
    ("dataset", kerasbn.get_dataset_info, kerasbn.list_datasets),
    ("dataset", kerasbn.get_preset, kerasbn.list_datasets),
    ("dataset", kerasbn.get_architecture, kerasbn.list_architectures),
    ("variant", kerasbn.get_variant, kerasbn.list_variants),
    ("experiment", get_experiment, list_experiments),
    ("optimizer", lambda name: kerasbn.TrainConfig(optimizer=name), lambda: ["adam", "sgd"]),
]


@pytest.mark.parametrize(("kind", "lookup", "names"), LOOKUPS)
def test_every_unknown_name_lists_the_valid_ones_and_ends_with_what_was_received(
    kind, lookup, names
):
    with pytest.raises(ValueError) as err:
        lookup("nope")
    message = str(err.value)
    assert message.startswith(f"Unknown {kind}. Valid {kind}s are: ")
    assert message.endswith("Received: 'nope'")
    for name in names():
        assert name in message


def test_registry_normalizes_once_and_refuses_silent_overwrite():
    table = Registry("colour", normalize=lambda name: name.strip().lower())
    table.register("red", 1)
    assert table.lookup("  RED ") == 1 and list(table) == ["red"] and len(table) == 1
    with pytest.raises(ValueError, match="already registered"):
        table.register("red", 2)
    table.register("red", 3, overwrite=True)
    assert table["red"] == 3
    assert table.unregister("Red") == 3 and table.names() == []


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def test_a_data_set_added_as_one_catalog_row_and_one_preset_trains_end_to_end(tmp_path):
    # Two classes told apart by brightness: dark images are class 0, bright ones class 1.
    rng = np.random.default_rng(1)
    folder = tmp_path / "data" / "toy"
    folder.mkdir(parents=True)
    for split, n in (("train", 240), ("t10k", 60)):
        labels = rng.integers(0, 2, n)
        images = rng.integers(0, 100, (n, 12, 12)) + 150 * labels[:, None, None]
        _write_idx(folder / f"{split}-images-idx3-ubyte.gz", images)
        _write_idx(folder / f"{split}-labels-idx1-ubyte.gz", labels)
    info = DatasetInfo(
        "toy", "Toy", (12, 12, 1), ("dark", "bright"), 240, 60, 40, ("toy",), ("idx",)
    )
    preset = Preset("toy", ((4,),), 8, training=dict(epochs=3, batch_size=20, learning_rate=1e-2))
    DATASETS.register("toy", info)
    PRESETS.register("toy", preset)
    try:
        data = kerasbn.load_dataset("toy", data_dir=tmp_path / "data")
        assert (len(data.x_train), len(data.x_val), len(data.x_test)) == (200, 40, 60)
        assert data.class_names == ("dark", "bright")
        assert data.source == f"IDX files in {folder}"
        result = kerasbn.compare(
            data,
            "base,bn",
            kerasbn.default_config("toy", verbose=0),
            out_dir=tmp_path / "run",
            save_models=None,
        )
    finally:
        PRESETS.unregister("toy")  # first: a preset's name is checked against the catalog
        DATASETS.unregister("toy")
    runs = pd.read_csv(result.out_dir / "runs.csv")
    assert list(runs["variant"]) == ["base", "bn"]
    assert (runs["test_examples"] == 60).all() and (runs["epochs"] == 3).all()
    # Brightness separates the classes, so a working pipeline learns them.
    assert runs.loc[runs["variant"] == "base", "test_accuracy"].item() > 0.9
    assert "toy" not in kerasbn.list_datasets()

"""GroupNorm and LayerNorm in BatchNorm's places: the batch-independent baselines."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

import kerasbn
from kerasbn.models import build_model, count_layers
from kerasbn.variants import get_variant, parse_variants


@pytest.mark.parametrize("name", ["gn", "ln"])
def test_no_batch_norm_and_group_counts(name):
    model = build_model("cifar10", name)
    assert count_layers(model, keras.layers.BatchNormalization) == 0
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.GroupNormalization)]
    assert len(norms) == 6  # five convs and the head
    # Every CIFAR-10 layer has 32 channels or a multiple: 32 groups (Wu & He's default),
    # or one group for LayerNorm.
    assert {layer.groups for layer in norms} == ({32} if name == "gn" else {1})
    # digits' first block has 16 channels: GroupNorm takes 16 groups of one channel.
    digits = build_model("digits", name)
    first = digits.get_layer(f"block1_{name}1")
    assert first.groups == (16 if name == "gn" else 1)


def test_layer_norm_normalizes_each_image_over_height_width_and_channels():
    model = build_model("mnist", "ln")
    layer = model.get_layer("block1_ln1")
    x = np.random.default_rng(0).normal(3.0, 5.0, (4, 28, 28, 32)).astype("float32")
    y = keras.ops.convert_to_numpy(layer(x))
    # Fresh scale 1 and shift 0: (x - mean) / sqrt(var + eps) per image, over H, W and C.
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    var = x.var(axis=(1, 2, 3), keepdims=True)
    np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + 1e-3), rtol=1e-4, atol=1e-4)


def test_group_norm_output_does_not_depend_on_the_rest_of_the_batch():
    model = build_model("digits", "gn")
    images = np.random.default_rng(1).integers(0, 256, (8, 8, 8, 1), dtype=np.uint8)
    alone = keras.ops.convert_to_numpy(model(images[:1], training=True))
    together = keras.ops.convert_to_numpy(model(images, training=True))
    np.testing.assert_allclose(alone[0], together[0], rtol=1e-5, atol=1e-6)


def test_variant_specs_and_records():
    assert "gn" not in [v.name for v in parse_variants("all")]
    spec = parse_variants("gn@post,bn(norm=layer)")
    assert spec[0].norm == "group" and spec[0].bn_placement == "post"
    assert spec[1].norm == "layer" and not spec[1].uses_bn
    assert get_variant("bn").to_dict().get("norm") is None  # older folders still resume
    assert get_variant("gn").to_dict()["norm"] == "group"
    with pytest.raises(ValueError, match=r"Valid normalizations are: batch, group, layer"):
        parse_variants("bn(norm=instance)")


def test_compare_bn_gn_ln_base_on_digits(tmp_path):
    """compare --variants bn,gn,ln,base trains all four; the BN-only diagnostics are
    left empty for GN and LN, and a saved GN model loads through kerasbn's loader."""
    from kerasbn.cli.compare import main

    out, models = tmp_path / "out", tmp_path / "models"
    argv = ["--dataset", "digits", "--variants", "bn,gn,ln,base", "--epochs", "8"]
    assert main([*argv, "--out", str(out), "--save-models", str(models), "--verbose", "0"]) == 0
    runs = {row["variant"]: row for row in _rows(out / "runs.csv")}
    assert set(runs) == {"bn", "gn", "ln", "base"}
    for name in ("gn", "ln"):
        assert float(runs[name]["test_accuracy"]) > 0.5  # trains: 10 classes, chance 0.1
        assert runs[name]["test_accuracy_precise_bn"] == ""  # no BN to recalibrate
    assert runs["bn"]["test_accuracy_precise_bn"] != ""
    config = json.loads((out / "config.json").read_text())
    assert {v["name"]: v.get("norm", "batch") for v in config["variants"]}["ln"] == "layer"
    model = kerasbn.load_model(models / "digits-gn.keras")
    assert count_layers(model, keras.layers.GroupNormalization) == 3


def _rows(path):
    import csv

    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))

import keras
import numpy as np
import pytest

from kerasbn import build_model, get_architecture, get_variant, list_architectures, list_variants
from kerasbn.models import count_layers

CASES = [(d, v) for d in list_architectures() for v in list_variants()]


@pytest.mark.parametrize(("dataset", "variant"), CASES)
def test_output_shape_and_probabilities(dataset, variant):
    arch = get_architecture(dataset)
    model = build_model(dataset, variant)
    images = np.random.default_rng(0).integers(0, 256, (3, *arch.input_shape), dtype=np.uint8)
    probs = keras.ops.convert_to_numpy(model(images, training=False))
    assert probs.shape == (3, arch.num_classes)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert model.input.dtype == "uint8"


@pytest.mark.parametrize(("dataset", "variant"), CASES)
def test_bn_and_dropout_layers_follow_the_variant(dataset, variant):
    arch, spec = get_architecture(dataset), get_variant(variant)
    model = build_model(dataset, variant)
    convs = sum(len(block) for block in arch.blocks)
    bn_layers = [
        layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert len(bn_layers) == (convs + 1 if spec.uses_bn else 0)
    norm_layers = [
        layer for layer in model.layers if isinstance(layer, keras.layers.GroupNormalization)
    ]
    assert len(norm_layers) == (convs + 1 if spec.batch_norm and not spec.uses_bn else 0)
    expected_dropout = (len(arch.blocks) if spec.block_dropout else 0) + bool(spec.head_dropout)
    assert count_layers(model, keras.layers.Dropout) == expected_dropout
    for layer in bn_layers:
        assert len(layer.trainable_weights) == 2  # gamma, beta
        assert len(layer.non_trainable_weights) == 2  # moving mean, moving variance
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            # BN's beta replaces the conv bias.
            assert layer.use_bias is not spec.batch_norm


@pytest.mark.parametrize("variant", list_variants())
def test_layer_names_are_stable(variant):
    spec = get_variant(variant)
    names = {layer.name for layer in build_model("cifar10", variant).layers}
    assert {
        "image",
        "rescale",
        "augment_flip",
        "augment_shift",
        "block1_conv1",
        "block1_relu1",
        "block1_pool",
        "block3_conv2",
        "head_dense",
        "predictions",
    } <= names
    short = {"batch": "bn", "group": "gn", "layer": "ln"}[spec.norm]
    assert (f"block2_{short}1" in names) is spec.batch_norm
    assert (f"head_{short}" in names) is spec.batch_norm
    assert ("block1_dropout" in names) is bool(spec.block_dropout)
    assert ("head_dropout" in names) is bool(spec.head_dropout)


def test_augmentation_defaults_and_switch():
    assert "augment_flip" not in {layer.name for layer in build_model("mnist", "bn").layers}
    plain = build_model("cifar10", "bn", augment=False)
    assert "augment_shift" not in {layer.name for layer in plain.layers}


def test_augmentation_is_identity_at_inference_and_random_in_training():
    model = build_model("cifar10", "base", seed=1)
    augmented = keras.Model(model.input, model.get_layer("augment_shift").output)
    images = np.random.default_rng(1).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    scaled = images.astype("float32") / 255.0
    inference = keras.ops.convert_to_numpy(augmented(images, training=False))
    np.testing.assert_allclose(inference, scaled, atol=1e-6)
    training = keras.ops.convert_to_numpy(augmented(images, training=True))
    assert not np.allclose(training, scaled)


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(ValueError, match=r"Valid datasets are: .*cifar10.*Received: 'svhn'"):
        build_model("svhn", "bn")


def test_inference_copy_drops_augmentation_and_keeps_outputs():
    from kerasbn.models import inference_copy

    model = build_model("cifar10", "bn+dropout", seed=0)
    # Move BN statistics away from their initial values so the copy is a real check.
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(np.full(layer.moving_mean.shape, 0.3, "float32"))
    clean = inference_copy(model, "cifar10", "bn+dropout")
    assert not [layer.name for layer in clean.layers if layer.name.startswith("augment_")]
    images = np.random.default_rng(2).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    expected = model.predict(images, verbose=0)
    np.testing.assert_allclose(clean.predict(images, verbose=0), expected, atol=1e-6)
    # A direct call is safe on the copy (augmentation layers would default to training).
    np.testing.assert_allclose(keras.ops.convert_to_numpy(clean(images)), expected, atol=1e-5)
    assert inference_copy(clean, "cifar10", "bn+dropout") is clean

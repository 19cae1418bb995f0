"""``build_model(dataset, variant)``: the zoo's one model factory."""

from __future__ import annotations

import contextlib
import math
import re
from dataclasses import replace

import keras
from keras import layers

from kerasbn.architectures import Architecture, get_architecture
from kerasbn.augmentation import RandomShift
from kerasbn.layers import FusedBatchNormalization, GhostBatchNormalization
from kerasbn.variants import Variant, get_variant

__all__ = ["build_model", "count_layers", "dtype_policy", "inference_copy"]

# Pad-and-crop by 4 pixels on a 32-pixel image, as in the standard CIFAR-10 recipe.
_SHIFT_PIXELS = 4


def _augmentation(x, arch: Architecture, seed: int | None):
    """Training-only augmentation; both layers are the identity at inference: a random
    horizontal flip, then pad-and-crop by 4 pixels as a per-image random whole-pixel
    shift with zero fill (:class:`~kerasbn.augmentation.RandomShift`). (Keras'
    ``RandomCrop`` draws one box per batch and resizes at inference, so it is not used.)
    """
    x = layers.RandomFlip("horizontal", seed=seed, name="augment_flip")(x)
    return RandomShift(
        _SHIFT_PIXELS, seed=None if seed is None else seed + 1, name="augment_shift"
    )(x)


def _batch_norm(variant: Variant, name: str, fused: bool) -> layers.BatchNormalization:
    # Keras accepts synchronized=True on TensorFlow only; JAX's data-parallel (SPMD)
    # training already computes batch statistics over the global batch.
    synchronized = variant.sync_bn and keras.backend.backend() == "tensorflow"
    settings = dict(
        momentum=variant.bn_momentum,
        epsilon=variant.bn_epsilon,
        synchronized=synchronized,
        name=name,
    )
    if variant.ghost_batch is not None:
        return GhostBatchNormalization(virtual_batch_size=variant.ghost_batch, **settings)
    layer_class = FusedBatchNormalization if fused else layers.BatchNormalization
    return layer_class(**settings)


# Wu & He's (2018) default group count; a layer with fewer channels gets the largest
# count that divides its channels (GroupNormalization needs a whole number per group).
_GROUPS = 32


def _norm(variant: Variant, name: str, fused: bool, channels: int) -> layers.Layer:
    """The variant's normalization layer for ``channels`` features."""
    if variant.norm == "batch":
        return _batch_norm(variant, name, fused)
    # One group normalizes over height, width and all channels with a scale and shift per
    # channel: Layer Normalization as Wu & He define it for conv nets (Keras' own
    # LayerNormalization over those axes would learn a scale per pixel and channel).
    groups = math.gcd(_GROUPS, channels) if variant.norm == "group" else 1
    return layers.GroupNormalization(groups=groups, epsilon=variant.bn_epsilon, name=name)


def _norm_name(variant: Variant, bn_name: str) -> str:
    # block1_bn1 -> block1_gn1 / block1_ln1: the name says which layer it is.
    short = {"batch": "bn", "group": "gn", "layer": "ln"}[variant.norm]
    return bn_name.replace("_bn", f"_{short}", 1)


def _bias(variant: Variant) -> bool:
    # BN right after a layer makes its bias redundant (BN's beta replaces it); BN after
    # the ReLU does not, so the layer keeps its bias there.
    return not (variant.batch_norm and variant.bn_placement == "pre")


def _normalize_and_activate(
    x, variant: Variant, bn_name: str, relu_name: str, fused_bn: bool, channels: int
):
    """BN -> ReLU (``pre``, Ioffe & Szegedy's placement), ReLU -> BN (``post``), or ReLU;
    GN or LN in BN's place for those variants."""
    if not variant.batch_norm:
        return layers.ReLU(name=relu_name)(x)
    norm = _norm(variant, _norm_name(variant, bn_name), fused_bn, channels)
    if variant.bn_placement == "post":
        x = layers.ReLU(name=relu_name)(x)
        return norm(x)
    x = norm(x)
    return layers.ReLU(name=relu_name)(x)


def _conv_unit(x, filters: int, variant: Variant, prefix: str, fused_bn: bool):
    x = layers.Conv2D(
        filters,
        3,
        padding="same",
        use_bias=_bias(variant),
        kernel_initializer="he_normal",
        name=f"{prefix.replace('#', 'conv')}",
    )(x)
    return _normalize_and_activate(
        x, variant, prefix.replace("#", "bn"), prefix.replace("#", "relu"), fused_bn, filters
    )


def build_model(
    dataset: str | Architecture,
    variant: str | Variant,
    *,
    augment: bool | None = None,
    seed: int | None = None,
    fused_bn: bool = False,
) -> keras.Model:
    """Build the uncompiled CNN for ``dataset`` in the given ``variant``.

    Layer names are stable so weights and layers can be found by name:
    ``rescale``, ``augment_flip`` / ``augment_shift`` (when augmenting),
    ``block{i}_conv{j}``, ``block{i}_bn{j}``, ``block{i}_relu{j}``, ``block{i}_pool``,
    ``block{i}_dropout``, ``head_flatten``, ``head_dense``, ``head_bn``, ``head_relu``,
    ``head_dropout`` and ``predictions``.

    Args:
        dataset: a data set name (``mnist``, ``fashion_mnist``, ``cifar10``, ``digits``)
            or an :class:`~kerasbn.architectures.Architecture`.
        variant: a registered variant name or a :class:`~kerasbn.variants.Variant`.
        augment: training-time pad-and-crop + horizontal flip; ``None`` uses the data
            set's default (on for CIFAR-10 only).
        seed: seed of the augmentation layers (``None``: Keras' global seed).
        fused_bn: use :class:`~kerasbn.layers.FusedBatchNormalization` (TensorFlow's
            fused kernel; the same variables and results) instead of Keras' BN. Training
            turns it on for TensorFlow; the default keeps a plain Keras model.

    Returns:
        A ``keras.Model`` taking uint8 images of the data set's shape and returning class
        probabilities.
    """
    arch = dataset if isinstance(dataset, Architecture) else get_architecture(dataset)
    variant = get_variant(variant)
    augment = arch.augment if augment is None else augment

    inputs = keras.Input(shape=arch.input_shape, dtype="uint8", name="image")
    # Scaling lives in the model, so data stays uint8 in memory and saved models take
    # raw pixels.
    x = layers.Rescaling(1.0 / 255.0, name="rescale")(inputs)
    if augment:
        x = _augmentation(x, arch, seed)
    for i, filters in enumerate(arch.blocks, start=1):
        for j, width in enumerate(filters, start=1):
            x = _conv_unit(x, width, variant, f"block{i}_#{j}", fused_bn)
        x = layers.MaxPooling2D(2, name=f"block{i}_pool")(x)
        if variant.block_dropout:
            x = layers.Dropout(variant.block_dropout, name=f"block{i}_dropout")(x)

    x = layers.Flatten(name="head_flatten")(x)
    x = layers.Dense(
        arch.dense_units,
        use_bias=_bias(variant),
        kernel_initializer="he_normal",
        name="head_dense",
    )(x)
    x = _normalize_and_activate(x, variant, "head_bn", "head_relu", fused_bn, arch.dense_units)
    if variant.head_dropout:
        x = layers.Dropout(variant.head_dropout, name="head_dropout")(x)
    # Softmax kept in float32 so mixed-precision runs still give calibrated probabilities.
    outputs = layers.Dense(
        arch.num_classes, activation="softmax", dtype="float32", name="predictions"
    )(x)
    # A variant spec's name (bn@post-momentum0.9) holds characters a model name may not.
    name = re.sub(r"[^0-9A-Za-z_-]", "_", f"{arch.dataset}_{variant.name}")
    return keras.Model(inputs, outputs, name=name)


def count_layers(model: keras.Model, layer_type: type) -> int:
    """How many layers of ``layer_type`` the model has (used by tests and tables)."""
    return sum(isinstance(layer, layer_type) for layer in model.layers)


@contextlib.contextmanager
def dtype_policy(name: str):
    """Build layers under Keras dtype policy ``name``; the global policy is restored
    afterwards (layers keep the policy they were built with)."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def inference_copy(model: keras.Model, dataset: str | Architecture, variant: str | Variant):
    """The same trained network without its training-only augmentation layers, with
    plain (unsynchronized, unfused) Keras BN and float32 layers.

    Keras' random preprocessing layers default to ``training=True`` when a model is
    called directly (``model(x)``, or the function ``model.export`` serves), so a saved
    model must not carry them. They hold no weights, so copying every other layer's
    weights by its stable name gives identical inference outputs (float32 ones for a
    mixed-precision net).
    """
    variant = get_variant(variant)
    synced = any(getattr(layer, "synchronized", False) for layer in model.layers)
    mixed = any(layer.dtype_policy.name.startswith("mixed") for layer in model.layers)
    augmented = any(layer.name.startswith("augment_") for layer in model.layers)
    training_only_bn = count_layers(model, FusedBatchNormalization | GhostBatchNormalization) > 0
    if not (synced or mixed or augmented or training_only_bn):
        return model
    # Synchronized, fused and ghost BN only matter while training; a plain BN loads on every
    # backend and without kerasbn.
    # A mixed-precision net keeps float32 weights, so its float32 copy is exact and
    # serves on any device.
    with dtype_policy("float32"):
        plain = replace(variant, sync_bn=False, ghost_batch=None)
        clean = build_model(dataset, plain, augment=False)
    for layer in clean.layers:
        layer.set_weights(model.get_layer(layer.name).get_weights())
    return clean


if __name__ == "__main__":
    # A library module, not a command: `python -m kerasbn.models` used to run it silently.
    raise SystemExit(
        "kerasbn.models is a library module, not a command. List the trained models with "
        "`kerasbn zoo list` (or python -m kerasbn.zoo list)."
    )

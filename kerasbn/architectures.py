"""One CNN template per data set, described as data (its sizes are in :mod:`kerasbn.presets`).

Each architecture is a VGG-style stack of 3x3 conv blocks (each block ends with 2x2
max pooling), a dense hidden layer and a softmax classifier. Images arrive as uint8 and
are scaled inside the model, so a saved model takes raw pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

from kerasbn.data.catalog import get_dataset_info
from kerasbn.presets import PRESETS, get_preset

__all__ = ["Architecture", "get_architecture", "list_architectures"]


@dataclass(frozen=True)
class Architecture:
    """Shape of the CNN for one data set.

    Attributes:
        dataset: data set name.
        input_shape: (height, width, channels) of the uint8 input.
        num_classes: classifier width.
        blocks: conv filters per block, e.g. ``((32,), (64, 64))``.
        dense_units: width of the hidden dense layer of the head.
        augment: default for training-time augmentation (pad-and-crop + horizontal flip).
    """

    dataset: str
    input_shape: tuple[int, int, int]
    num_classes: int
    blocks: tuple[tuple[int, ...], ...]
    dense_units: int
    augment: bool = False


def get_architecture(dataset: str) -> Architecture:
    """The :class:`Architecture` for ``dataset`` (ValueError listing valid names if unknown)."""
    info, preset = get_dataset_info(dataset), get_preset(dataset)
    return Architecture(
        info.name,
        info.image_shape,
        info.num_classes,
        preset.blocks,
        preset.dense_units,
        preset.augment,
    )


def list_architectures() -> list[str]:
    return PRESETS.names()

"""One CNN template per data set, described as data.

Each architecture is a VGG-style stack of 3x3 conv blocks (each block ends with 2x2
max pooling), a dense hidden layer and a softmax classifier. Images arrive as uint8 and
are scaled inside the model, so a saved model takes raw pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

from kerasbn.data import get_dataset_info

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


def _arch(dataset: str, blocks, dense_units: int, augment: bool = False) -> Architecture:
    info = get_dataset_info(dataset)
    return Architecture(info.name, info.image_shape, info.num_classes, blocks, dense_units, augment)


# Sizes measured on 2 CPU cores (see README): the 28x28 net trains at ~600-800 images/s,
# the CIFAR-10 net at ~380 images/s with BN. A second 32-filter conv at full 32x32
# resolution halved CIFAR-10 throughput for little accuracy, so block 1 has one conv.
_ARCHITECTURES: dict[str, Architecture] = {
    "mnist": _arch("mnist", ((32,), (64, 64)), 128),
    "fashion_mnist": _arch("fashion_mnist", ((32,), (64, 64)), 128),
    "cifar10": _arch("cifar10", ((32,), (64, 64), (128, 128)), 256, augment=True),
    "digits": _arch("digits", ((16,), (32,)), 64),
}


def list_architectures() -> list[str]:
    return list(_ARCHITECTURES)


def get_architecture(dataset: str) -> Architecture:
    """The :class:`Architecture` for ``dataset`` (ValueError listing valid names if unknown)."""
    return _ARCHITECTURES[get_dataset_info(dataset).name]

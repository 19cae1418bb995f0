"""The data-set catalog: one row of static facts per supported data set.

A row says what the images are (shape, classes, official counts) and where they can come
from (local file formats, folder names, a tensorflow-datasets name, or a bundled
source). Adding a data set is a row here plus a row in :mod:`kerasbn.presets`.
"""

from __future__ import annotations

from dataclasses import dataclass

from kerasbn.registry import Registry

__all__ = [
    "DATASETS",
    "DataError",
    "DatasetInfo",
    "get_dataset_info",
    "list_datasets",
]


class DataError(ValueError):
    """A data set is missing, corrupt or in an unexpected shape; the message says how to fix it."""


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about a supported data set.

    Attributes:
        name: registry key, e.g. ``"fashion_mnist"``.
        title: the name people write, e.g. ``"Fashion-MNIST"`` (used in messages).
        image_shape: (height, width, channels) of one uint8 image.
        class_names: label order 0..N-1.
        num_train, num_test: official counts, used to warn about partial copies.
        val_size: validation examples carved out of the training set.
        local_dirs: folder (or archive) names tried under a data directory.
        formats: local file formats tried in order (names in
            :data:`kerasbn.data.formats.FORMATS`).
        tfds_name: the tensorflow-datasets name, ``None`` when it has none.
        bundled: a source that ships with an installed package (names in
            :data:`kerasbn.data.sources.BUNDLED`); then no file is ever read.
    """

    name: str
    title: str
    image_shape: tuple[int, int, int]
    class_names: tuple[str, ...]
    num_train: int
    num_test: int
    val_size: int
    local_dirs: tuple[str, ...] = ()
    formats: tuple[str, ...] = ()
    tfds_name: str | None = None
    bundled: str | None = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


_DIGITS = tuple(str(i) for i in range(10))
_FASHION = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
_CIFAR10 = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)

DATASETS: Registry[DatasetInfo] = Registry(
    "dataset", normalize=lambda name: name.strip().lower().replace("-", "_")
)
for _info in (
    DatasetInfo(
        "mnist",
        "MNIST",
        (28, 28, 1),
        _DIGITS,
        60_000,
        10_000,
        5_000,
        local_dirs=("mnist",),
        formats=("idx", "image_tree"),
        tfds_name="mnist",
    ),
    DatasetInfo(
        "fashion_mnist",
        "Fashion-MNIST",
        (28, 28, 1),
        _FASHION,
        60_000,
        10_000,
        5_000,
        local_dirs=("fashion_mnist", "fashion-mnist"),
        formats=("idx", "image_tree"),
        tfds_name="fashion_mnist",
    ),
    DatasetInfo(
        "cifar10",
        "CIFAR-10",
        (32, 32, 3),
        _CIFAR10,
        50_000,
        10_000,
        5_000,
        local_dirs=(
            "cifar10",
            "cifar-10",
            "cifar10-jpeg",
            "cifar10-jpeg.tar.gz",
            "cifar-10-batches-py",
            "cifar-10-batches-bin",
        ),
        formats=("cifar_python", "cifar_binary", "image_tree"),
        tfds_name="cifar10",
    ),
    # scikit-learn ships these 1,797 8x8 images, so this set always works offline.
    DatasetInfo("digits", "digits", (8, 8, 1), _DIGITS, 1_437, 360, 287, bundled="sklearn"),
):
    DATASETS.register(_info.name, _info)


def list_datasets() -> list[str]:
    """Names accepted by :func:`~kerasbn.data.load_dataset` and ``--dataset``."""
    return DATASETS.names()


def get_dataset_info(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` for ``name``; a clear ``ValueError`` for an unknown name."""
    return DATASETS.lookup(name)

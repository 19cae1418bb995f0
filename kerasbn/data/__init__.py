"""Loading MNIST, Fashion-MNIST, CIFAR-10 and scikit-learn's digits as uint8 arrays.

Every loader returns a :class:`Dataset` whose images stay ``uint8`` in their natural
shape (scaling happens inside the model), with a validation split carved out of the
training set by a fixed seed that does not depend on the training seed, so every run
and every variant sees the same split.

The package: :mod:`~kerasbn.data.catalog` (one row of facts per data set),
:mod:`~kerasbn.data.formats` (local file formats), :mod:`~kerasbn.data.sources` (local
folders, tensorflow-datasets, bundled copies); this module holds the :class:`Dataset`
type, the splits and :func:`load_dataset`.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field, replace

import numpy as np

from kerasbn.data.catalog import DATASETS, DataError, DatasetInfo, get_dataset_info, list_datasets
from kerasbn.data.formats import (
    check_pair,
    read_cifar_binary_batch,
    read_cifar_python_batch,
    read_idx,
    read_image_tree,
)
from kerasbn.data.sources import DATA_DIR_ENV, read_source, resolve_data_dir
from kerasbn.images import IMAGE_SUFFIXES

__all__ = [
    "DATASETS",
    "DATA_DIR_ENV",
    "IMAGE_SUFFIXES",
    "SPLIT_SEED",
    "DataError",
    "Dataset",
    "DatasetInfo",
    "get_dataset_info",
    "list_datasets",
    "load_dataset",
    "make_splits",
    "read_cifar_binary_batch",
    "read_cifar_python_batch",
    "read_idx",
    "read_image_tree",
    "split_indices",
]

# The validation split must not move when the training seed changes, otherwise
# "mean ± std over seeds" would mix model noise with split noise.
SPLIT_SEED = 20240521


@dataclass(frozen=True)
class Dataset:
    """Train / validation / test arrays (images uint8 NHWC, labels int64) and their origin."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    source: str
    metadata: dict = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def limit(self, n: int | None, *, val: int | None = None, test: int | None = None) -> Dataset:
        """The same data set keeping only the first ``n`` training examples.

        Validation and test sets are untouched (so numbers stay comparable) unless ``val``
        / ``test`` ask for fewer of them too, for quick looks.
        """
        data = self
        for split, count in (("train", n), ("val", val), ("test", test)):
            if count is None:
                continue
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            label = "--limit" if split == "train" else f"the {split} limit"
            if not isinstance(count, int) or count <= 0:
                raise ValueError(
                    f"{label} must be a positive number of examples. Received: {count}"
                )
            if count > len(x):
                raise ValueError(
                    f"limit {count} is larger than the {len(x)} {split}ing examples of "
                    f"{self.name!r}; pass a smaller {label} or none. Received: {count}"
                    if split == "train"
                    else f"{label} {count} is larger than the {len(x)} {split} examples of "
                    f"{self.name!r}. Received: {count}"
                )
            key = "limit" if split == "train" else f"{split}_limit"
            data = replace(
                data,
                **{f"x_{split}": x[:count], f"y_{split}": y[:count]},
                metadata={**data.metadata, key: count},
            )
        return data

    def describe(self) -> dict:
        return {
            "name": self.name,
            "source": self.source,
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "train": len(self.x_train),
            "val": len(self.x_val),
            "test": len(self.x_test),
            **self.metadata,
        }


def _warn_if_partial(info: DatasetInfo, n_train: int, n_test: int, origin: str) -> None:
    if (n_train, n_test) != (info.num_train, info.num_test):
        warnings.warn(
            f"{origin} holds {n_train} training and {n_test} test images; the full "
            f"{info.name} has {info.num_train} and {info.num_test}. Results will not be "
            "comparable with published figures.",
            stacklevel=3,
        )


def split_indices(n: int, val_size: int, seed: int = SPLIT_SEED) -> tuple[np.ndarray, ...]:
    """(train_idx, val_idx), both sorted: a fixed, seeded choice of ``val_size`` of ``n``."""
    if not 0 < val_size < n:
        raise DataError(
            f"Cannot carve {val_size} validation examples out of {n} training examples."
        )
    val_idx = np.sort(np.random.default_rng(seed).permutation(n)[:val_size])
    return np.setdiff1d(np.arange(n), val_idx), val_idx


def make_splits(
    x: np.ndarray, y: np.ndarray, val_size: int, seed: int = SPLIT_SEED
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Carve a fixed, seeded validation set out of a training set.

    The remaining training examples keep their original order, so ``--limit N`` takes
    the first N of them.
    """
    train_idx, val_idx = split_indices(len(x), val_size, seed)
    return x[train_idx], y[train_idx], x[val_idx], y[val_idx]


def load_dataset(
    name: str,
    data_dir: str | os.PathLike | None = None,
    val_size: int | None = None,
    *,
    image_size: int | None = None,
) -> Dataset:
    """Load a data set as uint8 images with a fixed validation split.

    Args:
        name: one of :func:`list_datasets` (``mnist``, ``fashion_mnist``, ``cifar10``,
            ``digits``), a folder of class folders (``<class>/*`` or ``train/<class>/*``
            and ``test/<class>/*``), or ``tfds:NAME`` for a TensorFlow Datasets
            image-classification set (see :mod:`kerasbn.data.user`).
        data_dir: a folder with local files (see the module docstring). Defaults to the
            ``KERASBN_DATA_DIR`` environment variable; when neither is set,
            tensorflow-datasets is used. ``digits`` always comes from scikit-learn.
        val_size: validation examples carved out of the training set (default per data
            set: 5,000 for the image sets, 10% of your own).
        image_size: your own data set's side in pixels (32, 64 or 96; default: chosen
            from its images).

    Raises:
        ValueError: unknown name.
        DataError: missing, corrupt or inconsistent files; offline with no local copy.
    """
    # Imported here: kerasbn.data.user needs kerasbn.presets, which needs this package.
    from kerasbn.data.user import resolve_dataset

    info = get_dataset_info(resolve_dataset(name, image_size))
    raw = read_source(info, resolve_data_dir(data_dir))
    source = raw.source
    # Folder names of an image tree are the class names (CIFAR-10's standard ones).
    class_names = raw.class_names or info.class_names
    x_train, y_train = check_pair(raw.x_train, raw.y_train, info, "training", source)
    x_test, y_test = check_pair(raw.x_test, raw.y_test, info, "test", source)
    _warn_if_partial(info, len(x_train), len(x_test), source)
    n_val = info.val_size if val_size is None else val_size
    x_train, y_train, x_val, y_val = make_splits(x_train, y_train, n_val)
    return Dataset(
        name=info.name,
        x_train=x_train,
        y_train=y_train,
        x_val=x_val,
        y_val=y_val,
        x_test=x_test,
        y_test=y_test,
        class_names=class_names,
        source=source,
        metadata={"split_seed": SPLIT_SEED, **raw.metadata},
    )

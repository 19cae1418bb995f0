"""Reading local data files: MNIST IDX, CIFAR-10 batches, and folder-per-class image trees.

* MNIST-style IDX files, gzipped or not;
* CIFAR-10 python batches (``data_batch_1`` ... ``test_batch``), read with a restricted
  unpickler that only builds plain containers and NumPy arrays;
* CIFAR-10 binary batches (``data_batch_1.bin`` ... ``test_batch.bin``);
* a folder-per-class image tree ``train/<class>/*`` and ``test/<class>/*`` (JPEG or
  PNG), either unpacked or as a ``.tar.gz`` / ``.tgz`` / ``.tar`` archive of that tree
  (read by :mod:`kerasbn.data.trees`).

:data:`FORMATS` names each format with how to find it in a folder and how to read it; a
data set's catalog row lists the formats it may come in.
"""

from __future__ import annotations

import gzip
import math
import os
import pickle
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kerasbn._limits import (
    ReadLimitError,
    check_declared,
    require_regular_file,
)
from kerasbn.data.catalog import DataError, DatasetInfo
from kerasbn.data.trees import read_image_tree
from kerasbn.registry import Registry

__all__ = [
    "FORMATS",
    "LocalFormat",
    "RawData",
    "check_pair",
    "read_cifar_binary_batch",
    "read_cifar_python_batch",
    "read_idx",
    "read_image_tree",
]


@dataclass(frozen=True)
class RawData:
    """Train and test arrays as read from their source, before checks and splits."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str  # where they came from, in words (recorded with every result)
    class_names: tuple[str, ...] | None = None  # an image tree's folder names
    metadata: dict = field(default_factory=dict)  # a user data set's choices (config.json)


def _replace_hint(path: Path) -> str:
    return "Replace it with a fresh copy of the file (re-download or re-copy it)."


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (the MNIST format), gzipped or not, into a uint8 array.

    The header is read first (through the gzip stream when gzipped), so a file that
    declares or inflates to more than the read limit is refused before its data is read.
    """
    path = Path(path)
    try:
        require_regular_file(path)
        with path.open("rb") as raw:
            gzipped = raw.read(2) == b"\x1f\x8b"
        if path.stat().st_size == 0:
            raise DataError(
                f"{path} is empty (0 bytes): a download or copy was cut short. "
                + _replace_hint(path)
            )
        with gzip.open(path, "rb") if gzipped else path.open("rb") as fh:
            magic = fh.read(4)
            if len(magic) < 4 or magic[:3] != b"\x00\x00\x08":
                raise DataError(
                    f"{path} is not an IDX file of unsigned bytes (bad magic number). Replace "
                    "it with the original MNIST-format file."
                )
            ndim = magic[3]
            head = fh.read(4 * ndim)
            if len(head) < 4 * ndim:
                raise DataError(f"{path} is corrupted or truncated (header cut short). Replace it.")
            dims = tuple(int.from_bytes(head[4 * i : 4 * i + 4], "big") for i in range(ndim))
            expected = math.prod(dims) if dims else 0  # Python ints: no overflow
            check_declared(expected, f"{path} (shape {dims})")
            data = fh.read(expected + 1)  # one byte more shows trailing data
    except FileNotFoundError:
        raise
    except ReadLimitError as exc:
        raise DataError(str(exc)) from exc
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(
            f"{path} is corrupted or truncated ({exc}). " + _replace_hint(path)
        ) from exc
    if len(data) != expected:
        raise DataError(
            f"{path} is corrupted or truncated: its header promises {expected} bytes of data "
            f"for shape {dims}, but it holds {len(data)}{'+' * (len(data) > expected)}. "
            + _replace_hint(path)
        )
    return np.frombuffer(data, dtype=np.uint8).reshape(dims)


def _find_file(folder: Path, stem: str) -> Path:
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    raise DataError(
        f"Missing file {folder / (stem + '.gz')} (or its unzipped form {stem}). Put the four "
        "MNIST-format IDX files in that folder, or point --data-dir / KERASBN_DATA_DIR at the "
        "folder that holds them."
    )


def check_pair(
    images: np.ndarray, labels: np.ndarray, info: DatasetInfo, what: str, origin: str
) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, H, W, C) uint8 and labels int64 (N,), checked against the catalog row."""
    if images.ndim == 3:
        images = images[..., None]
    if images.shape[1:] != info.image_shape:
        raise DataError(
            f"{origin}: {what} images have shape {images.shape[1:]}, but {info.name} images "
            f"are {info.image_shape}. Check that the files belong to {info.name}."
        )
    if len(images) == 0:
        raise DataError(f"{origin}: the {what} set is empty. Replace the files with full copies.")
    if len(images) != len(labels):
        raise DataError(
            f"{origin}: {len(images)} {what} images but {len(labels)} labels; one of the files "
            "is truncated or from another data set. Replace them with matching copies."
        )
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    if labels.min() < 0 or labels.max() >= info.num_classes:
        raise DataError(
            f"{origin}: {what} labels range over {labels.min()}..{labels.max()}, but "
            f"{info.name} has {info.num_classes} classes (0..{info.num_classes - 1}). "
            "The label file is corrupt or belongs to another data set."
        )
    return np.ascontiguousarray(images, dtype=np.uint8), labels


# --------------------------------------------------------------------------- formats


def _load_idx_folder(folder: Path, info: DatasetInfo) -> tuple[np.ndarray, ...]:
    parts = []
    for split in ("train", "t10k"):
        images = read_idx(_find_file(folder, f"{split}-images-idx3-ubyte"))
        labels = read_idx(_find_file(folder, f"{split}-labels-idx1-ubyte"))
        what = "training" if split == "train" else "test"
        parts.extend(check_pair(images, labels, info, what, str(folder)))
    return tuple(parts)


def _array_reconstruct() -> Callable:
    try:
        from numpy._core import multiarray
    except ImportError:  # NumPy 1.x
        from numpy.core import multiarray  # type: ignore[no-redef]
    return multiarray._reconstruct


def _check_shape(shape) -> None:
    # The pickle names the shape, so a tiny file could otherwise allocate gigabytes.
    dims = shape if isinstance(shape, tuple | list) else (shape,)
    if not all(isinstance(d, int) and d >= 0 for d in dims):
        raise pickle.UnpicklingError(f"array shape {shape!r} is not a tuple of sizes")
    try:
        check_declared(8 * math.prod(dims), "an array in the batch")
    except ReadLimitError as exc:
        raise pickle.UnpicklingError(str(exc)) from exc


class _BudgetedArray(np.ndarray):
    """What the pickle gets for ``numpy.ndarray``: constructing one checks the shape."""

    def __new__(cls, shape, *args, **kwargs):
        _check_shape(shape)
        return np.ndarray.__new__(np.ndarray, shape, *args, **kwargs)


def _budgeted_reconstruct(subtype, shape, dtype):
    if subtype is not _BudgetedArray:
        raise pickle.UnpicklingError(f"refusing to rebuild {subtype!r}: arrays only")
    _check_shape(shape)
    return _array_reconstruct()(np.ndarray, shape, dtype)


def _latin1_encode(text, encoding="utf-8", errors="strict"):
    # Python 3 writes protocol-2 bytes as _codecs.encode(text, "latin1"). Other codecs
    # ("hex", "base64", ...) nested through the memo would grow a string exponentially.
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"refusing _codecs.encode with {encoding!r}")
    return text.encode("latin1", errors)


class _CifarUnpickler(pickle.Unpickler):
    """Unpickler for CIFAR-10 python batches that can only rebuild NumPy arrays.

    The batches are pickled dicts holding one ndarray, so the only globals they need are
    the ndarray reconstruction helpers (any other global would let the file run code),
    and those refuse array shapes over the read limit.
    """

    def find_class(self, module: str, name: str):
        if name == "_reconstruct" and module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            return _budgeted_reconstruct
        if module == "numpy" and name == "ndarray":
            return _BudgetedArray
        if module == "numpy" and name == "dtype":
            return np.dtype
        if (module, name) == ("_codecs", "encode"):
            return _latin1_encode
        raise pickle.UnpicklingError(
            f"refusing to load global {module}.{name}: CIFAR-10 batches only hold arrays"
        )


def _require_batch_file(path: Path, suffix: str, archive: str) -> None:
    if not path.exists():
        raise DataError(
            f"Missing file {path}. A CIFAR-10 {archive.split('-')[2]} folder holds "
            f"data_batch_1{suffix} ... data_batch_5{suffix} and test_batch{suffix} "
            f"(from {archive})."
        )
    try:
        require_regular_file(path)
        check_declared(path.stat().st_size, str(path))
    except ReadLimitError as exc:
        raise DataError(str(exc)) from exc


def read_cifar_python_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 python batch (``data_batch_N`` / ``test_batch``) safely."""
    path = Path(path)
    _require_batch_file(path, "", "cifar-10-python.tar.gz")
    try:
        with path.open("rb") as fh:
            batch = _CifarUnpickler(fh, encoding="bytes").load()
    except pickle.UnpicklingError as exc:
        raise DataError(f"{path} is not a safe CIFAR-10 python batch: {exc}") from exc
    except (EOFError, ValueError, TypeError, IndexError, OSError) as exc:
        raise DataError(
            f"{path} is corrupted or truncated ({exc}). Replace it with a fresh copy."
        ) from exc
    if not isinstance(batch, dict):
        raise DataError(f"{path} does not hold a CIFAR-10 batch dict.")
    data = batch.get(b"data", batch.get("data"))
    labels = batch.get(b"labels", batch.get("labels"))
    if not isinstance(data, np.ndarray) or labels is None:
        raise DataError(f"{path} lacks the 'data' array or the 'labels' list of a CIFAR batch.")
    if data.ndim != 2 or data.shape[1] != 3072 or data.dtype != np.uint8:
        raise DataError(
            f"{path}: 'data' is {data.dtype} of shape {data.shape}, expected uint8 (N, 3072) "
            "for 32x32x3 images. Replace it with a fresh copy."
        )
    # One whole number per image, checked before NumPy converts them: a list whose items
    # are the same memoized list many times over is tiny in the file and in Python, and
    # gigabytes as an array.
    flat = labels.ndim == 1 if isinstance(labels, np.ndarray) else (
        isinstance(labels, list | tuple) and all(type(v) is int for v in labels)
    )
    if not flat or len(labels) != data.shape[0]:
        raise DataError(
            f"{path}: 'labels' is not a list of {data.shape[0]:,} class numbers, one per "
            "image. Replace it with a fresh copy."
        )
    try:
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    except (TypeError, ValueError, OverflowError) as exc:
        raise DataError(f"{path}: 'labels' is not a list of class numbers ({exc}).") from exc
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return images, labels


def read_cifar_binary_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 binary batch: records of 1 label byte + 3,072 pixel bytes."""
    path = Path(path)
    _require_batch_file(path, ".bin", "cifar-10-binary.tar.gz")
    raw = np.fromfile(path, dtype=np.uint8)
    record = 1 + 32 * 32 * 3
    if raw.size == 0 or raw.size % record:
        raise DataError(
            f"{path} is corrupted or truncated: {raw.size} bytes is not a whole number of "
            f"{record}-byte CIFAR-10 records. Replace it with a fresh copy."
        )
    raw = raw.reshape(-1, record)
    images = raw[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), raw[:, 0].astype(np.int64)


def _load_cifar_batches(folder: Path, binary: bool) -> tuple[np.ndarray, ...]:
    suffix = ".bin" if binary else ""
    reader = read_cifar_binary_batch if binary else read_cifar_python_batch
    train = [reader(folder / f"data_batch_{i}{suffix}") for i in range(1, 6)]
    x_test, y_test = reader(folder / f"test_batch{suffix}")
    x_train = np.concatenate([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    return x_train, y_train, x_test, y_test


# --------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class LocalFormat:
    """One local file format: where it is found in a candidate path, and how it is read.

    ``find(path, info)`` returns what to read (a folder or a file) or ``None``;
    ``read(found, info)`` returns the arrays; ``source`` formats the ``Dataset.source``
    text (recorded in every result, so it never changes for an existing format);
    ``describe(info)`` says what to put in a folder, for the "no data found" message.
    """

    name: str
    find: Callable[[Path, DatasetInfo], Path | None]
    read: Callable[[Path, DatasetInfo], tuple]
    source: Callable[[Path], str]
    describe: Callable[[DatasetInfo], str]

    def load(self, found: Path, info: DatasetInfo) -> RawData:
        arrays = self.read(found, info)
        names = tuple(arrays[4]) if len(arrays) > 4 else None
        return RawData(*arrays[:4], source=self.source(found), class_names=names)


_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")


def _find_in_dir(test: Callable[[Path], bool]) -> Callable[[Path, DatasetInfo], Path | None]:
    return lambda path, info: path if path.is_dir() and test(path) else None


def _find_tree(path: Path, info: DatasetInfo) -> Path | None:
    if path.is_file():
        return path if path.name.endswith(_ARCHIVE_SUFFIXES) else None
    if (path / "train").is_dir():
        return path
    archives = sorted(path.glob(f"{info.name}*.tar.gz")) + sorted(path.glob(f"{info.name}*.tgz"))
    return archives[0] if archives else None


FORMATS: Registry[LocalFormat] = Registry("local data format")
for _format in (
    LocalFormat(
        "idx",
        _find_in_dir(lambda p: any(p.glob("train-images-idx3-ubyte*"))),
        _load_idx_folder,
        lambda p: f"IDX files in {p}",
        lambda info: f"the four {info.title} IDX files (train-images-idx3-ubyte.gz, ...)",
    ),
    LocalFormat(
        "cifar_python",
        _find_in_dir(lambda p: (p / "data_batch_1").exists()),
        lambda p, info: _load_cifar_batches(p, binary=False),
        lambda p: f"CIFAR python batches {p}",
        lambda info: "CIFAR-10 python batches (data_batch_1 ...)",
    ),
    LocalFormat(
        "cifar_binary",
        _find_in_dir(lambda p: (p / "data_batch_1.bin").exists()),
        lambda p, info: _load_cifar_batches(p, binary=True),
        lambda p: f"CIFAR binary batches {p}",
        lambda info: "binary batches (data_batch_1.bin ...)",
    ),
    LocalFormat(
        "image_tree",
        _find_tree,
        read_image_tree,
        lambda p: f"image tree archive {p}" if p.is_file() else f"image tree {p}",
        lambda info: "a train/<class>/ + test/<class>/ image tree, or a .tar.gz of that tree",
    ),
):
    FORMATS.register(_format.name, _format)

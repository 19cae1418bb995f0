"""Loading MNIST, Fashion-MNIST, CIFAR-10 and scikit-learn's digits as uint8 arrays.

Every loader returns a :class:`Dataset` whose images stay ``uint8`` in their natural
shape (scaling happens inside the model), with a validation split carved out of the
training set by a fixed seed that does not depend on the training seed, so every run
and every variant sees the same split.

Where the data comes from, in order:

1. an explicit ``data_dir`` argument, or the ``KERASBN_DATA_DIR`` environment variable:
   local files in one of the formats below, nothing is downloaded;
2. tensorflow-datasets: its local cache, or a download when the machine is online.

Local formats:

* MNIST-style IDX files, gzipped or not (``mnist``, ``fashion_mnist``);
* CIFAR-10 python batches (``data_batch_1`` ... ``test_batch``), read with a restricted
  unpickler that only builds plain containers and NumPy arrays;
* CIFAR-10 binary batches (``data_batch_1.bin`` ... ``test_batch.bin``);
* a folder-per-class image tree ``train/<class>/*`` and ``test/<class>/*`` (JPEG or
  PNG), either unpacked or as a ``.tar.gz`` / ``.tgz`` / ``.tar`` archive of that tree.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import socket
import tarfile
import threading
import warnings
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

__all__ = [
    "DATASETS",
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

DATA_DIR_ENV = "KERASBN_DATA_DIR"
# The validation split must not move when the training seed changes, otherwise
# "mean ± std over seeds" would mix model noise with split noise.
SPLIT_SEED = 20240521
TREE_ORDER_SEED = 20240522
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")

_MNIST_CLASSES = tuple(str(i) for i in range(10))
_FASHION_CLASSES = (
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
_CIFAR10_CLASSES = (
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


class DataError(ValueError):
    """A data set is missing, corrupt or in an unexpected shape; the message says how to fix it."""


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about a supported data set."""

    name: str
    image_shape: tuple[int, int, int]
    class_names: tuple[str, ...]
    num_train: int  # official counts, used to warn about partial copies
    num_test: int
    val_size: int  # carved out of the training set
    local_dirs: tuple[str, ...]  # folder names tried under a data directory
    tfds_name: str | None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo(
        "mnist", (28, 28, 1), _MNIST_CLASSES, 60_000, 10_000, 5_000, ("mnist",), "mnist"
    ),
    "fashion_mnist": DatasetInfo(
        "fashion_mnist",
        (28, 28, 1),
        _FASHION_CLASSES,
        60_000,
        10_000,
        5_000,
        ("fashion_mnist", "fashion-mnist"),
        "fashion_mnist",
    ),
    "cifar10": DatasetInfo(
        "cifar10",
        (32, 32, 3),
        _CIFAR10_CLASSES,
        50_000,
        10_000,
        5_000,
        (
            "cifar10",
            "cifar-10",
            "cifar10-jpeg",
            "cifar10-jpeg.tar.gz",
            "cifar-10-batches-py",
            "cifar-10-batches-bin",
        ),
        "cifar10",
    ),
    # scikit-learn ships these 1,797 8x8 images, so this set always works offline.
    "digits": DatasetInfo("digits", (8, 8, 1), _MNIST_CLASSES, 1_437, 360, 287, (), None),
}


def list_datasets() -> list[str]:
    """Names accepted by :func:`load_dataset` and ``--dataset``."""
    return list(DATASETS)


def get_dataset_info(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` for ``name``; a clear ``ValueError`` for an unknown name."""
    key = name.strip().lower().replace("-", "_")
    if key not in DATASETS:
        raise ValueError(
            f"Unknown dataset. Valid datasets are: {', '.join(DATASETS)}. Received: {name!r}"
        )
    return DATASETS[key]


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


# --------------------------------------------------------------------------- helpers


def _open_maybe_gzip(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
        if not raw:
            raise DataError(
                f"{path} is empty (0 bytes): a download or copy was cut short. Replace it "
                "with a fresh copy of the file (re-download or re-copy it)."
            )
        if raw[:2] == b"\x1f\x8b":
            return gzip.decompress(raw)
        return raw
    except FileNotFoundError:
        raise
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(
            f"{path} is corrupted or truncated ({exc}). Replace it with a fresh copy of the "
            "file (re-download or re-copy it)."
        ) from exc


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (the MNIST format), gzipped or not, into a uint8 array."""
    path = Path(path)
    data = _open_maybe_gzip(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DataError(
            f"{path} is not an IDX file of unsigned bytes (bad magic number). Replace it with "
            "the original MNIST-format file."
        )
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path} is corrupted or truncated (header cut short). Replace it.")
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(dims)) if dims else 0
    if len(data) - header != expected:
        raise DataError(
            f"{path} is corrupted or truncated: its header promises {expected} bytes of data "
            f"for shape {dims}, but it holds {len(data) - header}. Replace it with a fresh copy."
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _find_file(folder: Path, stem: str) -> Path:
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    raise DataError(
        f"Missing file {folder / (stem + '.gz')} (or its unzipped form {stem}). Put the four "
        "MNIST-format IDX files in that folder, or point --data-dir / KERASBN_DATA_DIR at the "
        "folder that holds them."
    )


def _check_pair(
    images: np.ndarray, labels: np.ndarray, info: DatasetInfo, what: str, origin: str
) -> tuple[np.ndarray, np.ndarray]:
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


def _warn_if_partial(info: DatasetInfo, n_train: int, n_test: int, origin: str) -> None:
    if (n_train, n_test) != (info.num_train, info.num_test):
        warnings.warn(
            f"{origin} holds {n_train} training and {n_test} test images; the full "
            f"{info.name} has {info.num_train} and {info.num_test}. Results will not be "
            "comparable with published figures.",
            stacklevel=3,
        )


# --------------------------------------------------------------------------- formats


def _load_idx_folder(folder: Path, info: DatasetInfo) -> tuple[np.ndarray, ...]:
    parts = []
    for split in ("train", "t10k"):
        images = read_idx(_find_file(folder, f"{split}-images-idx3-ubyte"))
        labels = read_idx(_find_file(folder, f"{split}-labels-idx1-ubyte"))
        what = "training" if split == "train" else "test"
        parts.extend(_check_pair(images, labels, info, what, str(folder)))
    return tuple(parts)


def _array_reconstruct() -> Callable:
    try:
        from numpy._core import multiarray
    except ImportError:  # NumPy 1.x
        from numpy.core import multiarray  # type: ignore[no-redef]
    return multiarray._reconstruct


class _CifarUnpickler(pickle.Unpickler):
    """Unpickler for CIFAR-10 python batches that can only rebuild NumPy arrays.

    The batches are pickled dicts holding one ndarray, so the only globals they need are
    the ndarray reconstruction helpers; any other global would let the file run code.
    """

    def find_class(self, module: str, name: str):
        if name == "_reconstruct" and module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            return _array_reconstruct()
        if module == "numpy" and name in ("ndarray", "dtype"):
            return getattr(np, name)
        if (module, name) == ("_codecs", "encode"):
            # Python 3 writes protocol-2 bytes as _codecs.encode(text, "latin1"): pure.
            import codecs

            return codecs.encode
        raise pickle.UnpicklingError(
            f"refusing to load global {module}.{name}: CIFAR-10 batches only hold arrays"
        )


def _require_batch_file(path: Path, suffix: str, archive: str) -> None:
    if not path.is_file():
        raise DataError(
            f"Missing file {path}. A CIFAR-10 {archive.split('-')[2]} folder holds "
            f"data_batch_1{suffix} ... data_batch_5{suffix} and test_batch{suffix} "
            f"(from {archive})."
        )


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
    if data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(
            f"{path}: 'data' has shape {data.shape}, expected (N, 3072) for 32x32x3 images."
        )
    images = data.astype(np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return images, np.asarray(labels, dtype=np.int64)


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


def _decode_image(data: bytes, origin: str, shape: tuple[int, int, int]) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            img = img.convert("L" if shape[2] == 1 else "RGB")
            array = np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(
            f"{origin} is corrupted or not an image ({exc}). Replace or delete that file."
        ) from exc
    if array.ndim == 2:
        array = array[..., None]
    if array.shape != shape:
        raise DataError(
            f"{origin} has shape {array.shape}, expected {shape}. Every image of the tree "
            "must have the data set's size; resize or remove it."
        )
    return array


def _stack_tree(
    entries: Iterable[tuple[str, str, str, Callable[[], bytes]]],
    info: DatasetInfo,
    origin: str,
) -> tuple[np.ndarray, ...]:
    """Decode (split, class, origin, read) entries into train/test arrays."""
    found: dict[str, dict[str, list[tuple[str, Callable[[], bytes]]]]] = {
        "train": {},
        "test": {},
    }
    for split, cls, name, read in entries:
        found[split].setdefault(cls, []).append((name, read))
    for split in ("train", "test"):
        if not found[split]:
            raise DataError(
                f"{origin} has no images under {split}/<class>/. The expected layout is "
                "train/<class>/*.jpg|png and test/<class>/*.jpg|png."
            )
    classes = sorted(found["train"])
    if sorted(found["test"]) != classes:
        raise DataError(
            f"{origin}: train/ has classes {classes} but test/ has {sorted(found['test'])}; "
            "both need the same class folders."
        )
    if len(classes) != info.num_classes:
        raise DataError(
            f"{origin} has {len(classes)} class folders ({', '.join(classes)}), but "
            f"{info.name} has {info.num_classes} classes."
        )
    arrays = []
    for split in ("train", "test"):
        images, labels = [], []
        for label, cls in enumerate(classes):  # sorted folder names give the label order
            for name, read in sorted(found[split][cls], key=lambda item: item[0]):
                images.append(_decode_image(read(), name, info.image_shape))
                labels.append(label)
        # On disk the tree is sorted by class; the official batches are in random order.
        # One fixed shuffle makes "the first N images" (--limit, slices) a fair sample.
        order = np.random.default_rng(TREE_ORDER_SEED).permutation(len(images))
        arrays.extend([np.stack(images)[order], np.asarray(labels, dtype=np.int64)[order]])
    return (*arrays, tuple(classes))


def read_image_tree(path: str | os.PathLike, info: DatasetInfo) -> tuple[np.ndarray, ...]:
    """Read ``train/<class>/*`` and ``test/<class>/*`` from a folder or a tar archive.

    Returns ``(x_train, y_train, x_test, y_test, class_names)``; labels follow the
    alphabetical order of the class folder names.
    """
    path = Path(path)
    if path.is_dir():
        root = path

        def entries():
            for split in ("train", "test"):
                split_dir = root / split
                if not split_dir.is_dir():
                    continue
                for cls_dir in split_dir.iterdir():
                    if not cls_dir.is_dir():
                        continue
                    for img in cls_dir.iterdir():
                        if img.suffix.lower() in IMAGE_SUFFIXES:
                            yield split, cls_dir.name, str(img), img.read_bytes

        return _stack_tree(entries(), info, str(path))
    try:
        with tarfile.open(path) as tar:
            blobs = []
            for member in tar:
                parts = Path(member.name).parts
                # Accept an optional top folder: [top/]split/class/file
                if len(parts) >= 3 and parts[-3] in ("train", "test") and member.isfile():
                    if Path(parts[-1]).suffix.lower() not in IMAGE_SUFFIXES:
                        continue
                    data = tar.extractfile(member).read()
                    blobs.append((parts[-3], parts[-2], f"{path}:{member.name}", data))
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise DataError(
            f"{path} is corrupted or truncated ({exc}). Replace it with a fresh copy, or "
            "unpack a good copy and point --data-dir at the unpacked folder."
        ) from exc
    return _stack_tree(((s, c, n, (lambda d=d: d)) for s, c, n, d in blobs), info, str(path))


def _load_cifar_batches(folder: Path, binary: bool) -> tuple[np.ndarray, ...]:
    suffix = ".bin" if binary else ""
    reader = read_cifar_binary_batch if binary else read_cifar_python_batch
    train = [reader(folder / f"data_batch_{i}{suffix}") for i in range(1, 6)]
    x_test, y_test = reader(folder / f"test_batch{suffix}")
    x_train = np.concatenate([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    return x_train, y_train, x_test, y_test


# --------------------------------------------------------------------------- sources


def _candidate_paths(data_dir: Path, info: DatasetInfo) -> list[Path]:
    paths = [data_dir / name for name in info.local_dirs]
    # The directory itself may be the data set's folder.
    paths.append(data_dir)
    return [p for p in paths if p.exists()]


def _load_local(info: DatasetInfo, data_dir: Path) -> tuple[tuple[np.ndarray, ...], str]:
    """Return ((x_train, y_train, x_test, y_test[, classes]), source) from local files."""
    if not data_dir.exists():
        raise DataError(
            f"Data directory {data_dir} does not exist. Fix --data-dir / {DATA_DIR_ENV}, "
            "or unset it to use tensorflow-datasets."
        )
    for path in _candidate_paths(data_dir, info):
        if path.is_file() and path.name.endswith((".tar.gz", ".tgz", ".tar")):
            return read_image_tree(path, info), f"image tree archive {path}"
        if not path.is_dir():
            continue
        if info.name in ("mnist", "fashion_mnist"):
            if any(path.glob("train-images-idx3-ubyte*")):
                return _load_idx_folder(path, info), f"IDX files in {path}"
        elif info.name == "cifar10":
            if (path / "data_batch_1").exists():
                return _load_cifar_batches(path, binary=False), f"CIFAR python batches {path}"
            if (path / "data_batch_1.bin").exists():
                return _load_cifar_batches(path, binary=True), f"CIFAR binary batches {path}"
            if (path / "train").is_dir():
                return read_image_tree(path, info), f"image tree {path}"
            archives = sorted(path.glob("cifar10*.tar.gz")) + sorted(path.glob("cifar10*.tgz"))
            if archives:
                return read_image_tree(archives[0], info), f"image tree archive {archives[0]}"
    looked = ", ".join(str(data_dir / d) for d in info.local_dirs) or str(data_dir)
    formats = {
        "mnist": "the four MNIST IDX files (train-images-idx3-ubyte.gz, ...)",
        "fashion_mnist": "the four Fashion-MNIST IDX files (train-images-idx3-ubyte.gz, ...)",
        "cifar10": (
            "CIFAR-10 python batches (data_batch_1 ...), binary batches (data_batch_1.bin "
            "...), a train/<class>/ + test/<class>/ image tree, or a .tar.gz of that tree"
        ),
    }[info.name]
    raise DataError(
        f"No {info.name} data found in {data_dir} (looked in {looked} and the folder "
        f"itself). Put {formats} there, or unset --data-dir / {DATA_DIR_ENV} to use "
        "tensorflow-datasets."
    )


def _online(host: str = "storage.googleapis.com", port: int = 443, timeout: float = 3.0) -> bool:
    """Whether the TFDS download host answers within a few seconds (no hang when offline)."""
    if os.environ.get("KERASBN_OFFLINE"):
        return False
    answer: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                answer.append(True)
        except OSError:
            answer.append(False)

    # The connect timeout does not cover the DNS lookup, which can stall far longer on
    # an offline machine; a daemon thread with a deadline bounds the whole probe.
    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 1.0)
    return bool(answer and answer[0])


def _load_tfds(info: DatasetInfo) -> tuple[tuple[np.ndarray, ...], str]:
    try:
        import tensorflow_datasets as tfds
    except ImportError as exc:  # pragma: no cover - it is a dependency
        raise DataError(
            f"tensorflow-datasets is not installed, and no local {info.name} data was given. "
            f"Install it (pip install tensorflow-datasets) or set {DATA_DIR_ENV}."
        ) from exc
    builder = tfds.builder(info.tfds_name)
    if not builder.is_prepared():
        if not _online():
            raise DataError(
                f"No local copy of {info.name}: tensorflow-datasets has none prepared in "
                f"{builder.data_dir} and this machine is offline. Point --data-dir or "
                f"{DATA_DIR_ENV} at local files (see the README), or go online once so "
                "tensorflow-datasets can download it."
            )
        builder.download_and_prepare()
    splits = tfds.as_numpy(builder.as_dataset(split=["train", "test"], batch_size=-1))
    (train, test) = splits
    return (
        train["image"],
        train["label"],
        test["image"],
        test["label"],
    ), f"tensorflow-datasets {info.tfds_name} ({builder.data_dir})"


def _load_digits(info: DatasetInfo) -> tuple[tuple[np.ndarray, ...], str]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    # 0..16 grey levels -> 0..255 so every data set shares the uint8 convention.
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    labels = bunch.target.astype(np.int64)
    # scikit-learn has no official test split; a fixed permutation makes one.
    order = np.random.default_rng(SPLIT_SEED + 1).permutation(len(images))
    test_idx, train_idx = order[: info.num_test], np.sort(order[info.num_test :])
    return (
        images[train_idx],
        labels[train_idx],
        images[test_idx],
        labels[test_idx],
    ), "scikit-learn load_digits (bundled)"


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


def _resolve_data_dir(data_dir: str | os.PathLike | None) -> Path | None:
    if data_dir is None:
        data_dir = os.environ.get(DATA_DIR_ENV) or None
    return Path(data_dir).expanduser() if data_dir is not None else None


def load_dataset(
    name: str, data_dir: str | os.PathLike | None = None, val_size: int | None = None
) -> Dataset:
    """Load a data set as uint8 images with a fixed validation split.

    Args:
        name: one of :func:`list_datasets` (``mnist``, ``fashion_mnist``, ``cifar10``,
            ``digits``).
        data_dir: a folder with local files (see the module docstring). Defaults to the
            ``KERASBN_DATA_DIR`` environment variable; when neither is set,
            tensorflow-datasets is used. ``digits`` always comes from scikit-learn.
        val_size: validation examples carved out of the training set (default per data
            set: 5,000 for the image sets).

    Raises:
        ValueError: unknown name.
        DataError: missing, corrupt or inconsistent files; offline with no local copy.
    """
    info = get_dataset_info(name)
    folder = _resolve_data_dir(data_dir)
    if info.name == "digits":
        arrays, source = _load_digits(info)
    elif folder is not None:
        arrays, source = _load_local(info, folder)
    else:
        arrays, source = _load_tfds(info)
    x_train, y_train, x_test, y_test = arrays[:4]
    class_names = info.class_names
    if len(arrays) == 5:
        folder_names = arrays[4]
        # Folder names of an image tree are the class names (CIFAR-10's standard ones).
        class_names = tuple(folder_names)
    x_train, y_train = _check_pair(x_train, y_train, info, "training", source)
    x_test, y_test = _check_pair(x_test, y_test, info, "test", source)
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
        metadata={"split_seed": SPLIT_SEED},
    )

"""Reading a folder-per-class image tree, unpacked or as a tar archive.

``train/<class>/*`` and ``test/<class>/*`` (JPEG or PNG); labels follow the sorted
class folder names. Only regular files are read, their bytes together stay under the
read limit (:mod:`kerasbn._limits`), and an image with more pixels than the data set's
is refused before it is decoded.
"""

from __future__ import annotations

import logging
import os
import tarfile
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from kerasbn._limits import (
    ReadLimitError,
    check_declared,
    max_read_bytes,
    read_capped,
    require_regular_file,
)
from kerasbn._signals import raise_if_stopped
from kerasbn.data.catalog import DataError, DatasetInfo
from kerasbn.images import IMAGE_SUFFIXES, decode_image

__all__ = ["TREE_ORDER_SEED", "read_image_tree"]

log = logging.getLogger(__name__)
# Reading and decoding 60,000 JPEGs takes a minute or two on 2 cores: say how far it is.
_PROGRESS_EVERY = 10_000

# On disk an image tree is sorted by class; one fixed shuffle makes "the first N images"
# (--limit, slices) a fair sample, as in the official (shuffled) batches.
TREE_ORDER_SEED = 20240522


def _decode_image(data: bytes, origin: str, shape: tuple[int, int, int]) -> np.ndarray:
    try:
        # The pixel cap refuses a decompression bomb before Pillow decodes it.
        array = decode_image(data, "L" if shape[2] == 1 else "RGB", max_pixels=shape[0] * shape[1])
    except ValueError as exc:
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
                raise_if_stopped()  # decoding 60,000 images takes a while
                images.append(_decode_image(read(), name, info.image_shape))
                if len(images) % _PROGRESS_EVERY == 0:
                    log.info("%s: decoded %d %s images", origin, len(images), split)
                labels.append(label)
        order = np.random.default_rng(TREE_ORDER_SEED).permutation(len(images))
        arrays.extend([np.stack(images)[order], np.asarray(labels, dtype=np.int64)[order]])
    return (*arrays, tuple(classes))


class _Budget:
    """Bytes of image files read so far from one tree, against the read limit."""

    def __init__(self, origin: str) -> None:
        self.origin, self.left = origin, max_read_bytes()

    def take(self, size: int, name: str) -> None:
        try:
            check_declared(size, name, self.left)
        except ReadLimitError as exc:
            raise DataError(f"{exc} (the whole tree {self.origin} counts together)") from exc
        self.left -= size


def _tree_file_reader(img: Path, budget: _Budget) -> Callable[[], bytes]:
    def read() -> bytes:
        try:
            require_regular_file(img)
            budget.take(img.stat().st_size, str(img))
            with img.open("rb") as fh:
                return read_capped(fh, str(img), img.stat().st_size)
        except ReadLimitError as exc:
            raise DataError(str(exc)) from exc

    return read


# A pax or GNU long-name header holds a few names and numbers; tarfile reads the size it
# declares in one go, before any budget of ours applies.
_MAX_TAR_HEADER = 1 << 20


class _CheckedTarInfo(tarfile.TarInfo):
    """Tar headers checked before :mod:`tarfile` acts on them: a negative size (which
    makes Python 3.11's tarfile loop forever, CVE-2025-8194) and extended headers that
    declare more than a header needs are refused."""

    @classmethod
    def frombuf(cls, buf, encoding, errors):
        info = super().frombuf(buf, encoding, errors)
        if info.size < 0:
            raise tarfile.HeaderError(f"member {info.name!r} declares a negative size")
        return info

    def _proc_pax(self, tarfile_):
        self._check_header_size()
        return super()._proc_pax(tarfile_)

    def _proc_gnulong(self, tarfile_):
        self._check_header_size()
        return super()._proc_gnulong(tarfile_)

    def _check_header_size(self):
        if self.size > _MAX_TAR_HEADER:
            raise tarfile.HeaderError(
                f"an extended header declares {self.size:,} bytes (at most "
                f"{_MAX_TAR_HEADER:,} are plausible)"
            )


def read_image_tree(path: str | os.PathLike, info: DatasetInfo) -> tuple[np.ndarray, ...]:
    """Read ``train/<class>/*`` and ``test/<class>/*`` from a folder or a tar archive.

    Returns ``(x_train, y_train, x_test, y_test, class_names)``; labels follow the
    alphabetical order of the class folder names. Only regular files are read, their
    bytes together stay under the read limit, and an image with more pixels than the
    data set's is refused before it is decoded.
    """
    path = Path(path)
    budget = _Budget(str(path))
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
                            yield split, cls_dir.name, str(img), _tree_file_reader(img, budget)

        return _stack_tree(entries(), info, str(path))
    try:
        require_regular_file(path)  # a FIFO named like an archive would block forever
    except ReadLimitError as exc:
        raise DataError(str(exc)) from exc
    try:
        with tarfile.open(path, tarinfo=_CheckedTarInfo) as tar:
            blobs = []
            for member in tar:
                parts = Path(member.name).parts
                # Accept an optional top folder: [top/]split/class/file
                if len(parts) >= 3 and parts[-3] in ("train", "test") and member.isfile():
                    if Path(parts[-1]).suffix.lower() not in IMAGE_SUFFIXES:
                        continue
                    raise_if_stopped()
                    name = f"{path}:{member.name}"
                    budget.take(member.size, name)  # the size the member declares
                    data = read_capped(tar.extractfile(member), name, member.size)
                    blobs.append((parts[-3], parts[-2], name, data))
                    if len(blobs) % _PROGRESS_EVERY == 0:
                        log.info("%s: read %d images", path, len(blobs))
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise DataError(
            f"{path} is corrupted or truncated ({exc}). Replace it with a fresh copy, or "
            "unpack a good copy and point --data-dir at the unpacked folder."
        ) from exc
    return _stack_tree(((s, c, n, (lambda d=d: d)) for s, c, n, d in blobs), info, str(path))

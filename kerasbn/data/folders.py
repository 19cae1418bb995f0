"""Reading your own folder of labelled images: ``<class>/…`` or ``train/<class>/…`` (+ ``test/``).

Unlike a built-in set's image tree (:mod:`kerasbn.data.trees`, where every image has the
set's known size), a user's folder holds photos of any size and mode. It is read in two
passes: the file list and sizes first (checked against the read limit, and hashed into
the cache key by :mod:`kerasbn.data.user`), then each image's header (size and mode,
without decoding), from which the image size and channels are chosen; then every image
is decoded, converted and resized to that size. Unreadable and oversized images are
skipped and counted; an empty class folder, a single class or a tree over the read
limit are refused before anything is decoded.
"""

from __future__ import annotations

import logging
import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kerasbn._limits import ReadLimitError, max_read_bytes, require_regular_file
from kerasbn._signals import raise_if_stopped
from kerasbn.data.catalog import DataError
from kerasbn.images import IMAGE_SUFFIXES, PIXEL_BUDGET, decode_image
from kerasbn.presets import IMAGE_SIZES

__all__ = [
    "FolderTree",
    "MAX_FILES",
    "MAX_IMAGE_PIXELS",
    "check_decoded_size",
    "choose_image_size",
    "decode_tree",
    "list_tree",
    "resize_image",
    "scan_headers",
]

log = logging.getLogger(__name__)

# An image with more pixels is skipped (a camera photo of 40 million pixels still reads).
MAX_IMAGE_PIXELS = PIXEL_BUDGET
# Listing and hashing this many names already takes a minute; a larger tree is refused.
MAX_FILES = 2_000_000
# Decoded arrays may take this many times the read limit (small JPEGs grow when decoded).
_DECODED_FACTOR = 4
_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
_PROGRESS_EVERY = 10_000


@dataclass
class FolderTree:
    """The image files of a folder tree, by split and class, before any is opened.

    ``files[split][class]`` lists ``(relative name, path)`` sorted by name; ``split`` is
    ``"train"`` and, when the tree has a ``test/`` folder, ``"test"``.
    """

    root: Path
    layout: str  # "train/test" or "classes"
    files: dict[str, dict[str, list[tuple[str, Path]]]]
    stats: list[tuple[str, int, int]] = field(default_factory=list)  # (name, size, mtime_ns)
    ignored: int = 0  # files that are not JPEG or PNG

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(sorted(self.files["train"]))

    def entries(self) -> list[tuple[str, int, str, Path]]:
        """(split, label, name, path) of every file, in label then name order."""
        out = []
        for split, classes in self.files.items():
            for label, cls in enumerate(self.class_names):
                out.extend((split, label, name, path) for name, path in classes.get(cls, []))
        return out


def _class_files(folder: Path, root: Path, tree: FolderTree) -> list[tuple[str, Path]]:
    found = []
    # Subfolders of a class folder belong to it (as in Keras' image_dataset_from_directory);
    # os.walk does not follow links to folders, so a link cannot loop.
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                tree.ignored += 1
                continue
            found.append((path.relative_to(root).as_posix(), path))
            if len(tree.stats) + len(found) > MAX_FILES:
                raise DataError(
                    f"{root} holds more than {MAX_FILES:,} image files; kerasbn reads up to "
                    "that many. Point --dataset at a smaller tree."
                )
    return found


def _read_classes(split_dir: Path, root: Path, tree: FolderTree) -> dict:
    classes = {}
    for folder in sorted(p for p in split_dir.iterdir() if p.is_dir()):
        files = _class_files(folder, root, tree)
        if not files:
            raise DataError(
                f"The class folder {folder} holds no JPEG or PNG image. Add images to it or "
                "remove it."
            )
        classes[folder.name] = files
        for name, path in files:
            try:
                info = require_regular_file(path).stat()
            except ReadLimitError as exc:
                raise DataError(f"{exc} Remove it from the tree.") from exc
            tree.stats.append((name, info.st_size, info.st_mtime_ns))
    return classes


def list_tree(root: str | os.PathLike) -> FolderTree:
    """The files of ``root``: ``train/<class>/…`` (and optionally ``test/<class>/…``), or
    ``<class>/…``. Refuses an empty class folder, fewer than two classes, a test folder
    whose classes differ, and a tree over the read limit, before any image is opened."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(
            f"{root} is not a folder. --dataset takes a built-in name, tfds:NAME, or a "
            "folder with one sub-folder of images per class."
        )
    tree = FolderTree(root, "classes", {})
    if (root / "train").is_dir():
        tree.layout = "train/test"
        tree.files["train"] = _read_classes(root / "train", root, tree)
        if (root / "test").is_dir():
            tree.files["test"] = _read_classes(root / "test", root, tree)
    else:
        tree.files["train"] = _read_classes(root, root, tree)
    classes = tree.class_names
    if len(classes) < 2:
        raise DataError(
            f"{root} has {len(classes)} class folder{'s' * (len(classes) != 1)}"
            f"{' (' + classes[0] + ')' if classes else ''}; a classifier needs at least two. "
            "Put each class's images in its own sub-folder."
        )
    if "test" in tree.files and sorted(tree.files["test"]) != list(classes):
        raise DataError(
            f"{root}: train/ has classes {list(classes)} but test/ has "
            f"{sorted(tree.files['test'])}; both need the same class folders."
        )
    total = sum(size for _, size, _ in tree.stats)
    limit = max_read_bytes()
    if total > limit:
        raise DataError(
            f"{root} holds {total:,} bytes of images, over the {limit:,}-byte read limit. "
            "Point --dataset at a smaller tree, or raise KERASBN_MAX_READ_BYTES if you "
            "trust it."
        )
    return tree


def _header(path: Path) -> tuple[int, int, str]:
    from PIL import Image

    with Image.open(require_regular_file(path)) as img:  # reads the header, not the pixels
        return img.width, img.height, img.mode


def scan_headers(tree: FolderTree) -> tuple[dict, dict[str, list[str]]]:
    """``({path: (width, height, mode)}, {reason: [names skipped]})`` from the headers."""
    headers, skipped = {}, {"unreadable": [], "oversized": []}
    for _, _, name, path in tree.entries():
        raise_if_stopped()
        try:
            width, height, mode = _header(path)
        except Exception as exc:  # Pillow raises many types for a bad header
            skipped["unreadable"].append(f"{name} ({type(exc).__name__}: {exc})")
            continue
        if width * height > MAX_IMAGE_PIXELS:
            skipped["oversized"].append(
                f"{name} ({width}x{height}, over {MAX_IMAGE_PIXELS:,} pixels)"
            )
            continue
        headers[path] = (width, height, mode)
    return headers, skipped


def choose_image_size(sizes: list[tuple[int, int]]) -> tuple[int, str]:
    """The template size nearest (in scale) to the median shorter side, and why."""
    median = statistics.median(min(w, h) for w, h in sizes)
    size = min(IMAGE_SIZES, key=lambda s: abs(np.log2(s / max(median, 1))))
    return size, (
        f"{size}: the template nearest to the median shorter side ({median:g} pixels) of "
        f"{', '.join(map(str, IMAGE_SIZES))} (--image-size sets it)"
    )


def resize_image(array: np.ndarray, size: int) -> np.ndarray:
    """``array`` (H, W) or (H, W, C) as ``size`` x ``size``, aspect not kept (as Keras'
    image_dataset_from_directory does by default); bilinear, antialiased when shrinking."""
    if array.shape[:2] == (size, size):
        return array
    from PIL import Image

    squeezed = array[..., 0] if array.ndim == 3 and array.shape[2] == 1 else array
    resized = np.asarray(
        Image.fromarray(squeezed).resize((size, size), Image.Resampling.BILINEAR)
    )
    return resized[..., None] if array.ndim == 3 and array.shape[2] == 1 else resized


def check_decoded_size(count: int, image_size: int, channels: int) -> None:
    """Refuse ``count`` images whose decoded arrays would pass the bound (a multiple of
    the read limit), before any is decoded."""
    decoded_bytes = count * image_size * image_size * channels
    if decoded_bytes > _DECODED_FACTOR * max_read_bytes():
        raise DataError(
            f"{count:,} images at {image_size}x{image_size}x{channels} take "
            f"{decoded_bytes:,} bytes decoded, over {_DECODED_FACTOR} x the read limit. Pass a "
            "smaller --image-size, a smaller set, or raise KERASBN_MAX_READ_BYTES."
        )


def decode_tree(tree: FolderTree, image_size: int | None = None) -> tuple[dict, dict]:
    """Decode every readable image of ``tree`` at one size and channel count.

    Returns ``(arrays, facts)``: ``arrays[split] = (images uint8 NHWC, labels int64)`` in
    label-then-name order, and ``facts`` (image size and why, channels, conversions,
    skipped files by reason) for ``config.json``.
    """
    headers, skipped = scan_headers(tree)
    if not headers:
        raise DataError(f"No image of {tree.root} could be read. Check the files.")
    if image_size is None:
        image_size, size_reason = choose_image_size([h[:2] for h in headers.values()])
    else:
        size_reason = f"{image_size}: --image-size"
    gray = [mode in _GRAY_MODES for _, _, mode in headers.values()]
    channels = 1 if all(gray) else 3
    converted = {
        "grayscale to RGB": sum(gray) if channels == 3 else 0,
        "alpha band dropped": sum("A" in mode for *_, mode in headers.values()),
    }
    check_decoded_size(len(headers), image_size, channels)
    mode = "L" if channels == 1 else "RGB"
    parts: dict[str, tuple[list, list]] = {split: ([], []) for split in tree.files}
    for split, label, name, path in tree.entries():
        if path not in headers:
            continue
        raise_if_stopped()
        try:
            array = decode_image(path, mode, max_pixels=MAX_IMAGE_PIXELS)
        except ValueError as exc:  # a header that read but pixels that do not
            skipped["unreadable"].append(f"{name} ({exc})")
            continue
        images, labels = parts[split]
        images.append(resize_image(array if channels == 3 else array[..., None], image_size))
        labels.append(label)
        if len(images) % _PROGRESS_EVERY == 0:
            log.info("%s: decoded %d %s images", tree.root, len(images), split)
    for reason, names in skipped.items():
        if names:
            log.warning(
                "%s: skipped %d %s image%s, e.g. %s",
                tree.root, len(names), reason, "s" * (len(names) > 1), names[0],
            )
    arrays = {}
    for split, (images, labels) in parts.items():
        counts = np.bincount(labels, minlength=len(tree.class_names)) if labels else None
        if counts is None or counts.min() == 0:
            empty = tree.class_names[int(np.argmin(counts))] if counts is not None else "all"
            raise DataError(
                f"{tree.root}: no readable {split} image is left in class {empty!r} after "
                "skipping unreadable and oversized files. Replace those files."
            )
        arrays[split] = (
            np.stack(images).astype(np.uint8),
            np.asarray(labels, dtype=np.int64),
        )
    facts = {
        "image_size": image_size,
        "image_size_reason": size_reason,
        "channels": channels,
        "converted": {k: v for k, v in converted.items() if v},
        "skipped": {k: len(v) for k, v in skipped.items() if v},
        "ignored_files": tree.ignored,
    }
    return arrays, facts

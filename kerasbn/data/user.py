"""Your own data set: a folder of class folders or ``tfds:NAME``, made a catalog row at run time.

``--dataset PATH`` / ``--dataset tfds:NAME`` (or :func:`kerasbn.load_dataset` with the same
string) reads the images once, chooses the image size, channels, CNN template and recipe
(each choice with its reason), and registers a :class:`~kerasbn.data.catalog.DatasetInfo`
row and a :class:`~kerasbn.presets.Preset` under a short name (the folder's or the TFDS
set's), so training, tuning, saving and the model card run through the same code as for
the built-in sets. The decoded arrays are cached as uint8 ``.npy`` files under
``$KERASBN_CACHE/datasets`` (default ``~/.cache/kerasbn``), keyed by the tree's file
names, sizes and modification times and the chosen size, so a second run starts in
seconds.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

from kerasbn._paths import CACHE_ENV, cache_root
from kerasbn.data.catalog import DATASETS, DataError, DatasetInfo
from kerasbn.data.folders import decode_tree, list_tree
from kerasbn.data.formats import RawData
from kerasbn.presets import IMAGE_SIZES, PRESETS, preset_for_images

__all__ = [
    "CACHE_ENV",
    "TEST_FRACTION",
    "VAL_FRACTION",
    "is_user_spec",
    "dataset_label",
    "register_arrays",
    "register_from_metadata",
    "register_user_dataset",
    "resolve_dataset",
    "user_raw_data",
]

log = logging.getLogger(__name__)

TFDS_PREFIX = "tfds:"
# A tree without a test/ folder gives this share of each class to the test split
# (stratified); the validation split is this share of the training images.
TEST_FRACTION, VAL_FRACTION = 0.2, 0.1
# Bumped when the decoded arrays would differ for the same files (resizing, order).
_CACHE_VERSION = 1
# Each class needs a training, a validation and a test image with room to spare.
_MIN_PER_CLASS = 5
_LOADED: dict[str, RawData] = {}


def is_user_spec(name) -> bool:
    """Whether ``--dataset`` names your own data (``tfds:NAME`` or a folder), not a
    built-in set."""
    if not isinstance(name, str):
        return False
    if name.startswith(TFDS_PREFIX):
        return True
    try:
        DATASETS.key(name)
        return False
    except ValueError:
        return os.sep in name or "/" in name or Path(name).expanduser().is_dir()


def _short_name(text: str, suffix: str) -> str:
    name = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "images"
    builtin = {n for n, info in DATASETS.items() if info.bundled != "user"}
    return f"{name}_{suffix}" if name in builtin else name


def dataset_label(spec: str) -> str:
    """The name ``spec`` will be registered as (for folder names, before reading it)."""
    if not is_user_spec(spec):
        return DATASETS.key(spec)
    if spec.startswith(TFDS_PREFIX):
        return _short_name(spec[len(TFDS_PREFIX):].split("/")[0].split(":")[0], "tfds")
    return _short_name(Path(spec).expanduser().resolve().name, "folder")


def _cache_root() -> Path:
    return cache_root() / "datasets"


def _key(parts) -> str:
    text = json.dumps([_CACHE_VERSION, parts], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _read_cache(folder: Path) -> tuple[dict, dict] | None:
    """The cached arrays and facts, or ``None`` when absent or damaged (rebuilt then)."""
    try:
        facts = json.loads((folder / "facts.json").read_text(encoding="utf-8"))
        arrays = {}
        for split, count in facts["counts"].items():
            x = np.load(folder / f"x_{split}.npy", allow_pickle=False)
            y = np.load(folder / f"y_{split}.npy", allow_pickle=False)
            size, channels = facts["image_size"], facts["channels"]
            if x.shape != (count, size, size, channels) or x.dtype != np.uint8:
                raise ValueError(f"x_{split} has shape {x.shape}")
            if y.shape != (count,) or y.min() < 0 or y.max() >= len(facts["class_names"]):
                raise ValueError(f"y_{split} does not match")
            arrays[split] = (x, y.astype(np.int64))
        return arrays, facts
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("the cached copy in %s is damaged (%s); decoding the images again", folder, exc)
        return None


def _write_cache(folder: Path, arrays: dict, facts: dict) -> None:
    tmp = None
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=folder.parent))
        for split, (x, y) in arrays.items():
            np.save(tmp / f"x_{split}.npy", x)
            np.save(tmp / f"y_{split}.npy", y)
        (tmp / "facts.json").write_text(json.dumps(facts, indent=1), encoding="utf-8")
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)  # whole or not at all: a killed write leaves a .tmp- folder
    except OSError as exc:  # a read-only or full cache costs the next run time, not this one
        log.warning("could not cache the decoded images in %s (%s)", folder, exc)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _split_test(arrays: dict, class_names) -> tuple[dict, str]:
    """A stratified, seeded test split for a tree without a ``test/`` folder."""
    from sklearn.model_selection import train_test_split

    from kerasbn.data import SPLIT_SEED

    x, y = arrays["train"]
    counts = np.bincount(y, minlength=len(class_names))
    fewest = int(counts.min())
    if fewest < _MIN_PER_CLASS:
        small = class_names[int(np.argmin(counts))]
        raise DataError(
            f"Class {small!r} has {fewest} readable image{'s' * (fewest != 1)}; each class "
            f"needs at least {_MIN_PER_CLASS} to give the training, validation and test "
            "splits one each. Add images or remove the class folder."
        )
    train, test = train_test_split(
        np.arange(len(y)), test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=y
    )
    train, test = np.sort(train), np.sort(test)
    return {"train": (x[train], y[train]), "test": (x[test], y[test])}, (
        f"{TEST_FRACTION:.0%} of each class to test (stratified, seed {SPLIT_SEED}); "
        f"{VAL_FRACTION:.0%} of the rest to validation"
    )


def _shuffled(arrays: dict) -> dict:
    # Label-sorted order would make --limit N take the first classes only.
    from kerasbn.data.trees import TREE_ORDER_SEED

    out = {}
    for split, (x, y) in arrays.items():
        order = np.random.default_rng(TREE_ORDER_SEED).permutation(len(y))
        out[split] = (x[order], y[order])
    return out


def _from_folder(spec: str, image_size: int | None) -> tuple[str, dict, dict]:
    tree = list_tree(Path(spec).expanduser())
    name = dataset_label(spec)
    key = _key([tree.layout, tree.stats, image_size])
    folder = _cache_root() / f"{name}-{key}"
    cached = _read_cache(folder)
    if cached is not None:
        log.info("%s: the decoded images come from the cache %s", spec, folder)
        arrays, facts = cached
        facts["source"] = f"image folder {spec}"  # as written this time
        return name, arrays, facts
    arrays, facts = decode_tree(tree, image_size)
    if "test" in arrays:
        split = f"the tree's test/ folder; {VAL_FRACTION:.0%} of train/ to validation"
    else:
        arrays, split = _split_test(arrays, tree.class_names)
    arrays = _shuffled(arrays)
    facts.update(
        class_names=list(tree.class_names),
        layout=tree.layout,
        split=split,
        source=f"image folder {spec}",
        counts={s: len(y) for s, (_, y) in arrays.items()},
    )
    _write_cache(folder, arrays, facts)
    return name, arrays, facts


def user_raw_data(info: DatasetInfo) -> RawData:
    """The arrays of a registered user data set (the catalog's ``bundled="user"`` source)."""
    return _LOADED[info.name]


def _preset_and_row(name: str, facts: dict) -> tuple[DatasetInfo, object, dict]:
    size, channels = facts["image_size"], facts["channels"]
    classes = tuple(facts["class_names"])
    n_train = facts["counts"]["train"]
    val = max(1, round(VAL_FRACTION * n_train))
    preset, reasons = preset_for_images(name, size, channels, len(classes), n_train - val)
    info = DatasetInfo(
        name,
        name,
        (size, size, channels),
        classes,
        n_train,
        facts["counts"]["test"],
        val,
        bundled="user",
    )
    return info, preset, reasons


def _register(name: str, facts: dict) -> tuple[DatasetInfo, dict]:
    """Register the row and preset; returns the row and the preset's reasons."""
    info, preset, reasons = _preset_and_row(name, facts)
    DATASETS.register(name, info, overwrite=True)
    PRESETS.register(name, preset, overwrite=True)
    return info, reasons


def resolve_dataset(name: str, image_size: int | None = None) -> str:
    """``name`` as a registered data set name: your own folder or ``tfds:NAME`` is read
    (or taken from the cache) and registered; ``image_size`` is refused for a built-in
    set, which has its own size."""
    if is_user_spec(name):
        return register_user_dataset(name, image_size)
    if image_size is not None:
        raise ValueError(
            "--image-size applies to your own folder or a tfds:NAME set; the built-in "
            f"{name!r} has its own size. Received: {image_size}"
        )
    return name


def register_user_dataset(spec: str, image_size: int | None = None) -> str:
    """Read ``spec`` (a folder or ``tfds:NAME``), register its catalog row and preset,
    and return the name to use everywhere else (``--dataset``, model names)."""
    if image_size is not None and image_size not in IMAGE_SIZES:
        raise ValueError(
            f"--image-size must be one of {', '.join(map(str, IMAGE_SIZES))}. "
            f"Received: {image_size}"
        )
    if spec.startswith(TFDS_PREFIX):
        from kerasbn.data.tfds_sets import read_tfds_images

        tfds_name, name = spec[len(TFDS_PREFIX):], dataset_label(spec)
        key = _key([spec, image_size])
        folder = _cache_root() / f"{name}-{key}"
        cached = _read_cache(folder)
        if cached is None:
            arrays, facts = read_tfds_images(tfds_name, image_size)
            if "test" not in arrays:
                arrays, facts["split"] = _split_test(arrays, facts["class_names"])
            facts["counts"] = {s: len(y) for s, (_, y) in arrays.items()}
            _write_cache(folder, arrays, facts)
        else:
            arrays, facts = cached
    else:
        name, arrays, facts = _from_folder(spec, image_size)
    return _register_loaded(spec, name, arrays, facts)


def _register_loaded(spec: str, name: str, arrays: dict, facts: dict) -> str:
    """Register the row and preset of decoded ``arrays`` and keep them for loading."""
    info, reasons = _register(name, facts)
    (x_train, y_train), (x_test, y_test) = arrays["train"], arrays["test"]
    _LOADED[name] = RawData(
        x_train,
        y_train,
        x_test,
        y_test,
        source=facts["source"],
        class_names=info.class_names,
        metadata={
            "spec": spec,
            "image_size": facts["image_size"],
            "channels": facts["channels"],
            "layout": facts.get("layout", "tfds"),
            "train_images": len(y_train),
            "test_images": len(y_test),
            "split": facts["split"],
            "skipped": facts.get("skipped", {}),
            "converted": facts.get("converted", {}),
            "inferred": {"image_size": facts["image_size_reason"], **reasons},
        },
    )
    log.info(
        "%s: %d training and %d test images of %d classes at %dx%dx%d, registered as %r",
        spec, len(y_train), len(y_test), info.num_classes, *info.image_shape, name,
    )
    return name


def register_arrays(
    name: str, images: np.ndarray, labels: np.ndarray, class_names, source: str
) -> str:
    """Register images already in memory (uint8 N x S x S x C, S one of the template
    sizes) as a data set named ``name``, split as a folder without ``test/`` is: the
    same path as :func:`register_user_dataset` after the images are read."""
    images, labels = np.asarray(images), np.asarray(labels, dtype=np.int64)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1] != images.shape[2]:
        raise ValueError(f"Expected uint8 images N x S x S x C. Received: {images.shape}")
    if images.shape[1] not in IMAGE_SIZES or images.shape[3] not in (1, 3):
        raise ValueError(
            f"Images must be {', '.join(map(str, IMAGE_SIZES))} pixels a side with 1 or 3 "
            f"channels. Received: {images.shape[1:]}"
        )
    name = _short_name(name, "arrays")
    arrays, split = _split_test({"train": (images, labels)}, tuple(class_names))
    arrays = _shuffled(arrays)
    facts = {
        "image_size": images.shape[1],
        "image_size_reason": f"{images.shape[1]}: the arrays' size",
        "channels": images.shape[3],
        "class_names": list(class_names),
        "split": split,
        "source": source,
        "layout": "arrays",
        "counts": {s: len(y) for s, (_, y) in arrays.items()},
    }
    return _register_loaded(name, name, arrays, facts)


def register_from_metadata(name: str, class_names, input_shape, metadata: dict) -> None:
    """Register a user data set's row and preset again from what a :class:`Dataset`
    records (a worker process of ``compare --jobs`` receives the arrays, not the row)."""
    if "spec" not in metadata or name in DATASETS:
        return
    size, _, channels = input_shape
    train = metadata["train_images"]
    facts = {
        "image_size": size,
        "channels": channels,
        "class_names": list(class_names),
        "counts": {"train": train, "test": metadata.get("test_images", 1)},
    }
    _register(name, facts)

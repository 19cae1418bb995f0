"""Any TensorFlow Datasets image-classification set, for ``--dataset tfds:NAME``.

The set must have one image feature and one class-label feature (its supervised keys,
when it declares them); its images are resized to one size as a folder's are
(:func:`kerasbn.data.folders.resize_image`). It comes from the local TFDS cache, or is
downloaded when the machine is online.
"""

from __future__ import annotations

import itertools
import logging

import numpy as np

from kerasbn._signals import raise_if_stopped
from kerasbn.data.catalog import DataError
from kerasbn.data.folders import check_decoded_size, choose_image_size, resize_image

__all__ = ["read_tfds_images"]

log = logging.getLogger(__name__)
# Images of a set whose size varies that are looked at to choose the image size.
_SIZE_SAMPLE = 200


def _builder(name: str):
    import tensorflow_datasets as tfds

    try:
        return tfds.builder(name)
    except Exception as exc:  # DatasetNotFoundError, a bad config or version, ...
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(
            f"tensorflow-datasets has no data set {name!r} ({first}). See "
            "https://www.tensorflow.org/datasets/catalog for names, e.g. tfds:beans. "
            f"Received: 'tfds:{name}'"
        ) from exc


def _keys(builder, name: str) -> tuple[str, str]:
    import tensorflow_datasets as tfds

    features = builder.info.features
    kinds = {key: type(feature).__name__ for key, feature in features.items()}
    images = [k for k, f in features.items() if isinstance(f, tfds.features.Image)]
    labels = [k for k, f in features.items() if isinstance(f, tfds.features.ClassLabel)]
    supervised = builder.info.supervised_keys
    if supervised and len(supervised) == 2 and supervised[0] in images and supervised[1] in labels:
        return supervised
    if len(images) == 1 and len(labels) == 1:
        return images[0], labels[0]
    raise DataError(
        f"tfds:{name} is not an image-classification set: its features are {kinds}, and "
        "kerasbn needs one image feature and one class label. Pick another set or "
        f"export it as a folder of class folders. Received: 'tfds:{name}'"
    )


def _prepare(builder, name: str) -> None:
    from kerasbn.data.sources import is_online

    if builder.is_prepared():
        return
    if not is_online():
        raise DataError(
            f"tensorflow-datasets has no prepared copy of {name} in its cache and this "
            "machine is offline. Go online once (it downloads and prepares it), or export "
            "the images as a folder of class folders and pass --dataset PATH."
        )
    try:
        builder.download_and_prepare()
    except Exception as exc:
        raise DataError(f"tensorflow-datasets could not prepare {name}: {exc}") from exc


def _examples(builder, split: str, keys: tuple[str, str]):
    import tensorflow_datasets as tfds

    for example in tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False)):
        yield example[keys[0]], int(example[keys[1]])


def read_tfds_images(name: str, image_size: int | None) -> tuple[dict, dict]:
    """``(arrays, facts)`` as :func:`kerasbn.data.folders.decode_tree` returns them, for
    the TFDS set ``name`` (``"beans"``, ``"oxford_flowers102:2.1.1"``)."""
    builder = _builder(name)
    keys = _keys(builder, name)
    image_feature, label_feature = builder.info.features[keys[0]], builder.info.features[keys[1]]
    _prepare(builder, name)
    splits = list(builder.info.splits.keys()) or ["train", "test"]
    train = "train" if "train" in splits else splits[0]
    wanted = [train] + (["test"] if "test" in splits and train != "test" else [])
    shape = tuple(image_feature.shape)
    channels = 1 if shape[-1] == 1 else 3
    if image_size is None:
        if None not in shape[:2]:
            sizes = [(shape[1], shape[0])]
        else:
            examples = itertools.islice(_examples(builder, train, keys), _SIZE_SAMPLE)
            sample = [img.shape[:2] for img, _ in examples]
            sizes = [(w, h) for h, w in sample]
        image_size, reason = choose_image_size(sizes)
    else:
        reason = f"{image_size}: --image-size"
    count = sum(builder.info.splits[s].num_examples for s in wanted if s in builder.info.splits)
    check_decoded_size(count, image_size, channels)
    arrays, converted = {}, {"grayscale to RGB": 0, "alpha band dropped": 0}
    for split in wanted:
        images, labels = [], []
        for image, label in _examples(builder, split, keys):
            raise_if_stopped()
            if image.ndim == 2:
                image = image[..., None]
            if image.shape[-1] == 4:
                image = image[..., :3]
                converted["alpha band dropped"] += 1
            if channels == 3 and image.shape[-1] == 1:
                image = np.repeat(image, 3, axis=-1)
                converted["grayscale to RGB"] += 1
            images.append(resize_image(image.astype(np.uint8), image_size))
            labels.append(label)
        if not images:
            raise DataError(f"tfds:{name}'s {split} split holds no example.")
        arrays["train" if split == train else "test"] = (
            np.stack(images),
            np.asarray(labels, dtype=np.int64),
        )
    facts = {
        "image_size": image_size,
        "image_size_reason": reason,
        "channels": channels,
        "class_names": list(label_feature.names),
        "source": f"tensorflow-datasets {builder.info.full_name}",
        "split": f"tensorflow-datasets' {train} and test splits; 10% of {train} to validation",
        "converted": {k: v for k, v in converted.items() if v},
        "skipped": {},
        "layout": "tfds",
    }
    return arrays, facts


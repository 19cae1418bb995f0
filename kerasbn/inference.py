"""Prediction on new images: input checks, reading input files, and the predict API
(the command line is :mod:`kerasbn.cli.predict`).

    python -m kerasbn.predict --model saved_models/mnist-bn.keras digit.png more/ batch.npy

Models take uint8 pixels (0..255) in the data set's shape and scale them themselves.
Inputs are converted only where that is unambiguous (grayscale <-> RGB, RGBA -> RGB,
integer arrays within 0..255); anything else is an error that says what to do:
a size mismatch (unless ``resize``), NaN/Inf, float images in [0, 1], values out of
range.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from kerasbn._limits import check_declared, require_regular_file
from kerasbn._text import terminal_safe
from kerasbn.images import IMAGE_SUFFIXES, decode_image
from kerasbn.loading import load_model
from kerasbn.saving import read_manifest, read_sidecar

__all__ = [
    "INPUT_SUFFIXES",
    "MAX_BATCH_BYTES",
    "Prediction",
    "class_names_for",
    "expand_inputs",
    "predict",
    "prepare_images",
    "printable",
    "read_input_file",
]

INPUT_SUFFIXES = (*IMAGE_SUFFIXES, ".npy")


@dataclass(frozen=True)
class Prediction:
    """Class ids (N,) and class probabilities (N, classes) for N images."""

    class_ids: np.ndarray
    probabilities: np.ndarray

    @property
    def confidences(self) -> np.ndarray:
        return self.probabilities[np.arange(len(self.class_ids)), self.class_ids]

    def top_k(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids, probabilities), each (N, k), most probable first."""
        k = min(k, self.probabilities.shape[1])
        ids = np.argsort(-self.probabilities, axis=1, kind="stable")[:, :k]
        return ids, np.take_along_axis(self.probabilities, ids, axis=1)


def _to_uint8(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    if array.size == 0:
        raise ValueError("No images given (an empty array).")
    if array.dtype == bool or not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"Images must be numeric uint8 pixels. Received: dtype {array.dtype}")
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            bad = int((~np.isfinite(array)).sum())
            raise ValueError(
                f"The images contain {bad} NaN or Inf values; the model needs finite uint8 "
                "pixels 0..255. Check how the array was produced."
            )
        if array.min() >= 0 and array.max() <= 1.0 and not np.all(array == np.round(array)):
            raise ValueError(
                "The images look like floats scaled to [0, 1], but the model takes uint8 "
                "pixels 0..255 (it scales them itself). Convert with "
                f"(images * 255).round().astype('uint8'). Received: dtype {array.dtype}, "
                f"range {array.min():.3g}..{array.max():.3g}"
            )
        if not np.all(array == np.round(array)):
            raise ValueError(
                "The images are floats with fractional values; the model takes uint8 pixels "
                f"0..255. Received: dtype {array.dtype}, range {array.min():.3g}.."
                f"{array.max():.3g}"
            )
    low, high = array.min(), array.max()
    if low < 0 or high > 255:
        raise ValueError(
            "Pixel values must lie in 0..255 (uint8); these are not images in that range. "
            f"Received: dtype {array.dtype}, range {low}..{high}"
        )
    return array.astype(np.uint8)


def _split_batch(array: np.ndarray, input_shape: tuple[int, int, int]) -> np.ndarray:
    """Bring an array to (N, h, w, c) with c in 1..4, deciding single image vs batch."""
    height, width, _ = input_shape
    if array.ndim == 2:  # one grayscale image
        return array[None, ..., None]
    if array.ndim == 3:
        if array.shape[1:] == (height, width):  # a batch of grayscale images
            return array[..., None]
        if array.shape[-1] in (1, 3, 4):  # one image with channels last
            return array[None]
        return array[..., None]  # a batch of grayscale images of another size
    if array.ndim == 4:
        return array
    raise ValueError(
        f"Expected one image (H, W[, C]) or a batch (N, H, W[, C]). Received: shape {array.shape}"
    )


def _match_channels(batch: np.ndarray, channels: int) -> np.ndarray:
    have = batch.shape[-1]
    if have == 4:  # RGBA: drop alpha
        batch, have = batch[..., :3], 3
    if have == channels:
        return batch
    if have == 3 and channels == 1:
        # ITU-R 601 luma, as PIL's convert("L"): the usual grayscale of an RGB photo.
        luma = batch.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        return np.clip(np.rint(luma), 0, 255).astype(np.uint8)[..., None]
    if have == 1 and channels == 3:
        return np.repeat(batch, 3, axis=-1)
    raise ValueError(
        f"The model expects {channels} channel(s); images with {have} cannot be converted "
        f"unambiguously. Received: shape {batch.shape[1:]}"
    )


# The prepared batch (uint8, the model's size) is what predict holds in memory at once;
# 1 GiB is a million MNIST digits or 350,000 CIFAR-10 images.
MAX_BATCH_BYTES = 1 << 30


def _check_resize(batch: np.ndarray, height: int, width: int, channels: int) -> None:
    """Refuse, before allocating, a resize whose source or result is too large."""
    from kerasbn.images import PIXEL_BUDGET

    count, source = batch.shape[0], batch.shape[1] * batch.shape[2]
    if source > PIXEL_BUDGET:
        raise ValueError(
            f"The images are {batch.shape[1]}x{batch.shape[2]} pixels, more than the "
            f"{PIXEL_BUDGET:,} kerasbn resizes; scale them down first. Received: shape "
            f"{batch.shape}"
        )
    result = count * height * width * channels
    if result > MAX_BATCH_BYTES:
        raise ValueError(
            f"Resizing {count:,} images to {height}x{width}x{channels} needs {result:,} "
            f"bytes, more than the {MAX_BATCH_BYTES:,} kerasbn prepares at once; predict "
            f"fewer images per call. Received: shape {batch.shape}"
        )


def _resize(batch: np.ndarray, height: int, width: int) -> np.ndarray:
    from PIL import Image

    out = []
    for image in batch:
        mode_image = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
        resized = np.asarray(mode_image.resize((width, height), Image.Resampling.BILINEAR))
        out.append(resized[..., None] if resized.ndim == 2 else resized)
    return np.stack(out)


def prepare_images(images, input_shape: Sequence[int], *, resize: bool = False) -> np.ndarray:
    """Check and convert images to the uint8 (N, H, W, C) batch a model expects.

    Accepts one image or a batch, grayscale, RGB or RGBA, uint8 or integer/float arrays
    holding whole values 0..255. Size mismatches are errors unless ``resize=True``.
    """
    height, width, channels = (int(d) for d in input_shape)
    batch = _split_batch(_to_uint8(np.asarray(images)), (height, width, channels))
    batch = _match_channels(batch, channels)
    if batch.shape[1:3] != (height, width):
        if not resize:
            raise ValueError(
                f"The images are {batch.shape[1]}x{batch.shape[2]} but the model expects "
                f"{height}x{width}. Pass resize=True (--resize on the command line) to "
                f"resize them. Received: shape {np.shape(images)}"
            )
        _check_resize(batch, height, width, channels)
        batch = _resize(batch, height, width)
    return np.ascontiguousarray(batch)


def predict(
    model: keras.Model | str | os.PathLike,
    images,
    batch_size: int = 256,
    *,
    resize: bool = False,
) -> Prediction:
    """Class ids and probabilities for uint8 images in the data set's natural shape.

    ``model`` may be a loaded model or the path of a ``.keras`` file (loaded safely). The
    model applies its own preprocessing and runs in inference mode (BN moving statistics,
    no Dropout, no augmentation), so a prediction does not depend on the rest of the batch.
    """
    if not isinstance(model, keras.Model):
        model = load_model(model)
    batch = prepare_images(images, tuple(model.input_shape[1:]), resize=resize)
    probabilities = np.asarray(model.predict(batch, batch_size=batch_size, verbose=0))
    return Prediction(probabilities.argmax(axis=1), probabilities)


def class_names_for(model_path: str | os.PathLike, num_classes: int) -> list[str]:
    """Class names from the manifest or sidecar of a saved model, else "0".."N-1"."""
    path = Path(model_path)
    entry = read_manifest(path.parent)["models"].get(path.name) or read_sidecar(path)
    names = entry.get("class_names")
    if names and len(names) == num_classes:
        return list(names)
    return [str(i) for i in range(num_classes)]


# --------------------------------------------------------------------------- files


def read_input_file(path: Path) -> np.ndarray:
    """The pixels of one input: a ``.npy`` array (never unpickled) or a PNG / JPEG image.

    Raises:
        ValueError: the file cannot be read as either (the message names it).
    """
    name = printable(str(path))
    try:
        require_regular_file(path)  # a FIFO or device would be read forever
    except OSError as exc:
        raise ValueError(f"{name} cannot be read ({exc.strerror or exc}).") from exc
    except ValueError as exc:
        raise ValueError(printable(str(exc))) from exc
    if path.suffix.lower() == ".npy":
        try:
            array = _read_npy(path)
        except (ValueError, OSError, EOFError) as exc:
            raise ValueError(f"{name} is not a readable .npy array ({exc}).") from exc
        if array.size == 0:
            raise ValueError(f"{name} holds an empty array {array.shape}: nothing to predict.")
        return array
    try:
        return decode_image(path)
    except ValueError as exc:
        raise ValueError(f"{name} is not a readable image ({exc}).") from exc


def _read_npy(path: Path) -> np.ndarray:
    """A ``.npy`` array whose header's declared size is checked before the data is read
    (never unpickled)."""
    with path.open("rb") as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
        check_declared(math.prod(shape) * dtype.itemsize, f"the array (shape {shape})")
    return np.load(path, allow_pickle=False)


def printable(text: str) -> str:
    """``text`` safe to print on any terminal (:func:`kerasbn._text.terminal_safe`)."""
    return terminal_safe(text)


def expand_inputs(paths: Sequence[str]) -> tuple[list[Path], list[dict]]:
    """The files named by ``paths`` (a folder stands for its images and arrays), and an
    ``{"input", "error"}`` record for each path that names none."""
    files, errors = [], []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in INPUT_SUFFIXES)
            if not found:
                name = printable(str(path))
                errors.append({"input": name, "error": f"{name} holds no PNG, JPEG or .npy files."})
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            what = "is not a regular file" if path.exists() else "does not exist"
            errors.append(
                {"input": printable(str(path)), "error": f"{printable(str(path))} {what}."}
            )
    return files, errors

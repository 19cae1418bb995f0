"""Saving trained models with a JSON sidecar, loading them, and predicting.

Models hold their own preprocessing (uint8 -> float scaling), so :func:`predict` takes
raw uint8 images in the data set's natural shape. A later issue hardens loading further
(manifest, hashes, size caps); here loading already refuses anything but the native
``.keras`` format and always runs in Keras safe mode.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from kerasbn._io import atomic_path, write_json

__all__ = ["Prediction", "load_model", "predict", "save_model", "sidecar_path"]


def sidecar_path(model_path: str | os.PathLike) -> Path:
    """``saved_models/mnist-bn.keras`` -> ``saved_models/mnist-bn.json``."""
    return Path(model_path).with_suffix(".json")


def save_model(model: keras.Model, path: str | os.PathLike, metadata: dict) -> Path:
    """Save ``model`` in the native ``.keras`` format plus a JSON sidecar of ``metadata``."""
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"Models are saved in the native .keras format. Received: {str(path)!r}")
    with atomic_path(path, suffix=".keras") as tmp:
        model.save(tmp)
    write_json(sidecar_path(path), metadata)
    return path


def load_model(path: str | os.PathLike) -> keras.Model:
    """Load a ``.keras`` model saved by kerasbn, in Keras safe mode.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a ``.keras`` file, or the file is corrupted or truncated.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"No model file at {path}. Train one with `python -m kerasbn.compare` (models land "
            "in saved_models/) or pass the path of an existing .keras file."
        )
    if path.suffix != ".keras":
        raise ValueError(
            f"Only the native .keras format is loaded (safe mode). Received: {str(path)!r}"
        )
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"{path} is corrupted or truncated (not a valid .keras archive). Re-save or "
            "re-download it."
        )
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except (zipfile.BadZipFile, OSError, EOFError, KeyError) as exc:
        raise ValueError(
            f"{path} is corrupted or truncated ({exc}). Re-save or re-download it."
        ) from exc


@dataclass(frozen=True)
class Prediction:
    """Class ids (N,) and class probabilities (N, classes) for N images."""

    class_ids: np.ndarray
    probabilities: np.ndarray

    @property
    def confidences(self) -> np.ndarray:
        return self.probabilities[np.arange(len(self.class_ids)), self.class_ids]


def _as_batch(images, input_shape: tuple[int, ...]) -> np.ndarray:
    """Bring uint8 images to (N, H, W, C) for a model expecting ``input_shape``."""
    array = np.asarray(images)
    if array.dtype != np.uint8:
        if (
            np.issubdtype(array.dtype, np.integer)
            and array.size
            and (array.min() >= 0 and array.max() <= 255)
        ):
            array = array.astype(np.uint8)
        else:
            raise ValueError(
                "predict() takes uint8 images with values 0..255, as stored in the data set "
                "(the model scales them itself). Convert float images in [0, 1] with "
                f"(images * 255).round().astype('uint8'). Received: dtype {array.dtype}"
            )
    height, width, channels = input_shape
    if array.shape == (height, width) and channels == 1:
        array = array[None, ..., None]
    elif array.shape == (height, width, channels):
        array = array[None]
    elif array.ndim == 3 and array.shape[1:] == (height, width) and channels == 1:
        array = array[..., None]
    if array.ndim != 4 or array.shape[1:] != (height, width, channels):
        raise ValueError(
            f"The model expects images of shape {(height, width, channels)} (one image) or "
            f"(N, {height}, {width}, {channels}) (a batch). Received: shape {np.shape(images)}"
        )
    return array


def predict(model: keras.Model | str | os.PathLike, images, batch_size: int = 256) -> Prediction:
    """Class ids and probabilities for uint8 images in the data set's natural shape.

    ``model`` may be a loaded model or the path of a ``.keras`` file. The model applies
    its own preprocessing and runs in inference mode (BN moving statistics, no Dropout,
    no augmentation), so a prediction does not depend on the rest of the batch.
    """
    if not isinstance(model, keras.Model):
        model = load_model(model)
    batch = _as_batch(images, tuple(model.input_shape[1:]))
    probabilities = np.asarray(model.predict(batch, batch_size=batch_size, verbose=0))
    return Prediction(probabilities.argmax(axis=1), probabilities)


def read_sidecar(model_path: str | os.PathLike) -> dict:
    """The JSON metadata saved next to a model (empty dict when there is none)."""
    side = sidecar_path(model_path)
    return json.loads(side.read_text()) if side.exists() else {}

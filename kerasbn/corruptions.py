"""Common image corruptions at severities 1-5, after CIFAR-10-C (Hendrycks & Dietterich
2019), for uint8 image batches of any size and channel count.

The ``imagecorruptions`` package implements all fifteen, but needs OpenCV, scikit-image
and ImageMagick; this is the subset that NumPy, SciPy and Pillow express exactly, with
CIFAR-10-C's severity parameters (``make_cifar_c.py`` of the paper's code): the three
noises, ``brightness``, ``contrast``, ``pixelate`` and ``jpeg_compression`` of the
standard fifteen, and ``gaussian_blur``, one of CIFAR-10-C's four extra corruptions.
Left out: defocus, glass, motion and zoom blur, snow, frost, fog, elastic transform
(their reference code depends on OpenCV or ImageMagick kernels).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

from kerasbn.registry import Registry

__all__ = ["CORRUPTIONS", "Corruption", "corrupt", "list_corruptions"]

SEVERITIES = (1, 2, 3, 4, 5)


@dataclass(frozen=True)
class Corruption:
    """One corruption: its family and severity parameters (index = severity - 1)."""

    name: str
    family: str
    levels: tuple
    apply: Callable  # (float images in [0, 1], level, rng) -> float images; or uint8 -> uint8
    on_uint8: bool = False  # Pillow codecs work on 8-bit images


def _gaussian_noise(x, sigma, rng):
    return x + rng.normal(scale=sigma, size=x.shape)


def _shot_noise(x, photons, rng):
    return rng.poisson(x * photons) / photons


def _impulse_noise(x, amount, rng):
    # Salt and pepper: a fraction `amount` of the values, half set to 1, half to 0.
    hit = rng.random(x.shape) < amount
    salt = rng.random(x.shape) < 0.5
    return np.where(hit, salt.astype(x.dtype), x)


def _gaussian_blur(x, sigma, rng):
    # Spatial axes only; nearest-edge padding, 4 sigma wide (scikit-image's defaults).
    return ndimage.gaussian_filter(x, sigma=(0, sigma, sigma, 0), mode="nearest", truncate=4.0)


def _brightness(x, shift, rng):
    # HSV value (max over channels) raised by `shift`, hue and saturation kept: every
    # channel scales by new/old value; a black pixel (saturation 0) turns grey.
    value = x.max(axis=-1, keepdims=True)
    new = np.clip(value + shift, 0.0, 1.0)
    scale = np.divide(new, value, out=np.zeros_like(value), where=value > 0)
    return np.where(value > 0, x * scale, new)


def _contrast(x, factor, rng):
    mean = x.mean(axis=(1, 2), keepdims=True)  # per image and channel
    return (x - mean) * factor + mean


def _per_image(images, fn):
    return np.stack([fn(Image.fromarray(image)) for image in images])


def _pil(images):
    return images[..., 0] if images.shape[-1] == 1 else images


def _pixelate(images, fraction, rng):
    h, w = images.shape[1:3]
    small = (int(w * fraction), int(h * fraction))

    def one(image):
        down = image.resize(small, Image.Resampling.BOX)
        return np.asarray(down.resize((w, h), Image.Resampling.BOX))

    return _per_image(_pil(images), one).reshape(images.shape)


def _jpeg(images, quality, rng):
    def one(image):
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=quality)
        return np.asarray(Image.open(buffer))

    return _per_image(_pil(images), one).reshape(images.shape)


CORRUPTIONS: Registry[Corruption] = Registry("corruption")
for _c in (
    Corruption("gaussian_noise", "noise", (0.04, 0.06, 0.08, 0.09, 0.10), _gaussian_noise),
    Corruption("shot_noise", "noise", (500, 250, 100, 75, 50), _shot_noise),
    Corruption("impulse_noise", "noise", (0.01, 0.02, 0.03, 0.05, 0.07), _impulse_noise),
    Corruption("gaussian_blur", "blur", (0.4, 0.6, 0.7, 0.8, 1.0), _gaussian_blur),
    Corruption("brightness", "weather", (0.05, 0.1, 0.15, 0.2, 0.3), _brightness),
    Corruption("contrast", "digital", (0.75, 0.5, 0.4, 0.3, 0.15), _contrast),
    Corruption("pixelate", "digital", (0.95, 0.9, 0.85, 0.75, 0.65), _pixelate, True),
    Corruption("jpeg_compression", "digital", (80, 65, 58, 50, 40), _jpeg, True),
):
    CORRUPTIONS.register(_c.name, _c)


def list_corruptions() -> list[str]:
    return CORRUPTIONS.names()


def corrupt(images: np.ndarray, name: str, severity: int, seed: int = 0) -> np.ndarray:
    """``images`` (uint8, ``(n, height, width, channels)``) with corruption ``name`` at
    ``severity`` 1-5; the random ones draw from ``seed``. Returns uint8."""
    corruption = CORRUPTIONS.lookup(name)
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {list(SEVERITIES)}. Received: {severity!r}")
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(
            f"images must be uint8 of shape (n, height, width, channels). Received: "
            f"{images.dtype} {images.shape}"
        )
    level = corruption.levels[severity - 1]
    rng = np.random.default_rng(seed)
    if corruption.on_uint8:
        return corruption.apply(images, level, rng).astype(np.uint8)
    out = corruption.apply(images.astype(np.float64) / 255.0, level, rng)
    # Rounded to 8 bits (the reference's uint8 cast truncates: at most one level apart).
    return np.round(np.clip(out, 0.0, 1.0) * 255.0).astype(np.uint8)

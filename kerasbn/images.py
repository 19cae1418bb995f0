"""Decoding PNG / JPEG images with Pillow: the one place kerasbn opens an image file."""

from __future__ import annotations

import io
import os
import warnings

import numpy as np

from kerasbn._limits import require_regular_file

__all__ = ["IMAGE_SUFFIXES", "PIXEL_BUDGET", "decode_image"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
# kerasbn's own limit, below Pillow's decompression-bomb one (about 89 million): an
# image near Pillow's limit still took 2.6 GB once converted. 40 million pixels is a
# large camera photo (a 4K frame is 8.3 million); kerasbn's nets take 32x32.
PIXEL_BUDGET = 40_000_000


def decode_image(
    source: bytes | str | os.PathLike, mode: str | None = None, max_pixels: int | None = None
) -> np.ndarray:
    """A uint8 array (H, W) or (H, W, C) from encoded bytes or an image file.

    ``mode``: a Pillow mode to convert to (``"L"``, ``"RGB"``); ``None`` keeps L, RGB and
    RGBA images as they are and converts any other mode (palette, 16-bit, CMYK) to RGB,
    or RGBA where it has an alpha band. ``max_pixels``: refuse larger images from their
    header, before decoding; without it, Pillow's own decompression-bomb limit
    (``Image.MAX_IMAGE_PIXELS``, about 89 million pixels) is enforced as an error.

    Raises:
        ValueError: the input is not a readable image (Pillow's reason in the message).
    """
    from PIL import Image, UnidentifiedImageError

    max_pixels = PIXEL_BUDGET if max_pixels is None else max_pixels
    # A FIFO or device given as a path would be read forever: regular files only.
    opened = io.BytesIO(source) if isinstance(source, bytes) else require_regular_file(source)
    try:
        with warnings.catch_warnings():
            # Pillow only warns between its limit and twice that: make it an error.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(opened)
        with img:
            if img.width * img.height > max_pixels:
                raise ValueError(
                    f"{img.width}x{img.height} pixels, more than the {max_pixels:,} allowed"
                )
            if mode is None and img.mode not in ("L", "RGB", "RGBA"):
                mode = "RGBA" if "A" in img.getbands() else "RGB"
            if mode is not None:
                img = img.convert(mode)
            return np.asarray(img, dtype=np.uint8)
    except (
        UnidentifiedImageError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
        OSError,
        SyntaxError,
        ValueError,
    ) as exc:
        raise ValueError(str(exc)) from exc

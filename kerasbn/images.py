"""Decoding PNG / JPEG images with Pillow: the one place kerasbn opens an image file."""

from __future__ import annotations

import io
import os

import numpy as np

__all__ = ["IMAGE_SUFFIXES", "decode_image"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def decode_image(source: bytes | str | os.PathLike, mode: str | None = None) -> np.ndarray:
    """A uint8 array (H, W) or (H, W, C) from encoded bytes or an image file.

    ``mode``: a Pillow mode to convert to (``"L"``, ``"RGB"``); ``None`` keeps L, RGB and
    RGBA images as they are and converts any other mode (palette, 16-bit, CMYK) to RGB,
    or RGBA where it has an alpha band.

    Raises:
        ValueError: the input is not a readable image (Pillow's reason in the message).
    """
    from PIL import Image, UnidentifiedImageError

    opened = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        with Image.open(opened) as img:
            if mode is None and img.mode not in ("L", "RGB", "RGBA"):
                mode = "RGBA" if "A" in img.getbands() else "RGB"
            if mode is not None:
                img = img.convert(mode)
            return np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ValueError(str(exc)) from exc

"""How many weights a saved model's config declares, worked out from the config alone,
so that :mod:`kerasbn.loading` can refuse a file that would allocate gigabytes before
Keras builds a single layer."""

from __future__ import annotations

import math

from kerasbn.saving import ModelFileError

__all__ = ["declared_parameters"]


def _pair(value, default) -> tuple[int, int]:
    value = default if value is None else value
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and v > 0 for v in pair):
        raise ModelFileError(f"a window or stride {value!r} is not two positive sizes")
    return pair


def _spatial(size: int, window: int, stride: int, padding: str) -> int:
    if padding == "same":
        return -(-size // stride)
    return max(0, (size - window) // stride + 1)


def declared_parameters(config: dict) -> int:
    """The number of weights a model config declares, worked out from the config alone
    (no layer is built), nested models (``Sequential`` or functional, at any depth)
    included. The allow-list has no merge layers, so a model is a chain and the layers'
    shapes follow one another in order."""
    return _walk(config, (), depth=0)[0]


_MAX_NESTING = 32  # models inside models; a kerasbn net has one level


def _layers(config) -> list:
    layers = config.get("config", {}).get("layers", []) if isinstance(config, dict) else []
    return layers if isinstance(layers, list) else []


def _padding(value) -> tuple[int, int]:
    """ZeroPadding2D's extra rows and columns: an int, a pair, or two pairs."""
    if isinstance(value, int):
        value = ((value, value), (value, value))
    elif isinstance(value, (list, tuple)) and all(isinstance(v, int) for v in value):
        value = [(v, v) for v in value]
    try:
        (top, bottom), (left, right) = value
    except (TypeError, ValueError):
        raise ModelFileError(f"a padding {value!r} is not two pairs of sizes") from None
    sides = (top, bottom, left, right)
    if not all(isinstance(v, int) and v >= 0 for v in sides):
        raise ModelFileError(f"a padding {value!r} is not two pairs of sizes")
    return top + bottom, left + right


def _walk(config, shape: tuple[int, ...], depth: int) -> tuple[int, tuple[int, ...]]:
    """The weights of ``config``'s layers from input ``shape``, and the output shape."""
    if depth > _MAX_NESTING:
        raise ModelFileError(f"models are nested more than {_MAX_NESTING} deep")
    total = 0
    for layer in _layers(config):
        kind = layer.get("class_name") if isinstance(layer, dict) else None
        cfg = (layer.get("config") or {}) if isinstance(layer, dict) else {}
        if kind in ("Sequential", "Functional", "Model"):
            # A model used as a layer: its weights count like its parent's.
            inner, shape = _walk(layer, shape, depth + 1)
            total += inner
        elif kind == "InputLayer":
            dims = (cfg.get("batch_shape") or [None])[1:]
            if not all(d is None or (isinstance(d, int) and d >= 0) for d in dims):
                raise ModelFileError(f"an input shape {dims!r} is not a list of sizes")
            shape = tuple(1 if d is None else d for d in dims)
        elif not shape:
            continue  # a Sequential model's layers before its input is known
        elif kind == "Conv2D":
            (kh, kw), (sh, sw) = _pair(cfg.get("kernel_size"), 1), _pair(cfg.get("strides"), 1)
            filters, padding = int(cfg.get("filters") or 0), cfg.get("padding", "valid")
            total += kh * kw * shape[-1] * filters + filters * bool(cfg.get("use_bias", True))
            shape = (
                _spatial(shape[0], kh, sh, padding),
                _spatial(shape[1], kw, sw, padding),
                filters,
            )
        elif kind == "MaxPooling2D":
            (ph, pw) = _pair(cfg.get("pool_size"), 2)
            (sh, sw), padding = _pair(cfg.get("strides"), (ph, pw)), cfg.get("padding", "valid")
            shape = (
                _spatial(shape[0], ph, sh, padding),
                _spatial(shape[1], pw, sw, padding),
                shape[2],
            )
        elif kind == "ZeroPadding2D" and len(shape) == 3:
            rows, columns = _padding(cfg.get("padding", 1))
            shape = (shape[0] + rows, shape[1] + columns, shape[2])
        elif kind == "RandomCrop" and len(shape) == 3:
            height, width = cfg.get("height"), cfg.get("width")
            if not all(isinstance(v, int) and v > 0 for v in (height, width)):
                raise ModelFileError(f"a crop of {height!r} x {width!r} is not two sizes")
            shape = (height, width, shape[2])
        elif kind == "Dense":
            units = int(cfg.get("units") or 0)
            total += shape[-1] * units + units * bool(cfg.get("use_bias", True))
            shape = (*shape[:-1], units)
        elif kind == "BatchNormalization":
            total += 4 * shape[-1]
        elif kind == "GroupNormalization":  # a scale and a shift per channel
            total += 2 * shape[-1]
        elif kind == "Flatten":
            shape = (math.prod(shape),)
        elif kind == "GlobalAveragePooling2D":
            shape = (shape[-1],)
    return total, shape

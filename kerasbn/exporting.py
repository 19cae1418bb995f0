"""Exporting a saved model for serving, through Keras' own ``model.export``.

* ``tf_saved_model``: a TensorFlow SavedModel (:func:`kerasbn.saving.export_saved_model`);
* ``onnx``: one ``.onnx`` file. Keras exports ONNX from its torch backend (its other
  backends need ``tf2onnx``), so :func:`export_onnx` runs there; the command line
  starts itself on that backend when it is not already on it;
* ``litert``: one ``.tflite`` file (Keras needs ``ai-edge-litert``).

Every format takes uint8 images (N, H, W, C) and returns class probabilities, computed
in inference mode (BN moving statistics, no Dropout). The model is loaded with every
check of :func:`kerasbn.load_model`. A missing optional library is named with the pip
extra that installs it.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from kerasbn._io import atomic_path, check_output_folder
from kerasbn.registry import check_choice

if TYPE_CHECKING:  # Keras loads with the first export, not with --help
    import keras

__all__ = [
    "EXPORT_FORMATS",
    "EXTRAS",
    "ExportDependencyError",
    "export_litert",
    "export_onnx",
    "missing_modules",
]

EXPORT_FORMATS = ("tf_saved_model", "onnx", "litert")
# format -> (pip extra, the modules it needs)
EXTRAS = {
    "onnx": ("onnx", ("torch", "onnx", "onnxscript")),
    "litert": ("litert", ("ai_edge_litert",)),
}


class ExportDependencyError(RuntimeError):
    """An export format's optional library is not installed (the message names the extra)."""


def missing_modules(fmt: str) -> list[str]:
    """The modules ``fmt`` needs that are not installed (none for ``tf_saved_model``)."""
    check_choice(fmt, EXPORT_FORMATS, "format")
    needed = EXTRAS.get(fmt, ("", ()))[1]
    return [name for name in needed if importlib.util.find_spec(name) is None]


def _require(fmt: str) -> None:
    missing = missing_modules(fmt)
    if missing:
        extra = EXTRAS[fmt][0]
        raise ExportDependencyError(
            f"Exporting to {fmt} needs {', '.join(missing)}, which is not installed. "
            f'Install it with: pip install "kerasbn[{extra}]" (in a source checkout: '
            f'pip install -e ".[{extra}]")'
        )


def _new_file(out: str | os.PathLike, suffix: str) -> Path:
    out = Path(out)
    if out.suffix != suffix:
        raise ValueError(f"The {suffix} export is one file; name it *{suffix}. Received: {out}")
    if os.path.lexists(out):
        raise FileExistsError(f"{out} exists; pass a new file name.")
    check_output_folder(out.parent, "--out")
    return out


def _load(model: keras.Model | str | os.PathLike) -> keras.Model:
    import keras

    if isinstance(model, keras.Model):
        return model
    from kerasbn.loading import load_model

    return load_model(model)


# The names of the exported model's input and output, as in the SavedModel's signature.
INPUT_NAME = "images"
OUTPUT_NAME = "probabilities"


def _signature(model: keras.Model) -> list:
    import keras

    shape = (None, *model.input_shape[1:])
    return [keras.InputSpec(shape=shape, dtype="uint8", name=INPUT_NAME)]


def _name_onnx_output(path: Path) -> None:
    """Rename the graph's output to :data:`OUTPUT_NAME` (torch's exporter numbers it,
    e.g. ``227``), in place: every node reading or writing that value follows."""
    import onnx

    proto = onnx.load(str(path))
    graph = proto.graph
    (output,) = graph.output
    old = output.name
    if old == OUTPUT_NAME:
        return
    for node in graph.node:
        node.output[:] = [OUTPUT_NAME if name == old else name for name in node.output]
        node.input[:] = [OUTPUT_NAME if name == old else name for name in node.input]
    output.name = OUTPUT_NAME
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))


def export_onnx(model: keras.Model | str | os.PathLike, out: str | os.PathLike) -> Path:
    """Write ``out`` (``*.onnx``). Runs on Keras' torch backend (``KERAS_BACKEND=torch``);
    ``python -m kerasbn.export --format onnx`` arranges that by itself."""
    import keras

    _require("onnx")
    if keras.backend.backend() != "torch":
        raise ExportDependencyError(
            "ONNX export runs on Keras' torch backend: set KERAS_BACKEND=torch, or use "
            "`python -m kerasbn.export --format onnx`, which starts itself there. "
            f"Received backend: {keras.backend.backend()}"
        )
    out = _new_file(out, ".onnx")
    model = _load(model)
    with atomic_path(out, suffix=".onnx") as tmp, warnings.catch_warnings():
        # torch's tracer warns about every shape check it freezes; the shapes are fixed.
        warnings.simplefilter("ignore")
        model.export(str(tmp), format="onnx", input_signature=_signature(model), verbose=False)
        _name_onnx_output(tmp)
    return out


def export_litert(model: keras.Model | str | os.PathLike, out: str | os.PathLike) -> Path:
    """Write ``out`` (``*.tflite``), a LiteRT (TensorFlow Lite) model."""
    _require("litert")
    out = _new_file(out, ".tflite")
    model = _load(model)
    with atomic_path(out, suffix=".tflite") as tmp:
        model.export(str(tmp), format="litert", input_signature=_signature(model), verbose=False)
    return out

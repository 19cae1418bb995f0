"""``python -m kerasbn.export --model M --out OUT [--format F]``: a model for serving.

Formats (:mod:`kerasbn.exporting`): ``tf_saved_model`` (default; a new folder),
``onnx`` (``OUT.onnx``; run on Keras' torch backend, which this command starts by
itself), ``litert`` (``OUT.tflite``). Each takes uint8 images (N, H, W, C) and returns
class probabilities.

Exit status: 0 written, 2 a missing or refused model, an existing ``--out``, or a
missing optional library (the message names the pip extra).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Sequence

from kerasbn._io import disk_full, disk_full_text
from kerasbn.cli._parser import ArgumentParser
from kerasbn.exporting import (
    EXPORT_FORMATS,
    ExportDependencyError,
    export_litert,
    export_onnx,
    missing_modules,
)
from kerasbn.saving import ModelFileError, export_saved_model

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m kerasbn.export", description=__doc__)
    parser.add_argument("--model", required=True, help="a .keras file or a saved model's name")
    parser.add_argument(
        "--out", required=True, help="a new folder (tf_saved_model) or file (.onnx, .tflite)"
    )
    parser.add_argument("--format", default="tf_saved_model", choices=EXPORT_FORMATS)
    args = parser.parse_args(argv)
    import keras  # after argparse: --help answers without TensorFlow

    if args.format == "onnx" and keras.backend.backend() != "torch":
        return _onnx_on_torch(parser, args)
    export = {"tf_saved_model": export_saved_model, "onnx": export_onnx, "litert": export_litert}
    try:
        out = export[args.format](args.model, args.out)
    except (
        FileNotFoundError,
        FileExistsError,
        PermissionError,
        ModelFileError,
        ExportDependencyError,
        ValueError,
    ) as exc:
        parser.exit(2, f"error: {exc}\n")
    except Exception as exc:  # a full disk; TensorFlow's writers raise no OSError
        if not disk_full(exc):
            raise
        line = f"error: {disk_full_text(exc)}. Free some space and export again; nothing was left."
        parser.exit(2, line + "\n")
    what = {"tf_saved_model": "SavedModel (signature 'serve')"}.get(args.format, args.format)
    print(f"[kerasbn] {what} written to {out}: uint8 images -> class probabilities")
    return 0


def _onnx_on_torch(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """Keras exports ONNX from its torch backend: run this command again there."""
    missing = missing_modules("onnx")
    if missing:
        parser.exit(
            2,
            f"error: Exporting to onnx needs {', '.join(missing)}, which is not installed. "
            'Install it with: pip install "kerasbn[onnx]" (in a source checkout: '
            'pip install -e ".[onnx]")\n',
        )
    command = [sys.executable, "-m", "kerasbn.export", "--model", args.model]
    command += ["--out", args.out, "--format", "onnx"]
    return subprocess.run(command, env={**os.environ, "KERAS_BACKEND": "torch"}).returncode

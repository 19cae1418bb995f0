"""``python -m kerasbn.export --model M.keras --out DIR``: a TensorFlow SavedModel for serving.

Exit status: 0 written, 2 a missing or refused model or an existing ``--out``.

The model is loaded with every check of :func:`kerasbn.load_model`; the SavedModel's
``serve`` function takes uint8 images (N, H, W, C) and returns class probabilities.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from kerasbn._io import disk_full
from kerasbn.saving import ModelFileError, export_saved_model

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kerasbn.export", description=__doc__)
    parser.add_argument("--model", required=True, help="the .keras file to export")
    parser.add_argument("--out", required=True, help="a new folder for the SavedModel")
    args = parser.parse_args(argv)
    try:
        out = export_saved_model(args.model, args.out)
    except (FileNotFoundError, FileExistsError, PermissionError, ModelFileError) as exc:
        parser.exit(2, f"error: {exc}\n")
    except OSError as exc:
        if not disk_full(exc):
            raise
        parser.exit(2, f"error: {exc}. Free some space and export again; nothing was left.\n")
    print(f"[kerasbn] SavedModel written to {out} (signature 'serve': uint8 images -> probs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

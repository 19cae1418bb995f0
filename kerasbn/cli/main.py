"""``kerasbn <command> ...`` (and ``python -m kerasbn``): one entry point for every
command line. It imports the chosen command's module only, after reading its name, so
``kerasbn --help`` and ``kerasbn <command> --help`` answer without loading TensorFlow.

Exit status: the command's own; 2 for an unknown command (the valid ones are listed).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

__all__ = ["COMMANDS", "main"]

# name -> (module with main(argv), one line for the overview)
COMMANDS = {
    "compare": ("kerasbn.cli.compare", "train variants on a data set; tables, verdicts, models"),
    "tune": ("kerasbn.cli.tune", "tune each variant's learning rate, weight decay, ... first"),
    "results": ("kerasbn.cli.results", "print, archive or regenerate the published tables"),
    "zoo": ("kerasbn.cli.zoo", "list the trained models; ship one with the repository"),
    "predict": ("kerasbn.cli.predict", "classify image files with a trained model"),
    "export": ("kerasbn.cli.export", "export a model to SavedModel, ONNX or LiteRT"),
    "experiments": ("kerasbn.cli.experiments", "run a named BatchNorm experiment"),
    "bench": ("kerasbn.cli.bench", "the benchmark: speed, memory, time to accuracy"),
}


def _overview() -> str:
    width = max(map(len, COMMANDS))
    lines = [
        "usage: kerasbn <command> [options]   (kerasbn <command> --help for its options)",
        "",
        "Batch Normalization and Dropout, measured on real images: train variants, judge",
        "the differences, and reuse the trained models.",
        "",
        "commands:",
        *(f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()),
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        sys.stdout.write(_overview())
        return 0 if argv else 2
    if argv[0] == "--version":
        from kerasbn import __version__

        print(f"kerasbn {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        sys.stderr.write(
            f"error: unknown command. Valid commands are: {', '.join(COMMANDS)}. "
            f"Received: {name!r}\n"
        )
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    # Usage lines then read `kerasbn <command>`, as typed.
    sys.argv = [f"kerasbn {name}", *rest]
    return module.main(rest)

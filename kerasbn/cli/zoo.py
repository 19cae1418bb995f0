"""``python -m kerasbn.zoo list [DIR]``: the saved models of a folder, as a table.

Exit status: 0 (an empty or missing folder lists no models and says how to make some),
2 a corrupted manifest.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import pandas as pd

from kerasbn.saving import ModelFileError, list_models

__all__ = ["build_parser", "main", "zoo_table"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m kerasbn.zoo",
        description="List the saved kerasbn models of a folder (from its manifest.json).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    listing = sub.add_parser("list", help="one row per saved model")
    listing.add_argument("folder", nargs="?", default="saved_models", help="default: %(default)s")
    return parser


def zoo_table(models: pd.DataFrame) -> str:
    """Name, data set, variant, parameters, test accuracy and creation time, one row per
    model, in the style of KerasHub's preset tables; ``load_model(name)`` loads a name."""

    def column(name: str) -> pd.Series:
        return models[name] if name in models else pd.Series([None] * len(models))

    shown = pd.DataFrame(
        {
            "name": column("file").str.removesuffix(".keras"),
            "data set": column("dataset"),
            "variant": column("variant"),
            "parameters": [f"{p:,.0f}" if pd.notna(p) else "—" for p in column("parameters")],
            "test accuracy": [
                f"{100 * a:.2f}%" if pd.notna(a) else "—" for a in column("test_accuracy")
            ],
            "created": column("created"),
        }
    )
    return shown.to_markdown(index=False, disable_numparse=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        models = list_models(args.folder)
    except ModelFileError as exc:
        parser.exit(2, f"error: {exc}\n")
    if models.empty:
        print(
            f"No saved models in {args.folder}. `python -m kerasbn.compare` saves one per "
            "variant there."
        )
        return 0
    print(zoo_table(models.sort_values("file")))
    print(f"\nLoad one by name: kerasbn.load_model(NAME) (from {args.folder}/).", file=sys.stderr)
    return 0

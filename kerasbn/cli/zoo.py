"""``python -m kerasbn.zoo list [DIR]``: the saved models of a folder, as a table (by
default ``saved_models/`` and the repository's shipped ``zoo/``);
``python -m kerasbn.zoo ship MODEL [MODEL ...] [--into zoo]``: copy saved models, with
their cards and manifest entries, into the shipped folder.

Exit status: 0 (an empty or missing folder lists no models and says how to make some),
2 a corrupted manifest or a model that cannot be shipped.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from kerasbn._paths import SHIPPED_MODEL_FOLDER
from kerasbn.cli._parser import ArgumentParser

if TYPE_CHECKING:
    import pandas as pd


__all__ = ["build_parser", "main", "zoo_table"]


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="python -m kerasbn.zoo",
        description="List the saved kerasbn models of a folder (from its manifest.json).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    listing = sub.add_parser("list", help="one row per saved model")
    listing.add_argument(
        "folder", nargs="?", help="default: saved_models/, then the shipped zoo/ of a clone"
    )
    ship = sub.add_parser("ship", help="copy saved models into the shipped folder")
    ship.add_argument("models", nargs="+", help=".keras files saved by kerasbn")
    ship.add_argument("--into", default=str(SHIPPED_MODEL_FOLDER), help="default: zoo/")
    return parser


def zoo_table(models: pd.DataFrame) -> str:
    """Name, data set, variant, parameters, test accuracy and creation time, one row per
    model, in the style of KerasHub's preset tables; ``load_model(name)`` loads a name."""
    import pandas as pd

    from kerasbn._text import markdown_safe

    def column(name: str) -> pd.Series:
        # A manifest is a file: its texts are printed as inert Markdown, with no escape
        # sequence reaching the terminal.
        values = models[name] if name in models else pd.Series([None] * len(models))
        return values.map(lambda v: markdown_safe(v) if isinstance(v, str) else v)

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
    from kerasbn._paths import model_folders
    from kerasbn.saving import ModelFileError, copy_model, list_models

    if args.command == "ship":
        try:
            for model in args.models:
                print(copy_model(model, args.into))
        except (ModelFileError, OSError) as exc:
            parser.exit(2, f"error: {exc}\n")
        return 0
    if args.folder and not Path(args.folder).is_dir():
        parser.exit(
            2,
            f"error: {args.folder} is not a folder. Pass a folder of saved models (e.g. "
            "saved_models), or none for saved_models/ and the shipped zoo/.\n",
        )
    folders = [args.folder] if args.folder else model_folders()
    shown = 0
    for folder in folders:
        try:
            models = list_models(folder)
        except ModelFileError as exc:
            parser.exit(2, f"error: {exc}\n")
        if models.empty:
            continue
        if shown:
            print()
        print(f"{folder}/\n")
        print(zoo_table(models.sort_values("file")))
        shown += 1
    if not shown:
        print(
            f"No saved models in {' or '.join(map(str, folders))}. `python -m kerasbn.compare` "
            "saves one per variant in saved_models/."
        )
        return 0
    print("\nLoad one by name: kerasbn.load_model(NAME).", file=sys.stderr)
    return 0

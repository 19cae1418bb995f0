"""``python -m kerasbn.predict``: the flags, calling :mod:`kerasbn.inference`.

Exit status: 0 all predicted, 1 some inputs failed (the rest predicted), 2 bad usage or
a refused model.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from kerasbn.cli._parser import ArgumentParser

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="python -m kerasbn.predict",
        description="Predict classes of PNG/JPEG images, .npy arrays or folders of them "
        "with a saved kerasbn model.",
    )
    parser.add_argument(
        "--model",
        required=True,
        help="a .keras file, e.g. saved_models/mnist-bn.keras, or a saved model's name (mnist-bn)",
    )
    parser.add_argument("inputs", nargs="+", help="image files, .npy arrays or folders")
    parser.add_argument("--top-k", type=int, default=3, help="classes shown per image")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--resize", action="store_true", help="resize images to the model size")
    parser.add_argument("--allow-h5", action="store_true", help="also load legacy .h5 models")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Exit status: 0 all predicted, 1 some inputs failed (the rest predicted), 2 bad usage
    or a refused model."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # Keras and the model code: after argparse, so --help answers at once.
    from kerasbn.inference import (
        class_names_for,
        expand_inputs,
        predict,
        prepare_images,
        printable,
        read_input_file,
    )
    from kerasbn.loading import load_model, resolve_model_name
    from kerasbn.saving import ModelFileError

    if args.top_k < 1:
        parser.exit(2, f"error: --top-k must be at least 1. Received: {args.top_k}\n")
    args.model = str(resolve_model_name(args.model))  # a bare name: saved_models/NAME.keras
    try:
        model = load_model(args.model, allow_h5=args.allow_h5)
    except (FileNotFoundError, ModelFileError) as exc:
        parser.exit(2, f"error: {exc}\n")
    input_shape = tuple(model.input_shape[1:])
    names = class_names_for(args.model, int(model.output_shape[-1]))

    files, errors = expand_inputs(args.inputs)
    results = []
    for path in files:
        try:
            batch = prepare_images(read_input_file(path), input_shape, resize=args.resize)
        except ValueError as exc:
            errors.append({"input": printable(str(path)), "error": str(exc)})
            continue
        ids, probs = predict(model, batch).top_k(args.top_k)
        for i in range(len(batch)):
            name = printable(str(path))
            label = name if len(batch) == 1 else f"{name}[{i}]"
            results.append(
                {
                    "input": label,
                    "top_k": [
                        {"class_id": int(c), "class_name": names[int(c)], "probability": float(p)}
                        for c, p in zip(ids[i], probs[i], strict=True)
                    ],
                }
            )
    if args.json:
        report = {"model": args.model, "predictions": results, "errors": errors}
        print(json.dumps(report, indent=2))
    else:
        width = max([len(r["input"]) for r in results] + [5])
        if results:
            print(f"{'input':<{width}}  top {args.top_k} classes (probability), best first")
        for r in results:
            cells = "  ".join(
                f"{printable(t['class_name'])} {100 * t['probability']:6.2f}%" for t in r["top_k"]
            )
            print(f"{r['input']:<{width}}  {cells}")
    for err in errors:
        # Which file failed, first: with many inputs the reason alone does not say.
        print(f"error: {err['input']}: {err['error']}", file=sys.stderr)
    return 1 if errors else 0

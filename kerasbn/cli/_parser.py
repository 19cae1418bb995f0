"""The argument parser every command line uses: argparse's, with a usage error as one
line that names the fix (``error: argument --epochs: invalid int value: 'abc'; see
python -m kerasbn.compare --help``), not its whole usage block, and exit status 2."""

from __future__ import annotations

import argparse

__all__ = [
    "ArgumentParser",
    "add_data_flags",
    "add_dataset_flags",
    "check_limit",
    "prepare_dataset",
]


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str):
        self.exit(2, f"error: {message}; see {self.prog} --help\n")


def add_dataset_flags(parser: argparse.ArgumentParser) -> None:
    """``--dataset`` and ``--variants``, as every command that trains variants takes them."""
    from kerasbn.data.catalog import list_datasets
    from kerasbn.presets import IMAGE_SIZES
    from kerasbn.variants import DEFAULT_VARIANTS, list_variants

    parser.add_argument(
        "--dataset",
        default="mnist",
        help=f"one of {', '.join(list_datasets())}; or your own images: a folder with one "
        "sub-folder per class (or train/<class>/ and test/<class>/), or tfds:NAME for a "
        "TensorFlow Datasets image-classification set",
    )
    parser.add_argument(
        "--image-size",
        type=int,
        choices=IMAGE_SIZES,
        help="your own images' side in pixels (default: the size nearest their median)",
    )
    parser.add_argument(
        "--variants",
        default=DEFAULT_VARIANTS,
        help=f"comma list of {', '.join(list_variants())} (NAME(field=value,...) and "
        "NAME@post change one), or 'all' (all but gn and ln; default: %(default)s)",
    )


def add_data_flags(parser: argparse.ArgumentParser) -> None:
    """``--data-dir`` and ``--limit``: where the images come from and how many train."""
    parser.add_argument(
        "--data-dir",
        help="local data folder (default: $KERASBN_DATA_DIR, else tensorflow-datasets)",
    )
    parser.add_argument("--limit", type=int, help="use only the first N training examples")


def check_limit(limit: int | None) -> None:
    """``--limit``, checked before any data is loaded (``Dataset.limit`` checks it again
    against the data's size)."""
    if limit is not None and limit <= 0:
        raise ValueError(f"--limit must be a positive number of examples. Received: {limit}")


def prepare_dataset(args: argparse.Namespace) -> str:
    """``args.dataset`` as a registered name (:func:`kerasbn.data.user.resolve_dataset`),
    so that your own set's recipe and template exist before the config is built."""
    from kerasbn.data.user import resolve_dataset

    return resolve_dataset(args.dataset, args.image_size)

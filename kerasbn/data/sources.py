"""Where a data set comes from: local files, tensorflow-datasets, or a bundled copy.

In order:

1. a bundled source (``digits`` from scikit-learn): always offline;
2. an explicit ``data_dir`` argument, or the ``KERASBN_DATA_DIR`` environment variable:
   local files in one of the data set's formats (:mod:`kerasbn.data.formats`), nothing
   is downloaded;
3. tensorflow-datasets: its local cache, or a download when the machine is online.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from kerasbn.data.catalog import DataError, DatasetInfo
from kerasbn.data.formats import FORMATS, RawData

__all__ = ["BUNDLED", "DATA_DIR_ENV", "OFFLINE_ENV", "is_online", "read_source", "resolve_data_dir"]

DATA_DIR_ENV = "KERASBN_DATA_DIR"
OFFLINE_ENV = "KERASBN_OFFLINE"
# scikit-learn has no official test split for digits; a fixed permutation makes one.
DIGITS_TEST_SEED = 20240522


def _candidate_paths(data_dir: Path, info: DatasetInfo) -> list[Path]:
    paths = [data_dir / name for name in info.local_dirs]
    # The directory itself may be the data set's folder.
    paths.append(data_dir)
    return [p for p in paths if p.exists()]


def _read_local(info: DatasetInfo, data_dir: Path) -> RawData:
    if not data_dir.exists():
        raise DataError(
            f"Data directory {data_dir} does not exist. Fix --data-dir / {DATA_DIR_ENV}, "
            "or unset it to use tensorflow-datasets."
        )
    formats = [FORMATS[name] for name in info.formats]
    for path in _candidate_paths(data_dir, info):
        for local_format in formats:
            found = local_format.find(path, info)
            if found is not None:
                return local_format.load(found, info)
    looked = ", ".join(str(data_dir / d) for d in info.local_dirs) or str(data_dir)
    wanted = [f.describe(info) for f in formats]
    wanted = ", ".join(wanted[:-1]) + " or " + wanted[-1] if len(wanted) > 1 else wanted[0]
    raise DataError(
        f"No {info.name} data found in {data_dir} (looked in {looked} and the folder "
        f"itself). Put {wanted} there, or unset --data-dir / {DATA_DIR_ENV} to use "
        "tensorflow-datasets."
    )


def is_online(host: str = "storage.googleapis.com", port: int = 443, timeout: float = 3.0) -> bool:
    """Whether the TFDS download host answers within a few seconds (no hang when offline;
    ``KERASBN_OFFLINE=1`` says no without asking)."""
    if os.environ.get(OFFLINE_ENV):
        return False
    answer: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                answer.append(True)
        except OSError:
            answer.append(False)

    # The connect timeout does not cover the DNS lookup, which can stall far longer on
    # an offline machine; a daemon thread with a deadline bounds the whole probe.
    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 1.0)
    return bool(answer and answer[0])


def _read_tfds(info: DatasetInfo) -> RawData:
    try:
        import tensorflow_datasets as tfds
    except ImportError as exc:  # pragma: no cover - it is a dependency
        raise DataError(
            f"tensorflow-datasets is not installed, and no local {info.name} data was given. "
            f"Install it (pip install tensorflow-datasets) or set {DATA_DIR_ENV}."
        ) from exc
    builder = tfds.builder(info.tfds_name)
    if not builder.is_prepared():
        if not is_online():
            raise DataError(
                f"No local copy of {info.name}: tensorflow-datasets has none prepared in "
                f"{builder.data_dir} and this machine is offline. Point --data-dir or "
                f"{DATA_DIR_ENV} at local files (see the README), or go online once so "
                "tensorflow-datasets can download it."
            )
        builder.download_and_prepare()
    splits = tfds.as_numpy(builder.as_dataset(split=["train", "test"], batch_size=-1))
    (train, test) = splits
    return RawData(
        train["image"],
        train["label"],
        test["image"],
        test["label"],
        source=f"tensorflow-datasets {info.tfds_name} ({builder.data_dir})",
    )


def _read_sklearn_digits(info: DatasetInfo) -> RawData:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    # 0..16 grey levels -> 0..255 so every data set shares the uint8 convention.
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    labels = bunch.target.astype(np.int64)
    order = np.random.default_rng(DIGITS_TEST_SEED).permutation(len(images))
    test_idx, train_idx = order[: info.num_test], np.sort(order[info.num_test :])
    return RawData(
        images[train_idx],
        labels[train_idx],
        images[test_idx],
        labels[test_idx],
        source="scikit-learn load_digits (bundled)",
    )


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path | None:
    """``data_dir``, else ``$KERASBN_DATA_DIR``, else ``None`` (tensorflow-datasets)."""
    if data_dir is None:
        data_dir = os.environ.get(DATA_DIR_ENV) or None
    return Path(data_dir).expanduser() if data_dir is not None else None


def _read_user(info: DatasetInfo) -> RawData:
    from kerasbn.data.user import user_raw_data

    return user_raw_data(info)


# Sources that ship with an installed package, by the catalog's ``bundled`` name; "user":
# a folder or tfds:NAME read when it was registered (kerasbn.data.user).
BUNDLED: dict[str, Callable[[DatasetInfo], RawData]] = {
    "sklearn": _read_sklearn_digits,
    "user": _read_user,
}


def read_source(info: DatasetInfo, data_dir: Path | None) -> RawData:
    """The data set's train and test arrays from the first source that applies."""
    if info.bundled is not None:
        return BUNDLED[info.bundled](info)
    if data_dir is not None:
        return _read_local(info, data_dir)
    return _read_tfds(info)

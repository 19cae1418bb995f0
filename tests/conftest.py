"""Shared fixtures: tiny real data (scikit-learn's digits, slices of ../shared/data)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import kerasbn  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _shared_data_dir() -> Path | None:
    for candidate in (os.environ.get("KERASBN_DATA_DIR"), REPO.parent / "shared" / "data"):
        if candidate and (Path(candidate) / "mnist").is_dir():
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """The real data sets (../shared/data or $KERASBN_DATA_DIR); skipped where absent."""
    path = _shared_data_dir()
    if path is None:
        pytest.skip("real data not found: set KERASBN_DATA_DIR to a folder with mnist/ etc.")
    return path


@pytest.fixture(scope="session")
def digits() -> kerasbn.Dataset:
    """scikit-learn's bundled 8x8 digits: real, tiny and always offline."""
    return kerasbn.load_dataset("digits")


@pytest.fixture(scope="session")
def mnist_slice(shared_data_dir) -> kerasbn.Dataset:
    """The first 512 real MNIST training images (val and test kept whole)."""
    # A smaller test set keeps evaluation quick; it is still real MNIST.
    return kerasbn.load_dataset("mnist", shared_data_dir).limit(512, val=1000, test=1000)


@pytest.fixture(scope="session")
def quick_run(tmp_path_factory):
    """``quick_run(name)``: experiment ``name``'s ``--quick`` run, run once per session
    and shared by the generic and the experiment's own tests (each costs seconds)."""
    from kerasbn.experiments import get_experiment, run_experiment

    runs = {}

    def get(name: str):
        if name not in runs:
            data_dir = None
            if get_experiment(name).needs_data:
                data_dir = _shared_data_dir()
                if data_dir is None:
                    pytest.skip(f"{name} needs the real data: set KERASBN_DATA_DIR")
            out = tmp_path_factory.mktemp(name) / "run"
            runs[name] = run_experiment(name, quick=True, out_dir=out, data_dir=data_dir)
        return runs[name]

    return get


@pytest.fixture(scope="session")
def digits_three_seeds(digits, tmp_path_factory):
    """A finished digits comparison, 3 seeds of ``base``, ``bn`` and ``bn-copy``, shared
    by the verdict tests and the time-to-accuracy test (it takes tens of seconds)."""
    from kerasbn import Variant, compare, default_config, register_variant
    from kerasbn.variants import unregister_variant

    # SGD at 0.3 leaves the plain net at chance on digits (about 10%) while BN trains
    # (84-89% after 3 epochs): a real advantage. "bn-copy" is "bn" under another name.
    copy = register_variant(Variant("bn-copy", "bn under another name", batch_norm=True))
    config = default_config("digits", epochs=3, verbose=0, optimizer="sgd", learning_rate=0.3)
    try:
        result = compare(
            digits,
            ["base", "bn", copy],
            config,
            seeds=3,
            out_dir=tmp_path_factory.mktemp("verdicts") / "out",
            save_models=None,
        )
    finally:
        unregister_variant("bn-copy")
    return result, config


@pytest.fixture
def quick_config():
    """A factory for tiny, silent training configs."""

    def make(dataset: str = "digits", **overrides) -> kerasbn.TrainConfig:
        return kerasbn.default_config(dataset, **{"epochs": 2, "verbose": 0, **overrides})

    return make


class _Messages(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def messages():
    """The kerasbn logger's messages during the test (CLIs may have turned its
    propagation to the root logger off, so caplog would miss them)."""
    handler, logger = _Messages(), logging.getLogger("kerasbn")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler.lines
    logger.removeHandler(handler)
    logger.setLevel(level)

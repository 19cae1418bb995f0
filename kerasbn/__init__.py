"""kerasbn: a Keras model zoo for studying Batch Normalization and Dropout on real data.

The flat public API::

    import kerasbn
    data = kerasbn.load_dataset("mnist", data_dir="...")
    result = kerasbn.train(data, "bn+dropout", kerasbn.default_config("mnist", epochs=2))
    kerasbn.evaluate(result.model, data)
    kerasbn.compare("digits", "base,bn,bn+dropout")
"""

# First: TensorFlow reads its CPU settings when it is imported (see _tfenv).
from kerasbn import _tfenv  # noqa: F401, I001

from kerasbn._lock import FolderLockedError
from kerasbn._logging import configure_logging
from kerasbn.architectures import Architecture, get_architecture, list_architectures
from kerasbn.comparison import CompareResult, compare, load_comparison
from kerasbn.data import DataError, Dataset, get_dataset_info, list_datasets, load_dataset
from kerasbn.inference import Prediction, predict, prepare_images
from kerasbn.models import build_model
from kerasbn.presets import Preset, get_preset
from kerasbn.report import plot_curves, summarize, summary_markdown
from kerasbn.loading import load_model
from kerasbn.saving import (
    ModelFileError,
    export_saved_model,
    list_models,
    read_sidecar,
    save_model,
)

# Through the old module name: importing it here first keeps ``kerasbn.train`` the
# function even after a user's ``from kerasbn.train import TrainConfig``.
from kerasbn.train import (
    TrainConfig,
    TrainResult,
    default_config,
    evaluate,
    get_strategy,
    train,
)
from kerasbn.training.distribute import DistributionError
from kerasbn.variants import Variant, get_variant, list_variants, register_variant

__version__ = "0.1.0"


__all__ = [
    "Architecture",
    "CompareResult",
    "DataError",
    "DistributionError",
    "FolderLockedError",
    "ModelFileError",
    "Dataset",
    "Prediction",
    "Preset",
    "TrainConfig",
    "TrainResult",
    "Variant",
    "build_model",
    "compare",
    "configure_logging",
    "default_config",
    "evaluate",
    "export_saved_model",
    "get_architecture",
    "get_dataset_info",
    "get_preset",
    "get_strategy",
    "get_variant",
    "list_architectures",
    "list_datasets",
    "list_models",
    "list_variants",
    "load_dataset",
    "load_comparison",
    "load_model",
    "plot_curves",
    "predict",
    "prepare_images",
    "register_variant",
    "read_sidecar",
    "save_model",
    "summarize",
    "summary_markdown",
    "train",
]

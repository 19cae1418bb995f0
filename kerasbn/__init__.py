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

import importlib

# The public names and the modules that define them. They are imported on first use
# (PEP 562), so `import kerasbn` and every command's --help start without TensorFlow.
_EXPORTS = {
    "kerasbn._lock": ["FolderLockedError"],
    "kerasbn._logging": ["configure_logging"],
    "kerasbn.architectures": ["Architecture", "get_architecture", "list_architectures"],
    "kerasbn.comparison": ["CompareResult", "compare", "load_comparison"],
    "kerasbn.data": ["DataError", "Dataset", "get_dataset_info", "list_datasets", "load_dataset"],
    "kerasbn.inference": ["Prediction", "predict", "prepare_images"],
    "kerasbn.models": ["build_model"],
    "kerasbn.presets": ["Preset", "get_preset"],
    "kerasbn.plots": ["plot_curves"],
    "kerasbn.report": ["summarize", "summary_markdown"],
    "kerasbn.loading": ["load_model"],
    "kerasbn.saving": [
        "ModelFileError",
        "export_saved_model",
        "list_models",
        "read_sidecar",
        "save_model",
    ],
    "kerasbn.training": [
        "TrainConfig",
        "TrainResult",
        "default_config",
        "evaluate",
        "get_strategy",
        "train",
    ],
    "kerasbn.training.distribute": ["DistributionError"],
    "kerasbn.variants": ["Variant", "get_variant", "list_variants", "register_variant"],
}
_HOME = {name: module for module, names in _EXPORTS.items() for name in names}

# `kerasbn.train` is the function; the old module of that name (kerasbn/train.py, a lazy
# alias of kerasbn.training) is imported now so that a later `from kerasbn.train import
# TrainConfig` finds it loaded and leaves the package's `train` alone.
import kerasbn.train  # noqa: E402, F401

del globals()["train"]


def __getattr__(name: str):
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module 'kerasbn' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


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

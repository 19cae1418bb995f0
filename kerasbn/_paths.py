"""Folders of a source checkout that code finds relative to the package (no imports, so
command lines can name them in --help without loading Keras)."""

import os
from pathlib import Path

__all__ = [
    "CACHE_ENV",
    "DEFAULT_MODEL_FOLDER",
    "SHIPPED_MODEL_FOLDER",
    "cache_root",
    "model_folders",
]

# kerasbn's per-machine cache (decoded user data sets, the --jobs auto outcome).
CACHE_ENV = "KERASBN_CACHE"

# Where compare saves models and a bare model name is looked up first.
DEFAULT_MODEL_FOLDER = "saved_models"

# Models shipped with the repository (the published comparisons' seed-0 models): found
# by name after a clone, when saved_models/ has no model of that name.
SHIPPED_MODEL_FOLDER = Path(__file__).resolve().parents[1] / "zoo"


def model_folders() -> list[Path]:
    """Where a bare model name is looked up, in order: the user's ``saved_models/``,
    then the shipped ``zoo/`` of a clone (when there is one)."""
    folders = [Path(DEFAULT_MODEL_FOLDER)]
    if SHIPPED_MODEL_FOLDER.is_dir():
        folders.append(SHIPPED_MODEL_FOLDER)
    return folders


def cache_root() -> Path:
    """``$KERASBN_CACHE``, else ``~/.cache/kerasbn``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "kerasbn")

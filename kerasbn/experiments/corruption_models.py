"""Where corruption-robustness's trained models come from: ``models_dir`` (models that
``compare --save-models`` or the user saved), a unit an earlier (resumed) run kept, or
training now, kept as a unit with its sidecar and model card.

``config`` is the experiment's :class:`~kerasbn.experiments.corruption.Config`.
"""

from __future__ import annotations

import logging
from pathlib import Path

from kerasbn.comparison_run import model_metadata
from kerasbn.loading import load_model
from kerasbn.saving import save_model
from kerasbn.training import default_config, train

__all__ = ["trained_model"]

log = logging.getLogger(__name__)


def _saved_model(config, variant: str, seed: int):
    """Seed ``seed``'s model of ``variant`` in ``models_dir``."""
    folder = Path(config.models_dir)
    names = [f"{config.dataset}-{variant}-seed{seed}.keras"]
    if seed == 0:
        names.append(f"{config.dataset}-{variant}.keras")  # what compare --save-models writes
    for name in names:
        if (folder / name).exists():
            return load_model(folder / name, check_manifest=False)
    raise ValueError(
        f"{folder / names[0]} does not exist: run python -m kerasbn.compare --dataset "
        f"{config.dataset} --variants {variant} --save-models {config.models_dir} first "
        "(it saves seed 0; name other seeds' models <dataset>-<variant>-seed<k>.keras), "
        f"set seeds=1, or leave models_dir out to train here. Received: {folder / names[0]}"
    )


def trained_model(config, variant: str, seed: int, data, units: Path):
    """The variant's trained inference model for ``seed``: from ``models_dir``, from an
    earlier (resumed) run's unit, or trained now and kept as a unit."""
    if config.models_dir is not None:
        return _saved_model(config, variant, seed)
    unit = units / f"{variant}-seed{seed}.keras"
    if unit.exists():
        log.info("%s seed %d: trained earlier, read back", variant, seed)
        return load_model(unit, check_manifest=False)
    settings = {"seed": seed, "verbose": 0}
    if config.epochs is not None:
        settings["epochs"] = config.epochs
    if config.train_images is not None:
        data = data.limit(min(config.train_images, len(data.x_train)))
    result = train(data, variant, default_config(config.dataset, **settings))
    model = result.inference_model()
    figures = {"params": result.params, "best_val_accuracy": result.history["val_accuracy"].max()}
    seconds = float(result.history["train_seconds"].sum())
    metadata = model_metadata(
        data, result.variant, result.config, figures, units, seconds, "kerasbn.experiments"
    )
    save_model(model, unit, metadata)
    return model

"""TensorBoard logs of a comparison: per-epoch scalars through Keras' own ``TensorBoard``
callback, and one HParams record per run so that ``tensorboard --logdir <out>/tensorboard``
compares the variants side by side (the HParams tab's table and parallel coordinates).

Layout: ``<out>/tensorboard/<dataset>-<variant>-seed<k>/{train,validation}/`` (Keras'
callback: loss, accuracy, learning rate, the model graph) and, in the run's own folder,
its hyperparameters with the run's final metrics; ``<out>/tensorboard/`` holds the
HParams experiment config (which hyperparameters and metrics exist). Writing summaries
needs TensorFlow (the default backend); without it, the logs are skipped with one
message and training goes on.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import keras

__all__ = ["HPARAM_METRICS", "hparams_of", "tensorboard_callback", "write_hparams"]

log = logging.getLogger(__name__)

# Run metrics shown in the HParams table: runs.csv column -> TensorBoard tag.
HPARAM_METRICS = {
    "test_accuracy": "hparams/test_accuracy",
    "best_val_accuracy": "hparams/best_val_accuracy",
    "final_train_val_gap": "hparams/train_val_gap",
}


def _summary_api():
    try:
        import tensorflow as tf
        from tensorboard.plugins.hparams import api as hp
    except ImportError as exc:
        log.info("no TensorBoard logs: %s (install tensorflow and tensorboard)", exc)
        return None
    return tf, hp


def tensorboard_callback(log_dir: Path) -> keras.callbacks.Callback | None:
    """Keras' ``TensorBoard`` callback writing epoch scalars and the graph to ``log_dir``
    (``None`` when TensorFlow's summary API is missing)."""
    if _summary_api() is None:
        return None
    return keras.callbacks.TensorBoard(
        log_dir=str(log_dir), histogram_freq=0, write_graph=True, update_freq="epoch"
    )


def hparams_of(variant, config) -> dict:
    """The hyperparameters that tell one run from another in a comparison."""
    return {
        "variant": variant.name,
        "batch_norm": bool(variant.batch_norm),
        "block_dropout": float(variant.block_dropout),
        "head_dropout": float(variant.head_dropout),
        "optimizer": config.optimizer,
        "learning_rate": float(config.learning_rate),
        "batch_size": int(config.batch_size),
        "epochs": int(config.epochs),
        "seed": int(config.seed),
    }


def write_hparams(root: Path, run: str, hparams: dict, row: dict) -> None:
    """The run's hyperparameters and final metrics, in ``root/run``, and (once) the
    experiment config in ``root``: which hyperparameters and metrics the table shows."""
    api = _summary_api()
    if api is None:
        return
    tf, hp = api
    if not list(root.glob("events.out.tfevents*")):  # one experiment config per folder
        with tf.summary.create_file_writer(str(root)).as_default():
            hp.hparams_config(
                hparams=[hp.HParam(name) for name in hparams],
                metrics=[hp.Metric(tag, display_name=name) for name, tag in HPARAM_METRICS.items()],
            )
    with tf.summary.create_file_writer(str(root / run)).as_default():
        hp.hparams(hparams, trial_id=run)
        for name, tag in HPARAM_METRICS.items():
            value = row.get(name)
            if value is not None and math.isfinite(float(value)):
                tf.summary.scalar(tag, float(value), step=int(row.get("epochs", 0)))

"""TensorBoard logs of a comparison: per-epoch scalars through Keras' own ``TensorBoard``
callback, and one HParams record per run so that ``tensorboard --logdir <out>/tensorboard``
compares the variants side by side (the HParams tab's table and parallel coordinates).

Layout: ``<out>/tensorboard/<variant>/seed<k>/{train,validation}/`` (Keras' callback:
loss, accuracy, learning rate, the model graph) and, in the run's own folder, its
hyperparameters with the run's final metrics; ``<out>/tensorboard/`` holds the HParams
experiment config, rewritten when the comparison ends with each hyperparameter's domain
(the values the runs used), so the columns that vary are shown without ticking them.
Writing summaries needs TensorFlow (the default backend); without it, the logs are
skipped with one message and training goes on.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import keras

__all__ = [
    "HPARAM_METRICS",
    "hparams_of",
    "run_folder",
    "tensorboard_callback",
    "write_hparams",
    "write_hparams_config",
]

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


def run_folder(variant: str, seed: int) -> str:
    """A run's folder under ``<out>/tensorboard``: ``<variant>/seed<k>``, so TensorBoard's
    run list groups a variant's seeds (and their train / validation logs) together."""
    return f"{variant}/seed{seed}"


def hparams_of(variant, config) -> dict:
    """The hyperparameters that tell one run from another in a comparison."""
    return {
        "variant": variant.name,
        "batch_norm": bool(variant.batch_norm),
        "norm": variant.norm if variant.batch_norm else "none",
        "block_dropout": float(variant.block_dropout),
        "head_dropout": float(variant.head_dropout),
        "optimizer": config.optimizer,
        "learning_rate": float(config.learning_rate),
        "batch_size": int(config.batch_size),
        "epochs": int(config.epochs),
        "seed": int(config.seed),
    }


def write_hparams(root: Path, run: str, hparams: dict, row: dict) -> None:
    """The run's hyperparameters and final metrics, in ``root/run``. The experiment
    config (which hyperparameters and metrics the table shows) is written once all runs
    are known, by :func:`write_hparams_config`; until then a provisional one without
    domains stands in, so a folder looked at mid-comparison still shows its runs."""
    api = _summary_api()
    if api is None:
        return
    tf, hp = api
    if not _config_files(root):
        with tf.summary.create_file_writer(str(root)).as_default():
            hp.hparams_config(hparams=[hp.HParam(name) for name in hparams], metrics=_metrics(hp))
    with tf.summary.create_file_writer(str(root / run)).as_default():
        hp.hparams(hparams, trial_id=run)
        for name, tag in HPARAM_METRICS.items():
            value = row.get(name)
            if value is not None and math.isfinite(float(value)):
                tf.summary.scalar(tag, float(value), step=int(row.get("epochs", 0)))


def _config_files(root: Path) -> list[Path]:
    return sorted(root.glob("events.out.tfevents*")) if root.is_dir() else []


def _metrics(hp) -> list:
    return [hp.Metric(tag, display_name=name) for name, tag in HPARAM_METRICS.items()]


def _domain(hp, values: list):
    """TensorBoard's domain of one hyperparameter over the values the runs used: the
    values themselves (strings, booleans, whole numbers, up to 12 distinct numbers), else
    the interval they span. A domain of one value reads as "does not vary"; any other
    column is shown without ticking it."""
    distinct = sorted(set(values), key=lambda v: (str(type(v)), v))
    if all(isinstance(v, bool) for v in distinct):
        return hp.Discrete(distinct)
    if all(isinstance(v, str) for v in distinct):
        return hp.Discrete(distinct)
    numbers = [float(v) for v in distinct]
    if all(isinstance(v, int) for v in distinct) or len(numbers) <= 12:
        return hp.Discrete(numbers)
    return hp.RealInterval(min(numbers), max(numbers))


# The columns that say which run a row is: always shown.
_IDENTITY = ("variant", "seed")
# Settings that follow from the variant (its BN and Dropout): shown only on request,
# so that the five columns TensorBoard shows by default are the informative ones.
_FROM_VARIANT = ("batch_norm", "norm", "block_dropout", "head_dropout")


def _write_config(root: Path, tf, hp, runs: list[dict]) -> None:
    """The experiment config, with each hyperparameter's domain and TensorBoard's
    ``differs`` flag set on the columns to show. TensorBoard's HParams table shows the
    first five columns with ``differs`` set (then by name) and hides the rest until
    ticked; ``hp.hparams_config`` leaves the flag unset on every column, so the table
    showed the first five names alphabetically (``batch_norm`` ... ``head_dropout``)
    and hid ``variant`` and ``seed``. Here it is set on the run's identity (variant,
    seed) and on every other setting that varies between runs (a tuned learning rate),
    not on those that follow from the variant."""
    from tensorboard.plugins.hparams import plugin_data_pb2, summary_v2

    names = list(dict.fromkeys(name for run in runs for name in run))
    hparams, shown = [], set(_IDENTITY)
    for name in names:
        values = [run[name] for run in runs if name in run]
        hparams.append(hp.HParam(name, _domain(hp, values)))
        if name not in _FROM_VARIANT and len(set(values)) > 1:
            shown.add(name)
    summary = summary_v2.hparams_config_pb(hparams=hparams, metrics=_metrics(hp))
    value = summary.value[0]
    data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
    for info in data.experiment.hparam_infos:
        info.differs = info.name in shown
    value.metadata.plugin_data.content = data.SerializeToString()
    with tf.summary.create_file_writer(str(root)).as_default():
        tf.summary.experimental.write_raw_pb(summary.SerializeToString(), step=0)


def write_hparams_config(root: Path, runs: list[dict]) -> None:
    """Replace ``root``'s experiment config with one declaring each hyperparameter's
    domain over ``runs`` (each run's hyperparameters, as given to :func:`write_hparams`):
    varied columns (variant, seed, a tuned rate) are then visible by default."""
    api = _summary_api()
    if api is None or not runs:
        return
    tf, hp = api
    for old in _config_files(root):  # only the root's own file, not the runs' folders
        old.unlink()
    _write_config(root, tf, hp, runs)

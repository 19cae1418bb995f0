"""The library versions recorded with every result, saved model and experiment."""

from __future__ import annotations

import platform

__all__ = ["library_versions"]


def library_versions(devices: bool = False) -> dict:
    """Python, Keras (and its backend), NumPy, pandas and, where installed, TensorFlow.

    ``devices=True`` adds TensorFlow's logical devices (what the run trained on).
    """
    import keras
    import numpy
    import pandas

    versions = {
        "python": platform.python_version(),
        "keras": keras.__version__,
        "backend": keras.backend.backend(),
        "numpy": numpy.__version__,
        "pandas": pandas.__version__,
    }
    try:
        import tensorflow as tf
    except ImportError:  # the JAX / PyTorch GPU machine has no TensorFlow
        return versions
    versions["tensorflow"] = tf.__version__
    if devices:
        versions["devices"] = [d.name for d in tf.config.list_logical_devices()]
    return versions

"""Moved to :mod:`kerasbn.training`; this name keeps old imports working
(``from kerasbn.train import TrainConfig``).

Every attribute is looked up in :mod:`kerasbn.training` when first asked for, so
importing this module (``kerasbn/__init__.py`` does) costs nothing.
"""

import importlib


def __getattr__(name: str):
    return getattr(importlib.import_module("kerasbn.training"), name)

"""Moved to :mod:`kerasbn.training`; this name keeps old imports working
(``from kerasbn.train import TrainConfig``)."""

from kerasbn.training import *  # noqa: F403
from kerasbn.training import __all__  # noqa: F401

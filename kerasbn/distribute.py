"""Moved to :mod:`kerasbn.training.distribute`; this name keeps old imports working."""

from kerasbn.training.distribute import *  # noqa: F403
from kerasbn.training.distribute import __all__  # noqa: F401

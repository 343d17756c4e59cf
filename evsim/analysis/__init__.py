"""Analysis on recorded outputs: trajectories (anytime accuracy, oracle cutoff time), cutoff
replay and calibration, dataset evaluation (:mod:`evsim.analysis.evaluate`)."""

from .calibration import *  # noqa: F401,F403
from .calibration import __all__ as _calibration_all
from .trajectory import *  # noqa: F401,F403
from .trajectory import __all__ as _trajectory_all

__all__ = _trajectory_all + _calibration_all

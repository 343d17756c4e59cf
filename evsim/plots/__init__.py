"""Figures: spike rasters, output evidence and accuracy against latency (:mod:`.figures`)."""

from .figures import *  # noqa: F401,F403
from .figures import __all__  # noqa: F401

"""Former home of all figures, kept so that ``from evsim.plots.figures import ...`` still works;
the code now lives in :mod:`.style`, :mod:`.raster`, :mod:`.evidence`, :mod:`.accuracy`,
:mod:`.classes` and :mod:`.report`."""

from . import __all__  # noqa: F401
from . import *  # noqa: F401,F403

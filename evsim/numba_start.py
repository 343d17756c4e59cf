"""How the command line starts numba: only what loading evsim's kernels from numba's on-disk cache
needs, and numba's BLAS probe answered "no".

A command-line process runs no numba code but evsim's, and with a warm cache it compiles nothing:
every kernel is loaded from the cache. Numba prepares for compiling all the same. The first load
of a cached function calls the target context's ``refresh()``, which imports and installs every
implementation registry numba has (arrays, typed containers, random, cffi, ...: 0.15–0.2 s of an
evaluation's start-up, a quarter of it) although a cached function is machine code that needs
none of them: what it needs of ``refresh()`` is numba's runtime (the allocator behind arrays made
inside a kernel), initialised here. A compilation (a cold cache, a new signature) still refreshes
the contexts first, as numba's compiler always does (``CompilerBase.__init__``).

One of those registries, ``numba.np.arraymath``, probes for BLAS at import by importing
``scipy.linalg.cython_blas``, SciPy's whole ``linalg`` package (0.15–0.2 s more). The probe only
chooses how ``np.convolve``/``np.correlate`` are compiled (no evsim kernel uses them, nor any BLAS
or LAPACK function); numba imports SciPy again on demand when a kernel calls ``np.dot`` or
``np.linalg``. When a compilation loads the registries in a command-line process, the probe is
answered "no BLAS".

Only the command line calls :func:`start_numba` (an API user's process is never touched), and only
for the numba versions whose internals this was written against (0.59–0.68); elsewhere, or with
``EVSIM_NUMBA_PLAIN=1`` in the environment, numba starts as usual. Results do not depend on it
(tests/test_cli.py runs the same commands both ways).
"""

from __future__ import annotations

import os
import sys

__all__ = ["start_numba"]

#: the numba versions whose cache loading (``numba.core.caching.Cache.load_overload``) and context
#: refresh (``numba.core.cpu.CPUContext.load_additional_registries``) this module was checked against
CHECKED_NUMBA = ((0, 59), (0, 68))

_STARTED = {"done": False}


class _NoScipyBlas:
    """An import hook that refuses ``scipy.linalg.cython_blas`` (numba's BLAS probe)."""

    def find_spec(self, name, path=None, target=None):
        if name in ("scipy.linalg", "scipy.linalg.cython_blas"):
            raise ImportError(f"{name}: not imported by the evsim command line (numba's BLAS probe)")
        return None


def _numba_version() -> tuple[int, int]:
    import numba

    try:
        return tuple(int(part) for part in numba.__version__.split(".")[:2])
    except ValueError:
        return (0, 0)


def start_numba() -> bool:
    """Set this process up to load evsim's cached kernels without preparing to compile (see the
    module docstring). Returns whether it did (False: numba starts as usual)."""
    if _STARTED["done"]:
        return True
    if os.environ.get("EVSIM_NUMBA_PLAIN") == "1":
        return False
    low, high = CHECKED_NUMBA
    if not low <= _numba_version() <= high:
        return False
    from numba.core import caching, cpu
    from numba.core.runtime import rtsys

    needed = (hasattr(caching.Cache, name) for name in ("load_overload", "_load_overload",
                                                          "_guard_against_spurious_io_errors"))
    if not all(needed) or not hasattr(rtsys, "initialize") or not hasattr(cpu.CPUContext, "load_additional_registries"):
        return False  # not the internals this was written against
    plain_load_registries = cpu.CPUContext.load_additional_registries

    def load_registries(self):
        if "numba.np.arraymath" in sys.modules or "scipy.linalg" in sys.modules:
            return plain_load_registries(self)  # loaded already: nothing to answer
        hook = _NoScipyBlas()
        sys.meta_path.insert(0, hook)
        try:
            return plain_load_registries(self)
        finally:
            sys.meta_path.remove(hook)

    def load_overload(self, sig, target_context):
        # numba's own version calls target_context.refresh() here; a cached function needs the
        # runtime of it, nothing else
        rtsys.initialize(target_context)
        with self._guard_against_spurious_io_errors():
            return self._load_overload(sig, target_context)

    cpu.CPUContext.load_additional_registries = load_registries
    caching.Cache.load_overload = load_overload
    _STARTED["done"] = True
    return True

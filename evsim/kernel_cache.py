"""numba's on-disk cache of evsim's kernels, kept consistent with evsim's sources.

numba checks a cached function against the modification time and size of the one file that
defines it, not against the files of the functions it calls and inlines. After an edit of
``evsim/kernels/neuron.py`` alone, a kernel of ``evsim/sim/clock.py`` that inlines
:func:`~evsim.kernels.neuron.spike_count` would still load from the cache with the old code, and an
editable install updated by ``git pull`` rewrites only the files that changed. So evsim keeps one
stamp of all its sources (names, sizes, modification times) in its cache folder and, when the
stamp differs, removes its cached kernels before any is loaded: they are compiled again from the
current sources. Checking costs one ``stat`` per source file (well under a millisecond). The stamp
is the listing itself, a few kilobytes, not a digest of it: loading hashlib (OpenSSL) would cost
10 ms at every ``import evsim``, while the command line cannot yet take a Ctrl-C quietly.

Only the cache next to the sources (``__pycache__`` folders, numba's default when they are
writable) is managed; a read-only installation caches elsewhere and its files change only when it
is reinstalled as a whole.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
STAMP = PACKAGE / "__pycache__" / "evsim-kernel-sources.stamp"


def _python_files(folder: Path):
    """(relative name, stat) of every ``.py`` file below ``folder`` (``__pycache__`` skipped)."""
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False) and entry.name != "__pycache__":
                yield from _python_files(Path(entry.path))
            elif entry.name.endswith(".py") and entry.is_file():
                yield os.path.relpath(entry.path, PACKAGE), entry.stat()


def sources_stamp() -> str:
    """The name, size and modification time of every ``.py`` file of evsim, one line each."""
    return "".join(f"{name}\t{st.st_size}\t{st.st_mtime_ns}\n" for name, st in sorted(_python_files(PACKAGE)))


def cached_kernel_files() -> list:
    """numba's cache files (index ``.nbi`` and data ``.nbc``) in evsim's ``__pycache__`` folders."""
    return [p for folder in PACKAGE.rglob("__pycache__") for pattern in ("*.nbi", "*.nbc")
            for p in folder.glob(pattern)]


def ensure_consistent() -> bool:
    """Remove evsim's cached kernels when a source changed since they were cached (see the
    module docstring). Returns whether any were removed. Never raises: a cache that cannot be
    managed here is left to numba."""
    try:
        stamp = sources_stamp()
        try:
            if STAMP.read_text() == stamp:
                return False
        except OSError:
            pass
        if not os.access(PACKAGE, os.W_OK):
            return False
        removed = False
        for path in cached_kernel_files():
            try:
                path.unlink()
                removed = True
            except OSError:
                pass
        STAMP.parent.mkdir(exist_ok=True)
        tmp = STAMP.with_name(f"{STAMP.name}.{os.getpid()}.tmp")
        tmp.write_text(stamp)
        os.replace(tmp, STAMP)
        return removed
    except OSError:
        return False

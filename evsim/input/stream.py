"""Reading long recordings in chunks (docs/SEMANTICS.md#long-recordings).

:func:`open_stream` returns an :class:`EventStream`: an iterable of
:data:`~evsim.input.events.EVENT_DTYPE` chunks of at most about ``chunk_events`` events, in file
order, each converted and checked exactly as :func:`~evsim.input.recordings.read_recording`
converts and checks a whole file (fields by name, polarity normalised over the *whole file*,
``0 <= t < 2**53`` us, non-negative addresses, non-decreasing timestamps within and *across*
chunks). Error messages name the event by its index in the whole recording, as the whole read
does. Memory stays bounded by the chunk size whatever the recording's length: nothing is
mapped or kept beyond the current chunk.

How each format is read in chunks:

=================  ==============================================================================
``npy``            the ``.npy`` header is parsed (``numpy.lib.format``), then fixed-size blocks
                   are read with plain file reads (a memory map would leave every page it
                   touched resident and counted in the process's memory until the kernel
                   reclaims it)
``hdf5``           slices of the ``t, x, y, p`` datasets or of the compound ``events`` dataset
                   (h5py reads only the slice)
``aedat`` 1/2      header parsed, then fixed-size blocks of the body (8- or 6-byte records)
``aedat`` 3        one packet at a time
``aedat4``         the ``aedat`` decoder's packets of the first event stream, one at a time
``dat``/``evt2``   ``expelliarmus``'s chunked reader (``Wizard.read_chunk``'s loop, with the
``evt3``           decoder's status checked after every chunk: an error is never a silent end)
``nmnist``/``npz`` read whole (their files are small, or compressed), then handed out in chunks
=================  ==============================================================================

Polarity: as the whole read, a ``p`` field holding exactly two distinct values is mapped to
{0, 1} (smaller value 0), over the whole file: for ``npy``/``hdf5`` a first pass reads the ``p``
column (it stops at the third distinct value). The decoded formats produce {0, 1} by
construction; a decoded chunk with another value is refused.

Sorting (``--sort``) needs the whole recording and is not available on a stream.
"""

from __future__ import annotations

import contextlib
import os
import re
import struct
from pathlib import Path

import numpy as np

from ..errors import RecordingError
from .events import _FIELD_LIMITS, EVENT_DTYPE, _check_range, _first_bad, _integral_column, check_sorted

#: Events per chunk unless told otherwise (about 13 MiB of EVENT_DTYPE).
DEFAULT_CHUNK_EVENTS = 1 << 20

#: ``evsim run`` reads a recording file at least this large in chunks (when it needs nothing
#: whole: event mode, no transform, no --sort, no --raster); smaller files are read whole.
STREAM_FILE_BYTES = 64 << 20

_INDEX = re.compile(r"\bevent (\d+)\b")


def shift_index(exc: RecordingError, offset: int) -> RecordingError:
    """The same error with the first ``event N`` of its message renumbered ``N + offset`` (a
    chunk's local index made global); its path and field are kept."""
    if not offset:
        return exc
    text = _INDEX.sub(lambda m: f"event {int(m.group(1)) + offset}", str(exc), count=1)
    new = RecordingError(text)
    new.path, new.field = exc.path, exc.field
    return new


def check_chunk(events: np.ndarray, offset: int, t_prev: int | None, *, source: str | None = None,
                check_values: bool = True) -> None:
    """The checks of :func:`~evsim.input.events.check_sorted` on one chunk of a recording whose
    first event is event ``offset`` of the whole, and ``t_prev`` the last timestamp of the chunk
    before (None for the first): messages name events by their index in the whole recording."""
    try:
        check_sorted(events, source=source, check_values=check_values)
    except RecordingError as exc:
        raise shift_index(exc, offset) from None
    if t_prev is not None and events.shape[0] and int(events["t"][0]) < t_prev:
        raise RecordingError(
            f"timestamps are not sorted: event {offset} has t={int(events['t'][0])} us after t={t_prev} us "
            "(pass sort=True / --sort to sort them)", path=source, field="t")


class EventStream:
    """The events of one recording file, in chunks (see the module docstring).

    Iterating opens the file anew each time (a stream can be simulated twice). After a complete
    iteration, ``n_events``, ``t_first_us`` and ``t_last_us`` describe the whole recording.

    Attributes:
        path: the file.
        format: canonical format name (``"npy"``, ``"evt3"``, ``"aedat2"``, ...), known once opened.
        sensor_size: ``(W, H, P)`` when the file declares it, else None (known once opened).
        chunk_events: the chunk length asked for (some readers hand out packets or decoder
            chunks of other lengths; none exceeds a bounded size).
    """

    def __init__(self, path, *, format: str | None = None, chunk_events: int = DEFAULT_CHUNK_EVENTS):
        from .recordings import check_regular_file, detect_format

        if int(chunk_events) < 1:
            raise RecordingError("chunk length must be >= 1 event", path=str(path))
        self.path = str(path)
        self.chunk_events = int(chunk_events)
        self._asked = detect_format(path, format)
        self.format = self._asked
        self.sensor_size = None
        self.n_events = None
        self.t_first_us = None
        self.t_last_us = None
        check_regular_file(self.path)

    def __iter__(self):
        _fix_mmap_threshold()
        offset, t_prev, first = 0, None, None
        for chunk in self._raw_chunks():
            check_chunk(chunk, offset, t_prev, source=self.path)
            n = int(chunk.shape[0])
            if n:
                first = int(chunk["t"][0]) if first is None else first
                t_prev = int(chunk["t"][-1])
                offset += n
                yield chunk
        self.n_events, self.t_first_us, self.t_last_us = offset, first, t_prev

    # ------------------------------------------------------------------------------------
    def _raw_chunks(self):
        """Converted chunks (EVENT_DTYPE, values and polarity as the whole read), unchecked order."""
        from . import recordings as r

        fmt = self._asked
        p = Path(self.path)
        if fmt in ("aedat", "dat"):
            head = r._peek(p, 16)
            if head.startswith(b"#!AER-DAT4"):
                fmt = "aedat4"
            elif head.startswith(b"#!AER-DAT") and fmt == "dat":
                fmt = "aedat"
        family = fmt.split("-")[0]
        reader = {"npy": self._npy, "hdf5": self._hdf5, "aedat": self._aedat, "aedat4": self._aedat4,
                  "dat": self._prophesee, "raw": self._prophesee, "evt2": self._prophesee,
                  "evt3": self._prophesee}.get(family, self._whole)
        try:
            yield from reader(p, fmt)
        except RecordingError:
            raise
        except (ValueError, TypeError, OverflowError, IndexError, KeyError, struct.error, MemoryError) as exc:
            raise RecordingError(f"cannot decode as {self.format}: {r._one_line(exc)}", path=self.path) from None

    def _whole(self, p: Path, fmt: str):
        from .recordings import _read

        events, self.sensor_size, self.format = _read(p, fmt)
        for start in range(0, events.shape[0], self.chunk_events):
            yield events[start:start + self.chunk_events]

    # -- numpy ---------------------------------------------------------------------------
    def _npy(self, p: Path, fmt: str):
        from .recordings import _structured

        self.format = "npy"
        with _open(p, self.path) as fh:
            dtype, count, start = _npy_header(fh, self.path)
            _structured(np.zeros(0, dtype=dtype), self.path, "the array")
            mapping = self._polarity_map(dtype, lambda: _npy_blocks(fh, dtype, count, start, self.chunk_events))
            offset = 0
            for block in _npy_blocks(fh, dtype, count, start, self.chunk_events):
                yield self._convert(block, mapping, offset)
                offset += block.shape[0]

    # -- HDF5 ----------------------------------------------------------------------------
    def _hdf5(self, p: Path, fmt: str):
        import h5py

        from . import recordings as r

        self.format = "hdf5"
        try:
            f = h5py.File(p, "r")
        except Exception as exc:
            raise RecordingError(f"cannot read HDF5: {r._one_line(exc)}", path=self.path) from None
        with f:
            node = f.get("events")
            if isinstance(node, h5py.Dataset):
                if node.dtype.names is None:
                    raise RecordingError("HDF5 dataset 'events' is not a compound (structured) dataset", path=self.path)
                if node.ndim != 1:
                    raise RecordingError(f"HDF5 dataset 'events' must be 1-D (shape {node.shape})", path=self.path)
                n = node.shape[0]
                dtype = node.dtype
                self.sensor_size = r._hdf5_size(self.path, node, f)

                def blocks():
                    for i in range(0, n, self.chunk_events):
                        yield node[i:i + self.chunk_events]

                def p_blocks():
                    for i in range(0, n, self.chunk_events):
                        yield np.asarray(node.fields("p")[i:i + self.chunk_events]) if "p" in dtype.names else None
            else:
                group = node if isinstance(node, h5py.Group) else f
                where = "group 'events'" if group is node else "the top level"
                if not ("t" in group and "x" in group):
                    present = ", ".join(sorted(group.keys())) or "nothing"
                    raise RecordingError(
                        f"HDF5 file has no event data: expected datasets x, y, t, p at {where} or a "
                        f"compound dataset 'events' (found: {present})", path=self.path)
                columns = {}
                for name in ("t", "x", "y", "p"):
                    if name in group:
                        column = group[name]
                        if not isinstance(column, h5py.Dataset):
                            raise RecordingError(f"HDF5 '{name}' is not a dataset", path=self.path)
                        if sum(d > 1 for d in column.shape) > 1:  # as the whole-file reader
                            raise RecordingError(f"HDF5 '{name}' has shape {column.shape}: expected one value per "
                                                 "event (a 1-D dataset)", path=self.path)
                        columns[name] = column
                lengths = {name: col.size for name, col in columns.items()}
                if len(set(lengths.values())) > 1:
                    raise RecordingError("HDF5 event columns differ in length ("
                                         + ", ".join(f"{k}={v}" for k, v in lengths.items()) + ")", path=self.path)
                n = lengths["t"]
                dtype = np.dtype([(name, col.dtype) for name, col in columns.items()])
                self.sensor_size = r._hdf5_size(self.path, group, f)
                flat = {name: (col if col.ndim == 1 else None) for name, col in columns.items()}
                if any(v is None for v in flat.values()):  # a 2-D column: read whole (rare layout)
                    whole = {name: np.asarray(col[()]).ravel() for name, col in columns.items()}
                    flat = whole

                def blocks():
                    for i in range(0, n, self.chunk_events):
                        block = np.zeros(min(self.chunk_events, n - i), dtype=dtype)
                        for name, col in flat.items():
                            block[name] = col[i:i + self.chunk_events]
                        yield block

                def p_blocks():
                    for i in range(0, n, self.chunk_events):
                        yield np.asarray(flat["p"][i:i + self.chunk_events]) if "p" in flat else None

            mapping = self._polarity_map(dtype, p_blocks, columns_only=True)
            offset = 0
            for block in blocks():
                yield self._convert(block, mapping, offset)
                offset += block.shape[0]

    # -- AEDAT 1/2/3 ---------------------------------------------------------------------
    def _aedat(self, p: Path, fmt: str):
        from . import recordings as r

        with _open(p, self.path) as fh:
            version, start, lines = _aedat_header(fh, self.path)
            if version >= 4:
                yield from self._aedat4(p, "aedat4")
                return
            fh.seek(start)
            if version >= 3:
                self.format = "aedat3"
                yield from self._aedat3(fh, lines)
                return
            self.format = f"aedat{int(version)}"
            camera, (w, h) = r._aedat_camera(lines, fmt if fmt != "aedat" else None)
            self.sensor_size = (w, h, 2)
            record = np.dtype([("a", ">u4"), ("t", ">i4")]) if version >= 2 else np.dtype([("a", ">u2"), ("t", ">i4")])
            body = os.fstat(fh.fileno()).st_size - start
            if body % record.itemsize:
                raise RecordingError(
                    f"truncated AEDAT {version:g} file: {body} data bytes is not a whole number of "
                    f"{record.itemsize}-byte events", path=self.path)
            count = body // record.itemsize
            for block in _file_blocks(fh, record, count, self.chunk_events):
                yield r._aedat2_events(block, camera, w)

    def _aedat3(self, fh, lines):
        from . import recordings as r

        pos = 0
        size = None
        sources = " ".join(line.lower() for line in lines if line.lower().startswith("#source"))
        if "davis" in sources:
            size = next(((w, h, 2) for name, (w, h) in r._DAVIS_SIZES if name in sources), None)
        elif "dvs128" in sources:
            size = (128, 128, 2)
        self.sensor_size = size
        header = r._AEDAT3_PACKET
        while True:
            raw = fh.read(header.size)
            if not raw:
                return
            if len(raw) < header.size:
                raise RecordingError(f"truncated AEDAT 3 file: packet header at data byte {pos} is cut off",
                                     path=self.path)
            fields = header.unpack(raw)
            esize, capacity = fields[2], fields[5]
            if esize <= 0 or capacity < 0:
                raise RecordingError(f"malformed AEDAT 3 packet header at data byte {pos} "
                                     f"(event size {esize}, capacity {capacity})", path=self.path)
            nbytes = esize * capacity
            payload = fh.read(nbytes)
            if len(payload) < nbytes:
                raise RecordingError(f"truncated AEDAT 3 file: packet at data byte {pos} needs {nbytes} bytes, "
                                     f"{len(payload)} left", path=self.path)
            events, _ = r._decode_aedat3(memoryview(raw + payload), lines, self.path)
            pos += header.size + nbytes
            if events.shape[0]:
                yield events

    # -- AEDAT4 --------------------------------------------------------------------------
    def _aedat4(self, p: Path, fmt: str):
        from . import recordings as r
        from .events import as_events

        import aedat

        self.format = "aedat4"
        decoder = r._decode_quietly("AEDAT4", self.path, aedat.Decoder, str(p))
        streams = decoder.id_to_stream()
        ids = [i for i, s in streams.items() if s.get("type") == "events"]
        if not ids:
            raise RecordingError("AEDAT4 file has no event stream", path=self.path)
        target = min(ids)
        stream = streams[target]
        width, height = stream.get("width"), stream.get("height")
        if isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0:
            self.sensor_size = (width, height, 2)
        iterator = iter(decoder)
        offset = 0
        while True:
            packet = r._decode_quietly("AEDAT4", self.path, next, iterator, None)
            if packet is None:
                return
            if packet["stream_id"] != target or "events" not in packet:
                continue
            _binary_polarity(packet["events"], self.path, offset, "AEDAT4")
            try:
                events = as_events(packet["events"], source=self.path)
            except RecordingError as exc:
                raise shift_index(exc, offset) from None
            offset += events.shape[0]
            yield events

    # -- Prophesee -----------------------------------------------------------------------
    def _prophesee(self, p: Path, fmt: str):
        from . import recordings as r
        from .events import as_events

        with _open(p, self.path) as fh:
            size_bytes = os.fstat(fh.fileno()).st_size
            block = 1 << 16
            while True:  # read until the header is over (it may be longer than a block)
                fh.seek(0)
                head = fh.read(block)
                start, lines = r._prophesee_header(head)
                if start < len(head) or len(head) >= size_bytes:
                    break
                block *= 4
        payload = size_bytes - start
        if fmt == "raw":
            fmt = r._evt_version(lines)
            if fmt is None:
                raise RecordingError("cannot tell EVT2 from EVT3: no '% evt' or '% format' line in the header "
                                     "(pass format='evt2' or 'evt3')", path=self.path)
            if fmt not in ("evt2", "evt3"):
                raise RecordingError(f"unsupported Prophesee raw encoding '{fmt}'", path=self.path)
        self.format = fmt
        self.sensor_size = r._prophesee_geometry(lines)
        if fmt == "dat":
            if payload <= 2:
                return
            if (payload - 2) % 8:
                raise RecordingError(f"truncated DAT file: {payload - 2} event bytes is not a whole number of "
                                     "8-byte events", path=self.path)
        else:
            word = 4 if fmt == "evt2" else 2
            if payload == 0:
                return
            if payload % word:
                raise RecordingError(f"truncated {fmt.upper()} file: {payload} data bytes is not a whole number "
                                     f"of {word}-byte words", path=self.path)
        offset = 0
        for arr in r._expelliarmus_chunks(p, self.path, fmt, self.chunk_events):
            _binary_polarity(arr, self.path, offset, fmt.upper())
            try:
                events = as_events(arr, source=self.path)
            except RecordingError as exc:
                raise shift_index(exc, offset) from None
            offset += events.shape[0]
            yield events

    # -- shared --------------------------------------------------------------------------
    def _polarity_map(self, dtype: np.dtype, p_blocks, columns_only: bool = False):
        """How to map the file's ``p`` values, decided over the whole file as
        :func:`~evsim.input.events.normalise_polarity` decides over a whole array: None (kept:
        the file's values lie in {0, 1}, or there are more than two, channel indices), or the
        sorted array of the file's 1 or 2 distinct values (mapped to {0, 1}: the larger one is 1;
        one value alone maps to 0)."""
        if "p" not in (dtype.names or ()) or dtype["p"].kind == "b":
            return None
        seen = np.zeros(0, dtype=dtype["p"])
        for block in p_blocks():
            values = block if columns_only else block["p"]
            if values is None:
                return None
            values = np.asarray(values)
            if values.dtype.kind not in "iuf":
                return None  # refused by the conversion of the first chunk
            seen = np.union1d(seen, np.unique(values[~np.isnan(values)] if values.dtype.kind == "f" else values))
            if seen.size > 2:
                return None
        if seen.size == 0 or (seen.min() >= 0 and seen.max() <= 1):
            return None
        return seen

    def _convert(self, block: np.ndarray, mapping, offset: int) -> np.ndarray:
        """One chunk of a user array as :func:`~evsim.input.events.as_events` converts the whole."""
        try:
            names = block.dtype.names
            fields = block.dtype.fields
            for required in ("t", "x"):
                if required not in fields:
                    raise RecordingError(f"missing field '{required}' (fields present: {', '.join(names)})",
                                         path=self.path)
            events = np.zeros(block.shape[0], dtype=EVENT_DTYPE)
            for name in ("t", "x", "y", "p"):
                if name not in fields:
                    continue
                if name == "p":
                    column = _integral_column(np.asarray(block["p"]), "p", self.path, -(2**62), 2**62)
                    if mapping is None:  # the file holds {0, 1} (or a part of it), or channels
                        events["p"] = _channels(column, self.path)
                    elif mapping.size == 2:
                        events["p"] = (column == mapping[1]).astype(np.int8)
                    else:
                        events["p"] = 0
                    continue
                events[name] = _integral_column(np.asarray(block[name]), name, self.path, 0, _FIELD_LIMITS[name])
            return events
        except RecordingError as exc:
            raise shift_index(exc, offset) from None


def open_stream(path, *, format: str | None = None, chunk_events: int = DEFAULT_CHUNK_EVENTS) -> EventStream:
    """The recording at ``path`` as an :class:`EventStream` of checked chunks.

    Raises:
        RecordingError: missing file, unknown format (when opened); bad content while iterating.
    """
    return EventStream(path, format=format, chunk_events=chunk_events)


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _open(p: Path, source: str):
    try:
        fh = open(p, "rb")
    except OSError as exc:
        from .recordings import _one_line

        raise RecordingError(f"cannot read file: {_one_line(exc)}", path=source) from None
    with fh:
        yield fh


def _npy_header(fh, source: str):
    """(dtype, count, data offset) of a 1-D ``.npy`` file, refusing what ``np.load`` would not load
    without pickles."""
    from numpy.lib import format as npf

    try:
        version = npf.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = npf.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, fortran, dtype = npf.read_array_header_2_0(fh)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except Exception as exc:
        from .recordings import _one_line

        raise RecordingError(f"cannot load .npy: {_one_line(exc)}", path=source) from None
    if dtype.hasobject:
        raise RecordingError("cannot load .npy: Object arrays cannot be loaded when allow_pickle=False", path=source)
    if dtype.names is None:
        raise RecordingError(f"the array is not a structured array with named fields t, x (y, p) "
                             f"(dtype {dtype}, shape {shape})", path=source)
    if len(shape) != 1:
        raise RecordingError(f"the array must be 1-D (shape {shape})", path=source)
    start = fh.tell()
    size = os.fstat(fh.fileno()).st_size
    if size - start < shape[0] * dtype.itemsize:
        raise RecordingError(f"cannot load .npy: the file holds {size - start} data bytes, the header announces "
                             f"{shape[0] * dtype.itemsize}", path=source)
    return dtype, int(shape[0]), start


def _npy_blocks(fh, dtype, count: int, start: int, chunk: int):
    fh.seek(start)
    yield from _file_blocks(fh, dtype, count, chunk)


def _file_blocks(fh, dtype, count: int, chunk: int):
    """``count`` records of ``dtype`` from the file's position, ``chunk`` at a time (plain reads)."""
    done = 0
    while done < count:
        n = min(chunk, count - done)
        block = np.empty(n, dtype=dtype)
        got = fh.readinto(memoryview(block.view(np.uint8)))
        if got != n * dtype.itemsize:
            raise ValueError(f"file ends {n * dtype.itemsize - got} bytes early")
        done += n
        yield block


def _aedat_header(fh, source: str):
    """(version, data start, header lines) from the first bytes of an AEDAT file (read until the
    header is over)."""
    from .recordings import _aedat_header as parse

    size = 1 << 16
    while True:
        fh.seek(0)
        head = fh.read(size)
        version, start, lines = parse(head)
        if start < len(head) or len(head) < size:
            return version, start, lines
        size *= 4  # the header goes on past this block


_MMAP_FIXED = False


def _fix_mmap_threshold() -> None:
    """Keep glibc's malloc from raising its mmap threshold. glibc serves blocks above the threshold
    with mmap and returns them to the system when freed, but after such a block is freed it raises
    the threshold to that block's size (up to 32 MiB): later chunk-sized arrays then come from
    the heap, which fragments as chunks of slightly different sizes come and go and kept growing
    with the recording (measured: 10^7 EVT3 events, peak RSS 502 MiB instead of 256). Fixing the
    threshold at glibc's default (128 KiB) keeps memory flat; blocks that large are allocated
    rarely (per chunk), so the cost is nil. Process-wide, done once; nothing elsewhere."""
    global _MMAP_FIXED
    if _MMAP_FIXED:
        return
    _MMAP_FIXED = True
    import platform

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None).mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD


def _channels(p: np.ndarray, source: str) -> np.ndarray:
    """``p`` kept as it is (bool, {0, 1} or channel indices 0..127), checked as
    :func:`~evsim.input.events.normalise_polarity` checks channel indices."""
    if p.dtype == np.bool_ or p.size == 0:
        return p.astype(np.int8)
    if p.min() < 0:
        _first_bad(p, p < 0, "negative channel index", "p", source)
    _check_range(p, "p", 0, _FIELD_LIMITS["p"], source)
    return p.astype(np.int8)


def _binary_polarity(events: np.ndarray, source: str, offset: int, what: str) -> None:
    """Decoded formats give polarities 0/1; anything else could normalise differently per chunk."""
    if "p" not in (events.dtype.fields or {}):
        return
    p = np.asarray(events["p"])
    if p.dtype.kind == "b":
        return
    if p.size and (p.min() < 0 or p.max() > 1):
        i = int(np.flatnonzero((p < 0) | (p > 1))[0])
        raise RecordingError(f"event {offset + i} has p={int(p[i])}: a streamed {what} recording must have "
                             "polarities 0/1 (read it whole)", path=source, field="p")

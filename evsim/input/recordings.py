"""Reading event recordings from the file formats users bring (docs/SEMANTICS.md#inputs).

Small pure functions in tonic's style: every reader returns a structured array of
:data:`evsim.input.events.EVENT_DTYPE` (fields read by name, polarity normalised to {0, 1}, timestamps in
integer microseconds *as decoded from the file*, never shifted to zero), and a thin
:class:`Recording` dataclass adds the metadata (path, format, sensor size, label).

Formats (``format=`` name, default extension):

================  ===========  ==========================================================
``nmnist``        ``.bin``     N-MNIST / N-Caltech101: 5-byte records, 8-bit x, 8-bit y,
                               1-bit polarity, 23-bit timestamp; ``y == 240`` records mark
                               a timestamp overflow of 2**13 us and are not events.
``aedat``         ``.aedat``   AEDAT 1.0 / 2.0 (jAER) and 3.x (cAER), detected from the
                               ``#!AER-DAT`` header line (see *AEDAT 1/2 addresses* below).
``aedat4``        ``.aedat4``  AEDAT 4 (DV), decoded with the ``aedat`` package (as
                               ``tonic.io.read_aedat4`` does); the first event stream.
``dat``           ``.dat``     Prophesee DAT, decoded with ``expelliarmus`` (a ``.dat``
                               file that starts with ``#!AER-DAT`` is read as AEDAT).
``evt2``/``evt3`` ``.raw``     Prophesee EVT 2.0 / 3.0 (``expelliarmus``); which one is read
                               from the ``% evt 2.0`` / ``% evt 3.0`` (or ``% format EVT3``)
                               header line.
``npy``/``npz``   ``.npy``     structured arrays with fields t, x (y, p); in ``.npz`` the
                  ``.npz``     array named ``events``, else the only array.
``hdf5``          ``.h5``      datasets ``t, x, y, p`` at the top level or in an ``events``
                  ``.hdf5``    group, or a compound dataset named ``events``.
================  ===========  ==========================================================

AEDAT 1/2 addresses. AEDAT 1/2 files store raw 32-bit (1.0: 16-bit) chip addresses whose layout
depends on the camera. The camera is taken from the header (``# AEChip: ...DAVIS346...``); files
that name no DAVIS chip are decoded as a DVS128, the camera of most AEDAT 2 datasets. Decoding
follows jAER's own extractors (``ch.unizh.ini.jaer.chip.retina.DVS128``, ``DavisBaseCamera``):

- DVS128: ``x = 127 - ((a >> 1) & 0x7F)``, ``y = (a >> 8) & 0x7F``, ``p = 1 - (a & 1)`` (raw 0 is
  ON); addresses with the sync bit 0x8000 or bit 31 set are special events and dropped.
- DAVIS: DVS events have bit 31 and the external-input bit 10 clear; ``x = W - 1 - ((a >> 12) &
  0x3FF)``, ``y = (a >> 22) & 0x1FF``, ``p = (a >> 11) & 1``; APS/IMU samples are dropped.

So y follows jAER (row 0 at the bottom of the image); timestamps are jAER's signed 32-bit
microseconds. Force a camera with ``format="aedat-dvs128"``,
``"aedat-davis240"`` or ``"aedat-davis346"``. AEDAT 3 polarity events are self-describing
(``x = d >> 17``, ``y = (d >> 2) & 0x7FFF``, ``p = (d >> 1) & 1``, only valid events, 64-bit
timestamps from the packet's overflow counter) and need no camera. The header and packets are
parsed here rather than with ``tonic.io.read_aedat_header_from_file`` /
``get_aer_events_from_file``: those read an LF-terminated ``#!AER-DAT3.1`` line as version 3.0
(then refuse the file) and read every AEDAT 3 packet as 8-byte polarity events, ignoring the
packet type, event size, valid bit and timestamp overflow.

Every failure (missing file, unknown extension, truncated or malformed file, missing field, a
value out of range, an exception or panic inside a third-party decoder) raises
:class:`~evsim.errors.RecordingError` with a one-line message naming the file. Whatever the
third-party decoders (``aedat`` in Rust, ``expelliarmus`` in C) print on the process's stdout or
stderr while decoding is captured at the file-descriptor level and never reaches the user; its
first line goes into the error message when decoding fails. Every decoded recording passes
:func:`~evsim.input.events.check_event_values` (``0 <= t < 2**53`` us, addresses and channels
non-negative; checked, except for N-MNIST, whose decoder cannot produce anything else).
Empty recordings (0 events) are legal.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import shutil
import stat
import struct
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numba import njit

from ..errors import OptionError, RecordingError
from .events import EVENT_DTYPE, as_events, check_event_values, check_sorted, describe, sort_events

#: Extensions recognised without an explicit ``format`` (lower case, with the dot).
SUPPORTED_EXTENSIONS = (".bin", ".aedat", ".aedat4", ".dat", ".raw", ".npy", ".npz", ".h5", ".hdf5")

_EXTENSION_FORMAT = {
    ".bin": "nmnist",
    ".aedat": "aedat",
    ".aedat4": "aedat4",
    ".dat": "dat",
    ".raw": "raw",
    ".npy": "npy",
    ".npz": "npz",
    ".h5": "hdf5",
    ".hdf5": "hdf5",
}

#: Accepted values of ``format=`` (aliases map to the canonical names).
_FORMAT_ALIASES = {
    "nmnist": "nmnist",
    "bin": "nmnist",
    "ncaltech101": "nmnist",
    "aedat": "aedat",
    "aedat2": "aedat",
    "aedat3": "aedat",
    "aedat-dvs128": "aedat-dvs128",
    "aedat-davis240": "aedat-davis240",
    "aedat-davis346": "aedat-davis346",
    "aedat4": "aedat4",
    "dat": "dat",
    "raw": "raw",
    "evt2": "evt2",
    "evt3": "evt3",
    "npy": "npy",
    "npz": "npz",
    "hdf5": "hdf5",
    "h5": "hdf5",
}

FORMATS = tuple(sorted(set(_FORMAT_ALIASES.values())))

# Sensor (W, H) of cameras named in AEDAT headers, matched on the lower-cased name.
_DAVIS_SIZES = (("davis346", (346, 260)), ("davis240", (240, 180)), ("davis640", (640, 480)),
                ("davis208", (208, 192)), ("davis128", (128, 128)))


@dataclass
class Recording:
    """One recording: its events and what the file says about them.

    Attributes:
        events: :data:`~evsim.input.events.EVENT_DTYPE` array; ``t`` in integer microseconds as decoded.
        path: the file it was read from.
        format: canonical format name (``"nmnist"``, ``"aedat2"``, ``"evt3"``, ...).
        sensor_size: ``(W, H, P)`` when the file declares it (AEDAT4 stream, AEDAT header camera,
            Prophesee header geometry, HDF5/npz ``sensor_size``), else ``None``.
        label: class label when read from a labelled dataset, else ``None``.
    """

    events: np.ndarray
    path: str
    format: str
    sensor_size: tuple[int, int, int] | None = None
    label: int | None = None

    def __len__(self) -> int:
        return int(self.events.shape[0])


# --------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------


def read_events(path, *, format: str | None = None) -> np.ndarray:
    """Read the events of a recording file.

    Args:
        path: file to read.
        format: one of :data:`FORMATS` (or an alias such as ``"h5"``); by default taken from the
            extension (see the module docstring).

    Returns:
        :data:`~evsim.input.events.EVENT_DTYPE` array in file order; timestamps in integer microseconds
        as decoded from the file (not shifted to zero, not sorted).

    Raises:
        RecordingError: the file is missing, its format unknown, or it cannot be decoded.
    """
    return _read(path, format)[0]


def read_recording(path, *, format: str | None = None, sort: bool = False) -> Recording:
    """Read a recording and validate it (docs/SEMANTICS.md#inputs).

    Args:
        path: file to read.
        format: as in :func:`read_events`.
        sort: sort events by timestamp (stable: equal timestamps keep file order) instead of
            rejecting a recording whose timestamps decrease.

    Returns:
        a :class:`Recording` (``label`` is ``None``).

    Raises:
        RecordingError: unreadable file, or timestamps that decrease while ``sort`` is false.
    """
    events, sensor_size, fmt = _read(path, format)
    source = str(path)
    if sort:
        events = sort_events(events)
    else:
        check_sorted(events, source=source, check_values=False)  # _read checked the values
    return Recording(events=events, path=source, format=fmt, sensor_size=sensor_size)


def recording_info(rec) -> dict:
    """Summary of a recording (a :class:`Recording`, or a path, read with :func:`read_recording`)
    with the names of docs/SEMANTICS.md#cli-outputs.

    Returns:
        dict with ``n_events``, ``t_first_us``, ``t_last_us`` (microseconds as decoded from the
        file), ``x_max``, ``y_max``, ``p_counts`` ({polarity: count}), plus ``path``, ``format``,
        ``sensor_size`` (list [W, H, P] or ``None``) and ``label``.
    """
    if isinstance(rec, (str, os.PathLike)):
        rec = read_recording(rec)
    elif not isinstance(rec, Recording):
        raise OptionError(f"must be a Recording or a path, got {type(rec).__name__}", option="recording")
    info = describe(rec.events)
    info.update(
        path=str(rec.path),
        format=rec.format,
        sensor_size=None if rec.sensor_size is None else [int(s) for s in rec.sensor_size],
        label=rec.label,
    )
    return info


def detect_format(path, format: str | None = None) -> str:
    """Canonical format name for ``path``: ``format`` if given (aliases resolved), else from the
    extension. ``.raw`` stays ``"raw"`` here (EVT2/EVT3 is decided from the header on reading).

    Raises:
        RecordingError: unknown format name or extension.
    """
    source = str(path)
    if format is not None:
        key = str(format).lower()
        if key not in _FORMAT_ALIASES:
            raise RecordingError(
                f"unknown format '{format}' (known: {', '.join(FORMATS)})", path=source
            )
        return _FORMAT_ALIASES[key]
    suffix = Path(source).suffix.lower()
    if suffix not in _EXTENSION_FORMAT:
        raise RecordingError(
            f"unknown recording extension '{suffix or '(none)'}' (supported: "
            f"{', '.join(SUPPORTED_EXTENSIONS)}; or pass a format)",
            path=source,
        )
    return _EXTENSION_FORMAT[suffix]


# --------------------------------------------------------------------------------------------
# Dispatch
# --------------------------------------------------------------------------------------------


def check_regular_file(path) -> None:
    """RecordingError unless ``path`` is an existing regular file ("no such file", "not a regular
    file": a pipe, socket or device is never opened, a FIFO would block the read)."""
    source = str(path)
    try:
        mode = os.stat(source).st_mode  # (one system call for both questions)
    except ValueError:  # (a NUL in the path)
        raise RecordingError("no such file", path=source) from None
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.EBADF):  # (as Path.exists)
            raise RecordingError("no such file", path=source) from None
        raise RecordingError(f"cannot read file: {_one_line(exc)}", path=source) from None
    if not stat.S_ISREG(mode):
        raise RecordingError("not a regular file", path=source)


def _read(path, format):
    """(events, sensor_size or None, canonical format) for any supported file."""
    source = str(path)
    fmt = detect_format(path, format)
    p = Path(source)
    check_regular_file(source)
    if fmt in ("aedat", "dat"):
        # jAER wrote AEDAT 2 files with a .dat extension; AEDAT4 files sometimes end in .aedat.
        head = _peek(p, 16)
        if head.startswith(b"#!AER-DAT4"):
            fmt = "aedat4"
        elif head.startswith(b"#!AER-DAT") and fmt == "dat":
            fmt = "aedat"
    reader = _READERS[fmt.split("-")[0]]
    try:
        events, sensor_size, fmt = reader(p, source, fmt)
    except (ValueError, TypeError, OverflowError, IndexError, KeyError, struct.error, MemoryError) as exc:
        # a damaged file can make numpy refuse a buffer or a conversion deep inside a decoder
        raise RecordingError(f"cannot decode as {fmt}: {_one_line(exc)}", path=source) from None
    if fmt not in _VALID_BY_CONSTRUCTION:
        check_event_values(events, source=source)
    return events, sensor_size, fmt


#: formats whose decoder cannot produce values outside :func:`~evsim.input.events.check_event_values`'s
#: ranges, whatever the bytes: N-MNIST's x and y are bytes (0..255), p one bit, t 23 bits plus
#: 2**13 µs per overflow record (below 2**53 for any file under 2**40 records). Checking them
#: again was a fifth of the time of reading an N-MNIST file.
_VALID_BY_CONSTRUCTION = frozenset({"nmnist"})


@contextlib.contextmanager
def _captured_output():
    """Send the process's stdout and stderr (file descriptors 1 and 2) to a temporary file for the
    duration of the block: the Rust and C decoders print their own messages there, which must
    not reach the user. Yields a function returning what was captured so far (text)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    sink = tempfile.TemporaryFile()
    saved = []
    try:
        for fd in (1, 2):
            saved.append((fd, os.dup(fd)))
            os.dup2(sink.fileno(), fd)
    except OSError:  # no such descriptor (embedded interpreter): nothing to capture
        for fd, copy in saved:
            os.dup2(copy, fd)
            os.close(copy)
        saved = []

    def captured() -> str:
        _flush_c_stdio()
        sink.seek(0)
        return sink.read().decode("utf-8", "replace")

    try:
        yield captured
    finally:
        _flush_c_stdio()  # C stdio buffers stdout when it is not a terminal: flush into the sink
        for fd, copy in saved:
            os.dup2(copy, fd)
            os.close(copy)
        sink.close()


def _flush_c_stdio() -> None:
    with contextlib.suppress(Exception):
        ctypes.CDLL(None).fflush(None)


def _decode_quietly(what: str, source: str, decode, *args):
    """Call a third-party ``decode(*args)`` with its output captured and every exception it
    raises, including a Rust panic (``pyo3_runtime.PanicException``, a BaseException), turned
    into a RecordingError naming the file; Ctrl-C and SystemExit pass through."""
    with _captured_output() as captured:
        try:
            return decode(*args)
        except (KeyboardInterrupt, SystemExit, GeneratorExit, RecordingError):
            raise
        except BaseException as exc:  # noqa: B036 - Rust panics derive from BaseException
            detail = _one_line(exc)
            printed = _first_line(captured())
            if printed and not str(exc).strip():  # what the decoder printed, if it said nothing else
                detail = f"{detail} ({printed})"
            raise RecordingError(f"cannot decode {what}: {detail}", path=source) from None


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0][:200] if lines else ""


def _peek(p: Path, n: int) -> bytes:
    try:
        with open(p, "rb") as fh:
            return fh.read(n)
    except OSError as exc:
        raise RecordingError(f"cannot read file: {_one_line(exc)}", path=str(p)) from None


def _read_bytes(p: Path, source: str) -> bytes:
    try:
        return p.read_bytes()
    except OSError as exc:
        raise RecordingError(f"cannot read file: {_one_line(exc)}", path=source) from None


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _empty() -> np.ndarray:
    return np.zeros(0, dtype=EVENT_DTYPE)


# --------------------------------------------------------------------------------------------
# N-MNIST / N-Caltech101 .bin
# --------------------------------------------------------------------------------------------

_NMNIST_OVERFLOW_Y = 240
_NMNIST_OVERFLOW_US = 1 << 13


def decode_nmnist(raw: bytes | np.ndarray, *, source: str | None = None) -> np.ndarray:
    """Decode N-MNIST/N-Caltech101 bytes (5 bytes per record) to events.

    Record layout (Orchard et al. 2015): byte 0 = x, byte 1 = y, byte 2 bit 7 = polarity,
    bits 22..0 over bytes 2..4 = timestamp in microseconds (big-endian). A record with
    ``y == 240`` is a timestamp overflow: it adds 2**13 us to its own and all later timestamps
    and is not an event (the same result as tonic's loop; tests/test_recordings.py checks it
    against an independent numpy decoder).

    Raises:
        RecordingError: the byte count is not a multiple of 5 (truncated file).
    """
    data = np.frombuffer(raw, dtype=np.uint8) if isinstance(raw, (bytes, bytearray)) else raw
    if data.size % 5:
        raise RecordingError(
            f"truncated N-MNIST file: {data.size} bytes is not a whole number of 5-byte records",
            path=source,
        )
    events = np.empty(data.size // 5, dtype=EVENT_DTYPE)
    n = _decode_nmnist_records(np.ascontiguousarray(data, dtype=np.uint8).reshape(-1), events["x"], events["y"],
                               events["t"], events["p"])
    return events[:n]  # (overflow records are not events)


@njit(cache=True, _nrt=False)
def _decode_nmnist_records(data, x, y, t, p):
    """The events of N-MNIST records ``data`` (bytes) into the columns; returns how many."""
    n = 0
    overflow_us = np.int64(0)
    for b in range(0, data.shape[0] - 4, 5):
        if data[b + 1] == _NMNIST_OVERFLOW_Y:
            overflow_us += _NMNIST_OVERFLOW_US
            continue
        x[n] = data[b]
        y[n] = data[b + 1]
        p[n] = data[b + 2] >> 7
        t[n] = overflow_us + ((np.int64(data[b + 2] & 0x7F) << 16) | (np.int64(data[b + 3]) << 8)
                              | np.int64(data[b + 4]))
        n += 1
    return n


def _read_nmnist(p: Path, source: str, fmt: str):
    events = decode_nmnist(_read_bytes(p, source), source=source)
    return events, None, "nmnist"  # the file does not state its sensor size (34x34 for N-MNIST)


# --------------------------------------------------------------------------------------------
# AEDAT 1.0 / 2.0 / 3.x
# --------------------------------------------------------------------------------------------


def _aedat_header(buf: bytes):
    """(version, data_start, header lines) of a jAER/cAER AEDAT file ('#' comment lines)."""
    pos = 0
    lines: list[str] = []
    version = None
    while pos < len(buf) and buf[pos : pos + 1] == b"#":
        end = buf.find(b"\n", pos)
        end = len(buf) if end < 0 else end + 1
        line = buf[pos:end].decode("latin-1").strip()
        pos = end
        lines.append(line)
        match = re.match(r"#!AER-DAT(\d+(?:\.\d+)?)", line)
        if match and version is None:
            version = float(match.group(1))
        if line.startswith("#!END-HEADER"):
            break
    if version is None:
        version = 1.0  # jAER: files without a version line are AEDAT 1.0
    return version, pos, lines


def _aedat_camera(lines: list[str], forced: str | None):
    """('dvs128' | 'davis', (W, H)) from a forced format or the header lines."""
    if forced == "aedat-dvs128":
        return "dvs128", (128, 128)
    if forced == "aedat-davis240":
        return "davis", (240, 180)
    if forced == "aedat-davis346":
        return "davis", (346, 260)
    text = " ".join(line.lower() for line in lines if "chip" in line.lower() or "source" in line.lower())
    if "davis" in text:
        for name, size in _DAVIS_SIZES:
            if name in text:
                return "davis", size
        return "davis", (346, 260)  # an unnamed DAVIS: the most common one (tonic's default too)
    return "dvs128", (128, 128)


def _read_aedat(p: Path, source: str, fmt: str):
    buf = _read_bytes(p, source)
    version, start, lines = _aedat_header(buf)
    body = memoryview(buf)[start:]
    if version >= 4:
        return _read_aedat4(p, source, "aedat4")
    if version >= 3:
        events, size = _decode_aedat3(body, lines, source)
        return events, size, "aedat3"
    camera, (w, h) = _aedat_camera(lines, fmt if fmt != "aedat" else None)
    if version >= 2:
        record = np.dtype([("a", ">u4"), ("t", ">i4")])
    else:
        record = np.dtype([("a", ">u2"), ("t", ">i4")])
    if len(body) % record.itemsize:
        raise RecordingError(
            f"truncated AEDAT {version:g} file: {len(body)} data bytes is not a whole number of "
            f"{record.itemsize}-byte events",
            path=source,
        )
    events = _aedat2_events(np.frombuffer(body, dtype=record), camera, w)
    return events, (w, h, 2), f"aedat{int(version)}"


def _aedat2_events(raw: np.ndarray, camera: str, w: int) -> np.ndarray:
    """Events of AEDAT 1/2 records (fields a, t): the camera's address layout, special events dropped."""
    a = raw["a"].astype(np.int64)
    t = raw["t"].astype(np.int64)
    if camera == "dvs128":
        keep = (a & 0x80008000) == 0
        x = 127 - ((a >> 1) & 0x7F)
        y = (a >> 8) & 0x7F
        pol = 1 - (a & 1)
    else:
        keep = ((a & 0x80000000) == 0) & ((a & 0x400) == 0)
        x = (w - 1) - ((a >> 12) & 0x3FF)
        y = (a >> 22) & 0x1FF
        pol = (a >> 11) & 1
    events = np.zeros(int(keep.sum()), dtype=EVENT_DTYPE)
    events["x"] = x[keep]
    events["y"] = y[keep]
    events["t"] = t[keep]
    events["p"] = pol[keep]
    return events


_AEDAT3_PACKET = struct.Struct("<hhiiiiii")  # type, source, size, tsOffset, tsOverflow, capacity, number, valid
_AEDAT3_POLARITY = 1


def _decode_aedat3(body: memoryview, lines: list[str], source: str):
    """Polarity events of an AEDAT 3.x body: one Python step per *packet*, vectorised within."""
    chunks = []
    pos, n = 0, len(body)
    while pos < n:
        if pos + _AEDAT3_PACKET.size > n:
            raise RecordingError(
                f"truncated AEDAT 3 file: packet header at data byte {pos} is cut off", path=source
            )
        etype, _src, esize, ts_offset, ts_overflow, capacity, _number, _valid = (
            _AEDAT3_PACKET.unpack_from(body, pos)
        )
        pos += _AEDAT3_PACKET.size
        if esize <= 0 or capacity < 0:
            raise RecordingError(
                f"malformed AEDAT 3 packet header at data byte {pos - _AEDAT3_PACKET.size} "
                f"(event size {esize}, capacity {capacity})",
                path=source,
            )
        nbytes = esize * capacity
        if pos + nbytes > n:
            raise RecordingError(
                f"truncated AEDAT 3 file: packet at data byte {pos - _AEDAT3_PACKET.size} needs "
                f"{nbytes} bytes, {n - pos} left",
                path=source,
            )
        if etype == _AEDAT3_POLARITY and capacity:
            if esize < 8 or not 0 <= ts_offset <= esize - 4:
                raise RecordingError(
                    f"malformed AEDAT 3 polarity packet (event size {esize}, timestamp offset "
                    f"{ts_offset})",
                    path=source,
                )
            layout = np.dtype(
                {"names": ["d", "t"], "formats": ["<u4", "<i4"], "offsets": [0, ts_offset],
                 "itemsize": esize}
            )
            packet = np.frombuffer(body, dtype=layout, count=capacity, offset=pos)
            d = packet["d"].astype(np.int64)
            valid = (d & 1) == 1
            d = d[valid]
            chunk = np.zeros(d.size, dtype=EVENT_DTYPE)
            chunk["x"] = (d >> 17) & 0x7FFF
            chunk["y"] = (d >> 2) & 0x7FFF
            chunk["p"] = (d >> 1) & 1
            chunk["t"] = (np.int64(ts_overflow) << 31) | packet["t"][valid].astype(np.int64)
            chunks.append(chunk)
        pos += nbytes
    events = np.concatenate(chunks) if chunks else _empty()
    size = None
    sources = " ".join(line.lower() for line in lines if line.lower().startswith("#source"))
    if "davis" in sources:
        size = next(((w, h, 2) for name, (w, h) in _DAVIS_SIZES if name in sources), None)
    elif "dvs128" in sources:
        size = (128, 128, 2)
    return events, size


# --------------------------------------------------------------------------------------------
# AEDAT4 (aedat package, as tonic.io.read_aedat4)
# --------------------------------------------------------------------------------------------


def _check_aedat4_header(p: Path, source: str) -> None:
    """RecordingError unless the file's IOHeader is whole and its description is UTF-8 text.

    An AEDAT4 file starts with ``#!AER-DAT4.0\r\n``, the header's size (uint32) and the header, a
    flatbuffer table (compression, data table position, infoNode: the XML description). The
    ``aedat`` decoder aborts the whole process on a description that is not UTF-8 (a Rust panic
    while a panic unwinds), which no exception handler can catch: checked here first."""
    head = _peek(p, 18)
    if len(head) < 18:
        raise RecordingError("damaged AEDAT4 file: truncated header", path=source)
    size = struct.unpack_from("<I", head, 14)[0]
    if size < 8 or size > p.stat().st_size - 18:
        raise RecordingError(f"damaged AEDAT4 file: a header of {size} bytes", path=source)
    header = _peek(p, 18 + size)[18:]

    def read(fmt: str, at: int) -> int:  # a value inside the header, or the file is damaged
        if not 0 <= at <= size - struct.calcsize(fmt):
            raise RecordingError("damaged AEDAT4 file: its header's structure points outside it", path=source)
        return struct.unpack_from(fmt, header, at)[0]

    table = read("<I", 0)
    vtable = table - read("<i", table)  # flatbuffers: a signed offset back to the field table
    vtable_size = read("<H", vtable)
    if vtable_size < 4 or vtable + vtable_size > size:
        raise RecordingError("damaged AEDAT4 file: its header's structure points outside it", path=source)
    if vtable_size < 10:  # no infoNode field
        return
    field = read("<H", vtable + 8)  # the third field: infoNode
    if field == 0:
        return
    string = table + field + read("<I", table + field)
    length = read("<I", string)
    if string + 4 + length > size:
        raise RecordingError("damaged AEDAT4 file: its header's description runs past the header", path=source)
    try:
        header[string + 4:string + 4 + length].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecordingError(f"damaged AEDAT4 file: its header's description is not UTF-8 text (byte "
                             f"{18 + string + 4 + exc.start})", path=source) from None


def _read_aedat4(p: Path, source: str, fmt: str):
    try:
        import aedat
    except ImportError:  # pragma: no cover - aedat is a declared dependency
        raise RecordingError("reading AEDAT4 needs the 'aedat' package", path=source) from None
    _check_aedat4_header(p, source)

    def decode():
        decoder = aedat.Decoder(str(p))
        streams = decoder.id_to_stream()
        ids = [i for i, s in streams.items() if s.get("type") == "events"]
        if not ids:
            raise RecordingError("AEDAT4 file has no event stream", path=source)
        target = min(ids)  # the first event stream, as tonic.io.read_aedat4
        packets = [packet["events"] for packet in decoder
                   if packet["stream_id"] == target and "events" in packet]
        return streams[target], packets

    # the Rust decoder raises RuntimeError/OSError/ValueError, or panics on damaged data
    stream, packets = _decode_quietly("AEDAT4", source, decode)
    events = as_events(np.concatenate(packets), source=source) if packets else _empty()
    size = None
    width, height = stream.get("width"), stream.get("height")
    if isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0:
        size = (width, height, 2)
    return events, size, "aedat4"


# --------------------------------------------------------------------------------------------
# Prophesee DAT / EVT2 / EVT3 (expelliarmus)
# --------------------------------------------------------------------------------------------


def _prophesee_header(buf: bytes):
    """(data_start, header lines) of a Prophesee file ('%' comment lines)."""
    pos = 0
    lines: list[str] = []
    while pos < len(buf) and buf[pos : pos + 1] == b"%":
        end = buf.find(b"\n", pos)
        end = len(buf) if end < 0 else end + 1
        line = buf[pos:end].decode("latin-1").strip()
        pos = end
        lines.append(line)
        if line.lower() == "% end":
            break
    return pos, lines


def _prophesee_geometry(lines: list[str]):
    """(W, H, 2) from '% geometry WxH', '% format ...;width=W;height=H' or '% Width'/'% Height'."""
    text = "\n".join(lines)
    m = re.search(r"^%\s*geometry\s+(\d+)\s*x\s*(\d+)", text, re.I | re.M)
    if m:
        return int(m.group(1)), int(m.group(2)), 2
    w = re.search(r"(?:^%\s*width\s+|[;\s]width=)(\d+)", text, re.I | re.M)
    h = re.search(r"(?:^%\s*height\s+|[;\s]height=)(\d+)", text, re.I | re.M)
    if w and h:
        return int(w.group(1)), int(h.group(1)), 2
    return None


def _evt_version(lines: list[str]):
    for line in lines:
        m = re.match(r"%\s*evt\s+(\d)", line, re.I) or re.match(r"%\s*format\s+evt\s*(\d)", line, re.I)
        if m:
            return f"evt{m.group(1)}"
    return None


def _read_prophesee(p: Path, source: str, fmt: str):
    buf = _read_bytes(p, source)
    start, lines = _prophesee_header(buf)
    payload = len(buf) - start
    if fmt == "raw":
        fmt = _evt_version(lines)
        if fmt is None:
            raise RecordingError(
                "cannot tell EVT2 from EVT3: no '% evt' or '% format' line in the header "
                "(pass format='evt2' or 'evt3')",
                path=source,
            )
        if fmt not in ("evt2", "evt3"):
            raise RecordingError(f"unsupported Prophesee raw encoding '{fmt}'", path=source)
    size = _prophesee_geometry(lines)
    if fmt == "dat":
        # 2 bytes (event type, event size) then 8-byte events.
        if payload <= 2:
            return _empty(), size, fmt
        if (payload - 2) % 8:
            raise RecordingError(
                f"truncated DAT file: {payload - 2} event bytes is not a whole number of 8-byte "
                "events",
                path=source,
            )
    else:
        word = 4 if fmt == "evt2" else 2
        if payload == 0:
            return _empty(), size, fmt
        if payload % word:
            raise RecordingError(
                f"truncated {fmt.upper()} file: {payload} data bytes is not a whole number of "
                f"{word}-byte words",
                path=source,
            )
    # expelliarmus hangs on a header without data (guarded above) and insists on the extension.
    arr = _expelliarmus_read(p, source, fmt)
    if not isinstance(arr, np.ndarray):
        raise RecordingError(f"cannot decode {fmt.upper()}: malformed file", path=source)
    return as_events(arr, source=source), size, fmt


def _expelliarmus_read(p: Path, source: str, encoding: str):
    from expelliarmus import Wizard

    suffix = ".dat" if encoding == "dat" else ".raw"
    what = encoding.upper()

    def read(target: Path):
        # expelliarmus prints 'ERROR: ...' from C and returns None on malformed data; it
        # raises RuntimeError/ValueError/TypeError on others
        with _captured_output() as captured:
            try:
                arr = Wizard(encoding=encoding).read(str(target))
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:  # noqa: B036 - narrowly around the C decoder
                raise RecordingError(f"cannot decode {what}: {_one_line(exc)}", path=source) from None
            if arr is None:
                printed = _first_line(captured())
                raise RecordingError(f"cannot decode {what}: {printed or 'malformed file'}", path=source)
            return arr

    with _expelliarmus_path(p, source, suffix) as target:
        return read(target)


@contextlib.contextmanager
def _expelliarmus_path(p: Path, source: str, suffix: str):
    """``p`` itself when its extension is the one expelliarmus insists on, else a hard link (or a
    copy) with that extension in a temporary folder, for the duration of the block."""
    if p.suffix.lower() == suffix:
        yield p
        return
    # expelliarmus resolves symlinks before checking the extension: hard link or copy.
    with tempfile.TemporaryDirectory(prefix="evsim-") as tmp:
        link = Path(tmp) / f"recording{suffix}"
        try:
            os.link(p, link)
        except OSError:
            try:
                shutil.copyfile(p, link)
            except OSError as exc:
                raise RecordingError(f"cannot read file: {_one_line(exc)}", path=source) from None
        yield link


def _expelliarmus_chunks(p: Path, source: str, encoding: str, chunk_events: int):
    """Decoded arrays of about ``chunk_events`` events (expelliarmus's chunked reader), in file
    order: ``Wizard.read_chunk``'s loop with the decoder's status checked after every chunk (the
    library's generator ends silently on an error) and its output captured."""
    from expelliarmus import Wizard
    from expelliarmus.wizard.wizard_wrapper import c_read_chunk_wrapper

    suffix = ".dat" if encoding == "dat" else ".raw"
    what = encoding.upper()
    with _expelliarmus_path(p, source, suffix) as target:
        with _captured_output() as captured:
            try:
                wizard = Wizard(encoding=encoding, fpath=str(target), chunk_size=max(int(chunk_events), 16))
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:  # noqa: B036 - narrowly around the C decoder
                raise RecordingError(f"cannot decode {what}: {_one_line(exc)}", path=source) from None
        cargo = wizard.cargo
        cargo.events_info.is_chunk = 1
        cargo.events_info.is_time_window = 0
        while cargo.events_info.finished == 0:
            cargo.events_info.dim = wizard.chunk_size
            with _captured_output() as captured:
                try:
                    arr, cargo, status = c_read_chunk_wrapper(encoding=wizard.encoding, fpath=wizard.fpath,
                                                              cargo=cargo, buff_size=wizard.buff_size)
                except (KeyboardInterrupt, SystemExit):
                    raise
                except BaseException as exc:  # noqa: B036 - narrowly around the C decoder
                    raise RecordingError(f"cannot decode {what}: {_one_line(exc)}", path=source) from None
                if status != 0:
                    printed = _first_line(captured())
                    raise RecordingError(f"cannot decode {what}: {printed or 'malformed file'}", path=source)
            if arr is None:
                break
            yield arr


# --------------------------------------------------------------------------------------------
# numpy .npy / .npz
# --------------------------------------------------------------------------------------------


def _read_npy(p: Path, source: str, fmt: str):
    try:
        with open(p, "rb") as fh:  # closed even when numpy refuses the file
            array = np.load(fh, allow_pickle=False)
    except Exception as exc:
        raise RecordingError(f"cannot load .npy: {_one_line(exc)}", path=source) from None
    return as_events(_structured(array, source, "the array"), source=source), None, "npy"


def _read_npz(p: Path, source: str, fmt: str):
    try:
        with open(p, "rb") as fh, np.load(fh, allow_pickle=False) as archive:
            keys = list(archive.files)
            candidates = [k for k in keys if k != "sensor_size"]
            if "events" in keys:
                key = "events"
            elif len(candidates) == 1:
                key = candidates[0]
            else:
                raise RecordingError(
                    f".npz holds {len(candidates)} arrays ({', '.join(keys) or 'none'}); expected "
                    "one array or one named 'events'",
                    path=source,
                )
            array = archive[key]
            size = _sensor_size(archive["sensor_size"], source) if "sensor_size" in keys else None
    except RecordingError:
        raise
    except Exception as exc:
        raise RecordingError(f"cannot load .npz: {_one_line(exc)}", path=source) from None
    return as_events(_structured(array, source, f"array '{key}'"), source=source), size, "npz"


def _structured(array: np.ndarray, source: str, what: str) -> np.ndarray:
    if array.dtype.names is None:
        raise RecordingError(
            f"{what} is not a structured array with named fields t, x (y, p) "
            f"(dtype {array.dtype}, shape {array.shape})",
            path=source,
        )
    if array.ndim != 1:
        raise RecordingError(f"{what} must be 1-D (shape {array.shape})", path=source)
    return array


def _sensor_size(value, source: str | None = None):
    """(W, H, P) from a stored sensor size (2 or 3 positive integers), else RecordingError."""
    arr = np.asarray(value).ravel()
    ok = arr.dtype.kind in "iuf" and arr.size in (2, 3)
    if ok and arr.dtype.kind == "f":
        ok = bool(np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)))
    if ok:
        ok = bool(np.all(arr >= 1) and np.all(arr <= 32768))
    if not ok:
        shown = np.array2string(arr[:4], threshold=4) if arr.dtype.kind in "biufc" else repr(arr[:4].tolist())
        raise RecordingError(
            f"sensor_size must be 2 or 3 integers in 1..32768, got {shown} (dtype {arr.dtype})",
            path=source, field="sensor_size")
    size = [int(v) for v in arr]
    if len(size) == 2:
        size.append(2)
    return tuple(size)


# --------------------------------------------------------------------------------------------
# HDF5
# --------------------------------------------------------------------------------------------


def _read_hdf5(p: Path, source: str, fmt: str):
    import h5py

    try:
        with _captured_output(), h5py.File(p, "r") as f:  # the HDF5 C library may print diagnostics
            array, size = _hdf5_events(f, source)
    except RecordingError:
        raise
    except Exception as exc:  # OSError for a non-HDF5 file, KeyError/TypeError for odd layouts
        raise RecordingError(f"cannot read HDF5: {_one_line(exc)}", path=source) from None
    return as_events(array, source=source), size, "hdf5"


def _hdf5_events(f, source: str):
    import h5py

    node = f.get("events")
    if isinstance(node, h5py.Dataset):
        if node.dtype.names is None:
            raise RecordingError(
                "HDF5 dataset 'events' is not a compound (structured) dataset", path=source
            )
        return _structured(node[()], source, "HDF5 dataset 'events'"), _hdf5_size(source, node, f)
    group = node if isinstance(node, h5py.Group) else f
    where = "group 'events'" if group is node else "the top level"
    if not ("t" in group and "x" in group):
        present = ", ".join(sorted(group.keys())) or "nothing"
        raise RecordingError(
            f"HDF5 file has no event data: expected datasets x, y, t, p at {where} or a "
            f"compound dataset 'events' (found: {present})",
            path=source,
        )
    columns = {}
    for name in ("t", "x", "y", "p"):
        if name in group:
            column = group[name]
            if not isinstance(column, h5py.Dataset):
                raise RecordingError(f"HDF5 '{name}' is not a dataset", path=source)
            values = np.asarray(column[()])
            if sum(d > 1 for d in values.shape) > 1:  # (N, 1) or (1, N) is a column; (N, 2) is not
                raise RecordingError(f"HDF5 '{name}' has shape {values.shape}: expected one value per event "
                                     "(a 1-D dataset)", path=source)
            columns[name] = values.ravel()
    lengths = {name: col.size for name, col in columns.items()}
    if len(set(lengths.values())) > 1:
        raise RecordingError(
            "HDF5 event columns differ in length ("
            + ", ".join(f"{k}={v}" for k, v in lengths.items())
            + ")",
            path=source,
        )
    n = lengths["t"]
    array = np.zeros(n, dtype=[(name, col.dtype) for name, col in columns.items()])
    for name, col in columns.items():
        array[name] = col
    return array, _hdf5_size(source, group, f)


def _hdf5_size(source, *nodes):
    for node in nodes:
        attrs = node.attrs
        if "sensor_size" in attrs:
            return _sensor_size(attrs["sensor_size"], source)
        if "width" in attrs and "height" in attrs:
            return _sensor_size([np.asarray(attrs["width"]).ravel()[0], np.asarray(attrs["height"]).ravel()[0]], source)
    return None


_READERS = {
    "nmnist": _read_nmnist,
    "aedat": _read_aedat,
    "aedat4": _read_aedat4,
    "dat": _read_prophesee,
    "raw": _read_prophesee,
    "evt2": _read_prophesee,
    "evt3": _read_prophesee,
    "npy": _read_npy,
    "npz": _read_npz,
    "hdf5": _read_hdf5,
}

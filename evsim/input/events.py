"""The one event type of evsim and small pure functions on it.

Events follow tonic's convention: a structured numpy array with fields read *by name*, never by
position. Timestamps ``t`` are integer microseconds; ``x``, ``y`` are pixel addresses; ``p`` is the
polarity (normalised to {0, 1}) or, for multi-channel sensors, the channel index. 1-D recordings
(audio, tactile) use ``x`` only and leave ``y`` and ``p`` at 0.

Mapping to the input neurons of a model (docs/SEMANTICS.md#inputs): for an Input node of shape (C, H, W) an event
addresses neuron (p, y, x), flat index ``p*H*W + y*W + x``; for shape (N,) it addresses ``x``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..errors import RecordingError

#: The event dtype used everywhere in evsim (compatible with tonic's transforms).
EVENT_DTYPE = np.dtype([("x", "<i2"), ("y", "<i2"), ("t", "<i8"), ("p", "<i1")])


def make_events(t, x, y=None, p=None) -> np.ndarray:
    """Build an event array from columns.

    Args:
        t: timestamps in microseconds (integers, ``0 <= t < 2**53``).
        x: x addresses (or the channel of a 1-D sensor), ``0..32767``.
        y: y addresses; 0 when omitted.
        p: polarities or channel indices ``0..127``, kept as given; 0 when omitted.

    Returns:
        A structured array of dtype :data:`EVENT_DTYPE`.

    Raises:
        RecordingError: columns of different lengths, or a value that is not an integer in its
            field's range (checked before conversion, as in :func:`as_events`).
    """
    columns = {"t": t, "x": x, "y": y, "p": p}
    arrays = {}
    for name, values in columns.items():
        if values is None:
            continue
        column = np.asarray(values)
        if column.ndim != 1:
            raise RecordingError(f"expected a 1-D column, got shape {column.shape}", field=name)
        arrays[name] = _integral_column(column, name, None, 0, _FIELD_LIMITS[name])
    lengths = {name: a.shape[0] for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise RecordingError("columns differ in length (" + ", ".join(f"{k}={v}" for k, v in lengths.items()) + ")")
    events = np.zeros(lengths["t"], dtype=EVENT_DTYPE)
    for name, column in arrays.items():
        events[name] = column
    return events


#: Timestamps evsim accepts, integer microseconds: ``0 <= t < T_LIMIT_US`` (2**53 us, about 285
#: years). Below 2**53 every timestamp and every difference of two is exact in float64 (the engine
#: counts time in float64 microseconds) and no span ``t[-1] - t[0]`` can overflow int64.
T_LIMIT_US = 2**53

#: Largest pixel address (x, y) and channel index (p) the event dtype holds.
_FIELD_LIMITS = {"x": np.iinfo(np.int16).max, "y": np.iinfo(np.int16).max, "p": np.iinfo(np.int8).max,
                 "t": T_LIMIT_US - 1}


def as_events(array: np.ndarray, *, source: str | None = None) -> np.ndarray:
    """Convert any structured array with named fields ``t``, ``x`` (and optionally ``y``, ``p``)
    to :data:`EVENT_DTYPE`, reading fields by name.

    Every value is checked before conversion, so that no conversion loses or wraps anything:
    fields must be real numbers (integers, booleans, or floats that are finite and integral),
    ``0 <= t < 2**53`` microseconds (:data:`T_LIMIT_US`), ``0 <= x, y <= 32767``. Polarities are
    normalised to {0, 1} when the array holds exactly two distinct values (e.g. {-1, 1} or
    {False, True}); other multi-valued ``p`` fields are kept as channel indices (0..127).

    Raises:
        RecordingError: a field is missing or not numeric, or a value is non-finite, fractional
            or out of range (names the field, the first offending event and how many there are).
    """
    if not isinstance(array, np.ndarray) or array.dtype.names is None:
        raise RecordingError("expected a structured array with fields t, x (y, p optional)", path=source)
    if array.ndim != 1:
        raise RecordingError(f"the event array must be 1-D (shape {array.shape})", path=source)
    names = array.dtype.names
    # Membership by dtype.fields, which also holds field *titles*: the aedat package names the
    # AEDAT4 polarity field "on" with title "p" (tonic reads it as events["p"]).
    fields = array.dtype.fields
    for required in ("t", "x"):
        if required not in fields:
            raise RecordingError(
                f"missing field '{required}' (fields present: {', '.join(names)})", path=source
            )
    events = np.zeros(array.shape[0], dtype=EVENT_DTYPE)
    for name in ("t", "x", "y", "p"):
        if name not in fields:
            continue
        if name == "p":  # any two values are polarities (-1/1 too); more are channels 0..127
            column = _integral_column(np.asarray(array[name]), name, source, -(2**62), 2**62)
            events["p"] = normalise_polarity(column, source=source)
            continue
        column = _integral_column(np.asarray(array[name]), name, source, 0, _FIELD_LIMITS[name])
        events[name] = column
    return events


def _integral_column(column: np.ndarray, name: str, source: str | None, lo: int, hi: int) -> np.ndarray:
    """The column as int64 (bool kept as bool), refusing non-numeric dtypes, non-finite and
    fractional values and values outside ``lo..hi`` (which int64 holds), before any conversion."""
    if column.ndim != 1:
        raise RecordingError(f"field is not a scalar column (shape {column.shape})", path=source, field=name)
    kind = column.dtype.kind
    if kind == "b":
        return column
    if kind not in "iuf":
        what = {"c": "complex", "U": "text", "S": "bytes", "O": "Python objects", "M": "dates",
                "m": "time deltas", "V": "raw or nested records"}.get(kind, "not numeric")
        raise RecordingError(f"dtype {column.dtype} ({what}): expected integers", path=source, field=name)
    if kind == "f":
        _first_bad(column, ~np.isfinite(column), "non-finite value", name, source)
        with np.errstate(invalid="ignore"):
            _first_bad(column, column != np.round(column), "fractional value (expected integers)", name, source)
    _check_range(column, name, lo, hi, source)  # in the column's own dtype: nothing wraps
    return column.astype(np.int64)


def _check_range(column: np.ndarray, name: str, lo: int, hi: int, source: str | None) -> None:
    """Raise unless ``lo <= column <= hi`` (stated in the message)."""
    if column.size == 0:
        return
    # the common case: at most two reductions, none where the dtype already guarantees the bound
    # (EVENT_DTYPE's int16 x, y and int8 p cannot exceed their limits); NaN fails both tests.
    # Float extremes are compared as Python floats with the Python int bounds, which is exact:
    # a bound cast to the column's dtype could overflow (float16) or round (2**53 - 1 is 2**53
    # in float32, which would let t = 2**53 through).
    kind = column.dtype.kind
    bounded = np.iinfo(column.dtype) if kind in "iu" else None
    if kind == "f":
        low, high = column.min(), column.max()
        if column.dtype.itemsize <= 8:  # longdouble: its own precision holds the bounds exactly
            low, high = float(low), float(high)
        low_ok = low >= lo
        high_ok = high <= hi
    else:
        low_ok = bounded is not None and bounded.min >= lo or column.min() >= lo
        high_ok = bounded is not None and bounded.max <= hi or column.max() <= hi
    if low_ok and high_ok:
        return
    if kind == "u":
        bad = column > np.uint64(hi)
    elif kind == "f":
        # float64 holds every float16/float32 value exactly, and lo, hi (|bound| <= 2**62 and
        # 2**53 - 1) exactly too; longdouble columns are compared in their own precision
        wide = column.astype(np.float64) if column.dtype.itemsize <= 8 else column
        with np.errstate(invalid="ignore"):
            bad = ~((wide >= lo) & (wide <= hi))  # NaN counts as out of range
    else:
        bad = (column < lo) | (column > hi)
    unit = " us" if name == "t" else ""
    bound = "2**53" if hi == T_LIMIT_US - 1 else str(hi + 1)
    _first_bad(column, bad, f"out of the range {lo} <= {name} < {bound}{unit}", name, source)


def _first_bad(column: np.ndarray, bad: np.ndarray, what: str, name: str, source: str | None) -> None:
    """Raise naming the first event flagged in ``bad``, its value and how many are flagged."""
    if not np.any(bad):
        return
    index = np.flatnonzero(bad)
    i = int(index[0])
    value = column[i].item()
    if isinstance(value, np.generic):  # longdouble has no Python equivalent: show it as a float
        value = float(value)
    raise RecordingError(
        f"event {i} has {name}={value!r}: {what} ({index.size} of {column.size} events)",
        path=source,
        field=name,
    )


def check_event_values(events: np.ndarray, *, source: str | None = None) -> None:
    """Raise :class:`RecordingError` unless every field present among t, x, y, p holds integral
    values with ``0 <= t < 2**53`` us and non-negative addresses and channels: what a decoder
    produced from a damaged or exotic file, or an array handed to a simulator."""
    fields = events.dtype.fields
    for name, limit in _FIELD_LIMITS.items():
        if name in fields:
            column = np.asarray(events[name])
            if column.dtype.kind not in "iu":
                column = _integral_column(column, name, source, 0, limit)
            _check_range(column, name, 0, limit, source)


def normalise_polarity(p: np.ndarray, *, source: str | None = None) -> np.ndarray:
    """Map polarities to {0, 1}: booleans as they are, {-1, 1} or any two values to {0, 1}
    (the smaller value is 0). Columns with more than two values are channel indices 0..127, kept."""
    if p.dtype == np.bool_:
        return p.astype(np.int8)
    values = np.unique(p)
    if values.size == 0:
        return p.astype(np.int8)
    if values.size <= 2 and not (values.min() >= 0 and values.max() <= 1):
        return (p == values.max()).astype(np.int8) if values.size == 2 else np.zeros(p.shape, np.int8)
    if values.min() < 0:
        _first_bad(p, p < 0, "negative channel index", "p", source)
    _check_range(p, "p", 0, _FIELD_LIMITS["p"], source)
    return p.astype(np.int8)


def check_sorted(events: np.ndarray, *, source: str | None = None, check_values: bool = True) -> None:
    """Raise :class:`RecordingError` unless ``events`` is a 1-D structured array with a 't' field
    whose timestamps are non-decreasing (equal ones are legal) and whose values pass
    :func:`check_event_values` (both simulators call this before anything else; readers that
    checked the values already pass ``check_values=False``).

    The message names the first offending event index and its timestamps."""
    names = getattr(getattr(events, "dtype", None), "names", None)
    if names is None or "t" not in names:
        raise RecordingError("events must be a structured array with a 't' field", path=source)
    if getattr(events, "ndim", 1) != 1:
        raise RecordingError(f"the event array must be 1-D (shape {events.shape})", path=source)
    if isinstance(events, np.ma.MaskedArray):
        raise RecordingError("a masked array is not an event array (drop the masked events first: .compressed())",
                             path=source)
    for name in names:
        if events.dtype[name].shape != ():
            raise RecordingError(f"holds {events.dtype[name].shape} values per event; expected one", path=source,
                                 field=name)
    if check_values:
        check_event_values(events, source=source)
    t = events["t"]
    if t.size < 2 or not (t[1:] < t[:-1]).any():  # one comparison pass: 4x faster than np.diff
        return
    bad = np.flatnonzero(np.diff(t) < 0)
    if bad.size:
        i = int(bad[0]) + 1
        raise RecordingError(
            f"timestamps are not sorted: event {i} has t={int(t[i])} us after t={int(t[i - 1])} us "
            f"({bad.size} decreasing steps; pass sort=True / --sort to sort them)",
            path=source,
            field="t",
        )


def sort_events(events: np.ndarray) -> np.ndarray:
    """Return the events sorted by timestamp; equal timestamps keep file order (stable sort)."""
    order = np.argsort(events["t"], kind="stable")
    return events[order]


def input_indices(events: np.ndarray, input_shape: tuple[int, ...], *, source: str | None = None) -> np.ndarray:
    """Flat NIR index of the input neuron each event addresses (docs/SEMANTICS.md#inputs), validated.

    Args:
        events: event array (:data:`EVENT_DTYPE`).
        input_shape: shape of the model's Input node, (C, H, W), (C, N) or (N,).

    Returns:
        int64 array, ``p*H*W + y*W + x`` for (C, H, W); ``p*N + x`` for (C, N); ``x`` for (N,).

    Raises:
        RecordingError: an event addresses a neuron outside the shape (names the first one).
    """
    missing = [name for name in ("x", "y", "p") if name not in events.dtype.fields]
    if missing:
        raise RecordingError(
            f"missing field(s) {', '.join(missing)}: simulators take EVENT_DTYPE arrays "
            "(evsim.as_events converts others)", path=source)
    x = events["x"].astype(np.int64)
    y = events["y"].astype(np.int64)
    p = events["p"].astype(np.int64)
    if len(input_shape) == 3:
        c, h, w = input_shape
        checks = (("p", p, c), ("y", y, h), ("x", x, w))
        flat = (p * h + y) * w + x
    elif len(input_shape) == 2:
        c, n = input_shape
        checks = (("p", p, c), ("x", x, n))
        flat = p * n + x
    elif len(input_shape) == 1:
        (n,) = input_shape
        checks = (("x", x, n),)
        flat = x
        if np.any(y != 0):
            i = int(np.flatnonzero(y != 0)[0])
            raise RecordingError(
                f"event {i} has y={int(y[i])} but the model input is 1-D of size {n}",
                path=source,
                field="y",
            )
    else:
        raise RecordingError(f"unsupported model input shape {tuple(input_shape)}", path=source)
    for name, values, size in checks:
        bad = (values < 0) | (values >= size)
        if np.any(bad):
            i = int(np.flatnonzero(bad)[0])
            raise RecordingError(
                f"event {i} has {name}={int(values[i])}, outside the model input shape "
                f"{tuple(int(s) for s in input_shape)} ({int(bad.sum())} events out of range; "
                "crop or downsample the recording first)",
                path=source,
                field=name,
            )
    return flat


def describe(events: np.ndarray) -> dict:
    """Summary of a recording with the names of docs/SEMANTICS.md#cli-outputs: n_events, t_first_us, t_last_us, x_max,
    y_max and polarity counts (``p_counts``: {polarity: count})."""
    n = int(events.shape[0])
    if n == 0:
        return {"n_events": 0, "t_first_us": None, "t_last_us": None, "x_max": None, "y_max": None,
                "p_counts": {}}
    values, counts = np.unique(events["p"], return_counts=True)
    return {
        "n_events": n,
        "t_first_us": int(events["t"][0]),
        "t_last_us": int(events["t"][-1]),
        "x_max": int(events["x"].max()),
        "y_max": int(events["y"].max()),
        "p_counts": {str(int(v)): int(c) for v, c in zip(values, counts)},
    }


@njit(cache=True, _nrt=False)
def _engine_input_kernel(t, x, y, p, c, h, w, input_map, t0_us, index, times):
    """The fast path of :func:`engine_input`: one pass over the columns. Returns -1 when every event
    has 0 <= t < 2**53 and non-decreasing, non-negative x, y, p and addresses a neuron of the
    (c, h, w) input (index[i]: its engine index, times[i]: t - t0_us), else the first failing event
    (nothing is written at or after it)."""
    t_prev = 0
    for i in range(t.shape[0]):
        ti, xi, yi, pi = t[i], x[i], y[i], p[i]
        if ti < t_prev or ti >= T_LIMIT_US or xi < 0 or yi < 0 or pi < 0 or xi >= w or yi >= h or pi >= c:
            return i
        t_prev = ti
        index[i] = input_map[(pi * h + yi) * w + xi]
        times[i] = float(ti - t0_us)
    return -1


def engine_input(events, input_shape: tuple, input_map: np.ndarray, t0_us: int | None):
    """``(engine index, time since t0_us as float64)`` of every event when all of them pass
    :func:`check_sorted` and :func:`input_indices` (``engine index = input_map[input index]``), in one
    compiled pass (``t0_us`` None: the first event's time); ``None`` when that fast path does not
    apply (not a 1-D :data:`EVENT_DTYPE` array, an input that is not (C, H, W)) or an
    event fails a check: the caller then takes the checked path, which raises the error the event
    deserves (or, for an event only outside the input, after a time window has cut it off,
    accepts it)."""
    if (type(events) is not np.ndarray or events.dtype != EVENT_DTYPE or events.ndim != 1  # (no subclass: masked)
            or len(input_shape) != 3):
        return None
    n = events.shape[0]
    index = np.empty(n, dtype=np.int64)
    times = np.empty(n, dtype=np.float64)
    c, h, w = (int(s) for s in input_shape)
    t0 = int(t0_us) if t0_us is not None else int(events["t"][0]) if n else 0
    if _engine_input_kernel(events["t"], events["x"], events["y"], events["p"], c, h, w, input_map, t0,
                            index, times) >= 0:
        return None
    return index, times

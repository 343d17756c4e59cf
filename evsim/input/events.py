"""The one event type of evsim and small pure functions on it.

Events follow tonic's convention: a structured numpy array with fields read *by name*, never by
position. Timestamps ``t`` are integer microseconds; ``x``, ``y`` are pixel addresses; ``p`` is the
polarity (normalised to {0, 1}) or, for multi-channel sensors, the channel index. 1-D recordings
(audio, tactile) use ``x`` only and leave ``y`` and ``p`` at 0.

Mapping to the input neurons of a model (SPEC §1): for an Input node of shape (C, H, W) an event
addresses neuron (p, y, x), flat index ``p*H*W + y*W + x``; for shape (N,) it addresses ``x``.
"""

from __future__ import annotations

import numpy as np

from ..errors import RecordingError

#: The event dtype used everywhere in evsim (compatible with tonic's transforms).
EVENT_DTYPE = np.dtype([("x", "<i2"), ("y", "<i2"), ("t", "<i8"), ("p", "<i1")])


def make_events(t, x, y=None, p=None) -> np.ndarray:
    """Build an event array from columns.

    Args:
        t: timestamps in microseconds (integers).
        x: x addresses (or the channel of a 1-D sensor).
        y: y addresses; 0 when omitted.
        p: polarities (any non-zero value counts as 1 when ``p`` is boolean-like); 0 when omitted.

    Returns:
        A structured array of dtype :data:`EVENT_DTYPE`.
    """
    t = np.asarray(t)
    events = np.zeros(t.shape[0], dtype=EVENT_DTYPE)
    events["t"] = t
    events["x"] = np.asarray(x)
    if y is not None:
        events["y"] = np.asarray(y)
    if p is not None:
        events["p"] = np.asarray(p)
    return events


def as_events(array: np.ndarray, *, source: str | None = None) -> np.ndarray:
    """Convert any structured array with named fields ``t``, ``x`` (and optionally ``y``, ``p``)
    to :data:`EVENT_DTYPE`, reading fields by name.

    Polarities are normalised to {0, 1} when the array holds exactly two distinct values (e.g.
    {-1, 1} or {False, True}); other multi-valued ``p`` fields are kept as channel indices.
    Timestamps given as floats are taken to be microseconds and must be integral.

    Raises:
        RecordingError: a field is missing, a value does not fit, or timestamps are not integral.
    """
    if not isinstance(array, np.ndarray) or array.dtype.names is None:
        raise RecordingError("expected a structured array with fields t, x (y, p optional)", path=source)
    names = array.dtype.names
    # Membership by dtype.fields, which also holds field *titles*: the aedat package names the
    # AEDAT4 polarity field "on" with title "p" (tonic reads it as events["p"]).
    fields = array.dtype.fields
    for required in ("t", "x"):
        if required not in fields:
            raise RecordingError(
                f"missing field '{required}' (fields present: {', '.join(names)})", path=source
            )
    t = np.asarray(array["t"])
    if np.issubdtype(t.dtype, np.floating):
        if not np.all(np.isfinite(t)):
            raise RecordingError("non-finite timestamps", path=source, field="t")
        if np.any(t != np.round(t)):
            raise RecordingError(
                "timestamps must be integer microseconds (got fractional values)",
                path=source,
                field="t",
            )
    events = np.zeros(array.shape[0], dtype=EVENT_DTYPE)
    events["t"] = t.astype(np.int64)
    for name in ("x", "y"):
        if name in fields:
            column = np.asarray(array[name])
            _check_fits(column, np.int16, name, source)
            events[name] = column
    if "p" in fields:
        events["p"] = normalise_polarity(np.asarray(array["p"]), source=source)
    return events


def normalise_polarity(p: np.ndarray, *, source: str | None = None) -> np.ndarray:
    """Map polarities to {0, 1}: booleans as they are, {-1, 1} or any two values to {0, 1}
    (the smaller value is 0). Columns with more than two values are channel indices, kept."""
    if p.dtype == np.bool_:
        return p.astype(np.int8)
    values = np.unique(p)
    if values.size == 0:
        return p.astype(np.int8)
    if values.size <= 2 and not (values.min() >= 0 and values.max() <= 1):
        return (p == values.max()).astype(np.int8) if values.size == 2 else np.zeros(p.shape, np.int8)
    _check_fits(p, np.int8, "p", source)
    if values.min() < 0:
        raise RecordingError("negative channel index", path=source, field="p")
    return p.astype(np.int8)


def _check_fits(column: np.ndarray, dtype, name: str, source: str | None) -> None:
    if column.size == 0:
        return
    info = np.iinfo(dtype)
    lo, hi = column.min(), column.max()
    if lo < info.min or hi > info.max:
        raise RecordingError(
            f"values in [{lo}, {hi}] do not fit {np.dtype(dtype).name}", path=source, field=name
        )


def check_sorted(events: np.ndarray, *, source: str | None = None) -> None:
    """Raise :class:`RecordingError` unless ``events`` is a structured array with a 't' field
    whose timestamps are non-decreasing (equal ones are legal).

    The message names the first offending event index and its timestamps."""
    names = getattr(getattr(events, "dtype", None), "names", None)
    if names is None or "t" not in names:
        raise RecordingError("events must be a structured array with a 't' field", path=source)
    t = events["t"]
    if t.size < 2:
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
    """Flat NIR index of the input neuron each event addresses (SPEC §1), validated.

    Args:
        events: event array (:data:`EVENT_DTYPE`).
        input_shape: shape of the model's Input node, (C, H, W), (C, N) or (N,).

    Returns:
        int64 array, ``p*H*W + y*W + x`` for (C, H, W); ``p*N + x`` for (C, N); ``x`` for (N,).

    Raises:
        RecordingError: an event addresses a neuron outside the shape (names the first one).
    """
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
    """Summary of a recording with the SPEC §7 names: n_events, t_first_us, t_last_us, x_max,
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

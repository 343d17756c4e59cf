"""Event transforms applied to recordings before simulation (docs/SEMANTICS.md#transforms: crop or downsample a
recording that does not fit the model's input).

Thin wrappers around tonic's transforms on :data:`~evsim.input.events.EVENT_DTYPE` arrays. Every function
returns a *new* array (the input is never modified), in the input's order, so a time-sorted
recording stays sorted. Times are integer microseconds, coordinates integer pixels.

:func:`build_transform` turns command-line options into one :class:`Transform` that applies the
requested steps in a fixed order (see :data:`TRANSFORM_ORDER`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from ..errors import OptionError, shown
from .events import EVENT_DTYPE, T_LIMIT_US, as_events


def _tonic():
    """tonic.transforms, imported on first use (it pulls in scipy and requests: 0.4 s that an
    evaluation without transforms does not need)."""
    import tonic.transforms

    return tonic.transforms

_INT16_MAX = np.iinfo(np.int16).max


def _events(events: np.ndarray) -> np.ndarray:
    return events if events.dtype == EVENT_DTYPE else as_events(events)


def _positive_number(value, option: str, limit: float | None = None, limit_text: str = "") -> float:
    """``value`` as a finite float > 0 (and <= ``limit`` when given, stated as ``limit_text``)."""
    if isinstance(value, (bool, np.bool_)):
        raise OptionError(f"expected a number, got {shown(value)}", option=option)
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an int beyond float's range
        raise OptionError(f"expected a number, got {shown(value)}", option=option) from None
    if not math.isfinite(number) or number <= 0:
        raise OptionError(f"must be a positive number, got {shown(value)}", option=option)
    if limit is not None and number > limit:
        raise OptionError(f"must be {limit_text}, got {shown(value)}", option=option)
    return number


#: The largest spatial factor: a larger one takes pixel 1 beyond the largest address, 32767.
_MAX_SPATIAL_FACTOR = float(np.iinfo(np.int16).max)
#: The largest time factor: a larger one takes t = 1 us beyond the timestamp limit, 2**53 us.
_MAX_TIME_FACTOR = float(T_LIMIT_US - 1)


def _spatial_factor(value, option: str) -> float:
    return _positive_number(value, option, _MAX_SPATIAL_FACTOR,
                            "at most 32767 (a larger factor takes pixel 1 beyond the largest address, 32767)")


def _time_factor(value, option: str) -> float:
    return _positive_number(value, option, _MAX_TIME_FACTOR,
                            "below 2**53 (a larger factor takes t = 1 us beyond the timestamp limit, 2**53 us)")


def _positive_int(value, option: str) -> int:
    if isinstance(value, (bool, np.bool_)):
        raise OptionError(f"expected a positive integer, got {shown(value)}", option=option)
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        raise OptionError(f"expected a positive integer, got {shown(value)}", option=option) from None
    if number != value and not (isinstance(value, float) and value == number):
        raise OptionError(f"expected a positive integer, got {shown(value)}", option=option)
    if number <= 0:
        raise OptionError(f"must be a positive integer, got {shown(value)}", option=option)
    return number


#: Largest width or height of a sensor or crop window: addresses are int16 (0..32767).
_MAX_SIZE = _INT16_MAX + 1


def _window_size(value, option: str) -> int:
    """A crop window side: a positive integer that int16 addresses can span."""
    number = _positive_int(value, option)
    if number > _MAX_SIZE:
        raise OptionError(f"{shown(value)} is above {_MAX_SIZE}, the most an event address can hold", option=option)
    return number


def _pair(value, option: str, kind) -> tuple:
    """A scalar or a 2-sequence -> (a, b), each checked by ``kind``."""
    if isinstance(value, (list, tuple, np.ndarray)):
        if len(value) != 2:
            raise OptionError(f"expected one value or two (x, y), got {shown(value)}", option=option)
        return kind(value[0], option), kind(value[1], option)
    v = kind(value, option)
    return v, v


def _sensor_size(sensor_size, option: str = "--sensor-size") -> tuple[int, int, int]:
    if sensor_size is None or not isinstance(sensor_size, (list, tuple, np.ndarray)):
        raise OptionError(f"expected (W, H) or (W, H, P), got {shown(sensor_size)}", option=option)
    if len(sensor_size) not in (2, 3):
        raise OptionError(f"expected (W, H) or (W, H, P), got {shown(sensor_size)}", option=option)
    size = [_positive_int(s, option) for s in sensor_size]
    # addresses are int16, channels int8 (EVENT_DTYPE)
    for value, given, limit, what in zip(size, sensor_size, (_MAX_SIZE, _MAX_SIZE, 128), ("width", "height", "channels")):
        if value > limit:
            raise OptionError(f"{what} {shown(given)} is above {limit}, the most an event address can hold",
                              option=option)
    return (size[0], size[1], size[2] if len(size) == 3 else 2)


# ---------------------------------------------------------------------------------------------
# The transforms
# ---------------------------------------------------------------------------------------------


def denoise(events: np.ndarray, filter_time_us) -> np.ndarray:
    """Drop events with no support: keep an event only if an *earlier* event (in array order) at
    one of its 4 neighbouring pixels happened less than ``filter_time_us`` microseconds before it.

    Same rule as ``tonic.transforms.Denoise`` / ``tonic.functional.denoise_numpy``, vectorised
    (tonic loops over events in Python). One difference: tonic's pixel memory starts at
    ``filter_time``, so with timestamps starting at 0 it also keeps events with
    ``t < filter_time`` that have any in-range neighbour pixel; here only real earlier events count
    (timestamps are as decoded, not shifted to zero, so that start-up rule would be arbitrary).

    Args:
        events: event array.
        filter_time_us: support window in microseconds (> 0).

    Returns:
        the kept events, in input order.
    """
    filter_time = _positive_number(filter_time_us, "--denoise-us")
    ev = _events(events)
    n = ev.shape[0]
    if n == 0:
        return ev.copy()
    x = ev["x"].astype(np.int64)
    y = ev["y"].astype(np.int64)
    t = ev["t"]
    x = x - x.min() + 1  # margin of one pixel: every neighbour id below is >= 0
    y = y - y.min() + 1
    height = int(y.max()) + 2
    pixel = x * height + y
    # Compact pixel ids so that key = id * n + index fits in int64 for any n < 2**31.
    unique_pixels, pixel_id = np.unique(pixel, return_inverse=True)
    index = np.arange(n, dtype=np.int64)
    keys = np.sort(pixel_id.astype(np.int64) * n + index)  # grouped by pixel, then array order
    keep = np.zeros(n, dtype=bool)
    for dx, dy in ((-1, 0), (1, 0), (0, -1), (0, 1)):  # 4 neighbours, not a loop over events
        neighbour = (x + dx) * height + (y + dy)
        slot = np.searchsorted(unique_pixels, neighbour)
        found = slot < unique_pixels.size
        found[found] = unique_pixels[slot[found]] == neighbour[found]
        neighbour_id = np.where(found, slot, 0).astype(np.int64)
        # Last event at the neighbour pixel with index < i: the key just below (id, i).
        pos = np.searchsorted(keys, neighbour_id * n + index, side="left") - 1
        key = keys[np.maximum(pos, 0)]
        hit = found & (pos >= 0) & (key // n == neighbour_id)
        previous = key % n
        keep |= hit & ((t - t[previous]) < filter_time)
    return ev[keep]


def downsample(events: np.ndarray, spatial_factor, time_factor=1) -> np.ndarray:
    """Scale pixel coordinates (and optionally timestamps) by a factor and floor them
    (``tonic.transforms.Downsample``; it truncates toward zero, which is the floor for the
    non-negative addresses and timestamps of recordings). No event is dropped; several events may
    land on the same pixel.

    Args:
        events: event array.
        spatial_factor: factor for x and y (e.g. 0.5 halves the resolution), or a pair (fx, fy);
            0 < factor <= 32767, and no address may land beyond 32767.
        time_factor: factor for timestamps (default 1: unchanged; must be > 0 so order is kept);
            no timestamp may land at or beyond 2**53 us.

    Returns:
        new array; x, y (and t) floored to integers.
    """
    fx, fy = _pair(spatial_factor, "--downsample", _spatial_factor)
    ft = _time_factor(time_factor, "time_factor")
    ev = _events(events)
    if ev.shape[0]:
        # products in Python floats (inf at worst, never a warning), as tonic computes them
        for name, f in (("x", fx), ("y", fy)):
            if int(np.abs(ev[name].astype(np.int64)).max()) * f > _INT16_MAX:
                raise OptionError(
                    f"factor {f:g} takes {name} addresses beyond {_INT16_MAX}", option="--downsample"
                )
        if ft != 1 and int(np.abs(ev["t"]).max()) * ft >= T_LIMIT_US:
            raise OptionError(f"factor {ft:g} takes timestamps beyond 2**53 us", option="time_factor")
    time_coefficient = 1 if ft == 1 else ft  # an int 1 keeps int64 timestamps exact
    out = _tonic().Downsample(time_factor=time_coefficient, spatial_factor=(fx, fy))(ev)
    return out.astype(EVENT_DTYPE, copy=False)


def crop(events: np.ndarray, sensor_size, target_size) -> np.ndarray:
    """Centre crop (``tonic.transforms.CenterCrop``): keep the ``target_size`` window in the
    middle of the sensor, drop events outside it and shift coordinates so the window starts at 0.

    The window starts at ``((W - w) // 2, (H - h) // 2)``. A target larger than the sensor pads
    instead (events are shifted into the middle of the larger frame).

    Args:
        events: event array.
        sensor_size: (W, H) or (W, H, P) of the recording, in pixels.
        target_size: (w, h) of the window in pixels, or one int for a square; 1..32768 (int16
            addresses), as the sensor size.

    Returns:
        new array with the kept events, coordinates in [0, w) x [0, h).
    """
    size = _sensor_size(sensor_size)
    w, h = _pair(target_size, "--crop", _window_size)
    ev = _events(events)
    # Keep only events that land in [0, w) x [0, h) once shifted by the (signed) offsets that
    # CenterCrop subtracts. For events inside the sensor this is CenterCrop's own selection; an
    # event beyond the sensor's declared size could otherwise be shifted past the window (or
    # past int16) when the target is larger than the sensor.
    inside = np.ones(ev.shape[0], dtype=bool)
    for name, sensor, target in (("x", size[0], w), ("y", size[1], h)):
        offset = (sensor - target) // 2
        column = ev[name].astype(np.int64)
        inside &= (column >= offset) & (column < offset + target)
    out = _tonic().CenterCrop(sensor_size=size, size=(w, h))(ev[inside])
    return out.astype(EVENT_DTYPE, copy=False)


def crop_time(events: np.ndarray, t_start_us=None, t_end_us=None, *, relative: bool = True) -> np.ndarray:
    """Keep events with ``t_start_us <= t <= t_end_us`` (both ends included, as
    ``tonic.transforms.CropTime``).

    Args:
        events: event array.
        t_start_us: start in microseconds (None: from the first event).
        t_end_us: end in microseconds (None: to the last event).
        relative: times are measured from the recording's first event (docs/SEMANTICS.md#timestamps: time 0 of a
            sample is its first event), which is what a per-dataset option needs; ``False`` uses
            the timestamps as decoded from the file.

    Returns:
        new array with the kept events; timestamps are *not* shifted.
    """
    start = _time(t_start_us, "--t-start-us")
    end = _time(t_end_us, "--t-end-us")
    if start is not None and end is not None and end < start:
        raise OptionError(f"--t-end-us ({end}) is before --t-start-us ({start})", option="--t-end-us")
    ev = _events(events)
    if ev.shape[0] == 0:
        return ev.copy()
    origin = int(ev["t"].min()) if relative else 0
    lo = np.iinfo(np.int64).min if start is None else origin + start
    hi = np.iinfo(np.int64).max if end is None else origin + end
    return _tonic().CropTime(min=lo, max=hi)(ev)


def _time(value, option: str):
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        raise OptionError(f"expected microseconds, got {shown(value)}", option=option)
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        raise OptionError(f"expected integer microseconds, got {shown(value)}", option=option) from None
    if number != value:
        raise OptionError(f"expected integer microseconds, got {shown(value)}", option=option)
    if abs(number) >= T_LIMIT_US:  # timestamps are below 2**53 us; so are the spans added to them
        raise OptionError(f"must be below 2**53 us in magnitude, got {shown(value)}", option=option)
    if number < 0 and option != "--t-start-us":
        raise OptionError(f"must be >= 0, got {shown(value)}", option=option)
    return number


def merge_polarities(events: np.ndarray) -> np.ndarray:
    """Set every polarity to 0 (``tonic.transforms.MergePolarities``), for single-channel inputs."""
    return _tonic().MergePolarities()(_events(events))


# ---------------------------------------------------------------------------------------------
# Options -> one transform
# ---------------------------------------------------------------------------------------------

#: The order in which :func:`build_transform` applies the steps. Time crop first (cheapest);
#: denoise at the native resolution (its neighbourhood is one sensor pixel); downsample before
#: the spatial crop, so that ``crop`` is given in the final (model input) resolution.
TRANSFORM_ORDER = ("crop_time", "denoise", "downsample", "crop", "merge_polarities")

_SPEC_KEYS = ("t_start_us", "t_end_us", "denoise_us", "downsample", "time_factor", "crop",
              "merge_polarities", "sensor_size")


@dataclass(frozen=True)
class Transform:
    """A fixed sequence of steps ``((name, params), ...)`` in :data:`TRANSFORM_ORDER`.

    Call it on events (``transform(events, sensor_size)``) or on a recording
    (:meth:`apply`). ``sensor_size`` is needed by ``crop`` only; it falls back to the one given in
    the options.
    """

    steps: tuple = ()
    sensor_size: tuple[int, int, int] | None = None

    def __bool__(self) -> bool:
        return bool(self.steps)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.steps)

    def __call__(self, events: np.ndarray, sensor_size=None) -> np.ndarray:
        """Apply the steps to ``events``; ``sensor_size`` (W, H[, P]) of the recording."""
        return self._run(events, sensor_size)[0]

    def output_sensor_size(self, sensor_size=None):
        """Sensor size (W, H, P) after the steps (``None`` if unknown and not fixed by a crop)."""
        size = self._input_size(sensor_size, required=False)
        for name, params in self.steps:
            size = _next_size(name, params, size)
        return size

    def apply(self, rec):
        """A new :class:`~evsim.input.recordings.Recording` with transformed events and sensor size."""
        events, size = self._run(rec.events, rec.sensor_size)
        return replace(rec, events=events, sensor_size=size)

    def _input_size(self, sensor_size, required: bool):
        size = sensor_size if sensor_size is not None else self.sensor_size
        if size is None:
            if required:
                raise OptionError(
                    "crop needs the sensor size, which the recording does not declare; "
                    "give it with --sensor-size WxH (sensor_size= in the API)",
                    option="--crop",
                )
            return None
        return _sensor_size(size)

    def _run(self, events, sensor_size):
        size = self._input_size(sensor_size, required="crop" in self.names)
        out = _events(events)
        for name, params in self.steps:
            if name == "crop":
                out = crop(out, size, params["target_size"])
            else:
                out = _FUNCTIONS[name](out, **params)
            size = _next_size(name, params, size)
        return out, size


def _next_size(name, params, size):
    if name == "downsample" and size is not None:
        fx, fy = params["spatial_factor"]
        return (_scaled_side(size[0], fx, "width"), _scaled_side(size[1], fy, "height"), size[2])
    if name == "crop":
        w, h = params["target_size"]
        return (w, h, 2 if size is None else size[2])
    if name == "merge_polarities" and size is not None:
        return (size[0], size[1], 1)
    return size


def _scaled_side(side: int, factor: float, what: str) -> int:
    """The sensor side holding the downsampled addresses 0..side-1; refused beyond int16."""
    scaled = (side - 1) * factor  # Python float: inf at worst, never a warning
    if not scaled < _MAX_SIZE:
        raise OptionError(f"factor {factor:g} takes the sensor {what} {side} beyond {_MAX_SIZE} pixels, "
                          "the most an event address can hold", option="--downsample")
    return math.floor(scaled) + 1


_FUNCTIONS = {
    "crop_time": crop_time,
    "denoise": denoise,
    "downsample": downsample,
    "merge_polarities": merge_polarities,
}


def build_transform(spec: dict | None) -> Transform:
    """Build the pre-simulation transform from options; ``None`` values (and ``False`` for
    ``merge_polarities``) mean "not asked for". Steps run in :data:`TRANSFORM_ORDER`.

    Keys:
        ``t_start_us``, ``t_end_us``: keep this time window, microseconds from the first event
        (:func:`crop_time`).
        ``denoise_us``: :func:`denoise` window in microseconds.
        ``downsample``: spatial factor, or (fx, fy) (:func:`downsample`);
        ``time_factor``: timestamp factor for the same step (default 1).
        ``crop``: (w, h) or one int, a centre crop in the downsampled resolution (:func:`crop`).
        ``merge_polarities``: True to map every polarity to 0.
        ``sensor_size``: (W, H[, P]) used by ``crop`` when a recording does not declare its own.

    Example:
        ``build_transform({"denoise_us": 5000, "downsample": 0.5, "crop": (32, 32)})``

    Raises:
        OptionError: unknown key or invalid value.
    """
    spec = dict(spec or {})
    unknown = sorted(set(spec) - set(_SPEC_KEYS))
    if unknown:
        raise OptionError(
            f"unknown transform option(s) {', '.join(unknown)} (known: {', '.join(_SPEC_KEYS)})",
            option=unknown[0],
        )
    steps = []
    start, end = spec.get("t_start_us"), spec.get("t_end_us")
    if start is not None or end is not None:
        start, end = _time(start, "--t-start-us"), _time(end, "--t-end-us")
        if start is not None and start < 0:
            raise OptionError(f"must be >= 0, got {start}", option="--t-start-us")
        if start is not None and end is not None and end < start:
            raise OptionError(f"--t-end-us ({end}) is before --t-start-us ({start})", option="--t-end-us")
        steps.append(("crop_time", {"t_start_us": start, "t_end_us": end}))
    if spec.get("denoise_us") is not None:
        steps.append(("denoise", {"filter_time_us": _positive_number(spec["denoise_us"], "--denoise-us")}))
    factor, time_factor = spec.get("downsample"), spec.get("time_factor")
    if factor is not None or time_factor is not None:
        fx, fy = _pair(1 if factor is None else factor, "--downsample", _spatial_factor)
        ft = 1 if time_factor is None else _time_factor(time_factor, "time_factor")
        if (fx, fy, ft) != (1, 1, 1):
            steps.append(("downsample", {"spatial_factor": (fx, fy), "time_factor": ft}))
    if spec.get("crop") is not None:
        steps.append(("crop", {"target_size": _pair(spec["crop"], "--crop", _window_size)}))
    merge = spec.get("merge_polarities")
    if merge is not None and not isinstance(merge, (bool, np.bool_)):
        raise OptionError(f"expected true or false, got {merge!r}", option="--merge-polarities")
    if merge:
        steps.append(("merge_polarities", {}))
    sensor = spec.get("sensor_size")
    return Transform(steps=tuple(steps), sensor_size=None if sensor is None else _sensor_size(sensor))

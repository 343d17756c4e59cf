"""The time window of a sample (docs/SEMANTICS.md#time-window).

A sample's time 0 is its **time origin**: its first event (``"first-event"``, the default) or
t = 0 of the recording (``"zero"``, for datasets whose samples share a fixed frame that starts
before the first event, such as Braille or N-MNIST's 300 ms saccades). With a **duration** D the
sample spans ``[origin, origin + D)``: events at or after ``origin + D`` are not part of it, the
clock mode's bins cover the whole span (``ceil(D / bin)`` steps), and the event mode advances the
state to ``origin + D`` after the last event (queued crossings and delayed spikes up to then are
processed, the readout is taken at D). Without a duration the sample ends at its last event.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import OptionError
from ..model.profiles import MIN_TIME_STEP_US

TIME_ORIGINS = ("first-event", "zero")


def check_time_span(value: float, option: str) -> None:
    """OptionError unless ``value`` (µs) is a duration evsim can divide time by: finite, at least
    :data:`~evsim.model.profiles.MIN_TIME_STEP_US` (a denormal width makes infinitely many bins)
    and below 2**53 µs."""
    if not (np.isfinite(value) and MIN_TIME_STEP_US <= value < 2.0 ** 53):
        raise OptionError(f"must be at least {MIN_TIME_STEP_US:g} µs (a nanosecond) and below 2**53 µs", option=option)


@dataclass(frozen=True)
class SampleWindow:
    """Where a sample starts (``time_origin``) and how long it lasts (``duration_us``, µs, or
    None: up to its last event)."""

    time_origin: str = "first-event"
    duration_us: float | None = None

    def __post_init__(self):
        if self.time_origin not in TIME_ORIGINS:
            raise OptionError(f"must be one of {', '.join(TIME_ORIGINS)}, got {self.time_origin!r}",
                              option="--time-origin")
        d = self.duration_us
        if d is not None:
            if isinstance(d, bool) or not isinstance(d, (int, float, np.integer, np.floating)):
                raise OptionError(f"must be a number of microseconds, got {d!r}", option="--duration-us")
            check_time_span(d, "--duration-us")

    @property
    def fixed(self) -> bool:
        """True when the window does not depend on the events (origin 0 and a duration)."""
        return self.time_origin == "zero" and self.duration_us is not None

    def origin_us(self, first_event_us: int | None) -> int | None:
        """Time 0 of the sample in the recording's µs (None: an empty sample with origin
        first-event has none)."""
        if self.time_origin == "zero":
            return 0
        return None if first_event_us is None else int(first_event_us)

    def n_inside(self, t_us: np.ndarray, origin_us: int) -> int:
        """How many of the sorted timestamps lie inside the window (a prefix of the events)."""
        if self.duration_us is None or t_us.size == 0:
            return int(t_us.size)
        return int(np.searchsorted(np.asarray(t_us, dtype=np.int64) - origin_us, self.duration_us, side="left"))

    def clip(self, events: np.ndarray, origin_us: int | None) -> np.ndarray:
        """The sorted events that are part of the sample (a prefix: later events lie outside)."""
        if self.duration_us is None or origin_us is None or events.shape[0] == 0:
            return events
        return events[:self.n_inside(events["t"], origin_us)]

    def describe(self) -> dict:
        return {"time_origin": self.time_origin, "duration_us": self.duration_us}

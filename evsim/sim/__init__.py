"""Simulation: the event-driven simulator (:mod:`.event` over the compiled loop in :mod:`.engine`),
the clock-driven baseline (:mod:`.clock`) and what both share (:mod:`.result`)."""

#: the simulation modes (``--mode``): fully event-driven, or the clock-driven baseline
MODES = ("event", "clock")
#: state and weight precisions (``--precision``)
PRECISIONS = ("float32", "float64")
#: the event engine's default budget per sample: processed spikes + queued items before a run is
#: stopped as runaway (``--budget``, docs/SEMANTICS.md)
DEFAULT_BUDGET = 20_000_000

"""Simulation: the event-driven simulator (:mod:`.event` over the compiled loop in :mod:`.engine`),
the clock-driven baseline (:mod:`.clock`) and what both share (:mod:`.result`)."""

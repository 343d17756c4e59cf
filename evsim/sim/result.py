"""What every simulation mode shares: the cutoff rule's parameters, the result of a sample and the
prediction rule."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..kernels.abi import CUTOFF_RULES
from ..kernels.readout import cutoff_array
from ..errors import OptionError


@dataclass
class Cutoff:
    """When to stop consuming input (docs/SEMANTICS.md#cutoff).

    The confidence of the accumulated output vector a(t) is re-evaluated whenever a(t) changes;
    when it reaches the threshold the engine stops consuming input.

    Attributes:
        mode: "none", "conf" (confidence = max softmax(a/T)) or "topk" (confidence = top1 − top2).
        epsilon: conf: decide when max softmax ≥ 1 − ε (unless ``threshold`` is given).
        temperature: T of the softmax.
        threshold: the confidence threshold (β for topk; for conf it replaces 1 − ε).
        table / bin_width_us: a threshold per elapsed-time bin instead (e.g. from calibration);
            the last bin extends to infinity; ``inf`` entries never decide.
        max_time_us: stop consuming input after this much time since the first event.
        max_events: stop after this many input events.
    """

    mode: str = "none"
    epsilon: float = 0.05
    temperature: float = 1.0
    threshold: float | None = None
    table: list | None = None
    bin_width_us: float = 0.0
    max_time_us: float | None = None
    max_events: int | None = None

    def __post_init__(self):
        if self.mode not in CUTOFF_RULES:
            raise OptionError(f"must be {', '.join(CUTOFF_RULES)}, got {self.mode!r}", option="--cutoff")
        if self.mode == "conf" and self.threshold is None and self.table is None and not (0.0 < self.epsilon < 1.0):
            raise OptionError("must be in (0, 1)", option="--epsilon")
        if self.mode == "topk" and self.threshold is None and self.table is None:
            raise OptionError("the topk cutoff needs a threshold (--threshold) or a calibration", option="--threshold")
        if not (np.isfinite(self.temperature) and self.temperature > 0):
            raise OptionError("must be a finite number > 0", option="--temperature")
        if self.threshold is not None and not np.isfinite(self.threshold):
            raise OptionError("must be a finite number", option="--threshold")
        if self.table is not None and len(self.table) > 1 and not self.bin_width_us > 0:
            raise OptionError("a threshold table needs a bin width > 0", option="--calibration")
        if self.max_time_us is not None and not (np.isfinite(self.max_time_us) and self.max_time_us >= 0):
            raise OptionError("must be a finite number >= 0", option="--max-time-us")
        if self.max_events is not None and self.max_events < 0:
            raise OptionError("must be >= 0", option="--max-events")

    @property
    def global_threshold(self) -> float:
        if self.threshold is not None:
            return float(self.threshold)
        return 1.0 - self.epsilon if self.mode == "conf" else 0.0

    def as_array(self) -> np.ndarray:
        mode = CUTOFF_RULES[self.mode]
        table = None
        if self.table is not None:
            table = [np.inf if v is None else float(v) for v in self.table]
        return cutoff_array(mode, self.temperature, self.global_threshold, table, self.bin_width_us)

    def describe(self) -> dict:
        """The cutoff as written in result files."""
        d = {"mode": self.mode}
        if self.mode == "conf":
            d.update(temperature=self.temperature)
        if self.mode != "none":
            if self.table is not None:
                d.update(table=[None if v is None or not np.isfinite(v) else float(v) for v in self.table],
                         bin_width_us=self.bin_width_us)
            else:
                d.update(threshold=self.global_threshold)
        if self.mode == "conf" and self.threshold is None and self.table is None:
            d.update(epsilon=self.epsilon)
        if self.max_time_us is not None:
            d["max_time_us"] = self.max_time_us
        if self.max_events is not None:
            d["max_events"] = self.max_events
        return d


SPIKE_RECORD_DTYPE = np.dtype([("node", "<i4"), ("neuron", "<i8"), ("t_us", "<f8"), ("count", "<i4")])
TRACE_DTYPE = np.dtype([("node", "<i4"), ("neuron", "<i8"), ("t_us", "<f8"), ("v", "<f8"), ("i_syn", "<f8")])


@dataclass
class Result:
    """What one simulated sample produced.

    Attributes:
        prediction: argmax of the output vector (ties: lowest index), None without output activity.
        output: accumulated output vector a(t) at the end (spike counts or readout state), NIR order.
        output_counts: spike counts per output neuron (counts readout), else None.
        events_consumed / events_total: input events consumed / in the recording.
        synops: synaptic operations (one per weight added to a target neuron, × spike count).
        spikes_per_node: spikes emitted per population (the Input counts consumed events).
        status: "complete", "cutoff" (confident: input consumption stopped) or "budget"
            (processing budget exhausted: runaway activity, result flagged).
        decision_time_us: time of the cutoff decision since the first event (None without one);
            for "complete" runs the time of the last event processed.
        confidence: confidence at the decision (softmax max for conf, top1 − top2 for topk).
        crossings: predicted threshold crossings that fired between inputs.
        spikes: structured array (node index, neuron (NIR flat index), t_us, count) if recorded.
        traces: structured array of state samples of traced neurons, if requested.
        output_record: (t_us, events_consumed, vectors) every time the output changed, if recorded.
        node_names: population names, indexing ``spikes['node']``.
    """

    prediction: int | None
    output: np.ndarray
    output_counts: np.ndarray | None
    events_consumed: int
    events_total: int
    synops: int
    spikes_per_node: dict
    status: str
    decision_time_us: float | None
    confidence: float | None
    crossings: int
    node_names: list
    spikes: np.ndarray | None = None
    traces: np.ndarray | None = None
    output_record: tuple | None = None
    extra: dict = field(default_factory=dict)

    @property
    def events_fraction(self) -> float:
        return self.events_consumed / self.events_total if self.events_total else 0.0


def predict(output: np.ndarray) -> int | None:
    """argmax with ties to the lowest index; None when there is no output activity at all."""
    if output.size == 0 or not output.any():
        return None
    return int(output.argmax())


def truncation_status(status: str, cutoff: Cutoff, consumed: int, total: int) -> str:
    """A run that ended because of an input limit says so: "event budget" (``--max-events``) or
    "time budget" (``--max-time-us``) when events were left unread; otherwise ``status``."""
    if status != "complete" or consumed >= total:
        return status
    if cutoff.max_events is not None and consumed >= cutoff.max_events:
        return "event budget"
    if cutoff.max_time_us is not None:
        return "time budget"
    return status

"""What every simulation mode shares: the cutoff rule's parameters, the result of a sample and the
prediction rule."""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field

import numpy as np

from ..kernels.abi import CUTOFF_RULES
from ..kernels.readout import cutoff_array
from ..errors import OptionError, real_option, shown


#: The smallest bin width of a threshold table, µs: the engine computes a bin as int(t / width) in
#: 64 bits, which a smaller width (1e-300 µs, a typo) overflows into a wrong table entry.
MIN_BIN_WIDTH_US = 1e-3


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
        """Every field checked for type and range as the command line checks its options
        (docs/SEMANTICS.md#cutoff): a wrong one is an OptionError naming it."""
        if not isinstance(self.mode, str) or self.mode not in CUTOFF_RULES:
            raise OptionError(f"must be {', '.join(CUTOFF_RULES)}, got {shown(self.mode)}", option="--cutoff")
        epsilon = real_option(self.epsilon, "--epsilon")
        if not 0.0 < epsilon < 1.0:
            raise OptionError(f"must be in (0, 1), got {epsilon:g}", option="--epsilon")
        temperature = real_option(self.temperature, "--temperature")
        if not (np.isfinite(temperature) and temperature > 0):
            raise OptionError(f"must be a finite number > 0, got {temperature:g}", option="--temperature")
        if self.mode == "none" and (self.threshold is not None or self.table is not None):
            raise OptionError("has no effect without a cutoff: give mode 'topk' or 'conf'",
                              option="--threshold" if self.threshold is not None else "table")
        if self.threshold is not None and self.table is not None:
            raise OptionError("give either a threshold or a table of thresholds, not both", option="--threshold")
        if self.mode == "topk" and self.threshold is None and self.table is None:
            raise OptionError("the topk cutoff needs a threshold (--threshold) or a calibration", option="--threshold")
        if self.threshold is not None:
            threshold = real_option(self.threshold, "--threshold")
            if not np.isfinite(threshold):
                raise OptionError(f"must be a finite number, got {threshold:g}", option="--threshold")
            if self.mode == "conf" and not 0.0 < threshold <= 1.0:
                effect = "could never decide" if threshold > 1.0 else "would decide at the first output change"
                raise OptionError(f"a softmax level lies in (0, 1], got {threshold:g}: the conf cutoff {effect}",
                                  option="--threshold")
            if self.mode == "topk" and not threshold > 0.0:
                raise OptionError(f"must be > 0, got {threshold:g}: top1 − top2 is >= 0, so the topk cutoff would "
                                  "decide at the first output change", option="--threshold")
        bin_width = real_option(self.bin_width_us, "bin_width_us")
        if not (np.isfinite(bin_width) and (bin_width == 0.0 or bin_width >= MIN_BIN_WIDTH_US)):
            raise OptionError(f"must be 0 or a finite number >= {MIN_BIN_WIDTH_US:g} µs, got {bin_width:g}",
                              option="bin_width_us")
        if self.table is not None:
            self._check_table(bin_width)
        if self.max_time_us is not None:
            max_time = real_option(self.max_time_us, "--max-time-us")
            if not (np.isfinite(max_time) and 0 <= max_time < 2.0 ** 53):
                raise OptionError(f"must be a finite number >= 0 and below 2**53 µs, got {max_time:g}",
                                  option="--max-time-us")
        if self.max_events is not None:
            if isinstance(self.max_events, (bool, np.bool_)) or not isinstance(self.max_events, numbers.Integral):
                raise OptionError(f"must be an integer >= 0, got {shown(self.max_events)}", option="--max-events")
            if self.max_events < 0:
                raise OptionError(f"must be >= 0, got {self.max_events}", option="--max-events")

    def _check_table(self, bin_width: float) -> None:
        """A table: a non-empty sequence of thresholds, each None or inf (never decides in its bin)
        or a level the rule can reach (conf: in (0, 1]; topk: >= 0, as a calibration writes it)."""
        table = self.table
        if isinstance(table, np.ndarray):
            if table.ndim != 1:
                raise OptionError(f"must be one-dimensional (one threshold per bin), got shape {table.shape}",
                                  option="table")
            table = table.tolist()
        if isinstance(table, (str, bytes, dict, set)) or not isinstance(table, (list, tuple)):
            raise OptionError(f"must be a list of thresholds (one per bin), got {shown(table)}", option="table")
        if len(table) == 0:
            raise OptionError("is empty: give at least one threshold (None or inf: never decide)", option="table")
        for k, v in enumerate(table):
            if v is None:
                continue
            x = real_option(v, f"table[{k}]")
            if np.isnan(x):
                raise OptionError("is NaN (None or inf: never decide in this bin)", option=f"table[{k}]")
            if x == np.inf:
                continue
            if self.mode == "conf" and not 0.0 < x <= 1.0:
                raise OptionError(f"a softmax level lies in (0, 1] (None or inf: never decide), got {x:g}",
                                  option=f"table[{k}]")
            if self.mode == "topk" and not x >= 0.0:
                raise OptionError(f"a top1 − top2 gap must be >= 0 (None or inf: never decide), got {x:g}",
                                  option=f"table[{k}]")
        if len(table) > 1 and not bin_width > 0:
            raise OptionError("a threshold table needs a bin width > 0", option="bin_width_us")

    @property
    def stops_early(self) -> bool:
        """Whether a run under this cutoff can end before the input does (a rule or a limit)."""
        return self.mode != "none" or self.max_time_us is not None or self.max_events is not None

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

"""The semantic rules, written once and checked in both simulation modes.

Each rule (threshold test > / ≥, one spike or MultiSpike, reset by subtraction or to v_reset,
floor, refractory hold, cutoff decisions, SynOps) is computed by hand in this file and compared
with the event engine and the clock mode (``mode`` fixture). The inputs are one event per 1 ms
clock step, at the middle of the step, weights are binary fractions (exact sums) and the state
is float64, so both modes must match the hand computation exactly: an IF neuron without bias has
no dynamics, so where within the step its input arrives does not matter.

Also here: the engine's vectorised delivery (``_deliver_uniform``) against its per-neuron path,
and a run with numba's bounds checking switched on.
"""

from __future__ import annotations

import hashlib
import math
import os
import subprocess
import sys

import nir
import numpy as np
import pytest

import evsim
from evsim.bundled import BUNDLED_MODEL, BUNDLED_SAMPLES
from evsim.sim.clock import ClockSimulator

from _nirgraphs import graph, inp, out
from conftest import REPO_ROOT

STEP_US = 1000


@pytest.fixture(params=["event", "clock"])
def mode(request):
    return request.param


def simulate(model, events, mode, **kw):
    if mode == "event":
        return evsim.Simulator(model, record_spikes=True, **kw).run(events)
    return ClockSimulator(model, bin_us=STEP_US, record_spikes=True, **kw).run(events)


def one_per_step(inputs) -> np.ndarray:
    """One event per step, in the middle of the step: event k addresses input ``inputs[k]``."""
    n = len(inputs)
    return evsim.make_events(STEP_US // 2 + STEP_US * np.arange(n), np.asarray(inputs))


def spikes_per_event(result, node: str, n_events: int, mode: str, neuron: int = 0) -> list:
    """Spikes of one neuron caused by each input event (event mode: at the event's time; clock
    mode: at the end of the event's step)."""
    p = result.node_names.index(node)
    sp = result.spikes[(result.spikes["node"] == p) & (result.spikes["neuron"] == neuron)]
    k = np.round(sp["t_us"] / STEP_US).astype(np.int64) - (1 if mode == "clock" else 0)
    counts = np.zeros(n_events, dtype=np.int64)
    np.add.at(counts, k, sp["count"])
    return counts.tolist()


def single_if(weights, theta=1.0, v_reset=0.0) -> nir.NIRGraph:
    """Input(len(weights)) → Linear(1 × n) → IF(θ, v_reset) → Output."""
    n = len(weights)
    nodes = {"input": inp((n,)), "fc": nir.Linear(weight=np.asarray(weights, float).reshape(1, n)),
             "lif": nir.IF(r=np.ones(1), v_threshold=np.full(1, theta), v_reset=np.full(1, v_reset)),
             "output": out((1,))}
    return graph(nodes, [("input", "fc"), ("fc", "lif"), ("lif", "output")])


def hand_if(xs, *, theta=1.0, ge, multi, subtract, v_reset=0.0, v_min=None, refractory_us=0.0) -> list:
    """The spike rule by hand: the input x_k arrives at t_k = k·1 ms (discarded while held);
    threshold test; n spikes (1, or floor(v/θ) for ≥ / ceil(v/θ) − 1 for >, at least 1);
    reset v − n·θ or v_reset; floor at v_min; held for ``refractory_us`` after a spike."""
    v, held_until, out_ = 0.0, -math.inf, []
    for k, x in enumerate(xs):
        t = k * STEP_US
        if t < held_until:
            out_.append(0)
            continue
        v += x
        n = 0
        if (v >= theta) if ge else (v > theta):
            n = 1 if not multi else max(1, math.floor(v / theta) if ge else math.ceil(v / theta) - 1)
            v = v - n * theta if subtract else v_reset
            held_until = t + refractory_us
        if v_min is not None:
            v = max(v, v_min)
        out_.append(n)
    return out_


RULES = {
    # name: (model overrides, hand rule options)
    "strict >, one spike, reset to zero": (dict(threshold_ge=False, spikes_per_update="one", reset="zero"),
                                           dict(ge=False, multi=False, subtract=False)),
    "≥, one spike, reset to zero": (dict(threshold_ge=True, spikes_per_update="one", reset="zero"),
                                    dict(ge=True, multi=False, subtract=False)),
    "≥, one spike, subtract": (dict(threshold_ge=True, spikes_per_update="one", reset="subtract"),
                               dict(ge=True, multi=False, subtract=True)),
    "≥, MultiSpike, subtract": (dict(threshold_ge=True, spikes_per_update="multi", reset="subtract"),
                                dict(ge=True, multi=True, subtract=True)),
    "strict >, MultiSpike, subtract": (dict(threshold_ge=False, spikes_per_update="multi", reset="subtract"),
                                       dict(ge=False, multi=True, subtract=True)),
}


@pytest.mark.parametrize("rule", sorted(RULES))
def test_spike_rule(mode, rule):
    overrides, hand = RULES[rule]
    w = [0.5, 1.25, 2.0, -0.75]  # exact binary fractions: v lands on θ and on multiples of θ
    rng = np.random.default_rng(7)
    inputs = rng.integers(0, len(w), 60)
    xs = [w[i] for i in inputs]
    model = evsim.load_model(single_if(w), precision="float64", **overrides)
    res = simulate(model, one_per_step(inputs), mode)
    expected = hand_if(xs, **hand)
    assert spikes_per_event(res, "lif", len(xs), mode) == expected
    assert sum(expected) > 5


def test_spike_rule_threshold_equality_matters(mode):
    """v reaching θ exactly: a spike under ≥, none under > (the rule is really exercised)."""
    w = [0.5]
    ge = evsim.load_model(single_if(w), precision="float64", threshold_ge=True, reset="zero")
    gt = evsim.load_model(single_if(w), precision="float64", threshold_ge=False, reset="zero")
    ev = one_per_step([0, 0, 0])
    assert spikes_per_event(simulate(ge, ev, mode), "lif", 3, mode) == [0, 1, 0]
    assert spikes_per_event(simulate(gt, ev, mode), "lif", 3, mode) == [0, 0, 1]


@pytest.mark.parametrize("v_min", [-1.0, -0.25])
def test_floor(mode, v_min):
    w = [0.75, -0.5]
    inputs = [1, 1, 1, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0]
    xs = [w[i] for i in inputs]
    model = evsim.load_model(single_if(w), precision="float64", threshold_ge=True, reset="subtract", v_min=v_min)
    res = simulate(model, one_per_step(inputs), mode)
    assert spikes_per_event(res, "lif", len(xs), mode) == hand_if(xs, ge=True, multi=False, subtract=True, v_min=v_min)
    # without the floor the same inputs give other spikes (the floor is really reached)
    assert hand_if(xs, ge=True, multi=False, subtract=True) != hand_if(xs, ge=True, multi=False, subtract=True, v_min=v_min)


@pytest.mark.parametrize("refractory_us", [1400.0, 2400.0])
def test_refractory_hold(mode, refractory_us):
    """Inputs arriving within the refractory period after a spike are discarded. (The clock
    mode holds round(period / step) steps; at 1.4 ms and 2.4 ms that is the inputs the event
    engine discards too.)"""
    w = [0.5, 1.0]
    rng = np.random.default_rng(3)
    inputs = rng.integers(0, 2, 40)
    xs = [w[i] for i in inputs]
    model = evsim.load_model(single_if(w), precision="float64", threshold_ge=True, reset="subtract",
                             refractory_us=refractory_us)
    expected = hand_if(xs, ge=True, multi=False, subtract=True, refractory_us=refractory_us)
    assert spikes_per_event(simulate(model, one_per_step(inputs), mode), "lif", len(xs), mode) == expected
    assert expected != hand_if(xs, ge=True, multi=False, subtract=True)  # the hold changes something


# ------------------------------------------------------------------------------------------
# cutoff decisions
# ------------------------------------------------------------------------------------------


def counter_model(weight=1.0):
    """Input(3) → weight × identity → IF(θ = 1, ≥, subtract): with weight 1 every event is one
    spike of the output of its class, so the output vector is the event count per class; with
    weight 1/2 every second event of a class is one, the first of each pair leaves the readout
    below threshold."""
    nodes = {"input": inp((3,)), "fc": nir.Linear(weight=weight * np.eye(3)),
             "lif": nir.IF(r=np.ones(3), v_threshold=np.ones(3), v_reset=np.zeros(3)), "output": out((3,))}
    return evsim.load_model(graph(nodes, [("input", "fc"), ("fc", "lif"), ("lif", "output")]), precision="float64",
                            threshold_ge=True, reset="subtract")


CLASSES = [1, 0, 1, 2, 0, 0, 1, 0, 0, 2, 0, 0, 0, 1]


def hand_confidences(rule: str, temperature: float) -> list:
    """Confidence after each event: max softmax(a/T) or top1 − top2 of the class counts."""
    a, out_ = [0, 0, 0], []
    for c in CLASSES:
        a[c] += 1
        if rule == "conf":
            out_.append(1.0 / sum(math.exp((x - max(a)) / temperature) for x in a))
        else:
            top = sorted(a)
            out_.append(top[-1] - top[-2])
    return out_


@pytest.mark.parametrize("rule, temperature", [("topk", 1.0), ("conf", 1.0), ("conf", 3.0)])
def test_cutoff_decision(mode, rule, temperature):
    conf = hand_confidences(rule, temperature)
    levels = sorted(set(conf))
    for lo, hi in zip(levels[:-1], levels[1:]):
        threshold = (lo + hi) / 2  # between two observed values: no rounding question here
        k = next(i for i, c in enumerate(conf) if c >= threshold)
        counts = np.bincount(CLASSES[:k + 1], minlength=3)
        res = simulate(counter_model(), one_per_step(CLASSES), mode,
                       cutoff=evsim.Cutoff(mode=rule, threshold=threshold, temperature=temperature))
        assert res.status == "cutoff"
        assert res.events_consumed == k + 1
        assert res.decision_time_us == (k + (1 if mode == "clock" else 0)) * STEP_US
        assert res.prediction == int(np.argmax(counts))
        np.testing.assert_array_equal(res.output, counts)
        assert res.confidence == pytest.approx(conf[k], rel=1e-12)
    # above every observed confidence (a conf level stays within (0, 1]): never decided
    above = levels[-1] + 1.0 if rule == "topk" else (levels[-1] + 1.0) / 2
    assert above > levels[-1]
    res = simulate(counter_model(), one_per_step(CLASSES), mode,
                   cutoff=evsim.Cutoff(mode=rule, threshold=above, temperature=temperature))
    assert res.status == "complete" and res.events_consumed == len(CLASSES)


def test_cutoff_threshold_table_by_elapsed_time(mode):
    """A table [3, 1] with 4 ms bins: gap ≥ 3 needed before 4 ms, gap ≥ 1 afterwards (the
    decision time of the clock mode is the end of the step)."""
    conf = hand_confidences("topk", 1.0)
    t_of = [(k + (1 if mode == "clock" else 0)) * STEP_US for k in range(len(CLASSES))]
    k = next(i for i, (c, t) in enumerate(zip(conf, t_of)) if c >= (3 if t < 4 * STEP_US else 1))
    res = simulate(counter_model(), one_per_step(CLASSES), mode,
                   cutoff=evsim.Cutoff(mode="topk", table=[3.0, 1.0], bin_width_us=4 * STEP_US))
    assert res.status == "cutoff" and res.events_consumed == k + 1


def test_event_output_record_and_cutoff_only_at_output_changes():
    """A spike-count readout records a row, and evaluates the cutoff rule, only after a cascade in
    which a readout neuron fired: input that leaves the readout below threshold adds no row, and
    a threshold that drops between two output changes decides at the next change, not at the
    next input (the event engine; the clock mode records every step by definition)."""
    counts, rows, gap_at = [0, 0, 0], [], []
    seen = [0, 0, 0]
    for k, c in enumerate(CLASSES):  # by hand: which events make a spike, the vector after them
        seen[c] += 1
        if seen[c] % 2 == 0:
            counts[c] += 1
            rows.append((k, list(counts)))
            top = sorted(counts)
            gap_at.append((k, top[-1] - top[-2]))
    res = evsim.Simulator(counter_model(weight=0.5), record_output=True).run(one_per_step(CLASSES))
    t, consumed, vectors = res.output_record
    assert len(rows) < len(CLASSES)  # some events leave the readout below threshold
    assert [int(x) for x in consumed] == [k + 1 for k, _ in rows]
    np.testing.assert_array_equal(t, [k * STEP_US for k, _ in rows])  # (elapsed since the first event)
    np.testing.assert_array_equal(vectors, [v for _, v in rows])
    # a table [big, 0.5] whose threshold drops at a bin edge that falls between two changes, just
    # before an input event that changes nothing: the decision waits for the next change
    for edge_k in range(1, len(CLASSES)):
        before_change = [k for k, _ in rows if k >= edge_k]
        if not before_change or before_change[0] == edge_k:
            continue
        edge_us = edge_k * STEP_US  # event edge_k (elapsed edge_k ms) is the first in the new bin
        want = next((k for k, gap in gap_at if (gap >= 0.5 if k >= edge_k else gap >= 100)), None)
        assert want is not None and want > edge_k
        cut = evsim.Cutoff(mode="topk", table=[100.0, 0.5], bin_width_us=edge_us)
        res = evsim.Simulator(counter_model(weight=0.5), cutoff=cut).run(one_per_step(CLASSES))
        assert res.status == "cutoff"
        assert res.events_consumed == want + 1, edge_k
        assert res.decision_time_us == want * STEP_US


# ------------------------------------------------------------------------------------------
# SynOps
# ------------------------------------------------------------------------------------------


def test_synops_count_every_target_of_a_fan_out(mode):
    """One SynOp per weight a spike adds to a target (zero weights included): each input event
    costs 3 (Input → 3 hidden), each hidden spike 2 (hidden → 2 outputs)."""
    w1 = np.array([[1.0, 0.0, 0.5, 0.25], [0.0, 0.75, 0.5, 0.0], [0.5, 0.5, 0.0, 1.0]])
    w2 = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5]])
    nodes = {"input": inp((4,)), "fc1": nir.Linear(weight=w1),
             "hid": nir.IF(r=np.ones(3), v_threshold=np.ones(3), v_reset=np.zeros(3)),
             "fc2": nir.Linear(weight=w2), "lif": nir.IF(r=np.ones(2), v_threshold=np.ones(2), v_reset=np.zeros(2)),
             "output": out((2,))}
    g = graph(nodes, [("input", "fc1"), ("fc1", "hid"), ("hid", "fc2"), ("fc2", "lif"), ("lif", "output")])
    model = evsim.load_model(g, precision="float64", threshold_ge=True, reset="subtract")
    inputs = np.random.default_rng(1).integers(0, 4, 50)
    res = simulate(model, one_per_step(inputs), mode)
    # the hidden spikes by hand (IF, ≥, subtract, one spike per update)
    v, hidden = np.zeros(3), 0
    for i in inputs:
        v += w1[:, i]
        fire = v >= 1.0
        hidden += int(fire.sum())
        v[fire] -= 1.0
    assert res.spikes_per_node["hid"] == hidden
    assert res.synops == 3 * len(inputs) + 2 * hidden


# ------------------------------------------------------------------------------------------
# the engine's fast delivery path and bounds checking
# ------------------------------------------------------------------------------------------


def bundled_recording():
    return evsim.read_recording(next(iter(sorted(BUNDLED_SAMPLES.glob("*/*.bin"))))).events


@pytest.mark.parametrize("profile", ["speck", "nir"])
def test_vectorised_delivery_equals_the_per_neuron_path(profile):
    """Tracing a neuron of a population sends every input to that population through the
    per-neuron path (``receive``) instead of the fused per-run loop (``_deliver_uniform``):
    the spikes must be bit-identical."""
    model = evsim.load_model(BUNDLED_MODEL, profile=profile)
    events = bundled_recording()
    fast = evsim.Simulator(model, record_spikes=True).run(events)
    names = [p.name for p in model.populations[1:]]
    slow = evsim.Simulator(model, record_spikes=True, trace={n: [0] for n in names}).run(events)
    assert slow.traces is not None and slow.traces.size > 0  # the per-neuron path really ran
    assert fast.spikes.size > 1000
    for field in ("node", "neuron", "t_us", "count"):
        np.testing.assert_array_equal(fast.spikes[field], slow.spikes[field])
    np.testing.assert_array_equal(fast.output, slow.output)
    assert fast.synops == slow.synops


_BOUNDS_SCRIPT = """
import hashlib, sys
import evsim
from evsim.bundled import BUNDLED_MODEL, BUNDLED_SAMPLES
events = evsim.read_recording(next(iter(sorted(BUNDLED_SAMPLES.glob("*/*.bin"))))).events[:3000]
model = evsim.load_model(BUNDLED_MODEL, profile="speck")
res = evsim.Simulator(model, record_spikes=True).run(events)
print(hashlib.sha256(res.spikes.tobytes()).hexdigest(), res.synops, res.prediction)
"""


def test_a_run_with_numba_bounds_checking_completes_with_the_same_result(tmp_path):
    """Every array access of the compiled loop checked (NUMBA_BOUNDSCHECK=1, compiled afresh in
    a temporary cache): no out-of-bounds access, and the same spikes."""
    env = dict(os.environ, NUMBA_BOUNDSCHECK="1", NUMBA_CACHE_DIR=str(tmp_path / "numba_cache"),
               PYTHONPATH=str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", _BOUNDS_SCRIPT], env=env, capture_output=True, text=True,
                          timeout=3000)
    assert proc.returncode == 0, proc.stderr[-3000:]
    events = bundled_recording()[:3000]
    res = evsim.Simulator(evsim.load_model(BUNDLED_MODEL, profile="speck"), record_spikes=True).run(events)
    assert proc.stdout.split() == [hashlib.sha256(res.spikes.tobytes()).hexdigest(), str(res.synops), str(res.prediction)]


def test_clock_snntorch_non_spiking_cubali_follows_the_synaptic_equations():
    """A CubaLI (no threshold, so no deferred reset) under the snntorch profile in clock mode:
    syn ← α·syn + x, mem ← β·mem + syn with α = 1 − dt/τ_syn, β = 1 − dt/τ_mem (dt = τ/r =
    1 ms, input factor w_in·dt/τ_syn = 1). (The step used to fail with a KeyError here.)"""
    n = 3
    w = np.array([[0.5, 0.0, 0.25, 1.0], [0.0, 0.5, 0.5, 0.0], [1.0, 1.0, 0.0, 0.25]])
    nodes = {"input": inp((4,)), "fc": nir.Linear(weight=w),
             "li": nir.CubaLI(tau_syn=np.full(n, 2e-3), tau_mem=np.full(n, 4e-3), r=np.full(n, 4.0), v_leak=np.zeros(n),
                              w_in=np.full(n, 2.0)),
             "output": out((n,))}
    model = evsim.load_model(graph(nodes, [("input", "fc"), ("fc", "li"), ("li", "output")]), profile="snntorch",
                             precision="float64")
    inputs = np.arange(20) % 4
    res = ClockSimulator(model, bin_us=STEP_US).run(one_per_step(inputs))
    syn, mem = np.zeros(n), np.zeros(n)
    for i in inputs:
        syn = 0.5 * syn + w[:, i]
        mem = 0.75 * mem + syn
    np.testing.assert_allclose(res.output, mem, rtol=1e-9)


@pytest.mark.parametrize("mode", ["event", "clock"])
def test_a_run_cut_by_an_input_limit_says_so(mode):
    """--max-time-us / --max-events that leave events unread end with their own status, never
    'complete' (a truncated run must not look like a whole one)."""
    import nir

    g = nir.NIRGraph(nodes={"input": nir.Input(input_type=np.array([2])), "fc": nir.Linear(weight=np.eye(2)),
                            "lif": nir.IF(r=np.ones(2), v_threshold=np.ones(2), v_reset=np.zeros(2)),
                            "output": nir.Output(output_type=np.array([2]))},
                     edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")], type_check=False)
    model = evsim.load_model(g, profile="sinabs", precision="float64")
    ev = evsim.make_events(t=np.arange(0, 10_000, 1000), x=np.zeros(10, dtype=int))

    def run(**cut):
        sim = (evsim.Simulator(model, cutoff=evsim.Cutoff(**cut)) if mode == "event"
               else evsim.ClockSimulator(model, bin_us=1000, cutoff=evsim.Cutoff(**cut)))
        return sim.run(ev)

    assert run(max_time_us=4500).status == "time budget"
    assert run(max_events=3).status == "event budget"
    assert run(max_time_us=1e9).status == "complete"   # nothing left unread
    assert run(max_events=10).status == "complete"

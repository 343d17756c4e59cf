"""Engine semantics (docs/SEMANTICS.md#event-order): cascade order, determinism, chunked feeding, budgets."""

from __future__ import annotations

import nir
import numpy as np
import pytest

import evsim
from evsim import make_events


def graph(nodes, edges):
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def IF(n, theta=0.5):
    return nir.IF(r=np.ones(n), v_threshold=np.full(n, theta), v_reset=np.zeros(n))


def cascade_graph():
    """Input A, B. A excites H (which excites O); B inhibits O directly."""
    return graph(
        {
            "input": nir.Input(input_type=np.array([2])),
            "to_h": nir.Linear(weight=np.array([[1.0, 0.0]])),
            "h": IF(1),
            "h_to_o": nir.Linear(weight=np.array([[1.0]])),
            "to_o": nir.Linear(weight=np.array([[0.0, -1.0]])),
            "o": IF(1),
            "output": nir.Output(output_type=np.array([1])),
        },
        [("input", "to_h"), ("to_h", "h"), ("h", "h_to_o"), ("h_to_o", "o"), ("input", "to_o"), ("to_o", "o"),
         ("o", "output")],
    )


def breadth_first_o_spikes(order):
    """What a global breadth-first order (all input spikes of a timestamp first, then their
    consequences layer by layer) would give: written out by hand for this graph."""
    v_h = v_o = 0.0
    h_spikes = 0
    o_spikes = 0
    for x in order:  # layer 1: every input event of the timestamp
        if x == 0:
            v_h += 1.0
            if v_h > 0.5:
                h_spikes += 1
                v_h = 0.0
        else:
            v_o -= 1.0
    for _ in range(h_spikes):  # layer 2: H's spikes reach O afterwards
        v_o += 1.0
        if v_o > 0.5:
            o_spikes += 1
            v_o = 0.0
    return o_spikes


def test_each_input_event_cascade_completes_before_the_next_even_at_equal_timestamps():
    model = evsim.load_model(cascade_graph())
    sim = evsim.Simulator(model)
    # A then B at the same timestamp: A's cascade (A -> H -> O fires) completes before B arrives
    res = sim.run(make_events([100, 100], [0, 1]))
    assert res.spikes_per_node["o"] == 1
    assert breadth_first_o_spikes([0, 1]) == 0  # a global breadth-first order would differ
    # file order is kept for equal timestamps: B first inhibits O, then A's cascade cannot fire it
    res = sim.run(make_events([100, 100], [1, 0]))
    assert res.spikes_per_node["o"] == 0


def mixed_model():
    """Conv -> IF -> LIF with a bias (predicted crossings) -> recurrent CubaLIF (delayed spikes)."""
    rng = np.random.default_rng(1)
    nodes = {
        "input": nir.Input(input_type=np.array([2, 6, 6])),
        "conv": nir.Conv2d(input_shape=(6, 6), weight=rng.normal(0.3, 0.4, (3, 2, 3, 3)), stride=1, padding=1,
                           dilation=1, groups=1, bias=np.zeros(3)),
        "if1": IF((3, 6, 6), theta=1.0),
        "flat": nir.Flatten(input_type={"input": np.array([3, 6, 6])}, start_dim=0, end_dim=-1),
        "fc": nir.Affine(weight=rng.normal(0.002, 0.006, (12, 108)), bias=rng.normal(3.0, 3.0, 12)),
        "lif": nir.LIF(tau=np.full(12, 0.02), r=np.ones(12), v_leak=np.zeros(12), v_threshold=np.ones(12),
                       v_reset=np.zeros(12)),
        "fc2": nir.Linear(weight=rng.normal(0.002, 0.002, (5, 12))),
        "cuba": nir.CubaLIF(tau_syn=np.full(5, 0.005), tau_mem=np.full(5, 0.01), r=np.ones(5), v_leak=np.zeros(5),
                            v_threshold=np.full(5, 0.3), v_reset=np.zeros(5), w_in=np.ones(5)),
        "rec": nir.Linear(weight=rng.normal(0.0, 0.001, (5, 5))),
        "output": nir.Output(output_type=np.array([5])),
    }
    edges = [("input", "conv"), ("conv", "if1"), ("if1", "flat"), ("flat", "fc"), ("fc", "lif"), ("lif", "fc2"),
             ("fc2", "cuba"), ("cuba", "rec"), ("rec", "cuba"), ("cuba", "output")]
    return graph(nodes, edges)


def random_events(n, seed=0, t_max=50_000):
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, t_max, n))
    t[n // 3: n // 3 + 40] = t[n // 3]  # a long run of equal timestamps
    return make_events(t, rng.integers(0, 6, n), rng.integers(0, 6, n), rng.integers(0, 2, n))


def assert_same_result(a, b):
    assert a.status == b.status
    assert a.events_consumed == b.events_consumed
    assert a.synops == b.synops
    assert a.spikes_per_node == b.spikes_per_node
    np.testing.assert_array_equal(a.output, b.output)
    np.testing.assert_array_equal(a.spikes, b.spikes)


@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_same_input_gives_bit_identical_results(precision):
    model = evsim.load_model(mixed_model(), recurrent_delay_us=700, precision=precision)
    ev = random_events(3000)
    a = evsim.Simulator(model, record_spikes=True).run(ev)
    b = evsim.Simulator(model, record_spikes=True).run(ev)
    assert a.crossings > 0 and a.spikes_per_node["cuba"] > 0 and a.spikes_per_node["lif"] > 0
    assert_same_result(a, b)


def test_feeding_in_chunks_equals_one_call():
    model = evsim.load_model(mixed_model(), recurrent_delay_us=700)
    ev = random_events(3000, seed=3)
    whole = evsim.Simulator(model, record_spikes=True).run(ev)
    rng = np.random.default_rng(7)
    cuts = np.sort(rng.choice(np.arange(1, ev.size), 25, replace=False))
    cuts = np.concatenate([cuts, [ev.size // 3 + 10]])  # a cut inside the run of equal timestamps
    sim = evsim.Simulator(model, record_spikes=True)
    for chunk in np.split(ev, np.unique(cuts)):
        sim.feed(chunk)
    assert_same_result(whole, sim.result())


def test_runaway_recurrent_activity_stops_at_the_budget():
    # a self-exciting neuron with a short recurrent delay fires forever
    g = graph(
        {
            "input": nir.Input(input_type=np.array([1])),
            "fc": nir.Linear(weight=np.array([[2.0]])),
            "n": IF(1),
            "self": nir.Linear(weight=np.array([[2.0]])),
            "output": nir.Output(output_type=np.array([1])),
        },
        [("input", "fc"), ("fc", "n"), ("n", "self"), ("self", "n"), ("n", "output")],
    )
    model = evsim.load_model(g, recurrent_delay_us=1)
    res = evsim.Simulator(model, budget=10_000).run(make_events([0, 10], [0, 0]), t_end_us=10**9)
    assert res.status == "budget"
    assert 4_000 <= res.spikes_per_node["n"] <= 10_000


def test_delayed_recurrent_spike_arrives_after_the_delay():
    g = graph(
        {
            "input": nir.Input(input_type=np.array([1])),
            "fc": nir.Linear(weight=np.array([[2.0]])),
            "n": IF(1),
            "self": nir.Linear(weight=np.array([[0.6]])),
            "output": nir.Output(output_type=np.array([1])),
        },
        [("input", "fc"), ("fc", "n"), ("n", "self"), ("self", "n"), ("n", "output")],
    )
    model = evsim.load_model(g, recurrent_delay_us=1500)
    res = evsim.Simulator(model, record_spikes=True).run(make_events([0, 1000, 1499, 1500, 2000], [0] * 5),
                                                         t_end_us=2600)
    # every input fires n (2 > 0.5, reset to 0); each spike of n comes back 1.5 ms later with
    # weight 0.6 and fires n again. Items queued for t <= 2.6 ms: 0 -> 1.5 ms, 1.0 -> 2.5 ms.
    n = res.node_names.index("n")
    times = res.spikes[res.spikes["node"] == n]["t_us"]
    np.testing.assert_allclose(times, [0, 1000, 1499, 1500, 1500, 2000, 2500])


def test_cutoff_stops_consuming_input_at_the_deciding_event():
    # output neuron 0 gets +1 per event on x=0; the top-k gap reaches 3 at the third such event
    g = graph(
        {
            "input": nir.Input(input_type=np.array([2])),
            "fc": nir.Linear(weight=np.eye(2) * 2.0),
            "o": IF(2),
            "output": nir.Output(output_type=np.array([2])),
        },
        [("input", "fc"), ("fc", "o"), ("o", "output")],
    )
    model = evsim.load_model(g)
    ev = make_events([0, 10, 20, 30, 40, 50, 60], [0, 1, 0, 0, 0, 1, 0])
    cut = evsim.Cutoff(mode="topk", threshold=2.0)
    res = evsim.Simulator(model, cutoff=cut).run(ev)
    # counts after each event: (1,0) (1,1) (2,1) (3,1): gap 2 reached at the event at t=30
    assert res.status == "cutoff"
    assert res.events_consumed == 4
    assert res.decision_time_us == pytest.approx(30.0)
    assert res.prediction == 0
    np.testing.assert_array_equal(res.output, [3, 1])

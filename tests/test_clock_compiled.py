"""The clock mode's compiled step loop (evsim.sim.clock._run_sample) against the Python step loop
it replaced for feed-forward models (ClockSimulator._simulate, still used for delayed and
recurrent projections), and the cases its shortcuts must get right, against hand-computed values."""

from __future__ import annotations

import nir
import numpy as np
import pytest

import evsim
from evsim.sim.clock import ClockSimulator, _FastPlan

from _nirgraphs import conv2d, events_at, graph, inp, out, random_events, sumpool
from test_clock import assert_same_result, cnn_graph


def cuba_graph(rng):
    """Conv (bias) → CubaLIF → Flatten → Affine → IF, feed-forward."""
    shape = (2, 5, 5)
    n = (3, 5, 5)
    lif = nir.CubaLIF(tau_syn=np.full(n, 2e-3), tau_mem=rng.uniform(4e-3, 9e-3, size=n), r=np.full(n, 3.0),
                      v_leak=np.zeros(n), v_threshold=np.full(n, 0.4), w_in=np.full(n, 2e-3))
    nodes = {"input": inp(shape), "conv": conv2d(rng.normal(scale=0.8, size=(3, 2, 3, 3)), padding=1,
                                                 bias=rng.normal(scale=0.02, size=3)),
             "lif": lif, "flat": nir.Flatten(input_type={"input": np.array(n)}, start_dim=0),
             "fc": nir.Affine(weight=rng.normal(scale=0.5, size=(4, 75)), bias=np.zeros(4)),
             "if": nir.IF(r=np.ones(4), v_threshold=np.ones(4), v_reset=np.zeros(4)), "output": out((4,))}
    edges = [("input", "conv"), ("conv", "lif"), ("lif", "flat"), ("flat", "fc"), ("fc", "if"), ("if", "output")]
    return graph(nodes, edges), shape


def if_cnn_graph(rng):
    """Conv → IF → SumPool → Conv → IF → Flatten → Linear → IF, two branches merging into the
    last IF (two projections into one population), no biases: every IF is static."""
    shape = (2, 8, 8)
    def if_(s):
        return nir.IF(r=np.ones(s), v_threshold=np.full(s, 0.9), v_reset=np.zeros(s))
    nodes = {"input": inp(shape), "c1": conv2d(rng.normal(scale=0.7, size=(4, 2, 3, 3)), padding=1), "i1": if_((4, 8, 8)),
             "pool": sumpool(2), "c2": conv2d(rng.normal(scale=0.6, size=(4, 4, 3, 3)), stride=2), "i2": if_((4, 1, 1)),
             "f2": nir.Flatten(input_type={"input": np.array([4, 1, 1])}, start_dim=0),
             "f1": nir.Flatten(input_type={"input": np.array([4, 8, 8])}, start_dim=0),
             "l2": nir.Linear(weight=rng.normal(scale=0.8, size=(3, 4))),
             "l1": nir.Linear(weight=rng.normal(scale=0.3, size=(3, 256))), "i3": if_(3), "output": out((3,))}
    edges = [("input", "c1"), ("c1", "i1"), ("i1", "pool"), ("pool", "c2"), ("c2", "i2"), ("i2", "f2"), ("f2", "l2"),
             ("l2", "i3"), ("i1", "f1"), ("f1", "l1"), ("l1", "i3"), ("i3", "output")]
    return graph(nodes, edges), shape


GRAPHS = {"cnn": cnn_graph, "cuba": cuba_graph, "ifcnn": if_cnn_graph}


@pytest.mark.parametrize("which,profile,opts,binning", [
    ("cnn", "sinabs", {}, {"bin_us": 1500}),
    ("cnn", "sinabs", {}, {"n_bins": 17}),
    ("cnn", "speck", {}, {"bin_us": 700}),
    ("cnn", "nir", {"refractory_us": 2000}, {"bin_us": 1000}),
    ("cuba", "nir", {}, {"bin_us": 1000}),
    ("cuba", "sinabs", {}, {"n_bins": 23}),
    ("cuba", "norse", {}, {"bin_us": 1000}),
    ("ifcnn", "speck", {}, {"bin_us": 1000}),
    ("ifcnn", "sinabs", {}, {"bin_us": 300}),
    ("ifcnn", "nir", {"reset": "zero"}, {"bin_us": 2000}),
    ("ifcnn", "snntorch", {}, {"bin_us": 1000}),
])
@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_compiled_loop_equals_the_python_step_loop(which, profile, opts, binning, precision):
    rng = np.random.default_rng(11)
    g, shape = GRAPHS[which](rng)
    model = evsim.load_model(g, profile=profile, precision=precision, **opts)
    samples = [random_events(rng, shape, int(rng.integers(50, 600)), t_max_us=int(rng.integers(5_000, 60_000)))[0]
               for _ in range(8)]
    samples.append(samples[0][:0])  # an empty recording
    samples.append(samples[1][[0, -1]])  # two events far apart: empty bins in between
    for cutoff in (evsim.Cutoff(), evsim.Cutoff(mode="topk", threshold=3), evsim.Cutoff(max_events=40)):
        kw = dict(cutoff=cutoff, record_spikes=True, record_output=True, keep_state=True, **binning)
        fast = ClockSimulator(model, **kw)
        slow = ClockSimulator(model, **kw)
        slow._fast = None
        got = [fast.run(ev) for ev in samples]
        assert isinstance(fast._fast, _FastPlan)  # the compiled loop did run
        want = slow.run_batch(samples)
        for a, b in zip(got, want):
            assert_same_result(a, b)
    assert sum(r.synops for r in got) > 0 and sum(r.spikes_per_node[n] for r in got for n in r.spikes_per_node) > 0


def one_if(weight, profile):
    """Input(2) → Linear([[w, 0]]) → IF(θ=1): input 0 charges the neuron, input 1 reaches it with
    weight 0 (input, but no charge)."""
    nodes = {"input": inp((2,)), "fc": nir.Linear(weight=np.array([[weight, 0.0]])),
             "if": nir.IF(r=np.ones(1), v_threshold=np.ones(1), v_reset=np.zeros(1)), "output": out((1,))}
    return evsim.load_model(graph(nodes, [("input", "fc"), ("fc", "if"), ("if", "output")]), profile=profile,
                            precision="float64")


@pytest.mark.parametrize("profile,want_steps,want_counts", [
    ("speck", [0, 1, 2], [1, 1, 1]),  # one spike per step: it keeps firing without input
    ("sinabs", [0], [3]),  # MultiSpike: floor(3.5) at once
])
def test_a_neuron_left_above_threshold_fires_in_the_following_silent_steps(profile, want_steps, want_counts):
    model = one_if(3.5, profile)
    ev = events_at([0, 6_500], [0, 1], (2,))  # bins 0 and 6; bins 1..5 have no input
    r = ClockSimulator(model, bin_us=1000, record_spikes=True, keep_state=True).run(ev)
    sp = r.spikes[r.spikes["node"] == r.node_names.index("if")]
    assert (sp["t_us"] / 1000 - 1).astype(int).tolist() == want_steps
    assert sp["count"].tolist() == want_counts
    assert r.output.tolist() == [float(sum(want_counts))]
    assert r.extra["state"]["if"]["v"].tolist() == [0.5]
    assert r.extra["steps_run"] == 7


def test_bias_and_leak_act_in_empty_bins():
    """A population with a constant input (bias) or a leak changes in steps without input: v after
    n steps is n·b (IF, sinabs: v ← v + x + b) and v0·α^n (leaky)."""
    nodes = {"input": inp((1,)), "fc": nir.Affine(weight=np.array([[0.0]]), bias=np.array([0.125])),
             "if": nir.IF(r=np.ones(1), v_threshold=np.full(1, 100.0), v_reset=np.zeros(1)), "output": out((1,))}
    model = evsim.load_model(graph(nodes, [("input", "fc"), ("fc", "if"), ("if", "output")]), profile="sinabs",
                             precision="float64")
    ev = events_at([0, 9_000], [0, 0], (1,))
    r = ClockSimulator(model, bin_us=1000, keep_state=True).run(ev)
    assert r.extra["state"]["if"]["v"].tolist() == [10 * 0.125]
    tau = 5e-3
    nodes = {"input": inp((1,)), "fc": nir.Linear(weight=np.array([[0.75]])),
             "lif": nir.LIF(tau=np.full(1, tau), r=np.ones(1), v_leak=np.zeros(1), v_threshold=np.full(1, 1e6)),
             "output": out((1,))}
    model = evsim.load_model(graph(nodes, [("input", "fc"), ("fc", "lif"), ("lif", "output")]), profile="nir",
                             precision="float64")
    r = ClockSimulator(model, bin_us=1000, keep_state=True).run(events_at([0, 4_000], [0, 0], (1,)))
    g = 1.0 / tau  # nir LIF: g = R/τ
    v = 0.0
    for k in range(5):
        v = v * np.exp(-1e-3 / tau) + (0.75 * g if k in (0, 4) else 0.0)
    assert r.extra["state"]["lif"]["v"][0] == pytest.approx(v, rel=1e-12)


@pytest.mark.parametrize("ndim, dtype", [(1, np.float64), (1, np.int64), (2, np.float32), (2, np.float64)])
def test_packed_typed_lists_hold_the_arrays_and_share_their_memory(ndim, dtype):
    """_ListBuilder: the typed List the compiled loop receives holds each array added (values and
    shape), and the numpy views Python keeps (zeroed before every run, read for the final state)
    are the same memory."""
    from evsim.sim.clock import _ListBuilder

    rng = np.random.default_rng(3)
    shapes = [(4,), (1,), (7,), (0,)] if ndim == 1 else [(1, 3), (1, 1), (2, 5), (1, 0)]
    arrays = [(rng.normal(size=s) * 10).astype(dtype) for s in shapes]
    lst = _ListBuilder(dtype, ndim, placeholder=False)
    assert [lst.add(a) for a in arrays] == [0, 1, 2, 3]
    typed, views = lst.build(), lst.views
    assert len(typed) == len(arrays) == len(views)
    for a, t, v in zip(arrays, typed, views):
        assert t.dtype == v.dtype == dtype and t.shape == v.shape == a.shape
        assert np.array_equal(t, a) and np.array_equal(v, a)
    views[2].fill(0)
    assert not typed[2].any() and np.array_equal(typed[0], arrays[0])  # one piece written, others intact

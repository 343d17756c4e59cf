"""Clock-driven mode (docs/SEMANTICS.md#clock): binning, agreement with the event engine where both must agree,
cutoff, batching, operators, and the N-MNIST reference model's clock-driven figures."""

from __future__ import annotations

import json

import nir
import numpy as np
import pytest

import evsim
from evsim.sim.clock import ClockSimulator, bin_steps

from _nirgraphs import conv2d, dense_matrix, events_at, graph, inp, out, random_events, ref_conv2d, ref_pool2d, sumpool
from conftest import REPO_ROOT


def input_frames(result, n_in: int, bin_us: float, n_steps: int) -> np.ndarray:
    """(n_steps, n_in) event counts per step, read back from the Input population's spike record."""
    s = result.spikes[result.spikes["node"] == 0]
    k = np.round(s["t_us"] / bin_us).astype(np.int64) - 1
    frames = np.zeros((n_steps, n_in), dtype=np.int64)
    np.add.at(frames, (k, s["neuron"]), s["count"])
    return frames


def passthrough_model(shape, profile="sinabs"):
    """Input(shape) → Flatten → Linear(identity) → IF(θ=1) → Output: under sinabs (MultiSpike,
    θ = 1, subtract) every input event becomes exactly one output spike in its step."""
    n = int(np.prod(shape))
    nodes = {"input": inp(shape), "flat": nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0),
             "fc": nir.Linear(weight=np.eye(n)), "lif": nir.IF(r=np.ones(n), v_threshold=np.ones(n), v_reset=np.zeros(n)),
             "output": out((n,))}
    edges = [("input", "flat"), ("flat", "fc"), ("fc", "lif"), ("lif", "output")]
    return evsim.load_model(graph(nodes, edges), profile=profile, precision="float64")


# --------------------------------------------------------------------------------------------
# Binning
# --------------------------------------------------------------------------------------------


def hand_bins(t, width, n_windows, last_to_last):
    """Window membership written out: event e is in window k iff t0 + k·w <= t_e < t0 + (k+1)·w;
    with ``last_to_last`` an event beyond the last window goes to the last window."""
    t0 = t[0]
    k_of = []
    for te in t:
        k = next((k for k in range(n_windows) if t0 + k * width <= te < t0 + (k + 1) * width), None)
        if k is None:
            assert last_to_last
            k = n_windows - 1
        k_of.append(k)
    return np.array(k_of)


def test_binning_by_hand():
    t = np.array([100, 100, 350, 599, 600, 1099, 2100, 2100])
    # --bin-us 500: windows [100, 600), [600, 1100), ..., and the one holding t_last = 2100
    k, n, w = bin_steps(t, bin_us=500)
    assert (n, w) == (int((2100 - 100) // 500) + 1, 500.0) == (5, 500.0)
    np.testing.assert_array_equal(k, hand_bins(t, 500, n, False))
    # --bin-us 300 (D = 2000 is not a multiple): 7 windows, the last [1900, 2200)
    k, n, w = bin_steps(t, bin_us=300)
    assert n == 7
    np.testing.assert_array_equal(k, hand_bins(t, 300, n, False))
    # --n-bins 3: w = 2000/3 µs, the events at t_last in the last bin
    k, n, w = bin_steps(t, n_bins=3)
    assert n == 3 and w == pytest.approx(2000 / 3)
    np.testing.assert_array_equal(k, hand_bins(t, 2000 / 3, 3, True))
    assert list(k[-2:]) == [2, 2]
    # a single bin holds everything; all events at one time: the last bin
    np.testing.assert_array_equal(bin_steps(t, n_bins=1)[0], np.zeros(t.size))
    np.testing.assert_array_equal(bin_steps(np.array([5, 5, 5]), n_bins=4)[0], [3, 3, 3])
    assert bin_steps(np.zeros(0, dtype=np.int64), bin_us=10)[1] == 0
    with pytest.raises(evsim.OptionError):
        bin_steps(t, bin_us=500, n_bins=3)
    with pytest.raises(evsim.OptionError):
        bin_steps(t, bin_us=0)


@pytest.mark.parametrize("mode", ["bin_us", "n_bins"])
def test_simulator_frames_match_a_hand_binning(mode):
    rng = np.random.default_rng(1)
    shape = (2, 3, 4)
    events, _ = random_events(rng, shape, 500, t_max_us=20_000)
    t = events["t"].astype(np.int64)
    flat = np.ravel_multi_index((events["p"], events["y"], events["x"]), shape)
    opts = {"bin_us": 700} if mode == "bin_us" else {"n_bins": 13}
    result = ClockSimulator(passthrough_model(shape), record_spikes=True, **opts).run(events)
    n_steps, width = result.extra["n_steps"], result.extra["bin_us"]
    if mode == "bin_us":
        assert n_steps == (t[-1] - t[0]) // 700 + 1
        k = hand_bins(t, 700, n_steps, False)
    else:
        assert n_steps == 13 and width == pytest.approx((t[-1] - t[0]) / 13)
        k = hand_bins(t, (t[-1] - t[0]) / 13, 13, True)
    expected = np.zeros((n_steps, 24), dtype=np.int64)
    np.add.at(expected, (k, flat), 1)
    np.testing.assert_array_equal(input_frames(result, 24, width, n_steps), expected)
    assert result.events_consumed == result.events_total == len(events)
    # and every input event became one output spike of its neuron in its step (θ = 1, MultiSpike)
    np.testing.assert_array_equal(result.output_counts, expected.sum(axis=0))


def test_binning_agrees_with_tonic_where_tonic_keeps_every_event():
    tonic_frame = pytest.importorskip("tonic.functional.to_frame")
    rng = np.random.default_rng(2)
    shape = (2, 5, 6)  # (P, H, W); tonic's sensor_size is (W, H, P)
    model = passthrough_model(shape)
    n_in = int(np.prod(shape))
    for trial in range(6):
        events, _ = random_events(rng, shape, 300, t_max_us=10_000)
        d = int(events["t"][-1] - events["t"][0])
        # time_window with include_incomplete: the same windows when w does not divide D
        w = next(w for w in range(301 + trial * 37, 10_000) if d % w)
        res = ClockSimulator(model, bin_us=w, record_spikes=True).run(events)
        ours = input_frames(res, n_in, w, res.extra["n_steps"])
        theirs = tonic_frame.to_frame_numpy(events.copy(), (shape[2], shape[1], shape[0]), time_window=w,
                                            include_incomplete=True)
        np.testing.assert_array_equal(ours, theirs.reshape(theirs.shape[0], -1))
        # n_time_bins = N with N dividing D: tonic's windows are ours, but tonic drops the
        # events at t_last (its last window ends there); we put them in the last bin
        # make D a multiple of 60 (clip the last timestamps) so that several N divide it
        t_end = int(events["t"][0]) + (d // 60) * 60
        events["t"] = np.minimum(events["t"], t_end)
        d = t_end - int(events["t"][0])
        n_bins = next(n for n in range(7 + trial, 200) if d % n == 0)
        res = ClockSimulator(model, n_bins=n_bins, record_spikes=True).run(events)
        ours = input_frames(res, n_in, res.extra["bin_us"], n_bins)
        theirs = tonic_frame.to_frame_numpy(events.copy(), (shape[2], shape[1], shape[0]), n_time_bins=n_bins)
        at_last = events[events["t"] == events["t"][-1]]
        ours[-1] -= np.bincount(np.ravel_multi_index((at_last["p"], at_last["y"], at_last["x"]), shape), minlength=n_in)
        np.testing.assert_array_equal(ours, theirs.reshape(n_bins, -1))


# --------------------------------------------------------------------------------------------
# Where the clock-driven and the event-driven modes must agree exactly
# --------------------------------------------------------------------------------------------


def single_partner_network(rng):
    """Input (1, 4, 4) → Conv2d 1×1 (1 → 3 channels) → IF → Flatten → Linear (48 → 10, one
    non-zero weight per row) → IF → Output; all |w| < θ = 1."""
    wc = rng.uniform(-0.5, 0.95, size=(3, 1, 1, 1))
    w2 = np.zeros((10, 48))
    w2[np.arange(10), rng.integers(0, 48, size=10)] = rng.uniform(-0.5, 0.95, size=10)
    theta = lambda n: dict(r=np.ones(n), v_threshold=np.ones(n), v_reset=np.zeros(n))  # noqa: E731
    nodes = {"input": inp((1, 4, 4)), "conv": conv2d(wc), "if1": nir.IF(**theta((3, 4, 4))),
             "flat": nir.Flatten(input_type={"input": np.array([3, 4, 4])}, start_dim=0),
             "fc": nir.Linear(weight=w2), "if2": nir.IF(**theta(10)), "output": out((10,))}
    edges = [("input", "conv"), ("conv", "if1"), ("if1", "flat"), ("flat", "fc"), ("fc", "if2"), ("if2", "output")]
    return graph(nodes, edges)


def test_clock_equals_event_driven_in_the_limit_case():
    """Profile speck, IF without bias (no dynamics between inputs), every neuron has exactly one
    presynaptic neuron, all |w| < θ, and every input neuron has at most one event per bin.

    Why both modes compute the same thing: by induction over the layers, every neuron receives
    at most one non-zero input per bin (its only presynaptic neuron has at most one event, or
    fires at most once per update and gets at most one input). Starting from −θ ≤ v < θ, one
    update v + w (|w| < θ) stays below 2θ, so it gives at most one spike, and after subtracting
    θ and the floor at −θ the invariant −θ ≤ v < θ holds again; the zero-weight additions the
    event engine delivers along dense rows therefore never make a neuron fire. So each neuron
    performs in both modes the same single floating-point update per bin — v + w, the test v ≥ θ,
    v − θ, max(v, −θ) — and the event-driven spikes, binned, are the clock-driven spikes.
    """
    rng = np.random.default_rng(3)
    model = evsim.load_model(single_partner_network(rng), profile="speck", precision="float64")
    bin_us, n_steps = 1000, 80
    t0 = 5000
    times, flat = [t0], [0]
    for k in range(n_steps):
        for i in np.flatnonzero(rng.random(16) < 0.5):
            times.append(t0 + k * bin_us + int(rng.integers(0, bin_us)))
            flat.append(i)
    order = np.argsort(times, kind="stable")
    times, flat = np.array(times)[order], np.array(flat)[order]
    keep = np.ones(times.size, dtype=bool)  # at most one event per input neuron per bin
    seen = set()
    for e, (t, i) in enumerate(zip(times, flat)):
        key = ((t - t0) // bin_us, i)
        keep[e] = key not in seen
        seen.add(key)
    events = events_at(times[keep], flat[keep], (1, 4, 4))

    ev = evsim.Simulator(model, record_spikes=True).run(events)
    ck = ClockSimulator(model, bin_us=bin_us, record_spikes=True).run(events)
    assert ck.extra["n_steps"] == (int(times[keep][-1]) - t0) // bin_us + 1
    for p, pop in enumerate(model.populations):
        e = ev.spikes[ev.spikes["node"] == p]
        c = ck.spikes[ck.spikes["node"] == p]
        dense_e = np.zeros((ck.extra["n_steps"], pop.size))
        dense_c = np.zeros_like(dense_e)
        np.add.at(dense_e, (np.floor(e["t_us"] / bin_us).astype(int), e["neuron"]), e["count"])
        np.add.at(dense_c, (np.round(c["t_us"] / bin_us).astype(int) - 1, c["neuron"]), c["count"])
        np.testing.assert_array_equal(dense_c, dense_e, err_msg=pop.name)
        assert dense_c.max() <= 1
    assert ev.spikes_per_node == ck.spikes_per_node
    assert ev.spikes_per_node["if2"] >= 10  # the output layer is active
    np.testing.assert_array_equal(ck.output, ev.output)
    assert ck.synops == ev.synops  # same spikes, same definition of a SynOp
    assert ck.prediction == ev.prediction


# --------------------------------------------------------------------------------------------
# Operators and SynOps
# --------------------------------------------------------------------------------------------


def test_operators_and_synops_against_references():
    """Input → Conv2d (stride 2, padding 1, dilation 2, groups 2) → SumPool2d 2 → Flatten →
    Linear → I under strict NIR (no leak, no bias): after the last step the integrator holds
    Linear(flatten(pool(conv(total counts)))), computed here with independent references. The
    clock's SynOps equal the event engine's (every event is delivered in both); dense_synops is
    every synapse every step."""
    rng = np.random.default_rng(4)
    shape = (4, 9, 9)
    wc = rng.normal(size=(6, 2, 3, 3))
    conv_out = ref_conv2d(np.zeros(shape), wc, stride=2, padding=1, dilation=2, groups=2).shape
    pooled = ref_pool2d(np.zeros(conv_out), 2).shape
    wl = rng.normal(size=(5, int(np.prod(pooled))))
    nodes = {"input": inp(shape), "conv": conv2d(wc, stride=2, padding=1, dilation=2, groups=2),
             "pool": sumpool(2), "flat": nir.Flatten(input_type={"input": np.array(pooled)}, start_dim=0),
             "fc": nir.Linear(weight=wl), "integ": nir.I(r=np.ones(5)), "output": out((5,))}
    edges = [("input", "conv"), ("conv", "pool"), ("pool", "flat"), ("flat", "fc"), ("fc", "integ"), ("integ", "output")]
    model = evsim.load_model(graph(nodes, edges), profile="nir", precision="float64")
    events, counts = random_events(rng, shape, 400, t_max_us=30_000)
    res = ClockSimulator(model, bin_us=2000).run(events)
    expected = wl @ ref_pool2d(ref_conv2d(counts, wc, stride=2, padding=1, dilation=2, groups=2), 2).ravel()
    np.testing.assert_allclose(res.output, expected, rtol=1e-10, atol=1e-10)
    assert res.synops == evsim.Simulator(model).run(events).synops
    # dense_synops: every input neuron spiking once in every step. A single event at input i
    # costs, in the event engine, exactly what input i's fan-out costs; sum over all inputs.
    per_input = []
    for i in range(int(np.prod(shape))):
        per_input.append(evsim.Simulator(model).run(events_at([10], [i], shape)).synops)
    # sanity of that reference: at least the Linear rows of the pooled elements input i reaches
    # through non-zero weights of the dense conv∘pool matrix (zero taps of the folded kernel
    # count too, so the engine may count more)
    chain = lambda x: ref_pool2d(ref_conv2d(x, wc, stride=2, padding=1, dilation=2, groups=2), 2)  # noqa: E731
    reach = dense_matrix(chain, shape) != 0  # (pooled elements, inputs)
    assert all(p >= 5 * int(r) for p, r in zip(per_input, reach.sum(axis=0)))
    assert res.extra["dense_synops"] == res.extra["n_steps"] * sum(per_input)


# --------------------------------------------------------------------------------------------
# Cutoff
# --------------------------------------------------------------------------------------------


def cumulative_counts(events, n, bin_us):
    k = (events["t"].astype(np.int64) - int(events["t"][0])) // bin_us
    frames = np.zeros((int(k[-1]) + 1, n))
    np.add.at(frames, (k, events["x"].astype(np.int64)), 1)
    return np.cumsum(frames, axis=0), k


@pytest.mark.parametrize("mode", ["topk", "conf", "table"])
def test_cutoff_stops_at_the_first_confident_step(mode):
    rng = np.random.default_rng(5)
    n, bin_us = 4, 500
    t = np.sort(rng.integers(0, 40_000, size=300))
    x = rng.choice(n, size=300, p=[0.4, 0.3, 0.2, 0.1])
    events = events_at(t, x, (n,))
    cum, k_ev = cumulative_counts(events, n, bin_us)
    top = np.sort(cum, axis=1)
    t_end = (np.arange(cum.shape[0]) + 1) * bin_us
    if mode == "topk":
        cutoff = evsim.Cutoff(mode="topk", threshold=6)
        conf = top[:, -1] - top[:, -2]
        ok = conf >= 6
    elif mode == "conf":
        cutoff = evsim.Cutoff(mode="conf", epsilon=0.02, temperature=2.0)
        z = np.exp((cum - cum.max(axis=1, keepdims=True)) / 2.0)
        conf = 1.0 / z.sum(axis=1)
        ok = conf >= 0.98
    else:  # a threshold per elapsed-time bin of 3 ms; never before 6 ms
        table = [None, None, 8.0, 5.0]
        cutoff = evsim.Cutoff(mode="topk", table=table, bin_width_us=3000)
        conf = top[:, -1] - top[:, -2]
        thr = np.array([np.inf if v is None else v for v in table])[np.minimum(t_end // 3000, 3)]
        ok = conf >= thr
    k = int(np.flatnonzero(ok & (cum.sum(axis=1) > 0))[0])
    assert k < cum.shape[0] - 1  # the test needs an early decision
    res = ClockSimulator(passthrough_model((n,)), bin_us=bin_us, cutoff=cutoff, record_output=True).run(events)
    assert res.status == "cutoff"
    assert res.decision_time_us == t_end[k]
    assert res.confidence == pytest.approx(conf[k])
    assert res.events_consumed == int(np.sum(k_ev <= k)) < res.events_total
    np.testing.assert_array_equal(res.output, cum[k])
    times, consumed, vectors = res.output_record
    np.testing.assert_array_equal(times, t_end[:k + 1])
    np.testing.assert_array_equal(consumed, [np.sum(k_ev <= j) for j in range(k + 1)])
    np.testing.assert_array_equal(vectors, cum[:k + 1])
    assert res.extra["steps_run"] == k + 1
    # without a cutoff the sample runs to its last step
    full = ClockSimulator(passthrough_model((n,)), bin_us=bin_us).run(events)
    assert full.status == "complete" and full.events_consumed == len(events)
    assert full.decision_time_us == cum.shape[0] * bin_us
    np.testing.assert_array_equal(full.output, cum[-1])


def test_event_and_time_budgets():
    rng = np.random.default_rng(6)
    t = np.sort(rng.integers(0, 20_000, size=200))
    events = events_at(t, rng.integers(0, 3, size=200), (3,))
    model = passthrough_model((3,))
    res = ClockSimulator(model, bin_us=1000, cutoff=evsim.Cutoff(max_events=57)).run(events)
    assert res.status == "event budget" and res.events_consumed == 57
    assert res.extra["steps_run"] == (t[56] - t[0]) // 1000 + 1
    assert res.output.sum() == 57
    res = ClockSimulator(model, bin_us=1000, cutoff=evsim.Cutoff(max_time_us=7300)).run(events)
    assert res.events_consumed == int(np.sum(t - t[0] <= 7300))
    assert res.extra["steps_run"] == 8


# --------------------------------------------------------------------------------------------
# Batching and determinism
# --------------------------------------------------------------------------------------------


def cnn_graph(rng):
    """Conv → LIF → SumPool → Flatten → Affine (bias) → IF, sinabs-style."""
    shape = (2, 6, 6)
    lif = nir.LIF(tau=rng.uniform(3, 10, size=(4, 6, 6)), r=np.ones((4, 6, 6)), v_leak=np.zeros((4, 6, 6)),
                  v_threshold=np.full((4, 6, 6), 0.8))
    nodes = {"input": inp(shape), "conv": conv2d(rng.normal(scale=0.6, size=(4, 2, 3, 3)), padding=1), "lif": lif,
             "pool": sumpool(2), "flat": nir.Flatten(input_type={"input": np.array([4, 3, 3])}, start_dim=0),
             "fc": nir.Affine(weight=rng.normal(scale=0.5, size=(5, 36)), bias=rng.normal(scale=0.05, size=5)),
             "if": nir.IF(r=np.ones(5), v_threshold=np.ones(5), v_reset=np.zeros(5)), "output": out((5,))}
    edges = [("input", "conv"), ("conv", "lif"), ("lif", "pool"), ("pool", "flat"), ("flat", "fc"), ("fc", "if"),
             ("if", "output")]
    return graph(nodes, edges), shape


def recurrent_graph(rng):
    """Affine → CubaLIF with a recurrent Linear (strict NIR, recurrent delay given)."""
    n = 6
    lif = nir.CubaLIF(tau_syn=np.full(n, 2e-3), tau_mem=rng.uniform(4e-3, 9e-3, size=n), r=np.full(n, 3.0),
                      v_leak=np.zeros(n), v_threshold=np.full(n, 0.5), w_in=np.full(n, 2e-3))
    nodes = {"input": inp((3,)), "fc": nir.Affine(weight=rng.normal(size=(n, 3)) + 0.5, bias=np.full(n, 0.1)),
             "lif": lif, "rec": nir.Linear(weight=rng.normal(scale=0.7, size=(n, n))), "output": out((n,))}
    edges = [("input", "fc"), ("fc", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "output")]
    return graph(nodes, edges), (3,)


def assert_same_result(a, b):
    assert a.prediction == b.prediction
    np.testing.assert_array_equal(a.output, b.output)
    if a.output_counts is None:
        assert b.output_counts is None
    else:
        np.testing.assert_array_equal(a.output_counts, b.output_counts)
    assert (a.events_consumed, a.events_total, a.synops, a.status) == (b.events_consumed, b.events_total, b.synops, b.status)
    assert a.spikes_per_node == b.spikes_per_node
    assert a.decision_time_us == b.decision_time_us and a.confidence == b.confidence
    np.testing.assert_array_equal(a.spikes, b.spikes)
    for x, y in zip(a.output_record, b.output_record):
        np.testing.assert_array_equal(x, y)
    assert a.extra.keys() == b.extra.keys()
    for key in a.extra:
        if key != "state":
            assert a.extra[key] == b.extra[key]
    for name, st in a.extra["state"].items():
        for var, arr in st.items():
            np.testing.assert_array_equal(arr, b.extra["state"][name][var], err_msg=f"{name}.{var}")


@pytest.mark.parametrize("which,profile,opts,binning", [
    ("cnn", "sinabs", {}, {"bin_us": 1500}),
    ("cnn", "sinabs", {}, {"n_bins": 17}),  # a different bin width (and decay) per sample
    ("cnn", "speck", {}, {"bin_us": 700}),
    ("rec", "nir", {"recurrent_delay_us": 2500}, {"n_bins": 25}),  # recurrent lag differs per sample
])
def test_batch_is_bit_identical_to_one_by_one(which, profile, opts, binning):
    rng = np.random.default_rng(7)
    g, shape = cnn_graph(rng) if which == "cnn" else recurrent_graph(rng)
    model = evsim.load_model(g, profile=profile, **opts)
    samples = [random_events(rng, shape, int(rng.integers(50, 400)), t_max_us=int(rng.integers(5_000, 60_000)))[0]
               for _ in range(9)]
    samples.append(samples[0][:0])  # an empty recording
    cutoff = evsim.Cutoff(mode="topk", threshold=3)
    sim = ClockSimulator(model, cutoff=cutoff, record_spikes=True, record_output=True, keep_state=True, **binning)
    one_by_one = [sim.run(ev) for ev in samples]
    batch = sim.run_batch(samples)
    order = rng.permutation(len(samples))
    shuffled = sim.run_batch([samples[i] for i in order])
    for j in range(len(samples)):
        assert_same_result(batch[j], one_by_one[j])
        assert_same_result(shuffled[int(np.flatnonzero(order == j)[0])], one_by_one[j])
    assert_same_result(sim.run(samples[3]), one_by_one[3])  # determinism
    statuses = {r.status for r in one_by_one[:-1]}
    assert len({r.extra["steps_run"] for r in one_by_one}) > 2  # samples really end at different steps
    assert sum(r.synops for r in one_by_one) > 0
    assert "cutoff" in statuses or which == "rec"
    assert one_by_one[-1].events_total == 0 and one_by_one[-1].prediction is None


def test_input_errors():
    model = passthrough_model((3,))
    sim = ClockSimulator(model, bin_us=100)
    with pytest.raises(evsim.RecordingError):
        sim.run(events_at([5, 3], [0, 1], (3,)))  # unsorted
    with pytest.raises(evsim.RecordingError):
        sim.run(events_at([1, 2], [0, 7], (8,)))  # outside the input shape
    with pytest.raises(evsim.OptionError):
        ClockSimulator(model)


# --------------------------------------------------------------------------------------------
# The reference N-MNIST model: clock-driven figures of its training script (torch, independent)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("width", ["1ms", "single"])
def test_nmnist_reference_model_matches_its_training_metrics(nmnist_dir, width):
    """examples/train_nmnist.py evaluated the exported model.nir clock-driven with its own torch
    interpreter (sinabs semantics: MultiSpike, subtract, floor −θ; every event kept) and wrote
    the test-split accuracy and mean spikes per layer to training_metrics.json."""
    mdir = REPO_ROOT / "evsim" / "bundled" / "nmnist_cnn"
    metrics = json.loads((mdir / "training_metrics.json").read_text())["clock_driven"][width]["test"]
    split = json.loads((mdir / "split.json").read_text())["test"]
    model = evsim.load_model(str(mdir / "model.nir"), profile="sinabs")
    sim = ClockSimulator(model, bin_us=1000) if width == "1ms" else ClockSimulator(model, n_bins=1)
    results = sim.run_batch([evsim.read_recording(str(nmnist_dir / rel)).events for rel in split])
    labels = np.array([int(rel.split("/")[0]) for rel in split])
    preds = np.array([-1 if r.prediction is None else r.prediction for r in results])
    assert len(results) == metrics["n"]
    assert np.mean(preds == labels) == pytest.approx(metrics["accuracy"], abs=1e-12)
    for layer, mean in metrics["mean_spikes_per_sample"].items():
        assert np.mean([r.spikes_per_node[layer] for r in results]) == pytest.approx(mean, abs=0.05), layer


@pytest.mark.parametrize("profile,kind", [("speck", "IF"), ("sinabs", "IF"), ("sinabs", "LIF"), ("snntorch", "LIF")])
def test_refractory_period_holds_the_membrane_for_whole_steps(profile, kind):
    """--refractory-us 2000 with 1 ms bins: after a spike the membrane is held (no leak, input
    discarded) for round(2000/1000) = 2 steps. Reference written out per step; snnTorch's reset
    of a spike comes one step late (reset_delay=True), so the first held step applies it."""
    rng = np.random.default_rng(8)
    n, bin_us, n_steps, w, theta = 3, 1000, 60, 0.7, 1.0
    tau_steps = 6.0
    if kind == "IF":
        neuron = nir.IF(r=np.ones(n), v_threshold=np.full(n, theta), v_reset=np.zeros(n))
    elif profile == "snntorch":  # snn.Leaky as exported: r = τ/dt, here dt = 1 ms
        neuron = nir.LIF(tau=np.full(n, tau_steps * 1e-3), r=np.full(n, tau_steps), v_leak=np.zeros(n),
                         v_threshold=np.full(n, theta), v_reset=np.zeros(n))
    else:  # sinabs: τ in steps
        neuron = nir.LIF(tau=np.full(n, tau_steps), r=np.ones(n), v_leak=np.zeros(n), v_threshold=np.full(n, theta),
                         v_reset=np.zeros(n))
    g = graph({"input": inp((n,)), "fc": nir.Linear(weight=w * np.eye(n)), "l1": neuron, "output": out((n,))},
              [("input", "fc"), ("fc", "l1"), ("l1", "output")])
    counts = rng.integers(0, 3, size=(n_steps, n))
    times, flat = [], []
    for k in range(n_steps):
        for i in range(n):
            times += [k * bin_us + 10 * q for q in range(counts[k, i])]
            flat += [i] * counts[k, i]
    order = np.argsort(times, kind="stable")
    events = events_at(np.array(times)[order], np.array(flat)[order], (n,))
    k0 = int(np.array(times).min()) // bin_us  # bins start at the first event
    frames = counts[k0:k0 + (int(np.array(times).max()) - int(np.array(times).min())) // bin_us + 1]
    timing = {"reset": "subtract", "reset_delay": True} if profile == "snntorch" else {}  # the rule written below
    model = evsim.load_model(g, profile=profile, precision="float64", refractory_us=2000, **timing)
    result = ClockSimulator(model, bin_us=bin_us, record_spikes=True, keep_state=True).run(events)

    # the reference: decay a (1 for IF, exp(-1/τ) for sinabs, β = 1 − 1/τ for snnTorch)
    a = 1.0 if kind == "IF" else (1.0 - 1.0 / tau_steps if profile == "snntorch" else np.exp(-1.0 / tau_steps))
    v, held, prev = np.zeros(n), np.zeros(n, dtype=int), np.zeros(n)
    expected = np.zeros(frames.shape)
    for k, x in enumerate(w * frames):
        for i in range(n):
            if held[i] > 0:
                held[i] -= 1
                v[i] -= prev[i] * theta
                prev[i] = 0.0
                continue
            if profile == "snntorch":
                v[i] = a * v[i] + x[i] - prev[i] * theta
                prev[i] = expected[k, i] = float(v[i] > theta)
            else:
                v[i] = a * v[i] + x[i]
                if v[i] >= theta:
                    expected[k, i] = np.floor(v[i] / theta) if profile == "sinabs" else 1.0
                    v[i] -= expected[k, i] * theta
                if kind == "IF":
                    v[i] = max(v[i], -theta)
            if expected[k, i] > 0:
                held[i] = 2
    got = np.zeros(frames.shape)
    s = result.spikes[result.spikes["node"] == 1]
    np.add.at(got, (np.round(s["t_us"] / bin_us).astype(int) - 1, s["neuron"]), s["count"])
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_allclose(result.extra["state"]["l1"]["v"], v, rtol=1e-12, atol=1e-12)
    assert 0 < np.count_nonzero(expected) < expected.size
    # without the refractory period the same input gives more spikes: the hold is exercised
    free = ClockSimulator(evsim.load_model(g, profile=profile, precision="float64", **timing), bin_us=bin_us).run(events)
    assert free.spikes_per_node["l1"] > expected.sum()

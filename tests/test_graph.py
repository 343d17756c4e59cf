"""NIR graphs the way real exporters write them, written to disk and read back by evsim.

Each test builds a graph with the ``nir`` package, writes it with ``nir.write`` (or, where a field
is None — which nir.write cannot store — with the same layout minus that dataset, see
``_nirgraphs.write_nir``), edits the HDF5 file with h5py where an exporter's quirk needs it, loads
it with ``evsim.load_model(path)`` and compares what the simulation does with an independent
numpy computation.
"""

from __future__ import annotations

import itertools
import os
import time
import warnings

import h5py
import nir
import numpy as np
import pytest

import evsim
from _nirgraphs import (
    conv1d,
    conv2d,
    dense_matrix,
    events_at,
    graph,
    h5_edit,
    inp,
    integrated_state,
    integrator,
    out,
    random_events,
    ref_conv1d,
    ref_conv2d,
    ref_pool2d,
    sumpool,
    write_nir,
)


def spikes_of(result, node: str) -> np.ndarray:
    """Recorded spikes of one population as a structured array (neuron, t_us, count)."""
    idx = result.node_names.index(node)
    return result.spikes[result.spikes["node"] == idx]


# --------------------------------------------------------------------------------------------
# (a) sinabs-style: Conv2d with input_shape, IF without v_reset, SumPool2d, placeholder Flatten
# --------------------------------------------------------------------------------------------


def sinabs_reference(events, m1, theta1, wpool_fc, theta2, shape1):
    """sinabs IAF semantics (docs/SEMANTICS.md#profile-sinabs): v += Σw (r ignored), fire when v ≥ θ with
    floor(v/θ) spikes (MultiSpike), subtract n·θ, clip at −θ; every input event's cascade
    completes before the next. Layer 2 weights are non-negative, so the order in which layer-1
    spikes of one cascade arrive does not change its spike count."""
    v1 = np.zeros(m1.shape[0])
    v2 = np.zeros(wpool_fc.shape[0])
    n_out = np.zeros(wpool_fc.shape[0], dtype=np.int64)
    n_hidden = 0
    for e in events:
        i = (int(e["p"]) * shape1[1] + int(e["y"])) * shape1[2] + int(e["x"])
        v1 += m1[:, i]
        s1 = np.where(v1 >= theta1, np.floor(v1 / theta1), 0.0)
        v1 -= s1 * theta1
        v1 = np.maximum(v1, -theta1)
        n_hidden += int(s1.sum())
        v2 += wpool_fc @ s1
        s2 = np.where(v2 >= theta2, np.floor(v2 / theta2), 0.0)
        v2 -= s2 * theta2
        v2 = np.maximum(v2, -theta2)
        n_out += s2.astype(np.int64)
    return n_out, n_hidden


@pytest.mark.parametrize("style", ["placeholder", "batchful"])
def test_sinabs_style_file(tmp_path, style):
    rng = np.random.default_rng(1)
    c, h, w = 2, 8, 8
    # multiples of 1/4: every partial sum is exact in float32, so the comparison can be exact
    wc = rng.integers(-4, 5, size=(4, c, 3, 3)) / 4.0
    wfc = rng.integers(0, 3, size=(10, 4 * 4 * 4)) / 4.0
    theta1, theta2 = 1.0, 2.0
    in_shape = (c, h, w) if style == "placeholder" else (1, c, h, w)
    flatten_type = np.array([0, 0, 0, 0]) if style == "placeholder" else np.array([1, 4, 4, 4])
    nodes = {
        "input": inp(in_shape),
        "conv": conv2d(wc, padding=1, input_shape=(h, w)),
        "if1": nir.IF(r=np.ones((4, h, w)), v_threshold=np.full((4, h, w), theta1)),
        "pool": sumpool(2),
        "flat": nir.Flatten(input_type={"input": flatten_type}, start_dim=1),
        "fc": nir.Affine(weight=wfc, bias=np.zeros(10)),
        "if2": nir.IF(r=np.ones(10), v_threshold=np.full(10, theta2)),
        "output": out((10,)),
    }
    edges = [("input", "conv"), ("conv", "if1"), ("if1", "pool"), ("pool", "flat"), ("flat", "fc"),
             ("fc", "if2"), ("if2", "output")]
    path = write_nir(tmp_path / "sinabs.nir", graph(nodes, edges))

    def drop_v_reset(f):
        del f["node/nodes/if1/v_reset"]
        del f["node/nodes/if2/v_reset"]

    h5_edit(path, drop_v_reset)
    with h5py.File(path) as f:
        assert "v_reset" not in f["node/nodes/if1"] and "input_shape" in f["node/nodes/conv"]

    model = evsim.load_model(path, profile="sinabs")
    events, _ = random_events(rng, (c, h, w), 400)
    result = evsim.Simulator(model).run(events)

    m1 = dense_matrix(lambda x: ref_conv2d(x, wc, padding=1), (c, h, w))
    pool_fc = dense_matrix(lambda s: wfc @ ref_pool2d(s, 2).reshape(-1), (4, h, w))
    expected_out, expected_hidden = sinabs_reference(events, m1, theta1, pool_fc, theta2, (c, h, w))
    assert expected_out.sum() > 0  # the test means something
    np.testing.assert_array_equal(result.output_counts, expected_out)
    assert result.spikes_per_node["if1"] == expected_hidden
    assert result.spikes_per_node["if2"] == expected_out.sum()


def test_if_without_v_reset_resets_to_zero(tmp_path):
    """Strict NIR: an IF whose file has no v_reset resets to 0 (docs/SEMANTICS.md#neurons)."""
    nodes = {"input": inp((2,)), "fc": nir.Linear(weight=np.diag([1.5, 0.7])),
             "if1": nir.IF(r=np.ones(2), v_threshold=np.ones(2), v_reset=np.full(2, 0.25)), "output": out((2,))}
    path = write_nir(tmp_path / "g.nir", graph(nodes, [("input", "fc"), ("fc", "if1"), ("if1", "output")]))
    h5_edit(path, lambda f: f["node/nodes/if1"].__delitem__("v_reset"))
    model = evsim.load_model(path, precision="float64")
    sim = evsim.Simulator(model, trace={"if1": [0, 1]})
    result = sim.run(events_at([0, 10, 20, 30, 40], [0, 1, 1, 1, 0], (2,)))
    # neuron 0: 1.5 → spike → 0, then 1.5 → spike → 0; neuron 1: 0.7, 1.4 → spike → 0, 0.7
    np.testing.assert_array_equal(result.output_counts, [2, 1])
    tr = result.traces
    last = {n: tr["v"][tr["neuron"] == n][-1] for n in (0, 1)}
    np.testing.assert_allclose([last[0], last[1]], [0.0, 0.7], rtol=1e-12)


# --------------------------------------------------------------------------------------------
# (b) snnTorch-style
# --------------------------------------------------------------------------------------------

DT = 1e-4  # snntorch.export_nir's dt


def test_snntorch_style_feedforward(tmp_path):
    """Conv2d without input_shape, Flatten(input_type=None, start_dim=0), Affine, and a LIF whose
    parameters are 1-element arrays for a layer of 8 neurons; checked under 'nir' and 'snntorch'
    against the closed-form membrane of several neurons."""
    rng = np.random.default_rng(2)
    c, h, w = 2, 6, 6
    wc = rng.normal(size=(3, c, 3, 3))
    wfc = rng.normal(size=(8, 3 * h * w)) * 0.1
    beta = 0.9
    tau = DT / (1 - beta)
    nodes = {
        "input": inp((c, h, w)),
        "conv": conv2d(wc, padding=1, input_shape=None),
        "flat": nir.Flatten(input_type=None, start_dim=0),
        "fc": nir.Affine(weight=wfc, bias=np.zeros(8)),
        "lif": nir.LIF(tau=np.array([tau]), r=np.array([tau / DT]), v_leak=np.array([0.0]),
                       v_threshold=np.array([1e9])),
        "output": out((8,)),
    }
    edges = [("input", "conv"), ("conv", "flat"), ("flat", "fc"), ("fc", "lif"), ("lif", "output")]
    path = write_nir(tmp_path / "snntorch.nir", graph(nodes, edges))
    with h5py.File(path) as f:
        assert "input_shape" not in f["node/nodes/conv"] and "input_type" not in f["node/nodes/flat"]

    m = dense_matrix(lambda x: wfc @ ref_conv2d(x, wc, padding=1).reshape(-1), (c, h, w))
    n_events = 60
    flat = rng.integers(0, c * h * w, size=n_events)
    t_us = np.cumsum(rng.integers(1, 6, size=n_events)) * 100  # distinct, on the dt grid
    events = events_at(t_us, flat, (c, h, w))
    traced = [0, 3, 7]

    for profile in ("nir", "snntorch"):
        model = evsim.load_model(path, profile=profile, precision="float64")
        assert [p.shape for p in model.populations if p.name == "lif"] == [(8,)]
        result = evsim.Simulator(model, trace={"lif": traced}).run(events)
        tr = result.traces
        for j in traced:
            rec_t = tr["t_us"][tr["neuron"] == j]
            rec_v = tr["v"][tr["neuron"] == j]
            for k, tk in enumerate(t_us):
                age_s = (tk - t_us[: k + 1]) * 1e-6
                if profile == "nir":  # v += R·w/τ, τ dv/dt = −v
                    expected = np.sum((tau / DT) / tau * m[j, flat[: k + 1]] * np.exp(-age_s / tau))
                else:  # snnTorch Leaky: v[n+1] = β v[n] + x[n+1]
                    expected = np.sum(m[j, flat[: k + 1]] * beta ** np.round(age_s / DT))
                at_k = np.flatnonzero(np.isclose(rec_t, float(tk - t_us[0]), atol=1e-6))  # since the first event
                assert at_k.size > 0, f"no trace record of neuron {j} at {tk} us"
                np.testing.assert_allclose(rec_v[at_k[-1]], expected, rtol=1e-9, atol=1e-12)


def rsynaptic_graph(key_style: str, w_fc: float, w_rec: float, alpha=0.8, beta=0.9, theta=1.0):
    """Input(3) → fc → rec → Output, rec = {input, lif (CubaLIF), w_rec (Linear 3×3), output} with
    the recurrent weight only from neuron 0 to neuron 1; snnTorch parameters (1-element arrays)."""
    tau_syn, tau_mem = DT / (1 - alpha), DT / (1 - beta)
    one = lambda v: np.array([float(v)])  # noqa: E731
    lif = nir.CubaLIF(tau_syn=one(tau_syn), tau_mem=one(tau_mem), r=one(tau_mem / DT), v_leak=one(0.0),
                      v_threshold=one(theta), w_in=one(tau_syn / DT))
    wr = np.zeros((3, 3))
    wr[1, 0] = w_rec
    k = (lambda s: f"rec.{s}") if key_style == "prefixed" else (lambda s: s)
    inner = graph({k("input"): inp((3,)), k("lif"): lif, k("w_rec"): nir.Linear(weight=wr), k("output"): out((3,))},
                  [(k("input"), k("lif")), (k("lif"), k("w_rec")), (k("w_rec"), k("lif")), (k("lif"), k("output"))])
    wf = np.zeros((3, 3))
    wf[0, 0] = w_fc
    nodes = {"input": inp((3,)), "fc": nir.Linear(weight=wf), "rec": inner, "output": out((3,))}
    return graph(nodes, [("input", "fc"), ("fc", "rec"), ("rec", "output")]), tau_syn, tau_mem


@pytest.mark.parametrize("key_style", ["prefixed", "plain"])
def test_snntorch_rsynaptic_subgraph(tmp_path, key_style):
    """RSynaptic as a nested subgraph, run under 'snntorch' and under 'nir' with a recurrent delay.
    The structure is written twice: with snnTorch-sized weights for the 'snntorch' profile, and
    with weights scaled by 1e-4 for strict NIR, where the same CubaLIF parameters mean
    I += w_in·w/τ_syn = 1e4·w per spike (unscaled, the neurons would fire millions of times)."""
    events = events_at([0, 0, 200], [0, 0, 0], (3,))
    input_times_us = {0.0, 200.0}
    nir_scale = 1e-4
    runs = [
        # profile, options, weight scale, recurrent delay (µs)
        ("snntorch", {}, 1.0, DT * 1e6),  # snnTorch: the recurrent edge carries one step dt
        ("nir", {"recurrent_delay_us": 1000}, nir_scale, 1000.0),
    ]
    for profile, opts, scale, delay_us in runs:
        w_fc, w_rec = 3.0 * scale, 5.0 * scale
        g, tau_syn, tau_mem = rsynaptic_graph(key_style, w_fc, w_rec)
        path = write_nir(tmp_path / f"rsyn_{profile}.nir", g)
        # snnTorch: I[n+1] = α I[n] + x (the current jumps by w); strict NIR: I += w_in·w/τ_syn
        jump = w_rec if profile == "snntorch" else (tau_syn / DT) / tau_syn * w_rec

        if profile == "nir":
            with pytest.raises(evsim.ModelError) as err:
                evsim.load_model(path, profile="nir")
            assert "recurrent" in str(err.value) and "delay" in str(err.value)
            assert err.value.node == "rec.lif"

        model = evsim.load_model(path, profile=profile, precision="float64", **opts)
        assert [p.name for p in model.populations if p.nir_type == "CubaLIF"] == ["rec.lif"]
        sim = evsim.Simulator(model, record_spikes=True, trace={"rec.lif": [1]}, budget=200_000)
        result = sim.run(events, t_end_us=20_000)
        assert result.status == "complete", profile
        s = spikes_of(result, "rec.lif")
        assert set(np.unique(s["neuron"])) == {0, 1}, profile  # neuron 2 never gets anything
        t0 = s["t_us"][s["neuron"] == 0].min()
        t1 = s["t_us"][s["neuron"] == 1].min()
        assert t1 > t0 + delay_us - 1e-6, profile
        # neuron 1 is updated at the input times (by weight 0) and then, first, when neuron 0's
        # spike arrives through w_rec exactly one recurrent delay later: its current jumps
        tr = result.traces
        late = tr[[round(float(t), 6) not in input_times_us for t in tr["t_us"]]]
        assert abs(late["t_us"][0] - (t0 + delay_us)) < 1e-6, profile
        np.testing.assert_allclose(late["i_syn"][0], jump, rtol=1e-9)
        assert late["v"][0] == 0.0


# --------------------------------------------------------------------------------------------
# (c) Norse-style: edges in any order, Flatten without input_type
# --------------------------------------------------------------------------------------------


def norse_nodes(rng, with_lif: bool):
    c, h, w = 2, 5, 5
    wc = rng.normal(size=(3, c, 3, 3))
    wfc = rng.normal(size=(4, 3 * 9))
    nodes = {
        "input": inp((c, h, w)),
        "conv": conv2d(wc, padding=0, input_shape=(h, w)),
        "flat": nir.Flatten(input_type=None, start_dim=0),
        "fc": nir.Linear(weight=wfc),
        "integ": integrator((4,)),
        "output": out((4,)),
    }
    edges = [("input", "conv"), ("conv", "flat"), ("flat", "fc"), ("fc", "integ"), ("integ", "output")]
    if with_lif:
        nodes["lif"] = nir.LIF(tau=np.full((3, 3, 3), 5e-3), r=np.ones((3, 3, 3)), v_leak=np.zeros((3, 3, 3)),
                               v_threshold=np.full((3, 3, 3), 0.5))
        edges = [("input", "conv"), ("conv", "lif"), ("lif", "flat"), ("flat", "fc"), ("fc", "integ"), ("integ", "output")]
    return nodes, edges, wc, wfc


@pytest.mark.parametrize("with_lif", [False, True], ids=["linear", "with_lif"])
def test_norse_style_shuffled_edges(tmp_path, with_lif):
    rng = np.random.default_rng(3)
    nodes, edges, wc, wfc = norse_nodes(rng, with_lif)
    events, counts = random_events(rng, (2, 5, 5), 300)
    results = []
    perms = [list(p) for p in itertools.islice(itertools.permutations(range(len(edges))), 0, None, 97)][:6]
    perms.append(list(range(len(edges)))[::-1])
    for k, perm in enumerate(perms):
        shuffled_edges = [edges[i] for i in perm]
        names = list(nodes)
        rng.shuffle(names)
        path = write_nir(tmp_path / f"norse{k}.nir", graph({n: nodes[n] for n in names}, shuffled_edges))
        with h5py.File(path) as f:
            stored = [tuple(x.decode() for x in e) for e in f["node/edges"][()]]
        assert stored == shuffled_edges  # the file really holds the shuffled order
        for profile in ("nir", "norse"):
            model = evsim.load_model(path, profile=profile, precision="float64")
            results.append((profile, evsim.Simulator(model, record_spikes=True).run(events)))
    # the edge order never matters: bit-identical results
    for profile in ("nir", "norse"):
        same = [r for p, r in results if p == profile]
        for r in same[1:]:
            np.testing.assert_array_equal(r.output, same[0].output)
            np.testing.assert_array_equal(r.spikes, same[0].spikes)
            assert r.synops == same[0].synops
    if not with_lif:
        expected = wfc @ ref_conv2d(counts, wc).reshape(-1)
        nir_out = [r for p, r in results if p == "nir"][0].output
        np.testing.assert_allclose(nir_out, expected, rtol=1e-9, atol=1e-9)
        # norse: an I receives the input as a current held for one step: v += R·dt·w (dt = 1 ms)
        norse_out = [r for p, r in results if p == "norse"][0].output
        np.testing.assert_allclose(norse_out, 1e-3 * expected, rtol=1e-9, atol=1e-12)
    else:
        assert results[0][1].spikes_per_node["lif"] > 0


@pytest.mark.parametrize("padding", ["same", "valid", (2, 1)])
@pytest.mark.parametrize("with_input_shape", [True, False])
def test_conv_geometry_survives_the_file(tmp_path, padding, with_input_shape):
    """String paddings are stored as HDF5 strings, pairs as arrays; both read back to the same
    convolution (Conv2d and Conv1d), with or without input_shape."""
    rng = np.random.default_rng(11)
    w2 = rng.normal(size=(4, 1, 3, 2))
    w1 = rng.normal(size=(4, 2, 3))
    pad1 = padding if isinstance(padding, str) else padding[0]
    dil = 1 if padding != "same" else 2
    stride2 = 1 if padding == "same" else (2, 1)
    o2 = ref_conv2d(np.zeros((2, 7, 6)), w2, stride2, padding, dil, 2).shape
    o1 = ref_conv1d(np.zeros((2, 9)), w1, 1, pad1, dil, 1).shape
    for name, shape, node, oshape, ref in [
        ("c2", (2, 7, 6), conv2d(w2, stride2, padding, dil, 2, input_shape=(7, 6) if with_input_shape else None), o2,
         lambda x: ref_conv2d(x, w2, stride2, padding, dil, 2)),
        ("c1", (2, 9), conv1d(w1, 1, pad1, dil, 1, input_shape=9 if with_input_shape else None), o1,
         lambda x: ref_conv1d(x, w1, 1, pad1, dil, 1)),
    ]:
        nodes = {"input": inp(shape), "conv": node, "integ": integrator(oshape), "output": out(oshape)}
        path = write_nir(tmp_path / f"{name}.nir", graph(nodes, [("input", "conv"), ("conv", "integ"), ("integ", "output")]))
        with h5py.File(path) as f:
            assert ("input_shape" in f["node/nodes/conv"]) == with_input_shape
        events, counts = random_events(rng, shape, 300)
        result = evsim.Simulator(evsim.load_model(path, precision="float64")).run(events)
        np.testing.assert_allclose(result.output, ref(counts).reshape(-1), rtol=1e-9, atol=1e-9)


# --------------------------------------------------------------------------------------------
# (d) branching and merging
# --------------------------------------------------------------------------------------------


def test_residual_graph_merges_by_summation(tmp_path):
    """Input → IF (fires once per input event) → {convA, convB, identity skip} → one I."""
    rng = np.random.default_rng(4)
    c, h, w = 2, 6, 6
    wa = rng.normal(size=(c, c, 3, 3))
    wb = rng.normal(size=(c, c, 5, 5))
    nodes = {
        "input": inp((c, h, w)),
        "if_a": nir.IF(r=np.ones((c, h, w)), v_threshold=np.full((c, h, w), 0.5), v_reset=np.zeros((c, h, w))),
        "conv_a": conv2d(wa, padding=1, input_shape=(h, w)),
        "conv_b": conv2d(wb, padding=2, input_shape=(h, w)),
        "integ": integrator((c, h, w)),
        "output": out((c, h, w)),
    }
    edges = [("input", "if_a"), ("if_a", "conv_a"), ("if_a", "conv_b"), ("if_a", "integ"), ("conv_a", "integ"),
             ("conv_b", "integ"), ("integ", "output")]
    path = write_nir(tmp_path / "res.nir", graph(nodes, edges))
    events, counts = random_events(rng, (c, h, w), 500)
    result = evsim.Simulator(evsim.load_model(path, precision="float64")).run(events)
    assert result.spikes_per_node["if_a"] == 500
    expected = ref_conv2d(counts, wa, padding=1) + ref_conv2d(counts, wb, padding=2) + counts
    np.testing.assert_allclose(result.output, expected.reshape(-1), rtol=1e-9, atol=1e-9)


def test_two_spiking_layers_merge_into_one(tmp_path):
    """Two IF layers fed from the same input by different weights both project into one I."""
    nodes = {
        "input": inp((3,)),
        "wa": nir.Linear(weight=np.eye(3)),
        "wb": nir.Linear(weight=2.0 * np.eye(3)),
        "if_a": nir.IF(r=np.ones(3), v_threshold=np.full(3, 0.5), v_reset=np.zeros(3)),  # every event
        "if_b": nir.IF(r=np.ones(3), v_threshold=np.full(3, 3.5), v_reset=np.zeros(3)),  # every 2nd event
        "la": nir.Linear(weight=np.array([[1.0, 10.0, 100.0]])),
        "lb": nir.Linear(weight=np.array([[-1.0, -10.0, -100.0]])),
        "integ": integrator((1,)),
        "output": out((1,)),
    }
    edges = [("input", "wa"), ("input", "wb"), ("wa", "if_a"), ("wb", "if_b"), ("if_a", "la"), ("if_b", "lb"),
             ("la", "integ"), ("lb", "integ"), ("integ", "output")]
    path = write_nir(tmp_path / "merge.nir", graph(nodes, edges))
    rng = np.random.default_rng(5)
    events, counts = random_events(rng, (3,), 61)
    result = evsim.Simulator(evsim.load_model(path, precision="float64")).run(events)
    spikes_b = np.floor(counts / 2)  # v_b = 2, 4 > 3.5 → spike, reset
    expected = np.array([1.0, 10.0, 100.0]) @ (counts - spikes_b)
    np.testing.assert_allclose(result.output, [expected], rtol=1e-12)


# --------------------------------------------------------------------------------------------
# (e) per-neuron parameters
# --------------------------------------------------------------------------------------------


def if_reference(events_flat, r, theta, v_reset):
    """Strict NIR IF driven by unit weights: v += r; fire when v > θ; v ← v_reset."""
    v = np.zeros(theta.size)
    spikes = []
    for k, i in enumerate(events_flat):
        v[i] += r[i]
        if v[i] > theta[i]:
            spikes.append((k, i))
            v[i] = v_reset[i]
    return spikes, v


def test_per_neuron_thresholds_vector(tmp_path):
    theta = np.array([0.5, 1.5, 2.5])
    nodes = {"input": inp((3,)), "if1": nir.IF(r=np.ones(3), v_threshold=theta, v_reset=np.zeros(3)), "output": out((3,))}
    path = write_nir(tmp_path / "thr.nir", graph(nodes, [("input", "if1"), ("if1", "output")]))
    flat = np.tile([0, 1, 2], 6)
    t_us = np.arange(flat.size) * 10
    result = evsim.Simulator(evsim.load_model(path), record_spikes=True).run(events_at(t_us, flat, (3,)))
    # by hand: neuron 0 fires on every event (1 > 0.5), neuron 1 on every 2nd, neuron 2 on every 3rd
    np.testing.assert_array_equal(result.output_counts, [6, 3, 2])
    s = spikes_of(result, "if1")
    expected, _ = if_reference(flat, np.ones(3), theta, np.zeros(3))
    # spike times are model seconds × 1e6: compare to the µs (float rounding only)
    assert [(int(n), round(float(t), 6)) for n, t in zip(s["neuron"], s["t_us"])] == [(i, float(t_us[k])) for k, i in expected]


def test_per_neuron_parameters_on_a_map(tmp_path):
    """Per-neuron θ, r and v_reset on a (C, H, W) layer (the engine stores maps channel-last, so
    this also checks that parameters follow their neuron)."""
    rng = np.random.default_rng(6)
    shape = (2, 3, 4)
    theta = rng.choice([0.5, 1.5, 2.5, 3.5], size=shape)
    r = rng.choice([1.0, 2.0], size=shape)
    v_reset = rng.choice([0.0, 0.5], size=shape)
    nodes = {"input": inp(shape), "if1": nir.IF(r=r, v_threshold=theta, v_reset=v_reset), "output": out(shape)}
    path = write_nir(tmp_path / "thr_map.nir", graph(nodes, [("input", "if1"), ("if1", "output")]))
    events, counts = random_events(rng, shape, 400)
    flat = (events["p"].astype(int) * 3 + events["y"]) * 4 + events["x"]
    result = evsim.Simulator(evsim.load_model(path, precision="float64"), record_spikes=True).run(events)
    expected, _ = if_reference(flat, r.ravel(), theta.ravel(), v_reset.ravel())
    per_neuron = np.bincount([i for _, i in expected], minlength=24)
    assert len(set(per_neuron.tolist())) > 3  # the thresholds really make a difference
    np.testing.assert_array_equal(result.output_counts, per_neuron)
    s = spikes_of(result, "if1")
    got = sorted((round(float(t), 6), int(n)) for n, t in zip(s["neuron"], s["t_us"]))
    want = sorted((float(events["t"][k] - events["t"][0]), int(i)) for k, i in expected)
    assert got == want


# --------------------------------------------------------------------------------------------
# (f) errors name the node
# --------------------------------------------------------------------------------------------


def small_graph():
    nodes = {"input": inp((4,)), "fc": nir.Affine(weight=np.ones((3, 4)), bias=np.zeros(3)),
             "if1": nir.IF(r=np.ones(3), v_threshold=np.ones(3), v_reset=np.zeros(3)), "output": out((3,))}
    return nodes, [("input", "fc"), ("fc", "if1"), ("if1", "output")]


def raises_naming(path_or_graph, *needles, **kw):
    with pytest.raises(evsim.ModelError) as err:
        evsim.load_model(path_or_graph, **kw)
    msg = str(err.value)
    for needle in needles:
        assert needle in msg, f"{needle!r} not in {msg!r}"
    return err.value


def test_error_unknown_node_type(tmp_path):
    nodes, edges = small_graph()
    nodes["mystery"] = nir.Scale(scale=np.ones(3))
    edges = [("input", "fc"), ("fc", "mystery"), ("mystery", "if1"), ("if1", "output")]
    path = write_nir(tmp_path / "foo.nir", graph(nodes, edges))

    def retype(f):
        del f["node/nodes/mystery/type"]
        f["node/nodes/mystery"].create_dataset("type", data="Foo", dtype=h5py.string_dtype())

    h5_edit(path, retype)
    err = raises_naming(path, "mystery", "Foo")
    assert err.node == "mystery"


def test_error_shape_mismatch(tmp_path):
    nodes = {"input": inp((8,)), "if0": nir.IF(r=np.ones(8), v_threshold=np.ones(8), v_reset=np.zeros(8)),
             "fc": nir.Affine(weight=np.ones((5, 10)), bias=np.zeros(5)), "integ": integrator((5,)), "output": out((5,))}
    edges = [("input", "if0"), ("if0", "fc"), ("fc", "integ"), ("integ", "output")]
    path = write_nir(tmp_path / "mismatch.nir", graph(nodes, edges))
    raises_naming(path, "'fc'", "(8,)", "(10,)")


def test_error_nan_weight(tmp_path):
    nodes, edges = small_graph()
    weight = np.ones((3, 4))
    weight[1, 2] = np.nan
    nodes["fc"] = nir.Affine(weight=weight, bias=np.zeros(3))
    path = write_nir(tmp_path / "nan.nir", graph(nodes, edges))
    err = raises_naming(path, "'fc'", "weight")
    assert err.node == "fc"


def test_error_inf_threshold(tmp_path):
    nodes, edges = small_graph()
    nodes["if1"] = nir.IF(r=np.ones(3), v_threshold=np.array([1.0, np.inf, 1.0]), v_reset=np.zeros(3))
    path = write_nir(tmp_path / "inf.nir", graph(nodes, edges))
    raises_naming(path, "'if1'", "v_threshold", "1 non-finite")  # (+inf is a time constant's "no decay" only)
    nodes["if1"] = nir.IF(r=np.ones(3), v_threshold=np.array([1.0, -np.inf, np.nan]), v_reset=np.zeros(3))
    raises_naming(write_nir(tmp_path / "nan.nir", graph(nodes, edges)), "'if1'", "v_threshold", "2 non-finite")


def test_error_missing_file(tmp_path):
    missing = tmp_path / "nope.nir"
    raises_naming(str(missing), str(missing), "no such file")


def test_error_a_model_that_is_not_a_regular_file(tmp_path):
    fifo = tmp_path / "model.nir"
    os.mkfifo(fifo)
    raises_naming(str(fifo), str(fifo), "not a regular file")  # (not opened: a pipe would block)
    raises_naming(str(tmp_path), "not a regular file")


def test_error_not_hdf5(tmp_path):
    path = tmp_path / "text.nir"
    path.write_text("this is not a NIR file\n")
    raises_naming(str(path), str(path))


@pytest.mark.parametrize("where", ["root", "node"])
def test_error_a_node_without_a_type_is_an_incomplete_file(tmp_path, where):
    # what nir.write leaves behind when it fails part-way: groups without their 'type'
    nodes, edges = small_graph()
    path = write_nir(tmp_path / "cut.nir", graph(nodes, edges))
    with h5py.File(path, "r+") as f:
        del f["node/type" if where == "root" else "node/nodes/fc/type"]
    err = raises_naming(path, "no node type stored", "incomplete or damaged")
    assert err.node == ("<root>" if where == "root" else "fc")


def test_error_two_inputs(tmp_path):
    nodes, edges = small_graph()
    nodes["input2"] = inp((4,))
    edges = edges + [("input2", "fc")]
    path = write_nir(tmp_path / "two_inputs.nir", graph(nodes, edges))
    raises_naming(path, "Input", "input", "input2")


def test_error_output_unreachable(tmp_path):
    nodes = {"input": inp((4,)), "fc": nir.Affine(weight=np.ones((3, 4)), bias=np.zeros(3)),
             "if1": nir.IF(r=np.ones(3), v_threshold=np.ones(3), v_reset=np.zeros(3)),
             "lonely": integrator((3,)), "output": out((3,))}
    edges = [("input", "fc"), ("fc", "if1"), ("lonely", "output")]
    path = write_nir(tmp_path / "unreach.nir", graph(nodes, edges))
    err = raises_naming(path, "'output'", "reachable")
    assert err.node == "output"


def test_error_conv_input_shape_inconsistent(tmp_path):
    nodes = {"input": inp((2, 8, 8)), "conv": conv2d(np.ones((3, 2, 3, 3)), padding=1, input_shape=(6, 6)),
             "integ": integrator((3, 6, 6)), "output": out((3, 6, 6))}
    edges = [("input", "conv"), ("conv", "integ"), ("integ", "output")]
    path = write_nir(tmp_path / "conv_shape.nir", graph(nodes, edges))
    err = raises_naming(path, "'conv'", "input_shape")
    assert err.node == "conv"


def test_error_conv_channels_do_not_fit(tmp_path):
    nodes = {"input": inp((3, 6, 6)), "conv": conv2d(np.ones((4, 2, 3, 3)), padding=1),
             "integ": integrator((4, 6, 6)), "output": out((4, 6, 6))}
    path = write_nir(tmp_path / "conv_ch.nir", graph(nodes, [("input", "conv"), ("conv", "integ"), ("integ", "output")]))
    err = raises_naming(path, "'conv'", "3 input channels")
    assert err.node == "conv"


def test_error_parameter_shape_does_not_fit_layer(tmp_path):
    nodes, edges = small_graph()
    nodes["if1"] = nir.IF(r=np.ones(5), v_threshold=np.ones(5), v_reset=np.zeros(5))  # layer has 3 neurons
    path = write_nir(tmp_path / "param_shape.nir", graph(nodes, edges))
    raises_naming(path, "'if1'")


def test_error_edge_to_unknown_node(tmp_path):
    nodes, edges = small_graph()
    path = write_nir(tmp_path / "edge.nir", graph(nodes, edges + [("if1", "ghost")]))
    raises_naming(path, "ghost")


# --------------------------------------------------------------------------------------------
# (g) Delay nodes
# --------------------------------------------------------------------------------------------

D_S = 0.0025  # 2.5 ms


def delay_graph(position: str, delays):
    """A 4-input graph whose target IF fires once per arriving spike (w = 1 > θ = 0.5) and where
    target neuron perm[i] is reached by input neuron i only."""
    perm = [2, 0, 3, 1]
    p = np.zeros((4, 4))
    p[perm, np.arange(4)] = 1.0
    mk_if = lambda: nir.IF(r=np.ones(4), v_threshold=np.full(4, 0.5), v_reset=np.zeros(4))  # noqa: E731
    nodes = {"input": inp((4,)), "w": nir.Linear(weight=p), "target": mk_if(), "output": out((4,))}
    if position == "after_input":
        nodes["delay"] = nir.Delay(delay=np.asarray(delays, dtype=float))
        edges = [("input", "delay"), ("delay", "w"), ("w", "target")]
    elif position == "after_weights":
        nodes["delay"] = nir.Delay(delay=np.asarray(delays, dtype=float))
        edges = [("input", "w"), ("w", "delay"), ("delay", "target")]
    elif position == "after_if":
        nodes["if0"] = mk_if()
        nodes["delay"] = nir.Delay(delay=np.asarray(delays, dtype=float))
        edges = [("input", "if0"), ("if0", "delay"), ("delay", "w"), ("w", "target")]
    elif position == "two_delays":
        nodes["delay"] = nir.Delay(delay=np.asarray(delays, dtype=float))
        nodes["delay2"] = nir.Delay(delay=np.asarray(delays, dtype=float))
        edges = [("input", "delay"), ("delay", "w"), ("w", "delay2"), ("delay2", "target")]
    else:
        raise AssertionError(position)
    return graph(nodes, edges + [("target", "output")]), perm


def run_delay(tmp_path, g, name):
    path = write_nir(tmp_path / f"{name}.nir", g)
    rng = np.random.default_rng(8)
    flat = rng.integers(0, 4, size=40)
    t_us = np.sort(rng.integers(0, 20_000, size=40))
    t_us[0] = 0
    result = evsim.Simulator(evsim.load_model(path, precision="float64"), record_spikes=True).run(
        events_at(t_us, flat, (4,)), t_end_us=60_000)
    return result, flat, t_us


def test_a_delay_is_zero_or_at_least_a_nanosecond(tmp_path):
    """A Delay of 1e-300 s in a loop ran the processing budget out at t ≈ 0 (a minute of CPU, then
    a prediction): delays between 0 and a nanosecond are refused, 0 and 1 ns are taken."""
    for delays, ok in (([0.0, 1e-9, 0.0, 2e-3], True), ([0.0, 1e-300, 0.0, 0.0], False), ([5e-10] * 4, False)):
        g, _ = delay_graph("after_input", delays)
        path = write_nir(tmp_path / "delay.nir", g)
        if ok:
            evsim.load_model(path)
        else:
            err = raises_naming(path, "'delay'", "at least a nanosecond")
            assert err.node == "delay"


@pytest.mark.parametrize("position", ["after_input", "after_weights", "after_if", "two_delays"])
def test_uniform_delay_anywhere_shifts_spikes(tmp_path, position):
    g, perm = delay_graph(position, np.full(4, D_S))
    result, flat, t_us = run_delay(tmp_path, g, position)
    total = 2 * D_S if position == "two_delays" else D_S
    s = spikes_of(result, "target")
    got = sorted((round(float(t), 6), int(n)) for n, t in zip(s["neuron"], s["t_us"]))
    want = sorted((round(float(t) + total * 1e6, 6), perm[i]) for t, i in zip(t_us, flat))
    assert got == want


@pytest.mark.parametrize("position", ["after_input", "after_if"])
def test_per_element_delay_after_spiking_layer(tmp_path, position):
    delays = np.array([0.001, 0.0025, 0.0, 0.004])
    g, perm = delay_graph(position, delays)
    result, flat, t_us = run_delay(tmp_path, g, f"per_{position}")
    s = spikes_of(result, "target")
    got = sorted((round(float(t), 6), int(n)) for n, t in zip(s["neuron"], s["t_us"]))
    want = sorted((round(float(t) + delays[i] * 1e6, 6), perm[i]) for t, i in zip(t_us, flat))
    assert got == want


def test_per_element_delay_after_flatten(tmp_path):
    """A Flatten only moves elements: a per-element Delay after it still belongs to one source neuron."""
    shape = (2, 2, 2)
    delays = np.arange(8) * 0.0005
    nodes = {"input": inp(shape), "flat": nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0),
             "delay": nir.Delay(delay=delays), "w": nir.Linear(weight=np.eye(8)),
             "target": nir.IF(r=np.ones(8), v_threshold=np.full(8, 0.5), v_reset=np.zeros(8)), "output": out((8,))}
    edges = [("input", "flat"), ("flat", "delay"), ("delay", "w"), ("w", "target"), ("target", "output")]
    path = write_nir(tmp_path / "flat_delay.nir", graph(nodes, edges))
    flat = np.array([7, 0, 3, 5, 1, 6, 2, 4, 7, 7])
    t_us = np.arange(10) * 100
    result = evsim.Simulator(evsim.load_model(path, precision="float64"), record_spikes=True).run(
        events_at(t_us, flat, shape), t_end_us=20_000)
    s = spikes_of(result, "target")
    got = sorted((round(float(t), 6), int(n)) for n, t in zip(s["neuron"], s["t_us"]))
    want = sorted((round(float(t) + delays[i] * 1e6, 6), int(i)) for t, i in zip(t_us, flat))
    assert got == want


def test_per_element_delay_on_a_map(tmp_path):
    """Per-element delays of a (C, H, W) layer follow their neuron (the engine stores maps
    channel-last): input (p, y, x) arrives delays[p, y, x] later at target p*H*W + y*W + x."""
    shape = (2, 2, 3)
    rng = np.random.default_rng(10)
    delays = rng.permutation(12).reshape(shape) * 0.0005
    nodes = {"input": inp(shape), "delay": nir.Delay(delay=delays),
             "flat": nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0), "w": nir.Linear(weight=np.eye(12)),
             "target": nir.IF(r=np.ones(12), v_threshold=np.full(12, 0.5), v_reset=np.zeros(12)), "output": out((12,))}
    edges = [("input", "delay"), ("delay", "flat"), ("flat", "w"), ("w", "target"), ("target", "output")]
    path = write_nir(tmp_path / "map_delay.nir", graph(nodes, edges))
    flat = rng.integers(0, 12, size=30)
    t_us = np.sort(rng.integers(0, 5000, size=30))
    t_us[0] = 0
    result = evsim.Simulator(evsim.load_model(path, precision="float64"), record_spikes=True).run(
        events_at(t_us, flat, shape), t_end_us=30_000)
    s = spikes_of(result, "target")
    got = sorted((round(float(t), 6), int(n)) for n, t in zip(s["neuron"], s["t_us"]))
    want = sorted((round(float(t) + delays.reshape(-1)[i] * 1e6, 6), int(i)) for t, i in zip(t_us, flat))
    assert got == want


def test_delayed_and_direct_paths_merge(tmp_path):
    """Input → w → target and Input → Delay → w2 → target: every input event reaches the target
    twice, now and D later (each arrival fires it once)."""
    nodes = {"input": inp((3,)), "w": nir.Linear(weight=np.eye(3)), "delay": nir.Delay(delay=np.full(3, D_S)),
             "w2": nir.Linear(weight=np.eye(3)[[1, 2, 0]]),
             "target": nir.IF(r=np.ones(3), v_threshold=np.full(3, 0.5), v_reset=np.zeros(3)), "output": out((3,))}
    edges = [("input", "w"), ("w", "target"), ("input", "delay"), ("delay", "w2"), ("w2", "target"), ("target", "output")]
    path = write_nir(tmp_path / "two_paths.nir", graph(nodes, edges))
    flat = np.array([0, 1, 2, 2, 0])
    t_us = np.array([0, 100, 100, 3000, 7000])
    result = evsim.Simulator(evsim.load_model(path, precision="float64"), record_spikes=True).run(
        events_at(t_us, flat, (3,)), t_end_us=20_000)
    s = spikes_of(result, "target")
    got = sorted((round(float(t), 6), int(n)) for n, t in zip(s["neuron"], s["t_us"]))
    inverse = {0: 2, 1: 0, 2: 1}  # w2 row j takes input (j+1) % 3
    want = sorted([(float(t), int(i)) for t, i in zip(t_us, flat)] +
                  [(round(float(t) + D_S * 1e6, 6), inverse[int(i)]) for t, i in zip(t_us, flat)])
    assert got == want


def test_negative_delay_is_an_error(tmp_path):
    nodes = {"input": inp((2,)), "delay": nir.Delay(delay=np.array([0.001, -0.001])), "w": nir.Linear(weight=np.eye(2)),
             "target": nir.IF(r=np.ones(2), v_threshold=np.ones(2), v_reset=np.zeros(2)), "output": out((2,))}
    edges = [("input", "delay"), ("delay", "w"), ("w", "target"), ("target", "output")]
    path = write_nir(tmp_path / "neg_delay.nir", graph(nodes, edges))
    err = raises_naming(path, "'delay'", "negative")
    assert err.node == "delay"


def test_per_element_delay_after_affine_is_an_error(tmp_path):
    nodes = {"input": inp((4,)), "fc": nir.Affine(weight=np.ones((3, 4)), bias=np.zeros(3)),
             "delay": nir.Delay(delay=np.array([0.001, 0.002, 0.003])),
             "target": nir.IF(r=np.ones(3), v_threshold=np.ones(3), v_reset=np.zeros(3)), "output": out((3,))}
    edges = [("input", "fc"), ("fc", "delay"), ("delay", "target"), ("target", "output")]
    path = write_nir(tmp_path / "bad_delay.nir", graph(nodes, edges))
    err = raises_naming(path, "'delay'", "per-element")
    assert err.node == "delay"


# --------------------------------------------------------------------------------------------
# Memory: a VGG-style network on 2×128×128 stays O(parameters + neurons)
# --------------------------------------------------------------------------------------------


def test_vgg_memory_and_short_run(tmp_path):
    rng = np.random.default_rng(9)
    chans = [2, 32, 32, 64, 64, 128, 128, 256, 256]
    size = 128
    nodes = {"input": inp((2, size, size))}
    edges = []
    prev = "input"
    n_params = 0
    n_neurons = 2 * size * size
    for k in range(8):
        cin, cout = chans[k], chans[k + 1]
        wt = rng.normal(scale=1.8 / np.sqrt(cin * 9), size=(cout, cin, 3, 3)).astype(np.float32)
        n_params += wt.size + cout
        nodes[f"conv{k}"] = conv2d(wt, padding=1, input_shape=(size, size))
        nodes[f"if{k}"] = nir.IF(r=np.ones((cout, size, size), dtype=np.float32),
                                 v_threshold=np.ones((cout, size, size), dtype=np.float32),
                                 v_reset=np.zeros((cout, size, size), dtype=np.float32))
        n_neurons += cout * size * size
        edges += [(prev, f"conv{k}"), (f"conv{k}", f"if{k}")]
        prev = f"if{k}"
        if k % 2 == 1:
            nodes[f"pool{k}"] = sumpool(2)
            edges.append((prev, f"pool{k}"))
            prev = f"pool{k}"
            size //= 2
    n_flat = 256 * size * size
    nodes["flat"] = nir.Flatten(input_type=None, start_dim=0)
    nodes["fc"] = nir.Affine(weight=rng.normal(scale=0.2, size=(10, n_flat)).astype(np.float32), bias=np.zeros(10))
    nodes["if_out"] = nir.IF(r=np.ones(10), v_threshold=np.ones(10), v_reset=np.zeros(10))
    nodes["output"] = out((10,))
    n_params += 10 * n_flat + 10
    n_neurons += 10
    edges += [(prev, "flat"), ("flat", "fc"), ("fc", "if_out"), ("if_out", "output")]
    path = write_nir(tmp_path / "vgg.nir", graph(nodes, edges))

    model = evsim.load_model(path)
    assert model.n_neurons == n_neurons
    mem = model.memory_bytes()
    # weights in float32 plus per-neuron tables (parameters shared by a layer are stored once;
    # index maps of folded pools are int64 per pooled element), nowhere near O(synapses); and the
    # convolutions' run tables (evsim.kernels.fanout.run_tables): per input element at most one
    # 16-byte row per kernel row and an 8-byte pointer
    m = model.arrays
    tables = m.run_table.nbytes + m.run_ptr.nbytes
    conv_inputs = sum(int(m.op_in_size[op]) for op in range(m.op_kind.shape[0]) if m.op_table_base[op] >= 0)
    assert conv_inputs >= n_neurons // 2  # every convolution is tabulated
    assert tables <= conv_inputs * (3 * 16 + 8) + 64, (tables, conv_inputs)
    assert mem < 400e6
    assert 4 * (n_params - 10 * n_flat) <= mem - tables <= 4 * n_params + 16 * n_neurons, (mem, n_params, n_neurons)

    events, _ = random_events(rng, (2, 128, 128), 3000, t_max_us=50_000)
    start = time.perf_counter()
    result = evsim.Simulator(model).run(events)
    elapsed = time.perf_counter() - start
    assert result.events_consumed == 3000 and result.status == "complete"
    # activity reaches every layer and the output (weights were sized for that)
    assert all(result.spikes_per_node[f"if{k}"] > 0 for k in range(8)) and result.spikes_per_node["if_out"] > 0
    assert elapsed < 30


def test_an_output_that_declares_another_number_of_values_is_a_shape_mismatch():
    import nir

    def graph(declared):
        return nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([2])}),
                                   "fc": nir.Linear(weight=np.ones((3, 2))),
                                   "n": nir.IF(r=np.ones(3), v_threshold=np.ones(3)),
                                   "output": nir.Output(output_type={"output": np.array(declared)})},
                            edges=[("input", "fc"), ("fc", "n"), ("n", "output")], type_check=False)

    with pytest.raises(evsim.ModelError) as err:
        evsim.load_model(graph([5]))
    assert str(err.value) == ("node 'output': shape mismatch: the Output declares output_type (5,) (5 values) "
                              "but receives (3,) (3 values)")
    # a declaration with an empty dimension declares no values, not "nothing": refused like any other
    for declared in ([0], [0, 3], [-3]):
        with pytest.raises(evsim.ModelError) as err:
            evsim.load_model(graph(declared))
        assert str(err.value) == (f"node 'output': shape mismatch: the Output declares output_type "
                                  f"{tuple(declared)}, a shape with a dimension < 1, but receives (3,) (3 values)")
    for declared in ([3], [1, 3], [3, 1], []):  # the same values, or no declaration
        assert evsim.load_model(graph(declared)).output_size == 3


# --------------------------------------------------------------------------------------------
# (i) what the graph declares must be what it is: repeated edges, Flatten and Output shapes
# --------------------------------------------------------------------------------------------


def test_a_repeated_edge_is_refused(tmp_path):
    """An edge written twice is refused, not silently read as one connection: nir 1.0.8's own
    NIRGraph check rejects it ("Duplicate edge"), NIRTorch and the NIR paper's Lava converter keep
    one, and inputs into one node otherwise add up (SEMANTICS §5.1) — either reading is a guess."""
    nodes, edges = small_graph()
    with pytest.raises(ValueError, match="Duplicate edge"):  # what nir itself says of such a graph
        nir.NIRGraph(nodes=nodes, edges=edges + [("fc", "if1")])
    path = write_nir(tmp_path / "dup.nir", graph(nodes, edges + [("fc", "if1")]))
    with h5py.File(path) as f:
        assert len(f["node/edges"]) == 4  # the file really holds the edge twice
    with pytest.raises(evsim.ModelError) as err:
        evsim.load_model(path)
    assert str(err.value) == (f"{path}: node 'if1': edge 'fc' -> 'if1' appears twice; evsim does not guess "
                              f"whether that means one connection or double input")
    assert err.value.node == "if1"
    # three times, in memory, and inside a subgraph (named by the flattened, dotted names)
    with pytest.raises(evsim.ModelError, match=r"^node 'output': edge 'if1' -> 'output' appears 3 times;"):
        evsim.load_model(graph(nodes, edges + [("if1", "output")] * 2))
    g, _, _ = rsynaptic_graph("plain", 1.0, 1.0)
    g.nodes["rec"].edges.append(("w_rec", "lif"))
    with pytest.raises(evsim.ModelError, match=r"^node 'rec.lif': edge 'rec.w_rec' -> 'rec.lif' appears twice;"):
        evsim.load_model(g, profile="snntorch")
    # the same graph with each edge once loads, and a merge of two different edges still adds up
    # (test_residual_graph_merges_by_summation)
    assert evsim.load_model(graph(nodes, edges)).output_size == 3


def flatten_net(flat: "nir.Flatten", w):
    """Input (2, 3, 3) → flat → Linear w (4 × 18) → I → Output: the I's state is w @ counts."""
    nodes = {"input": inp((2, 3, 3)), "flat": flat, "fc": nir.Linear(weight=w), "integ": integrator((4,)),
             "output": out((4,))}
    return nodes, [("input", "flat"), ("flat", "fc"), ("fc", "integ"), ("integ", "output")]


@pytest.mark.parametrize("declared, start_dim, end_dim", [
    (None, 0, -1),                 # Norse, snnTorch: no input_type
    ([0, 0, 0, 0], 1, -1),         # sinabs' placeholder, start_dim counting the batch
    ([2, 3, 3], 0, -1),            # batchless
    ([1, 2, 3, 3], 1, -1),         # batchful, batch 1
    ([18], 0, -1),                 # the flat vector of the same size (a C-order reshape)
    ([2, 3, 3], -3, -1),           # negative dims, batchless
    ([2, 3, 3], -4, -1),           # negative dims counting the batch
    ([2, 3, 3], 3, -1),            # start_dim 3 names the last dimension counting the batch
    ([2, 3, 3], 1, 2),
])
def test_flatten_declarations_that_fit_are_read(tmp_path, declared, start_dim, end_dim):
    rng = np.random.default_rng(11)
    w = rng.integers(-4, 5, size=(4, 18)) / 4.0
    flat = nir.Flatten(input_type={"input": np.array([2, 3, 3])}, start_dim=0)
    path = write_nir(tmp_path / "flat.nir", graph(*flatten_net(flat, w)))

    def edit(f):
        g = f["node/nodes/flat"]
        del g["input_type"], g["start_dim"], g["end_dim"]
        if declared is not None:
            g.create_dataset("input_type", data=np.array(declared))
        g.create_dataset("start_dim", data=start_dim)
        g.create_dataset("end_dim", data=end_dim)

    h5_edit(path, edit)
    events, counts = random_events(rng, (2, 3, 3), 200)
    result = integrated_state(path, events)
    np.testing.assert_allclose(result.output, w @ counts.reshape(-1), rtol=0, atol=1e-12)


@pytest.mark.parametrize("field, value, message", [
    ("input_type", [2, 3, 4], "shape mismatch: the Flatten declares input_type (2, 3, 4) but the input arriving is "
                              "(2, 3, 3)"),
    ("input_type", [3, 2, 3], "shape mismatch: the Flatten declares input_type (3, 2, 3) but the input arriving is "
                              "(2, 3, 3)"),
    ("input_type", [2, 0, 3], "shape mismatch: the Flatten declares input_type (2, 0, 3) but the input arriving is "
                              "(2, 3, 3)"),
    ("input_type", [2.5, 3, 3], "input_type must be a list of integers, got array([2.5, 3. , 3. ])"),
    ("start_dim", 5, "start_dim 5 is out of range for the input arriving, (2, 3, 3) (3-D: dimensions 0 to 2, "
                     "or 0 to 3 counting the batch)"),
    ("start_dim", 4, "start_dim 4 is out of range for the input arriving, (2, 3, 3) (3-D: dimensions 0 to 2, "
                     "or 0 to 3 counting the batch)"),
    ("start_dim", -5, "start_dim -5 is out of range for the input arriving, (2, 3, 3) (3-D: dimensions 0 to 2, "
                      "or 0 to 3 counting the batch)"),
    ("end_dim", 7, "end_dim 7 is out of range for the input arriving, (2, 3, 3) (3-D: dimensions 0 to 2, "
                   "or 0 to 3 counting the batch)"),
    ("end_dim", 0, "start_dim 2 comes after end_dim 0 for the input arriving, (2, 3, 3) (3-D: dimensions 0 to 2, "
                   "or 0 to 3 counting the batch)"),
])
def test_flatten_declarations_that_contradict_the_graph_are_refused(tmp_path, field, value, message):
    """The same kind of disagreement as a Conv's input_shape (refused, test_error_conv_input_shape_
    inconsistent): a Flatten whose input_type is not what arrives, or whose start_dim/end_dim name
    no dimension of it (counted with or without the batch dimension), is one error naming both."""
    flat = nir.Flatten(input_type={"input": np.array([2, 3, 3])}, start_dim=2)
    path = write_nir(tmp_path / "flat.nir", graph(*flatten_net(flat, np.ones((4, 18)))))

    def edit(f):
        del f[f"node/nodes/flat/{field}"]
        f["node/nodes/flat"].create_dataset(field, data=np.array(value))

    h5_edit(path, edit)
    with pytest.raises(evsim.ModelError) as err:
        evsim.load_model(path)
    assert str(err.value) == f"{path}: node 'flat': {message}"
    assert err.value.node == "flat"


def test_a_float16_parameter_is_checked_without_a_warning(tmp_path):
    """Parameters stored as float16 (the limit 1e30 is beyond float16's range) are checked in
    float64: no numpy overflow warning, and the model is the one with the same values in float64."""
    rng = np.random.default_rng(5)
    w = (rng.integers(-8, 9, size=(3, 4)) / 4.0).astype(np.float16)
    w[0, 0], w[2, 3] = np.float16(-65504.0), np.float16(65504.0)  # float16's extremes
    nodes, edges = small_graph()
    paths = {}
    for dtype in (np.float16, np.float64):
        nodes["fc"] = nir.Affine(weight=w.astype(dtype), bias=np.array([0.25, 0, -0.5], dtype=dtype))
        nodes["if1"] = nir.IF(r=np.ones(3, dtype=dtype), v_threshold=np.full(3, 1.5, dtype=dtype),
                              v_reset=np.zeros(3, dtype=dtype))
        paths[dtype] = write_nir(tmp_path / f"{np.dtype(dtype).name}.nir", graph(nodes, edges))
    with h5py.File(paths[np.float16]) as f:
        assert f["node/nodes/fc/weight"].dtype == np.float16 and f["node/nodes/if1/v_threshold"].dtype == np.float16
    events, _ = random_events(rng, (4,), 300)
    results = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for dtype, path in paths.items():
            model = evsim.load_model(path, precision="float64")
            results[dtype] = evsim.Simulator(model, record_spikes=True).run(events)
    np.testing.assert_array_equal(results[np.float16].output, results[np.float64].output)
    np.testing.assert_array_equal(results[np.float16].spikes, results[np.float64].spikes)
    assert results[np.float64].spikes_per_node["if1"] > 0
    # beyond the limit is still refused, named (float32: float16 cannot hold it)
    nodes["fc"] = nir.Affine(weight=np.full((3, 4), -2e30, dtype=np.float32), bias=np.zeros(3, dtype=np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        raises_naming(write_nir(tmp_path / "big.nir", graph(nodes, edges)), "'fc'", "weight", "-2e+30", "1e+30")


def _bundled_variant(tmp_path, name, edit):
    """A copy of the bundled model with one HDF5 edit (the bundled file is only read)."""
    import shutil

    from evsim.cli import BUNDLED_MODEL

    path = tmp_path / f"{name}.nir"
    shutil.copyfile(BUNDLED_MODEL, path)
    h5_edit(path, edit)
    return path


def _replace(field, value):
    def edit(f):
        del f[field]
        f.create_dataset(field, data=value)
    return edit


def _repeat_fc2_edge(f):
    edges = f["node/edges"][()]
    del f["node/edges"]
    f.create_dataset("node/edges", data=np.concatenate([edges, np.array([[b"fc2", b"iaf5"]], dtype=object)]),
                     dtype=h5py.string_dtype())


def _fc2_float16(f):
    weight = f["node/nodes/fc2/weight"][()]
    del f["node/nodes/fc2/weight"]
    f.create_dataset("node/nodes/fc2/weight", data=weight.astype(np.float16))


@pytest.mark.parametrize("name, edit, line", [
    ("dup_fc2", _repeat_fc2_edge,
     "node 'iaf5': edge 'fc2' -> 'iaf5' appears twice; evsim does not guess whether that means one connection or "
     "double input"),
    ("flatten_type", _replace("node/nodes/flatten/input_type", np.array([8, 5, 5])),
     "node 'flatten': shape mismatch: the Flatten declares input_type (8, 5, 5) but the input arriving is (8, 4, 4)"),
    ("flatten_start", _replace("node/nodes/flatten/start_dim", np.int64(5)),
     "node 'flatten': start_dim 5 is out of range for the input arriving, (8, 4, 4) (3-D: dimensions 0 to 2, or 0 "
     "to 3 counting the batch)"),
    ("output_zero", _replace("node/nodes/output/shape", np.array([0])),
     "node 'output': shape mismatch: the Output declares output_type (0,), a shape with a dimension < 1, but "
     "receives (10,) (10 values)"),
    ("output_eleven", _replace("node/nodes/output/shape", np.array([11])),
     "node 'output': shape mismatch: the Output declares output_type (11,) (11 values) but receives (10,) "
     "(10 values)"),
    ("fc2_f16", _fc2_float16, None),
])
def test_the_bundled_model_edited_at_the_command_line(tmp_path, name, edit, line):
    """The findings as reported, through `evsim info` in a process of its own (its real stderr):
    one `evsim: error:` line and exit code 2, or (float16 weights) the model's report and nothing
    on stderr."""
    import subprocess
    import sys

    path = _bundled_variant(tmp_path, name, edit)
    proc = subprocess.run([sys.executable, "-c", "import sys; from evsim.cli import main; sys.exit(main())",
                           "info", path.name], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    if line is None:
        assert proc.returncode == 0 and proc.stderr == "", proc.stderr
        assert "fc2                Affine" in proc.stdout
    else:
        assert proc.returncode == 2 and proc.stdout == ""
        assert proc.stderr == f"evsim: error: {path.name}: {line}\n"


@pytest.mark.parametrize("depth", [1, 2])
def test_a_layer_read_through_nested_subgraph_outputs_is_read_as_in_the_flat_graph(tmp_path, depth):
    """A subgraph's Output is an identity (docs/SEMANTICS.md#graphs): a spiking layer that reaches
    the graph's Output through one (or two nested ones) is read by its spike counts, with the
    SynOps of the flat graph, not through an integrating readout."""
    from evsim.compile.builder import READOUT_COUNTS

    w = np.array([[0.6, 0.3, -0.2], [0.1, 0.7, 0.5]])

    def layer_nodes():
        return {"input": inp((3,)), "fc": nir.Linear(weight=w),
                "if": nir.IF(r=np.ones(2), v_threshold=np.full(2, 0.45), v_reset=np.zeros(2)), "output": out((2,))}

    chain = [("input", "fc"), ("fc", "if"), ("if", "output")]
    flat = graph(layer_nodes(), chain)
    nested = graph(layer_nodes(), chain)
    for _ in range(depth):
        nested = graph({"input": inp((3,)), "sub": nested, "output": out((2,))}, [("input", "sub"), ("sub", "output")])
    events = events_at([0, 5, 9, 9, 20, 30, 31], [0, 1, 2, 1, 0, 2, 2], (3,))
    results = {}
    for name, g in (("flat", flat), ("nested", nested)):
        model = evsim.load_model(write_nir(tmp_path / f"{name}.nir", g), profile="nir")
        assert model.readout[1] == READOUT_COUNTS and model.populations[model.readout[0]].nir_type == "IF"
        results[name] = (evsim.Simulator(model).run(events), evsim.ClockSimulator(model, bin_us=3).run(events))
    # the counts by hand: IF reset to v_reset = 0, no input crosses twice, no state at 0.45 exactly
    v, counts = np.zeros(2), np.zeros(2, dtype=int)
    for i in [0, 1, 2, 1, 0, 2, 2]:
        v += w[:, i]
        fired = v > 0.45
        counts += fired
        v[fired] = 0.0
    for (event, clock), which in zip(results.values(), results):
        np.testing.assert_array_equal(event.output_counts, counts, err_msg=which)
        assert event.synops == results["flat"][0].synops == 7 * 2, which  # 7 inputs × 2 weights, no readout ops
        assert clock.synops == results["flat"][1].synops, which
        assert sorted(event.spikes_per_node.values()) == sorted(results["flat"][0].spikes_per_node.values()), which

"""Speck deployment (evsim.chip.speck): sinabs' discretisation and the chip's core mapping.

The references here are written from sinabs' Speck backend as its equations read
(``discretize.py``: one scale per layer, min over the 8-bit weight/bias scales and the 16-bit
(min_v_mem, threshold) scale, round half to even in float32; ``DynapcnnLayer.memory_summary``:
kernel memory c·2^(⌈log2 k²⌉+⌈log2 f⌉), neuron memory f·2^(⌈log2 h⌉+⌈log2 w⌉); 9 cores with the
memories of ``get_constraints``), never from evsim's code.
"""

from __future__ import annotations

import itertools
import json
import math

import nir
import numpy as np
import pytest

import evsim
from evsim import make_events
from evsim.chip.speck import assign_cores, map_to_speck, quantize_speck
from _cli import evsim_cli
from evsim.cli import BUNDLED_MODEL
from evsim.model.graph import read_nir

BUNDLED_RECORDING = next(iter(sorted((BUNDLED_MODEL.parent / "samples").glob("*/*.bin"))))
BUNDLED_LAYERS = [("conv1", "iaf1"), ("conv2", "iaf2"), ("conv3", "iaf3"), ("fc1", "iaf4"), ("fc2", "iaf5")]


# --------------------------------------------------------------------------------------------
# the discretisation equations, written out (float32 as torch computes them)
# --------------------------------------------------------------------------------------------


def ref_scale(x, bits):
    """determine_discretization_scale: hi/|max| unless the negative side needs more room; the
    Python int over a 0-d tensor is ``tensor.reciprocal() * int`` in torch (two roundings)."""
    x = np.asarray(x)
    f = x.dtype.type
    lo, hi = f(-(2.0 ** (bits - 1))), f(2.0 ** (bits - 1) - 1)
    mn, mx = x.min(), x.max()
    with np.errstate(divide="ignore"):
        if np.abs(mn) <= np.abs(mx) * f(np.abs(lo / hi)):
            return np.abs(np.reciprocal(mx) * hi)
        return np.abs(np.reciprocal(mn) * lo)


def ref_layer(weight, bias, theta):
    w = np.asarray(weight, np.float32)
    b = np.asarray(bias, np.float32)
    t = np.asarray([-theta, theta], dtype=np.asarray(theta).dtype)
    s = min(ref_scale(w, 8), ref_scale(b, 8), ref_scale(t, 16))
    wq = np.rint(w * np.float32(s))
    bq = np.rint(b * np.float32(s))
    tq = np.rint(t * t.dtype.type(s))
    return s, wq, bq, tq[1], tq[0]


def IF(n, theta=1.0, dtype=np.float32):
    return nir.IF(r=np.ones(n, dtype), v_threshold=np.full(n, theta, dtype), v_reset=np.zeros(n, dtype))


def dense_graph(weight, bias=None, theta=1.0, dtype=np.float32):
    """input(n) -> Affine -> IF(m) -> output."""
    weight = np.asarray(weight, np.float32)
    m, n = weight.shape
    bias = np.zeros(m, np.float32) if bias is None else np.asarray(bias, np.float32)
    return nir.NIRGraph(nodes={
        "input": nir.Input(input_type=np.array([n])),
        "fc": nir.Affine(weight=weight, bias=bias),
        "lif": IF(m, theta, dtype),
        "output": nir.Output(output_type=np.array([m])),
    }, edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")], type_check=False)


def conv(c_in, c_out, k, stride=1, padding=0, dilation=1, groups=1, input_shape=None, rng=None):
    rng = rng or np.random.default_rng(0)
    w = rng.uniform(-0.5, 0.5, (c_out, c_in // groups, k, k)).astype(np.float32)
    return nir.Conv2d(input_shape=input_shape, weight=w, stride=stride, padding=padding, dilation=dilation,
                      groups=groups, bias=np.zeros(c_out, np.float32))


def conv_graph(layers, in_shape):
    """input -> (conv -> IF [-> pool])* -> output, layers: list of (conv node, pool kernel or None)."""
    nodes = {"input": nir.Input(input_type=np.array(in_shape))}
    edges = []
    prev = "input"
    shape = tuple(in_shape)
    for i, (node, pool) in enumerate(layers):
        c_out, _, kh, kw = node.weight.shape
        sy, sx = (int(np.ravel(node.stride)[0]),) * 2
        py = int(np.ravel(node.padding)[0])
        dy = int(np.ravel(node.dilation)[0])
        oh = (shape[1] + 2 * py - dy * (kh - 1) - 1) // sy + 1
        ow = (shape[2] + 2 * py - dy * (kw - 1) - 1) // sx + 1
        shape = (c_out, oh, ow)
        nodes[f"conv{i}"], nodes[f"if{i}"] = node, IF(shape)
        edges += [(prev, f"conv{i}"), (f"conv{i}", f"if{i}")]
        prev = f"if{i}"
        if pool:
            nodes[f"pool{i}"] = nir.SumPool2d(kernel_size=np.array([pool, pool]), stride=np.array([pool, pool]),
                                              padding=np.array([0, 0]))
            edges.append((prev, f"pool{i}"))
            prev = f"pool{i}"
            shape = (c_out, oh // pool, ow // pool)
    nodes["output"] = nir.Output(output_type=np.array(shape))
    edges.append((prev, "output"))
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


# --------------------------------------------------------------------------------------------
# quantisation
# --------------------------------------------------------------------------------------------


def test_bundled_model_quantized_as_the_discretize_equations_say():
    raw = read_nir(BUNDLED_MODEL)
    graph, report = quantize_speck(BUNDLED_MODEL)
    assert [(q.weight_node, q.neuron_node) for q in report] == BUNDLED_LAYERS
    for (wname, nname), q in zip(BUNDLED_LAYERS, report):
        w, b = raw.nodes[wname].weight, raw.nodes[wname].bias
        theta = np.asarray(raw.nodes[nname].v_threshold).ravel()[0]
        s, wq, bq, tq, fq = ref_layer(w, b, theta)
        assert q.scale == float(s)
        np.testing.assert_array_equal(graph.nodes[wname].weight, wq.reshape(w.shape))
        np.testing.assert_array_equal(graph.nodes[wname].bias, bq)
        assert np.all(graph.nodes[nname].v_threshold == tq) and q.threshold == tq and q.floor == fq == -tq
        assert -128 <= wq.min() and wq.max() <= 127
        # 8-bit weights: the scale puts the largest magnitude at the edge of the range
        assert wq.max() == 127 or wq.min() == -128
        assert q.weight_bits == 8
    # the float graph is untouched
    assert raw.nodes["conv1"].weight.max() < 1.0


@pytest.mark.parametrize("weights, bias, theta, scale, wq, bq, tq", [
    # scale 64 from the largest weight 127/64; half-way values go to the even neighbour
    ([[127 / 64, 2.5 / 64, 3.5 / 64, -2.5 / 64, 0.5 / 64, -1.5 / 64]], [0.0], 1.0, 64.0,
     [[127, 2, 4, -2, 0, -2]], [0], 64),
    # the negative side sets the scale: |min| = 2 > |max|·128/127, so s = 128/2
    ([[-2.0, 1.0, 0.25]], [0.0], 1.0, 64.0, [[-128, 64, 16]], [0], 64),
    # the bias sets it: 127/4 = 31.75 < 127/1; 1·31.75 → 32
    ([[1.0, -0.5]], [4.0], 1.0, 31.75, [[32, -16]], [127], 32),
    # the threshold sets it: 32767/1000 < 127/0.01; the threshold becomes 32767
    ([[0.01, -0.02]], [0.0], 1000.0, np.reciprocal(np.float32(1000)) * np.float32(32767), [[0, -1]], [0], 32767),
    # torch's reciprocal-then-multiply scale (48.472515) is one ulp above 127/2.6200416 (48.47251):
    # 2.0114491·s rounds to 98, not 97 (sinabs 3.1.3 DynapcnnNetwork(discretize=True) gives 127, 98)
    ([[2.6200416, 2.0114491]], [0.0], 1.0, np.reciprocal(np.float32(2.6200416)) * np.float32(127),
     [[127, 98]], [0], 48),
    # threshold half-way: 100.5/64·64 = 100.5 → 100, 101.5 → 102 (second neuron in its own layer below)
    ([[127 / 64]], [0.0], 100.5 / 64, 64.0, [[127]], [0], 100),
    ([[127 / 64]], [0.0], 101.5 / 64, 64.0, [[127]], [0], 102),
])
def test_hand_built_layers_have_the_known_quantized_values(weights, bias, theta, scale, wq, bq, tq):
    graph, report = quantize_speck(dense_graph(weights, bias, theta))
    assert report[0].scale == pytest.approx(float(scale), rel=0, abs=0)
    np.testing.assert_array_equal(graph.nodes["fc"].weight, np.array(wq, np.float32))
    np.testing.assert_array_equal(graph.nodes["fc"].bias, np.array(bq, np.float32))
    assert np.all(graph.nodes["lif"].v_threshold == tq)
    assert report[0].floor == -tq


def test_avgpool_becomes_sumpool_and_its_mean_goes_into_the_weights():
    """sinabs rescale_weights: w·1/(2·2) before discretising; the pool becomes a SumPool2d."""
    w = np.zeros((2, 2 * 2 * 2), np.float32)
    w[0, 0], w[0, 1], w[1, 2] = 2.0, 0.5, -1.0  # ×0.25: 0.5, 0.125, -0.25 → s = 254
    nodes = {
        "input": nir.Input(input_type=np.array([2, 4, 4])),
        "pool": nir.AvgPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        "flat": nir.Flatten(input_type={"input": np.array([2, 2, 2])}, start_dim=0, end_dim=-1),
        "fc": nir.Affine(weight=w, bias=np.zeros(2, np.float32)),
        "lif": IF(2),
        "output": nir.Output(output_type=np.array([2])),
    }
    g = nir.NIRGraph(nodes=nodes, edges=[("input", "pool"), ("pool", "flat"), ("flat", "fc"), ("fc", "lif"),
                                         ("lif", "output")], type_check=False)
    graph, report = quantize_speck(g)
    assert type(graph.nodes["pool"]).__name__ == "SumPool2d"
    assert report[0].scale == 254.0 and report[0].rescale == 0.25
    assert graph.nodes["fc"].weight[0, 0] == 127 and graph.nodes["fc"].weight[0, 1] == 32  # 31.75 → 32
    assert graph.nodes["fc"].weight[1, 2] == -64 and graph.nodes["lif"].v_threshold[0] == 254


def test_half_way_weight_rounds_to_even_and_that_changes_spike_counts():
    """A weight of 2.5/64 at scale 64 becomes 2 (torch.round), not 3: 128 input events then
    give floor(128·2/64) = 4 spikes (3 would give 6; the float network gives floor(128·2.5/64) = 5)."""
    g = dense_graph([[2.5 / 64, 0.0], [0.0, 127 / 64]])
    events = make_events(t=np.arange(128) * 10, x=np.zeros(128, int))
    float_model = evsim.load_model(g, profile="speck")
    quant_model = evsim.load_model(g, profile="speck", quantize="speck")
    n_float = evsim.Simulator(float_model).run(events).output_counts[0]
    n_quant = evsim.Simulator(quant_model).run(events).output_counts[0]
    assert n_quant == (128 * 2) // 64 == 4
    assert n_float == (128 * 5 // 2) // 64 == 5


def exact_network(rng, with_bias):
    """conv -> IF -> pool -> flatten -> affine -> IF with every weight (and bias) k/64 and the
    largest magnitude 127/64 in each layer: every scale is 64 and w·64 is an exact integer."""
    def weights(shape):
        w = rng.integers(-60, 61, shape).astype(np.float32)
        w.flat[0] = 127
        return w / 64
    w1 = weights((4, 2, 3, 3))
    w2 = weights((3, 4 * 3 * 3))
    b1 = (rng.integers(-3, 4, 4) / 64).astype(np.float32) if with_bias else np.zeros(4, np.float32)
    nodes = {
        "input": nir.Input(input_type=np.array([2, 6, 6])),
        "conv": nir.Conv2d(input_shape=None, weight=w1, stride=1, padding=1, dilation=1, groups=1, bias=b1),
        "if1": IF((4, 6, 6)),
        "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        "flat": nir.Flatten(input_type={"input": np.array([4, 3, 3])}, start_dim=0, end_dim=-1),
        "fc": nir.Affine(weight=w2, bias=np.zeros(3, np.float32)),
        "if2": IF(3),
        "output": nir.Output(output_type=np.array([3])),
    }
    edges = [("input", "conv"), ("conv", "if1"), ("if1", "pool"), ("pool", "flat"), ("flat", "fc"), ("fc", "if2"),
             ("if2", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


@pytest.mark.parametrize("with_bias", [False, True])
def test_quantization_changes_nothing_when_weights_are_multiples_of_the_scale(with_bias):
    rng = np.random.default_rng(3)
    g = exact_network(rng, with_bias)
    _, report = quantize_speck(g)
    assert [q.scale for q in report] == [64.0, 64.0]
    n = 400
    events = make_events(t=np.sort(rng.integers(0, 50_000, n)), x=rng.integers(0, 6, n), y=rng.integers(0, 6, n),
                         p=rng.integers(0, 2, n))
    a = evsim.Simulator(evsim.load_model(g, profile="speck")).run(events)
    b = evsim.Simulator(evsim.load_model(g, profile="speck", quantize="speck")).run(events)
    assert a.spikes_per_node["if1"] > 20 and a.spikes_per_node["if2"] > 0  # the check is not vacuous
    assert a.spikes_per_node == b.spikes_per_node
    np.testing.assert_array_equal(a.output_counts, b.output_counts)
    assert a.synops == b.synops


def test_quantize_option_is_only_for_the_speck_and_sinabs_profiles():
    g = dense_graph([[0.5]])
    for profile in ("nir", "snntorch", "norse"):
        with pytest.raises(evsim.OptionError, match="--quantize"):
            evsim.load_model(g, profile=profile, quantize="speck")
    with pytest.raises(evsim.OptionError, match="--quantize"):
        evsim.load_model(g, profile="speck", quantize="loihi")
    evsim.load_model(g, profile="sinabs", quantize="speck")


def test_layers_that_cannot_be_quantized_are_model_errors():
    g = dense_graph([[0.5, 0.25], [0.1, 0.2]])
    g.nodes["lif"] = nir.IF(r=np.ones(2), v_threshold=np.array([1.0, 2.0]), v_reset=np.zeros(2))
    with pytest.raises(evsim.ModelError, match="per-neuron thresholds"):
        evsim.load_model(g, profile="speck", quantize="speck")
    g = dense_graph([[0.5]])
    g.nodes["lif"] = nir.LIF(tau=np.array([0.01]), r=np.ones(1), v_leak=np.zeros(1), v_threshold=np.ones(1),
                             v_reset=np.zeros(1))
    with pytest.raises(evsim.ModelError, match="IF"):
        evsim.load_model(g, profile="speck", quantize="speck")


@pytest.mark.parametrize("extra_edge", ["skip", "recurrent"])
def test_a_population_fed_by_two_weighted_nodes_cannot_be_quantized(extra_edge):
    # each weighted node gets its own scale, the population one threshold: its inputs would be
    # summed in two units (1.0 + 0.1 < 1.2 fires once 0.1 is scaled as if 1.0 set the scale)
    nodes = {"input": nir.Input(np.array([1])), "f1": nir.Linear(weight=np.array([[1.0]])),
             "f2": nir.Linear(weight=np.array([[0.1]])),
             "B": nir.IF(r=np.ones(1), v_threshold=np.array([1.2]), v_reset=np.zeros(1)),
             "output": nir.Output(np.array([1]))}
    second = ("input", "f2") if extra_edge == "skip" else ("B", "f2")
    g = nir.NIRGraph(nodes=nodes, edges=[("input", "f1"), second, ("f1", "B"), ("f2", "B"), ("B", "output")],
                     type_check=False)
    with pytest.raises(evsim.ModelError, match=r"exactly one Conv2d/Linear node .* not by f1, f2") as err:
        quantize_speck(g)
    assert err.value.node == "B"


# --------------------------------------------------------------------------------------------
# core mapping
# --------------------------------------------------------------------------------------------

KERNEL_MEM = [16, 16, 16, 32, 32, 64, 64, 16, 16]  # Ki entries per core (sinabs get_constraints)
NEURON_MEM = [64, 64, 64, 32, 32, 16, 16, 16, 16]


def ref_memory(c, f, k, h, w):
    p = lambda n: 2 ** math.ceil(math.log2(n))  # noqa: E731
    return c * p(k[0] * k[1]) * p(f), f * p(h) * p(w)


def test_bundled_model_fits_with_the_memory_formulas():
    m = map_to_speck(BUNDLED_MODEL)
    assert m.fits and m.verdict == "fits", m.verdict
    # (c, f, kernel, neuron h, w) read off the model card; Linear layers are convs over their whole input
    expected = [(2, 16, (5, 5), 16, 16), (16, 16, (3, 3), 16, 16), (16, 8, (3, 3), 8, 8), (8, 256, (4, 4), 1, 1),
                (256, 10, (1, 1), 1, 1)]
    for row, (c, f, k, h, w) in zip(m.table(), expected):
        assert (row["kernel_memory"], row["neuron_memory"]) == ref_memory(c, f, k, h, w)
        fits = [i for i in range(9) if ref_memory(c, f, k, h, w)[0] <= KERNEL_MEM[i] * 1024
                and ref_memory(c, f, k, h, w)[1] <= NEURON_MEM[i] * 1024]
        assert row["fits_cores"] == fits and row["core"] in fits
    cores = [row["core"] for row in m.table()]
    assert len(set(cores)) == len(cores)


@pytest.mark.parametrize("layers, in_shape, fragment", [
    ([(conv(2, 2048, 3, padding=1), None)], (2, 8, 8), "2048 output channels > 1024"),
    ([(conv(2, 4, 17), None)], (2, 34, 34), "kernel 17x17 > 16x16"),
    ([(conv(2, 4, 3, dilation=2), None)], (2, 16, 16), "dilation 2x2"),
    ([(conv(2, 4, 3, stride=3), None)], (2, 16, 16), "stride 3x3"),
    ([(conv(2, 4, 3, padding=8), None)], (2, 16, 16), "padding 8 > 7"),
    ([(conv(4, 4, 3, groups=2), None)], (4, 16, 16), "grouped convolution"),
    ([(conv(2, 4, 3, padding=1), 3), (conv(4, 2, 1), None)], (2, 12, 12), "sum pooling 3x3"),
    # neuron memory 32·64·64 = 128Ki entries: more than any core has
    ([(conv(2, 32, 3, padding=1), None)], (2, 64, 64), "fits no core"),
])
def test_mapping_verdicts_for_networks_that_do_not_fit(layers, in_shape, fragment):
    m = map_to_speck(conv_graph(layers, in_shape))
    assert not m.fits
    assert m.verdict.startswith("does not fit: ") and fragment in m.verdict, m.verdict


def test_unsupported_neurons_and_per_neuron_thresholds_do_not_fit():
    g = dense_graph([[0.5, 0.25], [0.1, 0.2]])
    g.nodes["lif"] = nir.IF(r=np.ones(2), v_threshold=np.array([1.0, 2.0]), v_reset=np.zeros(2))
    assert "per-neuron thresholds" in map_to_speck(g).verdict
    g.nodes["lif"] = nir.LIF(tau=np.full(2, 0.01), r=np.ones(2), v_leak=np.zeros(2), v_threshold=np.ones(2),
                             v_reset=np.zeros(2))
    m = map_to_speck(g)
    assert not m.fits and "LIF neurons are not supported" in m.verdict


def test_layers_competing_for_the_two_largest_cores():
    """Three layers of 64·2^4·2^6 = 64Ki kernel entries fit only cores 5 and 6: the third is left out."""
    rng = np.random.default_rng(1)
    layers = [(conv(64, 64, 3, padding=1, rng=rng), None) for _ in range(3)]
    m = map_to_speck(conv_graph(layers, (64, 4, 4)))
    table = m.table()
    assert [r["fits_cores"] for r in table] == [[5, 6]] * 3
    assert sorted(r["core"] for r in table if r["core"] is not None) == [5, 6]
    assert not m.fits and "no core left" in m.verdict


def test_core_assignment_is_a_maximum_matching():
    """Against brute force over all assignments, for random candidate lists."""
    rng = np.random.default_rng(7)
    for _ in range(200):
        n_layers = int(rng.integers(1, 6))
        cand = [sorted(rng.choice(9, int(rng.integers(0, 4)), replace=False).tolist()) for _ in range(n_layers)]
        got = assign_cores(cand)
        placed = [c for c in got if c is not None]
        assert len(set(placed)) == len(placed)
        assert all(c is None or c in cs for c, cs in zip(got, cand))
        best = 0
        for choice in itertools.product(*[cs + [None] for cs in cand]):
            used = [c for c in choice if c is not None]
            if len(set(used)) == len(used):
                best = max(best, len(used))
        assert len(placed) == best


def test_too_many_layers_and_fan_out():
    rng = np.random.default_rng(2)
    layers = [(conv(2, 2, 1, rng=rng), None) for _ in range(10)]
    m = map_to_speck(conv_graph(layers, (2, 4, 4)))
    assert "10 layers for 9 cores" in m.verdict
    # one IF population feeding three layers: a core has two destinations
    nodes = {"input": nir.Input(input_type=np.array([2])), "fc0": nir.Affine(weight=np.ones((2, 2), np.float32),
             bias=np.zeros(2, np.float32)), "if0": IF(2), "output": nir.Output(output_type=np.array([2]))}  # (three inputs, summed)
    edges = [("input", "fc0"), ("fc0", "if0")]
    for i in range(1, 4):
        nodes[f"fc{i}"] = nir.Affine(weight=np.ones((2, 2), np.float32), bias=np.zeros(2, np.float32))
        nodes[f"if{i}"] = IF(2)
        edges += [("if0", f"fc{i}"), (f"fc{i}", f"if{i}"), (f"if{i}", "output")]
    m = map_to_speck(nir.NIRGraph(nodes=nodes, edges=edges, type_check=False))
    assert "if0: sends to 3 layers" in m.verdict


# --------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------



def test_cli_quantize_with_the_nir_profile_is_one_line_exit_2(capsys):
    code, _, err = evsim_cli(capsys, "run", BUNDLED_MODEL, BUNDLED_RECORDING, "--quantize", "speck", "--profile", "nir")
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("evsim: error:") and "--quantize" in lines[0]
    assert "Traceback" not in err


def test_cli_info_quantize_and_chip(capsys, tmp_path):
    out_json = tmp_path / "info.json"
    code, out, err = evsim_cli(capsys, "info", BUNDLED_MODEL, "--quantize", "speck", "--chip", "speck",
                               "--json", out_json)
    assert code == 0, err
    assert "scale" in out and "verdict     fits" in out
    doc = json.loads(out_json.read_text())
    assert doc["fits"] is True and doc["chip"]["fits"] is True and len(doc["chip"]["layers"]) == 5
    raw = read_nir(BUNDLED_MODEL)
    w = raw.nodes["conv1"].weight
    assert doc["quantize"]["layers"][0]["scale"] == float(ref_scale(w, 8))
    assert doc["quantize"]["layers"][0]["weight_bits"] == 8


def test_cli_run_records_the_quantization_and_calibration_refuses_a_mismatch(capsys, tmp_path):
    rec = tmp_path / "r.json"
    code, out, err = evsim_cli(capsys, "run", BUNDLED_MODEL, BUNDLED_RECORDING, "--profile", "speck",
                               "--quantize", "speck", "--json", rec)
    assert code == 0, err
    assert json.loads(rec.read_text())["quantize"] == "speck" and "quantized speck" in out
    # a calibration made with --quantize speck records it and is refused without it
    data = tmp_path / "data"
    events = evsim.read_recording(BUNDLED_RECORDING).events
    for i in range(2):
        (data / str(7 - i)).mkdir(parents=True)
        np.save(data / str(7 - i) / f"rec{i}.npy", events[: events.size // (i + 1)])
    cal = tmp_path / "cal.json"
    code, _, err = evsim_cli(capsys, "calibrate", BUNDLED_MODEL, data, "--profile", "speck", "--quantize", "speck",
                             "--cutoff", "topk", "-o", cal, "--quiet")
    assert code == 0, err
    assert json.loads(cal.read_text())["options"]["quantize"] == "speck"
    code, _, err = evsim_cli(capsys, "eval", BUNDLED_MODEL, data, "--profile", "speck", "--calibration", cal, "--quiet")
    assert code == 2 and "quantize" in err
    ev = tmp_path / "ev.json"
    code, _, err = evsim_cli(capsys, "eval", BUNDLED_MODEL, data, "--profile", "speck", "--quantize", "speck",
                             "--calibration", cal, "--quiet", "--json", ev)
    assert code == 0, err
    assert json.loads(ev.read_text())["quantize"] == "speck"

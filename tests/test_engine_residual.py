"""A residual (ResNet-style) graph: a skip connection merges with a conv branch by addition, NIR's
two edges into one neuron node. Checked against a dense numpy reference written from the
definitions (tests/_nirgraphs.ref_conv2d), not from evsim's code.

Why the reference is exact: IF neurons, reset by subtraction, v ≥ θ, one spike per update
(profile ``speck``), all weights in [0, θ) and multiples of 1/64 (exact in float32 and float64).
Every update adds one weight (< θ) to a state in [0, θ), so the state stays in [0, 2θ) and each
update that reaches θ fires once and subtracts θ: a neuron's spike count is ⌊total input / θ⌋
whatever the order of its inputs, and its total input is the weighted sum of its sources' spike
counts. Layer by layer the counts are therefore a dense computation.
"""

from __future__ import annotations

import numpy as np
import nir
import pytest

import evsim

from _nirgraphs import random_events, ref_conv2d

THETA = 1.0


def _dyadic(rng, shape, high=48):
    return rng.integers(0, high, size=shape) / 64.0  # in [0, 0.75θ), exact


def _residual_graph(rng, c_in, c, size, stride0):
    w0 = _dyadic(rng, (c, c_in, 3, 3))
    # the hidden convs have a fan-in of 9c: small weights keep the activity from running away
    # (a mean input per spike of about one threshold), so every sample completes within the budget
    small = max(2, 128 // (9 * c))
    w1 = _dyadic(rng, (c, c, 3, 3), small)
    w2 = _dyadic(rng, (c, c, 3, 3), small)
    skip = _dyadic(rng, (c, 1, 1))  # one scale per channel, broadcast over the map
    hw = (size + 2 - 3) // stride0 + 1

    def conv(w, stride=1):
        return nir.Conv2d(input_shape=None, weight=w, stride=stride, padding=1, dilation=1, groups=1,
                          bias=np.zeros(w.shape[0]))

    def iaf():
        return nir.IF(r=np.ones((c, hw, hw)), v_threshold=np.full((c, hw, hw), THETA), v_reset=np.zeros((c, hw, hw)))

    nodes = {
        "input": nir.Input(input_type={"input": np.array([c_in, size, size])}),
        "conv0": conv(w0, stride0), "a": iaf(),
        "conv1": conv(w1), "b": iaf(),
        "conv2": conv(w2), "c": iaf(),
        "skip": nir.Scale(scale=np.broadcast_to(skip, (c, hw, hw)).copy()),
        "output": nir.Output(output_type={"output": np.array([c, hw, hw])}),
    }
    edges = [("input", "conv0"), ("conv0", "a"), ("a", "conv1"), ("conv1", "b"), ("b", "conv2"), ("conv2", "c"),
             ("a", "skip"), ("skip", "c"), ("c", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False), (w0, w1, w2, skip, stride0)


def _reference_counts(params, input_counts):
    w0, w1, w2, skip, stride0 = params
    a = np.floor(ref_conv2d(input_counts, w0, stride=stride0, padding=1) / THETA)
    b = np.floor(ref_conv2d(a, w1, padding=1) / THETA)
    c = np.floor((ref_conv2d(b, w2, padding=1) + skip * a) / THETA)
    return a, b, c


@pytest.mark.parametrize("precision", ["float32", "float64"])
@pytest.mark.parametrize("c_in, c, size, stride0", [(2, 8, 9, 1), (2, 16, 12, 2), (3, 4, 7, 1)])
def test_residual_merge_by_addition_matches_dense_reference(precision, c_in, c, size, stride0):
    rng = np.random.default_rng(100 * c + size + stride0)
    g, params = _residual_graph(rng, c_in, c, size, stride0)
    events, counts = random_events(rng, (c_in, size, size), 6 * c_in * size * size)
    model = evsim.load_model(g, profile="speck", precision=precision)
    # the merge node has two incoming projections (conv branch and skip), the skip is an index map
    c_pop = model.population_index("c")
    assert sum(pr.target == c_pop for pr in model.projections) == 2
    result = evsim.Simulator(model, record_spikes=True).run(events)
    assert result.status == "complete" and result.events_consumed == events.shape[0]

    a, b, c_ref = _reference_counts(params, counts)
    names = result.node_names
    spikes = result.spikes
    for name, ref in (("a", a), ("b", b), ("c", c_ref)):
        sel = spikes["node"] == names.index(name)
        got = np.bincount(spikes["neuron"][sel], weights=spikes["count"][sel], minlength=ref.size)
        np.testing.assert_array_equal(got, ref.reshape(-1), err_msg=name)
    assert c_ref.sum() > 0 and b.sum() > 0  # the residual branch carries activity
    np.testing.assert_array_equal(result.output_counts, c_ref.reshape(-1))

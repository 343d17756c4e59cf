"""The delivery order of one spike (docs/SEMANTICS.md#delivery-order), checked on hand-built graphs
whose every target fires, so that the spike record shows the order in which targets were updated.
Expected orders are computed here from the documented rule, not from evsim's code."""

from __future__ import annotations

import numpy as np
import nir

import evsim


def _spike_order(nodes, edges, events):
    model = evsim.load_model(nir.NIRGraph(nodes=nodes, edges=edges), profile="nir")
    result = evsim.Simulator(model, record_spikes=True).run(events)
    names = result.node_names
    return [(names[n], int(j)) for n, j in zip(result.spikes["node"], result.spikes["neuron"])
            if names[n] != "in"]


def _conv_graph(c_in, c_out, size, k, stride, pad, weight):
    out = (size + 2 * pad - k) // stride + 1
    return {"in": nir.Input(input_type={"input": np.array([c_in, size, size])}),
            "conv": nir.Conv2d(input_shape=(size, size), weight=np.full((c_out, c_in, k, k), weight), stride=stride,
                               padding=pad, dilation=1, groups=1, bias=np.zeros(c_out)),
            "if": nir.IF(r=np.ones((c_out, out, out)), v_threshold=np.ones((c_out, out, out))),
            "out": nir.Output(output_type={"output": np.array([c_out, out, out])})}, out


def test_conv_targets_by_kernel_offset_then_channel():
    nodes, out = _conv_graph(c_in=2, c_out=3, size=5, k=3, stride=1, pad=1, weight=2.0)
    got = _spike_order(nodes, [("in", "conv"), ("conv", "if"), ("if", "out")],
                       evsim.make_events(t=[0], x=[2], y=[2], p=[1]))
    expected = [("if", co * out * out + (2 + 1 - ky) * out + (2 + 1 - kx))
                for ky in range(3) for kx in range(3) for co in range(3)]
    assert got == expected


def test_strided_conv_skips_offsets_that_miss_the_output_grid():
    nodes, out = _conv_graph(c_in=1, c_out=2, size=6, k=3, stride=2, pad=1, weight=2.0)
    y, x = 3, 2
    got = _spike_order(nodes, [("in", "conv"), ("conv", "if"), ("if", "out")],
                       evsim.make_events(t=[0], x=[x], y=[y], p=[0]))
    expected = [("if", co * out * out + ((y + 1 - ky) // 2) * out + (x + 1 - kx) // 2)
                for ky in range(3) if (y + 1 - ky) % 2 == 0 and 0 <= (y + 1 - ky) // 2 < out
                for kx in range(3) if (x + 1 - kx) % 2 == 0 and 0 <= (x + 1 - kx) // 2 < out
                for co in range(2)]
    assert got == expected


def test_conv_then_tiling_pool_updates_a_target_once_per_intermediate_element():
    # 0.6 per conv output; pool (0, 0) receives four separate updates of 0.6 (fires twice, reset to
    # 0), not one update of 2.4 (which would fire once)
    nodes = {"in": nir.Input(input_type={"input": np.array([1, 4, 4])}),
             "conv": nir.Conv2d(input_shape=(4, 4), weight=np.full((1, 1, 3, 3), 0.6), stride=1, padding=1,
                                dilation=1, groups=1, bias=np.zeros(1)),
             "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
             "if": nir.IF(r=np.ones((1, 2, 2)), v_threshold=np.ones((1, 2, 2))),
             "out": nir.Output(output_type={"output": np.array([1, 2, 2])})}
    got = _spike_order(nodes, [("in", "conv"), ("conv", "pool"), ("pool", "if"), ("if", "out")],
                       evsim.make_events(t=[0], x=[1], y=[1], p=[0]))
    v = np.zeros((2, 2))
    expected = []
    for ky in range(3):  # conv outputs in first-touch order, then through the pool one by one
        for kx in range(3):
            py, px = (1 + 1 - ky) // 2, (1 + 1 - kx) // 2
            v[py, px] += 0.6
            if v[py, px] > 1.0:
                v[py, px] = 0.0
                expected.append(("if", py * 2 + px))
    assert got == expected == [("if", 2), ("if", 0), ("if", 1), ("if", 0)]


def test_dense_ascending_and_branches_in_sorted_name_order():
    nodes = {"in": nir.Input(input_type={"input": np.array([2])}),
             "b_lin": nir.Linear(weight=np.full((3, 2), 2.0)), "a_lin": nir.Linear(weight=np.full((2, 2), 2.0)),
             "b_if": nir.IF(r=np.ones(3), v_threshold=np.ones(3)), "a_if": nir.IF(r=np.ones(2), v_threshold=np.ones(2)),
             "sum_b": nir.Linear(weight=np.ones((1, 3))), "sum_a": nir.Linear(weight=np.ones((1, 2))),
             "out": nir.Output(output_type={"output": np.array([1])})}
    edges = [("in", "b_lin"), ("in", "a_lin"), ("b_lin", "b_if"), ("a_lin", "a_if"), ("b_if", "sum_b"),
             ("a_if", "sum_a"), ("sum_b", "out"), ("sum_a", "out")]
    got = _spike_order(nodes, edges, evsim.make_events(t=[0], x=[1]))
    assert got == [("a_if", 0), ("a_if", 1), ("b_if", 0), ("b_if", 1), ("b_if", 2)]

"""Fan-out exactness: what a spike delivers through the linear nodes equals the dense operator.

Trick: an Integrator target (NIR ``I``) never fires and under strict NIR its state is the
cumulative input (``v += R·w`` per spike, no leak). Each test builds Input → linear node(s) → I →
Output, feeds many random events (several per input neuron, addresses in random order, equal
timestamps), and compares the I state (``Result.output``) with the dense operator applied to the
per-input-neuron event counts, computed independently in numpy (``tests/_nirgraphs.py``:
loop-based PyTorch-semantics convolutions and pools).

SynOps (docs/SEMANTICS.md#synops: one per weight added to a target neuron's state) are checked for single
operators and for chains the builder folds into one operator (index maps — Flatten, Scale,
non-overlapping pools — in front of a weighted node), where "composed fan-out" is unambiguous.
For chains of two weighted operators (conv → conv, overlapping pool → conv, linear → linear)
the engine counts one SynOp per (intermediate element, target) pair, which differs from the
number of non-zeros of the composed operator; docs/SEMANTICS.md#synops defines them, and these chains
are checked for exact state only.
"""

from __future__ import annotations

import zlib

import numpy as np
import nir
import pytest

import evsim
from _nirgraphs import (
    _two,
    avgpool,
    chain_to_integrator,
    conv1d,
    conv2d,
    conv_pads,
    events_at,
    graph,
    inp,
    integrated_state,
    integrator,
    out,
    random_events,
    ref_conv1d,
    ref_conv2d,
    ref_pool2d,
    sumpool,
)

RTOL = 1e-9
T0_US = 1_000_000  # recordings need not start at 0: model time starts at the first event


def assert_state(result, expected, rtol=RTOL):
    expected = np.asarray(expected, dtype=np.float64).ravel()
    got = np.asarray(result.output, dtype=np.float64).ravel()
    assert got.shape == expected.shape
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=rtol * scale)


def cover_2d(h, w, kernel, stride, pads, dilation) -> np.ndarray:
    """cover[y, x]: number of output positions whose receptive field contains input pixel (y, x)
    (padding pixels excluded). Enumerates every output position's receptive field explicitly."""
    kh, kw = kernel
    sy, sx = stride
    dy, dx = dilation
    pt, pl, pb, pr = pads
    oh = (h + pt + pb - dy * (kh - 1) - 1) // sy + 1
    ow = (w + pl + pr - dx * (kw - 1) - 1) // sx + 1
    cover = np.zeros((h, w), dtype=np.int64)
    for oy in range(oh):
        for ox in range(ow):
            field = {(oy * sy + ky * dy - pt, ox * sx + kx * dx - pl) for ky in range(kh) for kx in range(kw)}
            for y, x in field:
                if 0 <= y < h and 0 <= x < w:
                    cover[y, x] += 1
    return cover


def seed_of(*parts) -> int:
    """A seed that is the same in every run (str hashes are randomised per process)."""
    return zlib.crc32(repr(parts).encode())


# --------------------------------------------------------------------------------------------
# Conv2d
# --------------------------------------------------------------------------------------------

# (C_in, C_out, kernel, stride, padding, dilation, groups, H, W)
CONV2D_CASES = [
    (3, 5, 3, 1, 0, 1, 1, 9, 11),
    (3, 4, 3, 1, 1, 1, 1, 8, 8),
    (2, 4, 3, 2, 1, 1, 1, 9, 10),
    (2, 3, 5, 3, 2, 1, 1, 13, 11),
    (2, 3, 3, 3, 0, 1, 1, 10, 12),
    (4, 6, 3, 1, "same", 1, 2, 7, 9),
    (4, 4, 4, 1, "same", 1, 4, 8, 7),  # depthwise, even kernel: 'same' pads 1 left, 2 right
    (4, 8, 3, 1, "same", 2, 4, 9, 9),  # depthwise with channel multiplier 2, dilation 2
    (3, 2, 3, 2, "valid", 2, 1, 12, 11),
    (3, 3, 2, 1, "valid", 1, 1, 6, 7),
    (2, 4, (3, 2), (1, 2), (2, 1), (2, 1), 2, 9, 10),  # per-axis stride, padding, dilation
    (1, 3, 1, 1, 0, 1, 1, 5, 6),
    (4, 4, 3, 3, 0, 1, 4, 10, 10),
    (4, 8, 3, 2, 2, 2, 2, 11, 9),
]


def _conv2d_id(case):
    cin, cout, k, s, p, d, g, h, w = case
    return f"c{cin}-{cout}_k{k}_s{s}_p{p}_d{d}_g{g}_{h}x{w}".replace(" ", "")


@pytest.mark.parametrize("case", CONV2D_CASES, ids=[_conv2d_id(c) for c in CONV2D_CASES])
def test_conv2d_fanout_exact(case):
    cin, cout, k, stride, padding, dilation, groups, h, w = case
    rng = np.random.default_rng(seed_of("conv2d", case))
    kernel = _two(k)
    weight = rng.normal(size=(cout, cin // groups, *kernel))
    expected_shape = ref_conv2d(np.zeros((cin, h, w)), weight, stride, padding, dilation, groups).shape
    g = chain_to_integrator((cin, h, w), [("conv", conv2d(weight, stride, padding, dilation, groups))], expected_shape)
    n_events = 5 * cin * h * w
    events, counts = random_events(rng, (cin, h, w), n_events)
    assert counts.min() >= 0 and np.count_nonzero(counts) > 0.9 * counts.size  # most inputs hit, several times

    result = integrated_state(g, events)

    assert result.events_consumed == n_events
    assert_state(result, ref_conv2d(counts, weight, stride, padding, dilation, groups))
    cover = cover_2d(h, w, kernel, _two(stride), conv_pads(padding, kernel, _two(dilation)), _two(dilation))
    expected_synops = int(np.sum(counts * cover[None]) * (cout // groups))
    assert result.synops == expected_synops


def test_conv2d_fanout_float32():
    """Default precision (float32 state and weights): the same result to float32 accuracy."""
    rng = np.random.default_rng(7)
    cin, cout, h, w = 3, 6, 10, 9
    weight = rng.normal(size=(cout, cin, 3, 3))
    g = chain_to_integrator((cin, h, w), [("conv", conv2d(weight, stride=2, padding=1))], (cout, 5, 5))
    events, counts = random_events(rng, (cin, h, w), 2000)
    model = evsim.load_model(g)  # default precision
    assert model.precision == "float32" and model.arrays.weights.dtype == np.float32
    result = evsim.Simulator(model).run(events)
    expected = ref_conv2d(counts, weight, 2, 1)
    assert_state(result, expected, rtol=2e-5)
    assert_state(integrated_state(g, events, precision="float64"), expected)


# --------------------------------------------------------------------------------------------
# Conv1d on (C, L)
# --------------------------------------------------------------------------------------------

# (C_in, C_out, kernel, stride, padding, dilation, groups, L, give input_shape)
CONV1D_CASES = [
    (3, 4, 3, 1, 0, 1, 1, 20, True),
    (2, 4, 3, 2, 1, 1, 2, 17, False),
    (4, 4, 5, 1, "same", 2, 4, 15, True),
    (2, 2, 4, 1, "same", 1, 1, 10, False),
    (2, 3, 4, 3, 2, 1, 1, 23, True),
    (3, 6, 3, 1, "valid", 3, 3, 19, False),
    (2, 5, 1, 1, 0, 1, 1, 7, True),
]


@pytest.mark.parametrize("case", CONV1D_CASES, ids=[f"c{c[0]}-{c[1]}_k{c[2]}_s{c[3]}_p{c[4]}_d{c[5]}_g{c[6]}_L{c[7]}_{'shape' if c[8] else 'noshape'}" for c in CONV1D_CASES])
def test_conv1d_fanout_exact(case):
    cin, cout, k, stride, padding, dilation, groups, length, with_shape = case
    rng = np.random.default_rng(seed_of("conv1d", case))
    weight = rng.normal(size=(cout, cin // groups, k))
    expected_shape = ref_conv1d(np.zeros((cin, length)), weight, stride, padding, dilation, groups).shape
    node = conv1d(weight, stride, padding, dilation, groups, input_shape=length if with_shape else None)
    g = chain_to_integrator((cin, length), [("conv", node)], expected_shape)
    n_events = 6 * cin * length
    events, counts = random_events(rng, (cin, length), n_events)

    result = integrated_state(g, events)

    assert_state(result, ref_conv1d(counts, weight, stride, padding, dilation, groups))
    if isinstance(padding, str):
        total = 0 if padding == "valid" else dilation * (k - 1)
        pads = (0, total // 2, 0, total - total // 2)
    else:
        pads = (0, padding, 0, padding)
    cover = cover_2d(1, length, (1, k), (1, stride), pads, (1, dilation))[0]
    assert result.synops == int(np.sum(counts * cover[None]) * (cout // groups))


# --------------------------------------------------------------------------------------------
# SumPool2d / AvgPool2d
# --------------------------------------------------------------------------------------------

# (kernel, stride, padding, C, H, W)
POOL_CASES = [
    (2, 2, 0, 2, 8, 8),  # non-overlapping, divisible
    (2, 2, 0, 3, 9, 7),  # non-overlapping, last row/column dropped
    (3, 3, 0, 2, 10, 11),
    ((2, 3), (2, 3), 0, 2, 9, 10),  # rectangular windows
    (3, 2, 1, 2, 9, 10),  # overlapping with padding
    (3, 1, 1, 2, 7, 7),
    (2, 2, 1, 2, 7, 8),  # non-overlapping windows but padded
    ((3, 2), (1, 2), (1, 0), 3, 8, 9),
    (4, 3, 0, 1, 11, 13),  # overlapping, not divisible
]


@pytest.mark.parametrize("average", [False, True], ids=["sum", "avg"])
@pytest.mark.parametrize("case", POOL_CASES, ids=[f"k{c[0]}_s{c[1]}_p{c[2]}_{c[3]}x{c[4]}x{c[5]}".replace(" ", "") for c in POOL_CASES])
def test_pool_fanout_exact(case, average):
    kernel, stride, padding, c, h, w = case
    rng = np.random.default_rng(seed_of("pool", case, average))
    node = (avgpool if average else sumpool)(kernel, stride, padding)
    expected_shape = ref_pool2d(np.zeros((c, h, w)), kernel, stride, padding).shape
    g = chain_to_integrator((c, h, w), [("pool", node)], expected_shape)
    n_events = 4 * c * h * w
    events, counts = random_events(rng, (c, h, w), n_events)

    result = integrated_state(g, events)

    assert_state(result, ref_pool2d(counts, kernel, stride, padding, average=average))
    py, px = _two(padding)
    cover = cover_2d(h, w, _two(kernel), _two(stride), (py, px, py, px), (1, 1))
    assert result.synops == int(np.sum(counts * cover[None]))


# --------------------------------------------------------------------------------------------
# Flatten, Affine, Linear, Scale
# --------------------------------------------------------------------------------------------

FLATTEN_CASES = [
    (0, (3, 4, 5)),
    (0, None),
    (1, (1, 3, 4, 5)),  # batchful, as old sinabs writes it
    (1, None),
    (1, (3, 4, 5)),  # start_dim=1 on a batchless type (nir would keep the channel axis)
    (1, (0, 0, 0, 0)),  # placeholder type
]


@pytest.mark.parametrize("dense", ["Affine", "Linear"])
@pytest.mark.parametrize("start_dim,input_type", FLATTEN_CASES, ids=[f"start{s}_{t}".replace(" ", "") for s, t in FLATTEN_CASES])
def test_flatten_then_dense(start_dim, input_type, dense):
    rng = np.random.default_rng(seed_of("flatten", start_dim, input_type, dense))
    shape = (3, 4, 5)
    weight = rng.normal(size=(7, 60))
    flat = nir.Flatten(input_type=None if input_type is None else {"input": np.array(input_type)}, start_dim=start_dim)
    lin = nir.Affine(weight=weight, bias=np.zeros(7)) if dense == "Affine" else nir.Linear(weight=weight)
    g = chain_to_integrator(shape, [("flat", flat), ("fc", lin)], (7,))
    n_events = 600
    events, counts = random_events(rng, shape, n_events)

    result = integrated_state(g, events)

    # Flatten is C-order (docs/SEMANTICS.md#flatten): input neuron (p, y, x) is column p*20 + y*5 + x
    expected = np.array([sum(weight[o, (p * 4 + y) * 5 + x] * counts[p, y, x]
                             for p in range(3) for y in range(4) for x in range(5)) for o in range(7)])
    assert_state(result, expected)
    assert result.synops == n_events * 7


@pytest.mark.parametrize("start_dim,input_type", [(1, (2, 4, 5)), (1, None), (2, (1, 2, 4, 5))],
                         ids=["batchless", "untyped", "batchful"])
def test_flatten_into_conv1d(start_dim, input_type):
    """(C, H, W) → Flatten(H, W) → Conv1d: the Flatten must keep the channel axis, which is
    start_dim=1 read batchless or start_dim=2 read batchful ((1, C, H, W))."""
    rng = np.random.default_rng(seed_of("flatten-conv1d", start_dim, input_type))
    shape = (2, 4, 5)
    weight = rng.normal(size=(3, 2, 3))
    flat = nir.Flatten(input_type=None if input_type is None else {"input": np.array(input_type)}, start_dim=start_dim)
    g = chain_to_integrator(shape, [("flat", flat), ("conv", conv1d(weight, padding=1))], (3, 20))
    events, counts = random_events(rng, shape, 300)
    result = integrated_state(g, events)
    assert_state(result, ref_conv1d(counts.reshape(2, 20), weight, padding=1))


def test_flatten_alone_is_c_order():
    """Input (C, H, W) → Flatten → I(C·H·W): neuron p*H*W + y*W + x of I counts the events at (p, y, x)."""
    rng = np.random.default_rng(11)
    shape = (2, 3, 4)
    g = chain_to_integrator(shape, [("flat", nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0))], (24,))
    events, counts = random_events(rng, shape, 300)
    result = integrated_state(g, events)
    expected = np.zeros(24)
    for e in events:
        expected[int(e["p"]) * 12 + int(e["y"]) * 4 + int(e["x"])] += 1
    assert_state(result, expected)
    assert result.synops == 300


def test_affine_on_vector_input():
    rng = np.random.default_rng(12)
    weight = rng.normal(size=(9, 13))
    g = chain_to_integrator((13,), [("fc", nir.Affine(weight=weight, bias=np.zeros(9)))], (9,), r=0.5)
    events, counts = random_events(rng, (13,), 400)
    result = integrated_state(g, events)
    expected = 0.5 * np.einsum("oi,i->o", weight, counts)  # strict NIR: v += R·w
    assert_state(result, expected)
    assert result.synops == 400 * 9


def test_affine_on_map_input_without_flatten():
    """Some exporters omit the Flatten: Affine(N × C·H·W) after a (C, H, W) node reads it in C order."""
    rng = np.random.default_rng(13)
    shape = (2, 3, 4)
    weight = rng.normal(size=(5, 24))
    g = chain_to_integrator(shape, [("fc", nir.Affine(weight=weight, bias=np.zeros(5)))], (5,))
    events, counts = random_events(rng, shape, 300)
    result = integrated_state(g, events)
    assert_state(result, weight @ counts.reshape(-1))
    assert result.synops == 300 * 5


@pytest.mark.parametrize("shape,scale_shape", [((11,), (11,)), ((2, 3, 4), (2, 3, 4)), ((3, 4, 5), (3, 1, 1))])
def test_scale(shape, scale_shape):
    rng = np.random.default_rng(seed_of("scale", shape, scale_shape))
    scale = rng.uniform(0.2, 3.0, size=scale_shape) * rng.choice([-1, 1], size=scale_shape)
    g = chain_to_integrator(shape, [("scale", nir.Scale(scale=scale))], shape)
    events, counts = random_events(rng, shape, 500)
    result = integrated_state(g, events)
    assert_state(result, counts * np.broadcast_to(scale, shape))  # Hadamard product
    assert result.synops == 500


# --------------------------------------------------------------------------------------------
# Chains of linear nodes (no neurons in between)
# --------------------------------------------------------------------------------------------


def test_chain_sumpool_then_conv_folded():
    """Non-overlapping pool (input not divisible by the kernel) → conv: the builder folds the pool
    into the conv's input lookup, so one pooled position's conv fan-out is the composed fan-out."""
    rng = np.random.default_rng(21)
    c, h, w = 2, 9, 7
    weight = rng.normal(size=(3, c, 3, 3))
    g = chain_to_integrator((c, h, w), [("pool", sumpool(2)), ("conv", conv2d(weight, padding=1))], (3, 4, 3))
    events, counts = random_events(rng, (c, h, w), 800)
    result = integrated_state(g, events)
    pooled = ref_pool2d(counts, 2)
    assert pooled.shape == (c, 4, 3)
    assert_state(result, ref_conv2d(pooled, weight, padding=1))
    conv_cover = cover_2d(4, 3, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1))
    expected_synops = 0
    for e in events:
        y, x = int(e["y"]), int(e["x"])
        if y < 8 and x < 6:  # row 8 and column 6 fall outside every pooling window
            expected_synops += conv_cover[y // 2, x // 2] * 3
    assert result.synops == expected_synops


def test_chain_scale_flatten_linear_folded():
    rng = np.random.default_rng(22)
    shape = (2, 3, 3)
    scale = rng.uniform(0.5, 2.0, size=shape)
    weight = rng.normal(size=(4, 18))
    g = chain_to_integrator(shape, [("scale", nir.Scale(scale=scale)),
                                    ("flat", nir.Flatten(input_type=None, start_dim=0)),
                                    ("fc", nir.Linear(weight=weight))], (4,))
    events, counts = random_events(rng, shape, 300)
    result = integrated_state(g, events)
    assert_state(result, weight @ (scale * counts).reshape(-1))
    assert result.synops == 300 * 4


def test_chain_overlapping_avgpool_then_strided_conv():
    rng = np.random.default_rng(23)
    c, h, w = 2, 10, 9
    weight = rng.normal(size=(4, c, 3, 3))
    pooled_shape = ref_pool2d(np.zeros((c, h, w)), 3, 1, 1).shape
    out_shape = ref_conv2d(np.zeros(pooled_shape), weight, 2, 0).shape
    g = chain_to_integrator((c, h, w), [("pool", avgpool(3, 1, 1)), ("conv", conv2d(weight, stride=2))], out_shape)
    events, counts = random_events(rng, (c, h, w), 900)
    result = integrated_state(g, events)
    assert_state(result, ref_conv2d(ref_pool2d(counts, 3, 1, 1, average=True), weight, stride=2))


def test_chain_conv_then_conv():
    rng = np.random.default_rng(24)
    c, h, w = 3, 9, 8
    w1 = rng.normal(size=(4, c, 3, 3))
    w2 = rng.normal(size=(6, 2, 3, 3))  # groups=2
    mid = ref_conv2d(np.zeros((c, h, w)), w1, 1, 1).shape
    out_shape = ref_conv2d(np.zeros(mid), w2, 2, "valid", 1, 2).shape
    g = chain_to_integrator((c, h, w), [("c1", conv2d(w1, padding=1)), ("c2", conv2d(w2, stride=2, padding="valid", groups=2))], out_shape)
    events, counts = random_events(rng, (c, h, w), 1000)
    result = integrated_state(g, events)
    assert_state(result, ref_conv2d(ref_conv2d(counts, w1, 1, 1), w2, 2, "valid", 1, 2))


def test_chain_linear_then_linear():
    rng = np.random.default_rng(25)
    a = rng.normal(size=(6, 10))
    b = rng.normal(size=(4, 6))
    g = chain_to_integrator((10,), [("l1", nir.Linear(weight=a)), ("l2", nir.Affine(weight=b, bias=np.zeros(4)))], (4,))
    events, counts = random_events(rng, (10,), 300)
    result = integrated_state(g, events)
    assert_state(result, np.einsum("ij,jk,k->i", b, a, counts))


def test_chain_conv_pool_flatten_affine():
    rng = np.random.default_rng(26)
    c, h, w = 2, 8, 8
    wc = rng.normal(size=(3, c, 3, 3))
    wf = rng.normal(size=(5, 3 * 4 * 4))
    g = chain_to_integrator((c, h, w), [("conv", conv2d(wc, padding=1)), ("pool", sumpool(2)),
                                        ("flat", nir.Flatten(input_type=None, start_dim=1)),
                                        ("fc", nir.Affine(weight=wf, bias=np.zeros(5)))], (5,))
    events, counts = random_events(rng, (c, h, w), 700)
    result = integrated_state(g, events)
    assert_state(result, wf @ ref_pool2d(ref_conv2d(counts, wc, 1, 1), 2).reshape(-1))


def test_chain_conv_then_nonoverlapping_pool_into_target():
    rng = np.random.default_rng(27)
    c, h, w = 2, 9, 9
    wc = rng.normal(size=(4, c, 3, 3))
    g = chain_to_integrator((c, h, w), [("conv", conv2d(wc, stride=2, padding=1)), ("pool", avgpool(2))], (4, 2, 2))
    events, counts = random_events(rng, (c, h, w), 700)
    result = integrated_state(g, events)
    assert_state(result, ref_pool2d(ref_conv2d(counts, wc, 2, 1), 2, average=True))


def test_chain_avgpool_flatten_affine_folded():
    """Non-overlapping average pool → Flatten → Affine from the Input: both index maps (with the
    1/k² scale) fold into the dense operator's input lookup."""
    rng = np.random.default_rng(28)
    c, h, w = 2, 7, 6
    wf = rng.normal(size=(4, c * 3 * 3))
    g = chain_to_integrator((c, h, w), [("pool", avgpool(2)), ("flat", nir.Flatten(input_type=None, start_dim=0)),
                                        ("fc", nir.Affine(weight=wf, bias=np.zeros(4)))], (4,))
    events, counts = random_events(rng, (c, h, w), 500)
    result = integrated_state(g, events)
    assert_state(result, wf @ ref_pool2d(counts, 2, average=True).reshape(-1))
    covered = (events["y"] < 6) & (events["x"] < 6)  # row 6 is outside every window
    assert result.synops == int(covered.sum()) * 4


def test_per_neuron_r_on_a_map():
    """Per-neuron R of the target (C, H, W) layer multiplies what each neuron receives."""
    rng = np.random.default_rng(29)
    c, h, w = 2, 6, 5
    weight = rng.normal(size=(3, c, 3, 3))
    r = rng.uniform(0.5, 2.0, size=(3, h, w))
    nodes = {"input": inp((c, h, w)), "conv": conv2d(weight, padding=1), "integ": nir.I(r=r), "output": out((3, h, w))}
    g = graph(nodes, [("input", "conv"), ("conv", "integ"), ("integ", "output")])
    events, counts = random_events(rng, (c, h, w), 400)
    assert_state(integrated_state(g, events), r * ref_conv2d(counts, weight, padding=1))


def test_affine_straight_into_output_integrates():
    """docs/SEMANTICS.md#readout: for Affine → Output the readout is the accumulated (integrated) output, W·counts
    plus the bias integrated over time (strict NIR)."""
    rng = np.random.default_rng(30)
    weight = rng.normal(size=(4, 6))
    bias = np.array([0.3, -0.2, 0.0, 1.0])
    g = graph({"input": inp((6,)), "fc": nir.Affine(weight=weight, bias=bias), "output": out((4,))},
              [("input", "fc"), ("fc", "output")])
    events, counts = random_events(rng, (6,), 200, t_max_us=300_000)
    events["t"] += T0_US
    span = (int(events["t"][-1]) - int(events["t"][0])) * 1e-6
    result = integrated_state(g, events)
    assert_state(result, weight @ counts + bias * span)
    assert result.synops == 200 * 4


# --------------------------------------------------------------------------------------------
# Branches that merge
# --------------------------------------------------------------------------------------------


def test_three_paths_from_input_sum_into_one_target():
    rng = np.random.default_rng(31)
    c, h, w = 3, 8, 8
    wa = rng.normal(size=(4, c, 3, 3))
    wb = rng.normal(size=(4, c, 5, 5))
    wc = rng.normal(size=(4, c, 1, 1))
    s = rng.uniform(0.5, 2.0, size=(4, h, w))
    nodes = {"input": inp((c, h, w)), "ca": conv2d(wa, padding=1), "cb": conv2d(wb, padding="same", dilation=1),
             "cc": conv2d(wc), "sc": nir.Scale(scale=s), "integ": integrator((4, h, w)), "output": out((4, h, w))}
    edges = [("input", "ca"), ("input", "cb"), ("input", "cc"), ("cc", "sc"),
             ("ca", "integ"), ("cb", "integ"), ("sc", "integ"), ("integ", "output")]
    events, counts = random_events(rng, (c, h, w), 900)
    result = integrated_state(graph(nodes, edges), events)
    expected = ref_conv2d(counts, wa, 1, 1) + ref_conv2d(counts, wb, 1, "same") + s * ref_conv2d(counts, wc)
    assert_state(result, expected)
    # each path is a single operator: SynOps add up over the paths
    cov3 = cover_2d(h, w, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1))
    cov5 = cover_2d(h, w, (5, 5), (1, 1), (2, 2, 2, 2), (1, 1))
    per_pixel = 4 * cov3 + 4 * cov5 + 4  # 1×1 conv then Scale: 4 targets, scale folded
    assert result.synops == int(np.sum(counts * per_pixel[None]))


def test_diamond_through_shared_linear_node():
    """Input → A → B → I and A → C → I: the target receives (B·A + C·A)·x."""
    rng = np.random.default_rng(32)
    a = rng.normal(size=(6, 9))
    b = rng.normal(size=(5, 6))
    cm = rng.normal(size=(5, 6))
    nodes = {"input": inp((9,)), "a": nir.Linear(weight=a), "b": nir.Linear(weight=b),
             "c": nir.Affine(weight=cm, bias=np.zeros(5)), "integ": integrator((5,)), "output": out((5,))}
    edges = [("input", "a"), ("a", "b"), ("a", "c"), ("b", "integ"), ("c", "integ"), ("integ", "output")]
    events, counts = random_events(rng, (9,), 300)
    result = integrated_state(graph(nodes, edges), events)
    assert_state(result, (b @ a + cm @ a) @ counts)


# --------------------------------------------------------------------------------------------
# Biases are constant currents (strict NIR: v = R·b·t, t in seconds since the first event)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("precision,rtol", [("float64", 1e-9), ("float32", 1e-5)])
def test_affine_bias_is_constant_current(precision, rtol):
    rng = np.random.default_rng(41)
    weight = rng.normal(size=(3, 4))
    weight[:, 0] = 0.0  # input 0 reaches nothing
    bias = np.array([0.5, -1.25, 3.0])
    r = 2.0
    g = chain_to_integrator((4,), [("fc", nir.Affine(weight=weight, bias=bias))], (3,), r=r)
    t_end = 250_000
    result = integrated_state(g, events_at([T0_US, T0_US + t_end], [0, 0], (4,)), precision=precision)
    assert_state(result, r * bias * t_end * 1e-6, rtol=rtol)

    # a real input in between adds R·w on top of the drive
    events = events_at([T0_US, T0_US + 100_000, T0_US + t_end], [0, 2, 0], (4,))
    result = integrated_state(g, events, precision=precision)
    assert_state(result, r * bias * t_end * 1e-6 + r * weight[:, 2], rtol=rtol)


def test_bias_drive_is_read_at_t_end():
    """run(events, t_end_us=T) processes everything up to T; the readout state is then v(T)."""
    g = chain_to_integrator((2,), [("fc", nir.Affine(weight=np.zeros((1, 2)), bias=np.array([1.0])))], (1,), r=2.0)
    model = evsim.load_model(g, precision="float64")
    result = evsim.Simulator(model).run(events_at([T0_US, T0_US + 100_000], [0, 0], (2,)), t_end_us=500_000)
    assert_state(result, [2.0 * 1.0 * 0.5])  # R·b·T with T = 0.5 s after the first event


def test_conv_bias_through_padded_avgpool():
    """A conv bias is uniform per channel; a padded average pool after it gives smaller values at
    the border (count_include_pad): the constant current is the linear graph applied to the bias."""
    rng = np.random.default_rng(42)
    c, h, w = 2, 6, 7
    weight = rng.normal(size=(3, c, 3, 3))
    bias = np.array([1.0, -0.5, 2.0])
    out_shape = ref_pool2d(np.zeros((3, h, w)), 3, 2, 1).shape
    r = 0.5
    g = chain_to_integrator((c, h, w), [("conv", conv2d(weight, padding=1, bias=bias)), ("pool", avgpool(3, 2, 1))],
                            out_shape, r=r)
    events, counts = random_events(rng, (c, h, w), 300, t_max_us=400_000)
    events["t"] += T0_US
    t_span = (int(events["t"][-1]) - int(events["t"][0])) * 1e-6
    result = integrated_state(g, events)
    drive = ref_pool2d(ref_conv2d(np.zeros((c, h, w)), weight, 1, 1, bias=bias), 3, 2, 1, average=True)
    spikes = ref_pool2d(ref_conv2d(counts, weight, 1, 1), 3, 2, 1, average=True)
    assert not np.allclose(drive, drive.flat[0])  # the border really differs
    assert_state(result, r * (spikes + t_span * drive))


def test_bias_through_two_affines():
    rng = np.random.default_rng(43)
    w1, b1 = rng.normal(size=(5, 3)), rng.normal(size=5)
    w2, b2 = rng.normal(size=(2, 5)), rng.normal(size=2)
    g = chain_to_integrator((3,), [("fc1", nir.Affine(weight=w1, bias=b1)), ("fc2", nir.Affine(weight=w2, bias=b2))], (2,))
    events = events_at([T0_US, T0_US + 30_000, T0_US + 30_000, T0_US + 80_000], [1, 0, 2, 1], (3,))
    result = integrated_state(g, events)
    counts = np.array([1.0, 2.0, 1.0])
    assert_state(result, w2 @ w1 @ counts + 0.08 * (w2 @ b1 + b2))


# --------------------------------------------------------------------------------------------
# The reference itself
# --------------------------------------------------------------------------------------------


def test_reference_matches_torch():
    """The numpy reference convolutions and pools agree with PyTorch (run only where torch is
    installed; the fan-out tests above do not need it)."""
    torch = pytest.importorskip("torch", reason="torch not installed: reference not cross-checked")
    fn = torch.nn.functional
    rng = np.random.default_rng(51)
    for cin, cout, k, stride, padding, dilation, groups, h, w in CONV2D_CASES:
        x = rng.normal(size=(cin, h, w))
        weight = rng.normal(size=(cout, cin // groups, *_two(k)))
        bias = rng.normal(size=cout)
        ours = ref_conv2d(x, weight, stride, padding, dilation, groups, bias)
        theirs = fn.conv2d(torch.tensor(x)[None], torch.tensor(weight), torch.tensor(bias), stride=stride,
                           padding=padding, dilation=dilation, groups=groups)[0].numpy()
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-10)
    for cin, cout, k, stride, padding, dilation, groups, length, _ in CONV1D_CASES:
        x = rng.normal(size=(cin, length))
        weight = rng.normal(size=(cout, cin // groups, k))
        ours = ref_conv1d(x, weight, stride, padding, dilation, groups)
        theirs = fn.conv1d(torch.tensor(x)[None], torch.tensor(weight), stride=stride, padding=padding,
                           dilation=dilation, groups=groups)[0].numpy()
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-10)
    for kernel, stride, padding, c, h, w in POOL_CASES:
        x = rng.normal(size=(c, h, w))
        theirs = fn.avg_pool2d(torch.tensor(x)[None], kernel, stride, padding, count_include_pad=True)[0].numpy()
        np.testing.assert_allclose(ref_pool2d(x, kernel, stride, padding, average=True), theirs, rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------------------------
# The SynOp table of evsim.kernels.fanout (what the clock mode counts per source spike)
# --------------------------------------------------------------------------------------------


def _synop_chains():
    rng = np.random.default_rng(40)
    wz = rng.normal(size=(4, 2, 3, 3))
    wz[:, :, 1, 1] = 0.0  # zero taps: counted in the last operator, not in an intermediate one
    w2 = rng.normal(size=(6, 2, 3, 3))
    return {
        "conv": ((2, 7, 6), [("c", conv2d(wz, padding=1))], (4, 7, 6)),
        "strided conv, groups": ((4, 9, 8), [("c", conv2d(rng.normal(size=(6, 2, 3, 3)), stride=2, padding=1, groups=2))],
                                 (6, 5, 4)),
        "conv → conv (zero taps in the first)": ((2, 8, 8), [("c1", conv2d(wz, padding=1)),
                                                            ("c2", conv2d(w2, stride=2, groups=2))], (6, 3, 3)),
        "overlapping avgpool → conv": ((2, 10, 9), [("p", avgpool(3, 1, 1)), ("c", conv2d(w2[:4, :2], stride=2))],
                                       (4, 4, 4)),
        "conv → pool → flatten → affine": ((2, 8, 8), [("c", conv2d(rng.normal(size=(3, 2, 3, 3)), padding=1)),
                                                       ("p", sumpool(2)), ("f", nir.Flatten(input_type=None, start_dim=1)),
                                                       ("fc", nir.Affine(weight=rng.normal(size=(5, 48)), bias=np.zeros(5)))],
                                          (5,)),
        "conv → non-overlapping pool": ((2, 9, 9), [("c", conv2d(wz, stride=2, padding=1)), ("p", avgpool(2))], (4, 2, 2)),
        "linear → linear": ((10,), [("l1", nir.Linear(weight=rng.normal(size=(6, 10)))),
                                   ("l2", nir.Linear(weight=rng.normal(size=(4, 6))))], (4,)),
    }


@pytest.mark.parametrize("name", list(_synop_chains()))
def test_synop_table_matches_the_operator_structure_and_the_engine(name):
    """evsim.kernels.fanout.synops_table (the clock mode's SynOps per source spike) equals an
    independent numpy count from the NIR operators' structure, and the engine's own count for
    one spike of a sample of source elements."""
    from _nirgraphs import ref_synops_per_spike
    from evsim.kernels.fanout import synops_table
    from evsim.model.linear import to_nir_order

    in_shape, chain, target_shape = _synop_chains()[name]
    model = evsim.load_model(chain_to_integrator(in_shape, chain, target_shape), profile="nir", precision="float64")
    (j, proj), = [(j, p) for j, p in enumerate(model.projections) if p.source == model.input_population]
    table = to_nir_order(synops_table(model.arrays, j, int(np.prod(in_shape))), in_shape)
    expected = ref_synops_per_spike(proj.linear_ops, int(np.prod(target_shape)))
    np.testing.assert_array_equal(table, expected)
    assert table.sum() > 0
    sim = evsim.Simulator(model)
    for flat in np.random.default_rng(41).choice(table.size, size=5, replace=False):
        assert sim.run(events_at([T0_US], [flat], in_shape)).synops == table[flat]

"""Graph builders and independent numpy references shared by test_fanout.py and test_graph.py.

Everything here is written from the definitions (PyTorch semantics for convolutions and pools,
docs/SEMANTICS.md#addressing for event addressing), never from evsim's own code, so that tests comparing evsim with
these functions compare two independent computations.
"""

from __future__ import annotations

import numpy as np
import nir

import evsim


# --------------------------------------------------------------------------------------------
# Reference linear operators (plain loops; (C, H, W) NIR/PyTorch layout, no batch)
# --------------------------------------------------------------------------------------------


def _two(v) -> tuple:
    a = np.atleast_1d(np.asarray(v)).ravel()
    return (int(a[0]), int(a[0])) if a.size == 1 else (int(a[0]), int(a[1]))


def conv_pads(padding, kernel: tuple, dilation: tuple) -> tuple:
    """(top, left, bottom, right) zero padding for PyTorch's padding argument.
    'same' pads d*(k-1) in total with the smaller half first (left = total // 2)."""
    if isinstance(padding, str):
        if padding == "valid":
            return 0, 0, 0, 0
        assert padding == "same"
        ty, tx = dilation[0] * (kernel[0] - 1), dilation[1] * (kernel[1] - 1)
        return ty // 2, tx // 2, ty - ty // 2, tx - tx // 2
    py, px = _two(padding)
    return py, px, py, px


def ref_conv2d(x, weight, stride=1, padding=0, dilation=1, groups=1, bias=None):
    """out[co, oy, ox] = b[co] + Σ_{ci,ky,kx} W[co, ci, ky, kx] · xpad[g·Cin_g + ci, oy·sy + ky·dy, ox·sx + kx·dx]."""
    x = np.asarray(x, dtype=np.float64)
    weight = np.asarray(weight, dtype=np.float64)
    c_in, h, w = x.shape
    c_out, cin_g, kh, kw = weight.shape
    assert cin_g * groups == c_in
    cout_g = c_out // groups
    sy, sx = _two(stride)
    dy, dx = _two(dilation)
    pt, pl, pb, pr = conv_pads(padding, (kh, kw), (dy, dx))
    xp = np.zeros((c_in, h + pt + pb, w + pl + pr))
    xp[:, pt:pt + h, pl:pl + w] = x
    oh = (h + pt + pb - dy * (kh - 1) - 1) // sy + 1
    ow = (w + pl + pr - dx * (kw - 1) - 1) // sx + 1
    out = np.zeros((c_out, oh, ow))
    for co in range(c_out):
        g = co // cout_g
        for oy in range(oh):
            for ox in range(ow):
                acc = 0.0
                for ci in range(cin_g):
                    for ky in range(kh):
                        for kx in range(kw):
                            acc += weight[co, ci, ky, kx] * xp[g * cin_g + ci, oy * sy + ky * dy, ox * sx + kx * dx]
                out[co, oy, ox] = acc
    if bias is not None:
        out += np.asarray(bias, dtype=np.float64).reshape(-1, 1, 1)
    return out


def ref_conv1d(x, weight, stride=1, padding=0, dilation=1, groups=1, bias=None):
    """Conv1d on (C, L): out[co, ol] = b[co] + Σ W[co, ci, k] · xpad[g·Cin_g + ci, ol·s + k·d]."""
    x = np.asarray(x, dtype=np.float64)
    weight = np.asarray(weight, dtype=np.float64)
    c_in, length = x.shape
    c_out, cin_g, k = weight.shape
    cout_g = c_out // groups
    s = int(np.ravel(stride)[0])
    d = int(np.ravel(dilation)[0])
    if isinstance(padding, str):
        total = 0 if padding == "valid" else d * (k - 1)
        left, right = total // 2, total - total // 2
    else:
        left = right = int(np.ravel(padding)[0])
    xp = np.zeros((c_in, length + left + right))
    xp[:, left:left + length] = x
    ol = (length + left + right - d * (k - 1) - 1) // s + 1
    out = np.zeros((c_out, ol))
    for co in range(c_out):
        g = co // cout_g
        for o in range(ol):
            out[co, o] = sum(weight[co, ci, j] * xp[g * cin_g + ci, o * s + j * d]
                             for ci in range(cin_g) for j in range(k))
    if bias is not None:
        out += np.asarray(bias, dtype=np.float64).reshape(-1, 1)
    return out


def ref_pool2d(x, kernel, stride=None, padding=0, average=False):
    """SumPool2d / AvgPool2d (PyTorch, count_include_pad=True: the average divides by kh·kw),
    zero padding, floor mode (windows that would leave the padded input are dropped)."""
    x = np.asarray(x, dtype=np.float64)
    c, h, w = x.shape
    kh, kw = _two(kernel)
    sy, sx = (kh, kw) if stride is None else _two(stride)
    py, px = _two(padding)
    xp = np.zeros((c, h + 2 * py, w + 2 * px))
    xp[:, py:py + h, px:px + w] = x
    oh = (h + 2 * py - kh) // sy + 1
    ow = (w + 2 * px - kw) // sx + 1
    out = np.zeros((c, oh, ow))
    for ch in range(c):
        for oy in range(oh):
            for ox in range(ow):
                out[ch, oy, ox] = xp[ch, oy * sy:oy * sy + kh, ox * sx:ox * sx + kw].sum()
    return out / (kh * kw) if average else out


def dense_matrix(fn, in_shape) -> np.ndarray:
    """The matrix (n_out × n_in, C-order flat) of a linear function given as a callable."""
    n = int(np.prod(in_shape))
    cols = []
    for i in range(n):
        e = np.zeros(n)
        e[i] = 1.0
        cols.append(np.asarray(fn(e.reshape(in_shape)), dtype=np.float64).ravel())
    return np.stack(cols, axis=1)


# --------------------------------------------------------------------------------------------
# Events
# --------------------------------------------------------------------------------------------


def random_events(rng, shape, n_events, *, t_max_us=100_000, equal_time_fraction=0.3):
    """Random events addressing an input of ``shape`` ((C, H, W), (C, L) or (N,)), addresses in
    random order, timestamps sorted with many equal ones. Returns (events, counts) where
    ``counts`` (shape ``shape``) is how many events addressed each input neuron (docs/SEMANTICS.md#inputs)."""
    shape = tuple(int(s) for s in shape)
    flat = rng.integers(0, int(np.prod(shape)), size=n_events)
    t = np.sort(rng.integers(0, t_max_us, size=n_events))
    # make a good share of timestamps collide with their predecessor
    same = rng.random(n_events) < equal_time_fraction
    same[0] = False
    for k in np.flatnonzero(same):
        t[k] = t[k - 1]
    if len(shape) == 3:
        p, y, x = np.unravel_index(flat, shape)
    elif len(shape) == 2:
        p, x = np.unravel_index(flat, shape)
        y = np.zeros_like(x)
    else:
        (x,) = np.unravel_index(flat, shape)
        p = y = np.zeros_like(x)
    events = evsim.make_events(t, x, y, p)
    counts = np.bincount(flat, minlength=int(np.prod(shape))).astype(np.float64).reshape(shape)
    return events, counts


def events_at(t_us, flat_indices, shape) -> np.ndarray:
    """Events addressing the given C-order flat input indices at the given times."""
    shape = tuple(shape)
    flat = np.asarray(flat_indices, dtype=np.int64)
    if len(shape) == 3:
        p, y, x = np.unravel_index(flat, shape)
    elif len(shape) == 2:
        p, x = np.unravel_index(flat, shape)
        y = np.zeros_like(x)
    else:
        (x,) = np.unravel_index(flat, shape)
        p = y = np.zeros_like(x)
    return evsim.make_events(np.asarray(t_us, dtype=np.int64), x, y, p)


# --------------------------------------------------------------------------------------------
# NIR node builders
# --------------------------------------------------------------------------------------------


def inp(shape) -> nir.Input:
    return nir.Input(input_type={"input": np.array(shape)})


def out(shape) -> nir.Output:
    return nir.Output(output_type={"output": np.array(shape)})


def conv2d(weight, stride=1, padding=0, dilation=1, groups=1, bias=None, input_shape=None) -> nir.Conv2d:
    weight = np.asarray(weight, dtype=np.float64)
    bias = np.zeros(weight.shape[0]) if bias is None else np.asarray(bias, dtype=np.float64)
    return nir.Conv2d(input_shape=input_shape, weight=weight, stride=stride, padding=padding,
                      dilation=dilation, groups=groups, bias=bias)


def conv1d(weight, stride=1, padding=0, dilation=1, groups=1, bias=None, input_shape=None) -> nir.Conv1d:
    weight = np.asarray(weight, dtype=np.float64)
    bias = np.zeros(weight.shape[0]) if bias is None else np.asarray(bias, dtype=np.float64)
    return nir.Conv1d(input_shape=input_shape, weight=weight, stride=stride, padding=padding,
                      dilation=dilation, groups=groups, bias=bias)


def sumpool(kernel, stride=None, padding=0) -> nir.SumPool2d:
    stride = kernel if stride is None else stride
    return nir.SumPool2d(kernel_size=np.array(_two(kernel)), stride=np.array(_two(stride)),
                         padding=np.array(_two(padding)))


def avgpool(kernel, stride=None, padding=0) -> nir.AvgPool2d:
    stride = kernel if stride is None else stride
    return nir.AvgPool2d(kernel_size=np.array(_two(kernel)), stride=np.array(_two(stride)),
                         padding=np.array(_two(padding)))


def integrator(shape, r=1.0) -> nir.I:
    return nir.I(r=np.full(tuple(shape), float(r)))


def graph(nodes: dict, edges: list) -> nir.NIRGraph:
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def chain_to_integrator(in_shape, linear: list, target_shape, r=1.0) -> nir.NIRGraph:
    """Input(in_shape) → linear[0] → … → linear[-1] → I(target_shape, r) → Output.
    ``linear`` is a list of (name, node)."""
    nodes = {"input": inp(in_shape)}
    names = ["input"]
    for name, node in linear:
        nodes[name] = node
        names.append(name)
    nodes["integ"] = integrator(target_shape, r)
    nodes["output"] = out(target_shape)
    names += ["integ", "output"]
    return graph(nodes, list(zip(names[:-1], names[1:])))


def integrated_state(g, events, precision="float64", **kw) -> evsim.Result:
    """Compile g under strict NIR and run the events; the I population feeds the Output, so
    ``Result.output`` is its state (NIR C-order, flat)."""
    model = evsim.load_model(g, profile="nir", precision=precision, **kw)
    return evsim.Simulator(model).run(events)


# --------------------------------------------------------------------------------------------
# Writing files as exporters do
# --------------------------------------------------------------------------------------------


def _has_none(d) -> bool:
    return any(v is None or (isinstance(v, dict) and _has_none(v)) for v in d.values())


def write_nir(path, g: nir.NIRGraph) -> str:
    """Write ``g`` to ``path``. Uses ``nir.write`` unless some field is None (Conv without
    ``input_shape``, Flatten without ``input_type``), which nir.write cannot store: then the
    same layout is written with those datasets left out, which is how such files look."""
    path = str(path)
    if not _has_none(g.to_dict()):
        nir.write(path, g)
        return path
    import h5py

    def rec(group, d):
        for k, v in d.items():
            if v is None:
                continue
            if k == "metadata":
                if v:
                    rec(group.create_group(k), v)
            elif isinstance(v, str):
                group.create_dataset(k, data=v, dtype=h5py.string_dtype())
            elif isinstance(v, dict):
                rec(group.create_group(str(k)), v)
            else:
                group.create_dataset(k, data=v)

    with h5py.File(path, "w") as f:
        f.create_dataset("version", data=nir.version, dtype=h5py.string_dtype())
        rec(f.create_group("node"), g.to_dict())
    return path


def h5_edit(path, fn) -> None:
    """Open a written NIR file for editing with h5py: ``fn(h5py.File)``."""
    import h5py

    with h5py.File(str(path), "r+") as f:
        fn(f)


# --------------------------------------------------------------------------------------------
# SynOps per source spike from the operators' structure (numpy, NIR order)
# --------------------------------------------------------------------------------------------

from evsim.model.linear import ConvOp, DenseOp, ReshapeOp, ScaleOp, as_spatial  # noqa: E402


def _ref_conv_transposed_structure(op: ConvOp, g_out: np.ndarray, nonzero_only: bool) -> np.ndarray:
    """G_in[i] = Σ over the outputs o that input i reaches through a kernel tap (non-zero taps
    only if ``nonzero_only``) of G_out[o]. NIR layout, flat."""
    geo = op.geometry
    c_in, h, w = as_spatial(geo.in_shape)
    c_out, oh, ow = as_spatial(geo.out_shape)
    _, cin_g, kh, kw = geo.weight.shape
    cout_g = c_out // geo.groups
    mask = (geo.weight != 0).astype(np.float64) if nonzero_only else np.ones(geo.weight.shape)
    go = g_out.reshape(c_out, oh, ow)
    g_in = np.zeros((c_in, h, w))
    ys, xs = np.arange(h), np.arange(w)
    for ky in range(kh):
        num = ys + geo.pad_top - ky * geo.dilation[0]
        oky = num // geo.stride[0]
        vy = (num >= 0) & (num % geo.stride[0] == 0) & (oky < oh)
        for kx in range(kw):
            numx = xs + geo.pad_left - kx * geo.dilation[1]
            okx = numx // geo.stride[1]
            vx = (numx >= 0) & (numx % geo.stride[1] == 0) & (okx < ow)
            if not vy.any() or not vx.any():
                continue
            yy, xx = ys[vy], xs[vx]
            sub = go[:, oky[vy]][:, :, okx[vx]]  # (c_out, ny, nx)
            for grp in range(geo.groups):
                m = mask[grp * cout_g:(grp + 1) * cout_g, :, ky, kx]  # (cout_g, cin_g)
                contrib = np.einsum("oc,oyx->cyx", m, sub[grp * cout_g:(grp + 1) * cout_g])
                g_in[grp * cin_g:(grp + 1) * cin_g, yy[:, None], xx[None, :]] += contrib
    return g_in.reshape(-1)


def ref_synops_per_spike(chain: list, dst_size: int) -> np.ndarray:
    """Independent reference for :func:`evsim.kernels.fanout.synops_table`: target additions one
    spike of each source element causes (NIR order), from the NIR operators' structure in numpy: the last engine operator counts every target of its fan-out (zero
    weights included); earlier weighted operators pass through their non-zero weights only.
    Index maps (Flatten, Scale, non-overlapping pools) are folded as in the builder."""
    weighted = [k for k, op in enumerate(chain) if not op.is_index_map]
    last_weighted = weighted[-1] if weighted else None
    trailing_maps = last_weighted is None or last_weighted < len(chain) - 1
    g = np.ones(dst_size)
    for k in range(len(chain) - 1, -1, -1):
        op = chain[k]
        if isinstance(op, ReshapeOp) or isinstance(op, ScaleOp):
            continue  # flat layout unchanged; scales do not change the count
        all_taps = (k == last_weighted) and not trailing_maps
        if isinstance(op, DenseOp):
            w = np.asarray(op.weight)
            g = np.full(w.shape[1], g.sum()) if all_taps else (w != 0).T.astype(np.float64) @ g
        elif isinstance(op, ConvOp):
            g = _ref_conv_transposed_structure(op, g, nonzero_only=not all_taps and not op.is_index_map)
        else:  # unknown operator: structure from its dense matrix
            n_in = int(np.prod(op.in_shape))
            mat = np.asarray(op.apply(np.eye(n_in).reshape((n_in,) + tuple(op.in_shape)), with_bias=False)).reshape(n_in, -1)
            g = (mat != 0).astype(np.float64) @ g
    return g

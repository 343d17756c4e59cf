"""Linear (synaptic) operators: Affine/Linear, Conv1d/Conv2d, SumPool2d/AvgPool2d, Flatten, Scale.

Each NIR linear node becomes one small operator object with its geometry, a dense numpy
``apply`` (used for bias propagation, the clock-driven mode and as a readable reference), and the
information the builder needs to encode it for the event engine. Shapes are NIR shapes without
batch: (C, H, W) for 2-D maps, (C, L) for 1-D maps, (N,) for vectors.

Engine layout. The event engine stores every (C, H, W) tensor channel-last, index
``(y*W + x)*C + c``, so that one kernel offset of a convolution touches all output channels of a
position contiguously; (C, L) tensors are stored ``l*C + c``; vectors as they are.
:func:`engine_to_nir` gives the permutation between the two.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from ..errors import ModelError


# --------------------------------------------------------------------------------------------
# Layout
# --------------------------------------------------------------------------------------------


def engine_to_nir(shape: tuple) -> np.ndarray:
    """Permutation p with ``nir_flat[p[e]] = engine[e]``: engine index -> NIR (C-order) flat index
    (read-only: one array per shape, kept, since every result converts its output with it)."""
    return _engine_to_nir(tuple(int(s) for s in shape))


@functools.lru_cache(maxsize=256)
def _engine_to_nir(shape: tuple) -> np.ndarray:
    p = _permutation(shape)
    p.flags.writeable = False
    return p


def _permutation(shape: tuple) -> np.ndarray:
    n = int(np.prod(shape))
    if len(shape) == 3:
        c, h, w = shape
        return np.arange(n, dtype=np.int64).reshape(c, h, w).transpose(1, 2, 0).ravel()
    if len(shape) == 2:
        c, length = shape
        return np.arange(n, dtype=np.int64).reshape(c, length).T.ravel()
    return np.arange(n, dtype=np.int64)


def nir_to_engine(shape: tuple) -> np.ndarray:
    """Inverse of :func:`engine_to_nir`: NIR flat index -> engine index."""
    p = engine_to_nir(shape)
    inv = np.empty_like(p)
    inv[p] = np.arange(p.size, dtype=np.int64)
    return inv


def to_engine_order(values: np.ndarray, shape: tuple) -> np.ndarray:
    """Reorder a per-element array given in NIR order (any shape with prod(shape) elements)."""
    return np.asarray(values).reshape(-1)[engine_to_nir(shape)]


def to_nir_order(values: np.ndarray, shape: tuple) -> np.ndarray:
    """Reorder a per-element array given in engine order back to NIR (C-order) flat order."""
    out = np.empty_like(np.asarray(values).reshape(-1))
    out[engine_to_nir(shape)] = np.asarray(values).reshape(-1)
    return out


def as_spatial(shape: tuple) -> tuple:
    """(C, H, W) for a 2-D map, (C, 1, L) for a 1-D map: the geometry the engine works in."""
    if len(shape) == 3:
        return tuple(shape)
    if len(shape) == 2:
        return (shape[0], 1, shape[1])
    raise ValueError(f"not a spatial shape: {shape}")


# --------------------------------------------------------------------------------------------
# Geometry of convolutions and pools
# --------------------------------------------------------------------------------------------


def _pair(value, name: str, node: str, path, n: int = 2) -> tuple:
    arr = np.atleast_1d(np.asarray(value)).ravel()
    if arr.size == 1:
        arr = np.repeat(arr, n)
    if arr.size != n:
        raise ModelError(f"'{name}' must have {n} values, got {arr.tolist()}", node=node, path=path)
    if np.any(arr != np.round(arr)):
        raise ModelError(f"'{name}' must be integers, got {arr.tolist()}", node=node, path=path)
    return tuple(int(v) for v in arr)


@dataclass
class ConvGeometry:
    """A 2-D convolution (Conv1d is the special case H = 1), PyTorch semantics.

    ``out[co, oy, ox] = bias[co] + sum_{ci, ky, kx} weight[co, ci, ky, kx] *
    in[g*Cin_g + ci, oy*sy - pad_top + ky*dy, ox*sx - pad_left + kx*dx]`` with ``g = co // Cout_g``
    and zero outside the input.
    """

    in_shape: tuple  # NIR shape arriving: (C, H, W) or (C, L)
    out_shape: tuple  # NIR shape leaving: (Cout, OH, OW) or (Cout, OL)
    weight: np.ndarray  # (Cout, Cin/groups, KH, KW)
    bias: np.ndarray  # (Cout,)
    stride: tuple
    pad_top: int
    pad_left: int
    pad_bottom: int
    pad_right: int
    dilation: tuple
    groups: int


def conv_geometry(node, kind: str, shape_in: tuple, name: str, path) -> ConvGeometry:
    """Validate a Conv1d/Conv2d node against the shape arriving at it and resolve its geometry
    ('same'/'valid'/integer padding, int-or-pair stride and dilation)."""
    weight = np.asarray(node.weight, dtype=np.float64)
    one_d = kind == "Conv1d"
    if one_d:
        if weight.ndim != 3:
            raise ModelError(f"Conv1d weight must be (Cout, Cin/groups, K), got {weight.shape}", node=name, path=path)
        if len(shape_in) != 2:
            raise ModelError(f"Conv1d takes (C, L) input, got {shape_in}", node=name, path=path)
        weight = weight[:, :, None, :]
    else:
        if weight.ndim != 4:
            raise ModelError(f"Conv2d weight must be (Cout, Cin/groups, KH, KW), got {weight.shape}", node=name, path=path)
        if len(shape_in) != 3:
            raise ModelError(f"Conv2d takes (C, H, W) input, got {shape_in}", node=name, path=path)
    c_in, h, w = as_spatial(shape_in)
    groups = int(np.asarray(node.groups).ravel()[0]) if np.size(node.groups) else 1
    c_out, cin_g, kh, kw = weight.shape
    if groups < 1 or c_in % groups or c_out % groups or cin_g * groups != c_in:
        raise ModelError(
            f"weight {tuple(node.weight.shape)} with groups={groups} does not fit {c_in} input channels",
            node=name,
            path=path,
        )
    n_spatial = 1 if one_d else 2
    stride = _pair(node.stride, "stride", name, path, n_spatial)
    dilation = _pair(node.dilation, "dilation", name, path, n_spatial)
    if one_d:
        stride, dilation = (1, stride[0]), (1, dilation[0])
    if min(stride) < 1 or min(dilation) < 1:
        raise ModelError(f"stride {stride} and dilation {dilation} must be >= 1", node=name, path=path)
    padding = node.padding
    if isinstance(padding, bytes):
        padding = padding.decode()
    if isinstance(padding, np.ndarray) and padding.dtype.kind in "SUO":
        padding = str(padding.ravel()[0].decode() if isinstance(padding.ravel()[0], bytes) else padding.ravel()[0])
    if isinstance(padding, str):
        if padding == "valid":
            pads = (0, 0, 0, 0)
        elif padding == "same":
            if stride != (1, 1):
                raise ModelError("padding='same' needs stride 1 (as in PyTorch)", node=name, path=path)
            total_y, total_x = dilation[0] * (kh - 1), dilation[1] * (kw - 1)
            pads = (total_y // 2, total_x // 2, total_y - total_y // 2, total_x - total_x // 2)
        else:
            raise ModelError(f"padding must be 'same', 'valid' or integers, got '{padding}'", node=name, path=path)
    else:
        pad = _pair(padding, "padding", name, path, n_spatial)
        if one_d:
            pad = (0, pad[0])
        if min(pad) < 0:
            raise ModelError(f"negative padding {pad}", node=name, path=path)
        pads = (pad[0], pad[1], pad[0], pad[1])
    if node.input_shape is not None and np.size(node.input_shape):
        declared = tuple(int(v) for v in np.atleast_1d(np.asarray(node.input_shape)).ravel())
        actual = (w,) if one_d else (h, w)
        if declared != actual:
            raise ModelError(f"input_shape {declared} but the input arriving is {actual}", node=name, path=path)
    oh = (h + pads[0] + pads[2] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (w + pads[1] + pads[3] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    if oh < 1 or ow < 1:
        raise ModelError(f"kernel {kh}x{kw} does not fit input {h}x{w} with this padding", node=name, path=path)
    bias = np.zeros(c_out) if getattr(node, "bias", None) is None else np.asarray(node.bias, dtype=np.float64).ravel()
    if bias.size == 1 and c_out != 1:
        bias = np.repeat(bias, c_out)
    if bias.size != c_out:
        raise ModelError(f"bias has {bias.size} values for {c_out} output channels", node=name, path=path)
    out_shape = (c_out, ow) if one_d else (c_out, oh, ow)
    return ConvGeometry(tuple(shape_in), out_shape, weight, bias, stride, pads[0], pads[1], pads[2], pads[3], dilation, groups)


def pool_geometry(node, kind: str, shape_in: tuple, name: str, path) -> ConvGeometry:
    """A SumPool2d/AvgPool2d as a depthwise convolution with a constant kernel (1, or 1/(kh*kw)
    for AvgPool2d, PyTorch's default count_include_pad=True)."""
    if len(shape_in) != 3:
        raise ModelError(f"{kind} takes (C, H, W) input, got {shape_in}", node=name, path=path)
    kh, kw = _pair(node.kernel_size, "kernel_size", name, path)
    stride = getattr(node, "stride", None)
    stride = (kh, kw) if stride is None or np.size(stride) == 0 else _pair(stride, "stride", name, path)
    padding = getattr(node, "padding", None)
    pad = (0, 0) if padding is None or np.size(padding) == 0 else _pair(padding, "padding", name, path)
    if min(kh, kw, *stride) < 1 or min(pad) < 0:
        raise ModelError(f"invalid kernel {kh, kw}, stride {stride} or padding {pad}", node=name, path=path)
    c, h, w = shape_in
    oh = (h + 2 * pad[0] - kh) // stride[0] + 1
    ow = (w + 2 * pad[1] - kw) // stride[1] + 1
    if oh < 1 or ow < 1:
        raise ModelError(f"kernel {kh}x{kw} does not fit input {h}x{w}", node=name, path=path)
    value = 1.0 if kind == "SumPool2d" else 1.0 / (kh * kw)
    weight = np.full((c, 1, kh, kw), value)
    return ConvGeometry(tuple(shape_in), (c, oh, ow), weight, np.zeros(c), stride, pad[0], pad[1], pad[0], pad[1], (1, 1), c)


# --------------------------------------------------------------------------------------------
# Operators
# --------------------------------------------------------------------------------------------


class LinearOp:
    """Base class. ``apply(x)`` maps a batch ``(..., *in_shape)`` to ``(..., *out_shape)``."""

    in_shape: tuple
    out_shape: tuple
    name: str

    def apply(self, x: np.ndarray, with_bias: bool = True) -> np.ndarray:
        raise NotImplementedError

    def constant_output(self, x_const: np.ndarray) -> np.ndarray:
        """Output for a constant input (used to propagate biases to the neurons)."""
        return self.apply(x_const, with_bias=True)

    @property
    def is_index_map(self) -> bool:
        """True when every input element reaches at most one output element (no real weights)."""
        return False


@dataclass
class DenseOp(LinearOp):
    """Affine / Linear: ``y = W x + b`` with W of shape (out, in)."""

    name: str
    weight: np.ndarray
    bias: np.ndarray | None

    @property
    def in_shape(self):
        return (self.weight.shape[1],)

    @property
    def out_shape(self):
        return (self.weight.shape[0],)

    def apply(self, x, with_bias=True):
        y = x @ self.weight.T
        if with_bias and self.bias is not None:
            y = y + self.bias
        return y


@dataclass
class ConvOp(LinearOp):
    """Conv1d / Conv2d / SumPool2d / AvgPool2d: see :class:`ConvGeometry`."""

    name: str
    geometry: ConvGeometry
    has_bias: bool = True

    @property
    def in_shape(self):
        return self.geometry.in_shape

    @property
    def out_shape(self):
        return self.geometry.out_shape

    @property
    def is_index_map(self) -> bool:
        """A pool whose windows do not overlap and have no padding sends each input to at most
        one output: the builder encodes it as an index map with a scale."""
        g = self.geometry
        kh, kw = g.weight.shape[2:]
        return (
            g.groups == g.weight.shape[0] == as_spatial(g.in_shape)[0]
            and g.weight.shape[1] == 1
            and (kh, kw) == g.stride
            and g.dilation == (1, 1)
            and g.pad_top == g.pad_left == g.pad_bottom == g.pad_right == 0
            and np.all(g.weight == g.weight.flat[0])
        )

    def apply(self, x, with_bias=True):
        g = self.geometry
        c_in, h, w = as_spatial(g.in_shape)
        batch = x.shape[: x.ndim - len(g.in_shape)]
        xs = x.reshape((-1, c_in, h, w))
        c_out, cin_g, kh, kw = g.weight.shape
        cout_g = c_out // g.groups
        oc, oh, ow = as_spatial(g.out_shape)
        xp = np.zeros((xs.shape[0], c_in, h + g.pad_top + g.pad_bottom, w + g.pad_left + g.pad_right), dtype=np.result_type(x, np.float32))
        xp[:, :, g.pad_top:g.pad_top + h, g.pad_left:g.pad_left + w] = xs
        out = np.zeros((xs.shape[0], c_out, oh, ow), dtype=xp.dtype)
        sy, sx = g.stride
        dy, dx = g.dilation
        weight = g.weight.astype(xp.dtype, copy=False)
        for grp in range(g.groups):
            cin_slice = slice(grp * cin_g, (grp + 1) * cin_g)
            cout_slice = slice(grp * cout_g, (grp + 1) * cout_g)
            for ky in range(kh):
                for kx in range(kw):
                    patch = xp[:, cin_slice, ky * dy: ky * dy + sy * (oh - 1) + 1: sy, kx * dx: kx * dx + sx * (ow - 1) + 1: sx]
                    out[:, cout_slice] += np.einsum("bchw,oc->bohw", patch, weight[cout_slice, :, ky, kx], optimize=True)
        if with_bias and self.has_bias:
            out += g.bias.astype(out.dtype)[None, :, None, None]
        return out.reshape(batch + tuple(g.out_shape))


@dataclass
class ReshapeOp(LinearOp):
    """Flatten (or any C-order reshape between a producer and a consumer): no arithmetic."""

    name: str
    in_shape: tuple
    out_shape: tuple

    @property
    def is_index_map(self) -> bool:
        return True

    def apply(self, x, with_bias=True):
        return x.reshape(x.shape[: x.ndim - len(self.in_shape)] + tuple(self.out_shape))


@dataclass
class ScaleOp(LinearOp):
    """Scale: elementwise ``y = s * x`` (s broadcast to the input shape)."""

    name: str
    in_shape: tuple
    scale: np.ndarray

    @property
    def out_shape(self):
        return self.in_shape

    @property
    def is_index_map(self) -> bool:
        return True

    def apply(self, x, with_bias=True):
        return x * self.scale


def max_targets(op: LinearOp) -> int:
    """Upper bound on how many outputs one input element reaches (for buffer sizing)."""
    if isinstance(op, DenseOp):
        return op.weight.shape[0]
    if isinstance(op, ConvOp):
        g = op.geometry
        c_out, _, kh, kw = g.weight.shape
        return (c_out // g.groups) * kh * kw
    return 1

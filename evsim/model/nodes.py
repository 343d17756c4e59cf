"""NIR node types: what evsim knows about each one, in one place.

A registry in the manner of Nengo's builder: one :class:`NodeType` entry per NIR type says its
role (input/output, neuron, linear, delay, passthrough, subgraph), the checks of its parameters
beyond the ones every node gets (:func:`evsim.model.validate.check_node`), the input shape it
insists on, its output shape, and for a linear node the operator evsim builds
(:mod:`evsim.model.linear`). Shape inference (:mod:`evsim.model.graph`), validation and the
builder read this table instead of testing type names; a new node type is a new entry here.
(How each exporter's neuron parameters are read is per profile: :mod:`evsim.model.profiles`.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import ModelError
from .linear import ConvOp, DenseOp, ReshapeOp, ScaleOp, conv_geometry, pool_geometry
from .validate import _check_integers, _check_shape, _is_text


@dataclass(frozen=True)
class NodeType:
    """What evsim knows about one NIR node type.

    Attributes:
        name: the NIR type name.
        role: "io", "neuron", "linear", "delay", "passthrough" or "subgraph".
        check: ``check(kind, node, name, path)``: this type's parameter checks.
        input_shape: ``input_shape(kind, node)``: the input shape it insists on (None: it adapts).
        output_shape: ``output_shape(kind, node, shape_in, name, path, graph)`` (None: the input shape).
        make_op: ``make_op(kind, node, name, shape_in, shape_out, path)``: its linear operator.
        positive: parameters that are time constants (must be > 0).
        required_rank: the rank of the input map it needs (convolutions, pools), else None.
        text_padding: its ``padding`` may be text ('same' / 'valid').
    """

    name: str
    role: str
    check: Callable | None = None
    input_shape: Callable | None = None
    output_shape: Callable | None = None
    make_op: Callable | None = None
    positive: tuple = ()
    required_rank: int | None = None
    text_padding: bool = False


# --------------------------------------------------------------------------------------------
# Input, Delay
# --------------------------------------------------------------------------------------------


def _check_input(kind, node, name, path):
    input_type = getattr(node, "input_type", None)
    _check_shape(input_type.get("input") if isinstance(input_type, dict) else None, "input_type['input']", name, path)


#: the shortest delay a Delay node may hold besides 0, seconds (a nanosecond, as --dt-us and
#: --recurrent-delay-us): a recurrent loop of 1e-300 s runs the processing budget out at t ≈ 0
MIN_DELAY_S = 1e-9


def _check_delay(kind, node, name, path):
    if getattr(node, "delay", None) is None:
        return
    delay = np.asarray(node.delay, dtype=np.float64)
    if np.any(delay < 0):
        raise ModelError("parameter 'delay' must be >= 0 (negative delay)", node=name, path=path)
    tiny = delay[(delay > 0) & (delay < MIN_DELAY_S)]
    if tiny.size:
        raise ModelError(f"parameter 'delay' holds {tiny[0]:g} s: a delay is 0 or at least a nanosecond (1e-09 s)",
                         node=name, path=path)


# --------------------------------------------------------------------------------------------
# Affine, Linear
# --------------------------------------------------------------------------------------------


def _check_dense(kind, node, name, path):
    if getattr(node, "weight", None) is not None:
        weight = np.asarray(node.weight)
        if weight.ndim != 2:
            raise ModelError(f"weight must be 2-D (out, in), got shape {weight.shape}", node=name, path=path)
        if weight.size == 0:
            raise ModelError(f"weight of shape {weight.shape} is empty", node=name, path=path)


def _dense_input_shape(kind, node):
    return (int(np.asarray(node.weight).shape[-1]),)


def _dense_output_shape(kind, node, shape_in, name, path, graph):
    w = np.asarray(node.weight)
    if w.ndim != 2:
        raise ModelError(f"{kind} weight must be 2-D (out, in), got shape {w.shape}", node=name, path=path)
    bias_shape = tuple(int(s) for s in np.shape(node.bias)) if kind == "Affine" else ()
    if kind == "Affine" and bias_shape not in ((w.shape[0],), (), (1,)):
        raise ModelError(f"bias shape {bias_shape} does not match {w.shape[0]} outputs", node=name, path=path)
    return (int(w.shape[0]),)


def _dense_op(kind, node, name, shape_in, shape_out, path):
    weight = np.asarray(node.weight, dtype=np.float64)
    bias = None
    if kind == "Affine":
        bias = np.asarray(node.bias, dtype=np.float64).ravel()
        if bias.size == 1 and weight.shape[0] != 1:
            bias = np.repeat(bias, weight.shape[0])
    return DenseOp(name, weight, bias)


# --------------------------------------------------------------------------------------------
# Conv1d, Conv2d, SumPool2d, AvgPool2d
# --------------------------------------------------------------------------------------------


def _check_conv(kind, node, name, path):
    weight = np.asarray(node.weight)
    if weight.size == 0 or min(weight.shape, default=0) < 1:
        raise ModelError(f"weight of shape {weight.shape} has an empty dimension (kernel >= 1 needed)",
                         node=name, path=path)
    for attr, low in (("stride", 1), ("dilation", 1), ("groups", 1), ("padding", 0)):
        value = getattr(node, attr, None)
        if value is not None and not (attr == "padding" and _is_text(value)):
            _check_integers(value, attr, low, name, path)
    if getattr(node, "input_shape", None) is not None and np.size(node.input_shape):
        _check_shape(node.input_shape, "input_shape", name, path)


def _conv_output_shape(kind, node, shape_in, name, path, graph):
    return conv_geometry(node, kind, shape_in, name, path).out_shape


def _conv_op(kind, node, name, shape_in, shape_out, path):
    return ConvOp(name, conv_geometry(node, kind, shape_in, name, path), has_bias=True)


def _check_pool(kind, node, name, path):
    if getattr(node, "kernel_size", None) is not None:
        _check_integers(node.kernel_size, "kernel_size", 1, name, path)
        for attr, low in (("stride", 1), ("padding", 0)):
            value = getattr(node, attr, None)
            if value is not None and np.size(value):
                _check_integers(value, attr, low, name, path)


def _pool_output_shape(kind, node, shape_in, name, path, graph):
    return pool_geometry(node, kind, shape_in, name, path).out_shape


def _pool_op(kind, node, name, shape_in, shape_out, path):
    return ConvOp(name, pool_geometry(node, kind, shape_in, name, path), has_bias=False)


# --------------------------------------------------------------------------------------------
# Flatten, Scale
# --------------------------------------------------------------------------------------------


def _check_flatten(kind, node, name, path):
    for attr in ("start_dim", "end_dim"):
        if getattr(node, attr, None) is not None:
            _check_integers(getattr(node, attr), attr, None, name, path)


def _flatten_output_shape(kind, node, shape_in, name, path, graph):
    """Flatten is a C-order reshape. Exporters disagree whether start_dim counts the batch
    dimension, so when every consumer wants a flat vector of the same size (or adapts to any
    shape), flatten fully; when a consumer needs a map of a given rank (Conv1d (C, L), Conv2d and
    pools (C, H, W)), follow start_dim/end_dim on the batchless shape, or on the batchful one
    (start_dim − 1) when only that gives the rank needed."""
    n = int(np.prod(shape_in))
    consumers = graph.successors(name)
    wants_flat = [expected_input_shape(graph.nodes[c], graph.type_of(c)) for c in consumers]
    ranks = {NODE_TYPES[graph.type_of(c)].required_rank for c in consumers
             if graph.type_of(c) in NODE_TYPES and NODE_TYPES[graph.type_of(c)].required_rank is not None}
    if consumers and not ranks and all(w is None or w == (n,) for w in wants_flat):
        return (n,)
    rank = len(shape_in)

    def flattened(start: int, end: int):
        start = start + rank if start < 0 else start
        end = end + rank if end < 0 else end
        if not (0 <= start <= end < rank):
            return None
        return shape_in[:start] + (int(np.prod(shape_in[start:end + 1])),) + shape_in[end + 1:]

    start, end = int(node.start_dim), int(node.end_dim)
    batchless = flattened(start, end)
    if ranks:
        batchful = flattened(start - 1, end - 1 if end >= 0 else end) if start >= 1 else None
        for candidate in (batchless, batchful):
            if candidate is not None and {len(candidate)} == ranks:
                return candidate
    return batchless if batchless is not None else (n,)


def _flatten_op(kind, node, name, shape_in, shape_out, path):
    return ReshapeOp(name, tuple(shape_in), tuple(shape_out))


def _scale_op(kind, node, name, shape_in, shape_out, path):
    scale = np.asarray(node.scale, dtype=np.float64)
    if scale.size == int(np.prod(shape_in)):
        scale = scale.reshape(shape_in)
    try:
        scale = np.broadcast_to(scale, shape_in).copy()
    except ValueError:
        raise ModelError(f"scale of shape {scale.shape} does not fit input {shape_in}", node=name, path=path) from None
    return ScaleOp(name, tuple(shape_in), scale)


# --------------------------------------------------------------------------------------------
# The registry (in the order the "supported types" message lists them)
# --------------------------------------------------------------------------------------------

_DENSE = dict(role="linear", check=_check_dense, input_shape=_dense_input_shape, output_shape=_dense_output_shape,
              make_op=_dense_op)
_CONV = dict(role="linear", check=_check_conv, output_shape=_conv_output_shape, make_op=_conv_op, text_padding=True)
_POOL = dict(role="linear", check=_check_pool, output_shape=_pool_output_shape, make_op=_pool_op, required_rank=3)

NODE_TYPES: dict = {t.name: t for t in (
    NodeType("Input", "io", check=_check_input),
    NodeType("Output", "io"),
    NodeType("Delay", "delay", check=_check_delay),
    NodeType("NIRGraph", "subgraph"),
    NodeType("I", "neuron"),
    NodeType("IF", "neuron"),
    NodeType("LI", "neuron", positive=("tau",)),
    NodeType("LIF", "neuron", positive=("tau",)),
    NodeType("CubaLI", "neuron", positive=("tau_mem", "tau_syn")),
    NodeType("CubaLIF", "neuron", positive=("tau_mem", "tau_syn")),
    NodeType("Affine", **_DENSE),
    NodeType("Linear", **_DENSE),
    NodeType("Conv1d", **_CONV, required_rank=2),
    NodeType("Conv2d", **_CONV, required_rank=3),
    NodeType("SumPool2d", **_POOL),
    NodeType("AvgPool2d", **_POOL),
    NodeType("Flatten", "linear", check=_check_flatten, output_shape=_flatten_output_shape, make_op=_flatten_op),
    NodeType("Scale", "linear", make_op=_scale_op),
    NodeType("Passthrough", "passthrough"),
)}

NEURON_TYPES = tuple(k for k, t in NODE_TYPES.items() if t.role == "neuron")
LINEAR_TYPES = tuple(k for k, t in NODE_TYPES.items() if t.role == "linear")
#: every type a graph may hold (Passthrough is allowed too, but not listed to users)
SUPPORTED_TYPES = tuple(k for k, t in NODE_TYPES.items() if t.role != "passthrough")


def expected_input_shape(node, kind: str):
    """The input shape a node insists on, or None when it adapts to what arrives (neurons, Scale
    and Delay take the arriving shape; their parameters must broadcast to it)."""
    t = NODE_TYPES.get(kind)
    return t.input_shape(kind, node) if t is not None and t.input_shape is not None else None


def output_shape(node, kind: str, shape_in: tuple, name: str, path, graph) -> tuple:
    """Output shape of a node given the shape arriving at it."""
    t = NODE_TYPES.get(kind)
    if t is None or kind in ("Input", "NIRGraph"):  # (Input: its own shape; subgraphs: flattened first)
        raise ModelError(f"unsupported NIR node type '{kind}'", node=name, path=path)
    return shape_in if t.output_shape is None else t.output_shape(kind, node, shape_in, name, path, graph)


def make_op(node, kind: str, name: str, shape_in: tuple, shape_out: tuple, path):
    """Build the operator for a NIR linear node (shapes from :func:`evsim.model.graph.infer_shapes`)."""
    t = NODE_TYPES.get(kind)
    if t is None or t.make_op is None:
        raise ModelError(f"not a linear node type '{kind}'", node=name, path=path)
    return t.make_op(kind, node, name, shape_in, shape_out, path)

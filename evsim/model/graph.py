"""Reading NIR graphs as exporters really write them, and inferring their shapes.

This module owns the *graph* concept: it reads a NIR file (or takes a ``nir.NIRGraph``), flattens
nested subgraphs into one namespace of dotted names, checks every node type and parameter, orders
the nodes topologically (marking the edges that close a cycle) and infers every node's shape.
Nothing here knows about the engine; :mod:`evsim.compile.builder` turns the result into flat arrays.

Exporter quirks handled here (each is tested in ``tests/test_graph.py``):

* edges stored in any order (the order never matters; cycles are broken deterministically);
* ``Flatten`` written batchless (``start_dim=0``) or with the batch dimension counted
  (``start_dim=1``) and with a missing or placeholder ``input_type``: a Flatten is a C-order
  reshape, so its output shape is whatever its consumer needs when the element counts agree;
* ``Conv1d``/``Conv2d`` with or without ``input_shape``;
* ``IF``/``LIF``/``CubaLIF`` without ``v_reset`` (older files; default 0);
* neuron parameters given per neuron, per channel-less scalar, or as 1-element arrays;
* Input shapes with leading singleton (batch) dimensions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ModelError, shown
from .nodes import NEURON_TYPES, SUPPORTED_TYPES, expected_input_shape, output_shape  # noqa: F401,E501
from .validate import check_node, check_node_dict, check_sizes, check_stored_sizes

# (what each node type means, its checks, shapes and operator: evsim.model.nodes.NODE_TYPES)


class Passthrough:
    """Stands for the Input/Output node of a nested subgraph once it is flattened: an identity."""

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f"Passthrough({self.name!r})"


@dataclass
class Graph:
    """A flattened, validated NIR graph.

    Attributes:
        nodes: node name -> NIR node (or :class:`Passthrough`), names of nested nodes dotted.
        edges: (source, target) pairs, each once (a repeated edge is refused), in a deterministic
            order.
        input_name, output_name: the graph's single Input and Output node.
        order: nodes in topological order (ignoring back edges), starting at the Input.
        back_edges: edges that close a cycle (they carry the recurrent delay).
        shapes: node name -> output shape (tuple of ints).
        input_shapes: node name -> shape arriving at the node (tuple of ints).
        path: the file the graph came from, for error messages.
    """

    nodes: dict
    edges: list
    input_name: str
    output_name: str
    order: list = field(default_factory=list)
    back_edges: set = field(default_factory=set)
    shapes: dict = field(default_factory=dict)
    input_shapes: dict = field(default_factory=dict)
    path: str | None = None

    def type_of(self, name: str) -> str:
        return node_type(self.nodes[name])

    def predecessors(self, name: str) -> list:
        return [s for s, d in self.edges if d == name]

    def successors(self, name: str) -> list:
        return [d for s, d in self.edges if s == name]


def node_type(node) -> str:
    if isinstance(node, Passthrough):
        return "Passthrough"
    return type(node).__name__


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def read_nir(path) -> "object":
    """Read a NIR HDF5 file into a ``nir.NIRGraph`` without nir's own type check.

    nir's type check rejects files real exporters write (placeholder Flatten types, Conv without
    ``input_shape``); evsim infers shapes itself in :func:`infer_shapes`. Every node is
    constructed separately so that a bad node is reported by name.

    Raises:
        ModelError: the file is missing, not HDF5, not a NIR graph, or holds an unknown node.
    """
    import h5py
    import nir
    from nir.serialization import hdf2dict

    path = str(path)
    if not Path(path).is_file():
        raise ModelError("not a regular file" if Path(path).exists() else "no such file", path=path)
    try:
        with h5py.File(path, "r") as f:
            if "node" not in f:
                raise ModelError("not a NIR file (no 'node' group)", path=path)
            check_stored_sizes(f, path)  # before any array is read into memory
            data = hdf2dict(f["node"])
    except ModelError:
        raise
    except Exception as exc:  # h5py raises OSError and friends for non-HDF5 input
        raise ModelError(f"cannot read as NIR/HDF5 ({_one_line(exc)})", path=path) from None

    def build(d: dict, name: str):
        kind = d.get("type")
        if isinstance(kind, bytes):
            kind = kind.decode()
        if kind is None:  # e.g. what nir.write leaves behind when it fails part-way
            raise ModelError("no node type stored: an incomplete or damaged NIR file", node=name or "<root>",
                             path=path)
        if kind not in SUPPORTED_TYPES:
            raise ModelError(
                f"unsupported NIR node type '{kind}' (supported: {', '.join(SUPPORTED_TYPES)})",
                node=name or "<root>",
                path=path,
            )
        if kind == "NIRGraph":
            if "nodes" not in d or "edges" not in d:
                raise ModelError("subgraph without nodes or edges", node=name or "<root>", path=path)
            children = {
                str(k): build(v, f"{name}.{k}" if name else str(k)) for k, v in d["nodes"].items()
            }
            edges = _decode_edges(d["edges"], name, path)
            return nir.NIRGraph(nodes=children, edges=edges, type_check=False)
        d = dict(d)
        check_node_dict(d, kind, name, path)  # name a bad parameter before nir's constructor trips
        if kind in ("Conv1d", "Conv2d"):
            # nir.write cannot store input_shape=None, so such files simply lack the dataset;
            # nir's dict2NIRNode then fails on the missing argument
            d.setdefault("input_shape", None)
        try:
            return nir.dict2NIRNode(d)
        except Exception as exc:
            if kind == "Flatten" and d.get("input_type") is not None:
                # nir computes the output type from input_type, start_dim and end_dim and trips when
                # they disagree; evsim checks all three against the shape that arrives (infer_shapes),
                # with a message naming which one is wrong
                declared = d.pop("input_type")
                if isinstance(declared, dict):  # (nir's from_dict wraps it in place)
                    declared = declared.get("input")
                try:
                    node = nir.dict2NIRNode(d)
                except Exception:
                    pass
                else:
                    node.input_type = {"input": declared}
                    return node
            raise ModelError(f"malformed {kind} node ({_one_line(exc)})", node=name, path=path) from None

    return build(data, "")


def _decode_edges(raw, name: str, path: str) -> list:
    try:
        edges = []
        for pair in np.asarray(raw).reshape(-1, 2) if np.size(raw) else []:
            a, b = (x.decode() if isinstance(x, bytes) else str(x) for x in pair)
            edges.append((a, b))
        return edges
    except Exception as exc:
        raise ModelError(f"malformed edge list ({_one_line(exc)})", node=name or "<root>", path=path) from None


def _one_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


# --------------------------------------------------------------------------------------------
# Flattening nested subgraphs
# --------------------------------------------------------------------------------------------


def flatten_graph(graph, path: str | None = None) -> tuple[dict, list]:
    """Flatten nested ``NIRGraph`` nodes into one namespace.

    A node ``lif`` inside subgraph ``rec`` becomes ``rec.lif``; the subgraph's own Input/Output
    nodes become :class:`Passthrough` identities. An edge endpoint naming a subgraph (``rec``)
    means its single Input (as a target) or Output (as a source); ``rec.x`` names node ``x`` of it
    (snnTorch also writes inner keys that already carry the prefix, ``rec.lif`` inside ``rec``;
    both spellings resolve).
    """
    import nir

    nodes: dict = {}
    edges: list = []

    def join(prefix: str, key: str) -> str:
        """Flattened name of ``key`` inside the subgraph named by ``prefix``; inner keys that
        already carry the prefix (``rec.lif`` inside ``rec``) keep their name."""
        return key if prefix and key.startswith(prefix) else f"{prefix}{key}"

    def resolve(container: dict, prefix: str, endpoint: str, as_source: bool) -> str:
        """Return the flattened name an endpoint of an edge in ``container`` refers to."""
        if endpoint in container:
            node = container[endpoint]
            full = join(prefix, endpoint)
            if isinstance(node, nir.NIRGraph):
                wanted = nir.Output if as_source else nir.Input
                ends = [k for k, n in node.nodes.items() if isinstance(n, wanted)]
                if len(ends) != 1:
                    raise ModelError(
                        f"edge endpoint names subgraph with {len(ends)} "
                        f"{'Output' if as_source else 'Input'} nodes; name one explicitly",
                        node=full,
                        path=path,
                    )
                return resolve(node.nodes, f"{full}.", ends[0], as_source)
            return full
        # dotted reference into a subgraph: 'sub.inner' (or inner keys that repeat the prefix)
        for key, node in container.items():
            if isinstance(node, nir.NIRGraph) and endpoint.startswith(f"{key}."):
                rest = endpoint[len(key) + 1:]
                for candidate in (rest, endpoint):
                    if candidate in node.nodes:
                        return resolve(node.nodes, f"{join(prefix, key)}.", candidate, as_source)
        raise ModelError(f"edge refers to unknown node '{endpoint}'", node=prefix.rstrip(".") or None, path=path)

    def visit(container: dict, raw_edges: list, prefix: str, top: bool) -> None:
        for key, node in container.items():
            full = join(prefix, key)
            if full in nodes:
                raise ModelError("two nodes of the graph flatten to the same name", node=full, path=path)
            if isinstance(node, nir.NIRGraph):
                visit(node.nodes, node.edges, f"{full}.", False)
            elif not top and isinstance(node, (nir.Input, nir.Output)):
                nodes[full] = Passthrough(full)
            else:
                nodes[full] = node
        for src, dst in raw_edges:
            edges.append((resolve(container, prefix, str(src), True), resolve(container, prefix, str(dst), False)))

    if not isinstance(graph, nir.NIRGraph):
        raise ModelError(f"expected a NIRGraph, got {type(graph).__name__}", path=path)
    visit(graph.nodes, graph.edges, "", True)
    # A repeated edge is refused: NIR edges are identity connections and nir itself (NIRGraph's
    # structure check, nir >= 1.0.8) rejects a duplicate, while simulators differ (NIRTorch and the
    # NIR paper's Lava converter keep one, inputs into one node otherwise add up): reading it as one
    # connection or as double input would both be a guess (SEMANTICS §5.1).
    counts: dict = {}
    for e in edges:
        counts[e] = counts.get(e, 0) + 1
    for (src, dst), n in counts.items():
        if n > 1:
            times = "twice" if n == 2 else f"{n} times"
            raise ModelError(f"edge '{src}' -> '{dst}' appears {times}; evsim does not guess whether that "
                             f"means one connection or double input", node=dst, path=path)
    # a deterministic order independent of how the file stored them
    return nodes, sorted(counts)


# --------------------------------------------------------------------------------------------
# Validation, ordering and shapes
# --------------------------------------------------------------------------------------------


def load_graph(source, nir_graph=None) -> Graph:
    """Load a NIR graph (path or ``nir.NIRGraph``), flatten, validate, order and infer shapes.
    ``nir_graph``: the file ``source`` read already (:func:`read_nir`), not read again.

    Raises:
        ModelError: naming the node for an unknown type, a parameter that is not a finite real
            number or out of its domain (:mod:`evsim.model.validate`), a shape mismatch, a tensor
            above :data:`evsim.model.validate.MAX_ELEMENTS`, missing Input/Output, or an
            algebraic loop.
    """
    import nir

    path = None
    if isinstance(source, (str, Path)):
        path = str(source)
        graph_obj = read_nir(path) if nir_graph is None else nir_graph
    elif isinstance(source, nir.NIRGraph):
        graph_obj = source
    else:
        raise ModelError(f"expected a NIR file path or nir.NIRGraph, got {type(source).__name__}")

    nodes, edges = flatten_graph(graph_obj, path)
    for name, node in nodes.items():
        kind = node_type(node)
        if kind not in SUPPORTED_TYPES and kind != "Passthrough":
            raise ModelError(f"unsupported NIR node type '{kind}'", node=name, path=path)
        check_node(node, kind, name, path)  # dtypes and value domains of every parameter

    inputs = [n for n, v in nodes.items() if node_type(v) == "Input"]
    outputs = [n for n, v in nodes.items() if node_type(v) == "Output"]
    if len(inputs) != 1:
        raise ModelError(f"the graph needs exactly one Input node, found {len(inputs)} ({', '.join(inputs)})", path=path)
    if len(outputs) != 1:
        raise ModelError(f"the graph needs exactly one Output node, found {len(outputs)} ({', '.join(outputs)})", path=path)
    for src, dst in edges:
        if node_type(nodes[dst]) == "Input":
            raise ModelError(f"edge from '{src}' into the Input node", node=dst, path=path)
        if node_type(nodes[src]) == "Output":
            raise ModelError(f"edge out of the Output node into '{dst}'", node=src, path=path)

    graph = Graph(nodes=nodes, edges=edges, input_name=inputs[0], output_name=outputs[0], path=path)
    _order(graph)
    infer_shapes(graph)
    check_sizes(graph, NEURON_TYPES)  # before the builder allocates anything
    return graph


def _order(graph: Graph) -> None:
    """Depth-first search from the Input: topological order of the reachable nodes plus the set
    of back edges (edges closing a cycle). Successors are visited in sorted name order, so the
    result does not depend on how the file stored its edges."""
    succ: dict = {n: [] for n in graph.nodes}
    for s, d in graph.edges:
        succ[s].append(d)
    for s in succ:
        succ[s].sort()
    state: dict = {}
    post: list = []
    back: set = set()
    stack = [(graph.input_name, iter(succ[graph.input_name]))]
    state[graph.input_name] = 1
    while stack:
        name, it = stack[-1]
        nxt = next(it, None)
        if nxt is None:
            stack.pop()
            state[name] = 2
            post.append(name)
        elif state.get(nxt) == 1:
            back.add((name, nxt))
        elif nxt not in state:
            state[nxt] = 1
            stack.append((nxt, iter(succ[nxt])))
    graph.order = post[::-1]
    graph.back_edges = back
    unreachable = [n for n in graph.nodes if n not in state]
    if graph.output_name in unreachable:
        raise ModelError("the Output node is not reachable from the Input node", node=graph.output_name, path=graph.path)
    # Nodes not reachable from the Input never receive anything; drop them with their edges.
    for n in unreachable:
        del graph.nodes[n]
    graph.edges = [(s, d) for s, d in graph.edges if s in state and d in state]
    # A cycle made only of linear nodes has no neuron to carry the delay: an algebraic loop.
    for s, d in graph.back_edges:
        if graph.type_of(d) not in NEURON_TYPES and graph.type_of(s) not in NEURON_TYPES:
            if not _cycle_has_neuron_or_delay(graph, d, s):
                raise ModelError(
                    f"cycle through '{s}' -> '{d}' contains no neuron or Delay (algebraic loop)",
                    node=d,
                    path=graph.path,
                )


def _cycle_has_neuron_or_delay(graph: Graph, start: str, end: str) -> bool:
    """Is there a path start -> ... -> end (forward edges) passing a neuron or Delay node?"""
    succ: dict = {}
    for s, d in graph.edges:
        if (s, d) not in graph.back_edges:
            succ.setdefault(s, []).append(d)
    stack = [(start, graph.type_of(start) in NEURON_TYPES + ("Delay",))]
    seen = set()
    while stack:
        node, ok = stack.pop()
        if node == end and ok:
            return True
        if (node, ok) in seen:
            continue
        seen.add((node, ok))
        for nxt in succ.get(node, []):
            stack.append((nxt, ok or graph.type_of(nxt) in NEURON_TYPES + ("Delay",)))
    return False


def squeeze_leading_ones(shape) -> tuple:
    """Drop leading singleton (batch) dimensions beyond rank 3: (1, 2, 34, 34) -> (2, 34, 34)."""
    shape = tuple(int(s) for s in np.atleast_1d(np.asarray(shape)).ravel())
    while len(shape) > 3 and shape[0] == 1:
        shape = shape[1:]
    return shape


def infer_shapes(graph: Graph) -> None:
    """Infer the input and output shape of every node, in topological order.

    A shape arriving at a node that expects another shape with the same number of elements is
    accepted when one of the two is flat (rank 1): that is a C-order reshape, exactly what a
    Flatten between them does. Anything else is a shape mismatch naming both nodes.
    """
    shapes: dict = {}
    in_shapes: dict = {}
    path = graph.path
    for name in graph.order:
        node = graph.nodes[name]
        kind = node_type(node)
        if kind == "Input":
            shape = squeeze_leading_ones(node.input_type["input"])
            if any(s <= 0 for s in shape):
                raise ModelError(f"Input shape {shape} has a non-positive dimension", node=name, path=path)
            shapes[name] = shape
            in_shapes[name] = shape
            continue
        preds = [s for s in graph.predecessors(name) if (s, name) not in graph.back_edges]
        arriving = [shapes[p] for p in preds]
        expected = expected_input_shape(node, kind)
        shape_in = _merge_shapes(name, preds, arriving, expected, path)
        if kind == "Output":
            _check_output_declaration(node, name, shape_in, path)
        elif kind == "Flatten":
            _check_flatten_declaration(node, name, shape_in, path)
        in_shapes[name] = shape_in
        shapes[name] = output_shape(node, kind, shape_in, name, path, graph)
    # back edges: the shape they carry must fit the node they close the loop on
    for s, d in graph.back_edges:
        if not _compatible(shapes[s], in_shapes[d]):
            raise ModelError(
                f"recurrent edge from '{s}' carries shape {shapes[s]} but '{d}' takes {in_shapes[d]}",
                node=d,
                path=path,
            )
    graph.shapes = shapes
    graph.input_shapes = in_shapes


def _declared(node, attr: str, key: str, name: str, path):
    """The shape a node declares in ``attr[key]`` (an Output's ``output_type['output']``, stored as
    its ``shape``; a Flatten's ``input_type['input']``) as a tuple of ints, or None when it
    declares none (absent or empty)."""
    types = getattr(node, attr, None)
    value = types.get(key) if isinstance(types, dict) else types
    if value is None:
        return None
    try:
        arr = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise ModelError(f"{attr} must be a list of integers, got {shown(value)}", node=name, path=path) from None
    if arr.size == 0:
        return None
    if not np.all(np.isfinite(arr) & (arr == np.round(arr))) or np.any(np.abs(arr) > 2**62):
        raise ModelError(f"{attr} must be a list of integers, got {shown(value)}", node=name, path=path)
    return tuple(int(d) for d in arr)


def _check_output_declaration(node, name: str, shape_in: tuple, path) -> None:
    """An Output that declares a shape must receive as many values as it declares (edges into one
    node add up, they do not concatenate); an absent or empty declaration is left alone."""
    declared = _declared(node, "output_type", "output", name, path)
    if declared is None:
        return
    n_in = int(np.prod(shape_in))
    if min(declared) < 1:
        raise ModelError(f"shape mismatch: the Output declares output_type {declared}, a shape with a dimension < 1, "
                         f"but receives {shape_in} ({n_in} values)", node=name, path=path)
    n = math.prod(declared)
    if n != n_in:
        raise ModelError(f"shape mismatch: the Output declares output_type {declared} ({n} values) but receives "
                         f"{shape_in} ({n_in} values)", node=name, path=path)


def _check_flatten_declaration(node, name: str, shape_in: tuple, path) -> None:
    """A Flatten's ``input_type`` must be the shape arriving (leading batch dimensions of size 1
    aside; a flat declaration of the same size is a reshape, as everywhere in evsim), and its
    ``start_dim``/``end_dim`` must name dimensions of it, counted without the batch dimension or
    with it (exporters do both, SEMANTICS §5.5). All zeros is sinabs' placeholder: no declaration."""
    declared = _declared(node, "input_type", "input", name, path)
    if declared is not None and any(declared):
        def batchless(shape):
            shape = tuple(shape)
            while len(shape) > 1 and shape[0] == 1:
                shape = shape[1:]
            return shape
        same = batchless(declared) == batchless(shape_in)
        if not same and not (min(declared) >= 1 and _compatible(declared, shape_in)):
            raise ModelError(f"shape mismatch: the Flatten declares input_type {declared} but the input arriving is "
                             f"{shape_in}", node=name, path=path)
    rank = len(shape_in)
    start, end = (int(getattr(node, a)) if getattr(node, a, None) is not None else d
                  for a, d in (("start_dim", 1), ("end_dim", -1)))

    def fits(n_dims: int) -> bool:
        s = start + n_dims if start < 0 else start
        e = end + n_dims if end < 0 else end
        return 0 <= s <= e < n_dims

    if fits(rank) or fits(rank + 1):
        return
    dims = f"{rank}-D: dimensions 0 to {rank - 1}, or 0 to {rank} counting the batch"
    for attr, value in (("start_dim", start), ("end_dim", end)):
        if not -(rank + 1) <= value <= rank:
            raise ModelError(f"{attr} {value} is out of range for the input arriving, {shape_in} ({dims})",
                             node=name, path=path)
    raise ModelError(f"start_dim {start} comes after end_dim {end} for the input arriving, {shape_in} ({dims})",
                     node=name, path=path)


def _compatible(a: tuple, b: tuple) -> bool:
    return a == b or (int(np.prod(a)) == int(np.prod(b)) and (len(a) == 1 or len(b) == 1))


def _merge_shapes(name, preds, arriving, expected, path) -> tuple:
    if not arriving:
        raise ModelError("node receives no input", node=name, path=path)
    target = expected if expected is not None else arriving[0]
    for p, s in zip(preds, arriving):
        if not _compatible(s, target):
            raise ModelError(f"shape mismatch: '{p}' gives {s} but '{name}' takes {target}", node=name, path=path)
    return tuple(target)

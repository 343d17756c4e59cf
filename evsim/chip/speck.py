"""SynSense Speck: the deployment tool's quantisation and the chip's core mapping, before the chip.

Both follow sinabs' Speck backend (``sinabs/backend/dynapcnn/``, synsense/sinabs commit
904eb89, Feb 2026); nothing is imported from sinabs or torch, the arithmetic is reimplemented
with the same precision and rounding.

A Speck *layer* is one core: a weight node (Conv2d, or Affine/Linear, which sinabs turns into
a Conv2d whose kernel covers the whole input: ``dynapcnn_layer.py: convert_linear_to_conv``)
followed by its IF population (sinabs ``IAFSqueeze``), then optional sum pooling on the way to
the next layer (``DynapcnnLayer``, ``connectivity_specs.py``).

Quantisation (``discretize.py: _discretize_conv_spk_``, used by ``DynapcnnLayer(...,
discretize=True)``, which ``DynapcnnNetwork(..., discretize=True)`` builds):

* one scale ``s`` per layer, the smallest of three (Python ``min`` over them in this order)::

      s_w = scale(weights, 8 bits)    s_b = scale(biases, 8 bits)    s_t = scale((min_v_mem, θ), 16 bits)

  ``scale(x, bits)`` (``determine_discretization_scale``): with ``lo = −2^(bits−1)`` and
  ``hi = 2^(bits−1) − 1``, ``hi/|max x|`` if ``|min x| ≤ |max x|·|lo/hi|`` else ``|lo/min x|``
  (absolute values; a tensor of zeros gives +inf, so an all-zero bias never limits);
* ``q = round(x · s)`` with round-half-to-even (``torch.round``) for weights, biases,
  threshold and floor (``discretize_tensor``);
* precision: weights and biases are float32 (``sinabs.from_nir`` makes them ``.float()``),
  so ``s_w``, ``s_b`` and the products ``w·s`` are float32 (the scale cast to float32);
  θ and ``min_v_mem`` keep the NIR file's dtype (``torch.as_tensor``; float32 or float64),
  and ``(min_v_mem, θ)·s`` is computed in that dtype;
* ``sinabs.from_nir`` builds IF as ``IAFSqueeze(spike_threshold=θ, min_v_mem=−θ)``
  (``sinabs/nir.py: _import_sinabs_module``), so the floor is ``round(−θ·s) = −θ_q``;
* an AvgPool2d in front of a layer becomes a SumPool2d and the layer's weights are first
  multiplied (float32) by ``1/(kh·kw)`` per pool (``dynapcnn_layer_utils.py:
  extract_pooling_from_module``, ``DynapcnnLayer.__init__``: ``rescale_weights``).

The quantised graph holds the chip's integers (weights in [−128, 127], θ and floor in state
units, stored as floats); spikes are unchanged in meaning, so the readout (spike counts of the
last IF layer) is comparable with the float network. Neuron states are assumed zero at the start
(an initialised ``v_mem`` would also bound the scale, ``_discretize_conv_spk_``).

States saturate at :data:`STATE_MAX` = 32767 (:func:`compile_quantized` gives every layer's IF
population that ceiling): v ← min(v + w_q, 32767), then the threshold test (docs/SEMANTICS.md
#quantize-speck). Speck's documents give the width (16-bit states: sinabs ``docs/speck/overview.md``,
samna's Speck 2e/2b pages) but not what happens at overflow; saturation is assumed, as SynSense's
bit-accurate simulator of its Xylo chip computes it (xylosim ``XyloIAFNeuron.h: safe_add``: the
sum clamped to [−2^15, 2^15 − 1], then the threshold test). The lower end −32768 never acts: the
floor −θ_q ≥ −32767 comes first (θ_q ≤ 32767 by the 16-bit threshold scale).

Core mapping (``dynapcnn_layer.py: DynapcnnLayer.memory_summary``; ``chips/dynapcnn.py:
DynapcnnConfigBuilder.get_constraints``; ``mapping.py: LayerConstraints.fits``,
``get_valid_mapping``): a layer with ``c`` input channels, ``f`` output channels, a ``kh × kw``
kernel and an ``f × oh × ow`` neuron map needs

    kernel memory  c · 2^(⌈log2(kh·kw)⌉ + ⌈log2 f⌉)
    neuron memory  f · 2^(⌈log2 oh⌉ + ⌈log2 ow⌉)
    bias memory    f (sinabs.from_nir always gives Conv2d/Affine a bias)

and fits a core when each is within the core's memory (:data:`KERNEL_MEMORY`,
:data:`NEURON_MEMORY`, :data:`BIAS_MEMORY`, 9 cores). Layers are assigned to cores by the same
maximum bipartite matching sinabs computes (breadth-first augmenting paths over layers in
order and cores in index order, ``mapping.py: make_flow_graph``, ``edmonds``,
``recover_mapping``), so the core numbers agree with sinabs for the same layer order. The limits
not enforced in code come from sinabs' Speck documentation (``docs/speck/overview.md``,
"DYNAP-CNN Layer / Feature"; ``docs/speck/faqs/available_algorithmic_operation.md``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

from ..errors import ModelError, OptionError
from ..model.graph import NEURON_TYPES, Graph, load_graph
from ..model.linear import as_spatial, conv_geometry

#: ``discretize.py``: DYNAPCNN_WEIGHT_PRECISION_BITS / DYNAPCNN_STATE_PRECISION_BITS
WEIGHT_BITS = 8
STATE_BITS = 16
#: the neuron state's range in chip units (a signed 16-bit integer; sinabs' default
#: ``min_v_mem = -(2**15)``, ``discretize.py`` and ``chips/dynapcnn.py``)
STATE_MIN = -(2 ** (STATE_BITS - 1))
STATE_MAX = 2 ** (STATE_BITS - 1) - 1
#: ``chips/dynapcnn.py: get_constraints`` (entries per core, cores 0..8)
KERNEL_MEMORY = (16384, 16384, 16384, 32768, 32768, 65536, 65536, 16384, 16384)
NEURON_MEMORY = (65536, 65536, 65536, 32768, 32768, 16384, 16384, 16384, 16384)
BIAS_MEMORY = (1024,) * 9
N_CORES = len(KERNEL_MEMORY)
#: ``docs/speck/overview.md`` (DYNAP-CNN Layer features) and the FAQ of available operations
MAX_KERNEL = 16
MAX_CHANNELS = 1024
MAX_INPUT_SIZE = 128
MAX_OUTPUT_SIZE = 64
STRIDES = (1, 2, 4, 8)
MAX_PADDING = 7
POOL_SIZES = (1, 2, 4)
MAX_DESTINATIONS = 2  # ``exceptions.py: MaxDestinationsReached``

WEIGHT_TYPES = ("Conv2d", "Conv1d", "Affine", "Linear")
POOL_TYPES = ("SumPool2d", "AvgPool2d")
ROUTE_TYPES = POOL_TYPES + ("Flatten",)
QUANTIZE_SCHEMES = ("speck",)
#: the chips `evsim info --chip` can map a network to
CHIPS = ("speck",)
QUANTIZE_PROFILES = ("speck", "sinabs")


# --------------------------------------------------------------------------------------------
# discretisation arithmetic (discretize.py)
# --------------------------------------------------------------------------------------------


def discretization_scale(values: np.ndarray, bits: int):
    """``determine_discretization_scale``: the factor that maps ``values`` onto ``bits``-bit
    signed integers, in the dtype of ``values`` (a numpy scalar; +inf for all zeros).

    sinabs writes ``abs(max_val_disc / max_val_obj)``, a Python int over a 0-d tensor, which
    torch evaluates as ``max_val_obj.reciprocal() * max_val_disc`` (``torch/_tensor.py``:
    ``__rtruediv__ = __rdiv__``): two roundings in the tensor's dtype, not one. The correctly
    rounded quotient is one ulp away for some values, and that can move a weight by one step
    (benchmarks/framework_check, the ``dynapcnn`` cases)."""
    values = np.asarray(values)
    kind = values.dtype.type
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    v_min, v_max = kind(np.min(values)), kind(np.max(values))
    ratio = kind(abs(lo / hi))  # the tensor's dtype: torch casts the Python float
    with np.errstate(divide="ignore"):
        if abs(v_min) <= abs(v_max) * ratio:
            return abs((kind(1) / v_max) * kind(hi))
        return abs((kind(1) / v_min) * kind(lo))


def discretize_values(values: np.ndarray, scale) -> np.ndarray:
    """``discretize_tensor``: ``round(values · scale)`` in the dtype of ``values`` (the scale cast
    to it, as torch does for a 0-d tensor), rounding half to even like ``torch.round``."""
    values = np.asarray(values)
    return np.round(values * values.dtype.type(scale))


def _threshold_dtype(value) -> np.dtype:
    dtype = np.asarray(value).dtype
    return dtype if dtype in (np.float32, np.float64) else np.dtype(np.float64)


def signed_bits(lo: float, hi: float) -> int:
    """Smallest two's-complement width holding every integer in [lo, hi]."""
    bits = 1
    while lo < -(2 ** (bits - 1)) or hi > 2 ** (bits - 1) - 1:
        bits += 1
    return bits


# --------------------------------------------------------------------------------------------
# layers
# --------------------------------------------------------------------------------------------


@dataclass
class SpeckLayer:
    """One Speck core's worth of the graph: a weight node and the IF population it feeds."""

    index: int
    weight_node: str
    neuron_node: str | None
    kind: str
    in_shape: tuple  # (c, h, w) as the core sees it (a Linear's input un-flattened)
    out_shape: tuple  # (f, oh, ow): the neuron map
    kernel: tuple
    stride: tuple = (1, 1)
    padding: tuple = (0, 0, 0, 0)  # top, left, bottom, right
    dilation: tuple = (1, 1)
    groups: int = 1
    input_pooling: list = field(default_factory=list)  # cumulative sum pooling on each path into the layer
    rescale: float = 1.0  # product of 1/(kh·kw) of the AvgPool2d nodes in front (sinabs rescale_weights)
    avg_pools: list = field(default_factory=list)
    has_bias: bool = False  # a nonzero bias (on the chip: the leak, driven by the slow clock)
    problems: list = field(default_factory=list)  # what the chip or sinabs does not support
    blocks_quantization: list = field(default_factory=list)  # problems that leave the scale undefined
    kernel_memory: int = 0
    neuron_memory: int = 0
    bias_memory: int = 0
    cores: list = field(default_factory=list)  # cores whose memories hold the layer
    core: int | None = None  # assigned core


def _pow2_ceil_log2(n: int) -> int:
    """2^⌈log2 n⌉ (1 for n = 1), the address-space rounding of ``memory_summary``."""
    return 1 << max(0, int(n - 1).bit_length())


def layer_memory(c: int, f: int, kernel: tuple, neuron_hw: tuple, has_bias_param: bool = True) -> tuple:
    """(kernel, neuron, bias) memory entries of one layer (``DynapcnnLayer.memory_summary``)."""
    kh, kw = kernel
    oh, ow = neuron_hw
    kernel_mem = c * _pow2_ceil_log2(kh * kw) * _pow2_ceil_log2(f)
    neuron_mem = f * _pow2_ceil_log2(oh) * _pow2_ceil_log2(ow)
    return kernel_mem, neuron_mem, (f if has_bias_param else 0)


def _upstream(g: Graph, name: str) -> list:
    """Paths into ``name`` through pools and Flatten: [(source node, [route nodes, forward order])]."""
    paths = []

    def back(node, route, seen):
        for p in sorted(g.predecessors(node)):
            if g.type_of(p) in ROUTE_TYPES and p not in seen:
                back(p, [p] + route, seen | {p})
            else:
                paths.append((p, route))

    back(name, [], {name})
    return paths


def _downstream_layers(g: Graph, name: str) -> list:
    """Weight nodes (and the Output) reached from ``name`` through pools and Flatten."""
    found = []

    def walk(node, seen):
        for s in sorted(g.successors(node)):
            if g.type_of(s) in ROUTE_TYPES and s not in seen:
                walk(s, seen | {s})
            else:
                found.append(s)

    walk(name, {name})
    return found


def _pool_problems(g: Graph, pools: list) -> tuple:
    """(cumulative pool size, problems) of a run of pooling nodes on one path."""
    problems = []
    size = [1, 1]
    for p in pools:
        node = g.nodes[p]
        k = np.atleast_1d(np.asarray(node.kernel_size)).ravel()
        kh, kw = (int(k[0]), int(k[0])) if k.size == 1 else (int(k[0]), int(k[1]))
        s = np.atleast_1d(np.asarray(getattr(node, "stride", None) if getattr(node, "stride", None) is not None else k)).ravel()
        sh, sw = (int(s[0]), int(s[0])) if s.size == 1 else (int(s[0]), int(s[1]))
        pad = getattr(node, "padding", None)
        if kh != kw:
            problems.append(f"{p}: pooling {kh}x{kw} is not square")
        if (sh, sw) != (kh, kw):
            problems.append(f"{p}: pooling stride {sh}x{sw} differs from its kernel {kh}x{kw}")
        if pad is not None and np.size(pad) and np.any(np.asarray(pad) != 0):
            problems.append(f"{p}: pooling with padding")
        size = [size[0] * kh, size[1] * kw]
    if size[0] == size[1] and size[0] not in POOL_SIZES:
        problems.append(f"{'+'.join(pools)}: sum pooling {size[0]}x{size[1]} (Speck pools 1, 2 or 4)")
    return tuple(size), problems


def find_layers(g: Graph) -> tuple:
    """Split a graph into Speck layers. Returns (layers, problems not tied to one layer)."""
    layers: list = []
    general: list = []
    for name in g.order:
        kind = g.type_of(name)
        if kind in NEURON_TYPES and kind != "IF":
            general.append(f"{name}: {kind} neurons are not supported (Speck cores hold IF neurons, sinabs IAFSqueeze)")
        elif kind in ("Scale", "Delay"):
            general.append(f"{name}: {kind} nodes are not supported on Speck")
        elif kind == "IF":
            preds = g.predecessors(name)
            if len(preds) != 1 or g.type_of(preds[0]) not in WEIGHT_TYPES:
                general.append(f"{name}: an IF population must be fed by exactly one Conv2d/Linear node")
        elif kind in WEIGHT_TYPES:
            layers.append(_layer(g, name, len(layers)))
    for a, b in sorted(g.back_edges):
        general.append(f"{a} -> {b}: recurrent edge (sinabs maps acyclic graphs: utils.topological_sorting)")
    for src, _ in _upstream(g, g.output_name):
        if g.type_of(src) not in NEURON_TYPES:
            general.append(f"{g.output_name}: the readout must be the spikes of an IF layer, not {g.type_of(src)} '{src}'")
    for name in g.order:
        if g.type_of(name) in ("IF", "Input"):
            dests = [d for d in _downstream_layers(g, name) if g.type_of(d) in WEIGHT_TYPES]
            if len(dests) > MAX_DESTINATIONS:
                general.append(f"{name}: sends to {len(dests)} layers ({', '.join(dests)}); a core has "
                               f"{MAX_DESTINATIONS} destinations")
    if len(layers) > N_CORES:
        general.append(f"{len(layers)} layers for {N_CORES} cores")
    return layers, general


def _layer(g: Graph, name: str, index: int) -> SpeckLayer:
    kind = g.type_of(name)
    node = g.nodes[name]
    succ = g.successors(name)
    neuron = succ[0] if len(succ) == 1 and g.type_of(succ[0]) in NEURON_TYPES else None
    problems, blockers = [], []
    if neuron is None or g.type_of(neuron) != "IF":
        msg = f"{name}: {kind} must be followed by exactly one IF population (sinabs IAFSqueeze)"
        if neuron is None:  # another neuron type is reported once, by find_layers
            problems.append(msg)
        blockers.append(msg)

    # inputs: from the Input (DVS) or an IF layer, through pools and Flatten
    paths = _upstream(g, name)
    pooling, factors, avg_pools = [], set(), []
    for src, route in paths:
        if g.type_of(src) not in ("IF", "Input"):
            msg = f"{name}: input from {g.type_of(src)} '{src}', not from a spiking layer or the input"
            if g.type_of(src) not in NEURON_TYPES:
                problems.append(msg)
            blockers.append(msg)
        pools = [p for p in route if g.type_of(p) in POOL_TYPES]
        size, pool_problems = _pool_problems(g, pools)
        problems.extend(pool_problems)
        pooling.append(size)
        factor = 1.0
        for p in pools:
            if g.type_of(p) == "AvgPool2d":
                k = np.atleast_1d(np.asarray(g.nodes[p].kernel_size)).ravel()
                factor *= 1.0 / (int(k[0]) * int(k[-1]))  # Python float, as sinabs accumulates it
                avg_pools.append(p)
        factors.add(factor)
    if len(factors) > 1:
        msg = f"{name}: average pools of different sizes in front of one layer (sinabs needs one rescale factor)"
        problems.append(msg)
        blockers.append(msg)
    rescale = factors.pop() if len(factors) == 1 else 1.0

    bias = getattr(node, "bias", None)
    has_bias = bias is not None and bool(np.any(np.asarray(bias) != 0))
    if kind in ("Affine", "Linear"):
        weight = np.asarray(node.weight)
        flat = [p for _, route in paths for p in route if g.type_of(p) == "Flatten"]
        shape_in = g.input_shapes[flat[0]] if flat else g.input_shapes[name]
        c, h, w = (int(shape_in[0]), 1, 1) if len(shape_in) == 1 else as_spatial(shape_in)
        f = int(weight.shape[0])
        layer = SpeckLayer(index, name, neuron, kind, (c, h, w), (f, 1, 1), (h, w), avg_pools=avg_pools,
                           input_pooling=pooling, rescale=rescale, has_bias=has_bias)
    else:
        geo = conv_geometry(node, kind, g.input_shapes[name], name, g.path)
        c, h, w = as_spatial(geo.in_shape)
        f, oh, ow = as_spatial(geo.out_shape)
        layer = SpeckLayer(index, name, neuron, kind, (c, h, w), (f, oh, ow), tuple(geo.weight.shape[2:]),
                           tuple(geo.stride), (geo.pad_top, geo.pad_left, geo.pad_bottom, geo.pad_right),
                           tuple(geo.dilation), geo.groups, pooling, rescale, avg_pools, has_bias)
        if kind == "Conv1d":
            msg = f"{name}: Conv1d is not supported (Speck convolutions are 2-D)"
            problems.append(msg)
            blockers.append(msg)
        if geo.groups != 1:
            problems.append(f"{name}: grouped convolution (groups={geo.groups})")
        if tuple(geo.dilation) != (1, 1):
            problems.append(f"{name}: dilation {geo.dilation[0]}x{geo.dilation[1]}")
        if any(s not in STRIDES for s in geo.stride):
            problems.append(f"{name}: stride {geo.stride[0]}x{geo.stride[1]} (Speck strides: 1, 2, 4, 8)")
        pads = layer.padding
        if pads[0] != pads[2] or pads[1] != pads[3]:
            problems.append(f"{name}: asymmetric padding {pads} (top, left, bottom, right)")
        if max(pads) > MAX_PADDING:
            problems.append(f"{name}: padding {max(pads)} > {MAX_PADDING}")
        if max(oh, ow) > MAX_OUTPUT_SIZE:
            problems.append(f"{name}: neuron map {oh}x{ow} > {MAX_OUTPUT_SIZE}x{MAX_OUTPUT_SIZE}")
    kh, kw = layer.kernel
    if kh != kw:
        problems.append(f"{name}: kernel {kh}x{kw} is not square")
    if max(kh, kw) > MAX_KERNEL:
        problems.append(f"{name}: kernel {kh}x{kw} > {MAX_KERNEL}x{MAX_KERNEL}")
    if max(layer.in_shape[1:]) > MAX_INPUT_SIZE:
        problems.append(f"{name}: input {layer.in_shape[1]}x{layer.in_shape[2]} > {MAX_INPUT_SIZE}x{MAX_INPUT_SIZE}")
    if layer.in_shape[0] > MAX_CHANNELS:
        problems.append(f"{name}: {layer.in_shape[0]} input channels > {MAX_CHANNELS}")
    if layer.out_shape[0] > MAX_CHANNELS:
        problems.append(f"{name}: {layer.out_shape[0]} output channels > {MAX_CHANNELS}")

    if neuron is not None and g.type_of(neuron) == "IF":
        theta = np.asarray(g.nodes[neuron].v_threshold).ravel()
        if not np.all(theta == theta[0]):
            msg = f"{neuron}: per-neuron thresholds (a Speck core has one threshold)"
            problems.append(msg)
            blockers.append(msg)
        elif not theta[0] > 0:
            msg = f"{neuron}: threshold {theta[0]:g} must be > 0"
            problems.append(msg)
            blockers.append(msg)

    layer.kernel_memory, layer.neuron_memory, layer.bias_memory = layer_memory(
        layer.in_shape[0], layer.out_shape[0], layer.kernel, layer.out_shape[1:], kind != "Linear")
    layer.problems, layer.blocks_quantization = problems, blockers
    return layer


# --------------------------------------------------------------------------------------------
# core assignment (mapping.py)
# --------------------------------------------------------------------------------------------


def assign_cores(candidates: list, n_cores: int = N_CORES) -> list:
    """Maximum matching of layers to cores (``candidates[i]``: cores layer i fits, ascending),
    found as ``mapping.py`` does: a flow network source → layers → cores → sink with unit
    capacities, breadth-first augmenting paths; the edge order (source's edges by layer, each
    layer's reverse edge first, then its cores; each core's reverse edges, then its sink edge)
    decides ties, so the assignment is sinabs'. Returns the core of each layer, or None."""
    n_layers = len(candidates)
    source, sink = 0, n_layers + n_cores + 1
    adj = [[] for _ in range(sink + 1)]
    head, cap, flow, rev = [], [], [], []

    def edge(a, b, c):
        head.append(b)
        cap.append(c)
        flow.append(0)
        adj[a].append(len(head) - 1)
        return len(head) - 1

    def pair(a, b):
        e, r = edge(a, b, 1), edge(b, a, 0)
        rev.extend([r, e])

    for i in range(n_layers):
        pair(source, i + 1)
    for i, cores in enumerate(candidates):
        for core in cores:
            pair(i + 1, n_layers + 1 + core)
    for core in range(n_cores):
        pair(n_layers + 1 + core, sink)
    tail = [None] * len(head)
    for a, edges in enumerate(adj):
        for e in edges:
            tail[e] = a

    while True:
        pred = [None] * (sink + 1)
        queue = [source]
        while queue and pred[sink] is None:
            node = queue.pop(0)
            for e in adj[node]:
                if pred[head[e]] is None and head[e] != source and cap[e] > flow[e]:
                    pred[head[e]] = e
                    queue.append(head[e])
        if pred[sink] is None:
            break
        e = pred[sink]
        while e is not None:  # unit capacities: every augmenting path carries 1
            flow[e] += 1
            flow[rev[e]] -= 1
            e = pred[tail[e]]
    result = []
    for i in range(n_layers):
        hit = [head[e] - n_layers - 1 for e in adj[i + 1] if flow[e] == 1 and head[e] != source]
        result.append(hit[0] if hit else None)
    return result


@dataclass
class ChipMapping:
    """The Speck mapping of a graph: per-layer table, assignment and verdict."""

    layers: list
    problems: list  # all problems, general ones first
    fits: bool

    @property
    def verdict(self) -> str:
        return "fits" if self.fits else "does not fit: " + "; ".join(self.problems)

    def table(self) -> list:
        """One dict per layer (JSON-ready)."""
        return [{
            "layer": ly.index, "weight_node": ly.weight_node, "neuron_node": ly.neuron_node, "type": ly.kind,
            "input": list(ly.in_shape), "neurons": list(ly.out_shape), "kernel": list(ly.kernel),
            "stride": list(ly.stride), "padding": list(ly.padding), "input_pooling": [list(p) for p in ly.input_pooling],
            "kernel_memory": ly.kernel_memory, "neuron_memory": ly.neuron_memory, "bias_memory": ly.bias_memory,
            "bias": ly.has_bias, "fits_cores": ly.cores, "core": ly.core, "problems": ly.problems,
        } for ly in self.layers]

    def to_dict(self) -> dict:
        return {"chip": "speck", "cores": N_CORES, "kernel_memory": list(KERNEL_MEMORY),
                "neuron_memory": list(NEURON_MEMORY), "bias_memory": list(BIAS_MEMORY),
                "layers": self.table(), "problems": self.problems, "fits": self.fits, "verdict": self.verdict}


def map_to_speck(source) -> ChipMapping:
    """Check whether a NIR graph (path, ``nir.NIRGraph`` or :class:`Graph`) fits Speck.

    Raises:
        ModelError: the graph itself is invalid (see :func:`evsim.model.graph.load_graph`).
    """
    g = source if isinstance(source, Graph) else load_graph(source)
    layers, general = find_layers(g)
    for ly in layers:
        ly.cores = [i for i in range(N_CORES)
                    if ly.kernel_memory <= KERNEL_MEMORY[i] and ly.neuron_memory <= NEURON_MEMORY[i]
                    and ly.bias_memory <= BIAS_MEMORY[i]]
        if not ly.cores:
            ly.problems.append(f"{ly.weight_node}: fits no core (kernel memory {ly.kernel_memory}, max "
                               f"{max(KERNEL_MEMORY)}; neuron memory {ly.neuron_memory}, max {max(NEURON_MEMORY)}; "
                               f"bias memory {ly.bias_memory}, max {max(BIAS_MEMORY)})")
    for ly, core in zip(layers, assign_cores([ly.cores for ly in layers])):
        ly.core = core
    problems = list(general)
    for ly in layers:
        problems.extend(ly.problems)
    unplaced = [ly.weight_node for ly in layers if ly.core is None and ly.cores]
    if unplaced:
        problems.append(f"no core left for {', '.join(unplaced)} (the layers compete for the same cores)")
    if not layers:
        problems.append("no Conv2d/Linear layer to map")
    return ChipMapping(layers, problems, not problems)


# --------------------------------------------------------------------------------------------
# quantisation as a graph transform
# --------------------------------------------------------------------------------------------


@dataclass
class LayerQuantization:
    """What ``DynapcnnLayer(discretize=True)`` does to one layer."""

    weight_node: str
    neuron_node: str
    scale: float
    limited_by: str  # "weights", "bias" or "threshold"
    weight_scale: float
    bias_scale: float
    threshold_scale: float
    weight_range: tuple
    weight_bits: int
    bias_range: tuple
    bias_bits: int
    threshold: int
    floor: int
    state_bits: int
    weights_zeroed: int  # nonzero weights that became 0
    n_weights: int
    rescale: float
    max_state: int  # largest state one input can leave behind: θ_q − 1 + max(w_q, b_q, 0)

    @property
    def may_saturate(self) -> bool:
        """True when the state can reach the chip's 16-bit ceiling: one input from below θ_q can
        carry it past 32767, or an input is larger than θ_q, so that with one spike per input
        event (the chip) the residual above θ_q can grow from input to input."""
        return self.max_state > STATE_MAX or max(self.weight_range[1], self.bias_range[1]) > self.threshold

    def to_dict(self) -> dict:
        d = {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in vars(self).items()}
        d["weight_range"], d["bias_range"] = list(self.weight_range), list(self.bias_range)
        d["may_saturate"] = self.may_saturate
        return d


def quantize_layer(weight, bias, threshold, rescale: float = 1.0) -> tuple:
    """Discretise one layer as ``_discretize_conv_spk_`` (``min_v_mem = −θ``, no initial state).

    Returns ``(w_q, b_q, θ_q, floor_q, s, limited_by, (s_w, s_b, s_t))`` with ``w_q``, ``b_q``
    float32 and θ_q, floor_q in the threshold's dtype (integer values)."""
    w = np.asarray(weight, dtype=np.float32)
    if rescale != 1.0:
        w = w * np.float32(rescale)  # conv.weight * rescale_weights, before discretising
    b = np.zeros(w.shape[0], dtype=np.float32) if bias is None else np.asarray(bias, dtype=np.float32)
    theta = np.asarray(threshold).ravel()[0]
    dtype = _threshold_dtype(threshold)
    thresholds = np.array([-theta, theta], dtype=dtype)  # (min_v_mem, spike_threshold)
    s_w = discretization_scale(w, WEIGHT_BITS)
    s_b = discretization_scale(b, WEIGHT_BITS)
    s_t = discretization_scale(thresholds, STATE_BITS)
    scale = min(s_w, s_b, s_t)  # Python min: the first of equal minima wins, as in sinabs
    limited_by = ("weights", "bias", "threshold")[[s_w, s_b, s_t].index(scale)]
    w_q = discretize_values(w, scale)
    b_q = discretize_values(b, scale)
    floor_q, theta_q = discretize_values(thresholds, scale)
    return w_q, b_q, theta_q, floor_q, scale, limited_by, (s_w, s_b, s_t)


def check_quantize(quantize, profile: str) -> None:
    """OptionError unless ``quantize`` names a scheme and the profile is one it applies to."""
    if quantize not in QUANTIZE_SCHEMES:
        raise OptionError(f"must be {' or '.join(QUANTIZE_SCHEMES)}, got {quantize!r}", option="--quantize")
    if profile not in QUANTIZE_PROFILES:
        raise OptionError(f"speck quantisation needs --profile speck or sinabs, not {profile}", option="--quantize")


def quantize_speck(source) -> tuple:
    """The graph as ``DynapcnnNetwork(..., discretize=True)`` deploys it: a new ``nir.NIRGraph``
    with each layer's weights, biases and threshold replaced by the chip's integers, and
    AvgPool2d nodes in front of layers replaced by SumPool2d (their 1/k² folded into the weights).

    Returns:
        (nir.NIRGraph, [LayerQuantization per layer])

    Raises:
        ModelError: a layer cannot be quantised (not Conv2d/Linear → IF, per-neuron thresholds,
            nested subgraphs); the message names the node.
    """
    import nir

    g = source if isinstance(source, Graph) else load_graph(source)
    if any(g.type_of(n) == "Passthrough" for n in g.nodes):
        raise ModelError("--quantize speck: nested subgraphs are not supported (flatten the graph)", path=g.path)
    layers, _ = find_layers(g)
    for ly in layers:
        if ly.blocks_quantization:
            raise ModelError(f"--quantize speck: {ly.blocks_quantization[0]}", node=ly.weight_node, path=g.path)
        feeding = g.predecessors(ly.neuron_node)
        if len(feeding) != 1:  # each feeding node would get its own scale, the population has one threshold
            raise ModelError("--quantize speck: an IF population must be fed by exactly one "
                             f"Conv2d/Linear node (one scale per layer), not by {', '.join(sorted(feeding))}",
                             node=ly.neuron_node, path=g.path)
    nodes = dict(g.nodes)
    report = []
    for ly in layers:
        wnode, nnode = g.nodes[ly.weight_node], g.nodes[ly.neuron_node]
        weight = np.asarray(wnode.weight)
        f = weight.shape[0]
        bias = getattr(wnode, "bias", None)
        if bias is not None:
            bias = np.broadcast_to(np.asarray(bias, dtype=np.float32).ravel(), (f,)) if np.size(bias) in (1, f) else None
            if bias is None:
                raise ModelError(f"--quantize speck: bias of shape {np.shape(wnode.bias)} for {f} outputs",
                                 node=ly.weight_node, path=g.path)
        w_q, b_q, theta_q, floor_q, scale, limited_by, (s_w, s_b, s_t) = quantize_layer(
            weight, bias, nnode.v_threshold, ly.rescale)
        if not theta_q >= 1:  # a threshold far below the weights rounds to 0: the chip would fire on anything
            theta = float(np.asarray(nnode.v_threshold).ravel()[0])
            raise ModelError(f"--quantize speck: v_threshold {theta:g} rounds to {int(theta_q)} at the layer's scale "
                             f"{float(scale):g} (set by its {limited_by}); the chip needs a threshold of at least 1",
                             node=ly.neuron_node, path=g.path)
        new_w = copy.copy(wnode)
        new_w.weight = w_q.reshape(weight.shape).astype(np.float32)
        if bias is not None:
            new_w.bias = b_q.astype(np.float32)
        new_n = copy.copy(nnode)
        theta_arr = np.asarray(nnode.v_threshold)
        new_n.v_threshold = np.full(theta_arr.shape, theta_q, dtype=theta_arr.dtype if theta_arr.dtype.kind == "f" else np.float64)
        nodes[ly.weight_node], nodes[ly.neuron_node] = new_w, new_n
        for p in ly.avg_pools:
            pool = g.nodes[p]
            nodes[p] = nir.SumPool2d(kernel_size=np.asarray(pool.kernel_size), stride=np.asarray(pool.stride),
                                     padding=np.asarray(pool.padding))
        w_lo, w_hi = float(w_q.min()), float(w_q.max())
        b_lo, b_hi = float(b_q.min()), float(b_q.max())
        scaled_w = np.asarray(weight, dtype=np.float32)
        report.append(LayerQuantization(
            ly.weight_node, ly.neuron_node, float(scale), limited_by, float(s_w), float(s_b), float(s_t),
            (int(w_lo), int(w_hi)), signed_bits(w_lo, w_hi), (int(b_lo), int(b_hi)), signed_bits(b_lo, b_hi),
            int(theta_q), int(floor_q), signed_bits(float(floor_q), float(theta_q)),
            int(np.count_nonzero((w_q == 0) & (scaled_w != 0))), int(w_q.size), float(ly.rescale),
            int(theta_q) - 1 + max(int(w_hi), int(b_hi), 0)))
    return nir.NIRGraph(nodes=nodes, edges=list(g.edges), type_check=False), report


def compile_quantized(source, quantize: str, profile: str, overrides, precision: str):
    """:func:`evsim.compile.builder.compile_model` of the quantised graph, every layer's state
    saturating at :data:`STATE_MAX`. The model keeps the source's path and ``model_hash`` (the
    model's identity; the quantisation is an option, recorded next to it where results are
    written)."""
    from ..compile.builder import _hash_source, compile_model

    check_quantize(quantize, profile)
    if overrides.v_min is not None and overrides.v_min < STATE_MIN:
        raise OptionError(f"{overrides.v_min:g} is below the chip's 16-bit state range ({STATE_MIN}) "
                          "with --quantize speck", option="--v-min")
    g = load_graph(source)
    graph, report = quantize_speck(g)
    ceiling = {q.neuron_node: float(STATE_MAX) for q in report}  # chip units: IF gain 1, v += w_q
    model = compile_model(graph, profile=profile, overrides=overrides, precision=precision, state_ceiling=ceiling)
    model.model_hash = _hash_source(source, profile, overrides, precision)
    model.source_path = g.path
    model.graph.path = g.path
    model.quantization = report
    return model

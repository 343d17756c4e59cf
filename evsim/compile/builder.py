"""Compile a NIR graph once into the flat arrays the event engine reads (the "builder").

Populations are the graph's Input node and its neuron nodes (plus, when the Output is fed
through linear nodes or by several sources, an integrating readout population). A *projection*
is one path from a population through linear nodes (Affine, Linear, Conv, pools, Flatten, Scale,
Delay, subgraph boundaries) to a population. Each projection is encoded as a short list of
operators; connectivity stays implicit (kernel arithmetic and weight tables), so memory is
O(parameters), never O(synapses).

Folding. Operators that move each element to at most one place (Flatten and other reshapes,
Scale, pools whose windows do not overlap) become an index map with a scale that is folded into
the next weighted operator's input lookup. A typical CNN projection (pool → conv, or pool →
flatten → linear) is therefore one operator.

Time. The engine counts time in microseconds since the sample's first event (so input
timestamps stay exact); time constants, drives, refractory periods and delays are converted from
the seconds of the NIR file when packed. :class:`Population` models keep seconds.

Biases are constant currents: the builder propagates them through the linear nodes densely (the
linear graph evaluated with every population output at zero) and hands each neuron population its
constant input; the neuron model turns it into a drive (see :mod:`evsim.model.profiles`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from collections import namedtuple
from dataclasses import dataclass, field

import numpy as np

from ..kernels.fanout import RUN_COLS, RUN_DTYPE, run_tables
from ..kernels.neuron import firing_level
from ..model import neurons as nm
from ..errors import ModelError, OptionError
from ..model.graph import Graph, load_graph
from ..model.nodes import LINEAR_TYPES, NEURON_TYPES, make_op
from ..model.linear import (
    ConvOp,
    DenseOp,
    LinearOp,
    ReshapeOp,
    ScaleOp,
    as_spatial,
    engine_to_nir,
    max_targets,
    nir_to_engine,
    to_engine_order,
)
from ..model.profiles import Overrides, get_profile, neuron_model, resolve_dt, spike_rule
from ..sim import PRECISIONS

from ..kernels.abi import (
    G_CIN_G,
    G_COUT_G,
    F_CEILING,
    F_DYNAMIC,
    F_FLOOR,
    F_GE,
    F_MAY_CROSS,
    F_MIN_INTERVAL,
    F_MULTI,
    F_REFRACTORY,
    F_SPIKING,
    F_SUBTRACT,
    F_UNIFORM,
    G_CIN,
    G_COLS,
    G_COUT,
    G_DX,
    G_DY,
    G_GROUPS,
    G_H,
    G_KH,
    G_KW,
    G_OH,
    G_OW,
    G_PL,
    G_PT,
    G_ROWS,
    G_SX,
    G_SY,
    G_W,
    KIND_CUBA,
    KIND_INPUT,
    KIND_INTEGRATOR,
    KIND_LEAKY,
    N_GEOM,
    N_PARAMS,
    OP_CONV,
    OP_DENSE,
    OP_IDENTITY,
    P_DRIVE,
    P_GAIN,
    P_TAU_MEM,
    P_TAU_SYN,
    P_THRESHOLD,
    P_V_MAX,
    P_V_MIN,
    P_V_REST,
    READOUT_COUNTS,
    READOUT_STATE,
)

EngineModel = namedtuple(
    "EngineModel",
    [
        # populations
        "pop_kind", "pop_offset", "pop_size", "pop_flags", "pop_refractory", "pop_min_interval",
        "pop_param_base", "pop_param_stride", "params", "pop_proj_ptr", "pop_proj", "pop_reserve",
        # projections
        "proj_src", "proj_dst", "proj_op_start", "proj_n_ops", "proj_delay", "proj_delay_base", "delays",
        # operators
        "op_kind", "op_in_size", "op_out_size", "op_map_base", "op_scale_base", "op_weight_base",
        "op_geom", "op_scratch_base", "maps", "scales", "weights", "conv_tables",
        # readout
        "readout",  # [population, mode, size]
        # per population with F_UNIFORM, in the state's precision: the firing level
        # (evsim.kernels.neuron.firing_level), the floor (−inf: none) and the ceiling (+inf: none)
        "pop_uniform",
        # run tables of the convolutions (evsim.kernels.fanout.run_tables): per operator the first
        # entry of its elements in run_ptr (−1: not tabulated); per element its first row of run_table
        # and its number of sub-runs
        "op_table_base", "run_ptr", "run_table",
    ],
)


@dataclass
class Population:
    """A group of neurons the engine updates: the Input, a neuron node, or the readout."""

    name: str
    nir_type: str
    kind: int
    shape: tuple
    offset: int
    spiking: bool
    model: object = None
    rule: nm.SpikeRule | None = None
    bias: np.ndarray | None = None  # constant input from upstream biases, NIR C-order (1 element when uniform)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))


@dataclass
class EngineOp:
    """One operator of a projection, in engine layout."""

    kind: int
    in_size: int
    out_size: int
    in_map: np.ndarray | None = None  # engine index of the previous layout -> this op's input (-1: dropped)
    in_scale: np.ndarray | None = None
    weights: np.ndarray | None = None
    geometry: np.ndarray | None = None
    max_targets: int = 1
    label: str = ""
    row_table: np.ndarray | None = None  # conv: per input row, the (ky, oy) pairs that see it
    col_table: np.ndarray | None = None  # conv: per input column, merged runs (see encode_conv)


@dataclass
class Projection:
    """A path of linear nodes from one population to another."""

    source: int
    target: int
    nodes: list
    ops: list
    delay_s: float = 0.0
    delay_per_source: np.ndarray | None = None  # engine order of the source population
    recurrent: bool = False
    linear_ops: list = field(default_factory=list)  # LinearOp objects (dense reference / clock mode)

    @property
    def deliveries_bound(self) -> int:
        """Upper bound on target updates one source spike causes."""
        entries = 1
        for op in self.ops[:-1]:
            entries = min(entries * op.max_targets, op.out_size)
        return entries * self.ops[-1].max_targets


@dataclass
class CompiledModel:
    """A NIR graph compiled for the event engine (and the clock-driven mode).

    Attributes:
        graph: the validated :class:`evsim.model.graph.Graph`.
        profile, overrides, dt_s: the conventions used (dt in seconds, None for strict NIR).
        populations, projections: the compiled structure (see module docstring).
        input_population: index of the Input population.
        readout: (population index, READOUT_COUNTS or READOUT_STATE).
        arrays: the :data:`EngineModel` namedtuple the compiled kernel reads.
        precision: "float32" or "float64" (state and weights).
        model_hash: SHA-256 of the NIR file (or of the graph's parameters): the model's identity,
            independent of profile and options (recorded separately where they matter).
    """

    graph: Graph
    profile: object
    overrides: Overrides
    dt_s: float | None
    populations: list
    projections: list
    input_population: int
    readout: tuple
    arrays: EngineModel
    precision: str
    model_hash: str
    source_path: str | None = None
    profile_source: str = "given"  # given, default, "sidecar FILE" or "NIR metadata"

    @property
    def input_shape(self) -> tuple:
        return self.populations[self.input_population].shape

    @property
    def n_neurons(self) -> int:
        return int(sum(p.size for p in self.populations))

    @property
    def output_size(self) -> int:
        return self.populations[self.readout[0]].size

    def population_index(self, name: str) -> int:
        for i, p in enumerate(self.populations):
            if p.name == name:
                return i
        raise ModelError(f"no population named '{name}' (have: {', '.join(p.name for p in self.populations)})")

    def memory_bytes(self) -> int:
        return int(sum(a.nbytes for a in self.arrays if isinstance(a, np.ndarray)))


def compile_model(source, profile: str = "nir", overrides: Overrides | None = None, precision: str = "float32",
                  state_ceiling: dict | None = None, nir_graph=None) -> CompiledModel:
    """Load (if a path) and compile a NIR graph.

    Args:
        source: path to a ``.nir`` file, or a ``nir.NIRGraph``.
        profile: "nir", "sinabs", "speck", "snntorch" or "norse" (docs/SEMANTICS.md#profiles).
        overrides: explicit options that win over the profile.
        precision: "float32" (default) or "float64" for membrane state and weights; parameters
            and times are always float64.
        state_ceiling: {IF/I node name: v_max}: the state of those populations saturates at v_max
            (:mod:`evsim.model.neurons`; set by ``--quantize speck``, :mod:`evsim.chip.speck`).
        nir_graph: the file ``source`` already read by :func:`evsim.model.graph.read_nir` (not
            read again).

    Raises:
        ModelError: the graph cannot be compiled (message names the node).
        OptionError: an option is invalid.
    """
    if precision not in PRECISIONS:
        raise OptionError(f"must be {' or '.join(PRECISIONS)}, got {precision!r}", option="--precision")
    overrides = overrides or Overrides()
    prof = get_profile(profile)
    graph = load_graph(source, nir_graph)
    dt = resolve_dt(prof, overrides, graph)
    return build(graph, prof, overrides, dt, precision, _hash_source(source, profile, overrides, precision),
                 state_ceiling or {})


def _hash_source(source, profile, overrides, precision) -> str:
    h = hashlib.sha256()
    if isinstance(source, str) or hasattr(source, "__fspath__"):
        with open(source, "rb") as f:
            h.update(f.read())
    else:
        import nir

        def feed(node):
            for key, value in sorted(vars(node).items()):
                if key in ("input_type", "output_type", "metadata"):
                    continue
                if isinstance(node, nir.NIRGraph) and key == "nodes":
                    for k in sorted(value):
                        h.update(k.encode())
                        feed(value[k])
                elif isinstance(value, np.ndarray):
                    h.update(np.ascontiguousarray(value).tobytes())
                else:
                    h.update(repr(value).encode())

        feed(source)
    return h.hexdigest()


def build(g: Graph, profile, overrides: Overrides, dt, precision: str, model_hash: str,
          state_ceiling: dict | None = None) -> CompiledModel:
    """Compile a validated graph: its phases in order (operators, constant inputs, populations and
    readout, projections with their delays and engine encoding, packing into flat arrays)."""
    wdtype = np.float32 if precision == "float32" else np.float64
    ops = linear_operators(g)
    constants = constant_inputs(g, ops)

    pops, pop_of, readout, readout_target = populations(g, profile, overrides, dt, constants, state_ceiling or {})

    # projections
    projections = []
    for src_name in [p.name for p in pops]:
        if src_name == readout_target:
            continue
        for path_nodes, recurrent in paths_from(g, src_name, pop_of, readout_target):
            projections.append(projection(g, ops, profile, overrides, dt, pops, pop_of, src_name, path_nodes, recurrent,
                                          wdtype))
    for pop in pops:
        if pop.kind != KIND_INPUT and not pop.spiking and any(pr.source == pop_of[pop.name] for pr in projections):
            raise ModelError(
                f"{pop.nir_type} is not spiking but drives other nodes; in an event engine only spikes travel",
                node=pop.name, path=g.path)
    arrays = pack_model(pops, projections, readout, wdtype, g.path)
    return CompiledModel(g, profile, overrides, dt, pops, projections, 0, readout, arrays,
                         precision, model_hash, g.path)


def populations(g: Graph, profile, overrides: Overrides, dt, constants: dict, state_ceiling: dict) -> tuple:
    """The populations (Input first, then the neuron nodes in topological order; an integrating
    Output population when the readout is not a single neuron node) and the readout.

    Returns ``(pops, pop_of, readout, readout_target)``: ``pop_of`` maps a node name to its
    population index, ``readout`` is (population, READOUT_COUNTS or READOUT_STATE) and
    ``readout_target`` the Output's name when projections must reach it (else None).
    ``state_ceiling``: {IF/I node name: v_max}, the populations whose state saturates."""
    # populations: Input first, then neurons in topological order
    pops: list = []
    pop_of: dict = {}
    offset = 0

    def add(pop):
        nonlocal offset
        pop.offset = offset
        offset += pop.size
        pop_of[pop.name] = len(pops)
        pops.append(pop)

    add(Population(g.input_name, "Input", KIND_INPUT, g.shapes[g.input_name], 0, True))
    for name in g.order:
        kind = g.type_of(name)
        if kind not in NEURON_TYPES:
            continue
        shape = g.shapes[name]
        model, spiking = neuron_model(profile, overrides, dt, kind, g.nodes[name], shape,
                                      constants.get(name, np.zeros(1)), name, g.path)
        rule = spike_rule(profile, overrides, dt) if spiking else None
        if name in state_ceiling:
            if model.kind != KIND_INTEGRATOR:
                raise ModelError(f"a state ceiling is implemented for IF and I populations, not {kind}",
                                 node=name, path=g.path)
            model.v_max = np.array([float(state_ceiling[name])])
        add(Population(name, kind, model.kind, shape, 0, spiking, model, rule,
                       _compact(constants.get(name, np.zeros(1)))))

    unknown = sorted(set(state_ceiling) - set(pop_of))
    if unknown:
        raise ModelError(f"a state ceiling for {', '.join(unknown)}, which is not a neuron node", path=g.path)

    # readout
    out = g.output_name
    read = _read_through_identities(g, out)
    if read in pop_of:
        src = pop_of[read]
        readout = (src, READOUT_COUNTS if pops[src].spiking else READOUT_STATE)
        readout_target = None
    else:
        shape = g.input_shapes[out]
        bias = constants.get(out, np.zeros(1))
        drive = bias / dt if dt else bias
        model = nm.IntegratorModel(gain=np.ones(1), drive=_compact(drive))
        add(Population(out, "Output", KIND_INTEGRATOR, shape, 0, False, model, None, _compact(bias)))
        readout = (pop_of[out], READOUT_STATE)
        readout_target = out
    return pops, pop_of, readout, readout_target


def linear_operators(g: Graph) -> dict:
    """The linear nodes of the graph as :class:`evsim.model.linear.LinearOp` objects, by node name."""
    ops = {}
    for name in g.order:
        kind = g.type_of(name)
        if kind in LINEAR_TYPES:
            ops[name] = make_op(g.nodes[name], kind, name, g.input_shapes[name], g.shapes[name], g.path)
    return ops


def constant_inputs(g: Graph, ops: dict) -> dict:
    """Constant input each node receives when every population outputs zero (biases).

    Populations output zero here, so constants flow only along chains of linear nodes. A
    chain may close a cycle through a back edge (an Affine ``w_rec`` feeding the neuron that
    feeds it): its bias reaches a node that comes *earlier* in the topological order, so the
    outputs of the linear nodes are computed first (repeated until they settle: one pass
    for an acyclic chain) and each node's input is summed from them afterwards."""
    out_const: dict = {}

    def summed_input(name):
        total = None
        for p in g.predecessors(name):
            if p in out_const:
                value = out_const[p]
                total = value if total is None else total + value.reshape(total.shape)
        return total

    for _ in range(len(g.order) + 1):
        changed = False
        for name in g.order:
            kind = g.type_of(name)
            if kind in NEURON_TYPES or kind in ("Input", "Output"):
                continue
            total = summed_input(name)
            if name in ops:
                op = ops[name]
                has_bias = isinstance(op, DenseOp) and op.bias is not None and np.any(op.bias) or \
                    isinstance(op, ConvOp) and op.has_bias and np.any(op.geometry.bias)
                if total is None and not has_bias:
                    continue
                x = np.zeros(op.in_shape)
                if total is not None:
                    x = x + (total.reshape(op.in_shape) if total.size == x.size else total)
                value = op.apply(x)
            elif total is not None:  # Delay, Passthrough: identity for constants
                value = total
            else:
                continue
            if name not in out_const or not np.array_equal(out_const[name], value):
                out_const[name] = value
                changed = True
        if not changed:
            break
    in_const: dict = {}
    for name in g.order:
        total = summed_input(name)
        if total is not None:
            in_const[name] = total.reshape(g.input_shapes[name]) if total.size > 1 else total
    return {k: np.asarray(v, dtype=np.float64).reshape(-1) for k, v in in_const.items()}


def _read_through_identities(g: Graph, out: str) -> str | None:
    """The node the Output reads directly: its single predecessor, through a chain of
    Passthrough identities (a nested subgraph's Output, docs/SEMANTICS.md#graphs), or None when
    it sums several inputs (or one through a recurrent edge)."""
    node = out
    while True:
        preds = g.predecessors(node)
        if len(preds) != 1 or (preds[0], node) in g.back_edges:
            return None
        node = preds[0]
        if g.type_of(node) != "Passthrough":
            return node


def paths_from(g: Graph, src: str, pop_of: dict, readout_target) -> list:
    """All paths src -> (non-population nodes)* -> population, with a recurrent flag."""
    results = []

    def is_target(name):
        return name in pop_of or (name == g.output_name and readout_target is not None)

    def walk(node, path, recurrent, on_path):
        for nxt in sorted(g.successors(node)):
            rec = recurrent or (node, nxt) in g.back_edges
            if nxt == g.output_name and readout_target is None:
                continue  # direct readout: the Output needs no projection
            if is_target(nxt):
                results.append((path + [nxt], rec))
                continue
            if nxt in on_path:
                raise ModelError("cycle through linear nodes only (algebraic loop)", node=nxt, path=g.path)
            walk(nxt, path + [nxt], rec, on_path | {nxt})

    walk(src, [src], False, {src})
    return results


def projection(g: Graph, ops: dict, profile, overrides: Overrides, dt, pops, pop_of, src_name, path_nodes,
               recurrent, wdtype) -> Projection:
    """One path src → linear nodes → target as a :class:`Projection`: its operator chain (with
    implicit reshapes), delays (uniform ones moved to the source; the recurrent default) and the
    chain encoded for the engine."""
    src = pop_of[src_name]
    dst_name = path_nodes[-1]
    dst = pop_of[dst_name]
    src_shape = pops[src].shape
    dst_shape = pops[dst].shape

    # the linear operators along the path, with implicit reshapes where shapes differ
    chain: list = []
    delays_uniform = 0.0
    delay_nodes = []
    shape = src_shape
    for name in path_nodes[1:-1]:
        kind = g.type_of(name)
        if kind == "Delay":
            delay_nodes.append((name, len(chain), shape))
            continue
        if kind == "Passthrough":
            continue
        op = ops[name]
        if tuple(op.in_shape) != tuple(shape):
            chain.append(ReshapeOp(f"reshape:{name}", tuple(shape), tuple(op.in_shape)))
        chain.append(op)
        shape = tuple(op.out_shape)
    if tuple(shape) != tuple(dst_shape):
        chain.append(ReshapeOp(f"reshape:{dst_name}", tuple(shape), tuple(dst_shape)))

    # delays: uniform ones move to the source (linear operators are time-invariant);
    # per-element ones are allowed where the signal is still a spike train
    per_source = None
    for name, position, shape_at in delay_nodes:
        d = np.asarray(g.nodes[name].delay, dtype=np.float64)
        if np.any(d < 0):
            raise ModelError("negative delay", node=name, path=g.path)
        if d.size == 1 or np.all(d == d.ravel()[0]):
            delays_uniform += float(d.ravel()[0])
            continue
        if any(not op.is_index_map for op in chain[:position]):
            raise ModelError(
                "per-element delays after a weighted node are not supported; put the Delay directly "
                "after the spiking layer or use one delay value", node=name, path=g.path)
        d_full = np.broadcast_to(d.reshape(shape_at) if d.size == int(np.prod(shape_at)) else d, shape_at)
        idx, _ = _compose_index_maps(chain[:position], src_shape)
        d_eng = to_engine_order(d_full, shape_at)
        contrib = np.where(idx >= 0, d_eng[np.maximum(idx, 0)], 0.0)
        per_source = contrib if per_source is None else per_source + contrib

    if recurrent and delays_uniform == 0.0 and (per_source is None or np.any(per_source <= 0)):
        rec = overrides.recurrent_delay_us * 1e-6 if overrides.recurrent_delay_us else dt
        if rec is None:
            raise ModelError(
                f"recurrent edge '{path_nodes[-2]}' -> '{dst_name}' needs a delay: strict NIR has no time step, "
                "pass --recurrent-delay-us (or use a profile with a dt)", node=dst_name, path=g.path)
        delays_uniform += rec
    elif profile.name == "spyx" and pops[src].kind != KIND_INPUT and pops[src].spiking and not recurrent:
        # a Spyx neuron emits the spike of its previous state (spyx/nn.py: s = H(V − θ) before
        # the update): its spikes leave one step after the crossing (docs/SEMANTICS.md#profile-spyx)
        delays_uniform += dt
    engine_ops = encode_chain(chain, src_shape, dst_shape, wdtype)
    return Projection(src, dst, path_nodes, engine_ops, delays_uniform, per_source, recurrent, chain)


def encode_chain(chain: list, src_shape: tuple, dst_shape: tuple, wdtype) -> list:
    """Turn a chain of LinearOps into engine operators, folding index maps forward."""
    ops: list = []
    pending: list = []  # index-map ops not yet folded
    shape = src_shape
    for op in chain:
        if op.is_index_map:
            pending.append(op)
            continue
        in_map, in_scale = _fold(pending, shape)
        pending = []
        if isinstance(op, DenseOp):
            ops.append(encode_dense(op, in_map, in_scale, wdtype))
        else:
            ops.append(encode_conv(op, in_map, in_scale, wdtype))
        shape = tuple(op.out_shape)
    if pending or not ops:
        in_map, in_scale = _fold(pending, shape)
        n_in = int(np.prod(shape))
        ops.append(EngineOp(OP_IDENTITY, n_in, int(np.prod(dst_shape)), in_map, in_scale, None, None, 1, "map"))
    return ops


def pack_model(pops: list, projections: list, readout: tuple, wdtype, path) -> EngineModel:
    """Populations (kinds, flags, parameters in engine order and µs), projections and their
    operators as the flat arrays of :data:`EngineModel`."""
    n_pop = len(pops)
    pop_kind = np.array([p.kind for p in pops], dtype=np.int64)
    pop_offset = np.array([p.offset for p in pops], dtype=np.int64)
    pop_size = np.array([p.size for p in pops], dtype=np.int64)
    pop_flags = np.zeros(n_pop, dtype=np.int64)
    pop_refr = np.zeros(n_pop, dtype=np.float64)
    pop_min_interval = np.zeros(n_pop, dtype=np.float64)
    base = np.zeros((n_pop, N_PARAMS), dtype=np.int64)
    stride = np.zeros((n_pop, N_PARAMS), dtype=np.int64)
    param_chunks = []
    n_params = 0
    for i, p in enumerate(pops):
        flags, pop_refr[i], pop_min_interval[i], slots = population_flags(p)
        pop_flags[i] = flags
        for k in range(N_PARAMS):
            # the engine's time unit is the microsecond (input timestamps stay exact)
            values = np.asarray(slots[k], dtype=np.float64).reshape(-1) * _TIME_SCALE.get(k, 1.0)
            if values.size > 1:
                if values.size != p.size:
                    raise ModelError(f"parameter slot {k} has {values.size} values for {p.size} neurons", node=p.name, path=path)
                values = to_engine_order(values, p.shape)
                stride[i, k] = 1
            base[i, k] = n_params
            param_chunks.append(values)
            n_params += values.size
    params = np.concatenate(param_chunks) if param_chunks else np.zeros(1)
    pop_uniform = np.zeros((n_pop, 3), dtype=wdtype)
    for i in range(n_pop):
        pop_flags[i], pop_uniform[i] = uniform_delivery(pop_flags[i], params, base[i], stride[i], wdtype)

    # projections grouped by source population, in creation order
    order = sorted(range(len(projections)), key=lambda j: (projections[j].source, j))
    proj_ptr = np.zeros(n_pop + 1, dtype=np.int64)
    for j in order:
        proj_ptr[projections[j].source + 1] += 1
    proj_ptr = np.cumsum(proj_ptr)
    pop_proj = np.array(order, dtype=np.int64)
    reserve = np.ones(n_pop, dtype=np.int64) * 4
    for pr in projections:
        reserve[pr.source] += pr.deliveries_bound + 1

    all_ops = []
    proj_op_start = np.zeros(len(projections), dtype=np.int64)
    proj_n_ops = np.zeros(len(projections), dtype=np.int64)
    proj_delay = np.zeros(len(projections), dtype=np.float64)
    proj_delay_base = -np.ones(len(projections), dtype=np.int64)
    delay_chunks = []
    n_delays = 0
    for j, pr in enumerate(projections):
        proj_op_start[j] = len(all_ops)
        proj_n_ops[j] = len(pr.ops)
        all_ops.extend(pr.ops)
        proj_delay[j] = pr.delay_s * 1e6
        if pr.delay_per_source is not None:
            proj_delay_base[j] = n_delays
            delay_chunks.append(np.asarray(pr.delay_per_source, dtype=np.float64) * 1e6)
            n_delays += pr.delay_per_source.size
    delays = np.concatenate(delay_chunks) if delay_chunks else np.zeros(1)

    ops = pack_operators([pr.ops for pr in projections], wdtype)
    index_limit = np.iinfo(RUN_DTYPE).max
    n_neurons = sum(p.size for p in pops)
    if ops.weights.size > index_limit or n_neurons > index_limit:
        raise ModelError(f"{ops.weights.size} weights and {n_neurons} neurons: the engine addresses at most "
                         f"{index_limit} of each", path=path)
    packed = EngineModel(
        pop_kind, pop_offset, pop_size, pop_flags, pop_refr, pop_min_interval, base, stride, params, proj_ptr, pop_proj, reserve,
        np.array([pr.source for pr in projections], dtype=np.int64),
        np.array([pr.target for pr in projections], dtype=np.int64),
        proj_op_start, proj_n_ops, proj_delay, proj_delay_base, delays,
        ops.op_kind, ops.op_in_size, ops.op_out_size, ops.op_map_base, ops.op_scale_base, ops.op_weight_base,
        ops.op_geom, ops.op_scratch_base, ops.maps, ops.scales, ops.weights, ops.conv_tables,
        np.array([readout[0], readout[1], pops[readout[0]].size], dtype=np.int64),
        pop_uniform,
        -np.ones(len(ops.op_kind), dtype=np.int64), np.zeros((1, 2), dtype=RUN_DTYPE),
        np.zeros((1, RUN_COLS), dtype=RUN_DTYPE),
    )
    table_base, run_ptr, run_table = run_tables(packed)
    return packed._replace(op_table_base=table_base, run_ptr=run_ptr, run_table=run_table)


def uniform_delivery(flags: int, params: np.ndarray, base: np.ndarray, stride: np.ndarray, wdtype) -> tuple:
    """F_UNIFORM added to a population's flags when the engine's fused delivery applies to it
    (``evsim.sim.engine._deliver_uniform``: one gain and one threshold, a floor below θ and a
    ceiling at or above the floor, each in the state's precision), and its (firing level, floor,
    ceiling) in that precision (zeros without F_UNIFORM)."""
    values = np.zeros(3, dtype=wdtype)
    if not flags & F_SPIKING or stride[P_GAIN] != 0 or stride[P_THRESHOLD] != 0:
        return flags, values
    theta = float(params[base[P_THRESHOLD]])
    v_min = wdtype(params[base[P_V_MIN]]) if flags & F_FLOOR else wdtype(-np.inf)
    v_max = wdtype(params[base[P_V_MAX]]) if flags & F_CEILING else wdtype(np.inf)
    if (flags & F_FLOOR and (stride[P_V_MIN] != 0 or not float(v_min) < theta)) or \
            (flags & F_CEILING and (stride[P_V_MAX] != 0 or not v_min <= v_max)):
        return flags, values
    values[:] = (firing_level(theta, bool(flags & F_GE), wdtype), v_min, v_max)
    return flags | F_UNIFORM, values


def population_flags(p: Population) -> tuple:
    """The kernel flags of a population (F_*: spiking, threshold rule, reset, multi-spike,
    refractory, shortest interval, floor, dynamics between events, crossings without input) and
    its refractory period and shortest spike interval in µs; also its parameter table."""
    refractory_us = 0.0
    min_interval_us = 0.0
    flags = 0
    slots = nm.parameter_table(p.model) if p.model is not None else {k: np.zeros(1) for k in range(N_PARAMS)}
    if p.kind == KIND_INPUT:
        flags |= F_SPIKING
    if p.spiking and p.rule is not None:
        flags |= F_SPIKING
        flags |= F_GE if p.rule.threshold_ge else 0
        flags |= F_SUBTRACT if p.rule.subtract else 0
        flags |= F_MULTI if p.rule.multi_spike else 0
        if p.rule.refractory_s > 0:
            flags |= F_REFRACTORY
            refractory_us = p.rule.refractory_s * 1e6
        if p.rule.min_interval_s > p.rule.refractory_s:
            if p.rule.refractory_s > 0:
                raise OptionError(
                    f"a refractory period of {p.rule.refractory_s * 1e6:g} µs is shorter than the shortest "
                    f"spike interval ({p.rule.min_interval_s * 1e6:g} µs): give --min-spike-interval-us 0 "
                    "or a refractory period at least as long", option="--refractory-us")
            flags |= F_MIN_INTERVAL
            min_interval_us = p.rule.min_interval_s * 1e6
    if p.model is not None:
        if np.any(np.isfinite(slots[P_V_MIN])):
            flags |= F_FLOOR
        if np.any(np.isfinite(slots[P_V_MAX])):
            flags |= F_CEILING
        if p.kind == KIND_INTEGRATOR:
            if np.any(slots[P_DRIVE] != 0):
                flags |= F_DYNAMIC
            if p.spiking and np.any(slots[P_DRIVE] > 0):
                flags |= F_MAY_CROSS
        elif p.kind == KIND_LEAKY:
            flags |= F_DYNAMIC
            if p.spiking and np.any(slots[P_V_REST] > slots[P_THRESHOLD]):
                flags |= F_MAY_CROSS
        elif p.kind == KIND_CUBA:
            flags |= F_DYNAMIC
            if p.spiking:
                flags |= F_MAY_CROSS
    return flags, refractory_us, min_interval_us, slots


OperatorArrays = namedtuple(
    "OperatorArrays",
    ["op_kind", "op_in_size", "op_out_size", "op_map_base", "op_scale_base", "op_weight_base", "op_geom",
     "op_scratch_base", "maps", "scales", "weights", "conv_tables", "n_scratch"],
)
OperatorArrays.__doc__ = """The operators of several chains packed into flat arrays, as
:func:`evsim.kernels.fanout.op_runs` reads them (the same fields as :data:`EngineModel`)."""


def pack_operators(chains: list, wdtype) -> OperatorArrays:
    """Pack chains of :class:`EngineOp` (one chain per projection, in order) into flat arrays:
    operator ``k`` of chain ``j`` is number ``Σ_{j' < j} len(chains[j']) + k``. Every operator but
    the last of its chain gets a scratch block of its output size (the engine accumulates there)."""
    all_ops = [op for chain in chains for op in chain]
    n_ops = len(all_ops)
    op_kind = np.zeros(n_ops, dtype=np.int64)
    op_in = np.zeros(n_ops, dtype=np.int64)
    op_out = np.zeros(n_ops, dtype=np.int64)
    op_map = -np.ones(n_ops, dtype=np.int64)
    op_scale = -np.ones(n_ops, dtype=np.int64)
    op_wbase = np.zeros(n_ops, dtype=np.int64)
    op_geom = np.zeros((max(n_ops, 1), N_GEOM), dtype=np.int64)
    op_scratch = -np.ones(n_ops, dtype=np.int64)
    maps, scales, weights, tables = [], [], [], []
    n_map = n_scale = n_w = n_scratch = n_tab = 0
    i = 0
    for chain in chains:
        for k, op in enumerate(chain):
            op_kind[i] = op.kind
            op_in[i] = op.in_size
            op_out[i] = op.out_size
            if op.in_map is not None:
                op_map[i] = n_map
                maps.append(op.in_map.astype(np.int64))
                n_map += op.in_map.size
            if op.in_scale is not None:
                op_scale[i] = n_scale
                scales.append(op.in_scale.astype(np.float64))
                n_scale += op.in_scale.size
            if op.weights is not None:
                op_wbase[i] = n_w
                weights.append(op.weights.reshape(-1).astype(wdtype))
                n_w += op.weights.size
            if op.geometry is not None:
                op_geom[i] = op.geometry
                op_geom[i, G_ROWS] = n_tab
                tables.append(op.row_table.ravel())
                n_tab += op.row_table.size
                op_geom[i, G_COLS] = n_tab
                tables.append(op.col_table.ravel())
                n_tab += op.col_table.size
            if k < len(chain) - 1:
                op_scratch[i] = n_scratch
                n_scratch += op.out_size
            i += 1

    def flat(chunks, dtype):
        return np.concatenate(chunks).astype(dtype) if chunks else np.zeros(1, dtype=dtype)

    return OperatorArrays(op_kind, op_in, op_out, op_map, op_scale, op_wbase, op_geom, op_scratch, flat(maps, np.int64),
                          flat(scales, np.float64), flat(weights, wdtype), flat(tables, np.int64), n_scratch)


def encode_dense(op: DenseOp, in_map, in_scale, wdtype) -> EngineOp:
    """A dense operator in engine layout: row i of the weights (W transposed) is what input i reaches."""
    return EngineOp(OP_DENSE, op.in_shape[0], op.out_shape[0], in_map, in_scale,
                    np.ascontiguousarray(op.weight.T, dtype=wdtype), None, op.weight.shape[0], op.name)


#: parameter slots converted from seconds to the engine's microseconds when packed
_TIME_SCALE = {P_TAU_MEM: 1e6, P_TAU_SYN: 1e6, P_DRIVE: 1e-6}


def _compact(values) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.size > 1 and np.all(arr == arr[0]):
        return arr[:1].copy()
    return arr


def _index_map_of(op: LinearOp, shape: tuple) -> tuple:
    """Engine-layout index map and scale of an index-map operator (input -> output, -1 dropped)."""
    n = int(np.prod(shape))
    if isinstance(op, ReshapeOp):
        idx = nir_to_engine(op.out_shape)[engine_to_nir(op.in_shape)]
        return idx, None
    if isinstance(op, ScaleOp):
        return np.arange(n, dtype=np.int64), to_engine_order(op.scale, shape)
    if isinstance(op, ConvOp):  # non-overlapping pool
        g = op.geometry
        c, h, w = as_spatial(g.in_shape)
        _, oh, ow = as_spatial(g.out_shape)
        kh, kw = g.weight.shape[2:]
        e = np.arange(n, dtype=np.int64)
        ch, pos = e % c, e // c
        y, x = pos // w, pos % w
        oy, ox = y // kh, x // kw
        ok = (oy < oh) & (ox < ow)
        idx = np.where(ok, (oy * ow + ox) * c + ch, -1)
        value = float(g.weight.flat[0])
        return idx, (None if value == 1.0 else np.full(n, value))
    raise AssertionError(f"not an index map: {op}")


def _compose_index_maps(ops: list, shape: tuple) -> tuple:
    """Compose index-map operators starting from ``shape``: (index, scale) per input element."""
    n = int(np.prod(shape))
    idx = np.arange(n, dtype=np.int64)
    scale = np.ones(n)
    for op in ops:
        m, s = _index_map_of(op, shape)
        valid = idx >= 0
        new_idx = np.full(n, -1, dtype=np.int64)
        new_idx[valid] = m[idx[valid]]
        if s is not None:
            scale = scale * np.where(valid, s[np.maximum(idx, 0)], 0.0)
        idx = new_idx
        shape = tuple(op.out_shape)
    return idx, scale


def _fold(pending: list, shape: tuple) -> tuple:
    """(in_map, in_scale) of a run of index-map operators; None for identity / unit scale."""
    if not pending:
        return None, None
    idx, scale = _compose_index_maps(pending, shape)
    in_map = None if np.array_equal(idx, np.arange(idx.size)) else idx
    in_scale = None if np.all(scale == 1.0) else scale
    return in_map, in_scale


def encode_conv(op: ConvOp, in_map, in_scale, wdtype) -> EngineOp:
    """Weights and offset tables of a convolution, laid out for delivery by *merged runs*.

    Per input column x, the kernel columns kx that see it (ascending kx, as in
    :func:`conv_offset_table`) reach output columns ox that, with groups = 1 and a dilation that
    divides the stride, are consecutive (ox falls by one per step of kx). In channel-last layout
    their output channels then form ONE contiguous run of n × c_out neurons, so the engine updates
    a whole kernel row with one vectorised loop instead of n short ones. The weights are packed to
    match: per column *pattern* (the list of kx seen by a column; interior columns share one, edge
    columns have shorter ones) a block [ky, c_in, n, cout_g] with the n kernel columns in ascending
    ox order (descending kx).

    Column table, per input column x: [n_groups, (pattern weight offset, first ox, n_sub) × n_groups];
    a group is one run of n_sub sub-runs of cout_g outputs. Where columns cannot merge (groups > 1,
    dilation not dividing the stride) every kx is its own group with n_sub = 1, in ascending kx.
    Row table: as :func:`conv_offset_table` ([n, ky, oy, ...] per input row).

    Order: the engine tests thresholds of a merged run sub-run by sub-run from the LAST to the first
    (ascending kx), groups in order, rows in order: the order of the per-offset delivery, so spikes
    enter the FIFO exactly as before.
    """
    g = op.geometry
    c_in, h, w = as_spatial(g.in_shape)
    c_out, oh, ow = as_spatial(g.out_shape)
    _, cin_g, kh, kw = g.weight.shape
    cout_g = c_out // g.groups
    # full[ky, kx, c, co_local]: for input channel c (group c // cin_g) its output channels
    full = np.zeros((kh, kw, c_in, cout_g), dtype=np.float64)
    for c in range(c_in):
        grp = c // cin_g
        full[:, :, c, :] = g.weight[grp * cout_g:(grp + 1) * cout_g, c - grp * cin_g].transpose(1, 2, 0)
    geom = np.zeros(N_GEOM, dtype=np.int64)
    geom[[G_CIN, G_H, G_W, G_COUT, G_OH, G_OW, G_KH, G_KW]] = [c_in, h, w, c_out, oh, ow, kh, kw]
    geom[[G_SY, G_SX, G_PT, G_PL, G_DY, G_DX, G_GROUPS]] = [g.stride[0], g.stride[1], g.pad_top, g.pad_left,
                                                           g.dilation[0], g.dilation[1], g.groups]
    geom[[G_CIN_G, G_COUT_G]] = [cin_g, cout_g]
    rows = conv_offset_table(h, kh, g.stride[0], g.pad_top, g.dilation[0], oh)
    cols_plain = conv_offset_table(w, kw, g.stride[1], g.pad_left, g.dilation[1], ow)
    mergeable = g.groups == 1
    patterns: dict = {}  # tuple of kx (ascending ox) -> weight offset of its block
    blocks = []
    n_w = 0
    cols = np.zeros((w, 1 + 3 * kw), dtype=np.int64)
    for x in range(w):
        n = int(cols_plain[x, 0])
        kxs = [int(cols_plain[x, 1 + 2 * q]) for q in range(n)]
        oxs = [int(cols_plain[x, 2 + 2 * q]) for q in range(n)]
        if n > 1 and mergeable and all(oxs[q + 1] == oxs[q] - 1 for q in range(n - 1)):
            groups = [(tuple(reversed(kxs)), oxs[-1])]
        else:
            groups = [((kx,), ox) for kx, ox in zip(kxs, oxs)]
        cols[x, 0] = len(groups)
        for q, (pattern, ox0) in enumerate(groups):
            if pattern not in patterns:
                patterns[pattern] = n_w
                # [ky, c, sub-run, co_local]
                blocks.append(np.ascontiguousarray(full[:, list(pattern)].transpose(0, 2, 1, 3)).reshape(-1))
                n_w += blocks[-1].size
            cols[x, 1 + 3 * q: 4 + 3 * q] = [patterns[pattern], ox0, len(pattern)]
    packed = np.concatenate(blocks) if blocks else np.zeros(0)
    return EngineOp(OP_CONV, c_in * h * w, c_out * oh * ow, in_map, in_scale, packed.astype(wdtype), geom,
                    max_targets(op), op.name, rows, cols)


def conv_offset_table(size: int, k: int, stride: int, pad: int, dilation: int, out_size: int) -> np.ndarray:
    """For each input coordinate y: [n, k_0, o_0, k_1, o_1, ...], the kernel offsets k and
    output coordinates o with ``o*stride - pad + k*dilation == y`` (so the engine needs no
    integer division per spike)."""
    table = np.zeros((size, 1 + 2 * k), dtype=np.int64)
    for y in range(size):
        n = 0
        for kk in range(k):
            num = y + pad - kk * dilation
            if num >= 0 and num % stride == 0 and num // stride < out_size:
                table[y, 1 + 2 * n] = kk
                table[y, 2 + 2 * n] = num // stride
                n += 1
        table[y, 0] = n
    return table


def load_model(path_or_graph, profile: str | None = None, precision: str = "float32", quantize: str | None = None,
               **overrides) -> CompiledModel:
    """Compile a NIR file (or ``nir.NIRGraph``) for simulation.

    ``profile=None`` reads the model as it declares itself (a sidecar ``<stem>.evsim.json`` or the
    NIR metadata ``evsim_profile``, see :mod:`evsim.model.declared`), else as strict ``nir``.
    Keyword overrides (see :class:`evsim.model.profiles.Overrides`): reset, v_min,
    spikes_per_update, threshold_ge, refractory_us, dt_us, recurrent_delay_us; ``None`` leaves the
    declared or profile value. The result's ``profile_source`` says where the profile came from.
    ``quantize="speck"`` (profiles speck and sinabs) simulates the network as sinabs deploys it on
    Speck: 8-bit weights, integer thresholds (:mod:`evsim.chip.speck`).
    """
    from ..model.declared import read_declared
    from ..model.graph import read_nir

    is_path = isinstance(path_or_graph, (str, Path))
    nir_graph = None
    if is_path:
        nir_graph = read_nir(path_or_graph) if Path(path_or_graph).is_file() else None
        declared = read_declared(path_or_graph, getattr(nir_graph, "metadata", None))
    else:
        declared = read_declared(None, getattr(path_or_graph, "metadata", None))
    if profile is not None:
        chosen, source = profile, "given"
    elif declared.profile is not None:
        chosen, source = declared.profile, declared.source
    else:
        chosen, source = "nir", "default"
    options = dict(declared.options) if declared.profile is None or chosen == declared.profile else {}
    options.update({k: v for k, v in overrides.items() if v is not None})
    if quantize is not None:
        from ..chip.speck import compile_quantized

        model = compile_quantized(path_or_graph, quantize, chosen, Overrides(**options), precision)
    else:
        model = compile_model(path_or_graph, profile=chosen, overrides=Overrides(**options), precision=precision,
                              nir_graph=nir_graph)
    model.profile_source = source
    return model

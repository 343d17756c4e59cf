"""lava-dl side: slayer CUBA blocks built and run by lava-dl, exported as lava-dl exports them.

    python lava_dl_cases.py OUT [CASE ...]        (then: compare.py OUT, in evsim's environment)

lava-dl (0.6.0) has no NIR module of its own. Its export is ``block.export_hdf5`` (the netx
``network.net`` file: integer weight mantissas, iDecay/vDecay in 1/4096, vThMant in 1/64), and
the NIR repository's ``docs/source/examples/lava/lava_to_nir.py`` (neuromorphs/NIR 7232ada) turns
that file into NIR; ``paper/nir_to_lava.py`` reads NIR back into slayer blocks. This script calls
lava-dl's own ``export_hdf5`` and then applies lava_to_nir.py's mapping (l.39-57, 86-118, 139-183),
written out below (``hdf5_to_nir``): Linear(weight/64), CubaLIF with dt = 1e-4,
τ_mem = dt/(vDecay/4096), τ_syn = dt/(iDecay/4096), r = τ_mem/dt, w_in = τ_syn/dt,
v_threshold = vThMant/64, v_leak = v_reset = 0. Two things lava_to_nir.py cannot do are done
here as nir_to_lava.py reads them: proper input/output edges (lava_to_nir.py l.216-217 hard-codes
them for its 2-layer example) and a recurrent block (no ``dense_rec`` branch in lava_to_nir.py: the
cycle CubaLIF → Linear(weight_rec/64) → CubaLIF that nir_to_lava.py l.212-239 looks for).
For a 2-layer dense network lava_to_nir.py's own ``convert_to_nir`` writes the same graph, value
for value; on the conv and recurrent networks here it raises.

Cases (profile lava-dl, dt = 100 µs, T = 100; 2 neuron layers each):
  dense_*      Dense → Dense (CUBA), two decay/threshold sets, ``delay_shift`` False / True (slayer's default)
  rec_*        Recurrent → Dense (CUBA)
  conv         Conv(3×3, pad 1) → Flatten → Dense
  import_*     the other direction: a NIR file with float weights read into slayer blocks as
               nir_to_lava.py builds them (Affine → synapse.Dense without quantisation; CubaLIF →
               a Dense block with identity weights × w_in·dt/τ_syn, delay_shift False, scale 1 << 6)

Records per case (each of the network's two neuron layers: spikes, voltage after the reset, current):
  slayer        lava-dl as it computes: fixed point (``_li_dynamics_fwd`` in
                slayer/neuron/dynamics/leaky_integrator.py l.210-231 truncates the decayed state
                toward zero every step, ``right_shift_to_zero``); expected to differ wherever a
                truncation moves a threshold crossing (SEMANTICS §6.8)
  slayer_float  the same blocks, weights and input with that one function replaced by the same
                loop in float64 (no truncation): expected equal (import_offgrid: slayer also rounds
                θ, the decays and W_rec, see OFFGRID_WHY)
The fixed-point checks are expected equal where these seeds give no differing spike (FIXED_EQUAL).
Spikes are recorded at the neuron, before a block's ``delay_shift`` (slayer/block/base.py
l.15-39, 548-549): with delay_shift True the next layer sees them one step later, which the
export does not write (lava_to_nir.py reads no delay_shift; lava's netx gets it from the chip's
pipeline): the second layer is expected to differ.

The torchvision that lies on the project machine's disk is a CUDA build that fails to load with
the CPU torch; slayer imports it only for its object-detection subpackage, which is stubbed here
when torchvision does not import.
"""
from __future__ import annotations

import sys
import types
from pathlib import Path

import h5py
import nir
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fwcheck import check, layer, parse_args, versions, write_case  # noqa: E402

try:
    import torchvision  # noqa: F401
except Exception:  # noqa: BLE001 - see the module docstring
    sys.modules["lava.lib.dl.slayer.object_detection"] = types.ModuleType("lava.lib.dl.slayer.object_detection")
import lava.lib.dl.slayer as slayer  # noqa: E402
from lava.lib.dl.slayer.neuron.dynamics import leaky_integrator  # noqa: E402

DT = 1e-4  # lava_to_nir.py l.40 (and nir_to_lava.py ImportConfig.dt)
DT_US = 100
T = 100
SEED = 11

FIXED_FWD = leaky_integrator._li_dynamics_fwd


def float_fwd(input, decay, state, threshold, w_scale, dtype=torch.int32):
    """slayer's ``_li_dynamics_fwd`` (leaky_integrator.py l.210-231) without the fixed point:
    y ← (1 − decay/4096)·y + x, spike and reset to 0 on y ≥ threshold, in float64."""
    y = (state * torch.ones(input.shape[:-1])).to(torch.float64)
    keep = 1.0 - decay.detach().to(torch.float64) / 4096
    out = torch.zeros_like(input)
    for n in range(input.shape[-1]):
        y = keep * y + input[..., n].to(torch.float64)
        out[..., n] = y.to(input.dtype)
        if threshold > 0:
            y = y * (y < threshold)
    return out


class Recorder:
    """Wraps a slayer neuron's ``dynamics`` and ``spike``: every call's current, voltage and
    spikes (a recurrent block calls them once per step), joined along time."""

    def __init__(self, neuron):
        self.u, self.v, self.s = [], [], []
        dyn, spk = neuron.dynamics, neuron.spike

        def dynamics(x):
            u, v = dyn(x)
            self.u.append(u.detach().clone())
            self.v.append(v.detach().clone())
            return u, v

        def spike(v):
            s = spk(v)
            self.s.append(s.detach().clone())
            return s

        neuron.dynamics, neuron.spike = dynamics, spike

    def arrays(self):
        """(T, N) spikes, voltage after the reset (slayer returns it before), current."""
        def flat(lst):
            a = torch.cat(lst, dim=-1)[0]  # batch 0: (*shape, T)
            return a.reshape(-1, a.shape[-1]).T.numpy().astype(np.float64)
        s, v, u = flat(self.s), flat(self.v), flat(self.u)
        return np.round(s).astype(np.int64), v * (1 - s), u


class Net(torch.nn.Module):
    def __init__(self, blocks):
        super().__init__()
        self.blocks = torch.nn.ModuleList(blocks)

    def forward(self, x):
        for b in self.blocks:
            x = b(x)
        return x

    def export_hdf5(self, path):
        """As the lava-dl tutorials export a network (``network.net``)."""
        with h5py.File(path, "w") as h:
            grp = h.create_group("layer")
            for i, b in enumerate(self.blocks):
                b.export_hdf5(grp.create_group(f"{i}"))


def neuron_params(cd, vd, th):
    return {"threshold": th, "current_decay": cd, "voltage_decay": vd}


CASES = {
    # the NMNIST tutorial's neuron (current_decay 0.25, voltage_decay 0.03, threshold 1.25)
    "dense_a": dict(kind="dense", p=(0.25, 0.03, 1.25), scale=(3.0, 2.5), delay_shift=False),
    "dense_a_shift": dict(kind="dense", p=(0.25, 0.03, 1.25), scale=(3.0, 2.5), delay_shift=True),
    # θ 0.8 is not a multiple of 1/64: slayer uses 51/64 and exports vThMant 51
    "dense_b": dict(kind="dense", p=(0.5, 0.1, 0.8), scale=(2.0, 2.0), delay_shift=False),
    # current_decay 1 (u = x: the Oxford tutorial's neuron; lava_to_nir writes τ_syn = dt)
    "dense_cd1": dict(kind="dense", p=(1.0, 0.1, 1.0), scale=(3.0, 2.5), delay_shift=False),
    "rec": dict(kind="rec", p=(0.3, 0.05, 1.0), scale=(3.0, 2.5), delay_shift=False),
    "rec_shift": dict(kind="rec", p=(0.3, 0.05, 1.0), scale=(3.0, 2.5), delay_shift=True),
    "conv": dict(kind="conv", p=(0.4, 0.08, 1.0), scale=(3.0, 2.0), delay_shift=False),
    # decays on slayer's 1/4096 grid and θ on its 1/64 grid (slayer rounds both, below)
    "import_dense": dict(kind="import", p=(0.25, 123 / 4096, 1.0), scale=(0.5, 0.5)),
    "import_rec": dict(kind="import_rec", p=(1229 / 4096, 205 / 4096, 1.0), scale=(0.5, 0.5)),
    # decays 0.3 and 0.05, θ 0.9 and W_rec off those grids: slayer runs 1229/4096, 205/4096, 57/64
    # and W_rec rounded to 1/32
    "import_offgrid": dict(kind="import_rec", p=(0.3, 0.05, 0.9), scale=(0.5, 0.5), offgrid=True),
}
N_IN, N_HID, N_OUT = 16, 24, 8
CONV_IN = (2, 8, 8)


def build(cfg):
    torch.manual_seed(SEED)
    p = neuron_params(*cfg["p"])
    s1, s2 = cfg["scale"]
    kw = dict(delay_shift=cfg["delay_shift"])
    if cfg["kind"] == "dense":
        blocks = [slayer.block.cuba.Dense(p, N_IN, N_HID, weight_scale=s1, **kw),
                  slayer.block.cuba.Dense(p, N_HID, N_OUT, weight_scale=s2, **kw)]
    elif cfg["kind"] == "rec":
        blocks = [slayer.block.cuba.Recurrent(dict(p), N_IN, N_HID, weight_scale=s1, **kw),
                  slayer.block.cuba.Dense(p, N_HID, N_OUT, weight_scale=s2, **kw)]
    else:
        c, h, w = CONV_IN
        blocks = [slayer.block.cuba.Conv(p, c, 4, 3, padding=1, weight_scale=s1, **kw),
                  slayer.block.cuba.Flatten(),
                  slayer.block.cuba.Dense(p, 4 * h * w, N_OUT, weight_scale=s2, **kw)]
    return Net(blocks)


def cuba_node(grp, shape):
    """lava_to_nir.py read_cuba_lif (l.39-57), with the neuron's full shape (it writes
    weight.shape[0] values: the output channels of a conv layer)."""
    nrn = grp["neuron"]
    vdecay, idecay = nrn["vDecay"][()] / 4096, nrn["iDecay"][()] / 4096
    tau_mem = DT / float(vdecay) if vdecay else np.inf  # l.44-45: a decay of 0 is written as τ = inf
    tau_syn = DT / float(idecay) if idecay else np.inf
    full = lambda v: np.full(shape, v, dtype=np.float64)  # noqa: E731
    return nir.CubaLIF(tau_syn=full(tau_syn), tau_mem=full(tau_mem), r=full(tau_mem / DT), v_leak=full(0.0),
                       v_threshold=full(nrn["vThMant"][()] / 64), w_in=full(tau_syn / DT), v_reset=full(0.0))


def hdf5_to_nir(path, in_shape, conv_as_exported=False):
    """The exported network.net as lava_to_nir.py read_node maps it; node keys are its integer
    indices. ``conv_as_exported``: conv weights as lava_to_nir.py l.166-167 writes them (the
    hdf5 mantissas, 64× the weights: only the dense branch, l.106-108, divides by 64)."""
    nodes, edges, prev, shape = {"input": nir.Input(np.array(in_shape))}, [], "input", tuple(in_shape)

    def add(node):
        nonlocal prev
        key = str(len(nodes) - 1)
        nodes[key] = node
        edges.append((prev, key))
        prev = key
        return key

    with h5py.File(path, "r") as f:
        for i in sorted(map(int, f["layer"].keys())):
            grp = f["layer"][str(i)]
            kind = grp["type"][0].decode()
            if kind == "dense":
                add(nir.Linear(weight=grp["weight"][:] / 64))
                shape = (grp["weight"].shape[0],)
                add(cuba_node(grp, shape))
            elif kind == "dense_rec":  # as nir_to_lava.py's RNN subgraph: CubaLIF <-> Linear(W_rec)
                add(nir.Linear(weight=grp["weight"][:] / 64))
                shape = (grp["weight"].shape[0],)
                lif = add(cuba_node(grp, shape))
                rec = str(len(nodes) - 1)
                nodes[rec] = nir.Linear(weight=grp["weight_rec"][:] / 64)
                edges += [(lif, rec), (rec, lif)]
            elif kind == "conv":
                w = grp["weight"][:]
                stride, pad, dil = (tuple(int(x) for x in grp[k][()]) for k in ("stride", "padding", "dilation"))
                add(nir.Conv2d(input_shape=shape[1:], weight=w if conv_as_exported else w / 64, stride=stride,
                               padding=pad, dilation=dil, groups=int(grp["groups"][()]),
                               bias=np.zeros(w.shape[0])))
                shape = tuple(int(x) for x in grp["shape"][()])
                add(cuba_node(grp, shape))
            elif kind == "flatten":
                add(nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0, end_dim=-1))
                shape = (int(np.prod(shape)),)
            else:
                raise NotImplementedError(kind)
    nodes["output"] = nir.Output(np.array(shape))
    edges.append((prev, "output"))
    return nir.NIRGraph(nodes=nodes, edges=edges)


def with_shift_delays(g):
    """The graph with a nir.Delay of one step (dt) on every edge from a CubaLIF to the next layer
    (not on a recurrent edge, not to the output): what slayer's delay_shift does (block/base.py
    l.15-39 on the block's output; a Recurrent block's own feedback is not delayed, l.1476-1481)."""
    nodes, edges = dict(g.nodes), []
    rec = {d for s, d in g.edges if isinstance(g.nodes[s], nir.CubaLIF) and (d, s) in g.edges}
    for s, d in g.edges:
        if isinstance(g.nodes[s], nir.CubaLIF) and d != "output" and d not in rec:
            key = f"{s}.delay"
            nodes[key] = nir.Delay(delay=np.full(g.nodes[s].v_threshold.shape, DT))
            edges += [(s, key), (key, d)]
        else:
            edges.append((s, d))
    return nir.NIRGraph(nodes=nodes, edges=edges)


def neuron_pops(graph):
    return [k for k, n in graph.nodes.items() if isinstance(n, nir.CubaLIF)]


# ------------------------------------------------------------------- the import direction

def import_graph(cfg):
    """A NIR file with float weights and biases (not multiples of 1/32), parameters in
    lava_to_nir.py's convention (dt = τ/r = 1e-4, w_in = τ_syn/dt). W_rec is a multiple of 1/32
    (slayer's Recurrent block rounds it, block/cuba.py l.171-172) unless ``offgrid``."""
    rng = np.random.default_rng(SEED)
    cd, vd, th = cfg["p"]
    s1, s2 = cfg["scale"]
    rec = cfg["kind"] == "import_rec"

    def cuba(n, th_):
        tau_syn, tau_mem = DT / cd, DT / vd
        full = lambda v: np.full(n, v)  # noqa: E731
        return nir.CubaLIF(tau_syn=full(tau_syn), tau_mem=full(tau_mem), r=full(tau_mem / DT), v_leak=full(0.0),
                           v_threshold=full(th_), w_in=full(tau_syn / DT), v_reset=full(0.0))

    nodes = {"input": nir.Input(np.array([N_IN])),
             "0": nir.Affine(weight=rng.normal(0.0, 1.0, (N_HID, N_IN)) * s1, bias=rng.normal(0, 0.02, N_HID)),
             "1": cuba(N_HID, th),
             "2": nir.Affine(weight=rng.normal(0.0, 1.0, (N_OUT, N_HID)) * s2, bias=rng.normal(0, 0.02, N_OUT)),
             "3": cuba(N_OUT, th),
             "output": nir.Output(np.array([N_OUT]))}
    edges = [("input", "0"), ("0", "1"), ("1", "2"), ("2", "3"), ("3", "output")]
    if rec:
        w_rec = rng.normal(0.0, 0.3, (N_HID, N_HID))
        nodes["1r"] = nir.Linear(weight=w_rec if cfg.get("offgrid") else np.round(w_rec * 32) / 32)
        edges += [("1", "1r"), ("1r", "1")]
    return nir.NIRGraph(nodes=nodes, edges=edges)


def import_to_slayer(g):
    """nir_to_lava.py _nir_node_to_lava_dl (l.368-389 Affine, l.410-456 CubaLIF, l.458-528 the
    RNN subgraph), for this graph's chain Affine → CubaLIF (→ W_rec) → Affine → CubaLIF; weights
    as float32 (the input's dtype), the layer's own size (l.412 hard-codes n_neurons = 7)."""
    blocks = []
    for key in ("0", "1", "2", "3"):
        node = g.nodes[key]
        if isinstance(node, nir.Affine):
            dense = slayer.synapse.Dense(in_neurons=node.weight.shape[1], out_neurons=node.weight.shape[0],
                                         weight_scale=1, weight_norm=False, pre_hook_fx=None)
            dense.weight = torch.nn.Parameter(torch.from_numpy(node.weight.reshape(dense.weight.shape)).float())
            dense.bias = torch.nn.Parameter(torch.from_numpy(node.bias.reshape(node.weight.shape[0])).float())
            blocks.append(dense)
            continue
        n = node.v_threshold.size
        params = dict(threshold=float(np.unique(node.v_threshold)[0]),
                      current_decay=float(np.unique(DT / node.tau_syn)[0]),
                      voltage_decay=float(np.unique(DT / node.tau_mem)[0]), shared_param=True, scale=1 << 6)
        w_scale = float(np.unique(node.w_in * DT / node.tau_syn)[0])
        if key + "r" in g.nodes:
            b = slayer.block.cuba.Recurrent(in_neurons=n, out_neurons=n, weight_scale=1, weight_norm=False,
                                            pre_hook_fx=None, delay_shift=False, neuron_params=params)
            b.input_synapse.weight = torch.nn.Parameter(torch.eye(n).reshape(b.input_synapse.weight.shape) * w_scale)
            b.recurrent_synapse.weight = torch.nn.Parameter(
                torch.from_numpy(g.nodes[key + "r"].weight).float().reshape(b.recurrent_synapse.weight.shape))
        else:
            b = slayer.block.cuba.Dense(in_neurons=n, out_neurons=n, weight_scale=1, weight_norm=False,
                                        pre_hook_fx=None, delay_shift=False, neuron_params=params)
            b.synapse.weight = torch.nn.Parameter(torch.eye(n).reshape(b.synapse.weight.shape) * w_scale)
        blocks.append(b)
    return Net(blocks)


# ------------------------------------------------------------------- running

@torch.no_grad()
def run(net, X, fixed):
    """Run net on X (T, *in_shape) counts, batch 1, slayer's NC(HW)T layout; the neuron layers' records."""
    leaky_integrator._li_dynamics_fwd = FIXED_FWD if fixed else float_fwd
    try:
        neurons = [m for m in net.modules() if isinstance(m, slayer.neuron.cuba.Neuron)]
        recs = [Recorder(m) for m in neurons]
        x = torch.as_tensor(np.moveaxis(X, 0, -1)[None], dtype=torch.float32)
        net(x)
        return [r.arrays() for r in recs]
    finally:
        leaky_integrator._li_dynamics_fwd = FIXED_FWD
        for m in net.modules():
            if isinstance(m, slayer.neuron.cuba.Neuron):
                for a in ("dynamics", "spike"):
                    m.__dict__.pop(a, None)


def main(out, cases):
    torch.set_num_threads(1)
    fw = versions("torch", "nir") | {"lava-dl": _dist("lava-dl"), "lava-nc": _dist("lava-nc")}
    for case in cases:
        cfg = CASES[case]
        rng = np.random.default_rng(SEED)
        in_shape = CONV_IN if cfg["kind"] == "conv" else (N_IN,)
        X = (rng.random((T,) + in_shape) < 0.25).astype(np.int64)
        graphs = {}
        if cfg["kind"].startswith("import"):
            g = import_graph(cfg)
            graphs["model.nir"] = g
            recs = {"slayer": run(import_to_slayer(g), X, True), "slayer_float": run(import_to_slayer(g), X, False)}
        else:
            recs = {"slayer": run(build(cfg), X, True), "slayer_float": run(build(cfg), X, False)}
            net = build(cfg)  # a fresh copy (same seed): export what was run
            net(torch.zeros((1,) + in_shape + (1,)))  # slayer sets the neuron shapes on the first call
            h5 = out / f"lava_dl_{case}.net"
            out.mkdir(parents=True, exist_ok=True)
            net.export_hdf5(h5)
            g = hdf5_to_nir(h5, in_shape)
            graphs["model.nir"] = g
            if cfg["kind"] == "conv":
                graphs["model_as_exported.nir"] = hdf5_to_nir(h5, in_shape, conv_as_exported=True)
            if cfg["delay_shift"]:
                graphs["model_delays.nir"] = with_shift_delays(g)
            graphs["network.net"] = h5
        pops = neuron_pops(g)
        arrays, refs = {"counts": X}, {}
        for ref, layers in recs.items():
            refs[ref] = {}
            for pop, (s, v, u) in zip(pops, layers):
                arrays[f"{ref}_s_{pop}"], arrays[f"{ref}_v_{pop}"], arrays[f"{ref}_i_{pop}"] = s, v, u
                refs[ref][pop] = layer(f"{ref}_s_{pop}", f"{ref}_v_{pop}", f"{ref}_i_{pop}")
        checks = expectations(case, cfg, refs, pops)
        write_case(out, f"lava_dl_{case}", graphs=graphs, arrays=arrays, profile="lava-dl", step_us=DT_US, T=T,
                   refs=refs, checks=checks, framework=fw)
        if not cfg["kind"].startswith("import"):
            (out / f"lava_dl_{case}.net").unlink()


FIXED_WHY = ("slayer's fixed point: leaky_integrator.py l.221-222 truncates the decayed state toward "
             "zero every step (right_shift_to_zero); SEMANTICS §6.8")
INPUT_WHY = "and the input int(4096·x) toward zero (l.222; x = float weights and biases here)"
SHIFT_WHY = ("delay_shift=True (slayer's default) delays every block's output by one step "
             "(block/base.py l.15-39, 548-549); the export writes no delay")
OFFGRID_WHY = ("slayer rounds θ down to 1/64 (neuron/base.py l.128), the decays to 1/4096 (neuron/cuba.py "
               "l.150-157, 358, 369: quantize) and the recurrent weights to 1/32 (block/cuba.py l.171-172: "
               "quantize_8bit even with pre_hook_fx=None); evsim reads the file's values")

#: the layers (by position) whose fixed-point spikes equal evsim's for these seeds: there no
#: truncation moved a threshold crossing (deterministic; max|dv| shows the truncations' size)
FIXED_EQUAL = {"dense_a": {0, 1}, "dense_a_shift": {0}, "dense_b": {0, 1}, "dense_cd1": {0, 1}, "rec": {0, 1}, "rec_shift": {0},
               "import_dense": {0, 1}, "import_rec": {0, 1}}


def expectations(case, cfg, refs, pops):
    """One check per record and layer (refs "slayer:POP", "slayer_float:POP"): the float record
    is expected equal except after a delay_shift and with off-grid parameters; the fixed-point
    record as FIXED_EQUAL says."""
    shift, checks = cfg.get("delay_shift", False), []
    for i, pop in enumerate(pops):
        refs[f"slayer:{pop}"] = {pop: refs["slayer"][pop]}
        refs[f"slayer_float:{pop}"] = {pop: refs["slayer_float"][pop]}
        why_float = SHIFT_WHY if shift and i > 0 else OFFGRID_WHY if cfg.get("offgrid") else None
        why_fixed = "; ".join([FIXED_WHY] + ([INPUT_WHY] if cfg["kind"].startswith("import") else [])
                              + ([why_float] if why_float else []))
        if i in FIXED_EQUAL.get(case, ()):
            checks.append(check(f"slayer:{pop}"))
        else:
            checks.append(check(f"slayer:{pop}", expect="differ", why=why_fixed))
        checks.append(check(f"slayer_float:{pop}", expect="differ" if why_float else "equal", why=why_float))
    if shift:  # the step delays written into the file as nir.Delay nodes: equal
        checks.append(check("slayer_float", nir="model_delays.nir"))
    if cfg["kind"] == "conv":
        checks.append(check("slayer_float", nir="model_as_exported.nir", expect="differ",
                            why="lava_to_nir.py l.166-167 writes the conv weights as the hdf5 mantissas "
                                "(64x; its dense branch, l.106-108, divides by 64)"))
    return checks


def _dist(name):
    from importlib.metadata import version
    return version(name)


if __name__ == "__main__":
    out_dir, wanted = parse_args([f"lava_dl_{c}" for c in CASES], __doc__)
    main(out_dir, [w.removeprefix("lava_dl_") for w in wanted])

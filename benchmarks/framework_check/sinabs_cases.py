"""sinabs side: random networks run by sinabs and exported by sinabs.to_nir; the bundled CNN on
real N-MNIST recordings through sinabs.from_nir.

    python sinabs_cases.py OUT [CASE ...]        (then: compare.py OUT, in evsim's environment)

sinabs 3.1 pins nir<=1.0.4, which evsim cannot read with: run this in a venv without evsim and
compare.py in evsim's own. References: "sinabs" = the original module, "from_nir" = sinabs'
own importer on the written file (what the sinabs profile follows, SEMANTICS §6.2).
Profile sinabs (speck for SingleSpike), dt = 1 ms, T = 100 (diag: 200).

  cnn_multi    Conv2d-IAF-SumPool2d-Conv2d(stride 2)-IAF-Flatten-Linear-IAF, MultiSpike, subtract, floor −θ
  cnn_nofloor  same with sinabs' default min_v_mem=None (not in the file)
  cnn_single   SingleSpike (profile speck)
  cnn_mreset   MembraneReset (not in the file: reset="zero")
  cnn_avg      AvgPool2d in place of SumPool2d
  lif_multi    Linear-LIF(τ 8)-Linear-LIF(τ 5), norm_input=False
  lif_norm     same with sinabs' default norm_input=True (not in the file, no evsim option)
  iafbias      Linear(bias)-IAF-Linear(bias)-IAF
  diag         Linear(diagonal, |w| < 1)-IAF, binary input: the §7.6 conditions (event mode exact too)
  nmnist_0..9  the bundled CNN, first recording of each label in $EVSIM_SHARED_DATA/nmnist-train1k
"""
from __future__ import annotations

import inspect
import sys
from pathlib import Path

import h5py
import nir
import numpy as np
import sinabs
import sinabs.layers as sl
import torch
import torch.nn as nn
from sinabs.activation import MembraneReset, MembraneSubtract, MultiSpike, SingleSpike

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fwcheck import REPO, check, layer, parse_args, shared_data, to_numpy, versions, write_case  # noqa: E402

STEP_US = 1000  # the sinabs profile's dt: one sinabs step = 1 ms
BUNDLED = REPO / "evsim" / "bundled" / "nmnist_cnn" / "model.nir"
RANDOM = ["cnn_multi", "cnn_nofloor", "cnn_single", "cnn_mreset", "cnn_avg", "lif_multi", "lif_norm", "iafbias", "diag"]
NMNIST = [f"nmnist_{c}" for c in range(10)]
FW = ("torch", "sinabs", "nir")


def build(case):
    torch.manual_seed(0)
    kw = dict(batch_size=1, record_states=True)
    if "nofloor" not in case:
        kw["min_v_mem"] = -1.0  # as sinabs.from_nir builds IAF: min_v_mem = -v_threshold
    spk = SingleSpike if "single" in case else MultiSpike
    reset = MembraneReset() if "mreset" in case else MembraneSubtract()
    if case.startswith("cnn"):
        iaf = lambda: sl.IAFSqueeze(spike_fn=spk, reset_fn=reset, **kw)  # noqa: E731
        net = nn.Sequential(nn.Conv2d(2, 8, 3, padding=1, bias=False), iaf(),
                            nn.AvgPool2d(2) if "avg" in case else sl.SumPool2d(2),
                            nn.Conv2d(8, 8, 3, stride=2, padding=1, bias=False), iaf(), nn.Flatten(),
                            nn.Linear(8 * 4 * 4, 10, bias=False), iaf())
        return net, (2, 16, 16), 2.5
    if case.startswith("lif"):
        kw.pop("min_v_mem")
        lif = lambda tau: sl.LIFSqueeze(tau_mem=torch.tensor(tau), spike_fn=spk, reset_fn=reset,  # noqa: E731
                                        norm_input="norm" in case, **kw)
        return nn.Sequential(nn.Linear(20, 30, bias=False), lif(8.0), nn.Linear(30, 10, bias=False), lif(5.0)), (20,), 3.0
    if case == "iafbias":
        iaf = lambda: sl.IAFSqueeze(spike_fn=spk, reset_fn=reset, **kw)  # noqa: E731
        return nn.Sequential(nn.Linear(20, 30), iaf(), nn.Linear(30, 10), iaf()), (20,), 3.0
    raise ValueError(case)


def reset_states(net):
    for m in net.modules():
        if isinstance(m, sl.StatefulLayer):
            m.reset_states()


@torch.no_grad()
def run(net, x, single=False):
    """{module name: (spikes (T, N), v_mem (T, N))} for every spiking layer of a sinabs network."""
    reset_states(net)
    outs, layers = {}, [(n, m) for n, m in net.named_modules() if isinstance(m, sl.StatefulLayer)]
    hooks = []
    for n, m in layers:
        m.record_states = True
        if single:
            m.spike_fn = SingleSpike
        hooks.append(m.register_forward_hook(lambda mod, i, o, n=n: outs.__setitem__(n, o)))
    net(x)
    for h in hooks:
        h.remove()
    T = x.shape[0]
    return {n.split(".")[-1]: (outs[n].reshape(T, -1).numpy().round().astype(np.int64),
                               m.recordings["v_mem"].reshape(T, -1).numpy()) for n, m in layers}


def export(net, x, in_shape):
    """sinabs.to_nir, repaired so that the file can be written and says what the module computes."""
    swap = [i for i, m in enumerate(net) if isinstance(m, nn.AvgPool2d)]
    # REPAIR: sinabs.to_nir cannot export nn.AvgPool2d (NotImplementedError): export a SumPool2d
    # in its place and put a nir.AvgPool2d node there (SEMANTICS §5.6: an AvgPool2d is read as such)
    exportable = nn.Sequential(*[sl.SumPool2d(2) if i in swap else m for i, m in enumerate(net)])
    g = to_numpy(sinabs.to_nir(exportable, x[:2]))
    for i in swap:
        g.nodes[str(i)] = nir.AvgPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0]))
    # REPAIR: sinabs.to_nir leaves Conv2d.input_shape and Flatten.input_type None, so nir.write fails
    # ("One of data, shape or dtype must be specified"): fill in the shapes from a forward walk
    h = torch.zeros((1,) + in_shape)
    for i, m in enumerate(net):
        node = g.nodes[str(i)]
        if isinstance(node, nir.Conv2d) and node.input_shape is None:
            node.input_shape = tuple(h.shape[2:])
        if isinstance(node, nir.Flatten) and node.input_type.get("input") is None:
            g.nodes[str(i)] = nir.Flatten(input_type={"input": np.array(h.shape[1:])}, start_dim=node.start_dim,
                                          end_dim=node.end_dim)
        if not isinstance(m, sl.StatefulLayer):
            with torch.no_grad():
                h = m(h)
    return g


def from_nir(path):
    """sinabs' own importer on the written file. REPAIR: its LIF branch calls .unsqueeze on v_leak,
    which nir.read gives as numpy (AttributeError): pass the node arrays as torch tensors."""
    g = nir.read(str(path))
    for node in g.nodes.values():
        for k, v in list(vars(node).items()):
            if isinstance(v, (np.ndarray, np.generic)) and k not in ("input_type", "output_type"):
                setattr(node, k, torch.as_tensor(v))
    return sinabs.from_nir(g, batch_size=1)


def random_case(out, case):
    if case == "diag":
        return diag_case(out)
    net, in_shape, gain = build(case)
    with torch.no_grad():
        for m in net:
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                m.weight.mul_(gain)
                if m.bias is not None:
                    m.bias.uniform_(-0.1, 0.15)
    rng = np.random.default_rng(0)
    counts = rng.poisson(0.15 if case.startswith("cnn") else 0.3, size=(100,) + in_shape).astype(np.int64)
    x = torch.tensor(counts, dtype=torch.float32)
    orig = run(net, x)
    g = export(net, x, in_shape)
    tmp = out / f"sinabs_{case}" / "model.nir"
    tmp.parent.mkdir(parents=True, exist_ok=True)
    nir.write(str(tmp), g)
    rt = run(from_nir(tmp), x) if case != "cnn_avg" else {}  # sinabs.from_nir has no AvgPool2d branch
    arrays, refs = {"counts": counts}, {"sinabs": {}, "from_nir": {}}
    for n, (s, v) in orig.items():
        arrays[f"s_{n}"], arrays[f"v_{n}"] = s, v
        refs["sinabs"][n] = layer(f"s_{n}", f"v_{n}")
        if rt:
            arrays[f"rt_s_{n}"], arrays[f"rt_v_{n}"] = rt[n]
            refs["from_nir"][n] = layer(f"rt_s_{n}", f"rt_v_{n}")
    not_in_file = "sinabs.to_nir does not write {} (SEMANTICS §6.2)"
    checks = {
        "cnn_nofloor": [check("sinabs", expect="differ", why=not_in_file.format("min_v_mem=None")),
                        check("sinabs", {"v_min": -1e30})],  # §6.2: no floor is in effect --v-min -1e30
        "cnn_single": [check("sinabs"), check("from_nir", expect="differ",
                                              why="sinabs.from_nir rebuilds MultiSpike (SEMANTICS §6.2)")],
        "cnn_mreset": [check("sinabs", expect="differ", why=not_in_file.format("MembraneReset")),
                       check("sinabs", {"reset": "zero"})],
        "lif_norm": [check("sinabs", expect="differ", why=not_in_file.format("norm_input=True"))],
    }.get(case, [check("sinabs")])
    if rt and case != "cnn_single":
        checks.append(check("from_nir"))
    if not rt:
        refs.pop("from_nir")
    write_case(out, f"sinabs_{case}", graphs={}, arrays=arrays, profile="speck" if "single" in case else "sinabs",
               step_us=STEP_US, T=100, refs=refs, checks=checks, framework=versions(*FW))


def diag_case(out):
    """The SEMANTICS §7.6 conditions: IF without leak, one presynaptic neuron per neuron, |w| < θ,
    at most one event per input per step: event mode must equal the clock mode (and sinabs) here."""
    torch.manual_seed(5)
    rng = np.random.default_rng(5)
    net = nn.Sequential(nn.Linear(20, 20, bias=False), sl.IAFSqueeze(batch_size=1, min_v_mem=-1.0))
    with torch.no_grad():
        net[0].weight.copy_(torch.diag(torch.tensor(rng.uniform(-0.95, 0.95, 20), dtype=torch.float32)))
    counts = (rng.random((200, 20)) < 0.5).astype(np.int64)
    x = torch.tensor(counts, dtype=torch.float32)
    s, v = run(net, x)["1"]
    write_case(out, "sinabs_diag", graphs={"model.nir": to_numpy(sinabs.to_nir(net, x[:2]))},
               arrays={"counts": counts, "s_1": s, "v_1": v}, profile="sinabs", step_us=STEP_US, T=200,
               refs={"sinabs": {"1": layer("s_1", "v_1")}}, checks=[check("sinabs")], framework=versions(*FW),
               note="SEMANTICS §7.6 conditions: the event mode is expected to be equal too")


def read_nmnist(path):
    """(t, x, y, p) of an N-MNIST .bin file: 5-byte records (x, y, p|t[22:16], t[15:8], t[7:0]);
    y == 240 marks a timestamp overflow of 2**13 µs (SEMANTICS §2.4, evsim's own reader)."""
    r = np.fromfile(path, dtype=np.uint8).reshape(-1, 5).astype(np.int64)
    over = r[:, 1] == 240
    t = ((r[:, 2] & 0x7F) << 16) | (r[:, 3] << 8) | r[:, 4]
    t = t + np.cumsum(over) * (1 << 13)
    keep = ~over
    return t[keep], r[keep, 0], r[keep, 1], r[keep, 2] >> 7


def bundled_graph():
    """The bundled CNN for nir 1.0.4. REPAIR (as benchmarks/bench_clock_sinabs.py): nir 1.0.4's IF has
    no v_reset, so keys a node type of this nir does not know are dropped before building the graph."""
    with h5py.File(BUNDLED, "r") as f:
        d = nir.serialization.hdf2dict(f["node"])
    for node in d["nodes"].values():
        if node["type"] not in ("Input", "Output"):
            params = inspect.signature(nir.ir.str2NIRNode(node["type"]).__init__).parameters
            for key in [k for k in node if k != "type" and k not in params]:
                del node[key]
    return nir.dict2NIRNode(d)


def nmnist_case(out, case):
    """Frames of 1 ms from the first event (SEMANTICS §7.1: evsim's `--mode clock --bin-us 1000`)
    through sinabs.from_nir(bundled model): MultiSpike (profile sinabs) and SingleSpike (profile speck).
    compare.py runs evsim on the recording itself and checks that its bins equal these frames."""
    label = int(case.split("_")[1])
    data = shared_data() / "nmnist-train1k"
    rec = sorted((data / str(label)).glob("*.bin"))[0]
    t, x, y, p = read_nmnist(rec)
    k = (t - t.min()) // STEP_US
    T = int(k.max()) + 1
    frames = np.zeros((T, 2, 34, 34), dtype=np.int64)
    np.add.at(frames, (k, p, y, x), 1)
    arrays, refs = {"frames": frames}, {"from_nir": {}, "from_nir_single": {}}
    g = bundled_graph()
    for ref, single in (("from_nir", False), ("from_nir_single", True)):
        res = run(sinabs.from_nir(g, batch_size=1), torch.tensor(frames, dtype=torch.float32), single=single)
        for n, (s, _) in res.items():
            arrays[f"{ref}_s_{n}"] = s
            refs[ref][n] = layer(f"{ref}_s_{n}")  # spikes only: per-step membranes of 300 steps x 5 layers are slow
    write_case(out, f"sinabs_{case}", graphs={"model.nir": BUNDLED}, arrays=arrays, profile="sinabs", step_us=STEP_US,
               T=T, refs=refs, checks=[check("from_nir"), check("from_nir_single", profile="speck")],
               framework=versions(*FW), input={"recording": str(rec.relative_to(shared_data())), "frames": "frames"},
               note="SingleSpike (one spike per update) is the speck profile")


if __name__ == "__main__":
    out_dir, cases = parse_args(RANDOM + NMNIST, __doc__)
    for c in cases:
        if c in NMNIST:
            if not (shared_data() / "nmnist-train1k").is_dir():
                print(f"{c}: no {shared_data() / 'nmnist-train1k'} (set $EVSIM_SHARED_DATA): skipped")
                continue
            nmnist_case(out_dir, c)
        else:
            random_case(out_dir, c)

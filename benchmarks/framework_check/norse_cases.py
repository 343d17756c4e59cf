"""Norse side: Linear -> cell, run by norse and exported by norse.torch.utils.export_nir.to_nir.

    python norse_cases.py OUT [CASE ...]        (then: compare.py OUT, in evsim's environment)

Cells (profile norse, dt = 1 ms, T = 150, with an Affine bias): LIFCell (-> CubaLIF), LIFBoxCell
(-> LIF), LIBoxCell (-> LI, compared on v), IAFCell (-> IF), and LIFCell with v_leak = 0.1,
v_reset = -0.2. (LICell: norse 1.1.0's exporter writes no node for it; it is reported and skipped.)

Each case writes model.nir, the export with norse 1.1.0's exporter bugs repaired (below), and,
where the repair changed τ, model_as_exported.nir (only made writable), which evsim is expected
to read differently from norse (SEMANTICS §6.5).
"""
from __future__ import annotations

import copy
import sys
from pathlib import Path

import numpy as np
import norse.torch as nt
import torch
from norse.torch.utils.export_nir import to_nir

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fwcheck import check, layer, parse_args, to_numpy, versions, write_case  # noqa: E402

DT_US, T, N_IN, N = 1000, 150, 6, 8
P = dict(tau_mem_inv=torch.tensor(100.0), tau_syn_inv=torch.tensor(200.0), v_th=torch.tensor(0.5))
CELLS = {  # name: (cell factory, weight scale)
    "LIFCell": (lambda: nt.LIFCell(nt.LIFParameters(**P)), 0.8),
    "LIFCell_vleak_vreset": (lambda: nt.LIFCell(nt.LIFParameters(**P, v_leak=torch.tensor(0.1),
                                                                 v_reset=torch.tensor(-0.2))), 0.8),
    "LIFBoxCell": (lambda: nt.LIFBoxCell(nt.LIFBoxParameters(tau_mem_inv=P["tau_mem_inv"], v_th=P["v_th"])), 4.0),
    "LIBoxCell": (lambda: nt.LIBoxCell(nt.LIBoxParameters(tau_mem_inv=P["tau_mem_inv"])), 4.0),
    "IAFCell": (lambda: nt.IAFCell(nt.IAFParameters(v_th=torch.tensor(1.0))), 0.5),
    "LICell": (lambda: nt.LICell(), 1.0),
}


def writable(g):
    """REPAIR: norse 1.1.0's exporter writes 0-d tensors, which nir.write refuses ("Scalar datasets
    don't support chunk/filter options"): every neuron parameter as an array of the layer's size."""
    g = to_numpy(copy.deepcopy(g))
    for node in g.nodes.values():
        if type(node).__name__ in ("LIF", "CubaLIF", "LI", "IF"):
            for a, v in list(vars(node).items()):
                if isinstance(v, np.ndarray) and v.ndim == 0:
                    setattr(node, a, np.full((N,), float(v), dtype=np.float32))
    return g


def repaired(g, cell):
    """REPAIR (SEMANTICS §6.5, "Files from norse 1.1.0's exporter need repairing"): norse 1.1.0
    writes τ = dt/τ_inv (τ·dt: 1e-5 s for τ = 10 ms at dt = 1 ms) where it means 1/τ_inv, and
    writes no v_reset (NIR's 0): put back 1/τ_inv and the cell's v_reset."""
    g = copy.deepcopy(g)
    node = g.nodes["1"]
    full = lambda x: np.full((N,), float(torch.as_tensor(x).detach()), dtype=np.float32)  # noqa: E731
    if type(node).__name__ in ("LIF", "LI"):
        node.tau = full(1.0 / cell.p.tau_mem_inv)
    if type(node).__name__ == "CubaLIF":
        node.tau_mem, node.tau_syn = full(1.0 / cell.p.tau_mem_inv), full(1.0 / cell.p.tau_syn_inv)
    if hasattr(node, "v_reset") and hasattr(cell.p, "v_reset"):
        node.v_reset = full(cell.p.v_reset)
    return g


@torch.no_grad()
def run_norse(net, X):
    state, S, V = None, [], []
    for k in range(X.shape[0]):
        out, state = net(torch.as_tensor(X[k], dtype=torch.float32), state)
        S.append(out.numpy().ravel().copy())
        V.append(state[1].v.numpy().ravel().copy())
    return np.array(S), np.array(V)


def main(out, wanted):
    rng = np.random.default_rng(3)
    for name, (make, scale) in CELLS.items():  # every cell draws from rng, wanted or not: fixed inputs per case
        torch.manual_seed(21)
        fc = torch.nn.Linear(N_IN, N)
        with torch.no_grad():
            fc.weight.copy_(torch.as_tensor(rng.normal(0.3, 1.0, (N, N_IN)) * scale, dtype=torch.float32))
            fc.bias.copy_(torch.as_tensor(rng.normal(0, 0.05, N), dtype=torch.float32))
        cell = make()
        net = nt.SequentialState(fc, cell)
        X = (rng.random((T, N_IN)) < 0.3).astype(np.int64)
        case = f"norse_{name}"
        if case not in wanted:
            continue
        try:
            g = to_nir(net, torch.zeros(1, N_IN))
            assert g.nodes.get("1") is not None, "the exporter wrote no node for the cell"
        except Exception as e:  # noqa: BLE001 - norse 1.1.0 exports no LICell
            print(f"{case}: norse's to_nir fails: {type(e).__name__}: {e}; skipped")
            continue
        S, V = run_norse(net, X)
        spiking = name != "LIBoxCell"  # LI: the cell's output is v; compared as membrane, no spikes
        S = np.round(S).astype(np.int64) if spiking else np.zeros_like(S, dtype=np.int64)
        as_exported, fixed = writable(g), repaired(writable(g), cell)
        graphs, checks = {"model.nir": fixed}, []
        if "vleak" in name:
            checks.append(check("norse", expect="differ", why="norse starts v at v_leak, evsim at 0 "
                                                                "(SEMANTICS §6.5 'Initial state', §4.9)"))
        else:
            checks.append(check("norse"))
        tau_changed = any(not np.array_equal(getattr(as_exported.nodes["1"], a), getattr(fixed.nodes["1"], a))
                          for a in ("tau", "tau_mem") if hasattr(fixed.nodes["1"], a))
        if tau_changed:
            graphs["model_as_exported.nir"] = as_exported
            checks.append(check("norse", nir="model_as_exported.nir", expect="differ",
                                why="norse 1.1.0's exporter writes tau = dt/tau_inv (SEMANTICS §6.5)"))
        write_case(out, case, graphs=graphs, arrays={"counts": X, "s_1": S, "v_1": V}, profile="norse",
                   step_us=DT_US, T=T, refs={"norse": {"1": layer("s_1", "v_1", spiking=spiking)}}, checks=checks,
                   framework=versions("torch", "norse", "nir"))


if __name__ == "__main__":
    out_dir, cases = parse_args([f"norse_{c}" for c in CELLS], __doc__)
    main(out_dir, set(cases))

"""Rockpool side: LinearTorch -> LIFTorch -> LinearTorch -> LIFTorch, run by Rockpool and exported
by rockpool.nn.modules.torch.nir.to_nir.

    python rockpool_cases.py OUT [CASE ...]        (then: compare.py OUT, in evsim's environment)

Profile rockpool (dt solved back from r = τ·e^(−dt/τ)/dt, SEMANTICS §6.6), T = 150, 12-20-6 neurons.
Runs in the sinabs environment (nir 1.0.4): no evsim there.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
import rockpool.nn.modules.torch.nir as rnir
from rockpool.nn.combinators import Sequential
from rockpool.nn.modules import LIFNeuronTorch, LIFTorch, LinearTorch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fwcheck import check, layer, parse_args, to_numpy, versions, write_case  # noqa: E402

T, N_IN, N_HID, N_OUT = 150, 12, 20, 6
CASES = {  # dt (s), τ_mem, τ_syn ("rand": per neuron), threshold, LIF bias, weight gain, input
    "a_dt1ms": dict(dt=1e-3, tau_mem=0.02, tau_syn=0.01, thr=1.0, bias=0.0, gain=0.6, inp="binary"),
    "b_dt05ms_thr05": dict(dt=5e-4, tau_mem=0.005, tau_syn=0.002, thr=0.5, bias=0.0, gain=0.4, inp="counts"),
    "c_pertau_dt01ms": dict(dt=1e-4, tau_mem="rand", tau_syn="rand", thr=1.0, bias=0.0, gain=0.8, inp="binary"),
    "d_multispike": dict(dt=1e-3, tau_mem=0.05, tau_syn=0.005, thr=0.3, bias=0.0, gain=0.5, inp="counts"),
    "e_bias": dict(dt=1e-3, tau_mem=0.02, tau_syn=0.01, thr=1.0, bias=0.05, gain=0.6, inp="binary"),
    "f_affine": dict(dt=1e-3, tau_mem=0.02, tau_syn=0.01, thr=1.0, bias=0.0, gain=0.6, inp="binary", affine=True),
    "g_lifneuron": dict(dt=1e-3, tau_mem=0.02, tau_syn=None, thr=1.0, bias=0.0, gain=1.5, inp="binary",
                        neuron="LIFNeuronTorch"),
}


def build(cfg):
    torch.manual_seed(1)

    def tau(v, n, lo, hi):
        return torch.empty(n).uniform_(lo, hi) if v == "rand" else v

    def neuron(n):
        if cfg.get("neuron") == "LIFNeuronTorch":
            return LIFNeuronTorch(n, tau_mem=cfg["tau_mem"], threshold=cfg["thr"], bias=cfg["bias"], dt=cfg["dt"])
        return LIFTorch(n, tau_mem=tau(cfg["tau_mem"], n, 5e-4, 5e-3), tau_syn=tau(cfg["tau_syn"], n, 2e-4, 2e-3),
                        threshold=cfg["thr"], bias=cfg["bias"], dt=cfg["dt"])

    aff = cfg.get("affine", False)
    net = Sequential(LinearTorch((N_IN, N_HID), has_bias=aff), neuron(N_HID),
                     LinearTorch((N_HID, N_OUT), has_bias=aff), neuron(N_OUT))
    with torch.no_grad():
        for m in net.modules().values():
            if isinstance(m, LinearTorch):
                m.weight.mul_(cfg["gain"])
                if aff:
                    m.bias.uniform_(-0.05, 0.1)
    return net


def main(out, cases):
    for case in cases:
        cfg = CASES[case]
        net = build(cfg)
        rng = np.random.default_rng(1)
        if cfg["inp"] == "binary":
            counts = (rng.random((T, N_IN)) < 0.2).astype(np.int64)
        else:
            counts = rng.poisson(0.4, size=(T, N_IN)).astype(np.int64)
        with torch.no_grad():
            _, _, rec = net(torch.tensor(counts[None], dtype=torch.float32), record=True)
        g = to_numpy(rnir.to_nir(net))
        arrays, refs = {"counts": counts}, {"rockpool": {}}
        for key, r in rec.items():  # the record's keys are the exported node names
            if isinstance(r, dict) and "spikes" in r:
                arrays[f"s_{key}"] = np.round(r["spikes"][0].numpy()).astype(np.int64)
                arrays[f"v_{key}"] = r["vmem"][0].numpy()
                if "isyn" in r:
                    arrays[f"i_{key}"] = r["isyn"][0].numpy().reshape(T, -1)
                refs["rockpool"][key] = layer(f"s_{key}", f"v_{key}", f"i_{key}" if "isyn" in r else None)
        if cfg["bias"]:
            checks = [check("rockpool", expect="differ",
                            why="Rockpool's exporter does not write the LIFTorch bias (SEMANTICS §6.6)")]
        else:
            checks = [check("rockpool")]
        write_case(out, f"rockpool_{case}", graphs={"model.nir": g}, arrays=arrays, profile="rockpool",
                   step_us=round(cfg["dt"] * 1e6), T=T, refs=refs, checks=checks,
                   framework=versions("torch", "rockpool", "nir"))


if __name__ == "__main__":
    out_dir, wanted = parse_args([f"rockpool_{c}" for c in CASES], __doc__)
    main(out_dir, [w.removeprefix("rockpool_") for w in wanted])

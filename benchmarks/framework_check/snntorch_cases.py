"""snnTorch side: random networks built, run and exported (snntorch.export_to_nir) by snnTorch.

    python snntorch_cases.py OUT [CASE ...]        (then: compare.py OUT, in evsim's environment)

Cases (profile snntorch, dt = 100 µs as the exporter writes it, T = 100, float32):
  leaky_*      Linear -> Leaky: β 0.5 / 0.9 / per neuron, θ 1 / 0.5 / per neuron, reset subtract / zero,
               reset_delay False / True (36)
  synaptic_*   Linear -> Synaptic: α, β scalar or per neuron, both resets and timings (8)
  mlp2_*       Linear -> Leaky(β 0.85) -> Linear -> Synaptic(β 0.9): two different betas (4)
  rleaky_a2a_*, rleaky_diag_*   Linear -> RLeaky, all-to-all and diagonal recurrence (8)
  rsynaptic_a2a_*               Linear -> RSynaptic all-to-all (4)
  conv_*       Conv2d -> Leaky -> Flatten -> Linear -> Leaky (4)
The reset mechanism and timing are not in the file (SEMANTICS §6.4): each check gives them to
evsim as options (reset=, reset_delay=).
"""
from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np
import snntorch as snn
import torch
from snntorch.export_nir import export_to_nir

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fwcheck import check, layer, parse_args, to_numpy, versions, write_case  # noqa: E402

DT_US = 100  # snntorch.export_nir writes r = τ/dt with dt = 1e-4 s
T = 100
NEURONS = (snn.Leaky, snn.Synaptic, snn.RLeaky, snn.RSynaptic)
RESETS = list(itertools.product(("subtract", "zero"), (False, True)))


def tag(reset, delay):
    return f"{reset}_{'delay' if delay else 'nodelay'}"


def vec(value, shape):
    """A parameter as a tensor of the layer's shape.

    REPAIR (snntorch 1.0.0 + nir 1.0.8/nirtorch 2.6): with a scalar β or θ the exporter writes 0-d
    LIF parameters and nir's type inference fails ("0.output [[n]] -> 1.input []"); a Conv layer
    needs θ of the full (C, H, W) shape. Per-neuron tensors export correctly and run identically.
    (RLeaky/RSynaptic broadcast their scalars themselves.)"""
    return torch.as_tensor(value, dtype=torch.float32) * torch.ones(shape)


def leaky(shape, beta, thr, reset, delay):
    return snn.Leaky(beta=vec(beta, shape), threshold=vec(thr, shape), reset_mechanism=reset, reset_delay=delay,
                     init_hidden=True)


def synaptic(shape, alpha, beta, thr, reset, delay):
    return snn.Synaptic(alpha=vec(alpha, shape), beta=vec(beta, shape), threshold=vec(thr, shape),
                        reset_mechanism=reset, reset_delay=delay, init_hidden=True)


@torch.no_grad()
def random_linear(n_in, n, w_scale, b_scale):
    """nn.Linear with normal weights and bias (drawn in that order from torch's generator)."""
    fc = torch.nn.Linear(n_in, n)
    fc.weight.copy_(torch.randn(n, n_in) * w_scale)
    fc.bias.copy_(torch.randn(n) * b_scale)
    return fc


@torch.no_grad()
def run_sequential(net, X):
    """Step the network through X (T, *in_shape), unbatched; {module index: (spikes, mem)} per neuron layer."""
    for m in net.modules():
        if isinstance(m, NEURONS):
            for a in ("mem", "syn", "spk"):
                if hasattr(m, a):
                    setattr(m, a, torch.zeros(0))  # init_hidden: zeros broadcast on the first step
    rec = {}
    for k in range(X.shape[0]):
        x = torch.as_tensor(X[k], dtype=torch.float32)
        for i, m in enumerate(net):
            x = m(x)
            x = x[0] if isinstance(x, tuple) else x
            if isinstance(m, NEURONS):
                s, v = rec.setdefault(i, ([], []))
                s.append(x.numpy().ravel().copy())
                v.append(m.mem.numpy().ravel().copy())
    return {i: (np.array(s), np.array(v)) for i, (s, v) in rec.items()}


def save(out, name, net, in_shape, X, reset, delay, fw=None, recurrent=False, checks=None):
    # unbatched sample data: a batched one fails nir's type inference ("input [1 n] -> 0.input [n]")
    g = to_numpy(export_to_nir(net, torch.zeros(*in_shape)))
    fw = fw or run_sequential(net, X)
    arrays, refs = {"counts": X}, {"snntorch": {}}
    for i, (s, v) in fw.items():
        pop = f"{i}.lif" if recurrent else str(i)  # RLeaky/RSynaptic: the exporter's subgraph {i}.lif
        arrays[f"s_{i}"], arrays[f"v_{i}"] = np.round(s).astype(np.int64), v
        refs["snntorch"][pop] = layer(f"s_{i}", f"v_{i}")
    checks = checks or [check("snntorch", {"reset": reset, "reset_delay": delay})]
    write_case(out, name, graphs={"model.nir": g}, arrays=arrays, profile="snntorch", step_us=DT_US, T=T,
               refs=refs, checks=checks, framework=versions("torch", "snntorch", "nir", "nirtorch"))


def spikes_input(rng, shape, p=0.3, p2=0.0):
    X = (rng.random((T,) + shape) < p).astype(np.int64)
    return X + (rng.random((T,) + shape) < p2).astype(np.int64) if p2 else X  # p2: some steps carry 2 events


def feed_forward(out, wanted):
    rng = np.random.default_rng(1234)
    n_in, n = 8, 10
    for (bn, b), (tn, th), (reset, delay) in itertools.product(
            {"b0.5": 0.5, "b0.9": 0.9, "bvec": None}.items(), {"th1": 1.0, "th0.5": 0.5, "thvec": None}.items(), RESETS):
        torch.manual_seed(7)
        b = b if b is not None else rng.uniform(0.3, 0.99, n)
        th = th if th is not None else rng.uniform(0.5, 1.5, n)
        fc = random_linear(n_in, n, 0.7, 0.05)
        X = spikes_input(rng, (n_in,), 0.3, 0.05)
        name = f"snntorch_leaky_{bn}_{tn}_{tag(reset, delay)}"
        if name in wanted:
            save(out, name, torch.nn.Sequential(fc, leaky(n, b, th, reset, delay)), (n_in,), X, reset, delay)
    for (reset, delay), (an, a, b) in itertools.product(RESETS, (("a0.8b0.9", 0.8, 0.9), ("avec", None, None))):
        torch.manual_seed(8)
        a = a if a is not None else rng.uniform(0.3, 0.95, n)
        b = b if b is not None else rng.uniform(0.3, 0.99, n)
        fc = random_linear(n_in, n, 0.4, 0.02)
        X = spikes_input(rng, (n_in,), 0.3, 0.05)
        name = f"snntorch_synaptic_{an}_{tag(reset, delay)}"
        if name in wanted:
            save(out, name, torch.nn.Sequential(fc, synaptic(n, a, b, 1.0, reset, delay)), (n_in,), X, reset, delay)
    for reset, delay in RESETS:
        torch.manual_seed(9)
        fc1, fc2 = torch.nn.Linear(n_in, 16), torch.nn.Linear(16, n)
        with torch.no_grad():
            fc1.weight.copy_(torch.randn(16, n_in) * 0.7)
            fc2.weight.copy_(torch.randn(n, 16) * 0.6)
        net = torch.nn.Sequential(fc1, leaky(16, 0.85, 1.0, reset, delay), fc2, synaptic(n, 0.7, 0.9, 1.0, reset, delay))
        X = spikes_input(rng, (n_in,), 0.3, 0.05)
        name = f"snntorch_mlp2_{tag(reset, delay)}"
        if name in wanted:
            save(out, name, net, (n_in,), X, reset, delay)


@torch.no_grad()
def run_rsynaptic(fc, rs_twin, X):
    """snntorch 1.0.0's RSynaptic with init_hidden=True and reset_delay=False raises a TypeError
    (None / Tensor); run a twin with explicit states (init_hidden=False) instead (SEMANTICS §6.4)."""
    n = rs_twin.recurrent.weight.shape[0]
    spk, syn, mem = torch.zeros(n), torch.zeros(n), torch.zeros(n)
    S, V = [], []
    for k in range(X.shape[0]):
        spk, syn, mem = rs_twin(fc(torch.as_tensor(X[k], dtype=torch.float32)), spk, syn, mem)
        S.append(spk.numpy().copy())
        V.append(mem.numpy().copy())
    return {1: (np.array(S), np.array(V))}


def recurrent_and_conv(out, wanted):
    rng = np.random.default_rng(99)
    n_in, n = 8, 12
    for reset, delay in RESETS:
        tg = tag(reset, delay)
        torch.manual_seed(11)  # RLeaky, all-to-all recurrent nn.Linear (with bias)
        fc = torch.nn.Linear(n_in, n)
        rl = snn.RLeaky(beta=0.9, threshold=1.0, linear_features=n, all_to_all=True, init_hidden=True,
                        reset_mechanism=reset, reset_delay=delay)
        with torch.no_grad():
            fc.weight.copy_(torch.randn(n, n_in) * 0.7)
            rl.recurrent.weight.copy_(torch.randn(n, n) * 0.4)
        X = spikes_input(rng, (n_in,))
        if f"snntorch_rleaky_a2a_{tg}" in wanted:
            save(out, f"snntorch_rleaky_a2a_{tg}", torch.nn.Sequential(fc, rl), (n_in,), X, reset, delay, recurrent=True)
        torch.manual_seed(12)  # RLeaky, diagonal recurrence V
        fc = torch.nn.Linear(n_in, n)
        rl = snn.RLeaky(beta=0.8, threshold=1.0, V=torch.randn(n) * 0.5, all_to_all=False, init_hidden=True,
                        reset_mechanism=reset, reset_delay=delay)
        with torch.no_grad():
            fc.weight.copy_(torch.randn(n, n_in) * 0.7)
        X = spikes_input(rng, (n_in,))
        if f"snntorch_rleaky_diag_{tg}" in wanted:
            save(out, f"snntorch_rleaky_diag_{tg}", torch.nn.Sequential(fc, rl), (n_in,), X, reset, delay,
                 recurrent=True)
        torch.manual_seed(13)  # RSynaptic, all-to-all
        fc = torch.nn.Linear(n_in, n)
        # exported: an init_hidden=True module (reset_delay=True, which runs; the timing is not in the file)
        rs = snn.RSynaptic(alpha=0.8, beta=0.9, threshold=1.0, linear_features=n, all_to_all=True, init_hidden=True,
                           reset_mechanism=reset, reset_delay=True)
        with torch.no_grad():
            fc.weight.copy_(torch.randn(n, n_in) * 0.4)
            rs.recurrent.weight.copy_(torch.randn(n, n) * 0.2)
        twin = snn.RSynaptic(alpha=0.8, beta=0.9, threshold=1.0, linear_features=n, all_to_all=True,
                             init_hidden=False, reset_mechanism=reset, reset_delay=delay)
        twin.recurrent.load_state_dict(rs.recurrent.state_dict())
        X = spikes_input(rng, (n_in,))
        if f"snntorch_rsynaptic_a2a_{tg}" in wanted:
            checks = [check("snntorch", {"reset": reset, "reset_delay": True})]
            if not delay:  # snntorch 1.0.0's RSynaptic ignores reset_delay=False: only --reset-delay matches it
                checks.insert(0, check("snntorch", {"reset": reset, "reset_delay": False}, expect="differ",
                                       why="snntorch 1.0.0's RSynaptic ignores reset_delay=False and resets one step "
                                           "late (framework bug, SEMANTICS §6.4)"))
            save(out, f"snntorch_rsynaptic_a2a_{tg}", torch.nn.Sequential(fc, rs), (n_in,), X, reset, delay,
                 fw=run_rsynaptic(fc, twin, X), recurrent=True, checks=checks)
        torch.manual_seed(14)  # Conv2d -> Leaky -> Flatten -> Linear -> Leaky
        conv, fc2 = torch.nn.Conv2d(2, 4, 3), torch.nn.Linear(144, 5)
        with torch.no_grad():
            conv.weight.copy_(torch.randn(4, 2, 3, 3) * 0.6)
            fc2.weight.copy_(torch.randn(5, 144) * 0.15)
        net = torch.nn.Sequential(conv, leaky((4, 6, 6), 0.9, 1.0, reset, delay), torch.nn.Flatten(start_dim=0), fc2,
                                  leaky((5,), 0.9, 1.0, reset, delay))
        X = spikes_input(rng, (2, 8, 8), 0.15)
        if f"snntorch_conv_{tg}" in wanted:
            save(out, f"snntorch_conv_{tg}", net, (2, 8, 8), X, reset, delay)


ALL = ([f"snntorch_leaky_{b}_{t}_{tag(r, d)}" for b in ("b0.5", "b0.9", "bvec") for t in ("th1", "th0.5", "thvec")
        for r, d in RESETS]
       + [f"snntorch_synaptic_{a}_{tag(r, d)}" for r, d in RESETS for a in ("a0.8b0.9", "avec")]
       + [f"snntorch_mlp2_{tag(r, d)}" for r, d in RESETS]
       + [f"snntorch_{k}_{tag(r, d)}" for r, d in RESETS for k in ("rleaky_a2a", "rleaky_diag", "rsynaptic_a2a", "conv")])

if __name__ == "__main__":
    out_dir, cases = parse_args(ALL, __doc__)
    feed_forward(out_dir, set(cases))
    recurrent_and_conv(out_dir, set(cases))

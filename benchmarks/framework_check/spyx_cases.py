"""Spyx side: nnx.Linear -> neuron -> nnx.Linear -> neuron, run by Spyx (JAX) and exported by
spyx.nir.to_nir (dt = 1, the default).

    python spyx_cases.py OUT [CASE ...]        (then: compare.py OUT, in evsim's environment)

Profile spyx: Spyx writes dt = 1, read as 1 s per step (SEMANTICS §6.7), so the step is 1e6 µs.
T = 150, 12-20-6 neurons, binary input. Alignment (§6.7): Spyx emits at step t the threshold test
of the state after step t − 1, which evsim records at the end of step t − 1: evsim's spike of
step t is compared with Spyx's emitted spike of step t + 1 (spike_shift 1; evsim's last step has
no Spyx counterpart), states at the same step.
"""
from __future__ import annotations

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import spyx.nir as snir
import spyx.nn as snn
from flax import nnx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fwcheck import check, layer, parse_args, to_numpy, versions, write_case  # noqa: E402

T, N_IN, N_HID, N_OUT, SEED, THETA = 150, 12, 20, 6, 3, 1.0
CASES = {
    "lif": dict(kind="LIF", gain=1.5, bias=False),  # per-neuron β, Spyx's default initialisation
    "lif_fixedbeta": dict(kind="LIF", gain=1.5, bias=False, beta=0.8),
    "if": dict(kind="IF", gain=0.8, bias=False),
    "cuba": dict(kind="CuBaLIF", gain=0.8, bias=False),
    "cuba_bias": dict(kind="CuBaLIF", gain=0.8, bias=True),
    "lif_bias": dict(kind="LIF", gain=1.5, bias=True),
}


def build(cfg):
    rngs = nnx.Rngs(SEED)

    def neuron(n):
        if cfg["kind"] == "LIF":
            return snn.LIF((n,), beta=cfg.get("beta"), rngs=rngs)
        if cfg["kind"] == "IF":
            return snn.IF((n,), rngs=rngs)
        return snn.CuBaLIF((n,), alpha=cfg.get("alpha"), beta=cfg.get("beta"), rngs=rngs)

    l1 = nnx.Linear(N_IN, N_HID, use_bias=cfg["bias"], rngs=rngs)
    l2 = nnx.Linear(N_HID, N_OUT, use_bias=cfg["bias"], rngs=rngs)
    for lin in (l1, l2):
        lin.kernel[...] = lin.kernel[...] * cfg["gain"]
        if cfg["bias"]:
            lin.bias[...] = jax.random.uniform(jax.random.PRNGKey(SEED + 7), lin.bias[...].shape, minval=-0.05,
                                               maxval=0.1)
    return snn.Sequential(l1, neuron(N_HID), l2, neuron(N_OUT))


def run_layers(model, x):
    """Step model.layers by hand (as spyx.nn.Sequential.__call__ does), recording every neuron
    layer's emitted spikes and state: {layer index: (spikes (T, N), state (T, N or 2N))}."""
    state, rec = model.initial_state(1), {}
    for t in range(x.shape[0]):
        h, new_state = x[t], []
        for i, (lay, s) in enumerate(zip(model.layers, state)):
            if s is None:
                h = lay(h)
            else:
                h, s = lay(h, s)
                rec.setdefault(i, ([], []))
                rec[i][0].append(np.asarray(h[0]))
                rec[i][1].append(np.asarray(s[0]))
            new_state.append(s)
        state = new_state
    return {i: (np.array(s), np.array(st)) for i, (s, st) in rec.items()}


def main(out, cases):
    for case in cases:
        cfg = CASES[case]
        model = build(cfg)
        counts = (np.random.default_rng(SEED).random((T, N_IN)) < 0.25).astype(np.int64)
        rec = run_layers(model, jnp.asarray(counts[:, None, :], dtype=jnp.float32))
        g = to_numpy(snir.to_nir(model, {"input": np.array([N_IN])}, {"output": np.array([N_OUT])}, dt=1))
        arrays, refs = {"counts": counts}, {"spyx": {}}
        for i, (s, st) in rec.items():
            name, n = f"layer_{i}", s.shape[1]
            arrays[f"s_{name}"] = np.round(s).astype(np.int64)
            if cfg["kind"] == "CuBaLIF":
                V, I = st[:, :n], st[:, n:]
                # evsim stores a CubaLIF's v after its pending reset (SEMANTICS §6.7): V − θ·[V > θ]
                arrays[f"v_{name}"], arrays[f"i_{name}"] = V - THETA * (V > THETA), I
                refs["spyx"][name] = layer(f"s_{name}", f"v_{name}", f"i_{name}")
            else:
                arrays[f"v_{name}"] = st
                refs["spyx"][name] = layer(f"s_{name}", f"v_{name}")
        write_case(out, f"spyx_{case}", graphs={"model.nir": g}, arrays=arrays, profile="spyx", step_us=1e6, T=T,
                   refs=refs, checks=[check("spyx")], spike_shift=1,
                   framework=versions("jax", "flax", "spyx", "nir"))


if __name__ == "__main__":
    out_dir, wanted = parse_args([f"spyx_{c}" for c in CASES], __doc__)
    main(out_dir, [w.removeprefix("spyx_") for w in wanted])

"""Profiles (docs/SEMANTICS.md#profiles): the clock-driven mode at the exporter's dt reproduces each framework's own
discrete-time update equations.

Every reference below is written from the framework's source (cited per function), in numpy,
from the NIR parameters as the exporter writes them -- never from evsim's code. The graphs are
built with the ``nir`` package: Input → Affine (weights and biases) → neuron layer → Affine →
neuron layer → Output, and the recurrent structure snnTorch exports for RSynaptic (a nested
subgraph ``lif → w_rec → lif``). Each step's spikes (``record_spikes``) and every population's
final state are compared.
"""

from __future__ import annotations

import nir
import numpy as np
import pytest

import evsim
from evsim.sim.clock import ClockSimulator

from _nirgraphs import events_at, graph, inp, out
from evsim.input.events import make_events

N_IN, N_HID, N_OUT = 6, 5, 4
N_STEPS = 60


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


def random_input(rng, bin_us: int, n_in: int = N_IN, n_steps: int = N_STEPS, rate: float = 0.35):
    """Events with 0..3 events per input neuron per bin (several at equal timestamps), the first
    at t0 = 1000 µs; and the frames (n_steps, n_in) of event counts, binned here independently:
    bin k holds t0 + k·w <= t < t0 + (k+1)·w."""
    t0 = 1000
    times, idx = [t0], [0]  # one event at t0 fixes the first bin's start
    for k in range(n_steps):
        for i in range(n_in):
            n = rng.binomial(3, rate)
            times += list(t0 + k * bin_us + rng.integers(0, bin_us, size=n))
            idx += [i] * n
    times.append(t0 + (n_steps - 1) * bin_us + bin_us - 1)  # the last bin is n_steps - 1
    idx.append(n_in - 1)
    order = np.argsort(times, kind="stable")
    t = np.asarray(times, dtype=np.int64)[order]
    i = np.asarray(idx, dtype=np.int64)[order]
    frames = np.zeros((n_steps, n_in))
    np.add.at(frames, ((t - t0) // bin_us, i), 1.0)
    return events_at(t, i, (n_in,)), frames


def per_step_spikes(result, name: str, size: int, bin_us: float, n_steps: int) -> np.ndarray:
    """(n_steps, size) spike counts of population ``name`` from the spike record (t_us = end of
    the step)."""
    p = result.node_names.index(name)
    s = result.spikes[result.spikes["node"] == p]
    k = np.round(s["t_us"] / bin_us).astype(np.int64) - 1
    dense = np.zeros((n_steps, size))
    np.add.at(dense, (k, s["neuron"]), s["count"])
    return dense


# --------------------------------------------------------------------------------------------
# Graphs
# --------------------------------------------------------------------------------------------


def ff_graph(w1, b1, layer1, w2, b2, layer2) -> nir.NIRGraph:
    return graph(
        {"input": inp((w1.shape[1],)), "fc1": nir.Affine(weight=w1, bias=b1), "l1": layer1,
         "fc2": nir.Affine(weight=w2, bias=b2), "l2": layer2, "output": out((w2.shape[0],))},
        [("input", "fc1"), ("fc1", "l1"), ("l1", "fc2"), ("fc2", "l2"), ("l2", "output")])


def rsynaptic_graph(w_in, b_in, lif, w_rec) -> nir.NIRGraph:
    """As snntorch/export_nir.py writes RSynaptic: a subgraph {input, lif, w_rec, output} with
    edges input→lif, lif→w_rec, w_rec→lif, lif→output, fed by an Affine."""
    n = w_rec.shape[0]
    inner = graph({"input": inp((n,)), "lif": lif, "w_rec": nir.Linear(weight=w_rec), "output": out((n,))},
                  [("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")])
    return graph({"input": inp((w_in.shape[1],)), "fc": nir.Affine(weight=w_in, bias=b_in), "rec": inner,
                  "output": out((n,))},
                 [("input", "fc"), ("fc", "rec"), ("rec", "output")])


# --------------------------------------------------------------------------------------------
# Reference discrete updates, one function per framework
# --------------------------------------------------------------------------------------------


def expm(a: np.ndarray) -> np.ndarray:
    """Matrix exponential by scaling and squaring with a Taylor series (numpy only)."""
    s = max(0, int(np.ceil(np.log2(max(np.abs(a).sum(axis=1).max(), 1e-300)))) + 1)
    b = a / 2.0 ** s
    term = np.eye(a.shape[0])
    total = term.copy()
    for k in range(1, 30):
        term = term @ b / k
        total = total + term
    for _ in range(s):
        total = total @ total
    return total


class Ref:
    """State of one neuron layer; ``step(syn, bias)`` returns the spikes of one time step.
    ``syn`` = Σ w·s of this step (including recurrent input), ``bias`` = the Affine's bias."""

    def __init__(self, n):
        self.v = np.zeros(n)
        self.i = np.zeros(n)
        self.prev = np.zeros(n)


class NirRef(Ref):
    """Strict NIR (docs/SEMANTICS.md#neurons) integrated exactly over dt, the step's input arriving at its end:
    IF v += R·w (bias: constant current, drive R·b); LIF τ dv/dt = v_leak − v + R·b, v += R·w/τ;
    CubaLIF τs dI/dt = −I + w_in·b, τm dv/dt = v_leak − v + R·I, I += w_in·w/τs (the linear
    system over dt by its matrix exponential); v > θ → one spike, v ← v_reset."""

    def __init__(self, kind, p, dt):
        super().__init__(np.size(p["v_threshold"]))
        self.kind, self.p, self.dt = kind, p, dt

    def step(self, syn, bias):
        p, dt = self.p, self.dt
        if self.kind == "IF":
            self.v = self.v + p["r"] * bias * dt + p["r"] * syn
        elif self.kind == "LIF":
            v_inf = p["v_leak"] + p["r"] * bias
            self.v = v_inf + (self.v - v_inf) * np.exp(-dt / p["tau"]) + p["r"] / p["tau"] * syn
        else:
            for j in range(self.v.size):
                tm, ts, r = p["tau_mem"][j], p["tau_syn"][j], p["r"][j]
                m = np.array([[-1 / tm, r / tm, p["v_leak"][j] / tm],
                              [0.0, -1 / ts, p["w_in"][j] * bias[j] / ts],
                              [0.0, 0.0, 0.0]])
                self.v[j], self.i[j], _ = expm(m * dt) @ np.array([self.v[j], self.i[j], 1.0])
            self.i = self.i + p["w_in"] / p["tau_syn"] * syn
        s = (self.v > p["v_threshold"]).astype(float)
        self.v = np.where(s > 0, p["v_reset"], self.v)
        return s


class SinabsRef(Ref):
    """sinabs as sinabs.from_nir builds it (sinabs/nir.py): IF → IAFSqueeze(min_v_mem=−θ),
    LIF → LIFSqueeze(tau_syn=None, norm_input=False); synaptic current as
    sinabs/layers/functional/lif.py (lif_forward_single: i ← α_s·(i + input), v ← α_m·v + i).
    τ in steps, α = exp(−1/τ); the bias is part of the input every step; spikes v ≥ θ,
    MultiSpike floor(v/θ) (sinabs) or one per step (speck), reset by subtracting n·θ."""

    def __init__(self, kind, p, multi):
        super().__init__(np.size(p["v_threshold"]))
        self.kind, self.p, self.multi = kind, p, multi

    def step(self, syn, bias):
        p, x = self.p, syn + bias
        th = p["v_threshold"]
        if self.kind == "IF":
            self.v = self.v + x
        elif self.kind == "LIF":
            self.v = np.exp(-1.0 / p["tau"]) * self.v + x
        else:
            self.i = np.exp(-1.0 / p["tau_syn"]) * (self.i + p["w_in"] * x)
            self.v = np.exp(-1.0 / p["tau_mem"]) * self.v + self.i
        if self.multi:
            s = np.where(self.v >= th, np.floor(self.v / th), 0.0)
        else:
            s = (self.v >= th).astype(float)
        self.v = self.v - s * th
        if self.kind == "IF":
            self.v = np.maximum(self.v, -th)
        return s


class SnntorchRef(Ref):
    """snnTorch's forward pass written out (snntorch/_neurons/neurons.py, leaky.py, synaptic.py,
    rsynaptic.py at the NIR paper's version 40ad136), H(u) = [u > 0] (every surrogate's forward):

        reset = H(mem − θ)                       # mem: the *stored* membrane of the last step
        Leaky:    subtract mem = β·mem + x − reset·θ ; zero mem = β·((1 − reset)·mem) + x
        RLeaky:   subtract as Leaky                ; zero mem = (1 − reset)·(β·mem + x)
                  (x includes W_rec·spk[t−1]; rleaky.py _base_zero, snntorch 1.0.0)
        Synaptic: syn = α·syn + x; base = β·mem + syn
                  subtract mem = base − reset·θ    ; zero mem = base − reset·base
        spk = H(mem − θ)
        if not reset_delay:                      # the reset follows the spike in the same step
            do_reset = spk − reset
            subtract mem = mem − do_reset·θ      ; zero mem = mem − do_reset·mem

    β, α from the exported τ and dt = τ/r (snntorch/export_nir.py: τ = dt/(1 − β))."""

    def __init__(self, kind, p, reset, dt, reset_delay=False, recurrent=False):
        super().__init__(np.size(p["v_threshold"]))
        self.kind, self.p, self.reset, self.dt, self.reset_delay = kind, p, reset, dt, reset_delay
        self.recurrent = recurrent

    def step(self, syn, bias):
        p, x, dt = self.p, syn + bias, self.dt
        th = p["v_threshold"]
        H = lambda u: (u > 0).astype(float)  # noqa: E731
        reset = H(self.v - th)
        if self.kind == "LIF":
            beta = 1.0 - dt / p["tau"]
            if self.reset == "subtract":
                mem = beta * self.v + x - reset * th
            elif self.recurrent:
                mem = (1.0 - reset) * (beta * self.v + x)
            else:
                mem = beta * ((1.0 - reset) * self.v) + x
        else:
            alpha, beta = 1.0 - dt / p["tau_syn"], 1.0 - dt / p["tau_mem"]
            self.i = alpha * self.i + x
            base = beta * self.v + self.i
            mem = base - reset * th if self.reset == "subtract" else base - reset * base
        spk = H(mem - th)
        if not self.reset_delay:
            do_reset = spk - reset
            mem = mem - do_reset * th if self.reset == "subtract" else mem - do_reset * mem
        self.v = mem
        return spk


class NorseRef(Ref):
    """norse, forward Euler with dt = 1 ms. CubaLIF = LIFCell, norse/torch/functional/lif.py
    (``lif_feed_forward_step``, norse 065a3b4): i_new = i + input; dv = dt·τm⁻¹·((v_leak − v) +
    i_new); v_dec = v + dv; i = i_new − dt·τs⁻¹·i_new; z = H(v_dec − θ); v = (1 − z)·v_dec + z·v_reset.
    LIF = LIFBoxCell, norse/torch/functional/lif_box.py: dv = dt·τ⁻¹·(input + v_leak − v),
    z = H(v_dec − θ), reset to v_reset. IF = IAFCell, norse/torch/functional/iaf.py:
    v = v + input, z = H(v − θ), reset to v_reset. (norse.torch.utils.export_nir writes r = 1,
    w_in = 1.)"""

    def __init__(self, kind, p, dt):
        super().__init__(np.size(p["v_threshold"]))
        self.kind, self.p, self.dt = kind, p, dt

    def step(self, syn, bias):
        p, x, dt = self.p, syn + bias, self.dt
        th = p["v_threshold"]
        if self.kind == "CubaLIF":
            i_new = self.i + x
            v_dec = self.v + dt / p["tau_mem"] * ((p["v_leak"] - self.v) + i_new)
            self.i = i_new - dt / p["tau_syn"] * i_new
            z = (v_dec - th > 0).astype(float)
            self.v = (1 - z) * v_dec + z * p["v_reset"]
            return z
        if self.kind == "LIF":
            v_dec = self.v + dt / p["tau"] * (x + p["v_leak"] - self.v)
        else:
            v_dec = self.v + x
        z = (v_dec - th > 0).astype(float)
        self.v = (1 - z) * v_dec + z * p["v_reset"]
        return z


class RockpoolRef(Ref):
    """Rockpool's torch modules as rockpool/nn/modules/torch/nir.py imports and exports them
    (synsense/rockpool 42cee1c). CubaLIF = LIFTorch, lif_torch.py l.687-709::

        isyn = isyn + input              # (+ w_rec·spikes of the previous step, l.690-695)
        vmem *= alpha; isyn *= beta      # alpha = exp(−dt/τ_mem), beta = exp(−dt/τ_syn) (l.128-129, l.524)
        vmem = vmem + isyn + bias        # bias = the node's v_leak (nir.py l.126-136)
        spikes = (vmem >= θ)·floor(vmem/θ)   (StepPWL, l.43; clamp at 2**16 never reached here)
        vmem = vmem − spikes·θ

    LIF = LIFNeuronTorch, lif_neuron_torch.py l.258-272: vmem *= exp(−dt/τ); vmem += input;
    vmem += bias; the same spikes and reset. dt: the exporter's (nir.py l.265-270: r = τ·exp(−dt/τ)/dt)."""

    def __init__(self, kind, p, dt):
        super().__init__(np.size(p["v_threshold"]))
        self.kind, self.p, self.dt = kind, p, dt

    def step(self, syn, bias):
        p, x, dt = self.p, syn + bias, self.dt
        th = p["v_threshold"]
        if self.kind == "CubaLIF":
            self.i = self.i + x
            self.v = self.v * np.exp(-dt / p["tau_mem"])
            self.i = self.i * np.exp(-dt / p["tau_syn"])
            self.v = self.v + self.i + p["v_leak"]
        else:
            self.v = self.v * np.exp(-dt / p["tau"])
            self.v = self.v + x
            self.v = self.v + p["v_leak"]
        n = (self.v >= th) * np.floor(self.v / th)
        self.v = self.v - n * th
        return n


class SpyxRef(Ref):
    """Spyx's neurons (kmheckel/spyx 38374e9, src/spyx/nn.py) with the parameters spyx/nir.py
    ``from_nir(graph, dt=1)`` derives (beta = 1 − dt/τ, alpha = 1 − dt/τ_syn; r, w_in, v_leak
    ignored); spike = heaviside(V − θ) = [V − θ > 0] (axn.py). The spike comes from the state
    *before* this step's input::

        IF      (l.167-168): s = H(V − θ); V = V + x − s·θ
        LIF     (l.215-216): s = H(V − θ); V = beta·V + x − s·θ
        CuBaLIF (l.451-454): s = H(V − θ); V = V − s·θ; I = alpha·I + x; V = beta·V + I
        RCuBaLIF(l.591-595): as CuBaLIF with I = alpha·I + x + s·W_rec (this step's s)

    ``step`` returns s, the spikes the layer emits in this step (fed to the next layer in the same
    step). ``w_rec``: the recurrent matrix of an RCuBaLIF (row = target)."""

    def __init__(self, kind, p, dt, w_rec=None):
        super().__init__(np.size(p["v_threshold"]))
        self.kind, self.p, self.dt, self.w_rec = kind, p, dt, w_rec

    def step(self, syn, bias):
        p, x, dt = self.p, syn + bias, self.dt
        th = p["v_threshold"]
        s = (self.v - th > 0).astype(float)
        if self.kind == "IF":
            self.v = self.v + x - s * th
        elif self.kind == "LIF":
            self.v = (1.0 - dt / p["tau"]) * self.v + x - s * th
        else:
            self.v = self.v - s * th
            feedback = self.w_rec @ s if self.w_rec is not None else 0.0
            self.i = (1.0 - dt / p["tau_syn"]) * self.i + x + feedback
            self.v = (1.0 - dt / p["tau_mem"]) * self.v + self.i
        return s


class LavaDlRef(Ref):
    """lava-dl's slayer CUBA neuron in floating point (lava-nc/lava-dl d825ac5,
    src/lava/lib/dl/slayer/neuron/cuba.py l.52-62 and l.356-374; threshold_eps l.129-134)::

        u[t] = (1 − α_u)·u[t−1] + x[t]
        v[t] = (1 − α_v)·v[t−1] + u[t]
        s[t] = v[t] ≥ θ + 0.01/4096
        v[t] = v[t]·(1 − s[t])

    with the parameters paper/nir_to_lava.py (neuromorphs/NIR) derives: α_u = dt/τ_syn,
    α_v = dt/τ_mem, the input weights scaled by w_in·dt/τ_syn (= 1 from lava_to_nir.py), dt = 1e-4.
    LIF: a CUBA neuron without current state (α_u = 1, u = x)."""

    def __init__(self, kind, p, dt):
        super().__init__(np.size(p["v_threshold"]))
        self.kind, self.p, self.dt = kind, p, dt

    def step(self, syn, bias):
        p, x, dt = self.p, syn + bias, self.dt
        if self.kind == "CubaLIF":
            self.i = (1.0 - dt / p["tau_syn"]) * self.i + p["w_in"] * dt / p["tau_syn"] * x
            self.v = (1.0 - dt / p["tau_mem"]) * self.v + self.i
        else:
            self.v = (1.0 - dt / p["tau"]) * self.v + x
        s = (self.v >= p["v_threshold"] + 0.01 / 4096).astype(float)
        self.v = self.v * (1.0 - s)
        return s


def reference(profile: str, kind: str, p: dict, *, dt: float, reset: str | None = None, reset_delay: bool = False,
              recurrent: bool = False):
    """The framework's update; ``reset`` None: the profile's default (snnTorch's importer: zero);
    ``recurrent``: the neuron of snnTorch's RLeaky / RSynaptic."""
    if profile == "nir":
        return NirRef(kind, p, dt)
    if profile in ("sinabs", "speck"):
        return SinabsRef(kind, p, multi=profile == "sinabs")
    if profile == "snntorch":
        return SnntorchRef(kind, p, reset or "zero", dt, reset_delay, recurrent)
    if profile == "rockpool":
        return RockpoolRef(kind, p, dt)
    if profile == "spyx":
        return SpyxRef(kind, p, dt)
    if profile == "lava-dl":
        return LavaDlRef(kind, p, dt)
    return NorseRef(kind, p, dt)


# --------------------------------------------------------------------------------------------
# Parameters as each exporter writes them
# --------------------------------------------------------------------------------------------

BIN_US = {"nir": 500, "sinabs": 1000, "speck": 1000, "snntorch": 100, "norse": 1000, "rockpool": 1000,
          "spyx": 1_000_000, "lava-dl": 100}
SNNTORCH_DT = 1e-4


def exporter_dt(profile: str, bin_us: int) -> float:
    """The framework's time step the reference runs at: snnTorch's and lava_to_nir's 1e-4 s,
    Spyx's 1 (its exporter's default; evsim reads it as 1 s), else the bin width."""
    return {"snntorch": SNNTORCH_DT, "lava-dl": SNNTORCH_DT, "spyx": 1.0}.get(profile, bin_us * 1e-6)


def layer_params(profile: str, kind: str, n: int, rng) -> tuple:
    """(NIR node, parameter dict for the reference, weight scale) for one layer."""
    u = lambda lo, hi: rng.uniform(lo, hi, size=n)  # noqa: E731
    theta = u(0.6, 1.2)
    if profile == "nir":
        dt = BIN_US["nir"] * 1e-6
        if kind == "IF":
            p = dict(r=u(0.8, 1.2), v_threshold=theta, v_reset=u(-0.2, 0.1))
            return nir.IF(**p), p, 0.6
        if kind == "LIF":
            tau = u(2e-3, 8e-3)
            p = dict(tau=tau, r=tau * u(0.8, 1.2), v_leak=u(-0.1, 0.1), v_threshold=theta, v_reset=u(-0.2, 0.1))
            return nir.LIF(**p), p, 0.6
        tau_syn, tau_mem = u(1e-3, 3e-3), u(3e-3, 8e-3)
        tau_mem[0] = tau_syn[0]  # the τs = τm case of the closed form
        p = dict(tau_syn=tau_syn, tau_mem=tau_mem, r=u(0.8, 1.2) * tau_mem / dt, v_leak=u(-0.1, 0.1),
                 v_threshold=theta, v_reset=u(-0.2, 0.1), w_in=tau_syn * u(0.8, 1.2))
        return nir.CubaLIF(**p), p, 0.3
    if profile in ("sinabs", "speck"):
        if kind == "IF":
            p = dict(r=np.ones(n), v_threshold=theta, v_reset=np.zeros(n))
            return nir.IF(**p), p, 0.6
        if kind == "LIF":
            p = dict(tau=u(4.0, 20.0), r=np.ones(n), v_leak=np.zeros(n), v_threshold=theta, v_reset=np.zeros(n))
            return nir.LIF(**p), p, 0.6
        p = dict(tau_syn=u(2.0, 5.0), tau_mem=u(5.0, 20.0), r=np.ones(n), v_leak=np.zeros(n),
                 v_threshold=theta, v_reset=np.zeros(n), w_in=u(0.8, 1.2))
        return nir.CubaLIF(**p), p, 0.25
    if profile == "snntorch":
        dt = SNNTORCH_DT
        if kind == "LIF":  # snn.Leaky as snntorch/export_nir.py writes it
            beta = u(0.75, 0.95)
            tau = dt / (1 - beta)
            p = dict(tau=tau, r=tau / dt, v_leak=np.zeros(n), v_threshold=theta)
            return nir.LIF(**p), p, 0.6
        alpha, beta = u(0.5, 0.9), u(0.75, 0.95)  # snn.Synaptic
        tau_syn, tau_mem = dt / (1 - alpha), dt / (1 - beta)
        p = dict(tau_syn=tau_syn, tau_mem=tau_mem, r=tau_mem / dt, v_leak=np.zeros(n), v_threshold=theta,
                 w_in=tau_syn / dt)
        return nir.CubaLIF(**p), p, 0.25
    if profile == "rockpool":  # rockpool/nn/modules/torch/nir.py l.253-296: r = τ·exp(−dt/τ)/dt, no w_in
        dt = BIN_US["rockpool"] * 1e-6
        if kind == "LIF":  # LIFNeuronTorch; v_leak (0 in exported files) is the bias Rockpool's importer makes of it
            tau = u(4e-3, 20e-3)
            p = dict(tau=tau, r=tau * np.exp(-dt / tau) / dt, v_leak=u(-0.03, 0.03), v_threshold=theta)
            return nir.LIF(**p), p, 0.6
        tau_syn, tau_mem = u(2e-3, 5e-3), u(5e-3, 20e-3)
        p = dict(tau_syn=tau_syn, tau_mem=tau_mem, r=tau_mem * np.exp(-dt / tau_mem) / dt, v_leak=np.zeros(n),
                 v_threshold=theta)
        return nir.CubaLIF(**p), p, 0.2
    if profile == "spyx":  # spyx/nir.py to_nir (dt = 1): τ = dt/(1 − β), r = β
        if kind == "IF":
            p = dict(r=np.ones(n), v_threshold=theta)
            return nir.IF(**p), p, 0.6
        if kind == "LIF":
            beta = u(0.75, 0.95)
            p = dict(tau=1.0 / (1.0 - beta), r=beta, v_leak=np.zeros(n), v_threshold=theta)
            return nir.LIF(**p), p, 0.6
        alpha, beta = u(0.5, 0.9), u(0.75, 0.95)
        p = dict(tau_syn=1.0 / (1.0 - alpha), tau_mem=1.0 / (1.0 - beta), r=beta, v_leak=np.zeros(n),
                 v_threshold=theta, w_in=np.ones(n))
        return nir.CubaLIF(**p), p, 0.25
    if profile == "lava-dl":  # lava_to_nir.py read_cuba_lif: τ = dt/decay, r = τ_mem/dt, w_in = τ_syn/dt
        dt = SNNTORCH_DT
        if kind == "LIF":
            tau = dt / u(0.05, 0.25)
            p = dict(tau=tau, r=tau / dt, v_leak=np.zeros(n), v_threshold=theta, v_reset=np.zeros(n))
            return nir.LIF(**p), p, 0.6
        tau_syn, tau_mem = dt / u(0.1, 0.5), dt / u(0.05, 0.25)
        p = dict(tau_syn=tau_syn, tau_mem=tau_mem, r=tau_mem / dt, v_leak=np.zeros(n), v_threshold=theta,
                 v_reset=np.zeros(n), w_in=tau_syn / dt)
        return nir.CubaLIF(**p), p, 0.25
    # norse (norse/torch/utils/export_nir.py): τ = 1/τ_inv in seconds, r = w_in = 1
    v_reset = u(-0.4, -0.1)  # norse writes v_reset; here deliberately ≠ 0
    if kind == "IF":
        p = dict(r=np.ones(n), v_threshold=theta, v_reset=v_reset)
        return nir.IF(**p), p, 0.6
    if kind == "LIF":
        p = dict(tau=u(2e-3, 5e-3), r=np.ones(n), v_leak=u(-0.1, 0.1), v_threshold=theta, v_reset=v_reset)
        return nir.LIF(**p), p, 2.0
    p = dict(tau_syn=u(2e-3, 5e-3), tau_mem=u(3e-3, 8e-3), r=np.ones(n), v_leak=u(-0.1, 0.1), v_threshold=theta,
             v_reset=v_reset, w_in=np.ones(n))
    return nir.CubaLIF(**p), p, 1.0


CASES = [("nir", "IF"), ("nir", "LIF"), ("nir", "CubaLIF"),
         ("sinabs", "IF"), ("sinabs", "LIF"), ("sinabs", "CubaLIF"),
         ("speck", "IF"), ("speck", "LIF"), ("speck", "CubaLIF"),
         ("snntorch", "LIF"), ("snntorch", "CubaLIF"),
         ("norse", "LIF"), ("norse", "CubaLIF"),
         ("rockpool", "LIF"), ("rockpool", "CubaLIF"), ("lava-dl", "LIF"), ("lava-dl", "CubaLIF")]


def run_reference(refs, weights, biases, frames, recurrent=None) -> list:
    """Step a chain of reference layers: layer l gets W_l·s_{l−1}[t] + b_l (+ W_rec·s_l[t−1])."""
    spikes = [np.zeros((frames.shape[0], w.shape[0])) for w in weights]
    for t in range(frames.shape[0]):
        s = frames[t]
        for l, (ref, w, b) in enumerate(zip(refs, weights, biases)):
            syn = w @ s
            if recurrent is not None and l == len(refs) - 1 and t > 0:
                syn = syn + recurrent @ spikes[l][t - 1]
            s = ref.step(syn, b)
            spikes[l][t] = s
    return spikes


def two_layer_net(profile: str, kinds: tuple, rng, bias: str = "scaled") -> tuple:
    """Two layers (N_IN → N_HID → N_OUT) whose weights make both fire in some steps but not all:
    (nodes, reference parameters, weights, biases). ``bias``: "scaled" (0.1 × the layer's weight
    scale), "unit" (scale 0.1) or "zero"."""
    node1, p1, s1 = layer_params(profile, kinds[0], N_HID, rng)
    node2, p2, s2 = layer_params(profile, kinds[1], N_OUT, rng)
    w1 = rng.normal(scale=s1, size=(N_HID, N_IN)) + 0.3 * s1
    w2 = rng.normal(scale=1.5 * s2, size=(N_OUT, N_HID)) + 0.3 * s2
    if bias == "zero":
        b1, b2 = np.zeros(N_HID), np.zeros(N_OUT)
    else:
        k1, k2 = (0.1 * s1, 0.1 * s2) if bias == "scaled" else (0.1, 0.1)
        b1, b2 = rng.normal(scale=k1, size=N_HID), rng.normal(scale=k2, size=N_OUT)
    return (node1, node2), (p1, p2), (w1, w2), (b1, b2)


def run_clock(model, bin_us, events):
    return ClockSimulator(model, bin_us=bin_us, record_spikes=True, keep_state=True).run(events)


def check(result, names, refs, ref_spikes, bin_us, sizes):
    state = result.extra["state"]
    for name, ref, expected, n in zip(names, refs, ref_spikes, sizes):
        got = per_step_spikes(result, name, n, bin_us, expected.shape[0])
        np.testing.assert_array_equal(got, expected, err_msg=f"spikes of {name}")
        np.testing.assert_allclose(state[name]["v"], ref.v, rtol=1e-9, atol=1e-12, err_msg=f"v of {name}")
        if "i" in state[name]:
            np.testing.assert_allclose(state[name]["i"], ref.i, rtol=1e-9, atol=1e-12, err_msg=f"I of {name}")


@pytest.mark.parametrize("profile,kind", CASES, ids=[f"{p}-{k}" for p, k in CASES])
def test_feed_forward_with_biases_matches_the_framework(profile, kind):
    rng = np.random.default_rng(CASES.index((profile, kind)))
    bin_us = BIN_US[profile]
    events, frames = random_input(rng, bin_us)
    (node1, node2), (p1, p2), (w1, w2), (b1, b2) = two_layer_net(profile, (kind, kind), rng)
    if profile == "nir" and kind == "IF":  # strict NIR: a bias is a current (per second)
        b1, b2 = b1 / (bin_us * 1e-6), b2 / (bin_us * 1e-6)
    g = ff_graph(w1, b1, node1, w2, b2, node2)

    dt = exporter_dt(profile, bin_us)
    refs = [reference(profile, kind, p1, dt=dt), reference(profile, kind, p2, dt=dt)]
    ref_spikes = run_reference(refs, [w1, w2], [b1, b2], frames)

    model = evsim.load_model(g, profile=profile, precision="float64")
    if profile in ("snntorch", "lava-dl", "rockpool"):
        assert abs(model.dt_s - dt) < 1e-12 * dt  # the exporter's dt read back from τ and r
    result = run_clock(model, bin_us, events)
    assert result.extra["n_steps"] == N_STEPS
    check(result, ["l1", "l2"], refs, ref_spikes, bin_us, [N_HID, N_OUT])
    # the test is only meaningful if both layers fire, but not in every step
    for s in ref_spikes:
        assert 0 < np.count_nonzero(s) < s.size, (profile, kind, np.count_nonzero(s))


@pytest.mark.parametrize("profile", ["lava-dl", "snntorch"])
def test_cuba_whose_current_keeps_nothing_between_steps_matches_the_framework(profile):
    """τ_syn = dt, α = 1 − dt/τ_syn = 0: the current is this step's input (I ← x, then v ← βv + I).
    lava_to_nir.py writes it for slayer's current_decay = 1 (iDecay 4096, the lava-dl tutorials'
    neuron); such files were refused ("decay factor per step must be in (0, 1]"). Both layers,
    with biases, against the framework's update written out (the references above, α = 0)."""
    rng = np.random.default_rng(21)
    bin_us = BIN_US[profile]
    events, frames = random_input(rng, bin_us)
    _, (p1, p2), (w1, w2), (b1, b2) = two_layer_net(profile, ("CubaLIF", "CubaLIF"), rng)
    dt = exporter_dt(profile, bin_us)
    for p in (p1, p2):
        p["tau_syn"] = np.full(np.size(p["tau_syn"]), dt)
        if "w_in" in p:
            p["w_in"] = p["tau_syn"] / dt  # lava_to_nir.py and snntorch.export_nir: w_in = τ_syn/dt
    w1, w2 = 2.0 * w1, 2.0 * w2  # no current builds up over steps: stronger weights to fire
    g = ff_graph(w1, b1, nir.CubaLIF(**p1), w2, b2, nir.CubaLIF(**p2))
    refs = [reference(profile, "CubaLIF", p1, dt=dt), reference(profile, "CubaLIF", p2, dt=dt)]
    ref_spikes = run_reference(refs, [w1, w2], [b1, b2], frames)
    model = evsim.load_model(g, profile=profile, precision="float64")
    check(run_clock(model, bin_us, events), ["l1", "l2"], refs, ref_spikes, bin_us, [N_HID, N_OUT])
    for s in ref_spikes:
        assert 0 < np.count_nonzero(s) < s.size, (profile, np.count_nonzero(s))
    # event mode reads the same file (a LIF in event time; not step-exact by design, §7.6)
    assert evsim.Simulator(model).run(events).synops > 0


def test_spyx_cuba_whose_current_keeps_nothing_is_refused_in_one_line():
    """Spyx's CuBaLIF at α = 0 is V ← β(V − sθ) + x, which no engine model holds (its LIF
    subtracts after the decay): refused, naming the node and the field."""
    p = dict(tau_syn=np.ones(3), tau_mem=np.full(3, 4.0), r=np.full(3, 0.75), v_leak=np.zeros(3),
             v_threshold=np.ones(3), w_in=np.ones(3))
    out = nir.LIF(tau=np.full(N_OUT, 4.0), r=np.full(N_OUT, 0.75), v_leak=np.zeros(N_OUT), v_threshold=np.ones(N_OUT))
    g = ff_graph(np.ones((3, N_IN)), np.zeros(3), nir.CubaLIF(**p), np.ones((N_OUT, 3)), np.zeros(N_OUT), out)
    with pytest.raises(evsim.ModelError, match="l1.*tau_syn: decay factor per step"):
        evsim.load_model(g, profile="spyx")


TIMINGS = [("zero", False), ("zero", True), ("subtract", False), ("subtract", True)]


@pytest.mark.parametrize("kind", ["LIF", "CubaLIF"])
def test_snntorch_reset_modes_and_timings(kind):
    """snnTorch Leaky / Synaptic with each reset_mechanism and reset_delay (``--reset``,
    ``--reset-delay/--no-reset-delay``) against the framework's forward pass written out; the four
    spike trains really differ (except Leaky's two zero resets, equal by algebra), and the profile's default is snnTorch's importer's (zero, no delay)."""
    rng = np.random.default_rng(11 if kind == "LIF" else 12)
    events, frames = random_input(rng, 100)
    (node1, node2), (p1, p2), (w1, w2), (b1, b2) = two_layer_net("snntorch", (kind, kind), rng)
    # stronger drive so that one subtraction is sometimes not enough (u > 2θ): snnTorch's raised
    # test in the next step (reset_delay=False) is exercised
    w1 = 2.0 * w1
    trains = {}
    for reset, delay in TIMINGS:
        refs = [reference("snntorch", kind, p1, dt=SNNTORCH_DT, reset=reset, reset_delay=delay),
                reference("snntorch", kind, p2, dt=SNNTORCH_DT, reset=reset, reset_delay=delay)]
        ref_spikes = run_reference(refs, [w1, w2], [b1, b2], frames)
        model = evsim.load_model(ff_graph(w1, b1, node1, w2, b2, node2), profile="snntorch", precision="float64",
                                 reset=reset, reset_delay=delay)
        check(run_clock(model, 100, events), ["l1", "l2"], refs, ref_spikes, 100, [N_HID, N_OUT])
        trains[(reset, delay)] = np.concatenate([s.ravel() for s in ref_spikes])
    for a in range(len(TIMINGS)):
        for b in range(a):
            if kind == "LIF" and TIMINGS[a][0] == TIMINGS[b][0] == "zero":
                continue  # Leaky zero: β·((1 − reset)·mem) + x gives the same spikes either way
            assert not np.array_equal(trains[TIMINGS[a]], trains[TIMINGS[b]]), (TIMINGS[a], TIMINGS[b])
    default = evsim.load_model(ff_graph(w1, b1, node1, w2, b2, node2), profile="snntorch", precision="float64")
    pops = {p.name: p for p in default.populations}
    assert not pops["l1"].rule.subtract and not pops["l1"].rule.reset_delay


def test_snntorch_raised_test_after_a_residual_above_threshold():
    """reset_delay=False with subtraction: a stored membrane still above θ after its spike
    (u > 2θ) raises the next step's test by θ (snnTorch subtracts reset·θ before firing and adds it
    back). One neuron, input 2.5θ then 0.9θ, β = 0.5, θ = 1: step 0 fires (u = 2.5, stored 1.5);
    step 1 has u = 0.75 + 0.9 = 1.65 > θ, but the test is 1.65 − 1 > 1: no spike."""
    dt = SNNTORCH_DT
    tau = dt / 0.5
    node = nir.LIF(tau=np.array([tau]), r=np.array([tau / dt]), v_leak=np.zeros(1), v_threshold=np.ones(1))
    g = graph({"input": inp((1,)), "fc": nir.Linear(weight=np.array([[0.1]])), "lif": node, "output": out((1,))},
              [("input", "fc"), ("fc", "lif"), ("lif", "output")])
    model = evsim.load_model(g, profile="snntorch", precision="float64", reset="subtract")
    sim = ClockSimulator(model, bin_us=100, record_spikes=True, keep_state=True)
    events = make_events(t=np.array([0] * 25 + [100] * 9), x=np.zeros(34, dtype=int))
    result = sim.run(events)
    lif = result.node_names.index("lif")
    spikes = result.spikes[result.spikes["node"] == lif]
    assert spikes.size == 1 and spikes["t_us"][0] == 100.0  # only step 0 (its end: 100 µs)
    np.testing.assert_allclose(result.extra["state"]["lif"]["v"], [1.65], rtol=1e-12)
    # the written-out forward pass agrees (a plain test v > θ would have fired in step 1)
    ref = SnntorchRef("LIF", dict(tau=np.array([tau]), v_threshold=np.ones(1)), "subtract", dt, False)
    assert ref.step(np.array([2.5]), 0.0)[0] == 1.0 and ref.step(np.array([0.9]), 0.0)[0] == 0.0


@pytest.mark.parametrize("kind", ["LIF", "CubaLIF"])
def test_snntorch_recurrent_reset_modes_and_timings(kind):
    """snnTorch RLeaky / RSynaptic (the recurrent term W_rec·spk[t−1] enters the membrane input,
    resp. the synaptic current) with each reset and reset_delay, against the forward pass written
    out (SnntorchRef, run_reference's recurrence)."""
    rng = np.random.default_rng(31 if kind == "LIF" else 32)
    events, frames = random_input(rng, 100, n_in=4)
    node, p, scale = layer_params("snntorch", kind, N_HID, rng)
    w_in = (2.0 if kind == "LIF" else 1.0) * (rng.normal(scale=scale, size=(N_HID, 4)) + 0.3 * scale)
    b_in = rng.normal(scale=0.1 * scale, size=N_HID)
    w_rec = rng.normal(scale=scale, size=(N_HID, N_HID))
    g = rsynaptic_graph(w_in, b_in, node, w_rec)
    trains = {}
    for reset, delay in TIMINGS:
        ref = reference("snntorch", kind, p, dt=SNNTORCH_DT, reset=reset, reset_delay=delay, recurrent=True)
        ref_spikes = run_reference([ref], [w_in], [b_in], frames, recurrent=w_rec)
        model = evsim.load_model(g, profile="snntorch", precision="float64", reset=reset, reset_delay=delay)
        check(run_clock(model, 100, events), ["rec.lif"], [ref], ref_spikes, 100, [N_HID])
        assert 0 < np.count_nonzero(ref_spikes[0]) < ref_spikes[0].size
        trains[(reset, delay)] = ref_spikes[0]
    assert not np.array_equal(trains[("subtract", False)], trains[("subtract", True)])
    assert not np.array_equal(trains[("zero", False)], trains[("subtract", False)])
    if kind == "LIF":  # RLeaky's zero reset discards the input of the step after a spike, Leaky's keeps it
        leaky = reference("snntorch", kind, p, dt=SNNTORCH_DT, reset="zero", reset_delay=True)
        assert not np.array_equal(run_reference([leaky], [w_in], [b_in], frames, recurrent=w_rec)[0],
                                  trains[("zero", True)])


RECURRENT = ["nir", "sinabs", "speck", "snntorch", "norse", "rockpool", "lava-dl"]


@pytest.mark.parametrize("profile", RECURRENT)
def test_recurrent_rsynaptic_subgraph_uses_the_previous_steps_spikes(profile):
    rng = np.random.default_rng(100 + RECURRENT.index(profile))
    bin_us = BIN_US[profile]
    events, frames = random_input(rng, bin_us, n_in=4)
    node, p, scale = layer_params(profile, "CubaLIF", N_HID, rng)
    w_in = rng.normal(scale=scale, size=(N_HID, 4)) + 0.3 * scale
    b_in = rng.normal(scale=0.1 * scale, size=N_HID)
    w_rec = rng.normal(scale=scale, size=(N_HID, N_HID))
    g = rsynaptic_graph(w_in, b_in, node, w_rec)
    dt = exporter_dt(profile, bin_us)
    ref = reference(profile, "CubaLIF", p, dt=dt)
    ref_spikes = run_reference([ref], [w_in], [b_in], frames, recurrent=w_rec)
    opts = {"recurrent_delay_us": bin_us} if profile == "nir" else {}
    model = evsim.load_model(g, profile=profile, precision="float64", **opts)
    assert [pr.recurrent for pr in model.projections].count(True) == 1
    result = run_clock(model, bin_us, events)
    check(result, ["rec.lif"], [ref], ref_spikes, bin_us, [N_HID])
    assert 0 < np.count_nonzero(ref_spikes[0]) < ref_spikes[0].size
    # without the recurrent weights the spikes differ: the recurrent path is exercised
    alone = run_reference([reference(profile, "CubaLIF", p, dt=dt)], [w_in], [b_in], frames)
    assert not np.array_equal(alone[0], ref_spikes[0])


def test_sinabs_tau_in_steps_at_another_dt():
    """sinabs' τ is in steps: with --dt-us 250 and 250 µs bins the update is the same per step."""
    rng = np.random.default_rng(7)
    events, frames = random_input(rng, 250)
    (node1, node2), (p1, p2), (w1, w2), (b1, b2) = two_layer_net("sinabs", ("LIF", "IF"), rng, bias="unit")
    refs = [reference("sinabs", "LIF", p1, dt=0), reference("sinabs", "IF", p2, dt=0)]
    ref_spikes = run_reference(refs, [w1, w2], [b1, b2], frames)
    model = evsim.load_model(ff_graph(w1, b1, node1, w2, b2, node2), profile="sinabs", precision="float64", dt_us=250)
    result = run_clock(model, 250, events)
    check(result, ["l1", "l2"], refs, ref_spikes, 250, [N_HID, N_OUT])


def test_li_readout_state_sinabs_and_norse():
    """A non-spiking LI readout (sinabs ExpLeakSqueeze: v ← exp(−1/τ)·v + input; norse
    LIBoxCell: v ← v + dt/τ·(input + v_leak − v), norse/torch/functional/leaky_integrator_box.py)
    is the Result's output after the last step."""
    for profile in ("sinabs", "norse"):
        rng = np.random.default_rng(21)
        events, frames = random_input(rng, 1000)
        w = rng.normal(size=(3, N_IN))
        b = rng.normal(scale=0.1, size=3)
        tau = rng.uniform(4.0, 10.0, size=3) if profile == "sinabs" else rng.uniform(3e-3, 8e-3, size=3)
        v_leak = np.zeros(3) if profile == "sinabs" else rng.uniform(-0.2, 0.2, size=3)
        g = graph({"input": inp((N_IN,)), "fc": nir.Affine(weight=w, bias=b),
                   "li": nir.LI(tau=tau, r=np.ones(3), v_leak=v_leak), "output": out((3,))},
                  [("input", "fc"), ("fc", "li"), ("li", "output")])
        v = np.zeros(3)
        for t in range(frames.shape[0]):
            x = w @ frames[t] + b
            if profile == "sinabs":
                v = np.exp(-1.0 / tau) * v + x
            else:
                v = v + 1e-3 / tau * (x + v_leak - v)
        result = ClockSimulator(evsim.load_model(g, profile=profile, precision="float64"), bin_us=1000).run(events)
        assert result.output_counts is None
        np.testing.assert_allclose(result.output, v, rtol=1e-9, atol=1e-12, err_msg=profile)


def test_norse_if_matches_iaf_feed_forward_step():
    rng = np.random.default_rng(5)
    events, frames = random_input(rng, 1000)
    (node1, node2), (p1, p2), (w1, w2), (b1, b2) = two_layer_net("norse", ("IF", "IF"), rng, bias="zero")
    refs = [reference("norse", "IF", p1, dt=1e-3), reference("norse", "IF", p2, dt=1e-3)]
    ref_spikes = run_reference(refs, [w1, w2], [b1, b2], frames)
    model = evsim.load_model(ff_graph(w1, b1, node1, w2, b2, node2), profile="norse", precision="float64")
    result = run_clock(model, 1000, events)
    check(result, ["l1", "l2"], refs, ref_spikes, 1000, [N_HID, N_OUT])


@pytest.mark.parametrize("profile", ["sinabs", "snntorch", "norse"])
def test_bias_of_a_recurrent_affine_reaches_its_neuron(profile):
    """A bias on the back edge (lif → w_rec → lif, w_rec an Affine with a bias) is a constant input
    of the neuron like any other: the neuron receives b_in + b_rec every step. (The builder used to
    sum constant inputs in one topological pass, in which w_rec comes after lif: b_rec was lost.)"""
    rng = np.random.default_rng(300 + ["sinabs", "snntorch", "norse"].index(profile))
    bin_us = BIN_US[profile]
    events, frames = random_input(rng, bin_us, n_in=4)
    node, p, scale = layer_params(profile, "CubaLIF", N_HID, rng)
    w_in = rng.normal(scale=scale, size=(N_HID, 4)) + 0.3 * scale
    b_in = rng.normal(scale=0.05 * scale, size=N_HID)
    w_rec = rng.normal(scale=scale, size=(N_HID, N_HID))
    b_rec = np.abs(rng.normal(scale=scale, size=N_HID))
    n = N_HID
    inner = graph({"input": inp((n,)), "lif": node, "w_rec": nir.Affine(weight=w_rec, bias=b_rec), "output": out((n,))},
                  [("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")])
    g = graph({"input": inp((4,)), "fc": nir.Affine(weight=w_in, bias=b_in), "rec": inner, "output": out((n,))},
              [("input", "fc"), ("fc", "rec"), ("rec", "output")])
    dt = SNNTORCH_DT if profile == "snntorch" else bin_us * 1e-6
    ref = reference(profile, "CubaLIF", p, dt=dt)
    ref_spikes = run_reference([ref], [w_in], [b_in + b_rec], frames, recurrent=w_rec)
    model = evsim.load_model(g, profile=profile, precision="float64")
    result = run_clock(model, bin_us, events)
    check(result, ["rec.lif"], [ref], ref_spikes, bin_us, [N_HID])
    # the recurrent bias matters here: without it the spikes differ
    without = run_reference([reference(profile, "CubaLIF", p, dt=dt)], [w_in], [b_in], frames, recurrent=w_rec)
    assert not np.array_equal(without[0], ref_spikes[0])


def run_spyx(refs, weights, biases, frames):
    """Step Spyx layers (``SpyxRef``) one step more than the input (a silent last step, so that
    the spikes of the last input step are emitted): (emitted spikes per layer, (n_steps + 1, n)),
    and the layers' states after the input's last step."""
    n_steps = frames.shape[0]
    frames = np.vstack([frames, np.zeros((1, frames.shape[1]))])
    spikes = [np.zeros((n_steps + 1, w.shape[0])) for w in weights]
    states = None
    for t in range(n_steps + 1):
        if t == n_steps:
            states = [(ref.v.copy(), ref.i.copy()) for ref in refs]
        s = frames[t]
        for l, (ref, w, b) in enumerate(zip(refs, weights, biases)):
            s = ref.step(w @ s, b)
            spikes[l][t] = s
    return spikes, states


def check_spyx(result, names, kind, ps, ref_spikes, states, sizes):
    """evsim records a Spyx neuron's spike in the step its state crosses θ; Spyx emits it in the
    next step: evsim's step t equals Spyx's step t + 1 in every layer. evsim's stored v is after
    the reset for CubaLIF (Spyx subtracts at the start of the next step) and before it for LIF/IF
    (Spyx subtracts after the decay: the pending reset, as snnTorch's reset_delay)."""
    bin_us = BIN_US["spyx"]
    for name, p, expected, (v, i), n in zip(names, ps, ref_spikes, states, sizes):
        got = per_step_spikes(result, name, n, bin_us, expected.shape[0] - 1)
        assert not expected[0].any()  # nothing is emitted in the first step
        np.testing.assert_array_equal(got, expected[1:], err_msg=f"spikes of {name}")
        th = p["v_threshold"]
        v_evsim = v - (v - th > 0) * th if kind == "CubaLIF" else v
        np.testing.assert_allclose(result.extra["state"][name]["v"], v_evsim, rtol=1e-9, atol=1e-12, err_msg=name)
        if kind == "CubaLIF":
            np.testing.assert_allclose(result.extra["state"][name]["i"], i, rtol=1e-9, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("kind", ["IF", "LIF", "CubaLIF"])
def test_spyx_feed_forward_with_biases_matches_spyx_one_step_later(kind):
    """Spyx (docs/SEMANTICS.md#profile-spyx): the state sequence of every layer is Spyx's, the
    spikes of layer l reach layer l + 1 one step after its state crossed θ (evsim: a delay of one
    dt on every projection out of a Spyx neuron), and the recorded spikes are Spyx's output one step
    early."""
    rng = np.random.default_rng(400 + ["IF", "LIF", "CubaLIF"].index(kind))
    bin_us = BIN_US["spyx"]
    events, frames = random_input(rng, bin_us)
    (node1, node2), (p1, p2), (w1, w2), (b1, b2) = two_layer_net("spyx", (kind, kind), rng)
    refs = [reference("spyx", kind, p1, dt=1.0), reference("spyx", kind, p2, dt=1.0)]
    ref_spikes, states = run_spyx(refs, [w1, w2], [b1, b2], frames)
    model = evsim.load_model(ff_graph(w1, b1, node1, w2, b2, node2), profile="spyx", precision="float64")
    if kind != "IF":
        assert abs(model.dt_s - 1.0) < 1e-12  # dt = τ(1 − r): Spyx's exporter writes dt = 1
    delays = sorted(pr.delay_s for pr in model.projections)
    assert delays[0] == 0.0 and abs(delays[1] - model.dt_s) < 1e-15  # input → l1 none, l1 → l2 one step
    result = run_clock(model, bin_us, events)
    check_spyx(result, ["l1", "l2"], kind, [p1, p2], ref_spikes, states, [N_HID, N_OUT])
    for s in ref_spikes:
        assert 0 < np.count_nonzero(s) < s.size, (kind, np.count_nonzero(s))


def test_spyx_recurrent_feedback_is_the_spike_of_the_same_step():
    """Spyx's RCuBaLIF feeds back the spike it emits in this step (computed from the previous
    state) into this step's current: in evsim's terms the spike of the previous step, the delay
    of every recurrent edge."""
    rng = np.random.default_rng(410)
    bin_us = BIN_US["spyx"]
    events, frames = random_input(rng, bin_us, n_in=4)
    node, p, scale = layer_params("spyx", "CubaLIF", N_HID, rng)
    w_in = rng.normal(scale=scale, size=(N_HID, 4)) + 0.3 * scale
    b_in = rng.normal(scale=0.1 * scale, size=N_HID)
    w_rec = rng.normal(scale=scale, size=(N_HID, N_HID))
    ref = SpyxRef("CubaLIF", p, 1.0, w_rec=w_rec)
    ref_spikes, states = run_spyx([ref], [w_in], [b_in], frames)
    model = evsim.load_model(rsynaptic_graph(w_in, b_in, node, w_rec), profile="spyx", precision="float64")
    result = run_clock(model, bin_us, events)
    check_spyx(result, ["rec.lif"], "CubaLIF", [p], ref_spikes, states, [N_HID])
    assert 0 < np.count_nonzero(ref_spikes[0]) < ref_spikes[0].size
    alone, _ = run_spyx([SpyxRef("CubaLIF", p, 1.0)], [w_in], [b_in], frames)
    assert not np.array_equal(alone[0], ref_spikes[0])


@pytest.mark.parametrize("profile,x,fires", [
    ("rockpool", 1.0, 1), ("rockpool", 2.0, 2), ("rockpool", 3.5, 3),  # (v >= θ)·floor(v/θ)
    ("lava-dl", 1.0, 0), ("lava-dl", 1.0 + 0.02 / 4096, 1), ("lava-dl", 2.5, 1),  # v ≥ θ + 0.01/4096, one spike
    ("spyx", 1.0, 0), ("spyx", 1.0 + 1e-9, 1), ("spyx", 2.5, 1)])  # strict >, one spike
def test_threshold_rule_at_the_edge(profile, x, fires):
    """One LIF neuron (θ = 1) receiving exactly x in its first step: Rockpool fires
    floor(x/θ) times on x ≥ θ, lava-dl once on x ≥ θ + 0.01/4096, Spyx once on x > θ. The
    weight is a power of two times x so that v is exactly x."""
    dt = 1e-3 if profile == "rockpool" else (1.0 if profile == "spyx" else SNNTORCH_DT)
    tau = np.array([4 * dt])
    r = {"rockpool": tau * np.exp(-dt / tau) / dt, "spyx": 1.0 - dt / tau, "lava-dl": tau / dt}[profile]
    node = nir.LIF(tau=tau, r=r, v_leak=np.zeros(1), v_threshold=np.ones(1))
    g = graph({"input": inp((1,)), "fc": nir.Linear(weight=np.array([[x]])), "lif": node, "output": out((1,))},
              [("input", "fc"), ("fc", "lif"), ("lif", "output")])
    model = evsim.load_model(g, profile=profile, precision="float64")
    bin_us = round(model.dt_s * 1e6)
    result = ClockSimulator(model, bin_us=bin_us, record_spikes=True).run(make_events(t=np.array([0]), x=np.zeros(1, dtype=int)))
    lif = result.node_names.index("lif")
    s = result.spikes[(result.spikes["node"] == lif) & (result.spikes["t_us"] == bin_us)]
    assert int(s["count"].sum()) == fires


@pytest.mark.parametrize("profile,dt", [("rockpool", 1e-3), ("rockpool", 1e-4), ("spyx", 1.0), ("spyx", 1e-4),
                                        ("lava-dl", 1e-4), ("snntorch", 1e-4)])
def test_exporter_dt_read_back_from_float32_parameters(profile, dt):
    """Each exporter's τ–r relation, written in float32 with a different τ per neuron (β up to
    0.99), gives back the dt it was written with (rounded to 6 digits); two nodes written with
    different dt's are refused unless --dt-us chooses one."""
    def node(dt_w):
        beta = np.linspace(0.5, 0.99, 7)
        tau = dt_w / (1.0 - beta)
        r = {"rockpool": tau * np.exp(-dt_w / tau) / dt_w, "spyx": beta, "lava-dl": tau / dt_w,
             "snntorch": tau / dt_w}[profile]  # snntorch.export_nir: τ = dt/(1 − β), r = τ/dt, float32
        f32 = lambda a: np.asarray(a, dtype=np.float32)  # noqa: E731
        return nir.CubaLIF(tau_mem=f32(tau), tau_syn=f32(0.7 * tau), r=f32(r), v_leak=f32(np.zeros(7)),
                           v_threshold=f32(np.ones(7)), w_in=f32(np.ones(7)))

    def net(dt2):
        return graph({"input": inp((7,)), "fc": nir.Linear(weight=np.eye(7)), "a": node(dt), "fc2": nir.Linear(weight=np.eye(7)),
                      "b": node(dt2), "output": out((7,))},
                     [("input", "fc"), ("fc", "a"), ("a", "fc2"), ("fc2", "b"), ("b", "output")])

    assert evsim.load_model(net(dt), profile=profile).dt_s == dt
    with pytest.raises(evsim.errors.ModelError, match="exporter's dt"):
        evsim.load_model(net(2 * dt), profile=profile)
    assert abs(evsim.load_model(net(2 * dt), profile=profile, dt_us=dt * 1e6).dt_s - dt) < 1e-12 * dt


@pytest.mark.parametrize("profile,expected", [
    # floor(v/θ) spikes at once: a gets 2.5 (2 spikes, 0.5 left), b 2·1.5 = 3; at 5 ms a 0.5 + 2.5 → 3, b 4.5 → 4
    ("rockpool", {"a": [(0, 2), (5000, 3)], "b": [(0, 3), (5000, 4)]}),
    # one spike per dt, subtract θ: a 2.5 → fires at 0 and 1 ms; 3.0 at 5 ms → 5 and 6 ms; b receives each
    # of a's spikes one dt later (1.5 each): 1.5 → 1 ms, 0.5 + 1.5 → 2 ms, 6 ms, 1.5 + 1.5 → 7 ms
    ("spyx", {"a": [(0, 1), (1000, 1), (5000, 1), (6000, 1)], "b": [(1000, 1), (2000, 1), (6000, 1), (7000, 1)]}),
    # reset to 0: one spike per input in each layer, no delay
    ("lava-dl", {"a": [(0, 1), (5000, 1)], "b": [(0, 1), (5000, 1)]})])
def test_event_mode_spike_rules_and_spyx_delay(profile, expected):
    """Event mode under the new profiles (dt = 1 ms, two IF layers, θ = 1, weights 2.5 and 1.5,
    input events at 0 and 5 ms, the sample's window 7.5 ms): Rockpool's floor(v/θ) spikes per
    firing, at most one firing per dt with subtraction for Spyx, whose spikes reach the next
    layer one dt after the crossing, and lava-dl's reset to 0. Expected times by hand."""
    from evsim.sim.event import Simulator
    g = graph({"input": inp((1,)), "fc": nir.Linear(weight=np.array([[2.5]])), "a": nir.IF(r=np.ones(1), v_threshold=np.ones(1)),
               "fc2": nir.Linear(weight=np.array([[1.5]])), "b": nir.IF(r=np.ones(1), v_threshold=np.ones(1)),
               "output": out((1,))},
              [("input", "fc"), ("fc", "a"), ("a", "fc2"), ("fc2", "b"), ("b", "output")])
    model = evsim.load_model(g, profile=profile, dt_us=1000, precision="float64")
    result = Simulator(model, record_spikes=True, time_origin="zero", duration_us=7500).run(
        make_events(t=np.array([0, 5000]), x=np.zeros(2, dtype=int)))
    for name, want in expected.items():
        s = result.spikes[result.spikes["node"] == result.node_names.index(name)]
        assert [(float(t), int(c)) for t, c in zip(s["t_us"], s["count"])] == [(float(t), c) for t, c in want], name


@pytest.mark.parametrize("profile", ["rockpool", "spyx"])
def test_li_readout_state_rockpool_and_spyx(profile):
    """A non-spiking LI readout as each framework integrates it: Rockpool's ExpSynTorch
    (rockpool/nn/modules/torch/exp_syn_torch.py l.129-130: isyn += input; isyn *= exp(−dt/τ), the
    input decaying in its step; exported with r = τ·exp(−dt/τ)/dt), Spyx's LI (spyx/nn.py
    l.135-136: V = beta·V + x, beta = 1 − dt/τ; exported with r = 1, so dt is the profile's
    default 1 unless given). The Result's output is the state after the last step."""
    rng = np.random.default_rng(31)
    bin_us = BIN_US[profile]
    dt = exporter_dt(profile, bin_us)
    events, frames = random_input(rng, bin_us)
    w = rng.normal(size=(3, N_IN))
    b = rng.normal(scale=0.1, size=3)
    tau = rng.uniform(3e-3, 8e-3, size=3) if profile == "rockpool" else rng.uniform(3.0, 8.0, size=3)
    r = tau * np.exp(-dt / tau) / dt if profile == "rockpool" else np.ones(3)
    g = graph({"input": inp((N_IN,)), "fc": nir.Affine(weight=w, bias=b),
               "li": nir.LI(tau=tau, r=r, v_leak=np.zeros(3)), "output": out((3,))},
              [("input", "fc"), ("fc", "li"), ("li", "output")])
    v = np.zeros(3)
    for t in range(frames.shape[0]):
        x = w @ frames[t] + b
        if profile == "rockpool":
            v = (v + x) * np.exp(-dt / tau)
        else:
            v = (1.0 - dt / tau) * v + x
    result = ClockSimulator(evsim.load_model(g, profile=profile, precision="float64"), bin_us=bin_us).run(events)
    np.testing.assert_allclose(result.output, v, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("x,fires", [(1.0, 0), (1.0 + 0.02 / 262144, 1)])
def test_lava_dl_if_threshold_is_theta_times_r(x, fires):
    """paper/nir_to_lava.py (l.336-353) builds an IF as a slayer CUBA neuron with current_decay 1,
    voltage_decay 0, threshold v_threshold·r and scale 4096 (threshold_eps = 0.01/(4096·64)):
    θ = 0.5, r = 2 fires on v ≥ 1 + 0.01/262144, and resets to 0."""
    node = nir.IF(r=np.array([2.0]), v_threshold=np.array([0.5]))
    g = graph({"input": inp((1,)), "fc": nir.Linear(weight=np.array([[x]])), "if": node, "output": out((1,))},
              [("input", "fc"), ("fc", "if"), ("if", "output")])
    model = evsim.load_model(g, profile="lava-dl", precision="float64")
    result = ClockSimulator(model, bin_us=100, record_spikes=True, keep_state=True).run(
        make_events(t=np.array([0]), x=np.zeros(1, dtype=int)))
    s = result.spikes[result.spikes["node"] == result.node_names.index("if")]
    assert int(s["count"].sum()) == fires
    assert result.extra["state"]["if"]["v"][0] == (0.0 if fires else x)


def test_time_steps_and_derived_parameters_out_of_range_are_refused_in_one_line():
    """A 1e-30 µs step (option or file) once reached the engine as 0/0 and b/dt = inf: a
    ZeroDivisionError traceback or a silent "no output activity". Now the step is bounded and every
    derived engine parameter is checked (here b/dt of a sinabs IF, 1e25 / 1e-6 s = 1e31 > 1e30)."""
    from evsim.model.profiles import MIN_TIME_STEP_US, Overrides

    for option in ("dt_us", "recurrent_delay_us"):
        with pytest.raises(evsim.OptionError, match="nanosecond"):
            Overrides(**{option: 1e-30})
        Overrides(**{option: MIN_TIME_STEP_US})  # the bound itself is taken
    lif = lambda tau: nir.LIF(tau=np.full(N_OUT, tau), r=np.ones(N_OUT), v_leak=np.zeros(N_OUT),  # noqa: E731
                              v_threshold=np.ones(N_OUT))
    # snnTorch's dt is read back as τ/r: 1e-20 s
    g = ff_graph(np.ones((N_OUT, N_IN)), np.zeros(N_OUT), lif(1e-20), np.ones((N_OUT, N_OUT)), np.zeros(N_OUT), lif(1e-20))
    with pytest.raises(evsim.ModelError, match="dt read from tau and r is 1e-20 s"):
        evsim.load_model(g, profile="snntorch")
    if_ = lambda: nir.IF(r=np.ones(N_OUT), v_threshold=np.ones(N_OUT))  # noqa: E731
    bias = 1e25
    g = ff_graph(np.ones((N_OUT, N_IN)), np.full(N_OUT, bias), if_(), np.ones((N_OUT, N_OUT)), np.zeros(N_OUT), if_())
    assert bias / 1e-6 > 1e30 and bias / 1e-3 <= 1e30
    with pytest.raises(evsim.ModelError, match="drive .* dt = 1 µs is 1e\\+31"):
        evsim.load_model(g, profile="sinabs", dt_us=1.0)
    evsim.load_model(g, profile="sinabs", dt_us=1000.0)  # 1e28 per second: taken


def test_lava_dl_decay_zero_written_as_plus_inf_is_slayers_if():
    """lava_to_nir.py writes slayer's voltage_decay 0 as τ = r = +inf (and current_decay 1 as
    τ_syn = dt): v ← v + x, slayer's IF. Both layers (a CubaLIF and a LIF written so) against
    slayer's update written out (LavaDlRef: 1 − dt/∞ = 1); such files were refused as non-finite."""
    rng = np.random.default_rng(31)
    dt, bin_us = SNNTORCH_DT, BIN_US["lava-dl"]
    events, frames = random_input(rng, bin_us)
    inf = np.inf
    theta1, theta2 = rng.uniform(1.5, 2.5, N_HID), rng.uniform(1.5, 2.5, N_OUT)
    p1 = dict(tau_syn=np.full(N_HID, dt), tau_mem=np.full(N_HID, inf), r=np.full(N_HID, inf), v_leak=np.zeros(N_HID),
              v_threshold=theta1, v_reset=np.zeros(N_HID), w_in=np.ones(N_HID))
    p2 = dict(tau=np.full(N_OUT, inf), r=np.full(N_OUT, inf), v_leak=np.zeros(N_OUT), v_threshold=theta2,
              v_reset=np.zeros(N_OUT))
    w1, w2 = rng.normal(0.3, 0.3, (N_HID, N_IN)), rng.normal(0.4, 0.4, (N_OUT, N_HID))
    b1, b2 = rng.normal(0.0, 0.02, N_HID), np.zeros(N_OUT)
    g = ff_graph(w1, b1, nir.CubaLIF(**p1), w2, b2, nir.LIF(**p2))
    refs = [reference("lava-dl", "CubaLIF", p1, dt=dt), reference("lava-dl", "LIF", p2, dt=dt)]
    ref_spikes = run_reference(refs, [w1, w2], [b1, b2], frames)
    model = evsim.load_model(g, profile="lava-dl", precision="float64")
    check(run_clock(model, bin_us, events), ["l1", "l2"], refs, ref_spikes, bin_us, [N_HID, N_OUT])
    for s in ref_spikes:
        assert 0 < np.count_nonzero(s) < s.size, np.count_nonzero(s)


@pytest.mark.parametrize("profile, changes, fragment", [
    ("snntorch", {}, "only profile lava-dl reads it"),
    ("nir", {}, "only profile lava-dl reads it"),
    ("lava-dl", {"tau_syn": np.inf, "w_in": np.inf}, "never decays"),
    ("lava-dl", {"tau_syn": 5e-4}, "membrane without leak is supported with tau_syn = dt"),
    ("lava-dl", {"tau_mem": np.array([np.inf, 1e-3, np.inf]), "r": np.array([np.inf, 10.0, np.inf])},
     "membrane without leak"),
    ("lava-dl", {"tau_mem": -np.inf}, "non-finite"),
    ("lava-dl", {"tau_mem": np.nan}, "non-finite"),
    ("lava-dl", {"v_threshold": np.inf}, "non-finite"),
])
def test_plus_inf_time_constants_elsewhere_are_refused_in_one_line(profile, changes, fragment):
    n, dt = 3, SNNTORCH_DT
    p = dict(tau_syn=np.full(n, dt), tau_mem=np.full(n, np.inf), r=np.full(n, np.inf), v_leak=np.zeros(n),
             v_threshold=np.ones(n), v_reset=np.zeros(n), w_in=np.ones(n))
    p.update({k: np.broadcast_to(np.asarray(v, dtype=float), (n,)).copy() for k, v in changes.items()})
    out = nir.LIF(tau=np.full(N_OUT, 1e-3), r=np.full(N_OUT, 10.0), v_leak=np.zeros(N_OUT), v_threshold=np.ones(N_OUT),
                  v_reset=np.zeros(N_OUT))
    g = ff_graph(np.ones((n, N_IN)), np.zeros(n), nir.CubaLIF(**p), np.ones((N_OUT, n)), np.zeros(N_OUT), out)
    with pytest.raises(evsim.ModelError, match="l1") as err:
        evsim.load_model(g, profile=profile)
    assert fragment in str(err.value)

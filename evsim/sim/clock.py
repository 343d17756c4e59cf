"""Clock-driven baseline (docs/SEMANTICS.md#clock): the same compiled graph, stepped in fixed time bins.

Typical use::

    import evsim
    from evsim.sim.clock import ClockSimulator
    model = evsim.load_model("evsim/bundled/nmnist_cnn/model.nir", profile="sinabs")
    sim = ClockSimulator(model, bin_us=1000)
    result = sim.run(events)                      # an evsim.sim.result.Result, like the event engine
    results = sim.run_batch([ev1, ev2, ev3])      # many samples stepped together, same results

Binning (tonic ``ToFrame`` windows, but every event is kept)
------------------------------------------------------------
Bins start at the first event t0; bin k is the window ``[t0 + k·w, t0 + (k+1)·w)``; D = t_last − t0.

* ``bin_us=w``: ``n_steps = floor(D / w) + 1``, so the last (incomplete) window is included and an
  event at ``t_last`` is never lost. (tonic ``ToFrame(time_window=w, include_incomplete=True)``
  makes ``ceil((D − w)/w) + 1`` windows: the same number unless D is a multiple of w, where tonic
  has one window less and drops the events at t_last.)
* ``n_bins=N``: ``w = D / N`` (a real number of µs), bin ``k = floor((t − t0)·N / D)`` computed in
  integers, and the events at t_last (k = N) go to the last bin N − 1. (tonic
  ``ToFrame(n_time_bins=N)`` floors w to whole µs, ``w = D // N``, and drops every event at or
  after ``t0 + N·w``, the last one included; both agree when N divides D, except for the events
  at t_last.) D = 0 puts every event in the last bin.

A frame holds event *counts* per input neuron (docs/SEMANTICS.md#addressing). A step's inputs are taken to
arrive at the end of its window; times reported for a step (spikes, output record, decision) are
the end of its window, ``(k + 1)·w`` µs after the first event.

One step
--------
Populations are updated in the compiled (topological) order. Each one receives
``x = Σ_projections ops(spikes of the source)``: the spike counts of the source *in this step*
(the Input: the frame), or, for a projection with a delay d, of ``round(d/dt)`` steps earlier;
a recurrent projection (an edge closing a cycle) uses at least the previous step. The linear
operators are those of the graph (Affine/Linear without bias, Conv, pools, Flatten, Scale; biases
are the populations' constant input below), applied per sample by deterministic numba kernels that
skip silent sources and scatter each active source along the engine's runs
(:func:`evsim.kernels.fanout.op_runs`, weights packed as the engine packs them), so that a batched run is bit-identical to one-by-one runs (a BLAS matrix
product is not: its rounding depends on the batch size).

Two implementations give the same results bit for bit: a model whose projections all deliver in
the same step runs one compiled loop per sample (:func:`_run_sample`, whose work per step
follows the step's events and spikes: see the notes above it); the others (delays, recurrence,
operators without a kernel here) run the Python step loop (``ClockSimulator._simulate``), all
samples of a batch stepped together.

Then the population's discrete update, with dt = the bin width (s), dt_p = the profile's time step
(``model.dt_s``), b = the constant input from upstream biases (``Population.bias``), and the
engine model's parameters (:mod:`evsim.model.neurons`, as :mod:`evsim.model.profiles` converted them):

``nir`` (strict NIR; exact integration of the continuous equations over the bin, input at its end)
    I, IF:      ``v ← v + a·dt + g·x``                      (a = drive = R·b, g = R)
    LI, LIF:    ``v ← v_rest + (v − v_rest)·exp(−dt/τ) + g·x``   (g = R/τ, v_rest = v_leak + R·b)
    CubaLI(F):  ``(v, I) ← closed form over dt`` (:func:`evsim.kernels.neuron.cuba_evolve`, here as the
                equivalent linear map), then ``I ← I + g·x`` (g = w_in/τ_syn)
    then threshold / reset / floor per the SpikeRule (v > θ, v ← v_reset, one spike).

``sinabs`` / ``speck`` (sinabs ``IAFSqueeze`` / ``LIFSqueeze`` / ``ExpLeakSqueeze`` as
``sinabs.from_nir`` builds them, sinabs/nir.py; synaptic current as sinabs/layers/functional/lif.py)
    IF:         ``v ← v + x + b``                            (r ignored)
    LIF, LI:    ``v ← α·v + (1 − α)·v_leak + x + b``,  α = exp(−dt/τ_s) = exp(−1/τ_steps)
                (τ_s = τ_steps·dt_p is the engine model's τ; sinabs requires v_leak = 0)
    CubaLIF:    ``I ← α_s·(I + w_in·(x + b))``, ``v ← α_m·v + (1 − α_m)·v_leak + I`` (sinabs'
                ``lif_forward_single`` with ``tau_syn``: the new input decays with the current)
    spikes ``v ≥ θ``: ``floor(v/θ)`` (sinabs MultiSpike) or one per step (speck); ``v ← v − n·θ``;
    IF floor ``v ← max(v, −θ)`` (``min_v_mem = −v_threshold``).

``snntorch`` with ``reset_delay=False`` (the default): the update below without the ``reset``
terms, then spike, and the reset in the same step (plus snnTorch's raised test after a residual
above θ, docs/SEMANTICS.md#profile-snntorch). With ``reset_delay=True``
(snn.Leaky / snn.Synaptic / snn.RSynaptic, read from
snntorch/_neurons/leaky.py, synaptic.py, rsynaptic.py and neurons.py; β = 1 − dt_p/τ,
α = 1 − dt_p/τ_syn, dt_p = τ/r from the file; the engine model holds τ_s = −dt_p/ln β, so
exp(−dt_p/τ_s) = β)
    reset = H(mem[t−1] − θ) (the previous step's spike), spk[t] = H(mem[t] − θ), H(u) = [u > 0]
    Leaky   subtract: ``mem ← β·mem + x + b − reset·θ``
            zero:     ``mem ← β·(1 − reset)·mem + x + b``            (``_base_zero``)
    RLeaky  (a LIF closed on itself by a recurrent Linear/Affine; x includes W_rec·spk[t−1])
            subtract: as Leaky
            zero:     ``mem ← (1 − reset)·(β·mem + x + b)``          (rleaky.py ``_base_zero``)
    Synaptic          ``syn ← α·syn + x + b`` (x includes W_rec·spk[t−1] for RSynaptic)
            subtract: ``mem ← β·mem + syn − reset·θ``
            zero:     ``mem ← (1 − reset)·(β·mem + syn)``            (the whole update is zeroed)
    (x and b are multiplied by the exporter's r·dt_p/τ = 1 resp. w_in·dt_p/τ_syn = 1.) The state
    ``mem`` is reported before the pending reset, as snnTorch returns it. IF (no snnTorch
    equivalent) is Leaky with β = 1.

``norse`` (forward Euler, dt = dt_p = 1 ms unless given)
    CubaLIF (norse/torch/functional/lif.py, ``lif_feed_forward_step``)::
        I ← I + w_in·(x + b)
        v_dec = v + dt/τ_mem·((v_leak − v) + R·I)
        I ← I − dt/τ_syn·I
        z = H(v_dec − θ)        (strictly >)
        v ← (1 − z)·v_dec + z·v_reset
    (the input of a step reaches v in the same step).
    LIF, LI (norse/torch/functional/lif_box.py): ``v_dec = v + dt/τ·(v_leak + R·b − v) + g·x``
    (g = R·dt_p/τ), then z, reset as above.
    IF (norse's ``IAFCell``, which ``from_nir`` builds for IF): ``v ← v + r·(x + b)``.

``rockpool`` (LIFTorch, rockpool/nn/modules/torch/lif_torch.py; the sinabs update with τ in seconds)
    CubaLIF:    ``I ← α_s·(I + x + b)``, ``v ← α_m·v + bias + I``   (α = exp(−dt/τ))
    LIF:        ``v ← α·v + x + b + bias`` (LIFNeuronTorch); LI: ``v ← α·(v + x + b)`` (ExpSynTorch)
    spikes ``v ≥ θ``, ``floor(v/θ)``, ``v ← v − n·θ``; bias = the file's v_leak, held by the
    model as the rest potential bias/(1 − α).

``spyx`` (spyx/nn.py) the snntorch update with ``reset_delay=False``, subtract, one spike, no raised
    test for CubaLIF; LIF/IF with the reset one step late (``V ← βV + x − s[t−1]·θ``). Spyx tests the
    state before the step's input; the builder delays every projection out of a Spyx neuron by one
    step, so each layer's state equals Spyx's and a spike is recorded one step before Spyx emits it.

``lava-dl`` (slayer CUBA) the snntorch update (α = 1 − dt/τ_syn, β = 1 − dt/τ_mem), spike
    ``v ≥ θ + 0.01/4096`` (in the model's threshold), ``v ← 0`` in the same step.

In every profile the threshold test, the number of spikes (one; MultiSpike ``floor(v/θ)`` for
``≥``, ``ceil(v/θ) − 1`` for ``>``), the reset (``v − n·θ`` or ``v_reset``) and the floor follow
the population's :class:`evsim.model.neurons.SpikeRule` and model (so ``--reset``, ``--v-min`` etc.
apply), except snnTorch's reset, which is applied one step late as above. An absolute refractory
period holds v (and discards v's input) for ``round(refractory/dt)`` steps after a spike
(snnTorch: the first held step still applies the spike's pending reset).

With bin widths other than dt_p the profiles stay time-consistent: decay factors are exp(−dt/τ) (or
1 − dt/τ for norse), a bias adds ``b·dt/dt_p`` per bin, a spike adds the same charge as in the
event engine.

Readout, counters, cutoff
-------------------------
As the event engine: spike counts of the readout population accumulated over the steps, or its
state after the last step. SynOps: per step, Σ over projections of (source spikes × the number of
target additions one spike causes) — the event engine's definition (every weight of the last
operator's fan-out, including zero weights; intermediate elements only through non-zero weights),
computed once per projection by walking the engine's own fan-out runs for one spike of each source
element (:func:`evsim.kernels.fanout.synops_per_spike`). ``extra["dense_synops"]``: every synapse every
step (the same fan-outs, as if every source neuron spiked once in every step) — what a dense
clock-driven implementation evaluates. The cutoff (same :class:`evsim.sim.result.Cutoff`) is
evaluated after every step on the output vector; at a decision the sample stops (later input is
not consumed) and ``decision_time_us`` is the end of the deciding step. ``max_time_us`` /
``max_events`` cut the input before binning (the bins still come from the whole recording) and
the run ends with the step of the last consumed event. For complete runs ``decision_time_us`` is
the end of the last step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit
from numba.typed import List

from ..compile.builder import CompiledModel, compile_model, encode_conv, encode_dense, pack_operators
from ..kernels import neuron as nk
from ..kernels import profile_step as ps
from ..kernels.fanout import conv_runs, new_runs_buffer, op_runs, synops_table
from ..kernels.abi import (G_CIN, G_COUT, G_H, G_OH, G_OW, G_W, KIND_CUBA, KIND_INPUT, KIND_INTEGRATOR,
                           KIND_LEAKY, READOUT_COUNTS)
from ..kernels.readout import cutoff_decision, decide_rows
from ..errors import OptionError, real_option
from ..input.events import check_sorted, input_indices
from ..input.window import SampleWindow, check_time_span
from ..model.linear import ConvOp, DenseOp, ReshapeOp, ScaleOp, as_spatial, to_nir_order
from ..model.profiles import expand_parameter
from .result import SPIKE_RECORD_DTYPE, Cutoff, Result, predict, truncation_status

__all__ = ["ClockSimulator", "bin_steps"]


# --------------------------------------------------------------------------------------------
# Binning
# --------------------------------------------------------------------------------------------


#: Most steps one clock-driven sample may take: a bin loop costs time in proportion to the span of
#: the recording, so an hour-long gap in a file (or a 1 ns bin) is refused with a clear message
#: instead of running for hours or allocating gigabytes.
MAX_CLOCK_STEPS = 10_000_000


def bin_steps(t_us, *, bin_us: float | None = None, n_bins: int | None = None, origin_us: int | None = None,
              duration_us: float | None = None) -> tuple:
    """Step index of every event (see the module docstring).

    Args:
        t_us: sorted timestamps (µs), all within the window (at or after the origin, before
            origin + duration).
        bin_us / n_bins: exactly one.
        origin_us: time 0 of the sample (default: the first event).
        duration_us: the sample's span D (default: up to the last event): ``ceil(D / bin_us)``
            steps of ``bin_us``, or ``n_bins`` steps of ``D / n_bins``.

    Returns:
        (k, n_steps, width_us): int64 step index per event, the number of steps, the bin width
        in µs. An empty recording gives (empty, 0, bin_us or 0).

    Raises:
        OptionError: a bin width outside (0, 2**53) µs, or more than :data:`MAX_CLOCK_STEPS` steps.
    """
    if (bin_us is None) == (n_bins is None):
        raise OptionError("give exactly one of --bin-us and --n-bins", option="--bin-us")
    t = np.asarray(t_us).astype(np.int64)
    if bin_us is not None:
        w = real_option(bin_us, "--bin-us")
        check_time_span(w, "--bin-us")
    else:
        n_bins = real_option(n_bins, "--n-bins", integer=True)
        if n_bins < 1:
            raise OptionError("must be an integer >= 1", option="--n-bins")
        n_bins = int(n_bins)
        if n_bins > MAX_CLOCK_STEPS:
            raise OptionError(f"at most {MAX_CLOCK_STEPS:,} steps per sample", option="--n-bins")
    if duration_us is not None:
        return _bin_steps_of_window(t, bin_us, n_bins, 0 if origin_us is None else int(origin_us), float(duration_us))
    if t.size == 0:
        return np.zeros(0, dtype=np.int64), 0, (w if bin_us is not None else 0.0)
    rel = t - (t[0] if origin_us is None else int(origin_us))
    span = int(rel[-1])
    if bin_us is not None:
        n_steps = int(span // w) + 1
        if n_steps > MAX_CLOCK_STEPS:
            raise OptionError(f"the recording spans {span:,} µs: {_count_text(n_steps)} bins of {w:g} µs, above the limit of "
                              f"{MAX_CLOCK_STEPS:,} steps per sample (a larger --bin-us, --n-bins, or --t-end-us to "
                              "cut the recording)", option="--bin-us")
        if w == int(w):
            k = rel // int(w)
        else:
            k = np.floor(rel / w).astype(np.int64)
        return k.astype(np.int64), int(k[-1]) + 1, w
    if span == 0:
        return np.full(t.size, n_bins - 1, dtype=np.int64), n_bins, 0.0
    if span * n_bins < 2 ** 62:
        k = np.minimum((rel * n_bins) // span, n_bins - 1)
    else:  # the product would overflow int64: exact integers, element by element (rare)
        k = np.array([min(int(r) * n_bins // span, n_bins - 1) for r in rel], dtype=np.int64)
    return k.astype(np.int64), n_bins, span / n_bins


def _count_text(n: int) -> str:
    """A count of bins for a message: grouped digits, or 3 significant ones when it is absurdly large."""
    return f"{n:,}" if n < 10 ** 15 else f"{float(n):.3g}"


def _bin_steps_of_window(t, bin_us, n_bins, origin_us: int, duration_us: float) -> tuple:
    """:func:`bin_steps` for a sample of fixed duration D: the bins cover [0, D)."""
    rel = t - origin_us
    if bin_us is not None:
        w = float(bin_us)
        n_steps = int(np.ceil(duration_us / w))
        if n_steps > MAX_CLOCK_STEPS:
            raise OptionError(f"a duration of {duration_us:g} µs makes {_count_text(n_steps)} bins of {w:g} µs, above the limit "
                              f"of {MAX_CLOCK_STEPS:,} steps per sample", option="--duration-us")
        k = rel // int(w) if w == int(w) else np.floor(rel / w).astype(np.int64)
        return np.minimum(k.astype(np.int64), n_steps - 1), n_steps, w
    n_bins = int(n_bins)
    w = duration_us / n_bins
    k = np.floor(rel * (n_bins / duration_us)).astype(np.int64) if rel.size else np.zeros(0, dtype=np.int64)
    return np.minimum(k, n_bins - 1), n_bins, w


# --------------------------------------------------------------------------------------------
# Linear operators: deterministic per-sample kernels (skip silent sources)
# --------------------------------------------------------------------------------------------


@njit(cache=True, _nrt=False, inline="always")
def _add_runs(weights, runs, n_runs, run_len, s, out):
    """out += s × weights along the first ``n_runs`` runs (:func:`evsim.kernels.fanout.op_runs`,
    the engine's runs): one addition per target."""
    for r in range(n_runs):
        n = runs[r, 2] * run_len
        # views indexed from 0: LLVM vectorises the loop (no negative-index check per element)
        oo = out[runs[r, 0]:runs[r, 0] + n]
        ww = weights[runs[r, 1]:runs[r, 1] + n]
        for k in range(n):
            oo[k] += s * ww[k]


@njit(cache=True, _nrt=False)
def _dense_kernel(x, ops, op, runs, out):
    """out[b, j] = Σ_i x[b, i]·W[j, i], summed over i in increasing order (x[b, i] ≠ 0 only)."""
    for b in range(x.shape[0]):
        o = out[b]
        for j in range(o.shape[0]):
            o[j] = 0.0
        for i in range(x.shape[1]):
            if x[b, i] != 0.0:
                n_runs, _, run_len = op_runs(ops, op, i, runs)
                _add_runs(ops.weights, runs, n_runs, run_len, x[b, i], o)


@njit(cache=True, _nrt=False)
def _conv_kernel(x, ops, op, runs, out, c_in, hw, w):
    """PyTorch convolution (see evsim.model.linear.ConvGeometry) as a scatter from the non-zero
    inputs along the engine's runs. ``x``: (B, c_in·h·w) NIR order, visited in increasing index;
    ``out``: (B, oh·ow·c_out) channel-last (the engine's layout)."""
    for b in range(x.shape[0]):
        o = out[b]
        for q in range(o.shape[0]):
            o[q] = 0.0
        for f in range(x.shape[1]):
            if x[b, f] != 0.0:
                c = f // hw
                rest = f - c * hw
                y = rest // w
                n_runs, _, run_len = conv_runs(ops, op, c, y, rest - y * w, runs)
                _add_runs(ops.weights, runs, n_runs, run_len, x[b, f], o)


class _Linear:
    """A dense or convolution operator of the graph, encoded as the engine encodes it (its
    weights and runs: :func:`evsim.compile.builder.encode_dense` / ``encode_conv``); its index
    in the simulator's packed operators is set by :meth:`ClockSimulator.__init__`."""

    def __init__(self, op, wdtype):
        self.engine_op = encode_dense(op, None, None, wdtype) if isinstance(op, DenseOp) else encode_conv(op, None, None, wdtype)
        self.ops = None  # OperatorArrays (set once every operator of the model is packed)
        self.index = -1


class _Dense(_Linear):
    def __init__(self, op: DenseOp, wdtype):
        super().__init__(op, wdtype)
        self.n_out = op.out_shape[0]

    def __call__(self, x):
        out = np.empty((x.shape[0], self.n_out))
        _dense_kernel(x, self.ops, self.index, new_runs_buffer(self.ops.op_geom), out)
        return out


class _Conv(_Linear):
    def __init__(self, op: ConvOp, wdtype):
        super().__init__(op, wdtype)
        g = op.geometry
        c_in, h, w = as_spatial(g.in_shape)
        c_out, oh, ow = as_spatial(g.out_shape)
        self.c_in, self.hw, self.w = c_in, h * w, w
        self.out_hwc = (oh, ow, c_out)

    def __call__(self, x):
        oh, ow, c_out = self.out_hwc
        out = np.empty((x.shape[0], oh * ow * c_out))
        _conv_kernel(x, self.ops, self.index, new_runs_buffer(self.ops.op_geom), out, self.c_in, self.hw, self.w)
        return np.ascontiguousarray(out.reshape(x.shape[0], oh, ow, c_out).transpose(0, 3, 1, 2)).reshape(x.shape[0], -1)


class _Scale:
    def __init__(self, op: ScaleOp):
        self.scale = np.asarray(op.scale, dtype=np.float64).reshape(1, -1)

    def __call__(self, x):
        return x * self.scale


class _Apply:
    """Any other LinearOp: its dense numpy ``apply`` (no bias)."""

    def __init__(self, op):
        self.op = op

    def __call__(self, x):
        y = self.op.apply(x.reshape((x.shape[0],) + tuple(self.op.in_shape)), with_bias=False)
        return np.asarray(y, dtype=np.float64).reshape(x.shape[0], -1)


def _kernel_of(op, wdtype):
    if isinstance(op, ReshapeOp):
        return None  # flat NIR (C-order) layout: a reshape is the identity
    if isinstance(op, DenseOp):
        return _Dense(op, wdtype)
    if isinstance(op, ConvOp):
        return _Conv(op, wdtype)
    if isinstance(op, ScaleOp):
        return _Scale(op)
    return _Apply(op)


# --------------------------------------------------------------------------------------------
# Compiled plan (model-dependent, bin-width independent)
# --------------------------------------------------------------------------------------------


@dataclass
class _Proj:
    src: int
    dst: int
    kernels: list
    fanout: np.ndarray  # (n_src,) float64, NIR order
    delay_s: float
    delay_per_source: np.ndarray | None  # NIR order of the source, seconds
    recurrent: bool

    def lags(self, dt_s: float):
        """Steps of delay: an int, or an int array per source element."""
        if self.delay_per_source is None:
            lag = int(round(self.delay_s / dt_s)) if dt_s > 0 else 0
            return max(lag, 1) if self.recurrent else lag
        d = self.delay_s + self.delay_per_source
        lag = np.round(d / dt_s).astype(np.int64) if dt_s > 0 else np.zeros(d.size, dtype=np.int64)
        if self.recurrent:
            lag = np.maximum(lag, 1)
        if np.all(lag == lag[0]):
            return int(lag[0])
        return lag


def _wide(row, n: int) -> np.ndarray:
    """A (1, 1) or (1, n) row as a contiguous (1, n) array."""
    return np.ascontiguousarray(np.broadcast_to(np.asarray(row, dtype=np.float64), (1, n)))


def _row(a) -> np.ndarray:
    """A parameter (1 or n values, NIR order) as a (1, 1) or (1, n) float64 row."""
    return np.asarray(a, dtype=np.float64).reshape(1, -1)


class _Pop:
    """One population's discrete update (see the module docstring)."""

    def __init__(self, model: CompiledModel, index: int):
        pop = model.populations[index]
        self.index = index
        self.name = pop.name
        self.size = pop.size
        self.shape = pop.shape
        self.is_input = pop.kind == KIND_INPUT
        if self.is_input:
            return
        m = pop.model
        self.kind = m.kind
        families = {"nir": "nir", "sinabs": "sinabs", "speck": "sinabs", "snntorch": "snntorch", "norse": "norse",
                    "rockpool": "rockpool", "spyx": "spyx", "lava-dl": "lava-dl"}
        if model.profile.name not in families:
            raise OptionError(f"the clock-driven mode has no discrete update for profile '{model.profile.name}'",
                              option="--profile")
        self.family = families[model.profile.name]
        self.dt_p = model.dt_s
        self.spiking = pop.spiking and pop.rule is not None
        self.rule = pop.rule
        self.gain = _row(m.gain)
        self.bias = _row(pop.bias if pop.bias is not None else np.zeros(1))
        self.theta = _row(m.threshold) if m.threshold is not None else None
        self.v_reset = _row(m.v_reset) if m.v_reset is not None else _row(0.0)
        self.v_min = _row(m.v_min) if m.v_min is not None else None
        self.v_max = _row(m.v_max) if getattr(m, "v_max", None) is not None else None  # --quantize speck
        self.m = m
        self.v_leak = None
        if self.kind == KIND_LEAKY and self.family in ("sinabs", "snntorch"):
            node = model.graph.nodes.get(pop.name)
            self.v_leak = _row(expand_parameter(node, "v_leak", pop.shape, pop.name, model.source_path, 0.0)
                               if node is not None else np.zeros(1))
        elif self.kind == KIND_LEAKY and self.family in ("spyx", "lava-dl"):
            self.v_leak = _row(0.0)  # neither framework reads v_leak
        # snnTorch's reset timings (docs/SEMANTICS.md#profile-snntorch): reset_delay=True defers
        # the reset to the next step; reset_delay=False with subtraction raises the next test
        # while the stored membrane is still above θ
        deferred = (self.family == "snntorch" and self.spiking and pop.rule.reset_delay
                    # Spyx's LIF/IF subtract the spike of the previous state after the decay (spyx/nn.py LIF)
                    or self.family == "spyx" and self.spiking and self.kind != KIND_CUBA)
        self.deferred_reset = ps.RESET_DEFERRED if deferred else ps.RESET_NOW
        # snnTorch's RLeaky (a LIF closed on itself by a recurrent Linear/Affine, as export_nir
        # writes it) resets to zero the whole update of the step after a spike, input included
        # (rleaky.py _base_zero), where snn.Leaky keeps the new input
        if (self.deferred_reset and self.family == "snntorch" and self.kind == KIND_LEAKY and not pop.rule.subtract
                and any(pr.recurrent and pr.source == index == pr.target for pr in model.projections)):
            self.deferred_reset = ps.RESET_DEFERRED_WHOLE_UPDATE
        self.raise_test = (self.family == "snntorch" and self.spiking and not pop.rule.reset_delay
                           and pop.rule.subtract)
        self.refractory_s = pop.rule.refractory_s if self.spiking else 0.0
        zero = np.zeros((1, self.size))
        self._wide = {  # (1, n) contiguous rows for the fused kernel
            "zero": zero, "gain": _wide(self.gain, self.size), "v_reset": _wide(self.v_reset, self.size),
            "theta": _wide(self.theta, self.size) if self.theta is not None else zero,
            "v_min": _wide(self.v_min, self.size) if self.v_min is not None else zero,
            "v_max": _wide(self.v_max, self.size) if self.v_max is not None else zero,
        }

    # ---------------------------------------------------------------------------------------
    def coeffs(self, dt: float) -> dict:
        """Per-step coefficients for bin width dt (seconds), as (1, 1) / (1, n) rows."""
        m, fam = self.m, self.family
        b_step = self.bias * (dt / self.dt_p) if self.dt_p else None  # bias per bin (profiles)
        c = {}
        if self.kind == KIND_INTEGRATOR:
            c["a"] = np.ones((1, 1))
            c["c"] = _row(m.drive) * dt
        elif self.kind == KIND_LEAKY:
            tau = _row(m.tau_mem)
            if fam in ("nir", "rockpool"):  # rockpool: v_rest holds the per-step bias
                a = np.exp(-dt / tau)
                c["a"], c["c"] = a, (1.0 - a) * _row(m.v_rest)
            elif fam in ("sinabs", "snntorch", "spyx", "lava-dl"):
                a = np.exp(-dt / tau)
                c["a"], c["c"] = a, (1.0 - a) * self.v_leak + self.gain * b_step
            else:  # norse: forward Euler
                c["a"], c["c"] = 1.0 - dt / tau, (dt / tau) * _row(m.v_rest)
        else:  # KIND_CUBA
            tm, ts, r = _row(m.tau_mem), _row(m.tau_syn), _row(m.r)
            v_leak, i_rest = _row(m.v_leak), _row(m.i_rest)
            if fam == "nir":
                em, es = np.exp(-dt / tm), np.exp(-dt / ts)
                same = np.abs(ts - tm) <= 1e-9 * tm
                with np.errstate(divide="ignore", invalid="ignore"):
                    k = np.where(same, r * dt / tm * em, r * ts / (ts - tm) * (es - em))
                v_inf = v_leak + r * i_rest
                c["vv"], c["vi"], c["vc"] = em, k, v_inf * (1.0 - em) - k * i_rest
                c["ii"], c["ic"] = es, (1.0 - es) * i_rest
            elif fam in ("sinabs", "snntorch", "rockpool", "spyx", "lava-dl"):
                am, as_ = np.exp(-dt / tm), np.exp(-dt / ts)
                c["am"], c["as"] = am, as_
                c["vc"] = (1.0 - am) * v_leak
                c["k"] = r * dt / tm  # = dt/dt_p for these profiles (1 at the exporter's dt)
                c["ic"] = i_rest * (dt / ts)  # = w_in·b·dt/dt_p: the bias reaching I per bin
            else:  # norse
                c["fm"], c["fs"] = dt / tm, dt / ts
                c["vl"], c["r"] = v_leak, r
                c["ic"] = i_rest * (dt / ts)
        if self.spiking and self.refractory_s > 0:
            c["refr"] = np.full((1, 1), float(round(self.refractory_s / dt)) if dt > 0 else 0.0)
        return {key: _wide(value, self.size) for key, value in c.items()}

    # ---------------------------------------------------------------------------------------
    def new_state(self, n_b: int, dtype) -> dict:
        st = {"v": np.zeros((n_b, self.size), dtype=dtype)}
        if self.kind == KIND_CUBA:
            st["i"] = np.zeros((n_b, self.size), dtype=dtype)
        if self.deferred_reset or self.raise_test:
            st["prev"] = np.zeros((n_b, self.size))
        if self.spiking and self.refractory_s > 0:
            st["refr"] = np.zeros((n_b, self.size))
        return st

    # ---------------------------------------------------------------------------------------
    def step(self, st: dict, x, c: dict):
        """Advance one step with synaptic input x ((B, n) float64 or None for no input) by the
        family's discrete update and the shared spike rule (:mod:`evsim.kernels.profile_step`).
        Returns the spike counts ((B, n) float64) or None for a non-spiking population."""
        v = st["v"]
        spiking = self.spiking
        rule = self.rule
        w = self._wide
        dummy = w["zero"]
        spikes = np.empty(v.shape) if spiking else dummy
        use_refr = "refr" in st
        rule_args = (w["gain"], w["theta"], w["v_reset"], w["v_min"], w["v_max"], st["prev"] if "prev" in st else dummy,
                     spikes, st["refr"] if use_refr else dummy, c["refr"] if use_refr else dummy,
                     spiking, bool(spiking and rule.threshold_ge), bool(spiking and rule.multi_spike),
                     bool(spiking and rule.subtract), spiking and self.v_min is not None, self.v_max is not None,
                     self.deferred_reset if self.kind != KIND_CUBA else bool(self.deferred_reset), use_refr,
                     self.raise_test)
        has_x = x is not None
        if self.kind == KIND_CUBA:
            keys = _CUBA_COEFFS[self.family]
            ps.cuba_step(_FAMILY_CODE[self.family], v, st["i"], x if has_x else dummy, has_x, *(c[k] for k in keys), *rule_args)
        else:
            ps.linear_step(v, x if has_x else dummy, has_x, c["a"], c["c"], *rule_args)
        return spikes if spiking else None


_FAMILY_CODE = {"nir": ps.FAMILY_NIR, "sinabs": ps.FAMILY_SINABS, "snntorch": ps.FAMILY_SNNTORCH, "norse": ps.FAMILY_NORSE,
                "rockpool": ps.FAMILY_SINABS, "spyx": ps.FAMILY_SNNTORCH, "lava-dl": ps.FAMILY_SNNTORCH}
# the coefficients of :func:`evsim.kernels.profile_step.cuba_step` (c0..c4) per family
_CUBA_COEFFS = {"nir": ("vv", "vi", "vc", "ii", "ic"), "sinabs": ("am", "as", "vc", "k", "ic"),
                "snntorch": ("am", "as", "vc", "k", "ic"), "norse": ("fm", "fs", "vl", "r", "ic")}
for _fam in ("rockpool", "spyx", "lava-dl"):
    _CUBA_COEFFS[_fam] = _CUBA_COEFFS["sinabs"]


# --------------------------------------------------------------------------------------------
# The compiled run of one sample (plans whose projections all deliver in the same step)
# --------------------------------------------------------------------------------------------
#
# The same arithmetic as the step loop of :meth:`ClockSimulator._simulate` (the same operator
# kernels' summation order, the same :mod:`evsim.kernels.profile_step` updates), in one numba
# call per sample, with the work of a step scaled to its activity:
#
# * a source's non-zero elements are kept as a list in increasing index (the order in which the
#   dense kernels above visit them); a projection scatters from that list only, and a silent
#   source costs nothing; a convolution clears and copies out only the output positions it
#   reached (its buffers are zero elsewhere);
# * a population is "static" when its update without input is the identity: an integrator with
#   a = 1, c = 0 (IF without bias), no refractory hold, θ > 0, v_min ≤ 0 and v_max ≥ 0 (so the
#   initial v = 0 neither fires nor is floored or saturated). A static population with no input
#   and no spike in its previous update is not updated at all. A static spiking one without snnTorch's deferred reset updates
#   only the neurons that received input or fired in the previous step (they may still be above
#   threshold, e.g. speck's one spike per step), by linear_step's arithmetic on those neurons
#   (:func:`_static_update`): every other neuron would keep v (v + g·0 = v: v is never −0) and
#   not fire (the same threshold test on the same v that did not fire before);
# * the other populations (leaky, CubaLIF, biases, refractory periods) take the dense update of
#   :mod:`evsim.kernels.profile_step` in every step, as their state changes in every step;
# * an empty bin therefore costs a few comparisons per static population.

OP_DENSE, OP_CONV, OP_SCALE = 0, 1, 2
# op table columns
# (_OW: the operator's index in the simulator's packed operators, or its scale in l_scale)
_OK, _OW, _OCIN, _OH, _OWD, _OCOUT, _OOH, _OOW, _OOUT, _OHWC, _OACT, _OMARK, _OPLIST = range(13)
_OP_COLS = 13
# population table columns
(_PKIND, _PFAM, _PV, _PI, _PX, _PC0, _PC1, _PC2, _PC3, _PC4, _PGAIN, _PTHETA, _PVRESET, _PVMIN, _PPREV, _PSPK,
 _PREFR, _PREFRC, _PSPIKING, _PGE, _PMULTI, _PSUB, _PFLOOR, _PDEFER, _PUSEREFR, _PACT, _PMARK, _PUPD,
 _PRAISE, _PVMAX, _PCEIL) = range(31)
_POP_COLS = 31
_KIND_LINEAR, _KIND_CUBA = 1, 2
# run summary slots
_S_SYNOPS, _S_CONSUMED, _S_NREC, _S_DECIDED, _S_CONF, _S_STEPS = range(6)


@njit(cache=True)
def _sort_small(a, n):
    """Insertion sort of a[:n] (a bin's few distinct input neurons)."""
    for p in range(1, n):
        v = a[p]
        q = p - 1
        while q >= 0 and a[q] > v:
            a[q + 1] = a[q]
            q -= 1
        a[q + 1] = v


@njit(cache=True)
def _nonzero(x, idx):
    """Indices of the non-zero elements of x, increasing, into idx; returns their number."""
    n = 0
    for p in range(x.shape[0]):
        if x[p] != 0.0:
            idx[n] = p
            n += 1
    return n


@njit(cache=True, _nrt=False)
def _dense_active(x, act, n_act, ops, op, runs, out):
    """:func:`_dense_kernel` for one sample, visiting only the listed non-zero inputs."""
    for j in range(out.shape[0]):
        out[j] = 0.0
    for t in range(n_act):
        n_runs, _, run_len = op_runs(ops, op, act[t], runs)
        _add_runs(ops.weights, runs, n_runs, run_len, x[act[t]], out)


@njit(cache=True, _nrt=False)
def _conv_active(x, act, n_act, ops, op, runs, hwc, out, c_in, hw, w, c_out, n_pos, mark, plist, n_prev):
    """:func:`_conv_kernel` for one sample, visiting only the listed non-zero inputs. ``hwc`` (the
    channel-last sums) and ``out`` (the same in NIR order) are zero outside the ``n_prev``
    output positions ``plist`` of the previous call, which are cleared first; the output positions
    reached now are listed in ``plist`` (``mark``: all False between calls); returns their number."""
    for t in range(n_prev):
        pp = plist[t]
        for co in range(c_out):
            hwc[pp * c_out + co] = 0.0
            out[co * n_pos + pp] = 0.0
    n_new = 0
    for t in range(n_act):
        f = act[t]
        c = f // hw
        rest = f - c * hw
        y = rest // w
        s = x[f]
        n_runs, _, run_len = conv_runs(ops, op, c, y, rest - y * w, runs)
        for r in range(n_runs):
            # sub-run sb of a run: the outputs of one output position (consecutive positions)
            p0 = runs[r, 3]
            for sb in range(runs[r, 2]):
                if mark[p0 + sb] == 0:
                    mark[p0 + sb] = 1
                    plist[n_new] = p0 + sb
                    n_new += 1
        _add_runs(ops.weights, runs, n_runs, run_len, s, hwc)
    for t in range(n_new):
        pp = plist[t]
        mark[pp] = 0
        for co in range(c_out):
            out[co * n_pos + pp] = hwc[pp * c_out + co]
    return n_new


@njit(cache=True)
def _static_update(v, xr, has_x, a, c, g, theta, v_reset, v_min, v_max, spikes, upd, n_upd, ge, multi, subtract,
                   use_floor, use_ceiling, fired):
    """:func:`evsim.kernels.profile_step.linear_step` (B = 1, no refractory hold, no deferred
    reset) on the listed neurons only: for a static population the others would keep v and not
    fire. The fired neurons are listed in ``fired`` (in the order of ``upd``); returns their number."""
    ra, rc, rg, rt, rr, rm, rx = a[0], c[0], g[0], theta[0], v_reset[0], v_min[0], v_max[0]
    sp = spikes[0]
    vr = v[0]
    m = 0
    for t in range(n_upd):
        j = upd[t]
        vv = np.float64(vr[j])
        vv = ra[j] * vv + rc[j]
        if has_x:
            vv = vv + rg[j] * xr[j]
        if use_ceiling:
            vv = nk.apply_ceiling(vv, rx[j])
        vv, nsp = ps.fire_reset_floor(vv, False, rt[j], rr[j], rm[j], ge, multi, subtract, use_floor, False)
        sp[j] = nsp
        vr[j] = vv
        if nsp > 0.0:
            fired[m] = j
            m += 1
    return m


@njit(cache=True)
def _scale_all(x, scale, out):
    """:class:`_Scale` (every element, as ``x * scale``)."""
    one = scale.shape[0] == 1
    for p in range(out.shape[0]):
        out[p] = x[p] * (scale[0] if one else scale[p])


@njit(cache=True)
def _input_frame(flat, e0, e1, frame, act0, n_prev):
    """The input frame of one bin from its events flat[e0:e1]: event counts per input neuron in
    ``frame`` (cleared first at the ``n_prev`` neurons listed before) and its non-zero neurons in
    increasing order in ``act0``; returns their number."""
    for t in range(n_prev):
        frame[act0[t]] = 0.0
    na = 0
    for e in range(e0, e1):
        f = flat[e]
        if frame[f] == 0.0:
            act0[na] = f
            na += 1
        frame[f] += 1.0
    if na <= 64:
        _sort_small(act0, na)
    else:
        na = _nonzero(frame, act0)
    return na


@njit(cache=True)
def _record_spikes(pop, act, na, counts, k, rec_pop, rec_neuron, rec_step, rec_count, nr):
    """Append the ``na`` neurons ``act`` of ``pop`` with their counts in step k to the spike
    record (next free row nr); returns the next free row."""
    for t in range(na):
        rec_pop[nr] = pop
        rec_neuron[nr] = act[t]
        rec_step[nr] = k
        rec_count[nr] = counts[act[t]]
        nr += 1
    return nr


@njit(cache=True)
def _update_sparse(i, pt, l_state, l_f64, l_coef, l_idx, has_x, prev_n, n_upd):
    """The discrete update of a static population (IF without bias or refractory hold) on the
    neurons with input and those that fired in the previous step (they may fire again); the
    others keep v and do not fire. Returns the number of neurons that fired, listed in increasing
    order in the population's active list."""
    mark = l_idx[pt[i, _PMARK]]
    upd = l_idx[pt[i, _PUPD]]
    act = l_idx[pt[i, _PACT]]
    xr = l_f64[pt[i, _PX]][0]
    for t in range(prev_n):
        p = act[t]
        if mark[p] == 0:
            mark[p] = 1
            upd[n_upd] = p
            n_upd += 1
    na = _static_update(l_state[pt[i, _PV]], xr, has_x, l_coef[pt[i, _PC0]], l_coef[pt[i, _PC1]],
                        l_f64[pt[i, _PGAIN]], l_f64[pt[i, _PTHETA]], l_f64[pt[i, _PVRESET]],
                        l_f64[pt[i, _PVMIN]], l_f64[pt[i, _PVMAX]], l_f64[pt[i, _PSPK]], upd, n_upd, pt[i, _PGE] == 1,
                        pt[i, _PMULTI] == 1, pt[i, _PSUB] == 1, pt[i, _PFLOOR] == 1, pt[i, _PCEIL] == 1, act)
    for t in range(n_upd):
        p = upd[t]
        mark[p] = 0
        xr[p] = 0.0
    if na > 64:
        act[:na].sort()
    else:
        _sort_small(act, na)
    return na


@njit(cache=True)
def _update_dense(i, pt, l_state, l_f64, l_coef, has_x):
    """The discrete update of every neuron of population i (its profile's step:
    :func:`evsim.kernels.profile_step.linear_step` / ``cuba_step``)."""
    x = l_f64[pt[i, _PX]]
    spiking = pt[i, _PSPIKING] == 1
    if pt[i, _PKIND] == _KIND_CUBA:
        ps.cuba_step(pt[i, _PFAM], l_state[pt[i, _PV]], l_state[pt[i, _PI]], x, has_x, l_coef[pt[i, _PC0]],
                     l_coef[pt[i, _PC1]], l_coef[pt[i, _PC2]], l_coef[pt[i, _PC3]], l_coef[pt[i, _PC4]],
                     l_f64[pt[i, _PGAIN]], l_f64[pt[i, _PTHETA]], l_f64[pt[i, _PVRESET]],
                     l_f64[pt[i, _PVMIN]], l_f64[pt[i, _PVMAX]], l_f64[pt[i, _PPREV]], l_f64[pt[i, _PSPK]],
                     l_f64[pt[i, _PREFR]], l_coef[pt[i, _PREFRC]], spiking, pt[i, _PGE] == 1, pt[i, _PMULTI] == 1,
                     pt[i, _PSUB] == 1, pt[i, _PFLOOR] == 1, pt[i, _PCEIL] == 1, pt[i, _PDEFER] == 1,
                     pt[i, _PUSEREFR] == 1, pt[i, _PRAISE] == 1)
    else:
        ps.linear_step(l_state[pt[i, _PV]], x, has_x, l_coef[pt[i, _PC0]], l_coef[pt[i, _PC1]],
                       l_f64[pt[i, _PGAIN]], l_f64[pt[i, _PTHETA]], l_f64[pt[i, _PVRESET]],
                       l_f64[pt[i, _PVMIN]], l_f64[pt[i, _PVMAX]], l_f64[pt[i, _PPREV]], l_f64[pt[i, _PSPK]],
                       l_f64[pt[i, _PREFR]], l_coef[pt[i, _PREFRC]], spiking, pt[i, _PGE] == 1, pt[i, _PMULTI] == 1,
                       pt[i, _PSUB] == 1, pt[i, _PFLOOR] == 1, pt[i, _PCEIL] == 1, pt[i, _PDEFER],
                       pt[i, _PUSEREFR] == 1, pt[i, _PRAISE] == 1)


@njit(cache=True)
def _run_sample(k0, flat, ptr, n_run, width, pt, in_ptr, incoming, proj, ot, l_state, l_f64, l_coef, l_buf, l_idx,
                ops, runs, l_scale, l_fan, static, op_n, pending, n_act, stepped, readout, counts_mode, cut,
                record_spikes, record_output, counts, sums, spikes_total, out_vec, out_rec, cons_rec, rec_pop,
                rec_neuron, rec_step, rec_count, total_size):
    """Steps k0 .. n_run − 1 of one sample (state in the arrays of the plan, zeroed by the caller
    before step 0). Returns (next step, code): code 1 = all steps run, 2 = the cutoff decided
    (after step next − 1), 0 = the spike record is full (grow it and call again from next).

    One step: the input frame (:func:`_input_frame`); then per population in compiled order its
    input x (the sum over its incoming projections of their operators applied to the source's
    spikes, and the SynOps they cost), its update (:func:`_update_sparse` or :func:`_update_dense`)
    and its spikes; then the output vector and the cutoff decision. (The projections' loop stays
    in this function: as a function of its own it made the step loop twice as slow.)"""
    n_pops = pt.shape[0]
    frame = l_f64[pt[0, _PSPK]][0]
    act0 = l_idx[pt[0, _PACT]]
    n_out = out_vec.shape[0]
    cut_on = int(cut[0]) != 0
    for k in range(k0, n_run):
        if record_spikes and int(sums[_S_NREC]) + total_size > rec_pop.shape[0]:
            return k, 0
        na = _input_frame(flat, ptr[k], ptr[k + 1], frame, act0, n_act[0])
        n_act[0] = na
        sums[_S_CONSUMED] += ptr[k + 1] - ptr[k]
        spikes_total[0] += ptr[k + 1] - ptr[k]
        if record_spikes:
            sums[_S_NREC] = _record_spikes(0, act0, na, frame, k, rec_pop, rec_neuron, rec_step, rec_count,
                                           int(sums[_S_NREC]))
        for i in range(1, n_pops):
            x = l_f64[pt[i, _PX]]
            xr = x[0]
            has_x = False
            sparse = static[i] == 2
            mark = l_idx[pt[i, _PMARK]]
            upd = l_idx[pt[i, _PUPD]]
            n_upd = 0
            for q in range(in_ptr[i], in_ptr[i + 1]):
                j = incoming[q]
                src = proj[j, 0]
                na_s = n_act[src]
                if na_s == 0:
                    continue
                cur = l_f64[pt[src, _PSPK]][0]
                cur_act = l_idx[pt[src, _PACT]]
                fan = l_fan[j]
                syn = 0.0
                for t in range(na_s):
                    syn += cur[cur_act[t]] * fan[cur_act[t]]
                sums[_S_SYNOPS] += syn
                cur_n = na_s
                n_pos = -1  # the output's non-zero part: every element (-1), or n_pos positions (conv)
                plist = cur_act
                if proj[j, 1] == proj[j, 2]:  # no operator: the source itself
                    n_pos = na_s
                for o in range(proj[j, 1], proj[j, 2]):
                    out = l_buf[ot[o, _OOUT]]
                    kind = ot[o, _OK]
                    n_pos = -1
                    if kind == OP_DENSE:
                        _dense_active(cur, cur_act, cur_n, ops, ot[o, _OW], runs, out)
                    elif kind == OP_CONV:
                        plist = l_idx[ot[o, _OPLIST]]
                        n_pos = _conv_active(cur, cur_act, cur_n, ops, ot[o, _OW], runs, l_buf[ot[o, _OHWC]], out,
                                             ot[o, _OCIN], ot[o, _OH] * ot[o, _OWD], ot[o, _OWD], ot[o, _OCOUT],
                                             ot[o, _OOH] * ot[o, _OOW], l_idx[ot[o, _OMARK]], plist, op_n[o])
                        op_n[o] = n_pos
                    else:
                        _scale_all(cur, l_scale[ot[o, _OW]], out)
                    if o + 1 < proj[j, 2]:
                        cur_act = l_idx[ot[o, _OACT]]
                        cur_n = _nonzero(out, cur_act)
                    cur = out
                if sparse:
                    # x is zero outside the neurons listed in upd: add the output where it is non-zero
                    if n_pos < 0:
                        for p in range(xr.shape[0]):
                            xr[p] = xr[p] + cur[p]
                            if mark[p] == 0:
                                mark[p] = 1
                                upd[n_upd] = p
                                n_upd += 1
                    elif proj[j, 1] == proj[j, 2]:
                        for t in range(n_pos):
                            p = plist[t]
                            xr[p] = xr[p] + cur[p]
                            if mark[p] == 0:
                                mark[p] = 1
                                upd[n_upd] = p
                                n_upd += 1
                    else:  # conv output positions, every channel
                        o_last = proj[j, 2] - 1
                        c_out = ot[o_last, _OCOUT]
                        npos_all = ot[o_last, _OOH] * ot[o_last, _OOW]
                        for t in range(n_pos):
                            for co in range(c_out):
                                p = co * npos_all + plist[t]
                                xr[p] = xr[p] + cur[p]
                                if mark[p] == 0:
                                    mark[p] = 1
                                    upd[n_upd] = p
                                    n_upd += 1
                    has_x = True
                elif has_x:
                    for p in range(xr.shape[0]):
                        xr[p] = xr[p] + cur[p]
                else:
                    for p in range(xr.shape[0]):
                        xr[p] = cur[p]
                    has_x = True
            stepped[i] = 0
            prev_n = n_act[i]
            n_act[i] = 0
            if not has_x and static[i] != 0 and pending[i] == 0:
                continue
            stepped[i] = 1
            spiking = pt[i, _PSPIKING] == 1
            spk = l_f64[pt[i, _PSPK]]
            act = l_idx[pt[i, _PACT]]
            if sparse:
                na = _update_sparse(i, pt, l_state, l_f64, l_coef, l_idx, has_x, prev_n, n_upd)
            else:
                _update_dense(i, pt, l_state, l_f64, l_coef, has_x)
                if not spiking:
                    continue
                na = _nonzero(spk[0], act)
            sr = spk[0]
            n_act[i] = na
            pending[i] = 1 if na > 0 else 0
            tot = 0.0
            for t in range(na):
                tot += sr[act[t]]
            spikes_total[i] += tot
            if record_spikes:
                sums[_S_NREC] = _record_spikes(i, act, na, sr, k, rec_pop, rec_neuron, rec_step, rec_count,
                                               int(sums[_S_NREC]))
        # the output vector
        if counts_mode:
            if stepped[readout] == 1:
                sr = l_f64[pt[readout, _PSPK]][0]
                for p in range(n_out):
                    counts[p] += sr[p]
            for p in range(n_out):
                out_vec[p] = counts[p]
        else:
            vr = l_state[pt[readout, _PV]][0]
            for p in range(n_out):
                out_vec[p] = np.float64(vr[p])
        if record_output:
            for p in range(n_out):
                out_rec[k, p] = out_vec[p]
            cons_rec[k] = sums[_S_CONSUMED]
        sums[_S_STEPS] = k + 1
        if cut_on:
            decided, conf = cutoff_decision(out_vec, cut, (k + 1) * width)
            if decided:
                sums[_S_DECIDED] = 1.0
                sums[_S_CONF] = conf
                return k + 1, 2
    return n_run, 1


class _ListBuilder:
    """The arrays of one typed List argument of :func:`_run_sample` (one dtype, one number of
    dimensions; with ``placeholder``, entry 0 is a zero array that unused slots point to),
    collected in Python and packed into one buffer at the end, where a cached kernel
    (:func:`_views_1d`, :func:`_views_2d`) makes the typed List of its pieces. Python never operates
    on a typed List: numba compiles each of those operations (``List()``, ``append``, ``[]``) in
    every process, which took ~2 s of every clock-mode start-up."""

    def __init__(self, dtype, ndim: int, placeholder: bool = True):
        self.dtype, self.ndim = dtype, ndim
        self.arrays = [np.zeros((1,) * ndim, dtype=dtype)] if placeholder else []
        self.views = None  # after build(): the arrays as numpy views of the packed buffer

    def add(self, a: np.ndarray) -> int:
        self.arrays.append(a)
        return len(self.arrays) - 1

    def build(self):
        """The typed List; :attr:`views` holds the same arrays as numpy views (one memory)."""
        sizes = np.array([a.size for a in self.arrays], dtype=np.int64)
        offsets = np.zeros(sizes.size + 1, dtype=np.int64)
        np.cumsum(sizes, out=offsets[1:])
        flat = np.empty(int(offsets[-1]), dtype=self.dtype)
        self.views = []
        for a, start, end in zip(self.arrays, offsets[:-1], offsets[1:]):
            piece = flat[start:end]
            piece[:] = np.asarray(a).ravel()
            self.views.append(piece.reshape(a.shape))
        if self.ndim == 1:
            return _views_1d(flat, offsets)
        rows = np.array([a.shape[0] for a in self.arrays], dtype=np.int64)
        cols = np.array([a.shape[1] for a in self.arrays], dtype=np.int64)
        return _views_2d(flat, offsets, rows, cols)


@njit(cache=True)
def _views_1d(flat, offsets):
    """Typed List of the pieces ``flat[offsets[k]:offsets[k + 1]]`` (views)."""
    out = List()
    for k in range(offsets.shape[0] - 1):
        out.append(flat[offsets[k]:offsets[k + 1]])
    return out


@njit(cache=True)
def _views_2d(flat, offsets, rows, cols):
    """Typed List of the pieces ``flat[offsets[k]:offsets[k + 1]]`` as ``rows[k]`` × ``cols[k]``
    arrays (views)."""
    out = List()
    for k in range(offsets.shape[0] - 1):
        out.append(flat[offsets[k]:offsets[k + 1]].reshape((rows[k], cols[k])))
    return out


class _FastPlan:
    """The arrays :func:`_run_sample` steps one sample with (state reused from run to run, so a
    simulator runs one sample at a time, like :class:`evsim.Simulator`)."""

    @staticmethod
    def fits(sim: "ClockSimulator") -> bool:
        """Whether the compiled run covers the model: the Input is population 0 (the only one)
        and every operator is a dense, convolution, scale or reshape kernel. (Delays are checked
        per bin width: :meth:`ClockSimulator._fast_ok`.)"""
        if not sim.pops or not sim.pops[0].is_input or any(p.is_input for p in sim.pops[1:]):
            return False
        return all(isinstance(k, (_Dense, _Conv, _Scale)) for pr in sim.projs for k in pr.kernels)

    def __init__(self, sim: "ClockSimulator"):
        pops, projs = sim.pops, sim.projs
        sdt = sim.dtype
        self.sim = sim
        l_state = _ListBuilder(sdt, 2)
        l_f64 = _ListBuilder(np.float64, 2)
        l_buf = _ListBuilder(np.float64, 1)
        l_idx = _ListBuilder(np.int64, 1)
        self.ops = sim.ops
        self.runs = new_runs_buffer(sim.ops.op_geom)
        l_scale = _ListBuilder(np.float64, 1)
        l_fan = _ListBuilder(np.float64, 1, placeholder=False)  # projection j's fan-out at j
        zeroed = []  # (list, slot) of the state zeroed before every run

        def add(lst, a, zero=False):
            slot = lst.add(a)
            if zero:
                zeroed.append((lst, slot))
            return slot

        n_p = len(pops)
        pt = np.zeros((n_p, _POP_COLS), dtype=np.int64)
        self.coef_keys = [None] * n_p
        for i, p in enumerate(pops):
            pt[i, _PSPK] = add(l_f64, np.zeros((1, p.size)), zero=True)
            pt[i, _PACT] = add(l_idx, np.zeros(p.size, dtype=np.int64))
            if p.is_input:
                continue
            pt[i, _PMARK] = add(l_idx, np.zeros(p.size, dtype=np.int64))
            pt[i, _PUPD] = add(l_idx, np.zeros(p.size, dtype=np.int64))
            w = p._wide
            dummy = add(l_f64, w["zero"])
            pt[i, _PKIND] = _KIND_CUBA if p.kind == KIND_CUBA else _KIND_LINEAR
            pt[i, _PFAM] = _FAMILY_CODE[p.family]
            pt[i, _PV] = add(l_state, np.zeros((1, p.size), dtype=sdt), zero=True)
            pt[i, _PI] = add(l_state, np.zeros((1, p.size), dtype=sdt), zero=True) if p.kind == KIND_CUBA else 0
            pt[i, _PX] = add(l_f64, np.zeros((1, p.size)), zero=True)
            pt[i, _PGAIN] = add(l_f64, w["gain"])
            pt[i, _PTHETA] = add(l_f64, w["theta"])
            pt[i, _PVRESET] = add(l_f64, w["v_reset"])
            pt[i, _PVMIN] = add(l_f64, w["v_min"])
            pt[i, _PVMAX] = add(l_f64, w["v_max"])
            spiking = bool(p.spiking)
            use_refr = spiking and p.refractory_s > 0
            pt[i, _PPREV] = (add(l_f64, np.zeros((1, p.size)), zero=True) if p.deferred_reset or p.raise_test
                             else dummy)
            pt[i, _PREFR] = add(l_f64, np.zeros((1, p.size)), zero=True) if use_refr else dummy
            rule = p.rule
            pt[i, _PSPIKING] = spiking
            pt[i, _PGE] = bool(spiking and rule.threshold_ge)
            pt[i, _PMULTI] = bool(spiking and rule.multi_spike)
            pt[i, _PSUB] = bool(spiking and rule.subtract)
            pt[i, _PFLOOR] = bool(spiking and p.v_min is not None)
            pt[i, _PCEIL] = bool(p.v_max is not None)
            pt[i, _PDEFER] = p.deferred_reset
            pt[i, _PRAISE] = bool(p.raise_test)
            pt[i, _PUSEREFR] = bool(use_refr)
            keys = list(_CUBA_COEFFS[p.family] if p.kind == KIND_CUBA else ("a", "c"))
            keys += ["refr" if use_refr else None]
            self.coef_keys[i] = keys
        # coefficient slots: the same positions for every bin width (see coeffs())
        pos = 1
        for i, keys in enumerate(self.coef_keys):
            if keys is None:
                continue
            cols = [_PC0, _PC1] if len(keys) == 3 else [_PC0, _PC1, _PC2, _PC3, _PC4]
            for col in cols + [_PREFRC]:
                pt[i, col] = pos
                pos += 1
        # projections in the order of ``sim.incoming``; the operators of each
        order = [j for i in range(n_p) for j in sim.incoming[i]]
        proj = np.zeros((len(projs), 3), dtype=np.int64)
        ops = []
        for j, pr in enumerate(projs):
            l_fan.add(np.ascontiguousarray(pr.fanout, dtype=np.float64))
            proj[j, 0] = pr.src
            proj[j, 1] = len(ops)
            for kern in pr.kernels:
                row = np.zeros(_OP_COLS, dtype=np.int64)
                if isinstance(kern, _Dense):
                    row[_OK] = OP_DENSE
                    row[_OW] = kern.index
                    n_out = kern.n_out
                elif isinstance(kern, _Conv):
                    geo = kern.engine_op.geometry
                    c_in, h, w_, c_out, oh, ow = (int(geo[g]) for g in (G_CIN, G_H, G_W, G_COUT, G_OH, G_OW))
                    row[_OK] = OP_CONV
                    row[_OW] = kern.index
                    row[[_OCIN, _OH, _OWD, _OCOUT, _OOH, _OOW]] = (c_in, h, w_, c_out, oh, ow)
                    n_out = oh * ow * c_out
                    row[_OHWC] = add(l_buf, np.zeros(n_out), zero=True)
                    row[_OMARK] = add(l_idx, np.zeros(oh * ow, dtype=np.int64))
                    row[_OPLIST] = add(l_idx, np.zeros(oh * ow, dtype=np.int64))
                else:
                    row[_OK] = OP_SCALE
                    row[_OW] = add(l_scale, np.ascontiguousarray(kern.scale.ravel(), dtype=np.float64))
                    n_out = None  # same size as its input
                ops.append((row, n_out))
            proj[j, 2] = len(ops)
        # output buffers (a scale keeps the size of its input: the source, or the previous operator)
        ot = np.zeros((max(len(ops), 1), _OP_COLS), dtype=np.int64)
        for j, pr in enumerate(projs):
            size = pops[pr.src].size
            for o in range(proj[j, 1], proj[j, 2]):
                row, n_out = ops[o]
                size = size if n_out is None else n_out
                row[_OOUT] = add(l_buf, np.zeros(size), zero=True)
                row[_OACT] = add(l_idx, np.zeros(size, dtype=np.int64))
                ot[o] = row
        self.pt, self.proj, self.ot = pt, proj, ot
        self.l_state, self.l_f64, self.l_buf, self.l_idx, self.l_scale, self.l_fan = (
            lst.build() for lst in (l_state, l_f64, l_buf, l_idx, l_scale, l_fan))
        self.state_views = l_state.views  # for Python to read the final state
        self.to_zero = [lst.views[slot] for lst, slot in zeroed]
        self.in_ptr = np.zeros(n_p + 1, dtype=np.int64)
        self.in_ptr[1:] = np.cumsum([len(sim.incoming[i]) for i in range(n_p)])
        self.incoming = np.asarray(order, dtype=np.int64)
        self.pending = np.zeros(n_p, dtype=np.int64)
        self.n_act = np.zeros(n_p, dtype=np.int64)
        self.stepped = np.zeros(n_p, dtype=np.int64)
        self.op_n = np.zeros(max(len(ops), 1), dtype=np.int64)  # output positions of a conv's last call
        self.total_size = int(sum(p.size for p in pops))
        self._by_width: dict = {}

    def coeffs(self, width_us: float) -> tuple:
        """(typed list of coefficient rows, static flag per population) for a bin width."""
        got = self._by_width.get(width_us)
        if got is not None:
            return got
        sim = self.sim
        l_coef = _ListBuilder(np.float64, 2)
        static = np.zeros(len(sim.pops), dtype=np.int64)
        for i, p in enumerate(sim.pops):
            keys = self.coef_keys[i]
            if keys is None:
                continue
            c = p.coeffs(width_us * 1e-6)
            for key in keys:
                l_coef.add(c[key] if key is not None else p._wide["zero"])
            theta_ok = not p.spiking or (p.theta is not None and bool(np.all(p.theta > 0)))
            floor_ok = not p.spiking or p.v_min is None or bool(np.all(p.v_min <= 0))
            floor_ok = floor_ok and (p.v_max is None or bool(np.all(p.v_max >= 0)))  # v = 0 not saturated
            # (snnTorch's raised test after a residual, reset_delay=False with subtraction, can fire
            # a neuron without input: such populations take the dense update)
            if (p.kind == KIND_INTEGRATOR and "refr" not in c and theta_ok and floor_ok and not p.raise_test
                    and p.deferred_reset != ps.RESET_DEFERRED_WHOLE_UPDATE and np.all(c["a"] == 1.0) and np.all(c["c"] == 0.0)):
                static[i] = 2 if p.spiking and not p.deferred_reset else 1
        got = self._by_width[width_us] = (l_coef.build(), static)
        return got

    def reset(self) -> None:
        for a in self.to_zero:
            a.fill(0.0)
        self.pending[:] = 0
        self.n_act[:] = 0
        self.stepped[:] = 0
        self.op_n[:] = 0


# --------------------------------------------------------------------------------------------
# The simulator
# --------------------------------------------------------------------------------------------


@dataclass
class _Sample:
    index: int  # position in the caller's list
    flat: np.ndarray  # input neuron (NIR flat index) of every consumed event
    k: np.ndarray  # step of every consumed event
    n_total: int  # events in the recording
    n_steps: int  # steps of the binning (whole recording)
    n_run: int  # steps to run (up to the last consumed event)
    width_us: float


@dataclass
class _StepInputs:
    """All consumed events of a batch, ordered by step (stable: file order within a step)."""

    sample: np.ndarray  # sample of every event
    flat: np.ndarray  # input neuron of every event
    ptr: np.ndarray  # events of step k: ptr[k]:ptr[k + 1]
    n_steps: int

    @classmethod
    def of(cls, samples: list) -> "_StepInputs":
        n_steps = max((s.n_run for s in samples), default=0)
        if not samples:
            empty = np.zeros(0, np.int64)
            return cls(empty, empty, np.zeros(n_steps + 1, np.int64), n_steps)
        ev_b = np.concatenate([np.full(s.k.size, j, dtype=np.int64) for j, s in enumerate(samples)])
        ev_k = np.concatenate([s.k for s in samples])
        ev_f = np.concatenate([s.flat for s in samples])
        order = np.argsort(ev_k, kind="stable")
        ev_k = ev_k[order]
        return cls(ev_b[order], ev_f[order], np.searchsorted(ev_k, np.arange(n_steps + 1)), n_steps)

    def frame(self, batch: "_Batch", k: int, n_in: int) -> np.ndarray:
        """Event counts per live row and input neuron in step k ((rows, n_in) float64)."""
        a, e = self.ptr[k], self.ptr[k + 1]
        rows = batch.row_of[self.sample[a:e]]
        flat_k = self.flat[a:e]
        if (rows < 0).any():  # events of samples that already stopped (cutoff)
            flat_k = flat_k[rows >= 0]
            rows = rows[rows >= 0]
        n_live = batch.live.size
        return np.bincount(rows * n_in + flat_k, minlength=n_live * n_in).astype(np.float64).reshape(n_live, n_in)


@dataclass
class _Batch:
    """The samples still running (one row each) and what accumulates per row."""

    live: np.ndarray  # sample of every row
    row_of: np.ndarray  # row of every sample (-1: not running)
    per_sample: bool  # coefficients per row (different bin widths) or shared
    coeffs: list
    states: list
    hist: list  # per population: ring buffer of past spikes (delayed / recurrent projections)
    counts: np.ndarray  # readout spike counts
    spikes_total: np.ndarray  # spikes per population
    synops: np.ndarray
    consumed: np.ndarray  # input events

    def keep(self, keep: np.ndarray) -> None:
        """Drop the rows where ``keep`` is False."""
        self.live = self.live[keep]
        self.row_of[:] = -1
        self.row_of[self.live] = np.arange(self.live.size)
        self.counts, self.synops = self.counts[keep], self.synops[keep]
        self.consumed, self.spikes_total = self.consumed[keep], self.spikes_total[keep]
        for st in self.states:
            if st is not None:
                for key in st:
                    st[key] = st[key][keep]
        self.hist = [None if h is None else h[:, keep] for h in self.hist]
        if self.per_sample:
            self.coeffs = [None if c is None else {kk: v[keep] for kk, v in c.items()} for c in self.coeffs]


@dataclass
class _Outcome:
    """Per sample: what its Result reports."""

    synops: np.ndarray
    spikes_total: np.ndarray
    consumed: np.ndarray
    steps_done: np.ndarray
    final_out: np.ndarray
    final_counts: np.ndarray
    status: list
    decision: list
    confidence: list
    final_state: list

    @classmethod
    def empty(cls, n_b: int, n_pops: int, n_out: int) -> "_Outcome":
        return cls(np.zeros(n_b), np.zeros((n_b, n_pops)), np.zeros(n_b, dtype=np.int64), np.zeros(n_b, dtype=np.int64),
                   np.zeros((n_b, n_out)), np.zeros((n_b, n_out)), ["complete"] * n_b, [None] * n_b, [None] * n_b,
                   [None] * n_b)


class ClockSimulator:
    """Clock-driven simulation of a compiled model (docs/SEMANTICS.md#clock; semantics in the module docstring).

    Args:
        model: a :class:`CompiledModel` (or a path, compiled with ``profile``).
        bin_us / n_bins: the bin width in µs, or the number of bins per recording (exactly one).
        cutoff: a :class:`evsim.sim.result.Cutoff` (default: none).
        record_spikes: keep every spike (Result.spikes, t_us = end of the step, count = spikes of
            the neuron in that step; the Input's are its event counts).
        record_output: keep the output vector after every step (Result.output_record).
        keep_state: put every population's final state in ``Result.extra["state"]``
            ({population name: {"v": ..., "i": ...}}, NIR C-order, float64; "i" for CubaLI(F)).
        time_origin, duration_us: the sample window (:class:`evsim.input.window.SampleWindow`):
            bins start at the origin (the first event, or t = 0) and, with a duration, cover
            [origin, origin + duration) whatever the events.
    """

    def __init__(self, model, *, bin_us: float | None = None, n_bins: int | None = None, cutoff: Cutoff | None = None,
                 record_spikes: bool = False, record_output: bool = False, keep_state: bool = False,
                 profile: str = "nir", time_origin: str = "first-event", duration_us: float | None = None):
        if not isinstance(model, CompiledModel):
            model = compile_model(model, profile=profile)
        bin_steps(np.zeros(0, dtype=np.int64), bin_us=bin_us, n_bins=n_bins)  # validates the options
        self.model = model
        self.window = SampleWindow(time_origin, duration_us)
        self.bin_us = bin_us
        self.n_bins = n_bins
        self.cutoff = cutoff or Cutoff()
        if not isinstance(self.cutoff, Cutoff):
            raise OptionError(f"must be an evsim.Cutoff (e.g. Cutoff('topk', threshold=3.0)), got {self.cutoff!r}",
                              option="cutoff")
        self.record_spikes = record_spikes
        self.record_output = record_output
        self.keep_state = keep_state
        self.dtype = np.float32 if model.precision == "float32" else np.float64
        self.pops = [_Pop(model, i) for i in range(len(model.populations))]
        self.projs = []
        for j, pr in enumerate(model.projections):
            kernels = [k for k in (_kernel_of(op, self.dtype) for op in pr.linear_ops) if k is not None]
            src_shape = model.populations[pr.source].shape
            per_source = None
            if pr.delay_per_source is not None:
                per_source = to_nir_order(np.asarray(pr.delay_per_source, dtype=np.float64), src_shape)
            # SynOps per source spike: the engine's own count (one definition, evsim.kernels.fanout)
            fan = to_nir_order(synops_table(model.arrays, j, model.populations[pr.source].size), src_shape)
            self.projs.append(_Proj(pr.source, pr.target, kernels, fan, float(pr.delay_s), per_source, bool(pr.recurrent)))
        # the dense and convolution operators, packed as the engine packs its own (one chain each)
        linear = [k for p in self.projs for k in p.kernels if isinstance(k, _Linear)]
        self.ops = pack_operators([[k.engine_op] for k in linear], self.dtype)
        for index, k in enumerate(linear):
            k.ops, k.index = self.ops, index
        self.incoming = [[j for j, p in enumerate(self.projs) if p.dst == i] for i in range(len(self.pops))]
        self.synapses_per_step = float(sum(p.fanout.sum() for p in self.projs))
        self._cut = self.cutoff.as_array()
        # the compiled run of one sample (:class:`_FastPlan`), built at the first sample that uses it
        self._fast = "pending" if _FastPlan.fits(self) else None

    def __getstate__(self):
        # the compiled run's buffers (numba typed lists) are rebuilt where the simulator is unpickled
        state = self.__dict__.copy()
        if isinstance(state.get("_fast"), _FastPlan):
            state["_fast"] = "pending"
        return state

    # ---------------------------------------------------------------------------------------
    def run(self, events: np.ndarray, *, source: str | None = None) -> Result:
        """Simulate one sample from scratch and return its :class:`Result`."""
        return self.run_batch([events], sources=[source])[0]

    def run_batch(self, events_list: list, *, sources: list | None = None) -> list:
        """Simulate several samples stepped together (each with its own number of steps and
        cutoff). The results are bit-identical to :meth:`run` on each sample."""
        sources = sources or [None] * len(events_list)
        samples = [self._prepare(i, ev, src) for i, (ev, src) in enumerate(zip(events_list, sources))]
        results: list = [None] * len(samples)
        # samples whose bin widths give different delays (n_bins with delayed projections) run apart
        groups: dict = {}
        for s in samples:
            if s.n_run > 0 and self._fast_ok(s.width_us):
                results[s.index] = self._run_fast(s)
                continue
            groups.setdefault(self._lag_key(s.width_us), []).append(s)
        for group in groups.values():
            for s, r in zip(group, self._simulate(group)):
                results[s.index] = r
        return results

    # ---------------------------------------------------------------------------------------
    def _fast_ok(self, width_us: float) -> bool:
        """Whether a sample of this bin width runs compiled (:func:`_run_sample`): the model fits
        (:meth:`_FastPlan.fits`) and every projection delivers in the same step."""
        if self._fast is None:
            return False
        dt = width_us * 1e-6
        return all(isinstance(lag, int) and lag == 0 for lag in (p.lags(dt) for p in self.projs))

    def _run_fast(self, s: _Sample) -> Result:
        """One sample through the compiled step loop; the same Result as :meth:`_simulate`."""
        plan = self._fast
        if plan == "pending":
            plan = self._fast = _FastPlan(self)
        readout_pop, readout_mode = self.model.readout
        n_out = self.pops[readout_pop].size
        l_coef, static = plan.coeffs(s.width_us)
        plan.reset()
        n_run = s.n_run
        ptr = np.searchsorted(s.k, np.arange(n_run + 1)).astype(np.int64)
        counts = np.zeros(n_out)
        out_vec = np.zeros(n_out)
        sums = np.zeros(6)
        spikes_total = np.zeros(len(self.pops))
        out_rec = np.zeros((n_run if self.record_output else 1, n_out))
        cons_rec = np.zeros(n_run if self.record_output else 1)
        cap = (8 * s.flat.size + 2 * plan.total_size) if self.record_spikes else 1
        rec = [np.zeros(cap, dtype=np.int64), np.zeros(cap, dtype=np.int64), np.zeros(cap, dtype=np.int64), np.zeros(cap)]
        k = 0
        while True:
            k, code = _run_sample(k, s.flat, ptr, n_run, float(s.width_us), plan.pt, plan.in_ptr, plan.incoming, plan.proj,
                                  plan.ot, plan.l_state, plan.l_f64, l_coef, plan.l_buf, plan.l_idx, plan.ops,
                                  plan.runs, plan.l_scale, plan.l_fan, static, plan.op_n, plan.pending, plan.n_act,
                                  plan.stepped, readout_pop, readout_mode == READOUT_COUNTS, self._cut, self.record_spikes,
                                  self.record_output, counts, sums, spikes_total, out_vec, out_rec, cons_rec, *rec,
                                  plan.total_size)
            if code != 0:
                break
            rec = [np.concatenate([a, np.zeros_like(a)]) for a in rec]  # the spike record is full: grow, go on
        steps = int(sums[_S_STEPS])
        decided = code == 2
        t_end = steps * s.width_us
        spikes = None
        if self.record_spikes:
            n = int(sums[_S_NREC])
            spikes = np.zeros(n, dtype=SPIKE_RECORD_DTYPE)
            spikes["node"] = rec[0][:n]
            spikes["neuron"] = rec[1][:n]
            spikes["t_us"] = (rec[2][:n] + 1) * s.width_us
            spikes["count"] = np.round(rec[3][:n]).astype(np.int64)
        output_record = None
        if self.record_output:
            output_record = ((np.arange(steps, dtype=np.int64) + 1) * s.width_us, cons_rec[:steps].astype(np.int64),
                             out_rec[:steps].copy())
        result = self._result(s, out_vec, counts, sums[_S_SYNOPS], spikes_total, int(sums[_S_CONSUMED]), steps,
                              "cutoff" if decided else "complete", float(t_end), float(sums[_S_CONF]) if decided else None,
                              spikes, output_record)
        if self.keep_state:
            state = {}
            for i, p in enumerate(self.pops):
                if p.is_input:
                    continue
                st = {"v": plan.state_views[plan.pt[i, _PV]][0].astype(np.float64)}
                if p.kind == KIND_CUBA:
                    st["i"] = plan.state_views[plan.pt[i, _PI]][0].astype(np.float64)
                state[p.name] = st
            result.extra["state"] = state
        return result

    # ---------------------------------------------------------------------------------------
    def _lag_key(self, width_us: float):
        dt = width_us * 1e-6
        key = []
        for p in self.projs:
            lag = p.lags(dt)
            key.append(lag if isinstance(lag, int) else tuple(lag.tolist()))
        return tuple(key)

    def _prepare(self, index: int, events: np.ndarray, source) -> _Sample:
        check_sorted(events, source=source)
        origin = self.window.origin_us(int(events["t"][0]) if events.shape[0] else None)
        events = self.window.clip(events, origin)
        n = int(events.shape[0])
        k, n_steps, width = bin_steps(events["t"], bin_us=self.bin_us, n_bins=self.n_bins, origin_us=origin,
                                      duration_us=self.window.duration_us)
        flat = input_indices(events, self.model.input_shape, source=source) if n else np.zeros(0, dtype=np.int64)
        keep = n
        if n:
            rel = events["t"].astype(np.int64) - origin
            if self.cutoff.max_time_us is not None:
                keep = int(np.searchsorted(rel, self.cutoff.max_time_us, side="right"))
        if self.cutoff.max_events is not None:
            keep = min(keep, int(self.cutoff.max_events))
        n_run = int(k[keep - 1]) + 1 if keep > 0 else 0
        if keep == n:
            n_run = n_steps
        return _Sample(index, flat[:keep].astype(np.int64), k[:keep], n, n_steps, n_run, width)

    # ---------------------------------------------------------------------------------------
    def _coefficients(self, samples: list) -> tuple:
        """Per population: dict of (B or 1, n or 1) coefficient arrays; and whether they are per
        sample (different bin widths) or shared."""
        widths = [s.width_us for s in samples]
        uniq = sorted(set(widths))
        per_sample = len(uniq) > 1
        out = []
        for p in self.pops:
            if p.is_input:
                out.append(None)
                continue
            by_w = {w: p.coeffs(w * 1e-6) for w in uniq}
            if not per_sample:
                out.append(by_w[uniq[0]])
            else:  # computed per sample width (same arithmetic as a single run), then stacked
                out.append({key: np.concatenate([by_w[w][key] for w in widths]) for key in by_w[uniq[0]]})
        return out, per_sample

    def _simulate(self, samples: list) -> list:
        """Step a group of samples (same delays in steps) together; one Result per sample."""
        pops = self.pops
        n_b = len(samples)
        readout_pop, _ = self.model.readout
        n_out = pops[readout_pop].size
        coeffs, per_sample = self._coefficients(samples)
        lags = [p.lags(samples[0].width_us * 1e-6) for p in self.projs] if samples else []
        inputs = _StepInputs.of(samples)
        batch = self._new_batch(samples, coeffs, per_sample, lags, n_out)
        outcome = _Outcome.empty(n_b, len(pops), n_out)
        width = np.array([s.width_us for s in samples])
        n_run = np.array([s.n_run for s in samples])
        rec_spikes = []  # (sample, pop, neuron, step, count) chunks
        rec_out = []  # (sample, step, consumed, vectors) chunks

        for k in range(inputs.n_steps):
            if batch.live.size == 0:
                break
            spikes = self._step_populations(batch, inputs.frame(batch, k, pops[0].size), lags, k, rec_spikes)
            out_vec = self._output_vector(batch, spikes)
            if self.record_output:
                rec_out.append((batch.live.copy(), k, batch.consumed.copy(), out_vec.copy()))
            t_end = (k + 1) * width[batch.live]
            done = n_run[batch.live] == k + 1
            if self.cutoff.mode != "none":
                done = done | self._record_decisions(batch, outcome, out_vec, t_end)
            if done.any():
                self._retire(batch, outcome, done, out_vec, t_end, k)

        spike_parts = self._split_spikes(rec_spikes, samples) if self.record_spikes else [None] * n_b
        out_parts = self._split_output(rec_out, samples, n_out) if self.record_output else [None] * n_b
        results = [self._result(s, outcome.final_out[j], outcome.final_counts[j], outcome.synops[j],
                                outcome.spikes_total[j], outcome.consumed[j], outcome.steps_done[j], outcome.status[j],
                                outcome.decision[j], outcome.confidence[j], spike_parts[j], out_parts[j])
                   for j, s in enumerate(samples)]
        if self.keep_state:
            for j, r in enumerate(results):
                r.extra["state"] = outcome.final_state[j] if outcome.final_state[j] is not None else {
                    p.name: {key: np.zeros(p.size) for key in (("v", "i") if p.kind == KIND_CUBA else ("v",))}
                    for p in pops if not p.is_input}
        return results

    # ---------------------------------------------------------------------------------------
    def _new_batch(self, samples: list, coeffs: list, per_sample: bool, lags: list, n_out: int) -> "_Batch":
        """Zero state for the samples that have steps to run (rows), with history ring buffers
        for delayed / recurrent projections."""
        pops = self.pops
        depth = [0] * len(pops)
        for p, lag in zip(self.projs, lags):
            depth[p.src] = max(depth[p.src], int(np.max(lag)))
        live = np.array([j for j, s in enumerate(samples) if s.n_run > 0], dtype=np.int64)
        row_of = np.full(len(samples), -1, dtype=np.int64)
        row_of[live] = np.arange(live.size)
        if per_sample:
            coeffs = [None if c is None else {k: v[live] for k, v in c.items()} for c in coeffs]
        return _Batch(
            live=live, row_of=row_of, per_sample=per_sample, coeffs=coeffs,
            states=[None if p.is_input else p.new_state(live.size, self.dtype) for p in pops],
            hist=[np.zeros((d + 1, live.size, pops[i].size)) if d > 0 else None for i, d in enumerate(depth)],
            counts=np.zeros((live.size, n_out)), spikes_total=np.zeros((live.size, len(pops))),
            synops=np.zeros(live.size), consumed=np.zeros(live.size, dtype=np.int64))

    def _step_populations(self, batch: "_Batch", frame: np.ndarray, lags: list, k: int, rec_spikes: list) -> list:
        """Step k of every population in topological order; returns the spikes per population
        ((rows, n) float64, None for non-spiking ones) and counts SynOps and spikes."""
        pops, projs = self.pops, self.projs
        batch.consumed += frame.sum(axis=1).astype(np.int64)
        spikes = [None] * len(pops)
        spikes[0] = frame
        for i, p in enumerate(pops):
            if p.is_input:
                s = frame
            else:
                x = None
                for j in self.incoming[i]:
                    pr = projs[j]
                    src = self._lagged(pr, lags[j], spikes, batch.hist, k)
                    if src is None:
                        continue
                    batch.synops += src @ pr.fanout
                    if not src.any():
                        continue
                    y = src
                    for kern in pr.kernels:
                        y = kern(y)
                    x = y if x is None else x + y
                s = p.step(batch.states[i], x, batch.coeffs[i])
            spikes[i] = s
            if s is not None:
                batch.spikes_total[:, i] += s.sum(axis=1)
                if batch.hist[i] is not None:
                    batch.hist[i][k % batch.hist[i].shape[0]] = s
                if self.record_spikes and s.any():
                    rb, rn = np.nonzero(s)
                    rec_spikes.append((batch.live[rb], i, rn, k, s[rb, rn]))
        return spikes

    def _output_vector(self, batch: "_Batch", spikes: list) -> np.ndarray:
        """The output vector after a step: accumulated spike counts, or the readout's state."""
        readout_pop, readout_mode = self.model.readout
        if readout_mode == READOUT_COUNTS:
            batch.counts += spikes[readout_pop]
            return batch.counts
        return batch.states[readout_pop]["v"].astype(np.float64)

    def _record_decisions(self, batch: "_Batch", outcome: "_Outcome", out_vec: np.ndarray, t_end: np.ndarray) -> np.ndarray:
        """Evaluate the cutoff on every row; record the decisions; returns the decided rows."""
        decided, conf = self._decide(out_vec, t_end)
        for r in np.flatnonzero(decided):
            j = batch.live[r]
            outcome.status[j], outcome.decision[j], outcome.confidence[j] = "cutoff", float(t_end[r]), float(conf[r])
        return decided

    def _retire(self, batch: "_Batch", outcome: "_Outcome", done: np.ndarray, out_vec: np.ndarray, t_end: np.ndarray,
                k: int) -> None:
        """Store the results of the rows that are done after step k and drop their rows."""
        pops = self.pops
        for r in np.flatnonzero(done):
            j = batch.live[r]
            outcome.final_out[j] = out_vec[r]
            outcome.final_counts[j] = batch.counts[r]
            outcome.synops[j] = batch.synops[r]
            outcome.spikes_total[j] = batch.spikes_total[r]
            outcome.consumed[j] = batch.consumed[r]
            outcome.steps_done[j] = k + 1
            if self.keep_state:
                outcome.final_state[j] = {pops[i].name: {key: st[key][r].astype(np.float64) for key in ("v", "i") if key in st}
                                          for i, st in enumerate(batch.states) if st is not None}
            if outcome.decision[j] is None:
                outcome.decision[j] = float(t_end[r])
        batch.keep(~done)

    @staticmethod
    def _split_spikes(chunks: list, samples: list) -> list:
        """Spike records per sample, ordered by step, population, neuron."""
        if not chunks:
            return [np.zeros(0, dtype=SPIKE_RECORD_DTYPE) for _ in samples]
        smp = np.concatenate([c[0] for c in chunks])
        pop = np.concatenate([np.full(c[0].size, c[1], dtype=np.int64) for c in chunks])
        neuron = np.concatenate([c[2] for c in chunks])
        step = np.concatenate([np.full(c[0].size, c[3], dtype=np.int64) for c in chunks])
        count = np.concatenate([c[4] for c in chunks])
        order = np.argsort(smp, kind="stable")  # chunks are already in (step, population) order
        bounds = np.searchsorted(smp[order], np.arange(len(samples) + 1))
        parts = []
        for j, s in enumerate(samples):
            sel = order[bounds[j]:bounds[j + 1]]
            rec = np.zeros(sel.size, dtype=SPIKE_RECORD_DTYPE)
            rec["node"] = pop[sel]
            rec["neuron"] = neuron[sel]
            rec["t_us"] = (step[sel] + 1) * s.width_us
            rec["count"] = np.round(count[sel]).astype(np.int64)
            parts.append(rec)
        return parts

    @staticmethod
    def _split_output(chunks: list, samples: list, n_out: int) -> list:
        """(t_us, events consumed, vectors) after every step, per sample."""
        per = [([], [], []) for _ in samples]
        for rows, k, cons, vec in chunks:
            for r, j in enumerate(rows):
                ts, ks, vs = per[j]
                ts.append((k + 1) * samples[j].width_us)
                ks.append(int(cons[r]))
                vs.append(vec[r])
        return [(np.asarray(ts, dtype=np.float64), np.asarray(ks, dtype=np.int64),
                 np.asarray(vs, dtype=np.float64).reshape(len(vs), n_out)) for ts, ks, vs in per]

    @staticmethod
    def _lagged(pr: _Proj, lag, spikes: list, hist: list, k: int):
        """Source spikes a projection delivers in step k ((B, n) float64), None if none yet."""
        if isinstance(lag, int):
            if lag == 0:
                return spikes[pr.src]
            if k - lag < 0:
                return None
            h = hist[pr.src]
            return h[(k - lag) % h.shape[0]]
        h = hist[pr.src]
        idx = (k - lag) % h.shape[0]  # slots never written hold zeros
        return h[idx, :, np.arange(lag.size)].T

    def _decide(self, a: np.ndarray, t_end: np.ndarray):
        """Cutoff on output vectors a (B, n) at times t_end (µs): (decided, confidence), by the
        rule every mode shares (:func:`evsim.kernels.readout.cutoff_decision`)."""
        decided = np.zeros(a.shape[0], dtype=np.bool_)
        conf = np.zeros(a.shape[0])
        decide_rows(np.ascontiguousarray(a, dtype=np.float64), np.asarray(t_end, dtype=np.float64), self._cut, decided, conf)
        return decided, conf

    def _result(self, sample: _Sample, out_vec, count_vec, synops, spikes_total, consumed, steps, status,
                decision, confidence, spikes, output_record) -> Result:
        model = self.model
        names = [p.name for p in self.pops]
        mode = model.readout[1]
        output = np.asarray(out_vec, dtype=np.float64).copy()
        counts = np.round(np.asarray(count_vec)).astype(np.int64) if mode == READOUT_COUNTS else None
        status = truncation_status(status, self.cutoff, consumed, sample.n_total)
        extra = {
            "mode": "clock",
            "bin_us": float(sample.width_us),
            "n_steps": int(sample.n_steps),
            "steps_run": int(steps),
            "dense_synops": int(round(self.synapses_per_step * steps)),
        }
        return Result(
            prediction=predict(output),
            output=output,
            output_counts=counts,
            events_consumed=int(consumed),
            events_total=int(sample.n_total),
            synops=int(round(synops)),
            spikes_per_node={n: int(round(v)) for n, v in zip(names, spikes_total)},
            status=status,
            decision_time_us=decision if steps > 0 else None,
            confidence=confidence,
            crossings=0,
            node_names=names,
            spikes=spikes,
            output_record=output_record,
            extra=extra,
        )

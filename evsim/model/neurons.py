"""The three neuron models of the event engine, in continuous time and closed form.

Every NIR neuron node compiles to one of three models. A profile (:mod:`evsim.model.profiles`) decides
the parameter values (how an exporter's τ, r, w_in, bias and dt are meant); the models below state
what the engine then computes. Time is in seconds, measured from the sample's first event. All
parameters are arrays with one value per neuron (in engine order) or a single value shared by the
population.

Common to all spiking models (:class:`SpikeRule`): after every update (an input arriving, or a
predicted threshold crossing) the threshold is tested once; a spike is emitted at the current
time; the reset is applied; then the state is clipped at ``v_min``. An integrator can also have a
state ceiling ``v_max`` (only ``--quantize speck`` sets one: the chip's 16-bit state): v saturates
at v_max whenever it changes (an input, or the drive between inputs), before the threshold test.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Model kinds and parameter slots, as the compiled kernels see them.
from ..kernels.abi import (
    KIND_CUBA,
    KIND_INTEGRATOR,
    KIND_LEAKY,
    N_PARAMS,
    P_DRIVE,
    P_GAIN,
    P_I_REST,
    P_R,
    P_TAU_MEM,
    P_TAU_SYN,
    P_THRESHOLD,
    P_V_MAX,
    P_V_MIN,
    P_V_RESET,
    P_V_REST,
)


@dataclass
class SpikeRule:
    """How a spiking population fires and resets.

    * threshold test: ``v > θ`` (``threshold_ge=False``, strict NIR) or ``v ≥ θ`` (``True``);
    * number of spikes n emitted by one update: 1 (``multi_spike=False``: the residual above θ
      waits for the next input, as on Speck), or as many as θ fits: ``floor(v/θ)`` for ``≥``,
      ``ceil(v/θ) - 1`` for ``>`` (``multi_spike=True``, sinabs' MultiSpike);
    * reset: ``v ← v_reset`` (``subtract=False``) or ``v ← v − n·θ`` (``subtract=True``);
    * floor: ``v ← max(v, v_min)`` after every update (``v_min = -inf`` disables it). The floor is
      applied at update times (inputs and crossings), as clock-driven frameworks apply it per step;
    * refractory period ``refractory_s`` (seconds, 0 = none): for that long after a spike the
      membrane is held at its post-reset value and inputs are discarded (a CubaLIF's synaptic
      current keeps integrating and decaying; only v is held);
    * ``reset_delay`` (clock mode, snnTorch only): the reset of a step's spike is applied in the
      next step, after its decay (snnTorch's ``reset_delay=True``);
    * ``min_interval_s`` (event mode, 0 = none): after a firing the neuron keeps integrating
      but cannot fire again for this long; if it is still at threshold when the interval ends it
      fires then (a discrete-time model fires at most once per step).
    """

    threshold_ge: bool = False
    subtract: bool = False
    multi_spike: bool = False
    refractory_s: float = 0.0
    reset_delay: bool = False
    min_interval_s: float = 0.0


@dataclass
class IntegratorModel:
    """NIR ``I`` (non-spiking) and ``IF``.

    Between updates (constant drive ``a`` from upstream biases, state units per second)::

        v(t) = v(t0) + a · (t − t0)

    A spike through weight w: ``v ← v + gain · w``. Strict NIR: gain = R, a = R·b.
    With ``a > 0`` and ``v < θ`` the neuron crosses threshold between inputs at
    ``t* = t0 + (θ − v(t0)) / a``; the engine schedules that time and fires then.
    With a ceiling ``v_max``: ``v(t) = min(v(t0) + a·(t − t0), v_max)`` and ``v ← min(v + gain·w, v_max)``
    (saturating arithmetic; exact since v(t) is monotone between updates).
    """

    gain: np.ndarray
    drive: np.ndarray
    threshold: np.ndarray | None = None
    v_reset: np.ndarray | None = None
    v_min: np.ndarray | None = None
    v_max: np.ndarray | None = None  # saturation ceiling (None: none)
    kind: int = field(default=KIND_INTEGRATOR, init=False)


@dataclass
class LeakyModel:
    """NIR ``LI`` (non-spiking) and ``LIF``.

    Between updates (τ = ``tau_mem`` in seconds; ``v_rest`` = v_leak + the constant input)::

        v(t) = v_rest + (v(t0) − v_rest) · exp(−(t − t0)/τ)

    A spike through weight w: ``v ← v + gain · w``. Strict NIR: gain = R/τ,
    v_rest = v_leak + R·b. If ``v_rest > θ > v(t0)`` the crossing is at
    ``t* = t0 + τ · ln((v_rest − v(t0)) / (v_rest − θ))``.
    """

    gain: np.ndarray
    tau_mem: np.ndarray
    v_rest: np.ndarray
    threshold: np.ndarray | None = None
    v_reset: np.ndarray | None = None
    v_min: np.ndarray | None = None
    kind: int = field(default=KIND_LEAKY, init=False)


@dataclass
class CubaModel:
    """NIR ``CubaLI`` (non-spiking) and ``CubaLIF``: a synaptic current I driving v.

    Dynamics (τs = ``tau_syn``, τm = ``tau_mem``, seconds)::

        τs dI/dt = I_rest − I          τm dv/dt = v_leak − v + R·I

    Closed form over an interval s = t − t0, with D = I(t0) − I_rest, v∞ = v_leak + R·I_rest,
    u0 = v(t0) − v∞::

        I(t) = I_rest + D·exp(−s/τs)
        v(t) = v∞ + (u0 − A)·exp(−s/τm) + A·exp(−s/τs),   A = R·D·τs/(τs − τm)    (τs ≠ τm)
        v(t) = v∞ + (u0 + R·D·s/τ)·exp(−s/τ)                                   (τs = τm = τ)

    A spike through weight w: ``I ← I + gain · w`` (strict NIR: gain = w_in/τs, I_rest = w_in·b).
    v(t) − θ has at most one extremum, so the first crossing after an input — including one long
    after the last input, while the current decays — is found by a bracketed bisection on the
    monotone pieces (to 1e-12 s), scheduled, and discarded if an earlier input changes the neuron.
    """

    gain: np.ndarray
    tau_mem: np.ndarray
    tau_syn: np.ndarray
    r: np.ndarray
    v_leak: np.ndarray
    i_rest: np.ndarray
    threshold: np.ndarray | None = None
    v_reset: np.ndarray | None = None
    v_min: np.ndarray | None = None
    kind: int = field(default=KIND_CUBA, init=False)


def parameter_table(model) -> dict:
    """Map a model to the engine's parameter slots (slot -> array); unused slots get 0."""
    zero = np.zeros(1)
    inf = np.array([-np.inf])
    slots = {k: zero for k in range(N_PARAMS)}
    slots[P_V_MIN] = inf
    slots[P_V_MAX] = np.array([np.inf])
    slots[P_THRESHOLD] = np.array([np.inf])
    if model.threshold is not None:
        slots[P_THRESHOLD] = model.threshold
    if model.v_reset is not None:
        slots[P_V_RESET] = model.v_reset
    if model.v_min is not None:
        slots[P_V_MIN] = model.v_min
    slots[P_GAIN] = model.gain
    if isinstance(model, IntegratorModel):
        slots[P_DRIVE] = model.drive
        if model.v_max is not None:
            slots[P_V_MAX] = model.v_max
    elif isinstance(model, LeakyModel):
        slots[P_TAU_MEM] = model.tau_mem
        slots[P_V_REST] = model.v_rest
    elif isinstance(model, CubaModel):
        slots[P_TAU_MEM] = model.tau_mem
        slots[P_TAU_SYN] = model.tau_syn
        slots[P_R] = model.r
        slots[P_V_REST] = model.v_leak
        slots[P_I_REST] = model.i_rest
    return slots

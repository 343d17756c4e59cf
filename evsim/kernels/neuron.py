"""Neuron dynamics and the spike rule as small numba functions on scalars.

The event engine (:mod:`evsim.sim.engine`) evolves a neuron in closed form between its updates
and predicts threshold crossings with these; the clock mode (:mod:`evsim.sim.clock` and
:mod:`evsim.kernels.profile_step`) applies the same spike rule after each discrete step. The
equations are those of :mod:`evsim.model.neurons`; times are in the units of the time constants
(µs in the engine, since the builder converts them).

Spike rule (:class:`evsim.model.neurons.SpikeRule`), applied once per update:

* :func:`apply_ceiling`: with a state ceiling (``--quantize speck``: the chip's 16-bit state),
  v saturates at v_max after the input is added and before the threshold test;
* :func:`above`: v ≥ θ (``ge``) or v > θ;
* :func:`spike_count`: 1, or with MultiSpike as many as θ fits: floor(v/θ) for ≥,
  ceil(v/θ) − 1 for > (at least 1);
* :func:`reset`: v − n·θ (subtract) or v_reset;
* :func:`apply_floor`: v clipped at v_min (after the reset);
* refractory hold: v is held (its input discarded) until the period ends; a CubaLIF's synaptic
  current keeps integrating and decaying (:func:`current_decay`).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# ------------------------------------------------------------------------------------------
# the spike rule
# ------------------------------------------------------------------------------------------


@njit(cache=True, inline="always")
def above(v, theta, ge):
    """The threshold test: v ≥ θ (``ge``: profiles sinabs/speck) or v > θ (strict NIR)."""
    if ge:
        return v >= theta
    return v > theta


def firing_level(theta: float, ge: bool, dtype=np.float64):
    """The level L with :func:`above` ⟺ v ≥ L for every state value v of ``dtype`` (float32 or
    float64): in float64, θ under v ≥ θ and the next float64 above θ under v > θ; in float32, the
    smallest float32 at or above that (a float32 v is at or above a float64 level exactly when it is
    at or above the level rounded up to float32). A delivery loop then tests with one comparison
    in the state's own precision and no rule flag."""
    level = float(theta) if ge else float(np.nextafter(float(theta), np.inf))
    rounded = dtype(level)
    if float(rounded) < level:
        rounded = np.nextafter(rounded, dtype(np.inf))
    return rounded


#: most spikes one neuron emits in one update with MultiSpike (2^24: exact in float32 and far
#: from int64's range when summed). More means a threshold far below the input; the event engine
#: then stops the sample as runaway activity (status "budget", docs/SEMANTICS.md).
MAX_SPIKES_PER_UPDATE = 16777216.0


@njit(cache=True, inline="always")
def spike_count(v, theta, ge, multi):
    """Spikes emitted by a neuron at v ≥/> θ (float64): 1, or with MultiSpike floor(v/θ) for ≥,
    ceil(v/θ) − 1 for > (so that the residual v − n·θ is < θ resp. ≤ θ), at least 1 and at most
    :data:`MAX_SPIKES_PER_UPDATE`."""
    if not multi:
        return 1.0
    ratio = v / theta
    n = np.floor(ratio) if ge else np.ceil(ratio) - 1.0
    if n < 1.0:
        n = 1.0
    if not n <= MAX_SPIKES_PER_UPDATE:  # (also NaN)
        n = MAX_SPIKES_PER_UPDATE
    return n


@njit(cache=True, inline="always")
def reset(v, n, theta, v_reset, subtract):
    """The state after n spikes: v − n·θ (reset by subtraction) or v_reset."""
    if subtract:
        return v - n * theta
    return v_reset


@njit(cache=True, inline="always")
def apply_ceiling(v, v_max):
    """The state saturated at v_max (+inf: no ceiling)."""
    if v > v_max:
        return v_max
    return v


@njit(cache=True, inline="always")
def apply_floor(v, v_min):
    """The state clipped at v_min (−inf: no floor)."""
    if v < v_min:
        return v_min
    return v


# ------------------------------------------------------------------------------------------
# evolution between updates, in closed form
# ------------------------------------------------------------------------------------------


@njit(cache=True, inline="always")
def integrator_evolve(v, drive, dt):
    """An integrator (IF / I) after dt: v + drive·dt."""
    return v + drive * dt


@njit(cache=True, inline="always")
def leaky_evolve(v, v_rest, tau_mem, dt):
    """A leaky neuron (LIF / LI) after dt: v_rest + (v − v_rest)·exp(−dt/τ)."""
    return v_rest + (v - v_rest) * math.exp(-dt / tau_mem)


@njit(cache=True, inline="always")
def current_decay(i, i_rest, tau_syn, dt):
    """A CubaLIF's synaptic current after dt without input (also while v is held)."""
    return i_rest + (i - i_rest) * math.exp(-dt / tau_syn)


@njit(cache=True)
def cuba_evolve(v0, i0, v_leak, r, i_rest, tau_mem, tau_syn, dt):
    """State (v, I) of a CubaLI(F) neuron after ``dt`` without input (units of the τs)."""
    d = i0 - i_rest
    v_inf = v_leak + r * i_rest
    u0 = v0 - v_inf
    em = math.exp(-dt / tau_mem)
    es = math.exp(-dt / tau_syn)
    if abs(tau_syn - tau_mem) <= 1e-9 * tau_mem:
        u = (u0 + r * d * dt / tau_mem) * em
    else:
        a = r * d * tau_syn / (tau_syn - tau_mem)
        u = (u0 - a) * em + a * es
    return v_inf + u, i_rest + d * es


# ------------------------------------------------------------------------------------------
# crossing prediction
# ------------------------------------------------------------------------------------------


@njit(cache=True, inline="always")
def integrator_crossing_delay(v, drive, theta):
    """Time until an integrator below θ reaches θ, or inf."""
    if drive > 0.0:
        return (theta - v) / drive
    return np.inf


@njit(cache=True, inline="always")
def leaky_crossing_delay(v, v_rest, tau_mem, theta):
    """Time until a leaky neuron below θ reaches θ (only if it relaxes above θ), or inf."""
    if v_rest > theta:
        return tau_mem * math.log((v_rest - v) / (v_rest - theta))
    return np.inf


@njit(cache=True)
def cuba_crossing_delay(v0, i0, v_leak, r, i_rest, tau_mem, tau_syn, theta):
    """Time until a CubaLIF starting below threshold at (v0, I0) first reaches θ, or inf.

    v(s) − θ has at most one extremum (sum of two exponentials), so the first crossing lies on a
    monotone piece: before the extremum if the extremum reaches θ, else after it if v∞ > θ.
    Bisection on that bracket to 1e-6 (µs in the engine: 1 ps); returns the upper end (v ≥ θ
    there up to rounding). Times in the units of the time constants.
    """
    d = i0 - i_rest
    v_inf = v_leak + r * i_rest
    u0 = v0 - v_inf
    c = theta - v_inf  # crossing when u(s) == c
    if u0 >= c:
        return 0.0
    equal = abs(tau_syn - tau_mem) <= 1e-9 * tau_mem
    # time of the extremum of u(s) (or -1 when u is monotone on s > 0)
    s_ext = -1.0
    if equal:
        bcoef = r * d / tau_mem
        if bcoef != 0.0:
            s_ext = tau_mem - u0 / bcoef
    else:
        a = r * d * tau_syn / (tau_syn - tau_mem)
        if a != 0.0 and (u0 - a) != 0.0:
            ratio = -a * tau_mem / ((u0 - a) * tau_syn)
            if ratio > 0.0:
                s_ext = math.log(ratio) / (1.0 / tau_syn - 1.0 / tau_mem)
    if s_ext > 0.0:
        v_ext, _ = cuba_evolve(v0, i0, v_leak, r, i_rest, tau_mem, tau_syn, s_ext)
        if v_ext >= theta:
            return _bisect_cuba(v0, i0, v_leak, r, i_rest, tau_mem, tau_syn, theta, 0.0, s_ext)
    if c >= 0.0:
        return np.inf  # settles at or below threshold
    lo = s_ext if s_ext > 0.0 else 0.0
    hi = lo + max(tau_mem, tau_syn)
    for _ in range(200):
        v_hi, _ = cuba_evolve(v0, i0, v_leak, r, i_rest, tau_mem, tau_syn, hi)
        if v_hi >= theta:
            return _bisect_cuba(v0, i0, v_leak, r, i_rest, tau_mem, tau_syn, theta, lo, hi)
        lo = hi
        hi = 2.0 * hi
    return np.inf


@njit(cache=True)
def _bisect_cuba(v0, i0, v_leak, r, i_rest, tau_mem, tau_syn, theta, lo, hi):
    for _ in range(200):
        if hi - lo <= 1e-6:
            break
        mid = 0.5 * (lo + hi)
        v_mid, _ = cuba_evolve(v0, i0, v_leak, r, i_rest, tau_mem, tau_syn, mid)
        if v_mid >= theta:
            hi = mid
        else:
            lo = mid
    return hi

"""The clock mode's discrete update of one population for one step, per profile family.

The equations are listed in :mod:`evsim.sim.clock` (module docstring); the coefficients for a
bin width come from ``_Pop.coeffs`` there. After the family's linear update, every family applies
the state ceiling if the population has one (``--quantize speck``) and the same spike rule as the
event engine (:mod:`evsim.kernels.neuron`: threshold test, number of spikes, reset, floor,
refractory hold) through :func:`fire_reset_floor`; only snnTorch's reset timings are particular
to its family: the deferred reset (``reset_delay=True``, applied one step late) and, with
``reset_delay=False`` and subtraction, the test of the step after a residual above θ, which
snnTorch raises by θ (``raised``, see :func:`fire_reset_floor`).

Parameters and coefficients are (1 or B, n) float64 arrays (one row shared by every sample, or
one per sample); states are (B, n) arrays in the model's precision; arithmetic is float64. Each
sample is computed on its own, so a batched run is bit-identical to one-by-one runs.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from . import neuron as nk

# CubaLI(F) families (the discrete update of the current and the membrane)
FAMILY_NIR = 0  # exact integration over the bin, input at its end
FAMILY_SINABS = 1  # sinabs / speck: the new input decays with the current
FAMILY_SNNTORCH = 2  # snn.Synaptic, reset one step late
FAMILY_NORSE = 3  # forward Euler (norse LIFCell): the current jumps, then reaches v in the same step

# snnTorch's reset timing (``deferred``): none, one step late, or one step late with the whole
# update of that step replaced by the reset value (RLeaky's reset to zero)
RESET_NOW = 0
RESET_DEFERRED = 1
RESET_DEFERRED_WHOLE_UPDATE = 2


@njit(cache=True, inline="always")
def _row(a, b):
    """Row b of a (1 or B, n) parameter array."""
    return a[b if a.shape[0] > 1 else 0]


@njit(cache=True, inline="always")
def fire_reset_floor(v, held, theta, v_reset, v_min, ge, multi, subtract, use_floor, deferred, raised=0.0):
    """The spike rule after a step: (new v, spikes). A held neuron does not fire; with
    ``deferred`` (snnTorch) the reset is left to the next step. ``raised`` (0 or 1, snnTorch
    reset_delay=False): the test is made on ``v − raised·θ`` and the reset on v, as snnTorch
    subtracts ``H(stored v − θ)·θ`` from the membrane before its test and adds it back after."""
    n = 0.0
    if not held and nk.above(v - raised * theta, theta, ge):
        n = nk.spike_count(v - raised * theta, theta, ge, multi)
    if not deferred and n > 0.0:
        v = nk.reset(v, n, theta, v_reset, subtract)
    if use_floor:
        v = nk.apply_floor(v, v_min)
    return v, n


@njit(cache=True, inline="always")
def deferred_reset(u, prev, theta, v_reset, subtract):
    """snnTorch's reset of the previous step's ``prev`` spikes (reset_delay=True) on the update
    u: subtract → u − prev·θ; zero → v_reset."""
    if subtract:
        return u - prev * theta
    if prev > 0.0:
        return v_reset
    return u


@njit(cache=True)
def linear_step(v, x, has_x, a, c, g, theta, v_reset, v_min, v_max, prev, spikes, refr, refr_steps,
                spiking, ge, multi, subtract, use_floor, use_ceiling, deferred, use_refr, raise_test):
    """One step of an integrator / leaky population: ``v ← a·v + c (− prev·θ) + g·x``, then
    (``use_ceiling``) ``v ← min(v, v_max)``, then the spike rule. ``deferred`` (``RESET_*``):
    snnTorch's reset of the previous step's spikes (``prev``); ``RESET_DEFERRED_WHOLE_UPDATE``
    (RLeaky, reset to zero): the whole update of the step after a spike is the reset value, the
    step's input discarded.
    ``raise_test``: snnTorch's immediate subtraction; ``prev`` holds H(stored v − θ) and raises
    the next test (:func:`fire_reset_floor`).
    ``use_refr``: a neuron with ``refr`` > 0 steps left is held (v kept, input discarded, no
    spike); a spike holds it for ``refr_steps``."""
    n_b, n = v.shape
    for b in range(n_b):
        ra = _row(a, b)
        rc = _row(c, b)
        rg = _row(g, b)
        rt = _row(theta, b)
        rr = _row(v_reset, b)
        rm = _row(v_min, b)
        rx = _row(v_max, b)
        rs = _row(refr_steps, b)
        for j in range(n):
            vv = np.float64(v[b, j])
            held = use_refr and refr[b, j] > 0.0
            if held:
                refr[b, j] -= 1.0
                if deferred and prev[b, j] > 0.0:  # the spike's pending reset still applies
                    vv = vv - prev[b, j] * rt[j] if subtract else rr[j]
            elif deferred:
                p = prev[b, j]
                if subtract:
                    vv = ra[j] * vv + rc[j]
                    vv = vv - p * rt[j]
                elif deferred == RESET_DEFERRED_WHOLE_UPDATE and p > 0.0:
                    vv = rr[j]
                else:
                    base = rr[j] if p > 0.0 else vv
                    vv = ra[j] * base + rc[j]
            else:
                vv = ra[j] * vv + rc[j]
            if has_x and not held and not (deferred == RESET_DEFERRED_WHOLE_UPDATE and prev[b, j] > 0.0):
                vv = vv + rg[j] * x[b, j]
            if use_ceiling:
                vv = nk.apply_ceiling(vv, rx[j])
            if spiking:
                raised = prev[b, j] if raise_test else 0.0
                vv, nsp = fire_reset_floor(vv, held, rt[j], rr[j], rm[j], ge, multi, subtract, use_floor, deferred, raised)
                spikes[b, j] = nsp
                if deferred:
                    prev[b, j] = nsp
                elif raise_test:
                    prev[b, j] = 1.0 if vv > rt[j] else 0.0
                if use_refr and nsp > 0.0:
                    refr[b, j] = rs[j]
            v[b, j] = vv


@njit(cache=True)
def cuba_step(family, v, i, x, has_x, c0, c1, c2, c3, c4, g, theta, v_reset, v_min, v_max, prev, spikes, refr,
              refr_steps, spiking, ge, multi, subtract, use_floor, use_ceiling, deferred, use_refr, raise_test):
    """One step of a CubaLI(F) population. The coefficients c0..c4 per family:

    * nir: (vv, vi, vc, ii, ic): ``v ← vv·v + vi·I + vc``, ``I ← ii·I + ic``, then ``I ← I + g·x``;
    * sinabs: (am, as, vc, k, ic): ``I ← as·(I + g·x + ic)``, ``v ← am·v + vc + k·I``;
    * snntorch: (am, as, vc, k, ic): ``I ← as·I + g·x + ic``, ``v ← deferred(am·v + vc + k·I)``;
    * norse: (fm, fs, vl, r, ic): ``I ← I + g·x + ic``, ``v ← v + fm·((vl − v) + r·I)``,
      ``I ← I − fs·I`` (norse/torch/functional/lif.py ``lif_feed_forward_step``).

    The current integrates during a refractory hold; v is held (after snnTorch's pending reset).
    ``use_ceiling``, ``raise_test``: as in :func:`linear_step`.
    """
    n_b, n = v.shape
    for b in range(n_b):
        r0 = _row(c0, b)
        r1 = _row(c1, b)
        r2 = _row(c2, b)
        r3 = _row(c3, b)
        r4 = _row(c4, b)
        rg = _row(g, b)
        rt = _row(theta, b)
        rr = _row(v_reset, b)
        rm = _row(v_min, b)
        rx = _row(v_max, b)
        rs = _row(refr_steps, b)
        for j in range(n):
            v_old = np.float64(v[b, j])
            ii = np.float64(i[b, j])
            gx = rg[j] * x[b, j] if has_x else 0.0
            p = prev[b, j] if deferred else 0.0
            if family == FAMILY_NIR:
                vv = r0[j] * v_old + r1[j] * ii + r2[j]
                ii = r3[j] * ii + r4[j]
                ii = ii + gx
            elif family == FAMILY_SINABS:
                ii = r1[j] * (ii + gx + r4[j])
                vv = r0[j] * v_old + r2[j] + r3[j] * ii
            elif family == FAMILY_SNNTORCH:
                ii = r1[j] * ii + gx + r4[j]
                vv = r0[j] * v_old + r2[j] + r3[j] * ii
                if deferred:
                    vv = deferred_reset(vv, p, rt[j], rr[j], subtract)
            else:  # FAMILY_NORSE
                ii = ii + gx + r4[j]
                vv = v_old + r0[j] * ((r2[j] - v_old) + r3[j] * ii)
                ii = ii - r1[j] * ii
            i[b, j] = ii
            held = use_refr and refr[b, j] > 0.0
            if held:
                vv = deferred_reset(v_old, p, rt[j], rr[j], subtract) if deferred else v_old
            if use_ceiling:
                vv = nk.apply_ceiling(vv, rx[j])
            if spiking:
                raised = prev[b, j] if raise_test else 0.0
                vv, nsp = fire_reset_floor(vv, held, rt[j], rr[j], rm[j], ge, multi, subtract, use_floor, deferred, raised)
                spikes[b, j] = nsp
                if deferred:
                    prev[b, j] = nsp
                elif raise_test:
                    prev[b, j] = 1.0 if vv > rt[j] else 0.0
                if use_refr:
                    refr[b, j] = rs[j] if nsp > 0.0 else max(refr[b, j] - 1.0, 0.0)
            v[b, j] = vv

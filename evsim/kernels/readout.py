"""The readout's confidence and the cutoff decision: the single definition every mode calls.

The event engine (after every cascade that changed the output), the clock mode (after every
step) and the analysis (replaying a rule on a recorded trajectory, calibrating thresholds) all
evaluate the rule through these numba functions, so a replay reproduces a real run bit for bit.

The rule on an output vector a at elapsed time t (µs since the first event), packed by
:func:`cutoff_array`:

* no output activity (Σ|a_k| = 0): never decided (no prediction, never confident);
* confidence: ``conf`` → max softmax(a/T) = 1 / Σ_k exp((a_k − max a)/T);
  ``topk`` → top1 − top2 (a single output: a_0);
* threshold at t: the table entry of bin ``int(t / bin_width)`` (the last bin extends to
  infinity), or the global threshold without a table;
* decided when confidence ≥ threshold.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .abi import (
    CUT_BIN_WIDTH_US,
    CUT_CONF,
    CUT_MODE,
    CUT_N_BINS,
    CUT_NONE,
    CUT_TABLE,
    CUT_TEMPERATURE,
    CUT_THRESHOLD,
)


@njit(cache=True)
def is_active(a):
    """True when the output vector shows any activity (Σ|a_k| ≠ 0)."""
    total = 0.0
    for k in range(a.shape[0]):
        total += abs(a[k])
    return total != 0.0


@njit(cache=True)
def confidence(a, mode, temperature):
    """Confidence of output vector a: max softmax(a/T) (CUT_CONF) or top1 − top2 (CUT_TOPK)."""
    n = a.shape[0]
    top1 = -np.inf
    top2 = -np.inf
    for k in range(n):
        if a[k] > top1:
            top2 = top1
            top1 = a[k]
        elif a[k] > top2:
            top2 = a[k]
    if mode == CUT_CONF:
        total = 0.0
        for k in range(n):
            total += math.exp((a[k] - top1) / temperature)
        return 1.0 / total
    return top1 - top2 if n > 1 else top1


@njit(cache=True)
def threshold_bin(t, bin_width_us, n_bins):
    """Index of the elapsed-time bin of t (the last bin extends to infinity)."""
    k = int(t / bin_width_us) if bin_width_us > 0 else 0
    if k >= n_bins:
        k = n_bins - 1
    return k


@njit(cache=True)
def threshold_at(cut, t):
    """The cutoff threshold at elapsed time t (µs): the table entry of t's bin, or the global one."""
    n_bins = int(cut[CUT_N_BINS])
    if n_bins > 0:
        return cut[CUT_TABLE + threshold_bin(t, cut[CUT_BIN_WIDTH_US], n_bins)]
    return cut[CUT_THRESHOLD]


@njit(cache=True)
def cutoff_decision(a, cut, t):
    """(decided, confidence) of the rule ``cut`` on output vector a at time t. The confidence
    is 0 without output activity (then never decided) and NaN without a rule."""
    mode = int(cut[CUT_MODE])
    if mode == CUT_NONE:
        return False, np.nan
    if not is_active(a):
        return False, 0.0
    conf = confidence(a, mode, cut[CUT_TEMPERATURE])
    return conf >= threshold_at(cut, t), conf


# ------------------------------------------------------------------------------------------
# the same rule over the rows of a trajectory (clock steps, analysis replay)
# ------------------------------------------------------------------------------------------


@njit(cache=True)
def decide_rows(vectors, t_us, cut, decided, conf):
    """:func:`cutoff_decision` for every row of ``vectors`` (times ``t_us``), into the outputs."""
    for r in range(vectors.shape[0]):
        d, c = cutoff_decision(vectors[r], cut, t_us[r])
        decided[r] = d
        conf[r] = c


@njit(cache=True)
def first_decision(vectors, t_us, cut):
    """Index of the first row at which the rule decides, -1 if none."""
    for r in range(vectors.shape[0]):
        d, _ = cutoff_decision(vectors[r], cut, t_us[r])
        if d:
            return r
    return -1


@njit(cache=True)
def confidence_rows(vectors, mode, temperature, out):
    """The confidence of every row (0 for rows without activity), into ``out``."""
    for r in range(vectors.shape[0]):
        a = vectors[r]
        out[r] = confidence(a, mode, temperature) if is_active(a) else 0.0


@njit(cache=True)
def threshold_bins(t_us, bin_width_us, n_bins, out):
    """:func:`threshold_bin` of every time, into ``out``."""
    for r in range(t_us.shape[0]):
        out[r] = threshold_bin(t_us[r], bin_width_us, n_bins)


# ------------------------------------------------------------------------------------------
# packing (plain Python)
# ------------------------------------------------------------------------------------------


def cutoff_array(mode: int = CUT_NONE, temperature: float = 1.0, threshold: float = 0.0, table=None,
                 bin_width_us: float = 0.0) -> np.ndarray:
    """Pack cutoff parameters for the kernels: decide when confidence ≥ threshold, or ≥ the
    ``table`` entry of the elapsed-time bin (width ``bin_width_us``; the last bin extends to
    infinity) when a table is given."""
    table = np.asarray([] if table is None else table, dtype=np.float64).ravel()
    head = np.array([mode, temperature, threshold, table.size, bin_width_us], dtype=np.float64)
    return np.concatenate([head, table])

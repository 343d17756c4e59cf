"""Output trajectories: the anytime view of a sample (accuracy over time, oracle cutoff time).

Everything here works on *trajectories*: for one sample, the accumulated output vector a(t)
recorded every time it changed (``Result.output_record``: times in µs since the first event,
input events consumed so far, vectors). The engine evaluates its cutoff rule at exactly those
moments, so replaying a rule on a trajectory recorded without cutoff gives the same decision the
engine takes when it runs with that rule (used for sweeps and calibration; the reported figures
of ``evsim eval --cutoff`` come from runs that really stop).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import OptionError
from ..kernels.abi import CUT_CONF, CUT_NONE, CUT_TOPK, CUTOFF_RULES
from ..kernels.readout import confidence_rows

__all__ = ["Trajectory", "predictions_of", "gap_of", "softmax_confidence_of", "confidence_of", "oracle_cutoff_time",
           "correct_from_here", "accuracy_vs_time", "accuracy_vs_fraction"]


@dataclass
class Trajectory:
    """The output of one sample over time.

    Attributes:
        t_us: times of the output changes (µs since the first event), non-decreasing.
        events: input events consumed at each change.
        vectors: output vector after each change, shape (n_changes, n_outputs).
        events_total: events in the recording; duration_us: last event time − first event time.
        label: true class (None if unknown).
    """

    t_us: np.ndarray
    events: np.ndarray
    vectors: np.ndarray
    events_total: int
    duration_us: float
    label: int | None = None

    @classmethod
    def from_result(cls, result, label=None, duration_us=None) -> "Trajectory":
        if result.output_record is None:
            raise ValueError("the result has no output record (simulate with record_output=True)")
        t, k, v = result.output_record
        return cls(np.asarray(t, float), np.asarray(k, np.int64), np.asarray(v, float), int(result.events_total),
                   float(duration_us if duration_us is not None else (t[-1] if len(t) else 0.0)), label)

    @property
    def predictions(self) -> np.ndarray:
        """Prediction after each change: argmax (ties: lowest index), -1 without activity."""
        return predictions_of(self.vectors)


def predictions_of(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=float)
    if vectors.size == 0:
        return np.zeros(len(vectors), dtype=np.int64)
    pred = np.argmax(vectors, axis=1)
    active = np.any(vectors != 0, axis=1)
    return np.where(active, pred, -1)


#: the rules that have a confidence (every cutoff rule but "none")
CUTOFF_MODES = {name: code for name, code in CUTOFF_RULES.items() if code != CUT_NONE}


def cutoff_mode(cutoff: str) -> int:
    """The kernels' code of a cutoff rule name ("conf" or "topk")."""
    if cutoff not in CUTOFF_MODES:
        raise OptionError(f"no confidence for cutoff {cutoff!r}", option="--cutoff")
    return CUTOFF_MODES[cutoff]


def _confidences(vectors: np.ndarray, mode: int, temperature: float) -> np.ndarray:
    vectors = np.ascontiguousarray(vectors, dtype=np.float64)
    out = np.zeros(vectors.shape[0])
    if vectors.ndim == 2 and vectors.shape[0]:
        confidence_rows(vectors, mode, float(temperature), out)
    return out


def gap_of(vectors: np.ndarray) -> np.ndarray:
    """top1 − top2 of each vector (the Top-K cutoff's confidence); 0 without activity."""
    return _confidences(vectors, CUT_TOPK, 1.0)


def softmax_confidence_of(vectors: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """max softmax(a/T) of each vector; 0 without activity (never confident)."""
    return _confidences(vectors, CUT_CONF, temperature)


def confidence_of(vectors: np.ndarray, cutoff: str, temperature: float = 1.0) -> np.ndarray:
    """The confidence of each vector as the cutoff rule computes it
    (:func:`evsim.kernels.readout.confidence`, bit for bit); 0 without activity."""
    return _confidences(vectors, cutoff_mode(cutoff), temperature)


# ------------------------------------------------------------------------------------------
# oracle cutoff time
# ------------------------------------------------------------------------------------------


def oracle_cutoff_time(traj: Trajectory) -> float | None:
    """OCT: the earliest time after which the prediction never changes and is correct (µs since
    the first event); None when the final prediction is wrong or there is no label."""
    if traj.label is None or len(traj.t_us) == 0:
        return None
    pred = traj.predictions
    if pred[-1] != traj.label:
        return None
    wrong = np.flatnonzero(pred != traj.label)
    k = 0 if wrong.size == 0 else int(wrong[-1]) + 1
    return float(traj.t_us[k])


def correct_from_here(traj: Trajectory) -> np.ndarray:
    """For each change k: is the prediction correct at t_k and at every later time?"""
    pred = traj.predictions
    ok = pred == traj.label
    return np.logical_and.accumulate(ok[::-1])[::-1]


# ------------------------------------------------------------------------------------------
# anytime accuracy
# ------------------------------------------------------------------------------------------


def _state_index(times: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Index of the last change at or before each query value (-1: none yet)."""
    return np.searchsorted(times, query, side="right") - 1


def accuracy_vs_time(trajs: list, time_grid_us) -> np.ndarray:
    """Accuracy of the prediction available at each elapsed time (no prediction = wrong)."""
    grid = np.asarray(time_grid_us, dtype=float)
    correct = np.zeros(grid.size)
    for tr in trajs:
        idx = _state_index(tr.t_us, grid)
        pred = np.where(idx >= 0, tr.predictions[np.maximum(idx, 0)] if len(tr.t_us) else -1, -1)
        correct += pred == tr.label
    return correct / max(len(trajs), 1)


def accuracy_vs_fraction(trajs: list, fraction_grid) -> np.ndarray:
    """Accuracy after consuming each fraction of every recording's input events."""
    grid = np.asarray(fraction_grid, dtype=float)
    correct = np.zeros(grid.size)
    for tr in trajs:
        consumed = np.floor(grid * tr.events_total + 1e-9)
        idx = _state_index(tr.events.astype(float), consumed)
        pred = np.where(idx >= 0, tr.predictions[np.maximum(idx, 0)] if len(tr.t_us) else -1, -1)
        correct += pred == tr.label
    return correct / max(len(trajs), 1)

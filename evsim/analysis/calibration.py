"""Cutoff replay and calibration on recorded output trajectories (:mod:`evsim.analysis.trajectory`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from ..errors import OptionError
from ..kernels.readout import cutoff_array, first_decision, threshold_bins
from .trajectory import Trajectory, confidence_of, correct_from_here, cutoff_mode, predictions_of

__all__ = ["Thresholds", "time_bins", "replay_cutoff", "cutoff_outcomes", "cutoff_sweep", "calibrate", "write_calibration",
           "read_calibration", "thresholds_from_calibration"]


# ------------------------------------------------------------------------------------------
# cutoff replay and calibration
# ------------------------------------------------------------------------------------------


@dataclass
class Thresholds:
    """A cutoff threshold, global (one value) or per elapsed-time bin (the last bin extends to
    infinity), in the units of the rule's confidence (gap for topk, softmax max for conf)."""

    values: np.ndarray
    bin_width_us: float = 0.0

    def at(self, t_us: np.ndarray) -> np.ndarray:
        """The threshold at each elapsed time (the bin as the cutoff rule computes it)."""
        t_us = np.asarray(t_us, dtype=float)
        if self.values.size == 1 or self.bin_width_us <= 0:
            return np.full(t_us.shape, float(self.values[0]))
        return self.values[time_bins(t_us, self.bin_width_us, self.values.size)]

    def cutoff_array(self, cutoff: str, temperature: float = 1.0) -> np.ndarray:
        """The packed rule (:func:`evsim.kernels.readout.cutoff_array`), as an engine run with
        ``Cutoff(mode=cutoff, table=values, bin_width_us=...)`` uses it."""
        values = np.asarray(self.values, dtype=np.float64).ravel()
        if values.size == 1 or self.bin_width_us <= 0:
            return cutoff_array(cutoff_mode(cutoff), temperature, float(values[0]))
        return cutoff_array(cutoff_mode(cutoff), temperature, 0.0, values, float(self.bin_width_us))


def time_bins(t_us: np.ndarray, bin_width_us: float, n_bins: int) -> np.ndarray:
    """Elapsed-time bin of each time as the cutoff rule computes it (the last bin extends to
    infinity)."""
    t_us = np.ascontiguousarray(t_us, dtype=np.float64).ravel()
    out = np.zeros(t_us.size, dtype=np.int64)
    threshold_bins(t_us, float(bin_width_us), int(n_bins), out)
    return out


def replay_cutoff(traj: Trajectory, cutoff: str, thresholds: Thresholds, temperature: float = 1.0) -> int | None:
    """Index of the change at which the rule decides (None: never; the sample runs to the end)."""
    if len(traj.t_us) == 0:
        return None
    k = first_decision(np.ascontiguousarray(traj.vectors, dtype=np.float64),
                       np.ascontiguousarray(traj.t_us, dtype=np.float64), thresholds.cutoff_array(cutoff, temperature))
    return None if k < 0 else int(k)


def cutoff_outcomes(trajs: list, cutoff: str, thresholds: Thresholds, temperature: float = 1.0) -> dict:
    """Accuracy, mean events fraction, mean latency and speed-up if every sample used the rule."""
    correct, fractions, latencies = [], [], []
    for tr in trajs:
        k = replay_cutoff(tr, cutoff, thresholds, temperature)
        if k is None:
            pred = tr.predictions[-1] if len(tr.t_us) else -1
            fractions.append(1.0)
            latencies.append(tr.duration_us)
        else:
            pred = tr.predictions[k]
            fractions.append(tr.events[k] / tr.events_total if tr.events_total else 1.0)
            latencies.append(float(tr.t_us[k]))
        correct.append(pred == tr.label)
    mean_fraction = float(np.mean(fractions)) if fractions else 1.0
    return {
        "accuracy": float(np.mean(correct)) if correct else 0.0,
        "mean_events_fraction": mean_fraction,
        "mean_latency_us": float(np.mean(latencies)) if latencies else 0.0,
        "speedup": 1.0 / mean_fraction if mean_fraction > 0 else float("inf"),
    }


def cutoff_sweep(trajs: list, cutoff: str = "topk", values=None, temperature: float = 1.0) -> list:
    """Outcomes of a global threshold swept over ``values`` (default: the observed confidences)."""
    if values is None:
        all_conf = np.concatenate([confidence_of(t.vectors, cutoff, temperature) for t in trajs if len(t.t_us)] or [np.zeros(0)])
        values = np.unique(all_conf[all_conf > 0])
        if values.size > 60:
            values = np.unique(np.quantile(values, np.linspace(0, 1, 60)))
    sweep = []
    for v in values:
        outcome = cutoff_outcomes(trajs, cutoff, Thresholds(np.array([float(v)])), temperature)
        sweep.append({"beta": float(v), **outcome})
    return sweep


def calibrate(trajs: list, cutoff: str, epsilon: float, *, bin_width_us: float = 0.0, n_bins: int = 1,
              temperature: float = 1.0, min_support: int = 1) -> dict:
    """Confidence-rate calibration (SPEC §6).

    For each elapsed-time bin (or one global bin), the threshold is the smallest candidate value
    β whose *confidence rate* is at least 1 − ε: among the calibration samples whose confidence
    reaches β at some output change inside the bin (the moment the rule would fire there), the
    fraction whose prediction is correct then *and at every later time*. "Reaches" is ≥, the
    comparison the cutoff rule itself uses. Candidates are the confidences observed in the bin;
    a bin with no candidate meeting the rate (with at least ``min_support`` samples) gets
    β = +inf (never cut off in that bin).

    Returns a dict with ``thresholds``, ``support`` and ``rate`` per bin.
    """
    if not 0.0 < epsilon < 1.0:
        raise OptionError("must be in (0, 1)", option="--epsilon")
    if n_bins < 1:
        raise OptionError("must be >= 1", option="--calib-bins")
    if n_bins > 1 and not bin_width_us > 0:
        raise OptionError("a per-bin calibration needs a bin width > 0", option="--calib-bin-us")
    labelled = [t for t in trajs if t.label is not None]
    if not labelled:
        raise OptionError("calibration needs labelled samples", option="DATA")
    per_sample = []
    for tr in labelled:
        conf = confidence_of(tr.vectors, cutoff, temperature) if len(tr.t_us) else np.zeros(0)
        active = np.any(tr.vectors != 0, axis=1) if len(tr.t_us) else np.zeros(0, bool)
        good = correct_from_here(tr) if len(tr.t_us) else np.zeros(0, bool)
        if n_bins > 1:
            b = time_bins(tr.t_us, bin_width_us, n_bins)
        else:
            b = np.zeros(len(tr.t_us), dtype=np.int64)
        per_sample.append((conf, active, good, b))

    thresholds, support, rates = [], [], []
    for k in range(n_bins):
        candidates = np.unique(np.concatenate([c[a & (b == k)] for c, a, g, b in per_sample] or [np.zeros(0)]))
        chosen, chosen_support, chosen_rate = np.inf, 0, None
        for beta in candidates:  # ascending: the first that qualifies is the smallest
            reached = ok = 0
            for conf, active, good, b in per_sample:
                hit = np.flatnonzero((b == k) & active & (conf >= beta))
                if hit.size:
                    reached += 1
                    ok += bool(good[hit[0]])
            if reached >= min_support and ok / reached >= 1.0 - epsilon:
                chosen, chosen_support, chosen_rate = float(beta), reached, ok / reached
                break
        thresholds.append(chosen)
        support.append(chosen_support)
        rates.append(chosen_rate)
    return {"thresholds": thresholds, "support": support, "rate": rates}


# ------------------------------------------------------------------------------------------
# calibration files
# ------------------------------------------------------------------------------------------

CALIBRATION_FORMAT = "evsim-calibration/1"


def write_calibration(path, *, model_hash: str, model_path: str, profile: str, mode: str, cutoff: str,
                      epsilon: float, temperature: float, bin_width_us: float, n_bins: int, result: dict,
                      data: str, n_samples: int, bin_us: float | None = None, options: dict | None = None) -> dict:
    doc = {
        "format": CALIBRATION_FORMAT,
        "model_hash": model_hash,
        "model_path": model_path,
        "profile": profile,
        "options": options or {},
        "mode": mode,
        "clock_bin_us": bin_us,
        "cutoff": cutoff,
        "epsilon": epsilon,
        "temperature": temperature,
        "grid": {"bin_width_us": bin_width_us, "n_bins": n_bins},
        "thresholds": [None if not np.isfinite(v) else v for v in result["thresholds"]],
        "support": result["support"],
        "rate": result["rate"],
        "data": data,
        "n_samples": n_samples,
    }
    with open(path, "w") as f:
        json.dump(doc, f, indent=2)
    return doc


def read_calibration(path, *, model_hash: str, profile: str, mode: str, options: dict | None = None) -> dict:
    """Read a calibration file and refuse it for another model, profile, mode or model options."""
    try:
        with open(path) as f:
            doc = json.load(f)
    except FileNotFoundError:
        raise OptionError(f"calibration file {path} does not exist", option="--calibration") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise OptionError(f"cannot read calibration file {path} ({exc})", option="--calibration") from None
    if not isinstance(doc, dict) or doc.get("format") != CALIBRATION_FORMAT:
        raise OptionError(f"{path} is not an evsim calibration file", option="--calibration")
    if doc.get("model_hash") != model_hash:
        raise OptionError(f"{path} was calibrated for another model (or other model options): "
                          f"{doc.get('model_path')}", option="--calibration")
    if doc.get("profile") != profile:
        raise OptionError(f"{path} was calibrated with profile {doc.get('profile')}, not {profile}", option="--calibration")
    if doc.get("mode") != mode:
        raise OptionError(f"{path} was calibrated in {doc.get('mode')} mode, not {mode}", option="--calibration")
    if options is not None and doc.get("options", {}) != options:
        diff = sorted(k for k in set(options) | set(doc.get("options", {}))
                      if options.get(k) != doc.get("options", {}).get(k))
        raise OptionError(f"{path} was calibrated with other model options ({', '.join(diff)})", option="--calibration")
    return doc


def thresholds_from_calibration(doc: dict) -> Thresholds:
    values = np.array([np.inf if v is None else float(v) for v in doc["thresholds"]])
    return Thresholds(values, float(doc["grid"]["bin_width_us"]) if values.size > 1 else 0.0)

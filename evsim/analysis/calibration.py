"""Cutoff replay and calibration on recorded output trajectories (:mod:`evsim.analysis.trajectory`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import OptionError, real_option
from ..kernels.readout import cutoff_array, first_decision, threshold_bins
from ..sim.result import MIN_BIN_WIDTH_US
from .trajectory import Trajectory, confidence_of, correct_from_here, cutoff_mode
from .records import write_text_atomic

__all__ = ["Thresholds", "time_bins", "replay_cutoff", "cutoff_outcomes", "cutoff_sweep", "calibrate", "check_calibration_options",
           "fit_temperature", "stratified_folds", "cross_validate", "calibration_set_warnings", "DEFAULT_MIN_SUPPORT",
           "DEFAULT_CONFIDENCE", "samples_needed", "rate_bound_passes",
           "write_calibration", "read_calibration", "thresholds_from_calibration"]


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


#: Default number of calibration samples a threshold's confidence rate must rest on; bins
#: with fewer undecided samples are merged with the bins after them.
DEFAULT_MIN_SUPPORT = 10

#: Default statistical confidence that a threshold's error rate is at most ε
#: (docs/SEMANTICS.md#calibration): measured on held-out data of two models (one trained and
#: exported by another group) with 96 to 800 calibration samples, ε = 0.01 at 0.9 lost 0.00
#: points everywhere, where the point estimate (confidence None) lost up to 4.2.
DEFAULT_CONFIDENCE = 0.9


def samples_needed(epsilon: float, confidence: float) -> int:
    """The fewest reached samples with which a threshold can pass the bound: n error-free samples
    show a rate ≥ 1 − ε at ``confidence`` once (1 − ε)^n ≤ 1 − confidence."""
    return int(np.ceil(np.log(1.0 - confidence) / np.log(1.0 - epsilon) - 1e-12))


def rate_bound_passes(ok, reached, epsilon: float, confidence: float) -> np.ndarray:
    """Per candidate: is the one-sided Clopper–Pearson lower bound, at ``confidence``, of the rate
    ok/reached at least 1 − ε? Equivalently (the exact binomial test of H0: error rate ≥ ε):
    P(at most reached − ok errors among reached | error rate ε) ≤ 1 − confidence."""
    ok = np.asarray(ok, dtype=np.int64)
    reached = np.asarray(reached, dtype=np.int64)
    alpha = 1.0 - confidence
    out = np.zeros(ok.shape, dtype=bool)
    log_e, log_1e = np.log(epsilon), np.log1p(-epsilon)
    for idx in np.ndindex(ok.shape):
        n, errors = int(reached[idx]), int(reached[idx] - ok[idx])
        if n <= 0 or errors > epsilon * n:  # at or above the mean: the tail is ≥ 1/2 > alpha
            continue
        j = np.arange(errors + 1)
        log_pmf = (np.array([math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) for k in j])
                   + j * log_e + (n - j) * log_1e)
        out[idx] = float(np.exp(log_pmf).sum()) <= alpha
    return out


def _segment_records(conf, active, good, in_segment):
    """The changes of one sample inside a segment at which its running maximum of confidence
    rises (only there can a threshold first be reached): (values, good-from-here flags)."""
    sel = np.flatnonzero(in_segment & active)
    if sel.size == 0:
        return np.zeros(0), np.zeros(0, bool)
    c = conf[sel]
    previous_max = np.concatenate([[-np.inf], np.maximum.accumulate(c)[:-1]])
    rises = c > previous_max
    return c[rises], good[sel][rises]


def _rates_over_thresholds(records):
    """For every candidate threshold β (each record value, ascending): how many samples reach β
    in the segment and how many of those are right for good at their first hit.

    A sample with record values r_0 < r_1 < … and flags g_0, g_1, … first reaches β ≤ r_0 at
    r_0, β in (r_{j−1}, r_j] at r_j, and β > r_last never. Summing these step functions over
    samples by sorting the records gives all candidates at once (O(n log n))."""
    values, deltas_ok, deltas_reached = [], [], []
    base_ok = 0
    base_reached = 0
    for r, g in records:
        if r.size == 0:
            continue
        base_reached += 1
        base_ok += int(g[0])
        nxt = np.concatenate([g[1:].astype(np.int64), [0]])
        values.append(r)
        deltas_ok.append(nxt - g.astype(np.int64))  # applies once β passes above r_j
        d = np.zeros(r.size, dtype=np.int64)
        d[-1] = -1
        deltas_reached.append(d)
    if not values:
        return np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64)
    v = np.concatenate(values)
    order = np.argsort(v, kind="stable")
    v = v[order]
    cum_ok = np.concatenate([[0], np.cumsum(np.concatenate(deltas_ok)[order])])
    cum_reached = np.concatenate([[0], np.cumsum(np.concatenate(deltas_reached)[order])])
    candidates = np.unique(v)
    below = np.searchsorted(v, candidates, side="left")  # records strictly below each candidate
    return candidates, base_ok + cum_ok[below], base_reached + cum_reached[below]


#: the smallest ε a calibration takes: a rate of 1 − 1e-12 already needs ~2·10^12 error-free samples
MIN_EPSILON = 1e-12


def check_calibration_options(epsilon, temperature) -> tuple:
    """(ε, T) as floats, or OptionError: ε in [MIN_EPSILON, 1) (below it 1 − ε rounds towards 1
    and the samples a bound needs overflow: no dataset could certify it), T finite and > 0."""
    epsilon = real_option(epsilon, "--epsilon")
    if not MIN_EPSILON <= epsilon < 1.0:
        raise OptionError(f"must be in [{MIN_EPSILON:g}, 1), got {epsilon:g}", option="--epsilon")
    temperature = real_option(temperature, "--temperature")
    if not (math.isfinite(temperature) and temperature > 0):
        raise OptionError(f"must be a finite number > 0, got {temperature:g}", option="--temperature")
    return epsilon, temperature


def calibrate(trajs: list, cutoff: str, epsilon: float, *, bin_width_us: float = 0.0, n_bins: int = 1,
              temperature: float = 1.0, min_support: int = 1, confidence: float | None = DEFAULT_CONFIDENCE) -> dict:
    """Confidence-rate calibration of a cutoff threshold per elapsed-time bin.

    The bins are calibrated in time order, each on the samples the thresholds of the earlier bins
    have not decided yet (as they would reach that bin when deployed). In a bin, a candidate β
    (an observed confidence) *reaches* a sample when the sample's confidence is ≥ β at some output
    change inside the bin (the moment the rule would fire); its *confidence rate* is the fraction
    of reached samples whose prediction is correct then and at every later time. The threshold is
    the smallest β such that it, and every larger candidate that still reaches ``min_support``
    samples, has a rate ≥ 1 − ε and reaches at least ``min_support`` samples. Requiring the rate
    of every larger β too ignores a lucky dip among noisy candidates. A bin whose undecided samples
    are fewer than ``min_support`` is merged with the bins after it (one β for all); a bin where
    no candidate qualifies gets β = +inf (never cut off there).

    With ``confidence`` (default 0.9) "a rate ≥ 1 − ε" means: the exact one-sided lower bound of
    the rate at that confidence (Clopper–Pearson, :func:`rate_bound_passes`) is ≥ 1 − ε, and the
    candidates that must all qualify are those reaching at least ``max(min_support,
    samples_needed(ε, confidence))`` samples (fewer could not pass even without an error). With
    ``confidence=None`` the observed rate itself is compared (the point estimate; it fits noise
    when few samples are reached).

    Returns a dict with ``thresholds``, ``support`` (samples reached) and ``rate`` per bin.
    """
    epsilon, temperature = check_calibration_options(epsilon, temperature)
    if n_bins < 1:
        raise OptionError("must be >= 1", option="--calib-bins")
    if n_bins > 1 and not bin_width_us > 0:
        raise OptionError("a per-bin calibration needs a bin width > 0", option="--calib-bin-us")
    if int(min_support) != min_support or min_support < 1:
        raise OptionError("must be an integer >= 1", option="--min-support")
    if confidence is not None and not 0.5 <= confidence < 1.0:
        raise OptionError("must be in [0.5, 1)", option="--confidence")
    labelled = [t for t in trajs if t.label is not None]
    if not labelled:
        raise OptionError("calibration needs samples with labels (a labelled dataset)", option="data")
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

    thresholds = [np.inf] * n_bins
    support = [0] * n_bins
    rates: list = [None] * n_bins
    undecided = np.ones(len(per_sample), dtype=bool)
    first = 0
    while first < n_bins:
        # grow the segment [first, last] until enough undecided samples are active in it
        last = first
        while True:
            active_n = sum(1 for i, (c, a, g, b) in enumerate(per_sample)
                           if undecided[i] and np.any(a & (b >= first) & (b <= last)))
            if active_n >= min_support or last == n_bins - 1:
                break
            last += 1
        idx = np.flatnonzero(undecided)
        records = [_segment_records(*per_sample[i][:3], (per_sample[i][3] >= first) & (per_sample[i][3] <= last))
                   for i in idx]
        candidates, ok, reached = _rates_over_thresholds(records)
        if confidence is None:
            enough = reached >= min_support
            qualifies = ~enough | (ok >= (1.0 - epsilon) * reached)
        else:
            enough = reached >= max(min_support, samples_needed(epsilon, confidence))
            qualifies = ~enough | rate_bound_passes(ok, reached, epsilon, confidence)
        # smallest candidate from which on every supported candidate qualifies
        tail_ok = np.logical_and.accumulate(qualifies[::-1])[::-1]
        pick = np.flatnonzero(tail_ok & enough)
        if pick.size:
            q = int(pick[0])
            beta = float(candidates[q])
            for k in range(first, last + 1):
                thresholds[k], support[k], rates[k] = beta, int(reached[q]), float(ok[q] / reached[q])
            for i, (r, g) in zip(idx, records):
                if r.size and r[-1] >= beta:
                    undecided[i] = False
        first = last + 1
    return {"thresholds": thresholds, "support": support, "rate": rates, "confidence": confidence}


def fit_temperature(trajs: list) -> float:
    """Softmax temperature T minimising the negative log-likelihood of the labels under
    softmax(a/T) of the final output vectors (temperature scaling, Guo et al. 2017), searched on a
    log grid from 10^-2 to 10^4 times the median top-1 output (then refined). With spike counts,
    T = 1 saturates the softmax (a gap of 40 counts gives 1 − 4e-18): confidences tie at 1.0 and
    a threshold cannot separate them; the fitted T keeps them apart."""
    finals = [(t.vectors[-1], t.label) for t in trajs if t.label is not None and len(t.t_us) and np.any(t.vectors[-1])]
    if not finals:
        raise OptionError("fitting a temperature needs labelled samples with output activity", option="--temperature")
    a = np.array([v for v, _ in finals], dtype=float)
    y = np.array([lab for _, lab in finals], dtype=np.int64)
    if np.any(y >= a.shape[1]) or np.any(y < 0):
        raise OptionError(f"labels outside the {a.shape[1]} outputs of the model", option="data")
    scale = float(np.median(np.max(np.abs(a), axis=1))) or 1.0

    def nll(temp):
        z = a / temp
        z = z - z.max(axis=1, keepdims=True)
        return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(y)), y]))

    grid = scale * np.logspace(-2, 4, 121)
    best = grid[int(np.argmin([nll(t) for t in grid]))]
    fine = best * np.logspace(-0.05, 0.05, 41)
    return float(fine[int(np.argmin([nll(t) for t in fine]))])


def stratified_folds(labels, k: int, seed: int = 0) -> np.ndarray:
    """Fold index of every sample: each class dealt round-robin over the k folds after a seeded
    shuffle, so every fold holds about the same share of every class."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    fold = np.zeros(labels.size, dtype=np.int64)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(idx.size)]
        fold[idx] = (np.arange(idx.size) + rng.integers(k)) % k
    return fold


def cross_validate(trajs: list, cutoff: str, epsilon: float, *, k: int = 5, seed: int = 0, **calibrate_kwargs) -> dict:
    """k-fold estimate of what a calibration does on data it was not fitted to.

    Each fold is calibrated on the other k − 1 folds and the rule is replayed on it; the held-out
    outcomes of all samples are pooled. Returns accuracy with and without the cutoff on the same
    samples, their difference (the accuracy lost), mean events fraction and speed-up."""
    labelled = [t for t in trajs if t.label is not None]
    if k < 2 or len(labelled) < k:
        raise OptionError(f"needs k >= 2 and at least k labelled samples (k={k}, {len(labelled)} samples)",
                          option="--cv-folds")
    temperature = calibrate_kwargs.get("temperature", 1.0)
    folds = stratified_folds([t.label for t in labelled], k, seed)
    cut_correct = np.zeros(len(labelled), dtype=bool)
    full_correct = np.zeros(len(labelled), dtype=bool)
    fractions = np.ones(len(labelled))
    for f in range(k):
        train = [t for t, g in zip(labelled, folds) if g != f]
        test_idx = np.flatnonzero(folds == f)
        result = calibrate(train, cutoff, epsilon, **calibrate_kwargs)
        values = np.asarray(result["thresholds"], dtype=float)
        width = float(calibrate_kwargs.get("bin_width_us", 0.0)) if values.size > 1 else 0.0
        th = Thresholds(values, width)
        for i in test_idx:
            tr = labelled[i]
            final = tr.predictions[-1] if len(tr.t_us) else -1
            full_correct[i] = final == tr.label
            hit = replay_cutoff(tr, cutoff, th, temperature)
            if hit is None:
                cut_correct[i] = full_correct[i]
            else:
                cut_correct[i] = tr.predictions[hit] == tr.label
                fractions[i] = tr.events[hit] / tr.events_total if tr.events_total else 1.0
    mean_fraction = float(np.mean(fractions))
    return {"folds": k, "seed": seed, "n_samples": len(labelled),
            "accuracy": float(np.mean(cut_correct)), "accuracy_uncut": float(np.mean(full_correct)),
            "accuracy_lost": float(np.mean(full_correct) - np.mean(cut_correct)),
            "mean_events_fraction": mean_fraction, "speedup": 1.0 / mean_fraction if mean_fraction > 0 else float("inf")}


def calibration_set_warnings(labels, n_outputs: int | None = None, *, small: int = 100, few: int = 5,
                             epsilon: float | None = None, confidence: float | None = None) -> list[str]:
    """Plain-language warnings about a calibration set: too small (also: too small to show an
    error rate ≤ ε at the confidence at all), a class missing or rare."""
    labels = np.asarray([lab for lab in labels if lab is not None], dtype=np.int64)
    out = []
    if epsilon is not None and confidence is not None and 0 < epsilon < 1 and 0.5 <= confidence < 1:
        need = samples_needed(epsilon, confidence)
        if labels.size < need:
            out.append(f"{labels.size} labelled samples cannot show an error rate <= {epsilon:g} at confidence "
                       f"{confidence:g} (that needs at least {need} samples reaching a threshold without an error): "
                       "the calibration will not cut early; use more samples or a larger --epsilon")
    if labels.size < small:
        out.append(f"only {labels.size} labelled calibration samples (fewer than {small}): the thresholds "
                   "rest on few decisions; check the cross-validated figures")
    counts = np.bincount(labels, minlength=n_outputs or 0) if labels.size else np.zeros(n_outputs or 0, np.int64)
    missing = [int(c) for c in np.flatnonzero(counts == 0)]
    if missing:
        out.append(f"class(es) {', '.join(map(str, missing))} missing from the calibration set")
    rare = [f"{c} ({int(counts[c])})" for c in np.flatnonzero((counts > 0) & (counts < few))]
    if rare:
        out.append(f"class(es) with fewer than {few} calibration samples: {', '.join(rare)}")
    return out


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
    write_text_atomic(path, json.dumps(doc, indent=2))
    return doc


class _LongInteger:
    """An integer literal of a JSON file too long for Python to convert (``sys.int_info``'s string
    limit): kept as a marker so that the field holding it is named in the error."""

    def __init__(self, digits: str):
        self.digits = digits

    def __repr__(self):
        return f"an integer of {len(self.digits.lstrip('-'))} digits"


def _parse_int(text: str):
    try:
        return int(text)
    except ValueError:  # longer than the interpreter's int-string limit
        return _LongInteger(text)


def _shown(value, limit: int = 60) -> str:
    """A value of a file as one short line of a message."""
    text = value if isinstance(value, str) and value.isprintable() else repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _load_calibration_json(path):
    """The parsed content of a calibration file, or OptionError naming the file."""
    p = Path(str(path))
    if not p.exists():
        raise OptionError(f"calibration file {path} does not exist", option="--calibration")
    if not p.is_file():
        raise OptionError(f"{path} is not a file (a calibration file from `evsim calibrate` is expected)",
                          option="--calibration")
    try:
        text = p.read_bytes().decode("utf-8")
    except OSError as exc:
        raise OptionError(f"cannot read calibration file {path} ({exc.strerror or exc})", option="--calibration") from None
    except UnicodeDecodeError:
        raise OptionError(f"{path} is not a JSON file (not UTF-8 text)", option="--calibration") from None
    try:
        return json.loads(text, parse_int=_parse_int)
    except json.JSONDecodeError as exc:
        raise OptionError(f"{path} is not valid JSON (line {exc.lineno}: {exc.msg})", option="--calibration") from None
    except (RecursionError, ValueError) as exc:
        detail = "nested too deeply" if isinstance(exc, RecursionError) else _shown(str(exc))
        raise OptionError(f"{path} is not valid JSON ({detail})", option="--calibration") from None


def _calibration_field_error(path, field: str, message: str) -> OptionError:
    return OptionError(f"{path}: field '{field}': {message}", option="--calibration")


def _calibration_number(path, field: str, value) -> float:
    """float(value) for a JSON number (not a boolean, a string, a list, ...)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _calibration_field_error(path, field, f"must be a number, got {_shown(value)}")
    try:
        return float(value)
    except OverflowError:
        raise _calibration_field_error(path, field, f"is too large ({_shown(value)})") from None


def _check_calibration(doc: dict, path) -> None:
    """Types, lengths and ranges of every field a calibration's user reads (docs/SEMANTICS.md#calibration-file):
    ``model_hash``, ``profile``, ``mode``, ``options``, ``cutoff``, ``temperature``, ``grid``
    (``bin_width_us``, ``n_bins``) and ``thresholds`` (one per bin; ``null`` = never decide)."""
    for key in ("model_hash", "profile", "mode"):
        if not isinstance(doc.get(key), str):
            raise _calibration_field_error(path, key, f"must be a string, got {_shown(doc.get(key))}")
    if not isinstance(doc.get("options", {}), dict):
        raise _calibration_field_error(path, "options", f"must be an object, got {_shown(doc['options'])}")
    cutoff = doc.get("cutoff")
    if cutoff not in ("conf", "topk"):
        raise _calibration_field_error(path, "cutoff", f"must be conf or topk, got {_shown(cutoff)}")
    if "temperature" in doc or cutoff == "conf":
        if "temperature" not in doc:
            raise _calibration_field_error(path, "temperature", "missing (a conf calibration needs its temperature)")
        t = _calibration_number(path, "temperature", doc["temperature"])
        if not (math.isfinite(t) and t > 0):
            raise _calibration_field_error(path, "temperature", f"must be a finite number > 0, got {_shown(t)}")
    grid = doc.get("grid")
    if not isinstance(grid, dict):
        raise _calibration_field_error(path, "grid", "missing" if grid is None else f"must be an object, got {_shown(grid)}")
    for key in ("bin_width_us", "n_bins"):
        if key not in grid:
            raise _calibration_field_error(path, f"grid.{key}", "missing")
    n_bins = grid["n_bins"]
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 1:
        raise _calibration_field_error(path, "grid.n_bins", f"must be an integer >= 1, got {_shown(n_bins)}")
    width = _calibration_number(path, "grid.bin_width_us", grid["bin_width_us"])
    if not (math.isfinite(width) and (width == 0.0 or width >= MIN_BIN_WIDTH_US)):
        raise _calibration_field_error(path, "grid.bin_width_us",
                                       f"must be 0 or a finite number >= {MIN_BIN_WIDTH_US:g} µs, got {_shown(width)}")
    if n_bins > 1 and not width > 0:
        raise _calibration_field_error(path, "grid.bin_width_us", f"must be > 0 with {n_bins} bins")
    thresholds = doc.get("thresholds")
    if not isinstance(thresholds, list):
        raise _calibration_field_error(path, "thresholds", "missing" if thresholds is None
                                       else f"must be a list (one threshold per bin), got {_shown(thresholds)}")
    if len(thresholds) != n_bins:
        raise _calibration_field_error(path, "thresholds", f"has {len(thresholds)} entries for the {n_bins} bins "
                                       "of grid.n_bins (one threshold per bin)")
    for k, v in enumerate(thresholds):
        if v is None:  # never decides in this bin
            continue
        field = f"thresholds[{k}]"
        x = _calibration_number(path, field, v)
        if math.isnan(x):
            raise _calibration_field_error(path, field, "is NaN (null means: never decide in this bin)")
        if x == math.inf:
            continue
        if cutoff == "conf" and not 0.0 < x <= 1.0:
            raise _calibration_field_error(path, field, f"a softmax level lies in (0, 1] (null: never decide), got {x:g}")
        if cutoff == "topk" and not x >= 0.0:
            raise _calibration_field_error(path, field, f"a top1 − top2 gap must be >= 0 (null: never decide), got {x:g}")


def read_calibration(path, *, model_hash: str, profile: str, mode: str, options: dict | None = None) -> dict:
    """Read a calibration file and refuse it for another model, profile, mode or model options.

    A file that is not a calibration, or whose fields have the wrong type, length or range, is an
    OptionError naming the file and the field."""
    doc = _load_calibration_json(path)
    if not isinstance(doc, dict) or doc.get("format") != CALIBRATION_FORMAT:
        raise OptionError(f"{path} is not an evsim calibration file", option="--calibration")
    _check_calibration(doc, path)
    if doc["model_hash"] != model_hash:
        raise OptionError(f"{path} was calibrated for another model (or other model options): "
                          f"{_shown(doc.get('model_path'), 200)}", option="--calibration")
    if doc["profile"] != profile:
        raise OptionError(f"{path} was calibrated with profile {_shown(doc['profile'])}, not {profile}",
                          option="--calibration")
    if doc["mode"] != mode:
        raise OptionError(f"{path} was calibrated in {_shown(doc['mode'])} mode, not {mode}", option="--calibration")
    if options is not None and doc.get("options", {}) != options:
        diff = sorted(k for k in set(options) | set(doc.get("options", {}))
                      if options.get(k) != doc.get("options", {}).get(k))
        raise OptionError(f"{path} was calibrated with other model options ({', '.join(diff)})", option="--calibration")
    return doc


def thresholds_from_calibration(doc: dict) -> Thresholds:
    values = np.array([np.inf if v is None else float(v) for v in doc["thresholds"]])
    return Thresholds(values, float(doc["grid"]["bin_width_us"]) if values.size > 1 else 0.0)

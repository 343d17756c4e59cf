"""Aggregates of an evaluation (docs/SEMANTICS.md#cli), vectorised over the records.

Everything here is a pure function of the records (:mod:`evsim.analysis.records`), computed once
at the end of a run (or for an occasional partial document): accuracy with its Wilson interval,
per-class accuracy, confusion matrix, events, latency, SynOps, oracle cutoff times, and the
anytime summary (accuracy vs elapsed time and vs fraction of events, a global Top-K threshold
sweep) from the records' anytime digests.
"""

from __future__ import annotations

import numpy as np

from . import statistics as stats

__all__ = ["summarise", "anytime_summary", "class_counts"]


def _column(records: list, key: str, dtype=float, none=np.nan) -> np.ndarray:
    return np.array([none if r.get(key) is None else r[key] for r in records], dtype=dtype)


def class_counts(labels) -> dict:
    """{label: count} in label order (unlabelled samples under None are left out)."""
    values, counts = np.unique(np.asarray([v for v in labels if v is not None], dtype=np.int64), return_counts=True)
    return {int(v): int(c) for v, c in zip(values, counts)}


def summarise(records: list, errors: list | None = None, *, n_outputs: int | None = None, anytime: bool = True,
              confidence: float = 0.95) -> dict:
    """The aggregate figures of ``records`` (successful samples, any order)."""
    errors = errors or []
    n = len(records)
    correct = _column(records, "correct", bool, False)
    k = int(correct.sum())
    lo, hi = stats.wilson_interval(k, n, confidence)
    consumed = _column(records, "events_consumed")
    total = _column(records, "events_total")
    fraction = np.where(total > 0, consumed / np.where(total > 0, total, 1.0), 1.0)
    latency = _column(records, "decision_time_us", float, 0.0)
    status = [r.get("status") for r in records]
    doc = {
        "accuracy": k / n if n else None,  # undefined without a simulated sample
        "accuracy_interval": {"confidence": confidence, "low": lo, "high": hi, "method": "wilson"},
        "n_samples": n,
        "n_correct": k,
        "no_prediction": int(sum(r.get("prediction") is None for r in records)),
        "mean_events_fraction": float(fraction.mean()) if n else 0.0,
        "mean_latency_us": float(latency.mean()) if n else 0.0,
        "synops_per_sample": float(_column(records, "synops").mean()) if n else 0.0,
        "budget_exhausted": int(sum(s == "budget" for s in status)),
        "cutoff_decided": int(sum(s == "cutoff" for s in status)),
        "n_errors": len(errors),
        "errors": [{"index": e["index"], "path": e["path"], "label": e.get("label"), "message": e["error"]}
                   for e in errors],
    }
    labelled = [r for r in records if r.get("label") is not None]
    if labelled:
        labels = np.array([r["label"] for r in labelled], dtype=np.int64)
        preds = np.array([-1 if r.get("prediction") is None else r["prediction"] for r in labelled], dtype=np.int64)
        n_classes = int(max(labels.max() + 1, preds.max() + 1, n_outputs or 0))
        cm = stats.confusion_matrix(labels, preds, n_classes)
        doc["class_counts"] = class_counts(labels)
        doc["per_class"] = stats.per_class(labels, preds, n_classes, confidence)
        doc["confusion_matrix"] = {"rows": "label", "columns": "prediction; the last column counts no prediction",
                                   "counts": cm.tolist()}
    octs = _column(records, "oct_us")
    defined = np.isfinite(octs)
    digests = [r.get("anytime") for r in records]
    if anytime and n and all(d is not None for d in digests):
        durations = np.array([d["duration_us"] for d in digests], dtype=float)
        positive = defined & (durations > 0)
        doc["oct"] = {
            "defined": int(defined.sum()),
            "mean_us": float(octs[defined].mean()) if defined.any() else None,
            "median_us": float(np.median(octs[defined])) if defined.any() else None,
            "mean_fraction_of_duration": float((octs[positive] / durations[positive]).mean()) if positive.any() else None,
        }
        doc["anytime"] = anytime_summary(records)
    return doc


def _flip_arrays(records: list):
    """Concatenated flips of every record: (time, events, sign, sample's events_total)."""
    t, ev, sign, tot = [], [], [], []
    for r in records:
        d = r["anytime"]
        m = len(d["flip_t_us"])
        t.append(np.asarray(d["flip_t_us"], dtype=float))
        ev.append(np.asarray(d["flip_events"], dtype=float))
        sign.append(np.where(np.arange(m) % 2 == 0, 1, -1))  # wrong→correct, then correct→wrong, ...
        tot.append(np.full(m, float(r["events_total"])))
    cat = lambda parts: np.concatenate(parts) if parts else np.zeros(0)  # noqa: E731
    return cat(t), cat(ev), cat(sign).astype(np.int64), cat(tot)


def anytime_summary(records: list, n_time: int = 101, n_fraction: int = 101, n_sweep: int = 60) -> dict:
    """Accuracy vs elapsed time and vs fraction of events (no prediction counts as wrong), and a
    global Top-K threshold sweep, from the records' anytime digests.

    Sweep thresholds: the distinct confidence peaks of all samples (each one changes the outcome
    of at least one sample), thinned to ``n_sweep`` quantiles.
    """
    n = len(records)
    durations = np.array([r["anytime"]["duration_us"] for r in records], dtype=float)
    time_grid = np.linspace(0.0, float(durations.max()) if n else 0.0, n_time)
    fraction_grid = np.linspace(0.0, 1.0, n_fraction)
    t, ev, sign, tot = _flip_arrays(records)
    # accuracy at time g = (flips to correct − flips to wrong) at or before g, over n
    order = np.argsort(t, kind="stable")
    cum = np.concatenate([[0], np.cumsum(sign[order])])
    acc_time = cum[np.searchsorted(t[order], time_grid, side="right")] / max(n, 1)
    # after a fraction f, a sample has consumed floor(f·total) events (the rule of accuracy_vs_fraction)
    consumed = np.floor(fraction_grid[None, :] * tot[:, None] + 1e-9)
    acc_fraction = ((ev[:, None] <= consumed) * sign[:, None]).sum(axis=0) / max(n, 1)
    return {
        "time_us": time_grid.tolist(),
        "accuracy_vs_time": acc_time.tolist(),
        "fraction": fraction_grid.tolist(),
        "accuracy_vs_fraction": acc_fraction.tolist(),
        "sweep": topk_sweep(records, n_sweep=n_sweep),
    }


def topk_sweep(records: list, values=None, n_sweep: int = 60) -> list:
    """Outcome of every sample under a global Top-K threshold β (docs/SEMANTICS.md#cutoff), for each β: accuracy,
    mean events fraction, mean latency, speed-up (1 / events fraction)."""
    n = len(records)
    if n == 0:
        return []
    # every sample's peaks, concatenated column by column
    columns = [r["anytime"]["peaks"] for r in records]
    counts = [len(p["confidence"]) for p in columns]
    sample = np.repeat(np.arange(n, dtype=np.int64), counts)
    conf, t, ev, ok = (np.concatenate([np.asarray(p[key], dtype=dtype) for p in columns])
                       for key, dtype in (("confidence", float), ("t_us", float), ("events", float), ("correct", bool)))
    if values is None:
        values = np.unique(conf)
        if values.size > n_sweep:
            values = np.unique(np.quantile(values, np.linspace(0, 1, n_sweep)))
    total = np.array([r["events_total"] for r in records], dtype=float)
    final_ok = np.array([r["anytime"]["final_correct"] for r in records], dtype=bool)
    duration = np.array([r["anytime"]["duration_us"] for r in records], dtype=float)
    same_as_previous = np.concatenate([[False], sample[1:] == sample[:-1]])
    out = []
    for beta in np.asarray(values, dtype=float):
        reached = conf >= beta
        # peaks rise within a sample, so the peaks reaching β are a suffix; take its first
        first = reached & ~(np.concatenate([[False], reached[:-1]]) & same_as_previous)
        s = sample[first]
        good, frac, lat = final_ok.copy(), np.ones(n), duration.copy()
        good[s] = ok[first]
        frac[s] = np.where(total[s] > 0, ev[first] / np.where(total[s] > 0, total[s], 1.0), 1.0)
        lat[s] = t[first]
        mean_fraction = float(frac.mean())
        out.append({"beta": float(beta), "accuracy": float(good.mean()), "mean_events_fraction": mean_fraction,
                    "mean_latency_us": float(lat.mean()),
                    "speedup": 1.0 / mean_fraction if mean_fraction > 0 else float("inf")})
    return out

"""Synthetic `evsim eval --json` documents with per-sample records, and the Wilson interval
written out, for the tests of figures and reports."""

from __future__ import annotations

import math

import numpy as np


def wilson(k: int, n: int, z: float = 1.959963984540054):
    """Wilson score interval written out (Wilson 1927): (p + z²/2n ± z√(p(1−p)/n + z²/4n²)) / (1 + z²/n)."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def make_doc(*, n=60, n_wrong=3, mode="event", profile="speck", cutoff=None, latency_us=100_000.0, fraction=0.4,
             bin_us=None, n_bins=None, seed=0, complete=True, anytime=True, samples=True, oct_mean_us=20_000.0):
    """An eval document with per-sample records: n samples of 5 classes, n_wrong misclassified."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 5
    preds = labels.copy()
    wrong = rng.choice(n, n_wrong, replace=False)
    preds[wrong] = (labels[wrong] + 1 + rng.integers(0, 3, n_wrong)) % 5
    times = rng.uniform(0.5, 1.5, n) * latency_us
    records = [{"path": f"{int(y)}/{i:05d}.bin", "label": int(y), "prediction": int(p), "correct": bool(y == p),
                "decision_time_us": float(t), "events_consumed": 40, "events_total": 100, "synops": 1000,
                "spikes_per_node": {}, "output_counts": [0] * 5, "confidence": None, "oct_us": None,
                "status": "complete"} for i, (y, p, t) in enumerate(zip(labels, preds, times))]
    doc = {"accuracy": float(np.mean(labels == preds)), "n_samples": n, "no_prediction": 0,
           "mean_events_fraction": fraction, "mean_latency_us": float(np.mean(times)) if latency_us else 0.0,
           "synops_per_sample": 1000.0, "mode": mode, "profile": profile, "cutoff": cutoff or {"mode": "none"},
           "complete": complete, "model": "models/tiny/model.nir", "model_hash": "abc", "data": "data",
           "precision": "float32"}
    if mode == "clock":
        doc["bin_us"], doc["n_bins"] = bin_us, n_bins
    if anytime:
        t = np.linspace(0, 300_000, 31)
        doc["anytime"] = {"time_us": t.tolist(), "accuracy_vs_time": np.minimum(1.0, t / 200_000).tolist(),
                          "fraction": np.linspace(0, 1, 21).tolist(),
                          "accuracy_vs_fraction": np.minimum(1.0, np.linspace(0, 1, 21) * 1.5).tolist(),
                          "sweep": [{"beta": b, "accuracy": a, "mean_events_fraction": f,
                                     "mean_latency_us": f * 300_000.0, "speedup": 1.0 / f}
                                    for b, a, f in ((2, 0.7, 0.05), (5, 0.9, 0.2), (9, 0.95, 0.5))]}
    if oct_mean_us is not None:
        doc["oct"] = {"defined": n - n_wrong, "mean_us": oct_mean_us, "median_us": oct_mean_us}
    if samples:
        doc["samples"] = records
    return doc

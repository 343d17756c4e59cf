"""Statistics of classification results: intervals, confusion matrix, per-class figures.

Every function takes plain arrays (labels, predictions with -1 for "no prediction", booleans) and
returns plain numbers or arrays, so evaluation, figures and reports compute them the same way.

* :func:`wilson_interval` — the Wilson score interval for a proportion k/n (good coverage at
  the accuracies that matter here, 90–100 %, where the Wald interval collapses).
* :func:`paired_difference_interval` — accuracy difference of two results on the *same*
  samples: point estimate (n10 − n01)/n and the Agresti–Min (2005) adjusted Wald interval for
  paired proportions (add 1/2 to each cell of the 2×2 agreement table).
* :func:`confusion_matrix`, :func:`per_class` — counts per (label, prediction); the last
  column of the confusion matrix counts samples without a prediction.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

from ..errors import OptionError

__all__ = ["z_value", "wilson_interval", "paired_difference_interval", "confusion_matrix", "per_class"]


def z_value(confidence: float = 0.95) -> float:
    """Two-sided normal quantile: 1.96 for 0.95."""
    if not 0.0 < confidence < 1.0:
        raise OptionError(f"must be in (0, 1), got {confidence!r}", option="confidence")
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for the proportion k/n; (0, 1) when n = 0."""
    k, n = int(k), int(n)
    if n < 0 or not 0 <= k <= max(n, 0):
        raise OptionError(f"need 0 <= k <= n, got k={k}, n={n}", option="k")
    if n == 0:
        return 0.0, 1.0
    z = z_value(confidence)
    p = k / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # at k = 0 (k = n) the bound is exactly 0 (1); the formula leaves a rounding residue
    lo = 0.0 if k == 0 else max(0.0, centre - half)
    hi = 1.0 if k == n else min(1.0, centre + half)
    return lo, hi


def paired_difference_interval(correct_a, correct_b, confidence: float = 0.95) -> dict:
    """Accuracy of A minus accuracy of B on the same samples, with its interval.

    Args:
        correct_a, correct_b: booleans per sample, in the same sample order.

    Returns:
        dict(difference, low, high, n, a_only, b_only): a_only = samples A gets right and B wrong.
    """
    a = np.asarray(correct_a, dtype=bool)
    b = np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape or a.ndim != 1:
        raise OptionError(f"need two 1-d arrays of the same length, got {a.shape} and {b.shape}", option="results")
    n = int(a.size)
    n10 = int(np.sum(a & ~b))
    n01 = int(np.sum(~a & b))
    if n == 0:
        return {"difference": 0.0, "low": -1.0, "high": 1.0, "n": 0, "a_only": 0, "b_only": 0}
    z = z_value(confidence)
    p10 = (n10 + 0.5) / (n + 2.0)
    p01 = (n01 + 0.5) / (n + 2.0)
    centre = p10 - p01
    half = z * math.sqrt((p10 + p01 - (p10 - p01) ** 2) / (n + 2.0))
    return {"difference": (n10 - n01) / n, "low": max(-1.0, centre - half), "high": min(1.0, centre + half),
            "n": n, "a_only": n10, "b_only": n01}


def confusion_matrix(labels, predictions, n_classes: int | None = None) -> np.ndarray:
    """Counts C[label, prediction], shape (n_classes, n_classes + 1); column n_classes counts
    samples without a prediction (prediction -1 or None)."""
    y = np.asarray(labels, dtype=np.int64)
    p = np.asarray([-1 if q is None else q for q in predictions], dtype=np.int64)
    if y.shape != p.shape:
        raise OptionError(f"labels and predictions differ in length ({y.size} vs {p.size})", option="results")
    if n_classes is None:
        n_classes = int(max(y.max(initial=-1), p.max(initial=-1))) + 1
    if np.any(y < 0) or np.any(y >= n_classes) or np.any(p >= n_classes) or np.any(p < -1):
        raise OptionError(f"labels and predictions must lie in [0, {n_classes})", option="results")
    col = np.where(p < 0, n_classes, p)
    out = np.zeros((n_classes, n_classes + 1), dtype=np.int64)
    np.add.at(out, (y, col), 1)
    return out


def per_class(labels, predictions, n_classes: int | None = None, confidence: float = 0.95) -> list[dict]:
    """Per label: samples, correct, accuracy and its Wilson interval."""
    cm = confusion_matrix(labels, predictions, n_classes)
    rows = []
    for c in range(cm.shape[0]):
        n = int(cm[c].sum())
        k = int(cm[c, c])
        lo, hi = wilson_interval(k, n, confidence)
        rows.append({"label": c, "n": n, "correct": k, "accuracy": k / n if n else None, "low": lo, "high": hi})
    return rows

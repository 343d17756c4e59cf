"""Reading ``evsim eval --json`` documents for figures and reports.

Documents are read defensively: older files lack intervals, per-class figures, ``complete`` or the
per-sample ``samples`` list; what a figure needs is computed from what is there (the accuracy
interval from the per-sample records when present, else from accuracy × n_samples).
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np

from ..analysis.statistics import confusion_matrix, per_class, wilson_interval
from ..errors import OptionError
from .style import config_colour, config_marker

__all__ = ["load_results", "num", "cutoff_of", "family_of", "describe", "colour_of", "marker_of",
           "accuracy_interval", "sample_arrays", "class_table", "bin_width_text", "is_complete"]


def num(v):
    """A finite float, or None."""
    if isinstance(v, bool):
        return None
    try:
        v = float(v)
    except (TypeError, ValueError, OverflowError):
        return None
    return v if math.isfinite(v) else None


def load_results(paths) -> list:
    """The eval documents in ``paths`` (JSON files), each with ``_path`` set; OptionError naming
    the file when one is missing, unreadable or not an ``evsim eval --json`` result."""
    from ..paths import check_json_file

    docs = []
    for path in paths:
        doc = check_json_file(path, "RESULTS")  # one implementation of "a JSON file given as an option"
        raw = Path(path).read_bytes()
        check_doc(doc, str(path))
        doc = _displayable(doc)
        doc["_path"] = str(path)
        doc["_sha256"] = hashlib.sha256(raw).hexdigest()
        docs.append(doc)
    return docs


def _displayable(obj):
    """``obj`` with every string made encodable (a lone surrogate, which JSON may hold and a
    non-UTF-8 file name becomes, is shown as "?"): figures and pages cannot draw or write it."""
    if isinstance(obj, str):
        try:
            obj.encode("utf-8")
            return obj
        except UnicodeEncodeError:
            return obj.encode("utf-8", "replace").decode("utf-8")
    if isinstance(obj, list):
        return [_displayable(v) for v in obj]
    if isinstance(obj, dict):
        return {_displayable(k): _displayable(v) for k, v in obj.items()}
    return obj


def check_doc(doc, where: str):
    if isinstance(doc, dict) and doc.get("accuracy", 0) is None and doc.get("n_samples") == 0:
        raise OptionError(f"{where}: no sample was simulated in that evaluation (nothing to show)", option="RESULTS")
    if not isinstance(doc, dict) or num(doc.get("accuracy")) is None:
        raise OptionError(f"{where} is not an `evsim eval --json` result (no accuracy)", option="RESULTS")
    if not 0.0 <= float(doc["accuracy"]) <= 1.0:
        raise OptionError(f"{where}: accuracy {doc['accuracy']!r} is not in [0, 1]", option="RESULTS")
    _check_fields(doc, where)


#: most classes a result may name (a label of 10^8 would make a confusion matrix of 10^16 counts)
MAX_CLASSES = 10_000


def _text_ok(value) -> bool:
    return isinstance(value, str)


def _check_fields(doc: dict, where: str) -> None:
    """The fields the figures and the report read, checked for type and range: one OptionError
    naming the field rather than a traceback (or a 71-PiB allocation) half-way through a figure."""
    def bad(field, why):
        raise OptionError(f"{where}: '{field}' {why}", option="RESULTS")

    for key in ("profile", "mode", "model", "precision", "evsim_version"):
        if doc.get(key) is not None and not _text_ok(doc[key]):
            bad(key, "is not text")
    cutoff = doc.get("cutoff")
    if isinstance(cutoff, dict) and not _text_ok(cutoff.get("mode", "none")):
        bad("cutoff.mode", "is not text")
    if cutoff is not None and not isinstance(cutoff, dict) and not _text_ok(cutoff):
        bad("cutoff", "is neither a cutoff description nor text")
    if isinstance(cutoff, dict) and isinstance(cutoff.get("table"), list):
        for k, v in enumerate(cutoff["table"]):
            if v is not None and (num(v) is None or abs(num(v)) > 1e30):
                bad(f"cutoff.table[{k}]", "is not a threshold (null or a finite number of magnitude <= 1e30)")
    fraction = doc.get("mean_events_fraction")
    if fraction is not None and (num(fraction) is None or not (num(fraction) == 0 or 2.0 ** -53 <= num(fraction) <= 1)):
        bad("mean_events_fraction", f"is not a fraction of the events read ({str(fraction)[:40]})")
    for key in ("bin_us", "clock_bin_us"):
        v = doc.get(key)
        if v is not None and (num(v) is None or not 0 < num(v) < 2.0 ** 53):
            bad(key, f"is not a bin width in µs ({str(v)[:40]})")
    n = doc.get("n_samples")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or not 0 <= n < 2 ** 53):
        bad("n_samples", f"is not a count of samples ({str(n)[:40]})")
    samples = doc.get("samples")
    if samples is None:
        return
    if not isinstance(samples, list):
        bad("samples", "is not a list of sample records")
    for k, r in enumerate(samples):
        if not isinstance(r, dict):
            bad(f"samples[{k}]", "is not a sample record")
        for field in ("label", "prediction"):
            v = r.get(field)
            if isinstance(v, int) and not isinstance(v, bool) and not -1 <= v < MAX_CLASSES:
                bad(f"samples[{k}].{field}", f"is not a class index below {MAX_CLASSES:,} ({str(v)[:40]})")
        counts = r.get("output_counts")
        if isinstance(counts, list) and len(counts) > MAX_CLASSES:
            bad(f"samples[{k}].output_counts", f"has {len(counts):,} outputs (at most {MAX_CLASSES:,})")


def is_complete(doc) -> bool:
    """False only when the document says so (an interrupted evaluation)."""
    return doc.get("complete", True) is not False


def cutoff_of(doc) -> dict:
    c = doc.get("cutoff", "none")
    if isinstance(c, dict):
        return c
    return {"mode": str(c) if c else "none"}


def family_of(doc) -> tuple:
    """(mode, cutoff kind): the hue of a configuration (see :mod:`.style`)."""
    mode = "clock" if doc.get("mode") == "clock" else "event"
    c = cutoff_of(doc)
    cm = c.get("mode", "none")
    limited = c.get("max_time_us") is not None or c.get("max_events") is not None
    if mode == "clock":
        return (mode, "none" if cm == "none" and not limited else "cutoff")
    if cm == "none":
        return (mode, "limit" if limited else "none")
    if cm == "conf":
        return (mode, "conf")
    table = c.get("table")
    if isinstance(table, list):
        return (mode, "calibrated-table" if len(table) > 1 else "calibrated-one")
    return (mode, "threshold")


def _parameters_text(doc) -> str:
    c = cutoff_of(doc)
    return json.dumps({k: v for k, v in c.items() if k != "mode"}, sort_keys=True) if len(c) > 1 else ""


def _topk_threshold(doc):
    """β of a top-k cutoff, or the mean of its calibrated table (finite entries); else None."""
    c = cutoff_of(doc)
    if c.get("mode") != "topk":
        return None
    table = c.get("table")
    if isinstance(table, list):
        values = [v for v in (num(x) for x in table) if v is not None]
        return float(np.mean(values)) if values else None
    return num(c.get("threshold"))


def colour_of(doc) -> str:
    return config_colour(family_of(doc), doc.get("profile"), _parameters_text(doc), num(doc.get("bin_us")),
                         doc.get("n_bins") if isinstance(doc.get("n_bins"), int) else None, _topk_threshold(doc))


def marker_of(doc) -> str:
    return config_marker(family_of(doc))


def bin_width_text(doc) -> str:
    """The clock setting: "1 ms bins", "1 bin per recording", "10 bins"; "" for event mode."""
    if doc.get("mode") != "clock":
        return ""
    if isinstance(doc.get("n_bins"), int) and num(doc.get("bin_us")) is None:
        n = doc["n_bins"]
        return "1 bin per recording" if n == 1 else f"{n} bins per recording"
    if num(doc.get("bin_us")) is not None:
        return f"{float(doc['bin_us']) / 1000:g} ms bins"
    return ""


def cutoff_text(doc) -> str:
    c = cutoff_of(doc)
    mode = c.get("mode", "none")
    limits = []
    if num(c.get("max_time_us")) is not None:
        limits.append(f"stop at {float(c['max_time_us']) / 1000:g} ms")
    if c.get("max_events") is not None:
        limits.append(f"stop after {c['max_events']} events")
    if mode == "none":
        return ", ".join(limits) or "no cutoff"
    name = {"topk": "top-k", "conf": "conf"}.get(mode, str(mode))
    table = c.get("table")
    eps = num(c.get("epsilon"))
    eps_text = f", ε={eps:g}" if eps is not None and table is not None else ""
    if isinstance(table, list):
        width = num(c.get("bin_width_us"))
        if len(table) > 1 and width:
            text = f"{name} calibrated per {width / 1000:g} ms{eps_text}"
        else:
            text = f"{name} calibrated, one threshold{eps_text}"
    elif mode == "conf" and c.get("threshold") is None and eps is not None:
        text = f"conf ε={eps:g}"
    elif num(c.get("threshold")) is not None:
        text = f"{name} {'β' if mode == 'topk' else 'threshold'}={float(c['threshold']):g}"
    else:
        text = f"{name} cutoff"
    return ", ".join([text] + limits)


def _model_name(doc) -> str:
    p = Path(str(doc.get("model", "")))
    return p.parent.name if p.stem == "model" and p.parent.name else p.stem


def describe(doc, docs=(), *, with_profile: bool | None = None) -> str:
    """A short label: mode (and clock setting), cutoff, and the profile / model when the
    documents in ``docs`` differ in them."""
    docs = list(docs) or [doc]
    parts = ["event" if doc.get("mode") != "clock" else f"clock {bin_width_text(doc)}".rstrip()]
    parts.append(cutoff_text(doc))
    profiles = {d.get("profile") for d in docs}
    if (with_profile if with_profile is not None else len(profiles) > 1) and doc.get("profile"):
        parts.append(str(doc["profile"]))
    if len({_model_name(d) for d in docs}) > 1 and doc.get("model"):
        parts.append(_model_name(doc))
    return ", ".join(parts)


def sample_arrays(doc):
    """(labels, predictions with -1 for none, decision_time_us, correct) from the per-sample
    records, or None when the document has none (or they lack labels)."""
    samples = doc.get("samples")
    if not isinstance(samples, list) or not samples:
        return None
    labels, preds, times, correct = [], [], [], []
    for s in samples:
        if not isinstance(s, dict) or not isinstance(s.get("label"), int):
            return None
        labels.append(s["label"])
        p = s.get("prediction")
        preds.append(p if isinstance(p, int) else -1)
        t = num(s.get("decision_time_us"))
        times.append(np.nan if t is None else t)
        correct.append(bool(s.get("correct", preds[-1] == labels[-1])))
    return (np.asarray(labels, np.int64), np.asarray(preds, np.int64), np.asarray(times, float),
            np.asarray(correct, bool))


def accuracy_interval(doc, confidence: float = 0.95) -> dict:
    """Accuracy with its Wilson interval: dict(accuracy, low, high, correct, n).

    From the document's own interval fields when present (``accuracy_low``/``accuracy_high`` or
    ``accuracy_interval``), else from the per-sample records, else from accuracy × n_samples."""
    acc = float(doc["accuracy"])
    arrays = sample_arrays(doc)
    if arrays is not None:
        n, k = int(arrays[3].size), int(arrays[3].sum())
    else:
        n = int(num(doc.get("n_samples")) or 0)
        k = int(round(acc * n))
    lo, hi = wilson_interval(k, n, confidence) if n else (math.nan, math.nan)
    given = doc.get("accuracy_interval") or doc.get("accuracy_ci")
    if isinstance(given, dict) and num(given.get("low")) is not None and num(given.get("high")) is not None \
            and confidence == 0.95:
        lo, hi = float(given["low"]), float(given["high"])
    elif isinstance(given, (list, tuple)) and len(given) == 2 and all(num(v) is not None for v in given) \
            and confidence == 0.95:
        lo, hi = float(given[0]), float(given[1])
    return {"accuracy": acc, "low": lo, "high": hi, "correct": k, "n": n}


def n_classes_of(doc, labels, preds) -> int:
    out = 0
    for s in doc.get("samples") or []:
        counts = s.get("output_counts") if isinstance(s, dict) else None
        if isinstance(counts, list):
            out = max(out, len(counts))
    return max(out, int(labels.max(initial=-1)) + 1, int(preds.max(initial=-1)) + 1)


def class_table(doc, confidence: float = 0.95):
    """Per-class rows (label, n, correct, accuracy, low, high, mean/median decision time) and the
    confusion matrix, from the per-sample records; None without them."""
    arrays = sample_arrays(doc)
    if arrays is None:
        return None
    labels, preds, times, _ = arrays
    k = n_classes_of(doc, labels, preds)
    rows = per_class(labels, preds, k, confidence)
    for r in rows:
        t = times[labels == r["label"]]
        t = t[np.isfinite(t)]
        r["mean_decision_us"] = float(t.mean()) if t.size else None
        r["median_decision_us"] = float(np.median(t)) if t.size else None
    return rows, confusion_matrix(labels, preds, k)

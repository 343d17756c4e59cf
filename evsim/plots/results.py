"""Reading ``evsim eval --json`` documents for figures and reports.

Documents are read defensively: older files lack intervals, per-class figures, ``complete`` or the
per-sample ``samples`` list; what a figure needs is computed from what is there (the accuracy
interval from the per-sample records when present, else from accuracy × n_samples). What is
there must be drawable: :func:`check_doc` refuses, naming the file and the field, every number a
figure or the report reads that is not a finite number in its range (docs/SEMANTICS.md#figures).
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
    if not isinstance(doc, dict) or doc.get("accuracy") is None:
        raise OptionError(f"{where} is not an `evsim eval --json` result (no accuracy)", option="RESULTS")
    if _finite(doc["accuracy"]) is None:
        raise OptionError(f"{where}: 'accuracy' is not a number ({_shown(doc['accuracy'])})", option="RESULTS")
    if not 0.0 <= float(doc["accuracy"]) <= 1.0:
        raise OptionError(f"{where}: accuracy {doc['accuracy']!r} is not in [0, 1]", option="RESULTS")
    _check_fields(doc, where)
    _check_anytime(doc, where)
    _check_consistency(doc, where)


#: most classes a result may name (a label of 10^8 would make a confusion matrix of 10^16 counts)
MAX_CLASSES = 10_000


def _text_ok(value) -> bool:
    return isinstance(value, str)


def _finite(v):
    """``v`` as a float when it is a JSON number (not a boolean, not a string) and finite, else None."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    try:
        x = float(v)
    except OverflowError:  # an integer of hundreds of digits
        return None
    return x if math.isfinite(x) else None


def _count(v, low: int = 0) -> bool:
    """Whether ``v`` is a JSON integer (not a boolean) in [low, 2**53)."""
    return isinstance(v, int) and not isinstance(v, bool) and low <= v < 2 ** 53


def _shown(v) -> str:
    """A value as the document spells it (JSON: null, true, NaN, Infinity), at most 40 characters."""
    if isinstance(v, str):
        return repr(v)[:40]
    try:
        return json.dumps(v)[:40]
    except (TypeError, ValueError, RecursionError):
        return str(v)[:40]


#: (what the value must be, test) of the numbers the figures and the report read
_TIME = ("a time in µs (a finite number >= 0)", lambda x: x is not None and 0.0 <= x < 2.0 ** 53)
_FRACTION = ("a fraction (a finite number in [0, 1])", lambda x: x is not None and 0.0 <= x <= 1.0)
_ACCURACY = ("an accuracy (a finite number in [0, 1])", lambda x: x is not None and 0.0 <= x <= 1.0)


def _number_of(value, rule, bad, field, *, null: bool = True):
    """``value`` as a float that passes ``rule`` (see :data:`_TIME`), None for null when ``null``;
    else OptionError naming ``field``."""
    if value is None and null:
        return None
    x = _finite(value)
    if not rule[1](x):
        bad(field, f"is {_shown(value)}, not {rule[0]}")
    return x


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
            if v is not None and (_finite(v) is None or abs(_finite(v)) > 1e30):
                bad(f"cutoff.table[{k}]", "is not a threshold (null or a finite number of magnitude <= 1e30)")
    fraction = doc.get("mean_events_fraction")
    if fraction is not None and (_finite(fraction) is None or not (_finite(fraction) == 0
                                                                   or 2.0 ** -53 <= _finite(fraction) <= 1)):
        bad("mean_events_fraction", f"is not a fraction of the events read ({_shown(fraction)})")
    _number_of(doc.get("mean_latency_us"), _TIME, bad, "mean_latency_us")
    _number_of(doc.get("synops_per_sample"), ("a number of operations (a finite number >= 0)",
                                              lambda x: x is not None and x >= 0.0), bad, "synops_per_sample")
    if doc.get("no_prediction") is not None and not _count(doc["no_prediction"]):
        bad("no_prediction", f"is not a count of samples ({_shown(doc['no_prediction'])})")
    if doc.get("model_hash") is not None and not _text_ok(doc["model_hash"]):
        bad("model_hash", "is not text")
    if doc.get("n_bins") is not None and not _count(doc["n_bins"], 1):
        bad("n_bins", f"is not a number of bins (an integer >= 1) ({_shown(doc['n_bins'])})")
    if isinstance(cutoff, dict):
        for key in ("threshold", "epsilon", "temperature"):
            _number_of(cutoff.get(key), ("a finite number", lambda x: x is not None), bad, f"cutoff.{key}")
        _number_of(cutoff.get("max_time_us"), _TIME, bad, "cutoff.max_time_us")
        _number_of(cutoff.get("bin_width_us"), _TIME, bad, "cutoff.bin_width_us")
        if cutoff.get("max_events") is not None and not _count(cutoff["max_events"]):
            bad("cutoff.max_events", f"is not a number of events (an integer >= 0) ({_shown(cutoff['max_events'])})")
    oct_ = doc.get("oct")
    if oct_ is not None and not isinstance(oct_, dict):
        bad("oct", "is not an oracle cutoff time summary")
    if isinstance(oct_, dict):
        _number_of(oct_.get("mean_us"), _TIME, bad, "oct.mean_us")
    for key in ("accuracy_interval", "accuracy_ci"):
        given = doc.get(key)
        if isinstance(given, dict):
            bounds = [(f"{key}.low", given.get("low")), (f"{key}.high", given.get("high"))]
        elif isinstance(given, (list, tuple)):
            bounds = [(f"{key}[{i}]", v) for i, v in enumerate(given)]
            if len(given) != 2:
                bad(key, f"is not an interval (low, high) ({_shown(given)})")
        elif given is None:
            continue
        else:
            bad(key, f"is not an interval ({_shown(given)})")
        lo, hi = (_number_of(v, _ACCURACY, bad, field) for field, v in bounds)
        acc = float(doc["accuracy"])
        if lo is not None and not lo <= acc:
            bad(bounds[0][0], f"{lo!r} lies above the accuracy {acc!r}: not an interval around it")
        if hi is not None and not acc <= hi:
            bad(bounds[1][0], f"{hi!r} lies below the accuracy {acc!r}: not an interval around it")
    for key in ("bin_us", "clock_bin_us"):
        v = doc.get(key)
        if v is not None and (_finite(v) is None or not 0 < _finite(v) < 2.0 ** 53):
            bad(key, f"is not a bin width in µs ({_shown(v)})")
    n = doc.get("n_samples")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or not 0 <= n < 2 ** 53):
        bad("n_samples", f"is not a count of samples ({_shown(n)})")
    samples = doc.get("samples")
    if samples is None:
        return
    if not isinstance(samples, list):
        bad("samples", "is not a list of sample records")
    if n is not None and len(samples) != n:
        bad("n_samples", f"is {n} but 'samples' holds {len(samples)} sample records")
    for k, r in enumerate(samples):
        if not isinstance(r, dict):
            bad(f"samples[{k}]", "is not a sample record")
        for field, low in (("label", 0), ("prediction", -1)):  # (null: unlabelled / no prediction)
            v = r.get(field)
            if v is not None and not (isinstance(v, int) and not isinstance(v, bool) and low <= v < MAX_CLASSES):
                bad(f"samples[{k}].{field}", f"is not a class index below {MAX_CLASSES:,} ({_shown(v)})")
        if r.get("correct") is not None and not isinstance(r["correct"], bool):
            bad(f"samples[{k}].correct", f"is neither true nor false ({_shown(r['correct'])})")
        if isinstance(r.get("correct"), bool) and isinstance(r.get("label"), int) \
                and r["correct"] != (r.get("prediction") == r["label"]):
            bad(f"samples[{k}].correct", f"is {_shown(r['correct'])} for prediction {_shown(r.get('prediction'))} "
                                         f"and label {r['label']}")
        _number_of(r.get("decision_time_us"), _TIME, bad, f"samples[{k}].decision_time_us")
        counts = r.get("output_counts")
        if isinstance(counts, list) and len(counts) > MAX_CLASSES:
            bad(f"samples[{k}].output_counts", f"has {len(counts):,} outputs (at most {MAX_CLASSES:,})")


def _check_anytime(doc: dict, where: str) -> None:
    """The anytime curves (each value finite and in range, the axis not decreasing, as long as its
    axis) and the replayed sweep (accuracy, β, events fraction, latency, speed-up): what the
    accuracy figure draws."""
    def bad(field, why):
        raise OptionError(f"{where}: 'anytime.{field}' {why}", option="RESULTS")

    anytime = doc.get("anytime")
    if anytime is None:
        return
    if not isinstance(anytime, dict):
        raise OptionError(f"{where}: 'anytime' is not an anytime summary", option="RESULTS")
    for axis, curve, rule in (("time_us", "accuracy_vs_time", _TIME), ("fraction", "accuracy_vs_fraction", _FRACTION)):
        xs, ys = anytime.get(axis), anytime.get(curve)
        if xs is None and ys is None:
            continue
        for name, values in ((axis, xs), (curve, ys)):
            if not isinstance(values, list):
                bad(name, f"is not a list of numbers ({_shown(values)})")
        if len(xs) != len(ys):
            bad(curve, f"has {len(ys)} values for the {len(xs)} of 'anytime.{axis}'")
        previous = -math.inf
        for k, v in enumerate(xs):
            x = _number_of(v, rule, bad, f"{axis}[{k}]", null=False)
            if x < previous:
                bad(f"{axis}[{k}]", f"is {x!r}, less than the value before it ({previous!r}): the axis must not "
                                    "decrease")
            previous = x
        for k, v in enumerate(ys):
            _number_of(v, _ACCURACY, bad, f"{curve}[{k}]", null=False)
    sweep = anytime.get("sweep")
    if sweep is None:
        return
    if not isinstance(sweep, list):
        bad("sweep", f"is not a list of sweep entries ({_shown(sweep)})")
    for k, s in enumerate(sweep):
        if not isinstance(s, dict):
            bad(f"sweep[{k}]", f"is not a sweep entry ({_shown(s)})")
        _number_of(s.get("accuracy"), _ACCURACY, bad, f"sweep[{k}].accuracy", null=False)
        _number_of(s.get("beta"), ("a threshold (a finite number)", lambda x: x is not None), bad, f"sweep[{k}].beta")
        _number_of(s.get("mean_events_fraction"), _FRACTION, bad, f"sweep[{k}].mean_events_fraction")
        _number_of(s.get("mean_latency_us"), _TIME, bad, f"sweep[{k}].mean_latency_us")
        speedup = s.get("speedup")
        if speedup is not None and speedup != math.inf:  # (inf: eval's speed-up of a fraction 0)
            _number_of(speedup, ("a speed-up (a number > 0, or Infinity)", lambda x: x is not None and x > 0),
                       bad, f"sweep[{k}].speedup")


def _check_consistency(doc: dict, where: str) -> None:
    """The accuracy is the share of correct per-sample records when the document has them (the
    figures take the interval from those records and the accuracy from the document)."""
    arrays = sample_arrays(doc)
    if arrays is None:
        return
    k, n = int(arrays[3].sum()), int(arrays[3].size)
    acc = float(doc["accuracy"])
    if abs(acc - k / n) > 1e-9:
        raise OptionError(f"{where}: 'accuracy' {acc!r} is not the share of correct records in 'samples' "
                          f"({k} of {n})", option="RESULTS")


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
        c = s.get("correct")
        correct.append(c if isinstance(c, bool) else preds[-1] == labels[-1])  # (null: from the label)
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

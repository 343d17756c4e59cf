"""One self-contained HTML page of evaluation results: summary table, figures (inline SVG), per-class
tables and figures, and the provenance of every number (files with their sha256, model hash, data,
options, evsim version). No external resource is referenced; the page is deterministic (no date)."""

from __future__ import annotations

import hashlib
import html
import math
import tempfile
from pathlib import Path

from ..errors import EvsimError, OptionError
from ..analysis.records import write_text_atomic
from .accuracy import plot_accuracy, plot_temporal
from .classes import plot_classes
from .results import (accuracy_interval, bin_width_text, check_doc, class_table, cutoff_text, describe, is_complete,
                      num)

__all__ = ["write_report", "report_html", "summary_rows"]

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2em auto; max-width: 1100px;
       padding: 0 1em; color: #222; line-height: 1.4; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f3f3f3; } td.text, th.text { text-align: left; }
tr.incomplete td { background: #fff4e0; }
figure { margin: 1em 0; } figure svg, figure img { width: 100%; height: auto; }
#provenance code { word-break: break-all; font-size: 0.8em; }
figcaption { font-size: 0.85em; color: #555; }
code { font-size: 0.9em; } details { margin: 0.6em 0; }
"""


def _pct(v, digits=2) -> str:
    return "–" if v is None or not math.isfinite(v) else f"{100.0 * v:.{digits}f} %"


def summary_rows(docs, confidence: float = 0.95) -> list:
    """One row per result: the numbers the summary table shows (unformatted)."""
    rows = []
    for d in docs:
        ci = accuracy_interval(d, confidence)
        frac = num(d.get("mean_events_fraction"))
        lat = num(d.get("mean_latency_us"))
        rows.append({
            "configuration": describe(d, docs), "file": Path(d.get("_path", "")).name, "n": ci["n"],
            "accuracy": ci["accuracy"], "low": ci["low"], "high": ci["high"], "events_fraction": frac,
            "speedup": 1.0 / frac if frac else None, "latency_ms": lat / 1000.0 if lat is not None else None,
            "synops": num(d.get("synops_per_sample")), "complete": is_complete(d),
            "no_prediction": d.get("no_prediction"),
        })
    return rows


def _fmt(v, spec: str, unit: str = "") -> str:
    return "–" if v is None or not math.isfinite(v) else f"{v:{spec}}{unit}"


def _summary_table(rows) -> str:
    head = ("<tr><th class='text'>configuration</th><th class='text'>file</th><th>samples</th><th>accuracy</th>"
            "<th>95 % interval</th><th>events consumed</th><th>speed-up</th><th>mean latency</th>"
            "<th>SynOps / sample</th><th class='text'>complete</th></tr>")
    body = []
    for r in rows:
        cells = [
            f"<td class='text'>{html.escape(r['configuration'])}</td>",
            f"<td class='text'><code>{html.escape(r['file'])}</code></td>",
            f"<td data-key='n'>{r['n']}</td>",
            f"<td data-key='accuracy'>{_pct(r['accuracy'])}</td>",
            f"<td data-key='interval'>{_pct(r['low'], 1)} – {_pct(r['high'], 1)}</td>",
            f"<td data-key='events'>{_pct(r['events_fraction'], 1)}</td>",
            f"<td data-key='speedup'>{_fmt(r['speedup'], '.2f', '×')}</td>",
            f"<td data-key='latency'>{_fmt(r['latency_ms'], '.1f', ' ms')}</td>",
            f"<td data-key='synops'>{_fmt(r['synops'], '.3g')}</td>",
            f"<td class='text' data-key='complete'>{'yes' if r['complete'] else 'no (interrupted)'}</td>",
        ]
        cls = "" if r["complete"] else " class='incomplete'"
        body.append(f"<tr{cls}>" + "".join(cells) + "</tr>")
    return f"<table id='summary'>{head}{''.join(body)}</table>"


def _class_table(doc, index: int) -> str:
    table = class_table(doc)
    if table is None:
        return "<p>No per-sample records in this file: no per-class results.</p>"
    rows, _ = table
    head = ("<tr><th>class</th><th>samples</th><th>correct</th><th>accuracy</th><th>95 % interval</th>"
            "<th>median decision latency</th></tr>")
    body = []
    for r in rows:
        med = r["median_decision_us"]
        body.append(f"<tr><td>{r['label']}</td><td>{r['n']}</td><td>{r['correct']}</td>"
                    f"<td>{_pct(r['accuracy'])}</td><td>{_pct(r['low'], 1)} – {_pct(r['high'], 1)}</td>"
                    f"<td>{_fmt(None if med is None else med / 1000.0, '.1f', ' ms')}</td></tr>")
    return f"<table class='classes' id='classes-{index}'>{head}{''.join(body)}</table>"


def _svg_of(draw, folder: Path, name: str) -> str:
    """Draw a figure into an SVG file and return its markup (the XML prologue removed)."""
    path = folder / f"{name}.svg"
    draw(path)
    text = path.read_text(encoding="utf-8")
    return text[text.index("<svg"):]


def _provenance(docs) -> str:
    from .. import __version__

    rows = []
    for d in docs:
        path = d.get("_path")
        digest = d.get("_sha256", "")
        c = [("file", f"<code>{html.escape(str(path or '(in memory)'))}</code>"),
             ("sha256", f"<code>{html.escape(digest)}</code>"),
             ("model", html.escape(str(d.get("model", "–")))),
             ("model hash", f"<code>{html.escape(str(d.get('model_hash', '–')))}</code>"),
             ("data", html.escape(str(d.get("data", "–")))),
             ("mode", html.escape(str(d.get("mode", "event")) + (f", {bin_width_text(d)}" if bin_width_text(d) else ""))),
             ("profile", html.escape(str(d.get("profile", "–")))),
             ("precision", html.escape(str(d.get("precision", "–")))),
             ("cutoff", html.escape(cutoff_text(d))),
             ("complete", "yes" if is_complete(d) else "no (interrupted)")]
        rows.append("<tr>" + "".join(f"<td class='text'>{v}</td>" for _, v in c) + "</tr>")
    head = "<tr>" + "".join(f"<th class='text'>{k}</th>" for k in
                            ("file", "sha256", "model", "model hash", "data", "mode", "profile", "precision",
                             "cutoff", "complete")) + "</tr>"
    return (f"<p>evsim {html.escape(__version__)}; every number on this page is read from the files below.</p>"
            f"<table id='provenance'>{head}{''.join(rows)}</table>")


def report_html(results, *, title: str = "evsim evaluation report", confidence: float = 0.95) -> str:
    """The HTML of the report for ``results`` (eval documents, ``_path``/``_sha256`` optional)."""
    docs = [results] if isinstance(results, dict) else list(results)
    if not docs:
        raise OptionError("no results to report", option="RESULTS")
    for i, d in enumerate(docs):
        check_doc(d, d.get("_path", f"result {i + 1}") if isinstance(d, dict) else f"result {i + 1}")
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>"]
    incomplete = [d for d in docs if not is_complete(d)]
    if incomplete:
        parts.append(f"<p class='warning'><strong>{len(incomplete)} of {len(docs)} results come from interrupted "
                     f"evaluations</strong> (marked below); their numbers cover only the samples finished.</p>")
    parts.append("<h2>Summary</h2>")
    parts.append(_summary_table(summary_rows(docs, confidence)))
    with tempfile.TemporaryDirectory(prefix="evsim-report-") as tmp:
        folder = Path(tmp)
        parts.append("<h2>Accuracy, latency and events consumed</h2>")
        svg = _svg_of(lambda p: plot_accuracy(docs, p, confidence=confidence, title=""), folder, "accuracy")
        parts.append(f"<figure id='fig-accuracy'>{svg}<figcaption>Each marker is one result with its "
                     f"{int(confidence * 100)} % Wilson interval; lines are anytime curves.</figcaption></figure>")
        clock = [d for d in docs if d.get("mode") == "clock" and cutoff_text(d) == "no cutoff"]
        plain = [d for d in docs if cutoff_text(d) == "no cutoff"]
        if clock and len(plain) >= 2 and len({d.get("model_hash") for d in plain}) == 1:
            svg = _svg_of(lambda p: plot_temporal(plain, p, confidence=confidence, title="", size="two-column"),
                          folder, "temporal")
            parts.append("<h2>Temporal flexibility</h2>")
            parts.append(f"<figure id='fig-temporal'>{svg}<figcaption>Accuracy across clock bin widths; "
                         f"the event-driven result as a line with its interval.</figcaption></figure>")
        parts.append("<h2>Per class</h2>")
        for i, d in enumerate(docs):
            label = html.escape(describe(d, docs))
            parts.append(f"<details{' open' if i == 0 else ''}><summary>{label}</summary>")
            parts.append(_class_table(d, i))
            if class_table(d) is not None:
                svg = _svg_of(lambda p, d=d: plot_classes(d, p, confidence=confidence, title=""), folder,
                              f"classes{i}")
                parts.append(f"<figure class='fig-classes'>{svg}<figcaption>Confusion matrix, accuracy per class "
                             f"and decision latency per class of {label}.</figcaption></figure>")
            parts.append("</details>")
    parts.append("<h2>Provenance</h2>")
    parts.append(_provenance(docs))
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(results, path, **options) -> Path:
    """Write :func:`report_html` to ``path`` (.html); returns the path."""
    path = Path(str(path))
    if path.suffix.lower() not in (".html", ".htm"):
        raise OptionError(f"cannot write report {path}: use a .html file name", option="--output")
    text = report_html(results, **options)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, text, errors="replace")  # (a lone surrogate in a document becomes "?")
    except OSError as exc:
        raise EvsimError(f"cannot write {path} ({exc.strerror or exc})") from None
    return path


def file_digest(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()

"""Accuracy against what it costs, from ``evsim eval --json`` documents.

* :func:`plot_accuracy` — accuracy vs mean decision latency, vs fraction of input events
  consumed, and speed-up vs accuracy. Every evaluated configuration is one marker with its 95 %
  Wilson interval; anytime curves (the accuracy available at each time / fraction of events, on
  a fine grid) are the only lines; a replayed threshold sweep is drawn as its measured points.
* :func:`plot_temporal` — temporal flexibility of one model: accuracy (and the mean oracle
  cutoff time) across clock bin widths, with the event-driven result as the limit of fine bins.
* :func:`accuracy_series` — what :func:`plot_accuracy` draws, as plain data (for tests/reports).
"""

from __future__ import annotations

import math
import textwrap

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from ..analysis.statistics import wilson_interval
from ..errors import OptionError
from .results import (accuracy_interval, bin_width_text, check_doc, colour_of, cutoff_of, describe, family_of,
                      is_complete, marker_of, num)
from .style import check_figure_path, figure_width, new_figure, paper_style, save_figure

__all__ = ["plot_accuracy", "plot_temporal", "accuracy_series", "PANELS"]

#: The panels of :func:`plot_accuracy`, in order.
PANELS = ("latency", "fraction", "speedup")

_DEFAULT_LABELS = {
    "latency": "mean decision latency (ms)",
    "fraction": "input events consumed (mean fraction)",
    "accuracy": "accuracy",
    "speedup": "speed-up (1 / events consumed)",
}
_TITLES = {"latency": "accuracy vs latency", "fraction": "accuracy vs events consumed",
           "speedup": "speed-up vs accuracy"}


# --------------------------------------------------------------------------------------------
# the data drawn
# --------------------------------------------------------------------------------------------


def _check_docs(results, names):
    docs = [results] if isinstance(results, dict) else list(results)
    if not docs:
        raise OptionError("no results to plot")
    for i, d in enumerate(docs):
        check_doc(d, d.get("_path", f"result {i + 1}") if isinstance(d, dict) else f"result {i + 1}")
    names = list(names or [])
    if len(names) > len(docs):
        raise OptionError(f"{len(names)} series names for {len(docs)} results", option="--name")
    names += [None] * (len(docs) - len(names))
    return docs, names


def _incomplete_note(doc) -> str:
    return "" if is_complete(doc) else f" [incomplete: {int(num(doc.get('n_samples')) or 0)} samples]"


def accuracy_series(results, names=None, confidence: float = 0.95) -> dict:
    """The points, anytime curves and sweeps :func:`plot_accuracy` draws, as plain data.

    Returns dict(points=[...], curves=[...], sweeps=[...]):

    * point: label, colour, marker, accuracy, low, high (Wilson), n, latency_ms, fraction,
      speedup, clock (short clock setting or ""), complete; results with identical numbers and
      the same configuration apart from the profile are one point (label "… (speck = sinabs)").
    * curve: label, colour, n, time_ms, accuracy_vs_time, fraction, accuracy_vs_fraction.
    * sweep: label, colour, accuracy, latency_ms, fraction, speedup (one entry per β).
    """
    docs, names = _check_docs(results, names)

    # ---- results: one point per configuration; identical results of several profiles merge ----
    points, by_key = [], {}
    for d, name in zip(docs, names):
        ci = accuracy_interval(d, confidence)
        lat = num(d.get("mean_latency_us"))
        frac = num(d.get("mean_events_fraction"))
        if lat is None and frac is None:
            raise OptionError(f"{d.get('_path', 'a result')} has neither mean_latency_us nor mean_events_fraction: "
                              f"nothing to place it at", option="RESULTS")
        key = (family_of(d), bin_width_text(d), describe(d, with_profile=False), ci["correct"], ci["n"], lat, frac,
               str(d.get("model", "")), is_complete(d))
        if key in by_key and name is None and by_key[key]["name"] is None:
            p = by_key[key]
            if d.get("profile") and d.get("profile") not in p["profiles"]:
                p["profiles"].append(d["profile"])
            continue
        p = {"name": name, "doc": d, "profiles": [d["profile"]] if d.get("profile") else [],
             "colour": colour_of(d), "marker": marker_of(d), "accuracy": ci["accuracy"], "low": ci["low"],
             "high": ci["high"], "n": ci["n"], "latency_ms": lat / 1000.0 if lat is not None else math.nan,
             "fraction": frac if frac is not None else math.nan,
             "speedup": 1.0 / frac if frac else math.nan, "complete": is_complete(d),
             "clock": _short_clock(d)}
        points.append(p)
        by_key[key] = p
    n_profiles = len({d.get("profile") for d in docs})
    for p in points:
        d = p.pop("doc")
        if p["name"] is not None:
            label = p["name"]
        else:
            label = describe(d, docs, with_profile=False)
            if len(p["profiles"]) > 1:
                label += f" ({' = '.join(p['profiles'])}, identical)"
            elif n_profiles > 1 and p["profiles"]:
                label += f", {p['profiles'][0]}"
        p["label"] = label + _incomplete_note(d)
        p.pop("name")

    # ---- anytime curves: event-driven, and of clock runs only the finest bin per model ----
    def model_key(d):
        return d.get("profile"), str(d.get("model", ""))

    def width_of(d):
        return num(d.get("bin_us")) or math.inf

    finest: dict = {}
    for d in docs:
        if d.get("mode") == "clock":
            finest[model_key(d)] = min(width_of(d), finest.get(model_key(d), math.inf))
    curves, sweeps, seen_c, seen_s = [], [], {}, {}
    for d in docs:
        if d.get("mode") == "clock" and width_of(d) != finest[model_key(d)]:
            continue
        anytime = d.get("anytime") if isinstance(d.get("anytime"), dict) else {}
        base = {**d, "cutoff": {"mode": "none"}}
        what = "event" if d.get("mode") != "clock" else f"clock {bin_width_text(d)}"
        t = _floats(anytime.get("time_us"))
        at = _floats(anytime.get("accuracy_vs_time"))
        f = _floats(anytime.get("fraction"))
        af = _floats(anytime.get("accuracy_vs_fraction"))
        if t.size != at.size or not _is_accuracy(at) or not np.all(np.isfinite(t)):
            t = at = np.zeros(0)  # (a curve that is not one: left out; check_doc refuses such documents)
        if f.size != af.size or not _is_accuracy(af) or not np.all(np.isfinite(f)):
            f = af = np.zeros(0)
        if t.size or f.size:
            key = (what, str(d.get("model", "")), t.tobytes(), at.tobytes(), f.tobytes(), af.tobytes())
            if key in seen_c:
                _add_profile(seen_c[key], d)
            else:
                seen_c[key] = {"what": what, "profiles": [d["profile"]] if d.get("profile") else [],
                               "colour": colour_of(base), "n": int(num(d.get("n_samples")) or 0),
                               "time_ms": t / 1000.0, "accuracy_vs_time": at, "fraction": f,
                               "accuracy_vs_fraction": af, "complete": is_complete(d)}
                curves.append(seen_c[key])
        sweep = [s for s in (anytime.get("sweep") or []) if isinstance(s, dict) and num(s.get("accuracy")) is not None]
        if sweep:
            sweep.sort(key=lambda s: num(s.get("beta")) or 0.0)
            acc = np.array([num(s.get("accuracy")) for s in sweep], float)
            lat = np.array([num(s.get("mean_latency_us")) or np.nan for s in sweep], float) / 1000.0
            fr = np.array([num(s.get("mean_events_fraction")) or np.nan for s in sweep], float)
            spd = np.array([num(s.get("speedup")) or np.nan for s in sweep], float)
            spd = np.where(np.isfinite(spd), spd, np.where(fr > 0, 1.0 / np.where(fr > 0, fr, 1.0), np.nan))
            key = (what, str(d.get("model", "")), acc.tobytes(), lat.tobytes(), fr.tobytes())
            if key in seen_s:
                _add_profile(seen_s[key], d)
            else:
                seen_s[key] = {"what": what, "profiles": [d["profile"]] if d.get("profile") else [],
                               "colour": colour_of(base), "accuracy": acc, "latency_ms": lat, "fraction": fr,
                               "speedup": spd}
                sweeps.append(seen_s[key])
    for c in curves:
        c["label"] = f"anytime, {c.pop('what')}" + _profile_note(c.pop("profiles"), n_profiles)
        if not c.pop("complete"):
            c["label"] += " [incomplete]"
    for s in sweeps:
        s["label"] = f"top-k β sweep (replayed), {s.pop('what')}" + _profile_note(s.pop("profiles"), n_profiles)
    return {"points": points, "curves": curves, "sweeps": sweeps}


def _add_profile(entry, d):
    if d.get("profile") and d["profile"] not in entry["profiles"]:
        entry["profiles"].append(d["profile"])


def _profile_note(profiles, n_profiles) -> str:
    if len(profiles) > 1:
        return f" ({' = '.join(profiles)}, identical)"
    if n_profiles > 1 and profiles:
        return f", {profiles[0]}"
    return ""


def _floats(values) -> np.ndarray:
    try:
        out = np.asarray([np.nan if v is None else float(v) for v in (values or [])], dtype=float)
    except (TypeError, ValueError, OverflowError):
        return np.zeros(0)
    return out


def _is_accuracy(values: np.ndarray) -> bool:
    """Every value an accuracy in [0, 1] (NaN: no value there)."""
    known = values[~np.isnan(values)]
    return bool(np.all((known >= 0.0) & (known <= 1.0)))


def _short_clock(d) -> str:
    if d.get("mode") != "clock":
        return ""
    if isinstance(d.get("n_bins"), int) and num(d.get("bin_us")) is None:
        return "1 bin" if d["n_bins"] == 1 else f"{d['n_bins']} bins"
    w = num(d.get("bin_us"))
    return f"{w / 1000:g} ms" if w is not None else "clock"


# --------------------------------------------------------------------------------------------
# axis limits fitted to the data
# --------------------------------------------------------------------------------------------


def _accuracy_limits(points) -> tuple:
    """From a little below the lowest interval to a little above the highest (≤ 100 %)."""
    lows = [p["low"] if math.isfinite(p["low"]) else p["accuracy"] for p in points]
    highs = [p["high"] if math.isfinite(p["high"]) else p["accuracy"] for p in points]
    lo, hi = min(lows), max(highs)
    span = max(hi - lo, 0.02)
    lo = max(0.0, math.floor((lo - 0.08 * span) * 100.0) / 100.0)
    hi = min(1.0, math.ceil((hi + 0.08 * span) * 100.0) / 100.0)
    return lo, max(hi, lo + 0.01)


def _x_limits(values, log: bool, upper: float | None = None) -> tuple:
    v = np.asarray([x for x in values if x is not None and math.isfinite(x) and (x > 0 or not log)], float)
    if not v.size:
        return (0.1, 1.0) if log else (0.0, 1.0)
    lo, hi = float(v.min()), float(v.max())
    if log:
        lo, hi = lo / 1.3, hi * 1.3
        if hi / lo < 3:  # a log axis needs some range to show its ticks
            mid = math.sqrt(lo * hi)
            lo, hi = mid / 1.8, mid * 1.8
    else:
        lo, hi = 0.0, hi * 1.05 if hi > 0 else 1.0
    if upper is not None:
        hi = min(hi, upper)
    return lo, hi


def _auto_log(values) -> bool:
    v = np.asarray([x for x in values if x is not None and math.isfinite(x) and x > 0], float)
    return bool(v.size) and float(v.max() / v.min()) > 8.0


def _check_lim(lim, option):
    if lim is None:
        return None
    try:
        lo, hi = (float(v) for v in lim)
    except (TypeError, ValueError):
        raise OptionError(f"needs two numbers, got {lim!r}", option=option) from None
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        raise OptionError(f"needs LOW < HIGH, got {lo:g} {hi:g}", option=option)
    return lo, hi


# --------------------------------------------------------------------------------------------
# the figure
# --------------------------------------------------------------------------------------------


def plot_accuracy(results, path, *, title=None, names=None, panels=None, size="two-column", accuracy_lim=None,
                  latency_lim=None, fraction_lim=None, log_x=None, labels=None, confidence: float = 0.95) -> Figure:
    """Accuracy vs mean decision latency, vs fraction of input events, and speed-up vs
    accuracy, from ``evsim eval --json`` documents, written to ``path`` (.pdf, .svg, .png).

    Each result is one marker with its Wilson interval (``confidence``); its colour comes from
    its configuration (:func:`~evsim.plots.style.config_colour`), so it is the same in every
    figure. Anytime curves are lines with their interval as a band; a replayed threshold sweep
    is drawn as its measured points only; clock-driven settings are separate markers labelled
    with their bin width. Results of an interrupted evaluation say so in the legend.

    Args:
        results: eval documents (dicts).
        names: series names replacing the automatic labels, in the order of ``results``.
        panels: a subset of :data:`PANELS` (default: all three, without "speedup" when no
            result consumed less than all events).
        size: "two-column" (7.2 in, panels side by side), "one-column" (3.5 in, panels stacked)
            or a width in inches.
        accuracy_lim, latency_lim (ms), fraction_lim: (low, high) axis limits; default: fitted
            to the data (accuracy zoomed to the results' intervals). Results below the accuracy
            range are drawn on its lower edge as ▼ with their value.
        log_x: log scale for latency / fraction / speed-up (default: when the data span > 8×).
        labels: axis labels replacing the defaults, keys "latency", "fraction", "accuracy", "speedup".

    Returns:
        The figure; its axes are labelled by panel name (``ax.get_label()``).
    """
    check_figure_path(path)
    width = figure_width(size)
    series = accuracy_series(results, names, confidence)
    accuracy_lim = _check_lim(accuracy_lim, "--accuracy-lim")
    latency_lim = _check_lim(latency_lim, "--latency-lim")
    fraction_lim = _check_lim(fraction_lim, "--fraction-lim")
    labels = {**_DEFAULT_LABELS, **(labels or {})}
    if panels is None:
        panels = list(PANELS)
        if all(not (p["fraction"] < 1.0) for p in series["points"]) and not series["sweeps"]:
            panels.remove("speedup")
    panels = list(dict.fromkeys(panels))
    unknown = [p for p in panels if p not in PANELS]
    if unknown or not panels:
        raise OptionError(f"panels must be among {', '.join(PANELS)}, got {', '.join(unknown) or 'none'}",
                          option="--panels")
    with paper_style():
        fig = _draw_accuracy(series, panels, width, title, accuracy_lim, latency_lim, fraction_lim, log_x, labels,
                             results)
        save_figure(fig, path)
    return fig


def _draw_accuracy(series, panels, width, title, acc_lim, lat_lim, frac_lim, log_x, labels, results) -> Figure:
    """The figure: axes per panel, anytime curves, sweeps, results, axes formats, legend, title."""
    points, curves, sweeps = series["points"], series["curves"], series["sweeps"]
    legend_cols = 1 if width < 5.0 else 2
    fig, axes = _figure_with_panels(panels, width, len(points) + len(curves) + len(sweeps), legend_cols)
    ax_of = dict(zip(panels, axes))
    lo, hi = acc_lim or _accuracy_limits(points)
    lat_vals, frac_vals, spd_vals = _x_values(series, lo)
    log_lat = _auto_log(lat_vals) if log_x is None else bool(log_x)
    log_frac = _auto_log(frac_vals) if log_x is None else bool(log_x)
    log_spd = _auto_log(spd_vals + [1.0]) if log_x is None else bool(log_x)
    _draw_curves(ax_of, curves, log_lat, log_frac)
    _draw_sweeps(ax_of, sweeps)
    notes = _draw_points(ax_of, points, lo)
    for panel, ax in ax_of.items():
        ax.grid(alpha=0.3, which="major")
        ax.set_title(_TITLES[panel])
        if panel == "speedup":
            _format_speedup_axes(ax, labels, lo, hi, spd_vals, log_spd)
        else:
            _format_accuracy_axes(ax, panel, labels, lo, hi, lat_vals if panel == "latency" else frac_vals,
                                  log_lat if panel == "latency" else log_frac,
                                  lat_lim if panel == "latency" else frac_lim, bool(notes[panel]))
    _legend(fig, axes, curves + sweeps + points, legend_cols)
    fig.draw_without_rendering()  # final axes positions, for placing the clock labels in points
    for panel, ax in ax_of.items():
        _place_notes(ax, notes[panel])
    if title is None:
        docs = [results] if isinstance(results, dict) else list(results)
        ns = {d.get("n_samples") for d in docs}
        title = "Accuracy, latency and events consumed" + (f" ({ns.pop()} samples, 95 % Wilson intervals)"
                                                          if len(ns) == 1 else " (95 % Wilson intervals)")
    if title:
        fig.suptitle(wrap_title(title, width))
    return fig


def _figure_with_panels(panels, width, n_legend, legend_cols) -> tuple:
    """The figure and one axes per panel: side by side, or stacked in a narrow figure."""
    n = len(panels)
    legend_h = 0.14 * math.ceil(n_legend / legend_cols) + 0.15
    if width < 5.0:
        fig = new_figure(width, 2.3 * n + legend_h + 0.3)
        axes = fig.subplots(n, 1, squeeze=False)[:, 0]
    else:
        fig = new_figure(width, 2.55 + legend_h + 0.3)
        axes = fig.subplots(1, n, squeeze=False)[0]
    for name, ax in zip(panels, axes):
        ax.set_label(name)
    return fig, axes


def _x_values(series, lo) -> tuple:
    """The latencies, fractions and speed-ups that lie inside the accuracy range (for the x ranges)."""
    points, curves, sweeps = series["points"], series["curves"], series["sweeps"]
    lat_vals = [p["latency_ms"] for p in points]
    frac_vals = [p["fraction"] for p in points]
    spd_vals = [p["speedup"] for p in points if p["accuracy"] >= lo]
    for c in curves:
        inside = c["accuracy_vs_time"] >= lo
        lat_vals += c["time_ms"][inside & (c["time_ms"] > 0)].tolist()
        inside = c["accuracy_vs_fraction"] >= lo
        frac_vals += c["fraction"][inside & (c["fraction"] > 0)].tolist()
    for s in sweeps:
        inside = s["accuracy"] >= lo
        lat_vals += s["latency_ms"][inside].tolist()
        frac_vals += s["fraction"][inside].tolist()
        spd_vals += s["speedup"][inside].tolist()
    return lat_vals, frac_vals, spd_vals


def _x_of(panel, d: dict):
    return {"latency": d["latency_ms"], "fraction": d["fraction"]}[panel]


def _draw_curves(ax_of, curves, log_lat, log_frac) -> None:
    """Anytime curves with their Wilson band."""
    for c in curves:
        for panel, xs, ys in (("latency", c["time_ms"], c["accuracy_vs_time"]),
                              ("fraction", c["fraction"], c["accuracy_vs_fraction"]),
                              ("speedup", None, None)):
            ax = ax_of.get(panel)
            if ax is None:
                continue
            if panel == "speedup":
                ok = c["fraction"] > 0
                xs, ys = c["accuracy_vs_fraction"][ok], 1.0 / c["fraction"][ok]
                ax.plot(xs, ys, color=c["colour"], linewidth=1.1, label=c["label"], zorder=2)
                continue
            if not xs.size:
                continue
            ok = xs > 0 if (log_lat if panel == "latency" else log_frac) else np.ones(xs.size, bool)
            xs, ys = xs[ok], ys[ok]
            ax.plot(xs, ys, color=c["colour"], linewidth=1.1, label=c["label"], zorder=2)
            if c["n"]:
                band = np.array([wilson_interval(int(round(a * c["n"])), c["n"]) for a in ys]).reshape(-1, 2)
                ax.fill_between(xs, band[:, 0], band[:, 1], color=c["colour"], alpha=0.08, linewidth=0, zorder=1)


def _draw_sweeps(ax_of, sweeps) -> None:
    """Cutoff sweeps: the measured points only."""
    for s in sweeps:
        style = dict(linestyle="none", marker="o", markersize=2.6, markerfacecolor="white",
                     markeredgecolor=s["colour"], markeredgewidth=0.7, color=s["colour"], label=s["label"], zorder=3)
        for panel in ("latency", "fraction"):
            if panel in ax_of:
                ax_of[panel].plot(_x_of(panel, s), s["accuracy"], **style)
        if "speedup" in ax_of:
            ax_of["speedup"].plot(s["accuracy"], s["speedup"], **style)


def _draw_points(ax_of, points, lo) -> dict:
    """The results with their intervals (▼ on the lower edge when off the zoomed range); returns
    the labels to place next to the clock settings without cutoff, per panel."""
    notes = {name: [] for name in ax_of}
    for p in points:
        style = dict(fmt=p["marker"], color=p["colour"], markeredgecolor="black", markeredgewidth=0.5,
                     markersize=7.5 if p["marker"] == "*" else 4.8, elinewidth=0.9, capsize=1.8, capthick=0.8,
                     ecolor=p["colour"] if p["colour"] != "#000000" else "0.25", label=p["label"],
                     zorder=5 if p["clock"] else 6)
        if not p["complete"]:
            style.update(markerfacecolor="white")
        err = [[p["accuracy"] - p["low"]], [p["high"] - p["accuracy"]]] if math.isfinite(p["low"]) else None
        for panel in ("latency", "fraction"):
            ax = ax_of.get(panel)
            if ax is None or not math.isfinite(_x_of(panel, p)):
                continue
            if p["accuracy"] < lo:  # off the zoomed range: ▼ on the lower edge with the value
                ax.plot([_x_of(panel, p)], [lo], marker="v", color=p["colour"], markeredgecolor="black",
                        markeredgewidth=0.5, markersize=5, linestyle="none", clip_on=False, zorder=7,
                        label=p["label"], gid="off-scale")
                ax.annotate(f"{100 * p['accuracy']:.1f} %", (_x_of(panel, p), lo), xytext=(-4, 3),
                            textcoords="offset points", ha="right", va="bottom", fontsize=6, color="0.2")
                continue
            ax.errorbar([_x_of(panel, p)], [p["accuracy"]], yerr=err, **style)
            if panel == "latency" and p["clock"] and p["marker"] == "s":  # the clock settings without cutoff
                notes[panel].append((_x_of(panel, p), p["accuracy"], p["clock"], "0.25"))
        ax = ax_of.get("speedup")
        if ax is not None and math.isfinite(p["speedup"]) and p["accuracy"] >= lo:
            xerr = [[p["accuracy"] - p["low"]], [p["high"] - p["accuracy"]]] if math.isfinite(p["low"]) else None
            ax.errorbar([p["accuracy"]], [p["speedup"]], xerr=xerr, **style)
    return notes


def _format_speedup_axes(ax, labels, lo, hi, spd_vals, log_spd) -> None:
    ax.set_xlabel(labels["accuracy"])
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{100 * v:.4g}%"))
    ax.set_xlim(lo, hi)
    ax.set_ylabel(labels["speedup"])
    if log_spd:
        ax.set_yscale("log")
    ax.set_ylim(*_x_limits(spd_vals + [1.0], log_spd))
    if not log_spd:
        ax.set_ylim(bottom=0)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}×"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.axhline(1.0, color="0.5", linewidth=0.6, zorder=0.5)


def _format_accuracy_axes(ax, panel, labels, lo, hi, x_vals, log, x_lim, has_notes) -> None:
    """Accuracy against latency (ms) or against the fraction of events consumed."""
    ax.set_ylabel(labels["accuracy"])
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{100 * v:.4g}%"))
    ax.set_ylim(lo, hi)
    if panel == "latency":
        ax.set_xlabel(labels["latency"])
        if log:
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        left, right = x_lim or _x_limits(x_vals, log)
        if has_notes and not x_lim:  # room for the clock labels right of the points
            right = right * 2.0 if log else right * 1.2
        ax.set_xlim(left, right)
    else:
        ax.set_xlabel(labels["fraction"])
        if log:
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{100 * v:g}%"))
        ax.set_xlim(*(x_lim or _x_limits(x_vals, log, upper=1.08 if log else 1.03)))


def _legend(fig, axes, series_in_order, legend_cols) -> None:
    """One legend below the panels, in the order of the series: curves, sweeps, then the results."""
    handles, labs = [], []
    for ax in axes:
        for h, l in zip(*ax.get_legend_handles_labels()):
            if l not in labs:
                handles.append(h)
                labs.append(l)
    order = [x["label"] for x in series_in_order]
    pairs = sorted(zip(handles, labs), key=lambda hl: order.index(hl[1]) if hl[1] in order else len(order))
    handles, labs = [h for h, _ in pairs], [l for _, l in pairs]
    if handles:
        fig.legend(handles, labs, loc="outside lower center", ncol=legend_cols, frameon=False, handletextpad=0.4,
                   columnspacing=1.2)


def wrap_title(title: str, width_in: float, font_pt: float = 8.5) -> str:
    """Break a title into lines that fit the figure width (about 0.62 em per character)."""
    chars = max(20, int(width_in * 72.0 / (0.62 * font_pt)))
    return "\n".join(textwrap.fill(line, chars) for line in str(title).split("\n"))


def _place_notes(ax, notes, *, gap_pt: float = 7.5):
    """Label points (x, y, text, colour) to their right; labels of points close in x are spread
    vertically (at least ``gap_pt`` apart) with a thin leader line, so they never overlap."""
    notes = [n for n in notes if n[2] and math.isfinite(n[0]) and math.isfinite(n[1])]
    if not notes:
        return
    fig = ax.get_figure()
    to_px = ax.transData.transform
    pt_per_px = 72.0 / fig.dpi
    pts = [(to_px((x, y)) * pt_per_px, x, y, text, colour) for x, y, text, colour in notes]
    pts.sort(key=lambda n: n[0][0])
    clusters, current = [], [pts[0]]
    for n in pts[1:]:
        if n[0][0] - current[-1][0][0] <= 30.0:  # within 30 pt in x: one column of labels
            current.append(n)
        else:
            clusters.append(current)
            current = [n]
    clusters.append(current)
    for cluster in clusters:
        cluster.sort(key=lambda n: -n[0][1])
        right = max(n[0][0] for n in cluster)
        previous = None
        for (px, py), x, y, text, colour in cluster:
            pos = py if previous is None else min(py, previous - gap_pt)
            previous = pos
            dx, dy = right - px + 7.0, pos - py
            arrow = dict(arrowstyle="-", color=colour, linewidth=0.4, shrinkA=0, shrinkB=2.5) \
                if abs(dy) > 3 or dx > 12 else None
            ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=6, color=colour,
                        va="center", ha="left", arrowprops=arrow, zorder=7, gid="clock-label")


# --------------------------------------------------------------------------------------------
# temporal flexibility
# --------------------------------------------------------------------------------------------


def temporal_series(results, confidence: float = 0.95) -> dict:
    """The data of :func:`plot_temporal`: clock results by bin width (ms) and the event-driven
    results, each with accuracy, Wilson interval and mean OCT (ms, None when not recorded)."""
    docs = [results] if isinstance(results, dict) else list(results)
    if not docs:
        raise OptionError("no results to plot")
    for i, d in enumerate(docs):
        check_doc(d, d.get("_path", f"result {i + 1}") if isinstance(d, dict) else f"result {i + 1}")
    hashes = {d.get("model_hash") for d in docs if d.get("model_hash")}
    if len(hashes) > 1:
        raise OptionError("the results come from different models (model_hash differs); temporal flexibility "
                          "compares one model", option="RESULTS")
    clock, event = [], []
    for d in docs:
        if cutoff_of(d).get("mode", "none") != "none":
            raise OptionError(f"{d.get('_path', 'a result')} was evaluated with a cutoff; temporal flexibility "
                              f"compares runs without one", option="RESULTS")
        ci = accuracy_interval(d, confidence)
        oct_ = d.get("oct") if isinstance(d.get("oct"), dict) else {}
        entry = {**ci, "oct_ms": (num(oct_.get("mean_us")) / 1000.0) if num(oct_.get("mean_us")) is not None else None,
                 "profile": d.get("profile"), "label": describe(d, docs), "complete": is_complete(d),
                 "colour": colour_of(d)}
        if d.get("mode") == "clock":
            w = num(d.get("bin_us"))
            nb = d.get("n_bins") if isinstance(d.get("n_bins"), int) else None
            if w is None and nb:
                # n bins per recording: the bin width is the recording's duration / n (mean shown)
                dur = num(d.get("mean_latency_us"))
                if dur is None:
                    raise OptionError(f"{d.get('_path', 'a clock result')}: no bin width (--n-bins without "
                                      f"mean_latency_us)", option="RESULTS")
                w = dur / nb
                if not w > 0:
                    raise OptionError(f"{d.get('_path', 'a clock result')}: no bin width (--n-bins with "
                                      f"mean_latency_us {dur:g}: bins of 0 µs)", option="RESULTS")
                entry["setting"] = f"{nb} bin" + ("" if nb == 1 else "s")
            elif w is None:
                raise OptionError(f"{d.get('_path', 'a clock result')} has no bin_us or n_bins", option="RESULTS")
            else:
                entry["setting"] = f"{w / 1000:g} ms"
            entry["bin_ms"] = w / 1000.0
            clock.append(entry)
        else:
            same = next((e for e in event if (e["correct"], e["n"], e["oct_ms"]) ==
                         (entry["correct"], entry["n"], entry["oct_ms"])), None)
            if same is not None:  # identical results (e.g. two profiles): one line, both named
                same["profile"] = f"{same['profile']} = {entry['profile']}, identical"
            else:
                event.append(entry)
    if not clock:
        raise OptionError("no clock-driven result among the files (give `evsim eval --mode clock` results at "
                          "several --bin-us)", option="RESULTS")
    clock.sort(key=lambda e: e["bin_ms"])
    return {"clock": clock, "event": event}


def plot_temporal(results, path, *, title=None, size="one-column", accuracy_lim=None,
                  confidence: float = 0.95) -> Figure:
    """Temporal flexibility of one model: accuracy against the clock bin width (log axis, the
    bin widths read from the results), each with its Wilson interval, and the event-driven result
    as a horizontal line with its interval as a band (the limit of ever finer bins). A second
    panel shows the mean oracle cutoff time (OCT) when the results carry it. Written to ``path``.

    Returns:
        The figure (axes labelled "accuracy" and, when drawn, "oct").
    """
    check_figure_path(path)
    width = figure_width(size)
    data = temporal_series(results, confidence)
    acc_lim = _check_lim(accuracy_lim, "--accuracy-lim")
    with paper_style():
        fig = _draw_temporal(data, width, title, acc_lim)
        save_figure(fig, path)
    return fig


def _draw_temporal(data, width, title, acc_lim) -> Figure:
    clock, event = data["clock"], data["event"]
    has_oct = any(e["oct_ms"] is not None for e in clock + event)
    stacked = width < 5.0
    n = 2 if has_oct else 1
    if stacked:
        fig = new_figure(width, 2.2 * n + 0.55 + 0.14 * len(event))
        axes = list(fig.subplots(n, 1, sharex=True, squeeze=False)[:, 0])
    else:
        fig = new_figure(width, 2.6 + 0.14 * len(event))
        axes = list(fig.subplots(1, n, squeeze=False)[0])
    ax = axes[0]
    ax.set_label("accuracy")
    x = np.array([e["bin_ms"] for e in clock])
    acc = np.array([e["accuracy"] for e in clock])
    err = np.array([[e["accuracy"] - e["low"], e["high"] - e["accuracy"]] for e in clock]).T
    ax.errorbar(x, acc, yerr=err, fmt="s", color="0.15", markersize=4.5, elinewidth=0.9, capsize=2,
                label="clock-driven (per bin width)", zorder=5)
    for e in clock:
        ax.annotate(e["setting"], (e["bin_ms"], e["accuracy"]), xytext=(4, -2), textcoords="offset points",
                    ha="left", va="top", fontsize=6, color="0.3")
    lows = [e["low"] for e in clock + event]
    highs = [e["high"] for e in clock + event]
    for e in event:
        line = ax.axhline(e["accuracy"], color=e["colour"], linewidth=1.2, zorder=3,
                          label=f"event-driven ({e['profile']})" if e["profile"] else "event-driven")
        line.set_gid("event")
        ax.axhspan(e["low"], e["high"], color=e["colour"], alpha=0.12, linewidth=0, zorder=1)
    ax.set_xscale("log")
    ax.set_xlim(x.min() / 2.0, x.max() * 2.0)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xlabel("clock bin width (ms)")
    if acc_lim:
        lo, hi = acc_lim
    else:
        span = max(max(highs) - min(lows), 0.02)
        lo = max(0.0, math.floor((min(lows) - 0.15 * span) * 100) / 100)
        hi = min(1.0, math.ceil((max(highs) + 0.08 * span) * 100) / 100)
    ax.set_ylim(lo, hi)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{100 * v:.4g}%"))
    ax.set_ylabel("accuracy")
    ax.set_title("accuracy across time resolutions")
    ax.grid(alpha=0.3)
    if has_oct:
        ax2 = axes[1]
        ax2.set_label("oct")
        ok = [e for e in clock if e["oct_ms"] is not None]
        ax2.plot([e["bin_ms"] for e in ok], [e["oct_ms"] for e in ok], "s", color="0.15", markersize=4,
                 label="clock-driven")
        for e in event:
            if e["oct_ms"] is not None:
                ax2.axhline(e["oct_ms"], color=e["colour"], linewidth=1.2, label="event-driven")
        ax2.set_xscale("log")
        ax2.set_xlim(ax.get_xlim())
        ax2.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax2.set_xlabel("clock bin width (ms)")
        ax2.set_ylabel("mean OCT (ms)")
        ax2.set_ylim(bottom=0)
        ax2.set_title("how early the answer is there (OCT)")
        ax2.grid(alpha=0.3)
    ax.legend(loc="lower left", frameon=False)
    if title is None:
        ns = {e["n"] for e in clock + event}
        title = "Temporal flexibility" + (f" ({ns.pop()} samples, 95 % Wilson intervals)" if len(ns) == 1 else "")
    if title:
        fig.suptitle(wrap_title(title, width))
    return fig

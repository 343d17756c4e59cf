"""Figures: spike rasters, output evidence over time, accuracy vs latency and vs events consumed.

Pure functions on evsim results (matplotlib, no pyplot state): each builds one figure, writes it
to ``path`` and returns the :class:`matplotlib.figure.Figure` for further inspection. The format
follows the file extension: ``.png`` (150 dpi) or ``.svg``; anything else is an
:class:`~evsim.errors.OptionError` (checked before any drawing).

- :func:`plot_raster`: input events and the spikes of every spiking layer over time, one
  horizontal band per layer, the output layer on top, the cutoff decision marked.
- :func:`plot_evidence`: the accumulated output vector a(t) per class and the confidence
  (top1 − top2 gap, max softmax) with the cutoff threshold β.
- :func:`plot_accuracy`: accuracy vs mean latency and vs fraction of input events, from one or
  more ``evsim eval --json`` documents (anytime curves, cutoff results, threshold sweeps,
  clock-driven runs), and the speed-up of the sweep.
- :func:`save_figure`: the writer all of them use.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, PercentFormatter
from matplotlib.transforms import blended_transform_factory

from ..errors import EvsimError, OptionError

#: Supported figure formats (by file extension) and their savefig options.
FORMATS = {".png": {"format": "png", "dpi": 150}, ".svg": {"format": "svg"}}

_POLARITY_COLOURS = ("#1f77b4", "#d62728")  # p=0 (OFF) blue, p=1 (ON) red
_GREY = "#b8b8b8"
_LAYER_COLOURS = ("#2ca02c", "#9467bd", "#8c564b", "#17becf", "#e377c2", "#bcbd22", "#7f7f7f", "#1f77b4")
_CUTOFF_COLOUR = "#000000"  # no data series is black-dashed
_BETA_COLOUR = "#d62728"
_OUTPUT_COLOUR = "#e6550d"


# --------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------


__all__ = ["check_figure_path", "save_figure", "plot_raster", "plot_evidence", "plot_accuracy"]

def check_figure_path(path) -> str:
    """The format of ``path`` from its extension ("png" or "svg"); OptionError otherwise."""
    ext = Path(str(path)).suffix.lower()
    if ext not in FORMATS:
        shown = f"'{ext}'" if ext else "no extension"
        raise OptionError(f"cannot write figure {path}: {shown} is not a supported format (use .png or .svg)")
    return FORMATS[ext]["format"]


def save_figure(fig: Figure, path) -> Path:
    """Write ``fig`` to ``path`` (.png at 150 dpi, or .svg), creating the parent folder, and
    close it. Returns the path written."""
    check_figure_path(path)
    path = Path(str(path))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, **FORMATS[path.suffix.lower()])
    except OSError as exc:
        raise EvsimError(f"cannot write {path} ({exc.strerror or exc})") from None
    finally:
        pyplot = sys.modules.get("matplotlib.pyplot")
        if pyplot is not None:  # only figures made through pyplot are registered there
            pyplot.close(fig)
    return path


def _figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


# --------------------------------------------------------------------------------------------
# spike raster
# --------------------------------------------------------------------------------------------


def _input_addresses(events: np.ndarray, shape: tuple) -> np.ndarray:
    """Flat input neuron index of each event (SPEC §1), unchecked (the run validated them)."""
    x = events["x"].astype(np.int64)
    if len(shape) == 3:
        _, h, w = shape
        return (events["p"].astype(np.int64) * h + events["y"].astype(np.int64)) * w + x
    if len(shape) == 2:
        return events["p"].astype(np.int64) * shape[1] + x
    return x


def _strides(sizes: list, max_points: int) -> list:
    """Every-k-th subsampling stride per group so that the total stays ≤ max_points; the
    smallest groups are kept whole (water filling), the large ones thinned evenly."""
    total = sum(sizes)
    if total <= max_points:
        return [1] * len(sizes)
    order = sorted(range(len(sizes)), key=lambda i: sizes[i])
    remaining, cap = float(max_points), None
    for rank, i in enumerate(order):
        share = remaining / (len(sizes) - rank)
        if sizes[i] <= share:
            remaining -= sizes[i]
        else:
            cap = max(share, 1.0)
            break
    return [1 if cap is None or s <= cap else int(math.ceil(s / cap)) for s in sizes]


def _band_height(size: int, labelled: bool) -> float:
    h = max(1.0, math.log10(max(size, 1)))
    if labelled:
        h = max(h, 0.3 * size + 0.2)
    return h


def _cutoff_text(result) -> str:
    t_ms = result.decision_time_us / 1000.0
    pct = 100.0 * result.events_fraction
    cls = "none" if result.prediction is None else str(result.prediction)
    return f"cutoff: class {cls} at {t_ms:.1f} ms, {pct:.0f}% of events"


def _ordinal(k: int) -> str:
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"{k}{suffix}"


def plot_raster(result, model, events, path, *, title=None, max_points: int = 200_000) -> Figure:
    """Spike raster of every layer with the input events, written to ``path``.

    Time (ms since the first event) on x; on y one horizontal band per population: the input
    events at the bottom (address ``p*H*W + y*W + x``, coloured by polarity), then every spiking
    layer in model order, the output layer on top (class indices on the right when it has ≤ 20
    neurons, the prediction highlighted). Each band's y-tick label gives the layer name and its
    neuron count. When ``result.status == "cutoff"`` a vertical line marks the decision; input
    events that were not consumed are drawn in grey. Above ``max_points`` points the densest
    groups are thinned deterministically (every k-th point) and the title says so.

    Args:
        result: a :class:`~evsim.sim.result.Result` simulated with ``record_spikes=True``.
        model: the :class:`~evsim.compile.builder.CompiledModel` that produced it.
        events: the input events that were fed (structured array with t, x, y, p).
        path: output file (.png or .svg).

    Returns:
        The figure; ``fig.axes[0]`` is the raster (one y tick per band, bottom to top).
    """
    check_figure_path(path)
    if result.spikes is None:
        raise OptionError("the result has no spike record: simulate with record_spikes=True")
    if max_points < 1:
        raise OptionError("must be >= 1", option="max_points")
    pops = model.populations
    if list(result.node_names) != [p.name for p in pops]:
        raise OptionError("the result was not simulated with this model (population names differ)")
    events = np.asarray(events)
    t0 = int(events["t"][0]) if events.size else 0
    t_in_ms = (events["t"].astype(np.int64) - t0) / 1000.0 if events.size else np.zeros(0)
    n_consumed = min(int(result.events_consumed), int(events.size))

    readout = int(model.readout[0])
    layers = [i for i, p in enumerate(pops) if p.spiking and p.nir_type != "Input"]
    if readout in layers:  # the output layer goes on top
        layers.remove(readout)
        layers.append(readout)
    out_labelled = bool(layers) and layers[-1] == readout and pops[readout].size <= 20

    # ---- point groups: (band, xs, ys_local, colour, label) ----
    in_shape = tuple(int(s) for s in model.input_shape)
    in_size = int(np.prod(in_shape))
    addr = _input_addresses(events, in_shape) if events.size else np.zeros(0, np.int64)
    channels = events["p"].astype(np.int64) if events.size and len(in_shape) >= 2 else np.zeros(events.size, np.int64)
    n_channels = in_shape[0] if len(in_shape) >= 2 else 1
    groups = []
    if n_channels <= 2 and len(in_shape) >= 2:
        for c in range(n_channels):
            sel = np.flatnonzero(channels[:n_consumed] == c)
            name = ("OFF", "ON")[c] if n_channels == 2 else ""
            groups.append((0, t_in_ms[sel], addr[sel], _POLARITY_COLOURS[c], f"input p={c} {name}".rstrip()))
    else:
        groups.append((0, t_in_ms[:n_consumed], addr[:n_consumed], _POLARITY_COLOURS[0], "input events"))
    if n_consumed < events.size:
        groups.append((0, t_in_ms[n_consumed:], addr[n_consumed:], _GREY, "input, not consumed"))
    spikes = result.spikes
    for band, p in enumerate(layers, start=1):
        sel = spikes["node"] == p
        colour = _LAYER_COLOURS[(band - 1) % len(_LAYER_COLOURS)] if p != readout else _OUTPUT_COLOUR
        groups.append((band, spikes["t_us"][sel] / 1000.0, spikes["neuron"][sel], colour, None))

    sizes = [len(g[1]) for g in groups]
    strides = _strides(sizes, max_points)
    shown = sum(int(math.ceil(s / k)) for s, k in zip(sizes, strides))

    # ---- band geometry ----
    band_names = ["input events"] + [pops[p].name for p in layers]
    band_sizes = [in_size] + [pops[p].size for p in layers]
    heights = [_band_height(s, out_labelled and b == len(band_sizes) - 1) for b, s in enumerate(band_sizes)]
    bottoms = np.concatenate([[0.0], np.cumsum(heights)[:-1]])
    total_h = float(sum(heights))

    fig_h = min(14.0, max(4.5, 1.7 + 0.38 * total_h))
    fig = _figure(11.0, fig_h)
    ax = fig.add_subplot()
    ax.set_label("raster")
    axes_h_pt = (fig_h - 1.7) * 72.0

    t_end = max(float(t_in_ms[-1]) if t_in_ms.size else 0.0,
                float(spikes["t_us"].max() / 1000.0) if spikes.size else 0.0,
                (result.decision_time_us or 0.0) / 1000.0)
    t_end = t_end if t_end > 0 else 1.0

    for (band, xs, local, colour, label), k in zip(groups, strides):
        if k > 1:
            xs, local = xs[::k], local[::k]
        size = band_sizes[band]
        ys = bottoms[band] + heights[band] * (local + 0.5) / size
        row_pt = axes_h_pt * heights[band] / total_h / size
        ms = float(np.clip(row_pt * 0.9, 2.0, 7.0))
        ax.plot(xs, ys, linestyle="none", marker="|", markersize=ms, markeredgewidth=0.7 if row_pt > 2 else 0.5,
                color=colour, alpha=0.85 if colour != _GREY else 0.9, rasterized=len(xs) > 2000, label=label)

    # separators, band labels
    for b in range(1, len(heights)):
        ax.axhline(bottoms[b], color="0.55", linewidth=0.6, zorder=0.5)
    ax.set_yticks(bottoms + np.asarray(heights) / 2)
    ax.set_yticklabels([f"{n}\n{s:,} neurons" for n, s in zip(band_names, band_sizes)], fontsize=8)
    ax.tick_params(axis="y", length=0)
    ax.set_ylim(0, total_h)
    ax.set_xlim(0, t_end * 1.01)
    ax.set_xlabel("time since the first event (ms)")
    for sp in ("top", "right"):
        ax.spines[sp].set_visible(False)

    # output band: class indices on the right, the prediction highlighted
    if out_labelled:
        b = len(heights) - 1
        n_out = band_sizes[b]
        row_h = heights[b] / n_out
        centres = bottoms[b] + row_h * (np.arange(n_out) + 0.5)
        right = ax.twinx()
        right.set_label("classes")
        right.set_ylim(ax.get_ylim())
        right.set_yticks(centres)
        right.set_yticklabels([str(c) for c in range(n_out)], fontsize=7)
        right.tick_params(axis="y", length=2, pad=1)
        right.set_ylabel("class", fontsize=8, loc="top")
        for sp in ("top", "left", "bottom"):
            right.spines[sp].set_visible(False)
        if result.prediction is not None and 0 <= result.prediction < n_out:
            c = int(result.prediction)
            ax.axhspan(centres[c] - row_h / 2, centres[c] + row_h / 2, color="#ffd54f", alpha=0.45, zorder=0,
                       linewidth=0)
            right.get_yticklabels()[c].set_fontweight("bold")

    # cutoff decision
    handles, labels = ax.get_legend_handles_labels()
    if result.status == "cutoff" and result.decision_time_us is not None:
        x = result.decision_time_us / 1000.0
        ax.axvspan(x, t_end * 1.01, color="0.5", alpha=0.07, zorder=0, linewidth=0)
        ax.axvline(x, color=_CUTOFF_COLOUR, linestyle="--", linewidth=1.3, zorder=3, gid="cutoff")
        left_side = x > 0.7 * t_end
        ax.text(x + (-0.006 if left_side else 0.006) * t_end, 0.995, _cutoff_text(result),
                transform=blended_transform_factory(ax.transData, ax.transAxes),
                ha="right" if left_side else "left", va="top", fontsize=8.5, color=_CUTOFF_COLOUR,
                bbox=dict(boxstyle="round,pad=0.25", facecolor="white", edgecolor="none", alpha=0.85),
                zorder=4, gid="cutoff-label")
        handles.append(Line2D([], [], color=_CUTOFF_COLOUR, linestyle="--", linewidth=1.3))
        labels.append("cutoff decision")
    legend_handles = [Line2D([], [], linestyle="none", marker="s", markersize=6, color=h.get_color())
                      if h.get_linestyle() in ("None", "none", "") else h for h in handles]
    if legend_handles:
        ax.legend(legend_handles, labels, loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=len(labels),
                  frameon=False, fontsize=8, borderaxespad=0.2, handletextpad=0.3, columnspacing=1.2)

    head = title if title is not None else (
        f"Spike raster: prediction {result.prediction}, "
        f"{result.events_consumed:,} of {result.events_total:,} input events consumed")
    if any(k > 1 for k in strides):
        thinned = [band_names[g[0]] if g[0] else "input" for g, k in zip(groups, strides) if k > 1]
        ks = sorted({k for k in strides if k > 1})
        every = f"every {_ordinal(ks[0])}" if len(ks) == 1 else f"every {_ordinal(ks[0])}–{_ordinal(ks[-1])}"
        head += (f"\n(subsampled for display: {shown:,} of {sum(sizes):,} points, "
                 f"{every} point of {', '.join(dict.fromkeys(thinned))})")
    fig.suptitle(head, fontsize=10.5)
    save_figure(fig, path)
    return fig


# --------------------------------------------------------------------------------------------
# output evidence and confidence over time
# --------------------------------------------------------------------------------------------


def _beta_steps(beta, t_end_us: float):
    """(x_us, y) of a threshold: a number (constant) or (bin_width_us, thresholds) (staircase;
    None / inf entries never decide and are left out; the last bin extends to the end)."""
    if beta is None:
        return None
    if isinstance(beta, (int, float, np.integer, np.floating)):
        v = float(beta)
        return (np.array([0.0, t_end_us]), np.array([v, v])) if math.isfinite(v) else None
    try:
        width, table = beta
        width = float(width)
        vals = np.array([np.nan if v is None else float(v) for v in table], dtype=float)
    except (TypeError, ValueError):
        raise OptionError("β must be a number or a (bin_width_us, thresholds) pair", option="beta") from None
    vals[~np.isfinite(vals)] = np.nan
    if vals.size == 0:
        return None
    if vals.size == 1 or width <= 0:
        return np.array([0.0, t_end_us]), np.array([vals[0], vals[0]])
    edges = np.arange(vals.size, dtype=float) * width
    keep = edges < max(t_end_us, width)
    edges, vals = edges[keep], vals[keep]
    x = np.append(edges, max(t_end_us, edges[-1] + width))
    return x, np.append(vals, vals[-1])


def plot_evidence(result, path, *, temperature: float = 1.0, beta=None, title=None, label=None,
                  cutoff_mode: str = "topk") -> Figure:
    """The output vector and the confidence over time for one sample, written to ``path``.

    Top: the accumulated output a(t) of every class as step lines (legend by class index; the
    final prediction drawn thick, the true ``label`` dashed when it differs). Bottom: the
    top1 − top2 gap (left axis) and max softmax(a/T) (right axis), the threshold β as a dashed
    line (a number, or ``(bin_width_us, thresholds)`` drawn as a staircase; on the gap axis for
    ``cutoff_mode="topk"``, on the softmax axis for ``"conf"``), and the cutoff decision.

    Args:
        result: a :class:`~evsim.sim.result.Result` simulated with ``record_output=True``.
        temperature: T of the softmax.

    Returns:
        The figure (``fig.axes[0]``: output, ``fig.axes[1]``: gap, ``fig.axes[2]``: softmax).
    """
    from ..analysis.trajectory import gap_of, softmax_confidence_of

    check_figure_path(path)
    if result.output_record is None:
        raise OptionError("the result has no output record: simulate with record_output=True")
    if not temperature > 0:
        raise OptionError("must be > 0", option="--temperature")
    if cutoff_mode not in ("topk", "conf"):
        raise OptionError(f"must be topk or conf, got {cutoff_mode!r}", option="cutoff_mode")
    t_us, _, vectors = result.output_record
    t_us = np.asarray(t_us, dtype=float)
    vectors = np.asarray(vectors, dtype=float)
    n_out = int(np.asarray(result.output).size) if vectors.size == 0 else vectors.shape[1]
    t_end = max(float(t_us[-1]) if t_us.size else 0.0, float(result.decision_time_us or 0.0))
    t_end = t_end if t_end > 0 else 1.0
    # a(t) as steps from t = 0 (all zero) to the end, holding the last value
    xs = np.concatenate([[0.0], t_us, [t_end]]) / 1000.0
    vs = np.vstack([np.zeros((1, n_out)), vectors, vectors[-1:] if len(vectors) else np.zeros((1, n_out))])

    fig = _figure(10.0, 6.8)
    ax_out, ax_gap = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [1.25, 1.0]})
    ax_out.set_label("output")
    ax_gap.set_label("gap")

    pred = result.prediction
    cmap_colours = [f"C{i}" for i in range(10)] if n_out <= 10 else None
    final = vs[-1]
    if n_out > 20:  # many outputs: colour the strongest few, the rest faint
        coloured = set(np.argsort(-final, kind="stable")[:8].tolist())
    else:
        coloured = set(range(n_out))
    for c in range(n_out):
        is_pred, is_label = c == pred, c == label
        if c in coloured:
            colour = cmap_colours[c] if cmap_colours else _tab20(c)
        else:
            colour = "0.8"
        lw = 2.6 if is_pred else (2.0 if is_label else 1.1)
        ls = "--" if is_label and not is_pred else "-"
        tag = {(True, True): " (prediction = label)", (True, False): " (prediction)",
               (False, True): " (label)", (False, False): ""}[(bool(is_pred), bool(is_label))]
        ax_out.step(xs, vs[:, c], where="post", color=colour, linewidth=lw, linestyle=ls,
                    alpha=1.0 if (is_pred or is_label) else 0.8, zorder=3 if (is_pred or is_label) else 2,
                    label=f"{c}{tag}" if (c in coloured or is_pred or is_label) else None)
    if not len(vectors):
        ax_out.text(0.5, 0.5, "no output activity", transform=ax_out.transAxes, ha="center", va="center",
                    color="0.4")
    ax_out.set_ylabel("output spike count" if result.output_counts is not None else "output a(t)")
    ax_out.legend(title="class", loc="upper left", bbox_to_anchor=(1.08, 1.0), fontsize=8, title_fontsize=8,
                  frameon=False, borderaxespad=0.0)
    ax_out.grid(alpha=0.25)

    gap = gap_of(vs) if n_out else np.zeros(len(xs))
    soft = softmax_confidence_of(vs, temperature) if n_out else np.zeros(len(xs))
    ax_soft = ax_gap.twinx()
    ax_soft.set_label("softmax")
    (l_gap,) = ax_gap.step(xs, gap, where="post", color="0.1", linewidth=1.6, label="top1 − top2 gap (left)")
    (l_soft,) = ax_soft.step(xs, soft, where="post", color="#7b3fa0", linewidth=1.2, alpha=0.9,
                             label=f"max softmax(a/T), T={temperature:g} (right)")
    ax_soft.set_ylim(0, 1.05)
    ax_gap.set_ylim(0, max(1.0, float(gap.max()) * 1.08))
    ax_gap.set_ylabel("top1 − top2 gap")
    ax_soft.set_ylabel("max softmax(a/T)", color="#7b3fa0")
    ax_soft.tick_params(axis="y", colors="#7b3fa0")
    ax_gap.set_xlabel("time since the first event (ms)")
    ax_gap.grid(alpha=0.25)
    handles = [l_gap, l_soft]

    steps = _beta_steps(beta, t_end)
    target = ax_gap if cutoff_mode == "topk" else ax_soft
    if steps is not None:
        bx, by = steps
        name, side = ("β", "left") if cutoff_mode == "topk" else ("softmax threshold", "right")
        if np.all(by == by[0]):
            lab = f"{name} = {by[0]:g} ({side})"
        else:
            lab = f"{name}(t), per {(bx[1] - bx[0]) / 1000:g} ms bin ({side})"
        (l_beta,) = target.step(bx / 1000.0, by, where="post", color=_BETA_COLOUR, linestyle="--", linewidth=1.3,
                                label=lab, zorder=4)
        handles.append(l_beta)
        if cutoff_mode == "topk" and np.isfinite(by).any():
            ax_gap.set_ylim(0, max(ax_gap.get_ylim()[1], float(np.nanmax(by)) * 1.1))

    if result.status == "cutoff" and result.decision_time_us is not None:
        x = result.decision_time_us / 1000.0
        for a in (ax_out, ax_gap):
            a.axvline(x, color=_CUTOFF_COLOUR, linestyle=":", linewidth=1.3, zorder=5, gid="cutoff")
        k = int(np.searchsorted(xs, x, side="right") - 1)
        y = (gap if cutoff_mode == "topk" else soft)[max(k, 0)]
        (l_cut,) = target.plot([x], [y], marker="o", markersize=7, markerfacecolor="white",
                               markeredgecolor=_CUTOFF_COLOUR, markeredgewidth=1.8, linestyle="none", zorder=6,
                               label=_cutoff_text(result))
        handles.append(l_cut)
    ax_gap.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.08, 1.0), fontsize=8, frameon=False,
                  borderaxespad=0.0)
    ax_gap.set_xlim(0, t_end / 1000.0 * 1.01)

    if title is None:
        verdict = "" if label is None else f", label {label} ({'correct' if pred == label else 'wrong'})"
        title = f"Output evidence: prediction {pred}{verdict}"
    fig.suptitle(title, fontsize=10.5)
    save_figure(fig, path)
    return fig


def _tab20(i: int):
    from matplotlib import colormaps

    return colormaps["tab20"](i % 20)


# --------------------------------------------------------------------------------------------
# accuracy vs latency / events
# --------------------------------------------------------------------------------------------

_MARKERS = ("*", "D", "P", "X", "v", "^", "p", "h", "<", ">")


def _cutoff_of(doc) -> dict:
    c = doc.get("cutoff", "none")
    if isinstance(c, dict):
        return c
    return {"mode": str(c) if c else "none"}


def _num(v):
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _clock_text(doc) -> str:
    if doc.get("n_bins") is not None:
        return _bins(int(doc["n_bins"]))
    if doc.get("bin_us") is not None:
        return f"{float(doc['bin_us']) / 1000:g} ms bins"
    return ""


def _bins(n: int) -> str:
    return f"{n} bin" if n == 1 else f"{n} bins"


def _cutoff_text_doc(c: dict) -> str:
    mode = c.get("mode", "none")
    if mode == "none":
        return "no cutoff"
    name = {"topk": "top-k", "conf": "conf"}.get(mode, str(mode))
    table = c.get("table")
    if table is not None:
        width = _num(c.get("bin_width_us"))
        if isinstance(table, list) and len(table) > 1 and width:
            return f"{name} cutoff (calibrated, a threshold per {width / 1000:g} ms)"
        return f"{name} cutoff (calibrated, one threshold)"
    if mode == "conf" and c.get("epsilon") is not None:
        return f"{name} cutoff (ε={float(c['epsilon']):g})"
    if c.get("threshold") is not None:
        sym = "β" if mode == "topk" else "thr"
        return f"{name} cutoff ({sym}={float(c['threshold']):g})"
    return f"{name} cutoff"


def _doc_labels(docs, *, with_clock: bool = True) -> list:
    profiles = {d.get("profile") for d in docs if d.get("profile")}
    models = {_model_name(d) for d in docs if d.get("model")}
    labels = []
    for d in docs:
        parts = [str(d.get("mode", "event"))]
        if with_clock and d.get("mode") == "clock" and _clock_text(d):
            parts.append(_clock_text(d))
        parts.append(_cutoff_text_doc(_cutoff_of(d)))
        if len(profiles) > 1 and d.get("profile"):
            parts.append(f"profile {d['profile']}")
        if len(models) > 1 and d.get("model"):
            parts.append(_model_name(d))
        labels.append(", ".join(parts))
    return labels


def _family(doc, docs) -> str:
    """What distinguishes a doc's anytime curve / sweep from others' (profile, model, mode)."""
    profiles = {d.get("profile") for d in docs if d.get("profile")}
    models = {_model_name(d) for d in docs if d.get("model")}
    parts = [str(doc.get("mode", "event"))]
    if len(profiles) > 1 and doc.get("profile"):
        parts.append(f"profile {doc['profile']}")
    if len(models) > 1 and doc.get("model"):
        parts.append(_model_name(doc))
    return ", ".join(parts)


def _model_name(doc) -> str:
    """A short name for a document's model: the folder of model.nir files, else the file stem."""
    p = Path(str(doc.get("model", "")))
    return p.parent.name if p.stem == "model" and p.parent.name else p.stem


def plot_accuracy(results, path, *, title=None) -> Figure:
    """Accuracy vs mean latency and vs fraction of input events consumed, from ``evsim eval
    --json`` documents, written to ``path``.

    Panels: (1) accuracy vs latency (ms), (2) accuracy vs fraction of events, (3) speed-up
    (1 / mean fraction of events) vs accuracy, drawn when a cutoff sweep or a cutoff result is
    present. In each: the anytime curves (event-driven, no cutoff) as solid lines, the replayed
    global top-k threshold sweep as a dashed line, each result as a marker (cutoff results as
    stars/diamonds, no-cutoff runs as circles), clock-driven results connected in order of their
    step count (squares, annotated with the bin setting), a document's ``clock_sweep`` likewise.
    The legend sits below the panels.

    Args:
        results: a list of dicts, each an ``evsim eval --json`` document.
        path: output file (.png or .svg).

    Returns:
        The figure (``fig.axes``: latency, fraction[, speed-up] panels).
    """
    check_figure_path(path)
    docs = list(results) if not isinstance(results, dict) else [results]
    if not docs:
        raise OptionError("no results to plot")
    for i, d in enumerate(docs):
        if not isinstance(d, dict) or _num(d.get("accuracy")) is None:
            raise OptionError(f"result {i + 1} is not an `evsim eval --json` document (no accuracy)")
    labels = _doc_labels(docs)

    has_sweep = any(len((d.get("anytime") or {}).get("sweep") or []) for d in docs)
    has_cut = any(_cutoff_of(d).get("mode", "none") != "none" and d.get("mode") != "clock" for d in docs)
    third = has_sweep or has_cut
    fig = _figure(15.0 if third else 11.5, 5.6)
    if third:
        axes = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1.0, 1.0, 0.72]})
    else:
        axes = fig.subplots(1, 2)
    ax_lat, ax_frac = axes[0], axes[1]
    ax_spd = axes[2] if third else None
    ax_lat.set_label("latency")
    ax_frac.set_label("fraction")
    if ax_spd is not None:
        ax_spd.set_label("speedup")

    notes = {ax_lat: [], ax_frac: []}  # point annotations, placed at the end without overlaps
    colours = iter(f"C{i}" for i in range(100))
    family_colour: dict = {}

    def colour_of(key):
        if key not in family_colour:
            family_colour[key] = next(colours)
        return family_colour[key]

    # anytime curves and sweeps, once per distinct content; of several clock-driven runs of the
    # same model and profile only the finest bin width's (the others would hide each other)
    def model_key(d):
        return d.get("profile"), str(d.get("model", ""))

    def width_of(d):
        return _num(d.get("bin_us")) or math.inf

    finest: dict = {}
    for d in docs:
        if d.get("mode") == "clock":
            finest[model_key(d)] = min(width_of(d), finest.get(model_key(d), math.inf))
    curve_docs = [d for d in docs if d.get("mode") != "clock" or width_of(d) == finest[model_key(d)]]
    seen_curves, seen_sweeps = set(), set()
    for d in curve_docs:
        any_ = d.get("anytime") or {}
        fam = _family(d, docs)
        clock_text = _clock_text(d) if d.get("mode") == "clock" else None
        if clock_text:
            fam = fam.replace("clock", f"clock {clock_text}", 1)
        col = colour_of(fam)
        t = np.asarray(any_.get("time_us") or [], dtype=float)
        at = np.asarray(any_.get("accuracy_vs_time") or [], dtype=float)
        f = np.asarray(any_.get("fraction") or [], dtype=float)
        af = np.asarray(any_.get("accuracy_vs_fraction") or [], dtype=float)
        key = (fam, t.tobytes(), at.tobytes(), f.tobytes(), af.tobytes())
        if (t.size and t.size == at.size or f.size and f.size == af.size) and key not in seen_curves:
            seen_curves.add(key)
            lab = f"{fam} anytime (no cutoff)"
            if t.size and t.size == at.size:
                ax_lat.plot(t / 1000.0, at, color=col, linewidth=1.8, label=lab, zorder=2)
            if f.size and f.size == af.size:
                ax_frac.plot(f, af, color=col, linewidth=1.8, label=lab, zorder=2)
        sweep = [s for s in (any_.get("sweep") or []) if isinstance(s, dict) and _num(s.get("accuracy")) is not None]
        sweep.sort(key=lambda s: _num(s.get("beta")) or 0.0)
        skey = (fam, tuple((_num(s.get("beta")), _num(s.get("accuracy"))) for s in sweep))
        if len(sweep) >= 1 and skey not in seen_sweeps:
            seen_sweeps.add(skey)
            lab = f"{fam}, top-k β sweep (replayed)"
            acc = np.array([_num(s.get("accuracy")) for s in sweep], dtype=float)
            lat = np.array([_num(s.get("mean_latency_us")) or np.nan for s in sweep], dtype=float) / 1000.0
            fr = np.array([_num(s.get("mean_events_fraction")) or np.nan for s in sweep], dtype=float)
            spd = np.array([_num(s.get("speedup")) or np.nan for s in sweep], dtype=float)
            spd = np.where(np.isfinite(spd), spd, np.where(fr > 0, 1.0 / np.where(fr > 0, fr, 1.0), np.nan))
            style = dict(color=col, linestyle="--", linewidth=1.3, marker=".", markersize=4, label=lab, zorder=3)
            ax_lat.plot(lat, acc, **style)
            ax_frac.plot(fr, acc, **style)
            if ax_spd is not None:
                ax_spd.plot(acc, spd, **style)

    # clock-driven runs: one line per (profile, model, cutoff), ordered by latency
    clock_groups: dict = {}
    for d, lab in zip(docs, labels):
        if d.get("mode") == "clock":
            key = (d.get("profile"), str(d.get("model", "")), _cutoff_text_doc(_cutoff_of(d)))
            clock_groups.setdefault(key, []).append(d)
    for key, group in clock_groups.items():
        group.sort(key=lambda d: _num(d.get("mean_latency_us")) or 0.0)
        first = next(i for i, d in enumerate(docs) if d is group[0])
        lab = _doc_labels(docs, with_clock=False)[first]
        lab += " (per bin setting)" if len(group) > 1 else f" ({_clock_text(group[0])})"
        col = colour_of(("clock",) + key)
        acc = [float(d["accuracy"]) for d in group]
        lat = [(_num(d.get("mean_latency_us")) or np.nan) / 1000.0 for d in group]
        fr = [_num(d.get("mean_events_fraction")) or np.nan for d in group]
        style = dict(color=col, marker="s", markersize=6, linewidth=1.2, linestyle="-" if len(group) > 1 else "none",
                     label=lab, zorder=4)
        ax_lat.plot(lat, acc, **style)
        ax_frac.plot(fr, acc, **style)
        for d, x, y in zip(group, lat, acc):
            notes[ax_lat].append((x, y, _clock_text(d), col))

    # each document's clock_sweep
    for d in docs:
        cs = [s for s in (d.get("clock_sweep") or []) if isinstance(s, dict) and _num(s.get("accuracy")) is not None]
        if not cs:
            continue
        cs.sort(key=lambda s: _num(s.get("mean_latency_us")) or 0.0)
        col = colour_of(("clock_sweep", _family(d, docs)))
        acc = [float(s["accuracy"]) for s in cs]
        lat = [(_num(s.get("mean_latency_us")) or np.nan) / 1000.0 for s in cs]
        extra = [p for p in _family(d, docs).split(", ")[1:]]
        lab = ", ".join(["clock, step-count sweep"] + extra)
        ax_lat.plot(lat, acc, color=col, marker="s", markersize=5, linewidth=1.2, label=lab, zorder=4)
        fr = [_num(s.get("mean_events_fraction")) for s in cs]
        if all(v is not None for v in fr):
            ax_frac.plot(fr, acc, color=col, marker="s", markersize=5, linewidth=1.2, label=lab, zorder=4)
        for s, x, y in zip(cs, lat, acc):
            if s.get("n_bins") is not None:
                txt = _bins(int(s["n_bins"]))
            elif s.get("bin_us") is not None:
                txt = f"{float(s['bin_us']) / 1000:g} ms"
            else:
                txt = ""
            if _num(s.get("n_steps_mean")) is not None and s.get("n_bins") is None:
                txt += f" (~{float(s['n_steps_mean']):.0f} steps)"
            notes[ax_lat].append((x, y, txt.strip(), col))

    # event-driven results as markers
    marker_iter = iter(_MARKERS * 10)
    for d, lab in zip(docs, labels):
        if d.get("mode") == "clock":
            continue
        mode = _cutoff_of(d).get("mode", "none")
        acc = float(d["accuracy"])
        lat = (_num(d.get("mean_latency_us")) or np.nan) / 1000.0
        fr = _num(d.get("mean_events_fraction"))
        fr = np.nan if fr is None else fr
        if mode == "none":
            style = dict(marker="o", markersize=8, color=colour_of(_family(d, docs)), markeredgecolor="black")
        else:
            m = next(marker_iter)
            style = dict(marker=m, markersize=13 if m == "*" else 9, color=colour_of(("result", lab)),
                         markeredgecolor="black")
        kw = dict(linestyle="none", label=lab, zorder=6, markeredgewidth=0.8, **style)
        ax_lat.plot([lat], [acc], **kw)
        ax_frac.plot([fr], [acc], **kw)
        if ax_spd is not None and fr and math.isfinite(fr) and fr > 0:
            ax_spd.plot([acc], [1.0 / fr], **kw)

    # axes
    pct = PercentFormatter(xmax=1.0, decimals=0)
    for a in (ax_lat, ax_frac):
        a.yaxis.set_major_formatter(pct)
        a.set_ylabel("accuracy")
        a.grid(alpha=0.3)
    ax_lat.set_xlabel("time since the first event / mean decision latency (ms)")
    ax_lat.set_title("accuracy vs latency", fontsize=10)
    ax_lat.set_xlim(left=0)
    ax_frac.set_xlabel("fraction of input events consumed")
    ax_frac.xaxis.set_major_formatter(pct)
    ax_frac.set_xlim(0, 1.03)
    ax_frac.set_title("accuracy vs input events consumed", fontsize=10)
    if ax_spd is not None:
        ax_spd.set_xlabel("accuracy")
        ax_spd.xaxis.set_major_formatter(pct)
        ax_spd.set_ylabel("speed-up (1 / fraction of events consumed)")
        ax_spd.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}×"))
        ax_spd.set_title("speed-up vs accuracy", fontsize=10)
        ax_spd.grid(alpha=0.3)
        ax_spd.axhline(1.0, color="0.5", linewidth=0.8, zorder=1)
        ax_spd.set_ylim(bottom=0)
    # accuracy range: from just below the lowest value drawn to 100 %
    ys = np.concatenate([np.asarray(line.get_ydata(), dtype=float) for line in ax_lat.lines + ax_frac.lines] or [[0.0]])
    ys = ys[np.isfinite(ys)]
    lo = float(ys.min()) if ys.size else 0.0
    lo = max(0.0, math.floor((lo - 0.02) * 20) / 20)  # 5 % steps
    pad = 0.02 * (1.0 - lo)
    xs_lat = np.concatenate([np.asarray(line.get_xdata(), dtype=float) for line in ax_lat.lines] or [[1.0]])
    xs_lat = xs_lat[np.isfinite(xs_lat)]
    x_max = float(xs_lat.max()) if xs_lat.size and xs_lat.max() > 0 else 1.0
    right = x_max * 1.03
    w_pt = fig.get_figwidth() * 72.0 * ax_lat.get_position().width
    for x, _, text, _ in notes[ax_lat]:  # room for the labels right of the points (7 pt text)
        if text and x is not None and math.isfinite(x):
            right = max(right, x / max(0.3, 1.0 - (12.0 + 4.3 * len(text)) / w_pt))
    ax_lat.set_xlim(0, right)
    for a in (ax_lat, ax_frac):
        a.set_ylim(lo - (pad if lo > 0 else 0.02), 1.0 + pad)
        _place_notes(a, notes[a])

    handles, labs = [], []
    for a in axes:
        for h, l in zip(*a.get_legend_handles_labels()):
            if l not in labs:
                handles.append(h)
                labs.append(l)
    if handles:
        fig.legend(handles, labs, loc="outside lower center", ncol=min(3, len(labs)), fontsize=8.5, frameon=False)
    if title is None:
        n = {d.get("n_samples") for d in docs if d.get("n_samples") is not None}
        title = "Accuracy vs latency and events consumed" + (f" ({n.pop()} samples)" if len(n) == 1 else "")
    fig.suptitle(title, fontsize=11)
    save_figure(fig, path)
    return fig


def _place_notes(ax, notes, *, gap_pt: float = 9.0):
    """Label points (x, y, text, colour) to their lower right; labels of points that are close
    in x are spread vertically (at least ``gap_pt`` apart) with a thin leader line."""
    notes = [n for n in notes if n[2] and n[0] is not None and math.isfinite(n[0]) and math.isfinite(n[1])]
    if not notes:
        return
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    fig = ax.get_figure()
    bbox = ax.get_position()
    h_pt = fig.get_figheight() * 72.0 * bbox.height
    pt_per_y = h_pt / (y1 - y0) if y1 > y0 else 1.0
    near = 0.06 * (x1 - x0)
    notes.sort(key=lambda n: n[0])
    clusters, current = [], [notes[0]]
    for n in notes[1:]:
        if n[0] - current[-1][0] <= near:
            current.append(n)
        else:
            clusters.append(current)
            current = [n]
    clusters.append(current)
    for cluster in clusters:
        cluster.sort(key=lambda n: -n[1])
        previous = None
        for x, y, text, colour in cluster:
            want = y * pt_per_y - 4.0
            pos = want if previous is None else min(want, previous - gap_pt)
            previous = pos
            dy = pos - y * pt_per_y
            arrow = dict(arrowstyle="-", color=colour, linewidth=0.5, shrinkA=0, shrinkB=3) if dy < -8 else None
            ax.annotate(text, (x, y), xytext=(8, dy), textcoords="offset points", fontsize=7, color=colour,
                        va="center", ha="left", arrowprops=arrow, zorder=7)

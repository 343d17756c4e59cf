"""Spike raster of one sample: the input events and the spikes of every spiking layer over time,
one horizontal band per population, the output layer on top, the cutoff decision and the oracle
cutoff time (OCT) marked."""

from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.transforms import blended_transform_factory

from ..errors import OptionError
from .style import check_figure_path, figure_width, new_figure, paper_style, save_figure

__all__ = ["plot_raster", "default_window_us", "cutoff_text"]

POLARITY_COLOURS = ("#0072B2", "#D55E00")  # p=0 (OFF) blue, p=1 (ON) vermillion
GREY = "#b8b8b8"
LAYER_COLOURS = ("#009E73", "#CC79A7", "#8c564b", "#56B4E9", "#E69F00", "#bcbd22", "#7f7f7f", "#0072B2")
OUTPUT_COLOUR = "#e6550d"
CUTOFF_COLOUR = "#000000"  # no data series is black-dashed
OCT_COLOUR = "#7b3fa0"


def _input_addresses(events: np.ndarray, shape: tuple) -> np.ndarray:
    """Flat input neuron index of each event (p*H*W + y*W + x), unchecked (the run validated them)."""
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


def cutoff_text(result) -> str:
    t_ms = result.decision_time_us / 1000.0
    pct = 100.0 * result.events_fraction
    cls = "none" if result.prediction is None else str(result.prediction)
    return f"cutoff: class {cls} at {t_ms:.1f} ms, {pct:.0f}% of events"


def _ordinal(k: int) -> str:
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"{k}{suffix}"


def default_window_us(result, duration_us: float, oct_us: float | None = None) -> tuple:
    """(start, end) of the raster's default time window, µs since the first event: the whole
    recording, or, when the run was cut off, up to a little past the decision (25 % more, at
    least 5 ms) and past the OCT when that is later."""
    end = float(duration_us)
    if result.status == "cutoff" and result.decision_time_us is not None:
        last = max(float(result.decision_time_us), float(oct_us) if oct_us is not None else 0.0)
        end = min(end, last + max(0.25 * last, 5_000.0))
    return 0.0, max(end, 1.0)


def _context_text(mode, profile, cutoff) -> str:
    parts = [("clock-driven" if mode.startswith("clock") else "event-driven") + mode[5:] if mode else None,
             f"profile {profile}" if profile else None, cutoff or None]
    return ", ".join(p for p in parts if p)


def plot_raster(result, model, events, path, *, title=None, max_points: int = 200_000, t_start_us=None,
                t_end_us=None, mode: str | None = None, cutoff: str | None = None, oct_us: float | None = None,
                size="two-column") -> Figure:
    """Spike raster of every layer with the input events, written to ``path``.

    Time (ms since the first event) on x; on y one horizontal band per population: the input
    events at the bottom (address ``p*H*W + y*W + x``, coloured by polarity), then every spiking
    layer in model order, the output layer on top (class indices on the right when it has ≤ 20
    neurons, the prediction highlighted). When ``result.status == "cutoff"`` a dashed line marks
    the decision; input events that were not consumed are drawn in grey. ``oct_us`` (the oracle
    cutoff time: from then on the prediction is correct and never changes) is a dotted line.
    Only the window [t_start_us, t_end_us] is drawn (default :func:`default_window_us`: up to a
    little past the decision). Above ``max_points`` points in the window the densest groups are
    thinned deterministically (every k-th point) and the title says so.

    Args:
        result: a :class:`~evsim.sim.result.Result` simulated with ``record_spikes=True``.
        model: the :class:`~evsim.compile.builder.CompiledModel` that produced it.
        events: the input events that were fed (structured array with t, x, y, p).
        path: output file (.pdf, .svg or .png).
        mode: "event" or a clock description ("clock, 1 ms bins"), shown in the title.
        cutoff: a description of the cutoff rule, shown in the title.
        size: "one-column", "two-column" (default) or a width in inches.

    Returns:
        The figure; ``fig.axes[0]`` is the raster (one y tick per band, bottom to top).
    """
    check_figure_path(path)
    width = figure_width(size)
    if result.spikes is None:
        raise OptionError("the result has no spike record: simulate with record_spikes=True")
    if max_points < 1:
        raise OptionError("must be >= 1", option="max_points")
    pops = model.populations
    if list(result.node_names) != [p.name for p in pops]:
        raise OptionError("the result was not simulated with this model (population names differ)")
    events = np.asarray(events)
    t0 = int(events["t"][0]) if events.size else 0
    duration_us = float(events["t"][-1] - t0) if events.size else 0.0
    start_us, end_us = default_window_us(result, duration_us, oct_us)
    if t_start_us is not None:
        start_us = float(t_start_us)
    if t_end_us is not None:
        end_us = float(t_end_us)
    if not (math.isfinite(start_us) and math.isfinite(end_us)) or start_us < 0:
        raise OptionError(f"must be a time >= 0, got {start_us:g}", option="--t-start-us")
    if end_us <= start_us:
        raise OptionError(f"the window ends ({end_us:g} µs) before it starts ({start_us:g} µs)", option="--t-end-us")
    with paper_style():
        fig = _draw_raster(result, model, events, t0, duration_us, start_us, end_us, title, max_points, mode, cutoff,
                           oct_us, width)
        save_figure(fig, path)
    return fig


def _draw_raster(result, model, events, t0, duration_us, start_us, end_us, title, max_points, mode, cutoff, oct_us,
                 width) -> Figure:
    pops = model.populations
    t_in_ms = (events["t"].astype(np.int64) - t0) / 1000.0 if events.size else np.zeros(0)
    n_consumed = min(int(result.events_consumed), int(events.size))
    lo_ms, hi_ms = start_us / 1000.0, end_us / 1000.0

    readout = int(model.readout[0])
    layers = [i for i, p in enumerate(pops) if p.spiking and p.nir_type != "Input"]
    if readout in layers:  # the output layer goes on top
        layers.remove(readout)
        layers.append(readout)
    out_labelled = bool(layers) and layers[-1] == readout and pops[readout].size <= 20

    # ---- point groups in the window: (band, xs, ys_local, colour, label) ----
    in_shape = tuple(int(s) for s in model.input_shape)
    in_size = int(np.prod(in_shape))
    addr = _input_addresses(events, in_shape) if events.size else np.zeros(0, np.int64)
    channels = events["p"].astype(np.int64) if events.size and len(in_shape) >= 2 else np.zeros(events.size, np.int64)
    n_channels = in_shape[0] if len(in_shape) >= 2 else 1
    in_window = (t_in_ms >= lo_ms) & (t_in_ms <= hi_ms)
    consumed = np.arange(events.size) < n_consumed
    groups = []
    if n_channels <= 2 and len(in_shape) >= 2:
        for c in range(n_channels):
            sel = np.flatnonzero((channels == c) & consumed & in_window)
            name = ("OFF", "ON")[c] if n_channels == 2 else ""
            groups.append((0, t_in_ms[sel], addr[sel], POLARITY_COLOURS[c], f"input p={c} {name}".rstrip()))
    else:
        sel = np.flatnonzero(consumed & in_window)
        groups.append((0, t_in_ms[sel], addr[sel], POLARITY_COLOURS[0], "input events"))
    if n_consumed < events.size:
        sel = np.flatnonzero(~consumed & in_window)
        groups.append((0, t_in_ms[sel], addr[sel], GREY, "input, not consumed"))
    spikes = result.spikes
    spike_ms = spikes["t_us"] / 1000.0
    for band, p in enumerate(layers, start=1):
        sel = (spikes["node"] == p) & (spike_ms >= lo_ms) & (spike_ms <= hi_ms)
        colour = LAYER_COLOURS[(band - 1) % len(LAYER_COLOURS)] if p != readout else OUTPUT_COLOUR
        groups.append((band, spike_ms[sel], spikes["neuron"][sel], colour, None))

    sizes = [len(g[1]) for g in groups]
    strides = _strides(sizes, max_points)
    shown = sum(int(math.ceil(s / k)) for s, k in zip(sizes, strides))

    # ---- band geometry ----
    band_names = ["input events"] + [pops[p].name for p in layers]
    band_sizes = [in_size] + [pops[p].size for p in layers]
    heights = [_band_height(s, out_labelled and b == len(band_sizes) - 1) for b, s in enumerate(band_sizes)]
    bottoms = np.concatenate([[0.0], np.cumsum(heights)[:-1]])
    total_h = float(sum(heights))

    fig_h = min(0.95 * width, max(2.6, 1.2 + 0.24 * total_h))
    fig = new_figure(width, fig_h)
    ax = fig.add_subplot()
    ax.set_label("raster")
    axes_h_pt = (fig_h - 1.2) * 72.0

    for (band, xs, local, colour, label), k in zip(groups, strides):
        if k > 1:
            xs, local = xs[::k], local[::k]
        size = band_sizes[band]
        ys = bottoms[band] + heights[band] * (local + 0.5) / size
        row_pt = axes_h_pt * heights[band] / total_h / size
        ms = float(np.clip(row_pt * 0.9, 1.5, 5.0))
        ax.plot(xs, ys, linestyle="none", marker="|", markersize=ms, markeredgewidth=0.6 if row_pt > 2 else 0.4,
                color=colour, alpha=0.85 if colour != GREY else 0.9, rasterized=len(xs) > 2000, label=label)

    # separators, band labels
    for b in range(1, len(heights)):
        ax.axhline(bottoms[b], color="0.55", linewidth=0.5, zorder=0.5)
    ax.set_yticks(bottoms + np.asarray(heights) / 2)
    ax.set_yticklabels([f"{n}\n{s:,} neurons" for n, s in zip(band_names, band_sizes)], fontsize=6.5)
    ax.tick_params(axis="y", length=0)
    ax.set_ylim(0, total_h)
    ax.set_xlim(lo_ms, hi_ms)
    shown_range = "" if (lo_ms <= 0 and hi_ms * 1000.0 >= duration_us) else \
        f" — showing {lo_ms:g}–{hi_ms:.3g} ms of {duration_us / 1000.0:.4g} ms"
    ax.set_xlabel("time since the first event (ms)" + shown_range)
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
        right.set_yticklabels([str(c) for c in range(n_out)], fontsize=6)
        right.tick_params(axis="y", length=2, pad=1)
        right.set_ylabel("class", loc="top")
        for sp in ("top", "left", "bottom"):
            right.spines[sp].set_visible(False)
        if result.prediction is not None and 0 <= result.prediction < n_out:
            c = int(result.prediction)
            ax.axhspan(centres[c] - row_h / 2, centres[c] + row_h / 2, color="#ffd54f", alpha=0.45, zorder=0,
                       linewidth=0)
            right.get_yticklabels()[c].set_fontweight("bold")

    # cutoff decision and OCT
    handles, labels = ax.get_legend_handles_labels()
    if result.status == "cutoff" and result.decision_time_us is not None:
        x = result.decision_time_us / 1000.0
        ax.axvspan(x, max(hi_ms, x), color="0.5", alpha=0.07, zorder=0, linewidth=0)
        ax.axvline(x, color=CUTOFF_COLOUR, linestyle="--", linewidth=1.1, zorder=3, gid="cutoff")
        span = hi_ms - lo_ms
        left_side = x > lo_ms + 0.6 * span
        ax.text(x + (-0.006 if left_side else 0.006) * span, 0.995, cutoff_text(result),
                transform=blended_transform_factory(ax.transData, ax.transAxes),
                ha="right" if left_side else "left", va="top", fontsize=6.5, color=CUTOFF_COLOUR,
                bbox=dict(boxstyle="round,pad=0.2", facecolor="white", edgecolor="none", alpha=0.85),
                zorder=4, gid="cutoff-label")
        handles.append(Line2D([], [], color=CUTOFF_COLOUR, linestyle="--", linewidth=1.1))
        labels.append("cutoff decision")
    if oct_us is not None and math.isfinite(oct_us):
        x = oct_us / 1000.0
        ax.axvline(x, color=OCT_COLOUR, linestyle=":", linewidth=1.3, zorder=3, gid="oct")
        handles.append(Line2D([], [], color=OCT_COLOUR, linestyle=":", linewidth=1.3))
        labels.append(f"OCT {x:.1f} ms (correct from here on)")
    legend_handles = [Line2D([], [], linestyle="none", marker="s", markersize=5, color=h.get_color())
                      if h.get_linestyle() in ("None", "none", "") else h for h in handles]
    if legend_handles:
        ax.legend(legend_handles, labels, loc="lower left", bbox_to_anchor=(0.0, 1.0),
                  ncol=min(len(labels), 2 if width < 5 else (3 if len(labels) > 4 else len(labels))), frameon=False, borderaxespad=0.2,
                  handletextpad=0.3, columnspacing=1.0)

    head = title if title is not None else f"Spike raster: prediction {result.prediction}"
    context = _context_text(mode, model.profile.name if getattr(model, "profile", None) else None, cutoff)
    head += "\n" + ", ".join(p for p in (context, f"{result.events_consumed:,} of {result.events_total:,} input "
                                                  f"events consumed") if p)
    if any(k > 1 for k in strides):
        thinned = [band_names[g[0]] if g[0] else "input" for g, k in zip(groups, strides) if k > 1]
        ks = sorted({k for k in strides if k > 1})
        every = f"every {_ordinal(ks[0])}" if len(ks) == 1 else f"every {_ordinal(ks[0])}–{_ordinal(ks[-1])}"
        head += (f"\n(subsampled for display: {shown:,} of {sum(sizes):,} points, "
                 f"{every} point of {', '.join(dict.fromkeys(thinned))})")
    fig.suptitle(head)
    return fig

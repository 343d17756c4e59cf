"""The output evidence of one sample over time: the accumulated output vector a(t) per class and
the confidence (top1 − top2 gap, max softmax) with the cutoff threshold β."""

from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure

from ..errors import OptionError
from .raster import CUTOFF_COLOUR, cutoff_text
from .style import check_figure_path, figure_width, new_figure, paper_style, save_figure

__all__ = ["plot_evidence"]

_BETA_COLOUR = "#D55E00"


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
                  cutoff_mode: str = "topk", size="two-column") -> Figure:
    """The output vector and the confidence over time for one sample, written to ``path``.

    Top: the accumulated output a(t) of every class as step lines (legend by class index; the
    final prediction drawn thick, the true ``label`` dashed when it differs). Bottom: the
    top1 − top2 gap (left axis) and max softmax(a/T) (right axis), the threshold β as a dashed
    line (a number, or ``(bin_width_us, thresholds)`` drawn as a staircase; on the gap axis for
    ``cutoff_mode="topk"``, on the softmax axis for ``"conf"``), and the cutoff decision.

    Args:
        result: a :class:`~evsim.sim.result.Result` simulated with ``record_output=True``.
        temperature: T of the softmax.
        size: "one-column", "two-column" (default) or a width in inches.

    Returns:
        The figure (``fig.axes[0]``: output, ``fig.axes[1]``: gap, ``fig.axes[2]``: softmax).
    """

    check_figure_path(path)
    width = figure_width(size)
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

    with paper_style():
        fig = _draw_evidence(result, path, xs, vs, t_end, n_out, vectors, width, temperature, beta, title, label,
                             cutoff_mode)
    return fig


def _draw_evidence(result, path, xs, vs, t_end, n_out, vectors, width, temperature, beta, title, label,
                   cutoff_mode) -> Figure:
    from ..analysis.trajectory import gap_of, softmax_confidence_of

    fig = new_figure(width, width * 0.62)
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
        lw = 1.9 if is_pred else (1.5 if is_label else 0.9)
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
    ax_out.legend(title="class", loc="upper left", bbox_to_anchor=(1.08, 1.0),
                  frameon=False, borderaxespad=0.0)
    ax_out.grid(alpha=0.25)

    gap = gap_of(vs) if n_out else np.zeros(len(xs))
    soft = softmax_confidence_of(vs, temperature) if n_out else np.zeros(len(xs))
    ax_soft = ax_gap.twinx()
    ax_soft.set_label("softmax")
    (l_gap,) = ax_gap.step(xs, gap, where="post", color="0.1", linewidth=1.3, label="top1 − top2 gap (left)")
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
            a.axvline(x, color=CUTOFF_COLOUR, linestyle=":", linewidth=1.3, zorder=5, gid="cutoff")
        k = int(np.searchsorted(xs, x, side="right") - 1)
        y = (gap if cutoff_mode == "topk" else soft)[max(k, 0)]
        (l_cut,) = target.plot([x], [y], marker="o", markersize=7, markerfacecolor="white",
                               markeredgecolor=CUTOFF_COLOUR, markeredgewidth=1.8, linestyle="none", zorder=6,
                               label=cutoff_text(result))
        handles.append(l_cut)
    ax_gap.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.08, 1.0), frameon=False,
                  borderaxespad=0.0)
    ax_gap.set_xlim(0, t_end / 1000.0 * 1.01)

    if title is None:
        verdict = "" if label is None else f", label {label} ({'correct' if pred == label else 'wrong'})"
        title = f"Output evidence: prediction {pred}{verdict}"
    fig.suptitle(title)
    save_figure(fig, path)
    return fig


def _tab20(i: int):
    from matplotlib import colormaps

    return colormaps["tab20"](i % 20)


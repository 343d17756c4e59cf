"""Per-class figures from one ``evsim eval --json`` result: the confusion matrix, the accuracy of
each class with its Wilson interval, and the decision latency of each class (median and
interquartile range over its samples). Computed from the per-sample records (``samples``)."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from ..errors import OptionError
from .results import accuracy_interval, check_doc, class_table, describe, is_complete, sample_arrays
from .accuracy import wrap_title
from .style import check_figure_path, figure_width, new_figure, paper_style, save_figure

__all__ = ["plot_classes"]


def plot_classes(result: dict, path, *, title=None, size="two-column", confidence: float = 0.95) -> Figure:
    """Confusion matrix, per-class accuracy and per-class decision latency of one eval result.

    The confusion matrix is normalised per true class (row sums 1; the image holds those
    fractions, the cells their counts); a column "none" counts samples without a prediction when
    there are any. Accuracy per class: marker and Wilson interval, the overall accuracy as a line.
    Decision latency per class: median with the interquartile range of ``decision_time_us``.

    Returns:
        The figure (axes labelled "confusion", "accuracy", "latency").
    """
    check_figure_path(path)
    width = figure_width(size)
    check_doc(result, result.get("_path", "the result") if isinstance(result, dict) else "the result")
    table = class_table(result, confidence)
    if table is None:
        raise OptionError(f"{result.get('_path', 'the result')} has no per-sample records with labels "
                          f"(`samples`); per-class figures need them", option="RESULT")
    with paper_style():
        fig = _draw(result, table, width, title, confidence)
        save_figure(fig, path)
    return fig


def _draw(doc, table, width, title, confidence) -> Figure:
    rows, cm = table
    labels, _, times, _ = sample_arrays(doc)
    k = len(rows)
    with_none = bool(cm[:, k].sum())
    counts = cm if with_none else cm[:, :k]
    totals = counts.sum(axis=1, keepdims=True)
    fractions = np.divide(counts, totals, out=np.zeros(counts.shape, float), where=totals > 0)

    stacked = width < 5.0
    if stacked:
        fig = new_figure(width, width * 0.95 + 2.0 * 1.5)
        gs = fig.add_gridspec(3, 1, height_ratios=[width * 0.95, 1.5, 1.5])
        ax_cm, ax_acc, ax_lat = (fig.add_subplot(gs[i]) for i in range(3))
    else:
        fig = new_figure(width, 2.7)
        gs = fig.add_gridspec(1, 3, width_ratios=[1.15, 1.0, 1.0])
        ax_cm, ax_acc, ax_lat = (fig.add_subplot(gs[i]) for i in range(3))
    ax_cm.set_label("confusion")
    ax_acc.set_label("accuracy")
    ax_lat.set_label("latency")

    # confusion matrix
    image = ax_cm.imshow(fractions, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")
    fs = 6 if k <= 12 else 4.5
    if k <= 20:
        for i in range(counts.shape[0]):
            for j in range(counts.shape[1]):
                if counts[i, j]:
                    ax_cm.text(j, i, str(int(counts[i, j])), ha="center", va="center", fontsize=fs,
                               color="white" if fractions[i, j] > 0.55 else "black")
    cols = [str(c) for c in range(k)] + (["none"] if with_none else [])
    ax_cm.set_xticks(range(len(cols)))
    ax_cm.set_xticklabels(cols, fontsize=6)
    ax_cm.set_yticks(range(k))
    ax_cm.set_yticklabels([str(c) for c in range(k)], fontsize=6)
    ax_cm.set_xlabel("predicted class")
    ax_cm.set_ylabel("true class")
    ax_cm.set_title("confusion matrix (counts)")
    ax_cm.tick_params(length=0)
    bar = fig.colorbar(image, ax=ax_cm, fraction=0.05, pad=0.02)
    bar.ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=0))
    bar.ax.tick_params(labelsize=6)

    # accuracy per class with its interval
    present = [r for r in rows if r["n"]]
    xs = np.array([r["label"] for r in present])
    acc = np.array([r["accuracy"] for r in present])
    err = np.array([[r["accuracy"] - r["low"], r["high"] - r["accuracy"]] for r in present]).T.reshape(2, -1)
    ax_acc.errorbar(xs, acc, yerr=err, fmt="o", color="#0072B2", markersize=3.5, elinewidth=0.9, capsize=1.8,
                    label=f"per class ({int(confidence * 100)} % Wilson)")
    overall = accuracy_interval(doc, confidence)
    ax_acc.axhline(overall["accuracy"], color="0.3", linewidth=0.8, linestyle="--", label="overall", gid="overall")
    ax_acc.set_xticks(range(k))
    ax_acc.set_xlim(-0.6, k - 0.4)
    lo = min(float(np.min([r["low"] for r in present])) if present else 0.0, overall["low"])
    ax_acc.set_ylim(max(0.0, np.floor((lo - 0.02) * 20) / 20), 1.005)
    ax_acc.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=0))
    ax_acc.set_xlabel("true class")
    ax_acc.set_ylabel("accuracy")
    ax_acc.set_title("accuracy per class")
    ax_acc.grid(alpha=0.3, axis="y")
    ax_acc.legend(loc="lower left", frameon=False, fontsize=6)

    # decision latency per class: median and interquartile range
    med, q1, q3, xs_l = [], [], [], []
    for c in range(k):
        t = times[(labels == c) & np.isfinite(times)] / 1000.0
        if t.size:
            xs_l.append(c)
            med.append(float(np.median(t)))
            q1.append(float(np.percentile(t, 25)))
            q3.append(float(np.percentile(t, 75)))
    med, q1, q3 = np.array(med), np.array(q1), np.array(q3)
    if len(xs_l):
        ax_lat.errorbar(xs_l, med, yerr=np.vstack([med - q1, q3 - med]), fmt="D", color="#D55E00", markersize=3,
                        elinewidth=0.9, capsize=1.8, label="median, interquartile range")
        ax_lat.legend(loc="upper left", frameon=False, fontsize=6)
    ax_lat.set_xticks(range(k))
    ax_lat.set_xlim(-0.6, k - 0.4)
    ax_lat.set_ylim(0, 1.25 * float(q3.max()) if len(xs_l) and q3.max() > 0 else 1.0)  # room for the legend
    ax_lat.set_xlabel("true class")
    ax_lat.set_ylabel("decision latency (ms)")
    ax_lat.set_title("decision latency per class")
    ax_lat.grid(alpha=0.3, axis="y")

    if title is None:
        title = (f"Per class: {describe(doc)}, {overall['n']} samples, accuracy {100 * overall['accuracy']:.2f} %"
                 + ("" if is_complete(doc) else " [incomplete run]"))
    if title:
        fig.suptitle(wrap_title(title, width))
    return fig

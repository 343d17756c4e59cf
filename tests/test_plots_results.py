"""Figures of evaluation results (accuracy vs latency / events, per class, temporal flexibility):
what is drawn equals what the JSON says, read back from the matplotlib artists, with intervals
and confusion matrices recomputed here from their definitions."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.image as mpimg  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402
from matplotlib.container import ErrorbarContainer  # noqa: E402

import evsim  # noqa: E402
from _evaldocs import make_doc, wilson  # noqa: E402
from evsim.plots import plot_accuracy, plot_classes, plot_temporal  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------------------------
# independent computations and synthetic eval documents
# --------------------------------------------------------------------------------------------


def errorbars(ax) -> dict:
    """label → (x data, y data, [(x0, y0, x1, y1) of each bar]) of the errorbar containers."""
    out = {}
    for c in ax.containers:
        if isinstance(c, ErrorbarContainer):
            line = c.lines[0]
            segs = [tuple(np.asarray(s).ravel()) for col in c.lines[2] for s in col.get_segments()]
            out[c.get_label()] = (np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float), segs)
    return out


def panel(fig, name):
    return next(a for a in fig.axes if a.get_label() == name)


def legend_texts(fig) -> list:
    return [t.get_text() for t in fig.legends[0].get_texts()]


# --------------------------------------------------------------------------------------------
# accuracy figure
# --------------------------------------------------------------------------------------------


def test_each_result_is_a_marker_with_its_wilson_interval_at_its_latency_and_fraction(tmp_path):
    docs = [make_doc(n=60, n_wrong=3), make_doc(n=60, n_wrong=9, seed=1, latency_us=40_000.0, fraction=0.1,
                                                cutoff={"mode": "topk", "threshold": 4.0})]
    fig = plot_accuracy(docs, tmp_path / "acc.pdf")
    assert (tmp_path / "acc.pdf").read_bytes()[:5] == b"%PDF-"
    bars_lat = errorbars(panel(fig, "latency"))
    bars_frac = errorbars(panel(fig, "fraction"))
    bars_spd = errorbars(panel(fig, "speedup"))
    for doc, label in zip(docs, ["event, no cutoff", "event, top-k β=4"]):
        k = sum(s["correct"] for s in doc["samples"])
        lo, hi = wilson(k, 60)
        x, y, segs = bars_lat[label]
        assert x[0] == pytest.approx(np.mean([s["decision_time_us"] for s in doc["samples"]]) / 1000.0)
        assert y[0] == pytest.approx(k / 60)
        assert segs[0][1] == pytest.approx(lo, abs=1e-12) and segs[0][3] == pytest.approx(hi, abs=1e-12)
        x, y, segs = bars_frac[label]
        assert x[0] == pytest.approx(doc["mean_events_fraction"]) and y[0] == pytest.approx(k / 60)
        # speed-up panel: accuracy on x, the interval horizontal
        x, y, segs = bars_spd[label]
        assert y[0] == pytest.approx(1.0 / doc["mean_events_fraction"])
        assert (segs[0][0], segs[0][2]) == pytest.approx((lo, hi), abs=1e-12)
    # the accuracy axis is zoomed onto the intervals (not 0–100 %), and contains all of them
    y0, y1 = panel(fig, "latency").get_ylim()
    lows = [wilson(sum(s["correct"] for s in d["samples"]), 60)[0] for d in docs]
    assert 0.5 < y0 <= min(lows) and y1 <= 1.0 + 1e-9
    assert fig.get_figwidth() == pytest.approx(7.2)


def test_interval_from_accuracy_times_n_when_the_file_has_no_samples(tmp_path):
    doc = make_doc(n=200, n_wrong=10, samples=False)
    fig = plot_accuracy([doc], tmp_path / "acc.svg")
    (_, y, segs), = errorbars(panel(fig, "latency")).values()
    assert y[0] == pytest.approx(0.95)
    assert (segs[0][1], segs[0][3]) == pytest.approx(wilson(190, 200), abs=1e-12)
    text = (tmp_path / "acc.svg").read_text()
    assert text.lstrip().startswith("<?xml") and "<svg" in text


def test_older_files_without_samples_anytime_or_complete_still_plot(tmp_path):
    old = {"accuracy": 0.9, "n_samples": 100, "mean_events_fraction": 0.5, "mean_latency_us": 50_000.0,
           "mode": "event", "cutoff": "topk"}
    fig = plot_accuracy([old], tmp_path / "old.png")
    (x, y, segs), = errorbars(panel(fig, "latency")).values()
    assert (x[0], y[0]) == pytest.approx((50.0, 0.9))
    assert (segs[0][1], segs[0][3]) == pytest.approx(wilson(90, 100), abs=1e-12)
    assert legend_texts(fig) == ["event, top-k cutoff"]
    with pytest.raises(evsim.OptionError, match="nothing to place it at"):
        plot_accuracy([{"accuracy": 0.9}], tmp_path / "bare.png")


def test_anytime_curves_are_lines_with_the_data_and_sweeps_are_points_only(tmp_path):
    doc = make_doc()
    fig = plot_accuracy([doc], tmp_path / "acc.png", log_x=False)
    ax = panel(fig, "latency")
    curve = next(line for line in ax.lines if line.get_label().startswith("anytime"))
    assert np.array_equal(curve.get_xdata(), np.asarray(doc["anytime"]["time_us"]) / 1000.0)
    assert np.array_equal(curve.get_ydata(), doc["anytime"]["accuracy_vs_time"])
    assert curve.get_linestyle() == "-"
    sweep = next(line for line in ax.lines if "sweep" in line.get_label())
    assert sweep.get_linestyle() == "None"  # measured operating points, not joined
    assert np.allclose(sweep.get_xdata(), [s["mean_latency_us"] / 1000 for s in doc["anytime"]["sweep"]])
    assert np.allclose(sweep.get_ydata(), [s["accuracy"] for s in doc["anytime"]["sweep"]])
    frac = next(line for line in panel(fig, "fraction").lines if line.get_label().startswith("anytime"))
    assert np.array_equal(frac.get_ydata(), doc["anytime"]["accuracy_vs_fraction"])
    # speed-up panel: the anytime curve by fraction as (accuracy, 1/fraction) for fraction > 0
    spd = next(line for line in panel(fig, "speedup").lines if line.get_label().startswith("anytime"))
    f = np.asarray(doc["anytime"]["fraction"])
    assert np.allclose(spd.get_ydata(), 1.0 / f[f > 0])
    assert (tmp_path / "acc.png").read_bytes()[:8] == PNG_SIGNATURE


def test_clock_settings_are_separate_labelled_markers_never_joined(tmp_path):
    docs = [make_doc(mode="clock", profile="sinabs", bin_us=w, seed=i, n_wrong=2 + i, fraction=1.0,
                     latency_us=300_000.0 + w)
            for i, w in enumerate((1000.0, 5000.0, 20000.0))]
    docs.append(make_doc(mode="clock", profile="sinabs", n_bins=1, n_wrong=12, fraction=1.0, latency_us=300_000.0))
    fig = plot_accuracy(docs, tmp_path / "clock.png")
    ax = panel(fig, "latency")
    bars = errorbars(ax)
    assert set(bars) == {"clock 1 ms bins, no cutoff", "clock 5 ms bins, no cutoff", "clock 20 ms bins, no cutoff",
                         "clock 1 bin per recording, no cutoff"}
    assert all(len(x) == 1 for x, _, _ in bars.values())
    # no line through several clock results
    assert not [line for line in ax.lines if line.get_linestyle() != "None" and len(line.get_xdata()) > 1
                and "clock" in line.get_label() and "anytime" not in line.get_label()]
    notes = sorted(t.get_text() for t in ax.texts if t.get_gid() == "clock-label")
    assert notes == sorted(["1 ms", "5 ms", "20 ms", "1 bin"])


def test_colours_follow_the_configuration_not_the_file_order(tmp_path):
    a = make_doc()
    b = make_doc(seed=2, n_wrong=6, cutoff={"mode": "topk", "table": [None, 3.0, 4.0], "bin_width_us": 10_000.0},
                 latency_us=30_000.0, fraction=0.2)
    c = make_doc(mode="clock", profile="sinabs", bin_us=1000.0, n_wrong=4, fraction=1.0)
    colours = []
    for i, docs in enumerate(([a, b, c], [c, b, a], [b, a])):
        fig = plot_accuracy(docs, tmp_path / f"c{i}.png")
        bars = panel(fig, "latency").containers
        colours.append({c.get_label(): to_hex(c.lines[0].get_color()) for c in bars if isinstance(c, ErrorbarContainer)})
    for label in colours[2]:
        label_in_first = next(k for k in colours[0] if k.startswith(label.split(", speck")[0]))
        assert colours[2][label] == colours[0][label_in_first]
    assert colours[0] == colours[1]
    assert len(set(colours[0].values())) == 3


def test_identical_results_of_two_profiles_are_one_series_named_both(tmp_path):
    speck, sinabs = make_doc(profile="speck"), make_doc(profile="sinabs")
    fig = plot_accuracy([speck, sinabs], tmp_path / "same.png")
    texts = legend_texts(fig)
    assert "event, no cutoff (speck = sinabs, identical)" in texts
    assert "anytime, event (speck = sinabs, identical)" in texts
    assert len(errorbars(panel(fig, "latency"))) == 1
    # different numbers stay apart, each named with its profile
    other = make_doc(profile="sinabs", n_wrong=8, seed=5)
    texts = legend_texts(plot_accuracy([speck, other], tmp_path / "diff.png"))
    assert "event, no cutoff, speck" in texts and "event, no cutoff, sinabs" in texts


def test_incomplete_results_are_marked_in_the_legend(tmp_path):
    doc = make_doc(complete=False, n=40)
    fig = plot_accuracy([doc, make_doc(seed=3, cutoff={"mode": "topk", "threshold": 3.0})], tmp_path / "inc.png")
    texts = legend_texts(fig)
    assert "event, no cutoff [incomplete: 40 samples]" in texts
    assert "event, top-k β=3" in texts


def test_options_sizes_limits_names_labels_panels(tmp_path):
    docs = [make_doc(), make_doc(seed=1, n_wrong=20, cutoff={"mode": "topk", "threshold": 2.0}, latency_us=30_000.0)]
    fig = plot_accuracy(docs, tmp_path / "o.svg", size="one-column", panels=["latency"], accuracy_lim=(0.8, 1.0),
                        latency_lim=(10.0, 500.0), names=["reference", "early"], labels={"latency": "t (ms)"},
                        title="T")
    assert fig.get_figwidth() == pytest.approx(3.5)
    assert [a.get_label() for a in fig.axes] == ["latency"]
    ax = fig.axes[0]
    assert ax.get_ylim() == pytest.approx((0.8, 1.0)) and ax.get_xlim() == pytest.approx((10.0, 500.0))
    assert ax.get_xlabel() == "t (ms)"
    texts = legend_texts(fig)
    assert "reference" in texts
    # the second result (40/60 = 66.7 %) lies below 80 %: drawn on the lower edge as ▼ with its value
    off = [line for line in ax.lines if line.get_gid() == "off-scale"]
    assert len(off) == 1 and off[0].get_ydata()[0] == pytest.approx(0.8)
    assert any(t.get_text() == "66.7 %" for t in ax.texts)
    assert fig._suptitle.get_text() == "T"


@pytest.mark.parametrize("kwargs, match", [
    ({"panels": ["nonsense"]}, "panels"), ({"accuracy_lim": (1.0, 0.5)}, "LOW < HIGH"), ({"size": "huge"}, "width"),
    ({"names": ["a", "b"]}, "2 series names for 1 results"),
])
def test_bad_options_are_option_errors(tmp_path, kwargs, match):
    with pytest.raises(evsim.OptionError, match=match):
        plot_accuracy([make_doc()], tmp_path / "x.png", **kwargs)
    assert not (tmp_path / "x.png").exists()


# --------------------------------------------------------------------------------------------
# per class
# --------------------------------------------------------------------------------------------


def test_classes_figure_confusion_matrix_accuracy_and_latency_per_class(tmp_path):
    doc = make_doc(n=100, n_wrong=11, seed=4, latency_us=50_000.0)
    doc["samples"][7]["prediction"] = None  # one sample without a prediction
    doc["samples"][7]["correct"] = False
    fig = plot_classes(doc, tmp_path / "cls.pdf")
    assert (tmp_path / "cls.pdf").read_bytes()[:5] == b"%PDF-"
    # the confusion matrix written out: counts[label][prediction], last column "none"
    counts = np.zeros((5, 6))
    for s in doc["samples"]:
        counts[s["label"], 5 if s["prediction"] is None else s["prediction"]] += 1
    expected = counts / counts.sum(axis=1, keepdims=True)
    image = panel(fig, "confusion").images[0].get_array()
    assert np.allclose(np.asarray(image), expected)
    assert [t.get_text() for t in panel(fig, "confusion").get_xticklabels()][-1] == "none"
    # accuracy per class with Wilson intervals
    (x, y, segs), = errorbars(panel(fig, "accuracy")).values()
    for c in range(5):
        n = counts[c].sum()
        k = counts[c, c]
        assert y[c] == pytest.approx(k / n)
        assert (segs[c][1], segs[c][3]) == pytest.approx(wilson(int(k), int(n)), abs=1e-12)
    overall = next(line for line in panel(fig, "accuracy").lines if line.get_gid() == "overall")
    assert overall.get_ydata()[0] == pytest.approx(np.mean([s["correct"] for s in doc["samples"]]))
    # decision latency per class: median (ms) and the quartiles
    (x, y, segs), = errorbars(panel(fig, "latency")).values()
    for c in range(5):
        t = np.array([s["decision_time_us"] for s in doc["samples"] if s["label"] == c]) / 1000.0
        assert y[c] == pytest.approx(np.median(t))
        assert (segs[c][1], segs[c][3]) == pytest.approx((np.percentile(t, 25), np.percentile(t, 75)))


def test_classes_need_the_per_sample_records(tmp_path):
    with pytest.raises(evsim.OptionError, match="per-sample records"):
        plot_classes(make_doc(samples=False), tmp_path / "c.png")


# --------------------------------------------------------------------------------------------
# temporal flexibility
# --------------------------------------------------------------------------------------------


def test_temporal_figure_places_each_clock_result_at_its_bin_width(tmp_path):
    widths = (1000.0, 5000.0, 20000.0)
    docs = [make_doc(mode="clock", profile="sinabs", bin_us=w, seed=i, n_wrong=2 + 2 * i, fraction=1.0,
                     oct_mean_us=20_000.0 + w) for i, w in enumerate(widths)]
    docs.append(make_doc(mode="clock", profile="sinabs", n_bins=1, n_wrong=15, fraction=1.0, latency_us=300_000.0))
    docs.append(make_doc(n_wrong=1, oct_mean_us=18_000.0))
    fig = plot_temporal(docs, tmp_path / "t.png")
    assert fig.get_figwidth() == pytest.approx(3.5)
    ax = panel(fig, "accuracy")
    (x, y, segs), = errorbars(ax).values()
    one_bin = docs[3]["mean_latency_us"] / 1000.0  # one bin: as wide as the recording (its mean duration)
    assert np.allclose(x, [1.0, 5.0, 20.0, one_bin])
    assert np.allclose(y, [d["accuracy"] for d in docs[:4]])
    for seg, d in zip(segs, docs[:4]):
        k = sum(s["correct"] for s in d["samples"])
        assert (seg[1], seg[3]) == pytest.approx(wilson(k, 60), abs=1e-12)
    event = next(line for line in ax.lines if line.get_gid() == "event")
    assert event.get_ydata()[0] == pytest.approx(docs[4]["accuracy"])
    oct_ax = panel(fig, "oct")
    clock_oct = next(line for line in oct_ax.lines if line.get_label() == "clock-driven")
    assert np.allclose(clock_oct.get_ydata(), [21.0, 25.0, 40.0, 20.0])
    assert clock_oct.get_linestyle() == "None"
    assert ax.get_xscale() == "log"


def test_temporal_refuses_mixed_models_and_cutoff_runs(tmp_path):
    a = make_doc(mode="clock", bin_us=1000.0)
    b = make_doc()
    b["model_hash"] = "other"
    with pytest.raises(evsim.OptionError, match="different models"):
        plot_temporal([a, b], tmp_path / "t.png")
    with pytest.raises(evsim.OptionError, match="cutoff"):
        plot_temporal([a, make_doc(cutoff={"mode": "topk", "threshold": 3.0})], tmp_path / "t.png")
    with pytest.raises(evsim.OptionError, match="no clock-driven"):
        plot_temporal([make_doc()], tmp_path / "t.png")


# --------------------------------------------------------------------------------------------
# numbers a figure cannot draw: refused with one line naming the file and the field
# --------------------------------------------------------------------------------------------


def _set(path, value):
    """An edit of a document: the value at ``path`` ("anytime.time_us.3") set to ``value``."""
    def edit(doc):
        *keys, last = path.split(".")
        target = doc
        for k in keys:
            target = target[int(k)] if isinstance(target, list) else target[k]
        target[int(last) if isinstance(target, list) else last] = value
    return edit


def _with_interval(low, high):
    return lambda doc: doc.update(accuracy_interval={"confidence": 0.95, "low": low, "high": high, "method": "wilson"})


NAN, INF = float("nan"), float("inf")

#: (edit of make_doc(), the field the error line must name); every edit is a value no figure can draw
#: (or draws wrongly) and that `evsim eval` never writes
UNDRAWABLE = {
    "curve-nan": (_set("anytime.accuracy_vs_time.3", NAN), "anytime.accuracy_vs_time[3]"),
    "curve-null": (_set("anytime.accuracy_vs_fraction.5", None), "anytime.accuracy_vs_fraction[5]"),
    "curve-inf": (_set("anytime.accuracy_vs_fraction.0", INF), "anytime.accuracy_vs_fraction[0]"),
    "curve-above-1": (_set("anytime.accuracy_vs_time.30", 1.5), "anytime.accuracy_vs_time[30]"),
    "time-minus-inf": (_set("anytime.time_us.2", -INF), "anytime.time_us[2]"),
    "time-string": (_set("anytime.time_us.4", "40000"), "anytime.time_us[4]"),
    "time-decreasing": (lambda d: d["anytime"]["time_us"].reverse(), "anytime.time_us[1]"),
    "fraction-nan": (_set("anytime.fraction.1", NAN), "anytime.fraction[1]"),
    "curve-longer-than-axis": (lambda d: d["anytime"]["time_us"].pop(), "anytime.accuracy_vs_time"),
    "axis-empty": (_set("anytime.fraction", []), "anytime.accuracy_vs_fraction"),
    "curve-not-a-list": (_set("anytime.accuracy_vs_time", "0.5"), "anytime.accuracy_vs_time"),
    "sweep-accuracy-nan": (_set("anytime.sweep.1.accuracy", NAN), "anytime.sweep[1].accuracy"),
    "sweep-latency-negative": (_set("anytime.sweep.0.mean_latency_us", -5.0), "anytime.sweep[0].mean_latency_us"),
    "sweep-fraction-inf": (_set("anytime.sweep.2.mean_events_fraction", INF), "anytime.sweep[2].mean_events_fraction"),
    "sweep-speedup-nan": (_set("anytime.sweep.2.speedup", NAN), "anytime.sweep[2].speedup"),
    "sweep-beta-string": (_set("anytime.sweep.0.beta", "2"), "anytime.sweep[0].beta"),
    "latency-nan": (_set("mean_latency_us", NAN), "mean_latency_us"),
    "latency-negative": (_set("mean_latency_us", -1.0), "mean_latency_us"),
    "fraction-string": (_set("mean_events_fraction", "0.4"), "mean_events_fraction"),
    "synops-inf": (_set("synops_per_sample", INF), "synops_per_sample"),
    "no-prediction-negative": (_set("no_prediction", -1), "no_prediction"),
    "interval-nan": (_with_interval(NAN, 1.0), "accuracy_interval.low"),
    "interval-below-accuracy": (_with_interval(0.5, 0.6), "accuracy_interval.high"),
    "decision-time-nan": (_set("samples.2.decision_time_us", NAN), "samples[2].decision_time_us"),
    "decision-time-negative": (_set("samples.2.decision_time_us", -3), "samples[2].decision_time_us"),
    "label-string": (_set("samples.0.label", "0"), "samples[0].label"),
    "label-float": (_set("samples.0.label", 0.0), "samples[0].label"),
    "label-negative": (_set("samples.0.label", -1), "samples[0].label"),
    "prediction-nan": (_set("samples.1.prediction", NAN), "samples[1].prediction"),
    "correct-string": (_set("samples.0.correct", "yes"), "samples[0].correct"),
    "correct-without-prediction": (_set("samples.0.prediction", None), "samples[0].correct"),
    "a-record-missing": (lambda d: d["samples"].pop(), "n_samples"),
    "accuracy-not-the-records": (_set("accuracy", 0.5), "accuracy"),
    "accuracy-string": (_set("accuracy", "0.95"), "accuracy"),
    "oct-nan": (_set("oct.mean_us", NAN), "oct.mean_us"),
    "n-bins-zero": (_set("n_bins", 0), "n_bins"),
    "model-hash-list": (_set("model_hash", [1]), "model_hash"),
    "threshold-nan": (_set("cutoff", {"mode": "topk", "threshold": NAN}), "cutoff.threshold"),
    "max-events-string": (_set("cutoff", {"mode": "none", "max_events": "100"}), "cutoff.max_events"),
}


@pytest.mark.parametrize("case", UNDRAWABLE, ids=list(UNDRAWABLE))
def test_numbers_no_figure_can_draw_are_option_errors_naming_the_file_and_field(tmp_path, case):
    """The plotting API (plot_accuracy, plot_classes, plot_temporal, report_html): an
    OptionError naming the document and the field, before anything is written (before the fix:
    a traceback half-way through the figure, e.g. "cannot convert float NaN to integer" for a NaN
    in an anytime curve, or a figure drawn from NaN, a string or a missing record)."""
    from evsim.plots import report_html

    edit, field = UNDRAWABLE[case]
    doc = make_doc()
    doc["_path"] = "mutated.json"
    edit(doc)
    clock = make_doc(mode="clock", bin_us=5000.0)
    calls = {"plot": lambda: plot_accuracy([doc], tmp_path / "a.png"),
             "plot-classes": lambda: plot_classes(doc, tmp_path / "c.png"),
             "plot-temporal": lambda: plot_temporal([clock, doc], tmp_path / "t.png"),
             "report": lambda: report_html([doc])}
    for name, call in calls.items():
        with pytest.raises(evsim.EvsimError) as info:
            call()
        message = str(info.value)
        assert isinstance(info.value, evsim.OptionError), (name, message)
        assert "mutated.json" in message and f"'{field}'" in message, (name, message)
        assert "\n" not in message, (name, message)
    assert not list(tmp_path.iterdir())  # refused before any figure was written


@pytest.mark.parametrize("case", ["curve-nan", "curve-longer-than-axis", "fraction-string", "time-decreasing",
                                  "no-prediction-negative", "interval-below-accuracy", "model-hash-list",
                                  "axis-empty", "a-record-missing"])
def test_cli_figures_and_report_refuse_them_with_one_line_and_exit_2(capsys, tmp_path, case):
    """The finding: `evsim plot` / `evsim report` of an eval result whose
    anytime.accuracy_vs_time[3] is NaN (JSON NaN) ended in a traceback, exit 1."""
    from evsim.cli import main

    edit, field = UNDRAWABLE[case]
    doc = make_doc()
    edit(doc)
    result, clock = tmp_path / "res.json", tmp_path / "clock.json"
    result.write_text(json.dumps(doc))  # (NaN written as JSON NaN, as Python's json does)
    clock.write_text(json.dumps(make_doc(mode="clock", bin_us=5000.0)))
    commands = [["plot", result, "-o", tmp_path / "p.png"], ["plot-classes", result, "-o", tmp_path / "c.png"],
                ["plot-temporal", clock, result, "-o", tmp_path / "t.png"],
                ["report", result, "-o", tmp_path / "r.html"]]
    for args in commands:
        code = main([str(a) for a in args])
        err = capsys.readouterr().err
        assert code == 2, (args[0], err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("evsim: error:"), (args[0], err)
        assert str(result) in lines[0] and f"'{field}'" in lines[0], (args[0], err)
        assert not Path(args[-1]).exists()


def test_values_eval_writes_for_no_data_are_still_drawn(tmp_path):
    """null where eval writes it (no decision time, no prediction, no OCT), a speed-up of
    Infinity (eval's 1 / 0 for a sweep entry that consumed no event) and empty anytime curves
    (no curve) are not refused: the figures leave those values out."""
    from evsim.plots import report_html

    doc = make_doc(n=60, n_wrong=3)
    doc["samples"][4]["decision_time_us"] = None
    wrong = next(s for s in doc["samples"] if not s["correct"])
    wrong["prediction"] = None
    doc["no_prediction"] = 1
    doc["oct"]["mean_us"] = None
    doc["anytime"]["sweep"].append({"beta": 0.5, "accuracy": 0.2, "mean_events_fraction": 0.0,
                                    "mean_latency_us": 0.0, "speedup": INF})
    doc["anytime"].update(time_us=[], accuracy_vs_time=[])
    fig = plot_accuracy([doc], tmp_path / "a.png", log_x=False)
    assert not [line for line in panel(fig, "latency").lines if line.get_label().startswith("anytime")]
    curve = next(line for line in panel(fig, "fraction").lines if line.get_label().startswith("anytime"))
    assert np.array_equal(curve.get_ydata(), doc["anytime"]["accuracy_vs_fraction"])
    sweep = next(line for line in panel(fig, "speedup").lines if "sweep" in line.get_label())
    y = np.asarray(sweep.get_ydata(), float)  # by β: the 1/0 point first, not drawn (NaN)
    assert np.isnan(y[0]) and np.allclose(y[1:], [1 / 0.05, 1 / 0.2, 1 / 0.5])
    fig = plot_classes(doc, tmp_path / "c.png")
    (x, y, _), = errorbars(panel(fig, "latency")).values()
    c = doc["samples"][4]["label"]
    t = [s["decision_time_us"] / 1000 for s in doc["samples"] if s["label"] == c and s["decision_time_us"] is not None]
    assert y[list(x).index(c)] == pytest.approx(np.median(t))
    plot_temporal([make_doc(mode="clock", bin_us=5000.0), doc], tmp_path / "t.png")
    assert "<svg" in report_html([doc])


def test_temporal_refuses_a_bin_width_of_zero_from_n_bins(tmp_path):
    """--n-bins: the bin width is mean_latency_us / n_bins; 0 µs cannot be placed on the log
    bin-width axis (before the fix: a figure with the result missing)."""
    clock = make_doc(mode="clock", n_bins=4, latency_us=0.0)
    clock["_path"] = "nbins.json"
    with pytest.raises(evsim.OptionError, match="nbins.json: no bin width"):
        plot_temporal([clock, make_doc()], tmp_path / "t.png")
    assert not (tmp_path / "t.png").exists()


# --------------------------------------------------------------------------------------------
# the real result files of the repository (docs/results), as the README figures use them
# --------------------------------------------------------------------------------------------


def test_real_result_files_plot_and_match_their_numbers(tmp_path):
    from pathlib import Path

    from evsim.plots import load_results

    root = Path(__file__).resolve().parents[1] / "docs" / "results"
    names = ["event_speck.json", "event_speck_topk_bins_0.01.json", "clock_sinabs_1000us.json"]
    if not all((root / n).is_file() for n in names):
        pytest.skip(f"docs/results/{names[0]} etc. not found in {root}")
    docs = load_results([root / n for n in names])
    fig = plot_accuracy(docs, tmp_path / "real.png", size="one-column")
    bars = errorbars(panel(fig, "latency"))
    raw = json.loads((root / names[1]).read_text())
    x, y, _ = bars["event, top-k calibrated per 10 ms, speck"]
    assert y[0] == pytest.approx(raw["accuracy"]) and x[0] == pytest.approx(raw["mean_latency_us"] / 1000)
    img = mpimg.imread(str(tmp_path / "real.png"))
    assert img.shape[1] == round(3.5 * 300)  # 3.5 in at 300 dpi


def test_a_json_number_of_thousands_of_digits_is_one_line_not_cut_mid_word(tmp_path):
    from evsim.paths import check_json_file

    path = tmp_path / "huge.json"
    path.write_text('{"label": ' + "9" * 5001 + "}")
    with pytest.raises(evsim.OptionError) as err:
        check_json_file(path, "RESULTS")
    message = str(err.value)
    assert "cannot be read as JSON (Exceeds the limit" in message and "\n" not in message, message
    detail = message.split("(", 1)[1]
    assert detail.endswith(" ...)") or detail.endswith("digits)"), message  # whole words only
    assert " di ..." not in message and len(message) < 250, message

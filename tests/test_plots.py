"""Figures (evsim.plots): files are written in the format of their extension, are not blank, and
show what they claim (one raster band per spiking layer, cutoff markers when the run was cut)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.image as mpimg  # noqa: E402
import nir  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import evsim  # noqa: E402
from evsim.plots import plot_accuracy, plot_evidence, plot_raster, save_figure  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
REPO_ROOT = Path(__file__).resolve().parents[1]
NMNIST_MODEL = REPO_ROOT / "evsim" / "bundled" / "nmnist_cnn" / "model.nir"


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def tiny_graph() -> nir.NIRGraph:
    """Input(12) → Linear → IF(6) → Linear → IF(3) → Output: two spiking layers, 3 classes."""
    rng = np.random.default_rng(7)
    nodes = {
        "input": nir.Input(input_type=np.array([12])),
        "fc1": nir.Linear(weight=rng.uniform(0.1, 0.7, (6, 12))),
        "hidden": nir.IF(r=np.ones(6), v_threshold=np.ones(6), v_reset=np.zeros(6)),
        "fc2": nir.Linear(weight=np.array([[0.9] * 6, [0.5] * 6, [0.2] * 6])),
        "out": nir.IF(r=np.ones(3), v_threshold=np.ones(3), v_reset=np.zeros(3)),
        "output": nir.Output(output_type=np.array([3])),
    }
    edges = [("input", "fc1"), ("fc1", "hidden"), ("hidden", "fc2"), ("fc2", "out"), ("out", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


@pytest.fixture(scope="module")
def tiny():
    model = evsim.load_model(tiny_graph())
    rng = np.random.default_rng(3)
    n = 600
    events = evsim.make_events(np.sort(rng.integers(0, 50_000, n)), rng.integers(0, 12, n))
    return model, events


def run(model, events, cutoff=None):
    sim = evsim.Simulator(model, record_spikes=True, record_output=True, cutoff=cutoff)
    return sim.run(events)


def assert_png(path: Path):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    img = mpimg.imread(str(path))
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    colours = np.unique((img[..., :3].reshape(-1, 3) * 255).round().astype(np.uint8), axis=0)
    assert len(colours) > 8, f"{path} looks blank ({len(colours)} distinct colours)"


def assert_svg(path: Path):
    text = path.read_text()
    assert "<svg" in text[:2000] and text.rstrip().endswith("</svg>")
    assert len(text) > 2000


def raster_axes(fig):
    return next(a for a in fig.axes if a.get_label() == "raster")


def band_labels(fig) -> list:
    return [t.get_text().split("\n")[0] for t in raster_axes(fig).get_yticklabels()]


def has_cutoff_marker(ax) -> bool:
    return any(artist.get_gid() == "cutoff" for artist in ax.get_children())


def eval_doc(**over) -> dict:
    doc = {
        "accuracy": 0.95, "n_samples": 20, "mean_events_fraction": 1.0, "mean_latency_us": 300_000.0,
        "mode": "event", "profile": "speck", "cutoff": {"mode": "none"},
        "anytime": {
            "time_us": list(np.linspace(0, 300_000, 11)),
            "accuracy_vs_time": [0.0, 0.2, 0.5, 0.7, 0.85, 0.9, 0.93, 0.95, 0.95, 0.95, 0.95],
            "fraction": list(np.linspace(0, 1, 11)),
            "accuracy_vs_fraction": [0.0, 0.3, 0.6, 0.8, 0.88, 0.92, 0.94, 0.95, 0.95, 0.95, 0.95],
            "sweep": [{"beta": b, "accuracy": a, "mean_events_fraction": f, "mean_latency_us": f * 300_000.0,
                       "speedup": 1.0 / f}
                      for b, a, f in ((1, 0.3, 0.05), (5, 0.6, 0.15), (10, 0.85, 0.35), (20, 0.95, 0.7))],
        },
    }
    doc.update(over)
    return doc


# --------------------------------------------------------------------------------------------
# raster
# --------------------------------------------------------------------------------------------


def test_raster_png_and_svg_one_band_per_spiking_layer(tiny, tmp_path):
    model, events = tiny
    result = run(model, events)
    assert result.spikes_per_node["hidden"] > 0 and result.spikes_per_node["out"] > 0
    fig = plot_raster(result, model, events, tmp_path / "sub" / "raster.png")
    assert_png(tmp_path / "sub" / "raster.png")  # the parent folder was created
    # bottom to top: the input events, then the spiking layers in model order, the output on top
    assert band_labels(fig) == ["input events", "hidden", "out"]
    ticks = [t.get_text() for t in raster_axes(fig).get_yticklabels()]
    assert "12 neurons" in ticks[0] and "6 neurons" in ticks[1] and "3 neurons" in ticks[2]
    # class indices of the (small) output layer on the right
    classes = next(a for a in fig.axes if a.get_label() == "classes")
    assert [t.get_text() for t in classes.get_yticklabels()] == ["0", "1", "2"]
    assert result.status == "complete" and not has_cutoff_marker(raster_axes(fig))

    plot_raster(result, model, events, tmp_path / "raster.svg")
    assert_svg(tmp_path / "raster.svg")


def test_raster_marks_the_cutoff_and_greys_unconsumed_events(tiny, tmp_path):
    model, events = tiny
    result = run(model, events, evsim.Cutoff(mode="topk", threshold=2))
    assert result.status == "cutoff" and result.events_consumed < result.events_total
    duration = float(events["t"][-1] - events["t"][0])
    fig = plot_raster(result, model, events, tmp_path / "cut.png", t_end_us=duration)
    assert_png(tmp_path / "cut.png")
    ax = raster_axes(fig)
    assert has_cutoff_marker(ax)
    texts = [t.get_text() for t in ax.texts]
    assert any(t.startswith(f"cutoff: class {result.prediction} at ") and "% of events" in t for t in texts)
    labels = ax.get_legend_handles_labels()[1]
    assert "input, not consumed" in labels
    # every input event is drawn: consumed ones in colour, the rest greyed out
    drawn = {line.get_label(): len(line.get_xdata()) for line in ax.lines if line.get_label().startswith("input")}
    assert drawn["input, not consumed"] == result.events_total - result.events_consumed
    assert sum(drawn.values()) == events.size


def test_raster_subsamples_deterministically_above_max_points(tiny, tmp_path):
    model, events = tiny
    result = run(model, events)
    fig = plot_raster(result, model, events, tmp_path / "sub.png", max_points=200)
    ax = raster_axes(fig)
    shown = sum(len(line.get_xdata()) for line in ax.lines if line.get_linestyle() == "None")
    assert shown <= 200 + len(ax.lines)  # every k-th point, rounded up per group
    assert "subsampled" in fig._suptitle.get_text()
    again = plot_raster(result, model, events, tmp_path / "sub2.png", max_points=200)
    first = [np.asarray(line.get_xdata()) for line in raster_axes(fig).lines]
    second = [np.asarray(line.get_xdata()) for line in raster_axes(again).lines]
    assert all(np.array_equal(a, b) for a, b in zip(first, second))


def test_raster_nmnist_model_with_a_synthetic_recording(tmp_path):
    model = evsim.load_model(NMNIST_MODEL, profile="speck")
    rng = np.random.default_rng(0)
    n = 4000
    # a bar sweeping across the sensor, both polarities
    t = np.sort(rng.integers(0, 100_000, n))
    x = np.clip((t / 100_000 * 30).astype(int) + rng.integers(0, 4, n), 0, 33)
    y = rng.integers(5, 29, n)
    events = evsim.make_events(t, x, y, rng.integers(0, 2, n))
    result = run(model, events)
    fig = plot_raster(result, model, events, tmp_path / "nmnist.png", title="synthetic bar")
    assert_png(tmp_path / "nmnist.png")
    spiking = [p.name for p in model.populations if p.spiking and p.nir_type != "Input"]
    assert band_labels(fig) == ["input events"] + spiking
    assert raster_axes(fig).get_yticklabels()[0].get_text().endswith(f"{2 * 34 * 34:,} neurons")


def test_raster_default_window_ends_a_little_past_the_decision_and_marks_the_oct(tiny, tmp_path):
    model, events = tiny
    result = run(model, events, evsim.Cutoff(mode="topk", threshold=2))
    decision_ms = result.decision_time_us / 1000.0
    duration_ms = float(events["t"][-1] - events["t"][0]) / 1000.0
    assert decision_ms < 0.5 * duration_ms  # else the test shows nothing
    fig = plot_raster(result, model, events, tmp_path / "w.pdf", oct_us=0.8 * result.decision_time_us,
                      mode="event", cutoff="top-k β=2")
    ax = raster_axes(fig)
    lo, hi = ax.get_xlim()
    assert lo == 0.0 and decision_ms < hi < duration_ms
    # exactly the input events inside the window are drawn (consumed + not consumed)
    t_ms = (events["t"] - events["t"][0]) / 1000.0
    drawn = sum(len(line.get_xdata()) for line in ax.lines if line.get_label().startswith("input"))
    assert drawn == int(np.sum(t_ms <= hi))
    assert all(np.all(np.asarray(line.get_xdata()) <= hi) for line in ax.lines if line.get_linestyle() == "None")
    oct_line = next(line for line in ax.lines if line.get_gid() == "oct")
    assert oct_line.get_xdata()[0] == pytest.approx(0.8 * decision_ms)
    title = fig._suptitle.get_text()
    assert "event-driven" in title and "profile nir" in title and "top-k β=2" in title
    assert "OCT" in " ".join(ax.get_legend_handles_labels()[1] + [t.get_text() for t in ax.get_legend().get_texts()])
    assert f"showing 0–{hi:.3g} ms" in ax.get_xlabel()


def test_raster_explicit_window(tiny, tmp_path):
    model, events = tiny
    result = run(model, events)
    fig = plot_raster(result, model, events, tmp_path / "w.svg", t_start_us=10_000, t_end_us=20_000, size="one-column")
    ax = raster_axes(fig)
    assert ax.get_xlim() == pytest.approx((10.0, 20.0))
    assert fig.get_figwidth() == pytest.approx(3.5)
    t_ms = (events["t"] - events["t"][0]) / 1000.0
    drawn = sum(len(line.get_xdata()) for line in ax.lines if line.get_label().startswith("input"))
    assert drawn == int(np.sum((t_ms >= 10.0) & (t_ms <= 20.0)))
    spikes = result.spikes
    hidden = model.populations.index(next(p for p in model.populations if p.name == "hidden"))
    in_window = np.sum((spikes["node"] == hidden) & (spikes["t_us"] >= 10_000) & (spikes["t_us"] <= 20_000))
    hidden_drawn = [len(line.get_xdata()) for line in ax.lines if line.get_label().startswith("_")]
    assert int(in_window) in hidden_drawn
    with pytest.raises(evsim.OptionError, match="before it starts"):
        plot_raster(result, model, events, tmp_path / "bad.png", t_start_us=5000, t_end_us=5000)


# --------------------------------------------------------------------------------------------
# evidence
# --------------------------------------------------------------------------------------------


def test_evidence_png_svg_and_cutoff_marker(tiny, tmp_path):
    model, events = tiny
    full = run(model, events)
    fig = plot_evidence(full, tmp_path / "ev.png", beta=2.0, label=0)
    assert_png(tmp_path / "ev.png")
    ax_out, ax_gap = fig.axes[0], fig.axes[1]
    assert ax_out.get_label() == "output" and ax_gap.get_label() == "gap"
    assert len([line for line in ax_out.lines if line.get_label() and not line.get_label().startswith("_")]) == 3
    assert not has_cutoff_marker(ax_gap)
    assert any(line.get_label().startswith("β = 2") for line in ax_gap.lines)

    table = [None, 3.0, 2.0]
    cut = run(model, events, evsim.Cutoff(mode="topk", table=table, bin_width_us=10_000.0))
    assert cut.status == "cutoff" and cut.decision_time_us >= 10_000.0
    fig = plot_evidence(cut, tmp_path / "ev.svg", beta=(10_000.0, table), label=1)
    assert_svg(tmp_path / "ev.svg")
    assert has_cutoff_marker(fig.axes[0]) and has_cutoff_marker(fig.axes[1])
    staircase = next(line for line in fig.axes[1].lines if line.get_label().startswith("β(t)"))
    assert np.nanmax(staircase.get_ydata()) == 3.0


def test_evidence_conf_threshold_goes_on_the_softmax_axis(tiny, tmp_path):
    model, events = tiny
    cut = run(model, events, evsim.Cutoff(mode="conf", epsilon=0.2))
    fig = plot_evidence(cut, tmp_path / "conf.png", beta=0.8, cutoff_mode="conf")
    soft = next(a for a in fig.axes if a.get_label() == "softmax")
    assert any("threshold = 0.8" in line.get_label() for line in soft.lines)


# --------------------------------------------------------------------------------------------
# formats and errors
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["fig.eps", "fig.jpg", "fig", "fig.png.txt"])
def test_unknown_extensions_are_refused(tiny, tmp_path, name):
    model, events = tiny
    result = run(model, events)
    with pytest.raises(evsim.OptionError, match=".pdf, .svg or .png"):
        plot_raster(result, model, events, tmp_path / name)
    with pytest.raises(evsim.OptionError):
        plot_evidence(result, tmp_path / name)
    with pytest.raises(evsim.OptionError):
        plot_accuracy([eval_doc()], tmp_path / name)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("ext, magic", [(".pdf", b"%PDF-"), (".svg", b"<?xml"), (".png", PNG_SIGNATURE)])
def test_every_figure_writes_pdf_svg_png_and_vector_files_are_reproducible(tiny, tmp_path, ext, magic):
    model, events = tiny
    result = run(model, events)
    for i in range(2):
        plot_raster(result, model, events, tmp_path / f"r{i}{ext}")
        plot_evidence(result, tmp_path / f"e{i}{ext}")
        plot_accuracy([eval_doc()], tmp_path / f"a{i}{ext}")
    for stem in "rea":
        first = (tmp_path / f"{stem}0{ext}").read_bytes()
        second = (tmp_path / f"{stem}1{ext}").read_bytes()
        assert first[:len(magic)] == magic
        assert first == second, f"{stem}{ext} differs between two identical calls"


def test_save_figure_creates_folders_and_accepts_upper_case(tmp_path):
    from matplotlib.figure import Figure

    fig = Figure()
    fig.add_subplot().plot([0, 1], [1, 0])
    path = save_figure(fig, tmp_path / "a" / "b" / "F.PNG")
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with pytest.raises(evsim.OptionError):
        save_figure(fig, tmp_path / "f.eps")


def test_missing_records_are_option_errors(tiny, tmp_path):
    model, events = tiny
    bare = evsim.Simulator(model).run(events)
    with pytest.raises(evsim.OptionError, match="record_spikes"):
        plot_raster(bare, model, events, tmp_path / "r.png")
    with pytest.raises(evsim.OptionError, match="record_output"):
        plot_evidence(bare, tmp_path / "e.png")
    with pytest.raises(evsim.OptionError):
        plot_accuracy([], tmp_path / "a.png")
    with pytest.raises(evsim.OptionError):
        plot_accuracy([{"samples": []}], tmp_path / "a.png")

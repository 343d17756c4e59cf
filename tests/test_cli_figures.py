"""The figure commands of the CLI: `evsim plot`, `plot-classes`, `plot-temporal`, `raster` — files in
the format of their extension, the options reach the figure, and bad input is one line, exit 2."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import evsim  # noqa: E402
import evsim.plots  # noqa: E402
from _evaldocs import make_doc  # noqa: E402
from evsim.cli import main  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
BUNDLED = REPO_ROOT / "evsim" / "bundled" / "nmnist_cnn"


def write(tmp_path, name, doc) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return str(path)


@pytest.fixture
def capture(monkeypatch):
    """The figures the commands build (the CLI imports the functions from evsim.plots)."""
    figures = {}

    def wrap(name):
        original = getattr(evsim.plots, name)

        def spy(*args, **kwargs):
            figures[name] = original(*args, **kwargs)
            return figures[name]
        monkeypatch.setattr(evsim.plots, name, spy)

    for name in ("plot_accuracy", "plot_classes", "plot_temporal", "plot_raster"):
        wrap(name)
    return figures


def test_plot_command_options_reach_the_figure(tmp_path, capture):
    a = write(tmp_path, "a.json", make_doc())
    b = write(tmp_path, "b.json", make_doc(seed=1, n_wrong=10, cutoff={"mode": "topk", "threshold": 2.0},
                                           latency_us=20_000.0, fraction=0.1))
    out = tmp_path / "fig.pdf"
    assert main(["plot", a, b, "-o", str(out), "--size", "one-column", "--accuracy-lim", "80", "100",
                 "--latency-lim", "5", "500", "--panels", "latency,speedup", "--name", "full", "--name", "early",
                 "--axis-label", "latency=decision time (ms)", "--title", ""]) == 0
    assert out.read_bytes()[:5] == b"%PDF-"
    fig = capture["plot_accuracy"]
    assert fig.get_figwidth() == pytest.approx(3.5)
    assert [ax.get_label() for ax in fig.axes] == ["latency", "speedup"]
    assert fig.axes[0].get_ylim() == pytest.approx((0.8, 1.0))
    assert fig.axes[0].get_xlim() == pytest.approx((5.0, 500.0))
    assert fig.axes[0].get_xlabel() == "decision time (ms)"
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "full" in texts and "early" in texts


@pytest.mark.parametrize("args, message", [
    (["-o", "{tmp}/f.jpg"], "is not supported"),
    (["-o", "{tmp}/f.png", "--axis-label", "colour=red"], "AXIS=TEXT"),
    (["-o", "{tmp}/f.png", "--name", "a", "--name", "b"], "2 series names for 1 results"),
    (["-o", "{tmp}/f.png", "--panels", "latency,nope"], "panels must be among"),
    (["-o", "{tmp}/f.png", "--accuracy-lim", "100", "90"], "LOW < HIGH"),
    (["-o", "{tmp}/f.png", "--size", "A4"], "one-column, two-column"),
])
def test_plot_command_bad_options(tmp_path, capsys, args, message):
    a = write(tmp_path, "a.json", make_doc())
    assert main(["plot", a, *[x.format(tmp=tmp_path) for x in args]]) == 2
    err = capsys.readouterr().err
    assert err.startswith("evsim: error: ") and message in err and err.count("\n") == 1
    assert not any(p.suffix in (".png", ".jpg") for p in tmp_path.iterdir())


def test_plot_command_refuses_files_that_are_not_eval_results(tmp_path, capsys):
    cal = write(tmp_path, "cal.json", {"format": "evsim-calibration/1", "thresholds": [1.0]})
    assert main(["plot", cal, "-o", str(tmp_path / "f.png")]) == 2
    assert "cal.json is not an `evsim eval --json` result" in capsys.readouterr().err


def test_plot_classes_and_temporal_commands(tmp_path, capture, capsys):
    doc = make_doc(n=50, n_wrong=5)
    a = write(tmp_path, "a.json", doc)
    assert main(["plot-classes", a, "-o", str(tmp_path / "c.svg")]) == 0
    image = next(ax for ax in capture["plot_classes"].axes if ax.get_label() == "confusion").images[0]
    assert np.asarray(image.get_array()).sum() == pytest.approx(5.0)  # rows of 5 classes sum to 1
    old = write(tmp_path, "old.json", make_doc(samples=False))
    assert main(["plot-classes", old, "-o", str(tmp_path / "c.png")]) == 2
    assert "per-sample records" in capsys.readouterr().err

    clock = [write(tmp_path, f"clock{w}.json", make_doc(mode="clock", profile="sinabs", bin_us=w, fraction=1.0))
             for w in (1000.0, 10_000.0)]
    assert main(["plot-temporal", *clock, a, "-o", str(tmp_path / "t.png")]) == 0
    (container,) = [c for c in capture["plot_temporal"].axes[0].containers]
    assert np.allclose(container.lines[0].get_xdata(), [1.0, 10.0])
    cut = write(tmp_path, "cut.json", make_doc(cutoff={"mode": "topk", "threshold": 3.0}))
    assert main(["plot-temporal", *clock, cut, "-o", str(tmp_path / "t.png")]) == 2
    assert "evaluated with a cutoff" in capsys.readouterr().err


def test_raster_help_has_the_display_window_and_no_duplicate_options():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # click warns about options declared twice
        assert main(["raster", "--help"]) == 0


def _oct_written_out(result, label):
    """Earliest output change after which argmax == label for good (argmax ties: lowest index)."""
    t, _, vectors = result.output_record
    ok = [bool(np.any(v != 0)) and int(np.argmax(v)) == label for v in vectors]
    if not ok or not ok[-1]:
        return None
    k = len(ok) - 1
    while k > 0 and ok[k - 1]:
        k -= 1
    return float(t[k])


def test_raster_command_window_title_and_oct(tmp_path, capture, capsys):
    recording = BUNDLED / "samples" / "7" / "00186.bin"
    calibration = BUNDLED / "calibration_speck.json"
    if not recording.is_file() or not calibration.is_file():
        pytest.skip(f"bundled sample {recording} or calibration {calibration} missing")
    out = tmp_path / "r.pdf"
    assert main(["raster", str(BUNDLED / "model.nir"), str(recording), "--profile", "speck", "--calibration",
                 str(calibration), "-o", str(out), "--size", "one-column"]) == 0
    assert out.read_bytes()[:5] == b"%PDF-"
    fig = capture["plot_raster"]
    title = fig._suptitle.get_text()
    assert "event-driven, profile speck, top-k calibrated per 10 ms" in title
    ax = next(a for a in fig.axes if a.get_label() == "raster")
    # OCT from a run without cutoff, written out here
    model = evsim.load_model(BUNDLED / "model.nir", profile="speck")
    full = evsim.Simulator(model, record_output=True).run(evsim.read_recording(recording).events)
    oct_us = _oct_written_out(full, 7)
    oct_line = next(line for line in ax.lines if line.get_gid() == "oct")
    assert oct_line.get_xdata()[0] == pytest.approx(oct_us / 1000.0)
    cut = next(line for line in ax.lines if line.get_gid() == "cutoff")
    assert ax.get_xlim()[0] == 0.0 and cut.get_xdata()[0] < ax.get_xlim()[1] < 0.5 * full.decision_time_us / 1000
    # an explicit window, and a window that ends before it starts
    assert main(["raster", str(BUNDLED / "model.nir"), str(recording), "--profile", "speck",
                 "--window-start-us", "1000", "--window-end-us", "9000", "-o", str(tmp_path / "w.png")]) == 0
    ax = next(a for a in capture["plot_raster"].axes if a.get_label() == "raster")
    assert ax.get_xlim() == pytest.approx((1.0, 9.0))
    assert main(["raster", str(BUNDLED / "model.nir"), str(recording), "--profile", "speck",
                 "--window-start-us", "9000", "--window-end-us", "1000", "-o", str(tmp_path / "bad.png")]) == 2
    assert "before it starts" in capsys.readouterr().err


def test_run_raster_marks_the_oracle_cutoff_time_and_the_cutoff(tmp_path, capture):
    """`evsim run --raster` draws what `evsim raster` draws: the OCT of the run without cutoff
    (written out here) and the mode/cutoff in the title."""
    recording = BUNDLED / "samples" / "7" / "00186.bin"
    if not recording.is_file():
        pytest.skip(f"bundled sample {recording} missing")
    out = tmp_path / "r.png"
    assert main(["run", str(BUNDLED / "model.nir"), str(recording), "--profile", "speck", "--cutoff", "topk",
                 "--threshold", "40", "--raster", str(out)]) == 0
    fig = capture["plot_raster"]
    assert "event-driven, profile speck, top-k" in fig._suptitle.get_text()
    ax = next(a for a in fig.axes if a.get_label() == "raster")
    model = evsim.load_model(BUNDLED / "model.nir", profile="speck")
    full = evsim.Simulator(model, record_output=True).run(evsim.read_recording(recording).events)
    oct_line = next(line for line in ax.lines if line.get_gid() == "oct")
    assert oct_line.get_xdata()[0] == pytest.approx(_oct_written_out(full, 7) / 1000.0)
    assert any(line.get_gid() == "cutoff" for line in ax.lines)

"""The command line (docs/SEMANTICS.md#cli): the bundled demo, one-line errors with exit code 2, eval records
and aggregates, worker-count independence, calibration round trip."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import nir
import numpy as np
import pytest

import evsim
from _cli import assert_user_error, evsim_cli
from evsim.cli import BUNDLED_MODEL

BUNDLED_RECORDING = next(iter(sorted((BUNDLED_MODEL.parent / "samples").glob("*/*.bin"))))




@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory):
    """A labelled folder of .npy recordings cut from the bundled recording (no shared data needed)."""
    root = tmp_path_factory.mktemp("data")
    events = evsim.read_recording(BUNDLED_RECORDING).events
    rng = np.random.default_rng(0)
    for i in range(6):
        label = i % 3
        keep = np.sort(rng.choice(events.size, events.size // 2, replace=False))
        (root / str(label)).mkdir(exist_ok=True)
        np.save(root / str(label) / f"rec{i}.npy", events[keep])
    return root


@pytest.fixture(scope="module")
def sevens(tmp_path_factory):
    """12 recordings of the bundled '7', each a random half of its events, labelled 7: the model is
    right on them, so a calibration finds finite thresholds."""
    root = tmp_path_factory.mktemp("sevens")
    events = evsim.read_recording(BUNDLED_RECORDING).events
    rng = np.random.default_rng(1)
    (root / "7").mkdir()
    for i in range(12):
        keep = np.sort(rng.choice(events.size, events.size // 2, replace=False))
        np.save(root / "7" / f"rec{i}.npy", events[keep])
    return root


def test_bundled_demo_runs_with_no_arguments(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = evsim_cli(capsys, "run")
    assert code == 0, err
    for field in ("prediction", "label 7", "events", "synops", "decision", "cutoff      topk"):
        assert field in out
    assert list(tmp_path.iterdir()) == []  # nothing written unless asked for
    code, out, err = evsim_cli(capsys, "run", "--raster", tmp_path / "evsim-raster.png")
    png = tmp_path / "evsim-raster.png"
    assert png.stat().st_size > 10_000
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the demo applies the bundled calibrated cutoff: it stops reading the recording early,
    # and the decision equals the uncut prediction; `--cutoff none` reads everything
    code, rec_cut, _ = evsim_cli(capsys, "run", "--json", tmp_path / "cut.json")
    code2, _, _ = evsim_cli(capsys, "run", "--cutoff", "none", "--json", tmp_path / "full.json")
    assert code == code2 == 0
    cut = json.loads((tmp_path / "cut.json").read_text())
    full = json.loads((tmp_path / "full.json").read_text())
    n_events = evsim.read_recording(BUNDLED_RECORDING).events.size
    assert full["events_consumed"] == full["events_total"] == n_events
    assert 0 < cut["events_consumed"] < n_events and cut["status"] == "cutoff"
    assert cut["prediction"] == full["prediction"] == 7


def test_run_json_record_has_the_spec_names(capsys, tmp_path):
    out_json = tmp_path / "r.json"
    code, out, err = evsim_cli(capsys, "run", BUNDLED_MODEL, BUNDLED_RECORDING, "--profile", "speck",
                               "--cutoff", "topk", "--threshold", "5", "--json", out_json)
    assert code == 0, err
    rec = json.loads(out_json.read_text())
    for key in ("path", "label", "prediction", "correct", "decision_time_us", "events_consumed", "events_total",
                "synops", "spikes_per_node", "output_counts", "confidence", "oct_us"):
        assert key in rec
    assert rec["events_consumed"] < rec["events_total"]
    assert rec["confidence"] >= 5
    # the gap of the recorded output counts is the confidence that stopped the run
    counts = sorted(rec["output_counts"], reverse=True)
    assert counts[0] - counts[1] == rec["confidence"]


def test_info_on_a_model_and_a_recording(capsys, tmp_path):
    out_json = tmp_path / "m.json"
    code, out, err = evsim_cli(capsys, "info", BUNDLED_MODEL, "--json", out_json)
    assert code == 0, err
    doc = json.loads(out_json.read_text())
    assert doc["input_shape"] == [2, 34, 34]
    assert doc["neurons"] == 16 * 16 * 16 * 2 + 8 * 8 * 8 + 256 + 10
    assert [n["type"] for n in doc["nodes"]][:3] == ["Input", "Conv2d", "IF"]
    rec_json = tmp_path / "r.json"
    code, out, err = evsim_cli(capsys, "info", BUNDLED_RECORDING, "--json", rec_json)
    assert code == 0, err
    doc = json.loads(rec_json.read_text())
    events = evsim.read_recording(BUNDLED_RECORDING).events
    assert doc["n_events"] == events.size
    assert doc["t_first_us"] == int(events["t"][0]) and doc["t_last_us"] == int(events["t"][-1])
    assert doc["x_max"] == int(events["x"].max()) and doc["y_max"] == int(events["y"].max())
    # printed for a reader: the duration, no raw dict
    span_ms = (int(events["t"][-1]) - int(events["t"][0])) / 1000
    assert f"over {span_ms:.1f} ms" in out and "{" not in out
    assert sum(doc["p_counts"].values()) == events.size
    # in a class folder root/<label>/ the label is the folder's name, as run and eval read it
    assert BUNDLED_RECORDING.parent.name.isdigit()
    assert doc["label"] == int(BUNDLED_RECORDING.parent.name) and doc["label_source"] == "folder"
    assert f"label       {BUNDLED_RECORDING.parent.name} (its folder's name)" in out


def test_info_names_the_delay_it_assumes_for_a_strict_recurrent_model(capsys, tmp_path):
    """A recurrent graph read as strict NIR has no delay on its recurrent edge: `run` refuses it;
    `info` describes it with a stand-in delay and says so (notice, JSON key), not silently."""
    from conftest import require_shared_data

    braille = require_shared_data("nir", "braille_noDelay_noBias_subtract.nir")
    out_json = tmp_path / "b.json"
    code, out, err = evsim_cli(capsys, "info", braille, "--profile", "nir", "--json", out_json)
    assert code == 0, err
    assert "recurrent" in err and "--recurrent-delay-us" in err
    doc = json.loads(out_json.read_text())
    assert doc["recurrent_delay_us_assumed"] == 1000.0
    assert any(p["recurrent"] and p["delay_us"] == 1000.0 for p in doc["projections"])
    code, out, err = evsim_cli(capsys, "info", braille, "--profile", "nir", "--recurrent-delay-us", "250",
                               "--json", out_json)
    assert code == 0 and "--recurrent-delay-us" not in err
    doc = json.loads(out_json.read_text())
    assert "recurrent_delay_us_assumed" not in doc
    assert any(p["recurrent"] and p["delay_us"] == 250.0 for p in doc["projections"])
    code, out, err = evsim_cli(capsys, "run", braille, BUNDLED_RECORDING, "--profile", "nir")
    assert code == 2 and "recurrent" in err


def test_user_errors_are_one_line_with_exit_code_2(capsys, tmp_path):
    # missing files
    assert_user_error(*evsim_cli(capsys, "run", tmp_path / "nope.nir", BUNDLED_RECORDING)[::2], "nope.nir")
    assert_user_error(*evsim_cli(capsys, "run", BUNDLED_MODEL, tmp_path / "nope.bin")[::2], "nope.bin")
    # a recording whose timestamps go backwards
    ev = evsim.make_events([0, 50, 20], [1, 2, 3], [1, 2, 3], [0, 1, 0])
    np.save(tmp_path / "unsorted.npy", ev)
    assert_user_error(*evsim_cli(capsys, "run", BUNDLED_MODEL, tmp_path / "unsorted.npy")[::2], "not sorted")
    # ... accepted with --sort
    code, out, err = evsim_cli(capsys, "run", BUNDLED_MODEL, tmp_path / "unsorted.npy", "--sort")
    assert code == 0, err
    # events outside the model's input
    np.save(tmp_path / "wide.npy", evsim.make_events([0, 1], [3, 40], [1, 2], [0, 1]))
    assert_user_error(*evsim_cli(capsys, "run", BUNDLED_MODEL, tmp_path / "wide.npy")[::2], "x=40", "outside")
    # a model with a NaN weight, and one with an unknown node
    g = nir.read(str(BUNDLED_MODEL))
    g.nodes["fc2"].weight[3, 4] = np.nan
    nir.write(str(tmp_path / "nan.nir"), g)
    assert_user_error(*evsim_cli(capsys, "run", tmp_path / "nan.nir", BUNDLED_RECORDING)[::2], "fc2", "non-finite")
    nir.write(str(tmp_path / "foo.nir"), nir.read(str(BUNDLED_MODEL)))
    with h5py.File(tmp_path / "foo.nir", "r+") as f:
        del f["node/nodes/pool1/type"]
        f["node/nodes/pool1"].create_dataset("type", data="MaxPool2d")
    assert_user_error(*evsim_cli(capsys, "run", tmp_path / "foo.nir", BUNDLED_RECORDING)[::2], "pool1", "MaxPool2d")
    # a file that is not a NIR graph
    (tmp_path / "junk.nir").write_bytes(b"hello")
    assert_user_error(*evsim_cli(capsys, "info", tmp_path / "junk.nir")[::2], "junk.nir")
    # bad option values
    assert_user_error(*evsim_cli(capsys, "run", BUNDLED_MODEL, BUNDLED_RECORDING, "--cutoff", "topk")[::2], "--threshold")
    assert_user_error(*evsim_cli(capsys, "run", BUNDLED_MODEL, BUNDLED_RECORDING, "--profile", "loihi")[::2], "loihi")
    assert_user_error(*evsim_cli(capsys, "run", BUNDLED_MODEL, BUNDLED_RECORDING, "--mode", "clock", "--bin-us", "-5")[::2],
                      "--bin-us")
    assert_user_error(*evsim_cli(capsys, "eval", BUNDLED_MODEL, tmp_path / "nowhere")[::2], "nowhere")


def test_console_script_exit_code_and_single_line(tmp_path):
    exe = Path(sys.executable).with_name("evsim")
    if not exe.exists():
        pytest.skip(f"console script not installed next to {sys.executable}")
    proc = subprocess.run([str(exe), "run", str(tmp_path / "missing.nir"), str(BUNDLED_RECORDING)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "missing.nir" in proc.stderr


def eval_doc(capsys, tmp_path, name, *args):
    out = tmp_path / f"{name}.json"
    csv_path = tmp_path / f"{name}.csv"
    code, stdout, err = evsim_cli(capsys, "eval", BUNDLED_MODEL, *args, "--json", out, "--csv", csv_path, "--quiet")
    assert code == 0, err
    return json.loads(out.read_text()), csv_path.read_text()


def test_eval_results_do_not_depend_on_the_worker_count(capsys, tmp_path, small_dataset):
    one, csv_one = eval_doc(capsys, tmp_path, "one", small_dataset, "--profile", "speck", "--workers", "1")
    two, csv_two = eval_doc(capsys, tmp_path, "two", small_dataset, "--profile", "speck", "--workers", "2")
    assert one["samples"] == two["samples"]
    assert csv_one == csv_two
    for key in ("accuracy", "n_samples", "no_prediction", "mean_events_fraction", "mean_latency_us",
                "synops_per_sample", "wall_s", "samples_per_s", "mode", "profile", "cutoff", "samples"):
        assert key in one
    assert one["n_samples"] == 6
    labels = [s["label"] for s in one["samples"]]
    assert sorted(labels) == [0, 0, 1, 1, 2, 2]
    assert one["accuracy"] == pytest.approx(np.mean([s["prediction"] == s["label"] for s in one["samples"]]))
    assert one["synops_per_sample"] == pytest.approx(np.mean([s["synops"] for s in one["samples"]]))
    # per-sample records against a direct simulation
    model = evsim.load_model(BUNDLED_MODEL, profile="speck")
    first = one["samples"][0]
    res = evsim.Simulator(model).run(evsim.read_recording(first["path"]).events)
    assert first["synops"] == res.synops and first["prediction"] == res.prediction
    assert first["output_counts"] == res.output.tolist()


def test_calibrate_then_eval_with_the_calibration(capsys, tmp_path, small_dataset, sevens):
    cal = tmp_path / "cal.json"
    code, out, err = evsim_cli(capsys, "calibrate", BUNDLED_MODEL, sevens, "--profile", "speck", "--cutoff",
                               "topk", "--epsilon", "0.5", "--calib-bins", "1", "--min-support", "1", "-o", cal,
                               "--quiet")
    assert code == 0, err
    doc = json.loads(cal.read_text())
    assert doc["profile"] == "speck" and doc["cutoff"] == "topk" and len(doc["thresholds"]) == 1
    assert doc["thresholds"][0] is not None, "the fixture must give a finite threshold"
    assert doc["cross_validation"]["folds"] == 5 and "cross-validation" in out
    result, _ = eval_doc(capsys, tmp_path, "cut", small_dataset, "--profile", "speck", "--calibration", cal)
    assert result["cutoff"]["mode"] == "topk"
    for s in result["samples"]:
        assert s["status"] in ("cutoff", "complete")
        if s["status"] == "cutoff":
            assert s["confidence"] >= doc["thresholds"][0]
    # refused with another profile
    assert_user_error(*evsim_cli(capsys, "eval", BUNDLED_MODEL, small_dataset, "--profile", "sinabs",
                                 "--calibration", cal, "--quiet")[::2], "profile")


def test_the_bundled_model_named_explicitly_reads_as_in_the_demo(capsys, tmp_path):
    """The model declares its profile (model.evsim.json): naming it gives the demo's result."""
    code, _, _ = evsim_cli(capsys, "run", "--cutoff", "none", "--json", tmp_path / "demo.json")
    code2, out, err = evsim_cli(capsys, "run", BUNDLED_MODEL, BUNDLED_RECORDING, "--json", tmp_path / "named.json")
    assert code == code2 == 0
    assert "profile speck" in out and "declares no profile" not in err
    demo = json.loads((tmp_path / "demo.json").read_text())
    named = json.loads((tmp_path / "named.json").read_text())
    assert named["output_counts"] == demo["output_counts"] and named["synops"] == demo["synops"]
    # an explicit profile wins over the declared one (strict NIR differs on this model)
    code3, out3, _ = evsim_cli(capsys, "run", BUNDLED_MODEL, BUNDLED_RECORDING, "--profile", "nir",
                               "--json", tmp_path / "nir.json")
    assert code3 == 0 and "profile nir" in out3


def test_a_model_without_a_declared_profile_gets_a_notice(capsys, tmp_path):
    plain = tmp_path / "plain.nir"
    nir.write(str(plain), nir.read(str(BUNDLED_MODEL)))
    code, out, err = evsim_cli(capsys, "run", plain, BUNDLED_RECORDING)
    assert code == 0 and "profile nir" in out
    assert "declares no profile" in err and "--profile" in err


@pytest.mark.parametrize("args,option", [
    (["--threshold", "3"], "--threshold"),
    (["--epsilon", "0.1"], "--epsilon"),
    (["--temperature", "2"], "--temperature"),
    (["--cutoff", "conf", "--threshold", "2"], "--threshold"),
    (["--cutoff", "conf", "--threshold", "0"], "--threshold"),
    (["--cutoff", "conf", "--threshold", "0.9", "--epsilon", "0.1"], "--epsilon"),
    (["--cutoff", "topk", "--threshold", "3", "--epsilon", "0.1"], "--epsilon"),
    (["--cutoff", "topk", "--threshold", "3", "--temperature", "2"], "--temperature"),
    (["--calibration", str(BUNDLED_MODEL.parent / "calibration_speck.json"), "--threshold", "3"], "--threshold"),
    (["--calibration", str(BUNDLED_MODEL.parent / "calibration_speck.json"), "--temperature", "3"], "--temperature"),
])
def test_meaningless_or_conflicting_cutoff_options_are_refused(capsys, args, option):
    code, out, err = evsim_cli(capsys, "run", *args)
    assert_user_error(code, err, option)


def test_the_demo_says_when_an_option_drops_its_calibrated_cutoff(capsys):
    code, out, err = evsim_cli(capsys, "run", "--precision", "float64")
    assert code == 0
    assert "cutoff      none" in out and "--precision" in out


def test_calibrate_conf_fits_its_temperature_and_warns_about_a_small_set(capsys, tmp_path, sevens):
    cal = tmp_path / "conf.json"
    code, out, err = evsim_cli(capsys, "calibrate", BUNDLED_MODEL, sevens, "--cutoff", "conf",
                               "--calib-bins", "1", "--min-support", "1", "--cv-folds", "2", "-o", cal, "--quiet")
    assert code == 0, err
    doc = json.loads(cal.read_text())
    fitted = evsim.analysis.fit_temperature
    assert doc["temperature"] != 1.0 and "temperature T =" in out
    assert doc["cross_validation"]["folds"] == 2
    assert "only 12 labelled calibration samples" in err and "missing" in err  # small, unbalanced
    assert doc["temperature"] == pytest.approx(fitted(
        [evsim.analysis.Trajectory.from_result(evsim.Simulator(evsim.load_model(BUNDLED_MODEL), record_output=True)
                                               .run(np.load(f)), label=7) for f in sorted((sevens / "7").glob("*.npy"))]))
    # --temperature is refused for topk
    assert_user_error(*evsim_cli(capsys, "calibrate", BUNDLED_MODEL, sevens, "--cutoff", "topk",
                                 "--temperature", "2", "-o", tmp_path / "x.json", "--quiet")[::2], "--temperature")


def test_profile_rockpool_from_the_command_line(capsys, tmp_path):
    """``--profile rockpool`` reads dt back from r = τ·exp(−dt/τ)/dt (here 1 ms) and applies
    Rockpool's LIFNeuronTorch update: with weight 0.6 and τ = 4 ms, step 0 gets two events
    (v = 1.2 ≥ 1: a spike, 0.2 left), steps 1 and 2 one and none (0.756, 0.589), step 3 one
    (0.459 + 0.6 = 1.059 ≥ 1): 2 spikes. An unknown profile lists the new names."""
    from evsim.input.events import make_events

    dt, tau = 1e-3, np.array([4e-3])
    g = nir.NIRGraph(nodes={"input": nir.Input(input_type=np.array([1])), "fc": nir.Linear(weight=np.array([[0.6]])),
                            "lif": nir.LIF(tau=tau, r=tau * np.exp(-dt / tau) / dt, v_leak=np.zeros(1), v_threshold=np.ones(1)),
                            "output": nir.Output(output_type=np.array([1]))},
                     edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")], type_check=False)
    model = tmp_path / "rockpool.nir"
    nir.write(str(model), g)
    rec = tmp_path / "rec.npy"
    np.save(rec, make_events(t=np.array([0, 500, 1000, 3000]), x=np.zeros(4, dtype=int)))
    code, out, err = evsim_cli(capsys, "run", model, rec, "--profile", "rockpool", "--mode", "clock", "--bin-us", "1000")
    assert code == 0, err
    assert "profile rockpool" in out and "lif 2" in out
    code, out, err = evsim_cli(capsys, "run", model, rec, "--profile", "bogus")
    assert_user_error(code, err, "--profile", "rockpool", "spyx", "lava-dl")


def test_the_command_line_loads_numba_without_scipy_linalg():
    """evsim.numba_start: numba's BLAS probe answered "no" (SciPy's linalg not imported by a
    model load and a simulation), and numba code still compiles in that process, np.dot included
    (SciPy imported on demand) and np.convolve (the probe's only effect) equal to NumPy's."""
    script = (
        "import sys\n"
        "from evsim import cli\n"
        "cli._load(cli.BUNDLED_MODEL, {'profile': 'speck'})\n"
        "import evsim, numpy as np, numba\n"
        "model = evsim.load_model(cli.BUNDLED_MODEL, profile='speck')\n"
        f"res = evsim.Simulator(model).run(evsim.read_recording({str(BUNDLED_RECORDING)!r}).events)\n"
        "before = 'scipy.linalg' in sys.modules\n"
        "conv = numba.njit(lambda a, b: np.convolve(a, b))\n"
        "dot = numba.njit(lambda a, b: np.dot(a, b))\n"
        "a, b = np.arange(7.0) - 2.5, np.array([0.5, -1.0, 2.0])\n"
        "assert np.array_equal(conv(a, b), np.convolve(a, b)), (conv(a, b), np.convolve(a, b))\n"
        "from numba.np import arraymath\n"
        "assert dot(a, a) == float(np.dot(a, a))\n"
        "print(before, arraymath._HAVE_BLAS, 'scipy.linalg' in sys.modules, res.prediction)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "EVSIM_NUMBA_PLAIN"}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    before, have_blas, after, prediction = proc.stdout.split()
    assert (before, have_blas, after) == ("False", "False", "True")
    assert int(prediction) >= 0


def test_summary_lines_show_paths_relative_to_the_working_directory(capsys, tmp_path, monkeypatch):
    """run and info print a file under the working directory relative to it (as the README's
    transcripts show, run from the repository's root), one elsewhere as given; the JSON record
    keeps the absolute path."""
    package_parent = BUNDLED_MODEL.parents[2]  # the folder holding the evsim package
    relative_model = os.path.relpath(BUNDLED_MODEL, package_parent)
    monkeypatch.chdir(package_parent)
    code, out, _ = evsim_cli(capsys, "run", "--cutoff", "none", "--json", tmp_path / "r.json")
    assert code == 0
    assert f"model       {relative_model} (profile" in out
    assert json.loads((tmp_path / "r.json").read_text())["model"] == str(BUNDLED_MODEL)
    code, out, _ = evsim_cli(capsys, "info", BUNDLED_RECORDING)
    assert code == 0
    assert f"recording   {os.path.relpath(BUNDLED_RECORDING, package_parent)} (" in out
    monkeypatch.chdir(tmp_path)
    code, out, _ = evsim_cli(capsys, "run", "--cutoff", "none")
    assert code == 0
    assert f"model       {BUNDLED_MODEL} (profile" in out
    code, out, _ = evsim_cli(capsys, "info", BUNDLED_MODEL)
    assert code == 0
    assert f"model       {BUNDLED_MODEL}  (profile" in out

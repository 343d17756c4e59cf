"""What a careless or hostile user does to an evaluation, and what evsim must answer: outputs
that are devices, links or the same file twice; labels no output stands for; a second run into an
unfinished run's files; a fixed recording after `--on-error stop`; every recording broken; a
threshold far below the input with several spikes per update; stale compiled kernels; two local
Dask evaluations in one process. Each expected value is computed here, independently."""

from __future__ import annotations

import json
import os
import threading

import nir
import numpy as np
import pytest

import evsim
from evsim import kernel_cache
from evsim.analysis.evaluate import EvalConfig, evaluate
from evsim.analysis.execution import can_fork_workers
from evsim.analysis.records import dumps_document, records_path_for, remove_stale_temporaries, write_json_atomic
from evsim.cli import BUNDLED_MODEL, main
from evsim.errors import ModelError, OptionError
from evsim.kernels.neuron import MAX_SPIKES_PER_UPDATE

BUNDLED_RECORDING = next(iter(sorted((BUNDLED_MODEL.parent / "samples").glob("*/*.bin"))))
M = str(BUNDLED_MODEL)


def cli(capsys, *args):
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def events():
    return evsim.read_recording(BUNDLED_RECORDING).events


@pytest.fixture
def small_dataset(tmp_path, events):
    """6 recordings in classes 0, 1, 2 (prefixes of the bundled recording)."""
    root = tmp_path / "data"
    for i in range(6):
        (root / str(i % 3)).mkdir(parents=True, exist_ok=True)
        np.save(root / str(i % 3) / f"r{i}.npy", events[: 400 + 150 * i])
    return root


# ------------------------------------------------------------------------------------------
# outputs
# ------------------------------------------------------------------------------------------


def test_outputs_that_are_not_regular_files_are_refused_and_left_alone(capsys, tmp_path):
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    code, _, err = cli(capsys, "run", "--json", fifo)
    assert code == 2 and "not a regular file" in err and len(err.strip().splitlines()) == 1
    assert fifo.is_fifo()  # not replaced by a regular file
    with pytest.raises(OSError, match="not a regular file"):
        write_json_atomic(fifo, {"a": 1})
    assert fifo.is_fifo()


def test_json_documents_record_absolute_paths_when_given_relative_ones(capsys, tmp_path, small_dataset, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    (work / "model.nir").write_bytes(BUNDLED_MODEL.read_bytes())
    (work / "subset.txt").write_text("\n".join(str(p) for p in sorted(small_dataset.glob("*/*.npy"))) + "\n")
    monkeypatch.chdir(work)
    data = os.path.relpath(small_dataset, work)  # "../data"
    recording = os.path.join(data, "1", "r1.npy")
    assert not os.path.isabs(data)
    code, _, err = cli(capsys, "run", "model.nir", recording, "--json", "run.json")
    assert code == 0, err
    run = json.loads((work / "run.json").read_text())
    assert run["path"] == str(small_dataset / "1" / "r1.npy") and run["model"] == str(work / "model.nir")
    assert run["options"]["model_path"] == str(work / "model.nir")
    code, _, err = cli(capsys, "eval", "model.nir", data, "--subset", "subset.txt", "--json", "eval.json", "--quiet")
    assert code == 0, err
    doc = json.loads((work / "eval.json").read_text())
    assert doc["model"] == doc["options"]["model_path"] == str(work / "model.nir")
    assert doc["data"]["description"] == str(small_dataset)
    assert doc["data"]["selection"]["subset"] == str(work / "subset.txt")
    code, _, err = cli(capsys, "calibrate", "model.nir", data, "--cutoff", "topk", "-o", "cal.json", "--quiet",
                       "--subset", "subset.txt")
    assert code == 0, err
    cal = json.loads((work / "cal.json").read_text())
    assert cal["data"] == str(small_dataset) and cal["subset"] == str(work / "subset.txt")
    assert cal["model_path"] == str(work / "model.nir")
    for what, target in (("model.nir", work / "model.nir"), (recording, small_dataset / "1" / "r1.npy"),
                         (data, small_dataset)):
        code, out, err = cli(capsys, "info", what, "--json", "info.json")
        assert code == 0 and what in out, err  # printed as given
        assert json.loads((work / "info.json").read_text())["path"] == str(target)


def test_an_output_that_is_a_symbolic_link_loop_is_refused_and_left_alone(capsys, tmp_path):
    loop = tmp_path / "loop.json"
    loop.symlink_to(loop.name)
    code, out, err = cli(capsys, "run", "--json", loop)
    assert code == 2 and out == "" and "symbolic link in a loop" in err and len(err.strip().splitlines()) == 1, err
    assert loop.is_symlink() and os.readlink(loop) == loop.name  # not replaced by a regular file
    dangling = tmp_path / "dangling.json"
    dangling.symlink_to("new.json")  # a link to a file not written yet: its target is written
    code, _, err = cli(capsys, "run", "--json", dangling)
    assert code == 0, err
    assert dangling.is_symlink() and json.loads((tmp_path / "new.json").read_text())["prediction"] is not None


def test_an_output_given_as_a_symbolic_link_writes_its_target_and_keeps_the_link(capsys, tmp_path):
    target = tmp_path / "target.json"
    target.write_text("{}")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    code, _, err = cli(capsys, "run", "--json", link)
    assert code == 0, err
    assert link.is_symlink() and json.loads(target.read_text())["prediction"] is not None


def test_json_and_csv_naming_the_same_file_are_refused_before_anything_runs(capsys, tmp_path, small_dataset):
    out = tmp_path / "out"
    code, _, err = cli(capsys, "eval", M, small_dataset, "--json", out, "--csv", tmp_path / "." / "out", "--quiet")
    assert code == 2 and "--csv" in err and "same file as --json" in err
    assert not out.exists()


def test_stale_temporaries_of_dead_writers_are_removed(tmp_path):
    out = tmp_path / "r.json"
    dead = tmp_path / f".r.json.{2 ** 22 + 12345}.tmp"  # above Linux's pid_max default: no such process
    alive = tmp_path / f".r.json.{os.getppid()}.tmp"  # a running process
    for p in (dead, alive):
        p.write_text("partial")
    remove_stale_temporaries(out)
    assert not dead.exists() and alive.exists()


# ------------------------------------------------------------------------------------------
# labels
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("folder", ["10", "-3", "3000000"])
def test_labels_without_an_output_are_refused_before_any_simulation(capsys, tmp_path, small_dataset, folder):
    (small_dataset / folder).mkdir()
    np.save(small_dataset / folder / "x.npy", np.load(small_dataset / "0" / "r0.npy"))
    out = tmp_path / "r.json"
    for command in (["eval", M, small_dataset, "--json", out, "--quiet"],
                    ["calibrate", M, small_dataset, "--cutoff", "topk", "-o", out, "--quiet"]):
        code, _, err = cli(capsys, *command)
        assert code == 2, err
        assert f"{int(folder)} (folder '{folder}')" in err and "the model has 10" in err
        assert len(err.strip().splitlines()) == 1
        assert not out.exists() and not records_path_for(out).exists()  # refused before simulating


def test_in_memory_labels_without_an_output_are_refused(events):
    with pytest.raises(OptionError, match="sample 1 has label 12, but the model has 10 outputs"):
        evaluate([(events[:300], 1), (events[:300], 12)], EvalConfig(M, "speck"), progress=False)


# ------------------------------------------------------------------------------------------
# runs into the same files, resume, errors
# ------------------------------------------------------------------------------------------


def test_a_limit_beyond_the_dataset_uses_every_recording_and_says_so(capsys, tmp_path, small_dataset):
    out = tmp_path / "r.json"
    code, _, err = cli(capsys, "eval", M, small_dataset, "--json", out, "--quiet", "--limit", "50")
    assert code == 0, err
    assert "--limit 50 is more than the 6 recordings there are: all are used" in err
    assert json.loads(out.read_text())["n_samples"] == 6
    code, _, err = cli(capsys, "eval", M, small_dataset, "--json", out, "--quiet", "--limit", "6")
    assert code == 0 and "--limit" not in err


def test_resume_with_nothing_to_resume_runs_everything_and_says_so(capsys, tmp_path, small_dataset):
    out = tmp_path / "r.json"
    code, _, err = cli(capsys, "eval", M, small_dataset, "--json", out, "--quiet", "--resume")
    assert code == 0 and "--resume: no earlier run's files" in err
    assert json.loads(out.read_text())["n_samples"] == 6
    code, _, err = cli(capsys, "eval", M, small_dataset, "--json", out, "--quiet", "--resume")  # all done already
    assert code == 0 and "no earlier run" not in err


_DAMAGE = {  # a finished sample's record, edited: what --resume must refuse, and the words saying why
    "index out of the data": (lambda r: {**r, "index": 999}, "index 999 is not one of the data's 6 samples"),
    "index as text": (lambda r: {**r, "index": "a"}, "is not a sample record (index 'a')"),
    "negative index": (lambda r: {**r, "index": -1}, "is not a sample record (index -1)"),
    "a list": (lambda r: [1, 2], "is not a sample record (index None)"),
    "another label": (lambda r: {**r, "label": (r["label"] + 1) % 3}, "not the data's"),
    "prediction beyond the outputs": (lambda r: {**r, "prediction": 12345}, "prediction 12345 is not an output"),
    "prediction as text": (lambda r: {**r, "prediction": "3"}, "prediction '3' is not an output"),
    "synops NaN": (lambda r: {**r, "synops": float("nan")}, "synops nan"),
    "only its index": (lambda r: {"index": r["index"], "path": r["path"], "label": r["label"]}, "'correct' None"),
    "events past the total": (lambda r: {**r, "events_consumed": r["events_total"] + 1}, "events"),
    "a broken digest": (lambda r: {**r, "anytime": {**r["anytime"], "peaks": {"t_us": [1]}}}, "anytime digest"),
}


@pytest.mark.parametrize("source", ["records file", "JSON document"])
@pytest.mark.parametrize("damage", list(_DAMAGE))
def test_resume_refuses_a_damaged_or_edited_record_in_one_line(capsys, tmp_path, small_dataset, source, damage):
    out = tmp_path / "r.json"
    code, _, err = cli(capsys, "eval", M, small_dataset, "--json", out, "--quiet")
    assert code == 0, err
    doc = json.loads(out.read_text())
    edit, words = _DAMAGE[damage]
    samples = [edit(r) if k == 2 else r for k, r in enumerate(doc["samples"][:4])]  # an unfinished run's 4
    if source == "records file":  # what a killed run leaves: a header line, then one record per line
        header = {"format": "evsim-eval-records/2", **{k: doc[k] for k in ("evsim_version", "model_hash", "options",
                                                                          "data")}}
        records_path_for(out).write_text("".join(json.dumps(x) + "\n" for x in [header, *samples]))
        doc["complete"] = False
    else:
        doc["samples"] = samples
    out.write_text(json.dumps(doc))
    code, _, err = cli(capsys, "eval", M, small_dataset, "--json", out, "--quiet", "--resume")
    assert code == 2 and "option --resume:" in err and words in err and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err


def test_an_unfinished_run_is_not_overwritten_and_the_json_always_describes_the_current_run(
        capsys, tmp_path, small_dataset):
    out = tmp_path / "r.json"
    code, _, err = cli(capsys, "eval", M, small_dataset, "--json", out, "--quiet", "--limit", "3")
    assert code == 0, err
    assert json.loads(out.read_text())["complete"] is True
    # an unfinished run: its records file, as a killed run leaves it
    records = records_path_for(out)
    records.write_text(json.dumps({"format": "evsim-records-1"}) + "\n")
    code, _, err = cli(capsys, "eval", M, small_dataset, "--json", out, "--quiet")
    assert code == 2 and "unfinished run" in err and "--resume" in err
    records.unlink()
    # a new run: from its start the file no longer holds the finished earlier one
    doc = {}

    def spy(path, document, texts=None):
        # the text the file receives (the document's records hold numpy columns until the end)
        doc.setdefault("first", json.loads(dumps_document({k: v for k, v in document.items() if not k.startswith("_")},
                                                          texts)))
        return write_json_atomic(path, document, texts)

    import evsim.analysis.evaluate as ev
    original = ev.write_json_atomic
    ev.write_json_atomic = spy
    try:
        evaluate(evsim.FolderDataset(small_dataset), EvalConfig(M, "speck", cutoff=evsim.Cutoff("topk", threshold=3.0)),
                 json_path=out, progress=False)
    finally:
        ev.write_json_atomic = original
    first = doc["first"]
    assert first["complete"] is False and first["samples"] == [] and first["cutoff"]["mode"] == "topk"


def test_resume_tries_failed_recordings_again(capsys, tmp_path, small_dataset, events):
    bad = small_dataset / "1" / "r0_bad.npy"
    bad.write_bytes(b"\x93NUMPY garbage")
    out = tmp_path / "r.json"
    code, _, err = cli(capsys, "eval", M, small_dataset, "--json", out, "--quiet", "--on-error", "stop")
    assert code == 2 and "r0_bad.npy" in err
    assert err.count("r0_bad.npy") == 1  # the path once, not "path: path: ..."
    np.save(bad, events[:500])  # fixed (np.save keeps the name: it ends with .npy)
    code, _, err = cli(capsys, "eval", M, small_dataset, "--json", out, "--quiet", "--on-error", "stop", "--resume")
    assert code == 0, err
    resumed = json.loads(out.read_text())
    fresh_out = tmp_path / "fresh.json"
    assert cli(capsys, "eval", M, small_dataset, "--json", fresh_out, "--quiet")[0] == 0
    fresh = json.loads(fresh_out.read_text())
    assert resumed["n_errors"] == 0 and resumed["samples"] == fresh["samples"] and len(fresh["samples"]) == 7


def test_an_eval_where_every_recording_fails_has_no_accuracy_and_exits_2(capsys, tmp_path):
    for i in range(2):
        (tmp_path / "data" / str(i)).mkdir(parents=True)
        (tmp_path / "data" / str(i) / "x.bin").write_bytes(b"\x00" * 1001)  # not whole 5-byte N-MNIST records
    out = tmp_path / "r.json"
    code, stdout, err = cli(capsys, "eval", M, tmp_path / "data", "--json", out, "--quiet")
    assert code == 2 and "none of the 2 recordings could be evaluated" in err
    assert "accuracy              - (no sample was simulated)" in stdout
    doc = json.loads(out.read_text())
    assert doc["accuracy"] is None and doc["n_errors"] == 2 and doc["n_samples"] == 0


def test_absurd_eval_and_calibrate_options_are_refused_before_any_simulation(capsys, tmp_path, small_dataset):
    out = tmp_path / "c.json"
    cases = [(["eval", M, small_dataset, "--workers", "100000"], "--workers"),
             (["eval", M, small_dataset, "--limit", "3", "--seed", "-1"], "--seed"),
             (["calibrate", M, small_dataset, "--cutoff", "topk", "-o", out, "--calib-bin-us", "0"], "--calib-bin-us"),
             (["calibrate", M, small_dataset, "--cutoff", "topk", "-o", out, "--calib-bin-us", "nan"], "--calib-bin-us"),
             (["calibrate", M, small_dataset, "--cutoff", "topk", "-o", out, "--calib-bins", "100000000"],
              "--calib-bins"),
             (["calibrate", M, small_dataset, "--cutoff", "topk", "-o", out, "--min-support", "0"], "--min-support")]
    for args, option in cases:
        code, _, err = cli(capsys, *args, "--quiet")
        assert code == 2 and option in err and len(err.strip().splitlines()) == 1, (args, err)
        assert not out.exists()


# ------------------------------------------------------------------------------------------
# several spikes per update with a threshold far below the input
# ------------------------------------------------------------------------------------------


def _one_layer(threshold: float, weight: float = 1.0) -> nir.NIRGraph:
    return nir.NIRGraph(nodes={
        "input": nir.Input(input_type={"input": np.array([2])}),
        "fc": nir.Linear(weight=np.full((3, 2), weight)),
        "n": nir.IF(r=np.ones(3), v_threshold=np.full(3, threshold), v_reset=np.zeros(3)),
        "output": nir.Output(output_type={"output": np.array([3])}),
    }, edges=[("input", "fc"), ("fc", "n"), ("n", "output")], type_check=False)


def test_several_spikes_per_update_need_a_positive_threshold():
    with pytest.raises(ModelError, match="v_threshold > 0"):
        evsim.load_model(_one_layer(0.0), profile="nir", spikes_per_update="multi")


def test_spike_counts_far_beyond_the_cap_stop_the_sample_as_runaway_in_event_time_and_saturate_per_step():
    ev = evsim.make_events(t=[0, 10, 20], x=[0, 1, 0], y=[0, 0, 0], p=[0, 0, 0])
    model = evsim.load_model(_one_layer(1e-20), profile="nir", spikes_per_update="multi")
    # one input event raises v to 1: floor(1 / 1e-20) = 1e20 spikes, beyond int64 once summed
    result = evsim.Simulator(model).run(ev)
    assert result.status == "budget"
    assert result.events_consumed == 1
    assert result.output.tolist() == [MAX_SPIKES_PER_UPDATE] * 3
    # clock-driven, 10-µs bins: each of the 3 steps brings v = 1 (subtracting n·θ leaves it ~1)
    clock = evsim.ClockSimulator(model, bin_us=10).run(ev)
    assert clock.output.tolist() == [3 * MAX_SPIKES_PER_UPDATE] * 3
    assert np.all(np.isfinite(clock.output))


# ------------------------------------------------------------------------------------------
# compiled kernels and Dask threads
# ------------------------------------------------------------------------------------------


def test_an_edited_source_removes_every_cached_kernel(tmp_path, monkeypatch):
    package = tmp_path / "pkg"
    (package / "sub" / "__pycache__").mkdir(parents=True)
    (package / "__pycache__").mkdir()
    (package / "a.py").write_text("x = 1\n")
    (package / "sub" / "b.py").write_text("y = 2\n")
    cached = [package / "__pycache__" / "a.f-1.py311.nbi", package / "sub" / "__pycache__" / "b.g-2.py311.1.nbc"]
    monkeypatch.setattr(kernel_cache, "PACKAGE", package)
    monkeypatch.setattr(kernel_cache, "STAMP", package / "__pycache__" / "stamp")
    for p in cached:
        p.write_bytes(b"kernel")
    assert kernel_cache.ensure_consistent() is True  # no stamp yet: whatever is cached is of unknown sources
    for p in cached:
        p.write_bytes(b"kernel")
    assert kernel_cache.ensure_consistent() is False and all(p.exists() for p in cached)  # nothing changed
    (package / "sub" / "b.py").write_text("y = 3  # edited\n")
    assert kernel_cache.ensure_consistent() is True and not any(p.exists() for p in cached)
    (package / "sub" / "__pycache__" / "b.cpython-311.pyc").write_bytes(b"bytecode")  # not numba's: kept
    assert kernel_cache.ensure_consistent() is False
    assert (package / "sub" / "__pycache__" / "b.cpython-311.pyc").exists()


class _RecordedFork:
    """ForkedWorkers of evsim.analysis.evaluate, replaced by a subclass that records each fork."""

    def __init__(self, monkeypatch):
        import evsim.analysis.evaluate as ev

        self.made = made = []

        class Recorded(ev.ForkedWorkers):
            def __init__(self, n):
                super().__init__(n)
                made.append(n)

        monkeypatch.setattr(ev, "ForkedWorkers", Recorded)


def test_two_local_dask_evaluations_in_one_process_both_fork_their_workers(small_dataset, monkeypatch):
    forks = _RecordedFork(monkeypatch)
    samples = evsim.FolderDataset(small_dataset).samples
    docs = [evaluate(samples, EvalConfig(M, "speck"), workers=2, progress=False) for _ in range(2)]
    assert forks.made == [2, 2]  # neither spawned its workers
    assert docs[0]["samples"] == docs[1]["samples"] and len(docs[0]["samples"]) == 6
    assert threading.active_count() == 1


def test_a_dask_client_closed_earlier_does_not_stop_the_workers_being_forked(small_dataset, monkeypatch):
    # a user's own Dask client, used then closed in the same process (a notebook), leaves its
    # Dask-Offload thread behind: a local evaluation still forks its workers instead of spawning
    # fresh interpreters, and leaves no thread behind
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None)
    with Client(cluster) as client:
        assert client.submit(sum, [1, 2]).result() == 3
    cluster.close()
    assert not can_fork_workers() and [t.name for t in threading.enumerate()][1:] == ["Dask-Offload_0"]
    forks = _RecordedFork(monkeypatch)
    samples = evsim.FolderDataset(small_dataset).samples
    doc = evaluate(samples, EvalConfig(M, "speck"), workers=2, progress=False)
    assert forks.made == [2] and len(doc["samples"]) == 6 and doc["workers"] == 2
    assert threading.active_count() == 1


# ------------------------------------------------------------------------------------------
# the Python API takes what the command line parses, and says so in the same words
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bundled():
    return evsim.load_model(M, profile="speck")


@pytest.mark.parametrize("call, option", [
    (lambda m: evsim.FolderDataset(None), "root"),
    (lambda m: evsim.Simulator(m, budget="10"), "--budget"),
    (lambda m: evsim.Simulator(m, budget=2 ** 70), "--budget"),
    (lambda m: evsim.Simulator(m, budget=0), "--budget"),
    (lambda m: evsim.ClockSimulator(m, bin_us="x"), "--bin-us"),
    (lambda m: evsim.ClockSimulator(m, n_bins=2.5), "--n-bins"),
    (lambda m: evsim.load_model(M, profile="speck", v_min="x"), "--v-min"),
    (lambda m: evsim.load_model(M, profile="speck", threshold_ge="yes"), "--threshold-rule"),
], ids=["folder-none", "budget-str", "budget-huge", "budget-0", "bin-us-str", "n-bins-fraction", "v-min-str",
        "threshold-ge-str"])
def test_api_arguments_of_the_wrong_type_or_range_raise_option_errors(bundled, call, option):
    with pytest.raises(OptionError) as info:
        call(bundled)
    assert info.value.option == option


def test_compare_refuses_documents_whose_samples_are_not_records(capsys, tmp_path):
    good = {"samples": [{"path": "a.bin", "correct": True}], "accuracy": 1.0}
    for samples in ({"a": 1}, [1, 2], [{"path": "a.bin"}], [{"path": 3, "correct": True}]):
        a, b = tmp_path / "a.json", tmp_path / "b.json"
        a.write_text(json.dumps(good))
        b.write_text(json.dumps({**good, "samples": samples}))
        code, _, err = cli(capsys, "compare", a, b)
        assert code == 2 and "result B" in err and len(err.strip().splitlines()) == 1, (samples, err)


# ------------------------------------------------------------------------------------------
# second sweep: schedulers that do not answer, reports over existing files, odd names and labels
# ------------------------------------------------------------------------------------------


def test_a_listener_that_never_answers_is_not_a_scheduler_and_does_not_hang(small_dataset, monkeypatch):
    import socket

    import evsim.analysis.evaluate as ev

    monkeypatch.setattr(ev, "SCHEDULER_TIMEOUT_S", 1.0)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)  # accepts (the kernel does) and then says nothing
    address = f"tcp://127.0.0.1:{server.getsockname()[1]}"
    try:
        import time
        start = time.monotonic()
        with pytest.raises(OptionError, match="no answer within 1 s"):
            evaluate(evsim.FolderDataset(small_dataset), EvalConfig(M, "speck"), scheduler=address, progress=False)
        assert time.monotonic() - start < 10
    finally:
        server.close()
    # once the listener goes away, the client that was still waiting for it fails in its
    # thread, which then stops its "IO loop" (left running, it would make every later local
    # evaluation in this process spawn its workers instead of forking them)
    deadline = time.monotonic() + 30
    while threading.active_count() > 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [t.name for t in threading.enumerate()] == ["MainThread"]


def test_a_report_that_fails_leaves_an_existing_file_alone_and_lone_surrogates_are_written(capsys, tmp_path,
                                                                                         small_dataset):
    result = tmp_path / "r.json"
    assert cli(capsys, "eval", M, small_dataset, "--json", result, "--quiet")[0] == 0
    doc = json.loads(result.read_text())
    doc["model"] = "\ud800model"  # a lone surrogate (json.dumps escapes it; UTF-8 cannot encode it)
    result.write_text(json.dumps(doc))
    page = tmp_path / "existing.html"
    page.write_text("<p>precious</p>")
    code, _, err = cli(capsys, "report", result, "-o", page)
    assert code == 0, err
    assert page.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    code, _, err = cli(capsys, "report", tmp_path / "missing.json", "-o", page)  # fails before writing
    assert code == 2 and page.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_a_recording_whose_name_is_not_utf8_is_evaluated(capsys, tmp_path, events):
    root = tmp_path / "data"
    (root / "1").mkdir(parents=True)
    with open(os.fsencode(root / "1") + b"/b\xff.npy", "wb") as f:
        np.save(f, events[:600])
    out = tmp_path / "r.json"
    code, _, err = cli(capsys, "eval", M, root, "--json", out, "--csv", tmp_path / "r.csv", "--quiet")
    assert code == 0, err
    doc = json.loads(out.read_text())
    assert doc["n_samples"] == 1 and doc["n_errors"] == 0 and doc["samples"][0]["path"].endswith("b\udcff.npy")


@pytest.mark.parametrize("label", [0.5, None, True, "0", [0, 1]], ids=["half", "none", "bool", "str", "pair"])
def test_labels_that_are_not_class_indices_are_refused(events, label):
    with pytest.raises(OptionError, match="sample 1"):
        evaluate([(events[:300], 0), (events[:300], label)], EvalConfig(M, "speck"), progress=False)


def test_integral_labels_of_any_numeric_type_are_accepted(events):
    doc = evaluate([(events[:300], 1.0), (events[:300], np.int64(1)), (events[:300], np.array([1]))],
                   EvalConfig(M, "speck"), progress=False)
    assert [r["label"] for r in doc["samples"]] == [1, 1, 1]


def test_run_label_must_name_an_output(capsys):
    for label in ("10", "-1", "99999999999999999999"):
        code, _, err = cli(capsys, "run", M, BUNDLED_RECORDING, "--label", label)
        assert code == 2 and "--label" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("edit, field", [
    (lambda d: d["samples"][0].update(label=10 ** 8), "samples[0].label"),
    (lambda d: d["samples"][0].update(prediction=10 ** 20), "samples[0].prediction"),
    (lambda d: d["samples"][0].update(output_counts=[0] * 200_000), "samples[0].output_counts"),
    (lambda d: d.update(profile=[1, 2]), "profile"),
    (lambda d: d.update(cutoff={"mode": []}), "cutoff.mode"),
    (lambda d: d.update(n_samples=1e300), "n_samples"),
    (lambda d: d.update(mean_events_fraction=5e-324), "mean_events_fraction"),
], ids=["label", "prediction", "counts", "profile", "cutoff-mode", "n-samples", "fraction"])
def test_figures_and_reports_refuse_documents_with_absurd_fields(capsys, tmp_path, small_dataset, edit, field):
    result = tmp_path / "r.json"
    assert cli(capsys, "eval", M, small_dataset, "--json", result, "--quiet")[0] == 0
    doc = json.loads(result.read_text())
    edit(doc)
    result.write_text(json.dumps(doc))
    for command, out in (("plot", "p.png"), ("plot-classes", "c.png"), ("report", "r.html")):
        code, _, err = cli(capsys, command, result, "-o", tmp_path / out)
        assert code == 2 and f"'{field}'" in err and len(err.strip().splitlines()) == 1, (command, err)


def test_a_title_with_dollar_signs_is_plain_text(capsys, tmp_path, small_dataset):
    result = tmp_path / "r.json"
    assert cli(capsys, "eval", M, small_dataset, "--json", result, "--quiet")[0] == 0
    code, _, err = cli(capsys, "plot", result, "-o", tmp_path / "p.svg", "--title", r"$\undefinedmacro$ costs $5")
    assert code == 0, err
    assert r"$\undefinedmacro$ costs $5" in (tmp_path / "p.svg").read_text()


@pytest.mark.parametrize("make", [
    lambda ev: np.zeros(3, [("t", "<i8"), ("x", "<i2", (2,)), ("y", "<i2"), ("p", "i1")]),
    lambda ev: np.ma.masked_array(ev[:10], mask=True),
], ids=["subarray-field", "masked"])
def test_event_arrays_that_are_not_one_event_per_row_are_recording_errors(bundled, events, make):
    sim = evsim.Simulator(bundled)
    with pytest.raises(evsim.RecordingError):
        sim.run(make(events))
    sim.reset()
    with pytest.raises(evsim.RecordingError):
        sim.feed(make(events))


@pytest.mark.parametrize("t_end_us", [float("nan"), -1, "5", [1], 2.0 ** 53])
def test_run_t_end_us_must_be_a_time(bundled, events, t_end_us):
    with pytest.raises(OptionError, match="t_end_us"):
        evsim.Simulator(bundled).run(events[:100], t_end_us=t_end_us)


def test_run_stream_needs_an_iterable_of_chunks(bundled):
    with pytest.raises(OptionError, match="iterable of event arrays"):
        evsim.Simulator(bundled).run_stream(5)


def test_time_options_name_themselves_and_stay_below_2_to_the_53(capsys, tmp_path):
    cases = [(["raster", M, BUNDLED_RECORDING, "-o", tmp_path / "r.png", "--window-end-us", "nan"], "--window-end-us"),
             (["raster", M, BUNDLED_RECORDING, "-o", tmp_path / "r.png", "--window-start-us", "1e300"],
              "--window-start-us"),
             (["raster", M, BUNDLED_RECORDING, "-o", tmp_path / "r.png", "--window-start-us", "50",
               "--window-end-us", "10"], "--window-end-us"),
             (["run", M, BUNDLED_RECORDING, "--max-time-us", str(2 ** 53)], "--max-time-us"),
             # 2**53 + 1 is 2**53 as a float: not below it either
             (["run", M, BUNDLED_RECORDING, "--refractory-us", str(2 ** 53 + 1)], "--refractory-us"),
             (["run", M, BUNDLED_RECORDING, "--dt-us", str(2 ** 53)], "--dt-us")]
    for args, option in cases:
        code, _, err = cli(capsys, *args)
        assert code == 2 and f"option {option}:" in err and len(err.strip().splitlines()) == 1, (args, err)
    assert not (tmp_path / "r.png").exists()


@pytest.mark.parametrize("floor", ["1", "1e23"])
def test_a_floor_at_or_above_a_threshold_is_refused(capsys, floor):
    # the bundled layers' threshold is 1: neurons at such a floor fire after every reset, without
    # end (a run took 30 s and a gigabyte to end on the spike budget); a floor below it runs
    code, out, err = cli(capsys, "run", M, BUNDLED_RECORDING, "--v-min", floor)
    assert code == 2 and out == "" and "option --v-min:" in err and "would fire without end" in err, err
    assert "'iaf1' (v_threshold 1)" in err and len(err.strip().splitlines()) == 1
    code, out, err = cli(capsys, "run", M, BUNDLED_RECORDING, "--v-min", "0.99", "--max-events", "50")
    assert code == 0, err


def test_run_prints_nothing_but_the_error_for_a_bad_recording_or_option(capsys, tmp_path):
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"garbage")  # 7 bytes: not a whole number of 5-byte N-MNIST records
    for args, fragment in [((M, bad), "truncated"),
                           ((M, BUNDLED_RECORDING, "--cutoff", "topk", "--threshold", "3", "--mode", "clock",
                             "--bin-us", "1e-300"), "--bin-us")]:
        code, out, err = cli(capsys, "run", *args)
        assert code == 2 and out == "" and fragment in err and len(err.strip().splitlines()) == 1, (out, err)
    assert "must be at least 0.001 µs (a nanosecond)" in err  # 1e-300 µs: below the shortest bin
    # a denormal width (1e-320: span / width is infinite) is the same one line, not an OverflowError
    code, out, err = cli(capsys, "run", M, BUNDLED_RECORDING, "--mode", "clock", "--bin-us", "1e-320")
    assert code == 2 and out == "" and "option --bin-us: must be at least" in err, err
    code, out, err = cli(capsys, "run", M, BUNDLED_RECORDING, "--mode", "clock", "--n-bins", "5",
                         "--duration-us", "1e-320")
    assert code == 2 and out == "" and "option --duration-us: must be at least" in err, err
    # an absurd number of bins is written with three significant digits, not 19
    long = np.zeros(2, dtype=evsim.EVENT_DTYPE)
    long["t"] = [0, 2 ** 52]
    np.save(tmp_path / "long.npy", long)
    code, out, err = cli(capsys, "run", M, tmp_path / "long.npy", "--mode", "clock", "--bin-us", "0.001")
    assert code == 2 and f"{2 ** 52 / 1e-3:.3g} bins of 0.001 µs" in err, err
    assert len(err) < 300, err


@pytest.mark.parametrize("option", [("--chip", "speck"), ("--profile", "sinabs"), ("--quantize", "speck"),
                                    ("--recurrent-delay-us", "5")])
def test_info_refuses_model_options_for_a_recording_or_a_folder(capsys, tmp_path, small_dataset, option):
    for path, what in [(BUNDLED_RECORDING, "a recording"), (small_dataset, "a dataset folder")]:
        code, out, err = cli(capsys, "info", path, *option)
        assert code == 2 and f"option {option[0]}:" in err and what in err and out == "", err
    code, out, _ = cli(capsys, "info", BUNDLED_RECORDING)  # without them the recording is described
    assert code == 0 and "events" in out


def test_a_threshold_that_quantises_to_zero_is_named_as_a_quantisation_error(capsys, tmp_path):
    # weights of 100 set the layer's scale at 127/100: a threshold of 1e-4 becomes 1.27e-4 → 0
    graph = _one_layer(1e-4, weight=100.0)
    path = tmp_path / "tiny_threshold.nir"
    nir.write(path, graph)
    code, out, err = cli(capsys, "info", path, "--quantize", "speck")
    assert code == 2 and "--quantize speck" in err and "rounds to 0" in err and "'n'" in err, err
    graph = _one_layer(1.0, weight=100.0)  # 1.27 → 1: deployable
    nir.write(path, graph)
    code, out, err = cli(capsys, "info", path, "--quantize", "speck")
    assert code == 0, err

"""Dataset evaluation (evsim.analysis.evaluate): one simulation per sample that still gives the
record of a real cutoff run and the uncut trajectory; records independent of workers, chunking
and order (a real Dask LocalCluster); error records; stratified subsets; aggregates against
counts made here; interrupt, kill and resume of the `evsim eval` command."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import evsim
from evsim import analysis
from evsim.analysis.evaluate import EvalConfig, compare_results, evaluate, stratified_subset
from evsim.analysis.execution import SampleRunner
from evsim.analysis.records import read_records_file, records_path_for
from evsim.cli import BUNDLED_MODEL, main
from evsim.errors import EvsimError, OptionError
from evsim.sim.result import Cutoff

from _cli import wait_until_evsim_catches_signals

BUNDLED_RECORDING = next(iter(sorted((BUNDLED_MODEL.parent / "samples").glob("*/*.bin"))))
REPO = Path(__file__).resolve().parents[1]
WALL_FIELDS = ("wall_s", "samples_per_s", "workers")


def _cut(events, rng, fraction):
    keep = np.sort(rng.choice(events.size, int(events.size * fraction), replace=False))
    return events[keep]


@pytest.fixture(scope="module")
def base_events():
    return evsim.read_recording(BUNDLED_RECORDING).events


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, base_events):
    """12 .npy recordings in 3 classes (random subsets of the bundled recording)."""
    root = tmp_path_factory.mktemp("evaldata")
    rng = np.random.default_rng(1)
    for i in range(12):
        label = i % 3
        (root / str(label)).mkdir(exist_ok=True)
        np.save(root / str(label) / f"rec{i:02d}.npy", _cut(base_events, rng, rng.uniform(0.3, 0.9)))
    return root


@pytest.fixture(scope="module")
def samples(dataset):
    return evsim.FolderDataset(dataset).samples


def config(**kw):
    return EvalConfig(str(BUNDLED_MODEL), "speck", **kw)


def strip_wall(doc):
    return {k: v for k, v in doc.items() if k not in WALL_FIELDS}


# ------------------------------------------------------------------------------------------
# one simulation per sample
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cutoff", [Cutoff("topk", threshold=3.0), Cutoff("conf", epsilon=0.2),
                                    Cutoff("none", max_events=2000)], ids=["topk", "conf", "max_events"])
def test_cut_record_is_a_real_engine_run_and_the_trajectory_the_uncut_one(samples, cutoff):
    runner = SampleRunner(config(cutoff=cutoff))
    model = evsim.load_model(BUNDLED_MODEL, profile="speck")
    cut_sim = evsim.Simulator(model, cutoff=cutoff)
    uncut_sim = evsim.Simulator(model, record_output=True)
    decided = 0
    for path, label in samples:
        events = evsim.read_recording(path).events
        record = runner((0, path, label))
        cut = cut_sim.run(events)
        uncut = uncut_sim.run(events)
        decided += cut.status != "complete"
        # the record is the one of an engine run with the cutoff
        assert record["status"] == cut.status
        assert record["prediction"] == cut.prediction
        assert record["events_consumed"] == cut.events_consumed and record["events_total"] == cut.events_total
        assert record["synops"] == cut.synops
        assert record["spikes_per_node"] == cut.spikes_per_node
        assert record["decision_time_us"] == cut.decision_time_us
        assert record["confidence"] == cut.confidence
        assert record["output_counts"] == cut.output.tolist()
        # the trajectory (continued after the decision) is the uncut run's, bit for bit
        traj = runner.last_trajectory
        t, k, v = uncut.output_record
        assert np.array_equal(traj.t_us, t) and np.array_equal(traj.events, k) and np.array_equal(traj.vectors, v)
        traj.label = label
        assert record["oct_us"] == analysis.oracle_cutoff_time(traj)
    assert decided > 0  # the rule did stop some samples early


def test_one_simulation_per_sample_without_cutoff(samples, monkeypatch):
    runner = SampleRunner(config())
    calls = []
    original = runner.sim.run
    monkeypatch.setattr(runner.sim, "run", lambda *a, **k: calls.append(1) or original(*a, **k))
    for i, (path, label) in enumerate(samples[:4]):
        runner((i, path, label))
    assert len(calls) == 4


# ------------------------------------------------------------------------------------------
# aggregates against counts made here
# ------------------------------------------------------------------------------------------


def test_aggregates_against_independent_counts(samples):
    doc = evaluate(samples, config(), progress=False, keep_trajectories=True)
    recs = doc["samples"]
    labels = np.array([r["label"] for r in recs])
    preds = np.array([-1 if r["prediction"] is None else r["prediction"] for r in recs])
    assert [r["index"] for r in recs] == list(range(len(samples)))
    assert doc["n_correct"] == int(np.sum(labels == preds))
    assert doc["accuracy"] == np.mean(labels == preds)
    n, k = len(recs), doc["n_correct"]
    # Wilson bounds solve |p̂ − p| = z·sqrt(p(1 − p)/n)
    for bound in (doc["accuracy_interval"]["low"], doc["accuracy_interval"]["high"]):
        if 0 < bound < 1:
            assert abs(k / n - bound) == pytest.approx(1.959963984540054 * np.sqrt(bound * (1 - bound) / n))
    for row in doc["per_class"]:
        mine = labels == row["label"]
        assert row["n"] == int(mine.sum()) and row["correct"] == int(np.sum(preds[mine] == row["label"]))
    cm = np.array(doc["confusion_matrix"]["counts"])
    for y in range(cm.shape[0]):
        for p in range(cm.shape[1] - 1):
            assert cm[y, p] == int(np.sum((labels == y) & (preds == p)))
        assert cm[y, -1] == int(np.sum((labels == y) & (preds == -1)))
    assert doc["class_counts"] == {0: 4, 1: 4, 2: 4}
    # the anytime summary from the digests equals the per-trajectory loops of evsim.analysis
    trajs = doc["_trajectories"]
    any_ = doc["anytime"]
    assert any_["accuracy_vs_time"] == pytest.approx(analysis.accuracy_vs_time(trajs, any_["time_us"]).tolist(),
                                                     abs=1e-12)
    assert any_["accuracy_vs_fraction"] == pytest.approx(
        analysis.accuracy_vs_fraction(trajs, any_["fraction"]).tolist(), abs=1e-12)
    betas = [s["beta"] for s in any_["sweep"]]
    assert betas
    reference = analysis.cutoff_sweep(trajs, "topk", values=betas)
    for mine, ref in zip(any_["sweep"], reference):
        for key in ("accuracy", "mean_events_fraction", "mean_latency_us"):
            assert mine[key] == pytest.approx(ref[key], abs=1e-12)
    octs = [analysis.oracle_cutoff_time(t) for t in trajs]
    assert doc["oct"]["defined"] == sum(o is not None for o in octs)
    assert doc["mean_events_fraction"] == pytest.approx(np.mean([r["events_consumed"] / r["events_total"] for r in recs]))
    # provenance
    assert doc["evsim_version"] == evsim.__version__
    assert doc["model_hash"] == evsim.load_model(BUNDLED_MODEL, profile="speck").model_hash
    assert doc["options"]["profile"] == "speck" and doc["options"]["precision"] == "float32"


def _random_trajectory(rng, label):
    n = int(rng.integers(0, 40))
    t = np.sort(rng.uniform(0, 1e5, n)).round()
    t[rng.random(n) < 0.2] = t[0] if n else 0  # ties in time
    t = np.sort(t)
    events = np.sort(rng.integers(1, 5000, n))
    vectors = np.cumsum(rng.integers(0, 2, (n, 4)) * (rng.random((n, 4)) < 0.4), axis=0).astype(float)
    return analysis.Trajectory(t, events, vectors, 5000, 1e5 + float(rng.integers(0, 1000)), label)


def test_anytime_digests_reproduce_the_trajectory_loops():
    """Synthetic trajectories (ties in time and confidence, samples without activity): the
    vectorised summary from digests equals evsim.analysis's per-trajectory functions."""
    from evsim.analysis.aggregate import anytime_summary
    from evsim.analysis.records import anytime_digest

    rng = np.random.default_rng(5)
    trajs = [_random_trajectory(rng, int(rng.integers(0, 4))) for _ in range(60)]
    records = [{"events_total": tr.events_total, "anytime": anytime_digest(tr)} for tr in trajs]
    s = anytime_summary(records)
    assert s["accuracy_vs_time"] == pytest.approx(analysis.accuracy_vs_time(trajs, s["time_us"]).tolist(), abs=1e-12)
    assert s["accuracy_vs_fraction"] == pytest.approx(analysis.accuracy_vs_fraction(trajs, s["fraction"]).tolist(),
                                                      abs=1e-12)
    betas = [v["beta"] for v in s["sweep"]]
    assert len(betas) > 3
    for mine, ref in zip(s["sweep"], analysis.cutoff_sweep(trajs, "topk", values=betas)):
        for key in ("accuracy", "mean_events_fraction", "mean_latency_us"):
            assert mine[key] == pytest.approx(ref[key], abs=1e-12)


def test_in_memory_dataset_gives_the_folder_records(samples):
    folder = evaluate(samples, config(), progress=False)
    memory = [(np.load(path), label) for path, label in samples]

    class Indexable:  # e.g. a tonic dataset: __len__ and __getitem__ → (events, target)
        def __len__(self):
            return len(memory)

        def __getitem__(self, i):
            return memory[i]

    for data in (memory, Indexable()):
        doc = evaluate(data, config(), progress=False)
        for a, b in zip(folder["samples"], doc["samples"]):
            assert "events_digest" not in a and len(b["events_digest"]) == 20  # (in-memory data only: for --resume)
            assert ({k: v for k, v in a.items() if k != "path"}
                    == {k: v for k, v in b.items() if k not in ("path", "events_digest")})


def test_return_samples_false_leaves_them_in_the_file_only(tmp_path, samples):
    # records are kept with numpy columns during the run; the returned samples are plain JSON
    # values equal to the file's, and without them the aggregates are unchanged
    out, out_without = tmp_path / "with.json", tmp_path / "without.json"
    with_samples = evaluate(samples[:5], config(), progress=False, json_path=out)
    without = evaluate(samples[:5], config(), progress=False, json_path=out_without, return_samples=False)
    assert "samples" not in without
    assert with_samples["samples"] == json.loads(out.read_text())["samples"] == json.loads(out_without.read_text())["samples"]
    assert {k: v for k, v in strip_wall(with_samples).items() if k != "samples"} == strip_wall(without)
    peaks = with_samples["samples"][0]["anytime"]["peaks"]
    assert all(type(v) is list for v in peaks.values()) and peaks["confidence"], peaks
    assert type(peaks["events"][0]) is int and type(peaks["correct"][0]) is bool
    with pytest.raises(OptionError, match="return_samples"):
        evaluate(samples[:1], config(), progress=False, return_samples="no")


def test_record_lines_give_each_samples_last_text_in_the_records_file(tmp_path):
    # the documents and the final CSV of an evaluation are written from the records file, whose
    # lines come in completion order; the text of a sample written twice (an error, then its
    # retry on --resume) is the later one
    from evsim.analysis.records import (RecordLines, RecordsFile, document_parts, dumps_document, dumps_record,
                                        error_record, write_csv)

    records = {i: {"index": i, "path": f"r{i}.npy", "label": i % 3, "prediction": i % 2, "correct": bool(i % 2),
                   "decision_time_us": 10.5 * i, "anytime": {"peaks": {"confidence": np.arange(i, dtype=float)}}}
               for i in range(6)}
    path = tmp_path / "x.records.jsonl"
    writer = RecordsFile(path, {"model_hash": "h"})
    lines = RecordLines(path, 6)
    lines.set(2, writer.append(error_record(2, "r2.npy", 2, "bad file")))
    for i in (4, 0, 5, 2, 1, 3):
        lines.set(i, writer.append_text(dumps_record(records[i])))
    writer.close()
    positions: dict = {}
    header, read, _ = read_records_file(path, positions)
    assert header["model_hash"] == "h" and set(positions) == set(range(6))
    for i in range(6):
        expected = json.loads(json.dumps(records[i], default=lambda a: a.tolist()))
        assert lines.record(i) == read[i] == expected
        assert tuple(positions[i]) == (int(lines.offset[i]), int(lines.length[i]))
    assert lines.get(6) is None and lines.get(-1) is None
    doc = {"format": "x", "samples": [records[i] for i in range(6)], "n": 6}
    from_file = "".join(document_parts(doc, lines))
    assert from_file == dumps_document(doc) == dumps_document(doc, {i: dumps_record(records[i]) for i in range(6)})
    write_csv(tmp_path / "a.csv", (lines.record(i) for i in range(6)))
    write_csv(tmp_path / "b.csv", [records[i] for i in range(6)])
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    lines.close()


def test_csv_rows_are_put_in_sample_order_as_the_csv_module_writes_them(tmp_path):
    # the eval's CSV gets a row per finished sample in completion order; at the end it is put in
    # sample order by copying each sample's last row: the bytes must be those of the csv module
    # writing the rows in sample order (quotes, commas, newlines, undecodable names included)
    import csv as csv_module
    from evsim.analysis.records import CSV_ENCODING_ERRORS, SAMPLE_FIELDS, CsvRows, csv_row, error_record

    def rec(i, path=None):
        return {"index": i, "path": path or f"r{i}.npy", "label": i % 3, "prediction": i % 2, "correct": bool(i % 2),
                "decision_time_us": 10.5 * i, "spikes_per_node": {"a": i, "b": [i, 2]}, "status": "ok"}

    records = {i: rec(i) for i in range(8)}
    records[3] = rec(3, 'odd, "quoted"\nname.npy')
    records[6] = rec(6, "r\udcff.npy")  # a file name that is not UTF-8
    records[7] = error_record(7, "r7.npy", 1, "bad file, truncated")
    path = tmp_path / "out.csv"
    rows = CsvRows(path, 8, [records[0], records[1]])  # two samples finished before (a resume)
    arrival = [5, 3, 4, 4, 2, 7, 6]
    for i in arrival:
        rows.append(error_record(4, "r4.npy", 1, "first try") if i == 4 and rows.lines.offset[4] < 0 else records[i])
    rows.close()
    with open(path, newline="", encoding="utf-8") as f:
        as_written = list(csv_module.reader(f))
    assert as_written[0] == SAMPLE_FIELDS and [int(r[0]) for r in as_written[1:]] == [0, 1] + arrival
    assert as_written[5][-1] == "error: first try"
    rows.put_in_sample_order()
    expected = tmp_path / "expected.csv"
    with open(expected, "w", newline="", encoding="utf-8", errors=CSV_ENCODING_ERRORS) as f:
        w = csv_module.writer(f)
        w.writerow(SAMPLE_FIELDS)
        for i in range(8):
            w.writerow(csv_row(records[i]))
    assert path.read_bytes() == expected.read_bytes()
    with open(path, newline="", encoding="utf-8") as f:
        back = list(csv_module.reader(f))
    assert [int(r[0]) for r in back[1:]] == list(range(8)) and back[4][1] == 'odd, "quoted"\nname.npy'
    assert back[7][1] == "r\\udcff.npy" and back[8][-1] == "error: bad file, truncated"
    # rows that came in sample order are left as they are (the file is not rewritten)
    in_order = CsvRows(tmp_path / "b.csv", 8, [records[0]])
    for i in range(1, 8):
        in_order.append(records[i])
    in_order.close()
    inode = os.stat(tmp_path / "b.csv").st_ino
    in_order.put_in_sample_order()
    assert os.stat(tmp_path / "b.csv").st_ino == inode
    assert (tmp_path / "b.csv").read_bytes() == expected.read_bytes()


def test_resume_of_in_memory_data_checks_every_finished_sample(tmp_path, samples):
    """The data fingerprint covers the sample count and the first and last samples; a middle
    sample changed between the run and its resume once kept its old record (accuracy from
    events no longer given). Now each finished sample's events are checked."""
    memory = [(np.load(path), label) for path, label in samples[:3]]
    out = tmp_path / "mem.json"
    first = evaluate(memory, config(), progress=False, json_path=out)
    assert first["n_samples"] == 3
    again = evaluate(memory, config(), progress=False, json_path=out, resume=True)
    assert strip_wall(again)["samples"] == strip_wall(first)["samples"]
    changed = list(memory)
    changed[1] = (memory[1][0][: memory[1][0].size // 2], memory[1][1])  # other events, same count of samples
    with pytest.raises(OptionError, match="sample 1's events are not those of that run"):
        evaluate(changed, config(), progress=False, json_path=out, resume=True)
    # the same events in another dtype layout are other data too (the digest includes the dtype)
    widened = list(memory)
    ev = memory[1][0]
    wide = np.zeros(ev.size, dtype=[(n, np.float64) for n in ev.dtype.names])
    for n in ev.dtype.names:
        wide[n] = ev[n]
    widened[1] = (wide, memory[1][1])
    with pytest.raises(OptionError, match="sample 1's events"):
        evaluate(widened, config(), progress=False, json_path=out, resume=True)


def test_the_heap_frozen_during_an_evaluation_is_given_back(samples):
    """evaluate() keeps the warm heap out of the collector's way while it runs (gc.freeze) and
    unfreezes it at the end: a reference cycle dropped before the call is collected after it,
    no object stays frozen, and a caller's own frozen objects stay frozen."""
    import gc
    import weakref

    class Node:
        pass

    def cycle():
        a, b = Node(), Node()
        a.other, b.other = b, a
        return weakref.ref(a)

    memory = [(np.load(path), label) for path, label in samples[:3]]
    seen = []

    class Probe:  # an in-memory dataset that notes the frozen count whenever a sample is taken
        def __len__(self):
            return len(memory)

        def __getitem__(self, i):
            seen.append(gc.get_freeze_count())
            return memory[i]

    gc.collect()
    assert gc.get_freeze_count() == 0
    dead = cycle()  # garbage already, collectable only by the cycle collector
    doc = evaluate(Probe(), config(), progress=False)
    assert len(doc["samples"]) == 3
    assert max(seen) > 0  # frozen while samples were run
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert dead() is None
    # a caller that froze its heap itself keeps it frozen: its dropped cycle survives a collection
    kept = cycle()
    gc.freeze()
    try:
        evaluate(samples[:1], config(), progress=False)
        gc.collect()
        assert kept() is not None and gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
    gc.collect()
    assert kept() is None


# ------------------------------------------------------------------------------------------
# errors, subsets, comparison
# ------------------------------------------------------------------------------------------


def test_a_corrupt_recording_becomes_an_error_record(tmp_path, dataset):
    root = tmp_path / "data"
    for src in sorted(dataset.glob("*/*.npy"))[:5]:
        (root / src.parent.name).mkdir(parents=True, exist_ok=True)
        (root / src.parent.name / src.name).write_bytes(src.read_bytes())
    bad = root / "1" / "zz_corrupt.npy"
    bad.write_bytes(b"\x93NUMPY garbage")
    data = evsim.FolderDataset(root).samples
    out = tmp_path / "out.json"
    doc = evaluate(data, config(), progress=False, json_path=out)
    assert doc["n_errors"] == 1 and doc["errors"][0]["path"] == str(bad)
    assert doc["n_samples"] == len(data) - 1 and doc["complete"]
    assert json.loads(out.read_text())["n_errors"] == 1
    with pytest.raises(EvsimError, match="zz_corrupt"):
        evaluate(data, config(), progress=False, json_path=tmp_path / "stop.json", on_error="stop")
    stopped = json.loads((tmp_path / "stop.json").read_text())
    assert stopped["complete"] is False and stopped["n_errors"] == 1


def test_an_unwritable_output_is_an_evsim_error(tmp_path, samples):
    with pytest.raises(EvsimError, match="cannot write"):
        evaluate(samples[:1], config(), progress=False, json_path=tmp_path / "missing" / "out.json")


def test_stratified_subset_is_proportional_seeded_and_stable():
    labels = [0] * 97 + [1] * 3 + [2] * 50 + [3] * 50  # label order, like a folder dataset
    picked = stratified_subset(labels, 20, seed=3)
    assert picked == sorted(picked) and len(set(picked)) == 20
    counts = np.bincount(np.asarray(labels)[picked], minlength=4)
    # quotas 9.7, 0.3, 5, 5: floors 9, 0, 5, 5 and the one left over to the largest remainder (class 0)
    assert counts.tolist() == [10, 0, 5, 5]
    assert stratified_subset(labels, 20, seed=3) == picked
    assert stratified_subset(labels, 20, seed=4) != picked
    assert stratified_subset(labels, 500) == list(range(200))
    with pytest.raises(OptionError):
        stratified_subset(labels, 0)


def test_compare_gives_the_paired_difference(samples):
    a = evaluate(samples, config(), progress=False)
    b = evaluate(samples, config(cutoff=Cutoff("topk", threshold=1.0)), progress=False)
    diff = compare_results(a, b)
    ca = np.array([r["correct"] for r in a["samples"]])
    cb = np.array([r["correct"] for r in b["samples"]])
    assert diff["n"] == len(samples)
    assert diff["a_only"] == int(np.sum(ca & ~cb)) and diff["b_only"] == int(np.sum(~ca & cb))
    assert diff["difference"] == pytest.approx(ca.mean() - cb.mean())
    assert diff["low"] <= diff["difference"] <= diff["high"]
    assert diff["incomplete"] == [] and diff["only_in_a_errors_in_b"] == diff["only_in_b_errors_in_a"] == 0


def test_compare_refuses_other_labels_and_repeated_recordings_and_says_what_is_left_out(samples):
    """Once compared anyway: a recording relabelled in one result, a recording listed twice; an
    interrupted result and recordings that failed in the other run were not mentioned."""
    import copy

    a = evaluate(samples, config(), progress=False)
    relabelled = copy.deepcopy(a)
    relabelled["samples"][0]["label"] = (relabelled["samples"][0]["label"] + 1) % 3
    with pytest.raises(OptionError, match="has label .* in result A but .* in result B: not the same data"):
        compare_results(a, relabelled)
    twice = copy.deepcopy(a)
    twice["samples"].append(copy.deepcopy(twice["samples"][1]))
    with pytest.raises(OptionError, match="result B: .* appears twice"):
        compare_results(a, twice)
    # B could not read recording 0 (an error record) and was interrupted
    failed = copy.deepcopy(a)
    gone = failed["samples"].pop(0)
    failed["errors"] = [{"index": 0, "path": gone["path"], "label": gone["label"], "message": "truncated"}]
    failed["complete"] = False
    diff = compare_results(a, failed)
    assert (diff["n"], diff["only_in_a"], diff["only_in_a_errors_in_b"], diff["only_in_b"]) == (len(samples) - 1, 1, 1, 0)
    assert diff["incomplete"] == ["B"]


# ------------------------------------------------------------------------------------------
# Dask
# ------------------------------------------------------------------------------------------


def test_local_cluster_records_are_bit_identical_to_one_worker(samples, tmp_path):
    from distributed import Client, LocalCluster

    one = evaluate(samples, config(cutoff=Cutoff("topk", threshold=3.0)), progress=False,
                   json_path=tmp_path / "one.json", csv_path=tmp_path / "one.csv")
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address=None)
    try:
        with Client(cluster) as client:
            for chunk in (1, 5):
                out = tmp_path / f"chunk{chunk}.json"
                doc = evaluate(samples, config(cutoff=Cutoff("topk", threshold=3.0)), client=client,
                               chunk_size=chunk, progress=False, json_path=out, csv_path=out.with_suffix(".csv"),
                               return_samples=chunk == 1)
                if chunk == 1:
                    assert doc["samples"] == one["samples"]
                assert strip_wall(doc) == {k: v for k, v in strip_wall(one).items() if chunk == 1 or k != "samples"}
                assert doc["workers"] == 2  # the cluster's workers (it said 1, the default of --workers)
                # the files, written from the records file (records in completion order), are those of one worker
                assert strip_wall(json.loads(out.read_text())) == strip_wall(json.loads((tmp_path / "one.json").read_text()))
                assert out.with_suffix(".csv").read_bytes() == (tmp_path / "one.csv").read_bytes()
            # the workers did the work: each process holds its own runner
            pids = client.run(os.getpid)
            assert len(set(pids.values())) == 2 and os.getpid() not in pids.values()
    finally:
        cluster.close()


_FORKED_RUN = """
import json, os, signal, sys
import evsim
import evsim.analysis.evaluate as ev
from evsim.analysis.records import json_default
from evsim.sim.result import Cutoff

data, chunk, kill, model = sys.argv[1], int(sys.argv[2]) or None, sys.argv[3], sys.argv[4]
made = []

class Watched(ev.ForkedWorkers):  # records the worker processes
    def __init__(self, n):
        super().__init__(n)
        made.extend(p.pid for p in self.processes)

joined = ev._wait_for_forked

def wait_then_kill(client, forked, n):  # once both workers have joined, kill some
    joined(client, forked, n)
    for pid in {"none": [], "one": made[:1], "all": made}[kill]:
        os.kill(pid, signal.SIGKILL)

ev.ForkedWorkers = Watched
ev._wait_for_forked = wait_then_kill
ev.HEAD_START = kill == "none"  # (the head start could run every sample before the workers are killed)
config = ev.EvalConfig(model, "speck", cutoff=Cutoff("topk", threshold=3.0))
try:
    doc = ev.evaluate(evsim.FolderDataset(data).samples, config, workers=2, chunk_size=chunk, progress=False)
    out = {"doc": doc}
except evsim.EvsimError as exc:
    out = {"error": str(exc)}
out["made"] = made
out["left"] = [pid for pid in made if os.path.exists(f"/proc/{pid}")]
print(json.dumps(out, default=json_default))
"""


def _forked_run(data, chunk, kill="none"):
    proc = _run([sys.executable, "-c", _FORKED_RUN, str(data), str(chunk), kill, str(BUNDLED_MODEL)], timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.parametrize("chunk", [1, 7, 0])
def test_forked_local_workers_give_the_records_of_one_worker(dataset, samples, chunk):
    """``workers=2`` without a client: two worker processes forked from the (single-threaded)
    calling process; the document equals the one of one in-process worker, and no worker
    process is left behind. ``chunk`` 0: the default chunks (sized from the workers' timing, so
    they differ from run to run)."""
    one = evaluate(samples, config(cutoff=Cutoff("topk", threshold=3.0)), progress=False)
    out = _forked_run(dataset, chunk)
    assert len(out["made"]) == 2  # forked, not spawned by a LocalCluster
    assert out["left"] == []
    doc = out["doc"]
    assert doc["workers"] == 2
    assert doc["samples"] == json.loads(json.dumps(one["samples"]))
    assert strip_wall(doc) == json.loads(json.dumps(strip_wall(one)))


@pytest.mark.parametrize("sample_s", [None, 1e-4, 0.009, 0.05, 0.7, 3.0])
@pytest.mark.parametrize("n_samples, n_workers", [(1, 2), (5, 2), (1000, 2), (1000, 1), (20000, 4)])
def test_default_chunks_cover_every_sample_and_shrink_towards_the_end(n_samples, n_workers, sample_s):
    """The default Dask chunks, drawn one after the other as :func:`_run_dask` does: they cover
    the samples exactly; each holds at most about a second of work at ``sample_s`` seconds per
    sample (one sample if a sample takes longer) and never more than one worker's share of what
    is left; at least a tenth of a second's work unless that share is smaller; apart from that
    floor, at most a quarter of one worker's share, so the last chunks are the smallest."""
    from evsim.analysis.evaluate import CHUNK_TARGET_S, chunk_size_for

    remaining, sizes, lefts = n_samples, [], []
    while remaining:
        size = chunk_size_for(remaining, n_workers, sample_s)
        assert 1 <= size <= remaining
        sizes.append(size)
        lefts.append(remaining)
        remaining -= size
    assert sum(sizes) == n_samples
    for size, left in zip(sizes, lefts):
        if sample_s is None:
            assert size <= 16
            continue
        if sample_s >= CHUNK_TARGET_S:
            assert size == 1
            continue
        assert size * sample_s <= CHUNK_TARGET_S + 1e-12
        assert size <= np.ceil(left / n_workers)  # never more than one worker's share
        assert size >= min(left, np.ceil(left / n_workers), CHUNK_TARGET_S / 10 / sample_s - 1)
        assert size <= np.ceil(left / (4 * n_workers)) or size * sample_s <= CHUNK_TARGET_S / 10
    if sample_s is not None and n_samples >= 1000 and sample_s < 0.1:
        assert len(sizes) <= n_samples / 4  # far fewer tasks than samples: the per-task cost is spread
        assert len(sizes) == 1 or sizes[-1] < max(sizes)  # shrinks towards the end


def test_forked_workers_one_killed_the_other_finishes_all_killed_is_an_error(dataset, samples):
    one = evaluate(samples, config(cutoff=Cutoff("topk", threshold=3.0)), progress=False)
    survived = _forked_run(dataset, 1, kill="one")
    assert survived["left"] == []
    assert survived["doc"]["samples"] == json.loads(json.dumps(one["samples"]))
    none_left = _forked_run(dataset, 1, kill="all")
    assert "every local Dask worker process died" in none_left["error"]
    assert none_left["left"] == []


def _held_head_start(monkeypatch, hold: int, sample_s: float = 0.0, die_after: int | None = None) -> list:
    """Replace the eval's head start by one that is stopped only once it has finished ``hold``
    samples (all of its samples if it has fewer); each of its samples takes ``sample_s`` longer;
    with ``die_after``, its process kills itself when it starts the sample after that many.
    Returns the list that gets the number of records each head start gave back."""
    import threading

    import evsim.analysis.evaluate as ev
    from evsim.analysis.execution import can_fork_workers, release_idle_dask_threads

    release_idle_dask_threads()  # (what evaluate does first)
    # else the workers are spawned, with no head start: a thread some earlier code left running
    assert can_fork_workers(), [t.name for t in threading.enumerate()]
    kept, work = [], ev._head_start_work
    started = [0]  # (in the head start's process)

    def slow_work(*a):
        if die_after is not None and started[0] == die_after:
            os.kill(os.getpid(), signal.SIGKILL)
        started[0] += 1
        time.sleep(sample_s)
        return work(*a)

    class Held(ev.HeadStart):
        def stop(self):
            deadline = time.time() + 120
            while self._records is None and self._reported < hold and time.time() < deadline:
                self._receive(block=False)
                time.sleep(0.002)
            super().stop()

        def records(self):
            out = super().records()
            if out or not kept:
                kept.append(len(out))
            return out

    monkeypatch.setattr(ev, "_head_start_work", slow_work)
    monkeypatch.setattr(ev, "HeadStart", Held)
    return kept


def test_the_head_start_gives_the_records_of_one_worker(dataset, samples, tmp_path, monkeypatch):
    """The process that simulates samples from the end of the queue while the local cluster
    starts: its records, trajectories and files are those of one in-process worker."""
    cfg = config(cutoff=Cutoff("topk", threshold=3.0))
    one = evaluate(samples, cfg, progress=False, keep_trajectories=True, json_path=tmp_path / "one.json",
                   csv_path=tmp_path / "one.csv")
    kept = _held_head_start(monkeypatch, hold=4, sample_s=0.2)
    import evsim.analysis.evaluate as ev

    appended = []

    class CountedRows(ev.CsvRows):
        def append(self, record):
            appended.append(record["index"])
            super().append(record)

    monkeypatch.setattr(ev, "CsvRows", CountedRows)
    # chunks of 5: Dask's first three chunks would cover every sample, the head start's too
    two = evaluate(samples, cfg, workers=2, progress=False, keep_trajectories=True, json_path=tmp_path / "two.json",
                   csv_path=tmp_path / "two.csv", chunk_size=5)
    assert len(kept) == 1 and 4 <= kept[0] < len(samples)  # the rest went to the Dask workers
    assert sorted(appended) == list(range(len(samples)))  # each sample simulated once
    assert appended[:kept[0]] == list(range(len(samples) - 1, len(samples) - 1 - kept[0], -1))  # the queue's end
    assert two["samples"] == one["samples"] and two["workers"] == 2
    assert strip_wall(json.loads((tmp_path / "two.json").read_text())) == \
        strip_wall(json.loads((tmp_path / "one.json").read_text()))
    assert (tmp_path / "two.csv").read_bytes() == (tmp_path / "one.csv").read_bytes()
    assert len(two["_trajectories"]) == len(one["_trajectories"]) == len(samples)
    for traj, other in zip(one["_trajectories"], two["_trajectories"]):
        assert traj is not None and other is not None
        for field in ("t_us", "events", "vectors"):
            assert np.array_equal(getattr(other, field), getattr(traj, field))
        assert (other.events_total, other.duration_us, other.label) == (traj.events_total, traj.duration_us,
                                                                         traj.label)


@pytest.mark.parametrize("case", ["killed", "everything"])
def test_a_head_start_that_dies_or_does_everything_loses_no_sample(dataset, samples, monkeypatch, case):
    one = evaluate(samples, config(), progress=False)
    kept = _held_head_start(monkeypatch, hold=len(samples), die_after=2 if case == "killed" else None)
    two = evaluate(samples, config(), workers=2, progress=False)
    assert kept == ([0] if case == "killed" else [len(samples)])  # (everything: no sample left for Dask)
    assert two["complete"] and two["samples"] == one["samples"]


def test_an_error_in_the_head_start_stops_the_run_with_on_error_stop(dataset, tmp_path, monkeypatch):
    # the head start runs the queue's last sample first: a corrupt one there ends the run
    root = tmp_path / "data"
    for src in sorted(dataset.glob("*/*.npy"))[:6]:
        (root / src.parent.name).mkdir(parents=True, exist_ok=True)
        (root / src.parent.name / src.name).write_bytes(src.read_bytes())
    (root / "9").mkdir()
    (root / "9" / "zz_corrupt.npy").write_bytes(b"\x93NUMPY garbage")
    data = evsim.FolderDataset(root).samples
    assert data[-1][0].endswith("zz_corrupt.npy")
    kept = _held_head_start(monkeypatch, hold=3, sample_s=0.05)
    with pytest.raises(EvsimError, match="zz_corrupt"):
        evaluate(data, config(), workers=2, progress=False, json_path=tmp_path / "stop.json", on_error="stop")
    stopped = json.loads((tmp_path / "stop.json").read_text())
    assert kept[0] >= 3 and stopped["complete"] is False and stopped["n_errors"] == 1
    assert stopped["errors"][0]["path"].endswith("zz_corrupt.npy")


@pytest.mark.parametrize("chunk_size", [None, 1])
def test_on_error_stop_reports_the_first_failure_in_sample_order_with_two_workers(dataset, tmp_path, monkeypatch,
                                                                                 chunk_size):
    # a corrupt recording early in sample order and one at the end, which the head start (run
    # from the end of the queue) meets first: the run stops at the early one, as one worker does,
    # with every sample before it evaluated
    root = tmp_path / "data"
    for src in sorted(dataset.glob("*/*.npy"))[:8]:
        (root / src.parent.name).mkdir(parents=True, exist_ok=True)
        (root / src.parent.name / src.name).write_bytes(src.read_bytes())
    (root / "0" / "zz_early.npy").write_bytes(b"\x93NUMPY garbage")
    (root / "9").mkdir()
    (root / "9" / "zz_late.npy").write_bytes(b"\x93NUMPY garbage")
    data = evsim.FolderDataset(root).samples
    early = next(i for i, (path, _) in enumerate(data) if path.endswith("zz_early.npy"))
    assert 0 < early < len(data) - 2 and data[-1][0].endswith("zz_late.npy")
    with pytest.raises(EvsimError, match="zz_early") as one_worker:
        evaluate(data, config(), progress=False, json_path=tmp_path / "one.json", on_error="stop")
    kept = _held_head_start(monkeypatch, hold=2)
    with pytest.raises(EvsimError) as two_workers:
        evaluate(data, config(), workers=2, progress=False, json_path=tmp_path / "two.json", on_error="stop",
                 chunk_size=chunk_size)
    assert str(two_workers.value) == str(one_worker.value)
    stopped = json.loads((tmp_path / "two.json").read_text())
    assert kept[0] >= 2 and stopped["complete"] is False  # the head start did meet the late one
    assert {e["path"].rsplit("/", 1)[1] for e in stopped["errors"]} == {"zz_early.npy", "zz_late.npy"}
    assert set(range(early + 1)) <= {s["index"] for s in stopped["samples"]} | {e["index"] for e in stopped["errors"]}


def test_a_worker_killed_mid_run_loses_no_sample(big_dataset, tmp_path):
    """A Dask worker process killed while it works: its tasks run again elsewhere and the
    document equals the one of a single in-process worker."""
    import threading

    from distributed import Client, LocalCluster

    data = evsim.FolderDataset(big_dataset).samples
    one = evaluate(data, config(), progress=False)
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address=None)
    try:
        with Client(cluster) as client:
            pids_before = set(client.run(os.getpid).values())
            records = records_path_for(tmp_path / "k.json")

            def kill_one_worker_once_started():
                t0 = time.time()
                while time.time() - t0 < 120:
                    if records.exists() and records.read_bytes().count(b"\n") >= 5:
                        break
                    time.sleep(0.01)
                os.kill(sorted(pids_before)[0], signal.SIGKILL)

            killer = threading.Thread(target=kill_one_worker_once_started)
            killer.start()
            doc = evaluate(data, config(), client=client, chunk_size=4, progress=False, json_path=tmp_path / "k.json")
            killer.join()
            assert sorted(pids_before)[0] not in set(client.run(os.getpid).values())  # it did die
    finally:
        cluster.close()
    assert doc["complete"] and doc["samples"] == one["samples"]


# ------------------------------------------------------------------------------------------
# the command: interrupts, kills, resume
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def big_dataset(tmp_path_factory, base_events):
    """240 recordings in 4 classes, long enough to be interrupted mid-run."""
    root = tmp_path_factory.mktemp("bigdata")
    rng = np.random.default_rng(2)
    for i in range(240):
        label = i % 4
        (root / str(label)).mkdir(exist_ok=True)
        np.save(root / str(label) / f"r{i:03d}.npy", _cut(base_events, rng, rng.uniform(0.5, 1.0)))
    return root


def _eval_command(data, out, *extra):
    return [sys.executable, "-m", "evsim.cli", "eval", str(BUNDLED_MODEL), str(data), "--profile", "speck",
            "--cutoff", "topk", "--threshold", "4", "--json", str(out), "--csv", str(out.with_suffix(".csv")),
            "--quiet", *extra]


def _run(cmd, timeout=600):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def _start(cmd):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _check_files_valid(out: Path):
    """Whatever is on disk parses: the JSON document, the CSV, the records file."""
    if out.exists():
        doc = json.loads(out.read_text())
        assert doc["format"] == "evsim-eval/3"
    records = records_path_for(out)
    if records.exists():
        read_records_file(records)
    csv_path = out.with_suffix(".csv")
    if csv_path.exists():
        import csv

        with open(csv_path, newline="") as f:
            rows = list(csv.reader(f))
        assert rows[0][0] == "index"


@pytest.fixture(scope="module")
def reference_doc(tmp_path_factory, big_dataset):
    out = tmp_path_factory.mktemp("ref") / "ref.json"
    proc = _run(_eval_command(big_dataset, out))
    assert proc.returncode == 0, proc.stderr
    return json.loads(out.read_text())


def _wait_for_start(proc, out, limit_s=300):
    """Until the run has finished its first samples (the records file has records)."""
    records = records_path_for(out)
    t0 = time.time()
    while time.time() - t0 < limit_s and proc.poll() is None:
        if records.exists() and records.read_bytes().count(b"\n") >= 2:
            return
        time.sleep(0.05)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_keeps_finished_samples_exits_130_and_resume_completes(tmp_path, big_dataset, reference_doc, sig):
    rng = random.Random(sig)
    tries = 0
    for attempt in range(3):
        out = tmp_path / f"run{attempt}.json"
        proc = _start(_eval_command(big_dataset, out))
        if attempt == 0:
            wait_until_evsim_catches_signals(proc)
            time.sleep(rng.uniform(0.3, 2.8))  # possibly while the model loads
        else:
            _wait_for_start(proc, out)
            time.sleep(rng.uniform(0.0, 1.0))
        if proc.poll() is not None:
            continue  # finished before the signal: not a try
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=300)
        assert "Traceback" not in err and "Segmentation" not in err
        _check_files_valid(out)
        if proc.returncode == 0 and json.loads(out.read_text())["complete"]:
            continue  # the signal came after the last sample, while the document was written: not a try
        tries += 1
        assert proc.returncode == 130, err
        doc = json.loads(out.read_text())
        assert doc["complete"] is False and doc.get("interrupted") is True
        resumed = _run(_eval_command(big_dataset, out, "--resume"))
        assert resumed.returncode == 0, resumed.stderr
        final = json.loads(out.read_text())
        assert strip_wall(final) == strip_wall(reference_doc)
        assert out.with_suffix(".csv").read_text().count("\n") == 241
    assert tries >= 1  # at least one signal reached a run in progress


@pytest.mark.parametrize("during", ["last", "first"])
def test_a_signal_during_the_last_sample_stops_nothing(tmp_path, samples, monkeypatch, during):
    """SIGINT while the last sample runs: every record is in, so the run is complete — its
    document says so, nothing is marked interrupted, no KeyboardInterrupt; while the first runs
    (the contrast), the run stops there with an incomplete document."""
    last = len(samples) - 1
    original = SampleRunner.records

    def records(self, items, **kw):
        out = original(self, items, **kw)
        if (out[-1]["index"] == last) if during == "last" else (out[0]["index"] == 0):
            os.kill(os.getpid(), signal.SIGINT)  # caught by the evaluation's stop flag
        return out

    monkeypatch.setattr(SampleRunner, "records", records)
    out = tmp_path / "r.json"
    if during == "last":
        doc = evaluate(samples, config(), progress=False, json_path=out)
        assert doc["complete"] is True and "interrupted" not in doc and doc["n_samples"] == len(samples)
    else:
        with pytest.raises(KeyboardInterrupt):
            evaluate(samples, config(), progress=False, json_path=out)
    written = json.loads(out.read_text())
    assert written["complete"] is (during == "last")
    assert written.get("interrupted", False) is (during == "first")


def test_sigint_with_two_dask_workers_exits_130_and_resume_completes(tmp_path, big_dataset, reference_doc):
    out = tmp_path / "dask.json"
    proc = _start(_eval_command(big_dataset, out, "--workers", "2"))
    _wait_for_start(proc, out)
    time.sleep(random.Random(3).uniform(0.0, 1.0))
    if proc.poll() is not None:
        pytest.fail("the run finished before the signal; make big_dataset larger")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    # one line: transfers cut short by the cluster's close are not logged with their tracebacks
    assert [ln for ln in err.splitlines() if ln.strip()] == [
        "evsim: interrupted; finished samples were written (continue with --resume)"], err[-2000:]
    _check_files_valid(out)
    assert json.loads(out.read_text())["complete"] is False
    resumed = _run(_eval_command(big_dataset, out, "--resume", "--workers", "2"))
    assert resumed.returncode == 0, resumed.stderr
    assert strip_wall(json.loads(out.read_text())) == strip_wall(reference_doc)


def test_sigkill_at_any_moment_leaves_valid_files_and_resume_gives_the_same_document(tmp_path, big_dataset,
                                                                                     reference_doc):
    rng = random.Random(7)
    for attempt in range(3):
        out = tmp_path / f"kill{attempt}.json"
        proc = _start(_eval_command(big_dataset, out))
        _wait_for_start(proc, out)
        time.sleep(rng.uniform(0.0, 1.5))
        if proc.poll() is not None:
            continue
        proc.kill()
        proc.wait(timeout=60)
        _check_files_valid(out)
        resumed = _run(_eval_command(big_dataset, out, "--resume"))
        assert resumed.returncode == 0, resumed.stderr
        assert strip_wall(json.loads(out.read_text())) == strip_wall(reference_doc)
        assert not records_path_for(out).exists()


def test_resume_refuses_other_options(tmp_path, big_dataset):
    out = tmp_path / "a.json"
    proc = _start(_eval_command(big_dataset, out))
    _wait_for_start(proc, out)
    proc.kill()
    proc.wait(timeout=60)
    other = _eval_command(big_dataset, out, "--resume")
    other[other.index("--threshold") + 1] = "5"
    res = _run(other)
    assert res.returncode == 2 and "cannot resume" in res.stderr and res.stderr.count("\n") == 1


def test_resume_refuses_files_of_an_older_format(capsys, tmp_path, dataset):
    # evsim-eval/2 and evsim-eval-records/1 held the anytime digest's peaks as rows: such files are
    # refused by name, not mixed with records that hold them as columns
    out = tmp_path / "old.json"
    args = ("eval", BUNDLED_MODEL, dataset, "--profile", "speck", "--json", out, "--quiet")
    code, _, err = cli(capsys, *args)
    assert code == 0, err
    doc = json.loads(out.read_text())
    peaks = doc["samples"][0]["anytime"]["peaks"]
    assert sorted(peaks) == ["confidence", "correct", "events", "t_us"]
    assert len({len(column) for column in peaks.values()}) == 1
    doc["format"] = "evsim-eval/2"
    out.write_text(json.dumps(doc))
    code, _, err = cli(capsys, *args, "--resume")
    assert code == 2 and "another evsim version (format 'evsim-eval/2'" in err and err.count("\n") == 1, err
    records_path_for(out).write_text(json.dumps({"format": "evsim-eval-records/1"}) + "\n")
    code, _, err = cli(capsys, *args, "--resume")
    assert code == 2 and "another evsim version (format 'evsim-eval-records/1'" in err and err.count("\n") == 1, err
    # a format name made to break the one-line message is shown as a short repr
    records_path_for(out).write_text(json.dumps({"format": "evsim-eval-records/9\n" + "x" * 500}) + "\n")
    code, _, err = cli(capsys, *args, "--resume")
    assert code == 2 and "another evsim version" in err and err.count("\n") == 1 and len(err) < 400, err


# ------------------------------------------------------------------------------------------
# CLI: --limit, calibrate warning, info FOLDER, compare
# ------------------------------------------------------------------------------------------


def cli(capsys, *args):
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_limit_is_stratified_and_printed(capsys, tmp_path, big_dataset):
    out = tmp_path / "lim.json"
    code, stdout, err = cli(capsys, "eval", BUNDLED_MODEL, big_dataset, "--profile", "speck", "--limit", "8",
                            "--seed", "1", "--json", out, "--quiet", "--no-anytime")
    assert code == 0, err
    doc = json.loads(out.read_text())
    assert doc["class_counts"] == {"0": 2, "1": 2, "2": 2, "3": 2}
    assert "classes               0: 2, 1: 2, 2: 2, 3: 2" in stdout
    assert "95% CI" in stdout


def test_calibrate_warns_about_thin_classes(capsys, tmp_path, dataset):
    code, out, err = cli(capsys, "calibrate", BUNDLED_MODEL, dataset, "--profile", "speck", "--cutoff", "topk",
                         "--epsilon", "0.5", "--calib-bins", "1", "-o", tmp_path / "cal.json", "--quiet")
    assert code == 0, err
    warnings = [ln for ln in err.splitlines() if ln.strip()]
    assert warnings and all(w.startswith("evsim: warning:") for w in warnings)
    text = " ".join(warnings)
    assert "only 12 labelled calibration samples" in text      # small
    assert "3, 4, 5, 6, 7, 8, 9 missing" in text                # classes the model has but the set lacks
    for c in ("0 (4)", "1 (4)", "2 (4)"):                        # rare classes
        assert c in text
    cal = json.loads((tmp_path / "cal.json").read_text())
    assert cal["evsim_version"] == evsim.__version__ and cal["class_counts"] == {"0": 4, "1": 4, "2": 4}


def test_dask_options_give_one_line_errors(capsys, dataset, tmp_path):
    code, out, err = cli(capsys, "eval", BUNDLED_MODEL, dataset, "--profile", "speck", "--tls-ca-file",
                         tmp_path / "ca.pem", "--quiet")
    assert code == 2 and err.count("\n") == 1 and "--scheduler" in err
    import threading

    loops = lambda: sum(t.name == "IO loop" for t in threading.enumerate())  # noqa: E731
    before = loops()
    code, out, err = cli(capsys, "eval", BUNDLED_MODEL, dataset, "--profile", "speck", "--scheduler",
                         "tcp://127.0.0.1:9", "--quiet")
    assert code == 2 and err.count("\n") == 1 and "cannot reach the Dask scheduler" in err
    # the failed client's event-loop thread is stopped: left running, it made every later local
    # evaluation in the process spawn its workers instead of forking them
    assert loops() == before


def test_info_on_a_folder(capsys, dataset, tmp_path):
    code, out, err = cli(capsys, "info", dataset, "--json", tmp_path / "info.json")
    assert code == 0, err
    doc = json.loads((tmp_path / "info.json").read_text())
    files = sorted(dataset.glob("*/*.npy"))
    assert doc["n_recordings"] == len(files) and doc["classes"] == {"0": 4, "1": 4, "2": 4}
    sizes = [np.load(f).size for f in files]
    assert doc["events"]["max"] == max(sizes) and doc["events"]["median"] == float(np.median(sizes))
    assert "12 recordings in 3 classes" in out


def test_compare_command(capsys, tmp_path, dataset):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert cli(capsys, "eval", BUNDLED_MODEL, dataset, "--profile", "speck", "--json", a, "--quiet")[0] == 0
    assert cli(capsys, "eval", BUNDLED_MODEL, dataset, "--profile", "speck", "--cutoff", "topk", "--threshold", "1",
               "--json", b, "--quiet")[0] == 0
    code, out, err = cli(capsys, "compare", a, b)
    assert code == 0, err
    expected = compare_results(json.loads(a.read_text()), json.loads(b.read_text()))
    assert f"{100 * expected['difference']:+.2f} points" in out


def test_eval_config_reads_the_profile_the_model_declares(tmp_path):
    """EvalConfig(MODEL) is `evsim eval MODEL`: the bundled model declares speck (its sidecar), a
    model that declares nothing is strict NIR, an explicit profile wins; the samples are
    simulated as load_model reads the model (SynOps of one recording compared)."""
    import shutil

    assert EvalConfig(str(BUNDLED_MODEL)).profile == "speck"
    assert EvalConfig(str(BUNDLED_MODEL), "sinabs").profile == "sinabs"
    bare = tmp_path / "bare.nir"
    shutil.copyfile(BUNDLED_MODEL, bare)  # without the sidecar
    assert EvalConfig(str(bare)).profile == "nir"
    events = evsim.read_recording(BUNDLED_RECORDING).events
    for path, profile in ((BUNDLED_MODEL, "speck"), (bare, "nir")):
        expected = evsim.Simulator(evsim.load_model(path, profile=profile)).run(events).synops
        runner = SampleRunner(EvalConfig(str(path)))
        assert runner.model.profile.name == profile
        assert runner.sim.run(events).synops == expected


@pytest.mark.parametrize("call, option", [
    (lambda: config(budget="10"), "--budget"),
    (lambda: config(budget=2.5), "--budget"),
    (lambda: config(overrides={"banana": 1}), "overrides"),
    (lambda: config(overrides=["reset"]), "overrides"),
    (lambda: config(anytime="yes"), "anytime"),
    (lambda: config(precision="float16"), "--precision"),
    (lambda: config(cutoff="topk"), "cutoff"),
    (lambda: config(mode="clock", bin_us="1000"), "--bin-us"),
    (lambda: EvalConfig(3, "speck"), "model_path"),
    (lambda: evaluate([], config(), workers="2"), "--workers"),
    (lambda: evaluate([], config(), workers=True), "--workers"),
    (lambda: evaluate([], config(), chunk_size=1.5), "--chunk-size"),
    (lambda: evaluate([], config(), resume="no"), "resume"),
    (lambda: evaluate([], {"model_path": str(BUNDLED_MODEL)}), "config"),
    (lambda: evsim.recording_info(3), "recording"),
], ids=["budget-str", "budget-fraction", "override-unknown", "overrides-list", "anytime-str", "precision",
        "cutoff-str", "bin-us-str", "model-int", "workers-str", "workers-bool", "chunk-fraction", "resume-str",
        "config-dict", "recording-info-int"])
def test_api_arguments_of_the_wrong_type_are_option_errors(call, option):
    """The API takes what the command line parses: a wrong type is an OptionError naming the
    argument (these were TypeError or AttributeError tracebacks from deep inside)."""
    with pytest.raises(OptionError) as err:
        call()
    assert err.value.option == option


def test_the_default_budget_given_explicitly_is_the_same_run(samples, tmp_path):
    from evsim.sim import DEFAULT_BUDGET

    assert config(budget=DEFAULT_BUDGET).options() == config().options()
    assert config(budget=DEFAULT_BUDGET - 1).options() != config().options()
    out = tmp_path / "out.json"
    first = evaluate(samples[:3], config(), progress=False, json_path=out)
    # a complete run resumed with the default spelled out: nothing differs, nothing is run again
    again = evaluate(samples[:3], config(budget=float(DEFAULT_BUDGET)), progress=False, json_path=out, resume=True)
    assert strip_wall(again) == strip_wall(first)


def test_api_arguments_of_equivalent_types_are_taken():
    assert config(budget=10.0).budget == 10 and isinstance(config(budget=10.0).budget, int)
    assert config(anytime=np.bool_(False)).anytime is False
    assert config(overrides={"reset": "zero"}).overrides == {"reset": "zero"}
    assert EvalConfig(BUNDLED_MODEL, "speck").model_path == str(BUNDLED_MODEL)  # a Path is a path
    info = evsim.recording_info(BUNDLED_RECORDING)  # a path is read
    assert info["n_events"] == evsim.read_recording(BUNDLED_RECORDING).events.size


@pytest.mark.parametrize("address, fragment", [
    ("ucx://127.0.0.1:8786", "ucx:// is not supported"),
    ("inproc://foo", "inproc:// is not supported"),
    ("tcp://127.0.0.1:99999", "port in 1..65535"),
    ("127.0.0.1", "port in 1..65535"),
    ("tls://127.0.0.1:8786", "tls:// needs certificates"),
    ("", "must be an address like tcp://HOST:8786"),  # (was taken for no scheduler: a local run)
    ("  ", "must be an address like tcp://HOST:8786"),
])
def test_scheduler_addresses_evsim_cannot_use_are_refused_at_once(samples, address, fragment):
    """These gave a TypeError or ValueError from inside Dask (ucx, inproc, tls without
    certificates) or a 10-s wait for a port that cannot exist."""
    t0 = time.monotonic()
    with pytest.raises(OptionError, match=fragment) as err:
        evaluate(samples, config(), scheduler=address, progress=False)
    assert err.value.option == "--scheduler" and time.monotonic() - t0 < 5.0
    with pytest.raises(OptionError) as err:  # --workers sizes a local cluster only
        evaluate(samples, config(), scheduler="tcp://127.0.0.1:8786", workers=2, progress=False)
    assert err.value.option == "--workers"


def test_a_cluster_without_workers_stops_the_run_with_a_message(samples, monkeypatch, tmp_path):
    """A scheduler with no worker queued the tasks for ever, silently (at the start, or once the
    last worker died). Now the run stops after NO_WORKERS_TIMEOUT_S (1 s here), one EvsimError."""
    from distributed import Client, LocalCluster

    import evsim.analysis.evaluate as ev

    monkeypatch.setattr(ev, "NO_WORKERS_TIMEOUT_S", 1.0)
    cluster = LocalCluster(n_workers=0, host="127.0.0.1", dashboard_address=None)
    try:
        with Client(cluster) as client:
            t0 = time.monotonic()
            with pytest.raises(EvsimError, match="has had no workers for 1 s"):
                evaluate(samples, config(), client=client, progress=False, json_path=tmp_path / "n.json")
            assert time.monotonic() - t0 < 30.0
    finally:
        cluster.close()

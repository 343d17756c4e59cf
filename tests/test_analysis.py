"""Anytime analysis, OCT and cutoff calibration (docs/SEMANTICS.md#cutoff) on trajectories with known answers,
and the replay of a cutoff rule against the engine's real cutoff."""

from __future__ import annotations

import json

import nir
import numpy as np
import pytest

import evsim
from evsim import analysis
from evsim.analysis import Thresholds, Trajectory


def traj(times, vectors, label, events=None, total=None, duration=None):
    times = np.asarray(times, float)
    events = np.arange(1, len(times) + 1) if events is None else np.asarray(events)
    return Trajectory(times, events, np.asarray(vectors, float), int(total or events[-1]),
                      float(duration if duration is not None else times[-1]), label)


def test_oracle_cutoff_time_is_the_start_of_the_final_correct_run():
    t = traj([10, 20, 30, 40, 50], [[1, 0], [0, 2], [3, 2], [3, 5], [9, 5]], label=0)
    # predictions 0, 1, 0, 1, 0: final and correct from t=50
    assert analysis.oracle_cutoff_time(t) == 50
    t = traj([10, 20, 30], [[1, 0], [0, 2], [3, 2]], label=0)
    assert analysis.oracle_cutoff_time(t) == 30
    t = traj([10, 20], [[2, 0], [3, 0]], label=0)
    assert analysis.oracle_cutoff_time(t) == 10  # correct from the first output on
    assert analysis.oracle_cutoff_time(traj([10, 20], [[2, 0], [0, 3]], label=0)) is None  # final wrong


def test_accuracy_vs_time_and_fraction_use_the_prediction_available_then():
    a = traj([10, 30], [[1, 0], [1, 2]], label=1, events=[2, 8], total=10)  # wrong, then right at t=30
    b = traj([20], [[0, 4]], label=1, events=[5], total=10)  # right from t=20
    acc_t = analysis.accuracy_vs_time([a, b], [0, 10, 19, 20, 29, 30, 100])
    np.testing.assert_allclose(acc_t, [0, 0, 0, 0.5, 0.5, 1.0, 1.0])
    acc_f = analysis.accuracy_vs_fraction([a, b], [0.0, 0.2, 0.5, 0.79, 0.8, 1.0])
    # a: right once 8 of 10 events are consumed; b: right from 5 of 10
    np.testing.assert_allclose(acc_f, [0, 0, 0.5, 0.5, 1.0, 1.0])


def test_calibration_picks_the_smallest_threshold_with_the_wanted_confidence_rate():
    # gaps are counts; label 0. A sample whose gap first reaches 3 is right for good; samples
    # that reach gap 2 only are right half of the time; gap 1 is a coin flip too.
    trajs = []
    for i in range(10):
        good = i % 2 == 0
        # gap 1 then gap 2 (class 0 ahead), then either class 0 stays ahead for good (gap 3+)
        # or class 1 overtakes
        final = [[5, 2]] if good else [[2, 4]]
        trajs.append(traj([1, 2, 3], [[1, 0], [2, 0]] + final, label=0))
    for i in range(10):  # samples that reach gap 3 directly and stay right
        trajs.append(traj([1, 2], [[3, 0], [4, 0]], label=0))
    # rate at beta = 1: first hit at t=1 for the first 10 (half wrong later) -> 15/20 good
    # beta = 2: first 10 hit at t=2 (5 good), last 10 hit at t=1 (good) -> 15/20
    # beta = 3: good ones of the first 10 hit at t=3 (5 good); last 10 good -> 15/15
    result = analysis.calibrate(trajs, "topk", epsilon=0.1, confidence=None)
    assert result["thresholds"] == [3.0]
    assert result["support"] == [15]
    assert result["rate"] == [1.0]
    # a tolerant epsilon accepts the smallest candidate
    assert analysis.calibrate(trajs, "topk", epsilon=0.3, confidence=None)["thresholds"] == [1.0]


def test_calibration_per_time_bin_and_inf_when_nothing_qualifies():
    # bin 0 (t < 10): everything is wrong for good; bin 1: gap 1 already right for good
    trajs = [traj([5, 15], [[0, 1], [3, 0]], label=0) for _ in range(4)]
    result = analysis.calibrate(trajs, "topk", epsilon=0.05, bin_width_us=10, n_bins=2, confidence=None)
    assert result["thresholds"][0] == np.inf
    assert result["thresholds"][1] == 3.0


def test_conf_calibration_uses_softmax_confidence():
    trajs = [traj([1, 2], [[1, 0], [6, 0]], label=0) for _ in range(5)]
    trajs += [traj([1, 2], [[1, 0], [1, 3]], label=0) for _ in range(5)]
    conf = analysis.softmax_confidence_of(np.array([[1.0, 0.0], [6.0, 0.0]]))
    np.testing.assert_allclose(conf, [np.exp(1) / (np.exp(1) + 1), np.exp(6) / (np.exp(6) + 1)])
    result = analysis.calibrate(trajs, "conf", epsilon=0.01, confidence=None)
    assert result["thresholds"][0] == pytest.approx(conf[1])


def tiny_classifier():
    rng = np.random.default_rng(5)
    nodes = {
        "input": nir.Input(input_type=np.array([16])),
        "fc": nir.Linear(weight=rng.uniform(0.0, 0.6, (4, 16))),
        "out": nir.IF(r=np.ones(4), v_threshold=np.ones(4), v_reset=np.zeros(4)),
        "output": nir.Output(output_type=np.array([4])),
    }
    edges = [("input", "fc"), ("fc", "out"), ("out", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def test_replayed_cutoff_matches_the_engine_that_really_stops():
    model = evsim.load_model(tiny_classifier())
    rng = np.random.default_rng(2)
    for seed in range(8):
        n = 400
        ev = evsim.make_events(np.sort(rng.integers(0, 100_000, n)), rng.integers(0, 16, n))
        full = evsim.Simulator(model, record_output=True).run(ev)
        tr = Trajectory.from_result(full, label=0)
        table = [4.0, 3.0, 2.0]
        k = analysis.replay_cutoff(tr, "topk", Thresholds(np.array(table), 20_000.0))
        cut = evsim.Simulator(model, cutoff=evsim.Cutoff(mode="topk", table=table, bin_width_us=20_000)).run(ev)
        if k is None:
            assert cut.status == "complete"
        else:
            assert cut.status == "cutoff"
            assert cut.events_consumed == tr.events[k]
            assert cut.decision_time_us == tr.t_us[k]
            np.testing.assert_array_equal(cut.output, tr.vectors[k])


def test_calibration_file_is_refused_for_another_model_or_profile(tmp_path):
    path = tmp_path / "cal.json"
    analysis.write_calibration(path, model_hash="abc", model_path="m.nir", profile="speck", mode="event",
                               cutoff="topk", epsilon=0.05, temperature=1.0, bin_width_us=0.0, n_bins=1,
                               result={"thresholds": [3.0], "support": [5], "rate": [1.0]}, data="d", n_samples=5)
    doc = analysis.read_calibration(path, model_hash="abc", profile="speck", mode="event")
    assert analysis.thresholds_from_calibration(doc).values.tolist() == [3.0]
    with pytest.raises(evsim.OptionError, match="another model"):
        analysis.read_calibration(path, model_hash="xyz", profile="speck", mode="event")
    with pytest.raises(evsim.OptionError, match="profile speck"):
        analysis.read_calibration(path, model_hash="abc", profile="sinabs", mode="event")
    with pytest.raises(evsim.OptionError, match="event mode"):
        analysis.read_calibration(path, model_hash="abc", profile="speck", mode="clock")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"hello": 1}))
    with pytest.raises(evsim.OptionError, match="not an evsim calibration"):
        analysis.read_calibration(bad, model_hash="abc", profile="speck", mode="event")

"""Replaying a cutoff rule on a recorded trajectory decides exactly as a run with that rule.

The engine, the clock mode and the analysis evaluate the rule through the same numba functions
(:mod:`evsim.kernels.readout`), so the replay must agree sample by sample and bit for bit —
including thresholds picked from the observed confidences, as calibration picks them, where a
different rounding of the confidence flips the ``≥``. Models are random small NIR graphs, four
outputs; the confidence of ``conf`` is computed at T = 3.
"""

from __future__ import annotations

import math

import nir
import numpy as np
import pytest

import evsim
from evsim import analysis
from evsim.analysis import Thresholds, Trajectory
from evsim.sim.clock import ClockSimulator

from _nirgraphs import graph, inp, out

N_IN = 16
N_OUT = 4
TEMPERATURE = 3.0


def counts_graph(seed: int) -> nir.NIRGraph:
    """Input(16) → Linear → IF(4) → Output: the readout is spike counts (integer gaps, ties)."""
    rng = np.random.default_rng(seed)
    nodes = {"input": inp((N_IN,)), "fc": nir.Linear(weight=rng.uniform(0.0, 0.6, (N_OUT, N_IN))),
             "lif": nir.IF(r=np.ones(N_OUT), v_threshold=np.ones(N_OUT), v_reset=np.zeros(N_OUT)),
             "output": out((N_OUT,))}
    return graph(nodes, [("input", "fc"), ("fc", "lif"), ("lif", "output")])


def state_graph(seed: int) -> nir.NIRGraph:
    """Input(16) → Linear → IF(8) → Linear → Output: the readout integrates weighted spikes
    (real-valued outputs, softmax confidences that are not simple fractions)."""
    rng = np.random.default_rng(seed)
    nodes = {"input": inp((N_IN,)), "fc1": nir.Linear(weight=rng.uniform(0.0, 0.7, (8, N_IN))),
             "lif": nir.IF(r=np.ones(8), v_threshold=np.ones(8), v_reset=np.zeros(8)),
             "fc2": nir.Linear(weight=rng.normal(0.0, 0.5, (N_OUT, 8))), "output": out((N_OUT,))}
    return graph(nodes, [("input", "fc1"), ("fc1", "lif"), ("lif", "fc2"), ("fc2", "output")])


def random_samples(seed: int, n_samples: int) -> list:
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(n_samples):
        n = int(rng.integers(50, 300))
        samples.append(evsim.make_events(np.sort(rng.integers(0, 100_000, n)), rng.integers(0, N_IN, n)))
    return samples


def softmax_max(a, temperature):
    """max softmax(a/T), written out (for the sanity check of the shared kernel)."""
    z = [math.exp((x - max(a)) / temperature) for x in a]
    return 1.0 / sum(z)


@pytest.fixture(scope="module")
def recorded():
    """Per model: (model, samples, trajectories recorded without cutoff); 300 samples in all."""
    out_ = []
    for make, seed in ((counts_graph, 1), (counts_graph, 2), (state_graph, 3)):
        model = evsim.load_model(make(seed))
        samples = random_samples(seed, 100)
        sim = evsim.Simulator(model, record_output=True)
        trajs = [Trajectory.from_result(sim.run(ev), label=0) for ev in samples]
        out_.append((model, samples, trajs))
    return out_


def observed_thresholds(trajs: list, cutoff: str, n: int = 5) -> np.ndarray:
    """Thresholds equal to confidences that really occur (as calibration chooses them)."""
    conf = np.concatenate([analysis.confidence_of(t.vectors, cutoff, TEMPERATURE) for t in trajs if len(t.t_us)])
    values = np.unique(conf[conf > 0])
    assert values.size >= n
    return values[np.linspace(0, values.size - 1, n + 2).astype(int)[1:-1]]


def assert_same_decision(res, tr: Trajectory, k, cutoff: str):
    if k is None:
        assert res.status == "complete"
        assert res.events_consumed == res.events_total
        return
    assert res.status == "cutoff"
    assert res.decision_time_us == tr.t_us[k]
    assert res.events_consumed == tr.events[k]
    np.testing.assert_array_equal(res.output, tr.vectors[k])
    assert res.prediction == int(np.argmax(tr.vectors[k]))
    # the confidence at the decision, bit for bit
    assert res.confidence == analysis.confidence_of(tr.vectors[k:k + 1], cutoff, TEMPERATURE)[0]


@pytest.mark.parametrize("cutoff", ["conf", "topk"])
def test_replay_of_observed_thresholds_equals_the_engine_sample_by_sample(recorded, cutoff):
    decided = 0
    for model, samples, trajs in recorded:
        for thr in observed_thresholds(trajs, cutoff):
            sim = evsim.Simulator(model, cutoff=evsim.Cutoff(mode=cutoff, temperature=TEMPERATURE, threshold=float(thr)))
            for ev, tr in zip(samples, trajs):
                k = analysis.replay_cutoff(tr, cutoff, Thresholds(np.array([thr])), TEMPERATURE)
                assert_same_decision(sim.run(ev), tr, k, cutoff)
                decided += k is not None
                if k is not None:  # the decision really is the first change at or above threshold
                    conf = analysis.confidence_of(tr.vectors[:k + 1], cutoff, TEMPERATURE)
                    assert conf[k] >= thr and np.all(conf[:k] < thr)
    assert decided > 100  # the thresholds really decide


@pytest.mark.parametrize("cutoff", ["conf", "topk"])
def test_replay_of_a_threshold_table_equals_the_engine(recorded, cutoff):
    model, samples, trajs = recorded[2]
    thr = observed_thresholds(trajs, cutoff, 3)
    table = [float(thr[2]), float(thr[1]), float(thr[0])]  # stricter early, laxer later
    sim = evsim.Simulator(model, cutoff=evsim.Cutoff(mode=cutoff, temperature=TEMPERATURE, table=table,
                                                     bin_width_us=25_000.0))
    for ev, tr in zip(samples, trajs):
        k = analysis.replay_cutoff(tr, cutoff, Thresholds(np.array(table), 25_000.0), TEMPERATURE)
        assert_same_decision(sim.run(ev), tr, k, cutoff)


def test_the_shared_confidence_is_the_softmax_and_the_gap():
    rng = np.random.default_rng(0)
    vectors = rng.normal(0, 3, (50, N_OUT))
    vectors[0] = 0.0
    vectors[1] = [2.0, 2.0, 1.0, 0.0]
    conf = analysis.confidence_of(vectors, "conf", TEMPERATURE)
    gap = analysis.confidence_of(vectors, "topk")
    assert conf[0] == 0.0 and gap[0] == 0.0  # no activity: never confident
    assert gap[1] == 0.0
    for a, c, g in zip(vectors[1:], conf[1:], gap[1:]):
        assert c == pytest.approx(softmax_max(list(a), TEMPERATURE), rel=1e-12)
        s = sorted(a)
        assert g == s[-1] - s[-2]


@pytest.mark.parametrize("cutoff", ["conf", "topk"])
def test_replay_equals_the_clock_mode(recorded, cutoff):
    model, samples, _ = recorded[0]
    samples = samples[:60]
    full = ClockSimulator(model, bin_us=2000, record_output=True).run_batch(samples)
    trajs = [Trajectory.from_result(r, label=0) for r in full]
    for thr in observed_thresholds(trajs, cutoff, 3):
        cut = ClockSimulator(model, bin_us=2000, cutoff=evsim.Cutoff(mode=cutoff, temperature=TEMPERATURE,
                                                                     threshold=float(thr)))
        for res, tr in zip(cut.run_batch(samples), trajs):
            k = analysis.replay_cutoff(tr, cutoff, Thresholds(np.array([thr])), TEMPERATURE)
            if k is None:
                assert res.status == "complete"
            else:
                assert res.status == "cutoff"
                assert res.decision_time_us == tr.t_us[k]
                np.testing.assert_array_equal(res.output, tr.vectors[k])


def test_calibrate_write_read_and_run_with_the_calibration(recorded, tmp_path):
    """Calibration → file → engine: the thresholds are finite, the engine run with the file's
    table decides where the replay does, and its outcomes are those the calibration reported."""
    model, samples, trajs = recorded[0]
    # labels: the final prediction, so that later-correct runs exist and a finite β qualifies
    labelled = [Trajectory(t.t_us, t.events, t.vectors, t.events_total, t.duration_us,
                           int(np.argmax(t.vectors[-1])) if len(t.t_us) else 0) for t in trajs]
    cal = analysis.calibrate(labelled, "topk", 0.1, bin_width_us=50_000.0, n_bins=2, confidence=None)
    assert all(np.isfinite(cal["thresholds"])), cal
    path = tmp_path / "cal.json"
    analysis.write_calibration(path, model_hash=model.model_hash, model_path="random.nir", profile="nir", mode="event",
                               cutoff="topk", epsilon=0.1, temperature=1.0, bin_width_us=50_000.0, n_bins=2, result=cal,
                               data="random", n_samples=len(labelled))
    doc = analysis.read_calibration(path, model_hash=model.model_hash, profile="nir", mode="event")
    thresholds = analysis.thresholds_from_calibration(doc)
    np.testing.assert_array_equal(thresholds.values, cal["thresholds"])
    sim = evsim.Simulator(model, cutoff=evsim.Cutoff(mode="topk", table=doc["thresholds"], bin_width_us=50_000.0))
    correct, cut = [], 0
    for ev, tr in zip(samples, labelled):
        res = sim.run(ev)
        k = analysis.replay_cutoff(tr, "topk", thresholds)
        assert_same_decision(res, tr, k, "topk")
        cut += res.status == "cutoff"
        correct.append(res.prediction == tr.label)
    assert cut > 10
    replay = analysis.cutoff_outcomes(labelled, "topk", thresholds)
    assert replay["accuracy"] == pytest.approx(np.mean(correct), abs=0)

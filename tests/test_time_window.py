"""The time window of a sample (docs/SEMANTICS.md#time-window) and neurons that fire without input
(docs/SEMANTICS.md#initial-state), in both modes, against closed forms written out here."""

from __future__ import annotations

import json

import nir
import numpy as np
import pytest

import evsim
from evsim.cli import main
from evsim.errors import OptionError, RecordingError
from evsim.input.datasets import FolderDataset
from evsim.input.events import make_events
from evsim.sim.clock import ClockSimulator, bin_steps
from evsim.sim.event import Simulator

from _nirgraphs import graph, inp, out

THETA = 1.0


def biased_if(bias: np.ndarray, weight: float = 0.3):
    """Input(2) → Affine(W = weight·I, bias) → IF (strict NIR: the bias is a current, per second)."""
    n = bias.size
    return graph({"input": inp((n,)), "fc": nir.Affine(weight=weight * np.eye(n), bias=bias),
                  "lif": nir.IF(r=np.ones(n), v_threshold=np.full(n, THETA), v_reset=np.zeros(n)),
                  "output": out((n,))},
                 [("input", "fc"), ("fc", "lif"), ("lif", "output")])


def test_a_bias_driven_neuron_fires_on_time_without_any_input():
    """IF with drive a = b = 280 per second, reset to 0, no input ever reaching neuron 1: the event
    engine fires it at each crossing k·θ/a = k·3571.43 µs up to the sample's end; the clock mode
    (1 ms bins, v += 0.28 per bin, v > θ, v ← 0) at the end of every 4th bin. Neuron 0 has no
    bias and gets input."""
    b = np.array([0.0, 280.0])
    model = evsim.load_model(biased_if(b), precision="float64")
    events = make_events(t=np.array([1000, 2000, 3000]), x=np.zeros(3, dtype=int))
    sim = Simulator(model, record_spikes=True, time_origin="zero", duration_us=21_000)
    result = sim.run(events)
    spikes = result.spikes[(result.spikes["node"] == 1) & (result.spikes["neuron"] == 1)]
    np.testing.assert_allclose(spikes["t_us"], np.arange(1, 6) * THETA / 280.0 * 1e6)
    assert result.decision_time_us == 21_000.0
    assert result.output_counts.tolist() == [0, 5]
    clock = ClockSimulator(model, bin_us=1000, record_spikes=True, time_origin="zero", duration_us=21_000).run(events)
    s = clock.spikes[(clock.spikes["node"] == 1) & (clock.spikes["neuron"] == 1)]
    v, expected = 0.0, []
    for k in range(21):
        v += 0.28
        if v > THETA:
            expected.append((k + 1) * 1000.0)
            v = 0.0
    np.testing.assert_allclose(s["t_us"], expected)
    assert clock.extra["n_steps"] == 21 and len(expected) == 5
    # the old engine predicted crossings only after an update: with no input the neuron was silent
    assert spikes.size > 0


def test_time_origin_zero_shifts_times_and_lets_the_state_evolve_before_the_first_event():
    b = np.array([0.0, 250.0])  # a crossing every 4 ms
    model = evsim.load_model(biased_if(b), precision="float64")
    events = make_events(t=np.array([10_000, 10_500]), x=np.array([0, 0]))
    first = Simulator(model, record_spikes=True).run(events)  # origin at 10 ms: 0.5 ms of bias only
    zero = Simulator(model, record_spikes=True, time_origin="zero").run(events)
    n1 = lambda r: r.spikes[(r.spikes["node"] == 1) & (r.spikes["neuron"] == 1)]["t_us"]  # noqa: E731
    assert n1(first).size == 0 and first.decision_time_us == 500.0
    np.testing.assert_allclose(n1(zero), [4000.0, 8000.0])  # before the first event, from t = 0
    assert zero.decision_time_us == 10_500.0


def test_duration_drops_later_events_and_advances_to_the_end():
    model = evsim.load_model(biased_if(np.array([0.0, 0.0]), weight=0.6), precision="float64")
    t = np.array([100, 200, 300, 5000, 6000])
    events = make_events(t=t, x=np.zeros(5, dtype=int))
    r = Simulator(model, duration_us=1000).run(events)
    assert r.events_total == 3 and r.events_consumed == 3 and r.status == "complete"
    assert r.output_counts.tolist() == [1, 0]  # 3 × 0.6: one spike, the rest outside the window
    assert r.decision_time_us == 1000.0
    c = ClockSimulator(model, bin_us=300, duration_us=1000).run(events)
    assert c.extra["n_steps"] == 4 and c.events_total == 3  # ceil(1000/300) bins, whatever the events
    # chunked feeding keeps the window: events past it are not part of the sample
    sim = Simulator(model, duration_us=1000)
    sim.reset()
    for a, e in ((0, 2), (2, 4), (4, 5)):
        sim.feed(events[a:e])
    sim.finish()
    assert sim.result().output_counts.tolist() == [1, 0] and sim.result().events_total == 3


def test_bin_steps_of_a_fixed_window():
    """Bins of a window [0, D) written out: k = floor(t/w), ceil(D/w) steps; n_bins: w = D/N."""
    t = np.array([0, 99, 100, 250, 999])
    k, n, w = bin_steps(t, bin_us=100, origin_us=0, duration_us=1000)
    assert k.tolist() == [0, 0, 1, 2, 9] and n == 10 and w == 100
    k, n, w = bin_steps(t, n_bins=4, origin_us=0, duration_us=1000)
    assert k.tolist() == [0, 0, 0, 1, 3] and n == 4 and w == 250
    k, n, w = bin_steps(np.zeros(0, dtype=np.int64), bin_us=100, origin_us=0, duration_us=1050)
    assert k.size == 0 and n == 11


@pytest.mark.parametrize("kwargs,option", [({"time_origin": "last"}, "--time-origin"),
                                           ({"duration_us": 0}, "--duration-us"),
                                           ({"duration_us": float("nan")}, "--duration-us"),
                                           ({"duration_us": 2.0 ** 60}, "--duration-us")])
def test_bad_windows_are_refused(kwargs, option):
    model = evsim.load_model(biased_if(np.zeros(2)))
    for cls in (Simulator, lambda m, **k: ClockSimulator(m, bin_us=100, **k)):
        with pytest.raises(OptionError) as info:
            cls(model, **kwargs)
        assert info.value.option == option


def write_folder(root, declared=None):
    for label in (0, 1):
        (root / str(label)).mkdir(parents=True)
        ev = make_events(t=np.array([1000, 1500]), x=np.array([label, label]))
        np.save(root / str(label) / "a.npy", ev)
    if declared is not None:
        (root / "evsim-dataset.json").write_text(json.dumps(declared))


def test_a_dataset_folder_declares_its_window(tmp_path, capsys):
    write_folder(tmp_path / "data", {"time_origin": "zero", "duration_us": 20000})
    assert FolderDataset(tmp_path / "data").window == {"time_origin": "zero", "duration_us": 20000}
    model_path = tmp_path / "m.nir"
    nir.write(str(model_path), biased_if(np.array([250.0, 0.0]), weight=0.3))
    code = main(["eval", str(model_path), str(tmp_path / "data"), "--json", str(tmp_path / "r.json"), "--quiet"])
    capsys.readouterr()
    assert code == 0
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["options"]["time_origin"] == "zero" and doc["options"]["duration_us"] == 20000
    # neuron 0 is bias-driven (fires at 4, 8, 12, 16 ms within the 20 ms window): class 0 wins both
    assert [r["prediction"] for r in doc["samples"]] == [0, 0]
    # an explicit option wins over the folder's
    code = main(["eval", str(model_path), str(tmp_path / "data"), "--json", str(tmp_path / "r2.json"), "--quiet",
                 "--duration-us", "3000"])
    capsys.readouterr()
    assert json.loads((tmp_path / "r2.json").read_text())["options"]["duration_us"] == 3000


@pytest.mark.parametrize("text", ['{"duration_us": -1}', '{"time_origin": "middle"}', '{"frame": 1}', "[1]", "{"])
def test_a_bad_dataset_declaration_is_refused(tmp_path, text):
    write_folder(tmp_path / "data")
    (tmp_path / "data" / "evsim-dataset.json").write_text(text)
    with pytest.raises(RecordingError):
        FolderDataset(tmp_path / "data")

"""The per-sample fast paths of the simulator against the checked paths they replace.

* ``evsim.input.events.engine_input`` (one compiled pass: values, order, input shape, engine index,
  time) against ``check_sorted`` + ``input_indices`` + the input permutation, on valid and hostile
  event arrays: it must accept exactly what they accept and give the same arrays;
* a simulator fed through the fast path and through the checked path (fast path switched off)
  gives identical results, with time windows and time/event budgets that cut the input;
* ``engine.clear_state`` (a state reset in place) against a new state.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import evsim
from evsim.errors import RecordingError
from evsim.input import events as events_module
from evsim.input.events import EVENT_DTYPE, T_LIMIT_US, check_sorted, engine_input, input_indices
from evsim.model.linear import nir_to_engine
from evsim.sim import engine as eng
from evsim.sim import event as event_module

from conftest import REPO_ROOT, require_shared_data

BUNDLED_MODEL = REPO_ROOT / "evsim" / "bundled" / "nmnist_cnn" / "model.nir"

SHAPE = (2, 5, 7)


def checked_path(events, shape, t0):
    """What the simulator computed before the fast path: None when a check raises."""
    try:
        check_sorted(events)
        flat = input_indices(events, shape)
    except RecordingError:
        return None
    return nir_to_engine(shape)[flat], (events["t"].astype(np.int64) - t0).astype(np.float64)


def random_events(rng, n, shape=SHAPE):
    c, h, w = shape
    return evsim.make_events(np.sort(rng.integers(0, 10_000, n)), rng.integers(0, w, n), rng.integers(0, h, n),
                             rng.integers(0, c, n))


def hostile_variants(rng):
    """(name, events): one defect each, at a random event."""
    out = []
    for name, field, value in [("x = W", "x", SHAPE[2]), ("y = H", "y", SHAPE[1]), ("p = C", "p", SHAPE[0]),
                               ("x < 0", "x", -1), ("y < 0", "y", -3), ("p < 0", "p", -1),
                               ("t < 0", "t", -5), ("t = 2**53", "t", T_LIMIT_US), ("t max", "t", 2**62)]:
        ev = random_events(rng, 50)
        i = int(rng.integers(0, 50))
        ev[field][i] = value
        if field == "t" and value > 0:
            ev["t"][i:] = value  # still sorted: only the range is wrong
        if field == "t" and value < 0:
            ev["t"][:i + 1] = value
        out.append((name, ev))
    ev = random_events(rng, 50)
    ev["t"][20], ev["t"][21] = ev["t"][21] + 1, ev["t"][20]  # one decreasing step
    out.append(("unsorted", ev))
    return out


@pytest.mark.parametrize("seed", range(5))
def test_engine_input_accepts_what_the_checks_accept(seed):
    rng = np.random.default_rng(seed)
    input_map = nir_to_engine(SHAPE)
    cases = [("valid", random_events(rng, 200)), ("empty", random_events(rng, 0)),
             ("equal times", evsim.make_events(np.full(30, 7), np.arange(30) % 7, np.arange(30) % 5, np.arange(30) % 2))]
    cases += hostile_variants(rng)
    for name, ev in cases:
        t0 = int(ev["t"][0]) if ev.size and ev["t"][0] >= 0 else 0
        expected = checked_path(ev, SHAPE, t0)
        got = engine_input(ev, SHAPE, input_map, t0)
        if name in ("valid", "empty", "equal times"):
            assert expected is not None, name
        else:
            assert expected is None, name  # (the hostile cases are hostile to the checked path)
        assert (got is None) == (expected is None), name
        if got is not None:
            np.testing.assert_array_equal(got[0], expected[0], err_msg=name)
            np.testing.assert_array_equal(got[1], expected[1], err_msg=name)


def test_engine_input_leaves_other_dtypes_and_shapes_to_the_checked_path():
    ev = random_events(np.random.default_rng(0), 10)
    wide = ev.astype([("x", "<i8"), ("y", "<i8"), ("t", "<i8"), ("p", "<i8")])
    assert engine_input(wide, SHAPE, nir_to_engine(SHAPE), 0) is None
    assert engine_input(ev, (14,), nir_to_engine((14,)), 0) is None
    assert engine_input(ev, (2, 7), nir_to_engine((2, 7)), 0) is None
    assert engine_input(ev, SHAPE, nir_to_engine(SHAPE), 0) is not None


def result_fields(result):
    d = dataclasses.asdict(result)
    d["output_record"] = [np.asarray(a) for a in result.output_record] if result.output_record else None
    return d


def assert_results_equal(a, b):
    da, db = result_fields(a), result_fields(b)
    assert da.keys() == db.keys()
    for key in da:
        if key == "output_record":
            assert (da[key] is None) == (db[key] is None)
            for x, y in zip(da[key] or [], db[key] or []):
                np.testing.assert_array_equal(x, y)
        elif isinstance(da[key], np.ndarray):
            np.testing.assert_array_equal(da[key], db[key], err_msg=key)
        else:
            assert da[key] == db[key], key


@pytest.mark.parametrize("options", [
    {},
    {"duration_us": 150_000.0},
    {"time_origin": "zero", "duration_us": 200_000.0},
    {"cutoff": evsim.Cutoff(max_time_us=80_000.0)},
    {"cutoff": evsim.Cutoff(max_events=1500)},
    {"cutoff": evsim.Cutoff(mode="topk", threshold=3.0)},
])
def test_fast_and_checked_paths_give_identical_results(options, monkeypatch):
    data = require_shared_data("nmnist-train1k")
    model = evsim.load_model(str(BUNDLED_MODEL), profile="speck")
    paths = [sorted((data / str(label)).glob("*.bin"))[3] for label in (1, 4, 8)]
    recordings = [evsim.read_recording(p).events for p in paths]
    fast = evsim.Simulator(model, record_output=True, **options)
    fast_results = [fast.run(ev) for ev in recordings]
    # the same, chunked: the second chunk's times are relative to the first chunk's origin
    chunked = []
    for ev in recordings:
        fast.reset()
        fast.feed(ev[:1000])
        fast.feed(ev[1000:], first_index=1000)
        fast.finish()
        chunked.append(fast.result())
    calls = []
    monkeypatch.setattr(event_module, "engine_input", lambda *a: calls.append(a) and None)
    checked = evsim.Simulator(model, record_output=True, **options)
    for ev, a, b in zip(recordings, fast_results, chunked):
        c = checked.run(ev)
        assert_results_equal(a, c)
        assert_results_equal(b, c)
    assert calls  # the checked path ran with the fast path off


def test_a_bad_event_gets_the_checked_paths_message():
    model = evsim.load_model(str(BUNDLED_MODEL), profile="speck")
    ev = evsim.make_events(np.arange(10), np.full(10, 3), np.full(10, 3), np.zeros(10, int))
    ev["x"][6] = 40  # outside the 34-pixel input
    with pytest.raises(RecordingError, match=r"event 6 has x=40, outside the model input shape"):
        evsim.Simulator(model).run(ev)
    ev["x"][6] = 3
    ev["t"][4] = 100
    with pytest.raises(RecordingError, match=r"timestamps are not sorted: event 5"):
        evsim.Simulator(model).run(ev)


def test_clear_state_equals_a_new_state():
    data = require_shared_data("nmnist-train1k")
    model = evsim.load_model(str(BUNDLED_MODEL), profile="speck")
    sim = evsim.Simulator(model, record_output=True)
    sim.run(evsim.read_recording(sorted((data / "5").glob("*.bin"))[0]).events)
    state = sim.state
    assert state.v.any() and state.counters.any()  # the run left something to clear
    eng.clear_state(state)
    fresh = sim._fresh_state()
    for name, a, b in zip(eng.EngineState._fields, state, fresh):
        if name == "runs":
            assert a is b  # one run buffer per simulator, not part of a sample's state
            continue
        assert a.dtype == b.dtype and a.shape == b.shape, name
        np.testing.assert_array_equal(a, b, err_msg=name)


def test_decode_kernel_column_types():
    # the decoder writes EVENT_DTYPE columns: the largest byte values stay exact
    raw = bytes([255, 239, 0xFF, 0xFF, 0xFF])
    ev = evsim.input.recordings.decode_nmnist(raw)
    assert ev.dtype == EVENT_DTYPE
    assert (int(ev["x"][0]), int(ev["y"][0]), int(ev["p"][0]), int(ev["t"][0])) == (255, 239, 1, (1 << 23) - 1)
    assert events_module.EVENT_DTYPE is EVENT_DTYPE


def test_a_static_run_leaves_the_arrays_it_is_said_not_to_write():
    data = require_shared_data("nmnist-train1k")
    model = evsim.load_model(str(BUNDLED_MODEL), profile="speck")
    sim = evsim.Simulator(model, record_output=True)
    assert sim._static  # the bundled model takes the static loop
    fresh = sim._fresh_state()
    for label in (0, 6):
        sim.run(evsim.read_recording(sorted((data / str(label)).glob("*.bin"))[2]).events)
        for name in eng.STATIC_UNWRITTEN:
            np.testing.assert_array_equal(getattr(sim.state, name), getattr(fresh, name), err_msg=name)
    assert not np.array_equal(sim.state.v, fresh.v)  # (it did run)


@pytest.mark.parametrize("profile", ["speck", "snntorch"])  # the static loop, and the general one
def test_samples_in_a_row_equal_samples_on_fresh_simulators(profile):
    data = require_shared_data("nmnist-train1k")
    model = evsim.load_model(str(BUNDLED_MODEL), profile=profile)
    recordings = [evsim.read_recording(sorted((data / str(label)).glob("*.bin"))[7]).events for label in (2, 9, 2)]
    in_a_row = evsim.Simulator(model, record_output=True)
    assert in_a_row._static == (profile == "speck")
    for ev in recordings:
        assert_results_equal(in_a_row.run(ev), evsim.Simulator(model, record_output=True).run(ev))

"""Long recordings in chunks (evsim.input.stream, Simulator.run_stream).

The reference is always the whole read: the concatenated chunks of a stream must equal
``read_recording`` of the same file, field by field, for every format, and a simulation fed in
chunks of a few events must give the result of the simulation of the whole array, bit for bit,
also when a cutoff, an input limit or the budget stops it mid-chunk. Errors must be the whole
read's, naming the event by its index in the whole recording, also at a chunk boundary.
Memory is measured by benchmarks/bench_long.py, not here.
"""

from __future__ import annotations


import h5py
import numpy as np
import pytest

from evsim.errors import RecordingError
from evsim.input.events import EVENT_DTYPE
from evsim.input.recordings import read_recording
from evsim.input.stream import open_stream

from test_recordings import _AEDAT3_HEADER, _aedat2_file, _aedat3_packet, _odd_array


def _concat(stream) -> np.ndarray:
    chunks = list(stream)
    return np.concatenate(chunks) if chunks else np.zeros(0, dtype=EVENT_DTYPE)


def _same_as_whole(path, chunk_events, **kw):
    whole = read_recording(path, **kw)
    stream = open_stream(path, chunk_events=chunk_events, **kw)
    got = _concat(stream)
    assert got.dtype == EVENT_DTYPE
    np.testing.assert_array_equal(got, whole.events)
    assert stream.format == whole.format
    assert stream.sensor_size == whole.sensor_size
    assert stream.n_events == whole.events.shape[0]
    if whole.events.size:
        assert (stream.t_first_us, stream.t_last_us) == (int(whole.events["t"][0]), int(whole.events["t"][-1]))
    return whole, stream


# ---------------------------------------------------------------------------------------------
# readers: chunks concatenated == the whole read
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["evt3_sample.raw", "sample_ncars.dat", "sample.aedat4"])
@pytest.mark.parametrize("chunk", [1000, 1 << 20])
def test_real_files_in_chunks(formats_dir, name, chunk):
    _same_as_whole(formats_dir / name, chunk)


def test_evt2_in_chunks(formats_dir, tmp_path):
    from expelliarmus import Wizard

    events = np.load(formats_dir / "evt3_sample.npy")[:50_000]
    path = tmp_path / "x.raw"
    Wizard(encoding="evt2").save(str(path), events)
    whole, stream = _same_as_whole(path, 777)
    assert stream.format == "evt2" and whole.events.shape[0] == 50_000


def test_nmnist_in_chunks(nmnist_dir):
    path = sorted(nmnist_dir.glob("*/*.bin"))[0]
    _same_as_whole(path, 7)


def test_aedat2_and_aedat3_in_chunks(tmp_path):
    rng = np.random.default_rng(0)
    n = 1000
    x, y, p = rng.integers(0, 128, n), rng.integers(0, 128, n), rng.integers(0, 2, n)
    t = np.sort(rng.integers(0, 10**6, n))
    addr = (y << 8) | ((127 - x) << 1) | (1 - p)
    addr[::17] = 0x8000  # special events, dropped
    path = tmp_path / "dvs.aedat"
    _aedat2_file(path, [b"#!AER-DAT2.0", b"# AEChip: ch.unizh.ini.jaer.chip.retina.DVS128"], addr, t)
    whole, _ = _same_as_whole(path, 13)
    assert whole.format == "aedat2" and whole.events.shape[0] == n - len(addr[::17])
    _same_as_whole(path, 13, format="aedat-davis346")
    rows = [(i % 128, (5 * i) % 128, i % 2, 10 * i, int(i % 7 != 0)) for i in range(300)]
    path3 = tmp_path / "three.aedat"
    path3.write_bytes(_AEDAT3_HEADER + _aedat3_packet(1, 0, rows[:100]) + _aedat3_packet(0, 0, [(1, 1, 1, 5, 1)])
                      + _aedat3_packet(1, 0, rows[100:]))
    whole, _ = _same_as_whole(path3, 5)
    assert whole.format == "aedat3"


def test_npy_npz_hdf5_in_chunks_with_global_polarity(tmp_path):
    a = _odd_array()  # polarities {-1, 1}, odd dtypes and field order
    np.save(tmp_path / "odd.npy", a)
    np.savez(tmp_path / "odd.npz", events=a)
    # a chunk of one event holding only p=1 must still map to 1 (and p=-1 to 0): decided over the file
    whole, _ = _same_as_whole(tmp_path / "odd.npy", 1)
    assert whole.events["p"].tolist() == [0, 1, 1, 0, 1]
    _same_as_whole(tmp_path / "odd.npz", 2)
    with h5py.File(tmp_path / "cols.h5", "w") as f:
        g = f.create_group("events")
        for name in ("t", "x", "y", "p"):
            g[name] = a[name]
        g.attrs["sensor_size"] = [400, 10]
    with h5py.File(tmp_path / "compound.h5", "w") as f:
        f["events"] = a
    for name in ("cols.h5", "compound.h5"):
        _same_as_whole(tmp_path / name, 2)
    # one value alone outside {0, 1} maps to 0 as in the whole read; {1, 2} maps 1 -> 0
    # more than two values over the file are channels, kept, even in a chunk holding only two
    for values in ([5, 5, 5, 5, 5], [1, 2, 2, 1, 1], [3, 5, 7, 5, 3]):
        b = a.copy()
        b["p"] = values
        np.save(tmp_path / "v.npy", b)
        _same_as_whole(tmp_path / "v.npy", 1)
    np.save(tmp_path / "empty.npy", a[:0])
    _same_as_whole(tmp_path / "empty.npy", 3)


# ---------------------------------------------------------------------------------------------
# errors: the whole read's, with the global event index, also across a chunk boundary
# ---------------------------------------------------------------------------------------------


def _error(path, **kw):
    with pytest.raises(RecordingError) as whole:
        read_recording(path)
    with pytest.raises(RecordingError) as streamed:
        _concat(open_stream(path, **kw))
    return str(whole.value), str(streamed.value)


def test_unsorted_at_a_chunk_boundary_names_the_global_index(tmp_path):
    ev = np.zeros(10, dtype=EVENT_DTYPE)
    ev["t"] = [0, 1, 2, 3, 4, 3, 6, 7, 8, 9]  # event 5 goes back, first of the 2nd chunk of 5
    np.save(tmp_path / "u.npy", ev)
    whole, streamed = _error(tmp_path / "u.npy", chunk_events=5)
    assert "event 5 has t=3 us after t=4 us" in whole
    assert "event 5 has t=3 us after t=4 us" in streamed
    ev["t"] = [0, 1, 2, 3, 4, 5, 6, 7, 6, 9]  # inside the 2nd chunk
    np.save(tmp_path / "u.npy", ev)
    whole, streamed = _error(tmp_path / "u.npy", chunk_events=5)
    assert "event 8 has t=6 us after t=7 us" in whole and "event 8 has t=6 us after t=7 us" in streamed


def test_bad_values_name_the_global_index(tmp_path):
    a = np.zeros(10, dtype=[("t", "<i8"), ("x", "<i8"), ("y", "<i8"), ("p", "<i8")])
    a["t"] = np.arange(10)
    a["x"][7] = -3
    np.save(tmp_path / "neg.npy", a)
    whole, streamed = _error(tmp_path / "neg.npy", chunk_events=3)
    assert "event 7 has x=-3" in whole and "event 7 has x=-3" in streamed
    rows = [(1, 1, 1, 10 * i, 1) for i in range(6)]
    path = tmp_path / "cut.aedat"
    path.write_bytes((_AEDAT3_HEADER + _aedat3_packet(1, 0, rows[:3]) + _aedat3_packet(1, 0, rows[3:]))[:-5])
    whole, streamed = _error(path, chunk_events=2)
    assert "truncated AEDAT 3" in whole and "truncated AEDAT 3" in streamed
    path = tmp_path / "cut.npy"
    np.save(path, a)
    path.write_bytes(path.read_bytes()[:-4])
    whole, streamed = _error(path, chunk_events=3)
    assert "cannot load .npy" in whole and "cannot load .npy" in streamed


def test_truncated_evt3_in_chunks(formats_dir, tmp_path):
    path = tmp_path / "cut.raw"
    path.write_bytes((formats_dir / "evt3_sample.raw").read_bytes()[:-1])
    whole, streamed = _error(path, chunk_events=1000)
    assert "truncated EVT3" in whole and "truncated EVT3" in streamed


def test_decoded_polarity_outside_0_1_is_refused(tmp_path):
    from evsim.input.stream import _binary_polarity

    arr = np.zeros(4, dtype=[("t", "<i8"), ("p", "u1")])
    arr["p"] = [0, 1, 3, 1]
    with pytest.raises(RecordingError, match="event 12 has p=3"):
        _binary_polarity(arr, "f.raw", 10, "EVT3")


# ---------------------------------------------------------------------------------------------
# simulation in chunks == simulation of the whole array, bit for bit
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bundled():
    import evsim

    return evsim.load_model(str(evsim.bundled_model_path()), profile="speck")


def _results_equal(a, b):
    assert a.status == b.status
    assert a.prediction == b.prediction
    np.testing.assert_array_equal(a.output, b.output)
    if a.output_counts is not None:
        np.testing.assert_array_equal(a.output_counts, b.output_counts)
    assert (a.events_consumed, a.events_total, a.synops, a.crossings) == (b.events_consumed, b.events_total,
                                                                         b.synops, b.crossings)
    assert a.spikes_per_node == b.spikes_per_node
    assert a.decision_time_us == b.decision_time_us and a.confidence == b.confidence
    for name in ("spikes", "output_record"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None)
        if isinstance(x, tuple):
            for u, v in zip(x, y):
                np.testing.assert_array_equal(u, v)
        elif x is not None:
            np.testing.assert_array_equal(x, y)


def _cases():
    from evsim.sim.result import Cutoff

    return {
        "none": ({}, None),
        "topk": ({"cutoff": Cutoff(mode="topk", threshold=3.0)}, "cutoff"),
        "max_events": ({"cutoff": Cutoff(max_events=1234)}, None),
        "max_time": ({"cutoff": Cutoff(max_time_us=45_000.0)}, None),
        "budget": ({"budget": 20_000}, "budget"),
        "window": ({"duration_us": 50_000.0, "time_origin": "zero"}, None),
    }


@pytest.mark.parametrize("case", list(_cases()))
def test_chunked_simulation_is_bit_identical(bundled, nmnist_dir, tmp_path, case):
    import evsim

    kwargs, expected_status = _cases()[case]
    paths = sorted(nmnist_dir.glob("*/*.bin"))[:3]
    for path in paths:
        events = read_recording(path).events
        np.save(tmp_path / "r.npy", events)
        sim = evsim.Simulator(bundled, record_output=True, record_spikes=True, **kwargs)
        whole = sim.run(events)
        if expected_status is not None:
            assert whole.status == expected_status  # the case really stops mid-recording
        if case in ("max_events", "max_time"):
            assert whole.events_consumed < whole.events_total
        if case == "window":
            assert whole.events_total < events.shape[0]  # later events lie outside the sample
        for chunk in (1, 3, 1000):
            streamed = sim.run_stream(open_stream(tmp_path / "r.npy", chunk_events=chunk))
            _results_equal(streamed, whole)
        # any iterable of arrays, uneven chunks
        cuts = [0, 2, 2, 50, 51, 400, events.shape[0]]
        _results_equal(sim.run_stream(events[i:j] for i, j in zip(cuts, cuts[1:])), whole)


def test_chunked_simulation_refuses_like_the_whole(bundled, tmp_path):
    import evsim
    from evsim.sim.result import Cutoff

    ev = np.zeros(30, dtype=EVENT_DTYPE)
    ev["t"] = np.arange(30) * 10
    ev["x"] = np.arange(30) % 34
    ev["x"][25] = 40  # outside the 34x34 input, after the input limit stopped consumption
    sim = evsim.Simulator(bundled, cutoff=Cutoff(max_events=5))
    with pytest.raises(RecordingError) as whole:
        sim.run(ev)
    with pytest.raises(RecordingError) as streamed:
        sim.run_stream(ev[i:i + 4] for i in range(0, 30, 4))
    assert "event 25 has x=40" in str(whole.value) and "event 25 has x=40" in str(streamed.value)
    ev["x"][25] = 0
    ev["t"][12] = 5  # unsorted at the boundary of chunk 3 (events 12..15)
    with pytest.raises(RecordingError, match="event 12 has t=5 us after t=110 us"):
        sim.run(ev)
    with pytest.raises(RecordingError, match="event 12 has t=5 us after t=110 us"):
        sim.run_stream(ev[i:i + 4] for i in range(0, 30, 4))


# ---------------------------------------------------------------------------------------------
# evsim run on a long recording: read in chunks, same record as the whole read
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cutoff", [[], ["--cutoff", "topk", "--threshold", "5"]])
def test_cli_run_streams_a_long_file_with_the_same_record(capsys, nmnist_dir, tmp_path, monkeypatch, cutoff):
    import json

    import evsim.input.stream as st
    from evsim.cli import BUNDLED_MODEL, main

    path = tmp_path / "long.npy"
    np.save(path, read_recording(sorted(nmnist_dir.glob("*/*.bin"))[5]).events)
    opened = []
    real_open = st.open_stream
    monkeypatch.setattr(st, "open_stream", lambda *a, **k: opened.append(a) or real_open(*a, **k))
    outputs = {}
    for name, threshold in (("whole", 1 << 60), ("stream", 0)):
        monkeypatch.setattr(st, "STREAM_FILE_BYTES", threshold)
        code = main(["run", str(BUNDLED_MODEL), str(path), "--profile", "speck", "--json", str(tmp_path / f"{name}.json"),
                     *cutoff])
        out = capsys.readouterr()
        assert code == 0, out.err
        outputs[name] = (out.out, json.loads((tmp_path / f"{name}.json").read_text()))
    assert len(opened) == 1  # only the second run streamed
    assert outputs["stream"] == outputs["whole"]
    if cutoff:
        assert outputs["stream"][1]["events_consumed"] < outputs["stream"][1]["events_total"]


# ---------------------------------------------------------------------------------------------
# the first run's compile notice
# ---------------------------------------------------------------------------------------------


def test_compile_pending_reads_numba_s_state(bundled):
    import evsim
    from evsim.sim import event

    sim = evsim.Simulator(bundled)
    ev = np.zeros(3, dtype=EVENT_DTYPE)
    ev["t"] = [0, 5, 9]
    sim.run(ev)  # compiled (or loaded) now: nothing pending for these argument types
    index = np.zeros(0, dtype=np.int64)
    times = np.zeros(0, dtype=np.float64)
    args = (bundled.arrays, sim.state, sim.buffers, index, times, -np.inf, sim._cut)
    assert event.compile_pending(args) is False
    # argument types the event loop was never compiled for: neither in memory nor on disk
    assert event.compile_pending(args[:3] + (index.astype(np.int32),) + args[4:]) is True


def test_evsim_run_announces_a_compile_once_and_only_when_pending(capsys, monkeypatch):
    from evsim.cli import main
    from evsim.sim import event

    monkeypatch.setattr(event, "_announced", set())
    for pending, expected in ((False, 0), (True, 1)):
        monkeypatch.setattr(event, "compile_pending", lambda args, p=pending: p)
        assert main(["run", "--cutoff", "none"]) == 0
        err = capsys.readouterr().err
        assert err.count("evsim: compiling the simulator for first use") == expected, err
    assert main(["run", "--cutoff", "none"]) == 0  # once per process
    assert "compiling" not in capsys.readouterr().err
    assert event.COMPILE_NOTICE is False  # the API stays silent after the command

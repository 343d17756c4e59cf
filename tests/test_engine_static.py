"""The event loop specialised to static models (``evsim.sim.engine._process_static``) against
the general loop (``_process``) on the same model and input.

A model is static when no population has dynamics between events, a refractory period, a
shortest spike interval or crossings without input, no projection has a delay and nothing is
traced; then the engine runs the specialised loop. Each test first asserts that the specialised
loop is the one taken, then runs the general loop on the same model (``is_static`` patched to
say no) and asserts that every field of the result is identical: predictions, output, SynOps,
spike counts per node, the spike record in order, the output record, the decision time.
"""

from __future__ import annotations

from pathlib import Path

import nir
import numpy as np
import pytest

import evsim
from evsim.sim import engine
from _nirgraphs import conv2d, graph, inp, out, random_events, sumpool

BUNDLED = Path(evsim.__file__).parent / "bundled" / "nmnist_cnn" / "model.nir"


def _run(model, events, *, general: bool, monkeypatch, chunks: int = 1, **options):
    sim = evsim.Simulator(model, record_spikes=True, record_output=True, **options)
    taken = []
    real = engine.is_static

    def choose(m, s):
        static = real(m, s)
        taken.append(static)
        return False if general else static

    with monkeypatch.context() as patch:
        patch.setattr(engine, "is_static", choose)
        if chunks == 1:
            result = sim.run(events)
        else:
            sim.reset()
            for part in np.array_split(events, chunks):
                sim.feed(part)
            sim.finish()
            result = sim.result()
    return result, taken


def assert_same_result(a, b):
    assert a.prediction == b.prediction
    np.testing.assert_array_equal(a.output, b.output)
    assert a.synops == b.synops
    assert a.spikes_per_node == b.spikes_per_node
    assert a.events_consumed == b.events_consumed
    assert a.status == b.status
    assert a.decision_time_us == b.decision_time_us
    assert a.confidence == b.confidence
    np.testing.assert_array_equal(a.spikes, b.spikes)
    for x, y in zip(a.output_record, b.output_record):
        np.testing.assert_array_equal(x, y)


def compare_loops(model, events, monkeypatch, **options):
    fast, taken_fast = _run(model, events, general=False, monkeypatch=monkeypatch, **options)
    slow, _ = _run(model, events, general=True, monkeypatch=monkeypatch, **options)
    assert taken_fast and all(taken_fast), "the specialised loop was not taken"
    hidden = sum(n for name, n in fast.spikes_per_node.items() if name != "input")
    assert hidden >= 50, "too little activity to compare"
    assert_same_result(fast, slow)
    return fast


@pytest.mark.parametrize("profile", ["speck", "sinabs", "nir"])
@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_bundled_model_on_real_recordings(profile, precision, nmnist_dir, monkeypatch):
    model = evsim.load_model(BUNDLED, profile=profile, precision=precision)
    paths = sorted(p for d in sorted(nmnist_dir.iterdir()) if d.is_dir() for p in sorted(d.iterdir())[:1])[:4]
    for path in paths:
        events = evsim.read_recording(path).events
        compare_loops(model, events, monkeypatch)
        compare_loops(model, events, monkeypatch, cutoff=evsim.Cutoff(mode="topk", threshold=3.0))


def test_budget_and_chunked_feeding(nmnist_dir, monkeypatch):
    model = evsim.load_model(BUNDLED, profile="speck")
    events = evsim.read_recording(sorted(sorted(nmnist_dir.iterdir())[3].iterdir())[0]).events
    fast = compare_loops(model, events, monkeypatch, budget=5000)
    assert fast.status == "budget"
    fast, _ = _run(model, events, general=False, monkeypatch=monkeypatch, chunks=7)
    slow, _ = _run(model, events, general=True, monkeypatch=monkeypatch, chunks=7)
    assert_same_result(fast, slow)


def _random_cnn(rng, threshold_rule_ge: bool):
    """Conv 2→6 3×3 → IF → SumPool 2 → Conv 6→4 3×3 s2 p1 → IF → Flatten → Linear → IF, with random weights."""
    w1 = rng.normal(0.4, 0.6, size=(6, 2, 3, 3))
    w2 = rng.normal(0.3, 0.5, size=(4, 6, 3, 3))
    w3 = rng.normal(0.2, 0.4, size=(5, 4 * 2 * 2))
    nodes = {
        "input": inp((2, 10, 10)),
        "conv1": conv2d(w1, input_shape=(10, 10)),
        "if1": nir.IF(r=np.ones((6, 8, 8)), v_threshold=np.full((6, 8, 8), 1.0), v_reset=np.zeros((6, 8, 8))),
        "pool": sumpool(2),
        "conv2": conv2d(w2, stride=2, padding=1, input_shape=(4, 4)),
        "if2": nir.IF(r=np.ones((4, 2, 2)), v_threshold=np.full((4, 2, 2), 0.8), v_reset=np.zeros((4, 2, 2))),
        "flat": nir.Flatten(start_dim=0, end_dim=-1, input_type={"input": np.array([4, 2, 2])}),
        "fc": nir.Linear(weight=w3),
        "if3": nir.IF(r=np.ones(5), v_threshold=np.full(5, 0.5), v_reset=np.zeros(5)),
        "output": out((5,)),
    }
    edges = [("input", "conv1"), ("conv1", "if1"), ("if1", "pool"), ("pool", "conv2"), ("conv2", "if2"),
             ("if2", "flat"), ("flat", "fc"), ("fc", "if3"), ("if3", "output")]
    return graph(nodes, edges)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("profile", ["nir", "sinabs", "speck"])
def test_random_cnns(seed, profile, monkeypatch):
    rng = np.random.default_rng(seed)
    g = _random_cnn(rng, threshold_rule_ge=profile != "nir")
    for precision in ("float32", "float64"):
        model = evsim.load_model(g, profile=profile, precision=precision)
        events, _ = random_events(rng, (2, 10, 10), 600)
        compare_loops(model, events, monkeypatch)


def test_models_with_dynamics_take_the_general_loop():
    """The selection itself: leak, bias drive and delays each rule the specialised loop out."""
    rng = np.random.default_rng(5)
    static = evsim.load_model(_random_cnn(rng, True), profile="sinabs")
    sim = evsim.Simulator(static)
    assert engine.is_static(static.arrays, sim.state)
    traced = evsim.Simulator(static, trace={"if3": [0]})
    assert not engine.is_static(static.arrays, traced.state)
    leaky = graph({"input": inp((3,)), "fc": nir.Linear(weight=np.eye(3)),
                   "lif": nir.LIF(tau=np.full(3, 0.01), r=np.ones(3), v_leak=np.zeros(3), v_threshold=np.ones(3)),
                   "output": out((3,))},
                  [("input", "fc"), ("fc", "lif"), ("lif", "output")])
    m = evsim.load_model(leaky, profile="nir")
    assert not engine.is_static(m.arrays, evsim.Simulator(m).state)
    biased = graph({"input": inp((3,)), "fc": nir.Linear(weight=np.eye(3)),
                    "if": nir.IF(r=np.ones(3), v_threshold=np.ones(3), v_reset=np.zeros(3)),
                    "b": nir.Affine(weight=np.eye(3), bias=np.full(3, 0.1)), "output": out((3,))},
                   [("input", "b"), ("b", "if"), ("if", "output")])
    m = evsim.load_model(biased, profile="sinabs")
    assert not engine.is_static(m.arrays, evsim.Simulator(m).state)


@pytest.mark.parametrize("ge", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_firing_level_is_the_threshold_rule(ge, dtype):
    """The fused pass tests v ≥ L with L from ``evsim.kernels.neuron.firing_level`` (the model's
    ``pop_uniform[:, 0]``); that must be the rule v ≥ θ (or v > θ), written out here, for state
    values at, just below and just above θ, compared in the state's own precision (L rounded up
    to float32 for a float32 state)."""
    from evsim.kernels.neuron import firing_level

    rng = np.random.default_rng(7)
    thetas = np.concatenate([rng.normal(0, 3, 200), [1.0, 0.1, 1 / 3, -0.5, 1e-30, 2.0 ** 40]])
    for theta in thetas:
        level = firing_level(theta, ge, dtype)
        assert isinstance(level, dtype)
        near = dtype(theta)
        values = [near, np.nextafter(near, dtype(np.inf)), np.nextafter(near, dtype(-np.inf)),
                  dtype(theta * 2), dtype(theta / 2), dtype(0.0)]
        for v in values:
            fires = float(v) >= theta if ge else float(v) > theta
            assert (v >= level) == fires, (theta, v, ge)  # compared in the state's precision


@pytest.mark.parametrize("profile", ["speck", "snntorch"])
def test_buffers_kept_between_samples_change_nothing(profile, nmnist_dir):
    """A Simulator keeps its grown buffers from one sample to the next: each result must equal a
    fresh simulator's, and an earlier result must not change when later samples reuse them."""
    model = evsim.load_model(BUNDLED, profile=profile)
    paths = [sorted(d.iterdir())[0] for d in sorted(nmnist_dir.iterdir()) if d.is_dir()][:3]
    recordings = [evsim.read_recording(p).events for p in paths]
    reused = evsim.Simulator(model, record_spikes=True, record_output=True)
    results = [reused.run(ev) for ev in recordings]
    first_spikes = results[0].spikes.copy()
    results += [reused.run(recordings[0])]
    for ev, result in zip(recordings + recordings[:1], results):
        fresh = evsim.Simulator(model, record_spikes=True, record_output=True).run(ev)
        assert_same_result(result, fresh)
    np.testing.assert_array_equal(results[0].spikes, first_spikes)
    assert len(first_spikes) > 1000  # the buffers grew well beyond their initial size


def test_lowest_set_bit_against_python_ints():
    """The threshold scan visits a block's neurons at threshold through the lowest set bit of a
    mask: both the intrinsic and the portable version must give Python's own answer."""
    from numba import njit

    from evsim.kernels.bits import lowest_set_bit, lowest_set_bit_portable

    @njit
    def both(mask):
        return lowest_set_bit(mask), lowest_set_bit_portable(mask)

    rng = np.random.default_rng(3)
    masks = [1 << k for k in range(32)] + [int(x) for x in rng.integers(1, 2 ** 32, 500)]
    for mask in masks:
        expected = (mask & -mask).bit_length() - 1
        assert both(np.int64(mask)) == (expected, expected), mask


def _without_run_tables(model):
    """The same compiled model with its convolutions' run tables switched off (runs computed per
    spike by ``evsim.kernels.fanout.op_runs``, the slow, direct way)."""
    import dataclasses

    m = model.arrays
    return dataclasses.replace(model, arrays=m._replace(op_table_base=-np.ones_like(m.op_table_base)))


def test_run_tables_are_op_runs():
    """Every row of a model's run tables is what ``op_runs`` computes for that input element, for
    the bundled model and a CNN with padding, stride and a pool folded in; a row limit tabulates
    the convolutions in order while they fit and leaves the rest to ``op_runs``."""
    from evsim.kernels.abi import OP_CONV
    from evsim.kernels.fanout import new_runs_buffer, op_runs, run_tables
    from numba import njit

    @njit
    def runs_of(m, op, i, runs):
        return op_runs(m, op, i, runs)

    models = [evsim.load_model(BUNDLED, profile="speck"),
              evsim.load_model(_random_cnn(np.random.default_rng(4), True), profile="sinabs", precision="float64")]
    for model in models:
        m = model.arrays
        convs = [op for op in range(m.op_kind.shape[0]) if m.op_kind[op] == OP_CONV]
        assert len(convs) >= 2 and all(m.op_table_base[op] >= 0 for op in convs)
        runs = new_runs_buffer(m.op_geom)
        rows_of = {}
        for op in convs:
            base = int(m.op_table_base[op])
            rows_of[op] = int(m.run_ptr[base + m.op_in_size[op], 0] - m.run_ptr[base, 0])
            for i in range(int(m.op_in_size[op])):
                n_runs, n_sub_total, _ = runs_of(m, op, i, runs)
                r0, r1 = m.run_ptr[base + i, 0], m.run_ptr[base + i + 1, 0]
                np.testing.assert_array_equal(m.run_table[r0:r1], runs[:n_runs])
                assert m.run_ptr[base + i, 1] == n_sub_total
        # a limit that holds the first convolution only
        table_base, _, table = run_tables(m, max_rows=rows_of[convs[0]])
        assert table_base[convs[0]] >= 0 and all(table_base[op] == -1 for op in convs[1:])
        assert table.shape[0] == rows_of[convs[0]]


@pytest.mark.parametrize("profile", ["speck", "nir"])
def test_run_tables_change_no_result(profile, nmnist_dir, monkeypatch):
    """The engine with its run tables against the same model computing every run per spike: same
    results, in the static loop and in the general loop, on real recordings and a random CNN."""
    cases = [(evsim.load_model(BUNDLED, profile=profile),
              [evsim.read_recording(sorted(d.iterdir())[1]).events for d in sorted(nmnist_dir.iterdir())[:3]])]
    rng = np.random.default_rng(11)
    cases.append((evsim.load_model(_random_cnn(rng, profile != "nir"), profile=profile),
                  [random_events(rng, (2, 10, 10), 600)[0] for _ in range(3)]))
    for model, recordings in cases:
        direct = _without_run_tables(model)
        for events in recordings:
            for general in (False, True):
                tabulated, _ = _run(model, events, general=general, monkeypatch=monkeypatch)
                computed, _ = _run(direct, events, general=general, monkeypatch=monkeypatch)
                assert sum(tabulated.spikes_per_node.values()) > len(events) + 50
                assert_same_result(tabulated, computed)


@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_uniform_delivery_equals_the_per_neuron_path(precision, nmnist_dir, monkeypatch):
    """Populations marked F_UNIFORM by the builder take the fused delivery; with the mark removed
    the same model takes the per-neuron path of ``_deliver_static`` (per-neuron parameters, ceiling,
    threshold test and floor in separate loops): the results must be identical, with and without
    the state ceiling of ``--quantize speck``."""
    import dataclasses

    from evsim.kernels.abi import F_UNIFORM

    events = [evsim.read_recording(sorted(d.iterdir())[2]).events for d in sorted(nmnist_dir.iterdir())[:3]]
    for model in (evsim.load_model(BUNDLED, profile="sinabs", precision=precision),
                  evsim.load_model(BUNDLED, profile="speck", quantize="speck", precision=precision)):
        m = model.arrays
        assert np.all(m.pop_flags[1:] & F_UNIFORM)
        plain = dataclasses.replace(model, arrays=m._replace(pop_flags=m.pop_flags & ~F_UNIFORM))
        for ev in events:
            fused, _ = _run(model, ev, general=False, monkeypatch=monkeypatch)
            per_neuron, _ = _run(plain, ev, general=False, monkeypatch=monkeypatch)
            assert sum(fused.spikes_per_node.values()) > len(ev) + 50
            assert_same_result(fused, per_neuron)


def test_a_model_beyond_the_run_index_is_refused(monkeypatch):
    """Runs are 32-bit: a model with more weights (or neurons) than that type addresses must be
    refused by the builder with a ModelError, not wrap around. Checked with an 8-bit run type, whose
    limit (127) the bundled model exceeds."""
    from evsim.compile import builder
    from evsim.errors import ModelError

    monkeypatch.setattr(builder, "RUN_DTYPE", np.int8)
    with pytest.raises(ModelError, match="addresses at most 127"):
        evsim.load_model(BUNDLED, profile="speck")

"""Real NIR exports of the NIR paper (``<shared data>/nir``), against the frameworks' own discrete
equations written out here in numpy, independently of evsim's code.

* ``braille_noDelay_noBias_subtract.nir``: snnTorch's recurrent Braille RNN (RSynaptic → Synaptic),
  trained with ``reset_mechanism="subtract"`` and ``reset_delay=False`` at snnTorch 40ad136.
  Its forward pass (snntorch/_neurons/rsynaptic.py, synaptic.py, neurons.py at that commit)::

      syn1 = α1·syn1 + fc1·x[t] + W_rec·spk1[t−1]
      reset = H(mem1 − θ)                 (the stored membrane of the previous step)
      mem1 = β1·mem1 + syn1 − reset·θ
      spk1 = H(mem1 − θ);  mem1 = mem1 − (spk1 − reset)·θ
      (the same for lif2 with fc2·spk1[t], without recurrence)

  with α = 1 − dt/τ_syn, β = 1 − dt/τ_mem, dt = τ/r = 100 µs from the file; a sample is 256 steps.
* ``lif_norse.nir`` with ``lif_input.npy``: one Norse LIFBox neuron at dt = 0.1 ms,
  ``v ← v + dt/τ·(x − v)``, ``z = H(v − θ)``, ``v ← 0`` on a spike; the paper's reference spike
  steps are 460, 510, 710, 760.
"""

from __future__ import annotations

import nir
import numpy as np

import evsim
from evsim.input.events import make_events
from evsim.sim.clock import ClockSimulator
from evsim.sim.event import Simulator

from conftest import require_shared_data

BRAILLE = "braille_noDelay_noBias_subtract.nir"
STEP_US = 100
N_STEPS = 256


def braille_parameters(path):
    g = nir.read(str(path))
    nodes = g.nodes
    lif1, lif2 = nodes["lif1.lif"], nodes["lif2"]
    p = {"fc1": np.asarray(nodes["fc1"].weight, dtype=np.float64),
         "fc2": np.asarray(nodes["fc2"].weight, dtype=np.float64),
         "w_rec": np.asarray(nodes["lif1.w_rec"].weight, dtype=np.float64)}
    for name, node in (("1", lif1), ("2", lif2)):
        tau_syn = np.asarray(node.tau_syn, dtype=np.float64)
        tau_mem = np.asarray(node.tau_mem, dtype=np.float64)
        dt = tau_mem / np.asarray(node.r, dtype=np.float64)  # snntorch/export_nir.py: r = τ_mem/dt
        p["alpha" + name] = 1.0 - dt / tau_syn
        p["beta" + name] = 1.0 - dt / tau_mem
        p["theta" + name] = np.asarray(node.v_threshold, dtype=np.float64)
        p["dt" + name] = dt
    return p


def snntorch_braille(p, frames):
    """Output spike counts of snnTorch's forward pass (module docstring) over the frames."""
    h, o = p["fc1"].shape[0], p["fc2"].shape[0]
    syn1, mem1, spk1 = np.zeros(h), np.zeros(h), np.zeros(h)
    syn2, mem2 = np.zeros(o), np.zeros(o)
    counts = np.zeros(o)
    H = lambda u: (u > 0).astype(float)  # noqa: E731
    for x in frames:
        syn1 = p["alpha1"] * syn1 + p["fc1"] @ x + p["w_rec"] @ spk1
        reset = H(mem1 - p["theta1"])
        mem1 = p["beta1"] * mem1 + syn1 - reset * p["theta1"]
        spk1 = H(mem1 - p["theta1"])
        mem1 = mem1 - (spk1 - reset) * p["theta1"]
        syn2 = p["alpha2"] * syn2 + p["fc2"] @ spk1
        reset = H(mem2 - p["theta2"])
        mem2 = p["beta2"] * mem2 + syn2 - reset * p["theta2"]
        spk2 = H(mem2 - p["theta2"])
        mem2 = mem2 - (spk2 - reset) * p["theta2"]
        counts += spk2
    return counts


def random_braille_input(rng, density):
    """Random 12-channel spike frames over 256 steps and the same spikes as events (t = step·100 µs)."""
    frames = (rng.random((N_STEPS, 12)) < density).astype(float)
    steps, channels = np.nonzero(frames)
    return frames, make_events(t=steps * STEP_US, x=channels)


def test_braille_rnn_clock_mode_equals_snntorch_on_every_output_count():
    path = require_shared_data("nir", BRAILLE)
    p = braille_parameters(path)
    np.testing.assert_allclose(p["dt1"], 1e-4, rtol=1e-6)
    np.testing.assert_allclose([p["alpha1"][0], p["beta1"][0], p["alpha2"][0], p["beta2"][0]],
                               [0.75, 0.85, 0.45, 0.70], atol=1e-6)
    model = evsim.load_model(str(path), profile="snntorch", precision="float64", reset="subtract", reset_delay=False)
    sim = ClockSimulator(model, bin_us=STEP_US, time_origin="zero", duration_us=N_STEPS * STEP_US)
    rng = np.random.default_rng(2026)
    n_spiking = 0
    for trial in range(40):
        frames, events = random_braille_input(rng, density=rng.uniform(0.02, 0.3))
        expected = snntorch_braille(p, frames)
        result = sim.run(events)
        assert result.extra["n_steps"] == N_STEPS
        np.testing.assert_array_equal(result.output_counts, expected, err_msg=f"trial {trial}")
        n_spiking += expected.sum() > 0
    assert n_spiking >= 30  # the outputs do fire: the comparison is not between zeros

    # the reset timing matters on this model: snnTorch's default reset_delay=True, or evsim's old
    # origin at the first event, give other counts on some inputs
    delayed = ClockSimulator(evsim.load_model(str(path), profile="snntorch", precision="float64", reset="subtract",
                                              reset_delay=True),
                             bin_us=STEP_US, time_origin="zero", duration_us=N_STEPS * STEP_US)
    first_event = ClockSimulator(model, bin_us=STEP_US)
    differ_delay = differ_origin = 0
    rng = np.random.default_rng(7)
    for _ in range(20):
        frames, events = random_braille_input(rng, density=0.3)
        frames[:20] = frames[120:] = 0  # a letter in the middle of its 256-step frame, as in Braille
        steps, channels = np.nonzero(frames)
        events = make_events(t=steps * STEP_US, x=channels)
        expected = snntorch_braille(p, frames)
        differ_delay += not np.array_equal(delayed.run(events).output_counts, expected)
        differ_origin += not np.array_equal(first_event.run(events).output_counts, expected)
    assert differ_delay > 0 and differ_origin > 0


def test_braille_rnn_event_mode_fires_at_most_once_per_step():
    """Event mode under the snntorch profile: a neuron fires at most once per dt (100 µs), so the
    recurrent loop cannot run away within a step, even with dense input."""
    path = require_shared_data("nir", BRAILLE)
    model = evsim.load_model(str(path), profile="snntorch", reset="subtract")
    sim = Simulator(model, record_spikes=True, time_origin="zero", duration_us=N_STEPS * STEP_US)
    rng = np.random.default_rng(3)
    for density in (0.05, 0.5, 1.0):
        _, events = random_braille_input(rng, density)
        result = sim.run(events)
        assert result.status == "complete"
        spikes = result.spikes[result.spikes["node"] > 0]
        assert spikes.size > 0
        for node in np.unique(spikes["node"]):
            for neuron in np.unique(spikes["neuron"][spikes["node"] == node]):
                t = spikes["t_us"][(spikes["node"] == node) & (spikes["neuron"] == neuron)]
                assert np.all(np.diff(t) >= STEP_US - 1e-6), (node, neuron, np.diff(t).min())
        assert spikes.size <= 47 * (N_STEPS + 1)


def excitatory_pair(dt=1e-4):
    """Two snnTorch RSynaptic neurons exciting each other (W_rec = 5θ), α = β = 0.9, θ = 1, as
    snntorch.export_nir writes them (r = τ_mem/dt, w_in = τ_syn/dt)."""
    from _nirgraphs import graph, inp, out
    tau = dt / (1 - 0.9)
    lif = nir.CubaLIF(tau_syn=np.full(2, tau), tau_mem=np.full(2, tau), r=np.full(2, tau / dt), v_leak=np.zeros(2),
                      v_threshold=np.ones(2), v_reset=np.zeros(2), w_in=np.full(2, tau / dt))
    return graph({"input": inp((1,)), "fc": nir.Linear(weight=np.full((2, 1), 2.0)), "lif": lif,
                  "w_rec": nir.Linear(weight=np.array([[0.0, 5.0], [5.0, 0.0]])), "output": out((2,))},
                 [("input", "fc"), ("fc", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")])


def test_a_recurrent_excitatory_loop_cannot_run_away_within_a_step():
    """The continuous translation of a discrete loop whose current holds several θ per step fires
    every few µs and feeds itself: without the bound the budget stops it; with the profile's
    default (one firing per dt) each neuron fires at most once per 100 µs, as snnTorch's step."""
    g = excitatory_pair()
    events = make_events(t=np.array([0]), x=np.array([0]))
    free = Simulator(evsim.load_model(g, profile="snntorch", reset="subtract", min_spike_interval_us=0),
                     duration_us=5000, budget=1_000_000)
    assert free.run(events).status == "budget"
    bounded = Simulator(evsim.load_model(g, profile="snntorch", reset="subtract"), record_spikes=True,
                        duration_us=5000, budget=1_000_000)
    result = bounded.run(events)
    assert result.status == "complete"
    lif = result.spikes[result.spikes["node"] == result.node_names.index("lif")]
    for neuron in (0, 1):
        t = lif["t_us"][lif["neuron"] == neuron]
        assert t.size >= 40  # it keeps firing, once per step at most: 5000 µs / 100 µs
        assert np.all(np.diff(t) >= STEP_US - 1e-6)


def test_lif_norse_reproduces_the_papers_spike_steps_in_clock_mode():
    """lif_norse.nir at the notebook's dt = 0.1 ms (``--dt-us 100``, 100 µs bins from t = 0 over
    1000 steps): spikes at steps 460, 510, 710, 760 as Norse and the exact solution; the same
    steps from the Norse update written out."""
    path = require_shared_data("nir", "lif_norse.nir")
    raw = np.load(require_shared_data("nir", "lif_input.npy"))
    events = make_events(t=raw["t"], x=raw["x"])
    model = evsim.load_model(str(path), profile="norse", dt_us=100, precision="float64")
    result = ClockSimulator(model, bin_us=STEP_US, time_origin="zero", duration_us=1000 * STEP_US,
                            record_spikes=True).run(events)
    spikes = result.spikes[result.spikes["node"] == result.node_names.index("1")]
    steps = np.round(spikes["t_us"] / STEP_US).astype(int) - 1  # a step's spikes are reported at its end
    assert steps.tolist() == [460, 510, 710, 760]
    # Norse's LIFBox update, written out (norse/torch/functional/lif_box.py), float32 parameters
    node = nir.read(str(path)).nodes["1"]
    tau, theta = float(node.tau[0]), float(node.v_threshold[0])
    x = np.zeros(1000)
    x[raw["t"] // STEP_US] = 1.0
    v, ref = 0.0, []
    for k in range(1000):
        v = v + 1e-4 / tau * (x[k] - v)
        if v > theta:
            ref.append(k)
            v = 0.0
    assert ref == [460, 510, 710, 760]
    # with the origin at the first event (t = 6000 µs) the same spikes are 60 steps earlier
    shifted = ClockSimulator(model, bin_us=STEP_US, record_spikes=True).run(events)
    s2 = shifted.spikes[shifted.spikes["node"] == shifted.node_names.index("1")]
    assert (np.round(s2["t_us"] / STEP_US).astype(int) - 1).tolist() == [400, 450, 650, 700]


def test_lif_norse_in_event_time():
    """Event mode: each input spike is an impulse that raises v by dt/τ = 0.04 at once (the discrete
    update's jump), and v decays exactly between events. The discrete update decays the jump by
    (1 − dt/τ) per step instead of exp(−dt/τ), so event-mode spikes come a little earlier or
    later than steps 460/510/710/760; the spike times equal the crossings of the closed form
    v(t) = Σ 0.04·exp(−(t − t_i)/τ) (reset to 0), computed here."""
    path = require_shared_data("nir", "lif_norse.nir")
    raw = np.load(require_shared_data("nir", "lif_input.npy"))
    events = make_events(t=raw["t"], x=raw["x"])
    model = evsim.load_model(str(path), profile="norse", dt_us=100, precision="float64")
    result = Simulator(model, record_spikes=True, time_origin="zero", duration_us=100_000).run(events)
    got = result.spikes["t_us"][result.spikes["node"] == result.node_names.index("1")]
    node = nir.read(str(path)).nodes["1"]
    tau_us, theta = float(node.tau[0]) * 1e6, float(node.v_threshold[0])
    jump = STEP_US / tau_us
    v, t_prev, expected = 0.0, 0.0, []
    for t in raw["t"].astype(float):  # the neuron only fires at inputs (no drive between them)
        v = v * np.exp(-(t - t_prev) / tau_us) + jump
        t_prev = t
        if v > theta:
            expected.append(t)
            v = 0.0
    np.testing.assert_allclose(got, expected)
    assert len(expected) == 4
    steps = np.asarray(expected) / STEP_US
    assert np.all(np.abs(steps - np.array([460, 510, 710, 760])) <= 10)

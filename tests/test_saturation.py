"""The 16-bit state of ``--quantize speck``: v ← min(v + w_q, 32767), then the threshold test.

The references are the rule written out as a scalar loop over the inputs (event mode: one
update per input event; clock mode: one update per step with the step's summed input), in
integers, never evsim's code. Each network is built so that the state provably passes 32767
without the ceiling, and the saturating and the unbounded references give different spike
counts, so every test can fail either way.
"""

from __future__ import annotations

import json

import nir
import numpy as np
import pytest

import evsim
from evsim import make_events
from evsim.chip.speck import STATE_MAX, quantize_speck
from evsim.cli import main
from evsim.sim.clock import ClockSimulator

EXC, INH = 0, 1  # input channels: weight +w and −w


def layer(w, theta, bias=0.0):
    """input(2) → Affine([[w, −w]], bias) → IF(θ) → output: already integers, so the quantised
    layer has scale 1 (w_q = w, θ_q = θ, floor −θ) and the float model is the same network."""
    return nir.NIRGraph(nodes={
        "input": nir.Input(input_type=np.array([2])),
        "fc": nir.Affine(weight=np.array([[w, -w]], np.float32), bias=np.array([bias], np.float32)),
        "iaf": nir.IF(r=np.ones(1, np.float32), v_threshold=np.array([theta], np.float32),
                      v_reset=np.zeros(1, np.float32)),
        "output": nir.Output(output_type=np.array([1])),
    }, edges=[("input", "fc"), ("fc", "iaf"), ("iaf", "output")], type_check=False)


def reference(inputs, theta, multi, ceiling):
    """Spike count of one IF neuron updated once per entry of ``inputs`` (integers): add, saturate
    at ``ceiling`` (None: unbounded), test v ≥ θ, n = 1 or floor(v/θ) spikes, v − n·θ, floor −θ.
    Returns (count, largest state reached before the ceiling)."""
    v, count, peak = 0, 0, 0
    for x in inputs:
        v += int(x)
        peak = max(peak, v)
        if ceiling is not None:
            v = min(v, ceiling)
        if v >= theta:
            n = v // theta if multi else 1
            v -= n * theta
            count += n
        v = max(v, -theta)
    return count, peak


def event_train(n_exc, n_inh, gap_us=10):
    """n_exc excitatory events, then n_inh inhibitory ones, one every gap_us."""
    x = np.array([EXC] * n_exc + [INH] * n_inh)
    return make_events(t=np.arange(x.size) * gap_us, x=x)


# (w, θ, events): θ < w, so with one spike per input the residual grows by w − θ per excitatory
# event (speck), or θ = 32767 with inputs summed past it in one update (sinabs, clock)
W, THETA = 127, 10


def test_may_saturate_for_the_test_layers():
    _, (q,) = quantize_speck(layer(W, THETA))
    assert (q.scale, q.threshold, q.floor, q.weight_range) == (1.0, THETA, -THETA, (-W, W))
    # one input stays far below 32767 (θ − 1 + w), but w > θ lets the residual grow: may saturate
    assert q.max_state == THETA - 1 + W < STATE_MAX and q.may_saturate
    _, (q,) = quantize_speck(layer(W, 32767.0))
    assert q.threshold == 32767 and q.max_state > STATE_MAX and q.may_saturate
    _, (q,) = quantize_speck(layer(W, 1000.0))
    assert not q.may_saturate  # θ_q − 1 + w ≤ 32767 and w ≤ θ_q: the state stays below θ_q + w


@pytest.mark.parametrize("quantize", ["speck", None])
def test_event_mode_state_saturates_only_when_quantized(quantize):
    n_exc, n_inh = 400, 400
    events = event_train(n_exc, n_inh)
    inputs = [W] * n_exc + [-W] * n_inh
    saturating, _ = reference(inputs, THETA, multi=False, ceiling=STATE_MAX)
    unbounded, peak = reference(inputs, THETA, multi=False, ceiling=None)
    assert peak > 40_000 and saturating != unbounded  # 117 per excitatory event without the ceiling
    model = evsim.load_model(layer(W, THETA), profile="speck", quantize=quantize)
    counts = evsim.Simulator(model).run(events).output_counts[0]
    assert counts == (saturating if quantize else unbounded)


def test_event_mode_traced_state_and_the_drive_between_inputs_saturate():
    """A bias of 127 per 1 ms step drives the state up between inputs while it sits above θ (one
    spike per update: no crossing to wait for): 300 ms after the first event it would be far past
    32767. The traced path (``receive``) and the drift (``advance``) both saturate."""
    g = layer(W, THETA, bias=float(W))
    events = make_events(t=np.array([0, 300_000, 300_010]), x=np.array([EXC, INH, INH]))
    res = evsim.Simulator(evsim.load_model(g, profile="speck", quantize="speck"), trace={"iaf": [0]}).run(events)
    v = res.traces["v"]
    # t = 0: 0 + 127 → fires → 117 (the drift from 0 is 0)
    # t = 300 ms: 117 + 127·300 = 38217 → 32767, −127 → 32640 → fires → 32630
    # 10 µs later: the drift adds 1.27 (32630 + 1.27 = 32631.27), −127 → fires → 32494.27
    assert v[0] == 117 and v[1] == 32630
    assert v[2] == pytest.approx(32631.27 - W - THETA, abs=1e-2)
    float_res = evsim.Simulator(evsim.load_model(g, profile="speck"), trace={"iaf": [0]}).run(events)
    assert float_res.traces["v"][1] == 117 + 127 * 300 - W - THETA  # not clamped without --quantize


def test_event_mode_multi_spike_resets_from_the_saturated_state():
    """sinabs profile, θ_q = 32767: the 259th input of 127 reaches 32893, saturates to 32767 and
    fires once, leaving 0 (the ceiling comes before the test and the reset), not 126."""
    events = event_train(259, 0)
    traced = {}
    for quantize in ("speck", None):
        model = evsim.load_model(layer(W, 32767.0), profile="sinabs", quantize=quantize)
        res = evsim.Simulator(model, trace={"iaf": [0]}).run(events)
        assert res.output_counts[0] == 1
        traced[quantize] = res.traces["v"]
    assert traced["speck"][-2] == traced[None][-2] == 258 * W
    assert traced["speck"][-1] == 0 and traced[None][-1] == 259 * W - 32767


def clock_train(per_step):
    """Events so that 1 ms step k receives per_step[k] = (n_exc, n_inh) events."""
    t, x = [], []
    for k, (n_e, n_i) in enumerate(per_step):
        for j, ch in enumerate([EXC] * n_e + [INH] * n_i):
            t.append(k * 1000 + j)
            x.append(ch)
    return make_events(t=np.array(t), x=np.array(x))


@pytest.mark.parametrize("profile, theta, bias, per_step", [
    # speck, one spike per step: +1270 − 10 per step for 50 steps (63000 unbounded), then −1280 − 10
    ("speck", THETA, 0.0, [(10, 0)] * 50 + [(0, 10)] * 60),
    # the same with a bias of 127 per step (not a "static" population: the dense update)
    ("speck", THETA, float(W), [(10, 0)] * 40 + [(0, 12)] * 60),
    # sinabs, floor(v/θ) spikes: 300 inputs in one step (38100) saturate to 32767 → 1 spike, v = 0
    # (unbounded: 1 spike and 5333 left), then 250 inputs per step (31750)
    ("sinabs", 32767.0, 0.0, [(300, 0)] + [(250, 0)] * 6),
])
@pytest.mark.parametrize("quantize", ["speck", None])
def test_clock_mode_state_saturates_once_per_step(profile, theta, bias, per_step, quantize):
    events = clock_train(per_step)
    inputs = [W * (n_e - n_i) + int(bias) for n_e, n_i in per_step]
    multi = profile == "sinabs"
    saturating, _ = reference(inputs, int(theta), multi, STATE_MAX)
    unbounded, peak = reference(inputs, int(theta), multi, None)
    assert peak > STATE_MAX and saturating != unbounded
    model = evsim.load_model(layer(W, theta, bias), profile=profile, quantize=quantize)
    expected = saturating if quantize else unbounded
    for compiled in (True, False):
        sim = ClockSimulator(model, bin_us=1000)
        if not compiled:
            sim._fast = None  # the Python step loop (Population.step) instead of _run_sample
        assert sim.run(events).output_counts[0] == expected


def test_a_v_min_below_the_16_bit_range_is_refused():
    with pytest.raises(evsim.OptionError, match="--v-min"):
        evsim.load_model(layer(W, THETA), profile="speck", quantize="speck", v_min=-40_000.0)


def test_info_reports_may_saturate(tmp_path, capsys):
    path = tmp_path / "sat.nir"
    nir.write(path, layer(W, THETA))
    out_json = tmp_path / "info.json"
    code = main(["info", str(path), "--profile", "speck", "--quantize", "speck", "--json", str(out_json)])
    out = capsys.readouterr().out
    assert code == 0 and "states saturate at 32767" in out and "state may saturate at 16 bits" in out
    assert json.loads(out_json.read_text())["quantize"]["layers"][0]["may_saturate"] is True

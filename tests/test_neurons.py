"""Closed-form checks of the neuron models (docs/SEMANTICS.md#neurons) on hand-built input trains.

Every expected value is computed here from the NIR equations (or by integrating the ODE
numerically with a small-step RK4), independently of evsim's kernels.
"""

from __future__ import annotations

import math

import nir
import numpy as np
import pytest

import evsim
from evsim import make_events


def one_neuron_graph(neuron, n_in=1, weight=None, bias=None, n_out=1):
    """Input(n_in) -> Affine -> neuron -> Output."""
    weight = np.eye(n_out, n_in) if weight is None else np.asarray(weight, dtype=np.float64).reshape(n_out, n_in)
    bias = np.zeros(n_out) if bias is None else np.asarray(bias, dtype=np.float64).reshape(n_out)
    nodes = {
        "input": nir.Input(input_type=np.array([n_in])),
        "fc": nir.Affine(weight=weight, bias=bias),
        "neuron": neuron,
        "output": nir.Output(output_type=np.array([n_out])),
    }
    edges = [("input", "fc"), ("fc", "neuron"), ("neuron", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def run(graph, t_us, x=None, *, t_end_us=None, profile="nir", trace=True, **overrides):
    model = evsim.load_model(graph, profile=profile, precision="float64", **overrides)
    t_us = np.asarray(t_us, dtype=np.int64)
    x = np.zeros(t_us.size, dtype=np.int64) if x is None else np.asarray(x)
    sim = evsim.Simulator(model, record_spikes=True, trace={"neuron": [0]} if trace else None)
    return sim.run(make_events(t_us, x), t_end_us=t_end_us)


def spike_times_us(result, node="neuron"):
    idx = result.node_names.index(node)
    s = result.spikes[result.spikes["node"] == idx]
    return s["t_us"], s["count"]


def trace_v(result):
    return result.traces["t_us"], result.traces["v"]


def IF(theta=1.0, r=1.0, v_reset=0.0, n=1):
    return nir.IF(r=np.full(n, r), v_threshold=np.full(n, theta), v_reset=np.full(n, v_reset))


def LIF(tau, theta=1.0, r=1.0, v_leak=0.0, v_reset=0.0, n=1):
    return nir.LIF(tau=np.full(n, tau), r=np.full(n, r), v_leak=np.full(n, v_leak), v_threshold=np.full(n, theta),
                   v_reset=np.full(n, v_reset))


# ------------------------------------------------------------------------------------------
# IF
# ------------------------------------------------------------------------------------------


def test_if_integrates_r_times_weight_and_resets_to_v_reset():
    # strict NIR: v += R*w; fires on v > theta; v <- v_reset
    r, w, theta, v_reset = 2.0, 0.3, 1.0, 0.1
    res = run(one_neuron_graph(IF(theta, r, v_reset), weight=[[w]]), [0, 1000, 2000, 3000])
    t, v = trace_v(res)
    expected = []
    state = 0.0
    spikes = []
    for k, tk in enumerate([0, 1000, 2000, 3000]):
        state += r * w
        if state > theta:
            spikes.append(tk)
            state = v_reset
        expected.append(state)
    np.testing.assert_allclose(v, expected, rtol=1e-12)
    np.testing.assert_array_equal(spike_times_us(res)[0], spikes)


def test_if_bias_fires_spontaneously_at_analytic_times():
    # constant current b through Affine bias: dv/dt = R*b, crossing every (theta - v_reset)/(R*b)
    r, b, theta, v_reset = 2.0, 50.0, 1.0, 0.2
    t_end = 40_000
    res = run(one_neuron_graph(IF(theta, r, v_reset), weight=[[0.0]], bias=[b]), [0], t_end_us=t_end)
    t, _ = spike_times_us(res)
    first = theta / (r * b)
    period = (theta - v_reset) / (r * b)
    expected = [first + k * period for k in range(100) if first + k * period <= t_end * 1e-6]
    np.testing.assert_allclose(t * 1e-6, expected, rtol=0, atol=1e-9)
    assert res.crossings == len(expected)


def test_if_bias_crossing_is_rescheduled_by_input():
    # an input arriving before the predicted crossing moves it earlier
    r, b, theta = 1.0, 10.0, 1.0  # alone: crossing at 100 ms
    res = run(one_neuron_graph(IF(theta, r), n_in=1, weight=[[0.5]], bias=[b]), [0, 20_000], t_end_us=150_000)
    t, _ = spike_times_us(res)
    # v(20ms) = 0.5 + 0.2 + 0.5 = 1.2 > 1 -> fires at the input; then from 0 at 20 ms, next at 120 ms
    np.testing.assert_allclose(t * 1e-6, [0.02, 0.12], atol=1e-9)


def test_threshold_strict_vs_greater_equal_at_exactly_theta():
    g = one_neuron_graph(IF(theta=1.0), weight=[[0.5]])
    strict = run(g, [0, 1000])
    ge = run(g, [0, 1000], threshold_ge=True)
    assert spike_times_us(strict)[0].size == 0  # v == theta is not > theta
    np.testing.assert_array_equal(spike_times_us(ge)[0], [1000])


def test_reset_by_subtraction_keeps_the_residual():
    g = one_neuron_graph(IF(theta=1.0, v_reset=0.0), weight=[[1.5]])
    zero = run(g, [0])
    sub = run(g, [0], reset="subtract")
    assert trace_v(zero)[1][-1] == 0.0
    np.testing.assert_allclose(trace_v(sub)[1][-1], 0.5, rtol=1e-12)


def test_v_floor_clips_after_every_update():
    g = one_neuron_graph(IF(theta=1.0), weight=[[-0.7]])
    res = run(g, [0, 1000, 2000], v_min=-1.0)
    np.testing.assert_allclose(trace_v(res)[1], [-0.7, -1.0, -1.0])
    res_none = run(g, [0, 1000, 2000])
    np.testing.assert_allclose(trace_v(res_none)[1], [-0.7, -1.4, -2.1])


def test_refractory_period_discards_input():
    g = one_neuron_graph(IF(theta=1.0), weight=[[1.5]])
    res = run(g, [0, 2000, 4000, 6000, 6500], refractory_us=5000)
    # spike at 0; inputs at 2 and 4 ms discarded; 6 ms: v = 1.5 -> spike; 6.5 ms: refractory
    np.testing.assert_array_equal(spike_times_us(res)[0], [0, 6000])
    no_refr = run(g, [0, 2000, 4000, 6000, 6500])
    assert spike_times_us(no_refr)[0].size == 5


def test_sinabs_multispike_and_speck_one_spike_per_update():
    # sinabs: floor(v/theta) spikes, subtract; speck: one spike per update, residual waits
    g = one_neuron_graph(IF(theta=1.0), weight=[[2.5]])
    sin = run(g, [0], profile="sinabs")
    t, count = spike_times_us(sin)
    np.testing.assert_array_equal(count, [2])
    np.testing.assert_allclose(trace_v(sin)[1], [0.5])
    g2 = one_neuron_graph(IF(theta=1.0), n_in=2, weight=[[2.5, 0.0]], n_out=1)
    spk = run(g2, [0, 1000], [0, 1], profile="speck")
    t, count = spike_times_us(spk)
    np.testing.assert_array_equal(count, [1, 1])  # the second (zero-weight) input releases one more
    np.testing.assert_allclose(trace_v(spk)[1], [1.5, 0.5])


def test_sinabs_floor_is_minus_threshold_and_r_is_ignored():
    g = one_neuron_graph(IF(theta=2.0, r=7.0), weight=[[-1.5]])
    res = run(g, [0, 1000], profile="sinabs")
    np.testing.assert_allclose(trace_v(res)[1], [-1.5, -2.0])


# ------------------------------------------------------------------------------------------
# LIF
# ------------------------------------------------------------------------------------------


def test_lif_leaks_between_events():
    # strict NIR: spike adds R*w/tau, v decays as exp(-dt/tau) towards v_leak
    tau, r, w, v_leak = 0.02, 1.5, 0.004, 0.1
    times = [0, 10_000, 25_000, 26_000]
    res = run(one_neuron_graph(LIF(tau, theta=10.0, r=r, v_leak=v_leak), weight=[[w]]), times)
    t, v = trace_v(res)
    expected, state, last = [], 0.0, 0.0
    for tk in np.asarray(times) * 1e-6:
        state = v_leak + (state - v_leak) * math.exp(-(tk - last) / tau) + r * w / tau
        last = tk
        expected.append(state)
    np.testing.assert_allclose(v, expected, rtol=1e-12)


def test_lif_bias_fires_periodically_at_analytic_times():
    tau, r, b, theta = 0.01, 1.0, 2.0, 1.0  # v_inf = R*b = 2 > theta
    res = run(one_neuron_graph(LIF(tau, theta, r), weight=[[0.0]], bias=[b]), [0], t_end_us=50_000)
    t, _ = spike_times_us(res)
    period = tau * math.log((r * b) / (r * b - theta))
    expected = [k * period for k in range(1, 50) if k * period <= 0.05]
    np.testing.assert_allclose(t * 1e-6, expected, atol=1e-9)


def test_lif_below_threshold_steady_state_never_fires():
    res = run(one_neuron_graph(LIF(0.01, theta=1.0), weight=[[0.0]], bias=[0.9]), [0], t_end_us=1_000_000)
    assert spike_times_us(res)[0].size == 0


# ------------------------------------------------------------------------------------------
# CubaLIF
# ------------------------------------------------------------------------------------------


def cuba_rk4_spikes(i0, v0, tau_syn, tau_mem, r, v_leak, theta, v_reset, t_max, dt=2e-7):
    """Spike times of a CubaLIF left alone from (I0, v0): RK4 on the ODE (independent of the
    closed form), reset to v_reset at each crossing (located by linear interpolation)."""
    def f(state):
        i, v = state
        return np.array([-i / tau_syn, (v_leak - v + r * i) / tau_mem])

    def step(state, h):
        k1 = f(state)
        k2 = f(state + 0.5 * h * k1)
        k3 = f(state + 0.5 * h * k2)
        k4 = f(state + h * k3)
        return state + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)

    state = np.array([i0, v0])
    t = 0.0
    spikes = []
    while t < t_max:
        new = step(state, dt)
        if new[1] >= theta:
            lo, hi = 0.0, dt  # bisect the sub-step at which v reaches theta, then reset there
            for _ in range(60):
                mid = 0.5 * (lo + hi)
                if step(state, mid)[1] >= theta:
                    hi = mid
                else:
                    lo = mid
            spikes.append(t + hi)
            state = step(state, hi)
            state[1] = v_reset
            t += hi
            continue
        state, t = new, t + dt
    return spikes


@pytest.mark.parametrize("tau_syn,tau_mem", [(0.005, 0.01), (0.01, 0.01), (0.02, 0.004)])
def test_cubalif_crosses_threshold_after_its_last_input(tau_syn, tau_mem):
    r, w_in, theta, w = 1.0, 1.0, 0.5, 0.02
    node = nir.CubaLIF(tau_syn=np.array([tau_syn]), tau_mem=np.array([tau_mem]), r=np.array([r]),
                       v_leak=np.array([0.0]), v_threshold=np.array([theta]), v_reset=np.array([0.0]),
                       w_in=np.array([w_in]))
    # one input spike at t=0: I jumps by w_in*w/tau_syn, v starts at 0 and rises after the input;
    # the decaying current drives it over threshold (more than once for the larger currents)
    i0 = w_in * w / tau_syn
    expected = cuba_rk4_spikes(i0, 0.0, tau_syn, tau_mem, r, 0.0, theta, 0.0, 0.06)
    assert len(expected) >= 1 and expected[0] > 0
    res = run(one_neuron_graph(node, weight=[[w]]), [0], t_end_us=60_000)
    t, _ = spike_times_us(res)
    np.testing.assert_allclose(t * 1e-6, expected, rtol=0, atol=3e-7)
    assert res.crossings == len(expected)


def test_cubalif_subthreshold_input_never_fires():
    node = nir.CubaLIF(tau_syn=np.array([0.005]), tau_mem=np.array([0.01]), r=np.array([1.0]),
                       v_leak=np.array([0.0]), v_threshold=np.array([0.5]), v_reset=np.array([0.0]),
                       w_in=np.array([1.0]))
    res = run(one_neuron_graph(node, weight=[[0.0005]]), [0], t_end_us=200_000)
    assert spike_times_us(res)[0].size == 0


def test_cubalif_state_between_events_matches_ode():
    tau_syn, tau_mem, r, v_leak, w = 0.004, 0.012, 2.0, 0.05, 0.001
    node = nir.CubaLIF(tau_syn=np.array([tau_syn]), tau_mem=np.array([tau_mem]), r=np.array([r]),
                       v_leak=np.array([v_leak]), v_threshold=np.array([100.0]), v_reset=np.array([0.0]),
                       w_in=np.array([1.0]))
    times = [0, 3000, 9000]
    res = run(one_neuron_graph(node, weight=[[w]]), times)
    _, v = trace_v(res)
    i_syn = res.traces["i_syn"]
    # RK4 from event to event
    state = np.array([0.0, 0.0])
    last = 0.0
    for k, tk in enumerate(np.asarray(times) * 1e-6):
        steps = int(round((tk - last) / 1e-6))
        for _ in range(steps):
            def f(s):
                return np.array([-s[0] / tau_syn, (v_leak - s[1] + r * s[0]) / tau_mem])
            k1 = f(state); k2 = f(state + 5e-7 * k1); k3 = f(state + 5e-7 * k2); k4 = f(state + 1e-6 * k3)
            state = state + 1e-6 / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        state[0] += w / tau_syn
        last = tk
        np.testing.assert_allclose([i_syn[k], v[k]], state, rtol=1e-8, atol=1e-12)


# ------------------------------------------------------------------------------------------
# profiles: sinabs LIF in steps
# ------------------------------------------------------------------------------------------


def test_sinabs_lif_tau_in_steps_decays_per_step():
    tau_steps, dt_us = 10.0, 1000
    res = run(one_neuron_graph(LIF(tau_steps, theta=10.0), weight=[[1.0]]), [0, 5 * dt_us], profile="sinabs",
              dt_us=dt_us)
    _, v = trace_v(res)
    # sinabs: v <- exp(-1/tau) v + w each step: after 5 steps 1*exp(-5/tau) + 1
    np.testing.assert_allclose(v, [1.0, math.exp(-5 / tau_steps) + 1.0], rtol=1e-12)

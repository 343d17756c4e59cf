"""How far evsim's floating-point lava-dl profile is from slayer's fixed-point CUBA neuron.

slayer (lava-nc/lava-dl d825ac5) computes the CUBA dynamics in integers
(src/lava/lib/dl/slayer/neuron/dynamics/leaky_integrator.py ``_li_dynamics_fwd``, l.210-231)::

    state = int(4096·state);  decay_int = 4096 − round(4096·decay)
    y ← right_shift_to_zero(y·decay_int, 12) + int(4096·x)      (int(): truncation toward zero)
    spike = y ≥ 4096·(θ + 0.01/4096);  y ← 0 on a spike          (voltage only)

for the current (input x = the synapse output) and the voltage (input = the current, y/4096).
This script writes that out in numpy and runs evsim's clock mode (profile lava-dl, float64) on
random networks shaped like the NIR paper's Braille RNN (12 inputs → 40 recurrent CUBA → 7 CUBA,
256 steps of 100 µs, parameters as lava_to_nir.py writes them), and reports how many spikes and
output counts differ.

Usage::

    python benchmarks/lavadl_fixed_point.py --networks 20 --seed 0
"""

from __future__ import annotations

import argparse
import sys

import nir
import numpy as np

import evsim
from evsim.input.events import make_events
from evsim.sim.clock import ClockSimulator

DT = 1e-4
STEPS = 256
EPS = 0.01 / 4096


def rstz(x: np.ndarray, bits: int) -> np.ndarray:
    """lava/lib/dl/slayer/utils/int_utils.py right_shift_to_zero."""
    sign = np.where(x > 0, 1, -1)
    return sign * ((sign * x) >> bits)


class FloatCuba:
    """The same update without quantization (``--no-quantization``: checks that the harness and
    evsim agree exactly, so that the differences reported are the fixed point's)."""

    def __init__(self, n, cur_decay, vol_decay, theta):
        self.u, self.v = np.zeros(n), np.zeros(n)
        self.cd, self.vd, self.th = cur_decay, vol_decay, theta + EPS

    def step(self, x):
        self.u = (1.0 - self.cd) * self.u + x
        self.v = (1.0 - self.vd) * self.v + self.u
        s = self.v >= self.th
        self.v = np.where(s, 0.0, self.v)
        return s.astype(float)


class FixedCuba:
    def __init__(self, n, cur_decay, vol_decay, theta):
        self.u = np.zeros(n, dtype=np.int64)
        self.v = np.zeros(n, dtype=np.int64)
        self.du = 4096 - int(np.round(4096 * cur_decay))
        self.dv = 4096 - int(np.round(4096 * vol_decay))
        self.th = 4096 * (theta + EPS)

    def step(self, x):
        self.u = rstz(self.u * self.du, 12) + np.trunc(4096 * x).astype(np.int64)
        self.v = rstz(self.v * self.dv, 12) + self.u
        s = self.v >= self.th
        self.v = np.where(s, 0, self.v)
        return s.astype(float)


def network(rng):
    cd1, vd1 = np.round(4096 * rng.uniform(0.1, 0.4)) / 4096, np.round(4096 * rng.uniform(0.05, 0.2)) / 4096
    cd2, vd2 = np.round(4096 * rng.uniform(0.1, 0.5)) / 4096, np.round(4096 * rng.uniform(0.1, 0.4)) / 4096
    w1 = rng.normal(0.4, 1.0, size=(40, 12))
    w_rec = rng.normal(0.0, 0.4, size=(40, 40))
    w2 = rng.normal(0.0, 0.5, size=(7, 40))
    return cd1, vd1, cd2, vd2, w1, w_rec, w2


def cuba(n, cd, vd):  # lava_to_nir.py read_cuba_lif
    tau_syn, tau_mem = DT / cd, DT / vd
    return nir.CubaLIF(tau_syn=np.full(n, tau_syn), tau_mem=np.full(n, tau_mem), r=np.full(n, tau_mem / DT),
                       w_in=np.full(n, tau_syn / DT), v_leak=np.zeros(n), v_threshold=np.ones(n), v_reset=np.zeros(n))


def graph(net):
    cd1, vd1, cd2, vd2, w1, w_rec, w2 = net
    inner = nir.NIRGraph(nodes={"input": nir.Input(input_type=np.array([40])), "lif": cuba(40, cd1, vd1),
                                "w_rec": nir.Linear(weight=w_rec), "output": nir.Output(output_type=np.array([40]))},
                         edges=[("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")],
                         type_check=False)
    return nir.NIRGraph(nodes={"input": nir.Input(input_type=np.array([12])), "fc1": nir.Linear(weight=w1),
                               "lif1": inner, "fc2": nir.Linear(weight=w2), "lif2": cuba(7, cd2, vd2),
                               "output": nir.Output(output_type=np.array([7]))},
                        edges=[("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"), ("lif2", "output")],
                        type_check=False)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--networks", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-quantization", action="store_true", help="the numpy side in floating point (harness check)")
    a = ap.parse_args(argv)
    rng = np.random.default_rng(a.seed)
    diff_entries = total_entries = diff_counts = total_counts = diff_pred = 0
    out_spikes = 0
    neuron = FloatCuba if a.no_quantization else FixedCuba
    for _ in range(a.networks):
        net = network(rng)
        cd1, vd1, cd2, vd2, w1, w_rec, w2 = net
        frames = (rng.random((STEPS, 12)) < 0.15).astype(float)
        k, i = np.nonzero(frames)
        events = make_events(t=(k * 100).astype(np.int64), x=i.astype(np.int64))
        model = evsim.load_model(graph(net), profile="lava-dl", precision="float64")
        res = ClockSimulator(model, bin_us=100, time_origin="zero", duration_us=STEPS * 100, record_spikes=True).run(events)
        float_out = np.zeros((STEPS, 7))
        s = res.spikes[res.spikes["node"] == res.node_names.index("lif2")]
        np.add.at(float_out, (np.round(s["t_us"] / 100).astype(int) - 1, s["neuron"]), s["count"])
        l1, l2 = neuron(40, cd1, vd1, 1.0), neuron(7, cd2, vd2, 1.0)
        fixed_out = np.zeros((STEPS, 7))
        s1 = np.zeros(40)
        for t in range(STEPS):
            s1 = l1.step(w1 @ frames[t] + w_rec @ s1)
            fixed_out[t] = l2.step(w2 @ s1)
        out_spikes += fixed_out.sum()
        diff_entries += int(np.count_nonzero(float_out != fixed_out))
        total_entries += float_out.size
        fc, xc = float_out.sum(0), fixed_out.sum(0)
        diff_counts += int(np.count_nonzero(fc != xc))
        total_counts += fc.size
        diff_pred += int(np.argmax(fc) != np.argmax(xc))
    kind = "float" if a.no_quantization else "fixed point"
    print(f"networks {a.networks} (seed {a.seed}), 256 steps each: output spikes ({kind}) {int(out_spikes)}; "
          f"(step, neuron) entries differing {diff_entries}/{total_entries} ({100 * diff_entries / total_entries:.2f} %); "
          f"output counts differing {diff_counts}/{total_counts}; argmax differing {diff_pred}/{a.networks}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

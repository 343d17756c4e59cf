"""The NIR paper's LIF example (paper/01_lif of github.com/neuromorphs/NIR) under the rockpool and
spyx profiles, against the frameworks' own spike steps in the paper's CSVs.

Usage::

    python benchmarks/exporter_lif_check.py --paper-dir DIR --input $EVSIM_SHARED_DATA/nir/lif_input.npy

DIR holds lif_rockpool.nir, lif_norse.nir and the CSVs (lif_rockpool.csv, lif_spyx.csv: one row per
0.1 ms step, the third column the spike). The input is the notebooks' d0 as events (one event at
step 10·k when d0[k] = 1, 100 µs steps, time 0 = step 0).

* rockpool: lif_rockpool.nir as exported (LIFNeuronTorch, r = τ·exp(−dt/τ)/dt: evsim reads dt back),
  clock mode at 100 µs; Rockpool's spikes (lif_rockpool.csv) are expected at the same steps.
* spyx: the paper ran lif_norse.nir through spyx.nir.from_nir(dt=1e-4) at the paper-era commit
  97ff1f9, which multiplied the weight into a LIF by dt/τ (spyx/nir.py _nir_node_to_spyx_params);
  the script applies that scale to the graph's weight, runs the spyx profile at --dt-us 100 and
  expects evsim's crossing steps one step before Spyx's emitted spikes (lif_spyx.csv).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

import evsim
from evsim.input.events import make_events
from evsim.model.graph import read_nir
from evsim.sim.clock import ClockSimulator

STEP_US = 100
N_STEPS = 1000


def csv_spike_steps(path: Path) -> list[int]:
    with open(path) as f:
        return [k for k, row in enumerate(csv.reader(f)) if row and float(row[2]) != 0.0]


def clock_steps(model, events, node: str) -> list[int]:
    result = ClockSimulator(model, bin_us=STEP_US, time_origin="zero", duration_us=N_STEPS * STEP_US,
                            record_spikes=True).run(events)
    s = result.spikes[result.spikes["node"] == result.node_names.index(node)]
    return (np.round(s["t_us"] / STEP_US).astype(int) - 1).tolist()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--paper-dir", required=True, type=Path)
    ap.add_argument("--input", required=True, type=Path)
    a = ap.parse_args(argv)
    raw = np.load(a.input)
    events = make_events(t=raw["t"], x=raw["x"])
    ok = True

    model = evsim.load_model(str(a.paper_dir / "lif_rockpool.nir"), profile="rockpool", precision="float64")
    got = clock_steps(model, events, "1_LIFNeuronTorch")
    want = csv_spike_steps(a.paper_dir / "lif_rockpool.csv")
    print(f"rockpool: dt read from the file {model.dt_s * 1e6:.6f} us; evsim steps {got}; Rockpool (csv) {want}; "
          f"{'equal' if got == want else 'DIFFERENT'}")
    ok &= got == want

    g = read_nir(str(a.paper_dir / "lif_norse.nir"))
    lif = g.nodes["1"]
    w_scale = 1e-4 / float(np.asarray(lif.tau).ravel()[0])  # spyx 97ff1f9: weight · dt/τ
    g.nodes["0"].weight = np.asarray(g.nodes["0"].weight, dtype=np.float64) * w_scale
    model = evsim.load_model(g, profile="spyx", dt_us=STEP_US, precision="float64")
    got = clock_steps(model, events, "1")
    want = csv_spike_steps(a.paper_dir / "lif_spyx.csv")
    shifted = [k + 1 for k in got]
    print(f"spyx: evsim crossing steps {got}; + 1 step (Spyx emits the previous state's spike) {shifted}; "
          f"Spyx (csv) {want}; {'equal' if shifted == want else 'DIFFERENT'}")
    ok &= shifted == want
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""The limit of this core: a micro-benchmark of the pure synaptic loop (no engine around it).

One command::

    taskset -c 1 python benchmarks/bench_synloop.py [--repeats 7] [--json FILE]

What the event engine does per SynOp, stripped of everything else: for a list of *runs*
(first target neuron, first weight), add ``scaled × weight`` to ``run_len`` contiguous float32
membrane values, and flag whether any of them reached threshold (the fused pass of
``evsim.sim.engine._deliver_uniform``; the flag is never true here, so no spike work). The runs are
random positions in a state vector and weight table of realistic size (a 16×16×16 layer, a
128×128×64 layer), so the loads miss L1 about as often as in a network. Three variants per run
length:

- ``dynamic``: the trip count is a run-time value (the engine's loop; LLVM vectorises it with
  256-bit vectors, interleaved, and finishes the remainder with scalar code);
- ``blocked``: the run is cut into fixed blocks of 8 or 16 lanes with a compile-time trip count.
  The idea was one or two vector operations per block and no remainder loop, but numba/LLVM do
  not vectorise these blocks: measured 2–6× slower than ``dynamic`` (benchmarks/README.md), so the
  engine does not use them;
- ``stream``: one long contiguous loop (L = whole vector): the arithmetic peak, no per-run cost.

SynOps/s = run_len × runs / time (median of repeats). The figures are the ceiling for the
engine's delivery on this core: the engine adds per-spike work (FIFO, projection lookup, the
offset tables, the threshold test) on top.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from numba import njit

sys.path.insert(0, str(Path(__file__).resolve().parent))


@njit(cache=True, fastmath={"nnan", "nsz"})
def loop_dynamic(v, w, runs, run_len, scaled, theta, reps):
    hits = 0
    for _ in range(reps):
        for r in range(runs.shape[0]):
            g0 = runs[r, 0]
            w0 = runs[r, 1]
            vv = v[g0:g0 + run_len]
            ww = w[w0:w0 + run_len]
            hit = False
            for co in range(run_len):
                x = max(vv[co] + scaled * ww[co], np.float32(-1e30))
                vv[co] = x
                hit |= x >= theta
            hits += hit
    return hits


@njit(cache=True, fastmath={"nnan", "nsz"}, inline="always")
def _block16(vv, ww, b, scaled, theta):
    vb = vv[b:b + 16]
    wb = ww[b:b + 16]
    hit = False
    for co in range(16):
        x = max(vb[co] + scaled * wb[co], np.float32(-1e30))
        vb[co] = x
        hit |= x >= theta
    return hit


@njit(cache=True, fastmath={"nnan", "nsz"}, inline="always")
def _block8(vv, ww, b, scaled, theta):
    vb = vv[b:b + 8]
    wb = ww[b:b + 8]
    hit = False
    for co in range(8):
        x = max(vb[co] + scaled * wb[co], np.float32(-1e30))
        vb[co] = x
        hit |= x >= theta
    return hit


@njit(cache=True, fastmath={"nnan", "nsz"})
def loop_blocked(v, w, runs, run_len, scaled, theta, reps):
    hits = 0
    for _ in range(reps):
        for r in range(runs.shape[0]):
            g0 = runs[r, 0]
            w0 = runs[r, 1]
            vv = v[g0:g0 + run_len]
            ww = w[w0:w0 + run_len]
            hit = False
            b = 0
            while b + 16 <= run_len:
                hit |= _block16(vv, ww, b, scaled, theta)
                b += 16
            if b + 8 <= run_len:
                hit |= _block8(vv, ww, b, scaled, theta)
                b += 8
            for co in range(b, run_len):
                x = max(vv[co] + scaled * ww[co], np.float32(-1e30))
                vv[co] = x
                hit |= x >= theta
            hits += hit
    return hits


def bench(fn, v, w, runs, run_len, reps, repeats):
    scaled = np.float32(1e-7)
    theta = np.float32(1e30)
    fn(v, w, runs[:10], run_len, scaled, theta, 1)  # compile / warm
    times = []
    for _ in range(repeats):
        t0 = time.process_time()  # CPU time: the machine is shared, wall time counts other jobs
        fn(v, w, runs, run_len, scaled, theta, reps)
        times.append(time.process_time() - t0)
    t = float(np.median(times))
    return run_len * runs.shape[0] * reps / t, t / (runs.shape[0] * reps) * 1e9


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    from bench_nmnist import machine

    rng = np.random.default_rng(0)
    rows = []
    for label, n_state, kernel_offsets in (("16x16x16 layer", 16 * 16 * 16, 9), ("128x128x64 layer", 128 * 128 * 64, 9)):
        for run_len in (8, 16, 24, 48, 64, 256, 768):
            n_w = kernel_offsets * 64 * run_len  # 64 input channels
            v = np.zeros(n_state + 256, dtype=np.float32)
            w = rng.standard_normal(n_w + 256).astype(np.float32)
            n_runs = 200_000
            runs = np.empty((n_runs, 2), dtype=np.int64)
            runs[:, 0] = rng.integers(0, n_state // run_len, n_runs) * run_len
            runs[:, 1] = rng.integers(0, n_w // run_len, n_runs) * run_len
            reps = max(1, 2_000_000 // (n_runs * run_len // 16))
            for name, fn in (("dynamic", loop_dynamic), ("blocked", loop_blocked)):
                rate, ns_run = bench(fn, v, w, runs, run_len, reps, args.repeats)
                rows.append({"state": label, "run_len": run_len, "variant": name, "synops_per_s": rate, "ns_per_run": ns_run})
        # stream: one run covering the whole state
        v = np.zeros(n_state, dtype=np.float32)
        w = rng.standard_normal(n_state).astype(np.float32)
        runs = np.zeros((1, 2), dtype=np.int64)
        reps = max(1, 200_000_000 // n_state)
        rate, ns_run = bench(loop_dynamic, v, w, runs, n_state, reps, args.repeats)
        rows.append({"state": label, "run_len": n_state, "variant": "stream", "synops_per_s": rate, "ns_per_run": ns_run})

    info = machine()
    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    print(f"machine: {info}; affinity {affinity}; load {os.getloadavg()}")
    print(f"{'state':>18} {'run_len':>8} {'variant':>8} {'SynOps/s':>10} {'ns/run':>8}")
    for r in rows:
        print(f"{r['state']:>18} {r['run_len']:>8} {r['variant']:>8} {r['synops_per_s']:>10.3g} {r['ns_per_run']:>8.2f}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"machine": info, "load": os.getloadavg(), "affinity": affinity,
                                               "command": "python benchmarks/bench_synloop.py " + " ".join(argv or sys.argv[1:]),
                                               "repeats": args.repeats, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""How far the event engine is from a minimal loop doing the same work on the bundled model.

One command::

    python benchmarks/bench_minimal_loop.py [--data $DATA] [--per-class 20] [--repeats 5] [--json FILE]

The engine is general: any population kind, multi-operator projections, delays, a heap,
records, a cutoff, a budget, buffers that grow. This script writes the N-MNIST cascade of the
bundled model (profile speck) as the smallest loop that gives the same result, specialised to
what this model is: IF populations with one gain of 1, one threshold, reset by subtraction and a
floor; single-operator projections; the runs of every source element tabulated once
(``evsim.kernels.fanout.op_runs`` evaluated ahead, index maps folded in); float32; a FIFO of two
integer arrays; no budget, records, cutoff or growth. The threshold scan is the engine's
(a bit mask per block of 16, lowest set bit first).

It first checks that the minimal loop reproduces the engine exactly (SynOps, spikes per node,
output counts on every recording), then times both on the same recordings in one process,
alternating (``Simulator.run`` for the engine, the minimal loop's call for the other), CPU time,
pinned to one core; median of ``--repeats``. The ratio is the engine's overhead for its
generality on this model; the minimal loop's time is what a specialised path could reach with
this loop structure.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from numba import njit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine, nmnist_folder  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
MODEL = REPO / "evsim" / "bundled" / "nmnist_cnn" / "model.nir"

from evsim.kernels.bits import at_level_mask, lowest_set_bit  # noqa: E402
from evsim.kernels.fanout import new_runs_buffer, op_runs  # noqa: E402


@njit(cache=True)
def _runs_of(m, op, e, runs):
    return op_runs(m, op, e, runs)


def source_tables(m):
    """Per projection, the runs of every source element (map folded in) as CSR arrays:
    ``ptr[proj_base[p] + j] … ptr[proj_base[p] + j + 1]`` rows of ``table`` (target neuron in the
    whole state, first weight, sub-runs); ``run_len[p]``."""
    runs = new_runs_buffer(m.op_geom)
    n_proj = m.proj_src.shape[0]
    proj_base = np.zeros(n_proj, np.int64)
    run_len = np.ones(n_proj, np.int64)
    ptr, rows = [0], []
    for p in range(n_proj):
        if m.proj_n_ops[p] != 1 or m.op_scale_base[m.proj_op_start[p]] >= 0:
            raise SystemExit("the minimal loop covers single-operator projections without a scale only")
        op, src, dst = m.proj_op_start[p], m.proj_src[p], m.proj_dst[p]
        proj_base[p] = len(ptr) - 1
        for j in range(int(m.pop_size[src])):
            e = j if m.op_map_base[op] < 0 else int(m.maps[m.op_map_base[op] + j])
            if e >= 0:
                n_runs, _, run_len[p] = _runs_of(m, op, e, runs)
                rows += [(m.pop_offset[dst] + runs[r, 0], runs[r, 1], runs[r, 2]) for r in range(n_runs)]
            ptr.append(len(rows))
        ptr.append(len(rows))
    return proj_base, run_len, np.array(ptr, np.int64), np.array(rows, np.int64).reshape(-1, 3)


@njit(cache=True, _nrt=False, fastmath={"nnan", "nsz"})
def minimal_cascades(ev_index, pop_proj_ptr, pop_proj, proj_dst, proj_base, run_len, ptr, table, weights, v,
                     pop_offset, level, theta, v_min, fifo_pop, fifo_j, out_counts, spikes, readout_pop):
    """The static event loop of the bundled model, nothing else. Returns the SynOps."""
    synops = 0
    for k in range(ev_index.shape[0]):
        fifo_pop[0] = 0
        fifo_j[0] = ev_index[k]
        head, tail = 0, 1
        spikes[0] += 1
        while head < tail:
            src, j = fifo_pop[head], fifo_j[head]
            head += 1
            for q in range(pop_proj_ptr[src], pop_proj_ptr[src + 1]):
                p = pop_proj[q]
                dst = proj_dst[p]
                rl = run_len[p]
                at, th, lo, off = level[dst], theta[dst], v_min[dst], pop_offset[dst]
                row = proj_base[p] + j
                for r in range(ptr[row], ptr[row + 1]):
                    g0, w0, n_sub = table[r, 0], table[r, 1], table[r, 2]
                    length = n_sub * rl
                    synops += length
                    vv = v[g0:g0 + length]
                    ww = weights[w0:w0 + length]
                    hit = False
                    for co in range(length):
                        x = max(vv[co] + ww[co], lo)
                        vv[co] = x
                        hit |= x >= at
                    if not hit:
                        continue
                    for sb in range(n_sub - 1, -1, -1):  # ascending kernel column, as the engine
                        for b0 in range(sb * rl, (sb + 1) * rl, 16):
                            vs = vv[b0:min(b0 + 16, (sb + 1) * rl)]
                            mask = at_level_mask(vs, at)
                            while mask != 0:
                                co = lowest_set_bit(mask)
                                mask &= mask - 1
                                vs[co] = max(vs[co] - th, lo)
                                fifo_pop[tail] = dst
                                fifo_j[tail] = g0 - off + b0 + co
                                tail += 1
                                spikes[dst] += 1
                                if dst == readout_pop:
                                    out_counts[g0 - off + b0 + co] += 1
    return synops


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=nmnist_folder())
    parser.add_argument("--per-class", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--core", type=int, default=None, help="CPU core to pin to (default: the last one)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    os.sched_setaffinity(0, {args.core if args.core is not None else max(os.sched_getaffinity(0))})

    import evsim
    from evsim.input.events import input_indices
    from evsim.kernels.abi import F_FLOOR, F_MULTI, F_SUBTRACT, F_UNIFORM, P_GAIN, P_THRESHOLD

    model = evsim.load_model(MODEL, profile="speck")
    m = model.arrays
    for pop in range(1, m.pop_kind.shape[0]):
        flags = m.pop_flags[pop]
        if (not flags & F_UNIFORM or not flags & F_SUBTRACT or not flags & F_FLOOR or flags & F_MULTI
                or m.params[m.pop_param_base[pop, P_GAIN]] != 1.0):
            raise SystemExit("the minimal loop covers uniform IF populations with gain 1, subtract reset and a floor")
    proj_base, run_len, ptr, table = source_tables(m)
    level = m.pop_uniform[:, 0].astype(np.float32)
    v_min = m.pop_uniform[:, 1].astype(np.float32)
    theta = np.array([m.params[m.pop_param_base[p, P_THRESHOLD]] for p in range(m.pop_kind.shape[0])], np.float32)

    root = Path(args.data)
    paths = [p for label in sorted(d for d in root.iterdir() if d.is_dir()) for p in sorted(label.iterdir())[:args.per_class]]
    recordings = [evsim.read_recording(p).events for p in paths]
    sim = evsim.Simulator(model)
    indices = [sim._input_map[input_indices(ev, model.input_shape)].astype(np.int64) for ev in recordings]
    v = np.zeros(model.n_neurons, np.float32)
    fifo_pop = np.zeros(1 << 18, np.int64)
    fifo_j = np.zeros(1 << 18, np.int64)
    out_counts = np.zeros(int(m.readout[2]), np.int64)
    spikes = np.zeros(m.pop_kind.shape[0], np.int64)

    def minimal(index):
        v[:] = 0
        out_counts[:] = 0
        spikes[:] = 0
        return minimal_cascades(index, m.pop_proj_ptr, m.pop_proj, m.proj_dst, proj_base, run_len, ptr, table,
                                m.weights, v, m.pop_offset, level, theta, v_min, fifo_pop, fifo_j, out_counts,
                                spikes, int(m.readout[0]))

    for ev, index in zip(recordings, indices):
        result = sim.run(ev)
        synops = minimal(index)
        same = (synops == result.synops and list(spikes) == list(result.spikes_per_node.values())
                and np.array_equal(out_counts, result.output_counts))
        if not same:
            raise SystemExit("the minimal loop does not reproduce the engine: no figure")
    engine_ms, minimal_ms = [], []
    for _ in range(args.repeats):
        t0 = time.process_time()
        for ev in recordings:
            sim.run(ev)
        engine_ms.append((time.process_time() - t0) / len(recordings) * 1e3)
        t0 = time.process_time()
        for index in indices:
            minimal(index)
        minimal_ms.append((time.process_time() - t0) / len(recordings) * 1e3)
    ratios = [e / n for e, n in zip(engine_ms, minimal_ms)]
    out = {"command": "python benchmarks/bench_minimal_loop.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "machine": machine(), "recordings": len(recordings), "identical_results": True,
           "engine_ms": round(statistics.median(engine_ms), 3), "minimal_ms": round(statistics.median(minimal_ms), 3),
           "engine_over_minimal": round(statistics.median(ratios), 3),
           "engine_runs_ms": [round(x, 3) for x in engine_ms], "minimal_runs_ms": [round(x, 3) for x in minimal_ms]}
    print(f"{len(recordings)} recordings, identical results; CPU ms per recording, median of {args.repeats}: "
          f"engine {out['engine_ms']}, minimal loop {out['minimal_ms']}, ratio {out['engine_over_minimal']} "
          f"(per repeat: {[round(r, 2) for r in ratios]})")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

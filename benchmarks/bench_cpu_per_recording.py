"""CPU time per recording of one simulation mode: a before/after check that holds on a shared machine.

One command::

    python benchmarks/bench_cpu_per_recording.py [--mode event|clock] [--profile speck] [--per-class 30]
                                                 [--repeats 3] [--bin-us 1000] [--json FILE]

Model: the bundled N-MNIST CNN. Recordings: the first ``--per-class`` files of every class folder of
``--data`` (sorted names), read beforehand. The process is pinned to one core; the first sample is
run once untimed (numba compiles or loads its cache: that time is printed as ``first_run_cpu_s``);
then every recording is simulated ``--repeats`` times and the figure is the median over repeats of
the **process CPU time** (``time.process_time``) per recording, which other processes on the
machine change much less than the wall time. The SynOps summed over the recordings are printed so
that two versions can be seen to do the same work.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/_machine.py
from _machine import machine, nmnist_folder  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=nmnist_folder(), help="folder <label>/<recording>")
    ap.add_argument("--mode", choices=["event", "clock"], default="event")
    ap.add_argument("--profile", default="speck")
    ap.add_argument("--per-class", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--bin-us", type=float, default=1000.0, help="clock mode: bin width")
    ap.add_argument("--core", type=int, default=None, help="CPU core to pin to (default: the last one)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    os.sched_setaffinity(0, {args.core if args.core is not None else max(os.sched_getaffinity(0))})
    import evsim
    from evsim.input.datasets import read_recording

    root = Path(args.data)
    paths = [p for label in sorted(d for d in root.iterdir() if d.is_dir())
             for p in sorted(label.iterdir())[:args.per_class]]
    events = [read_recording(p).events for p in paths]
    model = evsim.load_model(REPO / "evsim" / "bundled" / "nmnist_cnn" / "model.nir", profile=args.profile)
    if args.mode == "event":
        sim = evsim.Simulator(model)
    else:
        from evsim.sim.clock import ClockSimulator

        sim = ClockSimulator(model, bin_us=args.bin_us)
    t0 = time.process_time()
    sim.run(events[0])
    first = time.process_time() - t0
    per_recording_ms = []
    synops = 0
    for _ in range(args.repeats):
        t0 = time.process_time()
        synops = sum(sim.run(ev).synops for ev in events)
        per_recording_ms.append((time.process_time() - t0) / len(events) * 1e3)
    result = {"command": "python benchmarks/bench_cpu_per_recording.py " + " ".join(sys.argv[1:]),
              "machine": machine(), "mode": args.mode, "profile": args.profile, "recordings": len(events),
              "first_run_cpu_s": round(first, 2), "cpu_ms_per_recording": round(statistics.median(per_recording_ms), 3),
              "runs_ms": [round(x, 3) for x in per_recording_ms], "synops_total": int(synops)}
    print(f"{args.mode} {args.profile}: {result['cpu_ms_per_recording']} ms CPU per recording (median of "
          f"{args.repeats}; runs {result['runs_ms']}), {len(events)} recordings, SynOps {synops}, "
          f"first run {result['first_run_cpu_s']} s CPU")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()

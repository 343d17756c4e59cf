"""Event-driven speed of the N-MNIST reference CNN on one core.

One command::

    python benchmarks/bench_nmnist.py [--data DATA] [--repeats 5]

DATA defaults to ``$EVSIM_SHARED_DATA/nmnist-train1k`` (``shared/data`` next to the repository when
the variable is unset).

It compiles ``evsim/bundled/nmnist_cnn/model.nir`` (Conv 2→16 5×5 s2 p1, IF, Conv 16→16 3×3 p1, IF,
SumPool 2, Conv 16→8 3×3 p1, IF, SumPool 2, Flatten, Linear 128→256, IF, Linear 256→10, IF;
θ = 1; trained weights), pins the process to one CPU core, runs every recording once to warm up
(numba compilation, caches), then simulates every recording ``--repeats`` times and reports the
median over repeats of each recording's wall time (``Simulator.run``: reset, validation, the
compiled event loop and the result). It also checks float32 against float64 state.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/_machine.py
from _machine import machine, nmnist_folder  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=nmnist_folder(), help="folder <label>/<recording>.bin (default: %(default)s)")
    parser.add_argument("--model", default=str(REPO / "evsim" / "bundled" / "nmnist_cnn" / "model.nir"))
    parser.add_argument("--profile", default="speck")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--limit", type=int, default=None, help="use only the first N recordings")
    parser.add_argument("--core", type=int, default=None, help="CPU core to pin to (default: the last one)")
    parser.add_argument("--json", default=None, help="write the figures to this file")
    args = parser.parse_args(argv)

    import evsim
    from evsim.input.datasets import FolderDataset

    if hasattr(os, "sched_setaffinity"):
        core = args.core if args.core is not None else max(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {core})
    if not Path(args.data).is_dir():
        print(f"data folder {args.data} not found (pass --data)", file=sys.stderr)
        return 2
    dataset = FolderDataset(args.data)
    samples = dataset.samples[: args.limit] if args.limit else dataset.samples
    recordings = [(evsim.read_recording(path).events, label) for path, label in samples]

    model = evsim.load_model(args.model, profile=args.profile)
    sim = evsim.Simulator(model)
    results = [sim.run(ev) for ev, _ in recordings]  # warm-up: compilation and caches
    times = np.zeros((args.repeats, len(recordings)))
    for r in range(args.repeats):
        for i, (ev, _) in enumerate(recordings):
            start = time.perf_counter()
            sim.run(ev)
            times[r, i] = time.perf_counter() - start
    per_recording = np.median(times, axis=0)

    events = np.array([res.events_consumed for res in results])
    synops = np.array([res.synops for res in results])
    spikes = {name: float(np.mean([res.spikes_per_node[name] for res in results])) for name in results[0].spikes_per_node}
    correct = np.mean([res.prediction == label for res, (_, label) in zip(results, recordings)])

    # float32 state and weights against float64
    model64 = evsim.load_model(args.model, profile=args.profile, precision="float64")
    sim64 = evsim.Simulator(model64)
    agree, max_diff = 0, 0.0
    for (ev, _), res in zip(recordings, results):
        res64 = sim64.run(ev)
        agree += res64.prediction == res.prediction
        max_diff = max(max_diff, float(np.max(np.abs(res64.output - res.output))))

    figures = {
        "machine": machine(),
        "command": "python benchmarks/bench_nmnist.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "profile": args.profile,
        "recordings": len(recordings),
        "repeats": args.repeats,
        "ms_per_recording_median": float(np.median(per_recording) * 1e3),
        "ms_per_recording_mean": float(np.mean(per_recording) * 1e3),
        "ms_per_recording_p90": float(np.percentile(per_recording, 90) * 1e3),
        "input_events_per_recording": float(events.mean()),
        "input_events_per_s": float(events.sum() / per_recording.sum()),
        "synops_per_recording": float(synops.mean()),
        "synops_per_s": float(synops.sum() / per_recording.sum()),
        "spikes_per_recording": spikes,
        "accuracy_all_recordings": float(correct),
        "float64_same_prediction": float(agree / len(recordings)),
        "float64_max_output_difference": max_diff,
    }
    print(f"machine: {figures['machine']}")
    print(f"{len(recordings)} recordings, profile {args.profile}, median of {args.repeats} repeats, one core")
    print(f"  ms per recording     median {figures['ms_per_recording_median']:.2f}  mean {figures['ms_per_recording_mean']:.2f}"
          f"  p90 {figures['ms_per_recording_p90']:.2f}")
    print(f"  input events/s       {figures['input_events_per_s']:.3g}  ({figures['input_events_per_recording']:.0f} per recording)")
    print(f"  SynOps/s             {figures['synops_per_s']:.3g}  ({figures['synops_per_recording']:.3g} per recording)")
    print("  spikes per recording " + ", ".join(f"{k} {v:.0f}" for k, v in spikes.items()))
    print(f"  accuracy (all {len(recordings)}, train+test) {correct:.3f}; float64 state: same prediction on "
          f"{figures['float64_same_prediction']:.3f}, max |output difference| {max_diff:g}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Clock-driven mode against sinabs on torch CPU: the same model, the same recordings, 1 ms bins.

One command::

    python benchmarks/bench_clock.py [--data $EVSIM_SHARED_DATA/nmnist-train1k] [--n 200] [--repeats 5]
                                     [--sinabs-python /tmp/sinabs-env/bin/python] [--baseline]
                                     [--json benchmarks/results/bench_clock.json]

Model: the bundled N-MNIST CNN (``evsim/bundled/nmnist_cnn/model.nir``), profile ``sinabs``
(sinabs' IAFSqueeze as ``sinabs.from_nir`` builds it: MultiSpike, v ≥ θ, reset by subtraction,
floor −θ). Recordings: a stratified sample of ``--n`` recordings of ``--data`` (seed 0, the
sampling of ``evsim eval --limit``). Both sides are pinned to the same core.

* evsim: ``ClockSimulator(model, bin_us=1000).run(events)`` per recording (binning, the step loop
  and the Result; events read beforehand), after one warm-up pass (numba compilation);
* sinabs: ``benchmarks/bench_clock_sinabs.py`` in the environment of ``--sinabs-python`` (torch
  and sinabs are never evsim dependencies; make one with ``python3 -m venv /tmp/sinabs-env &&
  /tmp/sinabs-env/bin/pip install torch sinabs nir numpy`` — a CPU build of torch), one torch
  thread, the same bins (written by this script from evsim's binning): building the (T, 2, 34, 34)
  tensor of event counts, resetting the states, the forward pass;
* each figure per recording is the median over ``--repeats``; the table gives the median over
  recordings (and the mean); ``--baseline`` also times the Python step loop the compiled one
  replaced (``ClockSimulator._fast = None``; the same results, checked).

Agreement: per recording, whether the output spike counts are identical and whether the
predictions (evsim's rule, :func:`evsim.sim.result.predict`, on both) are the same.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/_machine.py
from _machine import machine, nmnist_folder  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def time_runs(sim, events: list, repeats: int) -> tuple:
    """(results of the warm-up pass, per-recording median seconds over ``repeats``)."""
    results = [sim.run(ev) for ev in events]
    times = np.zeros((repeats, len(events)))
    for r in range(repeats):
        for i, ev in enumerate(events):
            t = time.perf_counter()
            sim.run(ev)
            times[r, i] = time.perf_counter() - t
    return results, np.median(times, axis=0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=nmnist_folder(), help="folder <label>/<recording>")
    ap.add_argument("--model", default=str(REPO / "evsim" / "bundled" / "nmnist_cnn" / "model.nir"))
    ap.add_argument("--profile", default="sinabs", help="sinabs (MultiSpike, as sinabs.from_nir) or speck")
    ap.add_argument("--n", type=int, default=200, help="recordings (stratified sample)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--bin-us", type=float, default=1000.0)
    ap.add_argument("--core", type=int, default=None, help="CPU core to pin both sides to (default: the last one)")
    ap.add_argument("--sinabs-python", default="/tmp/sinabs-env/bin/python",
                    help="a Python with torch and sinabs ('' to skip the sinabs side)")
    ap.add_argument("--baseline", action="store_true", help="also time the Python step loop")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)

    import evsim
    from evsim.analysis.evaluate import stratified_subset
    from evsim.input.datasets import FolderDataset
    from evsim.input.events import input_indices
    from evsim.sim.clock import ClockSimulator, bin_steps
    from evsim.sim.result import predict

    core = None
    if hasattr(os, "sched_setaffinity"):
        core = args.core if args.core is not None else max(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {core})
    if not Path(args.data).is_dir():
        print(f"data folder {args.data} not found (pass --data)", file=sys.stderr)
        return 2
    dataset = FolderDataset(args.data)
    labels = [label for _, label in dataset.samples]
    chosen = stratified_subset(labels, args.n, seed=0)
    events = [evsim.read_recording(dataset.samples[i][0]).events for i in chosen]

    model = evsim.load_model(args.model, profile=args.profile)
    sim = ClockSimulator(model, bin_us=args.bin_us)
    results, t_evsim = time_runs(sim, events, args.repeats)
    fig = {
        "machine": machine(),
        "command": "python benchmarks/bench_clock.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "model": str(Path(args.model).relative_to(REPO)) if Path(args.model).is_relative_to(REPO) else args.model,
        "profile": args.profile, "recordings": len(events), "repeats": args.repeats, "bin_us": args.bin_us,
        "core": core,
        "evsim_ms_median": float(np.median(t_evsim) * 1e3), "evsim_ms_mean": float(np.mean(t_evsim) * 1e3),
        "steps_per_recording": float(np.mean([r.extra["steps_run"] for r in results])),
        "events_per_recording": float(np.mean([r.events_consumed for r in results])),
        "spikes_per_recording": float(np.mean([sum(v for k, v in r.spikes_per_node.items() if k != "input")
                                              for r in results])),
        "synops_per_recording": float(np.mean([r.synops for r in results])),
        "dense_synops_per_recording": float(np.mean([r.extra["dense_synops"] for r in results])),
    }
    if args.baseline:
        slow = ClockSimulator(model, bin_us=args.bin_us)
        slow._fast = None
        res_slow, t_slow = time_runs(slow, events, args.repeats)
        fig["python_loop_ms_median"] = float(np.median(t_slow) * 1e3)
        fig["python_loop_ms_mean"] = float(np.mean(t_slow) * 1e3)
        fig["python_loop_same_results"] = all(
            a.output.tobytes() == b.output.tobytes() and a.synops == b.synops and a.spikes_per_node == b.spikes_per_node
            for a, b in zip(results, res_slow))

    if args.sinabs_python:
        with tempfile.TemporaryDirectory() as tmp:
            flat, ks, ptr, n_steps = [], [], [0], []
            for ev in events:
                k, n, _ = bin_steps(ev["t"], bin_us=args.bin_us)
                flat.append(input_indices(ev, model.input_shape))
                ks.append(k)
                ptr.append(ptr[-1] + k.size)
                n_steps.append(n)
            frames = Path(tmp) / "frames.npz"
            np.savez(frames, flat=np.concatenate(flat), k=np.concatenate(ks), ptr=np.array(ptr),
                     n_steps=np.array(n_steps), shape=np.array(model.input_shape))
            out = Path(tmp) / "sinabs.npz"
            cmd = [args.sinabs_python, str(REPO / "benchmarks" / "bench_clock_sinabs.py"), args.model, str(frames),
                   str(out), "--repeats", str(args.repeats)] + (["--core", str(core)] if core is not None else [])
            subprocess.run(cmd, check=True)
            z = np.load(out)
            t_sinabs = np.median(z["times"], axis=0)
            counts = z["counts"]
            fig["sinabs_versions"] = {"torch": str(z["torch"]), "sinabs": str(z["sinabs"]), "threads": int(z["threads"])}
        fig["sinabs_ms_median"] = float(np.median(t_sinabs) * 1e3)
        fig["sinabs_ms_mean"] = float(np.mean(t_sinabs) * 1e3)
        fig["speedup_median_of_ratios"] = float(np.median(t_sinabs / t_evsim))
        fig["speedup_ratio_of_medians"] = float(np.median(t_sinabs) / np.median(t_evsim))
        same_counts = [np.array_equal(r.output, c) for r, c in zip(results, counts)]
        same_pred = [r.prediction == predict(c) for r, c in zip(results, counts)]
        fig["same_output_counts"] = float(np.mean(same_counts))
        fig["same_prediction"] = float(np.mean(same_pred))
        fig["max_count_difference"] = float(max(np.max(np.abs(r.output - c)) for r, c in zip(results, counts)))
    fig["machine"]["load_average_at_end"] = os.getloadavg()

    print(f"machine: {fig['machine']}")
    print(f"{len(events)} recordings (stratified), profile {args.profile}, {args.bin_us:g} µs bins, "
          f"median of {args.repeats} repeats, one core")
    print(f"  evsim clock mode      {fig['evsim_ms_median']:8.2f} ms per recording (mean {fig['evsim_ms_mean']:.2f})")
    if args.baseline:
        print(f"  python step loop      {fig['python_loop_ms_median']:8.2f} ms (same results: {fig['python_loop_same_results']})")
    if args.sinabs_python:
        print(f"  sinabs (torch, 1 thr) {fig['sinabs_ms_median']:8.2f} ms per recording (mean {fig['sinabs_ms_mean']:.2f})")
        print(f"  speedup               {fig['speedup_median_of_ratios']:8.1f}x (median of per-recording ratios)")
        print(f"  agreement: identical output counts {fig['same_output_counts']:.1%}, same prediction "
              f"{fig['same_prediction']:.1%}, largest count difference {fig['max_count_difference']:g}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(fig, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

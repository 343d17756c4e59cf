"""How much two cores give the engine itself: one engine pass alone against two at once.

One command::

    python benchmarks/bench_two_engines.py [--data DIR] [--rounds 4] [--profile speck] [--model NIR]
                                           [--json benchmarks/results/bench_two_engines.json]

Loads the bundled N-MNIST CNN (``--model``: another NIR file, e.g. the NIR paper's
``cnn_sinabs.nir``) and every recording of ``--data`` (default
``$EVSIM_SHARED_DATA/nmnist-train1k``) once, then forks two processes, each pinned to its own core
with its own :class:`evsim.Simulator` (warmed up on 50 recordings). Each round runs one engine pass
over all recordings in one process alone (the two processes take turns), then one pass in both at
once. ``throughput_ratio`` = 2 × alone / slower of the two: what two workers could give at best on
this machine with no start-up, no Dask and no records. It separates what the hardware allows
(shared caches, memory, the host's other tenants) from what ``evsim eval --workers 2`` adds
(``bench_eval.py``). No evsim code is timed but ``Simulator.run``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from multiprocessing import get_context
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/_machine.py
from _machine import busy_cpu_s, machine, nmnist_folder  # noqa: E402


def _engine_process(conn, cpu: int, model, events) -> None:
    """Pinned to ``cpu``: a pass over ``events`` per "go" received; (wall, CPU) seconds sent back."""
    import evsim

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})
    sim = evsim.Simulator(model)
    for ev in events[:50]:
        sim.run(ev)  # warm-up
    conn.send("ready")
    while conn.recv() == "go":
        t0, c0 = time.perf_counter(), time.process_time()
        for ev in events:
            sim.run(ev)
        conn.send((time.perf_counter() - t0, time.process_time() - c0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=nmnist_folder())
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--profile", default="speck")
    parser.add_argument("--model", default=None, help="NIR file (default: the bundled N-MNIST CNN)")
    parser.add_argument("--json", default=None, help="write the figures here")
    args = parser.parse_args()

    import evsim
    from evsim.bundled import BUNDLED_MODEL

    if (os.cpu_count() or 1) < 2:
        sys.exit("bench_two_engines: needs 2 cores")
    model = evsim.load_model(args.model or str(BUNDLED_MODEL), profile=args.profile)
    events = [evsim.read_recording(p).events for p, _ in evsim.FolderDataset(args.data).samples]
    report = {"machine": machine(), "n_recordings": len(events), "profile": args.profile,
              "model": Path(args.model).name if args.model else "bundled", "rounds": []}

    ctx = get_context("fork")  # the children inherit the model and the recordings
    pipes, procs = [], []
    for cpu in (0, 1):
        here, there = ctx.Pipe()
        proc = ctx.Process(target=_engine_process, args=(there, cpu, model, events))
        proc.start()
        pipes.append(here)
        procs.append(proc)
    for pipe in pipes:
        pipe.recv()
    try:
        for rnd in range(args.rounds):
            b0 = busy_cpu_s()
            pipes[rnd % 2].send("go")
            alone, alone_cpu = pipes[rnd % 2].recv()
            for pipe in pipes:
                pipe.send("go")
            both, both_cpu = zip(*(pipe.recv() for pipe in pipes))
            others = max(0.0, busy_cpu_s() - b0 - alone_cpu - sum(both_cpu))
            ratio = 2 * alone / max(both)
            report["rounds"].append({"alone_s": alone, "both_s": list(both), "throughput_ratio": ratio,
                                     "others_cpu_s": others})
            print(f"round {rnd}: alone {alone:.2f} s (core {rnd % 2}); both {both[0]:.2f} s and {both[1]:.2f} s; "
                  f"two cores give {ratio:.2f}x (others' CPU {others:.2f} s)", flush=True)
    finally:
        for pipe in pipes:
            pipe.send("stop")
        for proc in procs:
            proc.join()
    report["throughput_ratio_median"] = statistics.median(r["throughput_ratio"] for r in report["rounds"])
    report["alone_s_median"] = statistics.median(r["alone_s"] for r in report["rounds"])
    print(f"median: one pass alone {report['alone_s_median']:.2f} s; two cores give "
          f"{report['throughput_ratio_median']:.2f}x the engine's throughput")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()

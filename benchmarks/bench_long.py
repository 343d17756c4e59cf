"""Long recordings simulated in chunks: time and peak memory for 10^6, 10^7, 10^8 events.

One command::

    python benchmarks/bench_long.py [--sizes 1e6,1e7,1e8] [--repeats 3] [--dir /tmp/evsim-long]
                                    [--chunk-events 1048576] [--json benchmarks/results/bench_long.json]

Recording: a synthetic moving pattern on the bundled model's 34x34 sensor (a vertical bar
sweeping left to right, one pixel per 20 ms; ON events on its leading edge, OFF on its trailing
edge, 10 % uniform noise), one event every 10 us, written as ``.npy`` (EVENT_DTYPE; or ``--format
hdf5``: datasets events/t,x,y,p; or ``evt3``: Prophesee EVT 3.0 written by expelliarmus) in
``--dir`` (never in the repository) by blocks of 2^20 events, each from its own seeded generator:
the 10^6-event file is a prefix of the 10^7 one, itself a prefix of the 10^8 one. Files are kept
between runs and regenerated only when missing or of the wrong size.

Model: the bundled N-MNIST CNN (profile speck, float32), event mode, no cutoff, budget raised to
10^15 (the default per-sample budget, 2*10^7 processed items, would stop such a recording).

Each size runs in its own process (``--child``): compile/load the model, warm up on the first
2^16 events (numba's on-disk cache filled beforehand), then time
``Simulator.run_stream(open_stream(path, chunk_events=...))`` — reading, checking and simulating
— ``--repeats`` times (median; ``--repeats-largest`` for the largest size). Wall and CPU seconds
(the process's own, ``time.process_time``) are both reported: on a shared machine the CPU time is
the figure to compare. The parent reads the child's peak resident memory (``ru_maxrss``
from ``wait4``, which includes the warm-up and the interpreter). For the smallest size the child
also checks that the streamed result equals ``Simulator.run`` of the whole array, bit for bit.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/_machine.py
from _machine import machine  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
MODEL = REPO / "evsim" / "bundled" / "nmnist_cnn" / "model.nir"
BLOCK = 1 << 20
SIDE = 34
DT_US = 10


def block_events(b: int, n: int) -> np.ndarray:
    """Events ``b*BLOCK .. b*BLOCK+n-1`` of the synthetic recording."""
    from evsim.input.events import EVENT_DTYPE

    rng = np.random.default_rng(1000 + b)
    i = np.arange(b * BLOCK, b * BLOCK + n, dtype=np.int64)
    t = i * DT_US
    bar = (t // 20_000) % SIDE
    leading = rng.random(n) < 0.5
    x = np.where(leading, bar + 1, bar - 1) + rng.integers(-1, 2, n)
    noise = rng.random(n) < 0.1
    x = np.where(noise, rng.integers(0, SIDE, n), x) % SIDE
    ev = np.zeros(n, dtype=EVENT_DTYPE)
    ev["t"], ev["x"], ev["y"] = t, x, rng.integers(0, SIDE, n)
    ev["p"] = np.where(noise, rng.integers(0, 2, n), leading)
    return ev


def make_recording(path: Path, n_events: int) -> None:
    """Write the first ``n_events`` of the synthetic recording to ``path`` (.npy, .h5 or .raw EVT3)."""
    if path.suffix == ".h5":
        return _make_hdf5(path, n_events)
    if path.suffix == ".raw":
        return _make_evt3(path, n_events)
    from numpy.lib import format as npf

    from evsim.input.events import EVENT_DTYPE

    if path.exists():
        with open(path, "rb") as fh:
            npf.read_magic(fh)
            shape, _, dtype = npf.read_array_header_1_0(fh)
        if shape == (n_events,) and dtype == EVENT_DTYPE and path.stat().st_size >= n_events * dtype.itemsize:
            return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part")
    with open(tmp, "wb") as fh:
        npf.write_array_header_1_0(fh, {"descr": npf.dtype_to_descr(EVENT_DTYPE), "fortran_order": False,
                                        "shape": (n_events,)})
        for b in range((n_events + BLOCK - 1) // BLOCK):
            fh.write(block_events(b, min(BLOCK, n_events - b * BLOCK)).tobytes())
    tmp.replace(path)


def _make_hdf5(path: Path, n_events: int) -> None:
    import h5py

    if path.exists():
        with h5py.File(path, "r") as f:
            if "events/t" in f and f["events/t"].shape == (n_events,):
                return
    tmp = path.with_suffix(".part")
    with h5py.File(tmp, "w") as f:
        g = f.create_group("events")
        columns = {name: g.create_dataset(name, shape=(n_events,), dtype=dtype, chunks=(1 << 16,))
                   for name, dtype in (("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("p", "u1"))}
        g.attrs["sensor_size"] = [SIDE, SIDE, 2]
        for b in range((n_events + BLOCK - 1) // BLOCK):
            ev = block_events(b, min(BLOCK, n_events - b * BLOCK))
            for name, column in columns.items():
                column[b * BLOCK:b * BLOCK + ev.shape[0]] = ev[name]
    tmp.replace(path)


def _make_evt3(path: Path, n_events: int) -> None:
    """EVT3 written by expelliarmus (the whole array in memory once, here only)."""
    from expelliarmus import Wizard

    marker = path.with_suffix(".n")
    if path.exists() and marker.exists() and marker.read_text() == str(n_events):
        return
    arr = np.zeros(n_events, dtype=[("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("p", "u1")])
    for b in range((n_events + BLOCK - 1) // BLOCK):
        ev = block_events(b, min(BLOCK, n_events - b * BLOCK))
        for name in ("t", "x", "y", "p"):
            arr[name][b * BLOCK:b * BLOCK + ev.shape[0]] = ev[name]
    if path.exists():
        path.unlink()
    Wizard(encoding="evt3").save(str(path), arr)
    marker.write_text(str(n_events))


def child(path: str, repeats: int, chunk_events: int, check_whole: bool) -> dict:
    import evsim
    from evsim.input.stream import open_stream

    model = evsim.load_model(str(MODEL), profile="speck")
    sim = evsim.Simulator(model, budget=10**15)
    sim.run(block_events(0, 1 << 16))  # warm-up: load the compiled engine
    times, cpu = [], []
    result = None
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        result = sim.run_stream(open_stream(path, chunk_events=chunk_events))
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    out = {"seconds": statistics.median(times), "runs_s": times, "cpu_seconds": statistics.median(cpu),
           "events": result.events_total, "consumed": result.events_consumed, "status": result.status,
           "synops": result.synops, "spikes_per_node": result.spikes_per_node, "prediction": result.prediction}
    if check_whole:
        from evsim.input.recordings import read_recording

        whole = sim.run(read_recording(path).events)
        out["identical_to_whole_run"] = bool(
            np.array_equal(whole.output, result.output) and whole.synops == result.synops
            and whole.spikes_per_node == result.spikes_per_node and whole.status == result.status
            and whole.events_consumed == result.events_consumed)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1e6,1e7,1e8")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--repeats-largest", type=int, default=None,
                        help="repeats for the largest size (default: --repeats)")
    parser.add_argument("--dir", default="/tmp/evsim-long")
    parser.add_argument("--chunk-events", type=int, default=1 << 20)
    parser.add_argument("--format", choices=["npy", "hdf5", "evt3"], default="npy",
                        help="file format of the synthetic recording (EVT3 is written by expelliarmus)")
    parser.add_argument("--json", default=None)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--check-whole", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.repeats, args.chunk_events, args.check_whole)))
        return 0
    sizes = [int(float(s)) for s in args.sizes.split(",")]
    figures = {"machine": machine(), "format": args.format, "chunk_events": args.chunk_events,
               "repeats": args.repeats, "sizes": []}
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    for i, n in enumerate(sizes):
        path = Path(args.dir) / f"moving_{n}.{ {'npy': 'npy', 'hdf5': 'h5', 'evt3': 'raw'}[args.format]}"
        t0 = time.perf_counter()
        make_recording(path, n)
        made = time.perf_counter() - t0
        repeats = args.repeats_largest if n == max(sizes) and args.repeats_largest else args.repeats
        cmd = [sys.executable, __file__, "--child", str(path), "--repeats", str(repeats),
               "--chunk-events", str(args.chunk_events)] + (["--check-whole"] if i == 0 else [])
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env)
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        if status != 0:
            raise SystemExit(f"failed: {' '.join(cmd)}")
        row = json.loads(out)
        row.update(n_events=n, repeats=repeats, file=str(path), file_mib=round(path.stat().st_size / 2**20, 1),
                   generate_s=round(made, 1), peak_rss_mib=round(usage.ru_maxrss / 1024, 1),
                   ns_per_event=round(1e9 * row["seconds"] / n, 1),
                   synops_per_s=round(row["synops"] / row["seconds"]))
        figures["sizes"].append(row)
        print(f"{n:>12,d} events  {row['seconds']:8.2f} s (cpu {row['cpu_seconds']:.2f} s)  "
              f"{row['ns_per_event']:7.1f} ns/event  peak RSS {row['peak_rss_mib']:7.1f} MiB  "
              f"synops {row['synops']:,}  status {row['status']}"
              + (f"  identical to whole run: {row['identical_to_whole_run']}" if "identical_to_whole_run" in row
                 else ""), flush=True)
    base = figures["sizes"][0]
    for row in figures["sizes"]:
        row["rss_vs_smallest"] = round(row["peak_rss_mib"] / base["peak_rss_mib"], 3)
        row["time_per_event_vs_smallest"] = round(row["ns_per_event"] / base["ns_per_event"], 3)
        row["cpu_per_event_vs_smallest"] = round((row["cpu_seconds"] / row["n_events"])
                                                 / (base["cpu_seconds"] / base["n_events"]), 3)
    print("machine:", figures["machine"])
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(figures, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Whole-evaluation speed: `evsim eval` against the engine alone, 1 vs 2 workers, a Dask scale-out.

One command::

    python benchmarks/bench_eval.py [--data $EVSIM_SHARED_DATA/nmnist-train1k] [--repeats 3]
                                    [--json benchmarks/results/bench_eval.json] [--wait-quiet 300]
                                    [--model PATH] [--profile speck] [--clock-bin-us US]
                                    [--no-scaleout] [--no-memory]

Model: the bundled N-MNIST CNN (``evsim/bundled/nmnist_cnn/model.nir``; ``--model``: another NIR
file, e.g. the NIR paper's sinabs N-MNIST CNN ``paper/02_cnn/cnn_sinabs.nir`` of
github.com/neuromorphs/NIR, 11 M SynOps per recording, the job issue #11 was measured on), profile
``--profile``, speck by default, no cutoff (anytime analysis on, the default), every recording of ``--data``,
event-driven (with ``--clock-bin-us``: the clock-driven mode with bins of that many µs, engine
``ClockSimulator``). Figures, each the median over ``--repeats`` runs after one warm-up run
(numba's on-disk cache filled):

* ``engine_s``: the simulator's ``run`` over every recording (events read beforehand), in this
  process (``engine_cpu_s``: its CPU time per repeat);
* ``eval_1_worker_s``: ``evsim eval DATA --json ... --csv ...`` as a subprocess, start-up (imports,
  model compilation) included;
* ``eval_2_workers_s``: the same with ``--workers 2`` (a local Dask cluster, start-up included);
* the three alternate within each repeat (engine, 1 worker, 2 workers): this VM's speed drifts by
  10-30 % within minutes, and each ratio is taken between runs of the same repeat
  (``eval_over_engine_pairs``, ``speedup_2_workers_pairs``, and their medians);
* ``scaleout``: a ``dask scheduler`` and two ``dask worker --nthreads 1`` started as separate
  processes on 127.0.0.1, ``evsim eval --scheduler ADDRESS``; its records must equal the 1-worker
  run's (checked, reported as ``records_identical``);
* ``peak_rss_mib``: peak resident memory of the 1-worker eval for a quarter of the recordings and
  for all of them (memory flat in the number of samples);
* ``eval_startup_s``: ``evsim eval --limit 2`` (start-up, two samples, the final document), the
  part of a run that a second worker cannot share: with it, ``amdahl_bound_2_workers`` is the
  speed-up two workers would give if they added no cost at all.

Each run also records its CPU time (user + system of the command and of the worker processes it
waited for, ``*_cpu_s``), the 1-minute load average when it started (``*_load``) and the CPU time
other processes used while it ran (``*_others_cpu_s``, from ``/proc/stat``; the load average lags
by a minute): on a shared machine wall times are only meaningful with the load next to them.
evsim's sources are compiled to bytecode first, as in an installed package (a sandbox with
``PYTHONDONTWRITEBYTECODE`` set would otherwise compile them again in every run).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/_machine.py
from _machine import busy_cpu_s, machine, nmnist_folder, wait_quiet  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
BUNDLED_MODEL = REPO / "evsim" / "bundled" / "nmnist_cnn" / "model.nir"


def env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}


#: the simulation being measured: --model, --profile and --clock-bin-us
JOB = {"model": BUNDLED_MODEL, "profile": "speck", "clock_bin_us": None}


def eval_cmd(data, out: Path, *extra) -> list:
    mode = () if JOB["clock_bin_us"] is None else ("--mode", "clock", "--bin-us", str(JOB["clock_bin_us"]))
    return [sys.executable, "-m", "evsim.cli", "eval", str(JOB["model"]), str(data), "--profile", JOB["profile"], "--quiet",
            "--json", str(out), "--csv", str(out.with_suffix(".csv")), *mode, *extra]


QUIET_WAIT_S = 0.0  # --wait-quiet


def timed(cmd) -> tuple[float, dict]:
    """Wall time of a subprocess, its CPU time (with the processes it waited for), peak RSS (MiB)
    and the load average when it started."""
    quiet = wait_quiet(QUIET_WAIT_S) if QUIET_WAIT_S > 0 else None
    load = os.getloadavg()[0]
    busy0 = busy_cpu_s()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env())
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    others = busy_cpu_s() - busy0 - (usage.ru_utime + usage.ru_stime)
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{err}")
    return wall, {"cpu_s": usage.ru_utime + usage.ru_stime, "load": load, "peak_rss_mib": usage.ru_maxrss / 1024,
                  "others_cpu_s": max(0.0, others), "started_quiet": quiet}


class EngineAlone:
    """The simulator's ``run`` over every recording of ``data`` (events read beforehand), in this
    process: :meth:`once` times one pass. The passes alternate with the eval runs, so that both see
    the same machine (this VM's speed drifts by 10-30 % within minutes)."""

    def __init__(self, data):
        import evsim

        model = evsim.load_model(str(JOB["model"]), profile=JOB["profile"])
        files = evsim.FolderDataset(data).samples
        self.events = [evsim.read_recording(p).events for p, _ in files]
        self.sim = (evsim.Simulator(model) if JOB["clock_bin_us"] is None
                    else evsim.ClockSimulator(model, bin_us=JOB["clock_bin_us"]))
        for ev in self.events[:50]:
            self.sim.run(ev)  # warm-up
        self.times, self.cpus, self.others = [], [], []

    def once(self) -> None:
        if QUIET_WAIT_S > 0:
            wait_quiet(QUIET_WAIT_S)
        t0, c0, b0 = time.perf_counter(), time.process_time(), busy_cpu_s()
        for ev in self.events:
            self.sim.run(ev)
        self.times.append(time.perf_counter() - t0)
        self.cpus.append(time.process_time() - c0)
        self.others.append(max(0.0, busy_cpu_s() - b0 - self.cpus[-1]))
        print(f"engine alone: {self.times[-1]:.2f} s wall, {self.cpus[-1]:.2f} s CPU", flush=True)

    def report(self) -> dict:
        return {"engine_s": statistics.median(self.times), "engine_runs_s": self.times, "engine_cpu_s": self.cpus,
                "engine_others_cpu_s": self.others, "n_recordings": len(self.events)}


def peak_rss(data, out: Path, limit: int | None) -> float:
    """Peak RSS (MiB) of one eval subprocess, read from /usr/bin/time-free wait4 accounting."""
    cmd = eval_cmd(data, out) + (["--limit", str(limit)] if limit else [])
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env())
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}")
    return usage.ru_maxrss / 1024


def scaleout(data, tmp: Path, reference: dict) -> dict:
    dask = shutil.which("dask") or str(Path(sys.executable).with_name("dask"))
    sched_file = tmp / "scheduler.json"
    procs = []
    try:
        procs.append(subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", "0",
                                       "--no-dashboard", "--scheduler-file", str(sched_file)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env()))
        for _ in range(30 * 10):
            if sched_file.exists() and sched_file.stat().st_size:
                break
            time.sleep(0.1)
        address = json.loads(sched_file.read_text())["address"]
        for _ in range(2):
            procs.append(subprocess.Popen([dask, "worker", "--nthreads", "1", "--nworkers", "1", "--host",
                                           "127.0.0.1", "--no-dashboard", "--scheduler-file", str(sched_file)],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env()))
        from distributed import Client

        with Client(address, timeout="60s") as client:
            client.wait_for_workers(2, timeout=120)
        out = tmp / "scaleout.json"
        wall, _ = timed(eval_cmd(data, out, "--scheduler", address))
        doc = json.loads(out.read_text())
        return {"wall_s": wall, "address": address, "records_identical": doc["samples"] == reference["samples"]}
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=nmnist_folder(),
                    help="root/<label>/ folder (default: $EVSIM_SHARED_DATA/nmnist-train1k)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default=None)
    ap.add_argument("--wait-quiet", type=float, default=0.0, metavar="S",
                    help="before each eval run, wait up to S seconds until other processes use < 0.1 core for 3 s "
                         "(a shared machine)")
    ap.add_argument("--model", default=str(BUNDLED_MODEL), help="NIR file (default: the bundled N-MNIST CNN)")
    ap.add_argument("--profile", default="speck", help="the model's profile (default speck)")
    ap.add_argument("--clock-bin-us", type=float, default=None, metavar="US",
                    help="measure the clock-driven mode with bins of US microseconds instead of the event mode")
    ap.add_argument("--no-scaleout", action="store_true", help="leave out the scale-out run")
    ap.add_argument("--no-memory", action="store_true", help="leave out the peak-memory runs")
    args = ap.parse_args()
    global QUIET_WAIT_S
    QUIET_WAIT_S = args.wait_quiet
    model = Path(args.model).resolve()
    if not model.is_file():
        sys.exit(f"bench_eval.py: error: --model {args.model}: no such file")
    JOB.update(model=model, profile=args.profile, clock_bin_us=args.clock_bin_us)
    data = Path(args.data)
    # an installed evsim has its bytecode compiled; with PYTHONDONTWRITEBYTECODE set (as in some
    # sandboxes) every run would compile evsim's sources again (~0.15 s of start-up)
    import compileall

    compileall.compile_dir(str(REPO / "evsim"), quiet=1)
    report = {"machine": machine(), "bytecode_compiled": True,
              "PYTHONDONTWRITEBYTECODE": os.environ.get("PYTHONDONTWRITEBYTECODE", ""), "data": str(data), "model": str(model.relative_to(REPO)) if model.is_relative_to(REPO) else model.name,
              "profile": args.profile, "mode": "event" if args.clock_bin_us is None else "clock",
              "clock_bin_us": args.clock_bin_us, "repeats": args.repeats}
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        engine = EngineAlone(data)
        runs = {}
        kinds = {"eval_1_worker": (), "eval_2_workers": ("--workers", "2"), "eval_startup": ("--limit", "2")}
        outs = {name: tmp / f"{name}.json" for name in kinds}
        # per run of each kind, under the report's names: {name}_runs_s, _cpu_s, _load, _others_cpu_s
        series = {name: {"runs_s": [], "cpu_s": [], "load": [], "others_cpu_s": []} for name in kinds}
        for name, extra in kinds.items():
            timed(eval_cmd(data, outs[name], *extra))  # warm-up
        for _ in range(args.repeats):
            engine.once()  # engine alone, 1 worker, 2 workers, start-up: alternated
            for name, extra in kinds.items():
                wall, info = timed(eval_cmd(data, outs[name], *extra))
                for key, value in zip(series[name], (wall, info["cpu_s"], info["load"], info["others_cpu_s"])):
                    series[name][key].append(value)
                print(f"{name}: {wall:.2f} s wall, {info['cpu_s']:.2f} s CPU (load {info['load']:.2f}; other "
                      f"processes {info['others_cpu_s']:.2f} s CPU meanwhile"
                      f"{'' if info['started_quiet'] is None else '; started quiet' if info['started_quiet'] else '; NOT started quiet'})",
                      flush=True)
        for name in kinds:
            runs[name] = json.loads(outs[name].read_text())
            report[f"{name}_s"] = statistics.median(series[name]["runs_s"])
            report.update({f"{name}_{key}": values for key, values in series[name].items()})
        report.update(engine.report())
        report["records_identical_1_vs_2_workers"] = runs["eval_1_worker"]["samples"] == runs["eval_2_workers"]["samples"]
        report["eval_over_engine"] = report["eval_1_worker_s"] / report["engine_s"]
        # each eval run against the engine-alone pass just before it (the same machine state)
        report["eval_over_engine_pairs"] = [e / a for e, a in zip(report["eval_1_worker_runs_s"], engine.times)]
        report["eval_over_engine_pairs_median"] = statistics.median(report["eval_over_engine_pairs"])
        # the same ratio in CPU time (what a shared machine distorts least)
        report["eval_over_engine_cpu"] = statistics.median(report["eval_1_worker_cpu_s"]) / statistics.median(
            report["engine_cpu_s"])
        report["speedup_2_workers"] = report["eval_1_worker_s"] / report["eval_2_workers_s"]
        report["speedup_2_workers_pairs"] = [a / b for a, b in zip(report["eval_1_worker_runs_s"],
                                                                   report["eval_2_workers_runs_s"])]
        report["speedup_2_workers_pairs_median"] = statistics.median(report["speedup_2_workers_pairs"])
        serial = report["eval_startup_s"]
        report["amdahl_bound_2_workers"] = report["eval_1_worker_s"] / (serial + (report["eval_1_worker_s"] - serial) / 2)
        if not args.no_scaleout:
            print("scale-out (dask scheduler + 2 dask workers) ...", flush=True)
            report["scaleout"] = scaleout(data, tmp, runs["eval_1_worker"])
        n = report["n_recordings"]
        if not args.no_memory:
            report["peak_rss_mib"] = {str(n // 4): peak_rss(data, tmp / "rss_q.json", n // 4),
                                      str(n): peak_rss(data, tmp / "rss_all.json", None)}
    report["machine"]["load_average_at_end"] = os.getloadavg()
    text = json.dumps(report, indent=1)
    print(text)
    print(f"\nengine alone {report['engine_s']:.2f} s; eval 1 worker {report['eval_1_worker_s']:.2f} s = "
          f"{report['eval_over_engine']:.2f}x the engine (target <= 1.25; in CPU time "
          f"{report['eval_over_engine_cpu']:.2f}x; alternated pairs "
          f"{', '.join(f'{r:.2f}' for r in report['eval_over_engine_pairs'])}, median "
          f"{report['eval_over_engine_pairs_median']:.2f}x); eval --workers 2 "
          f"{report['eval_2_workers_s']:.2f} s = {report['speedup_2_workers']:.2f}x one worker (target >= 1.8; "
          f"pairs {', '.join(f'{r:.2f}' for r in report['speedup_2_workers_pairs'])}, median "
          f"{report['speedup_2_workers_pairs_median']:.2f}x; bound with {report['eval_startup_s']:.2f} s of start-up: "
          f"{report['amdahl_bound_2_workers']:.2f}x); "
          + (f"scale-out {report['scaleout']['wall_s']:.2f} s; " if "scaleout" in report else "")
          + f"records identical {report['records_identical_1_vs_2_workers'] and report.get('scaleout', {}).get('records_identical', True)}")
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()

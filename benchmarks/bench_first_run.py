"""The first `evsim run` after installation: what numba compiles, and how long it takes.

One command::

    python benchmarks/bench_first_run.py [--repeats 1] [--json benchmarks/results/bench_first_run.json]
                                         [-- extra `evsim run` arguments]

Each repeat copies the ``evsim`` package to a new temporary folder (so no ``__pycache__``, hence no
numba cache next to the modules, as right after ``pip install``), points ``NUMBA_CACHE_DIR`` to a
new empty folder, and runs ``evsim run`` (the bundled demo unless arguments are given) in a new
process, twice: cold (everything compiled) and warm (loaded from the cache just written). The
child process records every numba compilation (``numba.core.event`` "numba:compile" events:
function, nesting depth, wall seconds) and its own CPU time. Reported: wall and CPU seconds of
the cold and the warm process (median over repeats; CPU = user + system of the whole process), whether the cold run printed the compile
notice (and the warm run did not), and the compilations of the last cold run, outermost first.

On a shared machine the wall time depends on the load; the CPU time (user + system of the child)
is the figure to compare.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/_machine.py
from _machine import machine  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def child(out: str, argv: list) -> int:
    """Run `evsim run ARGV` in this process, recording numba's compilations into ``out``."""
    from numba.core import event as ev

    records = []

    class Listener(ev.Listener):
        def __init__(self):
            self.stack = []

        def on_start(self, event):
            self.stack.append(time.perf_counter())

        def on_end(self, event):
            t0 = self.stack.pop()
            disp = (event.data or {}).get("dispatcher")
            func = getattr(disp, "py_func", None)
            name = f"{func.__module__}.{func.__qualname__}" if func else str(disp)
            records.append({"depth": len(self.stack), "function": name,
                            "signature": str((event.data or {}).get("args"))[:200],
                            "seconds": round(time.perf_counter() - t0, 3)})

    ev.register("numba:compile", Listener())
    from evsim.cli import main

    t0, c0 = time.perf_counter(), time.process_time()
    code = main(["run", *argv])
    Path(out).write_text(json.dumps({"code": code, "wall_s": time.perf_counter() - t0,
                                     "cpu_s_in_process": time.process_time() - c0, "compiles": records}))
    return 0


def one_run(pkg_root: Path, cache: Path, argv: list) -> dict:
    out = pkg_root / "trace.json"
    env = {**os.environ, "PYTHONPATH": str(pkg_root), "NUMBA_CACHE_DIR": str(cache)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, "--child", str(out), "--", *argv], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(pkg_root))
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    if proc.returncode != 0:
        raise SystemExit(f"evsim run failed ({proc.returncode}):\n{stderr}")
    trace = json.loads(out.read_text())
    return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "stdout": stdout,
            "stderr": stderr, "notice": "compiling the simulator" in stderr, "compiles": trace["compiles"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--json", default=None)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("rest", nargs="*", help="arguments of `evsim run` (after --)")
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child, args.rest)
    colds, warms = [], []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory(prefix="evsim-first-run-") as tmp:
            root = Path(tmp)
            shutil.copytree(REPO / "evsim", root / "evsim", ignore=shutil.ignore_patterns("__pycache__"))
            (root / "numba-cache").mkdir()
            cold = one_run(root, root / "numba-cache", args.rest)
            warm = one_run(root, root / "numba-cache", args.rest)
            if warm["stdout"] != cold["stdout"]:
                raise SystemExit("the warm run printed something else than the cold run")
            colds.append(cold)
            warms.append(warm)
            print(f"cold {cold['wall_s']:7.1f} s wall, {cold['cpu_s']:7.1f} s CPU, notice {cold['notice']}, "
                  f"{len(cold['compiles'])} compilations;  warm {warm['wall_s']:5.1f} s wall, "
                  f"{warm['cpu_s']:5.1f} s CPU, notice {warm['notice']}", flush=True)
    last = colds[-1]
    top = sorted(last["compiles"], key=lambda r: (r["depth"], -r["seconds"]))
    figures = {
        "machine": machine(), "repeats": args.repeats, "evsim_run_args": args.rest,
        "cold_wall_s": statistics.median(c["wall_s"] for c in colds),
        "cold_cpu_s": statistics.median(c["cpu_s"] for c in colds),
        "warm_wall_s": statistics.median(w["wall_s"] for w in warms),
        "warm_cpu_s": statistics.median(w["cpu_s"] for w in warms),
        "cold_runs": [{k: c[k] for k in ("wall_s", "cpu_s", "notice")} for c in colds],
        "notice_cold": all(c["notice"] for c in colds), "notice_warm": any(w["notice"] for w in warms),
        "compiles_warm": max(len(w["compiles"]) for w in warms),
        "compilations_last_cold_run": top,
        "notice_text": next((line for line in last["stderr"].splitlines() if "compiling" in line), None),
    }
    for r in top[:12]:
        print(f"  depth {r['depth']}  {r['seconds']:8.2f} s  {r['function']}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(figures, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

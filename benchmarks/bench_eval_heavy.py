"""Two workers on a heavy evaluation: `evsim eval` of a DVS-Gesture-size VGG, 1 vs 2 local workers.

One command::

    python benchmarks/bench_eval_heavy.py [--recordings 36] [--events 100000] [--classes 4] [--repeats 3]
                                          [--wait-quiet 300] [--json benchmarks/results/bench_eval_heavy.json]
    python benchmarks/bench_eval_heavy.py --only-contention [--repeats 5] [--wait-quiet 300] [--json FILE]

``bench_eval.py`` measures the 2-worker speed-up on the bundled N-MNIST CNN, a job of ~9 s of
which ~1 s is start-up that a second worker cannot share. This script measures it on a job whose
start-up is small next to the work, as on the heavy datasets (DVS-Gesture: deep nets, 10^5–10^6
events and 10^9–10^10 SynOps per sample) the ``--workers`` option is for.

The job, written to a temporary folder:

* the model: the VGG of ``bench_vgg.py`` (``vgg_graph``: 2×128×128 → 8 conv 3×3 + IF layers →
  Linear → 11 IF, ~1.8 × 10^9 SynOps per 10^5-event recording), written with ``nir.write`` (each
  conv's ``input_shape`` filled in, which ``nir.write`` needs), profile ``speck``;
* the data: ``root/<label>/recNNNN.npy`` (structured arrays t, x, y, p), ``--recordings``
  synthetic recordings from ``bench_vgg.moving_object`` (``--events`` events over 1 s), recording
  ``i`` with seed ``SEED0 + i`` and label ``i % --classes``.

Figures, each the median over ``--repeats`` runs, 1- and 2-worker runs alternated (the machine's
speed drifts; no separate warm-up run per configuration: the start-up runs before them fill
numba's cache and the page cache):

* ``startup_s``: ``evsim eval`` of the same model on a folder holding one 100-event recording:
  interpreter, imports, loading and compiling the VGG, the engine loaded from numba's cache, the
  document — what neither worker count can share;
* ``eval_1_worker_s`` / ``eval_2_workers_s``: ``evsim eval MODEL DATA --json --csv`` as a
  subprocess, without / with ``--workers 2`` (start-up included); ``speedup_2_workers`` their
  ratio, ``startup_share`` = startup_s / eval_1_worker_s;
* ``bound_2_workers``: the speed-up two workers would give if they cost nothing: the client runs
  the start-up and a one-event warm-up before it forks the workers
  (``evsim.analysis.evaluate._run_dask``; until af29f27 it simulated the first real sample
  instead, which made that sample serial), then the N samples are shared:
  T1 / (T1 − E1 + E1 / 2), with E1 the time the 1-worker run spent inside ``evaluate``
  (the document's ``wall_s``: the samples), T1 − E1 its start-up and exit;
  ``bound_2_workers_contended`` the same with the samples ``contention`` times slower when both
  cores run an engine;
* ``contention``: CPU time of ``Simulator.run`` on one 10^5-event recording (as ``bench_vgg.py``
  measures it, median of max(5, ``--repeats``)), in a process of its own: pinned alone to core 0,
  then to core 1; then two copies at once, one per core, forked after the model was loaded (they
  share its pages — weights, run tables — as the eval's forked workers do); then two independent
  processes started together (each its own copy of the model, as two ``bench_vgg.py`` runs);
  ``slowdown_forked`` / ``slowdown_independent`` = mean(pair) / mean(alone) (``--only-contention``:
  this part alone, a minute instead of ten);
* ``pairs``: each alternated (1 worker, 2 workers) pair with its ratio, and
  ``speedup_quiet_pairs``, the median ratio of the pairs in which other processes used less than
  0.05 core on average during both runs (a run shared with another job says little);
* checks: the 2-worker records equal the 1-worker ones in every run (``records_identical``), and
  the first ``--check`` recordings' records equal ``Simulator.run`` on the in-memory graph of
  ``vgg_graph`` (prediction, output counts, events, SynOps, spikes per node, status, decision
  time: ``matches_in_memory_simulator``).

Each eval run records, as in ``bench_eval.py`` (whose ``timed`` it uses), its CPU time with the
worker processes it waited for, the 1-minute load average at its start and the CPU other processes
used while it ran (``/proc/stat``). ``env`` records PYTHONDONTWRITEBYTECODE: when it is set (this
sandbox sets it), every evsim subprocess compiles evsim's sources again (~0.2 s of start-up that a
normal installation, with its ``__pycache__``, does not pay); the script does not change it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench_eval  # noqa: E402  (also puts the repository on sys.path)
from _machine import busy_cpu_s, machine, wait_quiet  # noqa: E402
from bench_vgg import moving_object, vgg_graph  # noqa: E402

REPO = HERE.parent
SEED0 = 1000  # recording i: moving_object(events, seed=SEED0 + i)


def write_model(path: Path, seed: int = 0):
    """The VGG of bench_vgg.py written with ``nir.write`` (each Conv2d's ``input_shape`` set from
    the IF node after it: ``nir.write`` cannot store None). Returns the graph as written."""
    import nir

    graph = vgg_graph(seed=seed)
    for name, node in graph.nodes.items():
        if isinstance(node, nir.Conv2d):
            _, h, w = graph.nodes["if" + name[len("conv"):]].v_threshold.shape
            s = int(np.atleast_1d(node.stride)[0])
            node.input_shape = np.array([h * s, w * s])
    nir.write(str(path), graph)
    return graph


def write_dataset(root: Path, n: int, events: int, classes: int, seed0: int = SEED0) -> list[tuple[str, int]]:
    """``n`` recordings ``root/<i % classes>/rec<i>.npy`` from ``moving_object(events, seed=seed0 + i)``;
    returns (path, label) in the order evsim's folder reader sorts them (label, then file name)."""
    out = []
    for i in range(n):
        label = i % classes
        folder = root / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"rec{i:04d}.npy"
        np.save(path, moving_object(events, seed=seed0 + i))
        out.append((str(path), label))
    return sorted(out, key=lambda s: (s[1], Path(s[0]).name))


def eval_cmd(model: Path, data: Path, out: Path, *extra) -> list:
    return [sys.executable, "-m", "evsim.cli", "eval", str(model), str(data), "--profile", "speck", "--quiet",
            "--json", str(out), "--csv", str(out.with_suffix(".csv")), *extra]


def run_eval(name: str, cmd: list) -> tuple[dict, dict]:
    wall, info = bench_eval.timed(cmd)
    out = Path(cmd[cmd.index("--json") + 1])
    doc = json.loads(out.read_text())
    info = {"wall_s": wall, **info, "evaluate_wall_s": doc["wall_s"]}
    quiet = info.pop("started_quiet")
    print(f"{name}: {wall:.2f} s wall ({doc['wall_s']:.2f} s inside evaluate), {info['cpu_s']:.2f} s CPU "
          f"(load {info['load']:.2f}; other processes {info['others_cpu_s']:.2f} s CPU meanwhile"
          f"{'' if quiet is None else '; started quiet' if quiet else '; NOT started quiet'})", flush=True)
    info["started_quiet"] = quiet
    return info, doc


RESULT_FIELDS = ("prediction", "output_counts", "events_consumed", "events_total", "synops", "spikes_per_node",
                 "status", "decision_time_us")


def check_in_memory(samples, records: list, k: int) -> list[dict]:
    """Simulator.run on the in-memory VGG (as bench_vgg.py builds it) for the first ``k`` samples,
    compared field by field with the eval's records of the same files."""
    import evsim

    sim = evsim.Simulator(evsim.load_model(vgg_graph(), profile="speck"))
    by_path = {r["path"]: r for r in records}
    out = []
    for path, label in samples[:k]:
        i = int(Path(path).stem[3:])
        res = sim.run(moving_object(EVENTS, seed=SEED0 + i))
        rec = by_path[path]
        mine = {f: getattr(res, f) for f in RESULT_FIELDS}
        mine["output_counts"] = None if mine["output_counts"] is None else [int(v) for v in mine["output_counts"]]
        mine["spikes_per_node"] = {n: int(v) for n, v in mine["spikes_per_node"].items()}
        diff = [f for f in RESULT_FIELDS if mine[f] != rec[f]]
        out.append({"path": path, "label": label, "equal": not diff, "differing": diff, "synops": int(res.synops),
                    "prediction": mine["prediction"]})
    return out


def _engine_cpu(sim, events, repeats: int) -> tuple[float, float]:
    """Median CPU seconds of ``sim.run(events)`` over ``repeats`` runs after one, and the CPU of all of them."""
    c_all = time.process_time()
    sim.run(events)
    cpus = []
    for _ in range(repeats):
        c0 = time.process_time()
        sim.run(events)
        cpus.append(time.process_time() - c0)
    return statistics.median(cpus), time.process_time() - c_all


def _engine_pair(repeats: int, events: int) -> dict:
    """In a process of its own (``--_engine-pair``): the VGG on one 10^5-event recording, CPU per
    recording pinned to core 0 alone, to core 1 alone, then two copies at once, one per core,
    forked from this process after the model was loaded (sharing its pages: weights and run tables,
    as the eval's forked workers do), then two independent processes (each its own model, as two
    ``bench_vgg.py`` runs), started together; each phase with the CPU other processes used."""
    import evsim

    sim = evsim.Simulator(evsim.load_model(vgg_graph(), profile="speck"))
    ev = moving_object(events)
    res = {"repeats": repeats}
    for core in (0, 1):
        os.sched_setaffinity(0, {core})
        b0 = busy_cpu_s()
        res[f"alone_core{core}_s_cpu"], cpu = _engine_cpu(sim, ev, repeats)
        res[f"alone_core{core}_others_cpu_s"] = max(0.0, busy_cpu_s() - b0 - cpu)
    r, w = os.pipe()
    b0 = busy_cpu_s()
    pid = os.fork()
    if pid == 0:  # the copy on core 1
        os.sched_setaffinity(0, {1})
        os.write(w, json.dumps(_engine_cpu(sim, ev, repeats)).encode())
        os._exit(0)
    os.sched_setaffinity(0, {0})
    mine = _engine_cpu(sim, ev, repeats)
    os.waitpid(pid, 0)
    child = json.loads(os.read(r, 4096).decode())
    res["forked_s_cpu"] = [mine[0], child[0]]
    res["forked_others_cpu_s"] = max(0.0, busy_cpu_s() - b0 - mine[1] - child[1])
    os.sched_setaffinity(0, {0, 1})
    with tempfile.TemporaryDirectory() as tmpdir:
        go = Path(tmpdir) / "go"
        procs = [subprocess.Popen([sys.executable, __file__, "--_engine-one", str(core), str(go), str(repeats),
                                   str(events)], stdout=subprocess.PIPE, env=bench_eval.env()) for core in (0, 1)]
        while not all((go.parent / f"ready{core}").exists() for core in (0, 1)):
            if any(p.poll() is not None for p in procs):
                raise SystemExit("--_engine-one failed")
            time.sleep(0.01)
        b0 = busy_cpu_s()
        go.touch()
        out = [json.loads(p.communicate()[0]) for p in procs]
        res["independent_s_cpu"] = [o[0] for o in out]
        res["independent_others_cpu_s"] = max(0.0, busy_cpu_s() - b0 - sum(o[1] for o in out))
    alone = (res["alone_core0_s_cpu"] + res["alone_core1_s_cpu"]) / 2
    res["slowdown_forked"] = statistics.mean(res["forked_s_cpu"]) / alone
    res["slowdown_independent"] = statistics.mean(res["independent_s_cpu"]) / alone
    return res


def _engine_one(core: int, go: Path, repeats: int, events: int) -> None:
    """``--_engine-one``: pinned to ``core``, load the VGG, warm up, wait for ``go``, measure."""
    import evsim

    os.sched_setaffinity(0, {core})
    sim = evsim.Simulator(evsim.load_model(vgg_graph(), profile="speck"))
    ev = moving_object(events)
    sim.run(ev)
    (go.parent / f"ready{core}").touch()
    while not go.exists():
        time.sleep(0.005)
    print(json.dumps(_engine_cpu(sim, ev, repeats)))


def contention(repeats: int) -> dict:
    """:func:`_engine_pair` in a new process (after waiting for a quiet machine)."""
    if bench_eval.QUIET_WAIT_S > 0:
        wait_quiet(bench_eval.QUIET_WAIT_S)
    proc = subprocess.run([sys.executable, __file__, "--_engine-pair", str(repeats), str(EVENTS)],
                          capture_output=True, text=True, env=bench_eval.env())
    if proc.returncode != 0:
        raise SystemExit(f"--_engine-pair failed: {proc.stderr}")
    res = json.loads(proc.stdout)
    print(f"VGG per recording, s CPU: alone {res['alone_core0_s_cpu']:.3f} / {res['alone_core1_s_cpu']:.3f} (core 0 / 1); "
          f"two forked copies at once {res['forked_s_cpu'][0]:.3f} / {res['forked_s_cpu'][1]:.3f} "
          f"(x{res['slowdown_forked']:.3f}); two independent processes {res['independent_s_cpu'][0]:.3f} / "
          f"{res['independent_s_cpu'][1]:.3f} (x{res['slowdown_independent']:.3f}); other processes "
          + ", ".join(f"{res[k]:.2f}" for k in ("alone_core0_others_cpu_s", "alone_core1_others_cpu_s",
                                                "forked_others_cpu_s", "independent_others_cpu_s"))
          + " s CPU", flush=True)
    return res


EVENTS = 100_000
QUIET_CORES = 0.05  # a pair counts as quiet when other processes used less than this on average


def main() -> None:
    if sys.argv[1:2] == ["--_engine-pair"]:
        print(json.dumps(_engine_pair(int(sys.argv[2]), int(sys.argv[3]))))
        return
    if sys.argv[1:2] == ["--_engine-one"]:
        _engine_one(int(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--recordings", type=int, default=36,
                    help="recordings in the dataset (even: the two workers share them)")
    ap.add_argument("--events", type=int, default=100_000, help="events per recording")
    ap.add_argument("--classes", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--check", type=int, default=3, help="recordings compared with Simulator on the in-memory graph")
    ap.add_argument("--no-contention", action="store_true", help="skip the engine contention measurement")
    ap.add_argument("--only-contention", action="store_true", help="only the engine contention measurement")
    ap.add_argument("--json", default=None)
    ap.add_argument("--wait-quiet", type=float, default=0.0, metavar="S",
                    help="before each run, wait up to S seconds until other processes use < 0.1 core for 3 s")
    args = ap.parse_args()
    global EVENTS
    EVENTS = args.events
    bench_eval.QUIET_WAIT_S = args.wait_quiet
    report = {"machine": machine(),
              "env": {"PYTHONDONTWRITEBYTECODE": os.environ.get("PYTHONDONTWRITEBYTECODE"),
                      "evsim_pycache_present": (REPO / "evsim" / "__pycache__").is_dir()},
              "command": "python benchmarks/bench_eval_heavy.py " + " ".join(sys.argv[1:]),
              "model": "bench_vgg.vgg_graph() written with nir.write, profile speck",
              "recordings": args.recordings, "events": args.events, "classes": args.classes,
              "seeds": [SEED0, SEED0 + args.recordings - 1], "repeats": args.repeats}
    if args.only_contention:
        report = {k: report[k] for k in ("machine", "env", "command", "events")}
        report["contention"] = contention(max(args.repeats, 5))
        report["machine"]["load_average_at_end"] = os.getloadavg()
        text = json.dumps(report, indent=1)
        print(text)
        if args.json:
            Path(args.json).write_text(text + "\n")
        return
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        model = tmp / "vgg.nir"
        write_model(model)
        data = tmp / "data"
        samples = write_dataset(data, args.recordings, args.events, args.classes)
        startup_data = tmp / "startup"
        write_dataset(startup_data, 1, 100, 1)

        print("start-up (one 100-event recording) ...", flush=True)
        bench_eval.timed(eval_cmd(model, startup_data, tmp / "startup.json"))  # warm-up: numba's cache
        runs = {"startup": [], "eval_1_worker": [], "eval_2_workers": []}
        for _ in range(args.repeats):
            runs["startup"].append(run_eval("startup", eval_cmd(model, startup_data, tmp / "startup.json"))[0])
        docs = {}
        for r in range(args.repeats):
            for name, extra in (("eval_1_worker", ()), ("eval_2_workers", ("--workers", "2"))):
                info, doc = run_eval(name, eval_cmd(model, data, tmp / f"{name}.json", *extra))
                runs[name].append(info)
                docs.setdefault(name, []).append(doc["samples"])
        ref = docs["eval_1_worker"][0]
        report["records_identical"] = all(s == ref for name in docs for s in docs[name])
        report["n_samples"] = len(ref)
        report["synops_per_sample_mean"] = float(np.mean([r["synops"] for r in ref]))
        report["predictions"] = [r["prediction"] for r in ref]
        report["statuses"] = sorted({r["status"] for r in ref})
        pairs = []
        for one, two in zip(runs["eval_1_worker"], runs["eval_2_workers"]):
            quiet = all(r["others_cpu_s"] < QUIET_CORES * r["wall_s"] for r in (one, two))
            pairs.append({"eval_1_worker_s": one["wall_s"], "eval_2_workers_s": two["wall_s"],
                          "speedup": one["wall_s"] / two["wall_s"], "quiet": quiet,
                          "others_cpu_s": [one["others_cpu_s"], two["others_cpu_s"]]})
        report["pairs"] = pairs
        quiet = [p["speedup"] for p in pairs if p["quiet"]]
        report["speedup_quiet_pairs"] = statistics.median(quiet) if quiet else None
        report["n_quiet_pairs"] = len(quiet)
        for name, infos in runs.items():
            report[name] = infos
            report[f"{name}_s"] = statistics.median(i["wall_s"] for i in infos)
        print("checking against Simulator on the in-memory graph ...", flush=True)
        report["check_in_memory"] = check_in_memory(samples, ref, args.check)
        report["matches_in_memory_simulator"] = all(c["equal"] for c in report["check_in_memory"])
    if not args.no_contention:
        print("contention (the engine alone, two forked copies, two independent processes) ...", flush=True)
        report["contention"] = contention(max(args.repeats, 5))
    t1, t2, s, n = report["eval_1_worker_s"], report["eval_2_workers_s"], report["startup_s"], report["n_samples"]
    e1 = statistics.median(i["evaluate_wall_s"] for i in report["eval_1_worker"])
    per_sample = e1 / n
    report["per_sample_s"] = per_sample
    report["outside_evaluate_1_worker_s"] = t1 - e1
    report["speedup_2_workers"] = t1 / t2
    report["startup_share"] = s / t1
    report["bound_2_workers"] = t1 / (t1 - e1 + e1 / 2)
    if "contention" in report:
        c = report["contention"]["slowdown_forked"]
        report["bound_2_workers_contended"] = t1 / (t1 - e1 + e1 * c / 2)
    report["machine"]["load_average_at_end"] = os.getloadavg()
    text = json.dumps(report, indent=1)
    print(text)
    quiet = report["speedup_quiet_pairs"]
    print(f"\nVGG, {n} recordings of {args.events} events ({report['synops_per_sample_mean']:.3g} SynOps each): "
          f"eval 1 worker {t1:.2f} s, --workers 2 {t2:.2f} s = {report['speedup_2_workers']:.2f}x (target >= 1.8; "
          f"quiet pairs ({report['n_quiet_pairs']} of {len(report['pairs'])}): "
          f"{'-' if quiet is None else format(quiet, '.2f')}x); start-up {s:.2f} s = "
          f"{100 * report['startup_share']:.1f} % of one worker's run; bound without Dask costs "
          f"{report['bound_2_workers']:.2f}x"
          + (f", with the measured x{report['contention']['slowdown_forked']:.3f} contention of forked engines "
             f"{report['bound_2_workers_contended']:.2f}x" if "contention" in report else "")
          + f"; records identical {report['records_identical']}; equal to the in-memory Simulator "
          f"{report['matches_in_memory_simulator']}; PYTHONDONTWRITEBYTECODE={report['env']['PYTHONDONTWRITEBYTECODE']}")
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()

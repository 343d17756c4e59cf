"""Timeline of one `evsim eval` run: where the wall time of 1 and N local workers goes.

One command::

    python benchmarks/trace_eval.py [--data DIR] [--workers 2] [--limit N] [--model NIR] [--profile P] [-- extra eval options]

Runs ``evsim eval`` (the bundled N-MNIST CNN or ``--model``, profile speck or ``--profile``, ``--json``/``--csv`` to a temporary
folder, as ``bench_eval.py`` does) as a subprocess with timestamps taken inside it, and prints,
relative to the moment the subprocess was started: the interpreter up, ``evsim.cli`` imported, the
model loaded, the runner built, the first record kept, the workers forked, the scheduler and client
up, every worker's first and last chunk (start, end, its CPU), every chunk's arrival in the client,
the last record, the Dask shutdown, the final document and CSV written, and the exit; then the CPU
of each process and of each thread of the client (from ``/proc``). Timestamps come from
``time.time()`` in every process (one clock); the instrumentation wraps evsim's functions from the
outside (nothing in ``evsim`` changes) and writes each worker's chunk events to a file when the
chunk ends, so it costs a few microseconds per chunk.
"""

from __future__ import annotations

import json
import os
import sys
import time

T_UP = time.time()

if os.environ.get("EVSIM_TRACE_DIR") and __name__ == "__main__" and sys.argv[1:2] == ["--child"]:
    # ------------------------------------------------------------------ the traced eval process
    TRACE = os.environ["EVSIM_TRACE_DIR"]
    _events = [(T_UP, os.getpid(), "interpreter up", "")]

    def log(what, detail=""):
        _events.append((time.time(), os.getpid(), what, detail))

    def thread_cpu() -> str:
        out = []
        tick = os.sysconf("SC_CLK_TCK")
        for tid in sorted(os.listdir("/proc/self/task"), key=int):
            try:
                with open(f"/proc/self/task/{tid}/stat") as f:
                    stat = f.read()
                with open(f"/proc/self/task/{tid}/comm") as f:
                    comm = f.read().strip()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            out.append(f"{comm}:{(int(fields[11]) + int(fields[12])) / tick:.2f}")
        return " ".join(out)

    import evsim.cli as cli  # noqa: E402

    log("evsim.cli imported")
    import evsim.analysis.evaluate as ev  # noqa: E402
    import evsim.analysis.execution as ex  # noqa: E402
    import evsim.compile.builder as builder  # noqa: E402

    log("evsim.analysis imported")

    def wrap(obj, name, before=None, after=None):
        orig = getattr(obj, name)

        def wrapper(*a, **k):
            if before:
                log(before)
            try:
                return orig(*a, **k)
            finally:
                if after:
                    log(after)

        wrapper.__module__, wrapper.__qualname__, wrapper.__name__ = orig.__module__, orig.__qualname__, orig.__name__
        setattr(obj, name, wrapper)

    if os.environ.get("EVSIM_TRACE_CHUNK"):  # an experiment: another chunk size
        _orig_evaluate = ev.evaluate

        def evaluate(*a, **k):
            k["chunk_size"] = int(os.environ["EVSIM_TRACE_CHUNK"])
            return _orig_evaluate(*a, **k)

        ev.evaluate = evaluate
    wrap(builder, "load_model", "load_model start", "load_model end")
    wrap(ev, "runner_for", None, "runner built")
    if os.environ.get("EVSIM_TRACE_FORK1"):
        _orig_wait = ev._wait_for_forked
        ev._wait_for_forked = lambda client, forked, n, *a: _orig_wait(client, forked, 1, *a)
    _orig_wait_for_forked = ev._wait_for_forked

    def wait_for_forked(*a, **k):
        log("scheduler+client up; waiting for workers", thread_cpu())
        out = _orig_wait_for_forked(*a, **k)
        log("workers joined", thread_cpu())
        return out

    ev._wait_for_forked = wait_for_forked
    wrap(ev, "_document", "document start", "document end")
    wrap(ev, "write_json_atomic", "json write start", "json written")
    wrap(ev.CsvRows, "__init__", "csv write start", "csv written")
    wrap(ev.CsvRows, "put_in_sample_order", "csv reorder start", "csv reordered")
    _orig_fork_init = ex.ForkedWorkers.__init__

    def fork_init(self, n):
        if os.environ.get("EVSIM_TRACE_FORK1"):  # an experiment: one forked Dask worker
            n = 1
        log("distributed imported; fork start")
        watch_client_close()
        _orig_fork_init(self, n)
        log("forked", " ".join(str(p.pid) for p in self.processes))

    ex.ForkedWorkers.__init__ = fork_init
    _orig_close = ex.ForkedWorkers.close

    def fork_close(self, timeout=5.0):
        log("forked workers close start")
        _orig_close(self, timeout)
        log("forked workers closed")

    ex.ForkedWorkers.close = fork_close
    _orig_update = ex.Progress.update

    def update(self, done, final=False):
        log("kept", str(done))
        return _orig_update(self, done, final)

    ex.Progress.update = update

    _orig_run_dask = ev._run_dask

    def watch_client_close():  # once distributed is imported (by _run_dask itself: the head start overlaps it)
        import distributed

        if getattr(distributed.Client.close, "_traced", False):
            return
        _orig_client_close = distributed.Client.close

        def client_close(self, *a, **k):
            log("client close", thread_cpu())
            return _orig_client_close(self, *a, **k)

        client_close._traced = True
        distributed.Client.close = client_close

    def run_dask(*a, **k):
        log("dask part start", "distributed already imported" if "distributed" in sys.modules else "")
        try:
            return _orig_run_dask(*a, **k)
        finally:
            log("dask part end (cluster closed)")

    _orig_keep_head = ev._keep_head_start

    def keep_head_start(head, queue, keep):
        log("head start stop", f"taken <= {head.taken()}")
        n_before = len(queue)
        _orig_keep_head(head, queue, keep)
        log("head start kept", f"{n_before - len(queue)} samples off the queue's end; {thread_cpu()}")

    ev._keep_head_start = keep_head_start
    _orig_head_init = ex.HeadStart.__init__

    def head_init(self, *a, **k):
        log("head start fork")
        _orig_head_init(self, *a, **k)
        log("head start forked", str(self.process.pid))

    ex.HeadStart.__init__ = head_init

    ev._run_dask = run_dask

    _orig_run_chunk = ex.run_chunk

    def run_chunk(config, items):
        t0, c0 = time.time(), time.process_time()
        out = _orig_run_chunk(config, items)
        line = f"{t0!r} {time.time()!r} {c0!r} {time.process_time()!r} {items[0][0]} {len(items)}\n"
        with open(os.path.join(TRACE, f"worker-{os.getpid()}.txt"), "a") as f:
            f.write(line)
        return out

    run_chunk.__module__, run_chunk.__qualname__ = "evsim.analysis.execution", "run_chunk"
    ex.run_chunk = run_chunk
    ev.run_chunk = run_chunk
    _orig_fw = ex._forked_worker

    def forked_worker(pipe, parent_pid):
        with open(os.path.join(TRACE, f"worker-{os.getpid()}.txt"), "a") as f:
            f.write(f"up {time.time()!r}\n")
        return _orig_fw(pipe, parent_pid)

    ex._forked_worker = forked_worker

    code = cli.main(sys.argv[2:])
    log("main returned", thread_cpu())
    t = os.times()
    log("exit", f"cpu self {t.user + t.system:.2f} children {t.children_user + t.children_system:.2f}")
    with open(os.path.join(TRACE, "client.json"), "w") as f:
        json.dump(_events, f)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main() -> None:
    import argparse
    import subprocess
    import tempfile
    from pathlib import Path

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repo", default=str(Path(__file__).resolve().parents[1]),
                    help="the evsim tree to run (default: this script's; e.g. a snapshot of another commit)")
    ap.add_argument("--data", default=None, help="default: $EVSIM_SHARED_DATA/nmnist-train1k")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--all-chunks", action="store_true", help="print every chunk of every worker")
    ap.add_argument("--json", default=None, help="write the raw timeline here")
    ap.add_argument("--chunk-size", type=int, default=None, help="evaluate(chunk_size=...) (an experiment)")
    ap.add_argument("--model", default=None,
                    help="NIR file (default: the tree's bundled N-MNIST CNN), e.g. the NIR paper's cnn_sinabs.nir")
    ap.add_argument("--profile", default="speck")
    ap.add_argument("extra", nargs="*")
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/_machine.py
    from _machine import busy_cpu_s, nmnist_folder

    repo = Path(args.repo).resolve()
    if args.data is None:
        args.data = nmnist_folder(repo)
    model = Path(args.model).resolve() if args.model else repo / "evsim" / "bundled" / "nmnist_cnn" / "model.nir"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "eval.json"
        cmd = [sys.executable, __file__, "--child", "eval", str(model), args.data, "--profile", args.profile, "--quiet",
               "--json", str(out), "--csv", str(out.with_suffix(".csv")), "--workers", str(args.workers),
               *(["--limit", str(args.limit)] if args.limit else []), *args.extra]
        env = {**os.environ, "EVSIM_TRACE_DIR": tmp, **({"EVSIM_TRACE_CHUNK": str(args.chunk_size)} if args.chunk_size else {}),
               "PYTHONPATH": str(repo) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        load = os.getloadavg()[0]
        busy0 = busy_cpu_s()
        t0 = time.time()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        t_end = time.time()
        others = busy_cpu_s() - busy0 - (usage.ru_utime + usage.ru_stime)
        if status:
            raise SystemExit(f"eval failed ({status})")
        events = json.loads((Path(tmp) / "client.json").read_text())
        workers = {}
        for f in Path(tmp).glob("worker-*.txt"):
            pid = int(f.stem.split("-")[1])
            up, chunks = None, []
            for line in f.read_text().splitlines():
                if line.startswith("up "):
                    up = float(line.split()[1])
                else:
                    a, b, c0, c1, i0, n = line.split()
                    chunks.append((float(a), float(b), float(c0), float(c1), int(i0), int(n)))
            workers[pid] = (up, sorted(chunks))
    rows = []
    kept = [(t, int(d)) for t, _, w, d in events if w == "kept"]
    # the client's "kept" events, grouped: the first one, then one row per arrival burst
    for t, pid, what, detail in events:
        if what != "kept":
            rows.append((t, "client", what, detail))
    if kept:
        rows.append((kept[0][0], "client", "first record kept", str(kept[0][1])))
        last_done = [d for _, d in kept if d][-1]
        t_last = next(t for t, d in kept if d == last_done)
        rows.append((t_last, "client", "last record kept", str(last_done)))
    # the head start's process runs chunks of one sample too (not a Dask worker): labelled h<pid>
    head_pids = {int(d) for _, _, w, d in events if w == "head start forked" and str(d).isdigit()}
    for pid, (up, chunks) in workers.items():
        label = f"h{pid}" if pid in head_pids else f"w{pid}"
        if up:
            rows.append((up, label, "worker process up", ""))
        if chunks:
            rows.append((chunks[0][0], label, "first chunk start", f"samples {chunks[0][4]}+{chunks[0][5]}"))
            rows.append((chunks[-1][1], label, "last chunk end",
                         f"{len(chunks)} chunks, {sum(c[5] for c in chunks)} samples, CPU in chunks "
                         f"{sum(c[3] - c[2] for c in chunks):.2f} s, busy {sum(c[1] - c[0] for c in chunks):.2f} s, "
                         f"CPU at last chunk end {chunks[-1][3]:.2f} s"))
            if args.all_chunks:
                for c in chunks:
                    rows.append((c[1], label, "chunk end", f"{c[4]}+{c[5]} {c[1] - c[0]:.3f} s"))
    rows.append((t_end, "parent", "process reaped",
                 f"CPU with waited children {usage.ru_utime + usage.ru_stime:.2f} s, load at start {load:.2f}"))
    rows.sort()
    print(f"evsim eval --workers {args.workers}{' --limit ' + str(args.limit) if args.limit else ''}: wall "
          f"{t_end - t0:.2f} s, CPU {usage.ru_utime + usage.ru_stime:.2f} s, load at start {load:.2f}, other "
          f"processes' CPU meanwhile {others:.2f} s ({others / (t_end - t0):.2f} cores)")
    # arrival of records in the client per 10 % of the run
    for t, who, what, detail in rows:
        print(f"{t - t0:8.3f}  {who:>9}  {what:<40} {detail}")
    if kept and len(workers) > 0:
        # idle time of each worker between its chunks and after its last one until the last record
        t_last = max(t for t, _ in kept)
        for pid, (up, chunks) in workers.items():
            if pid in head_pids:
                continue
            gaps = sum(max(0.0, b[0] - a[1]) for a, b in zip(chunks, chunks[1:]))
            print(f"worker {pid}: gaps between chunks {gaps:.3f} s, idle after its last chunk until the last "
                  f"record {t_last - chunks[-1][1]:.3f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"t0": t0, "t_end": t_end, "client": events,
                                               "workers": {str(k): v for k, v in workers.items()}}))


if __name__ == "__main__" and sys.argv[1:2] != ["--child"]:
    main()

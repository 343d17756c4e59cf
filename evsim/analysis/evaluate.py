"""Dataset evaluation: one record per recording and the aggregates of docs/SEMANTICS.md#cli-outputs.

:func:`evaluate` runs a dataset — ``root/<label>/`` folders as ``(path, label)`` pairs, or any
indexable sequence of ``(events, label)`` such as a tonic dataset or a list of arrays — and
returns the eval document. Pieces:

* :mod:`evsim.analysis.execution` — one simulator per worker, one simulation per sample, Dask;
* :mod:`evsim.analysis.records` — per-sample records, the append-only records file, CSV;
* :mod:`evsim.analysis.aggregate` — vectorised aggregates and the anytime summary.

Determinism: every sample is simulated independently from a fresh state and its record is stored
under its sample index, so records are bit-identical whatever the worker count, chunking or
completion order, and the document lists them in sample order.

Files and interruptions: records are appended to ``<output>.records.jsonl`` (flushed, one line
each) and to the CSV as they arrive; the JSON document is rewritten atomically every
``json_interval_s`` seconds with ``"complete": false`` (less often once a rewrite takes more than
:data:`JSON_REWRITE_SHARE` of that interval) and at the end. SIGINT and SIGTERM only set
a flag (Python cannot run a handler inside the compiled engine, and an exception raised between two
engine calls would leave a simulator half updated); the loop checks it between samples, writes what
is finished and raises :class:`KeyboardInterrupt` (the CLI exits with 130). A run killed outright
(SIGKILL) leaves valid files; ``resume=True`` continues it (same model hash, options and data are
required) and yields the same final document as an uninterrupted run, wall-time fields aside.
"""

from __future__ import annotations

import functools
import gc
import hashlib
import json
import logging
import math
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np

from ..errors import EvsimError, OptionError, real_option, shown
from .aggregate import summarise
from .execution import (LOCAL_DASK_CONFIG, EvalConfig, ForkedWorkers, HeadStart, Progress, SampleRunner,
                        can_fork_workers, events_digest, release_dask_offload_thread, release_idle_dask_threads,
                        run_chunk, runner_for, with_text)
from .records import (CsvRows, RecordLines, RecordsFile, SAMPLE_FIELDS, compact_record, dumps_record, plain_record,
                      read_records_file, record_index, records_path_for, remove_stale_temporaries, sample_record,
                      summary_record, write_json_atomic)
from ..sim.result import predict

__all__ = ["EvalConfig", "SampleRunner", "evaluate", "sample_record", "write_json", "predict", "stratified_subset",
           "compare_results", "EVAL_FORMAT", "SAMPLE_FIELDS"]

#: /3: the anytime digest's peaks as columns (records.anytime_digest)
EVAL_FORMAT = "evsim-eval/3"


def _version() -> str:
    from .. import __version__

    return __version__


# --------------------------------------------------------------------------------------------
# datasets
# --------------------------------------------------------------------------------------------


class _Items:
    """Work items ``(index, path or events, label)`` of a dataset, produced lazily."""

    def __init__(self, samples):
        if hasattr(samples, "samples") and isinstance(getattr(samples, "samples"), list):
            samples = samples.samples  # a FolderDataset: its (path, label) list
        self.samples = samples
        self.n_outputs = None  # labels must lie in [0, n_outputs) once set (check_labels)
        try:
            self.n = len(samples)
        except TypeError:
            raise OptionError("samples must be an indexable sequence (a list, a tonic dataset, ...)",
                              option="samples") from None

    def item(self, i: int):
        entry = self.samples[i]
        try:
            source, label = entry[0], entry[1]
        except (TypeError, IndexError, KeyError):
            raise OptionError(f"sample {i} is not a pair (events or path, label)", option="samples") from None
        if isinstance(source, Path):
            source = str(source)
        label = _integer_label(i, label)
        if self.n_outputs is not None and not 0 <= label < self.n_outputs:
            raise OptionError(f"sample {i} has label {label}, but the model has {self.n_outputs} outputs "
                              f"(labels 0 to {self.n_outputs - 1})", option="samples")
        return i, source, label

    def check_labels(self, n_outputs: int, classes: dict | None = None) -> None:
        """:func:`check_labels`: at once for a list of paths, else as each sample is taken."""
        if self.by_path():
            check_labels([label for _, label in self.samples], n_outputs, classes)
        self.n_outputs = n_outputs

    def by_path(self) -> bool:
        return self.n > 0 and isinstance(self.item(0)[1], str)

    def fingerprint(self) -> str:
        """Identifies the data for resume: paths and labels of a folder dataset; for in-memory
        data, the sample count and a hash of the events of the first and last samples."""
        h = hashlib.sha256()
        if self.by_path():
            for i in range(self.n):
                _, path, label = self.item(i)
                h.update(f"{path}\0{label}\n".encode("utf-8", "surrogateescape"))  # (file names need not be UTF-8)
        else:
            h.update(str(self.n).encode())
            for i in sorted({0, self.n - 1}) if self.n else []:
                _, ev, label = self.item(i)
                h.update(np.ascontiguousarray(ev).tobytes())
                h.update(str(label).encode())
        return h.hexdigest()[:20]


def _integer_label(i: int, label) -> int:
    """Sample ``i``'s label as an int, or OptionError: an evaluation needs a class index for every
    sample (an integer, or a float or one-element array holding one; not None, a bool, a string
    or 0.5, which would be truncated without a word)."""
    if label is None:
        raise OptionError(f"sample {i} has no label (an evaluation compares predictions with labels)",
                          option="samples")
    try:
        value = np.asarray(label)
    except Exception:  # noqa: BLE001 — any object numpy cannot read is not a label
        value = None
    if value is None or value.size != 1 or value.dtype.kind not in "iuf":
        raise OptionError(f"sample {i}: label {shown(label)} is not an integer", option="samples")
    value = value.reshape(()).item()
    if isinstance(value, float) and not (np.isfinite(value) and value.is_integer()):
        raise OptionError(f"sample {i}: label {shown(label)} is not an integer", option="samples")
    return int(value)


def local_workers_max() -> int:
    """Local worker processes allowed: 4 per CPU (more only compete for the same cores, and a
    mistyped --workers 1000 would start a thousand processes)."""
    return 4 * (os.cpu_count() or 1)


def check_labels(labels, n_outputs: int, classes: dict | None = None) -> None:
    """Refuse labels that no output of the model stands for: they could never be right, and a
    label of 3000000 would make a confusion matrix of 3000001² counts. ``classes``: {class folder
    name: label}, to name the folders in the message."""
    bad = sorted({int(label) for label in labels if label is not None and not 0 <= int(label) < n_outputs})
    if bad:
        names = {int(label): name for name, label in (classes or {}).items()}
        shown = ", ".join(f"{label}" + (f" (folder '{names[label]}')" if label in names else "") for label in bad[:5])
        raise OptionError(f"label{'s' if len(bad) > 1 else ''} {shown}{', ...' if len(bad) > 5 else ''} of the data "
                          f"{'have' if len(bad) > 1 else 'has'} no output: the model has {n_outputs} (labels 0 to "
                          f"{n_outputs - 1})", option="DATA")


def stratified_subset(labels, n: int, seed: int = 0) -> list[int]:
    """Indices of a stratified sample of ``n`` of ``labels``: classes in proportion to their size
    (largest remainders, ties to the lower label), drawn per class with ``seed``; returned in
    ascending index order (a stable order, the same for the same inputs)."""
    labels = np.asarray(labels, dtype=np.int64)
    if n < 1:
        raise OptionError("must be >= 1", option="--limit")
    if n >= labels.size:
        return list(range(labels.size))
    classes, counts = np.unique(labels, return_counts=True)
    quota = n * counts / labels.size
    take = np.floor(quota).astype(np.int64)
    rest = n - int(take.sum())
    order = np.lexsort((classes, -(quota - take)))  # largest remainder first, then lower label
    take[order[:rest]] += 1
    rng = np.random.default_rng(seed)
    chosen = []
    for c, k in zip(classes, take):
        members = np.flatnonzero(labels == c)
        chosen.extend(rng.permutation(members)[:k].tolist())
    return sorted(int(i) for i in chosen)


# --------------------------------------------------------------------------------------------
# interrupts
# --------------------------------------------------------------------------------------------


class _StopFlag:
    """SIGINT/SIGTERM set a flag that the loop checks between samples (see the module docstring).

    Re-entrant: the CLI enters it before loading the model, so a signal that arrives while the
    model compiles still ends the command through the same path (files written, exit 130).
    """

    def __init__(self):
        self.signal = None
        self._saved = {}
        self._depth = 0

    def __enter__(self):
        if self._depth == 0:
            self.signal = None
            if threading.current_thread() is threading.main_thread():
                for sig in (signal.SIGINT, signal.SIGTERM):
                    self._saved[sig] = signal.signal(sig, self._handler)
        self._depth += 1
        return self

    def _handler(self, signum, frame):
        self.signal = signum

    def __exit__(self, *exc):
        self._depth -= 1
        if self._depth == 0:
            for sig, handler in self._saved.items():
                signal.signal(sig, handler)
            self._saved = {}
        return False

    def __bool__(self):
        return self.signal is not None


#: the process's stop flag (enter it with ``with interrupt_guard:``)
interrupt_guard = _StopFlag()


# --------------------------------------------------------------------------------------------
# the evaluation
# --------------------------------------------------------------------------------------------


_HEAP = {"own": False}


def _frozen_heap(fn):
    """Run ``fn`` with the objects that exist before and at its warm points out of the garbage
    collector's way (:func:`_freeze_heap`), and give them back at the end (``gc.unfreeze``).

    A warm evaluation process holds a large heap that lives as long as the process (numba's and
    llvmlite's objects, the compiled model, the imported modules; Dask's in the client), and every
    full collection, triggered by the allocations of the per-sample records, walks all of it:
    0.12 s of the 1-worker eval of 1000 N-MNIST recordings and 0.4–0.7 s of a 2-worker client,
    where it runs on the cores the workers need. Frozen objects are only skipped by the collector,
    not kept alive; left alone if the caller uses ``gc.freeze`` itself."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        saved = _HEAP["own"]
        own = _HEAP["own"] = gc.get_freeze_count() == 0
        try:
            return fn(*args, **kwargs)
        finally:
            _HEAP["own"] = saved
            if own:
                gc.unfreeze()
    return wrapper


def _freeze_heap() -> None:
    """Move every object that exists now to the collector's permanent generation (see
    :func:`_frozen_heap`; forked workers inherit it, so their collections stay small too)."""
    if _HEAP["own"]:
        gc.freeze()


@_frozen_heap
def evaluate(samples, config: EvalConfig, *, workers: int = 1, client=None, scheduler: str | None = None,
             security=None, json_path=None, csv_path=None, progress: bool = True, data: str = "",
             resume: bool = False, on_error: str = "continue", chunk_size: int | None = None,
             keep_trajectories: bool = False, json_interval_s: float = 10.0, retries: int = 2,
             selection: dict | None = None, model=None, classes: dict | None = None,
             return_samples: bool = True) -> dict:
    """Evaluate ``samples`` and return the eval document (docs/SEMANTICS.md#cli).

    Args:
        samples: ``[(path, label), ...]`` (e.g. ``FolderDataset(root).samples``), a
            :class:`~evsim.input.datasets.FolderDataset`, or any indexable sequence of
            ``(events, label)`` (a tonic dataset, a list of structured arrays).
        config: how each sample is simulated.
        workers: 1 runs in this process; N > 1 starts a local Dask cluster of N single-threaded
            worker processes on 127.0.0.1.
        client: a ``distributed.Client`` to run on (overrides ``workers``).
        scheduler / security: address of an existing Dask scheduler and its
            ``distributed.security.Security`` (TLS). Read the warning in
            :mod:`evsim.analysis.execution`: a scheduler runs code for whoever can reach it.
        json_path / csv_path: outputs (see the module docstring); the records file lives next to
            ``json_path`` (else ``csv_path``).
        resume: continue an interrupted run from those outputs.
        on_error: "continue" (a bad sample becomes an error record) or "stop" (raise at the first).
        chunk_size: samples per Dask task (default: :func:`chunk_size_for`, tasks of up to about a
            second of work that shrink towards the end).
        keep_trajectories: keep each sample's uncut output trajectory in ``doc["_trajectories"]``
            (in sample order; for calibration, memory grows with the dataset).
        retries: Dask retries of a task whose worker died.
        selection: how the samples were chosen (e.g. ``{"limit": 100, "seed": 0}``), for the record.
        classes: {class folder name: label} of a folder dataset, for the record (taken from
            ``samples`` when it is a :class:`~evsim.input.datasets.FolderDataset`).
        model: ``config``'s model if the caller compiled it already (the
            :class:`~evsim.compile.builder.CompiledModel` of ``config.model_path`` with its profile,
            precision and overrides), not compiled again in this process.
        return_samples: False leaves ``samples`` out of the returned document (the ``--json``
            file still holds them): with an output file, a caller that only reads the aggregates,
            such as the command line, then keeps in memory only what they need of each sample
            (:func:`~evsim.analysis.records.summary_record`; the documents and the final CSV are
            written from the records file), not every record (~100 KB per sample as Python lists
            for an output that fires hundreds of spikes).

    Raises:
        EvsimError: the model or an option is invalid (checked here before any worker starts), or
            a sample failed with ``on_error="stop"`` (the first failure in sample order; finished
            records are written first).
        KeyboardInterrupt: SIGINT or SIGTERM; finished records are written first.
    """
    if on_error not in ("continue", "stop"):
        raise OptionError("must be continue or stop", option="--on-error")
    if not isinstance(config, EvalConfig):
        raise OptionError(f"must be an EvalConfig, got {type(config).__name__}", option="config")
    workers = real_option(workers, "--workers", integer=True)
    retries = real_option(retries, "retries", integer=True)
    json_interval_s = real_option(json_interval_s, "json_interval_s")
    if chunk_size is not None:
        chunk_size = real_option(chunk_size, "--chunk-size", integer=True)
    for flag, value in (("resume", resume), ("progress", progress), ("keep_trajectories", keep_trajectories),
                        ("return_samples", return_samples)):
        if not isinstance(value, (bool, np.bool_)):
            raise OptionError(f"must be True or False, got {value!r}", option=flag)
    if workers < 1:
        raise OptionError("must be >= 1", option="--workers")
    if (client is not None or scheduler) and workers != 1:
        raise OptionError("is the size of a local cluster; with a scheduler or a client, that cluster's own workers "
                          "run the samples", option="--workers")
    if scheduler is not None:  # ("" is not an address: refused, not taken for none)
        scheduler = scheduler_address(scheduler, security)
    if retries < 0:
        raise OptionError("must be >= 0", option="retries")
    if client is None and scheduler is None and workers > local_workers_max():
        raise OptionError(f"at most {local_workers_max()} local workers on this machine ({os.cpu_count()} CPUs; "
                          "each worker is one single-threaded process); more machines: --scheduler",
                          option="--workers")
    if chunk_size is not None and chunk_size < 1:
        raise OptionError("must be >= 1", option="--chunk-size")
    if keep_trajectories and not config.records_anytime:
        raise OptionError("trajectories need anytime analysis (event mode, or --cutoff none)", option="--cutoff")
    if classes is None and isinstance(getattr(samples, "class_to_label", None), dict):
        classes = samples.class_to_label
    items = _Items(samples)
    runner = runner_for(config, model)  # compiles and validates in this process first
    _freeze_heap()
    model_hash = runner.model.model_hash
    n_outputs = int(runner.model.populations[runner.model.readout[0]].size)
    items.check_labels(n_outputs, classes)
    header = {"evsim_version": _version(), "model_hash": model_hash, "options": config.options(),
              "data": {"description": str(data), "selection": selection or {}, "n_samples": items.n,
                       "fingerprint": items.fingerprint()}}
    if classes:
        header["data"]["classes"] = {str(name): int(label) for name, label in classes.items()}

    out = json_path or csv_path
    records_path = records_path_for(out) if out else None
    done: dict = {}
    positions: dict = {}  # {index: where its text is} in a records file resumed from
    valid = None  # bytes of its complete lines
    for path in (json_path, csv_path):
        if path:
            remove_stale_temporaries(path)
    if resume:
        if records_path is None:
            raise OptionError("--resume needs the --json or --csv output of the run to continue", option="--resume")
        # samples that failed are tried again: the recording may have been fixed (on_error="stop")
        finished, valid = _finished_records(records_path, json_path, header, positions)
        _check_finished_records(finished, items, n_outputs, records_path if records_path.exists() else json_path)
        done = {i: compact_record(r) for i, r in finished.items() if "error" not in r}
        if done and not items.by_path():
            _check_finished_events(items, done, records_path if records_path.exists() else json_path)
    elif records_path is not None and records_path.exists():
        raise OptionError(f"{records_path} holds the records of an unfinished run: --resume continues it; "
                          "delete that file to start over", option="--resume")
    trajectories = {} if keep_trajectories else None

    start = time.time()
    pending = [i for i in range(items.n) if i not in done]
    label = f"evsim eval ({config.mode}, " + ("Dask" if client is not None or scheduler else
                                             f"{workers} worker{'s' if workers > 1 else ''}") + ")"
    bar = Progress(items.n, label, progress, done=len(done))
    # each record's JSON text is encoded once (by the worker that ran it) for the records file;
    # the documents and the final CSV read it back from there (lines), and with the records on
    # disk only what the aggregates need of each stays in memory (summary_record)
    lines = RecordLines(records_path, items.n) if records_path is not None else None
    whole_records = return_samples or lines is None
    records_file = csv_file = None
    try:
        if records_path is not None:
            if resume and records_path.exists():
                records_file = RecordsFile(records_path, header, append=True, valid_bytes=valid)
                for i in done:
                    lines.set(i, positions[i])
            else:
                records_file = RecordsFile(records_path, header)
                for i in sorted(done):  # resumed from a JSON document only
                    lines.set(i, records_file.append(done[i]))
        if csv_path:
            csv_file = CsvRows(csv_path, items.n, [done[i] for i in sorted(done)])
        if not whole_records:
            done = {i: summary_record(r) for i, r in done.items()}
        if json_path:  # from now on the file describes this run (not a finished earlier one)
            write_json_atomic(json_path, _document(done, header, config, n_outputs, 0.0, complete=False,
                                                   final=False, workers=workers, data=data), lines)
    except OSError as exc:
        for f in (records_file, csv_file):
            if f is not None:
                f.close()
        raise EvsimError(f"cannot write {exc.filename or out} ({exc.strerror})") from None
    state = {"last_json": time.time(), "failed": None, "json_interval_s": json_interval_s}

    def keep(record: dict) -> None:
        traj = record.pop("_trajectory", None)
        text = record.pop("_json", None)
        if text is None:
            text = dumps_record(record)
        if trajectories is not None and traj is not None:
            trajectories[record["index"]] = traj
        done[record["index"]] = record if whole_records else summary_record(record)
        if records_file is not None:
            lines.set(record["index"], records_file.append_text(text))
        if csv_file is not None:
            csv_file.append(record)
        if "error" in record and on_error == "stop" and (state["failed"] is None
                                                         or record["index"] < state["failed"]["index"]):
            state["failed"] = record  # the first failure in sample order, whatever finished first
        if json_path and time.time() - state["last_json"] > state["json_interval_s"]:
            began = time.perf_counter()
            write_json_atomic(json_path, _document(done, header, config, n_outputs, time.time() - start,
                                                   complete=False, final=False, workers=workers, data=data),
                              lines)
            state["last_json"] = time.time()
            # the document grows with the run (15 KB per sample with a busy output): rewriting it
            # is kept to a small share of the run instead of growing quadratically with it
            state["json_interval_s"] = max(json_interval_s, (time.perf_counter() - began) / JSON_REWRITE_SHARE)
        bar.update(len(done))

    def run_here(batch: list) -> list:
        return runner.records([items.item(i) for i in batch], trajectories=keep_trajectories)

    with interrupt_guard as stop:
        try:
            if client is None and scheduler is None and workers == 1:
                done_here, t_first = 0, time.perf_counter()
                while done_here < len(pending) and not (stop or state["failed"]):
                    # a few samples at a time (SampleRunner.records), as many as take about
                    # BATCH_S: an interrupt still stops the run within about that time
                    size = 1 if done_here == 0 else _batch_size((time.perf_counter() - t_first) / done_here)
                    for record in run_here(pending[done_here:done_here + size]):
                        keep(record)
                    if done_here == 0:
                        _freeze_heap()  # what the first simulation loaded (numba, the engine)
                        t_first = time.perf_counter()
                    done_here += size
            else:
                _run_dask(items, pending, config, keep, stop, state, workers=workers, client=client,
                          scheduler=scheduler, security=security, chunk_size=chunk_size,
                          keep_trajectories=keep_trajectories, retries=retries)
        finally:
            for f in (records_file, csv_file):
                if f is not None:
                    f.close()
    complete = len(done) == items.n and not state["failed"]
    # the stop flag outlives the guard; a signal during the last samples stopped nothing: the run
    # is complete, not interrupted
    interrupted = bool(stop) and not complete
    wall = time.time() - start
    bar.update(len(done), final=True)
    doc = _document(done, header, config, n_outputs, wall, complete=complete, final=complete,
                    workers=state.get("workers", workers),
                    data=data)
    if interrupted:
        doc["interrupted"] = True
    try:
        if json_path:
            write_json_atomic(json_path, doc, lines)
        if csv_file is not None and complete:
            csv_file.put_in_sample_order()
    finally:
        if lines is not None:
            lines.close()
    if complete and records_path is not None and records_path.exists():
        records_path.unlink()  # the complete document (or CSV) holds every record
    if state["failed"] is not None:
        failed = state["failed"]
        raise EvsimError(f"{failed['path']}: {failed['error']}")
    if interrupted:
        raise KeyboardInterrupt
    if return_samples:
        doc["samples"] = [plain_record(r) for r in doc["samples"]]  # (kept compact until now)
    else:
        del doc["samples"]
    if trajectories is not None:
        doc["_trajectories"] = [trajectories.get(i) for i in range(items.n)]
    return doc


#: at most this share of an evaluation's wall time goes into rewriting its unfinished JSON
#: document (the records file, appended as samples finish, is what a resumed run reads)
JSON_REWRITE_SHARE = 0.02

#: the samples one process simulates between two looks at an interrupt take about this long
#: (at most BATCH_MAX of them): see SampleRunner.records for why several at a time
BATCH_S = 0.05
BATCH_MAX = 16


def _batch_size(seconds_per_sample: float) -> int:
    """How many samples of ``seconds_per_sample`` each make a batch of about BATCH_S."""
    if not seconds_per_sample > 0:
        return 1
    return int(max(1, min(BATCH_MAX, BATCH_S // seconds_per_sample)))


#: a local cluster of forked workers starts with a head start: a process that simulates samples
#: from the end of the queue while this one imports distributed and starts the cluster (0.4-0.6 s
#: in which the second core would be idle; :class:`~evsim.analysis.execution.HeadStart`)
HEAD_START = True


def _run_dask(items, pending, config, keep, stop, state, *, workers, client, scheduler, security, chunk_size,
              keep_trajectories, retries):
    """Chunks of samples as Dask tasks, at most a few per worker in flight, results kept in
    completion order. Chunks hold up to about a second of work and shrink towards the end
    (:func:`chunk_size_for`): each task costs the client's event loop (scheduler, result transfer)
    a few milliseconds of CPU, on the cores the workers need when they are few.

    A local cluster (``workers`` > 1, no client or scheduler given) is made of workers forked
    from this process (:class:`~evsim.analysis.execution.ForkedWorkers`) after it has simulated
    one synthetic event (:meth:`~evsim.analysis.execution.SampleRunner.warm_up`), which loads the
    engine they inherit; where forking is not safe (other threads running, not Linux) a
    LocalCluster spawns them. While this process imports distributed and starts the forked
    cluster, a :class:`~evsim.analysis.execution.HeadStart` process simulates samples from the
    end of the queue; Dask gets none of them before the head start's records are in."""
    import collections

    if not pending and client is None and not scheduler:
        return  # a resumed run with nothing left: no cluster to start
    cluster = own_client = forked = head = None
    if client is None and not scheduler:
        release_idle_dask_threads()  # a closed client's thread would stop the fork
    forking = client is None and not scheduler and can_fork_workers()
    if forking:
        runner_for(config).warm_up()  # the workers inherit the loaded engine
        if stop:
            return
        _freeze_heap()  # with the loaded engine, for this process and the processes it forks
        if HEAD_START:
            head = HeadStart(functools.partial(_head_start_work, config, keep_trajectories), items.item,
                             pending[::-1])

    dask_log, dask_log_level = logging.getLogger("distributed"), None
    try:
        import dask
        from distributed import Client, LocalCluster, as_completed

        # Dask's own notices (e.g. "Couldn't gather 1 keys, rescheduling" when a worker dies: the task
        # runs again elsewhere, results do not change) would interleave with the command's output
        dask_log_level = dask_log.level
        dask_log.setLevel(max(dask_log_level, logging.ERROR))
        if client is None:
            if scheduler:
                own_client = client = _connect(scheduler, security, stop)
                if client is None:  # interrupted while connecting
                    return
            elif forking and can_fork_workers():  # (importing distributed started no thread)
                if stop:
                    return
                _freeze_heap()  # with distributed, for this process and the workers
                forked = ForkedWorkers(workers)
                with dask.config.set(LOCAL_DASK_CONFIG):
                    cluster = LocalCluster(n_workers=0, host="127.0.0.1", dashboard_address=None, silence_logs=40)
                    own_client = client = Client(cluster)
                forked.connect(cluster.scheduler_address)
                _wait_for_forked(client, forked, workers)
            else:
                with dask.config.set(LOCAL_DASK_CONFIG):  # passed on to the spawned workers by their nannies
                    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                           host="127.0.0.1", dashboard_address=None, silence_logs=40)
                    own_client = client = Client(cluster)
        n_workers = max(1, len(client.scheduler_info().get("workers", {})) or workers)
        state["workers"] = n_workers  # what the document records: the cluster's, not --workers
        queue = collections.deque(pending)  # sample order
        timing = [0.0, 0]  # seconds the workers spent in finished chunks, samples in them
        # every future is kept until the cluster closes: releasing each as it is consumed sends
        # messages that can still be on their way when the scheduler closes (a CommClosedError
        # traceback logged at the end, seen in tests/test_evaluate.py)
        submitted = []
        outstanding = {}  # the first sample of each chunk whose records are not kept yet

        def submit(limit=None):  # limit: how many of the queue's first samples it may take
            size = chunk_size or chunk_size_for(len(queue), n_workers, timing[0] / timing[1] if timing[1] else None)
            work = [items.item(queue.popleft()) for _ in range(min(size, len(queue) if limit is None else limit))]
            fut = client.submit(_run_chunk_timed, config, work, keep_trajectories, retries=retries, pure=False)
            submitted.append(fut)
            outstanding[fut.key] = work[0][0]  # (the queue is in sample order)
            return fut

        def settled_failure() -> bool:
            """on_error="stop" and a sample failed: the samples after it need not run, and once
            none before it is left to run (queued or in a chunk) it is the first failure in
            sample order, the one a single worker stops at (its records kept)."""
            if not state["failed"]:
                return False
            first_bad = state["failed"]["index"]
            while queue and queue[-1] > first_bad:
                queue.pop()
            return not queue and all(first >= first_bad for first in outstanding.values())

        watch = {"since": None, "asked": 0.0}  # when an external cluster was last seen without workers
        # with_results: the client's event loop fetches each result as its task ends
        ac = as_completed(loop=client.loop, with_results=True, raise_errors=False)
        if head is not None:
            head.stop()
            taken = head.taken()  # never handed to Dask before its records are in
            while len(queue) > taken and len(submitted) < 3 * n_workers:
                ac.add(submit(limit=len(queue) - taken))
            _keep_head_start(head, queue, keep)
            head = None
        while queue and len(submitted) < 3 * n_workers and not settled_failure():
            ac.add(submit())
        while not ac.is_empty():
            if stop or settled_failure():
                break
            batch = ac.next_batch(block=False)
            if not batch:
                if forked is not None and not forked.alive():
                    raise EvsimError("every local Dask worker process died")
                if forked is None and cluster is None:
                    _check_cluster_has_workers(client, watch, scheduler or "the client's scheduler")
                _wait_for_results(ac, 0.25)
                continue
            for fut, result in batch:
                if fut.status != "finished":  # e.g. KilledWorker after the retries
                    exc = result[1] if isinstance(result, tuple) and len(result) == 3 else result
                    raise EvsimError(f"a Dask task failed: {type(exc).__name__}: {exc}")
                records, seconds = result
                outstanding.pop(fut.key, None)
                timing[0] += seconds
                timing[1] += len(records)
                for record in records:
                    keep(record)
                if queue and not stop and not settled_failure():
                    ac.add(submit())
        unfinished = [f for f in submitted if not f.done()]
        if unfinished:
            client.cancel(unfinished)
    finally:
        if head is not None:  # stopped early (an interrupt, an error): its finished samples are kept
            _keep_head_start(head, collections.deque(), keep)
        # closing while results are still on their way (an interrupt, an error) makes their
        # transfers fail in Dask's event loop, which tornado logs with a traceback: expected here
        loop_log = logging.getLogger("tornado.application")
        loop_log_level = loop_log.level
        loop_log.setLevel(logging.CRITICAL + 1)
        if own_client is not None:
            try:
                own_client.close(timeout=10)
            except Exception:  # noqa: BLE001 — closing is best effort
                pass
        if cluster is not None:
            try:
                cluster.close(timeout=10)
            except Exception:  # noqa: BLE001
                pass
        if forked is not None:  # after the scheduler: it does not see (and log) its workers vanish
            forked.close()
        if own_client is not None:  # a client of ours: no thread of it left behind
            release_dask_offload_thread()
        loop_log.setLevel(loop_log_level)
        if dask_log_level is not None:
            dask_log.setLevel(dask_log_level)


#: seconds a Dask scheduler has to answer (connection and handshake) before the run gives up
SCHEDULER_TIMEOUT_S = 10.0
#: seconds an external cluster may have no worker at all (none joined yet, or every one died)
#: before the run stops, finished samples written; the scheduler is asked every few seconds
NO_WORKERS_TIMEOUT_S = 60.0


def scheduler_address(address, security=None) -> str:
    """``address`` as Dask's client takes it (``tcp://`` added to a bare ``host:port``), or
    OptionError: only ``tcp://`` and ``tls://`` (evsim's workers are other machines' processes),
    a port in 1..65535, and ``tls://`` with certificates (``security`` or Dask's configuration)."""
    if not isinstance(address, str) or not address.strip():
        raise OptionError(f"must be an address like tcp://HOST:8786, got {shown(address)}", option="--scheduler")
    address = address.strip()
    scheme, sep, rest = address.partition("://")
    if not sep:
        scheme, rest = "tcp", address
    if scheme not in ("tcp", "tls"):
        raise OptionError(f"{scheme}:// is not supported: tcp://HOST:PORT or tls://HOST:PORT", option="--scheduler")
    host, colon, port = rest.rpartition(":")
    if not colon or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise OptionError(f"{shown(address)} is not HOST:PORT with a port in 1..65535", option="--scheduler")
    if scheme == "tls" and security is None:
        import dask

        if not dask.config.get("distributed.comm.tls.ca-file", None):
            raise OptionError("tls:// needs certificates: --tls-ca-file, --tls-cert and --tls-key (or Dask's "
                              "distributed.comm.tls configuration)", option="--scheduler")
    return f"{scheme}://{rest}"


def _check_cluster_has_workers(client, watch: dict, where: str) -> None:
    """EvsimError once the scheduler has had no worker for :data:`NO_WORKERS_TIMEOUT_S` (the run
    would otherwise wait for ever, silently: a scheduler queues tasks until a worker comes)."""
    now = time.monotonic()
    if now - watch["asked"] < min(5.0, NO_WORKERS_TIMEOUT_S / 4):
        return
    watch["asked"] = now
    try:
        n = len(client.nthreads())
    except Exception:  # noqa: BLE001 — the scheduler itself gone: Dask's own errors report it
        return
    if n:
        watch["since"] = None
    elif watch["since"] is None:
        watch["since"] = now
    elif now - watch["since"] >= NO_WORKERS_TIMEOUT_S:
        raise EvsimError(f"the Dask scheduler at {where} has had no workers for {NO_WORKERS_TIMEOUT_S:g} s "
                         "(start some with `dask worker ADDRESS --nthreads 1`; finished samples are written, "
                         "--resume continues)")


def _connect(scheduler: str, security, stop):
    """A ``distributed.Client`` of the scheduler at ``scheduler``, or OptionError within about
    :data:`SCHEDULER_TIMEOUT_S` seconds; None when ``stop`` (Ctrl-C, SIGTERM) is set meanwhile.

    The client is made in a helper thread that this one waits for: Dask's own ``timeout`` covers
    the TCP connection only, and a listener that accepts and then says nothing (not a Dask
    scheduler) would otherwise block the command for ever, deaf to signals."""
    import threading

    from distributed import Client

    outcome: dict = {}
    lock = threading.Lock()
    runners = []  # the loop runner of the client being made (its "IO loop" thread)

    class OwnLoopClient(Client):
        def start(self, **kwargs):
            runners.append(self._loop_runner)
            return super().start(**kwargs)

    def connect():
        try:
            client = OwnLoopClient(scheduler, security=security, timeout=f"{SCHEDULER_TIMEOUT_S:g}s",
                                   set_as_default=False)
        except BaseException as exc:  # noqa: BLE001 — reported below, in this thread's caller
            outcome["error"] = exc
            _stop_loop_runners(runners)
            return
        with lock:
            given_up = outcome.get("given_up", False)
            if not given_up:
                outcome["client"] = client
        if given_up:  # connected after the caller stopped waiting: nobody will use it
            try:
                client.close(timeout=2)
            except Exception:  # noqa: BLE001 — closing is best effort
                pass
            _stop_loop_runners(runners)

    thread = threading.Thread(target=connect, name="evsim scheduler connection", daemon=True)
    thread.start()
    deadline = time.monotonic() + SCHEDULER_TIMEOUT_S + 2.0
    while thread.is_alive() and not stop and time.monotonic() < deadline:
        thread.join(0.1)
    with lock:
        if "client" in outcome:
            return outcome["client"]
        outcome["given_up"] = True
    if stop:
        return None
    exc = outcome.get("error")
    if exc is None:
        detail = f"no answer within {SCHEDULER_TIMEOUT_S:g} s: is it a Dask scheduler?"
    else:
        text = str(exc).splitlines()[0] if str(exc) else ""
        detail = f"{type(exc).__name__}{': ' + text[:200] if text else ''}"
    raise OptionError(f"cannot reach the Dask scheduler at {scheduler} ({detail})", option="--scheduler")


def _stop_loop_runners(runners: list) -> None:
    """Stop the loop runner of a Client that failed to connect, whenever it fails (one that
    cannot reach its scheduler keeps its "IO loop" thread running): left alive, that thread
    would make every later local evaluation in this process spawn its workers instead of forking
    them (:func:`~evsim.analysis.execution.can_fork_workers`). Only that client's runner is
    stopped, never a loop another client of the process uses."""
    for runner in runners:
        try:
            if runner.is_started():
                runner.stop()
        except Exception:  # noqa: BLE001 — best effort
            pass


#: seconds of work per Dask task once the workers have reported how long a sample takes; a
#: task costs the client about 5–10 ms of CPU (scheduler, result transfer), so tasks much shorter
#: than this spend the cores the workers need on 2 cores
CHUNK_TARGET_S = 1.0


def chunk_size_for(remaining: int, n_workers: int, sample_s: float | None) -> int:
    """Samples in the next Dask task when ``remaining`` samples are not submitted yet.

    At most a quarter of one worker's share of what is left (``remaining / (4 n_workers)``), so
    chunks shrink towards the end and the workers finish together; before any timing is known (the
    first few tasks) at most 16 samples; then at most :data:`CHUNK_TARGET_S` of work at the
    measured ``sample_s`` seconds per sample (a sample of a second or more goes alone) and at least
    a tenth of that, unless that is more than one worker's share of what is left. The records do
    not depend on it (every sample is simulated on its own)."""
    share = -(-remaining // (4 * n_workers))
    if sample_s is None:
        return max(1, min(16, share, remaining))
    most = max(1, int(CHUNK_TARGET_S / max(sample_s, 1e-9)))
    least = min(max(1, most // 10), -(-remaining // n_workers))
    return max(1, min(remaining, most, max(least, share)))


def _wait_for_results(ac, timeout: float) -> None:
    """Until ``ac`` (a ``distributed.as_completed``) has a result or ``timeout`` s have passed.
    Its thread condition is notified after each result is queued; waiting on it instead of polling
    keeps the client asleep while the workers run (a signal still ends the wait: the flag is
    checked when it returns)."""
    cond = getattr(ac, "thread_condition", None)
    if cond is None or not hasattr(ac, "has_ready"):  # another distributed: poll
        time.sleep(0.02)
        return
    with cond:
        if not ac.has_ready():
            cond.wait(timeout)


def _wait_for_forked(client, forked, n: int, limit_s: float = 120.0) -> None:
    """Until the ``n`` forked workers have joined the scheduler (EvsimError if one dies first).
    Asks the scheduler every 5 ms (``Client.wait_for_workers`` sleeps 0.1 s between its checks,
    while forked workers join in a few tens of milliseconds)."""
    deadline = time.time() + limit_s
    while True:
        if client.sync(_running_workers, client, n, min(deadline, time.time() + 1.0)) >= n:
            return
        if forked.alive() < n or time.time() > deadline:
            raise EvsimError(f"the {n} local Dask worker processes did not start")


async def _running_workers(client, n: int, until: float) -> int:
    """The number of running workers of ``client``'s scheduler once it reaches ``n`` or at ``until``."""
    import asyncio

    while True:
        info = await client.scheduler.identity(n_workers=-1)
        running = sum(1 for ws in info.get("workers", {}).values() if ws.get("status", "running") == "running")
        if running >= n or time.time() >= until:
            return running
        await asyncio.sleep(0.005)


def _run_chunk_timed(config, items, trajectories: bool = False):
    """The Dask task: ``(records, seconds)``, the records of ``items``
    (:func:`~evsim.analysis.execution.run_chunk`, with each sample's uncut trajectory under
    ``"_trajectory"`` if ``trajectories``) and the wall time they took in the worker (for the
    size of the next chunks, :func:`chunk_size_for`)."""
    t0 = time.perf_counter()
    records = _run_chunk_with_trajectories(config, items) if trajectories else run_chunk(config, items)
    return records, time.perf_counter() - t0


def _head_start_work(config, trajectories: bool, items) -> list:
    """What :class:`~evsim.analysis.execution.HeadStart` runs: the records of a Dask task."""
    return _run_chunk_timed(config, items, trajectories)[0]


def _keep_head_start(head, queue, keep) -> None:
    """Stop the head start, keep its records, and take its samples off the end of ``queue``."""
    head.stop()
    records = head.records()
    finished = {record["index"] for record in records}
    for record in records:
        keep(record)
    while queue and queue[-1] in finished:
        queue.pop()


def _run_chunk_with_trajectories(config, items):
    out = []
    for record in runner_for(config).records(items, trajectories=True):
        traj = record.pop("_trajectory", None)
        with_text(record)  # (the text without the trajectory)
        if traj is not None:
            record["_trajectory"] = traj
        out.append(record)
    return out


def _finished_records(records_path: Path, json_path, header: dict,
                      positions: dict | None = None) -> tuple[dict, int | None]:
    """(finished records, bytes of the records file's complete lines or None) of an interrupted run
    (records file, else the JSON document), after checking that model, options and data match.
    ``positions``: filled with where each record's text is in the records file
    (:func:`~evsim.analysis.records.read_records_file`)."""
    source, found, valid = None, None, None
    if records_path.exists():
        source = records_path
        found_header, records, valid = read_records_file(records_path, positions)
        found = found_header
    elif json_path and Path(json_path).exists():
        source = Path(json_path)
        try:
            doc = json.loads(source.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise OptionError(f"cannot resume from {source} ({exc})", option="--resume") from None
        if doc.get("format") != EVAL_FORMAT:
            raise OptionError(f"cannot resume from {source}: written by another evsim version (format "
                              f"{shown(doc.get('format'))}, this one reads {EVAL_FORMAT}); start over without --resume",
                              option="--resume")
        found = {k: doc.get(k) for k in ("model_hash", "options", "data")}
        samples, errors = doc.get("samples", []), doc.get("errors", [])
        if not (isinstance(samples, list) and isinstance(errors, list)):
            raise OptionError(f"cannot resume from {source}: its samples or errors are not lists; start over "
                              "without --resume", option="--resume")
        records = {record_index(r, f"{source}: samples[{k}]"): r for k, r in enumerate(samples)}
        for k, e in enumerate(errors):
            records[record_index(e, f"{source}: errors[{k}]")] = {
                "index": e["index"], "path": e.get("path"), "label": e.get("label"), "error": e.get("message")}
    else:
        return {}, None
    for key, what in (("model_hash", "model differs"), ("options", "options differ"), ("data", "data differ")):
        mine = header[key]
        theirs = found.get(key)
        if key == "data":
            mine = {k: mine[k] for k in ("n_samples", "fingerprint")}
            theirs = {k: (theirs or {}).get(k) for k in ("n_samples", "fingerprint")}
        if key == "options":  # the model is checked by its hash, not by the path it was given as
            mine = {k: v for k, v in mine.items() if k != "model_path"}
            theirs = {k: v for k, v in (theirs or {}).items() if k != "model_path"}
        if json.loads(json.dumps(mine)) != theirs:
            raise OptionError(f"cannot resume from {source}: the {what} from that run's"
                              + _difference(key, header[key], found.get(key)), option="--resume")
    return records, valid


def _check_finished_records(finished: dict, items, n_outputs: int, source) -> None:
    """OptionError unless every record read back for a resume is one this run could have written:
    an index of the data (for a folder, with its path and label), and the fields the aggregates
    read of the types and ranges evsim writes (a damaged or edited file would otherwise give a
    traceback, or a document with more samples than the data or shifted class counts)."""
    by_path = items.by_path()

    def number(v, low=0.0, null=False):
        if v is None:
            return null
        return not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v) and v >= low

    def count(v):
        return not isinstance(v, bool) and isinstance(v, int) and v >= 0

    def column(v, ok):
        return isinstance(v, list) and all(ok(x) for x in v)

    def problem(i, r) -> str | None:
        if not isinstance(r, dict):
            return "not a record"
        if not (count(i) and i < items.n):
            return f"index {shown(i)} is not one of the data's {items.n} samples"
        if by_path:
            _, path, label = items.item(i)
            if r.get("path") != path:
                return f"path {shown(r.get('path'))}, not the data's {shown(path)}"
            if r.get("label") != label:
                return f"label {shown(r.get('label'))}, not the data's {shown(label)}"
        if "error" in r:
            return None if isinstance(r["error"], str) else "its error is not a message"
        prediction, label = r.get("prediction"), r.get("label")
        if not (prediction is None or (count(prediction) and prediction < n_outputs)):
            return f"prediction {shown(prediction)} is not an output of the model"
        if r.get("correct") is not (label is not None and prediction == label):
            return f"'correct' {shown(r.get('correct'))} does not follow from its prediction and label"
        for key in ("decision_time_us", "oct_us", "confidence"):
            if not number(r.get(key), -math.inf if key == "confidence" else 0.0, null=True):
                return f"{key} {shown(r.get(key))}"
        consumed, total = r.get("events_consumed"), r.get("events_total")
        if not (count(consumed) and count(total) and consumed <= total):
            return f"events {shown(consumed)} of {shown(total)}"
        if not number(r.get("synops")) or not isinstance(r.get("status"), str):
            return f"synops {shown(r.get('synops'))} or status {shown(r.get('status'))}"
        digest = r.get("anytime")
        if digest is None:
            return None
        peaks = digest.get("peaks") if isinstance(digest, dict) else None
        if not (isinstance(peaks, dict) and number(digest.get("duration_us"))
                and isinstance(digest.get("final_correct"), bool)
                and column(digest.get("flip_t_us"), number) and column(digest.get("flip_events"), count)
                and len(digest["flip_t_us"]) == len(digest["flip_events"])
                and column(peaks.get("confidence"), lambda x: number(x, -math.inf))
                and column(peaks.get("t_us"), number) and column(peaks.get("events"), count)
                and column(peaks.get("correct"), lambda x: isinstance(x, bool))
                and len({len(peaks[k]) for k in ("confidence", "t_us", "events", "correct")}) == 1):
            return "its anytime digest is not one evsim writes"
        return None

    for i, r in finished.items():
        why = problem(i, r)
        if why is not None:
            raise OptionError(f"cannot resume from {source}: sample {shown(i)}'s record is damaged ({why}); "
                              "start over without --resume", option="--resume")


def _check_finished_events(items, done: dict, source) -> None:
    """In-memory data: every finished sample's events must be those of that run (its record's
    ``events_digest``); the data fingerprint covers the count and the first and last samples only."""
    for i in sorted(done):
        if i >= items.n:
            continue
        digest = done[i].get("events_digest")
        if digest != events_digest(items.item(i)[1]):
            why = "its record has no digest of them" if digest is None else "they differ"
            raise OptionError(f"cannot resume from {source}: sample {i}'s events are not those of that run ({why}); "
                              "start over without --resume", option="--resume")


def _difference(key: str, mine, theirs) -> str:
    """What differs between this run's ``key`` and that of the run to resume, in a few words."""
    if key == "data":
        theirs = theirs or {}
        if mine.get("n_samples") != theirs.get("n_samples"):
            return f" ({theirs.get('n_samples')} samples then, {mine.get('n_samples')} now)"
        return (f" (the same number of samples, other recordings, paths or labels; that run read "
                f"{theirs.get('description') or 'in-memory data'})")
    if key == "options":
        mine, theirs = mine or {}, theirs or {}
        names = sorted(k for k in set(mine) | set(theirs) if k != "model_path"
                       and json.loads(json.dumps(mine.get(k))) != theirs.get(k))
        return f" ({', '.join(names)})" if names else ""
    return ""


def _document(done: dict, header: dict, config: EvalConfig, n_outputs: int, wall_s: float, *, complete: bool,
              final: bool, workers: int, data: str) -> dict:
    """The eval document of the records so far (anytime summary only when ``final``)."""
    ordered = [done[i] for i in sorted(done)]
    records = [r for r in ordered if "error" not in r]
    errors = [r for r in ordered if "error" in r]
    summary = summarise(records, errors, n_outputs=n_outputs, anytime=final and config.records_anytime)
    doc = {
        "format": EVAL_FORMAT,
        "evsim_version": header["evsim_version"],
        "complete": complete,
        "model": config.model_path,
        "model_hash": header["model_hash"],
        "profile": config.profile,
        "mode": config.mode,
        "precision": config.precision,
        "cutoff": config.cutoff.describe(),
        "options": header["options"],
        "data": header["data"],
    }
    if config.mode == "clock":
        doc["bin_us"] = config.bin_us
        doc["n_bins"] = config.n_bins
    doc.update(summary)
    doc["wall_s"] = wall_s
    doc["samples_per_s"] = len(ordered) / wall_s if wall_s > 0 else 0.0
    doc["workers"] = workers
    doc["samples"] = records
    return doc


# --------------------------------------------------------------------------------------------
# comparing two results
# --------------------------------------------------------------------------------------------


def compare_results(doc_a: dict, doc_b: dict, confidence: float = 0.95) -> dict:
    """Paired accuracy difference A − B of two eval documents on the same recordings (matched by
    path; samples in only one of them are left out and counted), with its interval
    (:func:`evsim.analysis.statistics.paired_difference_interval`)."""
    from .statistics import paired_difference_interval

    (a, label_a), (b, label_b) = (_samples_by_path(doc, name) for doc, name in ((doc_a, "A"), (doc_b, "B")))
    common = sorted(set(a) & set(b))
    if not common:
        raise OptionError("the two results share no recording", option="RESULTS")
    for p in common:  # the same recording with other labels is other data: no paired comparison
        if label_a[p] != label_b[p]:
            raise OptionError(f"{p} has label {label_a[p]} in result A but {label_b[p]} in result B: "
                              "not the same data", option="RESULTS")
    diff = paired_difference_interval([a[p] for p in common], [b[p] for p in common], confidence)
    only_a, only_b = set(a) - set(b), set(b) - set(a)
    diff.update(confidence=confidence, only_in_a=len(only_a), only_in_b=len(only_b),
                accuracy_a=float(np.mean([a[p] for p in common])), accuracy_b=float(np.mean([b[p] for p in common])),
                # of those left out, the recordings the other run could not evaluate (error records)
                only_in_a_errors_in_b=len(only_a & _error_paths(doc_b)),
                only_in_b_errors_in_a=len(only_b & _error_paths(doc_a)),
                incomplete=[name for doc, name in ((doc_a, "A"), (doc_b, "B")) if doc.get("complete") is False])
    return diff


def _error_paths(doc: dict) -> set:
    errors = doc.get("errors", [])
    return {e["path"] for e in errors if isinstance(e, dict) and isinstance(e.get("path"), str)} \
        if isinstance(errors, list) else set()


def _samples_by_path(doc: dict, name: str) -> tuple:
    """({path: correct}, {path: label}) of an eval document's samples, or OptionError naming the
    document (also for a recording listed twice)."""
    samples = doc.get("samples", []) if isinstance(doc, dict) else None
    if not isinstance(samples, list):
        raise OptionError(f"result {name}: 'samples' is not a list of sample records", option="RESULTS")
    out, labels = {}, {}
    for k, r in enumerate(samples):
        if not (isinstance(r, dict) and isinstance(r.get("path"), str) and isinstance(r.get("correct"), bool)):
            raise OptionError(f"result {name}: samples[{k}] is not a sample record (a path and whether it was "
                              "correct)", option="RESULTS")
        if r["path"] in out:
            raise OptionError(f"result {name}: {r['path']} appears twice among its samples", option="RESULTS")
        out[r["path"]] = r["correct"]
        labels[r["path"]] = r.get("label")
    return out, labels


def write_json(path, doc: dict) -> None:
    """Write an eval document (drops in-memory-only keys)."""
    write_json_atomic(path, doc)


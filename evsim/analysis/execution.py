"""Running samples: one simulator per worker, one simulation per sample, in this process or on
Dask workers.

**One simulation per sample.** Without a cutoff the run records its output trajectory as it goes
(``record_output``), which gives the record and the anytime digest at once. With a cutoff (event
mode) the sample runs *with* the cutoff and ``record_output`` until the engine decides; its
record is taken there — it is the record of a real engine run with that cutoff, not a replay, so
SynOps, spikes per layer and events consumed are the engine's own — and then the same engine
state continues with the cutoff switched off over the input events not consumed yet, which
completes the uncut trajectory for the anytime analysis and the oracle cutoff time. All engine
state lives in the state arrays, so continuing is exactly what an uncut run does after that
output change (checked bit for bit in tests/test_evaluate.py); every input event is processed
once. We chose this over replaying the rule on an uncut trajectory because the replay would need
SynOps and per-layer spikes at every output change, which the engine does not record.

In clock mode with a cutoff there is no such continuation; the sample runs with the cutoff only
and the anytime digest is left out (``anytime`` is then absent from the document).

**Workers.** :class:`SampleRunner` compiles the model and builds its simulator once; a worker
process keeps one runner per configuration (:func:`runner_for`). Work items are
``(index, path, label)`` — workers read the recording files themselves, nothing read from a file
is ever unpickled — or ``(index, events, label)`` for in-memory datasets given to the API.

**Dask.** A Dask scheduler runs whatever code its clients send: anyone who can reach it can run
code as the user of every worker. A LocalCluster started here listens on 127.0.0.1 only; for an
existing cluster use TLS (``--tls-ca-file``, ``--tls-cert``, ``--tls-key``, or a Dask security
configuration) and do not expose the scheduler port beyond the machines you trust.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import EvsimError, OptionError, message_without, real_option
from ..sim import DEFAULT_BUDGET, MODES
from ..sim.result import Cutoff
from .records import dumps_record, error_record, sample_record
from .trajectory import Trajectory

__all__ = ["EvalConfig", "SampleRunner", "runner_for", "run_chunk", "Progress", "ForkedWorkers", "can_fork_workers",
           "release_idle_dask_threads", "HeadStart", "events_digest"]


@dataclass
class EvalConfig:
    """Everything that defines how each sample is simulated (plain data, sent to workers)."""

    model_path: str
    profile: str | None = None  # None: as the model declares it, else strict NIR (like load_model)
    overrides: dict = field(default_factory=dict)
    precision: str = "float32"
    mode: str = "event"  # or "clock"
    bin_us: float | None = None
    n_bins: int | None = None
    cutoff: Cutoff = field(default_factory=Cutoff)
    transform: dict = field(default_factory=dict)
    sort: bool = False
    budget: int | None = None
    anytime: bool = True  # also record the uncut trajectory (OCT, anytime curves)
    time_origin: str = "first-event"  # the sample window (docs/SEMANTICS.md#time-window)
    duration_us: float | None = None

    def __post_init__(self):
        from ..input.window import SampleWindow
        from ..model.profiles import Overrides
        from ..sim import PRECISIONS

        # the API takes what the command line parses: a wrong type is an OptionError, not a TypeError
        if not isinstance(self.model_path, (str, os.PathLike)):
            raise OptionError(f"must be a path, got {type(self.model_path).__name__}", option="model_path")
        self.model_path = os.fspath(self.model_path)
        if not isinstance(self.overrides, dict):
            raise OptionError(f"must be a dict of option values, got {type(self.overrides).__name__}", option="overrides")
        # load_model's keyword options: the profile overrides and the quantisation
        known = set(Overrides.__dataclass_fields__) | {"quantize"}
        unknown = sorted(str(k) for k in self.overrides if k not in known)
        if unknown:
            raise OptionError(f"unknown override(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}",
                              option="overrides")
        Overrides(**{k: v for k, v in self.overrides.items() if k != "quantize" and v is not None})  # validates values
        if self.precision not in PRECISIONS:
            raise OptionError(f"must be {' or '.join(PRECISIONS)}, got {self.precision!r}", option="--precision")
        if not isinstance(self.cutoff, Cutoff):
            raise OptionError(f"must be an evsim Cutoff, got {type(self.cutoff).__name__}", option="cutoff")
        if not isinstance(self.transform, dict):
            raise OptionError(f"must be a dict, got {type(self.transform).__name__}", option="transform")
        for flag in ("sort", "anytime"):
            if not isinstance(getattr(self, flag), (bool, np.bool_)):
                raise OptionError(f"must be True or False, got {getattr(self, flag)!r}", option=flag)
            setattr(self, flag, bool(getattr(self, flag)))
        if self.bin_us is not None:
            self.bin_us = real_option(self.bin_us, "--bin-us")
        if self.n_bins is not None:
            self.n_bins = real_option(self.n_bins, "--n-bins", integer=True)
        if self.budget is not None:
            self.budget = real_option(self.budget, "--budget", integer=True)
        SampleWindow(self.time_origin, self.duration_us)  # validates both
        if self.profile is None:  # resolved here: results and resume record the profile used
            from ..model.declared import declared_profile

            self.profile = declared_profile(self.model_path)
        if self.mode not in MODES:
            raise OptionError(f"must be {' or '.join(MODES)}, got {self.mode!r}", option="--mode")
        if self.mode == "clock" and (self.bin_us is None) == (self.n_bins is None):
            raise OptionError("clock mode needs exactly one of --bin-us and --n-bins", option="--mode")
        if self.bin_us is not None and not self.bin_us > 0:
            raise OptionError("must be > 0", option="--bin-us")
        if self.n_bins is not None and not self.n_bins >= 1:
            raise OptionError("must be >= 1", option="--n-bins")
        if self.budget is not None and not self.budget > 0:
            raise OptionError("must be > 0", option="--budget")
        if self.budget == DEFAULT_BUDGET:  # the default, given or not: the same run (resume compares them)
            self.budget = None

    @property
    def records_anytime(self) -> bool:
        """Whether records carry the anytime digest (see the module docstring)."""
        return self.anytime and (self.mode == "event" or self.cutoff.mode == "none")

    def options(self) -> dict:
        """Every option that changes results, JSON-able (provenance; resume checks it)."""
        d = asdict(self)
        d["cutoff"] = self.cutoff.describe()
        d["overrides"] = {k: v for k, v in sorted(self.overrides.items()) if v is not None}
        d["transform"] = {k: list(v) if isinstance(v, tuple) else v for k, v in sorted(self.transform.items())}
        return json.loads(json.dumps(d))

    def key(self) -> str:
        return hashlib.sha256(json.dumps(self.options(), sort_keys=True).encode()).hexdigest()[:16]


class SampleRunner:
    """Compiles the model and builds the simulator once; simulates samples one per call."""

    def __init__(self, config: EvalConfig, model=None):
        from ..compile.builder import load_model
        from ..input.transforms import build_transform

        self.config = config
        self.model = model if model is not None else load_model(config.model_path, profile=config.profile,
                                                                precision=config.precision, **config.overrides)
        self.transform = build_transform(config.transform)
        self.sim = self._build(config.cutoff, record_output=config.records_anytime)
        self._uncut_fallback = None
        self._extra_sims = {}
        self.last_trajectory = None  # uncut trajectory of the last sample (anytime on)

    def _build(self, cutoff: Cutoff, record_output: bool):
        if self.config.mode == "clock":
            from ..sim.clock import ClockSimulator

            return ClockSimulator(self.model, bin_us=self.config.bin_us, n_bins=self.config.n_bins, cutoff=cutoff,
                                  record_output=record_output, **self._window())
        from ..sim.event import Simulator

        kwargs = {} if self.config.budget is None else {"budget": self.config.budget}
        return Simulator(self.model, cutoff=cutoff, record_output=record_output, **self._window(), **kwargs)

    def _window(self) -> dict:
        return {"time_origin": self.config.time_origin, "duration_us": self.config.duration_us}

    def simulator(self, cutoff: Cutoff, record_output: bool, record_spikes: bool = False):
        """A simulator of this runner's model for other uses (``evsim run``, ``evsim raster``),
        built once per (cutoff, recording options)."""
        key = (json.dumps(cutoff.describe(), sort_keys=True), record_output, record_spikes)
        if key not in self._extra_sims:
            if self.config.mode == "clock":
                from ..sim.clock import ClockSimulator

                sim = ClockSimulator(self.model, bin_us=self.config.bin_us, n_bins=self.config.n_bins, cutoff=cutoff,
                                     record_output=record_output, record_spikes=record_spikes, **self._window())
            else:
                from ..sim.event import Simulator

                kwargs = {} if self.config.budget is None else {"budget": self.config.budget}
                sim = Simulator(self.model, cutoff=cutoff, record_output=record_output, record_spikes=record_spikes,
                                **self._window(), **kwargs)
            self._extra_sims[key] = sim
        return self._extra_sims[key]

    def events(self, path: str):
        """The recording at ``path``, read and transformed (a Recording)."""
        from ..input.recordings import read_recording

        rec = read_recording(path, sort=self.config.sort)
        return self.transform.apply(rec) if self.transform else rec

    def events_of(self, path: str) -> np.ndarray:
        return self.events(path).events

    def prepare(self, events, source: str | None = None) -> np.ndarray:
        """In-memory events (any structured array with t, x[, y, p]) → checked EVENT_DTYPE array."""
        from ..input.events import as_events, check_sorted, sort_events

        ev = as_events(np.asarray(events), source=source)
        if self.config.sort:
            ev = sort_events(ev)
        else:
            check_sorted(ev, source=source)
        return self.transform(ev) if self.transform else ev

    def run_events(self, events: np.ndarray, source: str):
        """(result, trajectory or None) of one sample: one simulation (see the module docstring)."""
        sim = self.sim
        self.last_trajectory = None
        result = sim.run(events, source=source)
        if not self.config.records_anytime:
            return result, None
        full = result
        if self.config.cutoff.mode != "none" or self.config.cutoff.max_time_us is not None \
                or self.config.cutoff.max_events is not None:
            full = self._continue_uncut(events, source)
        self.last_trajectory = Trajectory.from_result(full, label=None, duration_us=self.span_us(events))
        return result, self.last_trajectory

    def span_us(self, events: np.ndarray) -> float:
        """The sample's length in µs: its duration, else from its time origin to its last event."""
        if self.config.duration_us is not None:
            return float(self.config.duration_us)
        if not events.size:
            return 0.0
        origin = 0 if self.config.time_origin == "zero" else int(events["t"][0])
        return float(int(events["t"][-1]) - origin)

    def _continue_uncut(self, events: np.ndarray, source: str):
        """The uncut result of the sample whose cut run ``self.sim`` just made: the event engine
        goes on from the same state (:meth:`evsim.sim.event.Simulator.continue_uncut`); the clock
        mode (which records no anytime trajectory under a cutoff) runs again."""
        if hasattr(self.sim, "continue_uncut"):
            return self.sim.continue_uncut(events, source=source)
        if self._uncut_fallback is None:
            self._uncut_fallback = self._build(Cutoff(), record_output=True)
        return self._uncut_fallback.run(events, source=source)

    def __call__(self, item) -> dict:
        """Record (or error record) of one work item ``(index, path or events, label)``."""
        return self.records([item])[0]

    def warm_up(self) -> None:
        """Load what a sample needs (the event loop from numba's cache above all) by simulating
        one synthetic event, at input address 0 and time 0: worker processes forked afterwards
        inherit it, and no real sample has to run here first."""
        from ..input.events import EVENT_DTYPE

        try:
            self.run_events(np.zeros(1, dtype=EVENT_DTYPE), "<warm-up>")
        except EvsimError:
            pass  # (a real sample will say what is wrong)

    def records(self, items, trajectories: bool = False) -> list:
        """Records (or error records) of work items ``(index, path or events, label)``, in order;
        with ``trajectories``, each record of a simulated sample carries its uncut trajectory under
        ``"_trajectory"`` (anytime analysis on).

        The work is done in phases, every item's recording read, then every item simulated, then
        every record made: the Python and numpy code of a phase stays in the core's caches from one
        item to the next instead of being evicted by each simulation, which makes it 2-3x slower
        (benchmarks/README.md, "Whole evaluations: the per-sample work"). The records are those of
        one item at a time."""
        loaded = [self._load(item) for item in items]  # (index, name, label, events or the error)
        ran = [x if isinstance(x, EvsimError) else self._simulate(x, name) for _, name, _, x in loaded]
        records = [self._record(index, name, label, outcome, trajectories)
                   for (index, name, label, _), outcome in zip(loaded, ran)]
        for (_, source, _), record in zip(items, records):
            if not isinstance(source, str):  # in-memory events: what --resume checks them by
                record["events_digest"] = events_digest(source)
        return records

    def _load(self, item) -> tuple:
        index, source, label = item
        name = source if isinstance(source, str) else f"<sample {index}>"
        try:
            return index, name, label, self.events_of(source) if isinstance(source, str) else self.prepare(source, name)
        except EvsimError as exc:
            return index, name, label, exc

    def _simulate(self, events, name):
        try:
            return self.run_events(events, name)
        except EvsimError as exc:
            return exc

    @staticmethod
    def _record(index, name, label, outcome, trajectories: bool) -> dict:
        if isinstance(outcome, EvsimError):
            return error_record(index, name, label, message_without(outcome, name))  # (the record names the path)
        result, traj = outcome
        if traj is not None:
            traj.label = None if label is None else int(label)
        record = sample_record(name, label, result, traj, index=index, compact=True)
        if trajectories and traj is not None:
            record["_trajectory"] = traj
        return record


# --------------------------------------------------------------------------------------------
# workers
# --------------------------------------------------------------------------------------------

_RUNNERS: dict = {}


def events_digest(events) -> str:
    """A digest of a sample's events as given (dtype and bytes): an in-memory sample's record
    carries it, and resuming checks every finished sample against it."""
    try:
        array = np.ascontiguousarray(events)
    except Exception:  # noqa: BLE001 — not an array: its record is an error record anyway
        return ""
    h = hashlib.sha256(str(array.dtype.descr if array.dtype.fields else array.dtype.str).encode())
    h.update(str(array.shape).encode())
    h.update(array.tobytes())
    return h.hexdigest()[:20]


def runner_for(config: EvalConfig, model=None) -> SampleRunner:
    """This process's runner for ``config`` (built on first use, then reused). ``model``: the
    model of ``config`` already compiled by the caller (saves compiling it again)."""
    key = config.key()
    if key not in _RUNNERS:
        _RUNNERS.clear()  # one configuration at a time: memory stays flat
        _RUNNERS[key] = SampleRunner(config, model)
    return _RUNNERS[key]


def run_chunk(config: EvalConfig, items: list) -> list:
    """Records of a chunk of work items (runs in a worker), each with its JSON text under
    ``"_json"`` (:func:`~evsim.analysis.records.dumps_record`): encoded by the workers, in
    parallel, rather than by the client."""
    return [with_text(record) for record in runner_for(config).records(items)]


def with_text(record: dict) -> dict:
    """``record`` with its :func:`~evsim.analysis.records.dumps_record` text under ``"_json"``."""
    record["_json"] = dumps_record(record)
    return record


# --------------------------------------------------------------------------------------------
# a local cluster of forked workers
# --------------------------------------------------------------------------------------------


#: Dask settings of the local clusters evsim starts itself (the client's scheduler and its
#: workers): the event-loop health check every second instead of every 20 ms, the system monitor
#: every 10 s instead of every 0.5 s, no work stealing (at most a few chunks per worker are in
#: flight and the scheduler hands them out as workers free up), the client's poll of the
#: scheduler's state every 10 s instead of every 2 s. Measured on 1000 N-MNIST
#: recordings with 2 forked workers (benchmarks/README.md, "Whole evaluations"): about 0.45 s of
#: CPU less per run in the scheduler's and the workers' event loops, which on a 2-core machine
#: run on the cores the simulations need. Results do not depend on them.
LOCAL_DASK_CONFIG = {
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "10s",
    "distributed.scheduler.work-stealing": False,
    "distributed.client.scheduler-info-interval": "10s",
}


def can_fork_workers() -> bool:
    """Whether :class:`ForkedWorkers` may be used here: Linux, and no thread but this one (a
    process forked while another thread holds a lock can deadlock; Dask's own loop starts threads,
    so the workers are forked before it)."""
    import threading

    return sys.platform.startswith("linux") and threading.active_count() == 1


def release_idle_dask_threads() -> None:
    """A Dask client closed earlier in this process (a user's, in a notebook or a script) leaves
    its ``Dask-Offload`` thread running; when that is the only thread besides this one, give it
    back (:func:`release_dask_offload_thread`), so that a local evaluation can still fork its
    workers (:func:`can_fork_workers`)."""
    import threading

    others = [t for t in threading.enumerate() if t is not threading.current_thread()]
    if others and all(t.name.startswith("Dask-Offload") for t in others):
        release_dask_offload_thread()


def release_dask_offload_thread() -> None:
    """Give back the thread a Dask client leaves running in this process once closed (the
    ``Dask-Offload`` pool of ``distributed.utils``, which serialises messages): with it alive,
    :func:`can_fork_workers` is False and a second local evaluation in the same process would start
    its workers as fresh interpreters (slow, and impossible from a script without an
    ``if __name__ == "__main__"`` guard). The pool is replaced by a new one that starts its
    thread when next used; the old one has no work left (its client is closed) and ends."""
    utils = sys.modules.get("distributed.utils")
    old = getattr(utils, "_offload_executor", None)
    if old is None or not hasattr(old, "shutdown"):
        return
    from concurrent.futures import ThreadPoolExecutor

    utils._offload_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="Dask-Offload")
    old.shutdown(wait=True)


class ForkedWorkers:
    """``n`` Dask worker processes (one thread each) forked from this process once it is warm:
    the model compiled, the engine loaded from numba's cache and the runner built
    (:func:`runner_for`), all inherited. A spawned worker instead starts a fresh interpreter that
    imports distributed, numba and evsim and loads the engine again, 1.5–2.5 s of CPU per worker
    (benchmarks/README.md, "Whole evaluations"): on a 10-s evaluation on 2 cores, most of what a
    second worker can win.

    Fork before any other thread exists (:func:`can_fork_workers`); then start a scheduler and
    :meth:`connect` the workers to it. They listen on 127.0.0.1 only, ignore SIGINT (the client
    decides when to stop), die with this process (Linux ``PR_SET_PDEATHSIG``) and are ended by
    :meth:`close`. There is no nanny: a worker that dies is not restarted; Dask runs its tasks on
    the others.
    """

    def __init__(self, n: int):
        import multiprocessing

        ctx = multiprocessing.get_context("fork")
        sys.stdout.flush()
        sys.stderr.flush()
        self.processes, self.pipes = [], []
        for _ in range(n):
            ours, theirs = ctx.Pipe()
            proc = ctx.Process(target=_forked_worker, args=(theirs, os.getpid()), daemon=True,
                               name="evsim Dask worker")
            proc.start()
            theirs.close()
            self.processes.append(proc)
            self.pipes.append(ours)

    def connect(self, address: str) -> None:
        """Tell the workers the scheduler's address (they connect to it)."""
        for pipe in self.pipes:
            pipe.send(address)

    def alive(self) -> int:
        return sum(p.is_alive() for p in self.processes)

    def close(self, timeout: float = 5.0) -> None:
        """End the workers (those still waiting for an address leave at once)."""
        for pipe in self.pipes:
            try:
                pipe.send(None)
            except OSError:
                pass
            pipe.close()
        for proc in self.processes:
            if proc.is_alive():
                proc.terminate()
        deadline = time.time() + timeout
        for proc in self.processes:
            proc.join(max(0.0, deadline - time.time()))
            if proc.is_alive():
                proc.kill()
                proc.join(1.0)


def _forked_child(parent_pid: int) -> None:  # pragma: no cover - runs in a forked child
    """A forked helper's signals: Ctrl-C is the parent's to handle, SIGTERM ends it, and it dies
    with its parent (Linux ``PR_SET_PDEATHSIG``; it leaves at once if the parent is already gone)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C reaches the whole process group
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the parent's handler only sets a flag
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent_pid:
        os._exit(0)


def _forked_worker(pipe, parent_pid: int) -> None:  # pragma: no cover - runs in the forked child
    _forked_child(parent_pid)
    try:
        address = pipe.recv()
    except (EOFError, OSError):
        address = None
    if address is None:
        os._exit(0)
    import asyncio
    import logging

    import dask
    from distributed import Worker

    logging.getLogger("distributed").setLevel(logging.ERROR)
    import warnings

    # Dask's notes on a slow machine (e.g. "Creating scratch directories is taking a surprisingly
    # long time") would interleave with the command's own output; results do not depend on them
    warnings.filterwarnings("ignore", category=UserWarning, module=r"distributed(\.|$)")
    # no sampling profiler (a thread, 100 times a second); the local cluster's settings
    dask.config.set({"distributed.worker.profile.enabled": False, **LOCAL_DASK_CONFIG})

    async def serve():
        async with Worker(address, nthreads=1, host="127.0.0.1", dashboard=False, memory_limit=0,
                          death_timeout=60) as worker:
            await worker.finished()

    asyncio.run(serve())
    os._exit(0)


class HeadStart:
    """A process forked from this warm process that simulates samples while this one imports
    ``distributed`` and starts the local cluster: 0.4-0.6 s in which the second core would
    otherwise be idle, ~5 % of a 10-s evaluation on 2 workers (benchmarks/README.md, "Whole
    evaluations").

    It runs ``work([item(i)])`` (what a Dask worker runs) for the indices of ``order``, one after
    the other, and reports each finished sample with a small message; it keeps the records and
    sends them in one message when it stops: told to (:meth:`stop`), it finishes the sample in
    progress and starts no other. :meth:`taken` bounds how many of ``order`` it has done or is
    doing (the caller hands the others to Dask); :meth:`records` waits for its records. A
    head start that dies gives no records: its samples are simply run again elsewhere."""

    def __init__(self, work, item, order: list):
        import multiprocessing

        ctx = multiprocessing.get_context("fork")
        sys.stdout.flush()
        sys.stderr.flush()
        self.order = order
        self._reported = 0  # samples it said it finished
        self._records = None  # its records, once received
        self.pipe, theirs = ctx.Pipe()
        self.process = ctx.Process(target=_head_start, args=(theirs, os.getpid(), work, item, order), daemon=True,
                                   name="evsim head start")
        self.process.start()
        theirs.close()

    def stop(self) -> None:
        """Tell it to start no other sample."""
        try:
            self.pipe.send(None)
        except OSError:
            pass  # it has already finished (or died)

    def _receive(self, block: bool) -> None:
        while self._records is None and (block or self.pipe.poll()):
            try:
                message = self.pipe.recv()
            except (EOFError, OSError):
                self._records = []  # died: its samples are run elsewhere
                return
            if isinstance(message, int):
                self._reported = message
            else:
                self._records = message

    def taken(self) -> int:
        """How many samples at the start of ``order`` it may have taken (finished, or the one in
        progress): once :meth:`stop` is sent, it takes no more than this."""
        self._receive(block=False)
        if self._records is not None:
            return len(self._records)
        return min(len(self.order), self._reported + 1)

    def records(self) -> list:
        """Its records (those of ``order[:len(records)]``), once it has stopped; the process is
        then ended. A second call returns an empty list."""
        self._receive(block=True)
        out, self._records = self._records, []
        self.pipe.close()
        self.process.join(5.0)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(1.0)
        return out


def _head_start(pipe, parent_pid: int, work, item, order) -> None:  # pragma: no cover - forked child
    _forked_child(parent_pid)
    records = []
    try:
        for index in order:
            if pipe.poll():  # told to stop
                break
            records.extend(work([item(index)]))
            pipe.send(len(records))
        pipe.send(records)
    except BaseException:  # noqa: BLE001 — the parent runs whatever is missing
        pass
    os._exit(0)


# --------------------------------------------------------------------------------------------
# progress
# --------------------------------------------------------------------------------------------


class Progress:
    """A progress line on stderr: done/total, percent, samples/s, ETA."""

    def __init__(self, total: int, label: str = "evsim", enabled: bool = True, done: int = 0):
        self.total = total
        self.label = label
        self.enabled = enabled
        self.start = time.time()
        self.offset = done
        self.last = 0.0
        self.tty = sys.stderr.isatty()
        self.last_percent = -10.0

    def update(self, done: int, final: bool = False) -> None:
        if not self.enabled:
            return
        now = time.time()
        elapsed = now - self.start
        percent = 100.0 * done / self.total if self.total else 100.0
        if not final and now - self.last < 0.2:
            return
        if not self.tty and not final and percent - self.last_percent < 10:
            return
        self.last, self.last_percent = now, percent
        rate = (done - self.offset) / elapsed if elapsed > 0 else 0.0
        eta = (self.total - done) / rate if rate > 0 else float("nan")
        eta_text = "--:--" if math.isnan(eta) else f"{int(eta) // 60:d}:{int(eta) % 60:02d}"
        width = 24
        filled = int(width * done / self.total) if self.total else width
        line = (f"{self.label} [{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} {percent:5.1f}% "
                f"{rate:6.1f} samples/s ETA {eta_text}")
        end = "\n" if final or not self.tty else ""
        print(("\r" if self.tty else "") + line, end=end, file=sys.stderr, flush=True)

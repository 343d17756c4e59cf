"""The event-driven simulator: a thin Python layer over the compiled loop in :mod:`evsim.sim.engine`.

Typical use::

    import evsim
    model = evsim.load_model("evsim/bundled/nmnist_cnn/model.nir", profile="speck")
    events = evsim.read_recording("3/00123.bin").events
    result = evsim.Simulator(model).run(events)
    print(result.prediction, result.events_consumed, result.synops)

State persists between :meth:`Simulator.feed` calls, so a recording may be fed in chunks (same
result as one call); :meth:`Simulator.reset` starts a new sample.
"""

from __future__ import annotations

import numpy as np

from . import engine as eng
from ..compile.builder import CompiledModel, compile_model
from ..kernels import abi
from ..kernels.abi import READOUT_COUNTS
from ..errors import OptionError, RecordingError, real_option
from ..input.events import check_sorted, engine_input, input_indices
from ..input.stream import check_chunk, shift_index
from ..input.window import SampleWindow
from ..model.linear import engine_to_nir, nir_to_engine
from . import DEFAULT_BUDGET
from .result import SPIKE_RECORD_DTYPE, TRACE_DTYPE, Cutoff, Result, predict, truncation_status


#: Print a one-line notice on stderr before numba compiles the event loop for lack of a cached
#: copy (the command line turns it on; the API stays silent).
COMPILE_NOTICE = False

#: What the notice announces: CPU time of the first compile of the event loop on the reference
#: machine (benchmarks/bench_first_run.py; benchmarks/README.md#first-run), for the loop
#: specialised to static models (engine._process_static) and for the general loop.
COMPILE_ESTIMATE = {"static": "30-45 seconds", "general": "1-2 minutes"}

_announced = set()  # the loops (static, general) already announced in this process


def compile_pending(args) -> bool:
    """True when calling the event loop with ``args`` would compile it: no compiled version in
    this process and none in numba's on-disk cache for these argument types, this source and this
    numba (numba's own cache index, read without loading anything). False when unsure."""
    m, state, buffers, ev_index, ev_time, t_drain, cut = args
    run = _loop_for(m, state)
    args = (m, state, buffers, ev_index, ev_time, np.int64(0), float(t_drain), cut)
    try:
        sig = tuple(run.typeof_pyval(a) for a in args)
        if sig in run.overloads:
            return False
        cache = run._cache
        key = cache._index_key(sig, run.targetctx.codegen())
        return key not in cache._cache_file._load_index()
    except Exception:  # numba internals changed: say nothing rather than something wrong
        return False


def _loop_for(m, state):
    """The compiled loop engine.run will call (engine.run is the Python loop around it)."""
    return eng._process_static if eng.is_static(m, state) else eng._process


def _announce_compile(args) -> None:
    loop = "static" if _loop_for(*args[:2]) is eng._process_static else "general"
    if COMPILE_NOTICE and loop not in _announced and compile_pending(args):
        _announced.add(loop)
        import sys

        print(f"evsim: compiling the simulator for first use (once, {COMPILE_ESTIMATE[loop]} of CPU; "
              "later runs load it from numba's cache)...", file=sys.stderr, flush=True)


#: buffers (FIFO, heap, records) up to this many entries are kept from one sample to the next,
#: so that a sample does not start over from small buffers and regrow them; larger ones are freed
_KEEP_BUFFERS = 1 << 20


class Simulator:
    """Event-driven simulation of one compiled model, one sample at a time.

    Args:
        model: a :class:`CompiledModel` (or a path, compiled with ``profile``).
        record_spikes: keep every spike (node, neuron, time) for rasters.
        trace: {node name: neuron indices (NIR flat)} whose state is recorded after every update.
        record_output: keep the output vector every time it changes (anytime analysis).
        cutoff: a :class:`Cutoff` (default: none).
        budget: maximum processed spikes + queued items per sample.
        time_origin: time 0 of a sample: its first event ("first-event") or t = 0 of the
            recording ("zero") (docs/SEMANTICS.md#time-window).
        duration_us: the sample spans [origin, origin + duration_us): later events are not part of
            it, and the state is advanced to its end after the last event.
    """

    def __init__(self, model, *, profile: str = "nir", record_spikes: bool = False, trace: dict | None = None,
                 record_output: bool = False, cutoff: Cutoff | None = None, budget: int = DEFAULT_BUDGET,
                 time_origin: str = "first-event", duration_us: float | None = None):
        if not isinstance(model, CompiledModel):
            model = compile_model(model, profile=profile)
        budget = real_option(budget, "--budget", integer=True)
        if not 0 < budget < 2 ** 62:
            raise OptionError("must be > 0 and below 2**62", option="--budget")
        self.model = model
        self.window = SampleWindow(time_origin, duration_us)
        self.record_spikes = record_spikes
        self.record_output = record_output
        self.cutoff = cutoff or Cutoff()
        if not isinstance(self.cutoff, Cutoff):
            raise OptionError(f"must be an evsim.Cutoff (e.g. Cutoff('topk', threshold=3.0)), got {self.cutoff!r}",
                              option="cutoff")
        self.budget = int(budget)
        self.trace = trace or {}
        m = model.arrays
        self._input_map = nir_to_engine(model.input_shape)
        n_ops = int(m.op_kind.shape[0])
        n_scratch = int(sum(op.out_size for pr in model.projections for op in pr.ops[:-1]))
        n_neurons = model.n_neurons
        runs = eng.new_runs_buffer(m.op_geom)  # scratch of the loop: shared by the samples
        self._fresh_state = lambda: eng.new_state(m, n_neurons, n_scratch, n_ops, len(model.populations),
                                                  model.precision, runs)
        self._fresh_buffers = lambda: eng.new_buffers(int(m.readout[2]))
        self.state = self.buffers = None
        self._cut = self.cutoff.as_array()
        # what every result needs of the model, found once
        pop_index, mode = model.readout
        readout_pop = model.populations[pop_index]
        self._readout_counts = mode == READOUT_COUNTS
        self._n_out = readout_pop.size
        # the readout's engine -> NIR permutation, None when it is the identity (a 1-D readout)
        perm = engine_to_nir(readout_pop.shape)
        self._readout_perm = None if np.array_equal(perm, np.arange(perm.size)) else perm
        self._node_names = [p.name for p in model.populations]
        self._static = None  # whether this sample takes the loop specialised to static models (engine.is_static)
        self.reset()

    # ------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Start a new sample: all state, queues, counters and records cleared."""
        if self.state is None:
            self.state = self._fresh_state()
        else:  # cleared in place: no allocation per sample (results copy what they keep), only
            # the arrays the previous sample's loop may have written
            eng.clear_state(self.state, static=bool(self._static))
        # the previous sample's buffers, already grown to its needs, are kept: they are storage
        # only (their fill levels are counters of the fresh state; the Result copies out of them)
        if self.buffers is None or max(a.shape[0] for a in self.buffers) > _KEEP_BUFFERS:
            self.buffers = self._fresh_buffers()
        s = self.state
        s.counters[abi.C_BUDGET] = self.budget
        s.counters[abi.C_RECORD_SPIKES] = int(self.record_spikes)
        s.counters[abi.C_RECORD_OUTPUT] = int(self.record_output)
        for name, neurons in self.trace.items():
            p = self.model.population_index(name)
            pop = self.model.populations[p]
            idx = np.atleast_1d(np.asarray(neurons, dtype=np.int64))
            if np.any((idx < 0) | (idx >= pop.size)):
                raise OptionError(f"neuron index out of range for '{name}' ({pop.size} neurons)", option="trace")
            eng_idx = nir_to_engine(pop.shape)[idx]
            s.trace_flag[pop.offset + eng_idx] = 1
            s.pop_traced[p] = 1
            s.counters[abi.C_ANY_TRACE] = 1
        self._static = eng.is_static(self.model.arrays, s)  # the loop this sample takes
        self._t0_us = self.window.origin_us(None)
        self._t_last_us = None
        self.events_total = 0
        self.status = abi.STATUS_INPUT_DONE
        self.stopped = False

    # ------------------------------------------------------------------------------------
    def feed(self, events: np.ndarray, *, source: str | None = None, first_index: int = 0) -> bool:
        """Consume a chunk of events (sorted, within the input shape). Returns False once the
        sample has stopped (cutoff or budget): later chunks are counted but not consumed.
        ``first_index`` is the index of the chunk's first event in the whole recording: error
        messages name events by their index there."""
        # every check below in one compiled pass when all events pass them (the common case)
        prepared = None if self.stopped else engine_input(events, self.model.input_shape, self._input_map,
                                                          self._t0_us)
        if prepared is None:
            try:
                check_sorted(events, source=source)
            except RecordingError as exc:
                raise shift_index(exc, first_index) from None
        return self._feed(events, source, first_index, prepared=prepared)

    def _feed(self, events: np.ndarray, source: str | None, first_index: int, check_stopped: bool = False,
              prepared: tuple | None = None) -> bool:
        """:meth:`feed` after the chunk's values and order were checked; ``check_stopped``: once
        stopped, still check that the chunk's events address the input (as :meth:`run` does for
        the events after a cutoff). ``prepared``: :func:`~evsim.input.events.engine_input` of the
        chunk (every event checked already, time 0 at this sample's origin)."""
        if self._t0_us is None and events.shape[0]:
            self._t0_us = int(events["t"][0])
        events = self.window.clip(events, self._t0_us)
        n = int(events.shape[0])
        self.events_total += n
        if n == 0 or self.stopped:
            if n and check_stopped:
                try:
                    input_indices(events, self.model.input_shape, source=source)
                except RecordingError as exc:
                    raise shift_index(exc, first_index) from None
            return not self.stopped
        if self._t_last_us is not None and int(events["t"][0]) < self._t_last_us:
            raise RecordingError(
                f"chunk starts at t={int(events['t'][0])} us, before the previous chunk ended "
                f"(t={self._t_last_us} us)", path=source, field="t")
        if prepared is not None:
            index, times = prepared[0][:n], prepared[1][:n]
        else:
            try:
                flat = input_indices(events, self.model.input_shape, source=source)
            except RecordingError as exc:
                raise shift_index(exc, first_index) from None
            index = self._input_map[flat]
            # the engine counts microseconds since the origin (exact in float64 below 2**53)
            times = (events["t"].astype(np.int64) - self._t0_us).astype(np.float64)
        # time and event budgets: input beyond them is never consumed
        keep = n
        if self.cutoff.max_time_us is not None:
            keep = int(np.searchsorted(times, self.cutoff.max_time_us, side="right"))
        if self.cutoff.max_events is not None:
            keep = min(keep, max(0, self.cutoff.max_events - int(self.state.counters[abi.C_CONSUMED])))
        times = times[:keep]
        if COMPILE_NOTICE:
            _announce_compile((self.model.arrays, self.state, self.buffers, index[:keep], times, -np.inf, self._cut))
        status, _, self.buffers = eng.run(self.model.arrays, self.state, self.buffers, index[:keep], times,
                                          -np.inf, self._cut, static=self._static)
        self._t_last_us = int(events["t"][-1])
        self.status = status
        if status != abi.STATUS_INPUT_DONE or keep < n:
            self.stopped = True
        return not self.stopped

    def advance(self, t_us: float) -> None:
        """Process queued items (delayed spikes, threshold crossings) up to ``t_us`` microseconds
        since the first event, without new input: e.g. to let a CubaLIF fire after its last input."""
        t_us = real_option(t_us, "t_end_us")
        if not 0 <= t_us < 2.0 ** 53:  # (NaN too)
            raise OptionError(f"must be a time in µs, >= 0 and below 2**53, got {t_us:g}", option="t_end_us")
        if self.stopped or self._t0_us is None:
            return
        empty_i = np.zeros(0, dtype=np.int64)
        empty_t = np.zeros(0, dtype=np.float64)
        status, _, self.buffers = eng.run(self.model.arrays, self.state, self.buffers, empty_i, empty_t,
                                          float(t_us), self._cut, static=self._static)
        self.status = status
        if status != abi.STATUS_INPUT_DONE:
            self.stopped = True

    # ------------------------------------------------------------------------------------
    def result(self) -> Result:
        """The result so far (call after the last :meth:`feed`)."""
        model = self.model
        s = self.state
        c = s.counters
        t_now = float(s.clock[abi.T_NOW])
        if self._readout_counts:  # (engine.readout_values' first case, without a call)
            counts = self._in_nir_order(s.out_counts)
            output = counts.astype(np.float64)
        else:
            values = np.zeros(self._n_out, dtype=np.float64)
            eng.readout_values(model.arrays, s, t_now, values)
            output = self._in_nir_order(values)
            counts = None
        status = {abi.STATUS_INPUT_DONE: "complete", abi.STATUS_CUTOFF: "cutoff", abi.STATUS_BUDGET: "budget"}[self.status]
        status = truncation_status(status, self.cutoff, int(c[abi.C_CONSUMED]), self.events_total)
        decision = float(s.clock[abi.T_DECISION]) if status == "cutoff" else t_now
        names = self._node_names
        spikes = None
        if self.record_spikes:
            n = int(c[abi.C_REC_N])
            spikes = np.zeros(n, dtype=SPIKE_RECORD_DTYPE)
            pops = self.buffers.rec_i[:n, 0]
            local = self.buffers.rec_i[:n, 1]
            spikes["node"] = pops
            spikes["neuron"] = self._to_nir_index(pops, local)
            spikes["t_us"] = self.buffers.rec_t[:n]
            spikes["count"] = self.buffers.rec_i[:n, 2]
        traces = None
        if self.trace:
            n = int(c[abi.C_TRACE_N])
            g = self.buffers.tr_i[:n]
            offsets = np.array([p.offset for p in model.populations])
            pops = np.searchsorted(offsets, g, side="right") - 1
            traces = np.zeros(n, dtype=TRACE_DTYPE)
            traces["node"] = pops
            traces["neuron"] = self._to_nir_index(pops, g - offsets[pops])
            traces["t_us"] = self.buffers.tr_t[:n]
            traces["v"] = self.buffers.tr_v[:n, 0]
            traces["i_syn"] = self.buffers.tr_v[:n, 1]
        output_record = None
        if self.record_output:
            n = int(c[abi.C_OUTREC_N])
            vectors = self._in_nir_order(self.buffers.out_v[:n, :self._n_out])
            output_record = (self.buffers.out_t[:n].copy(), self.buffers.out_k[:n].copy(), vectors)
        return Result(
            prediction=predict(output),
            output=output,
            output_counts=counts,
            events_consumed=int(c[abi.C_CONSUMED]),
            events_total=int(self.events_total),
            synops=int(c[abi.C_SYNOPS]),
            spikes_per_node=dict(zip(names, s.spikes_per_pop.tolist())),
            status=status,
            decision_time_us=decision if self._t0_us is not None else None,
            confidence=float(s.clock[abi.CONFIDENCE]) if status == "cutoff" else None,
            crossings=int(c[abi.C_CROSSINGS]),
            node_names=list(names),
            spikes=spikes,
            traces=traces,
            output_record=output_record,
        )

    def _in_nir_order(self, a: np.ndarray) -> np.ndarray:
        """A copy of ``a``, readout values in engine order along its last axis, in NIR order."""
        if self._readout_perm is None:  # (a 1-D readout: the orders agree)
            return a.copy()
        out = np.empty_like(a)
        out[..., self._readout_perm] = a
        return out

    def _to_nir_index(self, pops: np.ndarray, local: np.ndarray) -> np.ndarray:
        out = np.empty(local.shape, dtype=np.int64)
        for p in np.unique(pops):
            sel = pops == p
            out[sel] = engine_to_nir(self.model.populations[int(p)].shape)[local[sel]]
        return out

    # ------------------------------------------------------------------------------------
    def finish(self) -> None:
        """End the sample at the end of its window: with a duration, process queued items up to
        it and take the readout there (a no-op without a duration)."""
        if self.window.duration_us is not None:
            if self._t0_us is None:  # an empty sample: the window still spans the duration
                self._t0_us = 0
            self.advance(float(self.window.duration_us))

    def continue_uncut(self, events: np.ndarray, *, source: str | None = None) -> Result:
        """After a run stopped by its cutoff (or a time/event budget), go on without any cutoff over
        the rest of ``events`` (the same whole recording), from the same state, to the end of the
        sample; return that uncut result. Its counters and output record are those of one
        uncut run (the anytime trajectory) bit for bit."""
        c = self.state.counters
        consumed = int(c[abi.C_CONSUMED])
        self.cutoff, saved = Cutoff(), self.cutoff
        try:
            if self.status != abi.STATUS_BUDGET and c[abi.C_PROCESSED] < c[abi.C_BUDGET]:
                events = self.window.clip(events, self._t0_us)
                rest = events[consumed:]
                if rest.shape[0]:
                    index = self._input_map[input_indices(rest, self.model.input_shape, source=source)]
                    times = (rest["t"].astype(np.int64) - self._t0_us).astype(np.float64)
                    status, _, self.buffers = eng.run(self.model.arrays, self.state, self.buffers, index, times,
                                                      -np.inf, Cutoff().as_array(), static=self._static)
                    self.status = status
                if self.status == abi.STATUS_CUTOFF:
                    self.status = abi.STATUS_INPUT_DONE
                self.stopped = self.status != abi.STATUS_INPUT_DONE
                self.finish()
            return self.result()
        finally:
            self.cutoff = saved

    def run_stream(self, chunks, *, t_end_us: float | None = None, source: str | None = None) -> Result:
        """Simulate one sample whose events come in chunks: an iterable of EVENT_DTYPE arrays, such
        as an :class:`~evsim.input.stream.EventStream` (``evsim.input.stream.open_stream(path)``).

        The result is bit for bit that of :meth:`run` on the concatenated events, and so are the
        errors: every chunk is checked (values, order within and across chunks, addresses within
        the input shape), also the chunks after a cutoff or the budget stopped consumption, and
        messages name events by their index in the whole recording. Memory stays that of one
        chunk, except what the records keep (``record_spikes``, ``trace``, ``record_output``
        grow with the activity, not with the input; leave them off for unbounded streams)."""
        if not hasattr(chunks, "__iter__") or isinstance(chunks, np.ndarray):
            raise OptionError(f"must be an iterable of event arrays (e.g. evsim.input.stream.open_stream(path)), "
                              f"got {type(chunks).__name__}; for one array use run()", option="chunks")
        if t_end_us is not None and self.window.duration_us is not None:
            raise OptionError("give either t_end_us or the simulator's duration_us", option="t_end_us")
        if source is None:
            source = getattr(chunks, "path", None)  # an EventStream names its file
        self.reset()
        offset, t_prev = 0, None
        for chunk in chunks:
            check_chunk(chunk, offset, t_prev, source=source)
            n = int(chunk.shape[0])
            if not n:
                continue
            # as run(): events never consumed (within the window) must still address the input
            self._feed(chunk, source, offset, check_stopped=True)
            offset += n
            t_prev = int(chunk["t"][-1])
        if t_end_us is not None:
            self.advance(t_end_us)
        self.finish()
        return self.result()

    def run(self, events: np.ndarray, *, t_end_us: float | None = None, source: str | None = None) -> Result:
        """Simulate one sample from scratch: reset, feed all events, process queued items up to
        the end of the sample's window (``duration_us``) or to ``t_end_us`` (µs since the time
        origin), and return the :class:`Result`."""
        if t_end_us is not None and self.window.duration_us is not None:
            raise OptionError("give either t_end_us or the simulator's duration_us", option="t_end_us")
        self.reset()
        self.feed(events, source=source)
        if t_end_us is not None:
            self.advance(t_end_us)
        self.finish()
        return self.result()

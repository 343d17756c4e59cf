"""The compiled event loop (docs/SEMANTICS.md#event-order): numba, nopython, arrays and scalars only.

Reading guide. :func:`run` consumes input events in order. Before an input event at time t it
processes every queued item with time ≤ t (delayed spikes, predicted threshold crossings) in
(time, insertion sequence) order; then the input event becomes a spike of the Input population.
Each of those starts a *cascade*: spikes wait in a first-in-first-out buffer and, one after
another, fan out through their projections (:func:`fan_out`); a neuron reached by a fan-out is
brought to the current time in closed form, receives the input, tests its threshold and, if it
fires, appends its spike to the same FIFO (:func:`receive`). The cascade ends when the FIFO is
empty; only then is the next input event or queued item taken. Spikes are queued, never synaptic
targets; the binary heap holds only what lies in the future.

Two compiled loops: :func:`_process` for any model, and :func:`_process_static` for a static model
(no dynamics between events, no refractory period or shortest interval, no crossings without
input, no delays, no trace), which leaves the heap and the closed-form updates out so that it
compiles in a fraction of the time; both call the same delivery functions and give the same
results (tests/test_engine_static.py). :func:`run` picks one (:func:`is_static`).

All buffers that can grow (FIFO, heap, optional records) live in a :data:`Buffers` tuple; before
each fan-out the loop makes room for the worst case that fan-out can produce (a bound computed by
the builder), so nothing is allocated inside a fan-out.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np
from numba import njit

from ..kernels import neuron as nk
from ..kernels.bits import at_level_mask, lowest_set_bit
from ..kernels.fanout import element_runs, new_runs_buffer, op_input
from ..kernels.abi import (
    C_ANY_TRACE,
    C_BUDGET,
    C_CONSUMED,
    C_CROSSINGS,
    C_DELAYED,
    C_FIFO_HEAD,
    C_FIFO_TAIL,
    C_HEAP_N,
    C_IN_CASCADE,
    C_OUT_CHANGED,
    C_OUTREC_N,
    C_PROCESSED,
    C_REC_N,
    C_RECORD_OUTPUT,
    C_RECORD_SPIKES,
    C_SEQ,
    C_STARTED,
    C_SYNOPS,
    C_TRACE_N,
    CONFIDENCE,
    CROSSING_TOLERANCE_US,
    CUT_MODE,
    CUT_NONE,
    F_CEILING,
    F_DYNAMIC,
    F_FLOOR,
    F_GE,
    F_MAY_CROSS,
    F_MIN_INTERVAL,
    F_MULTI,
    F_REFRACTORY,
    F_SPIKING,
    F_SUBTRACT,
    F_UNIFORM,
    ITEM_CROSSING,
    ITEM_DELAYED,
    KIND_CUBA,
    KIND_INTEGRATOR,
    KIND_LEAKY,
    N_CLOCK,
    N_COUNTERS,
    P_DRIVE,
    P_GAIN,
    P_I_REST,
    P_R,
    P_TAU_MEM,
    P_TAU_SYN,
    P_THRESHOLD,
    P_V_MAX,
    P_V_MIN,
    P_V_REST,
    P_V_RESET,
    READOUT_COUNTS,
    READOUT_STATE,
    STATUS_BUDGET,
    STATUS_CUTOFF,
    STATUS_INPUT_DONE,
    STATUS_NEED_ROOM,
    T_DECISION,
    T_NOW,
)
from ..kernels.readout import cutoff_decision

EngineState = namedtuple(
    "EngineState",
    [
        "v", "isyn", "t_last", "refr_until", "dead_until", "sched_time", "sched_version",
        "spikes_per_pop", "out_counts", "counters", "clock",
        "scratch_val", "scratch_mark", "scratch_list", "scratch_count",
        "pop_traced", "trace_flag", "readout_buf", "runs", "cast",
    ],
)

Buffers = namedtuple(
    "Buffers",
    [
        "fifo",  # int64 [cap, 3]: population, local index, spike count
        "heap_t", "heap_s", "heap_i",  # float64 time, int64 sequence, int64 [cap, 4]: kind, a, b, c
        "rec_t", "rec_i",  # spike record: time; (population, local index, count)
        "tr_t", "tr_i", "tr_v",  # state trace: time; global neuron; (v, I)
        "out_t", "out_k", "out_v",  # output record: time; input events consumed; output vector
    ],
)


# ------------------------------------------------------------------------------------------
# small helpers
# ------------------------------------------------------------------------------------------


@njit(cache=True, _nrt=False, inline="always")
def param(m, pop, slot, j):
    """Parameter ``slot`` of neuron j (local index) of population ``pop``."""
    return m.params[m.pop_param_base[pop, slot] + j * m.pop_param_stride[pop, slot]]


def _grow_rows(a, need):
    """``a`` with at least ``need`` rows (capacity doubled), the first rows kept."""
    cap = a.shape[0]
    while cap < need:
        cap *= 2
    out = np.empty((cap,) + a.shape[1:], dtype=a.dtype)
    out[: a.shape[0]] = a
    return out


@njit(cache=True, _nrt=False, inline="always")
def _has_room(s, b, reserve):
    """True when no buffer needs to grow for ``reserve`` more entries (the common case)."""
    c = s.counters
    return (c[C_FIFO_TAIL] + reserve <= b.fifo.shape[0]
            and c[C_HEAP_N] + reserve <= b.heap_t.shape[0]
            and (c[C_RECORD_SPIKES] == 0 or c[C_REC_N] + reserve <= b.rec_t.shape[0])
            and (c[C_ANY_TRACE] == 0 or c[C_TRACE_N] + reserve <= b.tr_t.shape[0])
            and (c[C_RECORD_OUTPUT] == 0 or c[C_OUTREC_N] + 1 <= b.out_t.shape[0]))


def _ensure(m, s, b, reserve):
    """Make room for ``reserve`` more entries in every buffer a fan-out may write to (plain
    Python: it runs only when a buffer is full, and compiling it cost seconds at first use)."""
    c = s.counters
    fifo = b.fifo
    head = int(c[C_FIFO_HEAD])
    tail = int(c[C_FIFO_TAIL])
    if tail + reserve > fifo.shape[0]:
        if head > 0:  # compact: move the pending spikes to the front
            n = tail - head
            fifo[:n] = fifo[head:tail].copy()
            c[C_FIFO_HEAD] = 0
            c[C_FIFO_TAIL] = n
            tail = n
        if tail + reserve > fifo.shape[0]:
            fifo = _grow_rows(fifo, tail + reserve)
    heap_t, heap_s, heap_i = b.heap_t, b.heap_s, b.heap_i
    if c[C_HEAP_N] + reserve > heap_t.shape[0]:
        need = c[C_HEAP_N] + reserve
        heap_t = _grow_rows(heap_t, need)
        heap_s = _grow_rows(heap_s, need)
        heap_i = _grow_rows(heap_i, need)
    rec_t, rec_i = b.rec_t, b.rec_i
    if c[C_RECORD_SPIKES] != 0 and c[C_REC_N] + reserve > rec_t.shape[0]:
        rec_t = _grow_rows(rec_t, c[C_REC_N] + reserve)
        rec_i = _grow_rows(rec_i, c[C_REC_N] + reserve)
    tr_t, tr_i, tr_v = b.tr_t, b.tr_i, b.tr_v
    if c[C_ANY_TRACE] != 0 and c[C_TRACE_N] + reserve > tr_t.shape[0]:
        tr_t = _grow_rows(tr_t, c[C_TRACE_N] + reserve)
        tr_i = _grow_rows(tr_i, c[C_TRACE_N] + reserve)
        tr_v = _grow_rows(tr_v, c[C_TRACE_N] + reserve)
    out_t, out_k, out_v = b.out_t, b.out_k, b.out_v
    if c[C_RECORD_OUTPUT] != 0 and c[C_OUTREC_N] + 1 > out_t.shape[0]:
        out_t = _grow_rows(out_t, c[C_OUTREC_N] + 1)
        out_k = _grow_rows(out_k, c[C_OUTREC_N] + 1)
        out_v = _grow_rows(out_v, c[C_OUTREC_N] + 1)
    return Buffers(fifo, heap_t, heap_s, heap_i, rec_t, rec_i, tr_t, tr_i, tr_v, out_t, out_k, out_v)


# ------------------------------------------------------------------------------------------
# the priority queue: binary heap ordered by (time, insertion sequence)
# ------------------------------------------------------------------------------------------


@njit(cache=True, _nrt=False, inline="always")
def _before(ht, hs, i, j):
    return ht[i] < ht[j] or (ht[i] == ht[j] and hs[i] < hs[j])


@njit(cache=True, _nrt=False, inline="always")
def _swap(b, i, j):
    ht, hs, hi = b.heap_t, b.heap_s, b.heap_i
    ht[i], ht[j] = ht[j], ht[i]
    hs[i], hs[j] = hs[j], hs[i]
    for q in range(4):
        hi[i, q], hi[j, q] = hi[j, q], hi[i, q]


@njit(cache=True, _nrt=False)
def heap_push(s, b, time, kind, a, bb, cc):
    """Queue an item at ``time`` (capacity was reserved by :func:`_ensure`)."""
    c = s.counters
    i = c[C_HEAP_N]
    b.heap_t[i] = time
    b.heap_s[i] = c[C_SEQ]
    b.heap_i[i, 0] = kind
    b.heap_i[i, 1] = a
    b.heap_i[i, 2] = bb
    b.heap_i[i, 3] = cc
    c[C_SEQ] += 1
    c[C_HEAP_N] = i + 1
    while i > 0:
        parent = (i - 1) >> 1
        if _before(b.heap_t, b.heap_s, i, parent):
            _swap(b, i, parent)
            i = parent
        else:
            break


@njit(cache=True, _nrt=False)
def heap_pop(s, b):
    """Remove the earliest item (read it from index 0 first)."""
    c = s.counters
    n = c[C_HEAP_N] - 1
    c[C_HEAP_N] = n
    if n == 0:
        return
    _swap(b, 0, n)
    i = 0
    while True:
        left = 2 * i + 1
        if left >= n:
            break
        child = left
        if left + 1 < n and _before(b.heap_t, b.heap_s, left + 1, left):
            child = left + 1
        if _before(b.heap_t, b.heap_s, child, i):
            _swap(b, i, child)
            i = child
        else:
            break


# ------------------------------------------------------------------------------------------
# neuron dynamics in closed form (see evsim.model.neurons for the equations)
# ------------------------------------------------------------------------------------------


@njit(cache=True, _nrt=False)
def advance(m, s, pop, kind, flags, j, g, t):
    """Bring neuron j (global index g) of ``pop`` from its last update to time t in closed form.

    During a refractory period v is held; a CubaLIF's current keeps decaying."""
    t_last = s.t_last[g]
    if t <= t_last:
        return
    if flags & F_REFRACTORY:
        until = s.refr_until[g]
        if t_last < until:
            t_mid = min(t, until)
            if kind == KIND_CUBA:
                i_rest = param(m, pop, P_I_REST, j)
                tau_syn = param(m, pop, P_TAU_SYN, j)
                s.isyn[g] = nk.current_decay(s.isyn[g], i_rest, tau_syn, t_mid - t_last)
            t_last = t_mid
            if t <= t_last:
                s.t_last[g] = t_last
                return
    v, i = state_at(m, pop, kind, j, s.v[g], s.isyn[g], t - t_last)
    if flags & F_CEILING:  # an integrator's drift is monotone: saturating it is a min
        v = nk.apply_ceiling(v, param(m, pop, P_V_MAX, j))
    s.v[g] = v
    if kind == KIND_CUBA:
        s.isyn[g] = i
    s.t_last[g] = t


@njit(cache=True, _nrt=False, inline="always")
def state_at(m, pop, kind, j, v, i, dt):
    """(v, I) of neuron j of ``pop`` dt µs after the state (v, I), without input (closed form)."""
    if kind == KIND_INTEGRATOR:
        return nk.integrator_evolve(v, param(m, pop, P_DRIVE, j), dt), i
    if kind == KIND_LEAKY:
        return nk.leaky_evolve(v, param(m, pop, P_V_REST, j), param(m, pop, P_TAU_MEM, j), dt), i
    if kind == KIND_CUBA:
        return nk.cuba_evolve(v, i, param(m, pop, P_V_REST, j), param(m, pop, P_R, j), param(m, pop, P_I_REST, j),
                              param(m, pop, P_TAU_MEM, j), param(m, pop, P_TAU_SYN, j), dt)
    return v, i


@njit(cache=True, _nrt=False)
def crossing_time(m, s, pop, kind, flags, j, g):
    """Absolute time of the next threshold crossing without further input (inf if none),
    computed from the neuron's state at its last update."""
    theta = param(m, pop, P_THRESHOLD, j)
    v = s.v[g]
    t0 = s.t_last[g]
    i0 = s.isyn[g]
    if flags & F_REFRACTORY and s.refr_until[g] > t0:
        if kind == KIND_CUBA:
            i_rest = param(m, pop, P_I_REST, j)
            i0 = nk.current_decay(i0, i_rest, param(m, pop, P_TAU_SYN, j), s.refr_until[g] - t0)
        t0 = s.refr_until[g]
    if flags & F_MIN_INTERVAL and s.dead_until[g] > t0:
        # no firing before dead_until: from the state then, at once if at threshold
        t_end = s.dead_until[g]
        v, i0 = state_at(m, pop, kind, j, v, i0, t_end - t0)
        t0 = t_end
        if _above(v, theta, flags):
            return t0
    if v >= theta:
        return np.inf  # already above: fires on its next input (one spike per update)
    if kind == KIND_INTEGRATOR:
        return t0 + nk.integrator_crossing_delay(v, param(m, pop, P_DRIVE, j), theta)
    if kind == KIND_LEAKY:
        return t0 + nk.leaky_crossing_delay(v, param(m, pop, P_V_REST, j), param(m, pop, P_TAU_MEM, j), theta)
    if kind == KIND_CUBA:
        delay = nk.cuba_crossing_delay(v, i0, param(m, pop, P_V_REST, j), param(m, pop, P_R, j), param(m, pop, P_I_REST, j),
                                    param(m, pop, P_TAU_MEM, j), param(m, pop, P_TAU_SYN, j), theta)
        return t0 + delay
    return np.inf


@njit(cache=True, _nrt=False)
def schedule_crossing(m, s, b, pop, kind, flags, j, g):
    """Queue the neuron's predicted crossing if it is earlier than the one already queued.

    A later or vanished crossing needs no action: the queued check pops early, finds no
    crossing yet and re-queues (lazy invalidation, fewer heap operations)."""
    tc = crossing_time(m, s, pop, kind, flags, j, g)
    if tc < s.sched_time[g]:
        s.sched_version[g] += 1
        s.sched_time[g] = tc
        heap_push(s, b, tc, ITEM_CROSSING, g, s.sched_version[g], pop)


# ------------------------------------------------------------------------------------------
# spikes
# ------------------------------------------------------------------------------------------


@njit(cache=True, _nrt=False, inline="always")
def emit(m, s, b, pop, j, count, t):
    """A spike (``count`` > 1: several at once) of neuron j leaves ``pop``: FIFO and counters."""
    c = s.counters
    tail = c[C_FIFO_TAIL]
    b.fifo[tail, 0] = pop
    b.fifo[tail, 1] = j
    b.fifo[tail, 2] = count
    c[C_FIFO_TAIL] = tail + 1
    s.spikes_per_pop[pop] += count
    if pop == m.readout[0] and m.readout[1] == READOUT_COUNTS:
        s.out_counts[j] += count
        c[C_OUT_CHANGED] = 1
    if c[C_RECORD_SPIKES] != 0:
        n = c[C_REC_N]
        b.rec_t[n] = t
        b.rec_i[n, 0] = pop
        b.rec_i[n, 1] = j
        b.rec_i[n, 2] = count
        c[C_REC_N] = n + 1


@njit(cache=True, _nrt=False, inline="always")
def _above(v, theta, flags):
    """The threshold test (:func:`evsim.kernels.neuron.above`) with the population's flags."""
    return nk.above(v, theta, flags & F_GE != 0)


@njit(cache=True, _nrt=False, inline="always")
def spike_and_reset(m, s, b, pop, flags, j, g, t, theta):
    """Neuron j is at or above threshold at time t: emit n spikes and reset (SpikeRule)."""
    v = s.v[g]
    n = nk.spike_count(v, theta, flags & F_GE != 0, flags & F_MULTI != 0)
    if n >= nk.MAX_SPIKES_PER_UPDATE:  # runaway: the sample stops as out of budget, flagged
        s.counters[C_PROCESSED] = max(s.counters[C_PROCESSED], s.counters[C_BUDGET])
    subtract = flags & F_SUBTRACT != 0
    v_reset = 0.0 if subtract else param(m, pop, P_V_RESET, j)
    s.v[g] = nk.reset(v, n, theta, v_reset, subtract)
    if flags & F_REFRACTORY:
        s.refr_until[g] = t + m.pop_refractory[pop]
    if flags & F_MIN_INTERVAL:
        s.dead_until[g] = t + m.pop_min_interval[pop]
    emit(m, s, b, pop, j, int(n), t)


@njit(cache=True, _nrt=False)
def _trace(s, b, g, t):
    n = s.counters[C_TRACE_N]
    b.tr_t[n] = t
    b.tr_i[n] = g
    b.tr_v[n, 0] = s.v[g]
    b.tr_v[n, 1] = s.isyn[g]
    s.counters[C_TRACE_N] = n + 1


@njit(cache=True, _nrt=False, inline="always")
def note_state_readout_change(m, s, pop):
    """Mark the output as changed when ``pop`` is read out by its membrane state, which changes
    with every update (a count readout changes only when it fires, and spikes are noted there)."""
    if pop == m.readout[0] and m.readout[1] == READOUT_STATE:
        s.counters[C_OUT_CHANGED] = 1


@njit(cache=True, _nrt=False, inline="always")
def receive(m, s, b, pop, j, x, t):
    """Neuron j of ``pop`` receives input x (weight × spike count) at time t: closed-form update
    to t, add the input (saturating at the ceiling), threshold test, spike and reset, floor,
    predicted crossing."""
    flags = m.pop_flags[pop]
    kind = m.pop_kind[pop]
    g = m.pop_offset[pop] + j
    if flags & (F_DYNAMIC | F_REFRACTORY):
        advance(m, s, pop, kind, flags, j, g, t)
    gain = param(m, pop, P_GAIN, j)
    if flags & F_REFRACTORY and t < s.refr_until[g]:
        if kind == KIND_CUBA:
            s.isyn[g] += gain * x  # the synapse integrates; the membrane is held
    else:
        if kind == KIND_CUBA:
            s.isyn[g] += gain * x
        else:
            s.v[g] += gain * x
            if flags & F_CEILING:
                s.v[g] = nk.apply_ceiling(s.v[g], param(m, pop, P_V_MAX, j))
        if flags & F_SPIKING and not (flags & F_MIN_INTERVAL and t < s.dead_until[g]):
            theta = param(m, pop, P_THRESHOLD, j)
            if _above(s.v[g], theta, flags):
                spike_and_reset(m, s, b, pop, flags, j, g, t, theta)
        if flags & F_FLOOR:
            s.v[g] = nk.apply_floor(s.v[g], param(m, pop, P_V_MIN, j))
    if flags & F_MAY_CROSS or (flags & F_MIN_INTERVAL and s.dead_until[g] > t):
        schedule_crossing(m, s, b, pop, kind, flags, j, g)
    note_state_readout_change(m, s, pop)
    if s.pop_traced[pop] != 0:
        if s.trace_flag[g] != 0:
            _trace(s, b, g, t)


@njit(cache=True, _nrt=False)
def confirm_crossing(m, s, b, pop, g, version, t):
    """A queued crossing check pops at time t: fire if the crossing is due, else re-queue."""
    if version != s.sched_version[g]:
        return  # superseded by a later prediction
    s.sched_time[g] = np.inf
    j = g - m.pop_offset[pop]
    flags = m.pop_flags[pop]
    kind = m.pop_kind[pop]
    tc = crossing_time(m, s, pop, kind, flags, j, g)
    if tc <= t + CROSSING_TOLERANCE_US:
        advance(m, s, pop, kind, flags, j, g, t)
        s.counters[C_CROSSINGS] += 1
        theta = param(m, pop, P_THRESHOLD, j)
        if s.v[g] < theta:
            s.v[g] = theta  # the crossing is exact; undo rounding of the closed form
        spike_and_reset(m, s, b, pop, flags, j, g, t, theta)
        if flags & F_FLOOR:
            s.v[g] = nk.apply_floor(s.v[g], param(m, pop, P_V_MIN, j))
        note_state_readout_change(m, s, pop)
        if s.pop_traced[pop] != 0 and s.trace_flag[g] != 0:
            _trace(s, b, g, t)
        schedule_crossing(m, s, b, pop, kind, flags, j, g)
    elif tc < np.inf:
        s.sched_version[g] += 1
        s.sched_time[g] = tc
        heap_push(s, b, tc, ITEM_CROSSING, g, s.sched_version[g], pop)


# ------------------------------------------------------------------------------------------
# fan-out through a projection's operators
# ------------------------------------------------------------------------------------------


#: population flags that rule out :func:`_deliver_static` (and a model's :func:`_process_static`)
_NOT_STATIC = F_DYNAMIC | F_REFRACTORY | F_MAY_CROSS | F_MIN_INTERVAL

#: neurons per block of the threshold scan after a fused pass (:func:`_deliver_uniform`): one bit
#: mask per block (a sub-run of 16 channels is one block)
_SCAN_BLOCK = 16


@njit(cache=True, _nrt=False, inline="always")
def _deliver_uniform(m, s, b, dst, flags, runs, r0, r1, run_len, scaled, theta, level, v_min, v_max, t):
    """:func:`_deliver_static` for one gain and one threshold per population, one floor
    v_min < θ (−inf without a floor) and one ceiling v_max ≥ v_min (+inf without one): add,
    saturate, floor and "any neuron at threshold?" fused into one pass per run. The threshold test
    is one comparison with the population's firing level (``level``,
    :func:`evsim.kernels.neuron.firing_level`: the threshold rule folded in, in the state's
    precision, so no rule flag is read and no value converted in the loops), and the flag an integer OR,
    not a float max, so that LLVM vectorises the loop. Flooring before the threshold
    test changes no test (v_min < θ), so only neurons that fire need the floor again, after their
    reset; the ceiling comes before the test, as in :func:`receive`."""
    v = s.v
    weights = m.weights
    off = m.pop_offset[dst]
    for r in range(r0, r1):
        j0 = runs[r, 0]
        w0 = runs[r, 1]
        n_sub = runs[r, 2]
        length = n_sub * run_len
        g0 = off + j0
        vv = v[g0:g0 + length]
        hit = False
        if w0 < 0:  # an index map: one neuron, weight 1
            x = min(max(vv[0] + scaled, v_min), v_max)
            vv[0] = x
            hit = x >= level
        else:
            ww = weights[w0:w0 + length]
            for co in range(length):
                x = min(max(vv[co] + scaled * ww[co], v_min), v_max)
                vv[co] = x
                hit |= x >= level
        if hit:
            # the neurons at threshold, in order: per block of ≤ 16 neurons (a sub-run of a merged
            # convolution run, or 16 neurons of a dense row) a bit mask from one vectorised
            # comparison, then its set bits, lowest first
            for sb in range(n_sub - 1, -1, -1):  # ascending kernel column (see project)
                for lo in range(sb * run_len, (sb + 1) * run_len, _SCAN_BLOCK):
                    vs = vv[lo:min(lo + _SCAN_BLOCK, (sb + 1) * run_len)]
                    at_level = at_level_mask(vs, level)
                    while at_level != 0:
                        co = lowest_set_bit(at_level)
                        at_level &= at_level - 1
                        spike_and_reset(m, s, b, dst, flags, j0 + lo + co, g0 + lo + co, t, theta)
                        if vs[co] < v_min:
                            vs[co] = v_min


@njit(cache=True, _nrt=False, inline="always")
def _deliver_static(m, s, b, dst, runs, r0, r1, run_len, val, t):
    """The common case, a population without dynamics between events (IF without bias, no
    refractory period): the same add / ceiling / test / reset / floor as :func:`receive`, organised per
    run so that the additions of one kernel offset form one vectorisable loop. Neurons of a run
    are distinct, so adding to all of them first and testing them afterwards (in order, so the
    FIFO order of their spikes is unchanged) is the same computation."""
    v = s.v
    weights = m.weights
    params = m.params
    flags = m.pop_flags[dst]
    note_state_readout_change(m, s, dst)
    if flags & F_UNIFORM:  # (decided by the builder: evsim.compile.builder.uniform_delivery)
        s.cast[0] = val * params[m.pop_param_base[dst, P_GAIN]]  # in the state's precision
        u = m.pop_uniform
        _deliver_uniform(m, s, b, dst, flags, runs, r0, r1, run_len, s.cast[0],
                         params[m.pop_param_base[dst, P_THRESHOLD]], u[dst, 0], u[dst, 1], u[dst, 2], t)
        return
    off = m.pop_offset[dst]
    g_base = m.pop_param_base[dst, P_GAIN]
    g_stride = m.pop_param_stride[dst, P_GAIN]
    t_base = m.pop_param_base[dst, P_THRESHOLD]
    t_stride = m.pop_param_stride[dst, P_THRESHOLD]
    f_base = m.pop_param_base[dst, P_V_MIN]
    f_stride = m.pop_param_stride[dst, P_V_MIN]
    c_base = m.pop_param_base[dst, P_V_MAX]
    c_stride = m.pop_param_stride[dst, P_V_MAX]
    s.cast[0] = val * params[g_base]  # in the state's precision
    scaled = s.cast[0]
    for r in range(r0, r1):
        j0 = runs[r, 0]
        w0 = runs[r, 1]
        n_sub = runs[r, 2]
        length = n_sub * run_len
        g0 = off + j0
        # views with non-negative loop indices let LLVM vectorise these loops
        vv = v[g0:g0 + length]
        if w0 < 0:
            vv[0] += scaled if g_stride == 0 else params[g_base + j0 * g_stride] * val
        elif g_stride == 0:
            ww = weights[w0:w0 + length]
            for co in range(length):
                vv[co] += scaled * ww[co]
        else:
            ww = weights[w0:w0 + length]
            for co in range(length):
                vv[co] += params[g_base + (j0 + co) * g_stride] * (val * ww[co])
        if flags & F_CEILING:
            for co in range(length):
                v_max = params[c_base + (j0 + co) * c_stride]
                if vv[co] > v_max:
                    vv[co] = v_max
        if flags & F_SPIKING:
            # with one threshold for the population, a max over the run (vectorised) rules
            # out the common no-spike case before the per-neuron test
            scan = True
            if t_stride == 0:
                v_max = vv[0]
                for co in range(1, length):
                    v_max = max(v_max, vv[co])
                scan = v_max >= params[t_base]
            if scan:
                for sb in range(n_sub - 1, -1, -1):  # ascending kernel column (see project)
                    for co in range(sb * run_len, (sb + 1) * run_len):
                        theta = params[t_base + (j0 + co) * t_stride]
                        if _above(vv[co], theta, flags):
                            spike_and_reset(m, s, b, dst, flags, j0 + co, g0 + co, t, theta)
        if flags & F_FLOOR:
            if f_stride == 0:
                s.cast[0] = params[f_base]
                v_min = s.cast[0]
                for co in range(length):
                    vv[co] = max(vv[co], v_min)
            else:
                for co in range(length):
                    v_min = params[f_base + (j0 + co) * f_stride]
                    if vv[co] < v_min:
                        vv[co] = v_min


@njit(cache=True, _nrt=False, inline="always")
def _receive_runs(m, s, b, dst, runs, r0, r1, run_len, val, t):
    """Deliver val × weight along rows r0 … r1 − 1 of ``runs`` neuron by neuron (:func:`receive`):
    the general case, any population."""
    weights = m.weights
    for r in range(r0, r1):
        for sb in range(runs[r, 2] - 1, -1, -1):
            o0 = runs[r, 0] + sb * run_len
            w0 = runs[r, 1]
            for co in range(run_len):
                x = val if w0 < 0 else val * weights[w0 + sb * run_len + co]
                receive(m, s, b, dst, o0 + co, x, t)


@njit(cache=True, _nrt=False, inline="always")
def _accumulate(m, s, op, i, val):
    """An operator before a projection's last: add val × weight along the runs of input element i
    into the operator's accumulator (a dense scratch vector with a list of touched entries, so
    that each element fans out once through the next operator)."""
    i, val = op_input(m, op, i, val)
    if i < 0:
        return
    weights = m.weights
    runs, r0, r1, _, run_len = element_runs(m, op, i, s.runs)
    base = m.op_scratch_base[op]
    for r in range(r0, r1):
        for sb in range(runs[r, 2] - 1, -1, -1):
            o0 = runs[r, 0] + sb * run_len
            w0 = runs[r, 1]
            for co in range(run_len):
                o = o0 + co
                if s.scratch_mark[base + o] == 0:
                    s.scratch_mark[base + o] = 1
                    s.scratch_list[base + s.scratch_count[op]] = o
                    s.scratch_count[op] += 1
                s.scratch_val[base + o] += val if w0 < 0 else val * weights[w0 + sb * run_len + co]


@njit(cache=True, _nrt=False, inline="always")
def accumulate_chain(m, s, proj, i, count):
    """The operators of projection ``proj`` before its last, for ``count`` spikes of source
    element i, into their accumulators. Returns the number of inputs of the last operator:
    1 (element i, value ``count``) for a one-operator projection, else the accumulator list of
    the operator before it (read with :func:`last_input`)."""
    op0 = m.proj_op_start[proj]
    n_ops = m.proj_n_ops[proj]
    if n_ops == 1:
        return 1
    _accumulate(m, s, op0, i, float(count))
    for op in range(op0 + 1, op0 + n_ops - 1):
        for q in range(s.scratch_count[op - 1]):
            e, val = _take_scratch(m, s, op - 1, q)
            if val != 0.0:
                _accumulate(m, s, op, e, val)
        s.scratch_count[op - 1] = 0
    return s.scratch_count[op0 + n_ops - 2]


@njit(cache=True, _nrt=False, inline="always")
def _take_scratch(m, s, op, q):
    """Entry q of operator ``op``'s accumulator list: (element, value), the entry cleared."""
    base = m.op_scratch_base[op]
    e = s.scratch_list[base + q]
    val = s.scratch_val[base + e]
    s.scratch_val[base + e] = 0.0
    s.scratch_mark[base + e] = 0
    return e, val


@njit(cache=True, _nrt=False, inline="always")
def end_chain(m, s, proj):
    """Empty the accumulator list feeding projection ``proj``'s last operator."""
    n_ops = m.proj_n_ops[proj]
    if n_ops > 1:
        s.scratch_count[m.proj_op_start[proj] + n_ops - 2] = 0


@njit(cache=True, _nrt=False, inline="always")
def last_runs(m, s, proj, i, count, q):
    """Input q of projection ``proj``'s last operator (see :func:`accumulate_chain`) fanned out:
    its runs (:func:`evsim.kernels.fanout.element_runs`), counted as SynOps. Returns
    (runs, r0, r1, run_len, val): rows r0 … r1 − 1 of ``runs``, none when the input is zero or
    dropped by the operator's input map. After the last input, :func:`end_chain`."""
    op = m.proj_op_start[proj] + m.proj_n_ops[proj] - 1
    if m.proj_n_ops[proj] == 1:
        e, val = i, float(count)
    else:
        e, val = _take_scratch(m, s, op - 1, q)
        if val == 0.0:
            return s.runs, 0, 0, 1, val
    e, val = op_input(m, op, e, val)
    if e < 0:
        return s.runs, 0, 0, 1, val
    runs, r0, r1, n_sub_total, run_len = element_runs(m, op, e, s.runs)
    s.counters[C_SYNOPS] += n_sub_total * run_len * count
    return runs, r0, r1, run_len, val


@njit(cache=True, _nrt=False, inline="always")
def project(m, s, b, proj, i, count, t):
    """Deliver ``count`` spikes of source element i through projection ``proj`` now.

    Operators before the last accumulate into a dense scratch vector with a list of touched
    entries (so each intermediate element fans out once); the last one delivers to neurons.
    Sub-runs are visited from the last to the first wherever order matters (threshold tests,
    receive, scratch lists): that is the order of ascending kernel column."""
    dst = m.proj_dst[proj]
    static = m.pop_flags[dst] & _NOT_STATIC == 0 and s.pop_traced[dst] == 0
    for q in range(accumulate_chain(m, s, proj, i, count)):
        runs, r0, r1, run_len, val = last_runs(m, s, proj, i, count, q)
        if r1 > r0:
            if static:
                _deliver_static(m, s, b, dst, runs, r0, r1, run_len, val, t)
            else:
                _receive_runs(m, s, b, dst, runs, r0, r1, run_len, val, t)
    end_chain(m, s, proj)


@njit(cache=True, _nrt=False, inline="always")
def project_static(m, s, b, proj, i, count, t):
    """:func:`project` into a static population (see :func:`_process_static`)."""
    dst = m.proj_dst[proj]
    for q in range(accumulate_chain(m, s, proj, i, count)):
        runs, r0, r1, run_len, val = last_runs(m, s, proj, i, count, q)
        if r1 > r0:
            _deliver_static(m, s, b, dst, runs, r0, r1, run_len, val, t)
    end_chain(m, s, proj)


@njit(cache=True, _nrt=False, inline="always")
def fan_out(m, s, b, src, j, count, t):
    """A FIFO item reaches its projections: a spike of neuron j of population ``src`` ≥ 0 every
    projection leaving it (those with a delay through the heap), or a delayed delivery that came
    due (``src`` = −1 − projection) that one projection now. (One call site for both, so the
    delivery code is compiled once.)"""
    if src >= 0:
        q0 = m.pop_proj_ptr[src]
        q1 = m.pop_proj_ptr[src + 1]
    else:
        q0 = -1 - src
        q1 = q0 + 1
    for q in range(q0, q1):
        proj = q
        delay = 0.0
        if src >= 0:
            proj = m.pop_proj[q]
            delay = m.proj_delay[proj]
            if m.proj_delay_base[proj] >= 0:
                delay += m.delays[m.proj_delay_base[proj] + j]
        if delay > 0.0:
            heap_push(s, b, t + delay, ITEM_DELAYED, proj, j, count)
            s.counters[C_DELAYED] += 1
        else:
            project(m, s, b, proj, j, count, t)


# ------------------------------------------------------------------------------------------
# readout and cutoff
# ------------------------------------------------------------------------------------------


@njit(cache=True, _nrt=False)
def readout_values(m, s, t, out):
    """The accumulated output vector a(t): spike counts, or the readout population's state."""
    pop = m.readout[0]
    n = m.readout[2]
    if m.readout[1] == READOUT_COUNTS:
        for j in range(n):
            out[j] = s.out_counts[j]
        return
    kind = m.pop_kind[pop]
    flags = m.pop_flags[pop]
    off = m.pop_offset[pop]
    for j in range(n):
        g = off + j
        v = s.v[g]
        dt = t - s.t_last[g]
        if dt > 0.0 and flags & F_DYNAMIC:
            if kind == KIND_INTEGRATOR:
                v = nk.integrator_evolve(v, param(m, pop, P_DRIVE, j), dt)
            elif kind == KIND_LEAKY:
                v = nk.leaky_evolve(v, param(m, pop, P_V_REST, j), param(m, pop, P_TAU_MEM, j), dt)
            elif kind == KIND_CUBA:
                v, _ = nk.cuba_evolve(v, s.isyn[g], param(m, pop, P_V_REST, j), param(m, pop, P_R, j),
                                   param(m, pop, P_I_REST, j), param(m, pop, P_TAU_MEM, j), param(m, pop, P_TAU_SYN, j), dt)
            if flags & F_CEILING:
                v = nk.apply_ceiling(v, param(m, pop, P_V_MAX, j))
        out[j] = v


@njit(cache=True, _nrt=False)
def cutoff_decided(m, s, cut, t):
    """Evaluate the cutoff rule ``cut`` (:func:`evsim.kernels.readout.cutoff_decision`) on a(t).
    Records the decision and returns True when decided."""
    if int(cut[CUT_MODE]) == CUT_NONE:
        return False
    a = s.readout_buf
    readout_values(m, s, t, a)
    decided, conf = cutoff_decision(a, cut, t)
    if decided:
        s.clock[T_DECISION] = t
        s.clock[CONFIDENCE] = conf
    return decided


@njit(cache=True, _nrt=False, inline="always")
def _after_cascade(m, s, b, t, cut):
    """Record the output vector when it changed; evaluate the cutoff. Returns True to stop."""
    c = s.counters
    if c[C_OUT_CHANGED] == 0:
        return False
    c[C_OUT_CHANGED] = 0
    if c[C_RECORD_OUTPUT] != 0:
        n = c[C_OUTREC_N]
        readout_values(m, s, t, s.readout_buf)
        b.out_t[n] = t
        b.out_k[n] = c[C_CONSUMED]
        for k in range(s.readout_buf.shape[0]):
            b.out_v[n, k] = s.readout_buf[k]
        c[C_OUTREC_N] = n + 1
    return cutoff_decided(m, s, cut, t)


# ------------------------------------------------------------------------------------------
# the event loop
# ------------------------------------------------------------------------------------------


_GO_ON = -1  # (not a status: the loop goes on)


@njit(cache=True, _nrt=False, inline="always")
def _end_cascade(m, s, b, t, cut):
    """The FIFO ran empty: clear it, record the output and evaluate the cutoff, check the budget.
    Returns STATUS_CUTOFF or STATUS_BUDGET to stop, else _GO_ON."""
    c = s.counters
    c[C_IN_CASCADE] = 0
    c[C_FIFO_HEAD] = 0
    c[C_FIFO_TAIL] = 0
    if _after_cascade(m, s, b, t, cut):
        return STATUS_CUTOFF
    if c[C_PROCESSED] >= c[C_BUDGET]:
        return STATUS_BUDGET
    return _GO_ON


@njit(cache=True, _nrt=False, inline="always")
def _take_input(m, s, b, ev_index, ev_time, k):
    """Input event k becomes a spike of the Input population (population 0) and starts a
    cascade. Returns k + 1."""
    t = ev_time[k]
    s.clock[T_NOW] = t
    emit(m, s, b, 0, ev_index[k], 1, t)
    s.counters[C_CONSUMED] += 1
    s.counters[C_IN_CASCADE] = 1
    return k + 1


# fastmath without "ninf": ±inf sentinels flow (sched_time = inf, v_min = −inf, refr_until = −inf).
# _nrt=False (here and on the functions the loop calls) is measured to matter: with it removed
# from every engine function, benchmarks/bench_nmnist.py --limit 50 --repeats 1 ran at 712 ms
# per recording against 12.8 ms with it (same shared machine, back to back): without NRT the
# array views of the delivery loops carry reference counting.
@njit(cache=True, _nrt=False, fastmath={"nnan", "nsz"})
def _process(m, s, b, ev_index, ev_time, k, t_drain, cut):
    """The loop proper. Returns (status, k, room): STATUS_NEED_ROOM asks the caller to grow the
    buffers for ``room`` more entries and call again; it resumes where it stopped (an unfinished
    cascade is continued first), since all loop state lives in the state arrays."""
    c = s.counters
    n_events = ev_index.shape[0]
    if c[C_STARTED] == 0:  # the sample's first call: neurons that fire without input
        n_cross = n_may_cross(m)
        if not _has_room(s, b, n_cross):
            return STATUS_NEED_ROOM, k, n_cross
        schedule_initial_crossings(m, s, b)
        c[C_STARTED] = 1
    while True:
        # the cascade: spikes first in, first out, until none is left
        t = s.clock[T_NOW]
        while c[C_FIFO_HEAD] < c[C_FIFO_TAIL]:
            head = c[C_FIFO_HEAD]
            src = b.fifo[head, 0]
            if src >= 0 and c[C_PROCESSED] >= c[C_BUDGET]:
                return STATUS_BUDGET, k, 0
            reserve = m.pop_reserve[src] if src >= 0 else m.pop_reserve[m.proj_src[-1 - src]]
            if not _has_room(s, b, reserve):
                return STATUS_NEED_ROOM, k, reserve
            j = b.fifo[head, 1]
            count = b.fifo[head, 2]
            c[C_FIFO_HEAD] = head + 1
            if src >= 0:  # (a delayed delivery was counted when it left the heap)
                c[C_PROCESSED] += 1
            fan_out(m, s, b, src, j, count, t)
        if c[C_IN_CASCADE] != 0:
            status = _end_cascade(m, s, b, t, cut)
            if status != _GO_ON:
                return status, k, 0
        # next: a queued item due no later than the next input event, else the input event
        t_next = ev_time[k] if k < n_events else t_drain
        from_heap = c[C_HEAP_N] > 0 and b.heap_t[0] <= t_next
        if not from_heap and k >= n_events:
            if t_drain > s.clock[T_NOW]:
                s.clock[T_NOW] = t_drain  # the readout is read at the end of the drained time
            return STATUS_INPUT_DONE, k, 0
        if from_heap:
            kind = b.heap_i[0, 0]
            a = b.heap_i[0, 1]
            room = 8 if kind == ITEM_CROSSING else m.pop_reserve[m.proj_src[a]]
            if not _has_room(s, b, room):
                return STATUS_NEED_ROOM, k, room
            t = b.heap_t[0]
            bb = b.heap_i[0, 2]
            cc = b.heap_i[0, 3]
            heap_pop(s, b)
            s.clock[T_NOW] = t
            c[C_PROCESSED] += 1
            c[C_IN_CASCADE] = 1
            if kind == ITEM_CROSSING:
                confirm_crossing(m, s, b, cc, a, bb, t)
            else:  # the FIFO is empty here: the delivery runs first, then the cascade it causes
                tail = c[C_FIFO_TAIL]
                b.fifo[tail, 0] = -1 - a
                b.fifo[tail, 1] = bb
                b.fifo[tail, 2] = cc
                c[C_FIFO_TAIL] = tail + 1
        else:
            if not _has_room(s, b, 8):
                return STATUS_NEED_ROOM, k, 8
            k = _take_input(m, s, b, ev_index, ev_time, k)


# The same loop for a *static* model (:func:`is_static`): no population has dynamics between
# events, a refractory period, a shortest spike interval or crossings without input, no projection
# has a delay and nothing is traced. Then the heap stays empty and every delivery is
# :func:`_deliver_static`, so this loop leaves out the heap, the crossings and :func:`receive`:
# it compiles in a fraction of the time and keeps fewer values in registers. Its results are
# those of :func:`_process` (tests/test_engine_static.py runs both on the same models).
@njit(cache=True, _nrt=False, fastmath={"nnan", "nsz"})
def _process_static(m, s, b, ev_index, ev_time, k, t_drain, cut):
    """:func:`_process` for a static model."""
    c = s.counters
    n_events = ev_index.shape[0]
    c[C_STARTED] = 1
    while True:
        t = s.clock[T_NOW]
        while c[C_FIFO_HEAD] < c[C_FIFO_TAIL]:
            if c[C_PROCESSED] >= c[C_BUDGET]:
                return STATUS_BUDGET, k, 0
            head = c[C_FIFO_HEAD]
            src = b.fifo[head, 0]
            reserve = m.pop_reserve[src]
            if not _has_room(s, b, reserve):
                return STATUS_NEED_ROOM, k, reserve
            c[C_FIFO_HEAD] = head + 1
            c[C_PROCESSED] += 1
            for q in range(m.pop_proj_ptr[src], m.pop_proj_ptr[src + 1]):
                project_static(m, s, b, m.pop_proj[q], b.fifo[head, 1], b.fifo[head, 2], t)
        if c[C_IN_CASCADE] != 0:
            status = _end_cascade(m, s, b, t, cut)
            if status != _GO_ON:
                return status, k, 0
        if k >= n_events:
            if t_drain > s.clock[T_NOW]:
                s.clock[T_NOW] = t_drain
            return STATUS_INPUT_DONE, k, 0
        if not _has_room(s, b, 8):
            return STATUS_NEED_ROOM, k, 8
        k = _take_input(m, s, b, ev_index, ev_time, k)


def is_static(m, s) -> bool:
    """Whether :func:`_process_static` applies (see there)."""
    return not (np.any(m.pop_flags & _NOT_STATIC) or np.any(m.proj_delay != 0.0) or np.any(m.proj_delay_base >= 0)
                or np.any(s.pop_traced))


def run(m, s, b, ev_index, ev_time, t_drain, cut, static=None):
    """Consume input events (engine index, time in µs since the first event) in order; see the
    module docstring.

    Args:
        t_drain: after the last input event, also process queued items up to this time
            (-inf: leave them for the next call, which is what chunked feeding needs).
        cut: cutoff parameters (mode 0 = none).
        static: :func:`is_static` of ``m`` and ``s`` if the caller knows it (a simulator finds
            it once), else found here.

    Returns:
        (status, k, buffers): STATUS_INPUT_DONE, STATUS_CUTOFF (decided; input consumption
        stopped) or STATUS_BUDGET (processing budget exhausted); the number of input events
        consumed by this call; the possibly regrown buffers.
    """
    # (plain Python around the compiled loop: it returns only when done or when a buffer must grow)
    loop = _process_static if (is_static(m, s) if static is None else static) else _process
    k = np.int64(0)
    while True:
        status, k, room = loop(m, s, b, ev_index, ev_time, k, float(t_drain), cut)
        if status != STATUS_NEED_ROOM:
            return status, int(k), b
        b = _ensure(m, s, b, int(room))
        k = np.int64(k)


@njit(cache=True, _nrt=False, inline="always")
def n_may_cross(m):
    """Neurons of the populations that may reach threshold without input."""
    n = 0
    for pop in range(m.pop_flags.shape[0]):
        if m.pop_flags[pop] & F_MAY_CROSS:
            n += m.pop_size[pop]
    return n


@njit(cache=True, _nrt=False, inline="always")
def schedule_initial_crossings(m, s, b):
    """Queue the first threshold crossing of every neuron that may reach threshold without input
    (a bias drive, a resting potential above θ), from its initial state at time 0: such a neuron
    fires on time even if no input ever reaches it. The caller has made room for
    :func:`n_may_cross` heap entries. (Part of the loop's compiled unit: a separate entry point
    cost a fifth of the first run's compile.)"""
    for pop in range(m.pop_flags.shape[0]):
        flags = m.pop_flags[pop]
        if flags & F_MAY_CROSS:
            kind = m.pop_kind[pop]
            for j in range(m.pop_size[pop]):
                schedule_crossing(m, s, b, pop, kind, flags, j, m.pop_offset[pop] + j)


# ------------------------------------------------------------------------------------------
# construction (plain Python)
# ------------------------------------------------------------------------------------------


#: the value every state array starts a sample with (:func:`new_state`), when not zero
_STATE_START = {"refr_until": -np.inf, "dead_until": -np.inf, "sched_time": np.inf}


def new_state(m, n_neurons: int, n_scratch: int, n_ops: int, n_pops: int, precision: str,
              runs: np.ndarray | None = None) -> EngineState:
    """Zeroed engine state for a compiled model (``runs``: a run buffer to use, else a new one)."""
    dtype = np.float32 if precision == "float32" else np.float64
    n_out = int(m.readout[2])
    return EngineState(
        v=np.zeros(n_neurons, dtype=dtype),
        isyn=np.zeros(n_neurons, dtype=dtype),
        t_last=np.zeros(n_neurons, dtype=np.float64),
        refr_until=np.full(n_neurons, _STATE_START["refr_until"]),
        dead_until=np.full(n_neurons, _STATE_START["dead_until"]),
        sched_time=np.full(n_neurons, _STATE_START["sched_time"]),
        sched_version=np.zeros(n_neurons, dtype=np.int64),
        spikes_per_pop=np.zeros(n_pops, dtype=np.int64),
        out_counts=np.zeros(n_out, dtype=np.int64),
        counters=np.zeros(N_COUNTERS, dtype=np.int64),
        clock=np.zeros(N_CLOCK, dtype=np.float64),
        scratch_val=np.zeros(max(n_scratch, 1), dtype=np.float64),
        scratch_mark=np.zeros(max(n_scratch, 1), dtype=np.uint8),
        scratch_list=np.zeros(max(n_scratch, 1), dtype=np.int64),
        scratch_count=np.zeros(max(n_ops, 1), dtype=np.int64),
        pop_traced=np.zeros(n_pops, dtype=np.uint8),
        trace_flag=np.zeros(n_neurons, dtype=np.uint8),
        readout_buf=np.zeros(n_out, dtype=np.float64),
        runs=new_runs_buffer(m.op_geom) if runs is None else runs,
        cast=np.zeros(1, dtype=dtype),
    )


#: the state arrays :func:`_process_static` never writes (no synaptic current, no refractory or
#: dead time, no scheduled crossings, nothing traced): a static model's sample leaves them at their
#: start values (tests/test_input_fast_path.py checks it on real runs)
STATIC_UNWRITTEN = ("isyn", "t_last", "refr_until", "dead_until", "sched_time", "sched_version", "trace_flag")


def clear_state(s: EngineState, static: bool = False) -> None:
    """Put a state back to :func:`new_state`'s start values, in place (its run buffer aside);
    ``static``: the state has only been used by :func:`_process_static`, whose untouched arrays
    (:data:`STATIC_UNWRITTEN`, two thirds of the bytes) are left as they are."""
    for name, a in zip(EngineState._fields, s):
        if name != "runs" and not (static and name in STATIC_UNWRITTEN):
            a.fill(_STATE_START.get(name, 0))


def new_buffers(n_out: int) -> Buffers:
    """Small initial buffers; the loop grows them (doubling) as needed."""
    return Buffers(
        fifo=np.zeros((1024, 3), dtype=np.int64),
        heap_t=np.zeros(1024, dtype=np.float64),
        heap_s=np.zeros(1024, dtype=np.int64),
        heap_i=np.zeros((1024, 4), dtype=np.int64),
        rec_t=np.zeros(16, dtype=np.float64),
        rec_i=np.zeros((16, 3), dtype=np.int64),
        tr_t=np.zeros(16, dtype=np.float64),
        tr_i=np.zeros(16, dtype=np.int64),
        tr_v=np.zeros((16, 2), dtype=np.float64),
        out_t=np.zeros(16, dtype=np.float64),
        out_k=np.zeros(16, dtype=np.int64),
        out_v=np.zeros((16, max(n_out, 1)), dtype=np.float64),
    )

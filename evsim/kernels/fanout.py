"""Synaptic fan-out: which targets one input element of an operator reaches, and what a SynOp is.

The single definition of an operator's fan-out geometry (:func:`op_runs`) and of the SynOp count
(:func:`synops_per_spike`). The event engine delivers along the runs of :func:`op_runs`
(``evsim.sim.engine.last_runs``) and counts one SynOp per target of the last operator; the clock
mode takes its per-source SynOp table from :func:`synops_per_spike`, which walks the same runs, so
both modes count the same thing by construction (docs/SEMANTICS.md#synops).

The event engine reads a convolution's runs from a table made once per model (:func:`run_tables`:
:func:`op_runs` of every input element, evaluated ahead) rather than computing them per spike
(:func:`element_runs`).

Runs: ``runs[r] = (first output index, first weight index, n_sub, first output position)``, each followed by
``n_sub × run_len`` contiguous outputs and weights (a weight index < 0: an index map, one output of
weight 1). A dense row is one run of all outputs; a convolution one run per kernel row that lands
inside the output, covering every kernel column that lands inside it (n_sub sub-runs of c_out
channels, channel-last layout; see :func:`evsim.compile.builder.encode_conv`).
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np
from numba import njit

from .abi import (G_CIN, G_CIN_G, G_COLS, G_COUT, G_COUT_G, G_GROUPS, G_KH, G_KW, G_OW, G_ROWS, G_W, OP_CONV, OP_DENSE,
                  OP_IDENTITY)

#: at most this many rows (16 bytes each: 128 MiB) in a model's run tables (:func:`run_tables`, which
#: also take 8 bytes per input element of a convolution); convolutions beyond it compute their runs
#: per spike instead (the same runs)
RUN_TABLE_MAX_ROWS = 1 << 23

#: the operator arrays :func:`op_runs` reads: what the run tables are made from (a smaller
#: argument than the whole model halves the first compilation of :func:`_tabulate_op`)
FanoutArrays = namedtuple("FanoutArrays", ["op_kind", "op_in_size", "op_out_size", "op_weight_base", "op_geom",
                                           "conv_tables"])


#: columns of a run buffer (first output, first weight, sub-runs, output position of a convolution)
RUN_COLS = 4

#: integer type of runs (buffers and tables): 32 bits halve the tables; the builder refuses a model
#: whose weights or neurons a 32-bit index cannot address (evsim.compile.builder.pack_model)
RUN_DTYPE = np.int32


@njit(cache=True, _nrt=False, inline="always")
def op_runs(m, op, i, runs):
    """The runs of element i (after the operator's input map) of operator ``op`` into ``runs``.

    Returns ``(n_runs, n_sub_total, run_len)``: n_sub_total × run_len targets in all."""
    kind = m.op_kind[op]
    n_runs = 0
    n_sub_total = 0
    run_len = 1
    if kind == OP_IDENTITY:
        runs[0, 0] = i
        runs[0, 1] = -1
        runs[0, 2] = 1
        n_runs = 1
        n_sub_total = 1
    elif kind == OP_DENSE:
        run_len = m.op_out_size[op]
        runs[0, 0] = 0
        runs[0, 1] = m.op_weight_base[op] + i * run_len
        runs[0, 2] = 1
        n_runs = 1
        n_sub_total = 1
    elif kind == OP_CONV:
        c_in = m.op_geom[op, G_CIN]
        w_in = m.op_geom[op, G_W]
        pos = i // c_in
        y = pos // w_in
        n_runs, n_sub_total, run_len = conv_runs(m, op, i - pos * c_in, y, pos - y * w_in, runs)
    return n_runs, n_sub_total, run_len


@njit(cache=True, _nrt=False, inline="always")
def element_runs(m, op, i, runs):
    """:func:`op_runs` as rows ``r0 … r1 − 1`` of an array: of the model's run table for a
    tabulated convolution (:func:`run_tables`), else of ``runs``, computed now. Returns
    ``(array, r0, r1, n_sub_total, run_len)``."""
    base = m.op_table_base[op]
    if base >= 0:
        r0 = m.run_ptr[base + i, 0]
        r1 = m.run_ptr[base + i + 1, 0]
        n_sub_total = m.run_ptr[base + i, 1]
        return m.run_table, r0, r1, n_sub_total, conv_run_len(m.op_geom, op)
    n_runs, n_sub_total, run_len = op_runs(m, op, i, runs)
    return runs, 0, n_runs, n_sub_total, run_len


@njit(cache=True)
def _tabulate_op(m, op, runs, first_row, ptr, table):
    """Rows of operator ``op``'s run table from row ``first_row`` on (``table`` of 0 rows: count
    only); ``ptr[i]``: the first row of input element i and its number of sub-runs, ``ptr[n_in, 0]``
    the end."""
    row = first_row
    for i in range(m.op_in_size[op]):
        n_runs, n_sub_total, _ = op_runs(m, op, i, runs)
        ptr[i, 0] = row
        ptr[i, 1] = n_sub_total
        if table.shape[0] > 0:
            for r in range(n_runs):
                for col in range(RUN_COLS):
                    table[row + r, col] = runs[r, col]
        row += n_runs
    ptr[m.op_in_size[op], 0] = row
    return row


def run_tables(m, max_rows: int = RUN_TABLE_MAX_ROWS) -> tuple:
    """The run tables of a packed model's convolutions: ``(op_table_base, run_ptr, run_table)``.
    For a tabulated operator ``op`` (``op_table_base[op]`` ≥ 0), input element i's runs are rows
    ``run_ptr[base + i, 0] … run_ptr[base + i + 1, 0] − 1`` of ``run_table``, equal to
    :func:`op_runs`' (one row per kernel row; tests/test_engine_static.py), and
    ``run_ptr[base + i, 1]`` is their number of sub-runs. Convolutions are tabulated in order while the
    rows fit in ``max_rows``; the others keep ``op_table_base`` −1."""
    n_ops = m.op_kind.shape[0]
    table_base = -np.ones(n_ops, dtype=np.int64)
    runs = new_runs_buffer(m.op_geom)
    m = FanoutArrays(*(getattr(m, name) for name in FanoutArrays._fields))
    no_rows = np.zeros((0, RUN_COLS), dtype=RUN_DTYPE)
    chosen, ptr_len, n_rows = [], 0, 0
    for op in range(n_ops):
        if m.op_kind[op] != OP_CONV:
            continue
        rows = _tabulate_op(m, op, runs, 0, np.zeros((int(m.op_in_size[op]) + 1, 2), dtype=RUN_DTYPE), no_rows)
        if n_rows + rows > max_rows:
            break
        chosen.append((op, n_rows))
        table_base[op] = ptr_len
        ptr_len += int(m.op_in_size[op]) + 1
        n_rows += rows
    run_ptr = np.zeros((max(ptr_len, 1), 2), dtype=RUN_DTYPE)
    table = np.zeros((max(n_rows, 1), RUN_COLS), dtype=RUN_DTYPE)
    for op, first_row in chosen:
        base = int(table_base[op])
        _tabulate_op(m, op, runs, first_row, run_ptr[base:base + int(m.op_in_size[op]) + 1], table)
    return table_base, run_ptr, table


@njit(cache=True, _nrt=False, inline="always")
def conv_run_len(geo, op):
    """Outputs per sub-run of a convolution: its output channels (of one group when grouped)."""
    return geo[op, G_COUT] if geo[op, G_GROUPS] == 1 else geo[op, G_COUT_G]


@njit(cache=True, _nrt=False, inline="always")
def conv_runs(m, op, c, y, x, runs):
    """:func:`op_runs` of a convolution for the input element at channel c, row y, column x."""
    geo = m.op_geom
    tab = m.conv_tables
    c_in = geo[op, G_CIN]
    c_out = geo[op, G_COUT]
    ow = geo[op, G_OW]
    kh = geo[op, G_KH]
    kw = geo[op, G_KW]
    run_len = conv_run_len(geo, op)
    group_out = 0
    if geo[op, G_GROUPS] != 1:
        cin_g = geo[op, G_CIN_G]
        # (an integer division costs ~15 cycles: none for a depthwise convolution or a pool)
        group_out = (c if cin_g == 1 else c // cin_g) * run_len
    wbase = m.op_weight_base[op]
    # the kernel rows ky and output rows oy that see input row y, and per input column x the
    # merged runs (pattern weight block, first output column, sub-runs): precomputed by the
    # builder (evsim.compile.builder.encode_conv)
    row = geo[op, G_ROWS] + y * (1 + 2 * kh)
    col = geo[op, G_COLS] + x * (1 + 3 * kw)
    n_groups = tab[col]
    n_runs = 0
    n_sub_total = 0
    for a in range(tab[row]):
        ky = tab[row + 1 + 2 * a]
        oy = tab[row + 2 + 2 * a]
        for q in range(n_groups):
            pbase = tab[col + 1 + 3 * q]
            ox0 = tab[col + 2 + 3 * q]
            n_sub = tab[col + 3 + 3 * q]
            runs[n_runs, 0] = (oy * ow + ox0) * c_out + group_out
            runs[n_runs, 1] = wbase + pbase + (ky * c_in + c) * n_sub * run_len
            runs[n_runs, 2] = n_sub
            runs[n_runs, 3] = oy * ow + ox0  # the output position of the first sub-run
            n_sub_total += n_sub
            n_runs += 1
    return n_runs, n_sub_total, run_len


@njit(cache=True, _nrt=False, inline="always")
def op_input(m, op, i, val):
    """Element i of the previous layout as this operator's input: ``(index, value)`` after its
    index map and scale (index < 0: dropped)."""
    scale_base = m.op_scale_base[op]
    if scale_base >= 0:
        val = val * m.scales[scale_base + i]
    map_base = m.op_map_base[op]
    if map_base >= 0:
        i = m.maps[map_base + i]
    return i, val


@njit(cache=True)
def synops_per_spike(m, proj, runs, val_in, val_out, list_in, list_out, mark, out):
    """``out[i]``: the SynOps one spike of source element i (engine order) causes through
    projection ``proj``, as the engine counts them (``evsim.sim.engine.project``): every target of
    the last operator's fan-out, zero weights included, from each element that reaches it. An
    intermediate element reaches the next operator when its accumulated value is non-zero (the
    engine skips the others). ``runs``: the engine's run buffer; ``val_*`` (float64 zeros),
    ``list_*``, ``mark`` (int64 zeros): scratch of the largest operator size."""
    op0 = m.proj_op_start[proj]
    last = op0 + m.proj_n_ops[proj] - 1
    for src in range(out.shape[0]):
        list_in[0] = src
        val_in[src] = 1.0
        n_items = 1
        total = 0
        for op in range(op0, last + 1):
            n_next = 0
            for q in range(n_items):
                e_prev = list_in[q]
                val = val_in[e_prev]
                val_in[e_prev] = 0.0
                if val == 0.0:
                    continue
                e, val = op_input(m, op, e_prev, val)
                if e < 0:
                    continue
                n_runs, n_sub_total, run_len = op_runs(m, op, e, runs)
                if op == last:
                    total += n_sub_total * run_len
                    continue
                for r in range(n_runs):  # (order: as the engine's scratch list)
                    w0 = runs[r, 1]
                    for sb in range(runs[r, 2] - 1, -1, -1):
                        for co in range(run_len):
                            o = runs[r, 0] + sb * run_len + co
                            if mark[o] == 0:
                                mark[o] = 1
                                list_out[n_next] = o
                                n_next += 1
                            val_out[o] += val if w0 < 0 else val * m.weights[w0 + sb * run_len + co]
            for q in range(n_next):
                mark[list_out[q]] = 0
            val_in, val_out = val_out, val_in
            list_in, list_out = list_out, list_in
            n_items = n_next
        out[src] = total


def synops_table(m, proj: int, n_src: int) -> np.ndarray:
    """:func:`synops_per_spike` for every source element of projection ``proj`` (engine order), float64."""
    ops = range(int(m.proj_op_start[proj]), int(m.proj_op_start[proj] + m.proj_n_ops[proj]))
    size = max([n_src] + [int(m.op_in_size[op]) for op in ops] + [int(m.op_out_size[op]) for op in ops])
    runs = new_runs_buffer(m.op_geom)
    out = np.zeros(n_src)
    synops_per_spike(m, proj, runs, np.zeros(size), np.zeros(size), np.zeros(size, dtype=np.int64),
                     np.zeros(size, dtype=np.int64), np.zeros(size, dtype=np.int64), out)
    return out


def new_runs_buffer(op_geom) -> np.ndarray:
    """A run buffer with room for the runs of any operator of ``op_geom`` (at most one per kernel offset)."""
    return np.zeros((max(1, int(np.max(op_geom[:, G_KH] * op_geom[:, G_KW]))), RUN_COLS), dtype=RUN_DTYPE)

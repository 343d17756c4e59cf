"""The binary interface of the compiled kernels: every constant and array layout they read.

The builder (:mod:`evsim.compile.builder`) writes these layouts, the kernels
(:mod:`evsim.kernels`, :mod:`evsim.sim.engine`, :mod:`evsim.sim.clock`) read them. This module
imports nothing from evsim, so every layer can import it without cycles.
"""

from __future__ import annotations

# ------------------------------------------------------------------------------------------
# neuron models (``EngineModel.pop_kind``)
# ------------------------------------------------------------------------------------------
KIND_INPUT = 0
KIND_INTEGRATOR = 1
KIND_LEAKY = 2
KIND_CUBA = 3

# Parameter slots of the engine's parameter table (one row of (base, stride) per population:
# parameter ``slot`` of neuron j is ``params[pop_param_base[pop, slot] + j·pop_param_stride[pop, slot]]``).
P_THRESHOLD = 0
P_V_RESET = 1
P_V_MIN = 2
P_GAIN = 3
P_DRIVE = 4
P_V_REST = 5
P_TAU_MEM = 6
P_TAU_SYN = 7
P_R = 8
P_I_REST = 9
P_V_MAX = 10  # the state's ceiling (+inf: none)
N_PARAMS = 11

# Population flags (``EngineModel.pop_flags``, bit set)
F_SPIKING = 1  # the population emits spikes
F_GE = 2  # threshold test v ≥ θ (else v > θ)
F_SUBTRACT = 4  # reset by subtraction (else to v_reset)
F_MULTI = 8  # several spikes per update (MultiSpike)
F_DYNAMIC = 16  # the state evolves between inputs
F_MAY_CROSS = 32  # the state can reach θ without input (crossings are predicted)
F_REFRACTORY = 64  # an absolute refractory period
F_FLOOR = 128  # v is clipped at v_min
F_MIN_INTERVAL = 256  # at most one firing per pop_min_interval µs (discrete-time profiles)
F_CEILING = 512  # v saturates at v_max after every input, before the threshold test (--quantize speck)
F_UNIFORM = 1024  # one gain, one threshold, a floor below θ and a ceiling at or above it (fused delivery)

# ------------------------------------------------------------------------------------------
# linear operators (``EngineModel.op_kind``, ``op_geom``)
# ------------------------------------------------------------------------------------------
OP_IDENTITY = 0
OP_DENSE = 1
OP_CONV = 2

# Geometry columns of a conv operator (one row of ``op_geom`` per operator); G_ROWS / G_COLS:
# offsets of its row / column tables in ``conv_tables``.
(G_CIN, G_H, G_W, G_COUT, G_OH, G_OW, G_KH, G_KW, G_SY, G_SX, G_PT, G_PL, G_DY, G_DX, G_GROUPS, G_ROWS, G_COLS,
 G_CIN_G, G_COUT_G) = range(19)  # (G_CIN_G, G_COUT_G: channels per group, so no division per spike)
N_GEOM = 19

# Readout (``EngineModel.readout`` = [population, mode, size])
READOUT_COUNTS = 0  # spike counts of the readout population
READOUT_STATE = 1  # its membrane state

# ------------------------------------------------------------------------------------------
# event engine state
# ------------------------------------------------------------------------------------------
# counters (int64 state array)
C_SYNOPS = 0
C_PROCESSED = 1
C_SEQ = 2
C_HEAP_N = 3
C_REC_N = 4
C_TRACE_N = 5
C_OUTREC_N = 6
C_CONSUMED = 7
C_OUT_CHANGED = 8
C_FIFO_HEAD = 9
C_FIFO_TAIL = 10
C_RECORD_SPIKES = 11
C_RECORD_OUTPUT = 12
C_BUDGET = 13
C_CROSSINGS = 14
C_DELAYED = 15
C_ANY_TRACE = 16
C_IN_CASCADE = 17
C_STARTED = 18  # 1 once the sample's initial crossings are queued
N_COUNTERS = 19

# clock (float64 state array)
T_NOW = 0
T_DECISION = 1
CONFIDENCE = 2
N_CLOCK = 3

# run() status
STATUS_INPUT_DONE = 0
STATUS_CUTOFF = 1
STATUS_BUDGET = 2
STATUS_NEED_ROOM = 3

# queued item kinds
ITEM_CROSSING = 0
ITEM_DELAYED = 1

# tolerance when confirming a predicted threshold crossing (microseconds)
CROSSING_TOLERANCE_US = 1e-3

# ------------------------------------------------------------------------------------------
# cutoff (the packed array of :func:`evsim.kernels.readout.cutoff_array`)
# ------------------------------------------------------------------------------------------
CUT_NONE = 0
CUT_CONF = 1  # confidence = max softmax(a/T)
CUT_TOPK = 2  # confidence = top1 − top2
#: the cutoff rules by name (the CLI's --cutoff choices, Cutoff.mode, calibration, replay)
CUTOFF_RULES = {"none": CUT_NONE, "conf": CUT_CONF, "topk": CUT_TOPK}

# slots of the packed cutoff array; the threshold table follows from CUT_TABLE on
CUT_MODE = 0
CUT_TEMPERATURE = 1
CUT_THRESHOLD = 2
CUT_N_BINS = 3
CUT_BIN_WIDTH_US = 4
CUT_TABLE = 5

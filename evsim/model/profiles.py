"""Profiles: NIR as each exporter means it (docs/SEMANTICS.md#profiles).

Strict NIR (profile ``nir``) reads every parameter as the NIR primitive's continuous-time
equation says. Discrete-time frameworks write the same primitives with their own conventions
(τ in steps or seconds, r = τ/dt, dt hard-coded, reset mode not written); a profile states those
conventions and converts each node into one of the engine's models (:mod:`evsim.model.neurons`).
Explicit options (:class:`Overrides`) win over the profile.

Continuous-time equivalents. A profile's discrete update ``v ← α v + x`` becomes the continuous
leak ``τ = −dt/ln α``, which matches the discrete decay exactly at step boundaries; a spike that
in the framework adds ``w`` to a state adds exactly ``w`` in the event engine; a bias ``b`` added
every step becomes a constant drive of ``b/dt`` per second.

==========  ======================================================================================
profile     discrete update it reproduces (clock mode) / event-driven meaning
==========  ======================================================================================
nir         NIR continuous equations; spike = Dirac of area 1; v > θ; v ← v_reset; one spike per
            update; no floor. No dt: recurrent edges need ``recurrent_delay_us``.
sinabs      sinabs IAF/LIF (``sinabs.from_nir``): IF ``v ← v + Σw`` (r ignored); LIF τ in steps,
            ``v ← exp(−1/τ) v + Σw``; v ≥ θ; subtract θ per spike; ``floor(v/θ)`` spikes
            (MultiSpike); floor ``−θ`` for IF (``min_v_mem=-v_threshold``); dt = 1 ms unless given.
speck       as sinabs, with the chip's asynchronous semantics: one spike per input event (the
            residual above θ waits for the next input); floor ``−θ``.
snntorch    snn.Leaky / snn.Synaptic as exported by snntorch.export_nir: dt = τ/r (1e-4 in the
            exporter), β = 1 − dt/τ (α likewise for the synaptic current);
            ``I ← αI + x``, ``v ← βv + I`` (Synaptic: current reaches v in the same step;
            Leaky: ``v ← βv + x``), v > θ, one spike, no floor; reset to 0 in the spike's step
            (``reset_mechanism="zero"``, ``reset_delay=False``: what ``snntorch.import_nir``
            builds); ``reset="subtract"``, ``reset_delay=True`` as snnTorch computes them.
            Event mode: at most one firing per dt.
norse       norse LIF/LIFBox as exported (dt = 1 ms unless given), forward Euler:
            ``I ← I + x``, ``v ← v + dt/τm (v_leak − v + R·I)``, ``I ← I − dt/τs I`` (LIFCell's
            ``lif_feed_forward_step``: the current jumps by the input and reaches v in the same
            step), v > θ, v ← v_reset, one spike, no floor. IF as norse's IAFCell:
            ``v ← v + r·x`` per input (the exporter writes r = 1); I (no norse module):
            forward Euler ``v ← v + dt·R·x``. Event mode: at most one firing per dt.
rockpool    LIFTorch / LIFNeuronTorch / ExpSynTorch as rockpool/nn/modules/torch/nir.py exports them
            (r = τ·exp(−dt/τ)/dt: dt solved from the file): ``I ← exp(−dt/τs)·(I + x)``,
            ``v ← exp(−dt/τm)·v + I + bias`` (the input decays in its step; LIF
            ``v ← exp(−dt/τ)·v + x + bias``); v ≥ θ; floor(v/θ) spikes; subtract n·θ; no floor;
            v_leak read as the bias (Rockpool's importer). Event mode: at most one firing per dt.
spyx        spyx.nn IF/LIF/CuBaLIF as spyx.nir exports them (r = β, dt = τ(1 − r), 1 by default):
            ``s = H(V − θ)`` on the state *before* the step's input, subtract θ, one spike; CuBaLIF
            ``V ← V − sθ; I ← αI + x; V ← βV + I``, LIF ``V ← βV + x − sθ``. evsim tests at the end
            of the step and delays every projection out of a Spyx neuron by dt (its spikes leave
            one step after the crossing). Event mode: the same delay; at most one firing per dt.
lava-dl     slayer CUBA as lava_to_nir / nir_to_lava map it (dt = τ/r = 1e-4):
            ``u ← (1 − dt/τs)u + x``, ``v ← (1 − dt/τm)v + u``, v ≥ θ + 0.01/4096, v ← 0, one
            spike; floating point (slayer's fixed-point truncation is not reproduced).
==========  ======================================================================================
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ModelError, OptionError, real_option
from .validate import MAX_PARAMETER_MAGNITUDE, MAY_BE_INFINITE
from .neurons import CubaModel, IntegratorModel, LeakyModel, SpikeRule

PROFILE_NAMES = ("nir", "sinabs", "speck", "snntorch", "norse", "rockpool", "spyx", "lava-dl")
#: the values of the spike-rule overrides (``--reset``, ``--spikes-per-update``, ``--threshold-rule``)
RESET_MODES = ("zero", "subtract")
SPIKES_PER_UPDATE = ("one", "multi")
THRESHOLD_RULES = {"gt": False, "ge": True}  # name → threshold_ge

#: lava-dl's threshold offset (lava/lib/dl/slayer/neuron/cuba.py: threshold_eps = 0.01/s_scale,
#: s_scale = 4096 with the default scale 1 << 6): slayer fires on v ≥ θ + eps, as Loihi on v > θ
LAVA_DL_THRESHOLD_EPS = 0.01 / 4096
#: nir_to_lava.py builds an IF as a CUBA neuron with scale=4096: s_scale = 4096·64
LAVA_DL_IF_THRESHOLD_EPS = 0.01 / (4096 * 64)


#: the shortest time step and recurrent delay evsim takes, µs: timestamps are whole microseconds,
#: and a step of 1e-30 µs turns a bias into an infinite drive (b/dt) or a decay into 0/0
MIN_TIME_STEP_US = 1e-3
#: the longest, µs: the engine's clock counts µs exactly in float64 below 2**53
MAX_TIME_STEP_US = 2.0 ** 53


@dataclass(frozen=True)
class Overrides:
    """Options that override a profile (``None`` = the profile decides).

    Attributes:
        reset: "zero" (v ← v_reset, NIR's reset potential, 0 unless the file says otherwise) or
            "subtract" (v ← v − n·θ).
        v_min: floor of the membrane potential (same for every neuron), or None.
        spikes_per_update: "one" or "multi".
        threshold_ge: True for v ≥ θ, False for v > θ.
        refractory_us: absolute refractory period, microseconds.
        dt_us: the profile's time step in microseconds (sinabs/speck/norse; snntorch reads it
            from the file).
        recurrent_delay_us: delay of edges that close a cycle, microseconds (default: dt).
        reset_delay: snnTorch's ``reset_delay`` (profile snntorch only; clock mode): True applies
            the reset of a spike at step t−1 inside step t, after the decay; False (the profile's
            default, as ``snntorch.import_nir`` builds its neurons) resets in the spike's own step.
        min_spike_interval_us: event mode: a neuron fires at most once per this many microseconds
            (default: the profile's dt for the discrete-time profiles snntorch, norse, rockpool, spyx and lava-dl, 0 =
            no limit for the others; docs/SEMANTICS.md#discrete-in-event-time).
    """

    reset: str | None = None
    v_min: float | None = None
    spikes_per_update: str | None = None
    threshold_ge: bool | None = None
    refractory_us: float = 0.0
    dt_us: float | None = None
    recurrent_delay_us: float | None = None
    reset_delay: bool | None = None
    min_spike_interval_us: float | None = None

    def __post_init__(self):
        if self.reset is not None and self.reset not in RESET_MODES:
            raise OptionError(f"must be {' or '.join(RESET_MODES)}, got {self.reset!r}", option="--reset")
        if self.spikes_per_update is not None and self.spikes_per_update not in SPIKES_PER_UPDATE:
            raise OptionError(f"must be {' or '.join(SPIKES_PER_UPDATE)}, got {self.spikes_per_update!r}",
                              option="--spikes-per-update")
        # the same bounds as model parameters and timestamps (docs/SEMANTICS.md#cli): values beyond
        # them overflow float32 state or the µs clock
        if self.v_min is not None and not (np.isfinite(real_option(self.v_min, "--v-min"))
                                           and abs(self.v_min) <= 1e30):
            raise OptionError("must be a finite number of magnitude <= 1e30", option="--v-min")
        for value, option in ((self.refractory_us, "--refractory-us"), (self.dt_us, "--dt-us"),
                              (self.recurrent_delay_us, "--recurrent-delay-us"),
                              (self.min_spike_interval_us, "--min-spike-interval-us")):
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise OptionError(f"must be a number, got {value!r}", option=option)
            if not (np.isfinite(value) and value < 2.0 ** 53):
                raise OptionError("must be a finite number of microseconds below 2**53", option=option)
        if self.refractory_us < 0:
            raise OptionError("must be >= 0", option="--refractory-us")
        for value, option in ((self.dt_us, "--dt-us"), (self.recurrent_delay_us, "--recurrent-delay-us")):
            if value is not None and not value >= MIN_TIME_STEP_US:
                raise OptionError(f"must be >= {MIN_TIME_STEP_US:g} µs (a nanosecond), got {value:g}", option=option)
        if self.min_spike_interval_us is not None and self.min_spike_interval_us < 0:
            raise OptionError("must be >= 0", option="--min-spike-interval-us")
        if self.threshold_ge not in (None, True, False):
            raise OptionError(f"must be True (v >= threshold) or False (v > threshold), got {self.threshold_ge!r}",
                              option="--threshold-rule")
        if self.reset_delay not in (None, True, False):
            raise OptionError(f"must be True or False, got {self.reset_delay!r}", option="--reset-delay")


@dataclass(frozen=True)
class Profile:
    """A set of conventions for reading NIR neuron nodes (see the module docstring)."""

    name: str
    threshold_ge: bool
    subtract: bool
    multi_spike: bool
    floor_at_minus_threshold: bool  # IF (and I) only, as sinabs.from_nir builds IAF
    default_dt_s: float | None
    discrete: bool = False  # a discrete-time framework: event mode fires at most once per dt


PROFILES = {
    "nir": Profile("nir", threshold_ge=False, subtract=False, multi_spike=False, floor_at_minus_threshold=False, default_dt_s=None),
    "sinabs": Profile("sinabs", threshold_ge=True, subtract=True, multi_spike=True, floor_at_minus_threshold=True, default_dt_s=1e-3),
    "speck": Profile("speck", threshold_ge=True, subtract=True, multi_spike=False, floor_at_minus_threshold=True, default_dt_s=1e-3),
    # snnTorch's own importer (snntorch/import_nir.py) builds every LIF/CubaLIF with
    # reset_mechanism="zero" and reset_delay=False: the profile's defaults
    "snntorch": Profile("snntorch", threshold_ge=False, subtract=False, multi_spike=False, floor_at_minus_threshold=False, default_dt_s=1e-4, discrete=True),
    "norse": Profile("norse", threshold_ge=False, subtract=False, multi_spike=False, floor_at_minus_threshold=False, default_dt_s=1e-3, discrete=True),
    # rockpool/nn/modules/torch/lif_torch.py StepPWL: (v >= θ)·floor(v/θ) spikes, v − n·θ
    "rockpool": Profile("rockpool", threshold_ge=True, subtract=True, multi_spike=True, floor_at_minus_threshold=False, default_dt_s=1e-3, discrete=True),
    # spyx/nn.py: s = H(V − θ) (strict), V − s·θ; dt = τ(1 − r) from the file (spyx writes dt = 1)
    "spyx": Profile("spyx", threshold_ge=False, subtract=True, multi_spike=False, floor_at_minus_threshold=False, default_dt_s=1.0, discrete=True),
    # lava-dl slayer CUBA: v ≥ θ + eps, v ← 0; dt = τ/r (lava_to_nir.py writes dt = 1e-4)
    "lava-dl": Profile("lava-dl", threshold_ge=True, subtract=False, multi_spike=False, floor_at_minus_threshold=False, default_dt_s=1e-4, discrete=True),
}


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise OptionError(f"unknown profile '{name}' (choose from {', '.join(PROFILE_NAMES)})", option="--profile")
    return PROFILES[name]


def expand_parameter(node, field: str, shape: tuple, name: str, path, default=None) -> np.ndarray:
    """A neuron parameter as a float64 array in NIR C-order, broadcast to the population shape,
    or a 1-element array when it is the same for every neuron (the engine then stores it once)."""
    value = getattr(node, field, None)
    if value is None:
        if default is None:
            raise ModelError(f"missing parameter '{field}'", node=name, path=path)
        value = default
    arr = np.asarray(value, dtype=np.float64)
    n = int(np.prod(shape))
    if arr.size == 1:
        return arr.reshape(1).copy()
    if arr.size == n:
        flat = arr.reshape(-1)
    else:
        try:
            flat = np.broadcast_to(arr, shape).reshape(-1)
        except ValueError:
            raise ModelError(
                f"parameter '{field}' of shape {arr.shape} does not fit the population shape {shape}",
                node=name,
                path=path,
            ) from None
    if np.all(flat == flat[0]):
        return flat[:1].copy()
    return np.ascontiguousarray(flat)


def _exporter_dt(tau: np.ndarray, r: np.ndarray, profile: str) -> np.ndarray:
    """The time step each neuron's (τ, r) implies under an exporter's convention, seconds:
    snnTorch and lava_to_nir write r = τ/dt; Spyx r = β = 1 − dt/τ; Rockpool r = τ·exp(−dt/τ)/dt,
    solved for dt: with x = dt/τ, x·exp(x) = 1/r (Lambert W, by Newton's method)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if profile == "spyx":
            return tau * (1.0 - r)
        if profile == "rockpool":
            c = 1.0 / r
            x = np.where(c > 1.0, np.log(np.maximum(c, 1.0)), c)  # start on the right side of the root
            for _ in range(60):
                ex = np.exp(x)
                x = x - (x * ex - c) / (ex * (1.0 + x))
            return tau * x
        return tau / r


def node_dt(node, kind: str, name: str, path, profile: str = "snntorch") -> float | None:
    """The exporter's dt written into a node's (τ, r) (:func:`_exporter_dt`; the same for every
    neuron of the node, to :data:`DT_TOLERANCE`), or None when the node has no τ or no positive
    solution."""
    tau = getattr(node, "tau", None) if kind in ("LI", "LIF") else getattr(node, "tau_mem", None)
    if tau is None or getattr(node, "r", None) is None:
        return None
    tau = np.asarray(tau, dtype=np.float64).ravel()
    r = np.asarray(node.r, dtype=np.float64).ravel()
    dt = np.broadcast_arrays(_exporter_dt(tau, r, profile))[0]
    dt = dt[np.isfinite(dt) & (dt > 0)]
    if dt.size == 0:
        return None
    if np.max(np.abs(dt - dt[0])) > DT_TOLERANCE * abs(dt[0]):
        raise ModelError(f"{profile} profile: the exporter's dt implied by tau and r differs between neurons", node=name, path=path)
    return float(dt[0])


#: profiles whose exporter writes its time step into τ and r (resolve_dt reads it back)
DT_FROM_FILE = ("snntorch", "lava-dl", "rockpool", "spyx")
#: relative tolerance between the dt's of different neurons and nodes. The exporters write float32:
#: r = β carries a relative error up to 6e-8·β/(1 − β) into Spyx's τ(1 − r) (6e-6 at β = 0.99),
#: Rockpool's and lava-dl's τ–r relations about 1e-7. The value read back is rounded to 6
#: significant digits (the exporters' dt are round numbers: 1e-4, 1e-3, 1), so a float32 file gives
#: exactly the dt it was written with. snntorch.export_nir writes τ = 1e-4/(1 − β) and r = τ/1e-4
#: in float32, so τ/r is 1e-4 to about 1e-8: with per-neuron β, or layers of different β, the
#: dt's differ by that much.
DT_TOLERANCE = 1e-4


def resolve_dt(profile: Profile, overrides: Overrides, graph) -> float | None:
    """The profile's time step in seconds: the option, else the file (snntorch, lava-dl: τ/r;
    rockpool: r·dt = τ·exp(−dt/τ); spyx: τ(1 − r)), else the profile's default; None for strict NIR."""
    if overrides.dt_us is not None:
        return overrides.dt_us * 1e-6
    if profile.name in DT_FROM_FILE:
        found = []
        for name in graph.order:
            kind = graph.type_of(name)
            if kind in ("LI", "LIF", "CubaLI", "CubaLIF"):
                dt = node_dt(graph.nodes[name], kind, name, graph.path, profile.name)
                if dt is not None:
                    found.append((name, dt))
        if not found:
            return profile.default_dt_s  # snntorch.export_nir and lava_to_nir hard-code dt = 1e-4
        for name, dt in found:
            if abs(dt - found[0][1]) > DT_TOLERANCE * found[0][1]:
                raise ModelError(f"{profile.name} profile: the exporter's dt is {dt:.9g} s here but {found[0][1]:.9g} s in "
                                 f"'{found[0][0]}' (pass --dt-us to choose one)", node=name, path=graph.path)
        name, dt = found[0]
        if not MIN_TIME_STEP_US <= dt * 1e6 <= MAX_TIME_STEP_US:
            raise ModelError(f"{profile.name} profile: the exporter's dt read from tau and r is {dt:.9g} s, outside "
                             f"{MIN_TIME_STEP_US:g} µs .. 2**53 µs (pass --dt-us to choose one)", node=name, path=graph.path)
        return float(f"{dt:.6g}")
    return profile.default_dt_s


def spike_rule(profile: Profile, overrides: Overrides, dt: float | None = None) -> SpikeRule:
    """The profile's firing rule with the explicit options applied."""
    subtract = profile.subtract if overrides.reset is None else overrides.reset == "subtract"
    multi = profile.multi_spike if overrides.spikes_per_update is None else overrides.spikes_per_update == "multi"
    ge = profile.threshold_ge if overrides.threshold_ge is None else overrides.threshold_ge
    if overrides.reset_delay and profile.name != "snntorch":
        raise OptionError(f"is snnTorch's reset timing; profile {profile.name} resets in the spike's own step",
                          option="--reset-delay")
    return SpikeRule(threshold_ge=ge, subtract=subtract, multi_spike=multi, refractory_s=overrides.refractory_us * 1e-6,
                     reset_delay=bool(overrides.reset_delay), min_interval_s=min_spike_interval(profile, overrides, dt))


def min_spike_interval(profile: Profile, overrides: Overrides, dt: float | None) -> float:
    """Event mode: the shortest time between two firings of one neuron, seconds (0 = no limit).
    A discrete-time framework fires a neuron at most once per step; its model in event time
    keeps that bound unless the user sets another (docs/SEMANTICS.md#discrete-in-event-time)."""
    if overrides.min_spike_interval_us is not None:
        return overrides.min_spike_interval_us * 1e-6
    return float(dt) if profile.discrete and dt else 0.0


def _continuous_tau(decay: np.ndarray, dt: float, field: str, name: str, path) -> np.ndarray:
    """τ whose exact exponential decay over dt equals the discrete factor ``decay``."""
    if np.any(decay <= 0) or np.any(decay > 1):
        raise ModelError(f"{field}: decay factor per step must be in (0, 1], got {decay.min():g}..{decay.max():g}", node=name, path=path)
    with np.errstate(divide="ignore"):
        tau = -dt / np.log(decay)
    return tau  # inf where decay == 1 (no leak)


def neuron_model(profile: Profile, overrides: Overrides, dt: float | None, kind: str, node, shape: tuple,
                 bias: np.ndarray, name: str, path):
    """Convert one NIR neuron node into an engine model (parameters in NIR C-order, broadcast).

    Args:
        kind: NIR type ('I', 'IF', 'LI', 'LIF', 'CubaLI', 'CubaLIF').
        bias: constant input arriving at the node (from upstream Affine/Conv biases), NIR order,
            1 element when uniform.
        dt: the profile's time step, seconds (None for strict NIR).

    Returns:
        (model, spiking) with model one of IntegratorModel, LeakyModel, CubaModel.
    """
    p = lambda field, default=None: expand_parameter(node, field, shape, name, path, default)  # noqa: E731
    spiking = kind in ("IF", "LIF", "CubaLIF")
    bias = np.asarray(bias, dtype=np.float64).reshape(-1)
    per_step = profile.name != "nir"
    if per_step and dt is None:
        raise ModelError(f"profile {profile.name} needs a time step (dt)", node=name, path=path)

    threshold, v_reset, v_min = _spike_parameters(profile, overrides, dt, kind, p, name, path) if spiking else (None,) * 3
    rule_args = dict(threshold=threshold, v_reset=v_reset, v_min=v_min)
    infinite = [f for f in MAY_BE_INFINITE.get(kind, ()) if np.any(p(f, 1.0) == np.inf)]
    with np.errstate(all="ignore"):  # an overflow or 0/0 is reported below, not warned about
        if infinite:
            model = _without_decay(profile, dt, kind, p, bias, rule_args, infinite, name, path)
        elif kind in ("I", "IF"):
            model = _integrator_model(profile, dt, kind, p, bias, rule_args)
        elif kind in ("LI", "LIF"):
            model = _leaky_model(profile, dt, kind, p, bias, rule_args, name, path)
        else:
            model = _cuba_model(profile, dt, p, bias, rule_args, name, path)
    _check_derived(model, profile, dt, name, path)
    return model, spiking


def _without_decay(profile: Profile, dt, kind: str, p, bias, rule_args: dict, infinite: list, name: str,
                   path) -> IntegratorModel:
    """A leaky node whose file says +inf ("no decay"). lava_to_nir.py writes slayer's decay 0 so
    (τ = dt/0, r = τ/dt, w_in = τ_syn/dt); slayer's CUBA neuron with current_decay 1 and
    voltage_decay 0 (u = x, v ← v + u) is the IF that nir_to_lava.py builds for NIR's IF, and a
    LIF with voltage_decay 0 likewise: ``v ← v + g·x``, g = r·dt/τ (w_in·dt/τ_syn for a CUBA) = 1
    by lava_to_nir's r = τ/dt. Other profiles, and other combinations (a current that never decays,
    a decaying current into a membrane without leak), are refused."""
    what = f"parameter '{infinite[0]}' is +inf (no decay, as lava_to_nir.py writes a decay of 0)"
    if profile.name != "lava-dl":
        raise ModelError(f"{what}: only profile lava-dl reads it (as slayer's IF); profile {profile.name} needs "
                         "finite time constants", node=name, path=path)
    if kind in ("LI", "LIF"):
        tau, r = p("tau"), p("r", 1.0)
        if not (np.all(tau == np.inf) and np.all(r == np.inf)):
            raise ModelError(f"{what}: lava-dl reads tau = r = +inf together (lava_to_nir.py's r = tau/dt), "
                             "here not for every neuron", node=name, path=path)
        gain = np.ones(1)
    else:
        tau_mem, tau_syn, w_in = p("tau_mem"), p("tau_syn"), p("w_in", 1.0)
        if np.any(tau_syn == np.inf) or np.any(w_in == np.inf):
            raise ModelError(f"{what}: a synaptic current that never decays (slayer's current_decay 0) is not "
                             "supported", node=name, path=path)
        if not (np.all(tau_mem == np.inf) and np.all(1.0 - dt / tau_syn == 0.0)):
            raise ModelError(f"{what}: a membrane without leak is supported with tau_syn = dt (slayer's IF: "
                             "current_decay 1), for every neuron", node=name, path=path)
        gain = w_in * dt / tau_syn
    return IntegratorModel(gain=_compact(gain), drive=_compact(gain * bias / dt), **rule_args)


#: the engine model's fields that may be infinite: no decay (τ), no threshold, no floor or ceiling
#: (the NIR parameters that may be: :data:`evsim.model.validate.MAY_BE_INFINITE`)
_ENGINE_MAY_BE_INFINITE = ("tau_mem", "tau_syn", "threshold", "v_min", "v_max")


def _check_derived(model, profile: Profile, dt, name: str, path) -> None:
    """Every engine parameter derived from the file, the profile and dt must be a number the
    engine can hold: no NaN, and finite and at most MAX_PARAMETER_MAGNITUDE in magnitude except
    where infinity means something (:data:`_ENGINE_MAY_BE_INFINITE`). Each file parameter is checked
    on reading; their combinations (a bias over a tiny dt, 0/0) are checked here."""
    for field_name, values in vars(model).items():
        if values is None or not isinstance(values, np.ndarray):
            continue
        values = values.astype(np.float64, copy=False)
        bad = np.isnan(values) | (np.abs(values) > MAX_PARAMETER_MAGNITUDE)
        if field_name in _ENGINE_MAY_BE_INFINITE:
            bad &= ~np.isinf(values)
        if np.any(bad):
            step = "" if dt is None else f" and dt = {dt * 1e6:g} µs"
            raise ModelError(f"profile {profile.name}: the engine's {field_name} derived from the node's parameters{step} "
                             f"is {values[bad][0]:g}, not a number evsim can simulate (beyond ±{MAX_PARAMETER_MAGNITUDE:g})",
                             node=name, path=path)


def _spike_parameters(profile: Profile, overrides: Overrides, dt, kind: str, p, name: str, path) -> tuple:
    """(threshold, v_reset, v_min) of a spiking node under the profile and the overrides."""
    v_min = None
    threshold = p("v_threshold")
    v_reset = p("v_reset", 0.0)
    if profile.name == "lava-dl":
        # slayer's CUBA resets to 0 whatever the file says (nir_to_lava.py does not read v_reset)
        # and fires on v ≥ θ + eps (cuba.py threshold_eps); an IF is a CUBA neuron with
        # current_decay 1, voltage_decay 0, threshold θ·r and scale 4096 (nir_to_lava.py l.336-353)
        v_reset = np.zeros(1)
        if kind == "IF":
            threshold = threshold * p("r", 1.0) + LAVA_DL_IF_THRESHOLD_EPS
        else:
            threshold = threshold + LAVA_DL_THRESHOLD_EPS
    rule = spike_rule(profile, overrides, dt)
    if rule.subtract and np.any(threshold <= 0):
        raise ModelError("reset by subtraction needs v_threshold > 0", node=name, path=path)
    if rule.multi_spike and np.any(threshold <= 0):
        raise ModelError("several spikes per update (multi) need v_threshold > 0 (the count is v / v_threshold)",
                         node=name, path=path)
    if overrides.v_min is not None:
        v_min = np.array([float(overrides.v_min)])
        lowest = float(np.min(threshold)) if np.size(threshold) else np.inf
        if not v_min[0] < lowest:  # a floor at or above θ: a neuron there fires after every reset, without end
            raise OptionError(f"{float(overrides.v_min):g} is not below the threshold of '{name}' (v_threshold "
                              f"{lowest:g}): its neurons would fire without end", option="--v-min")
    elif profile.floor_at_minus_threshold and kind == "IF":
        v_min = -threshold
    return threshold, v_reset, v_min


def _integrator_model(profile: Profile, dt, kind: str, p, bias, rule_args: dict) -> IntegratorModel:
    """I / IF: the gain of a spike and the drive of the bias under the profile."""
    r = p("r", 1.0)
    if profile.name in ("sinabs", "speck", "snntorch", "rockpool", "spyx", "lava-dl"):
        gain, drive = np.ones(1), bias / dt  # v += w per spike; bias b per step
    elif profile.name == "norse" and kind == "IF":
        # norse's IAFCell (what from_nir builds for IF; its exporter writes r = 1):
        # v ← v + input per step, so a spike adds r·w and a bias adds r·b per step
        gain, drive = r, r * bias / dt
    elif profile.name == "norse":
        # norse has no module for I; forward Euler of dv/dt = R·I with the input a current
        # held for one step dt, as its LI boxes integrate: a spike adds r·dt·w
        gain, drive = r * dt, r * bias
    else:
        gain, drive = r, r * bias
    return IntegratorModel(gain=_compact(gain), drive=_compact(drive), **rule_args)


def _leaky_model(profile: Profile, dt, kind: str, p, bias, rule_args: dict, name: str, path) -> LeakyModel:
    """LI / LIF: continuous τ, gain and rest potential under the profile (discrete decays matched exactly)."""
    tau, r, v_leak = p("tau"), p("r", 1.0), p("v_leak", 0.0)
    if np.any(tau <= 0):
        raise ModelError("tau must be > 0", node=name, path=path)
    if profile.name in ("sinabs", "speck"):
        tau_s = tau * dt  # sinabs' tau_mem is in steps; decay exp(-1/tau) per step
        gain = np.ones(1)
        v_rest = v_leak + tau * bias  # b per step: v_inf = tau_steps * b
    elif profile.name == "snntorch":
        beta = 1.0 - dt / tau
        tau_s = _continuous_tau(beta, dt, "tau", name, path)
        gain = r * dt / tau  # = 1 for snntorch files (r = tau/dt)
        v_rest = v_leak + gain * bias * tau_s / dt
    elif profile.name in ("spyx", "lava-dl"):
        # spyx/nir.py from_nir: beta = 1 − dt/tau, r, w_in and v_leak ignored; nir_to_lava.py
        # (lava-dl): voltage_decay = dt/tau, w_scale = r·dt/tau folded into the weights
        beta = 1.0 - dt / tau
        tau_s = _continuous_tau(beta, dt, "tau", name, path)
        gain = np.ones(1) if profile.name == "spyx" else r * dt / tau
        v_rest = gain * bias * tau_s / dt
    elif profile.name == "rockpool":
        # LIFNeuronTorch: v ← exp(−dt/τ)·v + x + bias (Rockpool's importer loads v_leak as
        # the bias); ExpSynTorch (LI): v ← exp(−dt/τ)·(v + x) (the input decays in its step)
        alpha = np.exp(-dt / tau)
        tau_s = tau
        if kind == "LI":
            gain, v_rest = alpha, alpha * bias / (1.0 - alpha)
        else:
            gain, v_rest = np.ones(1), (bias + v_leak) / (1.0 - alpha)
    elif profile.name == "norse":
        tau_s = tau
        gain = r * dt / tau
        v_rest = v_leak + r * bias
    else:
        tau_s = tau
        gain = r / tau
        v_rest = v_leak + r * bias
    return LeakyModel(gain=_compact(gain), tau_mem=_compact(tau_s), v_rest=_compact(v_rest), **rule_args)


def _cuba_model(profile: Profile, dt, p, bias, rule_args: dict, name: str, path) -> CubaModel:
    """CubaLI / CubaLIF: continuous τs, current gain, coupling and rest current under the profile."""
    tau_mem, tau_syn = p("tau_mem"), p("tau_syn")
    r, v_leak, w_in = p("r", 1.0), p("v_leak", 0.0), p("w_in", 1.0)
    if np.any(tau_mem <= 0) or np.any(tau_syn <= 0):
        raise ModelError("tau_mem and tau_syn must be > 0", node=name, path=path)
    if profile.name in ("sinabs", "speck"):
        tau_m, tau_s = tau_mem * dt, tau_syn * dt
        gain = w_in  # I += w_in * w per spike
        coupling = tau_mem  # every step v gains the current: R / tau_m = 1 / dt
        i_rest = w_in * tau_syn * bias
    elif profile.name == "snntorch":
        alpha, beta = 1.0 - dt / tau_syn, 1.0 - dt / tau_mem
        gain = w_in * dt / tau_syn  # = 1 for snntorch files (w_in = tau_syn/dt)
        if np.all(alpha == 0.0):
            return _cuba_without_current_memory(beta, gain, v_leak, bias, dt, rule_args, name, path)
        tau_s = _continuous_tau(alpha, dt, "tau_syn", name, path)
        tau_m = _continuous_tau(beta, dt, "tau_mem", name, path)
        coupling = tau_m / dt  # the current reaches v in the same step: R / tau_m = 1 / dt
        i_rest = gain * bias * tau_s / dt
    elif profile.name in ("spyx", "lava-dl"):
        # the same discrete update as snn.Synaptic: I ← αI + x, v ← βv + I; α = 1 − dt/τs,
        # β = 1 − dt/τm (spyx/nir.py from_nir; nir_to_lava.py current/voltage_decay = dt/τ)
        alpha, beta = 1.0 - dt / tau_syn, 1.0 - dt / tau_mem
        # spyx ignores w_in and r; nir_to_lava folds w_scale = w_in·dt/τs into the input weights
        gain = np.ones(1) if profile.name == "spyx" else w_in * dt / tau_syn
        if profile.name == "lava-dl" and np.all(alpha == 0.0):
            return _cuba_without_current_memory(beta, gain, np.zeros(1), bias, dt, rule_args, name, path)
        # (not Spyx: its CuBaLIF subtracts θ before the decay, V ← β(V − sθ) + x, its LIF after it)
        tau_s = _continuous_tau(alpha, dt, "tau_syn", name, path)
        tau_m = _continuous_tau(beta, dt, "tau_mem", name, path)
        coupling = tau_m / dt
        i_rest = gain * bias * tau_s / dt
        v_leak = np.zeros(1)  # neither reads v_leak (nir_to_lava.py asserts it is 0)
    elif profile.name == "rockpool":
        # LIFTorch: I ← exp(−dt/τs)·(I + x), v ← exp(−dt/τm)·v + I + bias: sinabs' update with
        # τ in seconds; w_in and r ignored (r only carries dt); v_leak is loaded as the bias
        tau_m, tau_s = tau_mem, tau_syn
        gain = np.ones(1)
        coupling = tau_m / dt  # the current reaches v once per step
        i_rest = bias * tau_s / dt
        v_leak = v_leak / (1.0 - np.exp(-dt / tau_m))  # rest potential of a bias added every step
    elif profile.name == "norse":
        tau_m, tau_s = tau_mem, tau_syn
        gain = w_in  # norse: the current jumps by the input
        coupling = r
        i_rest = w_in * bias * tau_s / dt
    else:
        tau_m, tau_s = tau_mem, tau_syn
        gain = w_in / tau_syn
        coupling = r
        i_rest = w_in * bias
    return CubaModel(gain=_compact(gain), tau_mem=_compact(tau_m), tau_syn=_compact(tau_s), r=_compact(coupling),
                     v_leak=_compact(v_leak), i_rest=_compact(i_rest), **rule_args)


def _cuba_without_current_memory(beta, gain, v_leak, bias, dt, rule_args: dict, name: str, path) -> LeakyModel:
    """A discrete CubaLIF whose current keeps nothing from one step to the next (α = 1 − dt/τs = 0,
    τs = dt: ``I ← x``, then ``v ← βv + I``) is the LIF ``v ← βv + x``, built as the profile builds
    a LIF (snntorch, lava-dl). lava_to_nir.py writes this for slayer's ``current_decay = 1`` (the
    lava-dl tutorials' neuron, iDecay 4096); the CUBA closed form has no limit at τs = 0."""
    tau_m = _continuous_tau(beta, dt, "tau_mem", name, path)
    return LeakyModel(gain=_compact(gain), tau_mem=_compact(tau_m), v_rest=_compact(v_leak + gain * bias * tau_m / dt),
                      **rule_args)


def _compact(values) -> np.ndarray:
    """1 element when all values are equal (stored once), else the full array."""
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.size > 1 and np.all(arr == arr[0]):
        return arr[:1].copy()
    return arr

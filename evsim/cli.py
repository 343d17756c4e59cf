"""The ``evsim`` command line (docs/SEMANTICS.md#cli): run, eval, calibrate, info, raster, plot, plot-classes, plot-temporal,
report.

User errors (bad file, bad model, bad option) print one line ``evsim: error: ...`` on stderr and
exit with code 2; an interrupted evaluation keeps what it finished and exits with 130.
"""

from __future__ import annotations

import math
import os
import signal
import sys
import threading


def _leave_at_once(signum, frame):  # nothing has started yet: no file to finish, no traceback
    os.write(2, b"evsim: interrupted\n")
    os._exit(130)


# a Ctrl-C or SIGTERM while this module loads (its dependencies, the click commands) ends the
# process quietly; the previous handlers come back at the end of the module when it is imported,
# and main() takes over while a command runs (run as a script, it takes over directly)
_BEFORE_IMPORT = ({s: signal.signal(s, _leave_at_once) for s in (signal.SIGINT, signal.SIGTERM)}
                  if threading.current_thread() is threading.main_thread() else {})

from pathlib import Path  # noqa: E402

import click  # noqa: E402
import numpy as np  # noqa: E402

from .bundled import BUNDLED_CALIBRATION, BUNDLED_MODEL, BUNDLED_SAMPLES  # noqa: E402
from .errors import EvsimError, OptionError, RecordingError, message_without  # noqa: E402
from .chip.speck import CHIPS, QUANTIZE_SCHEMES  # noqa: E402
from .kernels.abi import CUTOFF_RULES  # noqa: E402
from .input.window import TIME_ORIGINS  # noqa: E402
from .model.profiles import PROFILE_NAMES, RESET_MODES, SPIKES_PER_UPDATE, THRESHOLD_RULES  # noqa: E402
from .sim import DEFAULT_BUDGET, MODES, PRECISIONS  # noqa: E402
from .paths import check_json_file, check_output_path, read_subset  # noqa: E402


def _refuse_empty(value, param):
    """An empty path argument ('') is refused: pathlib would read it as '.', the working
    directory (``evsim info ''`` described it as a dataset)."""
    if isinstance(value, str) and value == "":
        name = "/".join(param.opts) if isinstance(param, click.Option) else param.human_readable_name
        raise OptionError("'' is not a file name" if not getattr(param.type, "dir_okay", False)
                          else "'' is not a path", option=name)


class _Path(click.Path):
    """click.Path without the empty path."""

    def convert(self, value, param, ctx):
        _refuse_empty(value, param)
        return super().convert(value, param, ctx)


class _FileSpec(click.types.StringParamType):
    """A file name with an optional ``:KEY`` (``--subset``), not empty."""

    def convert(self, value, param, ctx):
        _refuse_empty(value, param)
        return super().convert(value, param, ctx)



# --------------------------------------------------------------------------------------------
# shared options
# --------------------------------------------------------------------------------------------


def _options(*decorators):
    def apply(f):
        for d in reversed(decorators):
            f = d(f)
        return f
    return apply


def _interruptible(command):
    """SIGINT/SIGTERM during a one-sample command only set a flag (a KeyboardInterrupt raised while
    numba hands a result back crashes the interpreter, see evsim.analysis.evaluate): the sample
    finishes, its outputs are written, and the command then exits with code 130."""
    import functools

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from .analysis.evaluate import interrupt_guard

        with interrupt_guard as stop:
            out = command(*args, **kwargs)
            interrupted = bool(stop)
        if interrupted:
            click.echo("evsim: interrupted (the sample in progress was finished)", err=True)
            raise click.exceptions.Exit(130)
        return out

    return wrapper


model_options = _options(
    click.option("--profile", type=click.Choice(PROFILE_NAMES), default=None,
                 help="How to read the exporter's parameters (docs/SEMANTICS.md#profiles). Default: the profile "
                      "the model declares (<model>.evsim.json or NIR metadata), else nir (strict)."),
    click.option("--reset", type=click.Choice(RESET_MODES), default=None,
                 help="Reset after a spike: to v_reset (NIR's reset potential, 0 by default) or subtract θ. "
                      "Default: the profile's."),
    click.option("--v-min", type=float, default=None, help="Floor of the membrane potential (state units). "
                                                           "Default: the profile's (none, or −θ for sinabs/speck IF)."),
    click.option("--spikes-per-update", type=click.Choice(SPIKES_PER_UPDATE), default=None,
                 help="One spike per update, or floor(v/θ) spikes (MultiSpike). Default: the profile's."),
    click.option("--threshold-rule", type=click.Choice(list(THRESHOLD_RULES)), default=None,
                 help="Fire on v > θ (gt) or v ≥ θ (ge). Default: the profile's."),
    click.option("--refractory-us", type=float, default=0.0, show_default=True,
                 help="Absolute refractory period, microseconds."),
    click.option("--dt-us", type=float, default=None,
                 help="The profile's time step, microseconds (sinabs/speck/norse; snntorch and lava-dl read τ/r, "
                      "rockpool and spyx their own τ–r relation from the file)."),
    click.option("--recurrent-delay-us", type=float, default=None,
                 help="Delay of edges that close a cycle, microseconds (default: the profile's dt; strict NIR "
                      "needs it for recurrent graphs)."),
    click.option("--reset-delay/--no-reset-delay", default=None,
                 help="snnTorch's reset_delay (profile snntorch, clock mode): apply a spike's reset in the next "
                      "step, after its decay. Default: --no-reset-delay, as snnTorch's import_from_nir builds "
                      "its neurons (docs/SEMANTICS.md#profile-snntorch)."),
    click.option("--min-spike-interval-us", type=float, default=None,
                 help="Event mode: a neuron fires at most once per this many microseconds (0: no limit). "
                      "Default: the profile's dt for the discrete-time profiles (snntorch, norse, rockpool, spyx, "
                      "lava-dl), else 0 "
                      "(docs/SEMANTICS.md#discrete-in-event-time)."),
    click.option("--precision", type=click.Choice(PRECISIONS), default="float32", show_default=True,
                 help="Membrane state and weights precision."),
    click.option("--quantize", type=click.Choice(QUANTIZE_SCHEMES), default=None,
                 help="Simulate the network as sinabs deploys it on Speck: 8-bit weights and integer thresholds, "
                      "one scale per layer (profiles speck and sinabs)."),
)

mode_options = _options(
    click.option("--mode", type=click.Choice(MODES), default="event", show_default=True,
                 help="Fully event-driven, or the clock-driven baseline (docs/SEMANTICS.md#clock)."),
    click.option("--bin-us", type=float, default=None, help="Clock mode: bin width (time step), microseconds."),
    click.option("--n-bins", type=int, default=None, help="Clock mode: number of bins per recording."),
    click.option("--time-origin", type=click.Choice(TIME_ORIGINS), default=None,
                 help="Time 0 of a sample: its first event, or t = 0 of the recording (a fixed frame that starts "
                      "before the first event). Default: first-event, or what the dataset folder declares "
                      "(docs/SEMANTICS.md#time-window)."),
    click.option("--duration-us", type=float, default=None,
                 help="The sample spans [origin, origin + D) µs: clock bins cover it all, event mode advances the "
                      "state to its end; later events are not part of it. Default: up to the last event, or what "
                      "the dataset folder declares."),
)

cutoff_options = _options(
    click.option("--cutoff", type=click.Choice(list(CUTOFF_RULES)), default="none", show_default=True,
                 help="Stop consuming input once the output is confident: max softmax(a/T) ≥ 1 − ε (conf) or "
                      "top1 − top2 ≥ β (topk)."),
    click.option("--threshold", type=float, default=None,
                 help="Cutoff threshold: β for topk (output units: spikes for counts), or the softmax level for conf."),
    click.option("--epsilon", type=float, default=None,
                 help="conf: decide at max softmax ≥ 1 − ε (default 0.05); calibrate: tolerated error rate."),
    click.option("--temperature", type=float, default=None,
                 help="conf: softmax temperature T, output units (default 1; a calibration file brings its own)."),
    click.option("--calibration", type=_Path(dir_okay=False), default=None,
                 help="Calibration file from `evsim calibrate` (per-time-bin thresholds)."),
    click.option("--max-time-us", type=float, default=None,
                 help="Stop consuming input after this time since the first event, microseconds."),
    click.option("--max-events", type=int, default=None, help="Stop consuming input after this many events."),
)

input_options = _options(
    click.option("--sort", is_flag=True, help="Sort unsorted timestamps instead of rejecting the recording."),
    click.option("--denoise-us", type=float, default=None,
                 help="Drop events without a neighbouring event within this time, microseconds (tonic Denoise)."),
    click.option("--downsample", type=float, default=None, help="Spatial downsampling factor (e.g. 0.5)."),
    click.option("--crop", type=str, default=None, help="Centre crop to WxH pixels (after downsampling), e.g. 32x32."),
    click.option("--sensor-size", type=str, default=None,
                 help="Sensor size WxH (needed by --crop when the file does not declare it), e.g. 34x34."),
    click.option("--merge-polarities", is_flag=True, help="Map both polarities to channel 0."),
    click.option("--t-start-us", type=float, default=None, help="Ignore events before this time since the first event, µs."),
    click.option("--t-end-us", type=float, default=None, help="Ignore events after this time since the first event, µs."),
    click.option("--budget", type=int, default=None,
                 help="Maximum processed spikes + queued items per sample (runaway activity is flagged, not hung)."
                      f"  [default: {DEFAULT_BUDGET:,}]"),
)


def _pair(text, option):
    if text is None:
        return None
    try:
        parts = [int(v) for v in text.lower().replace(",", "x").split("x")]
    except ValueError:
        raise OptionError(f"expected WxH, got {text!r}", option=option) from None
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2:
        raise OptionError(f"expected WxH, got {text!r}", option=option)
    return tuple(parts)


def _overrides(o: dict) -> dict:
    return {
        "reset": o.get("reset"),
        "v_min": o.get("v_min"),
        "spikes_per_update": o.get("spikes_per_update"),
        "threshold_ge": None if o.get("threshold_rule") is None else THRESHOLD_RULES[o["threshold_rule"]],
        "refractory_us": o.get("refractory_us") or 0.0,
        "dt_us": o.get("dt_us"),
        "recurrent_delay_us": o.get("recurrent_delay_us"),
        "reset_delay": o.get("reset_delay"),
        "min_spike_interval_us": o.get("min_spike_interval_us"),
        "quantize": o.get("quantize"),
    }


def _transform_spec(o: dict) -> dict:
    spec = {}
    if o.get("t_start_us") is not None:
        spec["t_start_us"] = o["t_start_us"]
    if o.get("t_end_us") is not None:
        spec["t_end_us"] = o["t_end_us"]
    if o.get("denoise_us") is not None:
        spec["denoise_us"] = o["denoise_us"]
    if o.get("downsample") is not None:
        spec["downsample"] = o["downsample"]
    if o.get("crop") is not None:
        spec["crop"] = _pair(o["crop"], "--crop")
    if o.get("sensor_size") is not None:
        spec["sensor_size"] = _pair(o["sensor_size"], "--sensor-size")
    if o.get("merge_polarities"):
        spec["merge_polarities"] = True
    return spec


def _cutoff(o: dict, model, mode: str):
    """The Cutoff of a command's options; meaningless or conflicting combinations are refused."""
    from .analysis.calibration import read_calibration
    from .sim.result import Cutoff

    kind = o.get("cutoff", "none")
    threshold, epsilon, temperature = o.get("threshold"), o.get("epsilon"), o.get("temperature")
    common = {"max_time_us": o.get("max_time_us"), "max_events": o.get("max_events")}
    if o.get("calibration"):
        check_json_file(o["calibration"], "--calibration")
        for value, name in ((threshold, "--threshold"), (epsilon, "--epsilon"), (temperature, "--temperature")):
            if value is not None:
                raise OptionError("comes from the calibration file; give either it or --calibration", option=name)
        doc = read_calibration(o["calibration"], model_hash=model.model_hash, profile=model.profile.name, mode=mode,
                               options=_calibration_options(o))
        if kind not in ("none", doc["cutoff"]):
            raise OptionError(f"the calibration is for --cutoff {doc['cutoff']}, not {kind}", option="--calibration")
        return Cutoff(mode=doc["cutoff"], table=doc["thresholds"], bin_width_us=doc["grid"]["bin_width_us"],
                      temperature=doc.get("temperature", 1.0), **common)
    if kind == "none":
        for value, name in ((threshold, "--threshold"), (epsilon, "--epsilon"), (temperature, "--temperature")):
            if value is not None:
                raise OptionError("has no effect without a cutoff: add --cutoff topk or --cutoff conf", option=name)
        return Cutoff(mode="none", **common)
    if kind == "topk":
        if threshold is None:
            raise OptionError("--cutoff topk needs --threshold β or --calibration FILE", option="--cutoff")
        for value, name in ((epsilon, "--epsilon"), (temperature, "--temperature")):
            if value is not None:
                raise OptionError("applies to --cutoff conf only (topk decides at top1 − top2 ≥ --threshold)",
                                  option=name)
        return Cutoff(mode="topk", threshold=threshold, **common)
    # conf: max softmax(a/T) ≥ threshold, the threshold given directly or as 1 − ε
    if threshold is not None and epsilon is not None:
        raise OptionError("give either --threshold (the softmax level) or --epsilon (level 1 − ε), not both",
                          option="--epsilon")
    if threshold is not None and not 0.0 < threshold <= 1.0:
        raise OptionError(f"a softmax level lies in (0, 1], got {threshold:g}: the conf cutoff could never decide",
                          option="--threshold")
    return Cutoff(mode="conf", threshold=threshold, epsilon=0.05 if epsilon is None else epsilon,
                  temperature=1.0 if temperature is None else temperature, **common)


def _calibration_options(o: dict) -> dict:
    """Options that change what the model computes: a calibration only holds for the same ones."""
    # None leaves the profile's value; refractory 0 is the default (False and 0.0 are kept: they
    # can differ from a profile's default)
    opts = {k: v for k, v in _overrides(o).items() if v is not None and not (k == "refractory_us" and v == 0.0)}
    for key in ("bin_us", "n_bins", "duration_us"):
        if o.get(key) is not None:
            opts[key] = o[key]
    if o.get("time_origin") not in (None, "first-event"):
        opts["time_origin"] = o["time_origin"]
    opts.update(_transform_spec(o))
    return {k: list(v) if isinstance(v, tuple) else v for k, v in opts.items()}


def _load(model_path, o: dict):
    from .compile.builder import load_model
    from .numba_start import start_numba

    start_numba()

    model = load_model(str(model_path), profile=o.get("profile"), precision=o.get("precision", "float32"),
                       **_overrides(o))
    o["profile"] = model.profile.name
    if model.profile_source == "default" and any(p.spiking for p in model.populations[1:]):
        _notice(f"{Path(model_path).name} declares no profile; it was read as strict NIR (--profile "
                "sinabs|speck|snntorch|norse for a model exported by that framework, or a sidecar "
                "<model>.evsim.json, see docs/SEMANTICS.md)")
    return model


def _config(model_path, o: dict, cutoff, **kwargs):
    """The EvalConfig of a command's options (model, profile, overrides, mode, cutoff, input)."""
    from .analysis.evaluate import EvalConfig

    window = {"time_origin": o.get("time_origin") or "first-event", "duration_us": o.get("duration_us")}
    window.update(kwargs.pop("window", None) or {})
    return EvalConfig(os.path.abspath(model_path), o["profile"], _overrides(o), o["precision"], o["mode"],
                      o["bin_us"], o["n_bins"], cutoff, _transform_spec(o), o["sort"], o["budget"], **window, **kwargs)


def _given(name: str) -> bool:
    """True when option ``name`` was given on the command line (not its default)."""
    from click.core import ParameterSource

    ctx = click.get_current_context()
    return name in ctx.params and ctx.get_parameter_source(name) != ParameterSource.DEFAULT


def _describe_cutoff(cutoff, o: dict) -> str:
    """One phrase: which cutoff applies (rule, threshold or calibration, input limits)."""
    if cutoff.mode == "none":
        text = "none (every input event is read)"
    elif cutoff.table is not None:
        text = f"{cutoff.mode} from {Path(o['calibration']).name} ({len(cutoff.table)} threshold(s)"
        text += f", T = {cutoff.temperature:g})" if cutoff.mode == "conf" else ")"
    elif cutoff.mode == "topk":
        text = f"topk: decide at top1 − top2 ≥ {cutoff.threshold:g}"
    else:
        text = f"conf: decide at max softmax(a/{cutoff.temperature:g}) ≥ {cutoff.global_threshold:g}"
    limits = []
    if cutoff.max_time_us is not None:
        limits.append(f"input read for at most {cutoff.max_time_us:g} µs")
    if cutoff.max_events is not None:
        limits.append(f"at most {cutoff.max_events} events")
    return text + (f", {', '.join(limits)}" if limits else "")


def _options_changing_the_model() -> list:
    """The options given on the command line that change what the bundled model computes (for
    which its calibration would not hold), as ``--name``."""
    ctx = click.get_current_context()
    from click.core import ParameterSource

    explicit = {name for name in ctx.params if ctx.get_parameter_source(name) != ParameterSource.DEFAULT}
    harmless = {"raster_path", "json_path", "label", "workers", "quiet", "cutoff", "model", "recording"}
    return sorted("--" + name.replace("_", "-") for name in explicit - harmless)


def _label_from_path(path: Path):
    """The label of a recording in a class folder root/<label>/, by the rule of `evsim eval`
    (ASCII digits, docs/SEMANTICS.md#formats), else None."""
    from .input.datasets import folder_label

    return folder_label(Path(path).parent.name)


def _bundled_recording() -> Path:
    files = sorted(p for p in BUNDLED_SAMPLES.glob("*/*") if p.is_file())
    if not files:
        raise EvsimError(f"no bundled recording found in {BUNDLED_SAMPLES}")
    return files[0]


# --------------------------------------------------------------------------------------------
# commands
# --------------------------------------------------------------------------------------------


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="evsim")
def cli():
    """evsim: fully event-driven simulation of NIR spiking networks on DVS recordings.

    Run `evsim run` with no arguments for the bundled N-MNIST demo.
    """


@cli.command()
@click.argument("model", required=False, type=_Path(dir_okay=False))
@click.argument("recording", required=False, type=_Path(dir_okay=False))
@click.option("--raster", "raster_path", type=_Path(dir_okay=False), default=None,
              help="Write a spike raster of every layer to this file (PNG, SVG or PDF).")
@click.option("--json", "json_path", type=_Path(dir_okay=False), default=None, help="Write the sample record (JSON).")
@click.option("--label", type=int, default=None, help="True class (default: the parent folder name if it is an integer).")
@model_options
@mode_options
@cutoff_options
@input_options
@_interruptible
def run(model, recording, raster_path, json_path, label, **o):
    """Simulate one RECORDING with MODEL (a NIR file) and print the prediction, the output vector,
    events consumed, SynOps and spikes per layer. With no arguments: the bundled N-MNIST model on
    a bundled held-out recording."""
    bundled = model is None
    if bundled:
        model, recording = BUNDLED_MODEL, _bundled_recording()
    elif recording is None:
        raise OptionError("give a RECORDING after the MODEL (or no arguments for the bundled demo)", option="RECORDING")
    _check_outputs(json=("--json", json_path), figure=("--raster", raster_path))
    compiled = _load(model, o)
    from .sim import event as _event

    _event.COMPILE_NOTICE = True  # a first run says why it is silent for minutes
    why = None
    if bundled and not _given("cutoff") and not o.get("calibration"):
        changed = _options_changing_the_model()
        if not changed and BUNDLED_CALIBRATION.is_file():
            o["calibration"] = str(BUNDLED_CALIBRATION)
            why = "the demo's default; `--cutoff none` reads everything"
        else:
            why = f"the bundled calibration holds for the demo's default options only (given: {', '.join(changed)})"
    from .analysis.evaluate import SampleRunner, sample_record

    config = _config(model, o, _cutoff(o, compiled, o["mode"]), anytime=True)
    cutoff_line = f"cutoff      {_describe_cutoff(config.cutoff, o)}" + (f"; {why}" if why else "")
    runner = SampleRunner(config)
    if label is None:
        label = _label_from_path(Path(recording))
        if label is not None and not 0 <= label < compiled.output_size:
            label = None  # a folder name that is not a class of this model
    elif not 0 <= label < compiled.output_size:
        raise OptionError(f"must name an output of the model: 0 to {compiled.output_size - 1}", option="--label")
    want_raster = raster_path is not None
    from .analysis.trajectory import Trajectory
    from .sim.result import Cutoff

    sim = runner.simulator(config.cutoff, record_output=True, record_spikes=want_raster)
    stream = _long_recording_stream(recording, config, want_raster)
    uncut = not config.cutoff.stops_early  # else the oracle cutoff time needs a run on the complete input
    if stream is not None:  # read and simulated in chunks (docs/SEMANTICS.md#long-recordings)
        rec = stream
        result = sim.run_stream(stream, source=str(recording))
        full = result if uncut else runner.simulator(Cutoff(), record_output=True).run_stream(stream, source=str(recording))
        ends = np.zeros(2 if stream.n_events else 0, dtype=[("t", "<i8")])
        if stream.n_events:
            ends["t"] = [stream.t_first_us, stream.t_last_us]
        span = runner.span_us(ends)
    else:
        rec = runner.events(str(recording))
        result = sim.run(rec.events, source=str(recording))
        full = result if uncut else runner.simulator(Cutoff(), record_output=True).run(rec.events)
        span = runner.span_us(rec.events)

    record = sample_record(os.path.abspath(recording), label, result,
                           Trajectory.from_result(full, label=label, duration_us=span))
    if o.get("quantize"):
        record["quantize"] = o["quantize"]
    click.echo(cutoff_line)  # after the simulation: a bad file's or option's error is the only line
    _print_run(compiled, str(model), str(recording), rec, result, record, config)
    if json_path:
        record = {"evsim_version": _evsim_version(), "model": os.path.abspath(model), "model_hash": compiled.model_hash,
                  "profile": compiled.profile.name, "options": config.options(), **record}
        _write_json_file(json_path, record)
    if want_raster:
        from .plots import plot_raster

        plot_raster(result, compiled, rec.events, raster_path, **_raster_subtitle(config),
                    oct_us=record["oct_us"] if label is not None else None,
                    title=f"{Path(str(recording)).name}: prediction {result.prediction}"
                          + (f", label {label}" if label is not None else ""))
        click.echo(f"raster      {raster_path}")


def _long_recording_stream(recording, config, want_raster: bool):
    """An EventStream of ``recording`` when it is long enough to be read in chunks
    (:data:`evsim.input.stream.STREAM_FILE_BYTES`) and nothing needs it whole: event mode, no
    transform, no --sort, no --raster. Else None (read whole)."""
    from .input import stream as st

    try:
        size = Path(recording).stat().st_size
    except OSError:
        return None  # the whole read reports the file
    if size < st.STREAM_FILE_BYTES or config.mode != "event" or config.transform or config.sort or want_raster:
        return None
    return st.open_stream(recording)


def _shown(path) -> str:
    """A path as the summary lines print it: relative to the working directory when it lies
    inside it (``evsim/bundled/...`` from the repository's root, as in the README), else as is.
    JSON documents keep absolute paths (provenance)."""
    text = str(path)
    try:
        rel = os.path.relpath(os.path.abspath(text))
    except ValueError:  # another drive (Windows)
        return text
    return rel if not rel.startswith(os.pardir) else text


def _print_run(model, model_path, rec_path, rec, result, record, config):
    if hasattr(rec, "events"):
        ev = rec.events
        duration_ms = (ev["t"][-1] - ev["t"][0]) / 1000 if ev.size else 0.0
    else:  # a stream, iterated to its end
        duration_ms = (rec.t_last_us - rec.t_first_us) / 1000 if rec.n_events else 0.0
    mode = "event-driven" if config.mode == "event" else f"clock-driven ({_clock_text(config)})"
    quantized = f", quantized {record['quantize']}" if record.get("quantize") else ""
    click.echo(f"model       {_shown(model_path)} (profile {model.profile.name}{quantized}, {mode})")
    click.echo(f"recording   {_shown(rec_path)} ({result.events_total} events, {duration_ms:.1f} ms)")
    label = record["label"]
    verdict = "" if label is None else f"   label {label} ({'correct' if record['correct'] else 'wrong'})"
    pred = "none (no output activity)" if result.prediction is None else str(result.prediction)
    click.echo(f"prediction  {pred}{verdict}")
    out = np.asarray(result.output)
    text = " ".join(f"{v:g}" for v in out) if out.size <= 32 else f"{out.size} values, max {out.max():g}"
    click.echo(f"output      [{text}]")
    if result.status == "cutoff":
        click.echo(f"decision    at {result.decision_time_us / 1000:.2f} ms by the {config.cutoff.mode} cutoff "
                   f"(confidence {result.confidence:g})")
    else:
        click.echo(f"decision    at {(result.decision_time_us or 0) / 1000:.2f} ms ({result.status}: no early cutoff)")
    if record["oct_us"] is not None:
        click.echo(f"oracle      prediction final and correct from {record['oct_us'] / 1000:.2f} ms (OCT)")
    frac = 100.0 * result.events_consumed / result.events_total if result.events_total else 0.0
    click.echo(f"events      {result.events_consumed} / {result.events_total} consumed ({frac:.1f}%)")
    click.echo(f"synops      {result.synops:,}")
    click.echo("spikes      " + ", ".join(f"{k} {v}" for k, v in result.spikes_per_node.items()))


def _raster_subtitle(config) -> dict:
    """plot_raster's ``mode`` and ``cutoff`` texts for a run under ``config``."""
    from .plots.results import cutoff_text

    mode = "event" if config.mode == "event" else f"clock, {_clock_text(config)}"
    return {"mode": mode, "cutoff": cutoff_text({"cutoff": config.cutoff.describe()})}


def _clock_text(config):
    return f"{config.bin_us:g} µs bins" if config.bin_us else f"{config.n_bins} bins"


def _absolute_spec(spec):
    """A ``--subset FILE[:KEY]`` with FILE made absolute (what JSON documents record)."""
    if spec is None:
        return None
    file, colon, key = str(spec).partition(":")
    return os.path.abspath(file) + colon + key


def _samples(data: str, subset, limit, seed: int = 0, options: dict | None = None):
    """(path, label) list from a folder dataset, optionally restricted to a subset file and to a
    stratified sample of ``limit`` recordings (classes in proportion, drawn with ``seed``), and the
    dataset's {class folder name: label}."""
    from .analysis.evaluate import stratified_subset
    from .input.datasets import FolderDataset

    root = Path(data)
    if not root.exists():
        raise RecordingError("dataset folder does not exist", path=data)
    ds = FolderDataset(root)
    samples = ds.samples
    if options is not None:  # the folder's declared sample window, unless given
        for key, value in ds.window.items():
            if options.get(key) is None:
                options[key] = value
    if subset:
        wanted = {str((root / w).resolve()) for w in read_subset(subset, "--subset")}
        resolved = [str(Path(s[0]).resolve()) for s in samples]
        found = set(resolved)
        samples = [s for s, r in zip(samples, resolved) if r in wanted]
        if not samples:
            raise OptionError(f"no recording of {data} is listed in {subset}", option="--subset")
        missing = sorted(wanted - found)
        if missing:
            _notice(f"{len(missing)} recording(s) listed in {subset} are not in {data} (left out), e.g. "
                    f"{os.path.relpath(missing[0], root.resolve())}")
    if limit is not None:
        if limit < 1:
            raise OptionError("must be >= 1", option="--limit")
        if limit > len(samples):
            _notice(f"--limit {limit} is more than the {len(samples)} recordings there are: all are used")
        samples = [samples[i] for i in stratified_subset([label for _, label in samples], limit, seed)]
    return samples, ds.class_to_label


def _class_text(counts: dict) -> str:
    return ", ".join(f"{label}: {n}" for label, n in counts.items())


def _security(o: dict):
    """Dask TLS options → a distributed Security (None without TLS options)."""
    files = {k: o.get(k) for k in ("tls_ca_file", "tls_cert", "tls_key")}
    if not any(files.values()):
        return None
    if not o.get("scheduler"):
        raise OptionError("TLS options need --scheduler", option="--tls-ca-file")
    for name, path in files.items():
        if path is not None and not Path(path).is_file():
            raise OptionError(f"{path} does not exist", option="--" + name.replace("_", "-"))
    from distributed.security import Security

    return Security(tls_ca_file=files["tls_ca_file"], tls_client_cert=files["tls_cert"],
                    tls_client_key=files["tls_key"], require_encryption=True)


data_options = _options(
    click.option("--workers", type=int, default=1, show_default=True,
                 help="Parallel worker processes: 1 runs here; N > 1 starts a local Dask cluster of N "
                      "single-threaded workers on 127.0.0.1 (results are identical to one worker)."),
    click.option("--scheduler", type=str, default=None,
                 help="Run on an existing Dask cluster (address of a `dask scheduler`, e.g. tls://host:8786). "
                      "A Dask scheduler runs code for whoever can reach it: use TLS and trusted networks only."),
    click.option("--tls-ca-file", type=_Path(dir_okay=False), default=None, help="Dask TLS: CA certificate."),
    click.option("--tls-cert", type=_Path(dir_okay=False), default=None, help="Dask TLS: client certificate."),
    click.option("--tls-key", type=_Path(dir_okay=False), default=None, help="Dask TLS: client private key."),
    click.option("--limit", type=int, default=None,
                 help="Use a stratified sample of N recordings (classes in proportion, drawn with --seed)."),
    click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of the --limit sample."),
    click.option("--subset", type=_FileSpec(), default=None,
                 help="Only recordings listed in FILE (text: one path per line relative to DATA; JSON: a list, "
                      "or FILE.json:KEY for a list in a dict such as a model's split.json)."),
    click.option("--quiet", is_flag=True, help="No progress bar."),
)


@cli.command(name="eval")
@click.argument("model", type=_Path(dir_okay=False))
@click.argument("data", type=_Path())
@click.option("--json", "json_path", type=_Path(dir_okay=False), default=None,
              help="Write aggregates and per-sample records (JSON, rewritten every 10 s and at the end; until the "
                   "run completes, finished records are also appended to FILE.records.jsonl).")
@click.option("--csv", "csv_path", type=_Path(dir_okay=False), default=None,
              help="Write per-sample records (CSV, one row per finished sample; in sample order at the end).")
@click.option("--resume", is_flag=True,
              help="Continue an interrupted evaluation from its --json/--csv output (same model, options and data).")
@click.option("--on-error", type=click.Choice(["continue", "stop"]), default="continue", show_default=True,
              help="A recording that cannot be read: record the error and go on, or stop at the first in "
                   "sample order.")
@click.option("--anytime/--no-anytime", default=True, show_default=True,
              help="Anytime analysis (uncut trajectories: anytime curves, oracle cutoff time).")
@data_options
@model_options
@mode_options
@cutoff_options
@input_options
def eval_command(model, data, json_path, csv_path, resume, on_error, anytime, workers, scheduler, tls_ca_file,
                 tls_cert, tls_key, limit, seed, subset, quiet, **o):
    """Evaluate MODEL on a labelled folder DATA (root/<label>/<recordings>): accuracy with its 95 %
    interval, per-class accuracy, confusion matrix, events and SynOps consumed, latency, oracle
    cutoff times and anytime curves. Ctrl-C (or SIGTERM) keeps what is finished (exit 130);
    --resume continues."""
    from .analysis.evaluate import evaluate, interrupt_guard
    from .analysis.records import records_path_for

    _check_outputs(json=("--json", json_path), csv=("--csv", csv_path))
    out = json_path or csv_path
    if resume and out and not (records_path_for(out).exists() or (json_path and Path(json_path).exists())):
        _notice(f"--resume: no earlier run's files at {out}; this is a new run")
    with interrupt_guard:
        security = _security({"tls_ca_file": tls_ca_file, "tls_cert": tls_cert, "tls_key": tls_key,
                              "scheduler": scheduler})
        compiled = _load(model, o)
        samples, classes = _samples(data, subset, limit, seed, options=o)
        config = _config(model, o, _cutoff(o, compiled, o["mode"]), anytime=anytime)
        try:
            doc = evaluate(samples, config, workers=workers, scheduler=scheduler, security=security,
                           json_path=json_path, csv_path=csv_path, progress=not quiet, data=os.path.abspath(data),
                           resume=resume, on_error=on_error,
                           selection={"limit": limit, "seed": seed if limit else None, "subset": _absolute_spec(subset)},
                           model=compiled, classes=classes,
                           return_samples=bool(o.get("quantize")))  # (rewritten below with them)
        except KeyboardInterrupt:
            click.echo("evsim: interrupted; finished samples were written" + (" (continue with --resume)"
                                                                                if json_path or csv_path else ""),
                       err=True)
            raise click.exceptions.Exit(130)
        # the run is complete from here: a signal while its summary is printed changes nothing
        if o.get("quantize"):
            doc["quantize"] = o["quantize"]  # an option that changes results: on record with the results
            if json_path:
                _write_json_file(json_path, doc)
        _print_eval(doc)
    if doc["n_errors"] and not doc["n_samples"]:  # every recording failed: no result to speak of
        first = doc["errors"][0]
        raise EvsimError(f"none of the {doc['n_errors']} recordings could be evaluated, e.g. {first['path']}: "
                         f"{first['message']}")


def _percent(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _print_eval(doc):
    quantized = f", quantized {doc['quantize']}" if doc.get("quantize") else ""
    click.echo(f"{doc['n_samples']} samples, {doc['mode']}-driven, profile {doc['profile']}{quantized}, "
               f"cutoff {doc['cutoff']['mode']}")
    if doc.get("class_counts"):
        click.echo(f"classes               {_class_text(doc['class_counts'])}")
    ci = doc.get("accuracy_interval") or {}
    interval = f", 95% CI {100 * ci['low']:.2f}-{100 * ci['high']:.2f}%" if ci else ""
    if doc["accuracy"] is None:
        click.echo("accuracy              - (no sample was simulated)")
    else:
        click.echo(f"accuracy              {100 * doc['accuracy']:.2f}%{interval}  (no prediction: {doc['no_prediction']})")
    if doc.get("per_class"):
        click.echo("per class             " + ", ".join(
            f"{r['label']}: {_percent(r['accuracy'])}" for r in doc["per_class"] if r["n"]))
    if doc.get("confusion_matrix"):
        cm = doc["confusion_matrix"]["counts"]
        n = len(cm)
        click.echo("confusion (rows: label; columns: prediction, - = none)")
        click.echo("      " + "".join(f"{c:>6}" for c in list(range(n)) + ["-"]))
        for label, row in enumerate(cm):
            if sum(row):
                click.echo(f"{label:>6}" + "".join(f"{v:>6}" for v in row))
    click.echo(f"events consumed       {100 * doc['mean_events_fraction']:.1f}% on average")
    click.echo(f"latency               {doc['mean_latency_us'] / 1000:.2f} ms on average")
    click.echo(f"synops per sample     {doc['synops_per_sample']:.4g}")
    if doc.get("oct") and doc["oct"]["mean_us"] is not None:
        click.echo(f"oracle cutoff time    mean {doc['oct']['mean_us'] / 1000:.2f} ms, median "
                   f"{doc['oct']['median_us'] / 1000:.2f} ms ({doc['oct']['defined']} correct samples)")
    if doc.get("budget_exhausted"):
        click.echo(f"budget exhausted      {doc['budget_exhausted']} samples (runaway activity)")
    if doc.get("n_errors"):
        click.echo(f"errors                {doc['n_errors']} recordings could not be evaluated, e.g. "
                   f"{doc['errors'][0]['path']}: {doc['errors'][0]['message']}")
    click.echo(f"wall time             {doc['wall_s']:.1f} s ({doc['samples_per_s']:.1f} samples/s)")


#: thresholds a calibration may have (a grid of 10^5 bins of 10 ms covers 1000 s)
MAX_CALIBRATION_BINS = 100_000


@cli.command()
@click.argument("model", type=_Path(dir_okay=False))
@click.argument("data", type=_Path())
@click.option("-o", "--output", "output", type=_Path(dir_okay=False), required=True,
              help="Calibration file to write (JSON).")
@click.option("--calib-bin-us", type=float, default=10_000.0, show_default=True,
              help="Width of the elapsed-time bins, microseconds (one threshold per bin).")
@click.option("--calib-bins", type=int, default=None,
              help="Number of time bins (default: enough to cover the longest recording; 1 = one global threshold).")
@data_options
@model_options
@mode_options
@click.option("--cutoff", type=click.Choice([r for r in CUTOFF_RULES if r != "none"]), required=True, help="The rule to calibrate.")
@click.option("--epsilon", type=float, default=0.01, show_default=True,
              help="Tolerated rate of decisions that are wrong or change later (about the accuracy a held-out "
                   "set may lose).")
@click.option("--min-support", type=int, default=10, show_default=True,
              help="Recordings a threshold's rate must rest on; sparser time bins are merged with later ones.")
@click.option("--confidence", type=float, default=0.9, show_default=True,
              help="Statistical confidence that a threshold's rate of wrong or changing decisions is at most ε "
                   "(exact one-sided binomial bound; 0 = compare the observed rate itself, which fits noise on "
                   "few recordings).")
@click.option("--cv-folds", type=int, default=5, show_default=True,
              help="k of the k-fold cross-validation that estimates the held-out loss and speed-up (0: none).")
@click.option("--temperature", type=float, default=None,
              help="conf: softmax temperature T (default: fitted to the calibration data, temperature scaling).")
@input_options
def calibrate(model, data, output, calib_bin_us, calib_bins, workers, scheduler, tls_ca_file, tls_cert, tls_key, limit,
              seed, subset, quiet, cutoff, epsilon, min_support, confidence, cv_folds, temperature, **o):
    """Calibrate a cutoff on labelled DATA: per elapsed-time bin, on the recordings not yet decided,
    the smallest threshold from which on the confidence rate (decisions correct then and at every
    later time) is ≥ 1 − ε with --confidence (on at least --min-support recordings); a k-fold
    cross-validation estimates what it does on other data (docs/SEMANTICS.md#calibration)."""
    from . import analysis
    from .analysis.aggregate import class_counts
    from .analysis.evaluate import check_labels, evaluate, interrupt_guard
    from .sim.result import Cutoff

    _check_outputs(json=("-o/--output", output))
    with interrupt_guard:
        security = _security({"tls_ca_file": tls_ca_file, "tls_cert": tls_cert, "tls_key": tls_key,
                              "scheduler": scheduler})
        compiled = _load(model, o)
        samples, classes = _samples(data, subset, limit, seed, options=o)
        counts = class_counts([label for _, label in samples])
        n_outputs = int(compiled.populations[compiled.readout[0]].size)
        check_labels([label for _, label in samples], n_outputs, classes)
        if cutoff == "topk" and temperature is not None:
            raise OptionError("applies to --cutoff conf only", option="--temperature")
        if cv_folds < 0 or cv_folds == 1:
            raise OptionError("must be 0 (none) or at least 2", option="--cv-folds")
        if confidence == 0:
            confidence = None
        elif not 0.5 <= confidence < 1:
            raise OptionError("must be in [0.5, 1), or 0 for the observed rate", option="--confidence")
        analysis.calibration.check_calibration_options(epsilon, 1.0 if temperature is None else temperature)
        # the grid's options, checked before any sample is simulated
        if not (math.isfinite(calib_bin_us) and calib_bin_us >= 1):
            raise OptionError("must be a finite number of microseconds >= 1", option="--calib-bin-us")
        if calib_bins is not None and not 1 <= calib_bins <= MAX_CALIBRATION_BINS:
            raise OptionError(f"must be between 1 and {MAX_CALIBRATION_BINS:,}", option="--calib-bins")
        if min_support < 1:
            raise OptionError("must be an integer >= 1", option="--min-support")
        warned = analysis.calibration_set_warnings([label for _, label in samples], n_outputs, epsilon=epsilon,
                                                   confidence=confidence)
        for warning in warned:
            click.echo(f"evsim: warning: {warning}", err=True)
        config = _config(model, o, Cutoff())
        try:
            doc = evaluate(samples, config, workers=workers, scheduler=scheduler, security=security,
                           progress=not quiet, data=os.path.abspath(data), keep_trajectories=True, model=compiled)
        except KeyboardInterrupt:
            click.echo("evsim: interrupted; no calibration written", err=True)
            raise click.exceptions.Exit(130)
    trajs = [t for t in doc["_trajectories"] if t is not None]
    if not trajs:
        raise EvsimError("no recording of DATA could be simulated: nothing to calibrate on")
    if doc["n_errors"]:  # what the calibration rests on: the recordings that could be simulated
        counts = class_counts([t.label for t in trajs if t.label is not None])
        for warning in analysis.calibration_set_warnings([t.label for t in trajs if t.label is not None], n_outputs,
                                                         epsilon=epsilon, confidence=confidence):
            if warning not in warned:
                click.echo(f"evsim: warning: {warning}", err=True)
    if calib_bins is None:
        longest = max((t.duration_us for t in trajs), default=0.0)
        calib_bins = max(1, int(np.ceil((longest + 1) / calib_bin_us)))
        if calib_bins > MAX_CALIBRATION_BINS:
            raise OptionError(f"bins of {calib_bin_us:g} µs over the longest recording ({longest / 1e6:g} s) would be "
                              f"{calib_bins:,} thresholds (at most {MAX_CALIBRATION_BINS:,}): give wider bins or "
                              "--calib-bins", option="--calib-bin-us")
    width = calib_bin_us if calib_bins > 1 else 0.0
    if cutoff == "conf" and temperature is None:
        temperature = analysis.fit_temperature(trajs)
    temperature = 1.0 if temperature is None else temperature
    kw = dict(bin_width_us=width, n_bins=calib_bins, temperature=temperature, min_support=min_support,
              confidence=confidence)
    result = analysis.calibrate(trajs, cutoff, epsilon, **kw)
    labelled = sum(t.label is not None for t in trajs)
    cv = analysis.cross_validate(trajs, cutoff, epsilon, k=cv_folds, seed=seed, **kw) \
        if cv_folds and labelled >= cv_folds else None
    if cv_folds and cv is None:
        _notice(f"no cross-validation: {cv_folds} folds need at least {cv_folds} labelled recordings "
                f"({labelled} here; --cv-folds)")
    written = analysis.write_calibration(output, model_hash=compiled.model_hash, model_path=os.path.abspath(model),
                                         profile=compiled.profile.name, mode=o["mode"], cutoff=cutoff, epsilon=epsilon,
                                         temperature=temperature, bin_width_us=width, n_bins=calib_bins, result=result,
                                         data=os.path.abspath(data), n_samples=len(trajs), bin_us=o["bin_us"],
                                         options=_calibration_options(o))
    # provenance: evsim's version, precision, the samples used (read_calibration ignores extra keys)
    written.update(evsim_version=_evsim_version(), precision=o["precision"], class_counts=counts,
                   limit=limit, seed=seed if limit is not None else None, subset=_absolute_spec(subset),
                   n_errors=doc["n_errors"],
                   errors=doc["errors"], min_support=min_support, confidence=confidence, cross_validation=cv)
    _write_json_file(output, written)
    replay = analysis.cutoff_outcomes(trajs, cutoff, analysis.thresholds_from_calibration(written), temperature)
    finite = [v for v in result["thresholds"] if np.isfinite(v)]
    click.echo(f"samples     {len(trajs)} ({_class_text(counts)})" +
               (f"; {doc['n_errors']} unreadable, left out" if doc["n_errors"] else ""))
    click.echo(f"calibrated {cutoff} cutoff on {len(trajs)} samples, ε = {epsilon}"
               + (f" at confidence {confidence:g}" if confidence is not None else " (observed rates)")
               + f": {calib_bins} bin(s) of "
               f"{calib_bin_us / 1000:g} ms, thresholds {', '.join(_fmt(v) for v in result['thresholds'][:12])}"
               + (" ..." if calib_bins > 12 else ""))
    if cutoff == "conf":
        click.echo(f"temperature T = {temperature:g} (softmax of output/T; confidences printed unrounded)")
    click.echo(f"on the calibration data: accuracy {100 * replay['accuracy']:.2f}% (uncut "
               f"{100 * doc['accuracy']:.2f}%), events consumed {100 * replay['mean_events_fraction']:.1f}%, "
               f"speed-up {replay['speedup']:.2f}x" + ("" if finite else " (no bin reached the rate: never cuts)"))
    if cv is not None:
        click.echo(f"{cv['folds']}-fold cross-validation (held-out estimate): accuracy lost "
                   f"{100 * cv['accuracy_lost']:+.2f} points, events consumed {100 * cv['mean_events_fraction']:.1f}%, "
                   f"speed-up {cv['speedup']:.2f}x")
        if cv["accuracy_lost"] > max(epsilon, 0.01) + 1e-9:  # (a loss of exactly ε is within it, rounding aside)
            click.echo(f"evsim: warning: cross-validation loses {100 * cv['accuracy_lost']:.2f} points on held-out "
                       f"folds, more than ε = {epsilon}: use a smaller --epsilon or more calibration recordings",
                       err=True)
    click.echo(f"wrote {output}")


def _evsim_version() -> str:
    from . import __version__

    return __version__


def _fmt(v):
    """A threshold as printed: softmax levels near 1 as 1−δ, so that they do not all read "1"."""
    if not np.isfinite(v):
        return "inf"
    if 0.999 < v < 1.0:
        return f"1−{1.0 - v:.2g}"
    return f"{v:g}"


@cli.command()
@click.argument("path", type=_Path())
@click.option("--json", "json_path", type=_Path(dir_okay=False), default=None, help="Write the description (JSON).")
@click.option("--profile", type=click.Choice(PROFILE_NAMES), default=None,
              help="Profile used to compile a model. Default: the one the model declares (else nir), or speck with "
                   "--quantize/--chip.")
@click.option("--recurrent-delay-us", type=float, default=None, help="Delay of recurrent edges, µs (strict NIR).")
@click.option("--quantize", type=click.Choice(QUANTIZE_SCHEMES), default=None,
              help="Show the Speck quantisation: scale per layer and bits used.")
@click.option("--chip", type=click.Choice(CHIPS), default=None,
              help="Check whether the model fits the chip: per-layer memory, cores, a verdict.")
def info(path, json_path, profile, recurrent_delay_us, quantize, chip):
    """Describe a MODEL (nodes, shapes, neurons, parameters), a RECORDING (events, time span,
    address range, polarity counts) or a dataset FOLDER root/<label>/ (recordings per class,
    events and durations)."""
    _check_outputs(json=("--json", json_path))
    model_options = {"--profile": profile, "--recurrent-delay-us": recurrent_delay_us, "--quantize": quantize,
                     "--chip": chip}
    given = [name for name, value in model_options.items() if value is not None]
    if given and (Path(path).is_dir() or (Path(path).is_file() and not _is_nir(path))):
        raise OptionError(f"applies to a MODEL (a NIR file), not to {'a dataset folder' if Path(path).is_dir() else 'a recording'}",
                          option=given[0])
    if Path(path).is_dir():
        doc = _folder_info(path)
        _print_folder_info(doc)
    elif _is_nir(path):
        if profile is None and (quantize or chip):
            profile = "speck"
        doc = _model_info(path, profile, recurrent_delay_us, quantize)
        _print_model_info(doc)
        if chip:
            from .chip.speck import map_to_speck

            mapping = map_to_speck(path)
            doc["chip"] = mapping.to_dict()
            doc["fits"] = mapping.fits
            _print_chip(doc["chip"])
    else:
        from .input.recordings import read_recording, recording_info

        doc = recording_info(read_recording(path))
        doc = {k: (list(v) if isinstance(v, tuple) else v) for k, v in doc.items()}
        folder_label = _label_from_path(Path(path))
        if doc.get("label") is None and folder_label is not None:
            # a recording in a class folder root/<label>/: the label run and eval would give it
            doc["label"], doc["label_source"] = folder_label, "folder"
        _print_recording_info(doc)
    if json_path:
        _write_json_file(json_path, {**doc, "path": os.path.abspath(path)})  # (printed as given)


def _print_recording_info(doc: dict) -> None:
    n = doc.get("n_events", 0)
    click.echo(f"recording   {_shown(doc.get('path'))} ({doc.get('format')} format)")
    if not n:
        click.echo("events      0")
        return
    span_us = doc["t_last_us"] - doc["t_first_us"]
    if span_us == 0:  # a rate over no time is no rate
        click.echo(f"events      {n:,} event{'s, all' if n > 1 else ''} at t = {doc['t_first_us']:,} µs")
    else:
        span = f"{span_us / 1000:,.1f} ms" if span_us >= 1000 else f"{span_us:,} µs"
        click.echo(f"events      {n:,} over {span} ({n / span_us * 1e6:,.0f} events/s), "
                   f"t = {doc['t_first_us']:,} … {doc['t_last_us']:,} µs")
    click.echo(f"addresses   x 0…{doc['x_max']}, y 0…{doc['y_max']}"
               + (f"; sensor {doc['sensor_size'][0]}×{doc['sensor_size'][1]}" if doc.get("sensor_size") else
                  "; sensor size not declared by the file"))
    counts = doc.get("p_counts") or {}
    click.echo("polarity    " + ", ".join(f"p={k}: {v:,}" for k, v in sorted(counts.items())))
    if doc.get("label") is not None:
        click.echo(f"label       {doc['label']}" + (" (its folder's name)" if doc.get("label_source") == "folder" else ""))


def _folder_info(path) -> dict:
    """Recordings per class, and events and durations per recording (every file is read)."""
    from .input.datasets import FolderDataset
    from .input.events import check_sorted
    from .input.recordings import read_events

    ds = FolderDataset(path)
    n_events, durations, unreadable = [], [], []
    for file, _ in ds.samples:
        try:
            ev = read_events(file)
            check_sorted(ev, source=file)  # what `evsim eval` rejects, `info` counts as unreadable
        except EvsimError as exc:
            unreadable.append({"path": file, "message": message_without(exc, file)})
            continue
        n_events.append(int(ev.shape[0]))
        durations.append(float(ev["t"].max() - ev["t"].min()) if ev.shape[0] else 0.0)

    def stats(values):
        if not values:
            return None
        a = np.asarray(values, dtype=float)
        return {"min": float(a.min()), "median": float(np.median(a)), "mean": float(a.mean()), "max": float(a.max())}

    counts = {}
    for file, _ in ds.samples:  # per folder (root/<class>/<file>), not per label
        counts[Path(file).parent.name] = counts.get(Path(file).parent.name, 0) + 1
    return {"path": str(path), "n_recordings": len(ds.samples),
            "classes": {name: counts.get(name, 0) for name in ds.classes},
            "class_to_label": ds.class_to_label, "events": stats(n_events), "duration_us": stats(durations),
            "n_unreadable": len(unreadable), "unreadable": unreadable,
            "n_empty": sum(n == 0 for n in n_events), "ignored_folders": ds.ignored_folders}


def _print_folder_info(doc) -> None:
    click.echo(f"dataset     {doc['path']}: {doc['n_recordings']} recordings in {len(doc['classes'])} classes")
    click.echo("per class   " + ", ".join(f"{name}: {n}" for name, n in doc["classes"].items()))
    if doc["events"]:
        e, d = doc["events"], doc["duration_us"]
        click.echo(f"events      min {e['min']:.0f}, median {e['median']:.0f}, mean {e['mean']:.0f}, max {e['max']:.0f}")
        click.echo(f"duration    min {d['min'] / 1000:.1f} ms, median {d['median'] / 1000:.1f} ms, "
                   f"mean {d['mean'] / 1000:.1f} ms, max {d['max'] / 1000:.1f} ms")
    if doc["n_empty"]:
        click.echo(f"empty       {doc['n_empty']} recording(s) without any event (no prediction in an eval)")
    if doc["n_unreadable"]:
        click.echo(f"unreadable  {doc['n_unreadable']}, e.g. {doc['unreadable'][0]['path']}: "
                   f"{doc['unreadable'][0]['message']}")
    if doc["ignored_folders"]:
        click.echo(f"ignored     folders without recordings: {', '.join(doc['ignored_folders'])}")


def _is_nir(path: str) -> bool:
    from .input.recordings import check_regular_file

    p = Path(path)
    check_regular_file(path)  # the same words as reading a recording
    if p.suffix.lower() == ".nir":
        return True
    if p.suffix.lower() in (".h5", ".hdf5"):
        import h5py

        try:
            with h5py.File(p, "r") as f:
                return "node" in f and "version" in f
        except OSError:
            return False
    return False


def _model_info(path, profile, recurrent_delay_us, quantize=None):
    from .kernels.abi import READOUT_COUNTS
    from .compile.builder import load_model

    assumed_delay_us = None
    try:
        model = load_model(path, profile=profile, recurrent_delay_us=recurrent_delay_us, quantize=quantize)
    except EvsimError as exc:
        if "recurrent" in str(exc) and recurrent_delay_us is None:
            # described with a stand-in delay; run, eval and calibrate refuse the model without one
            assumed_delay_us = 1000.0
            model = load_model(path, profile=profile, recurrent_delay_us=assumed_delay_us, quantize=quantize)
            _notice(f"{Path(path).name}: a recurrent edge needs a delay under profile {model.profile.name}; "
                    f"shown with {assumed_delay_us:g} µs, which run/eval/calibrate do not assume (pass "
                    "--recurrent-delay-us, or a profile with a dt)")
        else:
            raise
    g = model.graph
    nodes = []
    for name in g.order:
        node = g.nodes[name]
        params = {k: list(np.shape(v)) for k, v in vars(node).items()
                  if isinstance(v, np.ndarray) and k not in ("input_type", "output_type")}
        # weights and biases of linear nodes; a neuron node's per-neuron constants are not weights
        n_params = int(sum(np.size(v) for k, v in vars(node).items()
                           if k in ("weight", "bias") and isinstance(v, np.ndarray)))
        nodes.append({"name": name, "type": g.type_of(name), "input_shape": list(g.input_shapes.get(name, ())),
                      "output_shape": list(g.shapes[name]),
                      "neurons": int(np.prod(g.shapes[name])) if g.type_of(name) in ("I", "IF", "LI", "LIF", "CubaLI", "CubaLIF") else 0,
                      "parameters": n_params, "parameter_shapes": params})
    projections = [{"source": model.populations[p.source].name, "target": model.populations[p.target].name,
                    "through": p.nodes[1:-1], "operators": [op.label for op in p.ops], "delay_us": p.delay_s * 1e6,
                    "recurrent": p.recurrent} for p in model.projections]
    pop, mode = model.readout
    return {
        "path": str(path),
        "profile": model.profile.name,
        "profile_source": model.profile_source,
        "dt_us": None if model.dt_s is None else model.dt_s * 1e6,
        "input_shape": list(model.input_shape),
        "readout": {"node": model.populations[pop].name, "kind": "spike counts" if mode == READOUT_COUNTS else "state",
                    "size": model.populations[pop].size},
        "neurons": int(sum(p.size for p in model.populations[1:])),
        "parameters": int(sum(n["parameters"] for n in nodes)),
        "neuron_rules": _neuron_rules(model),
        "engine_memory_bytes": model.memory_bytes(),
        "nodes": nodes,
        "projections": projections,
        "model_hash": model.model_hash,
        **({"recurrent_delay_us_assumed": assumed_delay_us} if assumed_delay_us is not None else {}),
        **({"quantize": {"scheme": quantize, "layers": [q.to_dict() for q in model.quantization]}} if quantize else {}),
    }


def _neuron_rules(model) -> list:
    """What the profile does with each spiking population: threshold test, spikes per update,
    reset, floor, refractory period."""
    rules = []
    for pop in model.populations[1:]:
        if not pop.spiking or pop.rule is None:
            continue
        v_min = getattr(pop.model, "v_min", None)
        floor = "none" if v_min is None or not np.all(np.isfinite(v_min)) else (
            f"{float(np.min(v_min)):g}" if np.ptp(v_min) == 0 else "per neuron")
        rules.append({"node": pop.name, "type": pop.nir_type,
                      "threshold_test": "v >= θ" if pop.rule.threshold_ge else "v > θ",
                      "spikes_per_update": "floor(v/θ)" if pop.rule.multi_spike else "one",
                      "reset": "subtract θ" if pop.rule.subtract else "to v_reset",
                      "floor": floor, "refractory_us": pop.rule.refractory_s * 1e6,
                      "reset_delay": bool(pop.rule.reset_delay),
                      "min_spike_interval_us": pop.rule.min_interval_s * 1e6})
    return rules


def _print_model_info(doc):
    source = doc.get("profile_source")
    why = {"given": "", "default": ", none declared: strict NIR"}.get(source, f", declared by {source}")
    click.echo(f"model       {_shown(doc['path'])}  (profile {doc['profile']}{why}" +
               (f", dt {doc['dt_us']:g} µs)" if doc["dt_us"] else ")"))
    click.echo(f"input       {tuple(doc['input_shape'])}   readout: {doc['readout']['kind']} of "
               f"'{doc['readout']['node']}' ({doc['readout']['size']})")
    click.echo(f"neurons     {doc['neurons']:,}   weights and biases {doc['parameters']:,}   engine memory "
               f"{doc['engine_memory_bytes'] / 2**20:.1f} MiB")
    for r in doc.get("neuron_rules", []):
        click.echo(f"{'neurons of ' + r['node']:22s} spike when {r['threshold_test']}, {r['spikes_per_update']} "
                   f"spike(s) per update, reset {r['reset']}, floor {r['floor']}"
                   + (" one step late (reset_delay)" if r.get("reset_delay") else "")
                   + (f", refractory {r['refractory_us']:g} µs" if r["refractory_us"] else "")
                   + (f", event mode: at most one firing per {r['min_spike_interval_us']:g} µs"
                      if r.get("min_spike_interval_us") and r["min_spike_interval_us"] > r["refractory_us"] else ""))
    click.echo(f"{'node':18s} {'type':10s} {'input':>16s} {'output':>16s} {'neurons':>9s} {'weights':>9s}")
    for n in doc["nodes"]:
        click.echo(f"{n['name'][:18]:18s} {n['type']:10s} {str(tuple(n['input_shape'])):>16s} "
                   f"{str(tuple(n['output_shape'])):>16s} {n['neurons'] or '':>9} {n['parameters']:>9,}")
    click.echo("projections")
    for p in doc["projections"]:
        extra = f", delay {p['delay_us']:g} µs" if p["delay_us"] else ""
        extra += ", recurrent" if p["recurrent"] else ""
        click.echo(f"  {p['source']} -> {p['target']} via {' -> '.join(p['through']) or '(direct)'}{extra}")
    if doc.get("quantize"):
        click.echo(f"quantized ({doc['quantize']['scheme']}): q = round(x·s), one scale s per layer; "
                   "states saturate at 32767")
        click.echo(f"  {'layer':18s} {'scale s':>10s} {'set by':>9s} {'weights':>11s} {'bits':>4s} {'zeroed':>7s} "
                   f"{'θ':>6s} {'floor':>7s} {'bits':>4s} {'bias bits':>9s}")
        for q in doc["quantize"]["layers"]:
            click.echo(f"  {q['weight_node'] + '->' + q['neuron_node']:18.18s} {q['scale']:10.6g} {q['limited_by']:>9s} "
                       f"{str(q['weight_range'][0]) + '..' + str(q['weight_range'][1]):>11s} {q['weight_bits']:>4d} "
                       f"{q['weights_zeroed']:>7d} {q['threshold']:>6d} {q['floor']:>7d} {q['state_bits']:>4d} "
                       f"{q['bias_bits']:>9d}" + ("  (state may saturate at 16 bits)" if q["may_saturate"] else ""))


def _print_chip(chip):
    click.echo(f"chip        {chip['chip']}: {chip['cores']} cores (kernel / neuron memory per core, entries)")
    click.echo(f"  {'layer':18s} {'input':>12s} {'neurons':>12s} {'kernel':>6s} {'kernel mem':>10s} "
               f"{'neuron mem':>10s} {'bias':>5s} {'fits cores':>18s} {'core':>4s}")
    for r in chip["layers"]:
        cores = ",".join(str(c) for c in r["fits_cores"]) or "none"
        click.echo(f"  {r['weight_node'] + '->' + str(r['neuron_node']):18.18s} {'x'.join(map(str, r['input'])):>12s} "
                   f"{'x'.join(map(str, r['neurons'])):>12s} {'x'.join(map(str, r['kernel'])):>6s} "
                   f"{r['kernel_memory']:>10d} {r['neuron_memory']:>10d} {r['bias_memory']:>5d} {cores:>18s} "
                   f"{'-' if r['core'] is None else r['core']:>4}")
    click.echo(f"verdict     {chip['verdict']}")


_FIGURE_FILE = "Figure file: .pdf, .svg or .png (by extension)."
size_option = click.option("--size", default="two-column", show_default=True,
                           help="Figure width: one-column (3.5 in), two-column (7.2 in) or inches.")


@cli.command()
@click.argument("model", type=_Path(dir_okay=False))
@click.argument("recording", type=_Path(dir_okay=False))
@click.option("-o", "--output", "output", type=_Path(dir_okay=False), required=True,
              help="Raster file: .pdf, .svg or .png.")
@click.option("--evidence", type=_Path(dir_okay=False), default=None,
              help="Also write the output evidence and confidence over time (.pdf, .svg or .png).")
@click.option("--label", type=int, default=None, help="True class (default: parent folder name if an integer).")
@click.option("--window-start-us", type=float, default=None,
              help="Start of the time window drawn, µs since the first event (default 0). Unlike --t-start-us "
                   "it does not change what is simulated.")
@click.option("--window-end-us", type=float, default=None,
              help="End of the time window drawn, µs (default: a little past the cutoff decision and the OCT, "
                   "else the end of the recording).")
@size_option
@model_options
@mode_options
@cutoff_options
@input_options
@_interruptible
def raster(model, recording, output, evidence, label, window_start_us, window_end_us, size, **o):
    """Draw the spike raster of every layer (and the input events) for one RECORDING, with the
    cutoff decision and, when the label is known, the oracle cutoff time (OCT) marked."""
    for option, value in (("--window-start-us", window_start_us), ("--window-end-us", window_end_us)):
        if value is not None and not 0 <= value < 2.0 ** 53:  # (NaN too)
            raise OptionError(f"must be a time in µs, >= 0 and below 2**53, got {value:g}", option=option)
    if window_start_us is not None and window_end_us is not None and not window_end_us > window_start_us:
        raise OptionError(f"the window ends before it starts (--window-start-us {window_start_us:g})",
                          option="--window-end-us")
    from .analysis.evaluate import SampleRunner
    from .analysis.trajectory import Trajectory, oracle_cutoff_time
    from .plots import plot_evidence, plot_raster
    from .plots.style import figure_width
    from .sim.result import Cutoff

    _check_outputs(figure=("-o/--output", output), evidence=("--evidence", evidence))
    figure_width(size)
    compiled = _load(model, o)
    config = _config(model, o, _cutoff(o, compiled, o["mode"]))
    runner = SampleRunner(config)
    rec = runner.events(str(recording))
    result = runner.simulator(config.cutoff, record_output=True, record_spikes=True).run(rec.events, source=str(recording))
    if label is None:
        label = _label_from_path(Path(recording))
        if label is not None and not 0 <= label < compiled.output_size:
            label = None  # a folder name that is not a class of this model
    elif not 0 <= label < compiled.output_size:
        raise OptionError(f"must name an output of the model: 0 to {compiled.output_size - 1}", option="--label")
    oct_us = None
    if label is not None:  # OCT: on the run without cutoff (when will the answer be right for good?)
        full = (runner.simulator(Cutoff(), record_output=True).run(rec.events) if config.cutoff.stops_early
                else result)
        oct_us = oracle_cutoff_time(Trajectory.from_result(full, label=label))
    plot_raster(result, compiled, rec.events, output, t_start_us=window_start_us, t_end_us=window_end_us, size=size,
                **_raster_subtitle(config), oct_us=oct_us,
                title=f"{Path(recording).name}: prediction {result.prediction}"
                      + (f", label {label}" if label is not None else ""))
    click.echo(f"wrote {output}")
    if evidence:
        beta = None
        if config.cutoff.mode != "none":
            beta = (config.cutoff.bin_width_us, config.cutoff.table) if config.cutoff.table is not None else config.cutoff.global_threshold
        plot_evidence(result, evidence, temperature=config.cutoff.temperature, beta=beta, label=label, size=size,
                      cutoff_mode=config.cutoff.mode if config.cutoff.mode != "none" else "topk")
        click.echo(f"wrote {evidence}")


def _accuracy_limits(values):
    """(low, high) as fractions; values above 1 are read as percent (``90 100``)."""
    if values is None:
        return None
    lo, hi = values
    return (lo / 100.0, hi / 100.0) if max(lo, hi) > 1.0 else (lo, hi)


@cli.command()
@click.argument("results", nargs=-1, required=True, type=_Path(dir_okay=False))
@click.option("-o", "--output", "output", type=_Path(dir_okay=False), required=True, help=_FIGURE_FILE)
@click.option("--title", type=str, default=None, help="Figure title ('' for none).")
@size_option
@click.option("--panels", default=None, help="Comma-separated panels among latency, fraction, speedup "
                                             "(default: all that have data).")
@click.option("--accuracy-lim", type=(float, float), default=None, metavar="LOW HIGH",
              help="Accuracy axis range, fractions or percent (e.g. 90 100). Default: fitted to the results.")
@click.option("--latency-lim", type=(float, float), default=None, metavar="LOW HIGH", help="Latency axis range (ms).")
@click.option("--fraction-lim", type=(float, float), default=None, metavar="LOW HIGH",
              help="Events-consumed axis range (fractions, e.g. 0.01 1).")
@click.option("--log-x/--linear-x", "log_x", default=None, help="Log or linear latency / fraction / speed-up "
                                                                 "axes (default: log when the data span > 8×).")
@click.option("--name", "names", multiple=True, help="Series name of the i-th RESULTS file (repeat, in order).")
@click.option("--axis-label", "axis_labels", multiple=True, metavar="AXIS=TEXT",
              help="Axis label: latency=…, fraction=…, accuracy=…, speedup=… (repeatable).")
def plot(results, output, title, size, panels, accuracy_lim, latency_lim, fraction_lim, log_x, names, axis_labels):
    """Accuracy vs mean decision latency, vs fraction of input events, and speed-up vs accuracy
    from one or more `evsim eval --json` files, each result with its 95 % Wilson interval."""
    from .plots import load_results, plot_accuracy

    _check_outputs(figure=("-o/--output", output))
    labels = {}
    for item in axis_labels:
        axis, sep, text = item.partition("=")
        if not sep or axis not in ("latency", "fraction", "accuracy", "speedup"):
            raise OptionError(f"expected AXIS=TEXT with AXIS among latency, fraction, accuracy, speedup, got {item!r}",
                              option="--axis-label")
        labels[axis] = text
    docs = load_results(results)
    plot_accuracy(docs, output, title=title, names=list(names), size=size, log_x=log_x, labels=labels,
                  panels=[p.strip() for p in panels.split(",") if p.strip()] if panels is not None else None,
                  accuracy_lim=_accuracy_limits(accuracy_lim), latency_lim=latency_lim, fraction_lim=fraction_lim)
    click.echo(f"wrote {output}")


@cli.command("plot-classes")
@click.argument("result", type=_Path(dir_okay=False))
@click.option("-o", "--output", "output", type=_Path(dir_okay=False), required=True, help=_FIGURE_FILE)
@click.option("--title", type=str, default=None, help="Figure title ('' for none).")
@size_option
def plot_classes_command(result, output, title, size):
    """Confusion matrix, accuracy per class (95 % Wilson intervals) and decision latency per class
    of one `evsim eval --json` RESULT (needs its per-sample records)."""
    from .plots import load_results, plot_classes

    _check_outputs(figure=("-o/--output", output))
    plot_classes(load_results([result])[0], output, title=title, size=size)
    click.echo(f"wrote {output}")


@cli.command("plot-temporal")
@click.argument("results", nargs=-1, required=True, type=_Path(dir_okay=False))
@click.option("-o", "--output", "output", type=_Path(dir_okay=False), required=True, help=_FIGURE_FILE)
@click.option("--title", type=str, default=None, help="Figure title ('' for none).")
@click.option("--size", default="one-column", show_default=True,
              help="Figure width: one-column (3.5 in), two-column (7.2 in) or inches.")
@click.option("--accuracy-lim", type=(float, float), default=None, metavar="LOW HIGH",
              help="Accuracy axis range, fractions or percent.")
def plot_temporal_command(results, output, title, size, accuracy_lim):
    """Temporal flexibility of one model: accuracy (and mean OCT) across clock bin widths, with the
    event-driven result, from `evsim eval --json` files without cutoff (bin widths read from them)."""
    from .plots import load_results, plot_temporal

    _check_outputs(figure=("-o/--output", output))
    plot_temporal(load_results(results), output, title=title, size=size,
                  accuracy_lim=_accuracy_limits(accuracy_lim))
    click.echo(f"wrote {output}")


@cli.command()
@click.argument("result_a", type=_Path(dir_okay=False))
@click.argument("result_b", type=_Path(dir_okay=False))
@click.option("--json", "json_path", type=_Path(dir_okay=False), default=None, help="Write the comparison (JSON).")
def compare(result_a, result_b, json_path):
    """Paired accuracy difference A − B of two `evsim eval --json` results on the same recordings,
    with its 95 % interval (Agresti–Min)."""
    from .analysis.evaluate import compare_results

    docs = [_read_eval_doc(path, "RESULT") for path in (result_a, result_b)]
    diff = compare_results(*docs)
    click.echo(f"{diff['n']} recordings in both: accuracy A {100 * diff['accuracy_a']:.2f}%, "
               f"B {100 * diff['accuracy_b']:.2f}%")
    click.echo(f"A − B       {100 * diff['difference']:+.2f} points, 95% CI {100 * diff['low']:+.2f} to "
               f"{100 * diff['high']:+.2f} (A only right: {diff['a_only']}, B only right: {diff['b_only']})")
    if diff["only_in_a"] or diff["only_in_b"]:
        why = [f"{n} of them an error in {other}" for n, other in
               ((diff["only_in_a_errors_in_b"], "B"), (diff["only_in_b_errors_in_a"], "A")) if n]
        click.echo(f"left out    {diff['only_in_a']} recordings only in A, {diff['only_in_b']} only in B"
                   + (f" ({'; '.join(why)})" if why else ""))
    for name in diff["incomplete"]:
        click.echo(f"note        result {name} is incomplete (an interrupted eval; --resume completes it)")
    if json_path:
        _write_json_file(json_path, diff)


def _read_eval_doc(path, option: str) -> dict:
    doc = check_json_file(path, option)
    if not isinstance(doc, dict) or "samples" not in doc:
        raise OptionError(f"{path} is not an `evsim eval --json` result", option=option)
    return doc


@cli.command()
@click.argument("results", nargs=-1, required=True, type=_Path(dir_okay=False))
@click.option("-o", "--output", "output", type=_Path(dir_okay=False), required=True,
              help="Report file (.html).")
@click.option("--title", type=str, default="evsim evaluation report", show_default=True, help="Page title.")
def report(results, output, title):
    """One self-contained HTML page from `evsim eval --json` files: summary table with 95 % intervals,
    figures, per-class tables and figures, provenance (file hashes, model hash, options)."""
    from .plots import load_results, write_report

    check_output_path(output, "-o/--output", suffixes=(".html", ".htm"), make_parents=True)
    write_report(load_results(results), output, title=title)
    click.echo(f"wrote {output}")


def _check_outputs(**outputs):
    """Refuse unwritable output files before anything runs; figures (.png/.svg/.pdf) may name a
    folder that does not exist yet (it is created)."""
    given = [(option, path) for option, path in outputs.values() if path is not None]
    for i, (option, path) in enumerate(given):
        for other, other_path in given[:i]:
            if Path(path).resolve() == Path(other_path).resolve():
                raise OptionError(f"names the same file as {other} ({path})", option=option)
    for kind, (option, path) in outputs.items():
        if path is None:
            continue
        if kind in ("figure", "evidence"):
            check_output_path(path, option, suffixes=(".png", ".svg", ".pdf"), make_parents=True)
        else:
            check_output_path(path, option)


def _write_json_file(path, doc):
    from .analysis.evaluate import write_json

    try:
        write_json(path, doc)
    except OSError as exc:
        raise EvsimError(f"cannot write {path} ({exc.strerror})") from None


# --------------------------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------------------------


#: Notices collected while a command runs, printed on stderr once it has succeeded (a failing
#: command prints its one error line and nothing else).
_NOTICES: list = []


def _notice(text: str) -> None:
    if text not in _NOTICES:
        _NOTICES.append(text)


def _terminate(signum, frame):
    raise KeyboardInterrupt  # SIGTERM takes the same path as Ctrl-C


def main(argv=None, *, handlers_after=None) -> int:
    """Console entry point: one-line errors, exit code 2 for user errors, 130 when interrupted.
    ``handlers_after``: the SIGINT/SIGTERM handler once the command is over (default: those that
    were in place before)."""
    _NOTICES.clear()
    in_main_thread = threading.current_thread() is threading.main_thread()
    # Ctrl-C raises KeyboardInterrupt and SIGTERM the same while a command runs: each command
    # finishes its files on the way out (they replace the import-time handlers when run as a script)
    saved = ({signal.SIGINT: signal.signal(signal.SIGINT, signal.default_int_handler),
              signal.SIGTERM: signal.signal(signal.SIGTERM, _terminate)} if in_main_thread else {})
    try:
        return _main(argv)
    finally:
        event = sys.modules.get("evsim.sim.event")
        if event is not None:
            event.COMPILE_NOTICE = False  # `run` turned it on for itself, not for API users after it
        for sig, handler in saved.items():
            signal.signal(sig, handler if handlers_after is None else handlers_after)


def _main(argv) -> int:
    if not (sys.argv[1:] if argv is None else argv):
        argv = ["--help"]  # `evsim` alone: the list of commands, as `evsim --help` (not a usage error)
    try:
        code = cli.main(args=argv, prog_name="evsim", standalone_mode=False)
        for text in _NOTICES:
            print(f"evsim: note: {text}", file=sys.stderr)
        return code if isinstance(code, int) else 0
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort:  # a Ctrl-C that click caught before a command's own handler
        print("evsim: interrupted", file=sys.stderr)
        return 130
    except click.ClickException as exc:
        print(f"evsim: error: {exc.format_message()}", file=sys.stderr)
        return 2
    except EvsimError as exc:
        print(f"evsim: error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("evsim: interrupted", file=sys.stderr)
        return 130


def entry() -> None:
    """The ``evsim`` console script. It leaves with ``os._exit`` once the command is over: the
    interpreter's own shutdown resets the signal handlers, so a Ctrl-C arriving then would end a
    finished command with a crash code instead of its own (work is closed by then: files are
    written and closed, Dask clusters are closed by the commands themselves). A signal after the
    command is ignored: its outcome, files and exit code, is decided."""
    code = main(handlers_after=signal.SIG_IGN)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":  # `python -m evsim.cli`: main() takes over from the import-time handlers
    entry()
else:
    for _sig, _handler in _BEFORE_IMPORT.items():
        signal.signal(_sig, _handler)

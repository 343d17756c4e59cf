"""The ``evsim`` command line (SPEC §7): run, eval, calibrate, info, raster, plot.

User errors (bad file, bad model, bad option) print one line ``evsim: error: ...`` on stderr and
exit with code 2; an interrupted evaluation keeps what it finished and exits with 130.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import numpy as np

from .errors import EvsimError, OptionError, RecordingError

from .bundled import BUNDLED_CALIBRATION, BUNDLED_MODEL, BUNDLED_PROFILE, BUNDLED_SAMPLES


# --------------------------------------------------------------------------------------------
# shared options
# --------------------------------------------------------------------------------------------


def _options(*decorators):
    def apply(f):
        for d in reversed(decorators):
            f = d(f)
        return f
    return apply


model_options = _options(
    click.option("--profile", type=click.Choice(["nir", "sinabs", "speck", "snntorch", "norse"]), default=None,
                 help="How to read the exporter's parameters (SPEC §4). Default: nir (strict), or speck for the "
                      "bundled model."),
    click.option("--reset", type=click.Choice(["zero", "subtract"]), default=None,
                 help="Reset after a spike: to v_reset (NIR's reset potential, 0 by default) or subtract θ. "
                      "Default: the profile's."),
    click.option("--v-min", type=float, default=None, help="Floor of the membrane potential (state units). "
                                                           "Default: the profile's (none, or −θ for sinabs/speck IF)."),
    click.option("--spikes-per-update", type=click.Choice(["one", "multi"]), default=None,
                 help="One spike per update, or floor(v/θ) spikes (MultiSpike). Default: the profile's."),
    click.option("--threshold-rule", type=click.Choice(["gt", "ge"]), default=None,
                 help="Fire on v > θ (gt) or v ≥ θ (ge). Default: the profile's."),
    click.option("--refractory-us", type=float, default=0.0, show_default=True,
                 help="Absolute refractory period, microseconds."),
    click.option("--dt-us", type=float, default=None,
                 help="The profile's time step, microseconds (sinabs/speck/norse; snntorch reads τ/r from the file)."),
    click.option("--recurrent-delay-us", type=float, default=None,
                 help="Delay of edges that close a cycle, microseconds (default: the profile's dt; strict NIR "
                      "needs it for recurrent graphs)."),
    click.option("--precision", type=click.Choice(["float32", "float64"]), default="float32", show_default=True,
                 help="Membrane state and weights precision."),
)

mode_options = _options(
    click.option("--mode", type=click.Choice(["event", "clock"]), default="event", show_default=True,
                 help="Fully event-driven, or the clock-driven baseline (SPEC §5)."),
    click.option("--bin-us", type=float, default=None, help="Clock mode: bin width (time step), microseconds."),
    click.option("--n-bins", type=int, default=None, help="Clock mode: number of bins per recording."),
)

cutoff_options = _options(
    click.option("--cutoff", type=click.Choice(["none", "conf", "topk"]), default="none", show_default=True,
                 help="Stop consuming input once the output is confident: max softmax(a/T) ≥ 1 − ε (conf) or "
                      "top1 − top2 ≥ β (topk)."),
    click.option("--threshold", type=float, default=None,
                 help="Cutoff threshold: β for topk (output units: spikes for counts), or the softmax level for conf."),
    click.option("--epsilon", type=float, default=None,
                 help="conf: decide at max softmax ≥ 1 − ε (default 0.05); calibrate: tolerated error rate."),
    click.option("--temperature", type=float, default=1.0, show_default=True, help="Softmax temperature T (output units)."),
    click.option("--calibration", type=click.Path(dir_okay=False), default=None,
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
                 help="Maximum processed spikes + queued items per sample (runaway activity is flagged, not hung)."),
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
        "threshold_ge": None if o.get("threshold_rule") is None else o["threshold_rule"] == "ge",
        "refractory_us": o.get("refractory_us") or 0.0,
        "dt_us": o.get("dt_us"),
        "recurrent_delay_us": o.get("recurrent_delay_us"),
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
    from .analysis.calibration import read_calibration
    from .sim.result import Cutoff

    kind = o.get("cutoff", "none")
    common = {"max_time_us": o.get("max_time_us"), "max_events": o.get("max_events"),
              "temperature": o.get("temperature", 1.0)}
    if o.get("calibration"):
        doc = read_calibration(o["calibration"], model_hash=model.model_hash, profile=model.profile.name, mode=mode,
                               options=_calibration_options(o))
        if kind not in ("none", doc["cutoff"]):
            raise OptionError(f"the calibration is for --cutoff {doc['cutoff']}, not {kind}", option="--calibration")
        common["temperature"] = doc.get("temperature", 1.0)
        return Cutoff(mode=doc["cutoff"], table=doc["thresholds"], bin_width_us=doc["grid"]["bin_width_us"], **common)
    if kind == "none":
        return Cutoff(mode="none", **common)
    if kind == "topk" and o.get("threshold") is None:
        raise OptionError("--cutoff topk needs --threshold β or --calibration FILE", option="--cutoff")
    return Cutoff(mode=kind, threshold=o.get("threshold"),
                  epsilon=0.05 if o.get("epsilon") is None else o["epsilon"], **common)


def _calibration_options(o: dict) -> dict:
    """Options that change what the model computes: a calibration only holds for the same ones."""
    opts = {k: v for k, v in _overrides(o).items() if v not in (None, 0.0)}
    for key in ("bin_us", "n_bins"):
        if o.get(key) is not None:
            opts[key] = o[key]
    opts.update(_transform_spec(o))
    return {k: list(v) if isinstance(v, tuple) else v for k, v in opts.items()}


def _load(model_path, o: dict, bundled: bool = False):
    from .compile.builder import load_model

    profile = o.get("profile") or (BUNDLED_PROFILE if bundled else "nir")
    o["profile"] = profile
    return load_model(str(model_path), profile=profile, precision=o.get("precision", "float32"), **_overrides(o))


def _config(model_path, o: dict, cutoff, **kwargs):
    """The EvalConfig of a command's options (model, profile, overrides, mode, cutoff, input)."""
    from .analysis.evaluate import EvalConfig

    return EvalConfig(str(model_path), o["profile"], _overrides(o), o["precision"], o["mode"], o["bin_us"],
                      o["n_bins"], cutoff, _transform_spec(o), o["sort"], o["budget"], **kwargs)


def _bundled_cutoff_applies(o: dict) -> bool:
    """True when the bundled demo runs with default options, for which the bundled calibration
    holds (same model, profile, mode and neuron options)."""
    ctx = click.get_current_context()
    from click.core import ParameterSource

    explicit = {name for name in ctx.params if ctx.get_parameter_source(name) != ParameterSource.DEFAULT}
    changes_model = explicit - {"raster_path", "json_path", "label", "workers", "quiet"}
    return not changes_model and BUNDLED_CALIBRATION.is_file()


def _label_from_path(path: Path):
    try:
        return int(Path(path).parent.name)
    except ValueError:
        return None


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
@click.argument("model", required=False, type=click.Path(dir_okay=False))
@click.argument("recording", required=False, type=click.Path(dir_okay=False))
@click.option("--raster", "raster_path", type=click.Path(dir_okay=False), default=None,
              help="Write a spike raster (PNG or SVG). The bundled demo writes evsim-raster.png by default.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None, help="Write the sample record (JSON).")
@click.option("--label", type=int, default=None, help="True class (default: the parent folder name if it is an integer).")
@model_options
@mode_options
@cutoff_options
@input_options
def run(model, recording, raster_path, json_path, label, **o):
    """Simulate one RECORDING with MODEL (a NIR file) and print the prediction, the output vector,
    events consumed, SynOps and spikes per layer. With no arguments: the bundled N-MNIST model on
    a bundled held-out recording."""
    bundled = model is None
    if bundled:
        model, recording = BUNDLED_MODEL, _bundled_recording()
        if raster_path is None:
            raster_path = "evsim-raster.png"
    elif recording is None:
        raise OptionError("give a RECORDING after the MODEL (or no arguments for the bundled demo)", option="RECORDING")
    compiled = _load(model, o, bundled)
    if bundled and _bundled_cutoff_applies(o):
        # the demo shows the calibrated Top-K cutoff (ε = 0.01, calibrated on the model's
        # calibration split) unless any cutoff, mode or neuron option was given
        o["calibration"] = str(BUNDLED_CALIBRATION)
        click.echo(f"cutoff      top-k, calibrated ({BUNDLED_CALIBRATION.name}; `--cutoff none` to read everything)")
    from .analysis.evaluate import SampleRunner, sample_record

    config = _config(model, o, _cutoff(o, compiled, o["mode"]), anytime=True)
    runner = SampleRunner(config)
    rec = runner.events(str(recording))
    if label is None:
        label = _label_from_path(Path(recording))
    want_raster = raster_path is not None
    sim = runner.simulator(config.cutoff, record_output=True, record_spikes=want_raster)
    result = sim.run(rec.events, source=str(recording))
    from .analysis.trajectory import Trajectory
    from .sim.result import Cutoff

    full = result if config.cutoff.mode == "none" else runner.simulator(Cutoff(), record_output=True).run(rec.events)

    duration = float(rec.events["t"][-1] - rec.events["t"][0]) if rec.events.size else 0.0
    record = sample_record(str(recording), label, result, Trajectory.from_result(full, label=label, duration_us=duration))
    _print_run(compiled, str(model), str(recording), rec, result, record, config)
    if json_path:
        _write_json_file(json_path, record)
    if want_raster:
        from .plots import plot_raster

        plot_raster(result, compiled, rec.events, raster_path,
                    title=f"{Path(str(recording)).name}: prediction {result.prediction}"
                          + (f", label {label}" if label is not None else ""))
        click.echo(f"raster      {raster_path}")


def _print_run(model, model_path, rec_path, rec, result, record, config):
    ev = rec.events
    duration_ms = (ev["t"][-1] - ev["t"][0]) / 1000 if ev.size else 0.0
    mode = "event-driven" if config.mode == "event" else f"clock-driven ({_clock_text(config)})"
    click.echo(f"model       {model_path} (profile {model.profile.name}, {mode})")
    click.echo(f"recording   {rec_path} ({result.events_total} events, {duration_ms:.1f} ms)")
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


def _clock_text(config):
    return f"{config.bin_us:g} µs bins" if config.bin_us else f"{config.n_bins} bins"


def _samples(data: str, subset, limit):
    """(path, label) list from a folder dataset, optionally restricted to a subset file."""
    from .input.datasets import FolderDataset

    root = Path(data)
    if not root.exists():
        raise RecordingError("dataset folder does not exist", path=data)
    ds = FolderDataset(root)
    samples = ds.samples
    if subset:
        file, _, key = subset.partition(":")
        try:
            text = Path(file).read_text()
        except OSError as exc:
            raise OptionError(f"cannot read {file} ({exc.strerror})", option="--subset") from None
        if file.endswith(".json"):
            doc = json.loads(text)
            if key:
                if key not in doc:
                    raise OptionError(f"{file} has no list '{key}' (has {', '.join(doc)})", option="--subset")
                wanted = doc[key]
            else:
                wanted = doc if isinstance(doc, list) else sum(doc.values(), [])
        else:
            wanted = [line.strip() for line in text.splitlines() if line.strip()]
        wanted = {str((root / w).resolve()) for w in wanted}
        samples = [s for s in samples if str(Path(s[0]).resolve()) in wanted]
        if not samples:
            raise OptionError(f"no recording of {data} is listed in {subset}", option="--subset")
    if limit is not None:
        if limit < 1:
            raise OptionError("must be >= 1", option="--limit")
        samples = samples[:limit]
    return samples


data_options = _options(
    click.option("--workers", type=int, default=1, show_default=True,
                 help="Parallel worker processes (results are identical to one worker)."),
    click.option("--limit", type=int, default=None, help="Use only the first N recordings."),
    click.option("--subset", type=str, default=None,
                 help="Only recordings listed in FILE (text: one path per line relative to DATA; JSON: a list, "
                      "or FILE.json:KEY for a list in a dict such as a model's split.json)."),
    click.option("--quiet", is_flag=True, help="No progress bar."),
)


@cli.command(name="eval")
@click.argument("model", type=click.Path(dir_okay=False))
@click.argument("data", type=click.Path())
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help="Write aggregates and per-sample records (JSON, written incrementally).")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), default=None,
              help="Write per-sample records (CSV, one row per finished sample).")
@data_options
@model_options
@mode_options
@cutoff_options
@input_options
def eval_command(model, data, json_path, csv_path, workers, limit, subset, quiet, **o):
    """Evaluate MODEL on a labelled folder DATA (root/<label>/<recordings>): accuracy, events and
    SynOps consumed, latency, oracle cutoff times and anytime curves."""
    from .analysis.evaluate import evaluate

    compiled = _load(model, o)
    samples = _samples(data, subset, limit)
    config = _config(model, o, _cutoff(o, compiled, o["mode"]))
    try:
        doc = evaluate(samples, config, workers=workers, json_path=json_path, csv_path=csv_path, progress=not quiet,
                       data=str(data))
    except KeyboardInterrupt:
        click.echo("evsim: interrupted; finished samples were written", err=True)
        sys.exit(130)
    _print_eval(doc)


def _print_eval(doc):
    click.echo(f"{doc['n_samples']} samples, {doc['mode']}-driven, profile {doc['profile']}, cutoff {doc['cutoff']['mode']}")
    click.echo(f"accuracy              {100 * doc['accuracy']:.2f}%  (no prediction: {doc['no_prediction']})")
    click.echo(f"events consumed       {100 * doc['mean_events_fraction']:.1f}% on average")
    click.echo(f"latency               {doc['mean_latency_us'] / 1000:.2f} ms on average")
    click.echo(f"synops per sample     {doc['synops_per_sample']:.4g}")
    if doc.get("oct") and doc["oct"]["mean_us"] is not None:
        click.echo(f"oracle cutoff time    mean {doc['oct']['mean_us'] / 1000:.2f} ms, median "
                   f"{doc['oct']['median_us'] / 1000:.2f} ms ({doc['oct']['defined']} correct samples)")
    if doc.get("budget_exhausted"):
        click.echo(f"budget exhausted      {doc['budget_exhausted']} samples (runaway activity)")
    click.echo(f"wall time             {doc['wall_s']:.1f} s ({doc['samples_per_s']:.1f} samples/s)")


@cli.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.argument("data", type=click.Path())
@click.option("-o", "--output", "output", type=click.Path(dir_okay=False), required=True,
              help="Calibration file to write (JSON).")
@click.option("--calib-bin-us", type=float, default=10_000.0, show_default=True,
              help="Width of the elapsed-time bins, microseconds (one threshold per bin).")
@click.option("--calib-bins", type=int, default=None,
              help="Number of time bins (default: enough to cover the longest recording; 1 = one global threshold).")
@data_options
@model_options
@mode_options
@click.option("--cutoff", type=click.Choice(["topk", "conf"]), required=True, help="The rule to calibrate.")
@click.option("--epsilon", type=float, default=0.05, show_default=True,
              help="Tolerated rate of decisions that are wrong or change later.")
@click.option("--temperature", type=float, default=1.0, show_default=True, help="Softmax temperature (conf).")
@input_options
def calibrate(model, data, output, calib_bin_us, calib_bins, workers, limit, subset, quiet, cutoff, epsilon,
              temperature, **o):
    """Calibrate a cutoff on labelled DATA: per elapsed-time bin, the smallest threshold whose
    confidence rate (decisions correct then and at every later time) is ≥ 1 − ε (SPEC §6)."""
    from . import analysis
    from .analysis.evaluate import evaluate
    from .sim.result import Cutoff

    compiled = _load(model, o)
    samples = _samples(data, subset, limit)
    config = _config(model, o, Cutoff())
    doc = evaluate(samples, config, workers=workers, progress=not quiet, data=str(data))
    trajs = [t for t in doc["_trajectories"] if t is not None]
    if calib_bins is None:
        longest = max((t.duration_us for t in trajs), default=0.0)
        calib_bins = max(1, int(np.ceil((longest + 1) / calib_bin_us)))
    width = calib_bin_us if calib_bins > 1 else 0.0
    result = analysis.calibrate(trajs, cutoff, epsilon, bin_width_us=width, n_bins=calib_bins, temperature=temperature)
    written = analysis.write_calibration(output, model_hash=compiled.model_hash, model_path=str(model),
                                         profile=compiled.profile.name, mode=o["mode"], cutoff=cutoff, epsilon=epsilon,
                                         temperature=temperature, bin_width_us=width, n_bins=calib_bins, result=result,
                                         data=str(data), n_samples=len(trajs), bin_us=o["bin_us"],
                                         options=_calibration_options(o))
    replay = analysis.cutoff_outcomes(trajs, cutoff, analysis.thresholds_from_calibration(written), temperature)
    finite = [v for v in result["thresholds"] if np.isfinite(v)]
    click.echo(f"calibrated {cutoff} cutoff on {len(trajs)} samples, ε = {epsilon}: {calib_bins} bin(s) of "
               f"{calib_bin_us / 1000:g} ms, thresholds {', '.join(_fmt(v) for v in result['thresholds'][:12])}"
               + (" ..." if calib_bins > 12 else ""))
    click.echo(f"on the calibration data: accuracy {100 * replay['accuracy']:.2f}% (uncut "
               f"{100 * doc['accuracy']:.2f}%), events consumed {100 * replay['mean_events_fraction']:.1f}%, "
               f"speed-up {replay['speedup']:.2f}x" + ("" if finite else " (no bin reached the rate: never cuts)"))
    click.echo(f"wrote {output}")


def _fmt(v):
    return "inf" if not np.isfinite(v) else f"{v:g}"


@cli.command()
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None, help="Write the description (JSON).")
@click.option("--profile", type=click.Choice(["nir", "sinabs", "speck", "snntorch", "norse"]), default="nir",
              show_default=True, help="Profile used to compile a model.")
@click.option("--recurrent-delay-us", type=float, default=None, help="Delay of recurrent edges, µs (strict NIR).")
def info(path, json_path, profile, recurrent_delay_us):
    """Describe a MODEL (nodes, shapes, neurons, parameters) or a RECORDING (events, time span,
    address range, polarity counts)."""
    if _is_nir(path):
        doc = _model_info(path, profile, recurrent_delay_us)
        _print_model_info(doc)
    else:
        from .input.recordings import read_recording, recording_info

        doc = recording_info(read_recording(path))
        doc = {k: (list(v) if isinstance(v, tuple) else v) for k, v in doc.items()}
        for key in ("path", "format", "n_events", "t_first_us", "t_last_us", "x_max", "y_max", "p_counts", "sensor_size"):
            if key in doc:
                click.echo(f"{key:12s} {doc[key]}")
    if json_path:
        _write_json_file(json_path, doc)


def _is_nir(path: str) -> bool:
    p = Path(path)
    if not p.is_file():
        raise EvsimError(f"{path}: no such file")
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


def _model_info(path, profile, recurrent_delay_us):
    from .kernels.abi import READOUT_COUNTS
    from .compile.builder import load_model

    try:
        model = load_model(path, profile=profile, recurrent_delay_us=recurrent_delay_us)
    except EvsimError as exc:
        if "recurrent" in str(exc) and recurrent_delay_us is None:
            model = load_model(path, profile=profile, recurrent_delay_us=1000.0)
        else:
            raise
    g = model.graph
    nodes = []
    for name in g.order:
        node = g.nodes[name]
        params = {k: list(np.shape(v)) for k, v in vars(node).items()
                  if isinstance(v, np.ndarray) and k not in ("input_type", "output_type")}
        n_params = int(sum(np.size(v) for k, v in vars(node).items()
                           if isinstance(v, np.ndarray) and k not in ("input_type", "output_type")))
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
        "profile": profile,
        "dt_us": None if model.dt_s is None else model.dt_s * 1e6,
        "input_shape": list(model.input_shape),
        "readout": {"node": model.populations[pop].name, "kind": "spike counts" if mode == READOUT_COUNTS else "state",
                    "size": model.populations[pop].size},
        "neurons": int(sum(p.size for p in model.populations[1:])),
        "parameters": int(sum(n["parameters"] for n in nodes)),
        "engine_memory_bytes": model.memory_bytes(),
        "nodes": nodes,
        "projections": projections,
        "model_hash": model.model_hash,
    }


def _print_model_info(doc):
    click.echo(f"model       {doc['path']}  (profile {doc['profile']}" +
               (f", dt {doc['dt_us']:g} µs)" if doc["dt_us"] else ")"))
    click.echo(f"input       {tuple(doc['input_shape'])}   readout: {doc['readout']['kind']} of "
               f"'{doc['readout']['node']}' ({doc['readout']['size']})")
    click.echo(f"neurons     {doc['neurons']:,}   parameters {doc['parameters']:,}   engine memory "
               f"{doc['engine_memory_bytes'] / 2**20:.1f} MiB")
    click.echo(f"{'node':18s} {'type':10s} {'input':>16s} {'output':>16s} {'neurons':>9s} {'params':>9s}")
    for n in doc["nodes"]:
        click.echo(f"{n['name'][:18]:18s} {n['type']:10s} {str(tuple(n['input_shape'])):>16s} "
                   f"{str(tuple(n['output_shape'])):>16s} {n['neurons'] or '':>9} {n['parameters']:>9,}")
    click.echo("projections")
    for p in doc["projections"]:
        extra = f", delay {p['delay_us']:g} µs" if p["delay_us"] else ""
        extra += ", recurrent" if p["recurrent"] else ""
        click.echo(f"  {p['source']} -> {p['target']} via {' -> '.join(p['through']) or '(direct)'}{extra}")


@cli.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.argument("recording", type=click.Path(dir_okay=False))
@click.option("-o", "--output", "output", type=click.Path(dir_okay=False), required=True,
              help="Raster file (.png or .svg).")
@click.option("--evidence", type=click.Path(dir_okay=False), default=None,
              help="Also write the output evidence and confidence over time (.png or .svg).")
@click.option("--label", type=int, default=None, help="True class (default: parent folder name if an integer).")
@model_options
@mode_options
@cutoff_options
@input_options
def raster(model, recording, output, evidence, label, **o):
    """Draw the spike raster of every layer (and the input events) for one RECORDING."""
    from .analysis.evaluate import SampleRunner
    from .plots import plot_evidence, plot_raster

    compiled = _load(model, o)
    config = _config(model, o, _cutoff(o, compiled, o["mode"]))
    runner = SampleRunner(config)
    rec = runner.events(str(recording))
    result = runner.simulator(config.cutoff, record_output=True, record_spikes=True).run(rec.events, source=str(recording))
    if label is None:
        label = _label_from_path(Path(recording))
    plot_raster(result, compiled, rec.events, output,
                title=f"{Path(recording).name}: prediction {result.prediction}" + (f", label {label}" if label is not None else ""))
    click.echo(f"wrote {output}")
    if evidence:
        beta = None
        if config.cutoff.mode != "none":
            beta = (config.cutoff.bin_width_us, config.cutoff.table) if config.cutoff.table is not None else config.cutoff.global_threshold
        plot_evidence(result, evidence, temperature=config.cutoff.temperature, beta=beta, label=label,
                      cutoff_mode=config.cutoff.mode if config.cutoff.mode != "none" else "topk")
        click.echo(f"wrote {evidence}")


@cli.command()
@click.argument("results", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("-o", "--output", "output", type=click.Path(dir_okay=False), required=True,
              help="Figure file (.png or .svg).")
@click.option("--title", type=str, default=None, help="Figure title.")
def plot(results, output, title):
    """Accuracy vs latency and vs fraction of events from one or more `evsim eval --json` files
    (event-driven with and without cutoff, clock-driven at several step counts)."""
    from .plots import plot_accuracy

    docs = []
    for path in results:
        try:
            docs.append(json.loads(Path(path).read_text()))
        except FileNotFoundError:
            raise OptionError(f"{path} does not exist", option="RESULTS") from None
        except (OSError, json.JSONDecodeError) as exc:
            raise OptionError(f"cannot read {path} as JSON ({exc})", option="RESULTS") from None
        if not isinstance(docs[-1], dict) or "accuracy" not in docs[-1]:
            raise OptionError(f"{path} is not an `evsim eval --json` result", option="RESULTS")
    plot_accuracy(docs, output, title=title)
    click.echo(f"wrote {output}")


def _write_json_file(path, doc):
    from .analysis.evaluate import write_json

    try:
        write_json(path, doc)
    except OSError as exc:
        raise EvsimError(f"cannot write {path} ({exc.strerror})") from None


# --------------------------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    """Console entry point: one-line errors, exit code 2 for user errors."""
    try:
        code = cli.main(args=argv, prog_name="evsim", standalone_mode=False)
        return code if isinstance(code, int) else 0
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort:
        print("evsim: aborted", file=sys.stderr)
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
    sys.exit(main())


if __name__ == "__main__":
    entry()

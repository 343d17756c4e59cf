"""Dataset evaluation: one record per recording and the aggregates of SPEC §7.

Samples run in parallel worker processes (``workers``) with results identical to one worker:
each sample is simulated independently from a fresh state and records are collected in sample
order. Records are written as they complete (CSV rows appended and flushed; the JSON document
rewritten atomically every few seconds with ``"complete": false``), so an interrupted run keeps
what it finished.
"""

from __future__ import annotations

import csv
import json
import math
import multiprocessing
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import analysis
from ..errors import EvsimError, OptionError
from ..compile.builder import load_model
from ..sim.event import Simulator
from ..sim.result import Cutoff, predict

SAMPLE_FIELDS = ["path", "label", "prediction", "correct", "decision_time_us", "events_consumed", "events_total",
                 "synops", "spikes_per_node", "output_counts", "confidence", "oct_us", "status"]


@dataclass
class EvalConfig:
    """Everything that defines how each sample is simulated (picklable, sent to workers)."""

    model_path: str
    profile: str = "nir"
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

    def __post_init__(self):
        if self.mode not in ("event", "clock"):
            raise OptionError(f"must be event or clock, got {self.mode!r}", option="--mode")
        if self.mode == "clock" and (self.bin_us is None) == (self.n_bins is None):
            raise OptionError("clock mode needs exactly one of --bin-us and --n-bins", option="--mode")
        if self.bin_us is not None and not self.bin_us > 0:
            raise OptionError("must be > 0", option="--bin-us")
        if self.n_bins is not None and not self.n_bins >= 1:
            raise OptionError("must be >= 1", option="--n-bins")


class SampleRunner:
    """Compiles the model once and simulates samples (one per call), in any process."""

    def __init__(self, config: EvalConfig):
        from ..input.transforms import build_transform

        self.config = config
        self.model = load_model(config.model_path, profile=config.profile, precision=config.precision, **config.overrides)
        self.transform = build_transform(config.transform)
        self._sims = {}

    def simulator(self, cutoff: Cutoff, record_output: bool, record_spikes: bool = False):
        key = (id(cutoff), record_output, record_spikes)
        if key not in self._sims:
            kwargs = {}
            if self.config.budget is not None:
                kwargs["budget"] = self.config.budget
            if self.config.mode == "clock":
                from ..sim.clock import ClockSimulator

                sim = ClockSimulator(self.model, bin_us=self.config.bin_us, n_bins=self.config.n_bins, cutoff=cutoff,
                                     record_output=record_output, record_spikes=record_spikes)
            else:
                sim = Simulator(self.model, cutoff=cutoff, record_output=record_output, record_spikes=record_spikes,
                                **kwargs)
            self._sims[key] = sim
        return self._sims[key]

    def events(self, path: str):
        from ..input.recordings import read_recording

        rec = read_recording(path, sort=self.config.sort)
        if self.transform:
            rec = self.transform.apply(rec)
        return rec

    def __call__(self, item) -> dict:
        path, label = item
        try:
            rec = self.events(path)
            events = rec.events
            result = self.simulator(self.config.cutoff, record_output=False).run(events, source=path)
            trajectory = None
            if self.config.anytime:
                full = result
                if self.config.cutoff.mode != "none" or result.output_record is None:
                    full = self.simulator(Cutoff(), record_output=True).run(events, source=path)
                duration = float(events["t"][-1] - events["t"][0]) if events.size else 0.0
                trajectory = analysis.Trajectory.from_result(full, label=label, duration_us=duration)
            return {"record": sample_record(path, label, result, trajectory), "trajectory": trajectory}
        except EvsimError as exc:
            return {"error": str(exc), "path": path}


def sample_record(path, label, result, trajectory) -> dict:
    """The SPEC §7 record of one sample."""
    oct_us = analysis.oracle_cutoff_time(trajectory) if trajectory is not None else None
    return {
        "path": str(path),
        "label": None if label is None else int(label),
        "prediction": result.prediction,
        "correct": bool(label is not None and result.prediction == label),
        "decision_time_us": result.decision_time_us,
        "events_consumed": result.events_consumed,
        "events_total": result.events_total,
        "synops": result.synops,
        "spikes_per_node": result.spikes_per_node,
        "output_counts": [float(v) if not float(v).is_integer() else int(v) for v in np.asarray(result.output)],
        "confidence": result.confidence,
        "oct_us": oct_us,
        "status": result.status,
    }


# --------------------------------------------------------------------------------------------
# aggregates
# --------------------------------------------------------------------------------------------


def aggregate(records: list, trajectories: list, config: EvalConfig, wall_s: float, *, complete: bool,
              model_hash: str = "", data: str = "") -> dict:
    n = len(records)
    doc = {
        "accuracy": float(np.mean([r["correct"] for r in records])) if n else 0.0,
        "n_samples": n,
        "no_prediction": int(sum(r["prediction"] is None for r in records)),
        "mean_events_fraction": float(np.mean([r["events_consumed"] / r["events_total"] if r["events_total"] else 1.0
                                               for r in records])) if n else 0.0,
        "mean_latency_us": float(np.mean([r["decision_time_us"] or 0.0 for r in records])) if n else 0.0,
        "synops_per_sample": float(np.mean([r["synops"] for r in records])) if n else 0.0,
        "wall_s": wall_s,
        "samples_per_s": n / wall_s if wall_s > 0 else 0.0,
        "mode": config.mode,
        "profile": config.profile,
        "cutoff": config.cutoff.describe(),
        "complete": complete,
        "model": config.model_path,
        "model_hash": model_hash,
        "data": data,
        "precision": config.precision,
        "budget_exhausted": int(sum(r["status"] == "budget" for r in records)),
    }
    if config.mode == "clock":
        doc["bin_us"] = config.bin_us
        doc["n_bins"] = config.n_bins
    trajs = [t for t in trajectories if t is not None]
    if trajs and complete:
        doc["anytime"] = anytime_summary(trajs)
        octs = [r["oct_us"] for r in records if r["oct_us"] is not None]
        durations = [t.duration_us for t in trajs]
        doc["oct"] = {
            "defined": len(octs),
            "mean_us": float(np.mean(octs)) if octs else None,
            "median_us": float(np.median(octs)) if octs else None,
            "mean_fraction_of_duration": float(np.mean([o / d for o, d in zip(
                [r["oct_us"] for r in records], durations) if o is not None and d > 0])) if octs else None,
        }
    doc["samples"] = records
    return doc


def anytime_summary(trajs: list, n_time: int = 101, n_fraction: int = 101) -> dict:
    """Accuracy vs elapsed time and vs fraction of events, and a global top-k threshold sweep."""
    t_max = max(t.duration_us for t in trajs)
    time_grid = np.linspace(0.0, t_max, n_time)
    fraction_grid = np.linspace(0.0, 1.0, n_fraction)
    return {
        "time_us": time_grid.tolist(),
        "accuracy_vs_time": analysis.accuracy_vs_time(trajs, time_grid).tolist(),
        "fraction": fraction_grid.tolist(),
        "accuracy_vs_fraction": analysis.accuracy_vs_fraction(trajs, fraction_grid).tolist(),
        "sweep": analysis.cutoff_sweep(trajs, "topk"),
    }


# --------------------------------------------------------------------------------------------
# running
# --------------------------------------------------------------------------------------------

_WORKER: SampleRunner | None = None


def _init_worker(config: EvalConfig) -> None:
    global _WORKER
    _WORKER = SampleRunner(config)


def _run_in_worker(item):
    return _WORKER(item)


class Progress:
    """A progress line on stderr: done/total, percent, samples/s, ETA."""

    def __init__(self, total: int, label: str = "evsim", enabled: bool = True):
        self.total = total
        self.label = label
        self.enabled = enabled
        self.start = time.time()
        self.last = 0.0
        self.tty = sys.stderr.isatty()
        self.last_percent = -10

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
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - done) / rate if rate > 0 else float("nan")
        eta_text = "--:--" if math.isnan(eta) else f"{int(eta) // 60:d}:{int(eta) % 60:02d}"
        width = 24
        filled = int(width * done / self.total) if self.total else width
        line = (f"{self.label} [{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} {percent:5.1f}% "
                f"{rate:6.1f} samples/s ETA {eta_text}")
        end = "\n" if final or not self.tty else ""
        print(("\r" if self.tty else "") + line, end=end, file=sys.stderr, flush=True)


def evaluate(samples: list, config: EvalConfig, *, workers: int = 1, json_path=None, csv_path=None,
             progress: bool = True, data: str = "") -> dict:
    """Evaluate ``samples`` [(path, label)] and return the eval document (SPEC §7).

    Raises:
        EvsimError: the model or an option is invalid (checked before any worker starts), or a
            recording is bad (the message names it; records finished so far are kept on disk).
    """
    if workers < 1:
        raise OptionError("must be >= 1", option="--workers")
    runner = SampleRunner(config)  # compiles and validates in this process first
    model_hash = runner.model.model_hash
    records, trajectories = [], []
    start = time.time()
    bar = Progress(len(samples), f"evsim eval ({config.mode}, {workers} worker{'s' if workers > 1 else ''})", progress)
    csv_file = writer = None
    if csv_path:
        csv_file = open(csv_path, "w", newline="")
        writer = csv.writer(csv_file)
        writer.writerow(SAMPLE_FIELDS)
    last_json = time.time()

    def keep(out):
        nonlocal last_json
        if "error" in out:
            raise _SampleFailed(out["error"])
        records.append(out["record"])
        trajectories.append(out["trajectory"])
        if writer is not None:
            writer.writerow([_csv_value(out["record"][k]) for k in SAMPLE_FIELDS])
            csv_file.flush()
        if json_path and time.time() - last_json > 5.0:
            _write_json(json_path, aggregate(records, trajectories, config, time.time() - start, complete=False,
                                             model_hash=model_hash, data=data))
            last_json = time.time()
        bar.update(len(records))

    interrupted = False
    try:
        if workers == 1 or len(samples) <= 1:
            for item in samples:
                keep(runner(item))
        else:
            ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
            with ctx.Pool(workers, initializer=_init_worker, initargs=(config,)) as pool:
                for out in pool.imap(_run_in_worker, samples, chunksize=max(1, min(8, len(samples) // (workers * 8) or 1))):
                    keep(out)
    except KeyboardInterrupt:
        interrupted = True
    except _SampleFailed as exc:
        if json_path:
            _write_json(json_path, aggregate(records, trajectories, config, time.time() - start, complete=False,
                                             model_hash=model_hash, data=data))
        raise EvsimError(str(exc)) from None
    finally:
        if csv_file is not None:
            csv_file.close()
    wall = time.time() - start
    bar.update(len(records), final=True)
    doc = aggregate(records, trajectories, config, wall, complete=not interrupted, model_hash=model_hash, data=data)
    doc["workers"] = workers
    if interrupted:
        doc["interrupted"] = True
    if json_path:
        _write_json(json_path, doc)
    if interrupted:
        raise KeyboardInterrupt
    doc["_trajectories"] = trajectories
    return doc


class _SampleFailed(Exception):
    pass


def _csv_value(value):
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return "" if value is None else value


def _write_json(path, doc: dict) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    clean = {k: v for k, v in doc.items() if not k.startswith("_")}
    tmp.write_text(json.dumps(clean, indent=1, default=_json_default))
    os.replace(tmp, path)


def _json_default(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_json(path, doc: dict) -> None:
    """Write an eval document (drops in-memory-only keys)."""
    _write_json(path, doc)


__all__ = ["EvalConfig", "SampleRunner", "evaluate", "aggregate", "sample_record", "write_json", "predict"]

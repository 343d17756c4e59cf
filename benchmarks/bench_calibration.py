"""Does the default calibration generalise? Held-out accuracy lost and events saved, next to what
cross-validation on the calibration data predicted, for several models.

One command::

    python benchmarks/bench_calibration.py [--data DATA] [--json FILE]

DATA defaults to ``$EVSIM_SHARED_DATA/nmnist-train1k`` (``shared/data`` next to the repository when
the variable is unset).

Models: the bundled CNN (trained with an anytime loss, read with its declared ``speck`` profile)
and the rate-coded softmax regression of ``examples/train_rate_linear.py`` (trained on total
counts only), the default ``--extra-model out/rate_linear/model.nir``: that file exists only
after ``python examples/train_rate_linear.py`` has been run with its default ``-o`` (without it the
model is skipped with a notice), and any model given as
``--extra-model PATH[@PROFILE]`` — e.g. the NIR paper's sinabs N-MNIST CNN
(``paper/02_cnn/cnn_sinabs.nir`` of github.com/neuromorphs/NIR, trained and exported by another
group) with ``@speck``. For each model: the output
trajectories of the bundled split's calibration recordings (96) and test recordings (191), both
event-driven and uncut; a Top-K calibration per 10 ms bin on the calibration recordings with
``min_support`` = the CLI default, for several ε; a 5-fold cross-validation on the calibration
recordings (the estimate ``evsim calibrate`` prints); the rule replayed on the test recordings
(replay equals the engine's real cutoff: tests/test_analysis.py). Accuracy lost = uncut accuracy
− cut accuracy on the same test recordings.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/_machine.py
from _machine import nmnist_folder  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RATE_LINEAR = REPO / "out" / "rate_linear" / "model.nir"  # written by examples/train_rate_linear.py


def trajectories(model, root: Path, names):
    import evsim
    from evsim.analysis import Trajectory

    sim = evsim.Simulator(model, record_output=True)
    out = []
    for name in names:
        ev = evsim.read_recording(root / name).events
        dur = float(ev["t"][-1] - ev["t"][0]) if ev.size else 0.0
        out.append(Trajectory.from_result(sim.run(ev), label=int(Path(name).parent.name), duration_us=dur))
    return out


def main(argv=None) -> int:
    import evsim
    from evsim import analysis

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=nmnist_folder(), help="folder <label>/<recording> (default: %(default)s)")
    ap.add_argument("--split", default=str(REPO / "evsim" / "bundled" / "nmnist_cnn" / "split.json"))
    ap.add_argument("--extra-model", action="append", default=[str(RATE_LINEAR)], metavar="PATH[@PROFILE]",
                    help=f"another model (repeatable), besides {RATE_LINEAR.relative_to(REPO)}, which exists only "
                         "after `python examples/train_rate_linear.py` with its default -o (skipped with a notice "
                         "otherwise)")
    ap.add_argument("--epsilons", default="0.01,0.02,0.05")
    ap.add_argument("--bin-us", type=float, default=10_000.0)
    ap.add_argument("--confidence", type=float, default=None,
                    help="the calibration's confidence (default: evsim's default; 0 = observed rates)")
    ap.add_argument("--calibration-sets", default="split,rest",
                    help="split: the split's calibration recordings; rest: every recording of DATA not in the "
                         "split's test set (for the bundled model these include its training recordings)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    split = json.loads(Path(args.split).read_text())
    root = Path(args.data)
    models = [("bundled CNN (anytime loss, speck)", str(evsim.bundled_model_path()))]
    models = [(title, path, None) for title, path in models]
    for spec in args.extra_model:
        path, _, profile = spec.partition("@")
        if not Path(path).is_file():
            if path == str(RATE_LINEAR):
                print(f"bench_calibration.py: note: skipping {path}: no such file (run "
                      "`python examples/train_rate_linear.py` first to include it)", file=sys.stderr)
                continue
            print(f"bench_calibration.py: error: --extra-model {path}: no such file", file=sys.stderr)
            return 2
        if path.endswith("rate_linear/model.nir"):
            models.append((f"{Path(path).parent.name} (softmax regression on counts)", path, profile or None))
        else:
            models.append((f"{Path(path).stem} ({profile or 'declared profile'})", path, profile or None))
    rows = []
    confidence = analysis.DEFAULT_CONFIDENCE if args.confidence is None else (args.confidence or None)
    test_names = set(split["test"])
    rest = sorted(str(p.relative_to(root)) for p in root.glob("*/*") if str(p.relative_to(root)) not in test_names)
    for title, path, profile in models:
        model = evsim.load_model(path, profile=profile)
        test = trajectories(model, root, split["test"])
        uncut = float(np.mean([t.predictions[-1] == t.label if len(t.t_us) else False for t in test]))
        for set_name in args.calibration_sets.split(","):
            calib = trajectories(model, root, split["calibration"] if set_name == "split" else rest)
            n_bins = int(np.ceil((max(t.duration_us for t in calib + test) + 1) / args.bin_us))
            for eps in [float(e) for e in args.epsilons.split(",")]:
                kw = dict(bin_width_us=args.bin_us, n_bins=n_bins, min_support=analysis.DEFAULT_MIN_SUPPORT,
                          confidence=confidence)
                cal = analysis.calibrate(calib, "topk", eps, **kw)
                cv = analysis.cross_validate(calib, "topk", eps, k=5, seed=0, **kw)
                held = analysis.cutoff_outcomes(test, "topk", analysis.Thresholds(np.asarray(cal["thresholds"]), args.bin_us))
                row = {"model": title, "profile": model.profile.name, "epsilon": eps, "confidence": confidence,
                       "calibration_set": set_name,
                       "cv_accuracy_lost": cv["accuracy_lost"], "cv_speedup": cv["speedup"],
                       "test_accuracy_uncut": uncut, "test_accuracy_cut": held["accuracy"],
                       "test_accuracy_lost": uncut - held["accuracy"], "test_events_fraction": held["mean_events_fraction"],
                       "test_speedup": held["speedup"], "n_calibration": len(calib), "n_test": len(test)}
                rows.append(row)
                print(f"{title:40s} {set_name:5s} n={len(calib):4d} ε={eps:<5g} CV: lost {100 * cv['accuracy_lost']:5.2f} pt, {cv['speedup']:4.2f}x | "
                      f"test: {100 * uncut:.2f}% -> {100 * held['accuracy']:.2f}% (lost {100 * row['test_accuracy_lost']:5.2f} pt), "
                      f"events {100 * held['mean_events_fraction']:.1f}%, {held['speedup']:.2f}x", flush=True)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

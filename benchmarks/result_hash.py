"""A fingerprint of evsim's results: one sha256 per (mode, profile, precision) over every recording.

One command::

    python benchmarks/result_hash.py [--data DATA] [--workers 2] [--json FILE]

DATA defaults to ``$EVSIM_SHARED_DATA/nmnist-train1k`` (``shared/data`` next to the repository when
the variable is unset).

For every recording of the folder (sorted by label, then name) and every combination of mode
(``event``; ``clock`` with 1 ms bins), profile (nir, sinabs, speck, snntorch, norse) and
precision (float32, float64), the bundled N-MNIST model is simulated with spike recording on and
no cutoff; the hash takes, per recording in order: the output vector, the output spike counts,
the SynOps, the status, the spikes per node and the whole spike record (node, neuron, time,
count). A refactoring that must not change results must leave every line identical; a change of
a rule changes exactly the lines it should. The printed table (and ``--json``) lists the hashes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/_machine.py
from _machine import nmnist_folder  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PROFILES = ("nir", "sinabs", "speck", "snntorch", "norse")
MODES = ("event", "clock")
PRECISIONS = ("float32", "float64")


def _default_model() -> str:
    import evsim

    return str(evsim.bundled_model_path()) if hasattr(evsim, "bundled_model_path") else str(
        REPO / "models" / "nmnist_cnn" / "model.nir")


def _recordings(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("*/*") if p.is_file())


def _digest(result, h) -> None:
    h.update(np.ascontiguousarray(result.output, dtype=np.float64).tobytes())
    if result.output_counts is not None:
        h.update(np.ascontiguousarray(result.output_counts, dtype=np.int64).tobytes())
    h.update(str((result.synops, result.status, sorted(result.spikes_per_node.items()))).encode())
    sp = result.spikes
    for field in ("node", "neuron", "t_us", "count"):
        h.update(np.ascontiguousarray(sp[field]).tobytes())


def _hash_one(job) -> tuple:
    model_path, mode, profile, precision, paths = job
    import evsim

    model = evsim.load_model(model_path, profile=profile, precision=precision)
    if mode == "event":
        sim = evsim.Simulator(model, record_spikes=True)
    else:
        from evsim.sim.clock import ClockSimulator

        sim = ClockSimulator(model, bin_us=1000, record_spikes=True)
    h = hashlib.sha256()
    for p in paths:
        events = evsim.read_recording(p).events
        _digest(sim.run(events), h)
    return mode, profile, precision, len(paths), h.hexdigest()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=nmnist_folder(), help="folder <label>/<recording> (default: %(default)s)")
    ap.add_argument("--model", default=None, help="default: the bundled N-MNIST model")
    ap.add_argument("--limit", type=int, default=None, help="only the first N recordings")
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--profiles", default=",".join(PROFILES))
    ap.add_argument("--precisions", default=",".join(PRECISIONS))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    paths = [str(p) for p in _recordings(Path(args.data))][: args.limit]
    if not paths:
        print(f"no recordings under {args.data}", file=sys.stderr)
        return 2
    model = args.model or _default_model()
    jobs = [(model, mode, prof, prec, paths)
            for mode in args.modes.split(",") for prof in args.profiles.split(",")
            for prec in args.precisions.split(",")]
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        rows = list(pool.map(_hash_one, jobs))
    for mode, prof, prec, n, digest in rows:
        print(f"{mode:6s} {prof:9s} {prec:8s} {n:5d}  {digest}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(
            [dict(mode=m, profile=p, precision=q, recordings=n, sha256=d) for m, p, q, n, d in rows], indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Helpers shared by the framework scripts and compare.py (numpy only: no torch, jax or evsim).

A *case* is a folder ``OUT/<case>/`` holding

- ``model.nir`` (and maybe other NIR files): what the framework's exporter wrote, repaired where
  a known exporter bug makes that necessary (each repair is commented in the framework script);
- ``data.npz``: the input (``counts``: event counts per step, shape (T, *input shape)) and the
  framework's records per spiking layer (spike counts (T, N), membrane (T, N), current (T, N));
- ``case.json``: how evsim reads it (profile, step in µs, T), which arrays are the framework's
  records of which evsim population (``refs``), and the ``checks``: which NIR file under which
  evsim options is compared with which reference, and whether the clock mode is expected to be
  equal (``"expect": "equal"``) or to differ for a documented reason (``"expect": "differ"``,
  ``"why"`` citing docs/SEMANTICS.md); optionally ``quantized``: the framework's discretised
  parameters per layer (npz keys of weights and biases, threshold, floor, scales), compared with
  ``evsim.quantize_speck`` of the named NIR file (dynapcnn_cases.py).
"""
from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]


def shared_data() -> Path:
    """$EVSIM_SHARED_DATA, else ``shared/data`` next to the repository (as benchmarks/_machine.py)."""
    return Path(os.environ.get("EVSIM_SHARED_DATA", REPO.parent / "shared" / "data"))


def parse_args(all_cases, doc):
    """``python X_cases.py OUT [CASE ...]``: the output folder and the cases to build (default all)."""
    args = sys.argv[1:]
    if not args or args[0] in ("-h", "--help"):
        print(doc.strip() + "\n\ncases: " + " ".join(all_cases))
        sys.exit(0 if args else 2)
    out, wanted = Path(args[0]), args[1:] or list(all_cases)
    unknown = [c for c in wanted if c not in all_cases]
    if unknown:
        sys.exit(f"unknown case(s) {unknown}; known: {' '.join(all_cases)}")
    out.mkdir(parents=True, exist_ok=True)
    return out, wanted


def versions(*modules) -> dict:
    v = {"python": platform.python_version()}
    for name in modules:
        try:
            v[name] = __import__(name).__version__
        except Exception:  # noqa: BLE001 - a missing __version__ is just not listed
            from importlib.metadata import version
            v[name] = version(name)
    return v


def layer(spikes, v=None, i=None, spiking=True) -> dict:
    """A reference entry: the npz keys of a layer's spikes, membrane and current (None: not recorded).
    A non-spiking layer (LI) is compared on its membrane: equal means max |Δv| <= V_TOL."""
    return {"spikes": spikes, "v": v, "i": i, "spiking": spiking}


V_TOL = 1e-4  # float32 rounding of a membrane over a few hundred steps stays far below this


def check(ref, overrides=None, *, nir="model.nir", profile=None, expect="equal", why=None) -> dict:
    """One clock-mode comparison: evsim on ``nir`` with ``overrides`` (and another profile than the
    case's, if given) vs the framework record ``ref``."""
    c = {"nir": nir, "overrides": overrides or {}, "ref": ref, "expect": expect}
    if profile:
        c["profile"] = profile
    if why:
        c["why"] = why
    return c


def write_case(out: Path, name: str, *, graphs: dict, arrays: dict, profile: str, step_us: float, T: int,
               refs: dict, checks: list, framework: dict, spike_shift: int = 0, input=None, note=None,
               quantized=None):
    """Write one case folder. ``graphs``: {file name: nir.NIRGraph} (written with the framework env's nir)."""
    import nir  # the framework environment's own nir version

    d = out / name
    d.mkdir(parents=True, exist_ok=True)
    for fname, g in graphs.items():
        if isinstance(g, (str, Path)):  # an existing file, copied as it is
            (d / fname).write_bytes(Path(g).read_bytes())
        else:
            nir.write(str(d / fname), g)
    np.savez_compressed(d / "data.npz", **arrays)
    meta = {"case": name, "framework": framework, "profile": profile, "step_us": float(step_us), "T": int(T),
            "input": input or {"counts": "counts"}, "spike_shift": int(spike_shift), "refs": refs,
            "checks": checks}
    if note:
        meta["note"] = note
    if quantized:
        meta["quantized"] = quantized
    (d / "case.json").write_text(json.dumps(meta, indent=1))
    totals = ", ".join(f"{lay} {int(arrays[k['spikes']].sum())}" for r in refs.values() for lay, k in r.items())
    print(f"{name}: written ({totals} spikes)", flush=True)


def to_numpy(graph):
    """Every torch/jax array attribute of every node as a numpy array (nir.write needs numpy)."""
    for node in graph.nodes.values():
        for k, v in list(vars(node).items()):
            if hasattr(v, "detach"):
                v = v.detach().cpu().numpy()
            elif type(v).__module__.startswith("jax"):
                v = np.asarray(v)
            setattr(node, k, v)
    return graph


# ---------------------------------------------------------------- comparison (used by compare.py)

def compare_spikes(ref, got, shift=0):
    """ref, got: (T, N) spike counts; evsim step t is compared with framework step t + shift (the
    last ``shift`` evsim steps have no framework counterpart and are not compared).
    Returns (equal, n differing entries, first (step, neuron) or None, ref total, got total)."""
    ref = np.asarray(ref).reshape(len(ref), -1)
    got = np.asarray(got).reshape(len(got), -1)
    T = ref.shape[0]
    r, g = ref[shift:], got[:T - shift]
    diff = np.argwhere(r != g)
    first = tuple(int(x) for x in diff[0]) if len(diff) else None
    return len(diff) == 0, len(diff), first, int(r.sum()), int(g.sum())


def max_abs_diff(ref, got):
    if ref is None or got is None:
        return None
    ref = np.asarray(ref, dtype=np.float64).reshape(len(ref), -1)
    got = np.asarray(got, dtype=np.float64).reshape(len(got), -1)
    return float(np.max(np.abs(ref - got))) if ref.size else 0.0

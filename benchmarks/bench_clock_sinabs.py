"""The sinabs side of ``bench_clock.py``: run by it in a separate environment that has torch and
sinabs (never a dependency of evsim). Reads the binned recordings that bench_clock.py wrote,
runs the same NIR model through ``sinabs.from_nir`` on torch CPU with one thread, and writes
per-recording times and output spike counts.

    python bench_clock_sinabs.py MODEL.nir FRAMES.npz OUT.npz --repeats 5 [--core N]

FRAMES.npz: ``flat`` (input neuron, NIR order, per event), ``k`` (bin per event), ``ptr``
(events of recording r: ptr[r]:ptr[r+1]), ``n_steps`` (bins per recording), ``shape`` (input
shape). Timed per recording: building the (T, C, H, W) tensor of event counts from the event
list, resetting the states and the forward pass (``torch.no_grad``); the median over repeats.
"""

from __future__ import annotations

import argparse
import inspect
import os
import sys
import time

import h5py
import nir
import numpy as np
import sinabs
import torch


def load_nir(path):
    """nir.read with the keys this (older) NIR release does not know dropped (sinabs pins
    nir <= 1.0.4; evsim writes IF.v_reset, which sinabs' IAF ignores). Prints what was dropped."""
    with h5py.File(path, "r") as f:
        d = nir.serialization.hdf2dict(f["node"])
    for name, node in d["nodes"].items():
        if node["type"] in ("Input", "Output"):
            continue
        params = inspect.signature(nir.ir.str2NIRNode(node["type"]).__init__).parameters
        for key in [k for k in node if k != "type" and k not in params]:
            print(f"sinabs side: {name} ({node['type']}): dropped {key} = {np.unique(node[key])}", file=sys.stderr)
            del node[key]
    return nir.dict2NIRNode(d)


def reset(model):
    for m in model.modules():
        if m is not model and hasattr(m, "reset_states"):
            m.reset_states()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("frames")
    ap.add_argument("out")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--core", type=int, default=None)
    args = ap.parse_args(argv)
    if args.core is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.core})
    torch.set_num_threads(1)
    z = np.load(args.frames)
    flat, k, ptr, n_steps, shape = z["flat"], z["k"], z["ptr"], z["n_steps"], tuple(int(s) for s in z["shape"])
    n_in = int(np.prod(shape))
    model = sinabs.from_nir(load_nir(args.model), batch_size=1)
    model.eval()
    n_rec = ptr.size - 1
    idx = [torch.from_numpy(k[ptr[r]:ptr[r + 1]] * n_in + flat[ptr[r]:ptr[r + 1]]) for r in range(n_rec)]
    ones = [torch.ones(ix.numel()) for ix in idx]

    def run(r):
        frames = torch.zeros(int(n_steps[r]) * n_in)
        frames.index_put_((idx[r],), ones[r], accumulate=True)
        reset(model)
        y = model(frames.reshape((int(n_steps[r]),) + shape))
        y = y[0] if isinstance(y, tuple) else y
        return y.sum(0)

    counts = []
    with torch.no_grad():
        for r in range(n_rec):  # warm-up, and the outputs
            counts.append(run(r).numpy().astype(np.float64))
        times = np.zeros((args.repeats, n_rec))
        for rep in range(args.repeats):
            for r in range(n_rec):
                t = time.perf_counter()
                run(r)
                times[rep, r] = time.perf_counter() - t
    np.savez(args.out, counts=np.array(counts), times=times, torch=torch.__version__, sinabs=sinabs.__version__,
             threads=torch.get_num_threads())
    return 0


if __name__ == "__main__":
    sys.exit(main())

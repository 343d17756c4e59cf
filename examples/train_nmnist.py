"""Train the evsim reference N-MNIST CNN, export it to NIR, and cross-check it clock-driven.

One command trains and exports (run from the repository root)::

    python examples/train_nmnist.py train --data $EVSIM_SHARED_DATA/nmnist-train1k \
        --out evsim/bundled/nmnist_cnn --epochs 50 --seed 0

and an independent clock-driven evaluation of the *exported* ``.nir`` file (read back with
``nir.read`` and interpreted by the small torch interpreter in this file, not by the training
model) is::

    python examples/train_nmnist.py evaluate --data $EVSIM_SHARED_DATA/nmnist-train1k \
        --nir evsim/bundled/nmnist_cnn/model.nir --split evsim/bundled/nmnist_cnn/split.json \
        --bins 1 5 20 single

``--data`` defaults to ``$EVSIM_SHARED_DATA/nmnist-train1k`` (``shared/data`` next to the
repository when the variable is unset).

The simulator (``evsim``) never imports torch; this script needs the ``train`` extra
(``pip install -e .[train]``, i.e. torch==2.13.0 CPU).

Data and split
--------------
``<data>/<label>/<id>.bin`` are original N-MNIST recordings (34 x 34 sensor, 2 polarities).
Within each label folder file names are sorted; file index ``i`` goes to *train* if
``i % 10 <= 6``, *calibration* if ``i % 10 == 7`` and *test* if ``i % 10 >= 8``. The split is
written to ``<out>/split.json`` with paths relative to the data root. An event addresses input
neuron ``(p, y, x)`` of the (2, 34, 34) input.

Binning (clock-driven runs)
---------------------------
tonic ``ToFrame(time_window=w)`` semantics: bins start at the recording's first event ``t0`` and
bin ``k`` holds the events with ``t0 + k*w <= t < t0 + (k+1)*w``. Every event is kept: the
number of bins is ``floor((t_last - t0) / w) + 1``, i.e. the last incomplete window is included
(like ``include_incomplete=True``; note tonic itself drops the events at ``t_last`` when
``t_last - t0`` is an exact multiple of ``w``, this script does not). "single" means one bin
holding the whole recording. A frame holds event *counts* per (p, y, x).

Network (no biases anywhere)
----------------------------
input (2,34,34)
-> Conv2d 2->16, 5x5, stride 2, padding 1 -> IF (16,16,16)
-> Conv2d 16->16, 3x3, padding 1 -> IF (16,16,16) -> SumPool2d 2
-> Conv2d 16->8, 3x3, padding 1 -> IF (8,8,8) -> SumPool2d 2
-> Flatten (128) -> Linear 128->256 -> IF (256) -> Linear 256->10 -> IF (10).
Output = spike counts of the last IF layer summed over time; prediction = argmax, ties -> the
lowest index.

Neuron (sinabs ``IAFSqueeze`` as ``sinabs.from_nir`` builds it from ``nir.IF``), per time step
with threshold theta = 1::

    v <- v + I                       (no leak; nir.IF's r is 1 and ignored)
    s  = floor(v / theta) if v >= theta else 0        (MultiSpike)
    v <- v - s * theta                                 (subtract reset, v_reset unused)
    v <- max(v, -theta)                                (membrane floor at -theta)

Surrogate gradient: sinabs' ``PeriodicExponential`` (grad_width 0.5, grad_scale 1), i.e.
ds/dv = exp(-|v' - theta/2| / 0.5) / theta with v' = v - theta/2 for v < theta and
v' = (v - theta/2) mod theta for v >= theta -- a peak at every multiple of theta. The reset is
not detached (as in sinabs): dv_after/dv_before = (1 - ds/dv) * [v - s*theta > -theta].
The recurrence and its exact BPTT backward are written by hand (``IFFunction``); the linear
layers are applied to all time steps at once (they are stateless).

Recipe (Mixed Time-step Training + anytime loss)
------------------------------------------------
Each mini-batch (16 samples) is binned with one bin width drawn from ``BIN_CHOICES`` (0.5, 1,
2, 5, 10, 20, 50 ms and a single whole-recording bin), so the same weights work from
"almost event-driven" 0.5 ms bins up to one frame. Augmentation per sample: a random translation
of up to +-3 pixels in x and y (events falling off the sensor are dropped), and dropping a
random fraction (0-20 %) of the events. With probability ``CROP_PROB`` = 0.5 a mini-batch is
cut to a random prefix: every recording keeps the events up to ``c`` x its duration,
``c ~ uniform(CROP_MIN = 0.15, 1)``.

The network must be *anytime*: the output spike counts accumulated up to any moment must
already classify, so that a confidence cutoff (Top-K: stop when top1 - top2 >= beta) can stop
early. Let ``a_t`` be the accumulated output counts after bin ``t`` and ``f_t`` the fraction of
the (cropped) recording's events that fall in bin ``t``. The loss per sample is

    (1 - PREFIX_WEIGHT) * CE(a_T / OUT_TEMP)                  (end of the recording)
    + PREFIX_WEIGHT * sum_t f_t * CE(a_t / OUT_TEMP)           (every prefix, TET-like)
    + RCS_LAMBDA * sum_t f_t * (1 - a_t[y] / (|a_t| + 1))      (cosine similarity to the label)
    + REG_LAMBDA * SynOps / 1e6

with ``PREFIX_WEIGHT`` = 0.7, ``OUT_TEMP`` = 4 (the loss asks for a margin of several spikes),
``RCS_LAMBDA`` = 1. The prefix term is the cross-entropy of the accumulated output averaged over
the input events (each event weighs the same, wherever it is), like TET (Deng et al. 2022) but
on accumulated counts instead of per-step outputs; because the network is causal, the output
after bin ``t`` is exactly the output of the recording cut after bin ``t``, so this is a loss on
every prefix at once (the random crops add more short recordings and save time). The third term
is a cosine-similarity regulariser between the accumulated output and the one-hot label in the
spirit of RCS (Wu et al., arXiv 2301.09522): it pushes the wrong classes to stay silent so that
the top1 - top2 gap is a reliable confidence (the 1 added to the norm keeps the gradient finite
for a silent output). SynOps = sum over IF layers of the per-sample spike count times the
layer's fan-out (``FANOUT``), per 1e6. Adam (lr 2e-3, one epoch of linear warm-up, then cosine
decay to 0), weights only (bias-free), He-normal init; after every step the weights are clamped
to [-W_MAX, W_MAX] = [-0.99, 0.99] so that |w| < theta. No checkpoint selection: the weights
after the last epoch are exported (the calibration split is only monitored, including a
clock-driven 1 ms Top-K proxy). Deterministic given ``--seed`` (numpy + torch seeds, single
thread, deterministic algorithms); exact bitwise reproducibility also assumes the same torch
build and CPU.

Export: ``nir.NIRGraph`` written with ``nir.write`` exactly as sinabs exports such a network:
Conv2d nodes with zero biases, ``nir.IF(r=1, v_threshold=1, v_reset=0)`` per layer with the
layer's output shape, SumPool2d, Flatten(start_dim=0), Affine with zero biases.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np

import nir
import tonic
import torch
import torch.nn.functional as F


def nmnist_folder() -> str:
    """The default ``--data``: ``$EVSIM_SHARED_DATA/nmnist-train1k`` (``shared/data`` next to the
    repository when the variable is unset), as ``benchmarks/_machine.nmnist_folder``."""
    shared = os.environ.get("EVSIM_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
    return str(Path(shared) / "nmnist-train1k")


THETA = 1.0
SENSOR_P, SENSOR_H, SENSOR_W = 2, 34, 34
N_CLASSES = 10
# (bin width in ms or None for one whole-recording bin, sampling weight)
BIN_CHOICES = [(0.5, 1.0), (1.0, 1.5), (2.0, 1.0), (5.0, 1.0), (10.0, 1.0), (20.0, 1.0),
               (50.0, 0.5), (None, 1.0)]
MAX_SHIFT = 3          # pixels, random translation in x and y
MAX_DROP = 0.2         # max fraction of events dropped
OUT_TEMP = 4.0        # loss logits = output spike counts / OUT_TEMP
SURROGATE_WIDTH = 0.5  # PeriodicExponential grad_width
REG_LAMBDA = 0.01      # per 1e6 SynOps per sample
BATCH = 16
WARMUP_EPOCHS = 1
MAX_FRAMES_PER_CHUNK = 12800   # T * sub-batch, bounds memory (gradients are accumulated)
PREFIX_WEIGHT = 0.7    # loss weight of the accumulated output after every bin (anytime loss)
RCS_LAMBDA = 1.0       # cosine-similarity (RCS-style) regulariser on the accumulated output
CROP_PROB = 0.5        # probability that a mini-batch is cut to a random prefix ...
CROP_MIN = 0.15        # ... of uniform(CROP_MIN, 1) x each recording's duration
W_MAX = 0.99           # weights are clamped to [-W_MAX, W_MAX] after every step (|w| < theta)




def keep_freed_memory():
    """Speed only: stop glibc from returning large freed blocks to the OS (M_MMAP_MAX=0,
    M_TRIM_THRESHOLD=1 GiB), so the ~100 MB activation tensors of every step are recycled
    instead of being page-faulted in again (about 2x faster training on CPU). No-op elsewhere.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-4, 0)        # M_MMAP_MAX
        libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass


# ----------------------------------------------------------------------------- data


def make_split(root: Path) -> dict:
    """Deterministic split by sorted index within each label folder."""
    split = {"train": [], "calibration": [], "test": []}
    for label in sorted(os.listdir(root), key=lambda s: (len(s), s)):
        d = root / label
        if not d.is_dir() or not label.isdigit():
            continue
        names = sorted(n for n in os.listdir(d) if n.endswith(".bin"))
        for i, name in enumerate(names):
            rel = f"{label}/{name}"
            if i % 10 <= 6:
                split["train"].append(rel)
            elif i % 10 == 7:
                split["calibration"].append(rel)
            else:
                split["test"].append(rel)
    return split


def load_samples(root: Path, relpaths: list[str]):
    """Return a list of (t_us relative to first event, p, y, x) int arrays and the labels."""
    samples, labels = [], []
    for rel in relpaths:
        ev = tonic.io.read_mnist_file(str(root / rel), dtype=tonic.io.events_struct)
        order = np.argsort(ev["t"], kind="stable")
        ev = ev[order]
        t = ev["t"].astype(np.int64)
        samples.append(np.stack([t - t[0], ev["p"].astype(np.int64),
                                 ev["y"].astype(np.int64), ev["x"].astype(np.int64)]))
        labels.append(int(rel.split("/")[0]))
    return samples, np.asarray(labels, dtype=np.int64)


def bin_batch(samples, width_ms, rng=None) -> np.ndarray:
    """Bin a list of samples into a dense (T, B, 2, 34, 34) float32 count tensor.

    ``width_ms=None`` gives a single bin. With ``rng`` the samples are augmented (random shift,
    random event dropping); without it they are binned as recorded.
    """
    idx_all, bins = [], []
    for b, s in enumerate(samples):
        t, p, y, x = s
        if rng is not None:
            keep = rng.random(t.shape[0]) >= rng.uniform(0.0, MAX_DROP)
            dx, dy = rng.integers(-MAX_SHIFT, MAX_SHIFT + 1, size=2)
            x = x + dx
            y = y + dy
            keep &= (x >= 0) & (x < SENSOR_W) & (y >= 0) & (y < SENSOR_H)
            t, p, y, x = t[keep], p[keep], y[keep], x[keep]
        k = np.zeros_like(t) if width_ms is None else t // int(round(width_ms * 1000))
        bins.append(k)
        idx_all.append((b, k, p * SENSOR_H * SENSOR_W + y * SENSOR_W + x))
    T = int(max((k.max() if k.size else 0) for k in bins)) + 1
    B = len(samples)
    npix = SENSOR_P * SENSOR_H * SENSOR_W
    flat = np.concatenate([(k * B + b) * npix + pix for b, k, pix in idx_all])
    counts = np.bincount(flat, minlength=T * B * npix).astype(np.float32)
    return counts.reshape(T, B, SENSOR_P, SENSOR_H, SENSOR_W)


# ----------------------------------------------------------------------------- neuron


def periodic_exponential(v: torch.Tensor, theta: float = THETA, width: float = 0.5) -> torch.Tensor:
    """sinabs.activation.PeriodicExponential surrogate (grad_scale 1).

    Equals exp(-d / width) / theta with d = theta - v for v < theta and d = the distance from v
    to the nearest multiple of theta for v >= theta (written with few temporaries for speed).
    """
    d = torch.div(v, theta).round_().mul_(theta)
    torch.sub(v, d, out=d).abs_()
    d = torch.where(v >= theta, d, theta - v)
    return d.mul_(-1.0 / width).exp_().div_(theta)


class IFFunction(torch.autograd.Function):
    """IF recurrence over time. x: (T, N) input currents -> (T, N) spike counts."""

    @staticmethod
    def forward(ctx, x, theta):
        # All per-step work writes into preallocated buffers: fresh per-step temporaries of a
        # few hundred kB each are mmap'ed/unmapped by malloc and dominate the run time on CPU.
        T = x.shape[0]
        vs = torch.empty_like(x)   # membrane potential after integration, before spiking
        out = torch.empty_like(x)  # spikes
        u = torch.zeros_like(x[0])  # membrane potential after reset and floor
        tmp = torch.empty_like(u)
        for t in range(T):
            v, s = vs[t], out[t]
            torch.add(u, x[t], out=v)
            torch.div(v, theta, out=s).floor_().clamp_(min=0.0)
            torch.mul(s, theta, out=tmp)
            torch.sub(v, tmp, out=u).clamp_(min=-theta)
        ctx.save_for_backward(vs, out)
        ctx.theta = theta
        return out

    @staticmethod
    def backward(ctx, grad_out):
        # Exact BPTT of the recurrence above with the surrogate ds/dv = sg(v):
        #   dL/dv_t = dL/ds_t * sg(v_t) + dL/du_t * (1 - sg(v_t)) * [v_t - s_t*theta > -theta]
        #   dL/du_t = dL/dv_{t+1},  dL/dx_t = dL/dv_t.
        # Computed step by step on cache-sized vectors with preallocated buffers.
        vs, out = ctx.saved_tensors
        theta = ctx.theta
        grad_out = grad_out.contiguous()
        gx = torch.empty_like(vs)
        g = torch.zeros_like(vs[0])
        d = torch.empty_like(g)
        e = torch.empty_like(g)
        m = torch.empty(g.shape, dtype=torch.bool)
        for t in range(vs.shape[0] - 1, -1, -1):
            v, s = vs[t], out[t]
            # surrogate (sinabs PeriodicExponential, width 0.5), see periodic_exponential()
            torch.div(v, theta, out=d).round_().mul_(theta)
            torch.sub(v, d, out=d).abs_()
            torch.neg(v, out=e).add_(theta)
            torch.ge(v, theta, out=m)
            torch.where(m, d, e, out=d)
            d.mul_(-1.0 / SURROGATE_WIDTH).exp_().div_(theta)
            # b = (1 - sg) * [v - s*theta > -theta]
            torch.mul(s, theta, out=e)
            torch.sub(v, e, out=e)
            torch.gt(e, -theta, out=m)
            torch.neg(d, out=e).add_(1.0).mul_(m)
            # a = dL/ds * sg ;  g <- a + g * b
            d.mul_(grad_out[t])
            g = torch.addcmul(d, g, e, out=gx[t])
        return gx, None


def if_layer(x: torch.Tensor, theta: float = THETA) -> torch.Tensor:
    """x: (T, B, *shape) -> spikes of the same shape."""
    T = x.shape[0]
    return IFFunction.apply(x.reshape(T, -1).contiguous(), theta).reshape(x.shape)


@torch.no_grad()
def if_layer_nograd(x: torch.Tensor, theta) -> torch.Tensor:
    """Inference-only IF (theta may be a tensor of the per-neuron shape)."""
    out = torch.empty_like(x)
    u = torch.zeros_like(x[0])
    for t in range(x.shape[0]):
        v = u + x[t]
        s = torch.clamp(torch.floor(v / theta), min=0.0)
        out[t] = s
        u = torch.maximum(v - s * theta, -theta * torch.ones_like(v))
    return out


# ----------------------------------------------------------------------------- model

LAYERS = [  # name, kind, params
    ("conv1", "conv", dict(cin=2, cout=16, k=5, stride=2, padding=1, in_hw=(34, 34))),
    ("iaf1", "if", dict(shape=(16, 16, 16))),
    ("conv2", "conv", dict(cin=16, cout=16, k=3, stride=1, padding=1, in_hw=(16, 16))),
    ("iaf2", "if", dict(shape=(16, 16, 16))),
    ("pool1", "sumpool", dict(k=2)),
    ("conv3", "conv", dict(cin=16, cout=8, k=3, stride=1, padding=1, in_hw=(8, 8))),
    ("iaf3", "if", dict(shape=(8, 8, 8))),
    ("pool2", "sumpool", dict(k=2)),
    ("flatten", "flatten", dict(shape=(8, 4, 4))),
    ("fc1", "fc", dict(cin=128, cout=256)),
    ("iaf4", "if", dict(shape=(256,))),
    ("fc2", "fc", dict(cin=256, cout=10)),
    ("iaf5", "if", dict(shape=(10,))),
]
# Synaptic fan-out of each IF layer's spikes (for the SynOps regulariser / report).
FANOUT = {"iaf1": 16 * 9, "iaf2": 8 * 9, "iaf3": 256, "iaf4": 10, "iaf5": 0}


class SNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.ParameterDict()
        for name, kind, p in LAYERS:
            if kind == "conv":
                w = torch.empty(p["cout"], p["cin"], p["k"], p["k"])
            elif kind == "fc":
                w = torch.empty(p["cout"], p["cin"])
            else:
                continue
            fan_in = w[0].numel()
            torch.nn.init.normal_(w, 0.0, math.sqrt(2.0 / fan_in))
            self.w[name] = torch.nn.Parameter(w)

    def forward(self, x: torch.Tensor, record: bool = False, steps: bool = False):
        """x: (T, B, 2, 34, 34) -> output spike counts (B, 10) [, per-layer spike sums (B,)]
        [, per-step output spikes (T, B, 10) if ``steps``].

        Spatial activations are kept as (T, B, H, W, C) so that the convolutions run on
        channels-last tensors (several times faster on CPU) and the IF recurrence on
        contiguous memory.
        """
        T, B = x.shape[:2]
        x = x.permute(0, 1, 3, 4, 2)
        layer_counts = {}

        def nchw(a):  # (T, B, H, W, C) -> channels-last (T*B, C, H, W) view
            return a.reshape(T * B, *a.shape[2:]).permute(0, 3, 1, 2)

        def thwc(a):  # (T*B, C, H, W) -> (T, B, H, W, C)
            a = a.permute(0, 2, 3, 1)
            return a.reshape(T, B, *a.shape[1:])

        for name, kind, p in LAYERS:
            if kind == "conv":
                x = thwc(F.conv2d(nchw(x), self.w[name], stride=p["stride"], padding=p["padding"]))
            elif kind == "fc":
                x = x @ self.w[name].t()
            elif kind == "sumpool":
                x = thwc(F.avg_pool2d(nchw(x), p["k"]) * (p["k"] ** 2))
            elif kind == "flatten":
                x = x.permute(0, 1, 4, 2, 3).reshape(T, B, -1)  # (c, h, w) order
            elif kind == "if":
                x = if_layer(x)
                layer_counts[name] = x.reshape(T, B, -1).sum(dim=(0, 2))
        out = x.sum(0)
        if steps:
            return out, layer_counts, x
        return (out, layer_counts) if record else out


# ----------------------------------------------------------------------------- NIR


def export_nir(model: SNN, path: Path, metadata: dict | None = None) -> nir.NIRGraph:
    nodes = {"input": nir.Input(input_type=np.array([SENSOR_P, SENSOR_H, SENSOR_W]))}
    for name, kind, p in LAYERS:
        if kind == "conv":
            w = model.w[name].detach().cpu().numpy().astype(np.float32)
            nodes[name] = nir.Conv2d(
                input_shape=tuple(p["in_hw"]), weight=w, stride=(p["stride"],) * 2,
                padding=(p["padding"],) * 2, dilation=(1, 1), groups=1,
                bias=np.zeros(p["cout"], dtype=np.float32))
        elif kind == "fc":
            w = model.w[name].detach().cpu().numpy().astype(np.float32)
            nodes[name] = nir.Affine(weight=w, bias=np.zeros(p["cout"], dtype=np.float32))
        elif kind == "if":
            shape = p["shape"]
            nodes[name] = nir.IF(r=np.ones(shape, dtype=np.float32),
                                 v_threshold=np.full(shape, THETA, dtype=np.float32),
                                 v_reset=np.zeros(shape, dtype=np.float32))
        elif kind == "sumpool":
            nodes[name] = nir.SumPool2d(kernel_size=np.array([p["k"]] * 2),
                                        stride=np.array([p["k"]] * 2),
                                        padding=np.array([0, 0]))
        elif kind == "flatten":
            nodes[name] = nir.Flatten(input_type={"input": np.array(p["shape"])},
                                      start_dim=0, end_dim=-1)
    nodes["output"] = nir.Output(output_type=np.array([N_CLASSES]))
    names = list(nodes)
    edges = [(names[i], names[i + 1]) for i in range(len(names) - 1)]
    graph = nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata or {})
    nir.write(str(path), graph)
    return graph


def sequential_nodes(graph: nir.NIRGraph) -> list[tuple[str, nir.NIRNode]]:
    """Order the nodes of a chain graph from its Input to its Output."""
    succ = {}
    for a, b in graph.edges:
        if a in succ:
            raise ValueError(f"node {a} has several successors; only chains are supported")
        succ[a] = b
    (start,) = [k for k, n in graph.nodes.items() if isinstance(n, nir.Input)]
    order, cur = [], start
    while cur in succ:
        cur = succ[cur]
        order.append((cur, graph.nodes[cur]))
    return order


class NIRClockModel:
    """Clock-driven interpreter of a chain NIR graph with torch (independent of ``SNN``).

    Supports Conv2d, SumPool2d, Flatten, Affine/Linear and IF (read as sinabs IAFSqueeze:
    MultiSpike, subtract reset, floor at -v_threshold; r must be 1 and v_reset 0).
    """

    def __init__(self, graph: nir.NIRGraph):
        self.layers = []
        for name, node in sequential_nodes(graph):
            if isinstance(node, nir.Output):
                break
            self.layers.append((name, node))
            if isinstance(node, nir.IF):
                if not (np.all(node.r == 1) and np.all(node.v_reset == 0)):
                    raise ValueError(f"{name}: only r=1, v_reset=0 IF neurons are supported")

    @torch.no_grad()
    def run(self, x: torch.Tensor, steps: bool = False):
        """x: (T, B, C, H, W) -> output counts (B, n_out), {IF layer: spikes per sample (B,)}
        [, per-step output spikes (T, B, n_out) if ``steps``]."""
        T, B = x.shape[:2]
        counts = {}
        for name, node in self.layers:
            if isinstance(node, nir.Conv2d):
                w = torch.from_numpy(np.asarray(node.weight, dtype=np.float32))
                bias = torch.from_numpy(np.asarray(node.bias, dtype=np.float32))
                y = F.conv2d(x.reshape(T * B, *x.shape[2:]), w, bias,
                             stride=tuple(int(s) for s in node.stride),
                             padding=tuple(int(s) for s in node.padding),
                             dilation=tuple(int(s) for s in node.dilation),
                             groups=int(node.groups))
                x = y.reshape(T, B, *y.shape[1:])
            elif isinstance(node, nir.SumPool2d):
                k = tuple(int(v) for v in node.kernel_size)
                y = F.avg_pool2d(x.reshape(T * B, *x.shape[2:]), k,
                                 stride=tuple(int(v) for v in node.stride),
                                 padding=tuple(int(v) for v in node.padding),
                                 count_include_pad=True) * (k[0] * k[1])
                x = y.reshape(T, B, *y.shape[1:])
            elif isinstance(node, nir.Flatten):
                nd = len(node.input_type["input"])
                start = node.start_dim % nd + 2
                end = node.end_dim % nd + 2
                x = torch.flatten(x, start, end)
            elif isinstance(node, (nir.Affine, nir.Linear)):
                w = torch.from_numpy(np.asarray(node.weight, dtype=np.float32))
                x = x @ w.t()
                if isinstance(node, nir.Affine):
                    x = x + torch.from_numpy(np.asarray(node.bias, dtype=np.float32))
            elif isinstance(node, nir.IF):
                theta = torch.from_numpy(np.asarray(node.v_threshold, dtype=np.float32))
                x = if_layer_nograd(x, theta)
                counts[name] = x.reshape(T, B, -1).sum(dim=(0, 2))
            else:
                raise ValueError(f"unsupported node {name}: {type(node).__name__}")
        return (x.sum(0), counts, x) if steps else (x.sum(0), counts)


def predict(counts: np.ndarray) -> np.ndarray:
    return np.argmax(counts, axis=1)  # numpy: first maximal index wins ties


def chunk_size(T: int, B: int) -> int:
    return max(1, min(B, MAX_FRAMES_PER_CHUNK // max(T, 1)))


ANYTIME_FRACTIONS = (0.1, 0.2, 0.33, 0.5, 1.0)
TOPK_BETAS = tuple(range(1, 61))


def anytime_clock(trajs, labels, fractions=ANYTIME_FRACTIONS, betas=TOPK_BETAS) -> dict:
    """Clock-driven anytime figures from per-sample trajectories ``(cum (T, 10), frac (T,))``:
    ``cum[t]`` is the accumulated output after bin ``t``, ``frac[t]`` the fraction of the
    recording's events consumed by then. A prediction needs at least one output spike (an
    all-zero output counts as wrong, as in evsim).

    - ``accuracy_at_fraction``: accuracy of the state after the first bin that completes
      ``f`` of the events (slightly more than ``f`` with wide bins);
    - ``topk_sweep``: a global Top-K cutoff (decide at the end of the first bin where
      top1 - top2 >= beta, else at the end): accuracy and mean events fraction per beta.
    This is only a training-time proxy; the real figures come from ``evsim eval``.
    """
    acc_f = {f: 0 for f in fractions}
    sweep = {b: [0, 0.0] for b in betas}
    for (cum, frac), y in zip(trajs, labels):
        active = cum.max(axis=1) > 0
        pred = np.where(active, np.argmax(cum, axis=1), -1)
        top = np.sort(cum, axis=1)
        gap = np.where(active, top[:, -1] - top[:, -2], 0.0)
        for f in fractions:
            t = min(int(np.searchsorted(frac, f - 1e-9)), len(frac) - 1)
            acc_f[f] += int(pred[t] == y)
        gmax = np.maximum.accumulate(gap)
        for b in betas:
            t = int(np.searchsorted(gmax, b))   # first bin with gap >= b (gmax is sorted)
            if t < len(gap):
                sweep[b][0] += int(pred[t] == y)
                sweep[b][1] += float(frac[t])
            else:
                sweep[b][0] += int(pred[-1] == y)
                sweep[b][1] += 1.0
    n = max(len(trajs), 1)
    return {
        "accuracy_at_fraction": {f"{f:g}": acc_f[f] / n for f in fractions},
        "topk_sweep": [{"beta": b, "accuracy": v[0] / n, "mean_events_fraction": v[1] / n}
                       for b, v in sweep.items()],
    }


def best_tradeoff(sweep, full_acc, max_drop=0.01):
    """Smallest mean events fraction of a sweep whose accuracy is >= full_acc - max_drop."""
    ok = [r for r in sweep if r["accuracy"] >= full_acc - max_drop - 1e-12]
    return min(ok, key=lambda r: r["mean_events_fraction"]) if ok else None


def evaluate_clock(run_fn, samples, labels, width_ms, batch=50, anytime=False):
    """Clock-driven accuracy of ``run_fn`` ((T,B,...) -> counts, layer counts) at one width.

    With ``anytime`` the function is called with ``steps=True`` and must also return the
    per-step output; the result then also holds the figures of :func:`anytime_clock`.
    """
    preds, layer_tot, ties, zero_out = [], {}, 0, 0
    trajs = []
    for i in range(0, len(samples), batch):
        frames = torch.from_numpy(bin_batch(samples[i:i + batch], width_ms))
        T, B = frames.shape[:2]
        cs = chunk_size(T, B)
        for j in range(0, B, cs):
            if anytime:
                out, lc, st = run_fn(frames[:, j:j + cs], steps=True)
                cum = st.detach().reshape(T, st.shape[1], -1).cumsum(0).numpy()
                ev = frames[:, j:j + cs].sum(dim=(2, 3, 4)).cumsum(0).numpy()
                ev = ev / np.maximum(ev[-1:], 1)
                trajs.extend((cum[:, k], ev[:, k]) for k in range(cum.shape[1]))
            else:
                out, lc = run_fn(frames[:, j:j + cs])
            out = out.detach().numpy()
            preds.append(predict(out))
            top = np.sort(out, axis=1)
            ties += int(np.sum(top[:, -1] == top[:, -2]))
            zero_out += int(np.sum(out.max(axis=1) == 0))
            for k, v in lc.items():
                layer_tot[k] = layer_tot.get(k, 0.0) + float(v.sum())
    preds = np.concatenate(preds)
    n = len(samples)
    res = {
        "accuracy": float(np.mean(preds == labels)),
        "n": n,
        "ties_in_output": ties,
        "silent_output": zero_out,
        "mean_spikes_per_sample": {k: v / n for k, v in layer_tot.items()},
    }
    if anytime:
        res.update(anytime_clock(trajs, labels))
    return res


def width_label(w) -> str:
    return "single" if w is None else f"{w:g}ms"


def parse_width(s: str):
    return None if s in ("single", "none", "whole") else float(s)


# ----------------------------------------------------------------------------- train


def train(args):
    t_start = time.time()
    keep_freed_memory()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    rng = np.random.default_rng(args.seed)
    root = Path(args.data)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)

    split = make_split(root)
    with open(out_dir / "split.json", "w") as f:
        json.dump(split, f, indent=1)
    print({k: len(v) for k, v in split.items()}, flush=True)
    tr_x, tr_y = load_samples(root, split["train"])
    ca_x, ca_y = load_samples(root, split["calibration"])
    te_x, te_y = load_samples(root, split["test"])

    model = SNN()
    if args.init_from:  # fine-tune an exported model instead of starting from He-normal init
        g = nir.read(args.init_from)
        with torch.no_grad():
            for name in model.w:
                model.w[name].copy_(torch.from_numpy(np.asarray(g.nodes[name].weight,
                                                                dtype=np.float32)))
    params = list(model.parameters())
    opt = torch.optim.Adam(params, lr=args.lr)
    n_batches = math.ceil(len(tr_x) / BATCH)
    total_steps = args.epochs * n_batches
    warm = n_batches * WARMUP_EPOCHS

    def lr_factor(step):  # linear warm-up, then cosine decay to 0
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * min(step - warm, total_steps - warm)
                                   / max(total_steps - warm, 1)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    widths = [w for w, _ in BIN_CHOICES]
    probs = np.array([p for _, p in BIN_CHOICES])
    probs = probs / probs.sum()

    def run_train_model(frames, steps=False):
        with torch.no_grad():
            return model(frames, record=True, steps=steps)

    history = []
    for epoch in range(args.epochs):
        t_ep = time.time()
        model.train()
        perm = rng.permutation(len(tr_x))
        tot_loss = tot_ce = tot_reg = tot_cef = tot_cep = tot_rcs = 0.0
        correct = 0
        per_width = {}
        for bi in range(n_batches):
            idx = perm[bi * BATCH:(bi + 1) * BATCH]
            w = widths[rng.choice(len(widths), p=probs)]
            batch_x = [tr_x[i] for i in idx]
            if rng.random() < args.crop_prob:  # random temporal crop: a prefix of the batch
                c = rng.uniform(args.crop_min, 1.0)
                batch_x = [s[:, s[0] <= c * s[0, -1]] for s in batch_x]
            frames = torch.from_numpy(bin_batch(batch_x, w, rng))
            labels = torch.from_numpy(tr_y[idx])
            T, B = frames.shape[:2]
            cs = chunk_size(T, B)
            opt.zero_grad(set_to_none=True)
            for j in range(0, B, cs):
                fr = frames[:, j:j + cs]
                y = labels[j:j + cs]
                b = fr.shape[1]
                out, lc, st = model(fr, record=True, steps=True)
                cum = st.cumsum(0)                                    # (T, b, 10)
                ce_t = F.cross_entropy((cum / OUT_TEMP).reshape(T * b, -1), y.repeat(T),
                                       reduction="none").reshape(T, b)
                # weight of the state after bin t = fraction of the sample's events in bin t
                ev = fr.sum(dim=(2, 3, 4))
                df = ev / ev.sum(0, keepdim=True).clamp(min=1.0)
                ce_final = ce_t[-1].sum() / B
                ce_prefix = (ce_t * df).sum() / B
                ce = (1.0 - args.prefix_weight) * ce_final + args.prefix_weight * ce_prefix
                # cosine similarity between the accumulated output and the one-hot label,
                # (1 spike added to the norm so that a silent output has a finite gradient)
                cos_t = cum.gather(2, y.view(1, b, 1).expand(T, b, 1)).squeeze(2) / (
                    cum.norm(dim=2) + 1.0)
                rcs = ((1.0 - cos_t) * df).sum() / B
                synops = sum(lc[k] * FANOUT[k] for k in lc).sum() / B / 1e6
                loss = ce + args.rcs * rcs + args.reg * synops
                loss.backward()
                tot_ce += ce.item() * B
                tot_cef += ce_final.item() * B
                tot_cep += ce_prefix.item() * B
                tot_rcs += rcs.item() * B
                tot_reg += synops.item() * B
                tot_loss += loss.item() * B
                pred = predict(out.detach().numpy())
                ok = int(np.sum(pred == labels[j:j + cs].numpy()))
                correct += ok
                pw = per_width.setdefault(width_label(w), [0, 0])
                pw[0] += ok
                pw[1] += len(pred)
            opt.step()
            sched.step()
            with torch.no_grad():  # keep every |w| < theta (one spike per input event at most)
                for prm in params:
                    prm.clamp_(-W_MAX, W_MAX)
        n = len(tr_x)
        model.eval()
        cal = evaluate_clock(run_train_model, ca_x, ca_y, 1.0, anytime=True)
        cal_single = evaluate_clock(run_train_model, ca_x, ca_y, None)
        best = best_tradeoff(cal["topk_sweep"], cal["accuracy"])
        rec = {
            "epoch": epoch + 1,
            "loss": tot_loss / n,
            "ce": tot_ce / n,
            "ce_final": tot_cef / n,
            "ce_prefix": tot_cep / n,
            "rcs": tot_rcs / n,
            "synops_millions_per_sample": tot_reg / n,
            "train_acc_augmented_mixed_bins": correct / n,
            "train_acc_by_width": {k: v[0] / v[1] for k, v in per_width.items()},
            "calibration_acc_1ms": cal["accuracy"],
            "calibration_acc_single": cal_single["accuracy"],
            "calibration_mean_spikes_1ms": cal["mean_spikes_per_sample"],
            "calibration_acc_at_fraction_1ms": cal["accuracy_at_fraction"],
            "calibration_topk_best_1ms": best,
            "lr": sched.get_last_lr()[0],
            "seconds": time.time() - t_ep,
        }
        history.append(rec)
        print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v)
                          for k, v in rec.items() if not isinstance(v, dict)}),
              "spk", {k: round(v, 1) for k, v in cal["mean_spikes_per_sample"].items()},
              "acc@frac", cal["accuracy_at_fraction"], "best", best, flush=True)
    train_seconds = time.time() - t_start

    # Export, read back, and evaluate the exported graph with the independent interpreter.
    nir_path = out_dir / "model.nir"
    export_nir(model, nir_path, metadata={
        "description": "evsim reference N-MNIST CNN (IF, theta=1, subtract reset as sinabs)",
        "seed": args.seed})
    graph = nir.read(str(nir_path))
    interp = NIRClockModel(graph)

    # Sanity check: the interpreter of the exported file matches the training model.
    frames = torch.from_numpy(bin_batch(te_x[:8], 1.0))
    a, _ = interp.run(frames)
    b, _ = run_train_model(frames)
    max_diff = float((a - b).abs().max())
    print("exported-vs-trained max output count difference (8 test samples, 1 ms):", max_diff)

    eval_widths = [float(w) if w != "single" else None for w in args.eval_bins]
    results = {}
    for w in eval_widths:
        results[width_label(w)] = {
            "test": evaluate_clock(interp.run, te_x, te_y, w, anytime=True),
            "calibration": evaluate_clock(interp.run, ca_x, ca_y, w, anytime=True),
        }
        print(width_label(w), "test", results[width_label(w)]["test"]["accuracy"],
              "calibration", results[width_label(w)]["calibration"]["accuracy"], flush=True)
    spikes_1ms = results["1ms"]["test"]["mean_spikes_per_sample"]
    synops_1ms = sum(spikes_1ms[k] * FANOUT[k] for k in spikes_1ms)
    input_events = float(np.mean([s.shape[1] for s in te_x]))
    metrics = {
        "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "seed": args.seed,
        "epochs": args.epochs,
        "lr": args.lr,
        "batch_size": BATCH,
        "warmup_epochs": WARMUP_EPOCHS,
        "out_temp": OUT_TEMP,
        "surrogate": f"PeriodicExponential(grad_width={SURROGATE_WIDTH}, grad_scale=1)",
        "bin_choices_ms": [[w, p] for w, p in BIN_CHOICES],
        "augmentation": {"max_shift_px": MAX_SHIFT, "max_drop_fraction": MAX_DROP},
        "reg_lambda_per_1e6_synops": args.reg,
        "prefix_weight": args.prefix_weight,
        "rcs_lambda": args.rcs,
        "crop_prob": args.crop_prob,
        "crop_min": args.crop_min,
        "w_max": W_MAX,
        "init_from": args.init_from,
        "max_abs_weight": float(max(p.detach().abs().max() for p in params)),
        "split_counts": {k: len(v) for k, v in split.items()},
        "torch_version": torch.__version__,
        "nir_version": getattr(nir, "__version__", "unknown"),
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "torch_threads": torch.get_num_threads(),
        "train_wall_seconds": train_seconds,
        "total_wall_seconds": time.time() - t_start,
        "exported_vs_trained_max_abs_diff": max_diff,
        "history": history,
        "clock_driven": results,
        "test_accuracy_by_bin": {k: v["test"]["accuracy"] for k, v in results.items()},
        "mean_spikes_per_layer_per_sample_1ms_test": spikes_1ms,
        "mean_input_events_per_sample_test": input_events,
        "mean_synops_per_sample_1ms_test": synops_1ms,
    }
    with open(out_dir / "training_metrics.json", "w") as f:
        json.dump(metrics, f, indent=1)
    print(json.dumps(metrics["test_accuracy_by_bin"]), "spikes@1ms", spikes_1ms)


def evaluate(args):
    keep_freed_memory()
    torch.set_num_threads(1)
    root = Path(args.data)
    with open(args.split) as f:
        split = json.load(f)
    graph = nir.read(args.nir)
    interp = NIRClockModel(graph)
    res = {}
    for part in args.parts:
        xs, ys = load_samples(root, split[part])
        for w in args.bins:
            r = evaluate_clock(interp.run, xs, ys, parse_width(w), anytime=True)
            res.setdefault(part, {})[width_label(parse_width(w))] = r
            print(f"{part:12s} {width_label(parse_width(w)):>7s} acc={r['accuracy']:.4f} "
                  f"(n={r['n']}, ties={r['ties_in_output']}, silent={r['silent_output']}) "
                  f"spikes/sample={ {k: round(v, 1) for k, v in r['mean_spikes_per_sample'].items()} }",
                  flush=True)
            if args.anytime:
                best = best_tradeoff(r["topk_sweep"], r["accuracy"])
                print(f"{'':12s} {'':>7s} acc@events-fraction "
                      f"{ {k: round(v, 3) for k, v in r['accuracy_at_fraction'].items()} }  "
                      f"Top-K (global beta, chosen on this split: optimistic) within 1 point: "
                      f"{best}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train, export to NIR, evaluate clock-driven")
    t.add_argument("--data", default=nmnist_folder())
    t.add_argument("--out", default="evsim/bundled/nmnist_cnn")
    t.add_argument("--epochs", type=int, default=50)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--prefix-weight", type=float, default=PREFIX_WEIGHT,
                   help="weight of the loss on the accumulated output after every bin "
                        "(1 - this weight goes to the loss at the end of the recording)")
    t.add_argument("--rcs", type=float, default=RCS_LAMBDA,
                   help="weight of the cosine-similarity (RCS-style) regulariser")
    t.add_argument("--crop-prob", type=float, default=CROP_PROB,
                   help="probability that a mini-batch is cut to a random prefix")
    t.add_argument("--crop-min", type=float, default=CROP_MIN,
                   help="shortest prefix, as a fraction of each recording's duration")
    t.add_argument("--reg", type=float, default=REG_LAMBDA,
                   help="weight of the SynOps regulariser, per 1e6 SynOps per sample")
    t.add_argument("--init-from", default=None,
                   help="start from the weights of this .nir file (fine-tuning; not used for "
                        "the bundled model)")
    t.add_argument("--eval-bins", nargs="+", default=["0.5", "1", "2", "5", "10", "20", "50",
                                                      "single"])
    e = sub.add_parser("evaluate", help="clock-driven accuracy of an exported .nir file")
    e.add_argument("--data", default=nmnist_folder())
    e.add_argument("--nir", default="evsim/bundled/nmnist_cnn/model.nir")
    e.add_argument("--split", default="evsim/bundled/nmnist_cnn/split.json")
    e.add_argument("--parts", nargs="+", default=["test"])
    e.add_argument("--bins", nargs="+", default=["1", "5", "20", "single"],
                   help="bin widths in ms, or 'single' for one whole-recording bin")
    e.add_argument("--json", default=None, help="also write the results to this JSON file")
    e.add_argument("--anytime", action="store_true",
                   help="also print the accuracy after 10/20/33/50 %% of the events and the "
                        "clock-driven Top-K cutoff proxy")
    args = ap.parse_args(argv)
    if args.cmd == "train":
        if "1" not in args.eval_bins and "1.0" not in args.eval_bins:
            args.eval_bins.append("1")
        train(args)
    else:
        evaluate(args)


if __name__ == "__main__":
    main()

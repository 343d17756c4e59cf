"""Event-engine throughput on a DVS-Gesture-size VGG and a ResNet-style graph, one core.

One command::

    python benchmarks/bench_vgg.py [--events 100000] [--repeats 3] [--json FILE]

Built here with ``nir`` (nothing is read from disk):

- **vgg**: Input 2×128×128 → 8 × (Conv 3×3 p1, IF) with 32, 64, 128, 128, 256, 256, 256, 256
  channels, a SumPool 2 after layers 2, 4, 6 and 8 (128 → 8 px) → Flatten → Linear 16384 → 11 → IF.
  The first conv has stride 2 (128 → 64 px), as DVS-Gesture VGGs downsample early.
- **resnet**: the same stem, then residual blocks: IF_a → Conv → IF_b → Conv → IF_c with a skip
  edge IF_a → IF_c (two edges into one neuron node: their inputs add), at 64, 128, 256 channels,
  pools between the stages, and the same head.

Weights: random normal, per layer mean ``gain · θ / n_targets`` (n_targets = kh·kw·C_out/stride²,
the targets of one input spike) and standard deviation of the same size, so that a spike of the
layer below adds on average ``gain`` thresholds' worth of input to its targets in total: the layers neither die out nor run away (IF neurons, the
``speck`` profile: θ = 1, reset by subtraction, floor at −θ); the spike counts per layer are
printed. Input: a synthetic moving object (a ring of radius 12 px circling the field of view;
each event a random point on the ring, ON on the leading half, OFF on the trailing one),
``--events`` events over 1 s.

The figure: SynOps per second of ``Simulator.run`` (reset, validation, the compiled loop),
median of ``--repeats`` runs after a warm-up, process CPU time (the machine may be shared; wall
time is reported too); the process pins itself to one core.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

THETA = 1.0


def moving_object(n_events: int, size: int = 128, seed: int = 0) -> np.ndarray:
    """A ring circling the field of view: n_events events over 1 s, sorted by time."""
    import evsim

    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, 1_000_000, n_events))
    phase = 2 * np.pi * t / 1_000_000 * 2  # two turns
    cx = size / 2 + size * 0.3 * np.cos(phase)
    cy = size / 2 + size * 0.3 * np.sin(phase)
    vx, vy = -np.sin(phase), np.cos(phase)  # direction of motion
    a = rng.uniform(0, 2 * np.pi, n_events)
    r = 12 + rng.normal(0, 0.7, n_events)
    x = np.clip(np.round(cx + r * np.cos(a)), 0, size - 1).astype(np.int64)
    y = np.clip(np.round(cy + r * np.sin(a)), 0, size - 1).astype(np.int64)
    p = (np.cos(a) * vx + np.sin(a) * vy > 0).astype(np.int64)
    return evsim.make_events(t, x, y, p)


def _conv(rng, c_in, c_out, gain, stride=1):
    import nir

    k = 3
    mean = gain * THETA / (k * k * c_out / stride**2)  # targets of one input spike (away from edges)
    w = rng.normal(mean, mean, (c_out, c_in, k, k))
    return nir.Conv2d(input_shape=None, weight=w, stride=stride, padding=1, dilation=1, groups=1,
                      bias=np.zeros(c_out))


def _if(shape):
    import nir

    return nir.IF(r=np.ones(shape), v_threshold=np.full(shape, THETA), v_reset=np.zeros(shape))


def _pool():
    import nir

    return nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0]))


def vgg_graph(seed: int = 0, gain: float = 1.4):
    """The VGG described in the module docstring (NIR shapes C, H, W)."""
    import nir

    rng = np.random.default_rng(seed)
    nodes = {"input": nir.Input(input_type={"input": np.array([2, 128, 128])})}
    edges = []
    prev, c, hw = "input", 2, 128
    plan = [(32, 2, False), (64, 1, True), (128, 1, False), (128, 1, True),
            (256, 1, False), (256, 1, True), (256, 1, False), (256, 1, True)]
    for li, (c_out, stride, pool) in enumerate(plan, 1):
        nodes[f"conv{li}"] = _conv(rng, c, c_out, gain, stride)
        hw //= stride
        nodes[f"if{li}"] = _if((c_out, hw, hw))
        edges += [(prev, f"conv{li}"), (f"conv{li}", f"if{li}")]
        prev, c = f"if{li}", c_out
        if pool:
            nodes[f"pool{li}"] = _pool()
            edges.append((prev, f"pool{li}"))
            prev, hw = f"pool{li}", hw // 2
    n_flat = c * hw * hw
    nodes["flat"] = nir.Flatten(start_dim=0, end_dim=-1, input_type={"input": np.array([c, hw, hw])})
    nodes["fc"] = nir.Linear(weight=rng.normal(gain * THETA / 11, gain * THETA / 11, (11, n_flat)))
    nodes["out_if"] = _if((11,))
    nodes["output"] = nir.Output(output_type={"output": np.array([11])})
    edges += [(prev, "flat"), ("flat", "fc"), ("fc", "out_if"), ("out_if", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def resnet_graph(seed: int = 0, gain: float = 1.4):
    """Stem (stride-2 conv to 32 channels) then per stage a transition conv to C channels and a
    residual block IF_a → conv → IF_b → conv → IF_c with the skip IF_a → IF_c; pool between
    stages. The skip's and the second conv's inputs to IF_c add (NIR: two edges into a node)."""
    import nir

    rng = np.random.default_rng(seed)
    nodes = {"input": nir.Input(input_type={"input": np.array([2, 128, 128])})}
    edges = []
    nodes["conv0"] = _conv(rng, 2, 32, gain, 2)
    nodes["if0"] = _if((32, 64, 64))
    edges += [("input", "conv0"), ("conv0", "if0")]
    prev, c, hw = "if0", 32, 64
    for si, c_out in enumerate((64, 128, 256), 1):
        if si > 1:
            nodes[f"pool{si}"] = _pool()
            edges.append((prev, f"pool{si}"))
            prev, hw = f"pool{si}", hw // 2
        a, b_, c_ = f"s{si}a", f"s{si}b", f"s{si}c"
        nodes[f"s{si}t"] = _conv(rng, c, c_out, gain)
        nodes[a] = _if((c_out, hw, hw))
        nodes[f"s{si}conv1"] = _conv(rng, c_out, c_out, gain)
        nodes[b_] = _if((c_out, hw, hw))
        # the block's two inputs to IF_c share the budget: half through the conv, half the skip
        nodes[f"s{si}conv2"] = _conv(rng, c_out, c_out, gain / 2)
        nodes[c_] = _if((c_out, hw, hw))
        nodes[f"s{si}skip"] = nir.Scale(scale=np.full((c_out, hw, hw), gain / 2))
        edges += [(prev, f"s{si}t"), (f"s{si}t", a), (a, f"s{si}conv1"), (f"s{si}conv1", b_),
                  (b_, f"s{si}conv2"), (f"s{si}conv2", c_), (a, f"s{si}skip"), (f"s{si}skip", c_)]
        prev, c = c_, c_out
    nodes["poolf"] = _pool()
    edges.append((prev, "poolf"))
    hw //= 2
    n_flat = c * hw * hw
    nodes["flat"] = nir.Flatten(start_dim=0, end_dim=-1, input_type={"input": np.array([c, hw, hw])})
    nodes["fc"] = nir.Linear(weight=rng.normal(gain * THETA / 11, gain * THETA / 11, (11, n_flat)))
    nodes["out_if"] = _if((11,))
    nodes["output"] = nir.Output(output_type={"output": np.array([11])})
    edges += [("poolf", "flat"), ("flat", "fc"), ("fc", "out_if"), ("out_if", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def measure(graph, events, repeats: int, profile: str) -> dict:
    import evsim

    model = evsim.load_model(graph, profile=profile)
    sim = evsim.Simulator(model, budget=10**9)
    res = sim.run(events)  # warm-up: compilation, caches
    cpu, wall = [], []
    for _ in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        res = sim.run(events)
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    t_cpu, t_wall = float(np.median(cpu)), float(np.median(wall))
    return {
        "populations": [p.name for p in model.populations],
        "neurons": model.n_neurons,
        "synops": res.synops,
        "status": res.status,
        "spikes_per_node": res.spikes_per_node,
        "s_cpu_median": t_cpu,
        "s_wall_median": t_wall,
        "synops_per_s_cpu": res.synops / t_cpu,
        "synops_per_s_wall": res.synops / t_wall,
        "spikes_per_s_cpu": sum(res.spikes_per_node.values()) / t_cpu,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--gain", type=float, default=1.4, help="input per spike, in thresholds, summed over its targets")
    parser.add_argument("--profile", default="speck")
    parser.add_argument("--graphs", default="vgg,resnet")
    parser.add_argument("--core", type=int, default=None, help="CPU core to pin to (default: the last one)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    from bench_nmnist import machine

    if hasattr(os, "sched_setaffinity"):
        core = args.core if args.core is not None else max(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {core})
    events = moving_object(args.events)
    figures = {"machine": machine(), "command": "python benchmarks/bench_vgg.py " + " ".join(argv if argv is not None else sys.argv[1:]),
               "events": args.events, "repeats": args.repeats, "profile": args.profile, "gain": args.gain}
    builders = {"vgg": vgg_graph, "resnet": resnet_graph}
    for name in args.graphs.split(","):
        fig = measure(builders[name](gain=args.gain), events, args.repeats, args.profile)
        fig["load_after"] = os.getloadavg()
        figures[name] = fig
        print(f"{name}: {fig['neurons']} neurons, {fig['synops']:.3g} SynOps, status {fig['status']}")
        print("  spikes " + ", ".join(f"{k} {v}" for k, v in fig["spikes_per_node"].items()))
        print(f"  {fig['s_cpu_median']:.3f} s CPU ({fig['s_wall_median']:.3f} s wall), median of {args.repeats}:"
              f" {fig['synops_per_s_cpu']:.3g} SynOps/s CPU ({fig['synops_per_s_wall']:.3g} wall),"
              f" {fig['spikes_per_s_cpu']:.3g} spikes/s; load {fig['load_after']}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

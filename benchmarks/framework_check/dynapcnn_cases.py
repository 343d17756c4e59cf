"""sinabs' Speck backend: DynapcnnNetwork(..., discretize=True), the reference of evsim's `--quantize speck`.

    python dynapcnn_cases.py OUT [CASE ...]        (then: compare.py OUT, in evsim's environment)

evsim.chip.speck reimplements sinabs/backend/dynapcnn/discretize.py without importing sinabs; this
script builds the network with sinabs itself, ``DynapcnnNetwork(snn, input_shape, discretize=True,
dvs_input=False)``, and writes for every Dynapcnn layer the discretised weights and biases, the
threshold, the floor (min_v_mem) and the scales sinabs computed (weights, bias, threshold, and the
one used), which compare.py compares element-wise with ``evsim.quantize_speck``; then it runs the
discretised network's software forward (the DynapcnnLayer modules: Conv2d, IAFSqueeze with integer
parameters, sum pooling) and records every layer's spikes per step, compared with evsim's clock mode
under ``quantize="speck"``. References: "dynapcnn" = the network as DynapcnnNetwork builds it
(from_nir's MultiSpike kept: profile sinabs), "dynapcnn_single" = the same with SingleSpike (one
spike per update, as the chip: profile speck). Runs in the sinabs environment (nir 1.0.4): no evsim.

  nmnist_0..9  the bundled CNN (sinabs.from_nir), first recording of each label in
               $EVSIM_SHARED_DATA/nmnist-train1k, 1 ms frames from the first event (as sinabs_cases.py)
  rand         Conv2d(bias)-IAF-AvgPool2d-Conv2d(stride 2, bias)-IAF-Flatten-Linear(bias)-IAF, random
               counts: the AvgPool2d → SumPool2d weight rescaling, nonzero biases, scales set by the
               weights (layers 1, 3) and by the bias (layer 2)
  thr          Linear(bias)-IAF whose scale is set by its threshold (θ_q = 32767): saturation acts;
               also against "saturated"/"saturated_single": sinabs' discretised layer with the
               IAF step written out, saturated at 32767 as evsim models the chip

evsim's quantised states saturate at 32767 (SEMANTICS §10c, the chip's 16-bit state); sinabs' software
forward does not. A check is expected equal when sinabs' largest state before the threshold test stays
below 32768 in every layer (recorded in the case), else expected to differ for that reason.
"""
from __future__ import annotations

import copy
import importlib.abc
import importlib.machinery
import sys
import types
from pathlib import Path

import numpy as np
import sinabs
import sinabs.layers as sl
import torch
import torch.nn as nn
from sinabs.activation import SingleSpike

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fwcheck import check, layer, parse_args, shared_data, versions, write_case  # noqa: E402
from sinabs_cases import BUNDLED, STEP_US, bundled_graph, export, read_nmnist, reset_states  # noqa: E402

NMNIST = [f"nmnist_{c}" for c in range(10)]
CASES = NMNIST + ["rand", "thr"]
FW = ("torch", "sinabs", "nir")
STATE_MAX = 2 ** 15 - 1  # the chip's 16-bit state, evsim's ceiling under --quantize speck


# ------------------------------------------------------------------------------ sinabs' Speck backend

class _UnavailableMeta(type):
    def __getattr__(cls, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return cls


class _Unavailable(metaclass=_UnavailableMeta):
    """Any samna attribute: ``samna.device.DeviceInfo`` resolves (io.py's annotations), a call raises."""

    def __init__(self, *args, **kwargs):
        raise RuntimeError("samna is not installed (a stand-in module was imported)")


class _SamnaFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """WORKAROUND: sinabs.backend.dynapcnn imports samna (SynSense's device library) at module level
    (dynapcnn_network.py, io.py, config_builder.py, chips/*.py), only for deployment; samna is not
    installed (README: the PyPI package is a stub that pip-installs on import). This stand-in lets the
    software path import: attribute access works, any call raises, so DynapcnnNetwork(...,
    discretize=True) and its forward provably do not use it."""

    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("samna", "samnagui"):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        module = types.ModuleType(spec.name)
        module.__path__ = []
        module.__getattr__ = lambda attr: _Unavailable
        return module

    def exec_module(self, module):
        pass


def dynapcnn_backend():
    """sinabs.backend.dynapcnn and its discretize module, samna stood in for if it is missing."""
    try:
        import samna  # noqa: F401
    except ImportError:
        sys.meta_path.insert(0, _SamnaFinder())
    from sinabs.backend.dynapcnn import DynapcnnNetwork, discretize
    from sinabs.backend.dynapcnn.dynapcnnnetwork_module import DynapcnnNetworkModule
    return DynapcnnNetwork, discretize, DynapcnnNetworkModule


def scalar_thresholds(snn):
    """REPAIR: sinabs.from_nir builds IAFSqueeze with per-neuron spike_threshold and min_v_mem (the NIR
    node's arrays), and discretize.py's ``torch.tensor((min_v_mem, spike_threshold))`` then raises
    "only one element tensors can be converted to Python scalars": DynapcnnNetwork cannot be built from
    from_nir's network. A Speck core has one threshold: each (uniform) tensor becomes its 0-d value,
    same dtype."""
    for m in snn.modules():
        if isinstance(m, sl.IAFSqueeze):
            for attr in ("spike_threshold", "min_v_mem"):
                p = getattr(m, attr).detach()
                assert torch.all(p == p.flatten()[0]), f"{attr} differs between neurons"
                setattr(m, attr, nn.Parameter(p.flatten()[0].clone(), requires_grad=False))
    return snn


def build_dynapcnn(snn, input_shape, names):
    """DynapcnnNetwork(snn, input_shape, discretize=True, dvs_input=False), and per layer (topological
    order) what discretize.py did: {"weight_node", "neuron_node", "conv", "spk", "scales", "rescale"}.
    ``names``: {sinabs graph node name: NIR node name} (identity for from_nir's networks).

    The scales are the values sinabs' own determine_discretization_scale returned inside
    _discretize_conv_spk_ (in call order: weights, bias, thresholds (min_v_mem, θ), and v_mem when the
    state was initialised), recorded by wrapping the two functions; nothing is recomputed here."""
    DynapcnnNetwork, discretize, DynapcnnNetworkModule = dynapcnn_backend()
    scales, order = {}, []
    determine, conv_spk, reindex = (discretize.determine_discretization_scale, discretize._discretize_conv_spk_,
                                    DynapcnnNetworkModule.reindex_layers)
    calls = []

    def determine_rec(obj, bits):
        s = determine(obj, bits)
        calls.append(s)
        return s

    def conv_spk_rec(conv_lyr=None, spike_lyr=None, **kw):
        del calls[:]
        state = spike_lyr is not None and spike_lyr.is_state_initialised()
        out = conv_spk(conv_lyr=conv_lyr, spike_lyr=spike_lyr, **kw)
        s = [float(torch.as_tensor(c).detach()) for c in calls]
        scales[id(conv_lyr)] = {"weights": s[0], "bias": s[1], "threshold": s[2],
                                "v_mem": s[3] if state else None, "used": min(s)}
        return out

    def reindex_rec(module, index_order):
        order[:] = list(index_order)
        return reindex(module, index_order)

    discretize.determine_discretization_scale, discretize._discretize_conv_spk_ = determine_rec, conv_spk_rec
    DynapcnnNetworkModule.reindex_layers = reindex_rec
    try:
        dn = DynapcnnNetwork(snn, input_shape=input_shape, discretize=True, dvs_input=False)
    finally:
        discretize.determine_discretization_scale, discretize._discretize_conv_spk_ = determine, conv_spk
        DynapcnnNetworkModule.reindex_layers = reindex
    ge = dn._graph_extractor
    index_name = {i: n for n, i in ge.name_2_indx_map.items()}
    layers = []
    for new, old in enumerate(order):
        lay, info = dn.dynapcnn_layers[new], ge.dcnnl_info[old]
        layers.append({"weight_node": names[index_name[info["conv"]["node_id"]]],
                       "neuron_node": names[index_name[info["neuron"]["node_id"]]],
                       "conv": lay.conv, "spk": lay.spk, "scales": scales[id(lay.conv)],
                       "rescale": float(lay.rescale_weights)})
    return dn, layers


@torch.no_grad()
def run_dynapcnn(dn, layers, x, single=False):
    """{neuron node: spikes (T, N)} of every Dynapcnn layer's IAFSqueeze, and its largest state before
    the threshold test (v after the step plus the spikes times θ: what evsim's 16-bit ceiling would cut)."""
    reset_states(dn)
    outs, hooks = {}, []
    for ly in layers:
        m = ly["spk"]
        m.record_states = True
        if single:
            m.spike_fn = SingleSpike
        hooks.append(m.register_forward_hook(lambda mod, i, o, n=ly["neuron_node"]: outs.__setitem__(n, o)))
    dn(x)
    for h in hooks:
        h.remove()
    T = x.shape[0]
    res, vmax = {}, {}
    for ly in layers:
        n, m = ly["neuron_node"], ly["spk"]
        s = outs[n].reshape(T, -1)
        v = m.recordings["v_mem"].reshape(T, -1)
        res[n] = s.numpy().round().astype(np.int64)
        vmax[n] = float((v + s * m.spike_threshold).max())
    return res, vmax


def quantized_arrays(layers):
    """npz arrays and the case.json block of the discretised parameters (as sinabs holds them:
    weights (f, c, kh, kw) after Linear → Conv2d, float32 with integer values)."""
    arrays, block = {}, []
    for ly in layers:
        w, wn = ly["conv"].weight.detach(), ly["weight_node"]
        b = ly["conv"].bias.detach() if ly["conv"].bias is not None else torch.zeros(w.shape[0])
        arrays[f"q_w_{wn}"], arrays[f"q_b_{wn}"] = w.numpy(), b.numpy()
        theta, floor = ly["spk"].spike_threshold.detach(), ly["spk"].min_v_mem.detach()
        block.append({"weight_node": wn, "neuron_node": ly["neuron_node"], "weights": f"q_w_{wn}", "bias": f"q_b_{wn}",
                      "threshold": float(theta), "floor": float(floor), "scale": ly["scales"]["used"],
                      "scales": {k: ly["scales"][k] for k in ("weights", "bias", "threshold", "v_mem")},
                      "rescale": ly["rescale"]})
    return arrays, block


def checks_for(vmax):
    """quantize="speck" under profile sinabs (vs dynapcnn) and speck (vs dynapcnn_single); expected equal
    unless sinabs' state went past the chip's ceiling, which evsim applies and sinabs does not."""
    out = []
    for ref, profile in (("dynapcnn", None), ("dynapcnn_single", "speck")):
        over = {n: v for n, v in vmax[ref].items() if v > STATE_MAX}
        why = None if not over else (
            f"sinabs' state exceeds {STATE_MAX} in {', '.join(f'{n} ({v:g})' for n, v in over.items())}: evsim "
            "saturates at the chip's 16-bit ceiling (SEMANTICS §10c), sinabs' software forward does not")
        out.append(check(ref, {"quantize": "speck"}, profile=profile, expect="differ" if over else "equal", why=why))
    return out


def vmax_note(vmax):
    return "largest state before the threshold test (sinabs): " + "; ".join(
        f"{ref}: " + ", ".join(f"{n} {v:g}" for n, v in d.items()) for ref, d in vmax.items())


# ------------------------------------------------------------------------------ cases

def nmnist_case(out, case):
    """The bundled CNN as sinabs deploys it; frames as sinabs_cases.py's nmnist cases (compare.py
    checks that they are evsim's bins of the recording)."""
    label = int(case.split("_")[1])
    rec = sorted((shared_data() / "nmnist-train1k" / str(label)).glob("*.bin"))[0]
    t, x, y, p = read_nmnist(rec)
    k = (t - t.min()) // STEP_US
    T = int(k.max()) + 1
    frames = np.zeros((T, 2, 34, 34), dtype=np.int64)
    np.add.at(frames, (k, p, y, x), 1)
    snn = scalar_thresholds(sinabs.from_nir(bundled_graph(), batch_size=1))
    names = {n: n for n, _ in snn.named_modules() if n}
    dn, layers = build_dynapcnn(snn, (2, 34, 34), names)
    arrays, block = quantized_arrays(layers)
    arrays["frames"] = frames
    refs, vmax = {"dynapcnn": {}, "dynapcnn_single": {}}, {}
    for ref, single in (("dynapcnn", False), ("dynapcnn_single", True)):  # single last: it sets spike_fn
        res, vmax[ref] = run_dynapcnn(dn, layers, torch.tensor(frames, dtype=torch.float32), single=single)
        for n, s in res.items():
            arrays[f"{ref}_s_{n}"] = s
            refs[ref][n] = layer(f"{ref}_s_{n}")
    write_case(out, f"dynapcnn_{case}", graphs={"model.nir": BUNDLED}, arrays=arrays, profile="sinabs",
               step_us=STEP_US, T=T, refs=refs, checks=checks_for(vmax), framework=versions(*FW),
               input={"recording": str(rec.relative_to(shared_data())), "frames": "frames"},
               quantized={"nir": "model.nir", "layers": block}, note=vmax_note(vmax))


def random_refs(dn, layers, x):
    refs, vmax, arrays = {"dynapcnn": {}, "dynapcnn_single": {}}, {}, {}
    for ref, single in (("dynapcnn", False), ("dynapcnn_single", True)):  # single last: it sets spike_fn
        res, vmax[ref] = run_dynapcnn(dn, layers, x, single=single)
        for n, s in res.items():
            arrays[f"{ref}_s_{n}"] = s
            refs[ref][n] = layer(f"{ref}_s_{n}")
    return refs, vmax, arrays


def rand_case(out):
    """A random network with an AvgPool2d (sinabs: SumPool2d, the next layer's weights × 1/4 before
    discretising) and biases; layer 2's scale is set by its bias, the others' by their weights.
    min_v_mem = −θ as sinabs.from_nir builds IF (evsim's floor under profile sinabs, SEMANTICS §6.2)."""
    torch.manual_seed(3)
    iaf = lambda th: sl.IAFSqueeze(batch_size=1, spike_threshold=torch.tensor(th), min_v_mem=-th)  # noqa: E731
    net = nn.Sequential(nn.Conv2d(2, 8, 3, padding=1), iaf(1.0), nn.AvgPool2d(2),
                        nn.Conv2d(8, 8, 3, stride=2, padding=1), iaf(0.8), nn.Flatten(),
                        nn.Linear(8 * 4 * 4, 10), iaf(0.7))
    with torch.no_grad():
        net[0].weight.mul_(2.5)
        net[0].bias.uniform_(-0.05, 0.1)  # |b| < |w|: the weights set the scale
        net[3].weight.mul_(4.0)
        net[3].bias.uniform_(-2.0, 2.5)  # |b| > |w|: the bias sets the scale
        net[6].weight.mul_(2.0)
        net[6].bias.uniform_(-0.02, 0.04)
    in_shape = (2, 16, 16)
    counts = np.random.default_rng(3).poisson(0.2, size=(100,) + in_shape).astype(np.int64)
    x = torch.tensor(counts, dtype=torch.float32)
    # sinabs.to_nir runs the network (states initialised), DynapcnnNetwork gets it with no state: with
    # one, DynapcnnLayer makes the Linear layer's v_mem a view (unsqueeze) and reset_states raises
    # "Can't detach views in-place"; so the export gets a copy
    g = export(copy.deepcopy(net), x, in_shape)  # sinabs.to_nir, repaired as in sinabs_cases.py
    dn, layers = build_dynapcnn(net, in_shape, {str(i): str(i) for i in range(len(net))})
    arrays, block = quantized_arrays(layers)
    refs, vmax, spikes = random_refs(dn, layers, x)
    write_case(out, "dynapcnn_rand", graphs={"model.nir": g}, arrays={"counts": counts, **arrays, **spikes},
               profile="sinabs", step_us=STEP_US, T=100, refs=refs, checks=checks_for(vmax),
               framework=versions(*FW), quantized={"nir": "model.nir", "layers": block}, note=vmax_note(vmax))


def saturated(dn_layer, x, single):
    """sinabs' discretised layer (its Conv2d, θ and floor) with the IAF step written out and the state
    saturated at 32767 after the step's input, as evsim models the chip (SEMANTICS §10c, clock-driven):
    v ← min(v + I, 32767); n = floor(v/θ) (MultiSpike) or [v ≥ θ] (SingleSpike); v ← max(v − n·θ, floor).
    Not sinabs itself: it shows that saturation is the only difference from sinabs' forward."""
    with torch.no_grad():
        cur = dn_layer.conv(x.reshape(x.shape[0], -1, 1, 1)).reshape(x.shape[0], -1).double().numpy()
    theta, floor = float(dn_layer.spk.spike_threshold), float(dn_layer.spk.min_v_mem)
    v, out = np.zeros(cur.shape[1]), np.zeros(cur.shape, dtype=np.int64)
    for k in range(cur.shape[0]):
        v = np.minimum(v + cur[k], STATE_MAX)
        n = (v >= theta).astype(np.int64) if single else np.maximum(np.floor(v / theta), 0).astype(np.int64)
        v = np.maximum(v - n * theta, floor)
        out[k] = n
    return out


def thr_case(out):
    """One Linear(bias)-IAF layer whose scale is set by its threshold (θ/max|w| > 32767/127): θ_q = 32767,
    the chip's ceiling, so every spike comes from a state at or past it; evsim saturates there (SEMANTICS
    §10c), sinabs' forward does not. Also compared with the saturated step on sinabs' parameters."""
    torch.manual_seed(4)
    theta = 60.0
    # the Flatten lets DynapcnnNetwork feed its (20, 1, 1) input to the Linear layer
    net = nn.Sequential(nn.Flatten(), nn.Linear(20, 10),
                        sl.IAFSqueeze(batch_size=1, spike_threshold=torch.tensor(theta), min_v_mem=-theta))
    with torch.no_grad():
        net[1].weight.uniform_(-0.05, 0.2)
        net[1].bias.uniform_(0.0, 0.15)
    counts = np.random.default_rng(4).poisson(1.0, size=(300, 20)).astype(np.int64)
    x = torch.tensor(counts, dtype=torch.float32)
    g = export(copy.deepcopy(net), x, (20,))
    dn, layers = build_dynapcnn(net, (20, 1, 1), {str(i): str(i) for i in range(len(net))})
    assert layers[0]["scales"]["used"] == layers[0]["scales"]["threshold"]
    arrays, block = quantized_arrays(layers)
    x4 = x.reshape(-1, 20, 1, 1)
    refs, vmax, spikes = random_refs(dn, layers, x4)
    for ref, single in (("saturated", False), ("saturated_single", True)):
        spikes[f"{ref}_s_2"] = saturated(dn.dynapcnn_layers[0], x4, single)
        refs[ref] = {"2": layer(f"{ref}_s_2")}
    checks = checks_for(vmax) + [check("saturated", {"quantize": "speck"}),
                                 check("saturated_single", {"quantize": "speck"}, profile="speck")]
    write_case(out, "dynapcnn_thr", graphs={"model.nir": g}, arrays={"counts": counts, **arrays, **spikes},
               profile="sinabs", step_us=STEP_US, T=300, refs=refs, checks=checks, framework=versions(*FW),
               quantized={"nir": "model.nir", "layers": block}, note=vmax_note(vmax))


if __name__ == "__main__":
    out_dir, cases = parse_args(CASES, __doc__)
    for c in cases:
        if c in NMNIST:
            if not (shared_data() / "nmnist-train1k").is_dir():
                print(f"{c}: no {shared_data() / 'nmnist-train1k'} (set $EVSIM_SHARED_DATA): skipped")
                continue
            nmnist_case(out_dir, c)
        else:
            {"rand": rand_case, "thr": thr_case}[c](out_dir)

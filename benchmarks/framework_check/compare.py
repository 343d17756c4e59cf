"""Run evsim on the cases written by the framework scripts and compare with the framework's records.

    python benchmarks/framework_check/compare.py OUT [CASE ...] [--json FILE]

OUT is the folder a framework script wrote (every ``OUT/*/case.json``), or a case folder itself;
``--json FILE`` also writes every comparison (one record per case, check and layer).
Runs in evsim's own environment; never imports torch or jax.

Alignment (docs/SEMANTICS.md §7.1, as benchmarks/exporter_lif_check.py does it): the input of
framework step k becomes one event per count at t = k·w µs (w = the framework step), addressed
as §2.2 says; the clock mode runs with ``bin_us=w, time_origin="zero", duration_us=T·w``, so bin
k = [k·w, (k+1)·w) holds exactly step k's input, and a spike reported at t_us = (k+1)·w (the end
of its window) is step k. No other offset, except where a profile documents one (Spyx, §6.7:
``spike_shift`` 1). Recorded recordings (the bundled CNN case) are run as they are, bins from the
first event. Per-step membranes come from runs of 1..T steps with ``keep_state=True``.

Event mode is run on the same input and reported for information only: it is not step-exact by
design (§7.6; the continuous equivalents of §6). A spike at time t counts for step floor(t/w).

Cases with a ``quantized`` block (dynapcnn_cases.py: sinabs' DynapcnnNetwork(discretize=True))
also have their discretised weights, biases, θ, floor and scales compared with
``evsim.quantize_speck`` of the same file, exactly; a difference is a failure.

Exit code 1 if a clock-mode comparison expected to be equal differs, a quantised parameter differs,
or a case fails to run.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

import evsim
from evsim.input.events import make_events
from evsim.sim.clock import ClockSimulator, bin_steps
from evsim.sim.event import Simulator

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fwcheck import V_TOL, compare_spikes, max_abs_diff, shared_data  # noqa: E402


def counts_to_events(counts, w):
    """(T, *shape) counts -> one event per count at t = k·w, addressed as SEMANTICS §2.2."""
    counts = np.asarray(counts, dtype=np.int64)
    T, shape = counts.shape[0], counts.shape[1:]
    flat = counts.reshape(T, -1)
    k, idx = np.nonzero(flat)
    reps = flat[k, idx]
    k, idx = np.repeat(k, reps), np.repeat(idx, reps)
    if len(shape) == 3:
        p, rem = np.divmod(idx, shape[1] * shape[2])
        y, x = np.divmod(rem, shape[2])
    elif len(shape) == 2:
        p, x = np.divmod(idx, shape[1])
        y = np.zeros_like(x)
    else:
        x, y, p = idx, np.zeros_like(idx), np.zeros_like(idx)
    t = np.round(k * w).astype(np.int64)
    return make_events(t=t, x=x, y=y, p=p)


def rasters(model, result, T, w, mode):
    """{population: (T, N) spike counts per step}; clock: step = t/w − 1, event: floor(t/w)."""
    out = {p.name: np.zeros((T, p.size), dtype=np.int64) for p in model.populations}
    s = result.spikes
    for name in out:
        if name not in result.node_names:
            continue
        sel = s[s["node"] == result.node_names.index(name)]
        t = sel["t_us"].astype(np.float64)
        # event mode: 1e-3 µs of slack for a dt read back from float32 files as 99.99999... µs
        k = np.round(t / w).astype(np.int64) - 1 if mode == "clock" else np.floor((t + 1e-3) / w).astype(np.int64)
        ok = (k >= 0) & (k < T)
        np.add.at(out[name], (k[ok], sel["neuron"][ok].astype(np.int64)), sel["count"][ok])
    return out


def clock_states(model, events, T, w):
    """{population: {"v": (T, N), "i": (T, N) or None}} after every step (runs of 1..T steps)."""
    rec = {}
    for n in range(1, T + 1):
        r = ClockSimulator(model, bin_us=w, time_origin="zero", duration_us=n * w, keep_state=True)
        for name, st in r.run(events[events["t"] < n * w]).extra["state"].items():
            if st is None:
                continue
            d = rec.setdefault(name, {"v": [], "i": []})
            d["v"].append(np.asarray(st["v"], dtype=np.float64).ravel())
            if st.get("i") is not None:
                d["i"].append(np.asarray(st["i"], dtype=np.float64).ravel())
    return {n: {"v": np.array(d["v"]), "i": np.array(d["i"]) if d["i"] else None} for n, d in rec.items()}


def run_evsim(case_dir, meta, chk, z, need_states):
    """Clock rasters, clock states (if needed) and event rasters for one (NIR file, options)."""
    model = evsim.load_model(str(case_dir / chk["nir"]), profile=chk.get("profile", meta["profile"]), **chk["overrides"])
    T, w = meta["T"], meta["step_us"]
    inp = meta["input"]
    if "recording" in inp:  # a real recording: bins from its first event, as `evsim run --mode clock`
        events = evsim.read_recording(shared_data() / inp["recording"]).events
        k, n_steps, _ = bin_steps(events["t"], bin_us=w)
        # the framework was fed frames (T, C, H, W) binned by the framework script: they must be evsim's bins
        ref_frames = z[inp["frames"]]
        _, _, H, W = ref_frames.shape
        frames = np.zeros((n_steps, ref_frames[0].size), dtype=np.int64)
        np.add.at(frames, (k, (events["p"].astype(np.int64) * H + events["y"]) * W + events["x"]), 1)
        assert n_steps == T and np.array_equal(frames, ref_frames.reshape(T, -1)), "frames differ from evsim's bins"
        clock = ClockSimulator(model, bin_us=w, record_spikes=True).run(events)
        event = Simulator(model, record_spikes=True).run(events)  # both report times from the first event
    else:
        events = counts_to_events(z[inp["counts"]], w)
        clock = ClockSimulator(model, bin_us=w, time_origin="zero", duration_us=T * w, record_spikes=True).run(events)
        event = Simulator(model, record_spikes=True, time_origin="zero", duration_us=T * w).run(events)
    states = clock_states(model, events, T, w) if need_states else {}
    return rasters(model, clock, T, w, "clock"), states, rasters(model, event, T, w, "event"), model


def run_key(chk):
    """Checks with the same file, profile and options share one evsim run."""
    return chk["nir"], chk.get("profile"), json.dumps(chk["overrides"], sort_keys=True)


def compare_quantized(case_dir, meta, z):
    """The framework's discretised parameters (case.json "quantized", dynapcnn_cases.py) against
    ``evsim.quantize_speck`` of the same file, element-wise and exactly: weights and biases, the
    scales (per kind and the one used), θ and the floor, both as quantize_speck reports them and as the
    compiled model (``load_model(..., quantize="speck")``) holds them. One row per layer."""
    q = meta["quantized"]
    path = str(case_dir / q["nir"])
    graph, report = evsim.quantize_speck(path)
    by_node = {r.weight_node: r for r in report}
    model = evsim.load_model(path, profile=meta["profile"], quantize="speck")
    pops = {p.name: p for p in model.populations}
    rows = []
    print(f"   {'quantised parameters vs quantize_speck':40s} {'layer':14s} {'weights':>8s} {'bias':>6s} {'θ':>6s} "
          f"{'floor':>6s} {'scale':>10s} {'set by':9s} result")
    for ly in q["layers"]:
        r, wn = by_node.get(ly["weight_node"]), ly["weight_node"]
        diffs = []
        if r is None:
            diffs.append(f"no evsim layer for {wn}")
        else:
            w_ref, b_ref = z[ly["weights"]], z[ly["bias"]]
            node = graph.nodes[wn]
            w = np.asarray(node.weight, dtype=np.float64).reshape(w_ref.shape)  # Affine (f, c·h·w) → (f, c, h, w)
            bias = getattr(node, "bias", None)
            b = np.zeros(len(b_ref)) if bias is None else np.asarray(bias, dtype=np.float64).ravel()
            nw, nb = int(np.sum(w != w_ref)), int(np.sum(b != b_ref))
            if nw:
                i = tuple(int(k) for k in np.argwhere(w != w_ref)[0])
                diffs.append(f"{nw} weights (first {i}: framework {w_ref[i]:g}, evsim {w[i]:g})")
            if nb:
                diffs.append(f"{nb} biases")
            pm = pops[ly["neuron_node"]].model
            theta_file = np.asarray(graph.nodes[ly["neuron_node"]].v_threshold, dtype=np.float64)
            got = {"threshold": {r.threshold, *theta_file.ravel().tolist(), *np.asarray(pm.threshold).tolist()},
                   "floor": {r.floor, *np.asarray(pm.v_min).tolist()}, "scale": {r.scale},
                   "weights scale": {r.weight_scale}, "bias scale": {r.bias_scale},
                   "threshold scale": {r.threshold_scale}, "rescale": {r.rescale}}
            want = {"threshold": ly["threshold"], "floor": ly["floor"], "scale": ly["scale"],
                    "weights scale": ly["scales"]["weights"], "bias scale": ly["scales"]["bias"],
                    "threshold scale": ly["scales"]["threshold"], "rescale": ly["rescale"]}
            for k, v in want.items():
                if got[k] != {float(v)}:
                    diffs.append(f"{k}: framework {v:.9g}, evsim {', '.join(f'{x:.9g}' for x in sorted(got[k]))}")
            if r.neuron_node != ly["neuron_node"]:
                diffs.append(f"neuron node: framework {ly['neuron_node']}, evsim {r.neuron_node}")
            if ly["scales"].get("v_mem") is not None and ly["scales"]["v_mem"] < ly["scale"]:
                diffs.append("the framework's initial state set the scale (evsim assumes zero states)")
        eq = not diffs
        rows.append(dict(case=meta["case"], run="quantize_speck", ref="parameters", layer=f"{wn}->{ly['neuron_node']}",
                         fw=int(np.asarray(z[ly["weights"]]).size), clock=None, equal=eq, n_diff=len(diffs),
                         first="; ".join(diffs) or None, dv=None, di=None, expect="equal",
                         status="ok" if eq else "FAIL", event=None, event_equal=None, why=None, parameters=True))
        set_by = r.limited_by if r is not None else "?"
        print(f"   {q['nir'] + ' quantize=speck':40s} {(wn + '->' + ly['neuron_node'])[:14]:14s} "
              f"{z[ly['weights']].size:8d} {len(z[ly['bias']]):6d} {ly['threshold']:6g} {ly['floor']:6g} "
              f"{ly['scale']:10.6g} {set_by:9s} {'equal' if eq else 'DIFF ' + '; '.join(diffs)}"
              + ("" if eq else "   <-- FAIL"))
    return rows


def fmt_cmp(eq, n, first):
    return "equal" if eq else f"DIFF {n} @{first}"


def run_case(case_dir: Path):
    meta = json.loads((case_dir / "case.json").read_text())
    z = np.load(case_dir / "data.npz")
    shift = meta.get("spike_shift", 0)
    print(f"\n## {meta['case']}  ({', '.join(f'{k} {v}' for k, v in meta['framework'].items())}; profile "
          f"{meta['profile']}, step {meta['step_us']:g} µs, T {meta['T']}" + (f", spike shift {shift}" if shift else "")
          + ")")
    if meta.get("note"):
        print(f"   note: {meta['note']}")
    runs, rows = {}, []
    if meta.get("quantized"):
        rows += compare_quantized(case_dir, meta, z)
    print(f"   {'evsim file / options':40s} {'vs':16s} {'layer':8s} {'fw':>6s} {'clock':>6s} {'clock result':22s} "
          f"{'max|dv|':>8s} {'max|dI|':>8s} {'expect':7s} {'event':>6s} event result")
    for chk in meta["checks"]:
        key = run_key(chk)
        ref = meta["refs"][chk["ref"]]
        if key not in runs:
            need_states = any(lay.get("v") for c in meta["checks"] if run_key(c) == key
                              for lay in meta["refs"][c["ref"]].values())
            runs[key] = run_evsim(case_dir, meta, chk, z, need_states)
        clock, states, event, model = runs[key]
        opts = ([f"profile={chk['profile']}"] if "profile" in chk else []) + [f"{k}={v}" for k, v in chk["overrides"].items()]
        label = " ".join([chk["nir"].removesuffix(".nir")] + opts)
        for pop, keys in ref.items():
            eq, n, first, fw_total, ev_total = compare_spikes(z[keys["spikes"]], clock[pop], shift)
            st = states.get(pop, {})
            dv = max_abs_diff(z[keys["v"]], st.get("v")) if keys.get("v") else None
            di = max_abs_diff(z[keys["i"]], st.get("i")) if keys.get("i") else None
            eeq, en, efirst, _, ee_total = compare_spikes(z[keys["spikes"]], event[pop], shift)
            res = fmt_cmp(eq, n, first)
            if not keys.get("spiking", True):  # LI: no spikes, equal means the same membrane
                eq = dv is not None and dv <= V_TOL
                res = f"v {'equal' if eq else 'differs'} (no spikes)"
            ok = eq == (chk["expect"] == "equal")
            status = "ok" if ok else ("FAIL" if chk["expect"] == "equal" else "UNEXPECTED-equal")
            rows.append(dict(case=meta["case"], run=label, ref=chk["ref"], layer=pop, fw=fw_total, clock=ev_total,
                             equal=eq, n_diff=n, first=first, dv=dv, di=di, expect=chk["expect"], status=status,
                             event=ee_total, event_equal=eeq, why=chk.get("why")))
            print(f"   {label[:40]:40s} {chk['ref'][:16]:16s} {pop[:8]:8s} {fw_total:6d} {ev_total:6d} "
                  f"{res[:22]:22s} {'' if dv is None else f'{dv:.2g}':>8s} "
                  f"{'' if di is None else f'{di:.2g}':>8s} {chk['expect']:7s} {ee_total:6d} {fmt_cmp(eeq, en, efirst)}"
                  + ("" if ok else f"   <-- {status}"))
        if chk.get("why"):
            print(f"   {'':40s} expected to differ: {chk['why']}")
    return rows


def main(argv):
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    json_out = None
    if "--json" in argv:
        i = argv.index("--json")
        json_out, argv = Path(argv[i + 1]), argv[:i] + argv[i + 2:]
    root, only = Path(argv[0]), set(argv[1:])
    cases = [root] if (root / "case.json").is_file() else sorted(p.parent for p in root.glob("*/case.json"))
    cases = [c for c in cases if not only or c.name in only]
    if not cases:
        print(f"no case folders (*/case.json) in {root}")
        return 1
    import nir
    print(f"evsim {evsim.__version__}, nir {nir.__version__}, numpy {np.__version__}; {len(cases)} cases from {root}")
    rows, broken = [], []
    for c in cases:
        try:
            rows += run_case(c)
        except Exception as e:  # noqa: BLE001 - report and go on with the other cases
            print(f"   ERROR: {type(e).__name__}: {e}")
            broken.append(c.name)
    params, rows = [r for r in rows if r.get("parameters")], [r for r in rows if not r.get("parameters")]
    n_eq = sum(r["expect"] == "equal" for r in rows)
    fails = [r for r in rows if r["status"] == "FAIL"]
    unexp = [r for r in rows if r["status"] == "UNEXPECTED-equal"]
    print(f"\nSUMMARY: {len(cases)} cases, {len(rows)} layer comparisons in clock mode: "
          f"{n_eq - len(fails)}/{n_eq} expected-equal are equal; "
          f"{len(rows) - n_eq - len(unexp)}/{len(rows) - n_eq} expected-different differ (documented); "
          f"event mode equal in {sum(r['event_equal'] for r in rows)}/{len(rows)} (information only)"
          + (f"; quantised parameters equal in {sum(r['equal'] for r in params)}/{len(params)} layers"
             if params else ""))
    fails += [r for r in params if r["status"] == "FAIL"]
    for r in fails:
        if r.get("parameters"):
            print(f"FAIL {r['case']} quantised parameters of {r['layer']}: {r['first']}")
            continue
        print(f"FAIL {r['case']} [{r['run']}] vs {r['ref']} layer {r['layer']}: {r['n_diff']} entries differ, first "
              f"(step, neuron) {r['first']}")
    for r in unexp:
        print(f"note: {r['case']} [{r['run']}] vs {r['ref']} layer {r['layer']} is equal, expected to differ: {r['why']}")
    for b in broken:
        print(f"ERROR: case {b} did not run")
    if json_out:
        json_out.write_text(json.dumps({"evsim": evsim.__version__, "nir": nir.__version__, "rows": params + rows,
                                        "broken": broken}, indent=1))
    return 1 if fails or broken else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

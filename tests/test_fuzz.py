"""Bounded, seeded fuzzing of the recording readers and the model loader through the Python API.

Real sample files (``<shared data>/formats``, the bundled N-MNIST recording and model, the NIR
exports in ``<shared data>/nir``) and small files written here (AEDAT 2/3, .npz, .h5) are mutated
with byte flips, random byte runs, truncations, header garbage, insertions and deletions, from
a fixed seed. Every mutant is read in a separate worker process (a decoder in C or Rust may crash
the interpreter) with a per-file time limit. The test asserts that each read either succeeds or
raises an :class:`evsim.errors.EvsimError` subclass with a one-line message, that no warning is
raised (warnings are errors in the worker), that nothing reaches the worker's stdout/stderr but
its own report lines, and that nothing hangs or crashes.
"""

from __future__ import annotations

import json
import os
import random
import queue
import threading
import struct
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np

from conftest import REPO_ROOT, require_shared_data

SEED = 20261130
PER_RECORDING = 150  # mutants per recording source
PER_MODEL = 60  # byte-level mutants per model source
PER_MODEL_VALUES = 60  # mutants per model source with one stored parameter replaced
ITEM_TIMEOUT_S = 30.0  # a read that takes longer is reported as a hang

WORKER = r"""
import json, sys, warnings
import evsim
from evsim.errors import EvsimError
from evsim.input.recordings import read_recording
import h5py, nir, aedat, expelliarmus  # imported before warnings become errors
# warm up inside the import phase (its own, long deadline): the first read imports the decoders
# and may compile numba functions, which on a cold cache takes longer than an item's limit
import os, tempfile, numpy as np
_fd, _warm = tempfile.mkstemp(suffix=".npy"); os.close(_fd)
np.save(_warm, evsim.make_events(t=[0, 1], x=[0, 1], y=[0, 0], p=[0, 1])); read_recording(_warm, sort=True)
os.unlink(_warm)
warnings.simplefilter("error")
out = sys.__stdout__
for line in sys.stdin:
    item = json.loads(line)
    out.write(f"START {item['i']}\n"); out.flush()
    try:
        if item["kind"] == "model":
            evsim.load_model(item["path"], profile=item["profile"])
        elif item["kind"] == "selftest-hang":  # used by the harness's own test
            import time; time.sleep(3600)
        elif item["kind"] == "selftest-crash":
            import os, signal; os.kill(os.getpid(), signal.SIGSEGV)
        else:
            read_recording(item["path"], sort=True)  # sorted: reach the value checks
        outcome = "ok"
    except EvsimError as exc:
        text = str(exc)
        outcome = "evsim" if text and "\n" not in text else "evsim-not-one-line " + repr(text[:200])
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        outcome = f"escaped {type(exc).__module__}.{type(exc).__name__}: {str(exc)[:200]!r}"
    out.write(f"DONE {item['i']} {outcome}\n"); out.flush()
"""


# --------------------------------------------------------------------------------------------
# sources and mutations
# --------------------------------------------------------------------------------------------


def _aedat2_bytes(rng: np.random.Generator) -> bytes:
    n = 300
    a = ((rng.integers(0, 128, n) << 1) | (rng.integers(0, 128, n) << 8) | rng.integers(0, 2, n)).astype(">u4")
    t = np.sort(rng.integers(0, 10**6, n)).astype(">i4")
    records = np.empty(n, dtype=[("a", ">u4"), ("t", ">i4")])
    records["a"], records["t"] = a, t
    return b"#!AER-DAT2.0\r\n# AEChip: DVS128\r\n" + records.tobytes()


def _aedat3_bytes(rng: np.random.Generator) -> bytes:
    body = b""
    t0 = 0
    for _ in range(3):
        n = 100
        d = ((rng.integers(0, 346, n) << 17) | (rng.integers(0, 260, n) << 2) | (rng.integers(0, 2, n) << 1) | 1)
        t = t0 + np.sort(rng.integers(0, 10**5, n))
        t0 = int(t[-1])
        events = np.empty(n, dtype=[("d", "<u4"), ("t", "<i4")])
        events["d"], events["t"] = d.astype("<u4"), t.astype("<i4")
        body += struct.pack("<hhiiiiii", 1, 0, 8, 4, 0, n, n, n) + events.tobytes()
    return b"#!AER-DAT3.1\r\n#Source 1: DAVIS346\r\n#!END-HEADER\r\n" + body


def _sources(tmp: Path) -> list:
    """(kind, path, profile) of every file to mutate."""
    import evsim
    from evsim.cli import BUNDLED_MODEL

    formats = require_shared_data("formats")
    nir_dir = require_shared_data("nir")
    bundled_bin = next(iter(sorted((BUNDLED_MODEL.parent / "samples").glob("*/*.bin"))))
    rng = np.random.default_rng(SEED)
    made = tmp / "sources"
    made.mkdir()
    (made / "synthetic.aedat").write_bytes(_aedat2_bytes(rng))
    (made / "synthetic3.aedat").write_bytes(_aedat3_bytes(rng))
    events = evsim.read_recording(bundled_bin).events
    np.savez(made / "events.npz", events=events, sensor_size=np.array([34, 34, 2]))
    with h5py.File(made / "columns.h5", "w") as f:
        group = f.create_group("events")
        for name in ("t", "x", "y", "p"):
            group.create_dataset(name, data=events[name])
        f.attrs["sensor_size"] = np.array([34, 34, 2])
    recordings = [formats / "sample.aedat4", formats / "evt3_sample.raw", formats / "sample_ncars.dat",
                  formats / "evt3_sample.npy", bundled_bin, made / "synthetic.aedat", made / "synthetic3.aedat",
                  made / "events.npz", made / "columns.h5"]
    models = [(BUNDLED_MODEL, "speck"), (nir_dir / "lif_norse.nir", "norse"),
              (nir_dir / "braille_noDelay_noBias_subtract.nir", "snntorch")]
    return [("recording", p, None) for p in recordings] + [("model", p, prof) for p, prof in models]


def mutate(data: bytes, rng: random.Random) -> tuple:
    """(kind, mutated bytes): one of six mutations, positions and values from ``rng``."""
    b = bytearray(data)
    kind = rng.choice(["flip", "bytes", "truncate", "header", "insert", "delete"])
    n = len(b)
    if kind == "flip":
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(n)
            b[i] ^= 1 << rng.randrange(8)
    elif kind == "bytes":
        start = rng.randrange(n)
        for i in range(start, min(n, start + rng.randint(1, 200))):
            b[i] = rng.randrange(256)
    elif kind == "truncate":
        del b[rng.randrange(n):]
    elif kind == "header":
        for _ in range(rng.randint(1, 30)):
            b[rng.randrange(min(n, 512))] = rng.randrange(256)
    elif kind == "insert":
        i = rng.randrange(n)
        b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    else:
        i = rng.randrange(n)
        del b[i:i + rng.randint(1, 64)]
    return kind, bytes(b)


def weird_value(rng: random.Random, shape: tuple):
    """A value that a damaged or hostile NIR file could hold instead of a parameter."""
    n = max(1, int(np.prod(shape))) if shape else 1
    choice = rng.randrange(12)
    if choice == 0:
        return np.full(shape, np.nan)
    if choice == 1:
        return np.full(shape, -np.inf)
    if choice == 2:
        return -np.abs(np.ones(shape))
    if choice == 3:
        return np.zeros(shape)
    if choice == 4:
        return np.full(shape, 1e300)
    if choice == 5:
        return np.full(shape, b"x")
    if choice == 6:
        return np.ones(shape, dtype=complex)
    if choice == 7:
        return np.ones(n + rng.randint(1, 5))  # another size
    if choice == 8:
        return np.ones((2,) * rng.randint(0, 5))  # another rank
    if choice == 9:
        return np.full(shape, 0.5)
    if choice == 10:
        return np.full(shape, 2**40, dtype=np.int64)
    return np.array([], dtype=np.float64)


def mutate_dataset(src: Path, target: Path, rng: random.Random) -> str:
    """Copy a NIR file with one dataset under ``node`` replaced by :func:`weird_value`."""
    target.write_bytes(src.read_bytes())
    with h5py.File(target, "r+") as f:
        names = []
        f["node"].visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
        names = sorted(n for n in names if not n.endswith("type"))
        name = rng.choice(names)
        shape = f["node"][name].shape
        del f["node"][name]
        f["node"].create_dataset(name, data=weird_value(rng, shape))
    return name


def _mutants(tmp: Path) -> list:
    items = []
    out = tmp / "mutants"
    out.mkdir()
    for s, (kind, path, profile) in enumerate(_sources(tmp)):
        data = Path(path).read_bytes()
        count = PER_MODEL if kind == "model" else PER_RECORDING
        for k in range(count):
            rng = random.Random(SEED * 1000 + s * 100 + k)
            how, mutated = mutate(data, rng)
            target = out / f"{s:02d}_{k:03d}_{how}_{Path(path).name}"
            target.write_bytes(mutated)
            items.append({"i": len(items), "kind": kind, "path": str(target), "profile": profile})
        for k in range(PER_MODEL_VALUES if kind == "model" else 0):
            rng = random.Random(SEED * 1000 + s * 100 + 50 + k)
            target = out / f"{s:02d}_v{k:03d}_{Path(path).name}"
            mutate_dataset(Path(path), target, rng)
            items.append({"i": len(items), "kind": kind, "path": str(target), "profile": profile})
    return items


# --------------------------------------------------------------------------------------------
# running the worker
# --------------------------------------------------------------------------------------------


def _pump(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def _run_items(items: list, tmp: Path, item_timeout_s: float = ITEM_TIMEOUT_S) -> dict:
    """Outcome of every item; a worker that crashes or hangs is restarted after the item. An
    item's ``timeout_s``, if it has one, replaces ``item_timeout_s`` for it."""
    timeouts = {it["i"]: it.get("timeout_s", item_timeout_s) for it in items}
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               RUST_BACKTRACE="1")
    outcomes: dict = {}
    stray: list = []
    pending = list(items)
    while pending:
        err_path = tmp / f"worker-stderr-{len(outcomes)}.txt"
        with open(err_path, "w") as err_file:
            proc = subprocess.Popen([sys.executable, "-c", WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=err_file, env=env, text=True, cwd=tmp)
            proc.stdin.write("".join(json.dumps(it) + "\n" for it in pending))
            proc.stdin.close()
            # a thread reads the worker's lines: select() on the pipe cannot see lines already
            # sitting in the reader's buffer (it reported a finished item as a hang)
            lines: queue.Queue = queue.Queue()
            threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True).start()
            current = None
            deadline = time.monotonic() + 600.0  # the worker's imports (minutes on a loaded machine)
            failed = None
            while True:
                try:
                    line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    failed = "hang"
                    break
                if line is None:
                    break
                if line.startswith("START "):
                    current = int(line.split()[1])
                    deadline = time.monotonic() + timeouts.get(current, item_timeout_s)
                elif line.startswith("DONE "):
                    _, idx, outcome = line.rstrip("\n").split(" ", 2)
                    outcomes[int(idx)] = outcome
                    current = None
                else:
                    stray.append(line.rstrip("\n"))
            if failed:
                proc.kill()
            code = proc.wait()
        leaked = err_path.read_text()
        if leaked.strip():
            stray.append(f"stderr: {leaked.strip()[:500]}")
        done = set(outcomes)
        if current is not None and current not in done:
            outcomes[current] = failed or f"crash (exit code {code})"
        elif failed or code != 0:
            raise AssertionError(f"worker failed outside an item: {failed or code}; stderr {leaked[:500]}")
        pending = [it for it in pending if it["i"] not in outcomes]
    outcomes["_stray"] = stray
    return outcomes


def test_fuzzed_files_raise_only_evsim_errors(tmp_path):
    items = _mutants(tmp_path)
    assert len(items) == 9 * PER_RECORDING + 3 * (PER_MODEL + PER_MODEL_VALUES)
    outcomes = _run_items(items, tmp_path)
    stray = outcomes.pop("_stray")
    bad = {items[i]["path"]: o for i, o in outcomes.items() if o not in ("ok", "evsim")}
    assert not bad, json.dumps(bad, indent=1)[:4000]
    assert not stray, stray[:10]
    assert len(outcomes) == len(items)
    # the fuzzing reaches both outcomes for recordings and models (it is not all rejected at the door)
    for kind in ("recording", "model"):
        seen = {outcomes[it["i"]] for it in items if it["kind"] == kind}
        assert seen == {"ok", "evsim"}, (kind, seen)


def test_mutations_are_seeded():
    data = bytes(range(256)) * 4
    assert mutate(data, random.Random(7)) == mutate(data, random.Random(7))
    kinds = {mutate(data, random.Random(k))[0] for k in range(60)}
    assert kinds == {"flip", "bytes", "truncate", "header", "insert", "delete"}
    for k in range(60):
        how, mutated = mutate(data, random.Random(k))
        assert mutated != data or how == "truncate"


def test_the_harness_reports_hangs_and_crashes(tmp_path):
    """The worker loop itself: an item that hangs or kills the interpreter is reported as such
    and the items after it still run, so a green fuzz run means none did."""
    good = tmp_path / "good.npy"
    np.save(good, np.zeros(2, dtype=[("t", "<i8"), ("x", "<i2")]))
    items = [{"i": 0, "kind": "recording", "path": str(good), "profile": None},
             # (the other items keep the long timeout: a cold numba cache compiles in the first)
             {"i": 1, "kind": "selftest-hang", "path": "", "profile": None, "timeout_s": 5.0},
             {"i": 2, "kind": "recording", "path": str(tmp_path / "missing.npy"), "profile": None},
             {"i": 3, "kind": "selftest-crash", "path": "", "profile": None},
             {"i": 4, "kind": "recording", "path": str(good), "profile": None}]
    outcomes = _run_items(items, tmp_path, item_timeout_s=90.0)
    assert outcomes.pop("_stray") == []
    assert outcomes[0] == outcomes[4] == "ok"
    assert outcomes[1] == "hang"
    assert outcomes[2] == "evsim"
    assert outcomes[3].startswith("crash") and "-11" in outcomes[3]

"""A battery of bad inputs through the command line: every one must end with exit code 2 and
exactly one line on stderr, ``evsim: error: ...``, naming what is wrong; no traceback, no
warning, nothing printed by a third-party decoder (stderr is captured at the file-descriptor
level, so C and Rust output would show).

Each case builds its files in a fresh folder and returns the command line plus fragments the
error line must contain. Models are small graphs written here; recordings are written byte by
byte or with numpy/h5py, in every format evsim reads.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import warnings
from pathlib import Path

import h5py
import nir
import numpy as np
import pytest

import evsim
from evsim.cli import BUNDLED_MODEL, main

from conftest import REPO_ROOT, require_shared_data

BUNDLED_RECORDING = next(iter(sorted((BUNDLED_MODEL.parent / "samples").glob("*/*.bin"))))

CASES: dict = {}


def case(name):
    def register(fn):
        assert name not in CASES, name
        CASES[name] = fn
        return fn
    return register


def run_cli(capfd, argv):
    """(exit code, stdout, stderr, warnings) of ``evsim argv`` in this process."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = main([str(a) for a in argv])
    out = capfd.readouterr()
    return code, out.out, out.err, caught


def assert_one_line_error(code, err, caught, fragments):
    assert code == 2, (code, err)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("evsim: error:"), err
    assert "Traceback" not in err
    assert not caught, [str(w.message) for w in caught]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


# --------------------------------------------------------------------------------------------
# builders
# --------------------------------------------------------------------------------------------


def structured(n=3, **columns):
    """A structured array with the given columns (name -> values, dtype taken from the values)."""
    arrays = {k: np.asarray(v) for k, v in columns.items()}
    dtype = [(k, a.dtype, a.shape[1:]) if a.ndim > 1 else (k, a.dtype) for k, a in arrays.items()]
    out = np.zeros(n, dtype=dtype)
    for k, a in arrays.items():
        out[k] = a
    return out


def good_columns(n=3):
    return {"t": np.arange(n, dtype=np.int64) * 10, "x": np.arange(n, dtype=np.int16),
            "y": np.arange(n, dtype=np.int16), "p": np.array([0, 1, 0][:n], dtype=np.int8)}


def npy_with(tmp, name="bad.npy", **override):
    cols = good_columns()
    cols.update(override)
    cols = {k: v for k, v in cols.items() if v is not None}
    path = tmp / name
    np.save(path, structured(3, **cols))
    return path


def info(path, *fragments):
    return ["info", path], (Path(path).name,) + fragments


def small_graph(**replace):
    """Input (2, 6, 6) -> conv (4, 2, 3, 3) -> IF -> flatten -> fc (3, 64) -> LIF -> Output."""
    nodes = {
        "input": nir.Input(input_type={"input": np.array([2, 6, 6])}),
        "conv": nir.Conv2d(input_shape=None, weight=np.ones((4, 2, 3, 3)), stride=np.array([1, 1]),
                           padding=np.array([0, 0]), dilation=np.array([1, 1]), groups=1, bias=np.zeros(4)),
        "if1": nir.IF(r=np.ones((4, 4, 4)), v_threshold=np.ones((4, 4, 4)), v_reset=np.zeros((4, 4, 4))),
        "flat": nir.Flatten(input_type={"input": np.array([4, 4, 4])}, start_dim=0, end_dim=-1),
        "fc": nir.Affine(weight=np.ones((3, 64)), bias=np.zeros(3)),
        "lif": nir.LIF(tau=np.full(3, 0.01), r=np.ones(3), v_leak=np.zeros(3), v_threshold=np.ones(3),
                       v_reset=np.zeros(3)),
        "output": nir.Output(output_type={"output": np.array([3])}),
    }
    nodes.update(replace)
    edges = [("input", "conv"), ("conv", "if1"), ("if1", "flat"), ("flat", "fc"), ("fc", "lif"), ("lif", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def write_graph(tmp, g=None, name="model.nir"):
    path = tmp / name
    g = small_graph() if g is None else g
    with h5py.File(path, "w") as f:  # written as nir.write does, tolerating None fields
        f.create_dataset("version", data=nir.version, dtype=h5py.string_dtype())

        def rec(group, d):
            for k, v in d.items():
                if v is None:
                    continue
                if isinstance(v, dict):
                    if k == "metadata" and not v:
                        continue
                    rec(group.create_group(str(k)), v)
                elif isinstance(v, str):
                    group.create_dataset(k, data=v, dtype=h5py.string_dtype())
                else:
                    group.create_dataset(k, data=v)

        rec(f.create_group("node"), g.to_dict())
    return path


def model_with_dataset(tmp, key, value, **create):
    """The small model with dataset ``node/nodes/<key>`` replaced by ``value``."""
    path = write_graph(tmp)
    with h5py.File(path, "r+") as f:
        full = f"node/nodes/{key}"
        if full in f:
            del f[full]
        f.create_dataset(full, data=value, **create)
    return path


def model_case(tmp, key, value, *fragments, **create):
    path = model_with_dataset(tmp, key, value, **create)
    return ["info", path], ("model.nir",) + fragments


def aedat2(tmp, name, records: bytes, header=b"#!AER-DAT2.0\r\n# AEChip: DVS128\r\n"):
    path = tmp / name
    path.write_bytes(header + records)
    return path


def aedat3_packet(etype, esize, ts_offset, overflow, capacity, payload: bytes) -> bytes:
    return struct.pack("<hhiiiiii", etype, 0, esize, ts_offset, overflow, capacity, capacity, capacity) + payload


AEDAT3_HEADER = b"#!AER-DAT3.1\r\n#Source 1: DVS128\r\n#!END-HEADER\r\n"


def prophesee(tmp, name, header: bytes, payload: bytes):
    path = tmp / name
    path.write_bytes(header + payload)
    return path


def dataset(tmp, files: dict):
    root = tmp / "data"
    for rel, content in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, np.ndarray):
            np.save(p, content)
        else:
            p.write_bytes(content)
    return root


def good_events():
    return evsim.make_events([0, 10, 20], [1, 2, 3], [1, 2, 3], [0, 1, 0])


# --------------------------------------------------------------------------------------------
# .npy recordings: values inside well-formed arrays
# --------------------------------------------------------------------------------------------

case("npy-x-nan")(lambda tmp: info(npy_with(tmp, x=np.array([1.0, np.nan, 2.0])), "'x'", "event 1", "non-finite"))
case("npy-x-inf")(lambda tmp: info(npy_with(tmp, x=np.array([1.0, 2.0, np.inf])), "'x'", "event 2"))
case("npy-x-fractional")(lambda tmp: info(npy_with(tmp, x=np.array([1.0, 1.5, 2.5])), "'x'", "event 1", "fractional",
                                          "2 of 3"))
case("npy-y-nan")(lambda tmp: info(npy_with(tmp, y=np.array([np.nan, 1.0, 2.0])), "'y'", "event 0"))
case("npy-y-fractional-float32")(lambda tmp: info(npy_with(tmp, y=np.array([0, 0.25, 1], np.float32)), "'y'"))
case("npy-p-fractional")(lambda tmp: info(npy_with(tmp, p=np.array([0.0, 0.5, 1.0])), "'p'", "fractional"))
case("npy-p-nan")(lambda tmp: info(npy_with(tmp, p=np.array([0.0, np.nan, 1.0])), "'p'", "non-finite"))
case("npy-t-negative")(lambda tmp: info(npy_with(tmp, t=np.array([-5, 0, 10])), "'t'", "event 0", "-5"))
case("npy-t-float-1e30")(lambda tmp: info(npy_with(tmp, t=np.array([0.0, 1.0, 1e30])), "'t'", "event 2", "2**53"))
case("npy-t-uint64-wraps")(lambda tmp: info(npy_with(tmp, t=np.array([0, 1, 2**64 - 1], np.uint64)), "'t'", "event 2"))
case("npy-t-uint64-above-2-53")(lambda tmp: info(npy_with(tmp, t=np.array([0, 1, 2**53], np.uint64)), "'t'", "2**53"))
case("npy-t-int64-span-overflow")(lambda tmp: info(npy_with(tmp, t=np.array([0, 1, 2**63 - 1])), "'t'", "event 2"))
case("npy-t-int64-min")(lambda tmp: info(npy_with(tmp, t=np.array([-(2**63), 0, 1])), "'t'", "event 0"))
case("npy-t-nan")(lambda tmp: info(npy_with(tmp, t=np.array([0.0, np.nan, 2.0])), "'t'", "non-finite"))
case("npy-t-inf")(lambda tmp: info(npy_with(tmp, t=np.array([0.0, 1.0, np.inf])), "'t'", "non-finite"))
case("npy-t-fractional")(lambda tmp: info(npy_with(tmp, t=np.array([0.0, 1.5, 2.0])), "'t'", "fractional"))
case("npy-t-float16-inf")(lambda tmp: info(npy_with(tmp, t=np.array([0, 1, np.inf], np.float16)), "'t'"))
case("npy-x-string")(lambda tmp: info(npy_with(tmp, x=np.array(["1", "2", "3"])), "'x'", "text"))
case("npy-t-string")(lambda tmp: info(npy_with(tmp, t=np.array(["0", "1", "2"])), "'t'", "text"))
case("npy-p-bytes")(lambda tmp: info(npy_with(tmp, p=np.array([b"a", b"b", b"a"])), "'p'", "bytes"))
case("npy-x-complex")(lambda tmp: info(npy_with(tmp, x=np.array([1 + 1j, 2, 3])), "'x'", "complex"))
case("npy-t-datetime")(lambda tmp: info(npy_with(tmp, t=np.array(["2020-01-01", "2020-01-02", "2020-01-03"],
                                                                     dtype="datetime64[D]")), "'t'", "dates"))
case("npy-x-negative")(lambda tmp: info(npy_with(tmp, x=np.array([1, -3, 2], np.int16)), "'x'", "event 1", "-3"))
case("npy-x-too-large")(lambda tmp: info(npy_with(tmp, x=np.array([1, 40000, 2], np.int32)), "'x'", "40000"))
case("npy-y-1e6-float")(lambda tmp: info(npy_with(tmp, y=np.array([1.0, 2.0, 1e6])), "'y'", "event 2"))
case("npy-p-channel-300")(lambda tmp: info(npy_with(tmp, p=np.array([0, 2, 300], np.int32)), "'p'", "300"))
case("npy-p-negative-channel")(lambda tmp: info(npy_with(tmp, p=np.array([-1, 0, 1], np.int8)), "'p'", "negative"))
case("npy-x-subarray")(lambda tmp: info(npy_with(tmp, x=np.ones((3, 2), np.int16)), "'x'", "scalar column"))
case("npy-missing-t")(lambda tmp: info(npy_with(tmp, t=None), "missing field 't'"))
case("npy-missing-x")(lambda tmp: info(npy_with(tmp, x=None), "missing field 'x'"))


@case("npy-not-structured")
def _(tmp):
    np.save(tmp / "plain.npy", np.arange(12).reshape(3, 4))
    return info(tmp / "plain.npy", "not a structured array")


@case("npy-2d-structured")
def _(tmp):
    np.save(tmp / "twod.npy", np.zeros((2, 2), dtype=evsim.EVENT_DTYPE))
    return info(tmp / "twod.npy", "1-D")


@case("npy-object-field")
def _(tmp):
    arr = np.zeros(2, dtype=[("t", "O"), ("x", "i2")])
    arr["t"] = [0, "a"]
    np.save(tmp / "obj.npy", arr, allow_pickle=True)
    return info(tmp / "obj.npy", "cannot load")


@case("npy-empty-file")
def _(tmp):
    (tmp / "empty.npy").write_bytes(b"")
    return info(tmp / "empty.npy", "cannot load")


@case("npy-garbage")
def _(tmp):
    (tmp / "garbage.npy").write_bytes(bytes(range(256)) * 4)
    return info(tmp / "garbage.npy", "cannot load")


@case("npy-truncated")
def _(tmp):
    np.save(tmp / "full.npy", np.zeros(100, dtype=evsim.EVENT_DTYPE))
    data = (tmp / "full.npy").read_bytes()
    (tmp / "cut.npy").write_bytes(data[: len(data) - 37])
    return info(tmp / "cut.npy", "cannot load")


@case("npy-unsorted")
def _(tmp):
    return info(npy_with(tmp, t=np.array([0, 50, 20])), "not sorted", "event 2")


# --------------------------------------------------------------------------------------------
# .npz
# --------------------------------------------------------------------------------------------


@case("npz-two-arrays")
def _(tmp):
    np.savez(tmp / "two.npz", a=good_events(), b=good_events())
    return info(tmp / "two.npz", "'events'")


@case("npz-empty-archive")
def _(tmp):
    np.savez(tmp / "none.npz")
    return info(tmp / "none.npz", "0 arrays")


@case("npz-sensor-size-text")
def _(tmp):
    np.savez(tmp / "ss.npz", events=good_events(), sensor_size=np.array(["a", "b"]))
    return info(tmp / "ss.npz", "sensor_size")


@case("npz-sensor-size-negative")
def _(tmp):
    np.savez(tmp / "ssn.npz", events=good_events(), sensor_size=np.array([-34, 34]))
    return info(tmp / "ssn.npz", "sensor_size")


@case("npz-sensor-size-nan")
def _(tmp):
    np.savez(tmp / "ssnan.npz", events=good_events(), sensor_size=np.array([np.nan, 34.0]))
    return info(tmp / "ssnan.npz", "sensor_size")


@case("npz-y-nan")
def _(tmp):
    cols = good_columns()
    cols["y"] = np.array([0.0, np.nan, 1.0])
    np.savez(tmp / "nan.npz", events=structured(3, **cols))
    return info(tmp / "nan.npz", "'y'", "event 1")


@case("npz-garbage")
def _(tmp):
    (tmp / "junk.npz").write_bytes(b"PK\x03\x04" + bytes(200))
    return info(tmp / "junk.npz", "cannot load")


@case("npz-t-uint64-wraps")
def _(tmp):
    np.savez(tmp / "wrap.npz", events=structured(2, t=np.array([2**63, 2**64 - 1], np.uint64),
                                                 x=np.array([0, 1], np.int16)))
    return info(tmp / "wrap.npz", "'t'", "event 0", "2 of 2")


# --------------------------------------------------------------------------------------------
# HDF5 recordings
# --------------------------------------------------------------------------------------------


def h5_columns(tmp, name, group=None, **columns):
    path = tmp / name
    with h5py.File(path, "w") as f:
        g = f.create_group(group) if group else f
        for k, v in columns.items():
            g.create_dataset(k, data=v)
    return path


case("h5-no-event-data")(lambda tmp: info(h5_columns(tmp, "frames.h5", frames=np.zeros((2, 2))), "no event data"))
case("h5-ragged")(lambda tmp: info(h5_columns(tmp, "ragged.h5", t=np.arange(3), x=np.arange(2)), "differ in length"))
case("h5-x-string")(lambda tmp: info(h5_columns(tmp, "xs.h5", t=np.arange(2), x=np.array([b"a", b"b"])), "'x'"))
case("h5-t-negative")(lambda tmp: info(h5_columns(tmp, "tneg.h5", t=np.array([-1, 0]), x=np.arange(2)), "'t'",
                                       "event 0"))
case("h5-group-x-nan")(lambda tmp: info(h5_columns(tmp, "gnan.h5", group="events", t=np.arange(2),
                                                   x=np.array([np.nan, 1.0])), "'x'", "non-finite"))
case("h5-t-float-1e30")(lambda tmp: info(h5_columns(tmp, "big.h5", t=np.array([0.0, 1e30]), x=np.arange(2)), "'t'"))
case("h5-p-fractional")(lambda tmp: info(h5_columns(tmp, "pf.h5", t=np.arange(3), x=np.arange(3),
                                                    p=np.array([0.0, 0.5, 1.0])), "'p'"))


@case("h5-events-not-compound")
def _(tmp):
    return info(h5_columns(tmp, "nc.h5", events=np.zeros((4, 4))), "not a compound")


@case("h5-text-file")
def _(tmp):
    (tmp / "text.h5").write_text("t,x,y,p\n0,1,2,1\n")
    return info(tmp / "text.h5", "cannot read HDF5")


@case("h5-t-is-a-group")
def _(tmp):
    path = tmp / "tg.h5"
    with h5py.File(path, "w") as f:
        f.create_group("t")
        f.create_dataset("x", data=np.arange(2))
    return info(path, "'t' is not a dataset")


@case("h5-sensor-size-garbage")
def _(tmp):
    path = h5_columns(tmp, "ssg.h5", t=np.arange(2), x=np.arange(2))
    with h5py.File(path, "r+") as f:
        f.attrs["sensor_size"] = np.array([0.5, -3.0])
    return info(path, "sensor_size")


@case("h5-compound-uint64-t")
def _(tmp):
    path = tmp / "cu.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("events", data=structured(2, t=np.array([1, 2**64 - 2], np.uint64), x=np.array([0, 1], np.int16)))
    return info(path, "'t'", "event 1")


# --------------------------------------------------------------------------------------------
# N-MNIST .bin, AEDAT 1/2/3, AEDAT4, Prophesee DAT / EVT2 / EVT3
# --------------------------------------------------------------------------------------------


@case("bin-truncated")
def _(tmp):
    (tmp / "cut.bin").write_bytes(BUNDLED_RECORDING.read_bytes()[:-3])
    return info(tmp / "cut.bin", "truncated")


@case("bin-is-a-folder")
def _(tmp):
    (tmp / "dir.bin").mkdir()
    return ["run", BUNDLED_MODEL, tmp / "dir.bin"], ("dir.bin",)


@case("bin-out-of-model-shape")
def _(tmp):
    # x = 200 does not fit the bundled model's 34x34 input: refused before simulating
    (tmp / "wide.bin").write_bytes(bytes([200, 3, 0x80, 0, 10]))
    return ["run", BUNDLED_MODEL, tmp / "wide.bin"], ("wide.bin", "x=200", "outside")


@case("aedat2-truncated")
def _(tmp):
    return info(aedat2(tmp, "cut.aedat", struct.pack(">Ii", 2, 10) + b"\x00\x01\x02"), "truncated AEDAT 2")


@case("aedat2-negative-time")
def _(tmp):
    return info(aedat2(tmp, "neg.aedat", struct.pack(">IiIi", 2, -100, 4, 50)), "'t'", "event 0", "-100")


@case("aedat1-truncated")
def _(tmp):
    return info(aedat2(tmp, "v1.aedat", struct.pack(">Hi", 2, 10) + b"\x00", header=b""), "truncated AEDAT 1")


@case("aedat3-cut-packet-header")
def _(tmp):
    return info(aedat2(tmp, "a3.aedat", b"\x01\x00\x00", header=AEDAT3_HEADER), "packet header")


@case("aedat3-zero-event-size")
def _(tmp):
    return info(aedat2(tmp, "a3z.aedat", aedat3_packet(1, 0, 4, 0, 1, b""), header=AEDAT3_HEADER), "malformed")


@case("aedat3-bad-ts-offset")
def _(tmp):
    data = aedat3_packet(1, 8, 7, 0, 1, bytes(8))
    return info(aedat2(tmp, "a3o.aedat", data, header=AEDAT3_HEADER), "timestamp offset")


@case("aedat3-packet-too-long")
def _(tmp):
    data = aedat3_packet(1, 8, 4, 0, 100, bytes(16))
    return info(aedat2(tmp, "a3l.aedat", data, header=AEDAT3_HEADER), "truncated AEDAT 3")


@case("aedat3-negative-overflow")
def _(tmp):
    event = struct.pack("<Ii", (5 << 17) | (3 << 2) | 1, 100)  # valid polarity event
    data = aedat3_packet(1, 8, 4, -1, 1, event)
    return info(aedat2(tmp, "a3n.aedat", data, header=AEDAT3_HEADER), "'t'", "event 0")


@case("aedat3-overflow-beyond-2-53")
def _(tmp):
    event = struct.pack("<Ii", (5 << 17) | (3 << 2) | 1, 100)
    data = aedat3_packet(1, 8, 4, 2**30, 1, event)
    return info(aedat2(tmp, "a3b.aedat", data, header=AEDAT3_HEADER), "'t'", "2**53")


@case("aedat4-garbage")
def _(tmp):
    (tmp / "junk.aedat4").write_bytes(b"#!AER-DAT4.0\r\n" + bytes(range(256)) * 8)
    return info(tmp / "junk.aedat4", "AEDAT4")


@case("aedat4-empty")
def _(tmp):
    (tmp / "empty.aedat4").write_bytes(b"")
    return info(tmp / "empty.aedat4", "AEDAT4")


@case("aedat4-header-only")
def _(tmp):
    (tmp / "hdr.aedat4").write_bytes(b"#!AER-DAT4.0\r\n")
    return info(tmp / "hdr.aedat4", "AEDAT4")


def _sample_aedat4_with(tmp, name, edit):
    data = bytearray(require_shared_data("formats", "sample.aedat4").read_bytes())
    edit(data)
    (tmp / name).write_bytes(bytes(data))
    return tmp / name


@case("aedat4-truncated-sample")
def _(tmp):
    def cut(data):
        del data[len(data) // 3:]
    return info(_sample_aedat4_with(tmp, "cut.aedat4", cut), "AEDAT4")


@case("aedat4-io-header-length")
def _(tmp):
    # the 4-byte IO-header length after the 14-byte magic set to a huge value
    def edit(data):
        data[14:18] = struct.pack("<I", 0x7FFFFFF0)
    return info(_sample_aedat4_with(tmp, "len.aedat4", edit), "AEDAT4")


@case("aedat4-panic-header-garbage")
def _(tmp):
    # bytes of the IO header replaced: the Rust decoder panics (pyo3_runtime.PanicException, a
    # BaseException) and prints its panic message and backtrace on the process's stderr
    def edit(data):
        rng = np.random.default_rng(20)
        for _ in range(20):
            data[int(rng.integers(18, 400))] = int(rng.integers(0, 256))
    path = _sample_aedat4_with(tmp, "hg.aedat4", edit)
    return info(path, "AEDAT4")


DAT_HEADER = b"% Data file containing Event2D events.\n% Version 2\n% Height 240\n% Width 304\n"


@case("dat-truncated")
def _(tmp):
    return info(prophesee(tmp, "cut.dat", DAT_HEADER, bytes([0, 8]) + bytes(13)), "truncated DAT")


@case("dat-garbage-header")
def _(tmp):
    # no '%' header at all: expelliarmus prints 'ERROR: jump_header failed.' from C and gives None
    return info(prophesee(tmp, "gh.dat", b"", b"\xff" * 26), "cannot decode DAT", "jump_header")


@case("evt3-unknown-event-type")
def _(tmp):
    # expelliarmus prints 'ERROR: event type not recognised' on stderr: it must only be in our line
    return info(prophesee(tmp, "ut.raw", b"% evt 3.0\n% geometry 99999x99999\n% end\n", bytes(range(64))),
                "cannot decode EVT3", "not recognised")


@case("evt2-unknown-event-type")
def _(tmp):
    return info(prophesee(tmp, "ut2.raw", b"% evt 2.0\n% end\n", bytes(range(64))), "cannot decode EVT2")


@case("evt3-all-ones")
def _(tmp):
    return info(prophesee(tmp, "ones.raw", b"% evt 3.0\n", b"\xff" * 64), "cannot decode EVT3")


@case("dat-no-header-random")
def _(tmp):
    rng = np.random.default_rng(3)
    return info(prophesee(tmp, "nh.dat", b"", rng.integers(0, 256, 8 * 50 + 2, dtype=np.uint8).tobytes()), "nh.dat")


@case("raw-no-evt-line")
def _(tmp):
    return info(prophesee(tmp, "nov.raw", b"% date today\n% end\n", bytes(8)), "EVT2 from EVT3")


@case("raw-evt4-unsupported")
def _(tmp):
    return info(prophesee(tmp, "e4.raw", b"% evt 4.0\n% end\n", bytes(8)), "unsupported", "evt4")


@case("raw-evt3-odd-bytes")
def _(tmp):
    return info(prophesee(tmp, "odd.raw", b"% evt 3.0\n% end\n", bytes(7)), "truncated EVT3")


@case("raw-evt2-truncated")
def _(tmp):
    return info(prophesee(tmp, "cut2.raw", b"% evt 2.0\n% end\n", bytes(10)), "truncated EVT2")


@case("raw-evt3-garbage-header-sample")
def _(tmp):
    data = bytearray(require_shared_data("formats", "evt3_sample.raw").read_bytes())
    start = data.index(b"% end") + 6 if b"% end" in data else 200
    payload = data[start:start + 4000]
    return info(prophesee(tmp, "gh3.raw", b"% evt 3.0\n% geometry \xff\xffx-1\n% end\n",
                          bytes(payload[:-1])), "gh3.raw")


# --------------------------------------------------------------------------------------------
# files and extensions
# --------------------------------------------------------------------------------------------


@case("recording-missing")
def _(tmp):
    return info(tmp / "nothere.bin", "no such file")


@case("recording-unknown-extension")
def _(tmp):
    (tmp / "events.csv").write_text("t,x\n0,1\n")
    return info(tmp / "events.csv", "unknown recording extension")


@case("recording-no-extension")
def _(tmp):
    (tmp / "events").write_bytes(bytes(10))
    return info(tmp / "events", "'(none)'")


@case("run-npy-p-outside-model")
def _(tmp):
    path = npy_with(tmp, "chan.npy", p=np.array([0, 1, 5], np.int8))
    return ["run", BUNDLED_MODEL, path], ("chan.npy", "p=5", "outside")


@case("run-npy-t-negative")
def _(tmp):
    path = npy_with(tmp, "neg.npy", t=np.array([-5, 0, 10]))
    return ["run", BUNDLED_MODEL, path], ("neg.npy", "'t'")


@case("run-npy-float-x")
def _(tmp):
    path = npy_with(tmp, "fx.npy", x=np.array([0.5, 1.0, 2.0]))
    return ["run", BUNDLED_MODEL, path], ("fx.npy", "'x'")


# --------------------------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------------------------

case("model-input-8e10")(lambda tmp: model_case(tmp, "input/shape", np.array([2, 200_000, 200_000]),
                                                "'input'", "80,000,000,000", "GiB", "limit"))
case("model-input-dims-overflow-int64")(lambda tmp: model_case(tmp, "input/shape", np.array([2**40, 2**40]),
                                                               "'input'", "limit"))
case("model-input-string-shape")(lambda tmp: model_case(tmp, "input/shape", np.array([b"2", b"6", b"6"]),
                                                        "'input'", "shape"))
case("model-input-negative")(lambda tmp: model_case(tmp, "input/shape", np.array([2, -6, 6]), "'input'",
                                                    "non-positive"))
case("model-input-zero")(lambda tmp: model_case(tmp, "input/shape", np.array([2, 0, 6]), "'input'", "non-positive"))
case("model-input-fractional")(lambda tmp: model_case(tmp, "input/shape", np.array([2.0, 6.5, 6.0]), "'input'",
                                                      "integers"))
case("model-input-nan")(lambda tmp: model_case(tmp, "input/shape", np.array([2.0, np.nan, 6.0]), "'input'"))
case("model-fc-complex")(lambda tmp: model_case(tmp, "fc/weight", np.ones((3, 64)) * (1 + 1j), "'fc'", "complex"))
case("model-fc-string")(lambda tmp: model_case(tmp, "fc/weight", np.full((3, 64), b"1"), "'fc'", "'weight'"))
case("model-fc-1d")(lambda tmp: model_case(tmp, "fc/weight", np.ones(64), "'fc'", "2-D"))
case("model-fc-nan")(lambda tmp: model_case(tmp, "fc/weight", np.full((3, 64), np.nan), "'fc'", "non-finite"))
case("model-fc-bias-shape")(lambda tmp: model_case(tmp, "fc/bias", np.zeros(5), "'fc'", "bias"))
case("model-fc-bias-complex")(lambda tmp: model_case(tmp, "fc/bias", np.zeros(3, complex), "'fc'", "complex"))
case("model-fc-empty")(lambda tmp: model_case(tmp, "fc/weight", np.zeros((0, 64)), "'fc'", "empty"))
case("model-conv-stride-0")(lambda tmp: model_case(tmp, "conv/stride", np.array([0, 1]), "'conv'", "'stride'", ">= 1"))
case("model-conv-stride-fractional")(lambda tmp: model_case(tmp, "conv/stride", np.array([1.5, 1.0]), "'conv'",
                                                            "'stride'"))
case("model-conv-dilation-0")(lambda tmp: model_case(tmp, "conv/dilation", np.array([0, 0]), "'conv'", "'dilation'"))
case("model-conv-padding-negative")(lambda tmp: model_case(tmp, "conv/padding", np.array([-1, 0]), "'conv'",
                                                           "'padding'"))
case("model-conv-padding-word")(lambda tmp: model_case(tmp, "conv/padding", "full", "'conv'", "padding"))
case("model-conv-groups-3")(lambda tmp: model_case(tmp, "conv/groups", 3, "'conv'", "groups"))
case("model-conv-groups-0")(lambda tmp: model_case(tmp, "conv/groups", 0, "'conv'", "'groups'"))
case("model-conv-weight-empty-kernel")(lambda tmp: model_case(tmp, "conv/weight", np.ones((4, 2, 0, 3)), "'conv'",
                                                              "kernel"))
case("model-conv-weight-complex")(lambda tmp: model_case(tmp, "conv/weight", np.ones((4, 2, 3, 3), complex),
                                                         "'conv'", "complex"))
case("model-conv-input-shape-string")(lambda tmp: model_case(tmp, "conv/input_shape", np.array([b"6", b"6"]),
                                                             "'conv'", "input_shape"))
case("model-conv-kernel-too-large")(lambda tmp: model_case(tmp, "conv/weight", np.ones((4, 2, 9, 9)), "'conv'",
                                                           "does not fit"))
case("model-if-threshold-inf")(lambda tmp: model_case(tmp, "if1/v_threshold", np.full((4, 4, 4), np.inf), "'if1'",
                                                      "non-finite"))
case("model-if-r-nan")(lambda tmp: model_case(tmp, "if1/r", np.full((4, 4, 4), np.nan), "'if1'", "'r'"))
case("model-if-threshold-text")(lambda tmp: model_case(tmp, "if1/v_threshold", np.full((4, 4, 4), b"x"), "'if1'",
                                                       "v_threshold"))
case("model-if-param-shape")(lambda tmp: model_case(tmp, "if1/v_threshold", np.ones((5, 5)), "'if1'",
                                                    "v_threshold (5, 5)"))
case("model-lif-tau-0")(lambda tmp: model_case(tmp, "lif/tau", np.zeros(3), "'lif'", "tau"))
case("model-lif-tau-negative")(lambda tmp: model_case(tmp, "lif/tau", np.full(3, -0.01), "'lif'", "tau"))
case("model-lif-tau-complex")(lambda tmp: model_case(tmp, "lif/tau", np.full(3, 0.01 + 0j), "'lif'", "complex"))
case("model-flatten-start-fractional")(lambda tmp: model_case(tmp, "flat/start_dim", 0.5, "'flat'", "start_dim"))
case("model-stored-array-1e10")(lambda tmp: model_case(
    tmp, "fc/weight", None, "'fc'", "10,000,000,000", "limit", shape=(10**5, 10**5), dtype="f8", chunks=(1000, 1000),
    compression="gzip"))


@case("model-scale-stored-8e10")
def _(tmp):
    # a Scale whose (compressed, never written) scale array declares 8e10 elements: refused
    # before h5py would try to read 600 GiB
    g = small_graph()
    g.nodes["scale"] = nir.Scale(scale=np.ones(3))
    g.edges = [e for e in g.edges if e != ("fc", "lif")] + [("fc", "scale"), ("scale", "lif")]
    path = write_graph(tmp, g)
    with h5py.File(path, "r+") as f:
        del f["node/nodes/scale/scale"]
        f.create_dataset("node/nodes/scale/scale", shape=(2, 200_000, 200_000), dtype="f8", chunks=(1, 1000, 1000),
                         compression="gzip")
    return ["info", path], ("'scale'", "80,000,000,000", "limit")


@case("model-cuba-tau-syn-negative")
def _(tmp):
    cuba = nir.CubaLIF(tau_mem=np.full(3, 0.01), tau_syn=np.full(3, -0.005), r=np.ones(3), v_leak=np.zeros(3),
                       v_threshold=np.ones(3), v_reset=np.zeros(3), w_in=np.ones(3))
    return ["info", write_graph(tmp, small_graph(lif=cuba))], ("'lif'", "tau_syn")


@case("model-cuba-w-in-text")
def _(tmp):
    cuba = nir.CubaLIF(tau_mem=np.full(3, 0.01), tau_syn=np.full(3, 0.005), r=np.ones(3), v_leak=np.zeros(3),
                       v_threshold=np.ones(3), v_reset=np.zeros(3), w_in=np.ones(3))
    path = write_graph(tmp, small_graph(lif=cuba))
    with h5py.File(path, "r+") as f:
        del f["node/nodes/lif/w_in"]
        f["node/nodes/lif/w_in"] = np.array([b"a", b"b", b"c"])
    return ["info", path], ("'lif'", "w_in")


def _pool_graph(**pool):
    kwargs = {"kernel_size": np.array([2, 2]), "stride": np.array([2, 2]), "padding": np.array([0, 0])}
    kwargs.update(pool)
    nodes = {
        "input": nir.Input(input_type={"input": np.array([2, 6, 6])}),
        "pool": nir.SumPool2d(**kwargs),
        "if1": nir.IF(r=np.ones(1), v_threshold=np.ones(1), v_reset=np.zeros(1)),
        "output": nir.Output(output_type={"output": np.array([2, 3, 3])}),
    }
    edges = [("input", "pool"), ("pool", "if1"), ("if1", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


case("model-pool-kernel-0")(lambda tmp: (["info", write_graph(tmp, _pool_graph(kernel_size=np.array([0, 0])))],
                                         ("'pool'", "kernel_size")))
case("model-pool-stride-0")(lambda tmp: (["info", write_graph(tmp, _pool_graph(stride=np.array([0, 2])))],
                                         ("'pool'", "stride")))
case("model-pool-padding-negative")(lambda tmp: (["info", write_graph(tmp, _pool_graph(padding=np.array([-1, 0])))],
                                                 ("'pool'", "padding")))


@case("model-delay-negative")
def _(tmp):
    g = small_graph()
    g.nodes["delay"] = nir.Delay(delay=np.full(3, -1e-3))
    g.edges = [e for e in g.edges if e != ("fc", "lif")] + [("fc", "delay"), ("delay", "lif")]
    return ["info", write_graph(tmp, g)], ("'delay'", "negative")


@case("model-scale-complex")
def _(tmp):
    g = small_graph()
    g.nodes["scale"] = nir.Scale(scale=np.full(3, 2 + 1j))
    g.edges = [e for e in g.edges if e != ("fc", "lif")] + [("fc", "scale"), ("scale", "lif")]
    return ["info", write_graph(tmp, g)], ("'scale'", "complex")


@case("model-scale-nan")
def _(tmp):
    g = small_graph()
    g.nodes["scale"] = nir.Scale(scale=np.array([1.0, np.nan, 1.0]))
    g.edges = [e for e in g.edges if e != ("fc", "lif")] + [("fc", "scale"), ("scale", "lif")]
    return ["info", write_graph(tmp, g)], ("'scale'", "non-finite")


@case("model-too-many-neurons")
def _(tmp):
    # every tensor below the limit, but 3 populations of 2**25 neurons together above it
    g = nir.NIRGraph(nodes={
        "input": nir.Input(input_type={"input": np.array([2**25])}),
        "a": nir.IF(r=np.ones(1), v_threshold=np.ones(1), v_reset=np.zeros(1)),
        "b": nir.IF(r=np.ones(1), v_threshold=np.ones(1), v_reset=np.zeros(1)),
        "c": nir.IF(r=np.ones(1), v_threshold=np.ones(1), v_reset=np.zeros(1)),
        "output": nir.Output(output_type={"output": np.array([2**25])}),
    }, edges=[("input", "a"), ("a", "b"), ("b", "c"), ("c", "output")], type_check=False)
    return ["info", write_graph(tmp, g)], ("neurons", "GiB", "limit")


@case("model-missing")
def _(tmp):
    return ["run", tmp / "nope.nir", BUNDLED_RECORDING], ("nope.nir", "no such file")


@case("model-not-hdf5")
def _(tmp):
    (tmp / "junk.nir").write_bytes(b"\x89HDF garbage")
    return ["run", tmp / "junk.nir", BUNDLED_RECORDING], ("junk.nir", "cannot read")


@case("model-unknown-node")
def _(tmp):
    path = write_graph(tmp)
    with h5py.File(path, "r+") as f:
        del f["node/nodes/if1/type"]
        f["node/nodes/if1"].create_dataset("type", data="Threshold")
    return ["run", path, BUNDLED_RECORDING], ("'if1'", "Threshold")


@case("model-output-unreachable")
def _(tmp):
    g = small_graph()
    g.edges = [e for e in g.edges if e != ("lif", "output")]
    return ["info", write_graph(tmp, g)], ("not reachable",)


@case("model-recording-shape-mismatch")
def _(tmp):
    # the small model takes (2, 6, 6); the bundled recording addresses 34x34 pixels
    return ["run", write_graph(tmp), BUNDLED_RECORDING], ("outside the model input shape",)


# --------------------------------------------------------------------------------------------
# datasets (folders) and --subset files
# --------------------------------------------------------------------------------------------

case("data-missing")(lambda tmp: (["eval", BUNDLED_MODEL, tmp / "nowhere", "--quiet"], ("nowhere", "does not exist")))


@case("data-is-a-file")
def _(tmp):
    (tmp / "file.bin").write_bytes(b"")
    return ["eval", BUNDLED_MODEL, tmp / "file.bin", "--quiet"], ("not a folder",)


@case("data-empty-folder")
def _(tmp):
    (tmp / "empty").mkdir()
    return ["eval", BUNDLED_MODEL, tmp / "empty", "--quiet"], ("no recordings found",)


@case("data-only-text-files")
def _(tmp):
    root = dataset(tmp, {"0/a.txt": b"hello", "1/b.csv": b"t,x"})
    return ["eval", BUNDLED_MODEL, root, "--quiet"], ("no recordings found",)


@case("data-bad-recording")
def _(tmp):
    bad = structured(3, **dict(good_columns(), x=np.array([1.0, np.nan, 2.0])))
    root = dataset(tmp, {"0/a.npy": bad})
    # a dataset with a bad recording goes on by default (an error record, tests/test_evaluate.py);
    # `--on-error stop` makes it the one-line error it is for a single recording
    return ["eval", BUNDLED_MODEL, root, "--quiet", "--on-error", "stop"], ("a.npy", "'x'")


def _subset_case(tmp, content: bytes, name: str, *fragments, key=""):
    root = dataset(tmp, {"0/a.npy": good_events()})
    (tmp / name).write_bytes(content)
    spec = f"{tmp / name}{':' + key if key else ''}"
    return ["eval", BUNDLED_MODEL, root, "--subset", spec, "--quiet"], ("--subset",) + fragments


case("subset-bad-json")(lambda tmp: _subset_case(tmp, b"{not json", "s.json", "not valid JSON"))
case("subset-binary")(lambda tmp: _subset_case(tmp, bytes(range(256)), "s.txt", "not a text"))
case("subset-binary-json")(lambda tmp: _subset_case(tmp, b"\xff\xfe\x00[", "b.json", "not a text"))


@case("subset-missing")
def _(tmp):
    root = dataset(tmp, {"0/a.npy": good_events()})
    return ["eval", BUNDLED_MODEL, root, "--subset", tmp / "gone.json", "--quiet"], ("--subset", "does not exist")


case("subset-dict-of-numbers")(lambda tmp: _subset_case(tmp, b'{"train": 3}', "d.json", "list of path strings"))
case("subset-list-of-ints")(lambda tmp: _subset_case(tmp, b"[1, 2]", "l.json", "list of path strings"))
case("subset-number")(lambda tmp: _subset_case(tmp, b"42", "n.json", "int"))
case("subset-missing-key")(lambda tmp: _subset_case(tmp, b'{"train": []}', "k.json", "no list 'test'", key="test"))
case("subset-key-on-list")(lambda tmp: _subset_case(tmp, b'["0/a.npy"]', "kl.json", "not a dict", key="test"))
case("subset-lists-nothing")(lambda tmp: _subset_case(tmp, b"0/other.npy\n", "t.txt", "no recording"))
case("subset-null-byte-path")(lambda tmp: _subset_case(tmp, b'["0/a\\u0000.npy"]', "z.json", "list of path strings"))
case("subset-deep-json")(lambda tmp: _subset_case(tmp, b"[" * 100000 + b"]" * 100000, "deep.json", "JSON"))

# --------------------------------------------------------------------------------------------
# output paths: refused before anything runs
# --------------------------------------------------------------------------------------------

case("run-json-missing-folder")(lambda tmp: (["run", BUNDLED_MODEL, BUNDLED_RECORDING, "--json", tmp / "no/r.json"],
                                             ("--json", "does not exist")))
case("run-json-is-folder")(lambda tmp: (["run", BUNDLED_MODEL, BUNDLED_RECORDING, "--json", tmp],
                                        ("--json", "is a directory")))
case("run-raster-jpg")(lambda tmp: (["run", BUNDLED_MODEL, BUNDLED_RECORDING, "--raster", tmp / "r.jpg"],
                                    ("--raster", ".jpg")))
case("eval-json-missing-folder")(lambda tmp: (["eval", BUNDLED_MODEL, tmp, "--json", tmp / "no/e.json", "--quiet"],
                                              ("--json", "does not exist")))
case("eval-csv-missing-folder")(lambda tmp: (["eval", BUNDLED_MODEL, tmp, "--csv", tmp / "no/e.csv", "--quiet"],
                                             ("--csv", "does not exist")))
case("calibrate-output-missing-folder")(lambda tmp: (["calibrate", BUNDLED_MODEL, tmp, "--cutoff", "topk", "-o",
                                                      tmp / "no/c.json", "--quiet"], ("-o/--output", "does not exist")))
case("info-json-missing-folder")(lambda tmp: (["info", BUNDLED_MODEL, "--json", tmp / "no/i.json"],
                                              ("--json", "does not exist")))
case("raster-output-txt")(lambda tmp: (["raster", BUNDLED_MODEL, BUNDLED_RECORDING, "-o", tmp / "r.txt"],
                                       ("-o/--output", ".txt")))
case("raster-evidence-gif")(lambda tmp: (["raster", BUNDLED_MODEL, BUNDLED_RECORDING, "-o", tmp / "r.png",
                                          "--evidence", tmp / "e.gif"], ("--evidence", ".gif")))
case("plot-output-jpg")(lambda tmp: (["plot", tmp / "x.json", "-o", tmp / "p.jpg"], ("-o/--output", ".jpg")))


@case("info-json-parent-is-file")
def _(tmp):
    (tmp / "afile").write_text("x")
    return ["info", BUNDLED_MODEL, "--json", tmp / "afile" / "i.json"], ("--json", "not a folder")


@case("eval-json-read-only-folder")
def _(tmp):
    ro = tmp / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    if os.access(ro, os.W_OK):  # root ignores permissions: use a path under a file instead
        (tmp / "f").write_text("x")
        return ["eval", BUNDLED_MODEL, tmp, "--json", tmp / "f" / "e.json", "--quiet"], ("--json",)
    return ["eval", BUNDLED_MODEL, tmp, "--json", ro / "e.json", "--quiet"], ("--json", "not writable")


# --------------------------------------------------------------------------------------------
# option values and option files
# --------------------------------------------------------------------------------------------


def _run(*options):
    return ["run", BUNDLED_MODEL, BUNDLED_RECORDING, *options]


case("opt-bin-us-negative")(lambda tmp: (_run("--mode", "clock", "--bin-us", "-5"), ("--bin-us",)))
case("opt-n-bins-0")(lambda tmp: (_run("--mode", "clock", "--n-bins", "0"), ("--n-bins",)))
case("opt-crop-text")(lambda tmp: (_run("--crop", "abc"), ("--crop",)))
case("opt-sensor-size-3d")(lambda tmp: (_run("--sensor-size", "3x4x5"), ("--sensor-size",)))
case("opt-downsample-negative")(lambda tmp: (_run("--downsample", "-1"), ("downsample",)))
case("opt-refractory-negative")(lambda tmp: (_run("--refractory-us", "-1"), ("--refractory-us",)))
case("opt-dt-zero")(lambda tmp: (_run("--profile", "speck", "--dt-us", "0"), ("--dt-us",)))
case("opt-v-min-nan")(lambda tmp: (_run("--v-min", "nan"), ("--v-min",)))
case("opt-temperature-zero")(lambda tmp: (_run("--temperature", "0"), ("--temperature",)))
case("opt-threshold-nan")(lambda tmp: (_run("--cutoff", "topk", "--threshold", "nan"), ("--threshold",)))
case("opt-epsilon-2")(lambda tmp: (_run("--cutoff", "conf", "--epsilon", "2"), ("--epsilon",)))
case("opt-topk-without-threshold")(lambda tmp: (_run("--cutoff", "topk"), ("--threshold",)))
case("opt-unknown-profile")(lambda tmp: (_run("--profile", "loihi"), ("loihi",)))
case("opt-downsample-huge")(lambda tmp: (_run("--downsample", "1e6"), ("downsample", "32767")))
case("opt-sensor-size-huge")(lambda tmp: (_run("--sensor-size", "99999999999x3", "--crop", "10x10"),
                                          ("--sensor-size", "32768")))
case("opt-t-end-inf")(lambda tmp: (_run("--t-end-us", "inf"), ("--t-end-us",)))
case("opt-t-start-1e300")(lambda tmp: (_run("--t-start-us", "1e300"), ("--t-start-us", "2**53")))
case("opt-max-events-negative")(lambda tmp: (_run("--max-events", "-1"), ("--max-events",)))
case("opt-limit-0")(lambda tmp: (["eval", BUNDLED_MODEL, dataset(tmp, {"0/a.npy": good_events()}), "--limit", "0",
                                  "--quiet"], ("--limit",)))
case("opt-workers-0")(lambda tmp: (["eval", BUNDLED_MODEL, dataset(tmp, {"0/a.npy": good_events()}), "--workers",
                                    "0", "--quiet"], ("--workers",)))
case("opt-calibration-missing")(lambda tmp: (_run("--calibration", tmp / "c.json"), ("--calibration",
                                                                                     "does not exist")))


@case("opt-calibration-binary")
def _(tmp):
    (tmp / "c.json").write_bytes(bytes(range(256)))
    return _run("--calibration", tmp / "c.json"), ("--calibration", "not a JSON file")


@case("opt-calibration-not-evsim")
def _(tmp):
    (tmp / "c.json").write_text(json.dumps({"hello": 1}))
    return _run("--calibration", tmp / "c.json"), ("--calibration", "not an evsim calibration")


@case("plot-results-binary")
def _(tmp):
    (tmp / "r.json").write_bytes(bytes(range(256)))
    return ["plot", tmp / "r.json", "-o", tmp / "p.png"], ("RESULTS", "not a JSON file")


@case("plot-results-not-eval")
def _(tmp):
    (tmp / "r.json").write_text("[1, 2]")
    return ["plot", tmp / "r.json", "-o", tmp / "p.png"], ("RESULTS", "not an `evsim eval --json` result")


# --------------------------------------------------------------------------------------------
# the tests
# --------------------------------------------------------------------------------------------


def test_the_battery_is_large_enough():
    assert len(CASES) >= 100, len(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_one_line_with_exit_code_2(name, tmp_path, capfd, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv, fragments = CASES[name](tmp_path)
    code, out, err, caught = run_cli(capfd, argv)
    assert_one_line_error(code, err, caught, fragments)


SUBPROCESS_CASES = ("dat-garbage-header", "evt3-unknown-event-type", "aedat4-panic-header-garbage", "npy-t-uint64-wraps", "model-input-8e10",
                    "subset-binary", "eval-json-missing-folder")


@pytest.mark.parametrize("name", SUBPROCESS_CASES)
def test_bad_input_in_a_real_process(name, tmp_path):
    """The console entry point in a fresh interpreter, warnings turned into errors: nothing but
    the one line reaches the real stderr (C and Rust decoders print to the process's fd 2)."""
    argv, fragments = CASES[name](tmp_path)
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               RUST_BACKTRACE="1")
    proc = subprocess.run([sys.executable, "-W", "error", "-c", "import sys; from evsim.cli import main; "
                           "sys.exit(main(sys.argv[1:]))", *[str(a) for a in argv]],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("evsim: error:"), proc.stderr
    for fragment in fragments:
        assert fragment in lines[0]


# --------------------------------------------------------------------------------------------
# the Python API: EvsimError subclasses only, no warnings
# --------------------------------------------------------------------------------------------


def _small_model(tmp):
    return evsim.load_model(write_graph(tmp), profile="nir")


def _nan_t_events():
    arr = np.zeros(3, dtype=[("x", "<i2"), ("y", "<i2"), ("t", "<f8"), ("p", "<i1")])
    arr["t"] = [0.0, np.nan, 2.0]
    return arr


API_CASES = {
    "make-events-nan-t": (lambda tmp: evsim.make_events([0, np.nan], [1, 2]), evsim.RecordingError, "'t'"),
    "make-events-lengths": (lambda tmp: evsim.make_events([0, 1], [1, 2, 3]), evsim.RecordingError, "length"),
    "make-events-negative-x": (lambda tmp: evsim.make_events([0, 1], [1, -2]), evsim.RecordingError, "'x'"),
    "make-events-scalar": (lambda tmp: evsim.make_events(5, 3), evsim.RecordingError, "1-D"),
    "make-events-text": (lambda tmp: evsim.make_events(["0", "1"], [1, 2]), evsim.RecordingError, "text"),
    "simulator-nan-t": (lambda tmp: evsim.Simulator(_small_model(tmp)).run(_nan_t_events()), evsim.RecordingError,
                        "non-finite"),
    "simulator-list": (lambda tmp: evsim.Simulator(_small_model(tmp)).run([(0, 1, 2, 0)]), evsim.RecordingError,
                       "structured"),
    "simulator-2d": (lambda tmp: evsim.Simulator(_small_model(tmp)).run(np.zeros((2, 2), evsim.EVENT_DTYPE)),
                     evsim.RecordingError, "1-D"),
    "simulator-missing-p": (lambda tmp: evsim.Simulator(_small_model(tmp)).run(
        structured(2, t=np.array([0, 1]), x=np.array([0, 1]), y=np.array([0, 1]))), evsim.RecordingError, "p"),
    "simulator-negative-t": (lambda tmp: evsim.Simulator(_small_model(tmp)).run(
        np.array([(0, 0, -5, 0)], dtype=evsim.EVENT_DTYPE)), evsim.RecordingError, "'t'"),
    "clock-simulator-nan-t": (lambda tmp: evsim.ClockSimulator(_small_model(tmp), bin_us=1000.0).run(_nan_t_events()),
                              evsim.RecordingError, "non-finite"),
    "read-recording-bad-format": (lambda tmp: evsim.read_recording(BUNDLED_RECORDING, format="bogus"),
                                  evsim.RecordingError, "bogus"),
    "read-recording-nan": (lambda tmp: evsim.read_recording(npy_with(tmp, x=np.array([np.nan, 1.0, 2.0]))),
                           evsim.RecordingError, "'x'"),
    "load-model-graph-complex": (lambda tmp: evsim.load_model(small_graph(fc=nir.Affine(
        weight=np.ones((3, 64), complex), bias=np.zeros(3)))), evsim.ModelError, "complex"),
    "load-model-graph-text-weight": (lambda tmp: evsim.load_model(small_graph(fc=nir.Linear(
        weight=np.full((3, 64), "w")))), evsim.ModelError, "'weight'"),
    "load-model-graph-huge-input": (lambda tmp: evsim.load_model(nir.NIRGraph(nodes={
        "input": nir.Input(input_type={"input": np.array([2, 200_000, 200_000])}),
        "if1": nir.IF(r=np.ones(1), v_threshold=np.ones(1), v_reset=np.zeros(1)),
        "output": nir.Output(output_type={"output": np.array([1])})},
        edges=[("input", "if1"), ("if1", "output")], type_check=False)), evsim.ModelError, "limit"),
    "load-model-graph-stride-0": (lambda tmp: evsim.load_model(small_graph(conv=nir.Conv2d(
        input_shape=None, weight=np.ones((4, 2, 3, 3)), stride=0, padding=0, dilation=1, groups=1,
        bias=np.zeros(4)))), evsim.ModelError, "'stride'"),
    "load-model-not-a-graph": (lambda tmp: evsim.load_model(42), evsim.ModelError, "int"),
    "folder-dataset-missing": (lambda tmp: evsim.FolderDataset(tmp / "none"), evsim.RecordingError, "does not exist"),
}


@pytest.mark.parametrize("name", sorted(API_CASES))
def test_api_raises_evsim_errors_only(name, tmp_path):
    call, error, fragment = API_CASES[name]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(error) as info:
            call(tmp_path)
    assert not caught, [str(w.message) for w in caught]
    message = str(info.value)
    assert fragment in message and "\n" not in message, message


def test_timestamp_limit_is_2_to_the_53_us(tmp_path):
    """0 <= t < 2**53 us: the largest legal timestamp reads back exactly; one more is refused,
    naming the event, its value and the count."""
    ok = npy_with(tmp_path, "edge.npy", t=np.array([0, 1, 2**53 - 1], np.uint64))
    assert int(evsim.read_recording(ok).events["t"][-1]) == 2**53 - 1
    over = npy_with(tmp_path, "over.npy", t=np.array([0, 2**53, 2**53 + 5], np.uint64))
    with pytest.raises(evsim.RecordingError, match=r"over\.npy: field 't': event 1 has t=9007199254740992.*2 of 3"):
        evsim.read_recording(over)


def test_integral_floats_convert_without_loss(tmp_path):
    """Float columns holding integers are legal and convert exactly (compared with int columns)."""
    path = npy_with(tmp_path, "floats.npy", t=np.array([0.0, 7.0, 2.0**52]), x=np.array([0.0, 5.0, 32767.0]),
                    y=np.array([3.0, 2.0, 1.0], np.float32))
    events = evsim.read_recording(path).events
    assert events["t"].tolist() == [0, 7, 2**52]
    assert events["x"].tolist() == [0, 5, 32767] and events["y"].tolist() == [3, 2, 1]


def test_size_limit_boundary():
    """MAX_ELEMENTS is inclusive: an Input of exactly 2**26 elements passes the shape check, one
    more element is refused with a memory estimate."""
    from evsim.errors import ModelError
    from evsim.model.validate import BYTES_PER_NEURON, MAX_ELEMENTS, _check_shape

    assert MAX_ELEMENTS == 2**26
    _check_shape(np.array([4, 2**12, 2**12]), "shape", "input", None)
    with pytest.raises(ModelError) as info:
        _check_shape(np.array([2**26 + 1]), "shape", "input", None)
    assert BYTES_PER_NEURON == 56  # 2**26 neurons x 56 bytes = 3.5 GiB
    assert "3.5 GiB" in str(info.value) and "67,108,865" in str(info.value)


def test_output_path_checks_do_not_create_anything(tmp_path):
    """A refused output leaves no file or folder behind; an accepted one is not created early."""
    from evsim.errors import OptionError
    from evsim.paths import check_output_path

    with pytest.raises(OptionError, match="does not exist"):
        check_output_path(tmp_path / "a" / "b.json", "--json")
    assert not (tmp_path / "a").exists()
    assert check_output_path(tmp_path / "fig" / "r.png", "--raster", suffixes=(".png", ".svg"), make_parents=True)
    assert not (tmp_path / "fig").exists()
    assert check_output_path(tmp_path / "ok.json", "--json") == tmp_path / "ok.json"
    assert not (tmp_path / "ok.json").exists()


@pytest.mark.parametrize("args,option", [
    (["--v-min", "1e300"], "--v-min"),
    (["--dt-us", "1e300"], "--dt-us"),
    (["--refractory-us", "nan"], "--refractory-us"),
    (["--recurrent-delay-us", "inf"], "--recurrent-delay-us"),
])
def test_model_options_beyond_the_stated_bounds_are_refused(capsys, args, option):
    code = main(["run", *args])
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("evsim: error:") and option in lines[0]


def test_clock_mode_refuses_a_time_span_it_would_step_for_hours(tmp_path, capsys):
    """A recording with an hour-long gap in 1 µs bins would take 3.6e9 steps: refused at once
    with the span, the bin count and the limit (docs/SEMANTICS.md#input-validation)."""
    from evsim.sim.clock import MAX_CLOCK_STEPS, bin_steps

    ev = evsim.make_events(t=[0, 10, 3_600_000_000], x=[0, 1, 2], y=[0, 0, 0], p=[0, 0, 0])
    path = tmp_path / "gap.npy"
    np.save(path, ev)
    code = main(["run", str(BUNDLED_MODEL), str(path), "--mode", "clock", "--bin-us", "1"])
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and "--bin-us" in lines[0] and "3,600,000,001 bins" in lines[0]
    # the limit itself, and exact bins when span × n_bins exceeds int64
    k, n, _ = bin_steps(np.array([0, 1, 2 ** 52], dtype=np.int64), n_bins=MAX_CLOCK_STEPS)
    assert n == MAX_CLOCK_STEPS and k.tolist() == [0, 0, MAX_CLOCK_STEPS - 1]
    k, _, _ = bin_steps(np.array([0, 2 ** 51, 2 ** 52], dtype=np.int64), n_bins=4)
    assert k.tolist() == [0, 2, 3]

"""Recording I/O (evsim.input.recordings), labelled folders (evsim.input.datasets) and pre-simulation
transforms (evsim.input.transforms).

Real-file tests compare evsim's readers with independent decodes: the EVT3 ground truth shipped
with expelliarmus's tests, a plain-numpy N-MNIST decoder written here, tonic's and expelliarmus's
own readers. Synthetic files are written here byte by byte from the format descriptions.
"""

from __future__ import annotations

import os
import struct

import h5py
import numpy as np
import pytest

from evsim.input.datasets import FolderDataset
from evsim.errors import OptionError, RecordingError
from evsim.input.events import EVENT_DTYPE
from evsim.input.recordings import Recording, read_events, read_recording, recording_info
from evsim.input.transforms import (
    TRANSFORM_ORDER,
    build_transform,
    crop,
    crop_time,
    denoise,
    downsample,
    merge_polarities,
)


def ev(t, x, y=None, p=None):
    """Tiny EVENT_DTYPE arrays for hand-computed examples."""
    out = np.zeros(len(t), dtype=EVENT_DTYPE)
    out["t"], out["x"] = t, x
    if y is not None:
        out["y"] = y
    if p is not None:
        out["p"] = p
    return out


def assert_fields_equal(actual, expected, names=("t", "x", "y", "p")):
    assert actual.shape == expected.shape
    for name in names:
        np.testing.assert_array_equal(
            actual[name].astype(np.int64), expected[name].astype(np.int64), err_msg=f"field {name}"
        )


# ---------------------------------------------------------------------------------------------
# Prophesee EVT3 / EVT2 / DAT
# ---------------------------------------------------------------------------------------------


def test_evt3_matches_ground_truth(formats_dir):
    truth = np.load(formats_dir / "evt3_sample.npy")
    assert truth.shape == (219_596,)
    rec = read_recording(formats_dir / "evt3_sample.raw")
    assert rec.format == "evt3"
    assert rec.events.dtype == EVENT_DTYPE
    assert_fields_equal(rec.events, truth)  # field by field, by name (truth is ordered t, x, y, p)
    assert rec.sensor_size is None  # the header has no geometry line


def test_evt2_detected_from_header(formats_dir, tmp_path):
    from expelliarmus import Wizard

    source = np.load(formats_dir / "evt3_sample.npy")[:20_000]
    path = tmp_path / "sample_evt2.raw"
    Wizard(encoding="evt2").save(str(path), source)
    assert b"% evt 2.0" in path.read_bytes()[:200]
    rec = read_recording(path)
    assert rec.format == "evt2"
    assert_fields_equal(rec.events, source)


def test_raw_without_evt_line_needs_explicit_format(formats_dir, tmp_path):
    data = (formats_dir / "evt3_sample.raw").read_bytes()
    body = data[data.index(b"% system_ID 48\n") + len(b"% system_ID 48\n"):]
    path = tmp_path / "noversion.raw"
    path.write_bytes(b"% Date 2020-09-25 07:48:29\n" + body)
    with pytest.raises(RecordingError, match="noversion.raw.*EVT2 from EVT3"):
        read_events(path)
    events = read_events(path, format="evt3")
    assert events.shape == (219_596,)


def test_explicit_format_with_other_extension(formats_dir, tmp_path):
    path = tmp_path / "recording.events"
    path.write_bytes((formats_dir / "evt3_sample.raw").read_bytes())
    with pytest.raises(RecordingError, match="unknown recording extension"):
        read_events(path)
    assert read_events(path, format="evt3").shape == (219_596,)


def test_header_only_raw_is_empty(formats_dir, tmp_path):
    # expelliarmus loops forever on a file without data: the reader must not call it.
    data = (formats_dir / "evt3_sample.raw").read_bytes()
    path = tmp_path / "header_only.raw"
    path.write_bytes(data[: data.index(b"% system_ID 48\n") + len(b"% system_ID 48\n")])
    rec = read_recording(path)
    assert len(rec) == 0 and rec.format == "evt3"


def test_truncated_evt3_is_an_error(formats_dir, tmp_path):
    data = (formats_dir / "evt3_sample.raw").read_bytes()
    path = tmp_path / "cut.raw"
    path.write_bytes(data[:1001])  # header is 166 bytes: 835 data bytes, not whole 16-bit words
    with pytest.raises(RecordingError, match="cut.raw.*truncated"):
        read_events(path)


def test_dat_ncars_sample(formats_dir):
    from expelliarmus import Wizard

    path = formats_dir / "sample_ncars.dat"
    rec = read_recording(path)
    direct = Wizard(encoding="dat").read(str(path))
    assert rec.format == "dat"
    assert len(rec) == direct.shape[0] == 2009
    assert_fields_equal(rec.events, direct)
    t = rec.events["t"]
    assert np.all(np.diff(t) >= 0) and t[0] == 0 and t[-1] < 100_000  # N-CARS samples are 100 ms
    # N-CARS samples are 120 x 100 crops; this one has no geometry in its header.
    assert rec.sensor_size is None
    assert 0 <= rec.events["x"].min() and rec.events["x"].max() < 120
    assert 0 <= rec.events["y"].min() and rec.events["y"].max() < 100
    assert set(np.unique(rec.events["p"])) == {0, 1}


def test_truncated_dat_is_an_error(formats_dir, tmp_path):
    data = (formats_dir / "sample_ncars.dat").read_bytes()
    path = tmp_path / "cut.dat"
    path.write_bytes(data[:5001])
    with pytest.raises(RecordingError, match="cut.dat.*truncated DAT"):
        read_events(path)


def test_dat_geometry_header(tmp_path):
    from expelliarmus import Wizard

    source = ev([1, 2, 3], [5, 6, 7], [1, 2, 3], [0, 1, 1])
    arr = np.zeros(3, dtype=[("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("p", "u1")])
    for name in "txyp":
        arr[name] = source[name]
    plain = tmp_path / "plain.dat"
    Wizard(encoding="dat").save(str(plain), arr)
    data = plain.read_bytes()
    lines_end = data.index(b"\n% Version") + 1
    path = tmp_path / "geom.dat"
    path.write_bytes(data[:lines_end] + b"% Height 240\n% Width 304\n" + data[lines_end:])
    rec = read_recording(path)
    assert rec.sensor_size == (304, 240, 2)
    assert_fields_equal(rec.events, source)


# ---------------------------------------------------------------------------------------------
# N-MNIST .bin
# ---------------------------------------------------------------------------------------------


def decode_nmnist_reference(raw: bytes) -> np.ndarray:
    """Independent plain-numpy decoder from the data README: 40 bits per record, 8-bit x, 8-bit y,
    1-bit polarity, 23-bit timestamp; y == 240 records add 2**13 us to themselves and every later
    record and are dropped."""
    b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 5).astype(np.uint64)
    word = (b[:, 2] << np.uint64(16)) + (b[:, 3] << np.uint64(8)) + b[:, 4]  # 24 bits: p + t
    p = word >> np.uint64(23)
    t = (word & np.uint64((1 << 23) - 1)).astype(np.int64)
    overflow_at = np.flatnonzero(b[:, 1] == 240)
    n_overflows = np.searchsorted(overflow_at, np.arange(len(b)), side="right")
    t = t + n_overflows * 8192
    keep = b[:, 1] != 240
    out = np.zeros(int(keep.sum()), dtype=[("x", int), ("y", int), ("t", int), ("p", int)])
    out["x"], out["y"], out["t"], out["p"] = b[keep, 0], b[keep, 1], t[keep], p[keep]
    return out


def nmnist_record(x, y, p, t):
    return bytes([x, y, (p << 7) | ((t >> 16) & 0x7F), (t >> 8) & 0xFF, t & 0xFF])


def test_nmnist_real_files_match_reference(nmnist_dir):
    files = [sorted((nmnist_dir / str(label)).glob("*.bin"))[i] for label, i in ((0, 0), (3, 5), (9, -1))]
    for path in files:
        rec = read_recording(path)
        expected = decode_nmnist_reference(path.read_bytes())
        assert rec.format == "nmnist"
        assert len(rec) == path.stat().st_size // 5 > 1000
        assert_fields_equal(rec.events, expected)
        assert rec.events["x"].max() < 34 and rec.events["y"].max() < 34
        assert rec.sensor_size is None


def test_nmnist_matches_tonic(nmnist_dir):
    import tonic.io

    path = sorted((nmnist_dir / "7").glob("*.bin"))[0]
    dtype = np.dtype([("x", int), ("y", int), ("t", int), ("p", int)])
    assert_fields_equal(read_events(path), tonic.io.read_mnist_file(str(path), dtype=dtype))


def test_nmnist_overflow_records(tmp_path):
    raw = b"".join([
        nmnist_record(1, 2, 1, 8000),
        nmnist_record(3, 4, 0, 8100),
        nmnist_record(0, 240, 0, 0),  # overflow: +8192 from here on
        nmnist_record(5, 6, 1, 50),
        nmnist_record(0, 240, 0, 0),
        nmnist_record(0, 240, 0, 0),  # two more: +3 * 8192
        nmnist_record(7, 8, 0, 8191),
        nmnist_record(33, 33, 1, (1 << 23) - 1),  # largest 23-bit timestamp, polarity bit set
    ])
    path = tmp_path / "overflow.bin"
    path.write_bytes(raw)
    events = read_events(path)
    np.testing.assert_array_equal(events["t"], [8000, 8100, 8192 + 50, 3 * 8192 + 8191,
                                                3 * 8192 + (1 << 23) - 1])
    np.testing.assert_array_equal(events["x"], [1, 3, 5, 7, 33])
    np.testing.assert_array_equal(events["y"], [2, 4, 6, 8, 33])
    np.testing.assert_array_equal(events["p"], [1, 0, 1, 0, 1])
    assert_fields_equal(events, decode_nmnist_reference(raw))


def test_nmnist_truncated_and_empty(tmp_path):
    path = tmp_path / "cut.bin"
    path.write_bytes(nmnist_record(1, 2, 1, 10) + b"\x01\x02")
    with pytest.raises(RecordingError, match=r"cut\.bin.*truncated"):
        read_events(path)
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    rec = read_recording(empty)
    assert len(rec) == 0
    info = recording_info(rec)
    assert info["n_events"] == 0 and info["t_first_us"] is None


# ---------------------------------------------------------------------------------------------
# AEDAT4 and AEDAT 1/2/3
# ---------------------------------------------------------------------------------------------


def test_aedat4_sample(formats_dir):
    import tonic.io

    path = formats_dir / "sample.aedat4"
    rec = read_recording(path)
    direct = tonic.io.read_aedat4(str(path))
    assert rec.format == "aedat4"
    assert rec.sensor_size == (320, 240, 2)  # declared by the event stream
    assert len(rec) == direct.shape[0] == 111_954
    assert_fields_equal(rec.events, direct)  # direct["p"] reads the field titled "p" ("on")
    counts = recording_info(rec)["p_counts"]
    assert counts == {"0": int((~direct["p"]).sum()), "1": int(direct["p"].sum())}
    assert counts["0"] > 0 and counts["1"] > 0
    assert np.all(np.diff(rec.events["t"]) >= 0)
    assert rec.events["x"].max() < 320 and rec.events["y"].max() < 240
    assert rec.events["t"][0] == 1_605_537_493_718_345  # as decoded, not shifted to zero


def test_aedat4_truncated(formats_dir, tmp_path):
    path = tmp_path / "cut.aedat4"
    path.write_bytes((formats_dir / "sample.aedat4").read_bytes()[:300_000])
    with pytest.raises(RecordingError, match=r"cut\.aedat4.*AEDAT4"):
        read_events(path)


@pytest.mark.parametrize("damage", ["description-not-utf8", "description-too-long", "header-size", "root-offset"])
def test_aedat4_damaged_header_is_one_error_not_an_abort(formats_dir, tmp_path, damage):
    """The aedat decoder aborts the process (a Rust panic during a panic) on a description that is
    not UTF-8; evsim checks the header first. Read in a child process: an abort there fails the
    test instead of ending pytest."""
    import subprocess
    import sys

    raw = bytearray((formats_dir / "sample.aedat4").read_bytes())
    size = struct.unpack_from("<I", raw, 14)[0]
    header = bytes(raw[18:18 + size])
    description = header.index(b"<dv") + 18  # the XML's first byte in the file
    if damage == "description-not-utf8":
        raw[description + 300] ^= 0xA5  # inside the XML, an ASCII byte becomes a lone continuation byte
        expected = f"not UTF-8 text (byte {description + 300})"
    elif damage == "description-too-long":
        struct.pack_into("<I", raw, description - 4, size)  # the string's length runs past the header
        expected = "description runs past the header"
    elif damage == "header-size":
        struct.pack_into("<I", raw, 14, len(raw))
        expected = f"a header of {len(raw)} bytes"
    else:
        struct.pack_into("<I", raw, 18, size + 100)
        expected = "points outside it"
    path = tmp_path / "damaged.aedat4"
    path.write_bytes(bytes(raw))
    code = ("import sys\nfrom evsim.errors import RecordingError\nfrom evsim.input.recordings import read_events\n"
            "try:\n    read_events(sys.argv[1])\nexcept RecordingError as exc:\n    print(exc)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    assert "damaged.aedat4: damaged AEDAT4 file" in proc.stdout and expected in proc.stdout, proc.stdout


def _aedat2_file(path, header_lines, addresses, timestamps):
    records = np.zeros(len(addresses), dtype=[("a", ">u4"), ("t", ">i4")])
    records["a"], records["t"] = addresses, timestamps
    path.write_bytes(b"".join(line + b"\r\n" for line in header_lines) + records.tobytes())


def test_aedat2_dvs128(tmp_path):
    import tonic.io

    # Events (x, y, p, t) encoded as jAER's DVS128 extractor reads them: x flipped, raw 0 = ON.
    x = np.array([0, 127, 64, 10])
    y = np.array([0, 5, 127, 99])
    p = np.array([1, 0, 1, 0])
    t = np.array([10, 20, 30, 40])
    addr = (y << 8) | ((127 - x) << 1) | (1 - p)
    addr = np.insert(addr, 2, 0x8000 | 0x1234)  # a sync (special) event between them: dropped
    ts = np.insert(t, 2, 25)
    path = tmp_path / "dvs.aedat"
    _aedat2_file(path, [b"#!AER-DAT2.0", b"# This is a raw AE data file - do not edit",
                        b"# AEChip: ch.unizh.ini.jaer.chip.retina.DVS128"], addr, ts)
    rec = read_recording(path)
    assert rec.format == "aedat2" and rec.sensor_size == (128, 128, 2)
    assert_fields_equal(rec.events, ev(t, x, y, p))
    # tonic reads the same raw records (header parsed the same way).
    version, start, _ = tonic.io.read_aedat_header_from_file(str(path))
    raw = tonic.io.get_aer_events_from_file(str(path), version, start)
    assert version == 2.0
    np.testing.assert_array_equal(raw["address"], addr)
    np.testing.assert_array_equal(raw["timeStamp"], ts)
    # .dat files starting with #!AER-DAT are jAER files, not Prophesee DAT.
    jaer_dat = tmp_path / "old_jaer.dat"
    jaer_dat.write_bytes(path.read_bytes())
    assert read_recording(jaer_dat).format == "aedat2"


def test_aedat2_davis(tmp_path):
    x = np.array([0, 239, 100])
    y = np.array([0, 179, 50])
    p = np.array([1, 0, 1])
    t = np.array([5, 6, 7])
    addr = (y << 22) | ((239 - x) << 12) | (p << 11)
    addr = np.concatenate([addr, [0x80000000 | 0x3FF, (3 << 22) | (1 << 10)]])  # APS, trigger
    ts = np.concatenate([t, [8, 9]])
    path = tmp_path / "davis.aedat"
    _aedat2_file(path, [b"#!AER-DAT2.0", b"# AEChip: eu.seebetter.ini.chips.davis.DAVIS240C"], addr, ts)
    rec = read_recording(path)
    assert rec.sensor_size == (240, 180, 2)
    assert_fields_equal(rec.events, ev(t, x, y, p))
    # Forcing the camera overrides the header.
    forced = read_recording(path, format="aedat-davis346")
    assert forced.sensor_size == (346, 260, 2)
    np.testing.assert_array_equal(forced.events["x"], 345 - (239 - x))


def test_aedat2_truncated(tmp_path):
    path = tmp_path / "cut.aedat"
    path.write_bytes(b"#!AER-DAT2.0\r\n" + b"\x00" * 13)
    with pytest.raises(RecordingError, match=r"cut\.aedat.*truncated AEDAT 2"):
        read_events(path)


_AEDAT3_HEADER = b"#!AER-DAT3.1\r\n#Format: RAW\r\n#Source 1: DVS128\r\n#!END-HEADER\r\n"


def _aedat3_packet(etype, overflow, events):
    """One AEDAT 3.1 packet; ``events`` rows are (x, y, p, t, valid) for polarity packets."""
    x, y, p, t, valid = np.array(events, dtype=np.int64).reshape(-1, 5).T
    body = np.zeros(len(events), dtype=[("d", "<u4"), ("t", "<i4")])
    body["d"] = (x << 17) | (y << 2) | (p << 1) | valid
    body["t"] = t
    n = len(events)
    header = struct.pack("<hhiiiiii", etype, 1, 8, 4, overflow, n, n, n)
    return header + body.tobytes()


def test_aedat3_polarity_packets(tmp_path):
    path = tmp_path / "gesture.aedat"
    path.write_bytes(
        _AEDAT3_HEADER
        + _aedat3_packet(1, 0, [(10, 20, 1, 100, 1), (11, 21, 0, 200, 0), (12, 22, 0, 300, 1)])
        + _aedat3_packet(0, 0, [(1, 1, 1, 310, 1), (2, 2, 1, 320, 1)])  # special events: skipped
        + _aedat3_packet(1, 1, [(127, 127, 1, 5, 1)])  # timestamp overflow counter 1
    )
    rec = read_recording(path)
    assert rec.format == "aedat3" and rec.sensor_size == (128, 128, 2)
    expected = ev([100, 300, (1 << 31) + 5], [10, 12, 127], [20, 22, 127], [1, 0, 1])
    assert_fields_equal(rec.events, expected)
    # Same file with LF line endings (tonic's header parser reads that version as 3.0).
    lf = tmp_path / "lf.aedat"
    lf.write_bytes(path.read_bytes().replace(_AEDAT3_HEADER, _AEDAT3_HEADER.replace(b"\r\n", b"\n")))
    assert_fields_equal(read_events(lf), expected)


def test_aedat3_matches_tonic_raw(tmp_path):
    import tonic.io

    rows = [(x, (7 * x) % 128, x % 2, 1000 + 3 * x, 1) for x in range(40)]
    path = tmp_path / "one_packet.aedat"
    path.write_bytes(_AEDAT3_HEADER + _aedat3_packet(1, 0, rows[:25]) + _aedat3_packet(1, 0, rows[25:]))
    version, start, _ = tonic.io.read_aedat_header_from_file(str(path))
    raw = tonic.io.get_aer_events_from_file(str(path), version, start)
    # tonic.io.read_dvs_ibm's address decoding of AEDAT 3 polarity events.
    d = raw["address"].astype(np.int64)
    expected = ev(raw["timeStamp"], (d >> 17) & 0x1FFF, (d >> 2) & 0x1FFF, (d >> 1) & 1)
    assert_fields_equal(read_events(path), expected)


def test_aedat3_truncated(tmp_path):
    path = tmp_path / "cut.aedat"
    path.write_bytes((_AEDAT3_HEADER + _aedat3_packet(1, 0, [(1, 2, 1, 3, 1)] * 4))[:-5])
    with pytest.raises(RecordingError, match=r"cut\.aedat.*truncated AEDAT 3"):
        read_events(path)


# ---------------------------------------------------------------------------------------------
# numpy and HDF5
# ---------------------------------------------------------------------------------------------

# Fields in an unusual order, unusual types, polarity in {-1, 1}.
_ODD_DTYPE = np.dtype([("p", "i1"), ("t", "<u8"), ("y", "<u2"), ("x", "<i4")])


def _odd_array():
    a = np.zeros(5, dtype=_ODD_DTYPE)
    a["t"] = [10, 10, 15, 20, 1_000_000_000_000]
    a["x"] = [0, 300, 2, 3, 4]
    a["y"] = [5, 4, 3, 2, 1]
    a["p"] = [-1, 1, 1, -1, 1]
    return a


def _expected_odd():
    a = _odd_array()
    return ev(a["t"], a["x"], a["y"], (a["p"] + 1) // 2)


def test_npy_roundtrip(tmp_path):
    path = tmp_path / "odd.npy"
    np.save(path, _odd_array())
    rec = read_recording(path)
    assert rec.format == "npy" and rec.sensor_size is None
    assert_fields_equal(rec.events, _expected_odd())


def test_empty_npy_is_legal(tmp_path):
    path = tmp_path / "empty.npy"
    np.save(path, np.zeros(0, dtype=_ODD_DTYPE))
    rec = read_recording(path)
    assert len(rec) == 0 and rec.events.dtype == EVENT_DTYPE
    assert recording_info(rec)["n_events"] == 0


def test_npy_not_structured(tmp_path):
    path = tmp_path / "plain.npy"
    np.save(path, np.arange(12).reshape(3, 4))
    with pytest.raises(RecordingError, match=r"plain\.npy.*not a structured array"):
        read_events(path)


def test_npz_roundtrip(tmp_path):
    single = tmp_path / "single.npz"
    np.savez(single, whatever=_odd_array())
    assert_fields_equal(read_events(single), _expected_odd())
    named = tmp_path / "named.npz"
    np.savez(named, events=_odd_array(), other=np.arange(3), sensor_size=np.array([640, 480]))
    rec = read_recording(named)
    assert_fields_equal(rec.events, _expected_odd())
    assert rec.sensor_size == (640, 480, 2)


def test_npz_without_suitable_array(tmp_path):
    path = tmp_path / "two.npz"
    np.savez(path, a=_odd_array(), b=_odd_array())
    with pytest.raises(RecordingError, match=r"two\.npz.*'events'"):
        read_events(path)
    missing_t = tmp_path / "no_t.npz"
    np.savez(missing_t, events=np.zeros(3, dtype=[("x", "i2"), ("y", "i2")]))
    with pytest.raises(RecordingError, match=r"no_t\.npz.*missing field 't'"):
        read_events(missing_t)


def test_hdf5_layouts(tmp_path):
    odd = _odd_array()
    top = tmp_path / "top.h5"
    with h5py.File(top, "w") as f:
        for name in ("p", "y", "t", "x"):  # unusual creation order
            f[name] = odd[name]
        f.attrs["sensor_size"] = [346, 260, 2]
    rec = read_recording(top)
    assert rec.format == "hdf5" and rec.sensor_size == (346, 260, 2)
    assert_fields_equal(rec.events, _expected_odd())

    group = tmp_path / "group.hdf5"
    with h5py.File(group, "w") as f:
        g = f.create_group("events")
        for name in ("x", "p", "t", "y"):
            g[name] = odd[name]
        g.attrs["width"], g.attrs["height"] = 128, 128
    rec = read_recording(group)
    assert rec.sensor_size == (128, 128, 2)
    assert_fields_equal(rec.events, _expected_odd())

    compound = tmp_path / "compound.h5"
    with h5py.File(compound, "w") as f:
        f["events"] = odd
    assert_fields_equal(read_events(compound), _expected_odd())


def test_hdf5_errors(tmp_path):
    no_fields = tmp_path / "nofields.h5"
    with h5py.File(no_fields, "w") as f:
        f["frames"] = np.zeros((2, 3))
    with pytest.raises(RecordingError, match=r"nofields\.h5.*no event data.*found: frames"):
        read_events(no_fields)
    ragged = tmp_path / "ragged.h5"
    with h5py.File(ragged, "w") as f:
        f["t"], f["x"], f["y"] = np.arange(3), np.arange(4), np.arange(3)
    with pytest.raises(RecordingError, match=r"ragged\.h5.*differ in length"):
        read_events(ragged)
    not_hdf5 = tmp_path / "text.h5"
    not_hdf5.write_text("not an HDF5 file\n")
    with pytest.raises(RecordingError, match=r"text\.h5.*cannot read HDF5"):
        read_events(not_hdf5)


# ---------------------------------------------------------------------------------------------
# Generic errors, sorting, info
# ---------------------------------------------------------------------------------------------


def test_missing_file_and_unknown_extension(tmp_path):
    with pytest.raises(RecordingError, match=r"nothere\.bin.*no such file"):
        read_events(tmp_path / "nothere.bin")
    odd = tmp_path / "events.csv"
    odd.write_text("t,x\n")
    with pytest.raises(RecordingError, match=r"events\.csv.*unknown recording extension '\.csv'"):
        read_events(odd)
    with pytest.raises(RecordingError, match=r"events\.csv.*unknown format 'csv'"):
        read_events(odd, format="csv")
    with pytest.raises(RecordingError, match="not a regular file"):
        read_events(tmp_path, format="npy")


def test_error_messages_are_one_line(tmp_path):
    bad = tmp_path / "garbage.aedat4"
    bad.write_bytes(os.urandom(64))
    with pytest.raises(RecordingError) as info:
        read_events(bad)
    assert "garbage.aedat4" in str(info.value) and "\n" not in str(info.value)


def test_unsorted_rejected_unless_sort(tmp_path):
    path = tmp_path / "unsorted.npy"
    np.save(path, ev([5, 3, 3, 1, 5], [0, 1, 2, 3, 4]))
    with pytest.raises(RecordingError, match=r"unsorted\.npy.*not sorted"):
        read_recording(path)
    assert read_events(path)["t"].tolist() == [5, 3, 3, 1, 5]  # read_events does not validate
    rec = read_recording(path, sort=True)
    assert rec.events["t"].tolist() == [1, 3, 3, 5, 5]
    assert rec.events["x"].tolist() == [3, 1, 2, 0, 4]  # equal timestamps keep file order


def test_recording_info_names(nmnist_dir):
    path = sorted((nmnist_dir / "4").glob("*.bin"))[0]
    rec = read_recording(path)
    info = recording_info(rec)
    expected = decode_nmnist_reference(path.read_bytes())
    assert info["n_events"] == expected.shape[0]
    assert info["t_first_us"] == expected["t"][0] and info["t_last_us"] == expected["t"][-1]
    assert info["x_max"] == expected["x"].max() and info["y_max"] == expected["y"].max()
    assert info["p_counts"] == {"0": int((expected["p"] == 0).sum()), "1": int((expected["p"] == 1).sum())}
    assert info["path"] == str(path) and info["format"] == "nmnist" and info["sensor_size"] is None


# ---------------------------------------------------------------------------------------------
# FolderDataset
# ---------------------------------------------------------------------------------------------


def test_folder_dataset_nmnist(nmnist_dir):
    ds = FolderDataset(nmnist_dir)
    assert len(ds) == 1000
    assert ds.classes == [str(i) for i in range(10)]
    assert sorted(set(ds.labels)) == list(range(10))
    for label in range(10):
        n_files = len([f for f in os.listdir(nmnist_dir / str(label)) if f.endswith(".bin")])
        assert ds.labels.count(label) == n_files
    keys = [(label, os.path.basename(path)) for path, label in ds.samples]
    assert keys == sorted(keys)
    first, last = ds[0], ds[-1]
    assert isinstance(first, Recording)
    assert first.label == 0 and last.label == 9
    assert first.path == ds.samples[0][0] and len(first) > 0


def test_folder_dataset_string_labels(tmp_path):
    root = tmp_path / "data"
    for name in ("dog", "cat", "bird"):
        (root / name).mkdir(parents=True)
    np.save(root / "cat" / "b.npy", ev([1, 2], [0, 1]))
    np.save(root / "cat" / "a.npy", ev([1], [0]))
    with h5py.File(root / "dog" / "z.h5", "w") as f:
        f["t"], f["x"] = np.array([4, 5, 6]), np.array([1, 2, 3])
    (root / "dog" / "readme.txt").write_text("not a recording")
    (root / "notes.npy").write_bytes(b"")  # not inside a label folder: ignored
    ds = FolderDataset(root)
    # "bird" holds no recording: not a class (an empty folder must not shift the labels)
    assert ds.classes == ["cat", "dog"] and ds.ignored_folders == ["bird"]
    assert ds.class_to_label == {"cat": 0, "dog": 1}
    assert [(os.path.basename(p), label) for p, label in ds.samples] == [("a.npy", 0), ("b.npy", 0), ("z.h5", 1)]
    assert ds[2].label == 1 and ds[2].events["t"].tolist() == [4, 5, 6]
    only_npy = FolderDataset(root, extensions=["npy"])
    assert len(only_npy) == 2 and only_npy.classes == ["cat"] and only_npy.ignored_folders == ["bird", "dog"]
    with pytest.raises(OptionError, match="'.txt'"):
        FolderDataset(root, extensions=[".txt"])


def test_folder_dataset_mixed_names_are_refused_and_empty_folders_ignored(tmp_path):
    for name in ("10", "2", "x"):
        (tmp_path / name).mkdir()
        np.save(tmp_path / name / "s.npy", ev([1], [0]))
    # labels by sorted position would make '10' → 0, '2' → 1: every integer label shifted
    with pytest.raises(RecordingError, match=r"mix integer names \(2, 10\) and other names \('x'\)"):
        FolderDataset(tmp_path)
    (tmp_path / "x" / "s.npy").unlink()  # now empty: ignored, the integer names are the labels
    (tmp_path / ".hidden").mkdir()
    ints = FolderDataset(tmp_path)
    assert ints.classes == ["2", "10"] and ints.labels == [2, 10] and ints.ignored_folders == ["x"]


def test_folder_dataset_paths_are_the_same_whatever_the_spelling(tmp_path, monkeypatch):
    (tmp_path / "data" / "3").mkdir(parents=True)
    np.save(tmp_path / "data" / "3" / "s.npy", ev([1], [0]))
    (tmp_path / "link").symlink_to(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    spellings = [tmp_path / "data", "data", "./link/", tmp_path / "link" / ".." / "data"]
    paths = {tuple(FolderDataset(root).samples) for root in spellings}
    assert paths == {((str((tmp_path / "data" / "3" / "s.npy").resolve()), 3),)}


def test_folder_dataset_empty_or_missing(tmp_path):
    with pytest.raises(RecordingError, match="does not exist"):
        FolderDataset(tmp_path / "missing")
    (tmp_path / "0").mkdir()
    (tmp_path / "0" / "notes.txt").write_text("x")
    with pytest.raises(RecordingError, match="no recordings found"):
        FolderDataset(tmp_path)


# ---------------------------------------------------------------------------------------------
# Transforms (expected results computed by hand)
# ---------------------------------------------------------------------------------------------


def test_denoise_by_hand():
    events = ev(
        t=[0, 100, 150, 5000, 5100, 20000],
        x=[5, 6, 9, 5, 5, 6],
        y=[5, 5, 9, 5, 6, 5],
    )
    # e1 (6,5) has e0 (5,5) as neighbour 100 us before -> kept; e0 has no earlier neighbour;
    # e2 is isolated; e3 (5,5): last neighbour event e1 (6,5) 4900 us before -> kept with 5000;
    # e4 (5,6): neighbour (5,5) last at t=5000 -> kept; e5 (6,5): neighbour (5,5) 15000 us ago.
    out = denoise(events, 5000)
    assert out["t"].tolist() == [100, 5000, 5100]
    assert denoise(events, 4900)["t"].tolist() == [100, 5100]
    assert denoise(events[:0], 10).shape == (0,)


def test_denoise_matches_tonic_loop():
    from tonic.functional import denoise_numpy

    rng = np.random.default_rng(0)
    n = 3000
    events = ev(
        t=np.sort(rng.integers(10_000, 200_000, n)),  # t >= filter time: tonic's start-up rule is moot
        x=rng.integers(0, 20, n),
        y=rng.integers(0, 15, n),
        p=rng.integers(0, 2, n),
    )
    expected = denoise_numpy(events.copy(), filter_time=3000)
    out = denoise(events, 3000)
    assert 0 < out.shape[0] < n
    assert_fields_equal(out, expected)


def test_downsample_by_hand():
    events = ev(t=[1, 2, 3, 4, 5], x=[0, 1, 2, 3, 33], y=[33, 32, 7, 0, 1], p=[1, 0, 1, 0, 1])
    out = downsample(events, 0.5)
    assert out.dtype == EVENT_DTYPE
    assert out["x"].tolist() == [0, 0, 1, 1, 16]
    assert out["y"].tolist() == [16, 16, 3, 0, 0]
    assert out["t"].tolist() == [1, 2, 3, 4, 5] and out["p"].tolist() == [1, 0, 1, 0, 1]
    pair = downsample(events, (0.25, 1 / 3))
    assert pair["x"].tolist() == [0, 0, 0, 0, 8]
    assert pair["y"].tolist() == [11, 10, 2, 0, 0]
    slow = downsample(ev(t=[0, 3, 1_000_001], x=[0, 0, 0]), 1, time_factor=0.5)
    assert slow["t"].tolist() == [0, 1, 500_000]
    assert events["x"].tolist() == [0, 1, 2, 3, 33]  # input untouched
    with pytest.raises(OptionError, match="downsample"):
        downsample(events, 0)
    with pytest.raises(OptionError, match="time_factor"):
        downsample(events, 0.5, time_factor=-1)


def test_crop_by_hand():
    events = ev(t=[1, 2, 3, 4, 5, 6], x=[0, 1, 32, 33, 17, 5], y=[5, 5, 5, 5, 0, 33], p=[0, 1, 0, 1, 0, 1])
    out = crop(events, (34, 34, 2), (32, 32))  # window starts at (1, 1)
    assert out["t"].tolist() == [2, 3]
    assert out["x"].tolist() == [0, 31] and out["y"].tolist() == [4, 4]
    wide = crop(events, (34, 34), (34, 20))  # only y cropped: rows 7..26
    assert wide["t"].tolist() == []
    assert crop(events, (34, 34), 30)["t"].tolist() == []  # window (2, 2)..(31, 31)
    square = crop(ev([1, 2, 3, 4], [2, 31, 32, 1], [2, 31, 2, 2]), (34, 34), 30)
    assert square["t"].tolist() == [1, 2]
    assert square["x"].tolist() == [0, 29] and square["y"].tolist() == [0, 29]
    assert events["x"].tolist() == [0, 1, 32, 33, 17, 5]
    with pytest.raises(OptionError, match="crop"):
        crop(events, (34, 34), (0, 5))


def test_crop_time_and_merge_by_hand():
    events = ev(t=[1000, 1000, 1500, 2000, 2600], x=[0, 1, 2, 3, 4], p=[1, 0, 1, 1, 0])
    assert crop_time(events, 0, 1000)["x"].tolist() == [0, 1, 2, 3]  # relative, inclusive ends
    assert crop_time(events, 500, None)["x"].tolist() == [2, 3, 4]
    assert crop_time(events, 1500, 2000, relative=False)["x"].tolist() == [2, 3]
    with pytest.raises(OptionError):
        crop_time(events, 10, 5)
    merged = merge_polarities(events)
    assert merged["p"].tolist() == [0, 0, 0, 0, 0] and events["p"].tolist() == [1, 0, 1, 1, 0]


def test_build_transform_order_and_sizes():
    assert TRANSFORM_ORDER == ("crop_time", "denoise", "downsample", "crop", "merge_polarities")
    transform = build_transform(
        {"merge_polarities": True, "crop": (16, 16), "downsample": 0.5, "denoise_us": None}
    )
    assert transform.names == ("downsample", "crop", "merge_polarities")
    assert transform.output_sensor_size((34, 34, 2)) == (16, 16, 1)
    events = ev(t=[1, 2, 3], x=[1, 2, 33], y=[2, 33, 33], p=[1, 1, 0])
    # downsample -> x [0, 1, 16], y [1, 16, 16] in a 17 x 17 sensor; crop 16 starts at (0, 0).
    out = transform(events, (34, 34, 2))
    assert out["x"].tolist() == [0] and out["y"].tolist() == [1] and out["p"].tolist() == [0]
    rec = Recording(events=events, path="r.npy", format="npy", sensor_size=(34, 34, 2), label=3)
    applied = transform.apply(rec)
    assert applied.sensor_size == (16, 16, 1) and applied.label == 3 and len(applied) == 1
    assert not build_transform({}) and not build_transform({"downsample": 1, "merge_polarities": False})


def test_build_transform_errors():
    with pytest.raises(OptionError, match="unknown transform option"):
        build_transform({"blur": 3})
    with pytest.raises(OptionError, match="--denoise-us"):
        build_transform({"denoise_us": -5})
    with pytest.raises(OptionError, match="downsample"):
        build_transform({"downsample": "half"})
    with pytest.raises(OptionError, match="crop"):
        build_transform({"crop": (32, 32, 2)})
    with pytest.raises(OptionError, match="--t-end-us"):
        build_transform({"t_start_us": 100, "t_end_us": 50})
    with pytest.raises(OptionError, match="--merge-polarities"):
        build_transform({"merge_polarities": "yes"})
    needs_size = build_transform({"crop": 8})
    with pytest.raises(OptionError, match="sensor size"):
        needs_size(ev([1], [1]))
    with_size = build_transform({"crop": 8, "sensor_size": (10, 10)})
    assert with_size(ev([1, 2], [0, 5], [5, 5]))["x"].tolist() == [4]


# --------------------------------------------------------------------------------------------
# third-party decoders: output captured at the file-descriptor level, panics converted
# --------------------------------------------------------------------------------------------


class FakePanic(BaseException):
    """Stands for pyo3_runtime.PanicException, which derives from BaseException."""


def test_decoder_output_and_panics_never_reach_the_user(capfd):
    from evsim.input.recordings import _decode_quietly

    def panicking():
        os.write(1, b"decoder says hello on fd 1\n")
        os.write(2, b"thread '<unnamed>' panicked at src/lib.rs:1:1\n")
        raise FakePanic("index out of range")

    with pytest.raises(RecordingError, match=r"f\.aedat4: cannot decode AEDAT4: FakePanic: index out of range"):
        _decode_quietly("AEDAT4", "f.aedat4", panicking)
    out = capfd.readouterr()
    assert out.out == "" and out.err == ""

    def silent_failure():
        os.write(2, b"ERROR: jump_header failed.\n")
        raise FakePanic()

    # an exception without a message: the decoder's own first line explains it
    with pytest.raises(RecordingError, match="jump_header failed"):
        _decode_quietly("DAT", "f.dat", silent_failure)
    assert capfd.readouterr().err == ""

    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _decode_quietly("AEDAT4", "f.aedat4", interrupted)
    # file descriptors are restored: later output is visible again
    os.write(2, b"visible\n")
    assert capfd.readouterr().err == "visible\n"
    assert _decode_quietly("X", "f", lambda: 42) == 42


def test_hdf5_columns_of_more_than_one_value_per_event_are_refused(tmp_path):
    """A (3, 2) column is not 3 or 6 events: refused by the whole-file and the chunked reader;
    (N, 1) and (1, N) are columns."""
    import h5py

    from evsim.input.stream import open_stream

    bad, good = tmp_path / "bad.h5", tmp_path / "good.h5"
    with h5py.File(bad, "w") as f:
        f["t"], f["x"] = np.arange(6).reshape(3, 2), np.arange(6).reshape(3, 2)
    with h5py.File(good, "w") as f:
        f["t"], f["x"] = np.arange(4).reshape(4, 1), np.arange(4).reshape(1, 4)
    with pytest.raises(RecordingError, match=r"'t' has shape \(3, 2\)"):
        read_recording(bad)
    with pytest.raises(RecordingError, match=r"'t' has shape \(3, 2\)"):
        list(open_stream(str(bad)))  # (content is checked while iterating)
    rec = read_recording(good)
    assert rec.events["t"].tolist() == [0, 1, 2, 3] and rec.events["x"].tolist() == [0, 1, 2, 3]

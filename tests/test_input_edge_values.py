"""Edge values of recordings and of the transform options: float16/float32 columns compared
with the field limits, crop and sensor sizes beyond int16 addresses, huge and tiny factors.

Every bad value must give an :class:`~evsim.EvsimError` in the API and one line with exit code 2
in the command line; no value, good or bad, may raise a Python warning (RuntimeWarning from an
overflowing cast or product) or an OverflowError, or come out silently wrong.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from evsim.cli import BUNDLED_MODEL, main
from evsim.errors import OptionError, RecordingError
from evsim.input.events import as_events, make_events
from evsim.input.recordings import read_recording
from evsim.input.stream import open_stream
from evsim.input.transforms import build_transform, crop, crop_time, denoise, downsample

BUNDLED_RECORDING = next(iter(sorted((BUNDLED_MODEL.parent / "samples").glob("*/*.bin"))))


def run_cli(capfd, argv):
    """(exit code, stdout, stderr, warnings) of ``evsim argv`` in this process."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = main([str(a) for a in argv])
    out = capfd.readouterr()
    return code, out.out, out.err, [str(w.message) for w in caught]


def assert_one_line_error(code, err, caught, *fragments):
    assert code == 2, (code, err)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("evsim: error:"), err
    assert not caught, caught
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def _float_recording(dtype: str) -> np.ndarray:
    a = np.zeros(3, [("t", dtype), ("x", dtype), ("y", dtype), ("p", dtype)])
    a["t"] = [0, 1, 2]
    return a


# --------------------------------------------------------------------------------------------
# 1. float columns: compared with the limits without overflowing casts
# --------------------------------------------------------------------------------------------


def test_float16_npy_reads_without_warning_and_exactly(tmp_path):
    """The tester's file: events.py:134/135 'overflow encountered in cast' (bounds 2**53 and
    -2**62 cast to float16)."""
    a = _float_recording("f2")
    path = tmp_path / "f16ok.npy"
    np.save(path, a)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        events = read_recording(path).events
        streamed = {n: np.concatenate(list(open_stream(path, chunk_events=n))) for n in (1, 2, 3, 1000)}
    for name in ("t", "x", "y", "p"):
        assert events[name].tolist() == a[name].astype(np.int64).tolist(), name
    for n, chunked in streamed.items():
        assert chunked.tolist() == events.tolist(), n


@pytest.mark.parametrize("dtype", ["f2", "f4", "f8"])
def test_float_columns_of_every_width_convert_without_warning(dtype):
    a = np.zeros(4, [("t", dtype), ("x", dtype), ("y", dtype), ("p", dtype)])
    a["t"] = [0, 1, 2, 2048]
    a["x"] = [0, 5, 33, 2047]
    a["y"] = [1, 0, 7, 2]
    a["p"] = [-1, 1, 1, -1]  # two values: polarities, -1 -> 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        events = as_events(a)
        made = make_events(a["t"], a["x"], a["y"])
    assert events["t"].tolist() == [0, 1, 2, 2048]
    assert events["x"].tolist() == [0, 5, 33, 2047]
    assert events["y"].tolist() == [1, 0, 7, 2]
    assert events["p"].tolist() == [0, 1, 1, 0]
    assert made["x"].tolist() == [0, 5, 33, 2047]


@pytest.mark.parametrize("dtype", ["f2", "f4", "f8"])
@pytest.mark.parametrize("field, value", [("x", 32768), ("x", -1), ("t", -1), ("p", 200), ("x", 65504)])
def test_float_values_out_of_range_are_refused_without_warning(dtype, field, value):
    a = _float_recording(dtype)
    a["p"] = [0, 1, 1]
    a[field][2] = value
    if field == "p":
        a["p"] = [0, 1, value]  # three values: channel indices, 0..127
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(RecordingError, match=f"field '{field}'.*event 2"):
            as_events(a)


@pytest.mark.parametrize("dtype", ["f4", "f8"])
def test_float_timestamp_at_2_to_the_53_is_refused(dtype):
    """2**53 - 1 rounds to 2**53 in float32: compared in float32, t = 2**53 got through."""
    a = np.zeros(1, [("t", dtype), ("x", dtype)])
    a["t"] = 2.0**53
    with pytest.raises(RecordingError, match=r"field 't'.*2\*\*53"):
        as_events(a)


def test_float16_npy_through_the_cli_prints_no_warning(tmp_path, capfd):
    path = tmp_path / "f16ok.npy"
    np.save(path, _float_recording("f2"))
    for argv in (["info", path], ["run", BUNDLED_MODEL, path]):
        code, out, err, caught = run_cli(capfd, argv)
        assert code == 0, err
        assert not caught and "Warning" not in err, (caught, err)
    assert "3 events" in out


# --------------------------------------------------------------------------------------------
# 2. crop and sensor sizes beyond int16 addresses
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", ["99999x99999", "65600x65600", "32769x1"])
def test_cli_crop_beyond_int16_is_one_line(size, capfd):
    """Was an OverflowError traceback ('Python integer -49983 out of bounds for int16')."""
    code, _, err, caught = run_cli(capfd, ["run", BUNDLED_MODEL, BUNDLED_RECORDING, "--crop", size,
                                           "--sensor-size", "34x34"])
    assert_one_line_error(code, err, caught, "crop", "32768")


@pytest.mark.parametrize("target", [99999, (65600, 65600), (34, 32769)])
def test_crop_beyond_int16_raises_option_error(target):
    events = make_events([0, 1], [3, 20], [4, 30])
    with pytest.raises(OptionError, match="crop.*32768") as info:
        crop(events, (34, 34), target)
    assert info.value.option == "--crop"
    with pytest.raises(OptionError, match="crop.*32768"):
        build_transform({"crop": target})


def test_crop_keeps_events_beyond_the_sensor_inside_the_window():
    """A target larger than the (declared) sensor pads; events beyond the sensor were shifted past
    the window, and past int16 (wrapping to negative addresses) for a 32768 window."""
    events = make_events([0, 1, 2], [0, 32000, 9], [0, 0, 0])
    wide = crop(events, (1, 1), 32768)  # offset -16384: x=32000 would land on 48384
    assert wide["x"].tolist() == [16384, 16393] and wide["y"].tolist() == [16384, 16384]
    assert (wide["x"] >= 0).all() and (wide["y"] >= 0).all()
    padded = crop(events, (1, 1), 10)  # offset -5: x=9 would land on 14, outside [0, 10)
    assert padded["x"].tolist() == [5] and padded["y"].tolist() == [5]
    inside = make_events([0, 1, 2, 3], [0, 33, 16, 2], [0, 33, 16, 31])
    assert crop(inside, (34, 34), 40)["x"].tolist() == [3, 36, 19, 5]  # same as tonic's CenterCrop


def test_sensor_size_beyond_int16_is_a_short_option_error():
    with pytest.raises(OptionError, match="--sensor-size: width 1e\\+308 is above 32768") as info:
        crop(make_events([0], [0]), (1e308, 34), 10)
    assert len(str(info.value)) < 120
    with pytest.raises(OptionError, match="--sensor-size: width an integer of 401 digits"):
        build_transform({"crop": 8, "sensor_size": (10**400, 10)})


# --------------------------------------------------------------------------------------------
# 3. downsample factors whose products overflow
# --------------------------------------------------------------------------------------------


def test_cli_downsample_1e308_is_one_line_without_warning(capfd):
    """Printed 'transforms.py:157: RuntimeWarning: overflow encountered in multiply' first."""
    code, _, err, caught = run_cli(capfd, ["run", BUNDLED_MODEL, BUNDLED_RECORDING, "--downsample", "1e308"])
    assert_one_line_error(code, err, caught, "downsample", "32767")


@pytest.mark.parametrize("factor", [1e308, 1e20, (0.5, 1e308), pytest.param(10**400, id="10**400")])
def test_downsample_huge_factor_raises_option_error_without_warning(factor):
    events = make_events([0, 1], [3, 20], [4, 30])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(OptionError, match="downsample") as info:
            downsample(events, factor)
        assert info.value.option == "--downsample"
        with pytest.raises(OptionError, match="downsample"):
            build_transform({"downsample": factor})


def test_downsample_huge_time_factor_raises_option_error_without_warning():
    events = make_events([0, 10**6], [3, 20])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(OptionError, match="time_factor"):
            downsample(events, 1, time_factor=1e308)
        with pytest.raises(OptionError, match="time_factor.*2\\*\\*53"):  # 2**62 was the bound
            downsample(make_events([0, 2**52], [0, 0]), 1, time_factor=3)


def test_downsample_tiny_factors_are_valid():
    events = make_events([0, 10, 20], [3, 20, 33], [4, 30, 33])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for factor in (1e-308, 5e-324):
            out = downsample(events, factor, time_factor=factor)
            assert out["x"].tolist() == [0, 0, 0] and out["t"].tolist() == [0, 0, 0]


def test_downsampled_sensor_size_beyond_int16_names_downsample():
    """With no event left to check (time window after the recording), the downsampled sensor size
    went on to the crop, which blamed sensor_size with a 33001-pixel width."""
    transform = build_transform({"t_start_us": 10**9, "downsample": 1000, "crop": 4, "sensor_size": (34, 34)})
    with pytest.raises(OptionError, match="downsample.*width 34") as info:
        transform(make_events([0, 5], [1, 2]))
    assert info.value.option == "--downsample"


# --------------------------------------------------------------------------------------------
# 4. the other parameters: NaN, inf, zero, negative, huge, tiny
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1.0, 0, pytest.param(10**400, id="10**400"), True, "x", None])
def test_denoise_window_bad_values(value):
    """10**400 was an OverflowError (int too large to convert to float)."""
    events = make_events([0, 1], [3, 4])
    with pytest.raises(OptionError, match="--denoise-us"):
        denoise(events, value)


@pytest.mark.parametrize("value", [1e308, 1e-308, 5e-324])
def test_denoise_window_extreme_valid_values(value):
    events = make_events([0, 100, 200], [3, 4, 9])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kept = denoise(events, value)
    assert kept["t"].tolist() == ([100] if value > 100 else [])


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 1e308, 2**53, 10**400, 0.5, np.True_])
def test_crop_time_bad_values(value):
    events = make_events([0, 1], [3, 4])
    for option in ("t_start_us", "t_end_us"):
        flag = "--" + option.replace("_", "-")  # errors name the command-line option
        with pytest.raises(OptionError, match=flag):
            crop_time(events, **{option: value})
        with pytest.raises(OptionError, match=flag):
            build_transform({option: value})


@pytest.mark.parametrize("option, value", [(option, value) for option in ("--denoise-us", "--t-start-us", "--t-end-us",
                                                                       "--downsample")
                                            for value in ("nan", "inf", "-1", "1e308", "1e20")
                                            if not (option == "--denoise-us" and value in ("1e308", "1e20"))])
def test_cli_transform_options_bad_values_are_one_line(option, value, capfd):
    code, _, err, caught = run_cli(capfd, ["run", BUNDLED_MODEL, BUNDLED_RECORDING, option, value])
    assert_one_line_error(code, err, caught)
    line = err.strip()
    assert option in line or option.lstrip("-").replace("-", "_") in line, line  # the flag or its key

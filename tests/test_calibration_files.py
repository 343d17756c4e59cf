"""Malformed calibration files and wrong Cutoff fields are user errors (docs/SEMANTICS.md#calibration-file,
#cli-errors): an OptionError naming the file and the field in the API, one line and exit code 2 in the
command line; never a traceback, and never a file silently used with a wrong meaning."""

from __future__ import annotations

import json

import numpy as np
import pytest

import evsim
from evsim.analysis import read_calibration
from evsim.bundled import BUNDLED_CALIBRATION
from evsim.cli import BUNDLED_MODEL, main

BUNDLED_RECORDING = next(iter(sorted((BUNDLED_MODEL.parent / "samples").glob("*/*.bin"))))
BUNDLED_TEXT = BUNDLED_CALIBRATION.read_text()
BUNDLED_DOC = json.loads(BUNDLED_TEXT)


def edited(edit):
    """The bundled calibration as text after ``edit`` (a function of the parsed document, or of the text)."""
    doc = json.loads(BUNDLED_TEXT)
    edit(doc)
    return json.dumps(doc, indent=2)


def set_key(*keys, value):
    def edit(doc):
        for k in keys[:-1]:
            doc = doc[k]
        doc[keys[-1]] = value
    return edit


def drop_key(*keys):
    def edit(doc):
        for k in keys[:-1]:
            doc = doc[k]
        del doc[keys[-1]]
    return edit


def with_bin_1(doc):
    """The bundled calibration with its first finite threshold in bin 1 (12.0), whatever the
    bundled thresholds are."""
    doc["thresholds"][0], doc["thresholds"][1] = None, 12.0


def first_threshold_text(literal: str) -> str:
    """The bundled calibration (:func:`with_bin_1`) with its first finite threshold, bin 1, written
    as ``literal`` in the JSON text."""
    text = edited(with_bin_1)
    assert text.count("12.0,") >= 1 and json.loads(text)["thresholds"][1] == 12.0
    return text.replace("12.0,", literal + ",", 1)


def as_conf(doc):
    with_bin_1(doc)
    doc["cutoff"] = "conf"  # the topk gaps (12.0, ...) are no softmax levels


MALFORMED = {
    # name: (file text, field the message must name)
    "no grid": (edited(drop_key("grid")), "grid"),
    "no grid.n_bins": (edited(drop_key("grid", "n_bins")), "grid.n_bins"),
    "threshold a string": (edited(set_key("thresholds", 3, value="abc")), "thresholds[3]"),
    "threshold a list": (edited(set_key("thresholds", 3, value=[1, 2])), "thresholds[3]"),
    "threshold a boolean": (edited(set_key("thresholds", 3, value=True)), "thresholds[3]"),
    "thresholds a dict": (edited(set_key("thresholds", value={"a": 1})), "thresholds"),
    "thresholds missing": (edited(drop_key("thresholds")), "thresholds"),
    "options a list": (edited(set_key("options", value=[])), "options"),
    "bin width a string": (edited(set_key("grid", "bin_width_us", value="x")), "grid.bin_width_us"),
    "bin width negative": (edited(set_key("grid", "bin_width_us", value=-1.0)), "grid.bin_width_us"),
    "bin width 0 with 32 bins": (edited(set_key("grid", "bin_width_us", value=0)), "grid.bin_width_us"),
    "bin width 1e-300": (edited(set_key("grid", "bin_width_us", value=1e-300)), "grid.bin_width_us"),
    "n_bins 5000 digits": (BUNDLED_TEXT.replace('"n_bins": 32', '"n_bins": ' + "9" * 5000), "grid.n_bins"),
    "threshold 5000 digits": (first_threshold_text("9" * 5000), "thresholds[1]"),
    "n_bins a float": (edited(set_key("grid", "n_bins", value=32.0)), "grid.n_bins"),
    "n_bins 0": (edited(set_key("grid", "n_bins", value=0)), "grid.n_bins"),
    "thresholds empty": (edited(set_key("thresholds", value=[])), "thresholds"),
    "thresholds fewer than n_bins": (edited(set_key("thresholds", value=BUNDLED_DOC["thresholds"][:5])), "thresholds"),
    "thresholds more than n_bins": (edited(set_key("grid", "n_bins", value=31)), "thresholds"),
    "threshold NaN": (first_threshold_text("NaN"), "thresholds[1]"),
    "threshold -Infinity": (first_threshold_text("-Infinity"), "thresholds[1]"),
    "threshold negative": (edited(set_key("thresholds", 3, value=-1.0)), "thresholds[3]"),
    "conf threshold above 1": (edited(as_conf), "thresholds[1]"),
    "cutoff unknown": (edited(set_key("cutoff", value="top3")), "cutoff"),
    "temperature 0": (edited(set_key("temperature", value=0)), "temperature"),
    "temperature a string": (edited(set_key("temperature", value="1")), "temperature"),
    "profile a list": (edited(set_key("profile", value=["speck"])), "profile"),
}


def read(path):
    return read_calibration(path, model_hash=BUNDLED_DOC["model_hash"], profile="speck", mode="event", options={})


@pytest.mark.parametrize("name", list(MALFORMED))
def test_a_malformed_calibration_file_names_the_file_and_the_field(tmp_path, name):
    text, field = MALFORMED[name]
    path = tmp_path / "cal.json"
    path.write_text(text)
    with pytest.raises(evsim.OptionError) as info:
        read(path)
    message = str(info.value)
    assert info.value.option == "--calibration"
    assert str(path) in message and f"field '{field}'" in message, message
    assert "\n" not in message and len(message) < 400, message


@pytest.mark.parametrize("content, phrase", [
    ("hello", "not valid JSON"),
    ("", "not valid JSON"),
    ("[1, 2]", "not an evsim calibration"),
    (b'{"a": "\xe9"}', "not UTF-8"),
    (None, "not a file"),  # a directory
])
def test_a_file_that_is_no_calibration_is_refused(tmp_path, content, phrase):
    path = tmp_path / "cal.json"
    if content is None:
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(evsim.OptionError, match=phrase) as info:
        read(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("edit", [
    lambda doc: None,  # the bundled file itself
    set_key("thresholds", 3, value=None),  # null: never decide in that bin
    set_key("thresholds", 3, value=0.0),  # a gap of 0 (a tie) is a confidence calibration can choose
    set_key("thresholds", 3, value=7),  # an integer is a number
], ids=["bundled", "null", "zero", "integer"])
def test_well_formed_calibration_files_are_read(tmp_path, edit):
    path = tmp_path / "cal.json"
    path.write_text(edited(edit))
    doc = read(path)
    assert len(doc["thresholds"]) == doc["grid"]["n_bins"] == 32
    # what a run makes of it: a Cutoff with the file's table
    evsim.Cutoff(mode=doc["cutoff"], table=doc["thresholds"], bin_width_us=doc["grid"]["bin_width_us"])


def test_a_literal_infinity_threshold_means_never(tmp_path):
    path = tmp_path / "cal.json"
    path.write_text(first_threshold_text("Infinity"))
    doc = read(path)
    cut = evsim.Cutoff(mode="topk", table=doc["thresholds"], bin_width_us=doc["grid"]["bin_width_us"])
    assert cut.describe()["table"][1] is None


def assert_one_line_error(capsys, code, *fragments):
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("evsim: error:"), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.mark.parametrize("name", ["threshold a string", "thresholds fewer than n_bins"])
def test_the_command_line_refuses_a_malformed_calibration_in_one_line(tmp_path, capsys, name):
    text, field = MALFORMED[name]
    path = tmp_path / "cal.json"
    path.write_text(text)
    code = main(["run", str(BUNDLED_MODEL), str(BUNDLED_RECORDING), "--cutoff", "topk", "--calibration", str(path)])
    assert_one_line_error(capsys, code, "--calibration", str(path), f"field '{field}'")


# ------------------------------------------------------------------------------------------
# Cutoff
# ------------------------------------------------------------------------------------------

BAD_CUTOFFS = [
    # (fields, option named)
    ({"mode": "topk3"}, "--cutoff"),
    ({"mode": ["topk"]}, "--cutoff"),
    ({"max_events": 1.5}, "--max-events"),
    ({"max_events": "10"}, "--max-events"),
    ({"max_events": True}, "--max-events"),
    ({"max_events": -1}, "--max-events"),
    ({"max_time_us": "5"}, "--max-time-us"),
    ({"max_time_us": float("nan")}, "--max-time-us"),
    ({"mode": "conf", "epsilon": "0.1"}, "--epsilon"),
    ({"mode": "conf", "epsilon": 1.5}, "--epsilon"),
    ({"mode": "conf", "temperature": "2"}, "--temperature"),
    ({"mode": "conf", "temperature": 0.0}, "--temperature"),
    ({"mode": "conf", "threshold": 2.0}, "--threshold"),  # softmax confidence <= 1: never decides
    ({"mode": "conf", "threshold": -1.0}, "--threshold"),  # decides at the first output change
    ({"mode": "conf", "threshold": 0.0}, "--threshold"),
    ({"mode": "topk", "threshold": -1.0}, "--threshold"),  # top1 − top2 >= 0: decides at once
    ({"mode": "topk", "threshold": 0.0}, "--threshold"),
    ({"mode": "topk", "threshold": "3"}, "--threshold"),
    ({"mode": "topk", "threshold": float("inf")}, "--threshold"),
    ({"mode": "topk", "threshold": 10 ** 400}, "--threshold"),
    ({"mode": "none", "threshold": 3.0}, "--threshold"),  # no effect without a rule
    ({"mode": "topk", "threshold": 3.0, "table": [3.0]}, "--threshold"),
    ({"mode": "topk", "table": []}, "table"),  # would decide at the first output change
    ({"mode": "topk", "table": "ab", "bin_width_us": 1e3}, "table"),
    ({"mode": "topk", "table": np.ones((2, 2)), "bin_width_us": 1e3}, "table"),
    ({"mode": "topk", "table": ["a"], "bin_width_us": 1e3}, "table[0]"),
    ({"mode": "topk", "table": [1.0, [2.0]], "bin_width_us": 1e3}, "table[1]"),
    ({"mode": "topk", "table": [1.0, float("nan")], "bin_width_us": 1e3}, "table[1]"),
    ({"mode": "topk", "table": [1.0, -2.0], "bin_width_us": 1e3}, "table[1]"),
    ({"mode": "conf", "table": [None, 2.0], "bin_width_us": 1e3}, "table[1]"),
    ({"mode": "topk", "table": [1.0, 2.0]}, "bin_width_us"),
    ({"mode": "topk", "table": [1.0, 2.0], "bin_width_us": "1000"}, "bin_width_us"),
    ({"mode": "topk", "table": [1.0, 2.0], "bin_width_us": 1e-300}, "bin_width_us"),  # int(t / w) overflows
    ({"mode": "topk", "table": [1.0, 2.0], "bin_width_us": float("inf")}, "bin_width_us"),
]


@pytest.mark.parametrize("fields, option", BAD_CUTOFFS, ids=[" ".join(repr(f).split())[:60] for f, _ in BAD_CUTOFFS])
def test_a_wrong_cutoff_field_is_an_option_error_naming_it(fields, option):
    with pytest.raises(evsim.OptionError) as info:
        evsim.Cutoff(**fields)
    assert info.value.option == option
    assert str(info.value).startswith(f"option {option}:")
    assert len(str(info.value)) < 300


@pytest.mark.parametrize("fields", [
    {},
    {"mode": "topk", "threshold": 3},
    {"mode": "topk", "threshold": np.float32(0.5)},
    {"mode": "conf", "threshold": 1.0},
    {"mode": "conf", "epsilon": 0.2, "temperature": 4},
    {"mode": "topk", "table": [None, float("inf"), 0.0, 3.0], "bin_width_us": 1e3},
    {"mode": "topk", "table": np.array([5.0, 2.0]), "bin_width_us": 1e3},
    {"mode": "conf", "table": (None, 0.9), "bin_width_us": 1e3},
    {"mode": "topk", "table": [4.0]},  # one entry: a global threshold, no width needed
    {"max_events": np.int64(5), "max_time_us": 0},
])
def test_well_formed_cutoffs_are_accepted(fields):
    cut = evsim.Cutoff(**fields)
    assert cut.as_array().dtype == np.float64


def test_the_command_line_refuses_a_topk_threshold_of_zero(capsys):
    code = main(["run", str(BUNDLED_MODEL), str(BUNDLED_RECORDING), "--cutoff", "topk", "--threshold", "0"])
    assert_one_line_error(capsys, code, "--threshold", "> 0")

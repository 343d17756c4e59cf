"""Class folder names as labels (docs/SEMANTICS.md#formats) and the `evsim info` / empty-path /
bare-`evsim` corners of the command line (docs/SEMANTICS.md#cli, #input-validation).

Expected labels, counts and rates are written out by hand from the folders and files each test
makes, not taken from evsim."""

from __future__ import annotations

import json
import os
import re
import shutil

import numpy as np
import pytest

import evsim
from evsim import FolderDataset, RecordingError
from _cli import assert_user_error, evsim_cli
from evsim.cli import BUNDLED_MODEL, main

BUNDLED_RECORDING = next(iter(sorted((BUNDLED_MODEL.parent / "samples").glob("*/*.bin"))))




def events(t, x=None):
    a = np.zeros(len(t), dtype=evsim.EVENT_DTYPE)
    a["t"] = t
    a["x"] = x if x is not None else 0
    return a


def make_folders(root, files_per_folder: dict):
    """root/<name>/f<i>.npy, one event each (x = 0, t = i)."""
    for name, n in files_per_folder.items():
        (root / name).mkdir(parents=True)
        for i in range(n):
            np.save(root / name / f"f{i}.npy", events([i]))
    return root


# ---------------------------------------------------------------------------------------------
# which folder names are integers
# ---------------------------------------------------------------------------------------------


def test_only_ascii_digit_names_are_integer_labels(tmp_path):
    # int() takes all three ('+2' → 2, '0_4' → 4, Arabic-Indic '٣' → 3); none is ASCII digits, so
    # they are names: labels index them in sorted (code point) order, '+' < '0' < U+0663
    root = make_folders(tmp_path, {"+2": 1, "0_4": 2, "\u0663": 1})
    ds = FolderDataset(root)
    assert ds.class_to_label == {"+2": 0, "0_4": 1, "\u0663": 2}
    assert ds.classes == ["+2", "0_4", "\u0663"]
    assert ds.labels == [0, 1, 1, 2]


@pytest.mark.parametrize("names", [("1", "+2"), ("1", "0_4"), ("1", "\u0663"), ("1", " 3")])
def test_an_integer_name_with_a_near_integer_name_is_a_mix(tmp_path, names):
    root = make_folders(tmp_path, {n: 1 for n in names})
    with pytest.raises(RecordingError, match=re.escape(f"mix integer names (1) and other names ({names[1]!r})")):
        FolderDataset(root)


def test_zero_padded_names_are_their_integer(tmp_path):
    root = make_folders(tmp_path, {"01": 1, "10": 2, "007": 1})
    ds = FolderDataset(root)
    assert ds.class_to_label == {"01": 1, "007": 7, "10": 10}
    assert ds.classes == ["01", "007", "10"]
    assert ds.labels == [1, 7, 10, 10]


def test_negative_names_are_integers_never_numbered_as_names(tmp_path):
    # '-1', '-2' numbered as names would silently become labels 0 and 1; as the integers they are,
    # no output stands for them and evaluation refuses them (tests/test_eval_hostile.py)
    ds = FolderDataset(make_folders(tmp_path, {"-1": 1, "-2": 1}))
    assert ds.class_to_label == {"-2": -2, "-1": -1} and ds.labels == [-2, -1]


@pytest.mark.parametrize("pair", [("1", "01"), ("007", "7"), ("0", "00"), ("0", "-0"), ("-3", "-03")])
def test_two_folders_giving_one_label_are_refused(tmp_path, pair):
    root = make_folders(tmp_path, {pair[0]: 1, pair[1]: 1, "5": 1})
    label = int(pair[0])
    first, second = sorted(pair)  # named in name order
    with pytest.raises(RecordingError, match=rf"'{first}' and '{second}' both give label {label}"):
        FolderDataset(root)


def test_the_hostile_folder_set_is_refused_on_the_command_line(capsys, tmp_path):
    # the tester's set: 1, 01, +2, ٣, 0_4, one recording each; `info` said "5 recordings in 5
    # classes, 01: 2, 1: 2" and `eval` merged 01 and 1 into label 1
    root = tmp_path / "ds3"
    for name in ("1", "01", "+2", "\u0663", "0_4"):
        (root / name).mkdir(parents=True)
        shutil.copy(BUNDLED_RECORDING, root / name / "a.bin")
    code, out, err = evsim_cli(capsys, "info", root)
    assert_user_error(code, err, "'01' and '1' both give label 1")
    assert out == ""
    code, out, err = evsim_cli(capsys, "eval", BUNDLED_MODEL, root, "--quiet")
    assert_user_error(code, err, "'01' and '1' both give label 1")


def test_info_counts_recordings_per_class_folder(capsys, tmp_path):
    root = make_folders(tmp_path / "data", {"1": 3, "02": 1, "10": 2})
    code, out, err = evsim_cli(capsys, "info", root, "--json", tmp_path / "info.json")
    assert code == 0, err
    assert "6 recordings in 3 classes" in out
    assert "per class   1: 3, 02: 1, 10: 2" in out
    doc = json.loads((tmp_path / "info.json").read_text())
    assert doc["classes"] == {"1": 3, "02": 1, "10": 2}
    assert doc["class_to_label"] == {"1": 1, "02": 2, "10": 10}


@pytest.mark.parametrize("folder, label", [("0_4", None), ("+2", None), ("\u0663", None), ("07", 7), ("3", 3)])
def test_a_recordings_folder_label_follows_the_dataset_rule(capsys, tmp_path, folder, label):
    (tmp_path / folder).mkdir()
    np.save(tmp_path / folder / "r.npy", events([1, 2]))
    code, out, err = evsim_cli(capsys, "info", tmp_path / folder / "r.npy", "--json", tmp_path / "r.json")
    assert code == 0, err
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["label"] == label
    assert ("label       " in out) == (label is not None)


# ---------------------------------------------------------------------------------------------
# evsim info: event rate, non-regular files
# ---------------------------------------------------------------------------------------------


def test_info_prints_no_rate_over_a_zero_span(capsys, tmp_path):
    np.save(tmp_path / "same.npy", events([5] * 100))
    code, out, err = evsim_cli(capsys, "info", tmp_path / "same.npy")
    assert code == 0, err
    line = next(ln for ln in out.splitlines() if ln.startswith("events"))
    assert line == "events      100 events, all at t = 5 µs"
    np.save(tmp_path / "one.npy", events([42]))
    code, out, err = evsim_cli(capsys, "info", tmp_path / "one.npy")
    assert code == 0, err
    assert "events      1 event at t = 42 µs" in out.splitlines()


@pytest.mark.parametrize("t, text", [
    # 100 events over 1 µs: 100 / 1e-6 s = 100,000,000 events/s, the span shown in µs (not "0.0 ms")
    ([5] * 99 + [6], "100 over 1 µs (100,000,000 events/s), t = 5 … 6 µs"),
    # 3 events over 2 ms: 3 / 0.002 s = 1,500 events/s
    ([0, 1000, 2000], "3 over 2.0 ms (1,500 events/s), t = 0 … 2,000 µs"),
    # 4 events over 999 µs: 4 / 0.000999 s = 4004.004 → 4,004 events/s
    ([10, 10, 500, 1009], "4 over 999 µs (4,004 events/s), t = 10 … 1,009 µs"),
])
def test_info_keeps_the_rate_over_a_nonzero_span(capsys, tmp_path, t, text):
    np.save(tmp_path / "r.npy", events(t))
    code, out, err = evsim_cli(capsys, "info", tmp_path / "r.npy")
    assert code == 0, err
    assert f"events      {text}" in out.splitlines()


def test_info_on_a_pipe_says_what_run_says(capsys, tmp_path):
    fifo = tmp_path / "pipe.bin"
    os.mkfifo(fifo)
    code, _, run_err = evsim_cli(capsys, "run", BUNDLED_MODEL, fifo)
    assert_user_error(code, run_err, f"{fifo}: not a regular file")
    code, out, err = evsim_cli(capsys, "info", fifo)
    assert_user_error(code, err, f"{fifo}: not a regular file")
    assert err == run_err and out == ""
    os.mkfifo(tmp_path / "pipe")  # no extension: info must not open it either (it would block)
    code, out, err = evsim_cli(capsys, "info", tmp_path / "pipe")
    assert_user_error(code, err, "pipe: not a regular file")


def test_info_on_a_missing_file_still_says_so(capsys, tmp_path):
    code, out, err = evsim_cli(capsys, "info", tmp_path / "missing.bin")
    assert_user_error(code, err, f"{tmp_path / 'missing.bin'}: no such file")


# ---------------------------------------------------------------------------------------------
# empty path arguments
# ---------------------------------------------------------------------------------------------

M, R = str(BUNDLED_MODEL), str(BUNDLED_RECORDING)
EMPTY_PATHS = [
    (["run", "", R], "MODEL"),
    (["run", M, ""], "RECORDING"),
    (["run", M, R, "--json", ""], "--json"),
    (["run", M, R, "--raster", ""], "--raster"),
    (["eval", "", "."], "MODEL"),
    (["eval", M, ""], "DATA"),
    (["eval", M, ".", "--json", ""], "--json"),
    (["eval", M, ".", "--csv", ""], "--csv"),
    (["eval", M, ".", "--subset", ""], "--subset"),
    (["eval", M, ".", "--cutoff", "topk", "--calibration", ""], "--calibration"),
    (["eval", M, ".", "--scheduler", "tls://x:1", "--tls-ca-file", ""], "--tls-ca-file"),
    (["calibrate", "", ".", "--cutoff", "topk", "-o", "c.json"], "MODEL"),
    (["calibrate", M, "", "--cutoff", "topk", "-o", "c.json"], "DATA"),
    (["calibrate", M, ".", "--cutoff", "topk", "-o", ""], "-o/--output"),
    (["info", ""], "PATH"),
    (["info", M, "--json", ""], "--json"),
    (["raster", "", R, "-o", "r.png"], "MODEL"),
    (["raster", M, "", "-o", "r.png"], "RECORDING"),
    (["raster", M, R, "-o", ""], "-o/--output"),
    (["raster", M, R, "-o", "r.png", "--evidence", ""], "--evidence"),
    (["plot", "", "-o", "p.png"], "RESULTS"),
    (["plot", "a.json", "", "-o", "p.png"], "RESULTS"),
    (["plot", "a.json", "-o", ""], "-o/--output"),
    (["plot-classes", "", "-o", "p.png"], "RESULT"),
    (["plot-temporal", "", "-o", "p.png"], "RESULTS"),
    (["compare", "", "b.json"], "RESULT_A"),
    (["compare", "a.json", ""], "RESULT_B"),
    (["compare", "a.json", "b.json", "--json", ""], "--json"),
    (["report", "", "-o", "r.html"], "RESULTS"),
    (["report", "a.json", "-o", ""], "-o/--output"),
]


@pytest.mark.parametrize("argv, param", EMPTY_PATHS, ids=[" ".join(a[:1]) + f" {p}" for a, p in EMPTY_PATHS])
def test_an_empty_path_is_one_line_in_every_command(capsys, tmp_path, monkeypatch, argv, param):
    # the working directory is a valid dataset: '' read as '.' would describe or evaluate it
    (tmp_path / "7").mkdir()
    np.save(tmp_path / "7" / "r.npy", events([0, 1], [1, 2]))
    monkeypatch.chdir(tmp_path)
    code, out, err = evsim_cli(capsys, *argv)
    assert_user_error(code, err, f"option {param}: ''")
    assert out == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["7"]  # nothing written


def test_folder_dataset_refuses_an_empty_path(tmp_path, monkeypatch):
    make_folders(tmp_path, {"3": 1})
    monkeypatch.chdir(tmp_path)
    assert len(FolderDataset(".")) == 1  # '.' said explicitly is the working directory
    with pytest.raises(RecordingError, match="empty path"):
        FolderDataset("")


# ---------------------------------------------------------------------------------------------
# `evsim` alone
# ---------------------------------------------------------------------------------------------


def test_evsim_alone_prints_the_help_and_succeeds(capsys, monkeypatch):
    code, help_out, help_err = evsim_cli(capsys, "--help")
    assert code == 0 and help_err == ""
    assert "Commands:" in help_out and "eval" in help_out
    code, out, err = evsim_cli(capsys)
    assert (code, out, err) == (0, help_out, "")
    monkeypatch.setattr("sys.argv", ["evsim"])  # as the console script calls it
    assert main() == 0
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == (help_out, "")


def test_an_unknown_command_is_still_one_line(capsys):
    code, out, err = evsim_cli(capsys, "badcommand")
    assert_user_error(code, err, "No such command 'badcommand'")
    assert out == ""

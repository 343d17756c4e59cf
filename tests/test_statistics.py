"""Statistics against independent computations: the Wilson interval's defining equation, the
Agresti–Min interval written out, and a confusion matrix counted by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from evsim.analysis import statistics as st
from evsim.errors import OptionError


@pytest.mark.parametrize("k,n", [(0, 10), (10, 10), (95, 100), (183, 191), (1, 2)])
def test_wilson_bounds_solve_the_score_equation(k, n):
    # the Wilson bounds are the p with |p̂ − p| = z·sqrt(p(1−p)/n)
    z = 1.959963984540054
    lo, hi = st.wilson_interval(k, n)
    p_hat = k / n
    for p in (lo, hi):
        assert abs(abs(p_hat - p) - z * math.sqrt(p * (1 - p) / n)) < 1e-9
    assert lo <= p_hat <= hi


def test_wilson_known_value():
    # Brown, Cai & DasGupta (2001): 0 successes of 10 -> upper bound 0.2775 at 95 %
    lo, hi = st.wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.27753, abs=1e-4)


def test_paired_difference_agresti_min_written_out():
    rng = np.random.default_rng(3)
    a = rng.random(200) < 0.9
    b = rng.random(200) < 0.85
    d = st.paired_difference_interval(a, b)
    n10 = int(np.sum(a & ~b)); n01 = int(np.sum(~a & b))
    p10 = (n10 + 0.5) / 202; p01 = (n01 + 0.5) / 202
    half = 1.959963984540054 * math.sqrt((p10 + p01 - (p10 - p01) ** 2) / 202)
    assert d["difference"] == pytest.approx((a.mean() - b.mean()))
    assert d["low"] == pytest.approx(p10 - p01 - half) and d["high"] == pytest.approx(p10 - p01 + half)
    assert (d["a_only"], d["b_only"]) == (n10, n01)


def test_identical_results_give_an_interval_around_zero():
    a = np.array([True] * 50 + [False] * 5)
    d = st.paired_difference_interval(a, a)
    assert d["difference"] == 0.0 and d["low"] < 0.0 < d["high"]


def test_confusion_matrix_and_per_class_by_hand():
    labels = [0, 0, 1, 1, 1, 2]
    preds = [0, 1, 1, None, 1, 0]
    cm = st.confusion_matrix(labels, preds, 3)
    expected = np.array([[1, 1, 0, 0], [0, 2, 0, 1], [1, 0, 0, 0]])
    assert np.array_equal(cm, expected)
    rows = st.per_class(labels, preds, 3)
    assert [r["correct"] for r in rows] == [1, 2, 0]
    assert [r["n"] for r in rows] == [2, 3, 1]


def test_bad_arguments_are_option_errors():
    with pytest.raises(OptionError):
        st.wilson_interval(5, 3)
    with pytest.raises(OptionError):
        st.paired_difference_interval([True], [True, False])
    with pytest.raises(OptionError):
        st.confusion_matrix([0, 5], [0, 1], 3)

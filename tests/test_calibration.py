"""Calibration that generalises: the vectorised rate computation against a brute-force loop,
sequential bins, support merging, the 'every larger β' rule, temperature fitting, stratified
folds, cross-validation, and a calibrate → held-out round trip on a model built here."""

from __future__ import annotations

import nir
import numpy as np
import pytest

import evsim
from evsim import analysis
from evsim.analysis import Thresholds, Trajectory
from evsim.analysis.calibration import _rates_over_thresholds, _segment_records


def traj(times, vectors, label, events=None):
    times = np.asarray(times, float)
    events = np.arange(1, len(times) + 1) if events is None else np.asarray(events)
    return Trajectory(times, events, np.asarray(vectors, float), int(events[-1]), float(times[-1]), label)


def brute_force_rates(trajs, beta, first_bin, last_bin, width):
    """Reached / right-for-good counts for one β, sample by sample (the definition)."""
    reached = ok = 0
    for tr in trajs:
        gap = analysis.gap_of(tr.vectors)
        good = analysis.correct_from_here(tr)
        b = np.minimum((tr.t_us // width).astype(int), 10**9)
        for j in range(len(tr.t_us)):
            if first_bin <= b[j] <= last_bin and np.any(tr.vectors[j]) and gap[j] >= beta:
                reached += 1
                ok += bool(good[j])
                break
    return reached, ok


def random_trajs(rng, n, n_out=3, steps=12):
    out = []
    for _ in range(n):
        inc = rng.integers(0, 3, size=(steps, n_out))
        vec = np.cumsum(inc, axis=0)
        t = np.cumsum(rng.integers(1, 6, steps)).astype(float)
        out.append(traj(t, vec, int(rng.integers(n_out))))
    return out


def test_vectorised_rates_equal_the_brute_force_definition():
    rng = np.random.default_rng(0)
    trajs = random_trajs(rng, 60)
    for first, last in [(0, 0), (1, 3), (0, 100)]:
        recs = []
        for tr in trajs:
            b = (tr.t_us // 10).astype(int)
            recs.append(_segment_records(analysis.gap_of(tr.vectors), np.any(tr.vectors != 0, axis=1),
                                         analysis.correct_from_here(tr), (b >= first) & (b <= last)))
        candidates, ok, reached = _rates_over_thresholds(recs)
        assert candidates.size > 3
        for beta, k_ok, k_reached in zip(candidates, ok, reached):
            assert (k_reached, k_ok) == brute_force_rates(trajs, beta, first, last, 10)


def test_bins_are_calibrated_on_the_samples_still_undecided():
    # 10 samples: gap 3 in bin 0 (right for good), then gap 1 in bin 1 is irrelevant (decided).
    # 10 samples: gap 1 in bin 1 and wrong later. Independently calibrated, bin 1 would see
    # 10 right + 10 wrong at β = 1 (rate 0.5); sequentially only the 10 wrong ones remain.
    decided = [traj([5, 15], [[3, 0], [4, 0]], 0) for _ in range(10)]
    wrong = [traj([15, 25], [[1, 0], [1, 5]], 0) for _ in range(10)]
    result = analysis.calibrate(decided + wrong, "topk", 0.05, bin_width_us=10, n_bins=3, confidence=None)
    assert result["thresholds"][0] == 3.0
    assert result["thresholds"][1] == np.inf  # nothing in bin 1 is right for good


def test_bins_with_too_few_undecided_samples_are_merged_with_the_next():
    # bin 0 has 2 active samples, bin 1 another 8: with min_support 5 they share one β
    a = [traj([5, 15], [[2, 0], [3, 0]], 0) for _ in range(2)]
    b = [traj([15, 16], [[2, 0], [3, 0]], 0) for _ in range(8)]
    merged = analysis.calibrate(a + b, "topk", 0.05, bin_width_us=10, n_bins=2, min_support=5, confidence=None)
    assert merged["thresholds"][0] == merged["thresholds"][1] == 2.0
    assert merged["support"] == [10, 10]
    separate = analysis.calibrate(a + b, "topk", 0.05, bin_width_us=10, n_bins=2, min_support=1, confidence=None)
    assert separate["support"][0] == 2


def test_a_lucky_dip_among_the_candidates_is_not_taken():
    # label 0 everywhere. G1 (9): gap 2 once, right. G2 (1): gap 5, then class 1 wins (wrong).
    # G3 (10): gap 1, then 12, right throughout. Rates: β ≤ 2 -> 19/20, β = 5 -> 10/11
    # (G1 drops out), β = 12 -> 10/10. With ε = 0.06 the smallest qualifying β is 1, but β = 5
    # fails: the rule takes 12, from which on every candidate qualifies.
    t = [traj([1], [[2, 0]], 0) for _ in range(9)]
    t += [traj([1, 2], [[5, 0], [5, 9]], 0)]
    t += [traj([1, 2], [[1, 0], [12, 0]], 0) for _ in range(10)]
    recs = [_segment_records(analysis.gap_of(x.vectors), np.any(x.vectors != 0, axis=1),
                             analysis.correct_from_here(x), np.ones(len(x.t_us), bool)) for x in t]
    candidates, ok, reached = _rates_over_thresholds(recs)
    table = {float(c): (int(k), int(n)) for c, k, n in zip(candidates, ok, reached)}
    assert table[1.0] == (19, 20) and table[5.0] == (10, 11) and table[12.0] == (10, 10)
    assert analysis.calibrate(t, "topk", 0.06, min_support=1, confidence=None)["thresholds"] == [12.0]


def test_fitted_temperature_recovers_the_generating_one():
    rng = np.random.default_rng(1)
    true_t = 4.0
    trajs = []
    for _ in range(4000):
        a = rng.integers(0, 30, size=5).astype(float)
        p = np.exp((a - a.max()) / true_t)
        p /= p.sum()
        trajs.append(traj([1.0], [a], int(rng.choice(5, p=p))))
    assert analysis.fit_temperature(trajs) == pytest.approx(true_t, rel=0.1)


def test_stratified_folds_share_every_class():
    labels = np.repeat(np.arange(4), [23, 7, 50, 5])
    folds = analysis.stratified_folds(labels, 5, seed=3)
    for c in range(4):
        counts = np.bincount(folds[labels == c], minlength=5)
        assert counts.max() - counts.min() <= 1
    assert np.array_equal(folds, analysis.stratified_folds(labels, 5, seed=3))


def test_cross_validation_equals_calibrating_and_replaying_each_fold_by_hand():
    rng = np.random.default_rng(4)
    trajs = random_trajs(rng, 80)
    cv = analysis.cross_validate(trajs, "topk", 0.2, k=4, seed=1, min_support=3, confidence=None)
    folds = analysis.stratified_folds([t.label for t in trajs], 4, 1)
    correct = []
    for f in range(4):
        th = analysis.calibrate([t for t, g in zip(trajs, folds) if g != f], "topk", 0.2, min_support=3, confidence=None)
        held = [t for t, g in zip(trajs, folds) if g == f]
        out = analysis.cutoff_outcomes(held, "topk", Thresholds(np.array(th["thresholds"])))
        correct.append(out["accuracy"] * len(held))
    assert cv["accuracy"] == pytest.approx(sum(correct) / len(trajs))
    assert cv["accuracy_lost"] == pytest.approx(cv["accuracy_uncut"] - cv["accuracy"])


def test_warnings_for_small_or_unbalanced_calibration_sets():
    w = analysis.calibration_set_warnings([0] * 30 + [1] * 3, n_outputs=3)
    text = " ".join(w)
    assert "only 33" in text and "2 missing" in text and "1 (3)" in text
    assert analysis.calibration_set_warnings(list(range(10)) * 20, n_outputs=10) == []


# ------------------------------------------------------------------------------------------
# round trip on a model built for the test
# ------------------------------------------------------------------------------------------

N_IN, N_CLASSES = 24, 4


def class_model():
    """Input (24) → Linear → IF (4): output neuron c integrates the 6 inputs of class c
    (weight 0.35) and, weakly, the others (0.05)."""
    w = np.full((N_CLASSES, N_IN), 0.05)
    for c in range(N_CLASSES):
        w[c, 6 * c:6 * c + 6] = 0.35
    nodes = {"input": nir.Input(input_type=np.array([N_IN])), "fc": nir.Linear(weight=w),
             "out": nir.IF(r=np.ones(N_CLASSES), v_threshold=np.ones(N_CLASSES), v_reset=np.zeros(N_CLASSES)),
             "output": nir.Output(output_type=np.array([N_CLASSES]))}
    return nir.NIRGraph(nodes=nodes, edges=[("input", "fc"), ("fc", "out"), ("out", "output")], type_check=False)


def class_recording(rng, label):
    """300 events over 100 ms: 40 % from the class's own 6 inputs, the rest uniform noise."""
    n = 300
    own = rng.random(n) < 0.4
    x = np.where(own, 6 * label + rng.integers(0, 6, n), rng.integers(0, N_IN, n))
    return evsim.make_events(np.sort(rng.integers(0, 100_000, n)), x)


def test_calibrate_then_cut_held_out_data_within_the_documented_bound():
    """Calibrated with ε on 200 recordings, the cutoff applied by the engine to 200 *other*
    recordings loses at most ε + 3 standard errors of accuracy (docs: the loss bound) and reads
    less than the whole recordings."""
    rng = np.random.default_rng(7)
    model = evsim.load_model(class_model())
    sim = evsim.Simulator(model, record_output=True)
    calib = []
    for i in range(200):
        label = i % N_CLASSES
        calib.append(Trajectory.from_result(sim.run(class_recording(rng, label)), label=label))
    eps = 0.02
    width = 10_000.0
    result = analysis.calibrate(calib, "topk", eps, bin_width_us=width, n_bins=10,
                                min_support=analysis.DEFAULT_MIN_SUPPORT)
    finite = [v for v in result["thresholds"] if np.isfinite(v)]
    assert finite, "the fixture must produce a finite threshold"
    cut = evsim.Simulator(model, cutoff=evsim.Cutoff(mode="topk", table=result["thresholds"], bin_width_us=width))
    full = evsim.Simulator(model)
    lost, fractions = 0, []
    n = 200
    for i in range(n):
        label = i % N_CLASSES
        ev = class_recording(rng, label)
        a, b = full.run(ev), cut.run(ev)
        lost += int(a.prediction == label) - int(b.prediction == label)
        fractions.append(b.events_fraction)
    assert lost / n <= eps + 3 * np.sqrt(eps * (1 - eps) / n)
    assert np.mean(fractions) < 0.7


# ------------------------------------------------------------------------------------------
# the statistical bound (docs/SEMANTICS.md#calibration)
# ------------------------------------------------------------------------------------------


def binomial_cdf(errors: int, n: int, eps: float) -> float:
    """P(at most ``errors`` errors among n) for an error rate eps, summed term by term."""
    from math import comb
    return sum(comb(n, j) * eps ** j * (1 - eps) ** (n - j) for j in range(errors + 1))


@pytest.mark.parametrize("eps,conf", [(0.01, 0.9), (0.05, 0.9), (0.02, 0.8), (0.1, 0.95)])
def test_rate_bound_is_the_exact_one_sided_binomial_test(eps, conf):
    ns = np.arange(1, 400, 7)
    for n in ns:
        errors = np.arange(0, min(n, 12) + 1)
        ok = n - errors
        got = analysis.rate_bound_passes(ok, np.full(ok.shape, n), eps, conf)
        expected = np.array([binomial_cdf(int(e), int(n), eps) <= 1 - conf for e in errors])
        np.testing.assert_array_equal(got, expected, err_msg=f"n={n}")
    # without errors the bound has a closed form: n samples pass iff (1 − ε)^n ≤ 1 − conf
    need = analysis.samples_needed(eps, conf)
    assert (1 - eps) ** need <= 1 - conf < (1 - eps) ** (need - 1)
    assert analysis.rate_bound_passes([need], [need], eps, conf)[0]
    assert not analysis.rate_bound_passes([need - 1], [need - 1], eps, conf)[0]


def test_with_confidence_a_threshold_needs_enough_error_free_samples():
    """40 samples that reach gap 3 and stay right: at ε = 0.05 the observed rate (1.0) qualifies,
    but 40 error-free samples do not show a rate ≥ 0.95 at confidence 0.9 (that needs 45); 50 do."""
    def sure(k):
        return [traj([1, 2], [[3, 0], [4, 0]], label=0) for _ in range(k)]
    assert analysis.samples_needed(0.05, 0.9) == 45
    assert analysis.calibrate(sure(40), "topk", 0.05, confidence=None)["thresholds"] == [3.0]
    assert analysis.calibrate(sure(40), "topk", 0.05)["thresholds"] == [np.inf]
    assert analysis.calibrate(sure(50), "topk", 0.05)["thresholds"] == [3.0]
    warnings = analysis.calibration_set_warnings([0] * 40, 1, epsilon=0.05, confidence=0.9)
    assert any("cannot show an error rate" in w for w in warnings)


@pytest.mark.parametrize("kwargs, option", [
    ({"epsilon": 1e-300}, "--epsilon"),  # 1 − ε rounds to 1: samples_needed overflowed (OverflowError)
    ({"epsilon": 1e-17}, "--epsilon"),
    ({"epsilon": 1.0}, "--epsilon"),
    ({"epsilon": 0.05, "temperature": 0.0}, "--temperature"),  # was a ZeroDivisionError
    ({"epsilon": 0.05, "temperature": -1.0}, "--temperature"),  # was taken, thresholds nonsense
    ({"epsilon": 0.05, "temperature": float("nan")}, "--temperature"),
    ({"epsilon": 0.05, "temperature": float("inf")}, "--temperature"),
    ({"epsilon": "0.05"}, "--epsilon"),
])
def test_calibration_options_out_of_range_are_option_errors(kwargs, option):
    trajs = random_trajs(np.random.default_rng(3), 20)
    eps = kwargs.pop("epsilon")
    with pytest.raises(evsim.OptionError) as err:
        analysis.calibrate(trajs, "conf", eps, **kwargs)
    assert err.value.option == option
    # the smallest ε taken still calibrates (and cannot certify a cut on 20 samples)
    result = analysis.calibrate(trajs, "conf", analysis.calibration.MIN_EPSILON)
    assert np.all(np.isinf(result["thresholds"]))


def test_cli_calibrate_refuses_them_before_simulating(capsys, tmp_path):
    from _cli import assert_user_error, evsim_cli
    from evsim.cli import BUNDLED_MODEL

    samples = BUNDLED_MODEL.parent / "samples"
    for args, option in ((("--cutoff", "conf", "--temperature", "0"), "--temperature"),
                         (("--cutoff", "topk", "--epsilon", "1e-300"), "--epsilon")):
        code, _, err = evsim_cli(capsys, "calibrate", BUNDLED_MODEL, samples, *args, "-o", tmp_path / "c.json")
        assert_user_error(code, err, option)  # one line: no warning from a simulation before it
        assert not (tmp_path / "c.json").exists()

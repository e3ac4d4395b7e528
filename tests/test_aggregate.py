"""Aggregation on constructed per-window probabilities: offset, confidence, agreement, drift."""

from __future__ import annotations

import re

import numpy as np
import pytest

from sparsesync_cli.analysis.aggregate import MAX_EVIDENCE_WINDOWS, aggregate, describe
from sparsesync_cli.analysis.trend import fit_trend

GRID = np.linspace(-2.0, 2.0, 21)
GRID3 = np.array([-1.0, 0.0, 1.0])


def window_probs(rng, offsets, *, grid=GRID, sharp=0.15, noise=0.3, junk=0.0):
    """Probabilities a model might give: a bump at each true offset, logit noise, and a share of
    confidently wrong windows (a random class), like silence or a static shot."""
    rows = []
    for offset in offsets:
        if rng.random() < junk:
            offset = rng.choice(grid)
        logits = np.maximum(-((grid - offset) ** 2) / (2 * sharp**2), -8.0)
        logits = logits + noise * rng.standard_normal(grid.size)
        p = np.exp(logits - logits.max())
        rows.append(p / p.sum())
    return np.array(rows)


def times(n, every=5.0):
    return np.arange(n) * every


def test_constant_offset_with_noise_and_junk_windows():
    rng = np.random.default_rng(1)
    agg = aggregate(window_probs(rng, [0.4] * 60, junk=0.2), GRID, times(60))
    assert agg.offset_sec == pytest.approx(0.4)
    assert agg.offset_class == 12
    assert agg.confidence > 0.9
    assert 0.7 <= agg.agreement < 1.0  # the junk windows disagree
    assert agg.drift_sec_per_min is None and agg.jump is None
    assert not agg.at_range_edge
    assert agg.n_windows == 60
    assert sum(agg.posterior) == pytest.approx(1.0)
    assert describe(agg) == "audio 0.40 s early"


@pytest.mark.parametrize("seed", range(10))
def test_constant_offset_never_reported_as_drift(seed):
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(6, 120))
    agg = aggregate(window_probs(rng, [-0.6] * n, junk=0.3, noise=1.0), GRID, times(n))
    assert agg.drift_sec_per_min is None and agg.jump is None
    assert agg.offset_sec == pytest.approx(-0.6)


@pytest.mark.parametrize(("total", "junk"), [(1.6, 0.0), (-1.2, 0.2), (0.6, 0.2)])
def test_linear_drift_is_detected_with_its_rate(total, junk):
    rng = np.random.default_rng(2)
    t = times(120)  # ten minutes
    offsets = -total / 2 + total * t / t[-1]
    agg = aggregate(window_probs(rng, offsets, junk=junk), GRID, t)
    rate = 60 * total / t[-1]
    assert agg.drift_sec_per_min == pytest.approx(rate, rel=0.1)
    assert agg.trend is not None and agg.trend.significant
    assert agg.trend.offset_at(t[0]) == pytest.approx(-total / 2, abs=0.1)
    assert agg.trend.offset_at(t[-1]) == pytest.approx(total / 2, abs=0.1)
    assert agg.jump is None
    assert describe(agg).startswith(f"drifting {rate:+.2f} s/min:")


def test_drift_smaller_than_one_class_over_the_file_is_not_reported():
    rng = np.random.default_rng(3)
    t = times(120)
    agg = aggregate(window_probs(rng, 0.4 + 0.1 * t / t[-1]), GRID, t)
    assert agg.drift_sec_per_min is None
    assert agg.trend is not None and not agg.trend.significant


def test_a_cut_is_reported_as_a_jump_not_as_drift():
    rng = np.random.default_rng(4)
    t = times(100)
    offsets = np.where(t < 200.0, 0.0, 1.0)  # an edit at 200 s puts the audio 1 s early
    agg = aggregate(window_probs(rng, offsets, junk=0.2), GRID, t)
    assert agg.drift_sec_per_min is None
    assert agg.jump is not None
    assert agg.jump.at_sec == pytest.approx(197.5, abs=5.0)
    assert agg.jump.before_sec == pytest.approx(0.0, abs=0.1)
    assert agg.jump.after_sec == pytest.approx(1.0, abs=0.1)
    # The file-wide offset is the majority's, and agreement shows that it is not the whole file.
    assert agg.offset_sec == pytest.approx(1.0)
    assert agg.agreement < 0.6
    assert re.fullmatch(
        r"audio 1\.00 s early \(changes at 3:1\d\.5: in sync before, audio 1\.00 s early after\)",
        describe(agg),
    )


def test_uniform_probabilities_give_low_confidence_and_no_verdict():
    agg = aggregate(np.full((12, 21), 1 / 21), GRID, times(12))
    assert agg.confidence == pytest.approx(3 / 21)  # chance: 3 of 21 classes within +-0.2 s
    assert agg.confidence < 0.3
    assert agg.offset_sec == 0.0  # a tie goes to "in sync", not to the first class
    assert not agg.at_range_edge
    assert agg.drift_sec_per_min is None and agg.jump is None


def test_an_offset_at_the_edge_of_the_range_is_at_least():
    rng = np.random.default_rng(5)
    agg = aggregate(window_probs(rng, [2.2] * 10), GRID, times(10))
    assert agg.offset_sec == 2.0 and agg.offset_class == 20
    assert agg.at_range_edge
    assert describe(agg) == "audio at least 2.00 s early"
    agg = aggregate(window_probs(rng, [-2.0] * 3), GRID, times(3))
    assert agg.at_range_edge and describe(agg) == "audio at least 2.00 s late"


def test_three_class_model():
    rng = np.random.default_rng(6)
    agg = aggregate(window_probs(rng, [1.0] * 5, grid=GRID3, sharp=0.4), GRID3, times(5))
    assert agg.offset_sec == 1.0 and agg.at_range_edge
    # The tolerance is the class itself: confidence is the mass of class +1 alone.
    assert agg.confidence == pytest.approx(agg.posterior[2])
    probs = np.array([[0.2, 0.5, 0.3]] * 4)
    agg = aggregate(probs, GRID3, times(4))
    assert agg.offset_sec == 0.0 and not agg.at_range_edge and agg.agreement == 1.0


def test_more_windows_of_the_same_evidence_do_not_inflate_confidence():
    one = np.zeros(21)
    one[[9, 10, 11]] = [0.2, 0.3, 0.2]
    one[one == 0] = 0.3 / 18
    few = aggregate(np.tile(one, (MAX_EVIDENCE_WINDOWS, 1)), GRID, times(MAX_EVIDENCE_WINDOWS))
    many = aggregate(np.tile(one, (500, 1)), GRID, times(500))
    assert many.confidence == pytest.approx(few.confidence)
    single = aggregate(one[None, :], GRID, [0.0])
    assert single.confidence < few.confidence < 1.0


def test_one_confidently_wrong_window_does_not_veto_the_others():
    probs = np.full((5, 21), 0.02)
    probs[:4, 12] = 0.6
    probs[4, :] = 1e-9
    probs[4, 5] = 1.0
    probs /= probs.sum(axis=1, keepdims=True)
    agg = aggregate(probs, GRID, times(5))
    assert agg.offset_sec == pytest.approx(0.4)
    assert agg.agreement == pytest.approx(0.8)


def test_float32_grid_counts_neighbours():
    grid32 = np.linspace(-2, 2, 21, dtype=np.float32)
    probs = np.full((1, 21), 0.0)
    probs[0, [9, 10, 11]] = [0.3, 0.4, 0.3]
    agg = aggregate(probs, grid32, [0.0])
    assert agg.confidence == pytest.approx(0.9 * 1.0 + 0.1 * 3 / 21)


def test_few_windows_have_no_trend():
    rng = np.random.default_rng(7)
    agg = aggregate(window_probs(rng, [0.0, 1.6]), GRID, times(2))
    assert agg.trend is None and agg.drift_sec_per_min is None


def test_rejects_logits_and_mismatched_shapes():
    with pytest.raises(ValueError, match="probabilities"):
        aggregate(np.random.default_rng(0).standard_normal((3, 21)), GRID, times(3))
    with pytest.raises(ValueError, match="grid"):
        aggregate(np.full((3, 21), 1 / 21), GRID3, times(3))
    with pytest.raises(ValueError, match="window times"):
        aggregate(np.full((3, 21), 1 / 21), GRID, times(4))


def test_to_dict_is_plain_data():
    rng = np.random.default_rng(8)
    d = aggregate(window_probs(rng, [0.0] * 8), GRID, times(8)).to_dict()
    assert d["trend"]["significant"] is False and d["n_windows"] == 8
    assert isinstance(d["posterior"], tuple) and len(d["posterior"]) == 21


def test_trend_on_points_directly():
    t = times(40)
    y = 0.2 + 0.01 * t  # 0.6 s per minute
    trend, jump = fit_trend(t, y, np.ones(40), 0.2, 4.0)
    assert trend.slope_sec_per_min == pytest.approx(0.6, rel=1e-3)
    assert trend.intercept_sec == pytest.approx(0.2, abs=1e-3)
    assert trend.significant and jump is None
    # The same points out of order give the same fit.
    order = np.random.default_rng(9).permutation(40)
    again, _ = fit_trend(t[order], y[order], np.ones(40), 0.2, 4.0)
    assert again.slope_sec_per_min == pytest.approx(trend.slope_sec_per_min)


def test_trend_ignores_windows_that_are_wrong():
    t = times(60)
    y = 0.01 * t
    y[::4] = -1.8  # a quarter of the windows are junk at the far end of the range
    trend, _ = fit_trend(t, y, np.ones(60), 0.2, 4.0)
    assert trend.slope_sec_per_min == pytest.approx(0.6, rel=0.05)
    assert trend.significant


def test_long_file_is_handled():
    rng = np.random.default_rng(10)
    t = times(3000)  # over four hours of back-to-back windows
    agg = aggregate(window_probs(rng, 0.2 + 1.0 * t / t[-1], junk=0.3), GRID, t)
    assert agg.drift_sec_per_min == pytest.approx(60 * 1.0 / t[-1], rel=0.1)


def test_a_trend_of_fewer_than_three_windows_is_an_error_even_under_python_O():
    with pytest.raises(ValueError, match="at least 3 windows"):
        fit_trend(np.array([0.0, 5.0]), np.array([0.2, 0.2]), np.ones(2), 0.2, 4.0)

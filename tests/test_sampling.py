"""Fast triage: the coarse-to-fine order and the stopping rule, on constructed probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from sparsesync_cli.analysis.aggregate import aggregate
from sparsesync_cli.analysis.sampling import SamplingOptions, judge, sample_windows, visit_order

GRID = tuple(round(-2.0 + 0.2 * i, 6) for i in range(21))
AUTO = SamplingOptions(mode="auto")


def peaked(offset: float, sharpness: float = 8.0) -> np.ndarray:
    """Class probabilities of a window that says ``offset`` (a Gaussian bump on the class grid)."""
    g = np.asarray(GRID)
    z = -sharpness * ((g - offset) / 0.2) ** 2 / 2
    p = np.exp(z - z.max())
    return p / p.sum()


def file_probs(offset_at, n: int, *, sharpness: float = 8.0, junk: float = 0.0, seed: int = 0):
    """Probabilities of ``n`` windows 5 s apart; ``junk`` share of windows are random and flat."""
    rng = np.random.default_rng(seed)
    times = [5.0 * i for i in range(n)]
    out = []
    for t in times:
        if rng.random() < junk:
            z = rng.standard_normal(len(GRID)) * 0.5
            out.append(np.exp(z) / np.exp(z).sum())
        else:
            out.append(peaked(offset_at(t), sharpness))
    return times, np.array(out)


def run(times, probs, options=AUTO, batch_size=1):
    calls: list[list[int]] = []

    def evaluate(batch):
        calls.append(list(batch))
        return {i: probs[i] for i in batch}

    return sample_windows(times, GRID, evaluate, options, batch_size=batch_size), calls


def full_verdict(times, probs):
    agg = aggregate(probs, GRID, times)
    return agg.offset_sec, agg.drift_sec_per_min is not None, agg.jump is not None


def auto_verdict(times, probs, sampled):
    used = sampled.used
    agg = aggregate(probs[used], GRID, [times[i] for i in used])
    return agg.offset_sec, agg.drift_sec_per_min is not None, agg.jump is not None


def test_visit_order_is_coarse_to_fine_and_complete():
    assert visit_order(9) == [0, 8, 4, 2, 6, 1, 3, 5, 7]
    assert visit_order(1) == [0] and visit_order(2) == [0, 1] and visit_order(0) == []
    for n in (3, 7, 100, 720, 1441):
        order = visit_order(n)
        assert sorted(order) == list(range(n))
        assert order[:3] == [0, n - 1, round((n - 1) / 2)]
        # every prefix of 2^k + 1 windows leaves no gap wider than about 1 / 2^k of the file
        for k in range(1, 5):
            prefix = sorted(order[: 2**k + 1])
            assert max(np.diff(prefix)) <= np.ceil((n - 1) / 2**k) + 1


def test_a_consistent_hour_stops_after_a_few_windows_with_the_full_verdict():
    times, probs = file_probs(lambda t: 0.4, 720, junk=0.15)
    sampled, calls = run(times, probs)
    assert sampled.decided and not sampled.read_all
    assert len(sampled.probs) <= 0.05 * 720
    assert sampled.stopped.startswith("decided after")
    assert calls[0] == sorted(visit_order(720)[:6])  # start, end, middle, quarters, an eighth
    assert auto_verdict(times, probs, sampled) == full_verdict(times, probs) == (0.4, False, False)


def test_drift_is_read_in_full():
    times, probs = file_probs(lambda t: -0.6 + 1.2 * t / 3600, 720, junk=0.1)
    sampled, _ = run(times, probs)
    assert sampled.read_all and sampled.decided and "drift" in sampled.stopped
    assert sorted(sampled.probs) == list(range(720))
    assert auto_verdict(times, probs, sampled) == full_verdict(times, probs)
    assert full_verdict(times, probs)[1]  # the full run finds the drift too


def test_a_jump_is_read_in_full():
    times, probs = file_probs(lambda t: 0.0 if t < 2000 else 0.8, 600, junk=0.1)
    sampled, _ = run(times, probs)
    assert sampled.read_all and sampled.decided
    assert auto_verdict(times, probs, sampled) == full_verdict(times, probs)
    assert full_verdict(times, probs)[2]


def test_a_short_segment_near_the_end_is_found_by_its_neighbours():
    # 15 % of the file at another offset, after the last eighth: the first windows mostly agree,
    # the end window dissents, and reading around it finds the segment.
    times, probs = file_probs(lambda t: 0.0 if t < 0.85 * 3000 else -1.0, 600)
    assert full_verdict(times, probs)[2]
    sampled, _ = run(times, probs)
    assert sampled.read_all and auto_verdict(times, probs, sampled) == full_verdict(times, probs)


def test_an_isolated_confident_outlier_is_checked_and_then_ignored():
    times, probs = file_probs(lambda t: 0.2, 400)
    probs[200] = peaked(-1.6)  # the middle window: visited in the first round
    sampled, _ = run(times, probs)
    assert sampled.decided and not sampled.read_all
    # windows were read around it until no segment the full run could call a change (10 % of the
    # windows, 40 here) fits between it and its read neighbours
    left = max(i for i in sampled.probs if i < 200)
    right = min(i for i in sampled.probs if i > 200)
    assert right - left - 1 < 40 and len(sampled.order) < 40
    assert auto_verdict(times, probs, sampled)[0] == 0.2


def unsure(n: int, seed: int = 0):
    """Windows that lean weakly towards 0.4 s under noise: a file the model is unsure about."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, len(GRID))) * 0.7
    z[:, GRID.index(0.4)] += 0.5
    p = np.exp(z)
    return [5.0 * i for i in range(n)], p / p.sum(axis=1, keepdims=True)


def test_low_confidence_content_is_read_to_the_end():
    times, probs = unsure(240)
    agg = aggregate(probs, GRID, times)
    assert agg.confidence < 0.8
    sampled, _ = run(times, probs)
    assert sampled.read_all and sampled.decided and "not decided earlier" in sampled.stopped


def test_max_windows_caps_the_cost_and_leaves_it_undecided():
    times, probs = unsure(240)
    sampled, _ = run(times, probs, SamplingOptions(mode="auto", max_windows=20))
    assert len(sampled.order) == 20 and not sampled.decided
    assert "undecided" in sampled.stopped and "--max-windows 20" in sampled.stopped


def test_sample_all_reads_every_window_in_one_call():
    times, probs = file_probs(lambda t: 0.4, 30)
    sampled, calls = run(times, probs, SamplingOptions(), batch_size=4)
    assert calls == [list(range(30))] and sampled.read_all and sampled.stopped.endswith("(--sample all)")


def test_undecodable_windows_are_skipped_and_the_rest_decide():
    times, probs = file_probs(lambda t: -0.4, 120)

    def evaluate(batch):
        return {i: probs[i] for i in batch if i < 80}  # decoding stops two thirds in

    sampled = sample_windows(times, GRID, evaluate, AUTO)
    assert sampled.skipped and all(i >= 80 for i in sampled.skipped)
    assert sampled.decided and max(sampled.probs) < 80
    assert aggregate(probs[sampled.used], GRID, [times[i] for i in sampled.used]).offset_sec == -0.4


def test_the_rule_needs_min_windows_spread_over_the_file():
    times, probs = file_probs(lambda t: 0.0, 100)
    few = {i: probs[i] for i in (0, 99, 50)}
    assert "3 < 6 windows" in judge(few, times, GRID, AUTO).reason
    bunched = {i: probs[i] for i in range(10, 20)}
    j = judge(bunched, times, GRID, AUTO)
    assert not j.decided and "span" in j.reason
    spread = {i: probs[i] for i in visit_order(100)[:6]}
    assert judge(spread, times, GRID, AUTO).decided


@pytest.mark.parametrize(
    "bad", [{"mode": "some"}, {"min_windows": 0}, {"max_windows": 0}, {"min_confidence": 2}]
)
def test_options_are_checked(bad):
    with pytest.raises(ValueError):
        SamplingOptions(**bad)


def test_windows_that_agree_on_a_low_confidence_stop_early_with_the_full_verdict():
    """Identical windows (the full-size random-weight model on a flat, steady file): the combined
    confidence is below --min-confidence, but a full read would report the same number, so the
    sample is settled; before this, such a file was read to the end."""
    times = [5.0 * i for i in range(720)]
    window = 0.08 * peaked(0.4, sharpness=0.6) + 0.92 / len(GRID)  # combined: confidence ~0.7
    probs = np.tile(window, (720, 1))
    full = aggregate(probs, GRID, times)
    assert full.confidence < 0.8 and full.agreement == 1.0
    sampled, _ = run(times, probs)
    assert sampled.decided and not sampled.read_all
    assert len(sampled.order) <= 0.05 * 720
    assert f"confidence {full.confidence:.2f}, settled below 0.8" in sampled.stopped
    assert auto_verdict(times, probs, sampled) == full_verdict(times, probs)


def test_an_offset_on_a_class_boundary_is_called_a_tie_after_a_sample():
    """Windows that put the offset within TIE_SEC of the midpoint of two classes: a full read's
    class is decided by its noise, so the sample stops and says so instead of reading everything."""
    rng = np.random.default_rng(3)
    times = [5.0 * i for i in range(600)]
    probs = np.array([peaked(0.3 + rng.normal(0, 0.01), sharpness=3.0) for _ in times])
    sampled, _ = run(times, probs)
    assert sampled.decided and len(sampled.order) < 60
    assert "on the boundary of" in sampled.stopped
    offset = auto_verdict(times, probs, sampled)[0]
    assert offset in (0.2, 0.4) and abs(full_verdict(times, probs)[0] - offset) <= 0.2 + 1e-9


def test_an_offset_near_but_not_on_a_boundary_is_read_until_its_side_is_clear():
    """0.27 s sits 30 ms from the midpoint: a full read reliably names 0.2 s, and so must the sample."""
    rng = np.random.default_rng(4)
    times = [5.0 * i for i in range(600)]
    probs = np.array([peaked(0.27 + rng.normal(0, 0.05), sharpness=3.0) for _ in times])
    sampled, _ = run(times, probs)
    assert sampled.decided and "boundary" not in sampled.stopped
    assert auto_verdict(times, probs, sampled) == full_verdict(times, probs) == (0.2, False, False)

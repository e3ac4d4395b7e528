"""DeSync as av-benchmark computes it, and over whole files, on constructed logits."""

from __future__ import annotations

import numpy as np
import pytest

from sparsesync_cli.analysis.aggregate import aggregate
from sparsesync_cli.analysis.desync import (
    DesyncResult,
    av_benchmark_windows,
    desync_aggregated,
    desync_av_benchmark,
    desync_windows,
    summarize,
)
from sparsesync_cli.analysis.windows import SYNCHFORMER_GEOMETRY as G
from sparsesync_cli.analysis.windows import Window, plan_windows
from sparsesync_cli.errors import MediaError

GRID = np.linspace(-2, 2, 21)


def spans(seconds, audio_start=0):
    return (0, round(seconds * 25)), (audio_start, round(seconds * 16000))


def used_seconds(w):
    f0, f1 = G.used_video_range(w)
    s0, s1 = G.used_audio_range(w)
    assert (s0, s1) == (f0 * 640, f1 * 640)  # picture and sound of the same stretch
    return f0 / 25, f1 / 25


def peaked(k, height=5.0):
    z = np.zeros(21)
    z[k] = height
    return z


def test_eight_second_clip_is_scored_on_0_to_4_8_and_3_2_to_8():
    first, last = av_benchmark_windows(*spans(8.0), clip_sec=8.0)
    assert first == Window(-2, -1280) and last == Window(78, 78 * 640)
    assert used_seconds(first) == (0.0, 4.8)
    assert used_seconds(last) == (3.2, 8.0)


def test_ten_second_clip_ends_on_the_segment_grid():
    # 250 frames -> 30 segments; the last 14 start at segment 16: 5.12 s to 9.92 s.
    _, last = av_benchmark_windows(*spans(10.0), clip_sec=10.0)
    assert used_seconds(last) == (5.12, 9.92)


def test_a_long_file_is_scored_at_the_start_only_like_av_benchmark():
    first, last = av_benchmark_windows(*spans(60.0), clip_sec=8.0)
    assert used_seconds(last) == (3.2, 8.0)
    # Without a clip length the whole file is the clip: its real end is checked.
    _, last = av_benchmark_windows(*spans(20.0))
    assert used_seconds(last) == (15.04, 19.84)
    assert used_seconds(first) == (0.0, 4.8)


def test_a_clip_of_exactly_one_window_counts_that_window_twice():
    first, last = av_benchmark_windows(*spans(4.8), clip_sec=4.8)
    assert first == last


def test_files_shorter_than_the_clip_are_refused_as_av_benchmark_drops_them():
    with pytest.raises(MediaError, match="av-benchmark drops such files") as e:
        av_benchmark_windows(*spans(7.6), clip_sec=8.0, path="gen/0001.mp4")
    assert str(e.value).startswith("gen/0001.mp4: shorter than the clip: 7.60 s")
    with pytest.raises(MediaError, match=r"4\.8 s needed"):
        av_benchmark_windows(*spans(4.0))


def test_the_clip_starts_when_both_streams_exist():
    first, _ = av_benchmark_windows(*spans(10.0, audio_start=16000))
    assert used_seconds(first) == (1.0, 5.8)


def test_windows_fit_the_synchformer_plan():
    # The first av-benchmark window is the first window plan_windows makes for Synchformer.
    first, _ = av_benchmark_windows(*spans(20.0))
    assert plan_windows(*spans(20.0), G)[0] == first


def test_score_is_the_mean_absolute_offset_of_first_and_last():
    assert desync_av_benchmark(peaked(10), peaked(14), GRID) == pytest.approx(0.4)  # 0 s and +0.8 s
    assert desync_av_benchmark(peaked(5), peaked(13), GRID) == pytest.approx(0.8)  # -1.0 s and +0.6 s
    assert desync_av_benchmark(peaked(0), peaked(20), GRID) == pytest.approx(2.0)


def test_argmax_ties_take_the_first_class_like_torch():
    assert desync_av_benchmark(np.zeros(21), peaked(10), GRID) == pytest.approx(1.0)  # |-2| and 0


def test_dataset_score_equals_av_benchmarks_flat_mean():
    rng = np.random.default_rng(0)
    files = [(rng.standard_normal(21), rng.standard_normal(21)) for _ in range(25)]
    grid32 = np.linspace(-2, 2, 21, dtype=np.float32)  # av-benchmark's make_class_grid
    flat = []  # evaluate.py: one |grid[argmax]| appended per window, then np.mean
    for first, last in files:
        flat.append(abs(grid32[np.argmax(first)].item()))
        flat.append(abs(grid32[np.argmax(last)].item()))
    per_file = [
        DesyncResult(str(i), True, desync_av_benchmark=desync_av_benchmark(f, la, GRID))
        for i, (f, la) in enumerate(files)
    ]
    ours = summarize(per_file)["desync_av_benchmark"]
    assert ours == pytest.approx(float(np.mean(flat)), abs=3e-8)


def test_whole_file_variants():
    rng = np.random.default_rng(1)
    classes = [12] * 9 + [0]  # nine windows at +0.4 s, one junk window at -2.0 s
    logits = np.stack([peaked(k) + 0.1 * rng.standard_normal(21) for k in classes])
    assert desync_windows(logits, GRID) == pytest.approx((9 * 0.4 + 2.0) / 10)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    agg = aggregate(probs, GRID, np.arange(10) * 4.8)
    assert desync_aggregated(agg) == pytest.approx(0.4)  # the junk window does not count


def test_bad_input():
    with pytest.raises(ValueError):
        desync_windows(np.zeros((3, 20)), GRID)
    assert summarize([])["desync_av_benchmark"] is None  # no files: no score, not a crash

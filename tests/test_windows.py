"""Window planning: where the model looks in a file, at the edges, and with odd streams."""

from __future__ import annotations

import itertools
import random

import pytest

from sparsesync_cli import clock
from sparsesync_cli.analysis.windows import (
    END_WINDOW_MIN_FRAMES,
    SPARSESYNC_GEOMETRY,
    SYNCHFORMER_GEOMETRY,
    Window,
    WindowGeometry,
    check_window,
    clip_range,
    plan_windows,
    window_at,
)
from sparsesync_cli.errors import MediaError, UsageError

FPS, SR = clock.VIDEO_FPS, clock.SAMPLE_RATE


def spans(seconds: float, audio_seconds: float | None = None) -> tuple[tuple[int, int], tuple[int, int]]:
    """Video and audio spans of a file whose streams both start at file time 0."""
    a = seconds if audio_seconds is None else audio_seconds
    return (0, round(seconds * FPS)), (0, round(a * SR))


def starts(windows: list[Window]) -> list[int]:
    return [w.frame_start for w in windows]


def test_a_minute_is_twelve_back_to_back_windows():
    windows = plan_windows(*spans(60.0))
    assert starts(windows) == list(range(0, 1500, 125))
    assert all(w.sample_start == w.frame_start * 640 for w in windows)
    assert windows[-1].frame_start + 125 == 1500  # ends exactly at the end of the file


def test_a_long_tail_gets_one_window_aligned_to_the_end():
    # 62 s: the regular windows end at 60 s, 2 s of the file would go unchecked.
    windows = plan_windows(*spans(62.0))
    assert starts(windows)[-2:] == [1375, 1425]
    assert windows[-1].frame_start + 125 == 1550


def test_a_short_tail_is_left_out():
    # 60.8 s: 0.8 s after the last regular window is below END_WINDOW_MIN_SEC.
    windows = plan_windows(*spans(60.8))
    assert starts(windows)[-1] == 1375
    left_out = 1520 - (1375 + 125)
    assert left_out < END_WINDOW_MIN_FRAMES


def test_exactly_one_window():
    assert plan_windows(*spans(5.0)) == [Window(0, 0)]


def test_shorter_than_one_window_names_the_file_and_the_overlap():
    with pytest.raises(MediaError) as e:
        plan_windows(*spans(3.2), path="clip.mp4")
    assert str(e.value) == "clip.mp4: shorter than one window: 3.2 s of audio and video overlap, 5.0 s needed"
    assert "\n" not in str(e.value)


def test_the_shorter_stream_decides():
    # 30 s of video but only 12 s of audio: windows stop where the audio stops.
    windows = plan_windows(*spans(30.0, audio_seconds=12.0))
    assert starts(windows) == [0, 125, 175]  # 175 = aligned to the end of the audio (12 s)
    assert SPARSESYNC_GEOMETRY.used_audio_range(windows[-1])[1] == 12 * SR


def test_audio_without_video_overlap_is_too_short():
    with pytest.raises(MediaError, match=r"0\.0 s of audio and video overlap"):
        plan_windows((0, 0), (0, 10 * SR))


def test_positive_shift_reads_later_audio_and_ends_earlier():
    windows = plan_windows(*spans(20.0), shift_sec=0.4)
    assert all(w.sample_start == w.frame_start * 640 + 6400 for w in windows)
    assert all(w.shift_sec == 0.4 for w in windows)
    # The audio ends at 20 s, so the last window's picture ends 0.4 s before.
    assert starts(windows) == [0, 125, 250, 365]
    assert SPARSESYNC_GEOMETRY.used_audio_range(windows[-1])[1] == 20 * SR


def test_negative_shift_starts_where_the_shifted_audio_exists():
    windows = plan_windows(*spans(20.0), shift_sec=-0.4)
    assert windows[0] == Window(10, 0)  # picture from 0.4 s, audio from 0 s
    assert windows[0].shift_sec == -0.4


def test_video_that_starts_late():
    windows = plan_windows((10, 500), (0, 20 * SR))
    assert windows[0] == Window(10, 6400)
    assert windows[0].start_sec == pytest.approx(0.4)


def test_audio_that_starts_late():
    windows = plan_windows((0, 500), (SR, 20 * SR))
    assert windows[0] == Window(25, SR)


def test_audio_starting_off_the_frame_grid_rounds_the_first_window_up():
    windows = plan_windows((0, 500), (100, 20 * SR))  # audio from 6.25 ms
    assert windows[0] == Window(1, 640)  # the first frame whose audio all exists


def test_stride():
    windows = plan_windows(*spans(20.0), stride_sec=2.0)
    assert starts(windows) == [*range(0, 376, 50), 375]


def test_stride_below_one_frame_is_a_usage_error():
    with pytest.raises(UsageError, match="below one frame"):
        plan_windows(*spans(20.0), stride_sec=0.01)


def test_start_and_duration_restrict_the_range():
    windows = plan_windows(*spans(60.0), start_sec=10.0, duration_sec=20.0)
    assert starts(windows) == [250, 375, 500, 625]
    assert windows[-1].frame_start + 125 == 750  # the used parts end at 30.0 s


def test_start_off_the_grid_moves_to_the_next_frame():
    assert plan_windows(*spans(60.0), start_sec=10.01)[0].frame_start == 251
    # Typed decimals land on the grid despite float arithmetic (4.6 * 25 = 114.99999999999999).
    assert plan_windows(*spans(60.0), start_sec=4.6)[0].frame_start == 115


def test_duration_alone_counts_from_the_start_of_the_overlap():
    windows = plan_windows((50, 1500), (0, 60 * SR), duration_sec=10.0)
    assert starts(windows) == [50, 175]


def test_duration_shorter_than_a_window_is_a_usage_error():
    with pytest.raises(UsageError, match=r"duration \(3 s\) is shorter than one window \(5 s\)"):
        plan_windows(*spans(60.0), duration_sec=3.0)


def test_start_after_the_end_is_a_media_error():
    with pytest.raises(MediaError, match=r"0\.0 s of audio and video overlap from 100 s"):
        plan_windows(*spans(60.0), start_sec=100.0, path="a.mp4")


def test_range_near_the_end_reports_the_overlap_left():
    with pytest.raises(MediaError, match=r"2\.0 s of audio and video overlap from 58 s"):
        plan_windows(*spans(60.0), start_sec=58.0)


def test_synchformer_uses_4_8_s_and_starts_two_frames_before_the_stream():
    g = SYNCHFORMER_GEOMETRY
    assert g.used_sec == pytest.approx(4.8) and g.used_frames[0] / 25 == pytest.approx(0.08)
    windows = plan_windows(*spans(10.0), g)
    assert windows == [Window(-2, -1280), Window(118, 118 * 640)]
    assert [g.used_video_range(w) for w in windows] == [(0, 120), (120, 240)]
    assert [g.used_audio_range(w) for w in windows] == [(0, 76800), (76800, 153600)]
    # The margins stick out (frames -2 and -1); the model never sees them.
    assert (windows[0].frame_start, windows[0].frame_start + g.frames) == (-2, 123)


def test_synchformer_short_file_needs_4_8_s():
    with pytest.raises(MediaError, match=r"4\.5 s of audio and video overlap, 4\.8 s needed"):
        plan_windows(*spans(4.5), SYNCHFORMER_GEOMETRY)
    assert len(plan_windows(*spans(4.8), SYNCHFORMER_GEOMETRY)) == 1


def test_geometry_rejects_unsynchronised_used_parts():
    # A ValueError, not an assert: it must hold under `python -O` too.
    with pytest.raises(ValueError, match="not the same time"):
        WindowGeometry(used_frames=(2, 122), used_samples=(0, 76800))
    with pytest.raises(ValueError, match="not inside"):
        WindowGeometry(used_frames=(0, 130), used_samples=(0, 83200))


@pytest.mark.parametrize("seed", range(40))
def test_invariants_on_random_streams(seed):
    rng = random.Random(seed)
    geometry = rng.choice([SPARSESYNC_GEOMETRY, SYNCHFORMER_GEOMETRY])
    v0 = rng.randrange(0, 50)
    v1 = v0 + rng.randrange(130, 3000)
    a0 = rng.randrange(0, 50 * 640)
    a1 = a0 + rng.randrange(81000, 2_000_000)
    shift = rng.choice([0.0, 0.4, -1.2, 2.0, 0.04])
    stride = rng.choice([None, 1.0, 3.3, 7.0])
    try:
        windows = plan_windows((v0, v1), (a0, a1), geometry, stride_sec=stride, shift_sec=shift)
    except MediaError:
        return
    frames = [geometry.used_video_range(w) for w in windows]
    for w, (f0, f1) in zip(windows, frames, strict=True):
        s0, s1 = geometry.used_audio_range(w)
        assert v0 <= f0 and f1 <= v1 and a0 <= s0 and s1 <= a1
        assert w.shift_sec == pytest.approx(round(shift, 2))
    assert starts(windows) == sorted(set(starts(windows)))
    # Nothing later could still fit a window, and the tail left out is under a second.
    later = Window(windows[-1].frame_start + 1, windows[-1].sample_start + 640)
    fits = geometry.used_video_range(later)[1] <= v1 and geometry.used_audio_range(later)[1] <= a1
    if fits:
        end = min(v1, (a1 - geometry.used_samples[1] - round(shift * SR)) // 640 + geometry.used_frames[1])
        assert end - frames[-1][1] < END_WINDOW_MIN_FRAMES
    if stride is None:  # default stride: back to back, only the end-aligned window overlaps
        gaps = [b[0] - a[1] for a, b in itertools.pairwise(frames)]
        assert all(g == 0 for g in gaps[:-1]) and (not gaps or gaps[-1] <= 0)


def test_window_at_is_the_reference_arithmetic():
    # The conformance cases of the shared fixtures.
    assert window_at(0.0, 1.6) == Window(0, 25600)
    assert window_at(4.0, -2.0) == Window(100, 32000)
    # ... including its quirks, which plan_windows does not have.
    assert window_at(4.6).frame_start == 114
    w = window_at(1.23)
    assert w == Window(30, 19680) and w.shift_sec == pytest.approx(0.03)


def test_planned_windows_match_the_reference_on_grid_starts():
    planned = plan_windows(*spans(60.0), start_sec=4.0, shift_sec=-2.0)[0]
    assert planned == window_at(4.0, -2.0)


def test_check_window():
    v, a = spans(10.0)
    check_window(window_at(5.0), SPARSESYNC_GEOMETRY, v, a)
    check_window(window_at(0.0, -1.0), SPARSESYNC_GEOMETRY, v, a)  # audio before 0 is silence
    with pytest.raises(MediaError, match="reads past the end of the video"):
        check_window(window_at(5.04), SPARSESYNC_GEOMETRY, v, a, path="x.mp4")
    with pytest.raises(MediaError, match="reads past the end of the audio"):
        check_window(window_at(4.0, 1.2), SPARSESYNC_GEOMETRY, v, a)
    with pytest.raises(MediaError, match="before the first video frame"):
        check_window(window_at(0.0), SPARSESYNC_GEOMETRY, (5, 250), a)
    # A Synchformer window at file time 0 has its used part inside the file.
    check_window(Window(-2, -1280), SYNCHFORMER_GEOMETRY, v, a)


def test_clip_range_pads_outside_the_stream():
    assert clip_range(-2, 123, (0, 250)) == (0, 123, 2, 0)
    assert clip_range(240, 365, (0, 250)) == (240, 250, 0, 115)
    assert clip_range(300, 310, (0, 250)) == (300, 300, 0, 10)
    assert clip_range(10, 20, (0, 250)) == (10, 20, 0, 0)


def test_an_anchor_window_keeps_the_papers_arithmetic_and_the_rest_follow_it():
    # 1.234 s: the paper reads frame 30 (1.20 s) but audio from 1.234 s (a 0.034 s shift).
    anchor = window_at(1.234, 0.0)
    windows = plan_windows(*spans(20.0), anchor=anchor)
    assert windows[0] == anchor == Window(30, 19_744)
    assert [w.frame_start for w in windows] == [30, 155, 280, 374]  # 374: the audio ends at 20 s
    assert all(w.sample_start - w.frame_start * 640 == 544 for w in windows)


def test_an_anchor_may_read_audio_before_the_file_starts_but_not_past_its_end():
    windows = plan_windows(*spans(10.0), anchor=window_at(0.0, -2.0))
    assert windows[0] == Window(0, -32_000)
    with pytest.raises(MediaError, match="past the end of the audio"):
        plan_windows(*spans(10.0), anchor=window_at(4.0, 2.0), path="clip.mp4")

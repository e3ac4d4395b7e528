"""Where the model looks: planning 5 s windows over a file (pure arithmetic, no I/O).

A :class:`~sparsesync_cli.geometry.Window` is a position on the two sample grids of the clock
(25 fps frames, 16 kHz samples, file time 0 = index 0). A
:class:`~sparsesync_cli.geometry.WindowGeometry` (each family's is in the family table) says how
much the model reads per window and which part of it the model actually USES: SparseSync uses
all 125 frames and 80,000 samples; Synchformer cuts 14 overlapping segments out of the middle,
frames ``[2, 122)`` and samples ``[1280, 78080)`` (4.8 s). Every rule below is about the used
part, because that is the only part that can influence a prediction:

- the used part of a planned window lies inside both streams (video, and audio shifted by
  ``shift_sec``) and inside the requested range; the unused margins may stick out of the streams
  (the first Synchformer window of a file starts at frame -2) and a reader fills them with
  anything (see :func:`clip_range`), because the model never sees them;
- windows start on the frame grid, and the audio of every window starts exactly
  ``shift_sec`` after its first frame (integer arithmetic: no float rounding drifts a window by a
  sample or a frame, which ``int(t * fps)`` on ``k / 25`` does for about 5 % of frames).

:func:`window_at` is the exception on purpose: it reproduces the paper's demo arithmetic for one
window given in seconds, so that conformance cases match the reference exactly.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

from .. import clock
from ..errors import MediaError, UsageError
from ..families import SPARSESYNC, SYNCHFORMER, get_family
from ..geometry import SAMPLES_PER_FRAME, Span, Window, WindowGeometry

__all__ = [
    "END_WINDOW_MIN_SEC",
    "SAMPLES_PER_FRAME",
    "SPARSESYNC_GEOMETRY",
    "SYNCHFORMER_GEOMETRY",
    "Span",
    "Window",
    "WindowGeometry",
    "check_window",
    "clip_range",
    "plan_windows",
    "shift_samples",
    "window_at",
    "window_starts_sec",
]

END_WINDOW_MIN_SEC = 1.0  # an uncovered tail at least this long gets one extra end-aligned window
END_WINDOW_MIN_FRAMES = round(END_WINDOW_MIN_SEC * clock.VIDEO_FPS)
_GRID_EPS = 1e-6  # seconds*fps within this of an integer count as on the grid (typed decimals)


# The geometry itself lives on the ground floor (the family table needs it without this
# package); the names stay importable from here.
SPARSESYNC_GEOMETRY = get_family(SPARSESYNC).geometry
SYNCHFORMER_GEOMETRY = get_family(SYNCHFORMER).geometry


def window_at(start_sec: float, shift_sec: float = 0.0) -> Window:
    """The window the paper's demo reads for ``--v_start_i_sec start_sec --offset_sec shift_sec``.

    Uses :func:`clock.window_indices` unchanged, including its float arithmetic (``4.6 s`` gives
    frame 114) and its audio start from the unrounded ``start_sec`` (``1.23 s`` gives frame 30
    but audio from 1.23 s, a 0.03 s shift). Use it to reproduce reference cases; plan a file
    with :func:`plan_windows`, which has neither quirk.
    """
    frame, sample = clock.window_indices(start_sec, shift_sec)
    return Window(frame, sample)


def shift_samples(shift_sec: float) -> int:
    """Audio shift in samples, rounded to 0.01 s like the reference's ``--offset_sec``."""
    return round(round(shift_sec, 2) * clock.SAMPLE_RATE)


def _frames_ceil(t_sec: float) -> int:
    return math.ceil(t_sec * clock.VIDEO_FPS - _GRID_EPS)


def _frames_floor(t_sec: float) -> int:
    return math.floor(t_sec * clock.VIDEO_FPS + _GRID_EPS)


def plan_windows(
    video_span: Span,
    audio_span: Span,
    geometry: WindowGeometry = SPARSESYNC_GEOMETRY,
    *,
    stride_sec: float | None = None,
    start_sec: float | None = None,
    duration_sec: float | None = None,
    shift_sec: float = 0.0,
    anchor: Window | None = None,
    path: str | None = None,
) -> list[Window]:
    """Windows covering the overlap of the video and the (shifted) audio, in file order.

    ``video_span``/``audio_span``: ``[first, end)`` indices of the decoded frames (25 fps) and
    samples (16 kHz). ``stride_sec``: distance between window starts, rounded to whole frames;
    default one used part (every frame seen once). ``start_sec``/``duration_sec``: analyse only
    ``[start, start + duration)`` of file time (duration counts from the overlap's start when
    ``start_sec`` is None); the used parts lie inside it. ``shift_sec``: read the audio that much
    later (simulates an audio lead, like the paper's ``--offset_sec``).

    The first window's used part starts at the first frame where both streams (and the range)
    have content. Windows follow every ``stride`` frames while their used part ends inside the
    overlap. If that leaves an uncovered tail of at least ``END_WINDOW_MIN_SEC`` (1 s), one more
    window is aligned to the end of the overlap, so the end of a file (where drift is largest) is
    always checked; a shorter tail (< 1 s) is left out rather than spending a window that would
    repeat >= 80 % of the previous one.

    ``anchor``: a window the user placed (:func:`window_at`, the paper's arithmetic) becomes the
    first one, exactly as given, and the others follow it every ``stride`` with the same audio
    shift; ``start_sec`` and ``shift_sec`` are then ignored. Audio before the file's first sample
    is allowed for it (silence, as :func:`check_window` says).

    Raises :class:`MediaError` (``path`` names the file) when no window fits, with the overlap
    that was found, and :class:`UsageError` for a stride below one frame or a duration shorter
    than one window.
    """
    v0, v1 = (int(x) for x in video_span)
    a0, a1 = (int(x) for x in audio_span)
    f_used0, f_used1 = geometry.used_frames
    s_used0, s_used1 = geometry.used_samples
    if anchor is not None:
        check_window(anchor, geometry, video_span, audio_span, path=path)
        start_sec = None
        shift = anchor.sample_start - anchor.frame_start * SAMPLES_PER_FRAME
    else:
        shift = shift_samples(shift_sec)

    if stride_sec is None:
        stride = f_used1 - f_used0
    else:
        stride = round(stride_sec * clock.VIDEO_FPS)
        if stride < 1:
            raise UsageError(f"a stride of {stride_sec} s is below one frame ({1 / clock.VIDEO_FPS:.2f} s)")
    if duration_sec is not None and _frames_floor(duration_sec) < f_used1 - f_used0:
        raise UsageError(
            f"the requested duration ({duration_sec:g} s) is shorter than one window "
            f"({geometry.used_sec:g} s)"
        )

    # Bounds on a window's first frame f from each constraint on its used part; the audio of
    # window f starts at sample f * 640 + shift.
    lo = max(v0 - f_used0, -((shift + s_used0 - a0) // SAMPLES_PER_FRAME))  # ceil division
    hi = min(v1 - f_used1, (a1 - shift - s_used1) // SAMPLES_PER_FRAME)
    if start_sec is not None:
        lo = max(lo, _frames_ceil(start_sec) - f_used0)
    if anchor is not None:
        lo = anchor.frame_start
    if duration_sec is not None:
        range_start = _frames_ceil(start_sec) if start_sec is not None else lo + f_used0
        hi = min(hi, range_start + _frames_floor(duration_sec) - f_used1)

    if hi < lo:
        raise MediaError(_too_short(v0, v1, a0, a1, shift, geometry, start_sec, duration_sec), path)

    starts = list(range(lo, hi + 1, stride))
    if hi - starts[-1] >= END_WINDOW_MIN_FRAMES:
        starts.append(hi)
    windows = [Window(f, f * SAMPLES_PER_FRAME + shift) for f in starts]

    # Invariants: in order, used parts inside both streams, tail covered to within 1 s.
    assert all(a.frame_start < b.frame_start for a, b in itertools.pairwise(windows))
    for w in windows:
        uv, ua = geometry.used_video_range(w), geometry.used_audio_range(w)
        assert v0 <= uv[0] and uv[1] <= v1, (w, video_span)
        # (an anchored plan may read audio before the first sample: silence, as the user asked)
        assert (anchor is not None or a0 <= ua[0]) and ua[1] <= a1, (w, audio_span)
        assert w.sample_start - w.frame_start * SAMPLES_PER_FRAME == shift
    assert windows[0].frame_start == lo and hi - windows[-1].frame_start < END_WINDOW_MIN_FRAMES
    return windows


def _too_short(
    v0: int,
    v1: int,
    a0: int,
    a1: int,
    shift: int,
    geometry: WindowGeometry,
    start_sec: float | None,
    duration_sec: float | None,
) -> str:
    """The one-line cause for a file (or range) where no window fits."""
    starts = [v0 / clock.VIDEO_FPS, (a0 - shift) / clock.SAMPLE_RATE]
    ends = [v1 / clock.VIDEO_FPS, (a1 - shift) / clock.SAMPLE_RATE]
    if start_sec is not None:
        starts.append(start_sec)
    begin = max(starts)
    if duration_sec is not None:
        ends.append(begin + duration_sec)
    overlap = max(0.0, min(ends) - begin)
    where = f" from {start_sec:g} s" if start_sec is not None else ""
    shifted = f" (audio shifted by {shift / clock.SAMPLE_RATE:+.2f} s)" if shift else ""
    return (
        f"shorter than one window: {overlap:.1f} s of audio and video overlap{where}{shifted}, "
        f"{geometry.used_sec:.1f} s needed"
    )


def check_window(
    w: Window,
    geometry: WindowGeometry,
    video_span: Span,
    audio_span: Span,
    *,
    path: str | None = None,
) -> None:
    """Raise :class:`MediaError` if the used part of ``w`` is not inside the streams.

    For windows given by the user (:func:`window_at`). Audio before the first sample is allowed
    (the clock defines it as silence, and the paper's demo reads it that way); frames before the
    first frame and anything past the end of either stream are not.
    """
    uv0, uv1 = geometry.used_video_range(w)
    _, ua1 = geometry.used_audio_range(w)
    fps, sr = clock.VIDEO_FPS, clock.SAMPLE_RATE
    at = f"the window at {w.start_sec:.2f} s"
    if uv0 < video_span[0]:
        raise MediaError(f"{at} starts before the first video frame ({video_span[0] / fps:.2f} s)", path)
    if uv1 > video_span[1]:
        raise MediaError(f"{at} reads past the end of the video ({video_span[1] / fps:.2f} s)", path)
    if ua1 > audio_span[1]:
        raise MediaError(f"{at} reads past the end of the audio ({audio_span[1] / sr:.2f} s)", path)


def clip_range(first: int, end: int, span: Span) -> tuple[int, int, int, int]:
    """Split a read ``[first, end)`` into what ``span`` holds and the padding around it.

    Returns ``(read_first, read_end, pad_before, pad_after)`` with
    ``pad_before + (read_end - read_first) + pad_after == end - first``. A reader fills the pads
    (silence for audio; any frame for the unused margins of a Synchformer window).
    """
    read_first = min(max(first, span[0]), end)
    read_end = max(min(end, span[1]), read_first)
    return read_first, read_end, read_first - first, end - read_end


def window_starts_sec(windows: Sequence[Window], geometry: WindowGeometry) -> list[float]:
    """File time where the used part of each window starts (the x axis for aggregation)."""
    return [geometry.used_start_sec(w) for w in windows]

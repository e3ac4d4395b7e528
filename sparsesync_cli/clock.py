"""One clock and one sign, used everywhere in avsync.

Clock: file time, by presentation timestamps. Video frame ``k`` of the 25 fps grid is the
picture a player shows at file time ``k / VIDEO_FPS``; audio sample ``n`` of the 16 kHz mono
signal plays at file time ``n / SAMPLE_RATE``. A stream that starts late, an edit list or
encoder priming therefore lands where a player would put it; before the first audio sample is
silence.

Sign: ``offset > 0`` means the audio LEADS (is early): you hear it before you see it. That is
the models' class convention (class ``i`` = ``grid[i]`` seconds of audio lead). ``avsync fix``
delays the audio by ``offset`` (advances it when negative) so the result is in sync.
"""

from __future__ import annotations

import math

VIDEO_FPS = 25  # frames per second the models were trained on
SAMPLE_RATE = 16_000  # audio samples per second the models were trained on
WINDOW_SEC = 5.0  # one model input
FRAMES_PER_WINDOW = 125  # WINDOW_SEC * VIDEO_FPS
SAMPLES_PER_WINDOW = 80_000  # WINDOW_SEC * SAMPLE_RATE
SHORT_SIDE = 256  # frames are scaled so their shorter side has this many pixels
CROP_SIZE = 224  # then centre-cropped to this square

SIGN = "offset_sec > 0: the audio is early (leads the picture); < 0: the audio is late"
CLOCK = "file time by presentation timestamps"
IN_SYNC_TOLERANCE_SEC = 0.1  # |offset| below this is "in sync": half the models' 0.2 s class step


def frame_index(t_sec: float) -> int:
    """The 25 fps frame index at file time ``t_sec``, as the paper's code computes it.

    The reference uses ``int(t * fps)``; we keep that arithmetic (floor for negative times) so
    a window given in seconds selects exactly the frames the paper's code selects.
    """
    return math.floor(t_sec * VIDEO_FPS)


def sample_index(t_sec: float) -> int:
    """The 16 kHz sample index at file time ``t_sec`` (same arithmetic as :func:`frame_index`)."""
    return math.floor(t_sec * SAMPLE_RATE)


def window_indices(start_sec: float, shift_sec: float) -> tuple[int, int]:
    """First frame and first audio sample of the window that starts at ``start_sec``.

    ``shift_sec`` simulates an offset like the paper's ``--offset_sec``: the audio is read from
    ``start_sec + shift_sec``, so a positive shift makes the audio early. As in the reference the
    shift is rounded to 0.01 s and the audio start is computed from the unrounded ``start_sec``.
    """
    return frame_index(start_sec), sample_index(start_sec + round(shift_sec, 2))


def describe_offset(offset_sec: float, *, at_least: bool = False) -> str:
    """The offset in words: ``"audio 0.40 s early"``, ``"audio 1.20 s late"`` or ``"in sync"``."""
    if abs(offset_sec) < IN_SYNC_TOLERANCE_SEC:
        return "in sync"
    way = "early" if offset_sec > 0 else "late"
    prefix = "at least " if at_least else ""
    return f"audio {prefix}{abs(offset_sec):.2f} s {way}"

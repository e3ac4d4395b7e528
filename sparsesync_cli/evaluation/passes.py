"""Randomised evaluation passes: each pass draws, for every protocol row, an offset and a start.

The SparseSync authors evaluated VGGSound-Sparse (a few hundred clips) by iterating the test set
``iter_times`` times (25 or 50) with ``load_fixed_offsets_on_test=False``: every item then gets
its offset and temporal crop from ``TemporalCropAndOffsetRandomFeasible`` (``dataset/transforms.py``
of v-iashin/SparseSync), and the metrics are computed over all the items of all the passes.
``avsync evaluate --passes N --seed S`` does the same. The draw, per item:

1. the clip is cut to its first ``CLIP_MAX_LEN_SEC`` (10 s) and to the shorter of its two
   streams, as the authors' test transforms do (``EqualifyFromRight``);
2. an offset is drawn uniformly from the model's class grid (rounded to 2 decimals, as theirs);
3. a start frame is drawn uniformly from those where the whole window, video and shifted audio,
   lies inside the cut clip: the authors draw a continuous ``v_start_sec ~ U[max(0, -offset),
   min(L, L - offset)]`` (``L`` = clip length minus the 5 s crop) and floor it to a frame, so the
   last feasible frame is never drawn; nor is it here. An item is written as a 2-decimal
   ``vstart_sec`` and read back as ``avsync predict --start`` reads it (the paper's
   ``int(vstart_sec * 25)``), which lands one frame early for 15 of the first 250 frames
   (``4.6 s`` reads frame 114); those frames are left out of the draw, so every drawn item is
   exactly the window at its offset.

The authors' clips (10 s of VGGSound) fit a 5 s window at every offset of the grid. A shorter
clip would stop their code at an assertion; here step 2 draws only among the offsets that have a
feasible start, and a clip with none is that item's failure.

Randomness: every choice is a sha256 of ``(seed, pass, row, what)``, so a draw depends on
nothing but those numbers and the clip (not on the worker, the order or the Python version), and
resuming a run draws the same items again.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Sequence

from ..errors import MediaError, UsageError
from .protocol import Draw, ProtocolItem

CLIP_MAX_LEN_SEC = 10.0  # the authors' EqualifyFromRight(clip_max_len_sec=10) in the test transforms


def pass_items(items: Sequence[ProtocolItem], passes: int, seed: int) -> list[ProtocolItem]:
    """The items to evaluate for ``passes`` randomised passes over ``items`` (the protocol rows).

    Row-major (all passes of row 0, then of row 1, ...), so consecutive items share a clip and
    its reader; each item's offset and start are drawn when its clip is opened
    (:func:`draw_window`).
    """
    if passes < 1:
        raise UsageError(f"--passes {passes}: expected 1 or more")
    return [
        ProtocolItem(it.path, it.offset_sec, it.vstart_sec, Draw(seed, p, row))
        for row, it in enumerate(items)
        for p in range(passes)
    ]


def uniform_index(draw: Draw, what: str, n: int) -> int:
    """A uniform choice in ``range(n)`` for ``what`` of ``draw`` (sha256; bias below 2**-200)."""
    if n < 1:
        raise ValueError("nothing to choose from")
    digest = hashlib.sha256(f"avsync/{draw.seed}/{draw.pass_index}/{draw.row}/{what}".encode()).digest()
    return int.from_bytes(digest, "big") % n


def cut_spans(
    video_span: tuple[int, int], audio_span: tuple[int, int], fps: float = 25.0, sample_rate: int = 16000
) -> tuple[tuple[int, int], tuple[int, int]]:
    """The spans (frames, samples) of the clip as the authors' test transforms see it: both
    streams from where the later one starts, to where the first one ends, at most 10 s."""
    start = max(video_span[0] / fps, audio_span[0] / sample_rate)
    end = min(video_span[1] / fps, audio_span[1] / sample_rate, start + CLIP_MAX_LEN_SEC)
    video = (
        max(video_span[0], math.ceil(start * fps - 1e-9)),
        min(video_span[1], math.floor(end * fps + 1e-9)),
    )
    audio = (
        max(audio_span[0], math.ceil(start * sample_rate - 1e-6)),
        min(audio_span[1], math.floor(end * sample_rate + 1e-6)),
    )
    return video, audio


def draw_window(
    item: ProtocolItem,
    video_span: tuple[int, int],
    audio_span: tuple[int, int],
    grid: Sequence[float],
) -> ProtocolItem:
    """``item`` with the offset and start of its draw, for a clip with these spans (file clock).

    Raises :class:`MediaError` when no offset of the grid fits a 5 s window in the clip.
    """
    from .. import clock

    if item.draw is None:
        return item
    video, audio = cut_spans(video_span, audio_span, clock.VIDEO_FPS, clock.SAMPLE_RATE)
    offsets = [round(float(g), 2) for g in grid]
    starts = {off: start_frames(video, audio, off) for off in offsets}
    usable = [off for off in offsets if starts[off]]
    if not usable:
        raise MediaError(
            f"too short for a {clock.WINDOW_SEC:g} s window at any offset of the model's grid", item.path
        )
    offset = usable[uniform_index(item.draw, "offset", len(usable))]
    frames = starts[offset]
    frame = frames[uniform_index(item.draw, "start", len(frames))]
    return ProtocolItem(item.path, offset, round(frame / clock.VIDEO_FPS, 2), item.draw)


def start_frames(video_span: tuple[int, int], audio_span: tuple[int, int], offset_sec: float) -> list[int]:
    """The start frames the draw chooses from at ``offset_sec``: those whose window (125 frames
    from the frame, 80,000 samples from ``start + offset``) lies inside both spans, less the last
    one (see the module notes) and the frames a 2-decimal start does not read back."""
    return list(_start_frames(tuple(video_span), tuple(audio_span), float(offset_sec)))


@functools.lru_cache(maxsize=4096)  # clips of a dataset share a few spans: each pass asks again
def _start_frames(video_span: tuple[int, int], audio_span: tuple[int, int], offset_sec: float) -> tuple:
    from .. import clock

    fits = []
    for f in range(video_span[0], video_span[1] - clock.FRAMES_PER_WINDOW + 1):
        sample = clock.sample_index(round(f / clock.VIDEO_FPS, 2) + offset_sec)
        if audio_span[0] <= sample and sample + clock.SAMPLES_PER_WINDOW <= audio_span[1]:
            fits.append(f)
    if len(fits) > 1:
        fits = fits[:-1]  # the floor of a continuous uniform start never reaches the last frame
    return tuple(f for f in fits if clock.frame_index(round(f / clock.VIDEO_FPS, 2)) == f)

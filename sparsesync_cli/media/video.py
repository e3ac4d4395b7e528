"""Video frames on the 25 fps grid of file time, decoded forward as needed, seeking only to jump.

Grid frame ``n`` is the picture ffmpeg's ``fps=25`` filter (default rounding) puts at ``n``: each
decoded picture gets the grid index ``round(t * 25)`` of its file time ``t`` (halves away from
zero), and frame ``n`` is the LAST picture whose index is ``<= n``; pictures that share an index
are dropped but the last, gaps repeat the previous picture. Because the indices are computed
from absolute timestamps, the grid stays anchored at file time 0 after a seek: a seek lands on a
keyframe before the target and decodes forward, and returns exactly what a sequential decode
returns. Each picture then goes through the paper's filter chain (player rotation, ``scale`` to
a shorter side of 256 with ffmpeg's default bicubic, even crop, rgb24) in PyAV's libavfilter.
"""

from __future__ import annotations

import itertools
import math
import os
from collections import OrderedDict
from fractions import Fraction
from typing import Any, Literal, overload

import numpy as np

from ..clock import FRAMES_PER_WINDOW, SHORT_SIDE, VIDEO_FPS
from ..errors import MediaError
from . import timing
from .probe import MediaInfo
from .stream import StreamDecoder

FORWARD_DECODE_LIMIT_SEC = 5.0  # a forward jump up to this long is decoded through, a longer one seeks
SEEK_PREROLL_SEC = 0.5  # first seek lands this far before the target; doubled while it lands too late
CACHE_FRAMES = FRAMES_PER_WINDOW  # the most recent output frames kept, so overlapping windows are free
SCALE_THREADS = min(
    8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
)
MAX_EOF_HOLD_FRAMES = 2  # beyond the last picture's own duration, hold it this many grid frames at most


def scaled_size(
    width: int, height: int, sar: Fraction, rotation: int, short_side: int = SHORT_SIDE
) -> tuple[int, int]:
    """(W, H) the displayed picture is scaled to (shorter side ``short_side``), before the even crop.

    Same arithmetic as the scale expression of the paper's ffmpeg command (double, truncated).
    Bounded because probe refuses geometry no player shows (see ``probe.check_geometry``).
    """
    dw: float = width * float(sar) if sar != 1 else width
    dh: float = height
    if rotation in (90, 270):
        dw, dh = dh, dw
    return int(dw * short_side / min(dw, dh)), int(dh * short_side / min(dw, dh))


def output_size(
    width: int, height: int, sar: Fraction, rotation: int, short_side: int = SHORT_SIDE
) -> tuple[int, int]:
    """(W, H) of the output frames: the displayed picture scaled to a shorter side of 256, even.

    With square pixels and no rotation this is exactly ffmpeg's
    ``scale=iw*256/min(iw,ih):ih*256/min(iw,ih),crop=trunc(iw/2)*2:trunc(ih/2)*2``.
    """
    w, h = scaled_size(width, height, sar, rotation, short_side)
    return w - w % 2, h - h % 2


class _Scaler:
    """The paper's per-picture filter chain, rebuilt when the decoded format or size changes."""

    def __init__(self, rotation: int, time_base: Fraction, scale_to: tuple[int, int]) -> None:
        self._rotation, self._tb, self._scale_to = rotation, time_base, scale_to
        self._key: tuple[str, int, int] | None = None
        self._graph: Any = None

    def _build(self, fmt: str, width: int, height: int) -> None:
        import av
        from av.video.format import VideoFormat

        # Every picture goes to the size the header's geometry gives, even one whose stored size
        # differs (a damaged or resized stream): the output shape, and memory, stay what was
        # planned from the header, which probe has bounded.
        sw, sh = self._scale_to
        graph = av.filter.Graph()
        # Slice threads in the scaler: ~1.6x faster at 1080p, bit-identical output (tested).
        graph.threads = SCALE_THREADS
        chain = [graph.add_buffer(width=width, height=height, format=VideoFormat(fmt), time_base=self._tb)]
        # The filters ffmpeg's autorotate inserts for a display matrix, before the user's chain.
        if self._rotation == 90:
            chain.append(graph.add("transpose", "clock"))
        elif self._rotation == 270:
            chain.append(graph.add("transpose", "cclock"))
        elif self._rotation == 180:
            chain += [graph.add("hflip"), graph.add("vflip")]
        chain += [
            graph.add("scale", f"{sw}:{sh}"),
            graph.add("crop", "trunc(iw/2)*2:trunc(ih/2)*2"),
            graph.add("format", "rgb24"),
            graph.add("buffersink"),
        ]
        for a, b in itertools.pairwise(chain):
            a.link_to(b)
        graph.configure()
        self._graph, self._key = graph, (fmt, width, height)

    def __call__(self, frame: Any) -> np.ndarray:
        key = (frame.format.name, frame.width, frame.height)
        if key != self._key:
            self._build(*key)
        self._graph.vpush(frame)
        return self._graph.vpull().to_ndarray()


class VideoDecoder(StreamDecoder):
    """Frames of one file's video stream on the 25 fps grid (see the module docstring)."""

    def __init__(self, path: str, info: MediaInfo, short_side: int = SHORT_SIDE) -> None:
        super().__init__(path, info, info.video.index)
        self._short = short_side
        v = info.video
        self._sar = Fraction(*v.sample_aspect_ratio)
        self.size = output_size(v.width, v.height, self._sar, v.rotation, short_side)  # (W, H) of frames
        self._scaler: _Scaler | None = None
        self._hold = MAX_EOF_HOLD_FRAMES + (math.ceil(VIDEO_FPS / v.average_fps) if v.average_fps else 1)
        self._reset_state(None)

    # -- state -----------------------------------------------------------------------------------
    def _reset_state(self, next_index: int | None) -> None:
        self._next = next_index  # grid index the next produced frame gets
        self._pending: tuple[Any, int] | None = None  # (picture, its grid index) shown at self._next
        self._lookahead: tuple[Any, int] | None = None  # the picture decoded after it
        self._frames: Any = None
        self._eof = False
        self._broken: str | None = None  # why decoding stopped early, if it did
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._pending_rgb: np.ndarray | None = None  # the pending picture once converted

    def _open(self) -> None:
        super()._open()
        # Frame threads make 1080p decode ~2x faster; the pictures are bit-identical either way.
        self._stream.thread_type = "AUTO"
        v = self._info.video
        scale_to = scaled_size(v.width, v.height, self._sar, v.rotation, self._short)
        self._scaler = _Scaler(v.rotation, self._tb, scale_to)

    def _fetch(self) -> tuple[Any, int] | None:
        """The next decoded picture with its grid index, or None at the end of the stream."""
        if self._eof:
            return None
        for frame in self._frames:
            ts = frame.pts if frame.pts is not None else frame.dts
            if ts is None:
                continue
            return frame, timing.grid_index(ts, self._tb, self._origin, VIDEO_FPS)
        self._eof = True
        return None

    # -- positioning -----------------------------------------------------------------------------
    def _restart(self) -> None:
        """Decode from the very start of the file (a seek to 0 could skip the first packets)."""
        self._open()
        self._reset_state(self._info.video_span[0])
        self._frames = self._decoded()

    def _seek(self, target: int) -> None:
        """Position so that the next produced frame is grid frame ``target``."""
        margin = SEEK_PREROLL_SEC
        while True:
            t = target / VIDEO_FPS - margin
            if t <= self._info.video.start_sec:
                self._restart()
                return
            if self._container is None:
                self._open()
            ts = timing.from_seconds(t, self._tb, self._origin)
            try:
                self._container.seek(ts, stream=self._stream, backward=True, any_frame=False)
            except (self._av_error, OSError):
                self._restart()
                return
            self._reset_state(target)
            self._frames = self._decoded()
            first = self._fetch()
            if first is not None and first[1] <= target:
                self._lookahead = first
                return
            # Landed after the target (an index by decode time, an open GOP): go further back.
            margin *= 2

    @overload
    def _produce(self, n: int, convert: Literal[True]) -> np.ndarray: ...
    @overload
    def _produce(self, n: int, convert: Literal[False]) -> None: ...
    def _produce(self, n: int, convert: bool) -> np.ndarray | None:
        """Grid frame ``n`` (== self._next): the last picture with index <= n. Converted if asked."""
        while True:
            if self._lookahead is None:
                self._lookahead = self._fetch()
            la = self._lookahead
            if la is None or la[1] > n:
                break
            self._pending, self._lookahead, self._pending_rgb = la, None, None
        if self._pending is None:
            raise MediaError(f"no picture decodes at or before video frame {n}", self._path)
        if self._lookahead is None and n >= self._eof_limit():
            cause = self._broken or "the data ends early or does not decode"
            raise MediaError(
                f"video frame {n} ({n / VIDEO_FPS:.2f} s) cannot be decoded: {cause}", self._path
            )
        self._next = n + 1
        if not convert:
            return None
        if self._pending_rgb is None:
            assert self._scaler is not None  # made when the stream is opened, before any picture
            self._pending_rgb = self._scaler(self._pending[0])
        return self._pending_rgb

    def _eof_limit(self) -> int:
        """First grid frame the last picture no longer covers (it ends, or the data broke off).

        The fps filter repeats the last picture until the end of the stream; we hold it until its
        own end (timestamp + duration) or a couple of frames, not over data that failed to decode.
        """
        assert self._pending is not None
        frame, index = self._pending
        limit = index + self._hold
        if frame.duration and frame.pts is not None:
            end = timing.grid_index(frame.pts + frame.duration, self._tb, self._origin, VIDEO_FPS)
            limit = max(limit, end + MAX_EOF_HOLD_FRAMES)
        return limit

    # -- public ----------------------------------------------------------------------------------
    def read(self, first: int, count: int) -> np.ndarray:
        """Grid frames ``[first, first + count)`` as ``(count, H, W, 3)`` uint8."""
        w, h = self.size
        out = np.empty((count, h, w, 3), np.uint8)
        end = first + count
        n = first
        while n < end and n in self._cache:  # overlap with the previous window
            out[n - first] = self._cache[n]
            n += 1
        if n == end:
            return out
        gap = n - self._next if self._next is not None else -1
        if self._frames is None or gap < 0 or gap > FORWARD_DECODE_LIMIT_SEC * VIDEO_FPS:
            self._seek(n)
        assert self._next is not None  # set by the seek (or the reads before)
        try:
            while self._next < n:  # a short forward jump: decode through without converting
                self._produce(self._next, convert=False)
            while n < end:
                rgb = self._produce(n, convert=True)
                out[n - first] = rgb
                self._cache[n] = rgb
                if len(self._cache) > CACHE_FRAMES:
                    self._cache.popitem(last=False)
                n += 1
        except MediaError:
            self._frames = None  # the next read re-seeks from a clean state
            raise
        return out

"""Audio as 16 kHz mono float32 on file time, decoded forward as needed, seeking only to jump.

Sample ``n`` plays at file time ``n / 16000``. Each decoded frame is placed by its presentation
timestamp (so priming removed by the demuxer/decoder, late starts and gaps land where a player
plays them), resampled with FFmpeg's default swr resampler to 16 kHz float (as ``ffmpeg -ar
16000`` does, never via int16), then averaged over channels (the paper's mono: the MEAN, not
ffmpeg's ``-ac 1`` downmix). Before the first and after the last real sample is silence.

Consecutive frames are resampled as one continuous signal; a timestamp jump of more than
GAP_TOLERANCE_SEC starts a new segment at the frame's own position (silence fills a gap, an
overlap is dropped). After a seek the resampler restarts on an input sample whose phase against
the 16 kHz grid equals that of a sequential decode, and the first SEEK_PREROLL_SEC of output
(decoder and resampler warm-up) is discarded, so reads after a seek match a sequential decode.

Only codecs whose decoder forgets its past within that pre-roll are sought in the file
(SEEK_EXACT_CODECS). The others carry state from the first packet on: FFmpeg's AAC decoder draws
perceptual noise substitution (PNS) from a random generator that runs through the whole stream
and is not reset by a seek, AC-3 dithers the same way, Opus' CELT layer folds noise from a seed.
A seek there gives other noise values than a sequential decode (AAC: up to ~1e-3 on ~10 % of the
samples of a noisy clip). For them a jump decodes every packet from the start (cheap: no
resampling, audio decodes at hundreds of times real time) and resamples only from the pre-roll on.
"""

from __future__ import annotations

import contextlib
import math
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from ..clock import SAMPLE_RATE, SAMPLES_PER_WINDOW
from ..errors import MediaError
from . import timing
from .probe import MediaInfo, av_cause, check_audio_format, open_input
from .stream import StreamDecoder

GAP_TOLERANCE_SEC = 0.010  # timestamp jitter below this is rounding (mkv stores ms), above it a gap
SEEK_PREROLL_SEC = 0.5  # decoded before a seek target and discarded (AAC/MP3/Opus need < 0.1 s)
FORWARD_DECODE_LIMIT_SEC = 30.0  # a forward jump up to this long is decoded through (audio is cheap)
EOF_TOLERANCE_SEC = 0.05  # audio ending this much before the span's end is padded with silence
KEEP_SAMPLES = 2 * SAMPLES_PER_WINDOW  # decoded samples kept behind the last read, for overlaps
# Decoders whose output after SEEK_PREROLL_SEC no longer depends on where decoding started: no
# random generator, and a bounded look-back (MP3's bit reservoir, an MDCT overlap).
SEEK_EXACT_CODECS = frozenset(
    {"flac", "alac", "mp1", "mp1float", "mp2", "mp2float", "mp3", "mp3float", "vorbis"}
)


_SILENCE = np.zeros(1, np.float32)

# The files the paper's reader was used on: its own 16 kHz AAC re-encodes in MP4 (and MOV, the same
# demuxer). Only there does its priming quirk describe what the models saw.
AUTHORS_CODEC, AUTHORS_RATE, AUTHORS_DEMUXER = "aac", 16000, "mov,mp4"


def in_authors_format(info: MediaInfo) -> bool:
    """True for AAC at 16 kHz in MP4/MOV, the format the paper's pipeline re-encodes every clip to."""
    return (
        info.audio.codec == AUTHORS_CODEC
        and info.audio.sample_rate == AUTHORS_RATE
        and info.format_name.startswith(AUTHORS_DEMUXER)
    )


def seeks_exactly(codec: str) -> bool:
    """True when a decode started by a seek gives what a sequential one does, after a pre-roll."""
    return codec in SEEK_EXACT_CODECS or codec.startswith("pcm_")


@dataclass(frozen=True)
class _FrameGrid:
    """Where a sequential decode puts the stream's frames, in input samples from file time 0."""

    rate: int
    first: int  # the first decoded sample (the resampler's phase reference)
    second: int  # the second frame's first sample (the first frame may be trimmed by priming)
    size: int  # the codec's frame size, taken from the second frame

    def snap(self, p: int, samples: int, tick: Fraction) -> int:
        """The position a sequential decode gives the ``samples``-long frame stamped ``p``.

        Timestamps coarser than a sample (MKV/WebM store milliseconds) pin a frame only to about
        a tick; frames of a constant size end at ``second + k * size``, so the nearest such end
        within that precision is the frame's true one. The END is used because a decoder may
        trim the head of the first frame after a seek (Opus pre-skip). Exact timestamps are
        returned unchanged.
        """
        end = p + samples
        if end <= self.second or self.size <= 0:
            return p
        q = self.second + round((end - self.second) / self.size) * self.size - samples
        return q if abs(q - p) <= math.ceil(self.rate * tick) + 1 else p


class AudioDecoder(StreamDecoder):
    """Mono 16 kHz samples of one audio stream (see the module docstring)."""

    def __init__(self, path: str, info: MediaInfo, *, torchvision_compat: bool = False) -> None:
        super().__init__(path, info, info.audio.index)
        # Elsewhere the authors' pipeline would have re-encoded the file first, so their reader's
        # quirk does not reproduce it: such files decode as a player does.
        self._torchvision_compat = torchvision_compat and in_authors_format(info)
        self._seekable = seeks_exactly(info.audio.codec)
        self._grid: _FrameGrid | None = None  # learned on the first seek
        self._reset(None)

    def _reset(self, start: int | None) -> None:
        self._frames: Any = None
        self._eof = False
        self._broken: str | None = None
        self._resampler: Any = None
        self._seg_key: tuple[int, str] | None = None  # (rate, layout) of the current segment
        self._seg_in = 0  # input-rate position of the segment's first sample
        self._seg_out = 0  # its 16 kHz index
        self._in_count = 0  # input samples fed into this segment
        self._out_count = 0  # 16 kHz samples this segment produced
        self._chunks: deque[np.ndarray] = deque()
        self._buf_start = start if start is not None else 0  # 16 kHz index of the first kept sample
        self._pos = self._buf_start  # 16 kHz index one past the last decoded sample
        self._drop_before = self._buf_start  # samples before this are warm-up, never served
        self._skip_in = 0  # input samples still to drop to reach the phase-aligned restart point
        self._seek_align = False  # the next segment must start phase-aligned (set by a seek)
        self._skip_until: int | None = None  # decode without resampling frames ending before this
        self._decoded_to: int | None = None  # end of the last decoded frame (stream time base)

    # -- placing resampled samples ---------------------------------------------------------------
    def _emit(self, frames: list[Any]) -> None:
        for f in frames:
            mono = f.to_ndarray().mean(axis=0, dtype=np.float32)
            at = self._seg_out + self._out_count
            self._out_count += mono.shape[0]
            self._put(at, mono)

    def _put(self, at: int, mono: np.ndarray) -> None:
        lo = max(self._pos, self._drop_before)
        if at < lo:  # overlap with what was placed before, or warm-up after a seek
            mono = mono[lo - at :]
            at = lo
        if mono.shape[0] == 0:
            return
        if at > self._pos:  # a gap in the timestamps: silence
            if not self._chunks:
                self._buf_start = at
            else:
                # A stride-0 view: a gap costs no memory however far a damaged timestamp jumps.
                self._chunks.append(np.broadcast_to(_SILENCE, (at - self._pos,)))
        self._chunks.append(mono)
        self._pos = at + mono.shape[0]

    def _flush_segment(self) -> None:
        if self._resampler is not None:
            self._emit(self._resampler.resample(None))
        self._resampler = None

    def _feed(self, frame: Any) -> None:
        import av

        ts = frame.pts if frame.pts is not None else frame.dts
        rate = frame.sample_rate
        if ts is None or not rate or frame.samples == 0:
            return
        key = (rate, frame.layout.name)
        if key != self._seg_key:
            # the header was checked by probe; a stream may still switch format mid-way
            check_audio_format(rate, len(frame.layout.channels), self._path)
        in_tb = Fraction(1, rate)
        p = timing.rescale(ts - self._origin, self._tb, in_tb)
        expected = self._seg_in + self._in_count
        gap = abs(p - expected) > GAP_TOLERANCE_SEC * rate
        if self._resampler is None or key != self._seg_key or gap:
            self._flush_segment()
            grid = self._grid
            if self._seek_align and grid is not None and grid.rate == rate:
                # Restart the resampler on an input sample where a sequential decode's resampler
                # has the same phase against the 16 kHz grid: then both give the same samples.
                p = grid.snap(p, frame.samples, self._tb)
                self._skip_in = (grid.first - p) % (rate // math.gcd(rate, SAMPLE_RATE))
            self._seek_align = False
            start = p + self._skip_in
            self._seg_in, self._in_count, self._out_count = start, 0, 0
            self._seg_out = timing.rescale(start, in_tb, Fraction(1, SAMPLE_RATE))
            self._seg_key = key
            self._resampler = av.AudioResampler(format="fltp", rate=SAMPLE_RATE)
        if self._skip_in:
            k = min(self._skip_in, frame.samples)
            self._skip_in -= k
            if k == frame.samples:
                return
            frame = _drop_head(frame, k)
        self._in_count += frame.samples
        try:
            self._emit(self._resampler.resample(frame))
        except (self._av_error, ValueError) as exc:
            raise MediaError(f"cannot resample the audio ({av_cause(exc)})", self._path) from exc

    def _decode_until(self, first: int, end: int) -> None:
        """Decode forward until samples up to ``end`` are placed or the stream ends.

        Samples from ``first`` on are kept; older ones only up to KEEP_SAMPLES (bounded memory
        when a forward jump is decoded through).
        """
        while self._pos < end and not self._eof:
            frame = next(self._frames, None)
            if frame is None:
                self._eof = True
                self._flush_segment()
                break
            if frame.pts is not None and frame.sample_rate:
                duration = timing.rescale(frame.samples, Fraction(1, frame.sample_rate), self._tb)
                self._decoded_to = frame.pts - self._origin + duration
                if self._skip_until is not None and self._decoded_to <= self._skip_until:
                    continue  # decoded only for the decoder's state (see the module docstring)
            self._skip_until = None
            self._feed(frame)
            self._trim(min(first, self._pos - KEEP_SAMPLES))

    def _trim(self, keep_from: int) -> None:
        while self._chunks and self._buf_start + self._chunks[0].shape[0] <= keep_from:
            self._buf_start += self._chunks.popleft().shape[0]

    # -- positioning -----------------------------------------------------------------------------
    def _restart(self) -> None:
        self._open()
        self._reset(None)
        self._seek_align = False
        if self._torchvision_compat:
            # torchvision.io.read_video seeks to 0 before decoding; in an MP4 that skips the AAC
            # priming packet (its timestamp is negative), so the first frame decodes without its
            # overlap. Reproduced only to match outputs of the paper's code exactly.
            with contextlib.suppress(self._av_error, OSError):
                self._container.seek(0, stream=self._stream, backward=True, any_frame=False)
        self._frames = self._decoded()

    def _learn_grid(self) -> _FrameGrid | None:
        """Decode the stream's first two frames (cheap) to learn where its frames sit."""
        from av.audio.stream import AudioStream

        container = open_input(self._path)
        try:
            stream = container.streams[self._info.audio.index]
            if not isinstance(stream, AudioStream) or stream.time_base is None:
                return None
            tb = Fraction(stream.time_base)
            origin = timing.origin_in(tb, self._info.time_origin_us)
            frames: list[tuple[int, int, int]] = []  # (pts, samples, sample rate)
            for frame in container.decode(stream):
                if frame.pts is not None and frame.samples:
                    frames.append((frame.pts, frame.samples, frame.sample_rate))
                if len(frames) == 2:
                    break
        except self._av_error:
            return None
        finally:
            container.close()
        if not frames:
            return None
        (pts0, samples0, rate), last_samples = frames[0], frames[-1][1]
        first = timing.rescale(pts0 - origin, tb, Fraction(1, rate))
        return _FrameGrid(rate, first, first + samples0, last_samples)

    def _seek(self, target: int) -> None:
        if not self._seekable:
            self._decode_through(target)
            return
        margin = SEEK_PREROLL_SEC
        while True:
            t = target / SAMPLE_RATE - margin
            if t <= self._info.audio.start_sec:
                self._restart()
                return
            if self._container is None:
                self._open()
            if self._grid is None:
                self._grid = self._learn_grid()
            try:
                self._container.seek(
                    timing.from_seconds(t, self._tb, self._origin), stream=self._stream, backward=True
                )
            except (self._av_error, OSError):
                self._restart()
                return
            self._reset(target)
            self._frames = self._decoded()
            first = next(self._frames, None)
            if first is not None and first.pts is not None:
                p = float((first.pts - self._origin) * self._tb)
                if p <= target / SAMPLE_RATE - SEEK_PREROLL_SEC / 2:
                    self._seek_align = True
                    self._feed(first)
                    return
            margin *= 2

    def _decode_through(self, target: int) -> None:
        """Reach ``target`` by decoding every packet since the start, resampling from the pre-roll on.

        The decoder continues where it is when that is before the pre-roll (a forward jump);
        otherwise it restarts at the first packet, exactly as a sequential read does.
        """
        t = target / SAMPLE_RATE - SEEK_PREROLL_SEC
        if t <= self._info.audio.start_sec:
            self._restart()
            return
        if self._grid is None:
            self._grid = self._learn_grid()
        if self._frames is None or self._eof:
            self._restart()
        skip_until = timing.from_seconds(t, self._tb)
        if self._decoded_to is not None and self._decoded_to > skip_until:
            self._restart()  # the decoder is past the pre-roll: back to the first packet
        frames, decoded_to = self._frames, self._decoded_to
        self._reset(target)
        self._frames, self._decoded_to = frames, decoded_to
        self._skip_until = skip_until
        self._seek_align = True

    # -- public ----------------------------------------------------------------------------------
    def read(self, first: int, count: int) -> np.ndarray:
        """Samples ``[first, first + count)`` as float32; silence outside the real audio."""
        out = np.zeros(count, np.float32)
        lo, hi = self._info.audio_span
        end = first + count
        a, b = max(first, lo), min(end, hi)
        if a >= b:
            return out
        if (
            self._frames is None
            or a < self._buf_start
            or a > self._pos + FORWARD_DECODE_LIMIT_SEC * SAMPLE_RATE
        ):
            self._seek(a)
        self._decode_until(a, b)
        if b - max(self._pos, a) > EOF_TOLERANCE_SEC * SAMPLE_RATE:
            self._frames = None  # the next read re-seeks from a clean state
            cause = self._broken or "the data ends early or does not decode"
            raise MediaError(
                f"audio at {a / SAMPLE_RATE:.2f}-{b / SAMPLE_RATE:.2f} s cannot be decoded: {cause}",
                self._path,
            )
        self._copy_out(out, first, a, min(b, self._pos))
        self._trim(b - KEEP_SAMPLES)
        return out

    def _copy_out(self, out: np.ndarray, first: int, a: int, b: int) -> None:
        at = self._buf_start
        for chunk in self._chunks:
            c0, c1 = max(a, at), min(b, at + chunk.shape[0])
            if c0 < c1:
                out[c0 - first : c1 - first] = chunk[c0 - at : c1 - at]
            at += chunk.shape[0]
            if at >= b:
                break


def _drop_head(frame: Any, k: int) -> Any:
    """A copy of audio ``frame`` without its first ``k`` samples."""
    import av

    arr = frame.to_ndarray()
    fmt = frame.format.name
    arr = arr[:, k:] if frame.format.is_planar else arr[:, k * len(frame.layout.channels) :]
    new = av.AudioFrame.from_ndarray(np.ascontiguousarray(arr), format=fmt, layout=frame.layout.name)
    new.sample_rate = frame.sample_rate
    new.time_base = frame.time_base
    if frame.pts is not None:
        new.pts = frame.pts + timing.rescale(k, Fraction(1, frame.sample_rate), Fraction(frame.time_base))
    return new

"""Shift, pad, trim or retime an audio track by rewriting its samples (PCM: losslessly).

A stream copy can only move a track's timestamps, and not every container can start a track
later than the picture or cut it inside a packet: MXF and AVI play every track from the start
of the file, so FFmpeg's copy there either loses the shift or (advanced audio) the end of the
picture. The lossless way for PCM is to write the shifted samples: N samples of digital silence
in front for a delay, N samples dropped for an advance. FFmpeg's filters do exactly that in
whole samples (``adelay`` with an ``S`` count, ``atrim`` with ``start_sample``), and a PCM
decoder and encoder of the same codec are an identity, so the samples are bit-exact. Every
other stream is still packet-copied.

The same chain pads or trims each track to the picture (``--conform``) and retimes a drifting
track: a track whose offset grows by D seconds per minute is resampled by SoX's resampler
(``soxr``, 28-bit precision) so it lasts ``1 + D/60`` times as long, then written back at its own
rate, sample format and channel layout. Compressed audio goes the same way only when the user
allows a re-encode (same codec, a bitrate at least the source's).

:class:`SampleDigest` and :func:`verify_samples` prove, in the one pass over each file that
compares packets, that a rewritten PCM track holds exactly the input's samples, moved by the
planned count.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from ..errors import MediaError

RESAMPLE_PRECISION_BITS = 28  # soxr "very high quality" (20 is its default)
# The retime factor is applied as a ratio of two integer rates: the source rate times this,
# to the nearest integer times the factor. 1000 keeps the factor exact to ~2e-8 (0.1 ms per hour).
RATE_SCALE = 1000
# Encoders for compressed audio re-encoded with --reencode-audio (decoder name -> encoder name).
ENCODERS = {
    "aac": "aac", "mp3": "libmp3lame", "mp3float": "libmp3lame", "opus": "libopus",
    "vorbis": "libvorbis", "ac3": "ac3", "eac3": "eac3", "mp2": "mp2", "flac": "flac", "alac": "alac",
}  # fmt: skip
LOSSLESS = {"flac", "alac"}
RETIME_TOLERANCE_SAMPLES = 2  # a retimed track may be this many samples off its planned length


@dataclass(frozen=True)
class AudioPlan:
    """How one audio stream is rewritten. Samples are at the stream's own rate."""

    index: int  # stream index in the input
    codec: str  # decoder name, e.g. pcm_s24le
    encoder: str  # encoder that writes it back
    sample_rate: int
    sample_fmt: str  # the decoder's sample format, written back unchanged
    layout: str | None  # channel layout name, None when FFmpeg names none
    channels: int
    start_sec: float  # where the written track starts (the picture's start, raw clock)
    delay_samples: int  # > 0: silence in front; < 0: samples dropped at the start
    length_samples: int | None  # --conform: the track is padded or cut to this many
    factor: Fraction | None  # retime: the track lasts this many times as long (None: not retimed)
    bitrate: int | None  # for a re-encode: bits per second (None: the encoder's choice / lossless)

    @property
    def pcm(self) -> bool:
        return self.codec.startswith("pcm_")

    def chain(self) -> str:
        """The ffmpeg filter chain (without labels) that rewrites this stream."""
        steps = []
        if self.factor is not None and self.factor != 1:
            a = self.sample_rate * RATE_SCALE
            b = round(a * self.factor)
            steps += [
                f"asetrate={a}",
                f"aresample={b}:resampler=soxr:precision={RESAMPLE_PRECISION_BITS}",
                f"asetrate={self.sample_rate}",
            ]
        if self.delay_samples > 0:
            steps.append(f"adelay=delays={self.delay_samples}S:all=1")
        elif self.delay_samples < 0:
            steps.append(f"atrim=start_sample={-self.delay_samples}")
        if self.length_samples is not None:
            steps += [f"apad=whole_len={self.length_samples}", f"atrim=end_sample={self.length_samples}"]
        # Timestamps by sample count: the track starts with the picture and has no gaps.
        steps.append(f"asetpts=N/SR/TB+{self.start_sec:.9f}/TB")
        fmt = f"aformat=sample_fmts={self.sample_fmt}:sample_rates={self.sample_rate}"
        steps.append(fmt + (f":channel_layouts={self.layout}" if self.layout else ""))
        return ",".join(steps)

    def encoder_args(self, out_index: int) -> list[str]:
        args = [f"-c:{out_index}", self.encoder]
        if self.bitrate:
            args += [f"-b:{out_index}", str(self.bitrate)]
        return args


def encoder_for(codec: str) -> str | None:
    """The encoder that writes ``codec`` back (same codec), or None when FFmpeg has none."""
    if codec.startswith("pcm_"):
        return codec
    return ENCODERS.get(codec)


def source_bitrate(stream: Any, size_bytes: int, duration_sec: float) -> int:
    """The larger of the header's bitrate and the one the packets really use, in bit/s."""
    measured = int(size_bytes * 8 / duration_sec) if duration_sec > 0 else 0
    return max(int(stream.bit_rate or 0), measured)


def interleaved(frame: Any) -> np.ndarray:
    """A decoded audio frame's samples, interleaved, in one canonical dtype."""
    arr = frame.to_ndarray()
    flat = arr.T.reshape(-1) if frame.format.is_planar else arr.reshape(-1)
    if flat.dtype.kind in "iu":
        return flat.astype("<i8" if flat.dtype.itemsize > 4 else "<i4", copy=False)
    return flat.astype("<f8", copy=False)


def frame_samples(frame: Any) -> tuple[memoryview, int, bytes]:
    """(interleaved sample bytes, bytes per value, one value of silence) of a decoded frame.

    Packed formats (every PCM decoder's) straight from the frame's buffer, no copy; planar ones
    (compressed audio's decoders) interleaved by :func:`interleaved`.
    """
    fmt = frame.format
    channels = len(frame.layout.channels)
    if not fmt.is_planar or channels == 1:
        n = frame.samples * channels * fmt.bytes
        return memoryview(frame.planes[0]).cast("B")[:n], fmt.bytes, _silence(fmt.name, fmt.bytes)
    a = interleaved(frame)
    return np.ascontiguousarray(a).data.cast("B"), a.itemsize, bytes(a.itemsize)


def _silence(fmt: str, size: int) -> bytes:
    return b"\x80" if fmt in ("u8", "u8p") else bytes(size)  # unsigned 8-bit: the middle value


class SampleDigest:
    """A running hash of an audio stream's decoded samples, optionally as a plan rewrites them.

    Fed every decoded frame of a stream in file order (by :func:`.packets.read_packets`, in the
    same pass that compares packets). With a ``plan`` it hashes what the rewritten stream must
    hold: ``delay`` samples of silence in front, or the first ``-delay`` dropped, then cut or
    padded to ``length``; without, exactly what it is fed. Two digests are equal when the
    sequences are equal, value for value, so one pass over each file proves a PCM rewrite
    sample-exact without holding the audio in memory. Samples are hashed as the decoder's bytes,
    straight from its buffers: both sides of a comparison decode the same codec.
    """

    def __init__(self, channels: int, plan: AudioPlan | None = None) -> None:
        self.channels = channels
        self.values = 0  # values hashed (samples x channels)
        self.fed = 0  # values fed
        self._hash = hashlib.sha256()
        delay = plan.delay_samples if plan is not None and plan.factor is None else 0
        self._zeros = max(0, delay) * channels  # silence still to put in front
        self._skip = max(0, -delay) * channels
        self._left: int | None = None
        if plan is not None and plan.factor is None and plan.length_samples is not None:
            self._left = plan.length_samples * channels
        self._unit = 0  # bytes per value, once fed
        self._silence = b""

    def _put(self, buf: memoryview | bytes) -> None:
        n = len(buf) // self._unit
        if self._left is not None:
            n = min(n, self._left)
            buf = buf[: n * self._unit]
            self._left -= n
        if n:
            self._hash.update(buf)
            self.values += n

    def _put_silence(self, values: int) -> None:
        while values > 0:
            n = min(values, 1 << 18)
            self._put(self._silence * n)
            values -= n

    def feed_frame(self, frame: Any) -> None:
        """Feed one decoded frame (see :func:`frame_samples`)."""
        self.feed_bytes(*frame_samples(frame))

    def feed(self, a: np.ndarray) -> None:
        """Feed interleaved samples as an array."""
        self.feed_bytes(np.ascontiguousarray(a).data.cast("B"), a.itemsize, bytes(a.itemsize))

    def feed_bytes(self, buf: memoryview, unit: int, silence: bytes) -> None:
        """Feed interleaved samples as bytes, ``unit`` bytes per value; ``silence``: one silent value."""
        if not self._unit:
            self._unit, self._silence = unit, silence
        values = len(buf) // unit
        self.fed += values
        if self._zeros:
            self._put_silence(self._zeros)
            self._zeros = 0
        if self._skip:
            cut = min(self._skip, values)
            buf, self._skip = buf[cut * unit :], self._skip - cut
        self._put(buf)

    def finish(self) -> tuple[bytes, int]:
        """(digest, samples per channel) once the stream has ended: padding added."""
        if not self._unit:
            self._unit, self._silence = 4, bytes(4)
        if self._zeros:
            self._put_silence(self._zeros)
            self._zeros = 0
        if self._left:
            self._put_silence(self._left)
        return self._hash.digest(), self.values // self.channels


def verify_samples(
    plan: AudioPlan, expected: SampleDigest, written: SampleDigest, shown: str | os.PathLike
) -> None:
    """Prove a rewritten stream is what ``plan`` makes of the input's, or raise MediaError.

    ``expected`` was fed the input stream (with ``plan``), ``written`` the output stream. PCM
    not retimed: every sample equal, bit for bit, none missing or extra. Retimed or re-encoded
    audio cannot be compared sample by sample; its length is checked (to
    RETIME_TOLERANCE_SAMPLES for PCM, to a codec frame otherwise).
    """
    want_digest, want = expected.finish()
    got_digest, got = written.finish()
    if plan.pcm and plan.factor is None:
        if got != want:
            raise MediaError(
                f"the rewritten audio stream {plan.index} would hold {got} samples instead of {want}; "
                "nothing written",
                shown,
            )
        if got_digest != want_digest:
            raise MediaError(
                f"the rewritten audio stream {plan.index} would not hold the input's samples; "
                "nothing written",
                shown,
            )
        return
    n_in = expected.fed // expected.channels
    factor = plan.factor or Fraction(1)
    want = round(n_in * factor) + plan.delay_samples
    if plan.length_samples is not None:
        want = plan.length_samples
    slack = RETIME_TOLERANCE_SAMPLES if plan.pcm else 2 * 2048  # a codec frame, padding included
    if abs(got - want) > slack:
        raise MediaError(
            f"the rewritten audio stream {plan.index} would hold {got} samples instead of {want}; "
            "nothing written",
            shown,
        )

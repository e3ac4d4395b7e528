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

:func:`verify_samples` decodes both files and proves that a rewritten PCM track holds exactly the
input's samples, moved by the planned count.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from ..errors import MediaError
from .probe import av_cause, open_input

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


def _interleaved(frame: Any) -> np.ndarray:
    arr = frame.to_ndarray()
    return arr.T.reshape(-1) if frame.format.is_planar else arr.reshape(-1)


def _samples(path: str, index: int) -> Iterator[np.ndarray]:
    """Every decoded sample of one stream, interleaved, in file order."""
    container = open_input(path)
    try:
        stream = container.streams[index]
        for packet in container.demux(stream):
            for frame in packet.decode():
                yield _interleaved(frame)
    finally:
        container.close()


def _expected(src: str, plan: AudioPlan) -> Iterator[np.ndarray]:
    """The samples the rewritten stream must hold: the input's, shifted, padded and trimmed."""
    ch = plan.channels
    left = None if plan.length_samples is None else plan.length_samples * ch
    skip = max(0, -plan.delay_samples) * ch

    def emit(a: np.ndarray) -> Iterator[np.ndarray]:
        nonlocal left
        if left is not None:
            a = a[:left]
            left -= len(a)
        if len(a):
            yield a

    dtype = None
    if plan.delay_samples > 0:
        first = next(_samples(src, plan.index), np.zeros(0, np.int32))
        dtype = first.dtype
        yield from emit(np.zeros(plan.delay_samples * ch, dtype))
    for a in _samples(src, plan.index):
        dtype = a.dtype
        if skip:
            cut = min(skip, len(a))
            a, skip = a[cut:], skip - cut
        yield from emit(a)
    if left:
        yield np.zeros(left, dtype or np.int32)


def _first_difference(a: Iterator[np.ndarray], b: Iterator[np.ndarray]) -> tuple[int | None, int, int]:
    """(index of the first differing value or None, values in a, values in b)."""
    buf_a, buf_b = np.zeros(0), np.zeros(0)
    na = nb = done = 0
    ea = eb = False
    while True:
        while len(buf_a) < 65536 and not ea:
            nxt = next(a, None)
            if nxt is None:
                ea = True
            else:
                buf_a = np.concatenate([buf_a, nxt]) if len(buf_a) else nxt
                na += len(nxt)
        while len(buf_b) < 65536 and not eb:
            nxt = next(b, None)
            if nxt is None:
                eb = True
            else:
                buf_b = np.concatenate([buf_b, nxt]) if len(buf_b) else nxt
                nb += len(nxt)
        n = min(len(buf_a), len(buf_b))
        if n:
            bad = np.flatnonzero(buf_a[:n] != buf_b[:n])
            if len(bad):
                return done + int(bad[0]), na, nb
            buf_a, buf_b, done = buf_a[n:], buf_b[n:], done + n
        if (ea and not len(buf_a)) or (eb and not len(buf_b)):
            while not ea:
                nxt = next(a, None)
                ea = nxt is None
                na += 0 if nxt is None else len(nxt)
            while not eb:
                nxt = next(b, None)
                eb = nxt is None
                nb += 0 if nxt is None else len(nxt)
            return None, na, nb


def verify_samples(src: str, written: str, plan: AudioPlan, out_index: int, shown: str | os.PathLike) -> None:
    """Prove the rewritten stream ``out_index`` of ``written`` is what ``plan`` makes of ``src``.

    PCM (not retimed): every sample equal, bit for bit, and none missing or extra. Retimed or
    re-encoded audio cannot be compared sample by sample; its length is checked (to a sample for
    PCM, to a codec frame otherwise). Raises one-line MediaError naming ``shown`` (the input).
    """
    import av

    ch = plan.channels
    try:
        if plan.pcm and plan.factor is None:
            where, n_exp, n_out = _first_difference(_expected(src, plan), _samples(written, out_index))
            if where is not None:
                raise MediaError(
                    f"the rewritten audio stream {plan.index} differs from the input at sample "
                    f"{where // ch}; nothing written",
                    shown,
                )
            if n_exp != n_out:
                raise MediaError(
                    f"the rewritten audio stream {plan.index} holds {n_out // ch} samples instead of "
                    f"{n_exp // ch}; nothing written",
                    shown,
                )
            return
        n_in = sum(len(a) for a in _samples(src, plan.index)) // ch
        n_out = sum(len(a) for a in _samples(written, out_index)) // ch
    except av.FFmpegError as exc:
        raise MediaError(
            f"the rewritten audio stream {plan.index} cannot be read back ({av_cause(exc)})", shown
        ) from exc
    factor = plan.factor or Fraction(1)
    want = round(n_in * factor) + plan.delay_samples
    if plan.length_samples is not None:
        want = plan.length_samples
    slack = RETIME_TOLERANCE_SAMPLES if plan.pcm else 2 * 2048  # a codec frame, padding included
    if abs(n_out - want) > slack:
        raise MediaError(
            f"the rewritten audio stream {plan.index} holds {n_out} samples instead of {want}; "
            "nothing written",
            shown,
        )

"""What "exact" means for a fixed master: packets, PCM samples, timecode and durations, read back.

For tests and bench/ (not used by the tool itself). Everything is read with PyAV, in file time:
seconds from the start of the picture (the first video stream's start), so a master whose picture
starts at zero and one whose clock starts elsewhere compare alike. PCM is decoded to its native
sample format, never resampled or converted, so equality is sample for sample and bit for bit.

The functions return descriptions of what differs (an empty list: nothing) rather than raising,
so a test can show every problem at once.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np
from av.stream import Discard

PCM_PREFIX = "pcm_"


@dataclass(frozen=True)
class PacketRecord:
    """One demuxed packet: its timestamps in seconds (exact) and a digest of its bytes."""

    pts: Fraction | None
    dts: Fraction | None
    duration: Fraction
    size: int
    digest: str
    keyframe: bool


def _seconds(value: int | None, time_base: Fraction) -> Fraction | None:
    return None if value is None else value * time_base


def _video_origin(container: av.container.InputContainer) -> Fraction:
    """File time zero: the first video stream's start (the container's start without video)."""
    for s in container.streams.video:
        if s.start_time is not None and s.time_base is not None:
            return s.start_time * Fraction(s.time_base)
    start = container.start_time
    return Fraction(start, av.time_base) if start is not None else Fraction(0)


def stream_packets(
    path: str | os.PathLike, indices: Iterable[int] | None = None
) -> dict[int, list[PacketRecord]]:
    """{stream index: its packets in file order}, for ``indices`` (default: every stream).

    Times are file times (seconds from the picture's start). Each stream is read on its own, the
    others discarded, as ffmpeg reads the streams it maps: a damaged sample of one track then
    does not hide the packets of another. A stream ends at its first packet the demuxer cannot
    read (as in ffmpeg): a damaged file yields what precedes the damage.
    """
    out: dict[int, list[PacketRecord]] = {}
    with av.open(os.fspath(path)) as c:
        chosen = [s.index for s in c.streams if indices is None or s.index in set(indices)]
    for index in chosen:
        with av.open(os.fspath(path)) as c:
            origin = _video_origin(c)
            for s in c.streams:
                if s.index != index:
                    s.discard = Discard.all
            out[index] = []
            try:
                for p in c.demux(c.streams[index]):
                    if p.size == 0 and p.pts is None and p.dts is None:
                        continue  # the demuxer's end-of-stream marker, not a packet of the file
                    out[index].append(_record(p, origin))
            except av.FFmpegError:
                pass
    return out


def _record(p: av.Packet, origin: Fraction) -> PacketRecord:
    tb = Fraction(p.time_base)
    pts, dts = _seconds(p.pts, tb), _seconds(p.dts, tb)
    return PacketRecord(
        pts=None if pts is None else pts - origin,
        dts=None if dts is None else dts - origin,
        duration=(p.duration or 0) * tb,
        size=p.size,
        digest=hashlib.blake2b(bytes(p), digest_size=16).hexdigest(),
        keyframe=p.is_keyframe,
    )


def compare_packets(before: list[PacketRecord], after: list[PacketRecord], what: str) -> list[str]:
    """What differs between two streams' packets: count, bytes, timestamps (empty: identical)."""
    problems = []
    if len(before) != len(after):
        problems.append(f"{what}: {len(after)} packets, the input has {len(before)}")
    for n, (a, b) in enumerate(zip(before, after, strict=False)):
        if a.digest != b.digest or a.size != b.size:
            problems.append(f"{what}: packet {n} has other bytes ({b.size} bytes, the input's {a.size})")
            break
    for n, (a, b) in enumerate(zip(before, after, strict=False)):
        if (a.pts, a.dts) != (b.pts, b.dts):
            problems.append(
                f"{what}: packet {n} at pts {_ms(b.pts)} dts {_ms(b.dts)}, "
                f"the input's at pts {_ms(a.pts)} dts {_ms(a.dts)}"
            )
            break
    return problems


def _ms(t: Fraction | None) -> str:
    return "none" if t is None else f"{float(t) * 1000:.3f} ms"


def streams_by_type(path: str | os.PathLike) -> dict[str, list[int]]:
    """{"video"|"audio"|"data"|...: stream indices of that type, in order}."""
    with av.open(os.fspath(path)) as c:
        kinds: dict[str, list[int]] = {}
        for s in c.streams:
            kinds.setdefault(s.type, []).append(s.index)
    return kinds


def unmoved_stream_problems(
    src: str | os.PathLike, dst: str | os.PathLike, types=("video", "data")
) -> list[str]:
    """Every video and data (timecode) stream of ``src`` is in ``dst`` packet for packet.

    Streams are paired by type and order (the n-th video stream with the n-th video stream).
    """
    a_kinds, b_kinds = streams_by_type(src), streams_by_type(dst)
    problems = []
    pairs = []
    for t in types:
        a, b = a_kinds.get(t, []), b_kinds.get(t, [])
        if len(a) != len(b):
            problems.append(f"{t}: {len(b)} streams, the input has {len(a)}")
        pairs += [(t, i, j) for i, j in zip(a, b, strict=False)]
    pa = stream_packets(src, [i for _, i, _ in pairs])
    pb = stream_packets(dst, [j for _, _, j in pairs])
    for t, i, j in pairs:
        problems += compare_packets(pa[i], pb[j], f"{t} stream {i}")
    return problems


@dataclass(frozen=True)
class PcmTrack:
    """One audio stream decoded to its native sample format, placed on the file's clock."""

    index: int  # container stream index
    codec: str
    sample_format: str  # the decoder's native format (pcm_s24le decodes to s32, low byte 0)
    rate: int
    layout: str
    start: int  # file time of the first sample, in samples (the picture starts at 0)
    samples: np.ndarray  # (samples, channels), contiguous from ``start``
    gaps: tuple[str, ...]  # where frames did not follow on from each other (should be none)

    @property
    def end(self) -> int:
        return self.start + len(self.samples)

    @property
    def start_sec(self) -> float:
        return self.start / self.rate

    @property
    def end_sec(self) -> float:
        return self.end / self.rate


def _frame_array(frame: av.AudioFrame) -> np.ndarray:
    """(samples, channels) in the frame's own format."""
    a = frame.to_ndarray()
    channels = frame.layout.nb_channels
    if frame.format.is_planar:
        return a.T
    return a.reshape(-1, channels)


def read_audio(path: str | os.PathLike) -> list[PcmTrack]:
    """Every audio stream of ``path``, decoded sample-exactly in its native format (one pass).

    Frames are placed by their presentation timestamps; a frame that does not start where the
    previous one ended is recorded in ``gaps`` (and placed after it regardless).
    """
    with av.open(os.fspath(path)) as c:
        origin = _video_origin(c)
        streams = list(c.streams.audio)
        for s in c.streams:
            if s.type != "audio":
                s.discard = Discard.all
        state = {s.index: _Assembler(s.codec_context.sample_rate, origin) for s in streams}
        try:
            for packet in c.demux(streams):
                for frame in packet.decode():
                    state[packet.stream.index].add(frame)
        except av.FFmpegError:
            pass  # a damaged file: what could be read
        for s in streams:  # the decoders' last frames
            try:
                for frame in s.codec_context.decode(None):
                    state[s.index].add(frame)
            except av.FFmpegError:
                pass
        return [state[s.index].track(s) for s in streams]


class _Assembler:
    """Collects one stream's decoded frames into contiguous samples on the file clock."""

    def __init__(self, rate: int, origin: Fraction) -> None:
        self.rate, self.origin = rate, origin
        self.chunks: list[np.ndarray] = []
        self.gaps: list[str] = []
        self.start: int | None = None
        self.pos = 0
        self.fmt = self.layout = ""

    def add(self, frame: av.AudioFrame) -> None:
        self.fmt, self.layout = frame.format.name, frame.layout.name
        at = None
        if frame.pts is not None and frame.time_base is not None:
            at = round((frame.pts * Fraction(frame.time_base) - self.origin) * self.rate)
        if self.start is None:
            self.start = self.pos = at if at is not None else 0
        elif at is not None and at != self.pos:
            self.gaps.append(f"frame at sample {at}, expected {self.pos}")
        arr = _frame_array(frame)
        self.chunks.append(arr.copy())
        self.pos += len(arr)

    def track(self, stream) -> PcmTrack:
        samples = np.concatenate(self.chunks) if self.chunks else np.zeros((0, 1), dtype=np.int32)
        return PcmTrack(
            index=stream.index,
            codec=stream.codec_context.name,
            sample_format=self.fmt,
            rate=self.rate,
            layout=self.layout,
            start=self.start or 0,
            samples=samples,
            gaps=tuple(self.gaps),
        )


def shift_problems(
    before: PcmTrack,
    after: PcmTrack,
    shift_sec: float,
    *,
    span: tuple[Fraction, Fraction] | None = None,
    end_tolerance_sec: float = 0.001,
    what: str = "",
) -> list[str]:
    """Does ``after`` at file time t hold ``before`` at t - ``shift_sec``, sample for sample?

    Sample-exact rules: the output must hold every input sample the shift keeps (those that land
    at or after time 0; with ``span``, those inside it), in the input's sample format, rate and
    layout; anything else the output holds must be digital silence. With ``span = (start, end)``
    (the picture's, in seconds; ``--conform``), the output must start at ``start`` to the sample
    and end within ``end_tolerance_sec`` of ``end`` (a frame need not end on a sample).
    """
    what = what or f"audio stream {after.index}"
    problems = []
    for attr in ("codec", "sample_format", "rate", "layout"):
        if getattr(before, attr) != getattr(after, attr):
            problems.append(f"{what}: {attr} {getattr(after, attr)}, the input's {getattr(before, attr)}")
    if after.gaps:
        problems.append(f"{what}: frames do not follow on ({after.gaps[0]})")
    if problems:
        return problems
    rate = before.rate
    k = shift_sec * rate
    if abs(k - round(k)) > 1e-6:
        return [f"{what}: a shift of {shift_sec} s is not a whole number of samples at {rate} Hz"]
    k = round(k)
    lo, hi = max(before.start + k, 0), before.end + k  # where the kept input samples land
    if span is not None:
        first, end = round(span[0] * rate), span[1] * rate
        lo, hi = max(lo, first), min(hi, after.end)
        if after.start != first or abs(after.end - end) > end_tolerance_sec * rate:
            problems.append(
                f"{what}: spans {after.start_sec:.6f}..{after.end_sec:.6f} s, "
                f"the picture {float(span[0]):.6f}..{float(span[1]):.6f} s"
            )
    if hi > lo and (after.start > lo or after.end < hi):
        problems.append(
            f"{what}: holds samples {after.start}..{after.end}, the shift keeps the input's at {lo}..{hi}"
        )
    # Compare where both exist: inside [lo, hi) equal to the input, outside it silence.
    a0, a1 = after.start, after.end
    c0, c1 = max(lo, a0), min(hi, a1)
    if c1 > c0:
        got = after.samples[c0 - a0 : c1 - a0]
        want = before.samples[c0 - k - before.start : c1 - k - before.start]
        bad = np.flatnonzero(np.any(got != want, axis=1))
        if len(bad):
            n = int(bad[0]) + c0
            problems.append(
                f"{what}: sample {n} ({n / rate:.6f} s) differs from the input's sample at "
                f"{(n - k) / rate:.6f} s ({len(bad)} of {c1 - c0} differ)"
            )
    outside = np.concatenate([after.samples[: max(0, min(lo, a1) - a0)], after.samples[max(0, hi - a0) :]])
    if outside.size and np.any(outside != 0):
        problems.append(
            f"{what}: {int(np.count_nonzero(np.any(outside != 0, axis=1)))} samples outside "
            "the shifted input are not digital silence"
        )
    return problems


def start_timecode(path: str | os.PathLike) -> str | None:
    """The file's start timecode: the container's (MXF), else a stream's (the MOV tmcd track)."""
    with av.open(os.fspath(path)) as c:
        tc = c.metadata.get("timecode")
        if tc:
            return tc
        for s in c.streams:
            tc = s.metadata.get("timecode")
            if tc:
                return tc
    return None


def picture_span(path: str | os.PathLike) -> tuple[Fraction, Fraction]:
    """(start, end) of the first video stream in file time, from its packets (exact)."""
    with av.open(os.fspath(path)) as c:
        index = c.streams.video[0].index
    packets = stream_packets(path, [index])[index]
    starts = [p.pts for p in packets if p.pts is not None]
    ends = [p.pts + p.duration for p in packets if p.pts is not None]
    return min(starts), max(ends)


def lag_sec(signal: np.ndarray, reference: np.ndarray, rate: int, max_lag_sec: float) -> float:
    """How far ``signal`` lags ``reference`` (> 0: later), by cross-correlation, to a sub-sample.

    ``signal`` must hold ``max_lag_sec`` more on each side than ``reference``:
    ``signal[m + j]`` pairs with ``reference[j]`` at lag ``j_shift = m - max_lag``.
    """
    m = round(max_lag_sec * rate)
    n = len(reference)
    if len(signal) != n + 2 * m:
        raise ValueError("signal must be the reference's length plus max_lag on each side")
    ref = reference - reference.mean()
    sig = signal - signal.mean()
    size = 1 << (len(sig) + n).bit_length()
    full = np.fft.irfft(np.fft.rfft(sig, size) * np.conj(np.fft.rfft(ref, size)), size)
    corr = full[: 2 * m + 1]  # corr[i] = sum_j sig[i + j] * ref[j]
    i = int(np.argmax(corr))
    frac = 0.0
    if 0 < i < 2 * m:  # parabola through the peak and its neighbours
        y0, y1, y2 = corr[i - 1], corr[i], corr[i + 1]
        denom = y0 - 2 * y1 + y2
        frac = 0.5 * (y0 - y2) / denom if denom else 0.0
    return (i - m + frac) / rate

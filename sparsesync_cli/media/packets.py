"""Packet-level proof that a fix lost nothing: every stream it does not move is unchanged.

A fix is a copy. After ffmpeg has written it, both files are demuxed with PyAV and compared
stream by stream: a stream the fix does not move (video, timecode and other data, subtitles,
audio not chosen by ``--audio-stream``) must hold the same packets, in the same order, with the
same bytes and the same presentation timestamps.

"The same timestamp" across a remux: a packet's presentation time in SECONDS (file time), not its
integer timestamp, because a muxer may store another time base (Matroska counts milliseconds,
MP4 picks a track time scale). The two may therefore differ by at most half a tick of each time
base, plus one constant the fix itself chose (a broadcast clock rebased to zero). Decode
timestamps are not compared: they are the container's business (Matroska stores none, MP4 shifts
them before zero for B-frames) and the decode order is already proved by the packet order.

PCM is compared as one byte stream (bytes, first timestamp, sample count): its packets are only
chunks of the samples, and a muxer may chunk them differently (QuickTime merges them).

The input is read in full as well, so a damaged input is found: a demux error, or streams that
end well before the input's header says (a damaged sample table), fails the fix, since a copy
would only keep what FFmpeg can read.
"""

from __future__ import annotations

import errno
import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from ..errors import MediaError
from .pcm_shift import SampleDigest
from .probe import av_cause, demux, open_input

# A stream ending this much before its header's duration says means the file is damaged
# (a damaged sample table points past the data) rather than rounded.
SHORT_STREAM_SEC = 0.5
SHORT_STREAM_SHARE = 0.05  # ... and by this share of the stated duration
PCM_GAP_SEC = Fraction(1, 1000)  # a hole or overlap in PCM timestamps beyond this is one


@dataclass
class StreamPackets:
    """What one stream of a file holds, for comparison: digests, never the data itself."""

    index: int
    kind: str  # video, audio, data, subtitle, attachment
    codec: str
    time_base: Fraction
    ticks: list[int | None] = field(default_factory=list)  # presentation timestamps, in time_base
    digests: list[bytes] = field(default_factory=list)  # per packet (non-PCM)
    stream_hash: Any = None  # running hash of all bytes (PCM)
    size: int = 0  # bytes in all
    end_ticks: int | None = None  # the latest timestamp + duration, in time_base
    gap: tuple[Fraction, Fraction] | None = None  # PCM: (where, how long) of its first gap or overlap
    _seconds: list[Fraction | None] | None = None

    @property
    def pts(self) -> list[Fraction | None]:
        """Presentation times in seconds (file clock), per packet (computed once, on demand)."""
        if self._seconds is None or len(self._seconds) != len(self.ticks):
            tb = self.time_base
            self._seconds = [None if t is None else t * tb for t in self.ticks]
        return self._seconds

    @property
    def end(self) -> Fraction | None:
        """Seconds: where the latest packet ends."""
        return None if self.end_ticks is None else self.end_ticks * self.time_base

    @property
    def pcm(self) -> bool:
        return self.codec.startswith("pcm_")

    @property
    def count(self) -> int:
        return len(self.ticks)

    @property
    def first_pts(self) -> Fraction | None:
        t = next((t for t in self.ticks if t is not None), None)
        return None if t is None else t * self.time_base


def read_packets(
    path: str,
    *,
    name: str | None = None,
    check_complete: bool = True,
    samples: dict[int, SampleDigest] | None = None,
) -> dict[int, StreamPackets]:
    """Demux every stream of ``path`` to the end: per stream its packets' digests and times.

    A demux error raises MediaError naming ``name`` (default ``path``): the file is damaged
    from that point on. Packets without payload (flush packets) are not counted. The audio
    streams named in ``samples`` are decoded in the same pass, every frame fed to its digest.
    """
    import av

    shown = name or path
    container = open_input(path)
    try:
        out = {
            s.index: StreamPackets(
                index=s.index,
                kind=s.type,
                codec=(s.codec_context.name if s.codec_context is not None else "none"),
                time_base=Fraction(s.time_base) if s.time_base else Fraction(1, 1),
            )
            for s in container.streams
        }
        for sp in out.values():
            if sp.pcm:
                sp.stream_hash = hashlib.sha256()
        # Per packet only integer work (this loop sees every packet of the file): times in
        # seconds are made from ticks when asked for, a PCM gap is |step| * num / den > 1/1000.
        gap_at = {
            i: (sp.time_base.numerator * PCM_GAP_SEC.denominator, sp.time_base.denominator)
            for i, sp in out.items()
        }
        last: tuple[int, Fraction] | None = None
        try:
            for packet in demux(container, list(container.streams)):
                index = packet.stream.index  # (a flush packet's stream_index is 0)
                digest = samples.get(index) if samples else None
                if digest is not None:  # the flush packet at the end (size 0) drains the decoder
                    for frame in packet.decode():
                        digest.feed_frame(frame)
                size = packet.size
                if size == 0:
                    continue
                sp = out[index]
                ts = packet.pts
                if ts is None:
                    ts = packet.dts
                sp.ticks.append(ts)
                sp.size += size
                if sp.pcm:  # hashed from the packet's own buffer: no copy of the data
                    sp.stream_hash.update(packet)
                    if ts is not None and sp.gap is None and sp.end_ticks is not None and packet.duration:
                        # PCM is a continuous run of samples; a rewrite renumbers them, so a hole or
                        # an overlap in the input would silently move everything after it.
                        num, den = gap_at[index]
                        if abs(ts - sp.end_ticks) * num > den * PCM_GAP_SEC.numerator:
                            sp.gap = (ts * sp.time_base, (ts - sp.end_ticks) * sp.time_base)
                else:
                    sp.digests.append(hashlib.sha256(packet).digest()[:16])
                if ts is not None:
                    end = ts + (packet.duration or 0)
                    if sp.end_ticks is None or end > sp.end_ticks:
                        sp.end_ticks = end
                    last = (ts, sp.time_base)
        except (av.FFmpegError, OSError, ValueError) as exc:
            where = f" after {float(last[0] * last[1]):.2f} s" if last is not None else ""
            cause = av_cause(exc)
            if getattr(exc, "errno", None) == errno.ENOMEM:
                cause = "a packet claims more memory than any file holds: a damaged sample table?"
            raise MediaError(f"damaged: the file cannot be read to its end{where} ({cause})", shown) from exc
        declared = {s.index: _declared_end(s) for s in container.streams}
    finally:
        container.close()
    if check_complete:
        _check_complete(out, declared, shown)
    return out


def _declared_end(stream: Any) -> Fraction | None:
    if not stream.duration or not stream.time_base:
        return None
    start = stream.start_time or 0
    return (start + stream.duration) * Fraction(stream.time_base)


def _check_complete(
    streams: dict[int, StreamPackets], declared: dict[int, Fraction | None], shown: str
) -> None:
    """A stream that ends well before its header says is damaged: refuse to copy what is left."""
    for i, sp in streams.items():
        stated = declared.get(i)
        if sp.kind not in ("video", "audio") or stated is None:
            continue
        have = sp.end if sp.end is not None else Fraction(0)
        missing = stated - have
        if missing > SHORT_STREAM_SEC and missing > SHORT_STREAM_SHARE * stated:
            raise MediaError(
                f"damaged: its {sp.kind} stream {i} can be read to {float(have):.2f} s but its header "
                f"says {float(stated):.2f} s (a damaged sample table?); a copy would lose the rest",
                shown,
            )


def _same_time(a: Fraction | None, b: Fraction | None, tol: Fraction) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= tol


def compare_kept(before: StreamPackets, after: StreamPackets, shift: Fraction = Fraction(0)) -> str | None:
    """Why ``after`` is not ``before`` copied (its times moved by ``shift`` seconds); None if it is.

    Timestamps are compared in seconds within half a tick of each stream's time base.
    """
    tol = before.time_base / 2 + after.time_base / 2 + Fraction(1, 10**9)
    if before.pcm or after.pcm:
        if before.size != after.size or before.stream_hash.digest() != after.stream_hash.digest():
            return f"{_bytes(after.size)} of samples instead of {_bytes(before.size)}"
        if not _same_time(_plus(before.first_pts, shift), after.first_pts, tol):
            return f"starts at {_secs(after.first_pts)} instead of {_secs(_plus(before.first_pts, shift))}"
        return None
    if before.count != after.count:
        return f"{after.count} packets instead of {before.count}"
    for k, (d0, d1) in enumerate(zip(before.digests, after.digests, strict=True)):
        if d0 != d1:
            return f"packet {k} has other bytes"
    if before.time_base == after.time_base and not shift and before.ticks == after.ticks:
        return None  # the same timestamps in the same time base: no need to convert each
    for k, (p0, p1) in enumerate(zip(before.pts, after.pts, strict=True)):
        if not _same_time(_plus(p0, shift), p1, tol):
            return f"packet {k} would play at {_secs(p1)} instead of {_secs(_plus(p0, shift))}"
    return None


def compare_moved_copy(
    before: StreamPackets,
    after: StreamPackets,
    shift: Fraction,
    *,
    exact_cut: bool,
    slack: int = 0,
    zero: Fraction = Fraction(0),
) -> str | None:
    """Why a stream-copied, moved audio stream lost something; None when it holds all it should.

    The output must hold a run of the input's packets that ends with the input's last one, each
    moved by ``shift`` seconds, and starts no later than the first packet still heard after the
    shift: with ``exact_cut`` (an edit list trims inside a packet) the first whose END is after
    time 0, else the first that STARTS at or after 0 (a container without edit lists cannot play
    part of a packet; ``slack`` more packets may go where the muxer moves the first one by the
    codec delay, as FFmpeg's Matroska muxer does). ``zero`` is file time 0 on the input's clock
    (a broadcast clock's origin).
    """
    if before.pcm or after.pcm:
        return None  # PCM is never moved by a copy: it is rewritten (see pcm_shift)
    if not after.count:
        return "no packets"

    def heard(k: int) -> bool:
        p = before.pts[k]
        if p is None:
            return True
        return p + shift + _dur(before, k) > zero if exact_cut else p + shift >= zero

    first_heard = next((k for k in range(before.count) if heard(k)), before.count)
    first = before.count - after.count
    if first < 0 or before.digests[first:] != after.digests:
        return "its packets are not the input's"
    if first > first_heard + slack:
        return f"lost {first - first_heard} packet(s) still heard after the shift"
    tol = before.time_base / 2 + after.time_base / 2 + Fraction(1, 10**9)
    for k, p1 in enumerate(after.pts):
        p0 = before.pts[first + k]
        if p1 is not None and p0 is not None and p1 >= 0 and not _same_time(p0 + shift, p1, tol):
            return f"packet {first + k} is at {_secs(p1)} instead of {_secs(p0 + shift)}"
    return None


def _dur(sp: StreamPackets, k: int) -> Fraction:
    nxt = sp.pts[k + 1] if k + 1 < sp.count else sp.end
    p = sp.pts[k]
    return (nxt - p) if (nxt is not None and p is not None and nxt > p) else Fraction(0)


def _plus(t: Fraction | None, shift: Fraction) -> Fraction | None:
    return None if t is None else t + shift


def _secs(t: Fraction | None) -> str:
    return "no time" if t is None else f"{float(t):.6f} s"


def _bytes(n: int) -> str:
    return f"{n:,} bytes"


def verify_kept(
    before: dict[int, StreamPackets],
    after: dict[int, StreamPackets],
    pairs: Iterable[tuple[int, int]],
    *,
    time_shift: Fraction = Fraction(0),
    src: str | os.PathLike,
) -> None:
    """Each (input index, output index) pair must be an unchanged copy; else one-line MediaError."""
    for i, o in pairs:
        if o not in after:
            raise MediaError(f"the fix lost {before[i].kind} stream {i}; nothing written", src)
        why = compare_kept(before[i], after[o], time_shift)
        if why:
            raise MediaError(
                f"a copy cannot keep its {before[i].kind} stream {i} as it is ({why}: damaged packets "
                "or timestamps?); nothing written",
                src,
            )

"""Correct the edit list of an audio track in an MP4/MOV file that avsync itself has just written.

FFmpeg's MP4 muxer derives a track's edit list from its first packet alone: a track starting
after zero gets an empty edit and then its media from the first sample; a track starting before
zero gets its media from time zero on. It does not know that the first packets of a stream-copied
AAC track are encoder priming (1024 samples) that the source's edit list skipped. Once ``fix``
delays such audio, the priming PLAYS: a codec frame of warm-up noise before the real first sound,
or part of one at time zero. :func:`skip_priming` rewrites that track's edit list so the real
sound (media time ``priming``) plays first, at the time the muxer put it, after an empty edit.

Only the ``moov`` box is rewritten, and only when it is the file's last box (FFmpeg's layout
unless asked for ``faststart``): then its size may change without moving any sample data.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from fractions import Fraction
from typing import BinaryIO

_CONTAINERS = {b"moov", b"trak", b"edts", b"mdia"}


@dataclass
class _Box:
    kind: bytes
    payload: bytes = b""  # leaf boxes
    children: list[_Box] | None = None  # container boxes

    def find(self, kind: bytes) -> _Box | None:
        return next((c for c in self.children or [] if c.kind == kind), None)

    def encode(self) -> bytes:
        body = b"".join(c.encode() for c in self.children) if self.children is not None else self.payload
        if len(body) + 8 < 2**32:
            return struct.pack(">I4s", len(body) + 8, self.kind) + body
        return struct.pack(">I4sQ", 1, self.kind, len(body) + 16) + body


def _parse(buf: bytes, start: int, end: int) -> list[_Box]:
    boxes, pos = [], start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", buf, pos)
        header = 8
        if size == 1:
            (size,) = struct.unpack_from(">Q", buf, pos + 8)
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            raise ValueError("a box runs past its parent")
        a, b = pos + header, pos + size
        if kind in _CONTAINERS:
            boxes.append(_Box(kind, children=_parse(buf, a, b)))
        else:
            boxes.append(_Box(kind, payload=buf[a:b]))
        pos = b
    return boxes


def _top_level(f: BinaryIO, size: int) -> list[tuple[bytes, int, int]]:
    """(type, offset, size) of each top-level box."""
    out, pos = [], 0
    while pos + 8 <= size:
        f.seek(pos)
        head = f.read(16)
        n, kind = struct.unpack_from(">I4s", head)
        if n == 1:
            (n,) = struct.unpack_from(">Q", head, 8)
        elif n == 0:
            n = size - pos
        if n < 8:
            break
        out.append((kind, pos, n))
        pos += n
    return out


def _scale(box: _Box | None) -> int:
    """The time scale field of an mvhd/mdhd payload."""
    if box is None or len(box.payload) < 24:
        return 0
    at = 20 if box.payload[0] == 1 else 12
    return struct.unpack_from(">I", box.payload, at)[0]


def _entries(elst: _Box) -> list[tuple[int, int, int]]:
    version = elst.payload[0]
    (count,) = struct.unpack_from(">I", elst.payload, 4)
    fmt = ">QqI" if version == 1 else ">IiI"
    step = struct.calcsize(fmt)
    return [struct.unpack_from(fmt, elst.payload, 8 + k * step) for k in range(count)]


def _elst_payload(entries: list[tuple[int, int, int]]) -> bytes:
    version = 1 if any(d >= 2**32 or abs(m) >= 2**31 for d, m, _ in entries) else 0
    fmt = ">QqI" if version == 1 else ">IiI"
    return struct.pack(">B3xI", version, len(entries)) + b"".join(struct.pack(fmt, *e) for e in entries)


def skip_priming(path: str | os.PathLike, track: int, priming_sec: Fraction) -> bool:
    """Make track number ``track`` (0-based, file order) start playing ``priming_sec`` into its media.

    With P = ``priming_sec`` in the track's time scale: the first media entry of its edit list,
    starting at movie time S from media time m < P, becomes an empty edit until S + (P - m) and
    the media from P on. The sound after the priming keeps its presentation time; the priming
    no longer plays. Returns False (file untouched) when there is nothing to correct or the
    file's layout does not allow it.
    """
    with open(path, "r+b") as f:
        size = os.fstat(f.fileno()).st_size
        boxes = _top_level(f, size)
        if not boxes or boxes[-1][0] != b"moov" or priming_sec <= 0:
            return False
        _, at, n = boxes[-1]
        f.seek(at)
        try:
            (moov,) = _parse(f.read(n), 0, n)
        except (ValueError, struct.error):
            return False
        traks = [c for c in moov.children or [] if c.kind == b"trak"]
        if not 0 <= track < len(traks):
            return False
        edts, mdia = traks[track].find(b"edts"), traks[track].find(b"mdia")
        elst = edts.find(b"elst") if edts is not None else None
        movie_scale, media_scale = _scale(moov.find(b"mvhd")), _scale(mdia.find(b"mdhd") if mdia else None)
        if elst is None or movie_scale <= 0 or media_scale <= 0:
            return False
        entries = _entries(elst)
        priming = round(priming_sec * media_scale)
        start = 0  # movie time where the first media entry begins
        for k, (duration, media_time, rate) in enumerate(entries):
            if media_time == -1:
                start += duration
                continue
            if media_time >= priming:
                return False
            delta = round((priming - media_time) * movie_scale / media_scale)
            if duration <= delta:
                return False
            entries = [(start + delta, -1, 0x10000), (duration - delta, priming, rate), *entries[k + 1 :]]
            break
        else:
            return False
        elst.payload = _elst_payload(entries)
        f.seek(at)
        f.write(moov.encode())
        f.truncate()
    return True

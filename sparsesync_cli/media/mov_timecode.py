"""Keep a QuickTime timecode track's flags (drop-frame) across a stream copy.

A MOV timecode track (``tmcd``) holds one sample, the frame number of the start timecode; HOW
that number reads as hours:minutes:seconds:frames is in the track's sample description: its
flags (drop-frame, 24-hour wrap, negative times), time scale, frame duration and frames per
second. FFmpeg's MOV muxer writes a copied ``tmcd`` track's description from the stream alone
and leaves its flags at 0, so a 29.97 drop-frame timecode ``01:00:00;00`` (frame 107892) reads
back as the non-drop ``00:59:56:12``. :func:`restore_timecode_flags` writes the input's flags
back into the output's sample descriptions, in place (the field has a fixed size: no sample
moves, no box changes size).
"""

from __future__ import annotations

import os
import struct
from typing import BinaryIO

# Boxes on the way from moov to a track's sample descriptions (moov/trak/mdia/minf/stbl/stsd).
_PATH = (b"trak", b"mdia", b"minf", b"stbl", b"stsd")
# In a tmcd sample entry, after its 8-byte header: 6 reserved bytes, the data reference index
# (2), 4 reserved bytes, then the 32-bit flags.
_FLAGS_AT = 8 + 12


def _boxes(buf: bytes, start: int, end: int) -> list[tuple[bytes, int, int]]:
    """(type, payload start, box end) of each box in ``buf[start:end]``; stops at a bad size."""
    out, pos = [], start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", buf, pos)
        header = 8
        if size == 1 and pos + 16 <= end:
            (size,) = struct.unpack_from(">Q", buf, pos + 8)
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            break
        out.append((kind, pos + header, pos + size))
        pos += size
    return out


def _moov(f: BinaryIO) -> tuple[int, bytes] | None:
    """(file offset, bytes) of the top-level moov box, None when the file has none."""
    size = os.fstat(f.fileno()).st_size
    pos = 0
    while pos + 8 <= size:
        f.seek(pos)
        head = f.read(16)
        if len(head) < 8:
            return None
        n, kind = struct.unpack_from(">I4s", head)
        if n == 1 and len(head) == 16:
            (n,) = struct.unpack_from(">Q", head, 8)
        elif n == 0:
            n = size - pos
        if n < 8:
            return None
        if kind == b"moov":
            f.seek(pos)
            return pos, f.read(n)
        pos += n
    return None


def _tmcd_flag_offsets(moov: bytes) -> dict[int, int]:
    """{track number (file order, 0-based): offset in ``moov`` of its tmcd entry's flags}."""
    offsets: dict[int, int] = {}
    top = _boxes(moov, 0, len(moov))
    if not top or top[0][0] != b"moov":
        return offsets
    _, a, b = top[0]
    traks = [(s, e) for kind, s, e in _boxes(moov, a, b) if kind == b"trak"]
    for number, (s, e) in enumerate(traks):
        spans = [(s, e)]
        for kind in _PATH[1:]:
            spans = [(x, y) for k, x, y in _boxes(moov, *spans[0]) if k == kind][:1] if spans else []
        if not spans:
            continue
        stsd_start, stsd_end = spans[0]
        # stsd: version/flags (4), entry count (4), then the sample entries.
        for kind, entry, entry_end in _boxes(moov, stsd_start + 8, stsd_end):
            if kind == b"tmcd" and entry - 8 + _FLAGS_AT + 4 <= entry_end:
                offsets[number] = entry - 8 + _FLAGS_AT
                break
    return offsets


def timecode_flags(path: str | os.PathLike) -> dict[int, int]:
    """{track number: flags of its timecode sample description} of a MOV/MP4 file ({} if none)."""
    try:
        with open(path, "rb") as f:
            found = _moov(f)
    except OSError:
        return {}
    if found is None:
        return {}
    _, moov = found
    return {t: struct.unpack_from(">I", moov, at)[0] for t, at in _tmcd_flag_offsets(moov).items()}


def restore_timecode_flags(path: str | os.PathLike, flags: dict[int, int]) -> list[int]:
    """Write ``flags`` ({track number: flags}) into the timecode tracks of the MOV/MP4 ``path``.

    Only tracks that are timecode tracks in ``path`` too and whose flags differ are written;
    returns their numbers. The file's size and layout do not change.
    """
    written: list[int] = []
    with open(path, "r+b") as f:
        found = _moov(f)
        if found is None:
            return written
        base, moov = found
        for track, at in sorted(_tmcd_flag_offsets(moov).items()):
            want = flags.get(track)
            if want is None or struct.unpack_from(">I", moov, at)[0] == want:
                continue
            f.seek(base + at)
            f.write(struct.pack(">I", want))
            written.append(track)
    return written

"""Damaged copies of MP4/MOV files, the kind a fuzz run finds (for tests and bench/).

:func:`with_huge_sample_size` makes one entry of a track's sample size table (``stsz``) huge,
as a bit flip or a truncated rewrite does: the header still promises the whole track, but a
demuxer yields the packets before that sample and then runs past the end of the file.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl"}


def _boxes(data: bytes, start: int, end: int):
    """(type, offset of the box, offset of its payload, end) for each box in data[start:end]."""
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        header = 8
        if size == 1:
            size = struct.unpack(">Q", data[pos + 8 : pos + 16])[0]
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            return
        yield kind, pos, pos + header, pos + size
        pos += size


def _tracks(data: bytes):
    """(handler type, stsz payload offset) for each track of the file."""
    for kind, _, body, end in _boxes(data, 0, len(data)):
        if kind != b"moov":
            continue
        for tkind, _, tbody, tend in _boxes(data, body, end):
            if tkind != b"trak":
                continue
            handler, stsz = None, None
            stack = [(tbody, tend)]
            while stack:
                b0, b1 = stack.pop()
                for k, _, pb, pe in _boxes(data, b0, b1):
                    if k in _CONTAINERS:
                        stack.append((pb, pe))
                    elif k == b"hdlr":
                        handler = data[pb + 8 : pb + 12]
                    elif k == b"stsz":
                        stsz = pb
            if handler is not None and stsz is not None:
                yield handler, stsz


def with_huge_sample_size(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    handler: bytes = b"vide",
    at_fraction: float = 0.3,
    size: int = 0x3FFF_FFFF,
) -> int:
    """Write ``dst``: ``src`` with one ``stsz`` entry of its first ``handler`` track set to ``size``.

    The entry is the one ``at_fraction`` of the way through the track. Returns its index.
    Raises ValueError when the file has no such track with a per-sample size table.
    """
    data = bytearray(Path(src).read_bytes())
    for h, stsz in _tracks(bytes(data)):
        if h != handler:
            continue
        uniform, count = struct.unpack(">II", data[stsz + 4 : stsz + 12])
        if uniform != 0 or count == 0:
            raise ValueError(f"{src}: the {handler.decode()} track has one size for every sample")
        entry = min(count - 1, int(count * at_fraction))
        struct.pack_into(">I", data, stsz + 12 + 4 * entry, size)
        Path(dst).write_bytes(bytes(data))
        return entry
    raise ValueError(f"{src}: no {handler.decode()} track with a sample size table")

"""Seeded corruptions of small synthetic clips, for tests/test_fuzz.py and bench/fuzz.py.

Each variant is made from a clean clip the caller synthesises (media_synth) by one of the
damage classes a real archive shows: byte flips in the header or the body, truncation, zeroed
blocks, swapped chunks, and hybrids of these. The same seed gives the same bytes.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from pathlib import Path

from helpers.media_synth import Clip, make_clip

# One small clip per container the fuzz covers; short, so decoding every variant is quick.
BASE_CLIPS = (
    Clip(container="mp4", duration=5.5),
    Clip(container="mov", duration=5.5),
    Clip(container="mkv", duration=5.5),
    Clip(container="webm", vcodec="libvpx-vp9", acodec="libopus", duration=5.5),
    Clip(container="ts", duration=5.5),
)
HEADER_BYTES = 4096  # "the header": where the container describes its streams


def _header_region(data: bytes) -> tuple[int, int]:
    """Where the stream descriptions are: MP4/MOV's moov box when found, else the first 4 KiB."""
    i = data.find(b"moov")
    if i >= 4:
        size = int.from_bytes(data[i - 4 : i], "big")
        if 8 <= size <= len(data) - i + 4:
            return i - 4, i - 4 + size
    return 0, min(len(data), HEADER_BYTES)


def flip_header(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    lo, hi = _header_region(data)
    for _ in range(rng.randint(1, 4)):
        b[rng.randrange(lo, hi)] = rng.randrange(256)
    return bytes(b)


def flip_body(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 32)):
        b[rng.randrange(len(b) // 8, len(b))] ^= 1 << rng.randrange(8)
    return bytes(b)


def truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(1, len(data))]


def zero_block(data: bytes, rng: random.Random) -> bytes:
    n = rng.choice((64, 512, 4096, 32768))
    at = rng.randrange(0, max(1, len(data) - n))
    return data[:at] + bytes(min(n, len(data) - at)) + data[at + n :]


def swap_chunks(data: bytes, rng: random.Random) -> bytes:
    n = rng.choice((188, 1024, 8192))
    if len(data) < 4 * n:
        return truncate(data, rng)
    a, b = sorted(rng.sample(range(0, len(data) - n, n), 2))
    return data[:a] + data[b : b + n] + data[a + n : b] + data[a : a + n] + data[b + n :]


def hybrid(data: bytes, rng: random.Random) -> bytes:
    for op in rng.sample(SIMPLE, rng.randint(2, 3)):
        data = op(data, rng)
    return data


SIMPLE: tuple[Callable[[bytes, random.Random], bytes], ...] = (
    flip_header,
    flip_body,
    truncate,
    zero_block,
    swap_chunks,
)
DAMAGES = (*SIMPLE, hybrid)


def make_bases(folder: Path) -> list[Path]:
    """The clean clips, one per container, written into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for clip in BASE_CLIPS:
        p = folder / f"base.{clip.container}"
        if not p.exists():
            make_clip(clip, p)
        paths.append(p)
    return paths


def variants(bases: list[Path], n: int, seed: int) -> Iterator[tuple[str, bytes]]:
    """``n`` (name, bytes) corrupted variants, cycling through containers and damage classes."""
    rng = random.Random(seed)
    data = {p: p.read_bytes() for p in bases}
    for i in range(n):
        base = bases[i % len(bases)]
        damage = DAMAGES[(i // len(bases)) % len(DAMAGES)]
        yield f"{i:04d}_{damage.__name__}{base.suffix}", damage(data[base], rng)


def write_variants(bases: list[Path], folder: Path, n: int, seed: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name, blob in variants(bases, n, seed):
        p = folder / name
        p.write_bytes(blob)
        out.append(p)
    return out


__all__ = ["BASE_CLIPS", "DAMAGES", "make_bases", "variants", "write_variants"]

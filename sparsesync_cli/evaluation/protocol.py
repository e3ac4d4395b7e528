"""Protocols: CSV lists of test items in the SparseSync authors' format, read, written and drawn.

The authors' columns are ``path,offset_sec,vstart_sec`` (``scripts/make_fixed_offset.py``):
``path`` names a clip without its ``.mp4`` suffix, relative to the dataset folder; the item reads
125 frames from ``vstart_sec`` and the audio from ``vstart_sec + offset_sec`` (audio early by
``offset_sec`` when positive), which is :func:`~sparsesync_cli.analysis.windows.window_at`.
"""

from __future__ import annotations

import csv
import io
import os
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError

COLUMNS = ("path", "offset_sec", "vstart_sec")
CLIP_SUFFIX = ".mp4"  # the authors' CSVs name clips without it


@dataclass(frozen=True)
class Draw:
    """Where a randomised item comes from: the run's seed, the pass and the protocol row.

    The item's offset and start are drawn from these three numbers and the clip alone (see
    :mod:`.passes`), so a draw is the same whichever worker makes it, in whatever order.
    """

    seed: int
    pass_index: int
    row: int


@dataclass(frozen=True)
class ProtocolItem:
    """One test item: a clip, where its window starts, and the offset applied to its audio.

    ``draw`` is set for an item of a randomised pass (``evaluate --passes``): its offset and
    start are drawn when the clip is opened, and ``offset_sec``/``vstart_sec`` are the protocol
    row's own until then.
    """

    path: str
    offset_sec: float
    vstart_sec: float
    draw: Draw | None = None

    @property
    def key(self) -> tuple:
        """Identifies the item in a JSONL of results (for resuming): the window, or for a drawn
        item the draw (its window is only known once drawn)."""
        if self.draw is not None:
            return self.path, "draw", self.draw.seed, self.draw.pass_index, self.draw.row
        return self.path, round(self.vstart_sec, 6), round(self.offset_sec, 6)


def read_protocol(path: str | os.PathLike) -> list[ProtocolItem]:
    """The items of a protocol CSV, in file order.

    Raises :class:`UsageError` naming the file and the line for a missing column or a value
    that is not a number.
    """
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as e:
        raise UsageError(f"cannot read the protocol: {e.strerror or e}", path) from None
    return parse_protocol(text, source=os.fspath(path))


def parse_protocol(text: str, *, source: str = "protocol") -> list[ProtocolItem]:
    """Items from the text of a protocol CSV (see :func:`read_protocol`)."""
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise UsageError(
            f"not a protocol CSV: missing column(s) {', '.join(missing)} (expected {','.join(COLUMNS)})",
            source,
        )
    items = []
    for row in reader:
        try:
            items.append(ProtocolItem(row["path"], float(row["offset_sec"]), float(row["vstart_sec"])))
        except (TypeError, ValueError):
            raise UsageError(
                f"line {reader.line_num}: offset_sec and vstart_sec must be numbers", source
            ) from None
        if not row["path"]:
            raise UsageError(f"line {reader.line_num}: empty path", source)
    if not items:
        raise UsageError("the protocol has no items", source)
    return items


def protocol_text(items: Iterable[ProtocolItem]) -> str:
    """The CSV text of ``items`` (numbers as the authors write them: 2 decimals)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for it in items:
        w.writerow([it.path, _fmt(it.offset_sec), _fmt(it.vstart_sec)])
    return buf.getvalue()


def write_protocol(items: Iterable[ProtocolItem], path: str | os.PathLike) -> None:
    """Write a protocol CSV atomically (a temporary file moved into place when complete)."""
    write_text_atomic(Path(path), protocol_text(items))


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` through the one atomic writer; a failure is one :class:`UsageError` line."""
    from ..atomic import write_text

    try:
        write_text(path, text)
    except OSError as e:
        raise UsageError(f"cannot write: {e.strerror or e}", path) from None


def _fmt(x: float) -> str:
    return f"{round(x, 2):g}" if round(x, 2) != 0 else "0.0"


def resolve_clip(root: str | os.PathLike, path: str) -> Path | None:
    """The file of an item: ``root/path``, else ``root/path.mp4`` (the authors omit the suffix)."""
    base = Path(root) / path
    for candidate in (base, base.with_name(base.name + CLIP_SUFFIX)):
        if candidate.is_file():
            return candidate
    return None


def parse_offsets(spec: str) -> list[float]:
    """``"-2:2:0.2"`` (first:last:step, both ends included) or ``"-1,0,1"`` into a list of offsets."""
    try:
        if ":" in spec:
            lo, hi, step = (float(x) for x in spec.split(":"))
            if step <= 0 or hi < lo:
                raise ValueError
            n = round((hi - lo) / step)
            return [round(lo + i * step, 6) for i in range(n + 1)]
        return [float(x) for x in spec.split(",") if x.strip()]
    except ValueError:
        raise UsageError(
            f"--offsets {spec}: expected first:last:step (e.g. -2:2:0.2) or a list -1,0,1"
        ) from None


def feasible_starts(video_span: tuple[int, int], audio_span: tuple[int, int], offset_sec: float) -> list[int]:
    """First frames ``f`` at which the item (``f / 25``, ``offset_sec``) reads only real frames and
    real audio: the window of :func:`window_at` lies inside both streams, audio included."""
    from .. import clock
    from ..analysis.windows import window_at

    out = []
    for f in range(video_span[0], video_span[1] - clock.FRAMES_PER_WINDOW + 1):
        w = window_at(round(f / clock.VIDEO_FPS, 2), offset_sec)
        if w.frame_start != f:
            continue  # 2-decimal start times that do not land on frame f
        if audio_span[0] <= w.sample_start and w.sample_start + clock.SAMPLES_PER_WINDOW <= audio_span[1]:
            out.append(f)
    return out


@dataclass(frozen=True)
class DrawnProtocol:
    """What :func:`make_protocol` drew, and the clips it skipped with the reason."""

    items: list[ProtocolItem]
    skipped: list[tuple[str, str]]


def make_protocol(
    clips: Sequence[str | os.PathLike],
    offsets: Sequence[float],
    *,
    per_clip: int = 1,
    seed: int = 0,
    root: str | os.PathLike | None = None,
) -> DrawnProtocol:
    """Draw ``per_clip`` items per clip (a clip the user knows is in sync): an offset from
    ``offsets`` and a start where the whole window, audio included, lies inside the file.

    The same clips, offsets and seed give the same items. A clip too short for a window at any
    of the offsets, or that cannot be read, is skipped and listed. ``root``: paths are written
    relative to it (as ``evaluate --root`` resolves them), else as given.
    """
    from .. import clock
    from ..errors import AvsyncError
    from ..media.decode import MediaReader

    if per_clip < 1:
        raise UsageError("--per-clip must be >= 1")
    if not offsets:
        raise UsageError("no offsets to draw from")
    rng = random.Random(seed)
    items: list[ProtocolItem] = []
    skipped: list[tuple[str, str]] = []
    for clip in clips:
        name = os.fspath(clip)
        try:
            with MediaReader(name) as reader:
                spans = reader.video_span, reader.audio_span
        except (AvsyncError, OSError) as e:
            skipped.append((name, str(e)))
            continue
        starts = {off: feasible_starts(*spans, off) for off in offsets}
        usable = [off for off in offsets if starts[off]]
        if not usable:
            skipped.append((name, "too short for a 5 s window at these offsets"))
            continue
        rel = os.path.relpath(name, root) if root is not None else name
        for _ in range(per_clip):
            off = rng.choice(usable)
            f = rng.choice(starts[off])
            items.append(ProtocolItem(rel, round(off, 2), round(f / clock.VIDEO_FPS, 2)))
    return DrawnProtocol(items, skipped)

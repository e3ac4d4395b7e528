"""The lossless fix: shift the audio by the measured offset with a stream copy (no re-encode).

``offset_sec > 0`` means the audio is early (THE sign of :mod:`sparsesync_cli.clock`), so the
audio is delayed by ``offset_sec``; a negative offset advances it. Every other stream, the
chapters and the metadata are copied unchanged, and the video keeps its timestamps.

How: ffmpeg reads the file twice, the second time with ``-itsoffset`` (all timestamps of that
input moved by the shift), and takes the moved audio from the second input and everything else
from the first, in the original stream order, with ``-copyts`` so no other timestamp changes.
The result is checked with :func:`probe` before it replaces anything.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..atomic import atomic_path
from ..errors import MediaError, UsageError
from .ffmpeg import FFMPEG_ENV, find_ffmpeg, run_ffmpeg
from .probe import MediaInfo, open_input, probe

MIN_SHIFT_SEC = 1e-6  # ffmpeg's time options have microsecond resolution
CHECK_TOLERANCE_SEC = 0.005  # the written audio must end this close to where the shift puts it
# Containers whose edit lists trim a stream sample-exactly (so audio moved before zero is cut
# exactly there); elsewhere whole audio packets before zero are dropped.
EDIT_LIST_EXTENSIONS = {".mp4", ".m4v", ".m4a", ".mov", ".3gp", ".3g2"}
# Containers that cannot start one stream later than another without re-encoding.
NO_SHIFT_EXTENSIONS = {".avi"}
# Containers without a fixed time origin: their timestamps are copied as they are.
NO_ORIGIN_EXTENSIONS = {".ts", ".m2ts", ".mts", ".mpg", ".mpeg", ".vob"}


@dataclass(frozen=True)
class FixResult:
    """What :func:`fix_offset` did."""

    src: str
    dst: str
    offset_sec: float  # the offset that was corrected (> 0: the audio was early)
    audio_shift_sec: float  # how far the audio moved (> 0: later); equals offset_sec
    audio_streams: tuple[int, ...]  # container indices of the audio streams that moved
    audio_trimmed_sec: float  # audio cut from the start because it moved before time zero
    streams: int  # streams written
    chapters: int  # chapters written
    ffmpeg: str  # the binary that ran


def _is_chapter_track(container: Any, stream: Any, chapters: int) -> bool:
    """QuickTime also keeps chapters as a text data track, which the muxer rebuilds from them."""
    return (
        chapters > 0
        and container.format.name.startswith("mov")
        and stream.type == "data"
        and (stream.frames or chapters) == chapters
    )


def _check_paths(src: str, dst: str, force: bool) -> None:
    if not os.path.isfile(src):
        open_input(src)  # raises the right one-line MediaError (missing, directory, ...)
    if os.path.exists(dst):
        if os.path.samefile(src, dst):
            raise UsageError("the output is the input file; write the fixed copy to a new path", dst)
        if os.path.isdir(dst):
            raise UsageError("the output path is a directory", dst)
        if not force:
            raise UsageError("the output file exists (--force overwrites it)", dst)
    if os.path.realpath(src) == os.path.realpath(dst):
        raise UsageError("the output is the input file; write the fixed copy to a new path", dst)
    if not os.path.isdir(os.path.dirname(os.path.abspath(dst))):
        raise UsageError("the output folder does not exist", dst)
    if not Path(dst).suffix:
        raise UsageError("the output needs an extension (.mp4, .mkv, ...) to choose its container", dst)


def _command(
    src: str, dst_suffix: str, shift: float, moved: set[int], keep: list[int], origin_sec: float
) -> list[str]:
    """ffmpeg arguments (without the output path) that copy ``src`` with the audio moved.

    ``origin_sec`` is the container timestamp of file time 0 (non-zero for MPEG-TS only).
    """
    # -copyts: no timestamp changes but the shift (without it ffmpeg rebases each input on its
    # own, and the two inputs of one file can end up rebased differently).
    args = ["-y", "-copyts", "-i", src]
    second = 0
    if abs(shift) >= MIN_SHIFT_SEC:
        args += ["-itsoffset", f"{shift:.6f}", "-i", src]
        second = 1
    for out_index, i in enumerate(keep):
        args += ["-map", f"{second if i in moved else 0}:{i}"]
        if i in moved and shift < 0 and dst_suffix not in EDIT_LIST_EXTENSIONS:
            # Packets that now start before zero belong to pictures before the video's start.
            args += [f"-bsf:{out_index}", f"noise=drop=lt(pts*tb\\,{origin_sec:.6f})"]
    if origin_sec and dst_suffix not in NO_ORIGIN_EXTENSIONS:
        args += ["-output_ts_offset", f"{-origin_sec:.6f}"]  # a broadcast clock becomes zero
    return [*args, "-map_metadata", "0", "-map_chapters", "0", "-c", "copy"]


def _check_result(before: MediaInfo, after: MediaInfo, shift: float, moved: set[int], dst: str) -> None:
    """The written audio must sit where the shift puts it, relative to the picture.

    Compared at the streams' ENDS: a start can legitimately move by a codec frame (AAC priming
    that plays after an empty edit, a trimmed first packet) while the end moves exactly.
    """
    for a_in, a_out in zip(before.audio_streams, after.audio_streams, strict=True):
        want = a_in.end_sec - before.video.start_sec + (shift if a_in.index in moved else 0.0)
        error = a_out.end_sec - after.video.start_sec - want
        if abs(error) > CHECK_TOLERANCE_SEC:
            raise MediaError(
                f"ffmpeg did not keep the audio shift in a {Path(dst).suffix} stream copy: audio stream "
                f"{a_in.index} lands {error * 1000:+.0f} ms off (try .mkv or .mp4, or a newer ffmpeg "
                f"via {FFMPEG_ENV})",
                dst,
            )


def fix_offset(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    offset_sec: float,
    *,
    audio_stream: int | None = None,
    force: bool = False,
) -> FixResult:
    """Write ``dst``: ``src`` with its audio moved by ``offset_sec`` (stream copy, no re-encode).

    ``offset_sec > 0`` (audio early) delays the audio by that much; ``< 0`` advances it. All
    audio streams move together, or only the N-th (0-based) when ``audio_stream`` is given.
    Every other stream, the chapters and the container and stream metadata are kept; the
    output container follows ``dst``'s extension.

    Advancing the audio past time zero TRIMS the audio: its first ``-offset_sec`` seconds belong
    to pictures before the start of the video, so they are dropped and the video keeps its
    timestamps (chapters and subtitles stay aligned with it). MP4/MOV trim sample-exactly with an
    edit list; other containers drop the audio packets that would start before zero, so the first
    kept sound starts up to a codec frame (~20-40 ms) after zero, still at its right time
    (Matroska: up to two, FFmpeg re-applies the codec delay to the first packet it keeps).
    AVI cannot start its audio at another time than its video without re-encoding: a shift to an
    ``.avi`` output is refused. MPEG-TS input written to another container is rebased so its
    first packet is at zero (its broadcast clock has no meaning elsewhere).

    The input is never modified: the result is written to a temporary file in ``dst``'s folder
    and moved into place only when complete and checked. Raises UsageError when ``dst`` exists
    (unless ``force``), is ``src`` (also via a link), has no extension or is an AVI, and
    MediaError when ``src`` cannot be read, ffmpeg fails (e.g. a codec the output container
    cannot hold) or the written file does not have the audio where the shift puts it.
    """
    src, dst = os.fspath(src), os.fspath(dst)
    _check_paths(src, dst, force)
    suffix = Path(dst).suffix.lower()
    shift = float(offset_sec)
    if abs(shift) >= MIN_SHIFT_SEC and suffix in NO_SHIFT_EXTENSIONS:
        raise UsageError(
            f"{suffix} cannot shift the audio without re-encoding; write the fix to .mkv or .mp4", dst
        )
    before = probe(src, audio_stream=audio_stream)
    container = open_input(src)
    try:
        audios = [s.index for s in container.streams.audio]
        moved = set(audios) if audio_stream is None else {before.audio.index}
        chapters = len(container.chapters())
        keep = [s.index for s in container.streams if not _is_chapter_track(container, s, chapters)]
    finally:
        container.close()

    args = _command(src, suffix, shift, moved, keep, before.time_origin_us / 1e6)
    # The temporary file keeps the extension: ffmpeg picks the muxer from it.
    try:
        with atomic_path(os.path.abspath(dst), keep_extension=True) as tmp_path:
            tmp = os.fspath(tmp_path)
            run_ffmpeg([*args, tmp], src)
            after = probe(tmp, audio_stream=audio_stream)
            _check_result(before, after, shift, moved, dst)
            written = open_input(tmp)
            try:
                streams, chapters_out = len(written.streams), len(written.chapters())
            finally:
                written.close()
    except OSError as e:
        raise MediaError(f"cannot write the output: {e.strerror or e}", dst) from e
    trimmed = 0.0
    if shift < 0:
        trimmed = max(0.0, min(-shift, -shift - before.audio.start_sec))
    return FixResult(
        src=src,
        dst=dst,
        offset_sec=float(offset_sec),
        audio_shift_sec=shift,
        audio_streams=tuple(sorted(moved)),
        audio_trimmed_sec=trimmed,
        streams=streams,
        chapters=chapters_out,
        ffmpeg=find_ffmpeg(),
    )

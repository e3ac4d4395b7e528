"""The lossless fix: shift the audio by the measured offset with a stream copy (no re-encode).

``offset_sec > 0`` means the audio is early (THE sign of :mod:`sparsesync_cli.clock`), so the
audio is delayed by ``offset_sec``; a negative offset advances it. Every other stream, the
chapters and the metadata are copied unchanged, and the video keeps its timestamps.

How: ffmpeg reads the file twice, the second time with ``-itsoffset`` (all timestamps of that
input moved by the shift), and takes the moved audio from the second input and everything else
from the first, in the original stream order, with ``-copyts`` so no other timestamp changes.
In MP4/MOV two things of FFmpeg's muxer are corrected: audio packets more than
EDIT_LIST_PREROLL_SEC before zero are dropped (the edit list trims the rest sample-exactly), and
an AAC track whose priming now lands after zero gets an edit list that skips it again
(:mod:`.mp4_edits`). The result is checked with :func:`probe` before it replaces anything.
"""

from __future__ import annotations

import os
import re
import stat
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from ..atomic import TEMP_SUFFIX, atomic_path
from ..errors import MediaError, UsageError
from .ffmpeg import FFMPEG_ENV, find_ffmpeg, run_ffmpeg
from .mp4_edits import skip_priming
from .probe import MediaInfo, open_input, probe

MIN_SHIFT_SEC = 1e-6  # ffmpeg's time options have microsecond resolution
CHECK_TOLERANCE_SEC = 0.005  # the written audio must end this close to where the shift puts it
# Containers whose edit lists trim a stream sample-exactly (so audio moved before zero is cut
# exactly there); elsewhere whole audio packets before zero are dropped.
EDIT_LIST_EXTENSIONS = {".mp4", ".m4v", ".m4a", ".mov", ".3gp", ".3g2"}
# Audio kept before time zero in an edit-list container when the audio is advanced: enough for
# any decoder to warm up (AAC overlap and priming, MP3 bit reservoir, Opus pre-roll), and well
# inside the 1 s before an edit's start that FFmpeg's MP4 demuxer keeps. Packets further back are
# dropped: that demuxer skips them but then assigns the sample durations one sample off (the
# last packet gets a full frame instead of its real length), so the file reads longer than it is.
EDIT_LIST_PREROLL_SEC = 0.5
# A killed fix (kill -9, power loss) leaves its temporary file next to the output; the next fix to
# that output removes such leftovers once they are this old (a running fix writes them far more
# often than once a minute, so a younger one may belong to a fix still at work).
STALE_TEMP_SEC = 60.0
LEGACY_TEMP_MARK = ".avsync-tmp"  # avsync 0.1.0 named them .NAME.XXXXXXXX.avsync-tmp.EXT
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


def _priming(container: Any, moved: set[int]) -> dict[int, Fraction]:
    """{audio stream: seconds of its first packets the source's decode skips (encoder priming)}.

    The encoder priming a source's edit list skips (AAC: 1024 samples). Once its first packet
    lands after zero (delayed audio, or late audio advanced less than its start), that priming
    would play in an MP4/MOV output; the output's edit list is corrected to skip it.
    """
    import av

    first_packet: dict[int, int] = {}
    first_frame: dict[int, int] = {}
    try:  # from the first packet: a seek to 0 would skip the priming itself
        for packet in container.demux([container.streams[i] for i in sorted(moved)]):
            i = packet.stream.index
            if i in first_frame or packet.pts is None:
                continue
            first_packet.setdefault(i, packet.pts)
            frames = packet.decode()
            if frames and frames[0].pts is not None:
                first_frame[i] = frames[0].pts
                if len(first_frame) == len(moved):
                    break
    except av.FFmpegError:
        pass  # no correction for what cannot be read; the result check still runs
    return {
        i: (first_frame[i] - first_packet[i]) * Fraction(container.streams[i].time_base)
        for i in first_frame
        if first_frame[i] > first_packet[i]
    }


def _temp_names(dst: str) -> re.Pattern[str]:
    """The names of ``dst``'s temporary files: ``.NAME.XXXXXXXX.incomplete.EXT``, as
    :func:`sparsesync_cli.atomic.atomic_path` makes them (8 random characters from ``tempfile``),
    or ``.NAME.XXXXXXXX.avsync-tmp.ext`` as avsync 0.1.0 did."""
    name, ext = Path(dst).name, Path(dst).suffix
    suffixes = [TEMP_SUFFIX + ext, LEGACY_TEMP_MARK + ext.lower()]
    return re.compile(re.escape(f".{name}.") + r"[a-z0-9_]{8}(?:" + "|".join(map(re.escape, suffixes)) + ")")


def remove_stale_temporaries(dst: str | os.PathLike, older_than_sec: float = STALE_TEMP_SEC) -> list[str]:
    """Delete the temporary files a killed fix to ``dst`` left behind; returns their paths.

    Only regular files named exactly as :func:`fix_offset` names them for this output (see
    :func:`_temp_names`), not modified for ``older_than_sec``. Files that cannot be removed are
    left alone.
    """
    dst = os.fspath(dst)
    folder = os.path.dirname(os.path.abspath(dst))
    pattern = _temp_names(dst)
    removed: list[str] = []
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if not pattern.fullmatch(entry.name):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISREG(st.st_mode) and now - st.st_mtime > older_than_sec:
                os.unlink(entry.path)
                removed.append(entry.path)
        except OSError:
            continue
    return removed


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
        if i in moved and shift < 0:
            # Packets that now start before zero belong to pictures before the video's start;
            # an edit list trims them sample-exactly, so there only those beyond a pre-roll go.
            cut = origin_sec - (EDIT_LIST_PREROLL_SEC if dst_suffix in EDIT_LIST_EXTENSIONS else 0.0)
            args += [f"-bsf:{out_index}", f"noise=drop=lt(pts*tb\\,{cut:.6f})"]
    if origin_sec and dst_suffix not in NO_ORIGIN_EXTENSIONS:
        args += ["-output_ts_offset", f"{-origin_sec:.6f}"]  # a broadcast clock becomes zero
    return [*args, "-map_metadata", "0", "-map_chapters", "0", "-c", "copy"]


def _check_result(
    before: MediaInfo, after: MediaInfo, shift: float, moved: set[int], dst: str, exact_start: bool
) -> None:
    """The written audio must sit where the shift puts it, relative to the picture.

    Compared at the streams' ENDS, and at their starts where an edit list trims exactly
    (``exact_start``): elsewhere a start can legitimately move by a codec frame (a trimmed first
    packet) while the end moves exactly.
    """
    v_in, v_out = before.video.start_sec, after.video.start_sec
    for a_in, a_out in zip(before.audio_streams, after.audio_streams, strict=True):
        s = shift if a_in.index in moved else 0.0
        errors = [("ends", a_out.end_sec - v_out - (a_in.end_sec - v_in + s))]
        if exact_start:
            errors.append(("starts", a_out.start_sec - v_out - max(a_in.start_sec + s - v_in, -v_in)))
        for where, error in errors:
            if abs(error) > CHECK_TOLERANCE_SEC:
                raise MediaError(
                    f"ffmpeg did not keep the audio shift in a {Path(dst).suffix} stream copy: audio "
                    f"stream {a_in.index} {where} {error * 1000:+.0f} ms off (a newer ffmpeg via "
                    f"{FFMPEG_ENV} may help)",
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
    and moved into place only when complete and checked; temporary files of earlier fixes to
    ``dst`` that were killed before they finished are removed once a minute old
    (:func:`remove_stale_temporaries`). Raises UsageError when ``dst`` exists
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
        priming = _priming(container, moved) if shift and suffix in EDIT_LIST_EXTENSIONS else {}
    finally:
        container.close()

    args = _command(src, suffix, shift, moved, keep, before.time_origin_us / 1e6)
    remove_stale_temporaries(dst)
    # The temporary file keeps the extension: ffmpeg picks the muxer from it.
    try:
        with atomic_path(os.path.abspath(dst), keep_extension=True) as tmp_path:
            tmp = os.fspath(tmp_path)
            run_ffmpeg([*args, tmp], src)
            for out_index, i in enumerate(keep):
                if priming.get(i):
                    skip_priming(tmp, out_index, priming[i])
            after = probe(tmp, audio_stream=audio_stream)
            _check_result(before, after, shift, moved, dst, suffix in EDIT_LIST_EXTENSIONS)
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

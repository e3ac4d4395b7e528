"""The lossless fix: move the audio by the measured offset, copying everything else packet for packet.

``offset_sec > 0`` means the audio is early (THE sign of :mod:`sparsesync_cli.clock`), so the
audio is delayed by ``offset_sec``; a negative offset advances it. Every other stream, the
chapters and the metadata are copied unchanged, and the video keeps its timestamps.

How: ffmpeg reads the file twice, the second time with ``-itsoffset`` (all timestamps of that
input moved by the shift), and takes the moved audio from the second input and everything else
from the first, in the original stream order, with ``-copyts`` so no other timestamp changes.
In MP4/MOV two things of FFmpeg's muxer are corrected: audio packets more than
EDIT_LIST_PREROLL_SEC before zero are dropped (the edit list trims the rest sample-exactly), and
an AAC track whose priming now lands after zero gets an edit list that skips it again
(:mod:`.mp4_edits`), and a copied timecode track gets back the flags the muxer drops (drop-frame:
:mod:`.mov_timecode`). PCM audio, and audio that must be padded, trimmed or retimed, is
rewritten by a filter chain instead (:mod:`.fix_plan`, :mod:`.pcm_shift`). The written file is
proved packet by packet and sample by sample (:mod:`.fix_check`) before it replaces anything.
"""

from __future__ import annotations

import os
import re
import stat
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

from ..atomic import TEMP_SUFFIX, atomic_path
from ..errors import MediaError, UsageError
from .ffmpeg import find_ffmpeg, run_ffmpeg
from .fix_check import is_chapter_track, timecodes, verify_fix
from .fix_plan import (
    EDIT_LIST_EXTENSIONS,
    NO_ORIGIN_EXTENSIONS,
    StreamFix,
    plan_audio,
    retime_factor,
    stream_fix,
)
from .mov_timecode import restore_timecode_flags, timecode_flags
from .mp4_edits import skip_priming
from .packets import StreamPackets, read_packets
from .pcm_shift import AudioPlan, SampleDigest, source_bitrate
from .probe import open_input, probe

MIN_SHIFT_SEC = 1e-6  # ffmpeg's time options have microsecond resolution
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
# Containers whose tracks must all span the picture (see fix_offset).
CONFORM_EXTENSIONS = {".mxf"}


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
    drift_sec_per_min: float = 0.0  # the drift corrected (0: none)
    conform: bool = False  # every audio track padded / trimmed to the picture
    stream_fixes: tuple[StreamFix, ...] = ()  # what happened to each stream, in output order

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready record (``fix --json``)."""
        d = asdict(self)
        d["stream_fixes"] = [f.to_dict() for f in self.stream_fixes]
        return d


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


def _scan_input(
    src: str,
    expected: dict[int, SampleDigest],
    plans: dict[int, AudioPlan],
    failed: threading.Event | None = None,
) -> dict[int, StreamPackets]:
    """Read every packet of the input (and the samples each plan rewrites): is it whole?

    MediaError when it cannot be read to its end, ends before its header says, or a PCM track
    a plan rewrites has a gap (renumbering its samples would move all sound after it); then
    ``failed`` is set.
    """
    try:
        packets_in = _read_whole(src, expected, plans)
    except BaseException:
        if failed is not None:
            failed.set()
        raise
    return packets_in


def _read_whole(
    src: str, expected: dict[int, SampleDigest], plans: dict[int, AudioPlan]
) -> dict[int, StreamPackets]:
    packets_in = read_packets(src, samples=expected)
    for i, p in plans.items():
        gap = packets_in[i].gap
        if gap is not None and p.pcm:
            where, hole = gap
            what = "a gap" if hole > 0 else "an overlap"
            raise MediaError(
                f"its audio stream {i} has {what} of {abs(float(hole)) * 1000:.1f} ms at "
                f"{float(where):.3f} s: rewriting its samples would move all sound after it; "
                "repair the gap first",
                src,
            )
    return packets_in


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
    src: str,
    dst_suffix: str,
    shift: float,
    moved: set[int],
    keep: list[int],
    origin_sec: float,
    plans: dict[int, AudioPlan],
) -> list[str]:
    """ffmpeg arguments (without the output path) that copy ``src`` with the audio moved.

    Streams in ``moved`` without a plan are copied from a second reading of the input whose
    timestamps are all moved by ``shift`` (``-itsoffset``); streams with a plan are rewritten by
    its filter chain (:mod:`.pcm_shift`); all others are copied. ``origin_sec`` is the container
    timestamp of file time 0 (non-zero for MPEG-TS only).
    """
    # -copyts: no timestamp changes but the shift (without it ffmpeg rebases each input on its
    # own, and the two inputs of one file can end up rebased differently).
    args = ["-y", "-copyts", "-i", src]
    copied_moves = moved - set(plans)
    second = 0
    if abs(shift) >= MIN_SHIFT_SEC and copied_moves:
        args += ["-itsoffset", f"{shift:.6f}", "-i", src]
        second = 1
    if plans:
        graph = ";".join(f"[0:{i}]{plans[i].chain()}[rw{i}]" for i in keep if i in plans)
        args += ["-filter_complex", graph]
    per_stream: list[str] = []
    for out_index, i in enumerate(keep):
        if i in plans:
            args += ["-map", f"[rw{i}]"]
            per_stream += [*plans[i].encoder_args(out_index), f"-map_metadata:s:{out_index}", f"0:s:{i}"]
            continue
        args += ["-map", f"{second if i in copied_moves else 0}:{i}"]
        if i in copied_moves and shift < 0:
            # Packets that now start before zero belong to pictures before the video's start;
            # an edit list trims them sample-exactly, so there only those beyond a pre-roll go.
            cut = origin_sec - (EDIT_LIST_PREROLL_SEC if dst_suffix in EDIT_LIST_EXTENSIONS else 0.0)
            per_stream += [f"-bsf:{out_index}", f"noise=drop=lt(pts*tb\\,{cut:.6f})"]
    if origin_sec and dst_suffix not in NO_ORIGIN_EXTENSIONS:
        args += ["-output_ts_offset", f"{-origin_sec:.6f}"]  # a broadcast clock becomes zero
    return [*args, "-map_metadata", "0", "-map_chapters", "0", "-c", "copy", *per_stream]


def fix_offset(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    offset_sec: float,
    *,
    audio_stream: int | None = None,
    force: bool = False,
    conform: bool = False,
    drift_sec_per_min: float = 0.0,
    reencode_audio: bool = False,
) -> FixResult:
    """Write ``dst``: ``src`` with its audio moved by ``offset_sec``, losing no packet.

    ``offset_sec > 0`` (audio early) delays the audio by that much; ``< 0`` advances it. All
    audio streams move together, or only the N-th (0-based) when ``audio_stream`` is given.
    Every other stream, the chapters, the timecode and the container and stream metadata are
    kept; the output container follows ``dst``'s extension. What happens to each stream
    (:mod:`.fix_plan`): PCM audio is rewritten sample-exactly (silence in front for a delay,
    samples dropped for an advance), compressed audio is stream-copied with new timestamps where
    the container allows it (MP4/MOV trim it sample-exactly with an edit list, other containers
    drop the packets that would start before zero) and re-encoded only with ``reencode_audio``
    where it does not (MXF, AVI).

    ``conform``: every audio track then starts with the picture and ends with it (silence padded,
    overhang cut). ``drift_sec_per_min`` (D, > 0: the audio gets earlier along the file, as
    ``drift_sec_per_min`` in results): the sound heard at input time t was early by
    ``offset_sec + D*t/60``; the audio is resampled to last ``1 + D/60`` times as long (soxr),
    back to its own rate, format and layout. Both rewrite compressed audio, so they need
    ``reencode_audio`` for it.

    Before anything replaces ``dst`` the written file is demuxed and compared with the input
    (:mod:`.packets`): every stream not moved must hold the same packets, bytes and times, moved
    copies every packet still heard, rewritten PCM every sample (:func:`.pcm_shift.verify_samples`).
    An input that cannot be read to its end, or whose streams end well before its header says,
    is refused. The input is never modified; the result is written to a temporary file next to
    ``dst`` and moved into place only when checked (stale ones of killed fixes are removed, see
    :func:`remove_stale_temporaries`). Raises UsageError when ``dst`` exists (unless ``force``),
    is ``src`` (also via a link), has no extension, or compressed audio would need a re-encode
    not allowed; MediaError naming ``src`` when it cannot be read, is damaged, ffmpeg fails, or
    the written file would not hold what the input does.
    """
    src, dst = os.fspath(src), os.fspath(dst)
    _check_paths(src, dst, force)
    suffix = Path(dst).suffix.lower()
    shift = float(offset_sec)
    if abs(shift) < MIN_SHIFT_SEC:
        shift = 0.0
    factor = retime_factor(drift_sec_per_min)
    # MXF interleaves every track frame by frame: its muxer ends all tracks with the shortest, so a
    # track longer than the picture is cut and one shorter cuts the picture. Moved audio there
    # always spans the picture exactly.
    conform = conform or (suffix in CONFORM_EXTENSIONS and bool(shift or factor))
    before = probe(src, audio_stream=audio_stream)
    origin = before.time_origin_us / 1e6
    container = open_input(src)
    try:
        audios = [s.index for s in container.streams.audio]
        moved = set(audios) if audio_stream is None else {before.audio.index}
        chapters = len(container.chapters())
        keep = [s.index for s in container.streams if not is_chapter_track(container, s, chapters)]
        timecodes_in = timecodes(container)
        # FFmpeg's MOV muxer drops a copied timecode track's flags (drop-frame): put them back.
        # The MOV demuxer makes one stream of each track, in file order.
        tmcd_flags: dict[int, int] = {}
        if container.format.name.startswith("mov") and suffix in EDIT_LIST_EXTENSIONS:
            flags_in = timecode_flags(src)
            tmcd_flags = {o: flags_in[i] for o, i in enumerate(keep) if i in flags_in}
        starts = {a.index: a.start_sec for a in before.audio_streams}
        plans: dict[int, AudioPlan] = {}
        for i in sorted(moved):
            plan = plan_audio(
                container.streams[i],
                start_sec=starts.get(i, before.video.start_sec),
                shift=shift,
                factor=factor,
                video_start=before.video.start_sec,
                video_end=before.video.end_sec,
                raw_start=before.video.start_sec + origin,
                conform=conform,
                reencode=reencode_audio,
                suffix=suffix,
                src=src,
            )
            if plan is not None:
                plans[i] = plan
        # One pass over the input: its packets (is it whole?) and the samples each rewrite must
        # hold. It runs while ffmpeg writes (both read the same file, mostly from the page cache)
        # unless a re-encode's bitrate must be known first.
        expected = {i: SampleDigest(p.channels, p) for i, p in plans.items()}
        packets_in: dict[int, StreamPackets] | None = None
        if any(p.bitrate is not None for p in plans.values()):
            packets_in = _scan_input(src, expected, plans)
            for i, p in plans.items():
                if p.bitrate is not None:  # a re-encode: at least the bitrate the source really uses
                    size, span = packets_in[i].size, max(before.video.end_sec - before.video.start_sec, 1e-3)
                    plans[i] = replace(p, bitrate=source_bitrate(container.streams[i], size, span))
        copied_moves = moved - set(plans) if shift else set()
        priming = _priming(container, copied_moves) if copied_moves and suffix in EDIT_LIST_EXTENSIONS else {}
        kinds = {
            s.index: (s.index, s.type, s.codec_context.name if s.codec_context is not None else "none")
            for s in container.streams
        }
    finally:
        container.close()

    args = _command(src, suffix, shift, copied_moves, keep, origin, plans)
    remove_stale_temporaries(dst)
    # The temporary file keeps the extension: ffmpeg picks the muxer from it.
    try:
        with atomic_path(os.path.abspath(dst), keep_extension=True) as tmp_path:
            tmp = os.fspath(tmp_path)
            failed: MediaError | None = None
            damaged = threading.Event()  # the input scan failed: stop ffmpeg, its copy is lost anyway
            with ThreadPoolExecutor(1) as pool:
                scan = pool.submit(_scan_input, src, expected, plans, damaged) if packets_in is None else None
                try:
                    run_ffmpeg([*args, tmp], src, abort=damaged)
                except MediaError as e:  # ffmpeg's words may name the temporary file: the output, to a user
                    failed = MediaError(e.cause.replace(tmp, Path(dst).name), src)
                    failed.__cause__ = e
                if scan is not None:
                    packets_in = scan.result()  # what is wrong with the input says more than ffmpeg
            if failed is not None:
                raise failed
            assert packets_in is not None  # read before ffmpeg ran, or by the scan
            for out_index, i in enumerate(keep):
                if priming.get(i):
                    skip_priming(tmp, out_index, priming[i])
            if tmcd_flags:
                restore_timecode_flags(tmp, tmcd_flags)
            streams, chapters_out = verify_fix(
                src,
                tmp,
                suffix,
                before,
                packets_in,
                expected,
                keep,
                moved,
                copied_moves,
                plans,
                shift,
                origin,
                audio_stream,
                timecodes_in,
            )
    except OSError as e:
        raise MediaError(f"cannot write the output: {e.strerror or e}", dst) from e
    records = [
        stream_fix(kinds[i], o, plans.get(i), shift if i in copied_moves else 0.0, packets_in[i].size)
        for o, i in enumerate(keep)
    ]
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
        drift_sec_per_min=float(drift_sec_per_min or 0.0),
        conform=conform,
        stream_fixes=tuple(records),
    )

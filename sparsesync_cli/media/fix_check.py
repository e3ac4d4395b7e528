"""Prove a written fix before it replaces anything: what it keeps is the input's, what it moves is whole.

:func:`verify_fix` reads the written (temporary) file back and compares it with the input's
packets (:mod:`.packets`): streams not moved must be identical copies; stream-copied, moved
audio must hold every packet still heard after the shift, at its shifted time, and (edit-list
containers) start and end where the shift puts it; rewritten audio must hold exactly the
samples its plan makes of the input's (:mod:`.pcm_shift`) and start with the picture; and
the start timecode (the container's, and each kept stream's: a MOV's timecode track and the
picture it names) must read the same, drop-frame or not. Every message names the INPUT: the
temporary file is an implementation detail.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

from ..errors import MediaError
from .fix_plan import EDIT_LIST_EXTENSIONS, NO_ORIGIN_EXTENSIONS
from .packets import StreamPackets, compare_moved_copy, read_packets, verify_kept
from .pcm_shift import AudioPlan, SampleDigest, verify_samples
from .probe import MediaInfo, open_input, probe

CHECK_TOLERANCE_SEC = 0.005  # stream-copied audio must end this close to where the shift puts it
# Muxers that move a copied track's first packet by its codec delay, so a packet starting just
# after zero can land before it and go (Matroska/WebM): this many more packets may go.
CODEC_DELAY_SLACK = {".mkv": 1, ".mka": 1, ".webm": 1}


def is_chapter_track(container: Any, stream: Any, chapters: int) -> bool:
    """QuickTime also keeps chapters as a text data track, which the muxer rebuilds from them."""
    return (
        chapters > 0
        and container.format.name.startswith("mov")
        and stream.type == "data"
        and (stream.frames or chapters) == chapters
    )


def is_built_timecode_track(container: Any, stream: Any, timecode: str | None) -> bool:
    """A MOV muxer writes the input's file-level timecode (MXF's) as a timecode track of its own;
    such a track, stating exactly that timecode, is the timecode kept, not a stream made up."""
    found = timecodes(container).get(stream.index)
    return container.format.name.startswith("mov") and stream.type == "data" and found == timecode


def timecodes(container: Any) -> dict[int | None, str]:
    """The start timecodes a file states: {None: the container's, stream index: that stream's}.

    As FFmpeg reads them (MXF: the container's; MOV: the timecode track's and its video
    stream's), e.g. ``01:00:00;00`` (';': drop-frame). Metadata keys in any case.
    """

    def find(metadata: Any) -> str | None:
        return next((str(v) for k, v in (metadata or {}).items() if k.lower() == "timecode" and v), None)

    found: dict[int | None, str] = {}
    tc = find(container.metadata)
    if tc:
        found[None] = tc
    for s in container.streams:
        tc = find(s.metadata)
        if tc:
            found[s.index] = tc
    return found


def _check_timecodes(
    before: dict[int | None, str], after: dict[int | None, str], keep: list[int], src: str, suffix: str
) -> None:
    """Every start timecode the input states must read the same in the output (module doc).

    Where the output states it is the container's business (MXF keeps the file's timecode in
    its header, MOV on a timecode track and the picture it names): one stated in another place
    is kept; one stated differently in its own place, or nowhere, is not.
    """
    pairs: list[tuple[int | None, int | None, str]] = [(None, None, "its")]
    pairs += [(i, o, f"its stream {i}'s") for o, i in enumerate(keep)]
    for i, o, whose in pairs:
        want = before.get(i)
        if want is None:
            continue
        got = after.get(o)
        if got == want or (got is None and want in after.values()):
            continue
        now = f"would read {got}" if got else "would be lost"
        hint = ""
        if not got and Path(src).suffix.lower() != suffix:
            hint = f" (a {suffix} file cannot hold it: keep the input's container)"
        raise MediaError(f"{whose} start timecode {want} {now} in the fixed copy{hint}; nothing written", src)


def _check_ends(
    before: MediaInfo,
    after: MediaInfo,
    shift: float,
    moved: set[int],
    src: str,
    suffix: str,
    exact_start: bool,
) -> None:
    """Stream-copied, moved audio must sit where the shift puts it, relative to the picture.

    Compared at the streams' ENDS, and at their starts where an edit list trims exactly
    (``exact_start``): elsewhere a start can legitimately move by a codec frame (a trimmed first
    packet) while the end moves exactly. (Packets are compared by :mod:`.packets`; this checks
    the edit lists, which decide where a player plays them.)
    """
    v_in, v_out = before.video.start_sec, after.video.start_sec
    for a_in, a_out in zip(before.audio_streams, after.audio_streams, strict=True):
        if a_in.index not in moved:
            continue
        errors = [("ends", a_out.end_sec - v_out - (a_in.end_sec - v_in + shift))]
        if exact_start:
            errors.append(("starts", a_out.start_sec - v_out - max(a_in.start_sec + shift - v_in, -v_in)))
        for where, error in errors:
            if abs(error) > CHECK_TOLERANCE_SEC:
                raise MediaError(
                    f"a stream copy to {suffix} would put audio stream "
                    f"{a_in.index} {error * 1000:+.0f} ms off where the shift puts it (it {where} "
                    "there); nothing written",
                    src,
                )


def verify_fix(
    src: str,
    tmp: str,
    suffix: str,
    before: MediaInfo,
    packets_in: dict[int, StreamPackets],
    expected: dict[int, SampleDigest],
    keep: list[int],
    moved: set[int],
    copied_moves: set[int],
    plans: dict[int, AudioPlan],
    shift: float,
    origin: float,
    audio_stream: int | None,
    timecodes_in: dict[int | None, str],
) -> tuple[int, int]:
    """Prove the written file ``tmp`` holds what it should (module doc); (streams, chapters).

    Every message names the INPUT: the temporary file is an implementation detail.
    """
    try:
        after = probe(tmp, audio_stream=audio_stream)
        written_samples = {keep.index(i): SampleDigest(p.channels) for i, p in plans.items()}
        packets_out = read_packets(tmp, check_complete=False, samples=written_samples)
        written = open_input(tmp)
        try:
            streams, chapters_out = len(written.streams), len(written.chapters())
            timecodes_out = timecodes(written)
            extra = [s for s in written.streams if s.index >= len(keep)]
            if any(
                not is_chapter_track(written, s, chapters_out)
                and not is_built_timecode_track(written, s, timecodes_in.get(None))
                for s in extra
            ):
                raise MediaError(f"it has {streams} streams instead of {len(keep)}")
        finally:
            written.close()
    except MediaError as e:
        raise MediaError(f"the fixed copy cannot be read back ({e.cause}); nothing written", src) from e
    # A kept packet must play at the same time relative to the picture. MP4, MOV, MKV, MXF: at
    # the same file time, a broadcast clock (MPEG-TS/PS input) rebased to zero; an MPEG-TS/PS
    # output gets a clock of its muxer's choosing, so there the picture's first packet sets it.
    rebase = Fraction(-before.time_origin_us, 10**6) if origin else Fraction(0)
    if suffix in NO_ORIGIN_EXTENSIONS:
        v = before.video.index
        v0_in, v0_out = packets_in[v].first_pts, packets_out[keep.index(v)].first_pts
        rebase = v0_out - v0_in if v0_in is not None and v0_out is not None else Fraction(0)
    kept = [
        (i, o) for o, i in enumerate(keep) if i not in moved or (i not in plans and i not in copied_moves)
    ]
    verify_kept(packets_in, packets_out, kept, time_shift=rebase, src=src)
    _check_timecodes(timecodes_in, timecodes_out, keep, src, suffix)
    for o, i in enumerate(keep):
        if i in copied_moves:
            why = compare_moved_copy(
                packets_in[i],
                packets_out[o],
                Fraction(shift).limit_denominator(10**6) + rebase,
                exact_cut=suffix in EDIT_LIST_EXTENSIONS,
                slack=CODEC_DELAY_SLACK.get(suffix, 0),
                zero=Fraction(before.time_origin_us, 10**6) + rebase,
            )
            if why:
                raise MediaError(
                    f"a copy cannot move its audio stream {i} intact ({why}: damaged packets or "
                    "timestamps?); nothing written",
                    src,
                )
        elif i in plans:
            verify_samples(plans[i], expected[i], written_samples[o], src)
            # Where it PLAYS (first decoded sample: an encoder's priming skipped) against the picture.
            start = next(a.start_sec for a in after.audio_streams if a.index == o)
            tol = 1 / plans[i].sample_rate + float(packets_out[o].time_base)
            if abs(start - after.video.start_sec) > tol:
                raise MediaError(
                    f"the rewritten audio stream {i} would start at {start:.6f} s, not with "
                    f"the picture at {after.video.start_sec:.6f} s; nothing written",
                    src,
                )
    if copied_moves:
        _check_ends(before, after, shift, copied_moves, src, suffix, suffix in EDIT_LIST_EXTENSIONS)
    return streams, chapters_out

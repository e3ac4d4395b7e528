"""What is in a media file, measured on the file-time clock: streams, where each starts and ends.

File time 0 is the container's zero: an MP4/MOV/MKV/WebM/AVI timeline starts at 0, so a video
track whose first picture is at 1.5 s (an empty edit, a late start) begins at file time 1.5 s, as
a player shows it. Only formats without a fixed origin (MPEG-TS, MPEG-PS: their clock is a
broadcast counter) are measured from the container's start time, as ffmpeg and players do.

Start times come from the first DECODED frame of each stream (so edit lists, AAC/Opus priming
and B-frame reordering are already applied); end times from the last packets of the file.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from ..clock import SAMPLE_RATE, VIDEO_FPS
from ..errors import MediaError
from . import remote, timing

if TYPE_CHECKING:  # av is imported lazily: `avsync --help` must not pay for it
    import av.container

TAIL_SCAN_SEC = 20.0  # the end of each stream is found by demuxing this much of the file's end
FIRST_FRAME_SCAN_PACKETS = 4000  # give up looking for a first decodable frame after this many packets
SQUARE_PIXEL_TOLERANCE = 0.01  # a sample aspect ratio within 1% of 1:1 is treated as square
# Display geometry no player shows, refused so that no allocation follows a damaged header: real
# non-square pixels stretch by at most 2x (anamorphic DV/DVD/HDV/2x scope), real pictures are at
# most ~3.6:1 (32:9 panoramas); frames are scaled to a 256-pixel shorter side, so these bounds keep
# a frame under 2048x256 and a window of frames under ~200 MB.
MAX_PIXEL_STRETCH = 4  # a sample aspect ratio beyond 4:1 or 1:4
MAX_DISPLAY_ASPECT = 8  # a displayed picture wider than 8:1 or taller than 1:8
# The largest picture any codec level allows (AV1 level 7.x, 16384x8704); H.264/HEVC stop at 8192x4352.
MAX_PICTURE_PIXELS = 16384 * 8704
# Audio no recorder makes, refused so that resampling to 16 kHz never multiplies a damaged header
# into memory (1 Hz audio would turn each input sample into 16,000): telephony's 8 kHz and old
# 5.5 kHz formats sit above the floor, DXD/768 kHz PCM at the ceiling; 22.2 sound has 24 channels.
MIN_AUDIO_RATE, MAX_AUDIO_RATE = 4000, 768000
MAX_AUDIO_CHANNELS = 64


@dataclass(frozen=True)
class VideoStreamInfo:
    """The video stream avsync reads. Times are file times in seconds."""

    index: int  # stream index in the container
    codec: str
    start_sec: float  # presentation time of the first picture
    end_sec: float  # when the last picture ends (its timestamp plus its duration)
    width: int  # stored (coded) size in pixels
    height: int
    display_width: int  # size a player shows: non-square pixels stretched, rotation applied
    display_height: int
    rotation: int  # degrees CLOCKWISE a player turns the stored picture (0, 90, 180, 270)
    sample_aspect_ratio: tuple[int, int]  # pixel width:height; (1, 1) for square pixels
    average_fps: float | None
    frame_count: int | None  # from the container header, when it says


@dataclass(frozen=True)
class AudioStreamInfo:
    """One audio stream. Times are file times in seconds."""

    index: int  # stream index in the container
    codec: str
    start_sec: float  # presentation time of the first sample (after encoder priming is removed)
    end_sec: float
    sample_rate: int
    channels: int
    layout: str


@dataclass(frozen=True)
class MediaInfo:
    """A probed file. ``video_span``/``audio_span`` are on the 25 fps / 16 kHz grids (see decode)."""

    path: str
    format_name: str
    duration_sec: float  # file time at which the later of the video and the chosen audio ends
    video: VideoStreamInfo
    audio_streams: tuple[AudioStreamInfo, ...]
    audio: AudioStreamInfo  # the chosen one
    chapters: int
    time_origin_us: int  # container timestamp (microseconds) that is file time 0; 0 except TS/PS
    video_span: tuple[int, int]  # [first, end) 25 fps frame indices that have a picture
    audio_span: tuple[int, int]  # [first, end) 16 kHz sample indices covered by real audio


def av_cause(exc: BaseException) -> str:
    """A one-line cause for an exception raised by PyAV/FFmpeg."""
    cause = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return " ".join(str(cause).split())


def open_input(path: str | os.PathLike) -> av.container.InputContainer:
    """Open ``path`` for demuxing, turning every way it can fail into a one-line MediaError.

    ``path`` may be a URI (``s3://bucket/key``, ...): see :mod:`sparsesync_cli.media.remote`.
    """
    import av

    p = os.fspath(path)
    if remote.is_uri(p):
        return _open_uri(p)
    if not os.path.exists(p):
        raise MediaError("no such file", p)
    if os.path.isdir(p):
        raise MediaError("is a directory, not a media file", p)
    if not os.access(p, os.R_OK):
        raise MediaError("permission denied (the file is not readable)", p)
    if os.path.getsize(p) == 0:
        raise MediaError("the file is empty", p)
    try:
        # Metadata in a wrong encoding must not make a playable file unreadable.
        return av.open(p, metadata_errors="ignore")
    except av.FFmpegError as exc:
        raise MediaError(f"not a readable media file ({av_cause(exc)})", p) from exc
    except (OSError, ValueError) as exc:
        raise MediaError(f"cannot open ({av_cause(exc)})", p) from exc


def _open_uri(uri: str) -> av.container.InputContainer:
    import av

    # FFmpeg reads http(s) and streaming protocols itself; object stores come as file objects.
    source = uri if remote.scheme_of(uri) in remote.FFMPEG_SCHEMES else remote.open_uri(uri)
    try:
        return av.open(source, metadata_errors="ignore")
    except av.FFmpegError as exc:
        raise MediaError(f"not a readable media file ({av_cause(exc)})", uri) from exc
    except (OSError, ValueError) as exc:
        raise MediaError(f"cannot open ({av_cause(exc)})", uri) from exc


def demux(container: Any, streams: Any) -> Iterator[Any]:
    """``container.demux(streams)``, ending cleanly where PyAV's flush trips over a late stream.

    MPEG-TS (and other formats without a fixed header) can announce a stream after the file was
    opened, when a packet with a new PID turns up. PyAV's ``demux`` sizes its stream table at
    the start and, after the last packet, raises IndexError while yielding the flush packet of
    the stream it does not know. Every real packet was yielded by then, and callers flush their
    decoders themselves, so this is the end of the file.
    """
    it = container.demux(streams)
    while True:
        try:
            packet = next(it)
        except (StopIteration, IndexError):
            return
        yield packet


def _decodable(stream: Any) -> bool:
    # A damaged stream description (an MP4 sample description, an MKV track entry) can name no
    # codec FFmpeg knows: then the stream has no codec context and nothing in it can be decoded.
    return stream.codec_context is not None


def pick_streams(container: Any, path: str, audio_stream: int | None) -> tuple[Any, Any, list[Any]]:
    """The video stream (first non-cover-art one), the chosen audio stream, and all audio streams.

    Streams whose codec FFmpeg does not know are not offered (they cannot be decoded); the audio
    streams keep their numbering, so ``audio_stream`` means the same whatever the damage.
    """
    import av

    videos = [s for s in container.streams.video if not (s.disposition & av.stream.Disposition.attached_pic)]
    audios = list(container.streams.audio)
    if not videos and not audios:
        raise MediaError("no video and no audio stream", path)
    if not videos:
        raise MediaError("no video stream (only audio): avsync needs both picture and sound", path)
    if not audios:
        raise MediaError("no audio stream: avsync needs both picture and sound", path)
    n = 0 if audio_stream is None else audio_stream
    if not 0 <= n < len(audios):
        raise MediaError(
            f"audio stream {n} requested but the file has {len(audios)} (numbered 0-{len(audios) - 1})", path
        )
    video = next((s for s in videos if _decodable(s)), None)
    if video is None:
        raise MediaError(
            f"the video stream {videos[0].index} has an unknown codec (a damaged stream description?)", path
        )
    if not _decodable(audios[n]):
        raise MediaError(
            f"the audio stream {audios[n].index} has an unknown codec (a damaged stream description?)", path
        )
    return video, audios[n], [a for a in audios if _decodable(a)]


def time_origin_us(container: Any) -> int:
    """The container timestamp (in microseconds) that is file time 0."""
    if container.format.flags & timing.TS_DISCONT_FLAG and container.start_time is not None:
        return int(container.start_time)
    return 0


def _first_frames(container: Any, streams: list[Any], path: str) -> dict[int, Any]:
    """Decode until each stream in ``streams`` has produced its first frame; {stream index: frame}."""
    import av

    want = {s.index for s in streams}
    found: dict[int, Any] = {}
    try:
        for n_packets, packet in enumerate(demux(container, streams)):
            if n_packets > FIRST_FRAME_SCAN_PACKETS:
                break
            if packet.stream.index in found:
                continue
            try:
                frames = packet.decode()
            except av.FFmpegError:
                continue  # a damaged packet: the next keyframe may still decode
            for frame in frames:
                if frame.pts is not None or frame.dts is not None:
                    found[packet.stream.index] = frame
                    break
            if set(found) == want:
                break
        else:
            # End of file: flush the decoders, a stream with few packets may still hold a frame.
            for s in streams:
                if s.index not in found:
                    with contextlib.suppress(av.FFmpegError):
                        for frame in s.codec_context.decode(None):
                            found[s.index] = frame
                            break
    except av.FFmpegError as exc:
        raise MediaError(f"cannot read the streams ({av_cause(exc)})", path) from exc
    for s in streams:
        if s.index not in found:
            kind = "video" if s.type == "video" else "audio"
            raise MediaError(
                f"the {kind} stream {s.index} has no decodable frame (corrupt or truncated)", path
            )
    return found


def _stream_ends(
    container: Any, streams: list[Any], path: str, default_duration: dict[int, int]
) -> dict[int, int]:
    """{stream index: largest pts + duration} over the stream's packets, in the stream's time base.

    Demuxes only the last TAIL_SCAN_SEC of the file; a stream with no packet there (it ends
    early, or the container's duration lies) is found by demuxing the whole file.
    """
    import av

    def scan(source: Any, from_us: int | None) -> dict[int, int]:
        ends: dict[int, int] = {}
        wanted = [source.streams[s.index] for s in streams]
        try:
            if from_us is not None:
                source.seek(from_us, backward=True, any_frame=False)
            for packet in demux(source, wanted):
                ts = packet.pts if packet.pts is not None else packet.dts
                if ts is None or packet.is_discard:
                    continue
                i = packet.stream.index
                dur = packet.duration or default_duration.get(i, 0)
                ends[i] = max(ends.get(i, ts + dur), ts + dur)
        except (av.FFmpegError, OSError):
            pass  # a truncated tail: keep what was read before it
        return ends

    ends: dict[int, int] = {}
    if container.duration is not None:
        start = container.start_time or 0
        ends = scan(container, max(start, start + int(container.duration) - int(TAIL_SCAN_SEC * 1e6)))
    if any(s.index not in ends for s in streams):
        whole = open_input(path)  # from the first byte: no seek can skip anything
        try:
            for i, end in scan(whole, None).items():
                ends[i] = max(end, ends.get(i, end))
        finally:
            whole.close()
    missing = [s.index for s in streams if s.index not in ends]
    if missing:
        raise MediaError(f"stream {missing[0]} has no packets (corrupt or truncated)", path)
    return ends


def _default_frame_duration(stream: Any) -> int:
    """One frame's duration in the stream's time base, for packets that do not carry one."""
    rate = stream.average_rate or stream.guessed_rate or Fraction(VIDEO_FPS)
    return max(1, timing.rescale(1, 1 / Fraction(rate), Fraction(stream.time_base)))


def _sample_aspect(stream: Any) -> Fraction:
    sar = stream.sample_aspect_ratio
    if not sar or sar <= 0 or abs(float(sar) - 1.0) <= SQUARE_PIXEL_TOLERANCE:
        return Fraction(1)
    return Fraction(sar)


def check_geometry(width: int, height: int, sar: Fraction, path: str) -> None:
    """MediaError (one line) for a stored size or display shape that no player shows."""
    if width <= 0 or height <= 0 or width * height > MAX_PICTURE_PIXELS:
        raise MediaError(
            f"the video's picture size {width}x{height} is beyond what any codec level allows "
            "(a damaged header?)",
            path,
        )
    if not 1 / MAX_PIXEL_STRETCH <= sar <= MAX_PIXEL_STRETCH:
        raise MediaError(
            f"the video's sample aspect ratio {sar.numerator}:{sar.denominator} would stretch each picture "
            f"{max(float(sar), 1 / float(sar)):.3g}x, beyond what any player shows (a damaged header?)",
            path,
        )
    aspect = width * sar / height
    if not 1 / MAX_DISPLAY_ASPECT <= aspect <= MAX_DISPLAY_ASPECT:
        raise MediaError(
            f"the video would display {width}x{height} pictures at an aspect of {float(aspect):.3g}:1, "
            f"beyond what any player shows (a damaged header?)",
            path,
        )


def check_audio_format(sample_rate: int, channels: int, path: str) -> None:
    """MediaError (one line) for a sample rate or channel count that no recorder makes."""
    if sample_rate and not MIN_AUDIO_RATE <= sample_rate <= MAX_AUDIO_RATE:
        raise MediaError(
            f"the audio's sample rate {sample_rate} Hz is outside what any recorder makes "
            f"({MIN_AUDIO_RATE}-{MAX_AUDIO_RATE} Hz; a damaged header?)",
            path,
        )
    if channels > MAX_AUDIO_CHANNELS:
        raise MediaError(
            f"the audio claims {channels} channels, more than any layout has "
            f"({MAX_AUDIO_CHANNELS}; a damaged header?)",
            path,
        )


def probe(path: str | os.PathLike, *, audio_stream: int | None = None) -> MediaInfo:
    """Describe ``path``: its video stream, its audio streams, and where each starts and ends.

    ``audio_stream`` chooses the N-th audio stream (0-based) instead of the first. Raises
    MediaError (one line naming the file and the cause) for a missing, unreadable, empty or
    non-media file, a file without video or without audio, a stream that does not decode, a
    display geometry no player shows (see :func:`check_geometry`), or an audio format no recorder
    makes (see :func:`check_audio_format`).
    """
    p = os.fspath(path)
    container = open_input(p)
    try:
        return _probe_open(container, p, audio_stream)
    finally:
        container.close()


def _probe_open(container: Any, path: str, audio_stream: int | None) -> MediaInfo:
    vstream, astream, audios = pick_streams(container, path, audio_stream)
    origin_us = time_origin_us(container)
    first = _first_frames(container, [vstream, *audios], path)
    vdur = _default_frame_duration(vstream)
    ends = _stream_ends(container, [vstream, *audios], path, {vstream.index: vdur})

    def start_end(stream: Any, frame_dur: int) -> tuple[int, int]:
        """First and end timestamps of ``stream`` relative to file time 0, in its time base."""
        origin = timing.origin_in(Fraction(stream.time_base), origin_us)
        frame = first[stream.index]
        start = frame.pts if frame.pts is not None else frame.dts
        end = max(ends[stream.index], start + frame_dur)
        return start - origin, end - origin

    vtb = Fraction(vstream.time_base)
    v_start, v_end = start_end(vstream, vdur)
    vframe = first[vstream.index]
    sar = _sample_aspect(vstream)
    rotation = round(-float(getattr(vframe, "rotation", 0) or 0) / 90.0) * 90 % 360
    width, height = vframe.width, vframe.height
    check_geometry(width, height, sar, path)
    disp_w, disp_h = (round(width * sar), height)
    if rotation in (90, 270):
        disp_w, disp_h = disp_h, disp_w
    rate = vstream.average_rate
    video = VideoStreamInfo(
        index=vstream.index,
        codec=vstream.codec_context.name,
        start_sec=float(v_start * vtb),
        end_sec=float(v_end * vtb),
        width=width,
        height=height,
        display_width=disp_w,
        display_height=disp_h,
        rotation=rotation,
        sample_aspect_ratio=(sar.numerator, sar.denominator),
        average_fps=float(rate) if rate else None,
        frame_count=int(vstream.frames) or None,
    )
    audio_infos = []
    spans: dict[int, tuple[int, int]] = {}
    for s in audios:
        tb = Fraction(s.time_base)
        a_start, a_end = start_end(s, 0)
        spans[s.index] = (
            timing.rescale(a_start, tb, Fraction(1, SAMPLE_RATE)),
            timing.rescale(a_end, tb, Fraction(1, SAMPLE_RATE)),
        )
        cc = s.codec_context
        audio_infos.append(
            AudioStreamInfo(
                index=s.index,
                codec=cc.name,
                start_sec=float(a_start * tb),
                end_sec=float(a_end * tb),
                sample_rate=int(cc.sample_rate or s.rate or 0),
                channels=int(cc.channels),
                layout=cc.layout.name if cc.layout is not None else f"{cc.channels} channels",
            )
        )
    chosen = next(a for a in audio_infos if a.index == astream.index)
    check_audio_format(chosen.sample_rate, chosen.channels, path)
    fps = Fraction(1, VIDEO_FPS)
    video_span = (timing.rescale(v_start, vtb, fps), timing.rescale(v_end, vtb, fps))
    return MediaInfo(
        path=path,
        format_name=container.format.name,
        duration_sec=max(video.end_sec, chosen.end_sec),
        video=video,
        audio_streams=tuple(audio_infos),
        audio=chosen,
        chapters=len(container.chapters()),
        time_origin_us=origin_us,
        video_span=video_span,
        audio_span=spans[astream.index],
    )


def header_duration_sec(path: str | os.PathLike) -> float | None:
    """The duration the container's header states (cheap: nothing is decoded); None if unknown.

    For checks before the real work (is ``--start`` inside the file?); :func:`probe` measures.
    """
    try:
        container = open_input(path)
    except MediaError:
        return None
    try:
        return container.duration / 1e6 if container.duration is not None else None
    finally:
        container.close()

"""Synthetic clips with known truth for the media tests, encoded with PyAV's bundled FFmpeg.

Each clip has one white frame (the "flash") and one impulse (the "click") at known file times,
on a dark, slowly moving background (so codecs see real motion) and quiet noise. A red block in
the stored picture's top-left corner shows which way a rotation went. :func:`make_clip` writes
the file and returns the truth: the exact file times of the flash frame and the click sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

BACKGROUND = 40  # grey level of the picture around the flash
FLASH_LEVEL = 235  # the flash frame (limited-range white survives every codec)
NOISE_RMS = 0.003  # quiet noise so no codec sees digital silence
CLICK_AMPLITUDE = 0.8
VFR_INTERVALS = (Fraction(1, 50), Fraction(1, 30), Fraction(1, 20))  # cycled: ~30 fps on average


@dataclass(frozen=True)
class Clip:
    """What to synthesise. Times are file times in seconds; ``None`` codec = no such stream."""

    container: str = "mp4"  # file extension, picks the muxer
    vcodec: str | None = "libx264"
    acodec: str | None = "aac"
    width: int = 160
    height: int = 120
    fps: Fraction = Fraction(25)
    duration: float = 6.0
    rate: int = 48000
    layout: str = "stereo"
    video_start: float = 0.0
    audio_start: float = 0.0
    flash_sec: float = 2.0
    click_sec: float = 3.0
    vfr: bool = False
    rotation: int = 0  # degrees CLOCKWISE a player must turn the stored picture
    sar: Fraction | None = None
    pix_fmt: str = "yuv420p"
    vopts: tuple[tuple[str, str], ...] = ()  # encoder options
    aopts: tuple[tuple[str, str], ...] = ()
    mux_opts: tuple[tuple[str, str], ...] = ()  # container options, e.g. (("movflags", "faststart"),)
    chapters: bool = False
    extra_audio: bool = False  # a second audio stream (mono, click at click_sec + 0.5 s)
    channel_gains: tuple[float, ...] | None = None  # per-channel gain of the first audio stream

    @property
    def name(self) -> str:
        parts = [self.container, self.vcodec or "novideo", self.acodec or "noaudio"]
        if self.vfr:
            parts.append("vfr")
        if self.rotation:
            parts.append(f"rot{self.rotation}")
        if self.sar:
            parts.append(f"sar{self.sar.numerator}x{self.sar.denominator}")
        if self.video_start or self.audio_start:
            parts.append(f"start{self.video_start}_{self.audio_start}")
        parts += [f"{self.rate}", self.layout.replace(".", ""), f"{float(self.fps):g}fps"]
        if self.chapters:
            parts.append("chap")
        if self.extra_audio:
            parts.append("2a")
        if self.channel_gains:
            parts.append("gains" + "_".join(f"{g:g}" for g in self.channel_gains))
        parts += [f"{k}{v}" for k, v in self.vopts + self.aopts + self.mux_opts]
        return "-".join(p.replace("/", "") for p in parts)


@dataclass(frozen=True)
class Truth:
    path: Path
    flash_sec: float | None  # file time of the flash frame
    click_sec: float | None  # file time of the click sample (first audio stream)
    extra_click_sec: float | None  # the second audio stream's click
    video_end_sec: float


def grid25(t: Fraction) -> int:
    """The 25 fps grid index of time ``t``, rounded like ffmpeg's fps filter (halves up)."""
    return math.floor(t * 25 + Fraction(1, 2))


def _frame_times(clip: Clip) -> list[Fraction]:
    start, end = Fraction(clip.video_start), Fraction(clip.duration)
    times, t, i = [], start, 0
    while t < end:
        times.append(t)
        t += VFR_INTERVALS[i % len(VFR_INTERVALS)] if clip.vfr else 1 / clip.fps
        i += 1
    return times


def _picture(clip: Clip, i: int, flash: bool) -> np.ndarray:
    h, w = clip.height, clip.width
    img = np.full((h, w, 3), BACKGROUND, np.uint8)
    if flash:
        img[:] = FLASH_LEVEL
    x = (i * 3) % max(1, w - 16)
    img[h // 2 :, x : x + 16] = (90, 90, 160)  # a moving bar in the lower half
    img[: h // 4, : w // 4] = (200, 30, 30)  # red marker, stored top-left
    return img


def _add_video(clip: Clip, out: av.container.OutputContainer) -> av.VideoStream:
    tb = Fraction(1, 600) if clip.container != "avi" else 1 / clip.fps
    stream = out.add_stream(clip.vcodec or "", rate=clip.fps, options=dict(clip.vopts))
    if not isinstance(stream, av.VideoStream):
        raise TypeError(f"{clip.vcodec!r} is not a video encoder")
    stream.width, stream.height, stream.pix_fmt = clip.width, clip.height, clip.pix_fmt
    stream.time_base = tb
    stream.codec_context.time_base = tb
    if clip.sar:
        stream.codec_context.sample_aspect_ratio = clip.sar
    if clip.rotation:
        # FFmpeg's display matrix angle is counter-clockwise; a player turns it back.
        stream.set_display_rotation(-clip.rotation)
    return stream


def _encode_video(clip: Clip, stream: av.VideoStream) -> tuple[list[av.Packet], Fraction, Fraction]:
    """Encode the pictures; returns (packets, flash time, end time of the last picture)."""
    tb = stream.codec_context.time_base
    packets: list[av.Packet] = []
    times = _frame_times(clip)
    # The flash is the first picture from flash_sec - 1/50 on that the fps=25 filter keeps (it
    # keeps a picture only if the next one rounds to a later grid index).
    flash_i = next(
        i
        for i in range(len(times) - 1)
        if times[i] >= Fraction(clip.flash_sec) - Fraction(1, 50) and grid25(times[i]) < grid25(times[i + 1])
    )
    for i, t in enumerate(times):
        frame = av.VideoFrame.from_ndarray(_picture(clip, i, i == flash_i), format="rgb24")
        frame.pts = int(t / tb)
        frame.time_base = tb
        packets += stream.encode(frame.reformat(format=clip.pix_fmt))
    packets += stream.encode()
    last = times[-1] + (VFR_INTERVALS[(len(times) - 1) % 3] if clip.vfr else 1 / clip.fps)
    return packets, times[flash_i], last


def _signal(clip: Clip, channels: int, click_sec: float, seed: int) -> tuple[np.ndarray, int]:
    n = round((clip.duration - clip.audio_start) * clip.rate)
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((channels, n)) * NOISE_RMS).astype(np.float32)
    k = round((click_sec - clip.audio_start) * clip.rate)
    x[:, k] = CLICK_AMPLITUDE
    if clip.channel_gains and seed == 1:
        x *= np.asarray(clip.channel_gains, np.float32)[:, None]
    return x, k


def _add_audio(clip: Clip, out: av.container.OutputContainer, layout: str) -> av.AudioStream:
    options = dict(clip.aopts)
    if clip.acodec == "vorbis":
        options["strict"] = "experimental"  # FFmpeg's native Vorbis encoder is marked experimental
    stream = out.add_stream(clip.acodec or "", rate=clip.rate, layout=layout, options=options)
    if not isinstance(stream, av.AudioStream):
        raise TypeError(f"{clip.acodec!r} is not an audio encoder")
    return stream


def _encode_audio(
    clip: Clip, stream: av.AudioStream, layout: str, click_sec: float, seed: int
) -> tuple[list[av.Packet], Fraction]:
    """Encode one audio stream; returns (packets, the exact click time)."""
    cc = stream.codec_context
    packets: list[av.Packet] = []
    fmt = cc.format.name if cc.format is not None else "fltp"
    channels = av.AudioLayout(layout).nb_channels
    x, k = _signal(clip, channels, click_sec, seed)
    start = round(clip.audio_start * clip.rate)
    tb = Fraction(1, clip.rate)
    block = 1024
    for off in range(0, x.shape[1], block):
        chunk = x[:, off : off + block]
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="fltp", layout=layout)
        frame.sample_rate = clip.rate
        frame.pts = start + off
        frame.time_base = tb
        if fmt != "fltp":
            frame = _convert(frame, fmt, layout, clip.rate)
        packets += stream.encode(frame)
    packets += stream.encode(None)
    return packets, Fraction(start + k, clip.rate)


def _convert(frame: av.AudioFrame, fmt: str, layout: str, rate: int) -> av.AudioFrame:
    """``frame`` in sample format ``fmt`` (PCM encoders want s16 etc.), same timestamp."""
    arr = frame.to_ndarray()
    if fmt.startswith("s16"):
        arr = np.clip(np.round(arr * 32767), -32768, 32767).astype(np.int16)
    elif fmt.startswith("s32"):
        arr = np.clip(np.round(arr.astype(np.float64) * 2147483647), -(2**31), 2**31 - 1).astype(np.int32)
    elif fmt.startswith("dbl"):
        arr = arr.astype(np.float64)
    planar = fmt.endswith("p")
    if not planar:
        arr = arr.T.reshape(1, -1)
    # One of the dtypes AudioFrame takes, by the branches above (numpy cannot tell which).
    samples: np.ndarray[Any, Any] = np.ascontiguousarray(arr)
    new = av.AudioFrame.from_ndarray(samples, format=fmt, layout=layout)
    new.sample_rate, new.pts, new.time_base = rate, frame.pts, frame.time_base
    return new


def file_events(path: Path) -> tuple[float, float]:
    """(flash, click) times by the file's own timestamps, read with plain PyAV.

    An oracle independent of the code under test: the flash is the first white picture's
    timestamp, the click the timestamp of the decoded frame holding the loudest sample plus the
    sample's offset in it; both minus the container start for MPEG-TS (no fixed origin).
    """
    with av.open(str(path)) as c:
        origin = c.start_time / 1e6 if c.format.flags & 0x200 and c.start_time is not None else 0.0
        flash = next(
            float(f.pts * f.time_base) - origin
            for f in c.decode(video=0)
            if f.to_ndarray(format="gray").mean() > (BACKGROUND + FLASH_LEVEL) / 2
        )
    best, click = -1.0, 0.0
    with av.open(str(path)) as c:
        for f in c.decode(audio=0):
            n_ch = len(f.layout.channels)
            x = np.abs(f.to_ndarray()).reshape(n_ch, -1) if f.format.is_planar else None
            x = x.mean(axis=0) if x is not None else np.abs(f.to_ndarray()).reshape(-1, n_ch).mean(axis=1)
            i = int(np.argmax(x))
            if x[i] > best:
                best, click = float(x[i]), float(f.pts * f.time_base) + i / f.sample_rate - origin
    return flash, click


def make_clip(clip: Clip, path: Path) -> Truth:
    """Write ``clip`` to ``path`` and return where its events are."""
    flash = last = click = extra = None
    with av.open(str(path), "w", options=dict(clip.mux_opts)) as out:
        out.metadata["title"] = "avsync synthetic clip"
        out.metadata["comment"] = "flash and click at known times"
        vs = _add_video(clip, out) if clip.vcodec else None
        a1 = _add_audio(clip, out, clip.layout) if clip.acodec else None
        a2 = _add_audio(clip, out, "mono") if clip.extra_audio else None
        packets: list[av.Packet] = []
        if vs is not None:
            vp, flash, last = _encode_video(clip, vs)
            packets += vp
        if a1 is not None:
            ap, click = _encode_audio(clip, a1, clip.layout, clip.click_sec, seed=1)
            a1.metadata["language"] = "eng"
            packets += ap
        if a2 is not None:
            ap, extra = _encode_audio(clip, a2, "mono", clip.click_sec + 0.5, seed=2)
            a2.metadata["language"] = "fra"
            packets += ap
        # Mux in time order so every container (TS, AVI) gets properly interleaved data.
        packets.sort(key=lambda p: float((p.dts if p.dts is not None else 0) * p.time_base))
        for packet in packets:
            out.mux(packet)
        if clip.chapters:
            tb = Fraction(1, 1000)
            half = int(clip.duration * 500)
            out.set_chapters(
                [
                    {"id": 1, "start": 0, "end": half, "time_base": tb, "metadata": {"title": "one"}},
                    {"id": 2, "start": half, "end": 2 * half, "time_base": tb, "metadata": {"title": "two"}},
                ]
            )
    return Truth(
        path=path,
        flash_sec=float(flash) if flash is not None else None,
        click_sec=float(click) if click is not None else None,
        extra_click_sec=float(extra) if extra is not None else None,
        video_end_sec=float(last) if last is not None else 0.0,
    )


@dataclass(frozen=True)
class Events:
    """Where the decoder under test puts the flash and the click."""

    flash_frame: int  # first 25 fps grid frame that is white
    click_sample: int  # loudest 16 kHz sample
    video_start_sec: float
    video_span: tuple[int, int]
    audio_span: tuple[int, int]

    @property
    def click_sec(self) -> float:
        return self.click_sample / 16000


def measure(path: Path, audio_stream: int | None = None) -> Events:
    """Decode the whole file with :class:`MediaReader` and find the flash and the click."""
    from sparsesync_cli.media.decode import MediaReader

    with MediaReader(path, audio_stream=audio_stream) as r:
        lo, hi = r.video_span
        brightness = r.read_frames(lo, hi - lo).mean(axis=(1, 2, 3))
        audio = r.read_audio(0, r.audio_span[1])
        return Events(
            flash_frame=lo + int(np.argmax(brightness > (BACKGROUND + FLASH_LEVEL) / 2)),
            click_sample=int(np.argmax(np.abs(audio))),
            video_start_sec=r.info.video.start_sec,
            video_span=r.video_span,
            audio_span=r.audio_span,
        )


_CACHE: dict[tuple[Path, Clip], Truth] = {}


def cached_clip(root: Path, clip: Clip) -> Truth:
    """``clip`` written once per test session under ``root`` (shared by every test module)."""
    key = (root, clip)
    if key not in _CACHE:
        _CACHE[key] = make_clip(clip, root / f"{clip.name}.{clip.container}")
    return _CACHE[key]


def make_still_tail(path: Path, hold_sec: float = 1.5) -> None:
    """4 s of dark 25 fps MJPEG whose last (bright) picture is then held for ``hold_sec``, plus
    6 s of silent 16 kHz PCM: a slideshow ending, the last picture lasting many grid frames."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("mjpeg", rate=25)
        video.width, video.height, video.pix_fmt = 160, 120, "yuvj420p"
        tb = Fraction(1, 600)
        video.time_base = video.codec_context.time_base = tb
        audio = out.add_stream("pcm_s16le", rate=16000, layout="mono")
        for i in range(100):
            frame = av.VideoFrame.from_ndarray(np.full((120, 160, 3), 200 if i == 99 else 40, np.uint8))
            frame.pts, frame.time_base = i * 24, tb
            for packet in video.encode(frame.reformat(format="yuvj420p")):
                if i == 99:
                    packet.duration = int(Fraction(hold_sec) / tb)
                out.mux(packet)
        out.mux(video.encode())
        silence = np.zeros((1, 16000 * 6), np.int16)
        for off in range(0, silence.shape[1], 1024):
            chunk = av.AudioFrame.from_ndarray(silence[:, off : off + 1024], format="s16", layout="mono")
            chunk.sample_rate, chunk.pts = 16000, off
            out.mux(audio.encode(chunk))
        out.mux(audio.encode())

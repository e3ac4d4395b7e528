"""Post-production masters with known audio, made with the bundled ffmpeg (for tests and bench/).

A master is what post-production hands around: ProRes 422 in MOV, DNxHD in MXF OP1a, XDCAM-style
MPEG-2 4:2:2 1080i50 in MXF, or H.264 in MOV; 23.976, 25, 29.97 drop-frame or 50i; 1 to 16 mono
24-bit PCM tracks at 48 kHz (or one stereo AAC track) and a timecode track.

Every audio channel carries its own deterministic signal (a sum of sines with seeded frequencies
and phases, so no two channels and no two shifts of one channel are alike sample for sample) that
can be evaluated at ANY time: :meth:`Master.reference` gives what a channel holds at given times
of the undrifted take, which is what a drift fix must restore. With ``audio_speed`` != 1 the audio
runs fast (``> 1``) or slow: the sample at file time t holds the reference at ``t * audio_speed``,
so the audio is ever earlier against the picture (drift > 0 s/min, avsync's sign).

Video is ffmpeg's ``testsrc2`` pattern (moving, so codecs see real pictures). DNxHD and MPEG-2
4:2:2 only exist at their broadcast sizes (1920x1080): keep those masters to a second or two.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..media.ffmpeg import find_ffmpeg

SAMPLE_RATE = 48000
FULL_SCALE_24 = 2**23  # 24-bit PCM full scale
SINES_PER_CHANNEL = 24
SIGNAL_PEAK = 0.5  # peak of a channel's signal, well clear of clipping (no codec saturates)
SINE_BAND_HZ = (150.0, 6000.0)  # inside any codec's passband, AAC included

# Frame rates: (frames per second, interlaced, drop-frame timecode)
RATES: dict[str, tuple[Fraction, bool, bool]] = {
    "23.976": (Fraction(24000, 1001), False, False),
    "24": (Fraction(24), False, False),
    "25": (Fraction(25), False, False),
    "29.97df": (Fraction(30000, 1001), False, True),
    "29.97": (Fraction(30000, 1001), False, False),
    "50i": (Fraction(25), True, False),  # 25 interlaced frames (50 fields) per second
}

# Kinds of master: (file extension, picture size or None for the spec's own size)
KINDS: dict[str, tuple[str, tuple[int, int] | None]] = {
    "prores_mov": (".mov", None),  # ProRes 422 (prores_ks profile 2), 4:2:2 10-bit
    "h264_mov": (".mov", None),  # H.264 High 4:2:0, GOP of 12 with B-frames
    "dnxhd_mxf": (".mxf", (1920, 1080)),  # DNxHD 1080 4:2:2 8-bit, MXF OP1a
    "xdcam_mxf": (".mxf", (1920, 1080)),  # MPEG-2 422P@HL 50 Mbit/s long GOP, MXF OP1a
}
# DNxHD's bitrates at 1080 (Mbit/s) per frame rate: the encoder accepts only these.
_DNXHD_MBPS = {Fraction(24000, 1001): 36, Fraction(24): 36, Fraction(25): 36, Fraction(30000, 1001): 45}


@dataclass(frozen=True)
class MasterSpec:
    """What to make. ``frames`` is the picture's length; the audio spans it exactly."""

    kind: str = "prores_mov"  # a key of KINDS
    rate: str = "25"  # a key of RATES
    frames: int = 50
    pcm_tracks: int = 2  # mono 24-bit 48 kHz PCM tracks (1-16); ignored with aac
    aac: bool = False  # one stereo AAC track (192 kbit/s) instead of PCM
    timecode: str | None = "01:00:00:00"  # start timecode; ';' before the frames for drop-frame
    audio_speed: float = 1.0  # > 1: the audio runs fast by this factor (e.g. 1.005: 0.3 s/min)
    size: tuple[int, int] = (320, 180)  # picture size where the codec allows any
    seed: int = 0  # changes every channel's signal

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown master kind {self.kind!r} (one of {', '.join(KINDS)})")
        if self.rate not in RATES:
            raise ValueError(f"unknown rate {self.rate!r} (one of {', '.join(RATES)})")
        if not self.aac and not 1 <= self.pcm_tracks <= 16:
            raise ValueError("pcm_tracks must be 1 to 16")
        if self.frames < 1:
            raise ValueError("frames must be >= 1")

    @property
    def fps(self) -> Fraction:
        return RATES[self.rate][0]

    @property
    def interlaced(self) -> bool:
        return RATES[self.rate][1]

    @property
    def drop_frame(self) -> bool:
        return RATES[self.rate][2]

    @property
    def extension(self) -> str:
        return KINDS[self.kind][0]

    @property
    def picture_size(self) -> tuple[int, int]:
        return KINDS[self.kind][1] or self.size

    @property
    def duration(self) -> Fraction:
        """The picture's length in seconds (exact)."""
        return self.frames / self.fps

    @property
    def audio_samples(self) -> int:
        """Samples per audio channel: the picture's length, rounded to a sample."""
        return round(self.duration * SAMPLE_RATE)

    @property
    def channels(self) -> int:
        """Audio channels in all: one per PCM track, or the AAC track's two."""
        return 2 if self.aac else self.pcm_tracks

    @property
    def start_timecode(self) -> str | None:
        """The timecode as written: drop-frame rates get ';' before the frame field."""
        if self.timecode is None:
            return None
        tc = self.timecode.replace(";", ":")
        return tc[:8] + ";" + tc[9:] if self.drop_frame else tc

    @property
    def name(self) -> str:
        audio = "aac2" if self.aac else f"{self.pcm_tracks}pcm"
        parts = [self.kind, self.rate.replace(".", ""), f"{self.frames}f", audio]
        if self.timecode is None:
            parts.append("notc")
        if self.audio_speed != 1.0:
            parts.append(f"speed{self.audio_speed:g}")
        if KINDS[self.kind][1] is None:
            parts.append(f"{self.size[0]}x{self.size[1]}")
        if self.seed:
            parts.append(f"seed{self.seed}")
        return "-".join(parts)


@dataclass(frozen=True)
class _Sines:
    freqs: np.ndarray
    phases: np.ndarray
    amps: np.ndarray


def _sines(seed: int, channel: int) -> _Sines:
    rng = np.random.default_rng([seed, channel, 0x5EED])
    lo, hi = SINE_BAND_HZ
    freqs = np.exp(rng.uniform(np.log(lo), np.log(hi), SINES_PER_CHANNEL))
    phases = rng.uniform(0.0, 2 * np.pi, SINES_PER_CHANNEL)
    amps = rng.uniform(0.5, 1.0, SINES_PER_CHANNEL)
    return _Sines(freqs, phases, amps * (SIGNAL_PEAK / amps.sum()))


def reference_signal(seed: int, channel: int, times: np.ndarray) -> np.ndarray:
    """Channel ``channel``'s undrifted signal at ``times`` (seconds), as floats in [-0.5, 0.5]."""
    s = _sines(seed, channel)
    t = np.asarray(times, dtype=np.float64)
    out = np.zeros(t.shape, dtype=np.float64)
    for f, p, a in zip(s.freqs, s.phases, s.amps, strict=True):
        out += a * np.sin(2 * np.pi * f * t + p)
    return out


@dataclass(frozen=True)
class Master:
    """A master on disk and what it holds."""

    path: Path
    spec: MasterSpec
    ffmpeg_args: tuple[str, ...] = field(repr=False, default=())

    @property
    def fps(self) -> Fraction:
        return self.spec.fps

    @property
    def frames(self) -> int:
        return self.spec.frames

    @property
    def duration(self) -> Fraction:
        return self.spec.duration

    @property
    def start_timecode(self) -> str | None:
        return self.spec.start_timecode

    def samples(self, channel: int) -> np.ndarray:
        """The 24-bit integers written for ``channel`` (PCM tracks hold exactly these)."""
        return _channel_pcm(self.spec, channel)

    def reference(self, channel: int, times: np.ndarray) -> np.ndarray:
        """What ``channel`` holds at file ``times`` when there is no drift (floats, full scale 1)."""
        return reference_signal(self.spec.seed, channel, times)


def _channel_pcm(spec: MasterSpec, channel: int) -> np.ndarray:
    t = np.arange(spec.audio_samples, dtype=np.float64) / SAMPLE_RATE * spec.audio_speed
    return np.round(reference_signal(spec.seed, channel, t) * FULL_SCALE_24).astype(np.int32)


def _s24le(samples: np.ndarray) -> bytes:
    """Interleaved int32 samples (24-bit range) as packed little-endian 24-bit PCM."""
    b = samples.astype("<i4").view(np.uint8).reshape(-1, 4)
    return b[:, :3].tobytes()


def _video_args(spec: MasterSpec) -> list[str]:
    fps = spec.fps
    kind = spec.kind
    if kind == "prores_mov":
        args = ["-c:v", "prores_ks", "-profile:v", "2", "-pix_fmt", "yuv422p10le", "-vendor", "apl0"]
    elif kind == "h264_mov":
        args = ["-c:v", "libx264", "-preset", "ultrafast", "-crf", "23", "-pix_fmt", "yuv420p"]
        args += ["-g", "12", "-bf", "2"]
    elif kind == "dnxhd_mxf":
        mbps = _DNXHD_MBPS.get(fps)
        if mbps is None:
            raise ValueError(f"DNxHD 1080 has no bitrate for {float(fps):.3f} fps")
        args = ["-c:v", "dnxhd", "-b:v", f"{mbps}M", "-pix_fmt", "yuv422p"]
    else:  # xdcam_mxf: XDCAM HD422, MPEG-2 4:2:2 profile at high level, 50 Mbit/s, long GOP
        args = ["-c:v", "mpeg2video", "-pix_fmt", "yuv422p", "-profile:v", "0", "-level:v", "2"]
        args += ["-b:v", "50M", "-minrate", "50M", "-maxrate", "50M", "-bufsize", "17825792"]
        args += ["-g", "12", "-bf", "2", "-dc", "10", "-intra_vlc", "1"]
    if spec.interlaced:
        # setfield marks the frames top field first; the encoders code them as two fields.
        args += ["-vf", "setfield=tff", "-flags", "+ildct+ilme", "-field_order", "tt"]
        if kind == "h264_mov":
            args += ["-x264opts", "tff=1"]
    return args


def _audio_args(spec: MasterSpec, first_input: int) -> tuple[list[str], list[str]]:
    """(-map arguments, codec arguments) for the audio inputs from ``first_input`` on."""
    if spec.aac:
        return ["-map", f"{first_input}:a"], ["-c:a", "aac", "-b:a", "192k"]
    maps: list[str] = []
    for i in range(spec.pcm_tracks):
        maps += ["-map", f"{first_input + i}:a"]
    return maps, ["-c:a", "pcm_s24le"]


def make_master(folder: str | os.PathLike, spec: MasterSpec, name: str | None = None) -> Master:
    """Write ``spec`` as ``folder/NAME.EXT`` (default name: ``spec.name``) and return it.

    Made with the bundled ffmpeg (:func:`sparsesync_cli.media.ffmpeg.find_ffmpeg`); the audio is
    fed as raw 24-bit PCM, so PCM tracks hold exactly :meth:`Master.samples`.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name or spec.name}{spec.extension}"
    w, h = spec.picture_size
    fps = spec.fps
    with tempfile.TemporaryDirectory(prefix="master-", dir=folder) as tmp:
        inputs = ["-f", "lavfi", "-i", f"testsrc2=size={w}x{h}:rate={fps.numerator}/{fps.denominator}"]
        if spec.aac:
            raw = Path(tmp) / "stereo.raw"
            both = np.stack([_channel_pcm(spec, 0), _channel_pcm(spec, 1)], axis=1).reshape(-1)
            raw.write_bytes(_s24le(both))
            inputs += ["-f", "s24le", "-ar", str(SAMPLE_RATE), "-ch_layout", "stereo", "-i", str(raw)]
        else:
            for ch in range(spec.pcm_tracks):
                raw = Path(tmp) / f"track{ch}.raw"
                raw.write_bytes(_s24le(_channel_pcm(spec, ch)))
                inputs += ["-f", "s24le", "-ar", str(SAMPLE_RATE), "-ch_layout", "mono", "-i", str(raw)]
        maps, acodec = _audio_args(spec, 1)
        args = ["-y", *inputs, "-map", "0:v", *maps, "-frames:v", str(spec.frames)]
        args += _video_args(spec) + acodec
        if spec.start_timecode:
            args += ["-timecode", spec.start_timecode]
        if spec.extension == ".mov":
            args += ["-movflags", "+write_colr"]
        args += ["-metadata", "title=avsync test master", str(path)]
        cmd = [find_ffmpeg(), "-hide_banner", "-nostdin", "-loglevel", "error", *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace", check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"ffmpeg could not make {path.name}: {proc.stderr.strip()[-2000:]}")
    return Master(path=path, spec=spec, ffmpeg_args=tuple(cmd))


def concat_copies(src: str | os.PathLike, dst: str | os.PathLike, copies: int) -> Path:
    """``dst``: ``src`` played ``copies`` times in a row, by stream copy (for large bench masters)."""
    src, dst = Path(src).resolve(), Path(dst)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", dir=dst.parent, delete=False) as f:
        f.write("".join(f"file '{src}'\n" for _ in range(copies)))
        listing = f.name
    try:
        args = ["-y", "-f", "concat", "-safe", "0", "-i", listing, "-map", "0", "-c", "copy"]
        if dst.suffix.lower() == ".mov":
            args += ["-movflags", "+write_colr"]
        cmd = [find_ffmpeg(), "-hide_banner", "-nostdin", "-loglevel", "error", *args, str(dst)]
        proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace", check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"ffmpeg could not concatenate {src.name}: {proc.stderr.strip()[-2000:]}")
    finally:
        os.unlink(listing)
    return dst


# The done-when masters of issue 21 (short; the sweep in tests/test_masters.py adds the rest).
def done_when_specs() -> dict[str, MasterSpec]:
    """The three masters issue 21's "done when" names, small and short."""
    return {
        "prores_mov": MasterSpec("prores_mov", "23.976", frames=72, pcm_tracks=4),
        "dnxhd_mxf": MasterSpec("dnxhd_mxf", "29.97df", frames=60, pcm_tracks=2, timecode="01:00:00;00"),
        "xdcam_mxf": MasterSpec("xdcam_mxf", "50i", frames=50, pcm_tracks=8, timecode="10:00:00:00"),
    }


def drift_take_spec(speed: float = 1.005, seconds: int = 60) -> MasterSpec:
    """A long take whose PCM audio runs fast by ``speed`` (1.005: 0.3 s/min), small picture."""
    return MasterSpec("prores_mov", "25", frames=25 * seconds, pcm_tracks=2, audio_speed=speed, size=(64, 36))


__all__ = [
    "KINDS",
    "RATES",
    "SAMPLE_RATE",
    "Master",
    "MasterSpec",
    "concat_copies",
    "done_when_specs",
    "drift_take_spec",
    "make_master",
    "reference_signal",
]

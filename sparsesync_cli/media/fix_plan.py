"""What a fix does to each stream: copy it, move it by its timestamps, or rewrite its samples.

The rules (the post-production guide explains them to users):

- A stream the fix does not move (video, timecode and other data, subtitles, audio not chosen by
  ``--audio-stream``) is packet-copied.
- Moved PCM audio is always rewritten (:mod:`.pcm_shift`): silence in front or samples dropped,
  sample-exact and lossless, so it starts with the picture in every container, with no edit
  list a player might ignore.
- Moved compressed audio is stream-copied with new timestamps where the container can start a
  track later and cut it (MP4/MOV edit lists, Matroska, MPEG-TS, ...). Where it cannot (MXF,
  AVI), or where the track must be padded, trimmed (``--conform``) or retimed (drift), it needs
  a re-encode, which happens only with ``reencode_audio`` (same codec, bitrate at least the
  source's); otherwise the fix is refused with one line.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Any

from ..errors import UsageError
from .pcm_shift import LOSSLESS, AudioPlan, encoder_for

# Containers that play every track from the start of the file: no track can start later than
# another nor be cut inside a packet by a stream copy.
REWRITE_ONLY_EXTENSIONS = {".mxf", ".avi"}
# Containers whose edit lists trim a stream sample-exactly (so audio moved before zero is cut
# exactly there); elsewhere whole audio packets before zero are dropped.
EDIT_LIST_EXTENSIONS = {".mp4", ".m4v", ".m4a", ".mov", ".3gp", ".3g2"}
# Containers without a fixed time origin: their timestamps are copied as they are.
NO_ORIGIN_EXTENSIONS = {".ts", ".m2ts", ".mts", ".mpg", ".mpeg", ".vob"}
PCM_ONLY_EXTENSIONS = {".mxf"}  # FFmpeg's MXF muxer writes no compressed audio


@dataclass(frozen=True)
class StreamFix:
    """What the fix did to one stream of the input (for ``fix --json`` and logs)."""

    stream: int  # index in the input
    output_stream: int  # index in the output
    kind: str  # video, audio, data, subtitle, attachment
    codec: str
    action: str  # kept (packet copy), moved (copy, new timestamps), rewritten (PCM), re-encoded
    moved_sec: float  # how far it moved: > 0 later (delayed), < 0 earlier (advanced)
    moved_samples: int | None  # for rewritten audio: silence in front (> 0) or dropped (< 0)
    padded_samples: int  # silence added at the end (--conform)
    trimmed_samples: int  # samples cut at the end (--conform)
    retime_factor: float | None  # drift: the track now lasts this many times as long

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def words(self) -> str:
        """One short phrase: "audio 1 (pcm_s24le): rewritten, delayed 19200 samples"."""
        what = f"{self.kind} {self.stream} ({self.codec}): {self.action}"
        if self.moved_samples:
            way = "delayed" if self.moved_samples > 0 else "advanced"
            what += f", {way} {abs(self.moved_samples)} samples"
        elif self.moved_sec:
            what += f", {'delayed' if self.moved_sec > 0 else 'advanced'} {abs(self.moved_sec):.3f} s"
        if self.padded_samples:
            what += f", {self.padded_samples} samples of silence at the end"
        if self.trimmed_samples:
            what += f", {self.trimmed_samples} samples cut at the end"
        if self.retime_factor is not None:
            what += f", retimed x{self.retime_factor:.6f}"
        return what


def retime_factor(drift_sec_per_min: float) -> Fraction | None:
    """How many times longer a track with this drift must last (None: no drift).

    Drift D (> 0: the audio gets earlier along the file): the sound heard at input time s is
    early by OFFSET + D*s/60, so it belongs at s + OFFSET + D*s/60 = OFFSET + s*(1 + D/60).
    """
    if not drift_sec_per_min:
        return None
    d = Fraction(drift_sec_per_min).limit_denominator(10**6)
    if not -30 < d < 30:
        raise UsageError(f"a drift of {float(d):+g} s per minute is not a clock error; check --drift")
    return 1 + d / 60


def _pcm_bytes(codec: str) -> int:
    m = re.match(r"pcm_[a-z]*?(\d+)", codec)
    return int(m.group(1)) // 8 if m else 0


def plan_audio(
    stream: Any,
    *,
    start_sec: float,
    shift: float,
    factor: Fraction | None,
    video_start: float,
    video_end: float,
    raw_start: float,
    conform: bool,
    reencode: bool,
    suffix: str,
    src: str,
) -> AudioPlan | None:
    """How to write moved audio ``stream`` (None: a stream copy with new timestamps will do).

    ``start_sec`` is where the stream's first sample plays (file time); ``raw_start`` the
    picture's start on the container's raw clock (where the rewritten track will start).
    Raises UsageError when compressed audio would need a re-encode the user did not allow.
    """
    cc = stream.codec_context
    codec = cc.name
    pcm = codec.startswith("pcm_")
    needs_rewrite = pcm or conform or factor is not None or (shift and suffix in REWRITE_ONLY_EXTENSIONS)
    if not needs_rewrite or (pcm and not shift and not conform and factor is None):
        return None
    encoder = encoder_for(codec)
    if not pcm and suffix in PCM_ONLY_EXTENSIONS:
        raise UsageError(
            f"audio stream {stream.index} is compressed ({codec}) and {suffix} holds PCM audio only "
            "(FFmpeg's muxer); write the fix to .mov or .mkv",
            src,
        )
    if not pcm:
        why = (
            "retiming it for drift"
            if factor is not None
            else f"shifting it in {suffix} (the container cannot start a track later or cut it)"
            if shift and suffix in REWRITE_ONLY_EXTENSIONS
            else "padding and trimming it to the picture (--conform)"
        )
        if not reencode:
            raise UsageError(
                f"audio stream {stream.index} is compressed ({codec}): {why} needs a re-encode; "
                "add --reencode-audio (same codec, bitrate at least the source's)",
                src,
            )
        if encoder is None:
            raise UsageError(
                f"audio stream {stream.index} ({codec}) has no encoder to re-encode it with", src
            )
    rate = int(cc.sample_rate)
    r = factor if factor is not None else Fraction(1)
    delay = round((Fraction(shift) + r * Fraction(start_sec) - Fraction(video_start)) * rate)
    length = round((video_end - video_start) * rate) if conform else None
    bitrate = None
    if not pcm and codec not in LOSSLESS:  # the header's; raised to the measured one once read
        bitrate = int(stream.bit_rate or 0)
    return AudioPlan(
        index=stream.index,
        codec=codec,
        encoder=encoder or codec,
        sample_rate=rate,
        sample_fmt=cc.format.name,
        layout=cc.layout.name if cc.layout is not None and cc.layout.name else None,
        channels=int(cc.channels),
        start_sec=raw_start,
        delay_samples=delay,
        length_samples=length,
        factor=factor,
        bitrate=bitrate,
    )


def stream_fix(
    stream: tuple[int, str, str], out_index: int, plan: AudioPlan | None, moved_sec: float, size_bytes: int
) -> StreamFix:
    """The record of what happened to ``stream`` ((index, kind, codec); ``moved_sec`` 0: kept)."""
    index, kind, codec = stream
    if plan is None:
        return StreamFix(
            index, out_index, kind, codec, "moved" if moved_sec else "kept", moved_sec, None, 0, 0, None,
        )  # fmt: skip
    padded = trimmed = 0
    if plan.length_samples is not None:
        per = _pcm_bytes(plan.codec) * plan.channels
        if per:
            n_in = size_bytes // per
            r = plan.factor if plan.factor is not None else Fraction(1)
            natural = round(n_in * r) + plan.delay_samples
            padded, trimmed = max(0, plan.length_samples - natural), max(0, natural - plan.length_samples)
    return StreamFix(
        stream=index,
        output_stream=out_index,
        kind="audio",
        codec=plan.codec,
        action="rewritten" if plan.pcm else "re-encoded",
        moved_sec=plan.delay_samples / plan.sample_rate,
        moved_samples=plan.delay_samples,
        padded_samples=padded,
        trimmed_samples=trimmed,
        retime_factor=float(plan.factor) if plan.factor is not None else None,
    )

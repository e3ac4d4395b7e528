"""Streaming, timestamp-exact decoding of a file into the models' inputs.

:class:`MediaReader` gives 25 fps RGB frames (shorter side 256) and 16 kHz mono float32 audio on
THE clock of :mod:`sparsesync_cli.clock`: frame ``k`` is the picture shown at file time
``k / 25``, sample ``n`` plays at ``n / 16000``; file time 0 is the container's zero, not a
stream's first packet. Windows are decoded when asked for: reads that move forward continue the
decode where the previous one stopped, a backward or far jump seeks, and memory stays bounded by a
few windows whatever the file's duration.

The pipeline is the paper's (``scripts/example.py`` re-encode + ``torchvision.io.read_video``):
``fps=25`` by timestamps, ``scale=iw*256/min(iw,ih):ih*256/min(iw,ih)`` with ffmpeg's default
bicubic, ``crop=trunc(iw/2)*2:trunc(ih/2)*2``, rgb24; audio resampled to 16 kHz float by swr and
averaged over channels. On top of it, as a player shows the file: display rotation is applied and
non-square pixels are stretched to their display aspect (the paper's command did neither).
"""

from __future__ import annotations

import os
from types import TracebackType

import numpy as np

from ..clock import SHORT_SIDE
from .audio import AudioDecoder
from .probe import MediaInfo, probe
from .video import VideoDecoder


class MediaReader:
    """Decode windows of one file as they are needed. Use as a context manager.

    ``audio_stream`` picks the N-th audio stream (0-based; default the first).
    ``torchvision_compat`` (default on) starts the audio of a file in the authors' format (AAC at
    16 kHz in MP4/MOV, what the paper's pipeline re-encodes every clip to) as the paper's reader
    does: ``torchvision.io.read_video`` seeks to 0 first, which in an MP4 skips the AAC priming
    packet, so the first ~36 ms of audio decode without their overlap (zeros and a ramp). The
    models' reference outputs were made, and the models trained, on audio decoded that way, and
    the spectrogram is standardised over the window, so these 36 ms move a window's logits by
    O(1) in the conformance fixtures. Placement is unchanged (still by timestamp); only the
    values of the first codec frame differ. Every other file (another codec, rate or container:
    the authors would have re-encoded it first) decodes as a player does, as does every file
    with False.
    ``short_side``: frames are scaled so their shorter side has this many pixels (the papers'
    256; av-benchmark's DeSync protocol uses 224).

    ``video_span = (first, end)``: the 25 fps grid indices that have a picture. ``first`` is the
    first picture's file time times 25 rounded to nearest, halves away from zero, as ffmpeg's
    ``fps`` filter rounds (a video starting at 1.5 s starts at frame 38, at 1.52 s at 38 too);
    ``end`` is the end of the last picture (its time plus its duration) rounded the same way.
    ``audio_span = (first, end)``: the 16 kHz sample indices covered by real audio.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        audio_stream: int | None = None,
        torchvision_compat: bool = True,
        short_side: int = SHORT_SIDE,
    ) -> None:
        self.path = os.fspath(path)
        self.info: MediaInfo = probe(self.path, audio_stream=audio_stream)
        self.video_span: tuple[int, int] = self.info.video_span
        self.audio_span: tuple[int, int] = self.info.audio_span
        self._video = VideoDecoder(self.path, self.info, short_side)
        self._audio = AudioDecoder(self.path, self.info, torchvision_compat=torchvision_compat)

    def read_frames(self, first: int, count: int) -> np.ndarray:
        """Frames ``[first, first + count)`` of the 25 fps grid: ``(count, H, W, 3)`` uint8 RGB.

        Frame ``k`` is the picture a player shows at file time ``k / 25`` (ffmpeg ``fps=25``
        rounding), rotated as displayed, scaled so the shorter side is 256 (bicubic), even-cropped.
        The range must lie inside :attr:`video_span` (ValueError otherwise). Raises MediaError
        when these frames cannot be decoded (corrupt or truncated data); other windows still can.
        """
        lo, hi = self.video_span
        if count < 0 or first < lo or first + count > hi:
            raise ValueError(f"frames [{first}, {first + count}) are outside the video's frames [{lo}, {hi})")
        w, h = self._video.size
        if count == 0:
            return np.empty((0, h, w, 3), np.uint8)
        return self._video.read(first, count)

    def read_audio(self, first: int, count: int) -> np.ndarray:
        """Samples ``[first, first + count)`` of the 16 kHz mono signal: ``(count,)`` float32.

        Sample ``n`` plays at file time ``n / 16000``; outside :attr:`audio_span` is silence (any
        ``first``, even negative, is allowed). Raises MediaError when audio that the file says
        exists cannot be decoded.
        """
        if count < 0:
            raise ValueError(f"negative sample count {count}")
        return self._audio.read(first, count)

    def close(self) -> None:
        """Release the decoders (the reader cannot be used afterwards)."""
        self._video.close()
        self._audio.close()

    def __enter__(self) -> MediaReader:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

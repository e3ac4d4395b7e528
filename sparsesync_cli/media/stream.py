"""What the audio and the video decoder share: one stream of a file on its own demuxer."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from . import timing
from .probe import MediaInfo, av_cause, demux, open_input


class StreamDecoder:
    """Opens, closes and decodes one stream; a damaged packet is skipped, as ffmpeg does.

    Each decoder has its own demuxer so audio and video can be read (and seek) independently.
    Subclasses keep their position state; ``_broken`` says why decoding stopped early, if it did.
    """

    def __init__(self, path: str, info: MediaInfo, stream_index: int) -> None:
        self._path, self._info, self._index = path, info, stream_index
        self._container: Any = None
        self._stream: Any = None
        self._tb = Fraction(1)
        self._origin = 0  # file time 0 in the stream's time base
        self._frames: Any = None
        self._broken: str | None = None

    def _open(self) -> None:
        import av

        self.close()
        self._container = open_input(self._path)
        self._stream = self._container.streams[self._index]
        self._tb = Fraction(self._stream.time_base)
        self._origin = timing.origin_in(self._tb, self._info.time_origin_us)
        self._av_error = av.FFmpegError

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None
        self._frames = None

    def _decoded(self) -> Any:
        """Decoded frames in presentation order, then the decoder's flush at the end or on damage."""
        try:
            for packet in demux(self._container, self._stream):
                try:
                    yield from packet.decode()
                except self._av_error:
                    continue
        except (self._av_error, OSError) as exc:
            self._broken = av_cause(exc)
            try:
                yield from self._stream.codec_context.decode(None)
            except self._av_error:
                return

"""The media layer: probe files, decode them on the file-time clock, remux them losslessly.

``probe(path)`` describes a file; ``MediaReader(path)`` decodes 25 fps RGB frames and 16 kHz
mono audio window by window; ``fix_offset(src, dst, offset_sec)`` writes a copy with the audio
moved (stream copy). Names are imported lazily so that importing the package stays instant.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "AudioStreamInfo": "probe",
    "MediaInfo": "probe",
    "VideoStreamInfo": "probe",
    "probe": "probe",
    "MediaReader": "decode",
    "FixResult": "remux",
    "fix_offset": "remux",
    "find_ffmpeg": "ffmpeg",
    "run_ffmpeg": "ffmpeg",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

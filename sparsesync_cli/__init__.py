"""avsync: measure and fix the audio-visual offset of video files.

Library first: everything the ``avsync`` command does is callable from here. Heavy modules
(torch, PyAV) load lazily, on first use of the names below.
"""

from __future__ import annotations

__version__ = "0.1.0"

"""The errors avsync raises on purpose.

Every error a user can cause (a bad file, a missing checkpoint, no network) is an
:class:`AvsyncError`. Its message is one line that names the file and the cause; the CLI
prints exactly that line and exits 1, and shows a traceback only with ``--debug``.
Anything else escaping the library is a bug.
"""

from __future__ import annotations

import os


def first_line(e: BaseException, default: str | None = None) -> str:
    """The first line of an exception's message, for one-line errors that wrap it.

    An empty message gives ``default``, or the exception's type name.
    """
    text = str(e).strip()
    return text.splitlines()[0] if text else (default or type(e).__name__)


class AvsyncError(Exception):
    """Base class: a problem with the user's input or environment, explained in one line."""

    def __init__(self, message: str, path: str | os.PathLike | None = None) -> None:
        self.path = os.fspath(path) if path is not None else None
        self.cause = message
        super().__init__(f"{self.path}: {message}" if self.path else message)


class MediaError(AvsyncError):
    """A media file cannot be read (missing, corrupt, no audio or video stream, too short)."""


class CheckpointError(AvsyncError):
    """A checkpoint cannot be loaded safely, or its weights do not match its config."""


class ConfigError(AvsyncError):
    """A model config file is malformed or describes an architecture we do not know."""


class DownloadError(AvsyncError):
    """A checkpoint could not be downloaded, verified or found in the cache."""


class UsageError(AvsyncError):
    """Arguments that cannot work together (the CLI exits 2 for these)."""

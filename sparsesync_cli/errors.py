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


class NoNetworkError(DownloadError):
    """A file is not cached and cannot be fetched: offline by choice, or no network."""


class UsageError(AvsyncError):
    """Arguments that cannot work together (the CLI exits 2 for these)."""


class UnexpectedError(AvsyncError):
    """An exception that is not an AvsyncError (a bug, or damage nobody foresaw), in one line.

    The batch boundaries wrap such an exception in this class so that one file's surprise
    becomes that file's failed result; ``original`` keeps it (and its traceback) for --debug.
    """

    def __init__(self, original: BaseException, path: str | os.PathLike | None = None) -> None:
        self.original = original
        what = f"{type(original).__name__}: {original}" if str(original) else type(original).__name__
        super().__init__(
            f"unexpected error while {_stage(original)}: {' '.join(what.split())} ({_where(original)}); "
            "--debug shows the traceback",
            path,
        )


def unexpected(exc: BaseException, path: str | os.PathLike | None = None) -> AvsyncError:
    """``exc`` itself when it is an AvsyncError, else the one-line :class:`UnexpectedError` for it."""
    return exc if isinstance(exc, AvsyncError) else UnexpectedError(exc, path)


def _package_frames(exc: BaseException) -> list[str]:
    """Innermost-last ``module/file.py:function`` of the frames inside this package."""
    import traceback

    here = os.path.dirname(os.path.abspath(__file__))
    frames = []
    for fs in traceback.extract_tb(exc.__traceback__):
        full = os.path.abspath(fs.filename)
        if full.startswith(here + os.sep):
            frames.append(f"{os.path.relpath(full, here)}:{fs.name}")
    return frames


def _where(exc: BaseException) -> str:
    import traceback

    frames = _package_frames(exc)
    if frames:
        return "in " + frames[-1]
    tb = traceback.extract_tb(exc.__traceback__)
    return f"in {os.path.basename(tb[-1].filename)}:{tb[-1].name}" if tb else "at an unknown place"


def _stage(exc: BaseException) -> str:
    frames = _package_frames(exc)
    inner = frames[-1] if frames else ""
    if inner.startswith(("media" + os.sep, "features" + os.sep)):
        return "reading the media"
    if inner.startswith(("models" + os.sep, "sync_model")):
        return "running the model"
    return "checking the file"

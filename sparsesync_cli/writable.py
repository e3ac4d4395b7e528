"""Checks made before any work: can an output be written where the user asked for it?

A batch of hours must not end in "permission denied" for its report, so every output path is
tried up front, the way it will be written: a temporary file is created (and removed) in the
output's folder, which also catches read-only file systems and ACLs that ``os.access`` misses.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from .errors import UsageError


def check_writable(path: str | os.PathLike, what: str = "output") -> None:
    """Raise :class:`UsageError` (one line naming ``path``) unless ``path`` can be written.

    ``what`` names the output in the message ("the CSV report"). An existing file must be
    writable too (a JSONL report is appended to). Nothing is left behind.
    """
    p = Path(path)
    folder = p.parent
    if p.is_dir():
        raise UsageError(f"cannot write {what}: it is a folder", p)
    if not folder.exists():
        raise UsageError(f"cannot write {what}: the folder {folder} does not exist", p)
    if not folder.is_dir():
        raise UsageError(f"cannot write {what}: {folder} is not a folder", p)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name[:100]}.", suffix=".avsync-check", dir=folder)
    except OSError as e:
        raise UsageError(f"cannot write {what} into {folder}: {e.strerror or e}", p) from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(tmp)
    if p.exists() and not os.access(p, os.W_OK):
        raise UsageError(f"cannot write {what}: the file is read-only", p)

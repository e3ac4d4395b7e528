"""The one way avsync writes an output file: complete, durable, with an ordinary mode, or not at all.

Every output (reports, sync maps, the safetensors cache, checksum records, ``avsync fix``) goes
through :func:`atomic_path`: the content is written to a temporary file in the destination's own
folder (so the final ``os.replace`` is atomic on every filesystem), flushed and fsynced, given the
mode a file the user creates gets (``0o666`` less the umask, not ``mkstemp``'s private 0600: a
corrected file must stay readable for the rest of a pipeline), and only then moved over the
destination. On any error the temporary file is removed and the destination is untouched.

Appending logs (the JSONL report) and resumable downloads (``*.incomplete`` parts) are not
replaced wholesale and keep their own writers.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

TEMP_SUFFIX = ".incomplete"


def user_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux: /proc)."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    # Elsewhere the only way is to set it and set it back (briefly visible to other threads).
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def ordinary_mode() -> int:
    """The permission bits a file the user creates gets: ``0o666`` less the umask."""
    return 0o666 & ~user_umask()


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike, *, keep_extension: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; on a clean exit it becomes ``dest``.

    The caller writes the temporary file by any means (Python, ``safetensors.save_file``, an
    ffmpeg subprocess). ``keep_extension``: end the temporary name with ``dest``'s extension
    (tools that pick a format from it need that). Raises ``OSError`` when the folder cannot be
    written; callers turn that into their own one-line error.
    """
    dest = Path(dest)
    suffix = TEMP_SUFFIX + (dest.suffix if keep_extension else "")
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=suffix, dir=dest.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.fchmod(fd, ordinary_mode())
        finally:
            os.close(fd)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(dest.parent)


def write_bytes(dest: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``dest`` atomically (see :func:`atomic_path`); returns ``dest``."""
    with atomic_path(dest) as tmp, open(tmp, "wb") as f:
        f.write(data)
    return Path(dest)


def write_text(dest: str | os.PathLike, text: str, *, newline: str | None = "\n") -> Path:
    """Write ``text`` as UTF-8 to ``dest`` atomically (see :func:`atomic_path`); returns ``dest``."""
    with atomic_path(dest) as tmp, open(tmp, "w", encoding="utf-8", newline=newline) as f:
        f.write(text)
    return Path(dest)


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; not every platform or filesystem allows it, and the file
    # is already complete either way.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

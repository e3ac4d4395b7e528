"""One file from a URL, downloaded once, verified, cached: the one download path of avsync.

Checkpoints and configs (:mod:`sparsesync_cli.checkpoints.download`) and the evaluation
protocols' files (:mod:`sparsesync_cli.evaluation.named`) all come through
:func:`ensure_verified_file`, so they share one behaviour:

- A cached file whose checksum record still matches needs no network and no hashing.
- A download goes to ``<file>.incomplete`` (resumed after an interruption), is checked against
  every checksum known, and only then renamed into place; a mismatch deletes it.
- Without a published sha256, the sha256 recorded at the first verified download is what the
  file must be from then on (trust on first use): a later copy that differs is refused, also
  after the cached file was deleted, until the record is deleted.
- Concurrent calls (threads or processes) download a file once; no ``.lock`` file stays behind.
- ``AVSYNC_OFFLINE=1`` never touches the network: a missing file is a :class:`NoNetworkError`;
  a cache that cannot be written is one line saying so (``storage_error``).
- ``AVSYNC_MIRROR=URL`` fetches from ``URL`` + the path after ``.../sync/`` (or the whole path).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import DownloadError, NoNetworkError
from .checksum import (
    Digests,
    forget,
    hash_file,
    mismatch,
    read_record,
    record_path,
    verify_file,
    write_record,
)
from .fetch import DownloadOptions, fetch_to_partial, storage_error
from .registry import Source

CACHE_ENV = "AVSYNC_CACHE_DIR"
OFFLINE_ENV = "AVSYNC_OFFLINE"
MIRROR_ENV = "AVSYNC_MIRROR"
PARTIAL_SUFFIX = ".incomplete"
LOCK_SUFFIX = ".lock"

ProgressCallback = Callable[[str, int, "int | None"], None]

__all__ = ["ProgressCallback", "cache_dir", "ensure_verified_file", "mirrored_url", "offline_reason"]


def cache_dir() -> Path:
    """``AVSYNC_CACHE_DIR``, else ``$XDG_CACHE_HOME/avsync``, else ``~/.cache/avsync``."""
    if env := os.environ.get(CACHE_ENV, "").strip():
        return Path(env).expanduser()
    if xdg := os.environ.get("XDG_CACHE_HOME", "").strip():
        return Path(xdg).expanduser() / "avsync"
    return Path.home() / ".cache" / "avsync"


def mirrored_url(url: str) -> str:
    """``url`` as fetched: from ``AVSYNC_MIRROR`` when set, keeping the path after ``/sync/``."""
    mirror = os.environ.get(MIRROR_ENV, "").strip()
    if not mirror:
        return url
    parts = urlsplit(mirror)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise DownloadError(f"{MIRROR_ENV} must be an http(s) URL, not {mirror!r}")
    path = urlsplit(url).path
    key = path.split("/sync/", 1)[1] if "/sync/" in path else path.lstrip("/")
    return f"{mirror.rstrip('/')}/{key}"


def offline_reason(*names: str) -> str | None:
    """The first of the environment variables ``names`` (default ``AVSYNC_OFFLINE``) set to a true value."""
    for name in names or (OFFLINE_ENV,):
        if os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on"):
            return name
    return None


def not_cached_error(
    owner: str, filename: str, where: str, fetch_command: str, reason: str
) -> NoNetworkError:
    """The one offline error of every download: ``filename`` of ``owner`` is not cached."""
    return NoNetworkError(
        f"{owner}: {filename} is not in the cache {where}; run `{fetch_command}`"
        f" on a machine with internet, or unset {reason}"
    )


def ensure_verified_file(
    source: Source,
    folder: Path,
    *,
    owner: str,
    fetch_command: str,
    progress: ProgressCallback | None = None,
    options: DownloadOptions | None = None,
    verify: bool = False,
) -> Path:
    """The verified local copy of the URL ``source`` in ``folder``, downloading it when needed.

    ``source`` names the URL and the checksums the file must match (``sha256``, ``md5`` or its
    prefix, ``size``); with no ``sha256`` the one recorded at the first download is enforced.
    ``owner`` (a model or protocol name) and ``fetch_command`` (the avsync command that fetches
    it) make the messages. ``verify=True`` re-hashes a cached file even when its record vouches
    for it. Raises :class:`NoNetworkError` when offline and not cached, and
    :class:`DownloadError` (one line) for anything else that fails.
    """
    if source.kind != "url":
        raise ValueError(f"ensure_verified_file needs a URL source, not {source.location}")
    options = options or DownloadOptions()
    dest = folder / source.filename
    record = record_path(folder, source.filename)
    # Fast path, without a lock: a read-only shared cache must work offline.
    problem = check_cached(dest, source, record, verify) if dest.is_file() else None
    if dest.is_file() and problem is None:
        return dest
    offline = offline_reason()
    if offline:
        if problem is None:
            raise not_cached_error(owner, source.filename, str(cache_dir()), fetch_command, offline)
        deleted = "deleted it" if _delete_cached(dest, source, record) else "could not delete it"
        raise DownloadError(
            f"the cached file does not match ({problem}); {deleted}; run `{fetch_command}`"
            f" on a machine with internet, or unset {offline}",
            dest,
        )
    from filelock import FileLock

    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(dest) + LOCK_SUFFIX)
        lock.acquire()
    except OSError as e:
        raise storage_error(e, folder) from None
    try:
        # Another process may have finished (or repaired) the file while we waited for the lock.
        if dest.is_file():
            if check_cached(dest, source, record, verify) is None:
                return dest
            if not _delete_cached(dest, source, record):
                raise DownloadError("the cached file does not match and cannot be deleted", dest)
        rec = read_record(record) if source.sha256 is None else None
        try:
            digests = _download_verified(
                source, dest, record, rec["sha256"] if rec else None, progress, options
            )
        except OSError as e:  # reading back the download for its checksum
            raise storage_error(e, dest) from None
        write_record(record, dest, digests)
        return dest
    finally:
        # No .lock file stays in the cache, after a success or a failure. It is removed while
        # still held: a peer waiting on the old file notices it was unlinked and takes a new one
        # (filelock >= 4.3 checks the inode after locking).
        with contextlib.suppress(OSError):
            os.unlink(str(dest) + LOCK_SUFFIX)
        lock.release()


def check_cached(dest: Path, source: Source, record: Path, full: bool) -> str | None:
    """What is wrong with the cached ``dest`` (None: it matches ``source`` and its record)."""
    try:
        return verify_file(dest, source, record, full=full)
    except OSError as e:
        return f"cannot read it ({e.strerror or e})"


def delete_file(path: Path, record: Path | None) -> bool:
    """Delete a file that failed its check, and its record (unless None); False if refused."""
    try:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        if record is not None:
            forget(record)
    except OSError:
        return False
    return True


def _delete_cached(dest: Path, source: Source, record: Path) -> bool:
    # Without a published sha256 the record is the pin of the first download: it outlives the file.
    return delete_file(dest, record if source.sha256 is not None else None)


def _download_verified(
    source: Source,
    dest: Path,
    record: Path,
    pinned_sha256: str | None,
    progress: ProgressCallback | None,
    options: DownloadOptions,
) -> Digests:
    """Download into ``<dest>.incomplete``, check every checksum, then rename into place."""
    url = mirrored_url(source.url or "")
    part = dest.with_name(dest.name + PARTIAL_SUFFIX)

    def report(done: int, total: int | None) -> None:
        if progress:
            progress(source.filename, done, total)

    resumed = part.is_file() and part.stat().st_size > 0
    for attempt in (1, 2):
        fetch_to_partial(url, part, expected_size=source.size, progress=report, options=options)
        digests = hash_file(part)
        problem = mismatch(source, digests, recorded_sha256=pinned_sha256)
        if problem is None:
            try:
                os.replace(part, dest)
            except OSError as e:
                raise storage_error(e, dest) from None
            return digests
        with contextlib.suppress(FileNotFoundError):
            part.unlink()
        # A resumed download may have joined two versions of the file: fetch it whole once more.
        if not (resumed and attempt == 1):
            break
    pin = (
        f" (delete {record} to accept the new file)"
        if pinned_sha256 is not None and digests.sha256 != pinned_sha256
        else ""
    )
    raise DownloadError(f"checksum mismatch ({problem}); deleted the download, nothing was cached{pin}", url)

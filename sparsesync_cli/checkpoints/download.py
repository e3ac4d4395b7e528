"""Get a registry entry's files once, verify them, cache them; afterwards no network is needed.

Cache: ``AVSYNC_CACHE_DIR``, else ``$XDG_CACHE_HOME/avsync``, else ``~/.cache/avsync``; each
model has its own folder (``model_cache_dir``), holding its checkpoint, its config, their
``*.verified.json`` records (see :mod:`sparsesync_cli.checkpoints.checksum`) and, later, derived caches.
Hub entries live in the Hugging Face cache (``HF_HUB_CACHE`` / ``HF_HOME``); only their records
are kept here.

Environment:

- ``AVSYNC_OFFLINE=1`` never touches the network (``HF_HUB_OFFLINE=1`` too, for Hub entries);
  a missing file is then a clear error.
- ``AVSYNC_MIRROR=URL`` fetches every URL source from ``URL`` + the path after ``.../sync/``
  (``$AVSYNC_MIRROR/sync_models/<id>/<id>.pt``), for sites without internet. Hub sources use
  the Hub's own ``HF_ENDPOINT`` instead.

The library never prints: pass ``progress(name, done_bytes, total_bytes_or_None)`` to show one.
"""

from __future__ import annotations

import contextlib
import inspect
import os
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

from ..errors import DownloadError, NoNetworkError, first_line
from .checksum import record_path
from .fetch import DownloadOptions, storage_error
from .registry import ModelEntry, Source
from .verified import (
    OFFLINE_ENV,
    ProgressCallback,
    cache_dir,
    check_cached,
    delete_file,
    ensure_verified_file,
    mirrored_url,
    not_cached_error,
    offline_reason,
)

HF_OFFLINE_ENV = "HF_HUB_OFFLINE"

__all__ = [
    "DownloadOptions",
    "ModelFiles",
    "ModelStatus",
    "cache_dir",  # defined in .verified, kept importable from here
    "ensure_files",
    "ensure_verified_file",
    "hf_cache_dir",
    "mirrored_url",
    "model_cache_dir",
    "model_status",
]


@dataclass(frozen=True)
class ModelFiles:
    """The local, verified files of a model. ``config`` is None for bare state dicts."""

    checkpoint: Path
    config: Path | None


class ModelStatus(NamedTuple):
    """For ``avsync models``: are all files cached, and their size (or the expected size)."""

    cached: bool
    size_bytes: int | None


def model_cache_dir(entry: ModelEntry) -> Path:
    """This model's folder in the cache: its downloads, records, and caches derived from them."""
    return cache_dir() / entry.name


def hf_cache_dir() -> Path:
    """The Hugging Face Hub cache, read from the environment now (not at import time)."""
    if env := os.environ.get("HF_HUB_CACHE", "").strip():
        return Path(env).expanduser()
    if env := os.environ.get("HF_HOME", "").strip():
        return Path(env).expanduser() / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def ensure_files(
    entry: ModelEntry,
    *,
    progress: ProgressCallback | None = None,
    options: DownloadOptions | None = None,
    verify: bool = False,
) -> ModelFiles:
    """The verified local files of ``entry``, downloading whatever is missing.

    URL sources go through :func:`~sparsesync_cli.checkpoints.verified.ensure_verified_file`
    (the one download path: cached files with a matching record need no network, downloads are
    resumed, verified and renamed into place, concurrent calls download once); ``verify=True``
    re-hashes cached files anyway. Hub sources go through the Hugging Face cache, sha256-checked.
    Raises :class:`DownloadError` with one line saying what failed and what to do.
    """
    options = options or DownloadOptions()
    try:
        # The config first: it is small, so a wrong URL or a missing mirror shows before 650 MB.
        config = _ensure_source(entry, entry.config, progress, options, verify) if entry.config else None
        checkpoint = _ensure_source(entry, entry.checkpoint, progress, options, verify)
    except NoNetworkError as e:
        with contextlib.suppress(OSError):  # no empty model folder stays behind
            model_cache_dir(entry).rmdir()
        # what to do first, then why (the URL last: it is the least useful part)
        elsewhere = (
            ""
            if "avsync download" in e.cause
            else f", or run `avsync download {entry.name}` on a machine with internet and copy its cache"
            f" ({cache_dir()}; AVSYNC_CACHE_DIR sets it)"
        )
        do = f"{entry.name} is not cached and cannot be downloaded now: use a checkpoint file you have"
        why = f"; why: {e.cause}" + (f" ({e.path})" if e.path else "")
        raise NoNetworkError(f"{do} (--checkpoint FILE.pt --config cfg-ID.yaml){elsewhere}{why}") from None
    return ModelFiles(checkpoint=checkpoint, config=config)


def model_status(entry: ModelEntry) -> ModelStatus:
    """Whether every file of ``entry`` is cached (no network, no hashing), and how big it is.

    The size is that of the cached files, else the registry's expected checkpoint size (None
    when unknown).
    """
    paths = [_cached_path(entry, s) for s in (entry.checkpoint, entry.config) if s is not None]
    if all(p is not None for p in paths):
        return ModelStatus(True, sum(p.stat().st_size for p in paths if p is not None))
    return ModelStatus(False, entry.checkpoint.size)


def _ensure_source(
    entry: ModelEntry,
    source: Source,
    progress: ProgressCallback | None,
    options: DownloadOptions,
    verify: bool,
) -> Path:
    if source.kind == "hf":
        return _ensure_hub(entry, source, progress, verify)
    return _ensure_url(entry, source, progress, options, verify)


def _offline_reason(source: Source) -> str | None:
    return offline_reason(OFFLINE_ENV, HF_OFFLINE_ENV) if source.kind == "hf" else offline_reason(OFFLINE_ENV)


def _not_cached(entry: ModelEntry, source: Source, where: str, reason: str) -> DownloadError:
    return not_cached_error(entry.name, source.filename, where, f"avsync download {entry.name}", reason)


def _ensure_url(
    entry: ModelEntry,
    source: Source,
    progress: ProgressCallback | None,
    options: DownloadOptions,
    verify: bool,
) -> Path:
    return ensure_verified_file(
        source,
        model_cache_dir(entry),
        owner=entry.name,
        fetch_command=f"avsync download {entry.name}",
        progress=progress,
        options=options,
        verify=verify,
    )


def _ensure_hub(entry: ModelEntry, source: Source, progress: ProgressCallback | None, verify: bool) -> Path:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.utils import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError

    offline = _offline_reason(source)
    no_network = not offline and not _hub_resolves()
    hub_cache = hf_cache_dir()
    kwargs: dict = {
        "revision": source.hf_revision,
        "cache_dir": hub_cache,
        "local_files_only": bool(offline) or no_network,
    }
    if progress and "tqdm_class" in inspect.signature(hf_hub_download).parameters:
        kwargs["tqdm_class"] = hub_progress_class(source.filename, progress)
    try:
        path = Path(hf_hub_download(source.hf_repo or "", source.hf_filename or "", **kwargs))
    except LocalEntryNotFoundError:
        if offline:
            raise _not_cached(entry, source, f"{hub_cache} (Hugging Face)", offline) from None
        raise NoNetworkError(
            "not in the Hugging Face cache and the Hub cannot be reached (no network?)", source.location
        ) from None
    except (EntryNotFoundError, HfHubHTTPError) as e:
        raise DownloadError(first_line(e), source.location) from None
    except OSError as e:
        raise storage_error(e, hub_cache) from None
    folder = model_cache_dir(entry)
    with contextlib.suppress(OSError):
        folder.mkdir(parents=True, exist_ok=True)  # for the record; a read-only cache still works
    record = record_path(folder, source.filename)
    # hf_hub_download checks the size at most: the sha256 is ours to check.
    problem = check_cached(path, source, record, verify)
    if problem is not None:
        # The snapshot entry links to a blob; delete both, but never follow a link out of the cache.
        blob = path.resolve()
        deleted = (
            hub_cache.resolve() in blob.parents and delete_file(blob, record) and delete_file(path, record)
        )
        what = "deleted it from the Hugging Face cache; run again to fetch it" if deleted else "delete it"
        raise DownloadError(f"checksum mismatch ({problem}); {what}", path)
    return path


def hub_progress_class(name: str, progress: ProgressCallback) -> type:
    """A stand-in for tqdm that huggingface_hub can drive, forwarding to ``progress``."""

    class HubProgress:
        def __init__(self, *args, total: int | None = None, initial: int = 0, **kwargs) -> None:
            self.total, self.n, self.disable = total, initial or 0, False
            progress(name, self.n, self.total)

        def update(self, n: int | float | None = 1) -> None:
            self.n += int(n or 0)
            progress(name, self.n, self.total)

        def close(self) -> None:
            pass

        def refresh(self, *args, **kwargs) -> None:
            pass

        def set_description(self, *args, **kwargs) -> None:
            pass

        def __enter__(self) -> HubProgress:
            return self

        def __exit__(self, *exc) -> None:
            self.close()

    return HubProgress


def _hub_resolves() -> bool:
    """Whether the Hub's host name resolves: without network, fail at once instead of after
    huggingface_hub's retries (~30 s of warnings), and use its cache only."""
    import socket

    host = urlsplit(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or ""
    try:
        socket.getaddrinfo(host, 443)
    except OSError:
        return False
    return True


def _cached_path(entry: ModelEntry, source: Source) -> Path | None:
    if source.kind == "url":
        path = model_cache_dir(entry) / source.filename
        return path if path.is_file() else None
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(
        source.hf_repo or "", source.hf_filename or "", cache_dir=hf_cache_dir(), revision=source.hf_revision
    )
    return Path(found) if isinstance(found, str) and Path(found).is_file() else None

"""The files of a batch: local paths, folders, ``--files-from`` lists and object-store URIs.

A source is a string: a local path or a URI (``s3://bucket/key``). Its resume key is
``(where, size, mtime)``: ``where`` is the resolved path of a local file or the URI itself, and
``mtime`` the file's modification time or the object's last-modified time (a replaced object
gets a new one, as an edited file does). A result whose key still matches is not checked again.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..media.remote import is_uri, stat_uri

SourceKey = tuple[str, int, float]


def read_list(list_path: str | os.PathLike) -> list[str]:
    """The paths/URIs of a list file, one a line (``-``: standard input); blanks and ``#`` lines skipped."""
    name = os.fspath(list_path)
    try:
        text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"cannot read the list of files: {getattr(e, 'strerror', None) or e}", name) from e
    return [s for s in (line.strip() for line in text.splitlines()) if s and not s.startswith("#")]


def _list_prefix(uri: str, recursive: bool, exts: set[str]) -> list[str] | None:
    """The media objects under a URI prefix, or None when ``uri`` is not a folder/prefix."""
    try:
        from pyarrow import fs
    except ImportError:
        return None
    try:
        filesystem, path = fs.FileSystem.from_uri(uri)
        info = filesystem.get_file_info(path)
        if info.type != fs.FileType.Directory:
            return None
        found = filesystem.get_file_info(fs.FileSelector(path, recursive=recursive))
    except (OSError, ValueError):
        return None  # checked (and reported) as one object later
    scheme = uri.split("://", 1)[0]
    return sorted(
        f"{scheme}://{f.path}"
        for f in found
        if f.type == fs.FileType.File and os.path.splitext(f.path)[1].lower() in exts
    )


def collect_sources(
    inputs: Iterable[str | os.PathLike],
    *,
    recursive: bool = False,
    extensions: Sequence[str] | None = None,
    files_from: str | os.PathLike | None = None,
) -> list[str]:
    """Expand paths, folders, URIs, URI prefixes and a list file into the sources to check.

    Local paths follow :func:`~sparsesync_cli.analysis.predict.collect_media_files` (files named
    explicitly are kept even when missing, so they fail as files of the batch). A URI naming a
    prefix lists the media objects under it (``-r``: at any depth). Order is stable, duplicates
    are dropped.
    """
    from ..analysis.predict import VIDEO_EXTENSIONS, collect_media_files

    exts_seq = extensions or VIDEO_EXTENSIONS
    exts = {e.lower() if e.startswith(".") else "." + e.lower() for e in exts_seq}
    items = [os.fspath(i) for i in inputs]
    if files_from is not None:
        items += read_list(files_from)
    out: list[str] = []
    seen: set[str] = set()
    for item in items:
        if is_uri(item):
            found = _list_prefix(item, recursive, exts)
            found = [item] if found is None else found
        else:
            found = [
                os.fspath(p) for p in collect_media_files([item], recursive=recursive, extensions=exts_seq)
            ]
        for f in found:
            key = f if is_uri(f) else os.path.realpath(f)
            if key not in seen:
                seen.add(key)
                out.append(f)
    return out


def where(source: str) -> str:
    """What identifies a source across runs: the URI, or the resolved local path."""
    return source if is_uri(source) else os.path.realpath(source)


def source_key(source: str) -> SourceKey | None:
    """``(where, size, mtime)`` of a source now, or None when it cannot be read."""
    if is_uri(source):
        try:
            info = stat_uri(source)
        except Exception:  # missing, no access, no network: it is checked (and fails) again
            return None
        return (source, info.size, info.mtime) if info.mtime is not None else None
    try:
        st = os.stat(source)
    except OSError:
        return None
    return os.path.realpath(source), st.st_size, st.st_mtime


def record_key(record: dict[str, Any]) -> SourceKey | None:
    """The key a result was made for (None when it lacks size or mtime)."""
    if record.get("file_size") is None or record.get("file_mtime") is None:
        return None
    return where(record["path"]), record["file_size"], record["file_mtime"]


def split_done(
    sources: Sequence[str], records: Iterable[dict[str, Any]], *, model: str | None = None
) -> tuple[list[str], list[dict[str, Any]]]:
    """``(todo, done records)``: sources whose successful result (of ``model``) still matches.

    Failed results never count as done: the file is tried again.
    """
    done: dict[SourceKey, dict[str, Any]] = {}
    for r in records:
        if not r.get("ok") or (model is not None and (r.get("model") or {}).get("name") != model):
            continue
        key = record_key(r)
        if key is not None:
            done[key] = r
    if not done:
        return list(sources), []
    todo, skipped = [], []
    for s in sources:
        key = source_key(s)
        if key is not None and key in done:
            skipped.append(done[key])
        else:
            todo.append(s)
    return todo, skipped

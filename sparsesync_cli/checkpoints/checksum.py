"""Checksums of downloaded files, and the record that lets later loads skip the network.

A file is verified against every checksum its :class:`~sparsesync_cli.checkpoints.registry.Source` names
(md5 or the authors' md5 prefix, sha256, size). After a file passes, its full sha256 and md5 go
into a record next to the cached file (``<file>.verified.json``). Where the registry has no
sha256 (the authors publish md5 prefixes only, and nothing for configs), the record's sha256 is
what later loads are held to: trust on first verified use, then nothing may change.

Re-hashing a 650 MB checkpoint on every load costs seconds, so a record also stores the file's
size and modification time (ns): while those are unchanged the recorded hashes stand, exactly as
they were computed. Anything that rewrites the file changes them and triggers a full re-hash;
``verify_file(..., full=True)`` re-hashes regardless.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

from ..atomic import write_text
from .registry import Source

HASH_CHUNK_BYTES = 1 << 20
RECORD_SUFFIX = ".verified.json"


@dataclass(frozen=True)
class Digests:
    """The full checksums of one file."""

    sha256: str
    md5: str
    size: int


def hash_file(path: Path) -> Digests:
    """sha256 and md5 of ``path`` in one pass, reading 1 MiB at a time."""
    sha, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(HASH_CHUNK_BYTES):
            sha.update(chunk)
            md5.update(chunk)
            size += len(chunk)
    return Digests(sha256=sha.hexdigest(), md5=md5.hexdigest(), size=size)


def mismatch(source: Source, digests: Digests, recorded_sha256: str | None = None) -> str | None:
    """What does not match, in words, or None when every known checksum matches."""
    if source.size is not None and digests.size != source.size:
        return f"size {digests.size} bytes, expected {source.size}"
    if source.sha256 is not None and digests.sha256 != source.sha256:
        return f"sha256 {digests.sha256}, expected {source.sha256}"
    if source.md5 is not None and not digests.md5.startswith(source.md5):
        return f"md5 {digests.md5}, expected {source.md5}{'' if len(source.md5) == 32 else '...'}"
    if recorded_sha256 is not None and digests.sha256 != recorded_sha256:
        return f"sha256 {digests.sha256}, but {recorded_sha256} was recorded at its first download"
    return None


def record_path(record_dir: Path, filename: str) -> Path:
    """Where the record of ``filename`` lives."""
    return record_dir / f"{filename}{RECORD_SUFFIX}"


def read_record(path: Path) -> dict | None:
    """The record at ``path``, or None when missing or unreadable (then the file is re-hashed)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    keys = {"sha256": str, "md5": str, "size": int, "mtime_ns": int}
    if not isinstance(data, dict) or not all(isinstance(data.get(k), t) for k, t in keys.items()):
        return None
    return data


def write_record(path: Path, file: Path, digests: Digests) -> bool:
    """Record ``digests`` of ``file`` (atomically); False when the folder is read-only.

    A read-only cache (for example one shared by an administrator) still works: files are then
    re-hashed on each load instead.
    """
    st = file.stat()
    data = {
        "file": str(file),
        "sha256": digests.sha256,
        "md5": digests.md5,
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "verified_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    try:
        write_text(path, json.dumps(data, indent=1) + "\n")
    except OSError:
        return False
    return True


def verify_file(file: Path, source: Source, record: Path, *, full: bool = False) -> str | None:
    """Check ``file`` against ``source`` and its record; None when good, else the mismatch.

    Without ``full``, a record whose size and mtime still match the file vouches for it (no
    hashing). A good file gets a fresh record; a bad one is left for the caller to delete.
    """
    st = file.stat()
    rec = read_record(record)
    if rec is not None and not full and (rec["size"], rec["mtime_ns"]) == (st.st_size, st.st_mtime_ns):
        return mismatch(source, Digests(sha256=rec["sha256"], md5=rec["md5"], size=rec["size"]))
    digests = hash_file(file)
    # Without a sha256 in the registry, the sha256 recorded at the first verified download is
    # what the file must still be (trust on first use); with one, the registry decides.
    pinned = rec["sha256"] if rec is not None and source.sha256 is None else None
    problem = mismatch(source, digests, recorded_sha256=pinned)
    if problem is None:
        write_record(record, file, digests)
    return problem


def forget(record: Path) -> None:
    """Delete a record (after its file was deleted)."""
    with contextlib.suppress(FileNotFoundError):
        record.unlink()

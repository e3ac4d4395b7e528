"""Media addressed by URI (``s3://``, ``gs://``, ``hdfs://``, ...), read as seekable streams.

PyAV demuxes from any seekable Python file object, so an object in a bucket is read by ranged
requests as the decoder asks for bytes, never copied whole to local disk first. ``pyarrow.fs``
opens the schemes it knows (S3, GCS, HDFS, local); anything else goes through ``fsspec`` when it
is installed. Both are optional: they come with ``pip install "sparsesync-cli[ray]"``.

S3 settings come from the usual places (``AWS_*`` variables, ``~/.aws``); ``AWS_ENDPOINT_URL``
points at an S3-compatible store (MinIO, Ceph, a test server).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..errors import MediaError

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# Schemes FFmpeg reads by itself: PyAV gets the URI unchanged.
FFMPEG_SCHEMES = ("http", "https", "rtmp", "rtsp", "srt", "udp", "tcp")


def is_uri(path: object) -> bool:
    """True for ``scheme://...`` strings (a Windows drive letter ``C:\\`` is not one)."""
    return isinstance(path, str) and bool(_URI.match(path)) and not path.startswith("file://")


def scheme_of(uri: str) -> str:
    return uri.split("://", 1)[0].lower()


@dataclass(frozen=True)
class ObjectInfo:
    """What a store says about one object: its size and modification time (seconds since epoch)."""

    uri: str
    size: int
    mtime: float | None


def _pyarrow_fs(uri: str) -> tuple[Any, str] | None:
    """(pyarrow filesystem, path inside it), or None when pyarrow is missing or the scheme unknown."""
    try:
        from pyarrow import fs
    except ImportError:
        return None
    try:
        return fs.FileSystem.from_uri(uri)
    except (ValueError, NotImplementedError) as e:  # pyarrow raises ArrowInvalid (a ValueError)
        if "Unrecognized filesystem type" in str(e) or "not supported" in str(e).lower():
            return None
        raise MediaError(f"cannot open the storage ({' '.join(str(e).split())})", uri) from e


def _fail_missing_library(uri: str) -> MediaError:
    # the [ray] extra brings pyarrow, whose filesystems read s3://, gs:// and hdfs://
    return MediaError(
        f"reading {scheme_of(uri)}:// needs the [ray] extra: pip install 'sparsesync-cli[ray]'", uri
    )


def stat_uri(uri: str) -> ObjectInfo:
    """Size and mtime of the object at ``uri``; MediaError (one line) when it is missing."""
    found = _pyarrow_fs(uri)
    if found is not None:
        from pyarrow import fs

        filesystem, path = found
        try:
            info = filesystem.get_file_info(path)
        except OSError as e:
            raise MediaError(f"cannot read the object ({' '.join(str(e).split())})", uri) from e
        if info.type == fs.FileType.NotFound:
            raise MediaError("no such object", uri)
        if info.type == fs.FileType.Directory:
            raise MediaError("is a folder (prefix), not a media file", uri)
        mtime = info.mtime.timestamp() if info.mtime is not None else None
        return ObjectInfo(uri, int(info.size or 0), mtime)
    try:
        import fsspec
    except ImportError:
        raise _fail_missing_library(uri) from None
    try:
        filesystem, path = fsspec.core.url_to_fs(uri)
        info = filesystem.info(path)
    except FileNotFoundError:
        raise MediaError("no such object", uri) from None
    except ImportError:  # fsspec without its plugin for the scheme ("Install s3fs to access S3")
        raise _fail_missing_library(uri) from None
    except (OSError, ValueError) as e:
        raise MediaError(f"cannot read the object ({' '.join(str(e).split())})", uri) from e
    mtime = info.get("mtime") or info.get("LastModified")
    return ObjectInfo(
        uri, int(info.get("size") or 0), mtime.timestamp() if hasattr(mtime, "timestamp") else mtime
    )


def open_uri(uri: str) -> Any:
    """A seekable binary file object for ``uri`` (closed when garbage-collected or by the caller)."""
    info = stat_uri(uri)
    if info.size == 0:
        raise MediaError("the file is empty", uri)
    found = _pyarrow_fs(uri)
    try:
        if found is not None:
            filesystem, path = found
            return filesystem.open_input_file(path)
        import fsspec

        return fsspec.open(uri, "rb").open()
    except OSError as e:
        raise MediaError(f"cannot open the object ({' '.join(str(e).split())})", uri) from e

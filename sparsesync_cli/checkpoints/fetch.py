"""Stream one URL into a partial file: resume with HTTP Range, retry with backoff, time out.

Standard library only (``urllib.request``). What is refused, and why:

- Redirects are followed only to https, to this machine (loopback), or within the same server
  (same scheme and host). A redirect that would move a download to another plain-http server is
  an error naming both URLs, never followed silently: checksums protect checkpoints, but configs
  have no published checksum and must not come from an unauthenticated third party.
- A server that ignores ``Range`` gets the whole file again (the partial file is truncated);
  a ``Content-Range`` that does not start where the partial file ends is never appended.
"""

from __future__ import annotations

import contextlib
import errno
import http.client
import os
import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from .. import __version__
from ..errors import DownloadError, NoNetworkError
from .registry import is_loopback_url

USER_AGENT = f"avsync/{__version__} (+https://github.com/v-iashin/SparseSync)"
# Status codes worth another try: the server or a proxy is busy or briefly broken.
RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})

ByteProgress = Callable[[int, "int | None"], None]


@dataclass(frozen=True)
class DownloadOptions:
    """How patiently to download. Tests pass tiny values; the defaults suit a slow link."""

    timeout_s: float = 30.0  # to connect, and for each read: a stalled server is cut off
    retries: int = 5  # tries in a row that make no real progress before giving up
    # The minimum throughput: a try that moves fewer than min_rate_bps * rate_window_s bytes in
    # any rate_window_s is cut off as too slow and counts as a try without progress, so a server
    # that trickles (1 byte every 20 s never trips the read timeout) is abandoned in bounded time.
    min_rate_bps: float = 10_000.0
    rate_window_s: float = 60.0
    backoff_s: float = 1.0  # wait before the first retry; doubles on each further one
    max_backoff_s: float = 30.0
    chunk_bytes: int = 1 << 20


class _Retry(Exception):
    """A failure worth another try; ``progressed`` if bytes arrived before it."""

    def __init__(self, reason: str, progressed: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.progressed = progressed


def redirect_allowed(from_url: str, to_url: str) -> bool:
    """Whether a redirect from ``from_url`` to ``to_url`` may be followed (see module doc)."""
    src, dst = urlsplit(from_url), urlsplit(to_url)
    if dst.scheme == "https":
        return True
    if dst.scheme != "http":
        return False
    return is_loopback_url(to_url) or (src.scheme, src.netloc.lower()) == (dst.scheme, dst.netloc.lower())


class _SafeRedirectHandler(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if not redirect_allowed(req.full_url, newurl):
            fp.close()
            raise DownloadError(
                f"refusing to follow a redirect to {newurl} (only https, this machine or the same server)",
                req.full_url,
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def storage_error(e: OSError, path: Path) -> DownloadError:
    """A one-line DownloadError for a failed write or folder creation in the cache."""
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return DownloadError("no space left on the device (or over quota) while writing the download", path)
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return DownloadError(
            "cannot write to the cache (permission denied or read-only);"
            " set AVSYNC_CACHE_DIR to a writable folder",
            path,
        )
    return DownloadError(f"cannot write the download: {e.strerror or e}", path)


def fetch_to_partial(
    url: str,
    part: Path,
    *,
    expected_size: int | None = None,
    progress: ByteProgress | None = None,
    options: DownloadOptions = DownloadOptions(),
) -> int:
    """Download ``url`` into ``part``, continuing from the bytes already in it; return the size.

    Retries timeouts, dropped connections and busy servers with exponential backoff, resuming
    each time where the file ends. A try that stalls (no data for ``timeout_s``) or crawls (below
    ``min_rate_bps`` over ``rate_window_s``) is cut off; ``retries`` tries in a row without real
    progress (a try moving at least a rate window's worth of bytes) end the download, with the
    partial file kept for a later resume. Raises :class:`DownloadError` for HTTP errors (with URL and
    status), a full disk, a read-only cache, or after ``options.retries`` fruitless tries.
    The caller verifies the checksum.
    """
    opener = urllib.request.build_opener(_SafeRedirectHandler())
    failures = 0
    while True:
        try:
            return _attempt(opener, url, part, expected_size, progress, options)
        except _Retry as e:
            failures = 1 if e.progressed else failures + 1
            if failures > options.retries:
                raise DownloadError(f"{e.reason}; gave up after {options.retries} retries", url) from None
            time.sleep(min(options.max_backoff_s, options.backoff_s * 2 ** (failures - 1)))


def _attempt(opener, url, part, expected_size, progress, options) -> int:
    offset = part.stat().st_size if part.exists() else 0
    if expected_size is not None and offset > expected_size:
        _truncate(part)  # a leftover larger than the file cannot be a prefix of it
        offset = 0
    if expected_size is not None and offset == expected_size:
        return offset
    req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"})
    if offset:
        req.add_header("Range", f"bytes={offset}-")
    try:
        resp = opener.open(req, timeout=options.timeout_s)
    except urllib.error.HTTPError as e:
        e.close()
        if e.code == 416 and offset:
            # Nothing left to send from `offset`: either the partial file is complete already
            # (the checksum will tell) or it is longer than the file; then start over.
            total = _content_range_total(e.headers.get("Content-Range"))
            if total == offset:
                return offset
            _truncate(part)
            raise _Retry("the server could not resume the partial download") from None
        if e.code in RETRY_STATUS:
            raise _Retry(f"HTTP {e.code} {e.reason}") from None
        raise DownloadError(f"HTTP {e.code} {e.reason}", url) from None
    except urllib.error.URLError as e:
        raise _connection_problem(e.reason, url) from None
    except (TimeoutError, ConnectionError, http.client.HTTPException) as e:
        raise _Retry(_describe(e, options)) from None

    with resp:
        mode = "ab"
        if offset and resp.status == 200:
            mode, offset = "wb", 0  # the server ignored Range: take the whole file again
        elif resp.status == 206:
            start = _content_range_start(resp.headers.get("Content-Range"))
            if start != offset:
                _truncate(part)
                raise _Retry(f"the server resumed at byte {start}, not {offset}")
        length = resp.headers.get("Content-Length")
        total = offset + int(length) if length and length.isdigit() else expected_size
        if expected_size is not None and total is not None and total != expected_size:
            raise DownloadError(f"the server offers {total} bytes; the registry expects {expected_size}", url)
        done = offset
        if progress:
            progress(done, total)
        window_start, window_bytes = time.monotonic(), done
        enough = options.min_rate_bps * options.rate_window_s  # bytes a try must move to be progress
        try:
            # Unbuffered, so that a full disk fails the write that hit it, never a later close.
            f = open(part, mode, buffering=0)  # noqa: SIM115 - closed by the `with f` below
        except OSError as e:
            raise storage_error(e, part) from None
        with f:
            while True:
                try:
                    # read1: whatever arrived (read(n) would wait for n bytes of a trickle)
                    chunk = resp.read1(options.chunk_bytes)
                except (TimeoutError, ConnectionError, http.client.HTTPException, OSError) as e:
                    raise _Retry(_describe(e, options), progressed=done - offset >= enough) from None
                if not chunk:
                    break
                now = time.monotonic()
                if now - window_start >= options.rate_window_s:
                    rate = (done + len(chunk) - window_bytes) / (now - window_start)
                    if rate < options.min_rate_bps:
                        _write_all(f, chunk)  # keep what came: the partial file is resumed later
                        raise _Retry(
                            f"slower than {options.min_rate_bps:g} bytes/s for {options.rate_window_s:g} s"
                            f" ({rate:.3g} bytes/s)",
                            progressed=done + len(chunk) - offset >= enough,
                        )
                    window_start, window_bytes = now, done + len(chunk)
                try:
                    _write_all(f, chunk)
                except OSError as e:
                    raise storage_error(e, part) from None
                done += len(chunk)
                if progress:
                    progress(done, total)
    if total is not None and done < total:
        raise _Retry(
            f"the connection closed after {done} of {total} bytes",
            progressed=done - offset >= options.min_rate_bps * options.rate_window_s,
        )
    return done


def _connection_problem(reason: object, url: str) -> Exception:
    if isinstance(reason, DownloadError):
        return reason
    if isinstance(reason, ssl.SSLCertVerificationError):
        return DownloadError(f"TLS certificate verification failed: {reason.verify_message}", url)
    if isinstance(reason, socket.gaierror):
        host = urlsplit(url).hostname
        # Retrying cannot fix a missing network; say what to do instead.
        return NoNetworkError(
            f"cannot resolve {host} (no network?); use AVSYNC_OFFLINE=1 with a filled cache,"
            " or AVSYNC_MIRROR",
            url,
        )
    if isinstance(reason, TimeoutError):
        return _Retry("the server did not answer in time")
    return _Retry(f"cannot connect: {getattr(reason, 'strerror', None) or reason}")


def _describe(e: BaseException, options: DownloadOptions) -> str:
    if isinstance(e, TimeoutError):
        return f"no data for {options.timeout_s:g} s"
    if isinstance(e, http.client.IncompleteRead):
        return "the connection closed early"
    return f"the connection failed ({type(e).__name__}: {e})".replace("\n", " ")


def _content_range_start(value: str | None) -> int | None:
    # "bytes 100-999/1000"
    try:
        return int(value.split()[1].split("-")[0]) if value else None
    except (IndexError, ValueError):
        return None


def _content_range_total(value: str | None) -> int | None:
    # "bytes */1000" or "bytes 0-99/1000"
    try:
        return int(value.rsplit("/", 1)[1]) if value else None
    except (IndexError, ValueError):
        return None


def _write_all(f, chunk: bytes) -> None:
    view = memoryview(chunk)
    while view:
        view = view[f.write(view) :]


def _truncate(part: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.truncate(part, 0)

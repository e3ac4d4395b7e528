"""A real HTTP file server on 127.0.0.1 for download tests, with switches to inject failures.

It supports single ``Range: bytes=a-[b]`` requests like a real object store, and records every
request (path and Range header) so tests can assert what the client asked for.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

CHUNK = 1024 * 1024


@dataclass
class Switches:
    """Failures to inject. ``*_times`` counts down per matching request (-1 = always)."""

    not_found: set[str] = field(default_factory=set)
    status: dict[str, tuple[int, int]] = field(default_factory=dict)  # path -> (code, times)
    cut_after: dict[str, tuple[int, int]] = field(default_factory=dict)  # path -> (bytes, times)
    corrupt: set[str] = field(default_factory=set)  # same size, one byte flipped
    delay: dict[str, tuple[float, int]] = field(default_factory=dict)  # path -> (seconds, times)
    redirect: dict[str, str] = field(default_factory=dict)  # path -> Location
    # path -> ((bytes, seconds), times): send the body `bytes` at a time, `seconds` apart
    trickle: dict[str, tuple[tuple[int, float], int]] = field(default_factory=dict)
    stall_after: dict[str, tuple[int, int]] = field(default_factory=dict)  # path -> (bytes, times)
    ignore_range: bool = False


class FileServer:
    """Serves ``files`` ({url path: local file}) on 127.0.0.1 until ``close()``."""

    def __init__(self) -> None:
        self.files: dict[str, Path] = {}
        self.switches = Switches()
        self.requests: list[tuple[str, str | None]] = []
        self._bytes: dict[Path, bytes] = {}
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._httpd.handle_error = lambda request, client_address: None  # clients hang up on purpose
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def requests_for(self, path: str) -> list[str | None]:
        """The Range headers (None: whole file) of the requests made for ``path``."""
        with self._lock:
            return [rng for p, rng in self.requests if p == path]

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _read(self, file: Path) -> bytes:
        with self._lock:
            if file not in self._bytes:
                self._bytes[file] = file.read_bytes()
            return self._bytes[file]

    def _take(self, table: dict, path: str):
        """The switch for ``path`` if it still has uses left, counting one use."""
        with self._lock:
            if path not in table:
                return None
            *value, times = table[path]
            if times == 0:
                return None
            table[path] = (*value, times - 1)
            return value[0]

    def _handler_class(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                rng = self.headers.get("Range")
                with server._lock:
                    server.requests.append((path, rng))
                sw = server.switches
                if (delay := server._take(sw.delay, path)) is not None:
                    time.sleep(delay)
                if path in sw.redirect:
                    return self._empty(302, {"Location": sw.redirect[path]})
                if (code := server._take(sw.status, path)) is not None:
                    return self._empty(code)
                if path in sw.not_found or path not in server.files:
                    return self._empty(404)
                data = server._read(server.files[path])
                if path in sw.corrupt:
                    mid = len(data) // 2
                    data = data[:mid] + bytes([data[mid] ^ 0xFF]) + data[mid + 1 :]
                start, end, status = 0, len(data) - 1, 200
                if rng and not sw.ignore_range:
                    first, _, last = rng.removeprefix("bytes=").partition("-")
                    start = int(first)
                    end = min(int(last), end) if last else end
                    if start >= len(data):
                        return self._empty(416, {"Content-Range": f"bytes */{len(data)}"})
                    status = 206
                body = data[start : end + 1]
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Accept-Ranges", "bytes")
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
                self.end_headers()
                if (slow := server._take(sw.trickle, path)) is not None:
                    step, pause = slow
                    for i in range(0, len(body), step):
                        self.wfile.write(body[i : i + step])
                        self.wfile.flush()
                        time.sleep(pause)
                    return
                if (stall := server._take(sw.stall_after, path)) is not None:
                    self.wfile.write(body[:stall])
                    self.wfile.flush()
                    time.sleep(30)  # silent, connection open: the client must give up
                    return
                cut = server._take(sw.cut_after, path)
                if cut is not None:
                    body = body[:cut]
                for i in range(0, len(body), CHUNK):
                    self.wfile.write(body[i : i + CHUNK])
                if cut is not None:
                    # Hang up mid-body, as a dropped connection does.
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True

            def _empty(self, code: int, headers: dict | None = None) -> None:
                self.send_response(code)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", "0")
                self.end_headers()

        return Handler

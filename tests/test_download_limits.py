"""Downloads give up in bounded time, against a real HTTP server on 127.0.0.1 (issue 14, item 9).

A server that stalls mid-body and one that trickles a byte at a time are both abandoned after
a few short tries (the limits are parameters: the tests use tenths of seconds where the
defaults are 30 s and 60 s), and the partial file stays for a later resume.
"""

from __future__ import annotations

import os
import time

import pytest
from helpers.http_server import FileServer

from sparsesync_cli.checkpoints.fetch import DownloadOptions, fetch_to_partial
from sparsesync_cli.errors import DownloadError

BLOB = os.urandom(4000)


@pytest.fixture
def server(tmp_path):
    (tmp_path / "f.bin").write_bytes(BLOB)
    srv = FileServer()
    srv.files["/f.bin"] = tmp_path / "f.bin"
    yield srv
    srv.close()


def test_a_trickling_server_is_abandoned_and_the_partial_file_resumes(server, tmp_path):
    server.switches.trickle["/f.bin"] = ((1, 0.05), -1)  # 20 bytes/s: never silent for long
    part = tmp_path / "f.bin.incomplete"
    opts = DownloadOptions(timeout_s=2.0, retries=1, backoff_s=0.01, min_rate_bps=200.0, rate_window_s=0.4)
    t0 = time.monotonic()
    with pytest.raises(DownloadError, match=r"slower than 200 bytes/s for 0\.4 s .*gave up after 1 retries"):
        fetch_to_partial(server.url + "/f.bin", part, expected_size=len(BLOB), options=opts)
    assert time.monotonic() - t0 < 5
    kept = part.stat().st_size
    assert 0 < kept < len(BLOB) and part.read_bytes() == BLOB[:kept]
    server.switches.trickle.clear()
    assert fetch_to_partial(server.url + "/f.bin", part, expected_size=len(BLOB), options=opts) == len(BLOB)
    assert part.read_bytes() == BLOB
    assert server.requests_for("/f.bin")[-1] == f"bytes={kept}-"  # resumed, not fetched again


def test_a_server_that_stalls_mid_body_is_abandoned_and_resumed(server, tmp_path):
    server.switches.stall_after["/f.bin"] = (1000, -1)  # 1000 bytes, then silence
    part = tmp_path / "f.bin.incomplete"
    opts = DownloadOptions(timeout_s=0.3, retries=2, backoff_s=0.01)
    t0 = time.monotonic()
    with pytest.raises(DownloadError, match=r"no data for 0\.3 s; gave up after 2 retries"):
        fetch_to_partial(server.url + "/f.bin", part, expected_size=len(BLOB), options=opts)
    assert time.monotonic() - t0 < 5  # three tries of 0.3 s, not 5 x 30 s
    assert part.read_bytes() == BLOB[:3000]  # each try's bytes were kept and resumed from
    server.switches.stall_after.clear()
    assert fetch_to_partial(server.url + "/f.bin", part, expected_size=len(BLOB), options=opts) == len(BLOB)
    assert part.read_bytes() == BLOB

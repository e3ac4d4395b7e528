"""The report in a real browser (headless Chromium, where installed) and the blank-screenshot check.

Both run ``bench/render_report.py`` as a program (a user's command), never import it: bench and
tests stay apart.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from helpers.report_examples import write_example_jsonl

REPO = Path(__file__).resolve().parents[1]
RENDER = REPO / "bench" / "render_report.py"

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


def write_png(path: Path, rows: list[bytes], width: int) -> None:
    """An 8-bit RGB PNG whose scanlines use filter 0 (None) or 2 (Up) alternately."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    raw, prev = b"", bytes(width * 3)
    for i, row in enumerate(rows):
        if i % 2:
            raw += b"\x02" + bytes((a - b) & 255 for a, b in zip(row, prev, strict=True))
        else:
            raw += b"\x00" + row
        prev = row
    ihdr = struct.pack(">IIBBBBB", width, len(rows), 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )


def check_screenshot(png: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(RENDER), "--check-screenshot", str(png)], capture_output=True, text=True
    )


def test_blank_screenshots_are_recognised(tmp_path):
    white = tmp_path / "white.png"
    write_png(white, [b"\xff" * 60] * 20, 20)
    res = check_screenshot(white)
    assert res.returncode == 1 and "only 1 distinct colours" in res.stdout
    rows = [bytes((x * 7 + y * 13 + c * 50) % 256 for x in range(20) for c in range(3)) for y in range(20)]
    busy = tmp_path / "busy.png"  # many colours, rows filtered with None and Up alternately
    write_png(busy, rows, 20)
    res = check_screenshot(busy)
    assert res.returncode == 0 and "not blank" in res.stdout, res.stdout + res.stderr


@pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium is not installed (apt-get install -y chromium)"
)
def test_report_renders_in_chromium_without_console_errors(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            str(RENDER),
            str(write_example_jsonl(tmp_path / "examples.jsonl")),
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "browser check: ok" in proc.stdout
    assert (tmp_path / "report.png").stat().st_size > 10_000

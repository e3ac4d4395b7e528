#!/usr/bin/env python3
"""Open an avsync HTML report in headless Chromium: console errors, a working script, a real picture.

    python bench/render_report.py results.jsonl --out DIR  # a batch's JSONL report
    python bench/render_report.py results.jsonl --screenshot docs/report-screenshot.png
    python bench/render_report.py --check-screenshot shot.png  # only the blank-picture check

The constructed examples (drift, range edge, odd names) are written as JSONL by
``python tests/helpers/report_examples.py examples.jsonl``. This script imports only the
installed package (``pip install -e .``), never the tests.

Three checks, each a separate failure (exit 1):

1. Console: the untouched report is loaded with ``--enable-logging=stderr --v=0``; Chromium logs
   every console message and uncaught exception of the page as ``CONSOLE`` lines, and the report
   writes none, so any such line fails.
2. Behaviour: a copy of the report gets a self-check script injected at the top of <head>. It
   records errors (window ``error`` events, including failed resource loads, unhandled rejections,
   console.error/warn), then after ``load`` clicks the sort headers and the thumbnails and checks
   the table order, the expanded map, that the page loaded no resources and does not scroll
   sideways at 1400 px. It writes its verdict as JSON into the DOM, read back with ``--dump-dom``.
3. Picture: ``--screenshot --window-size=1400,1000``; the PNG is decoded (zlib, numpy) and must not
   be blank: many distinct colours and a good share of non-white pixels.

Chromium: Debian package ``chromium`` (``apt-get install -y chromium``), or pass ``--chromium``.
"""

from __future__ import annotations

import argparse
import html as html_lib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np

from sparsesync_cli.output.html import write_html_report
from sparsesync_cli.output.records import read_jsonl

WINDOW = (1400, 1000)  # px, the browser window for the screenshot and the layout check
TIMEOUT_SEC = 90  # one Chromium run; a cold start in a container can take several seconds
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars"]

SELF_CHECK = r"""<script>
(function () {
  'use strict';
  var errors = [], failures = [];
  window.addEventListener('error', function (e) {
    errors.push(e.message || ('failed to load ' + ((e.target && (e.target.src || e.target.href)) || '?')));
  }, true);
  window.addEventListener('unhandledrejection', function (e) { errors.push('rejection: ' + e.reason); });
  ['error', 'warn'].forEach(function (level) {
    var orig = console[level];
    console[level] = function () {
      errors.push(level + ': ' + [].join.call(arguments, ' '));
      orig.apply(console, arguments);
    };
  });
  function check(ok, what) { if (!ok) { failures.push(what); } }
  function order(key) {
    var bodies = document.querySelectorAll('#files > tbody');
    return [].map.call(bodies, function (b) { return b.getAttribute('data-' + key); });
  }
  function sorted(vals, numeric, desc) {
    var present = vals.filter(function (v) { return v !== ''; });
    var tail = vals.slice(present.length);
    if (tail.some(function (v) { return v !== ''; })) { return false; }  // missing values last
    for (var i = 1; i < present.length; i++) {
      var a = present[i - 1], b = present[i];
      var c = numeric ? parseFloat(a) - parseFloat(b)
        : a.localeCompare(b, undefined, {numeric: true, sensitivity: 'base'});
      if (desc ? c < 0 : c > 0) { return false; }
    }
    return true;
  }
  window.addEventListener('load', function () {
    try {
      var ready = document.documentElement.getAttribute('data-report-script') === 'ready';
      check(ready, 'report script did not finish');
      [['name', false], ['abs', true], ['offset', true], ['conf', true]].forEach(function (s) {
        var th = document.querySelector('#files th[data-sort="' + s[0] + '"]');
        if (!th) { failures.push('no sortable column ' + s[0]); return; }
        th.querySelector('button').click();
        var up = th.getAttribute('aria-sort') === 'ascending' && sorted(order(s[0]), s[1], false);
        check(up, 'sort ascending by ' + s[0]);
        th.querySelector('button').click();
        var down = th.getAttribute('aria-sort') === 'descending' && sorted(order(s[0]), s[1], true);
        check(down, 'sort descending by ' + s[0]);
      });
      var thumb = document.querySelector('button.thumb');
      if (thumb) {
        var detail = document.getElementById(thumb.getAttribute('aria-controls'));
        thumb.click();
        var shown = !detail.hidden && detail.getBoundingClientRect().height > 150;
        check(shown, 'thumbnail click shows the full map');
        thumb.click();
        check(detail.hidden, 'second click hides the full map');
      }
      [].forEach.call(document.querySelectorAll('svg'), function (svg, i) {
        if (svg.closest('[hidden]')) { return; }
        var r = svg.getBoundingClientRect();
        check(r.width > 50 && r.height > 30, 'svg ' + i + ' has no size');
      });
      check(performance.getEntriesByType('resource').length === 0, 'the page loaded external resources');
      check(document.documentElement.scrollWidth <= window.innerWidth, 'the page scrolls sideways (' +
        document.documentElement.scrollWidth + ' > ' + window.innerWidth + ' px)');
    } catch (e) { failures.push('self-check crashed: ' + e); }
    var out = document.createElement('pre');
    out.id = 'avsync-selfcheck';
    out.textContent = JSON.stringify({errors: errors, failures: failures});
    document.body.appendChild(out);
  });
}());
</script>"""


def run_chromium(chromium: str, args: list[str]) -> subprocess.CompletedProcess:
    """Run Chromium once with a fresh profile; on timeout, end its whole process group (helpers too)."""
    with tempfile.TemporaryDirectory(prefix="avsync-chromium-") as profile:
        cmd = [
            chromium,
            f"--user-data-dir={profile}",
            *FLAGS,
            f"--window-size={WINDOW[0]},{WINDOW[1]}",
            *args,
        ]
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
        )
        try:
            out, err = proc.communicate(timeout=TIMEOUT_SEC)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            err += f"\n(chromium killed after {TIMEOUT_SEC} s)"
        return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def console_messages(stderr: str) -> list[str]:
    """The page's console lines from Chromium's stderr log."""
    return [line for line in stderr.splitlines() if re.search(r":CONSOLE(\(\d+\)|:\d+)\]", line)]


def png_pixels(path: Path) -> np.ndarray:
    """Decode an 8-bit RGB(A) PNG, as Chromium writes them, into an (H, W, C) uint8 array."""
    data = path.read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path}: not a PNG")
    pos, idat, ihdr = 8, [], None
    while pos < len(data):
        n = int.from_bytes(data[pos : pos + 4], "big")
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]
        if kind == b"IHDR":
            ihdr = body
        elif kind == b"IDAT":
            idat.append(body)
        pos += 12 + n
    w, h = int.from_bytes(ihdr[0:4], "big"), int.from_bytes(ihdr[4:8], "big")
    depth, ctype, interlace = ihdr[8], ihdr[9], ihdr[12]
    if depth != 8 or ctype not in (2, 6) or interlace:
        raise ValueError(
            f"{path}: unsupported PNG (depth {depth}, colour type {ctype}, interlace {interlace})"
        )
    ch = 3 if ctype == 2 else 4
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), np.uint8).reshape(h, 1 + w * ch)
    out = np.zeros((h, w * ch), np.int32)
    prev = np.zeros(w * ch, np.int32)
    for y in range(h):
        f, row = raw[y, 0], raw[y, 1:].astype(np.int32)
        if f == 0:
            cur = row
        elif f == 2:
            cur = (row + prev) & 255
        elif f == 1:  # Sub: a running sum per channel
            cur = (np.cumsum(row.reshape(w, ch), axis=0) & 255).reshape(-1)
        else:  # Average (3) and Paeth (4) depend on the pixel just decoded: go pixel by pixel
            cur = row.copy()
            for x in range(w * ch):
                a = cur[x - ch] if x >= ch else 0
                b, c = prev[x], prev[x - ch] if x >= ch else 0
                if f == 3:
                    cur[x] = (row[x] + (a + b) // 2) & 255
                else:
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    cur[x] = (row[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        out[y], prev = cur, cur
    return out.reshape(h, w, ch).astype(np.uint8)


def blank_reason(path: Path) -> str | None:
    """Why the screenshot looks blank, or None when it shows a rendered report."""
    rgb = png_pixels(path)[..., :3].reshape(-1, 3)
    colours = len(np.unique(rgb.view(np.dtype((np.void, 3)))))
    inked = float(np.mean(np.any(rgb < 240, axis=1)))
    if colours < 16:
        return f"only {colours} distinct colours"
    if inked < 0.05:
        return f"only {inked:.1%} of the pixels are not white"
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("jsonl", nargs="?", type=Path, help="the JSONL report to render")
    ap.add_argument(
        "--check-screenshot", type=Path, default=None, help="only check that this PNG is not blank"
    )
    ap.add_argument("--out", type=Path, default=None, help="folder for report.html (default: a temp folder)")
    ap.add_argument("--screenshot", type=Path, default=None, help="PNG path (default: OUT/report.png)")
    ap.add_argument("--chromium", default=None, help="browser binary (default: chromium on PATH)")
    args = ap.parse_args(argv)
    if args.check_screenshot:
        reason = blank_reason(args.check_screenshot)
        print(f"blank screenshot: {reason}" if reason else "screenshot: not blank")
        return 1 if reason else 0
    if not args.jsonl:
        ap.error("give a JSONL report (tests/helpers/report_examples.py writes the constructed examples)")

    chromium = args.chromium or next(
        (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
    )
    if not chromium:
        print("chromium not found: apt-get install -y chromium, or pass --chromium", file=sys.stderr)
        return 2
    results = read_jsonl(args.jsonl)
    out = args.out or Path(tempfile.mkdtemp(prefix="avsync-report-"))
    out.mkdir(parents=True, exist_ok=True)
    report = write_html_report(results, out / "report.html", settings={"source": str(args.jsonl)})
    html = report.read_text(encoding="utf-8")
    check_page = out / "report-selfcheck.html"
    check_page.write_text(html.replace("<head>", "<head>\n" + SELF_CHECK, 1), encoding="utf-8")
    shot = args.screenshot or out / "report.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    problems = []

    dom = run_chromium(chromium, ["--virtual-time-budget=5000", "--dump-dom", check_page.as_uri()])
    m = re.search(r'<pre id="avsync-selfcheck">(.*?)</pre>', dom.stdout, flags=re.S)
    if not m:
        problems.append(f"self-check wrote no verdict (chromium exit {dom.returncode}): {dom.stderr[-500:]}")
    else:
        verdict = json.loads(html_lib.unescape(m.group(1)))
        problems += [f"page error: {e}" for e in verdict["errors"]]
        problems += [f"self-check: {f}" for f in verdict["failures"]]

    shot.unlink(missing_ok=True)
    pic = run_chromium(
        chromium, ["--enable-logging=stderr", "--v=0", f"--screenshot={shot}", report.as_uri()]
    )
    problems += [f"console: {line}" for line in console_messages(pic.stderr)]
    if not shot.is_file():
        problems.append(f"no screenshot written (chromium exit {pic.returncode}): {pic.stderr[-500:]}")
    elif reason := blank_reason(shot):
        problems.append(f"blank screenshot: {reason}")

    print(f"report:     {report} ({report.stat().st_size:,} bytes, {len(results)} files)")
    if shot.is_file():
        print(f"screenshot: {shot} ({shot.stat().st_size:,} bytes)")
    for p in problems:
        print(f"FAIL {p}", file=sys.stderr)
    print("browser check: " + ("FAILED" if problems else "ok (no console errors, script works, not blank)"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

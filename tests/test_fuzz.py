"""A real batch over corrupted files: every file gets a result row, nothing escapes as a traceback.

The test runs bench/fuzz.py as a program on a few dozen files: it synthesises small clips,
corrupts them (byte flips in headers and bodies, truncation, zeroed blocks, swapped chunks and
hybrids, in mp4/mov/mkv/webm/ts; seeded), and checks them with one `avsync predict` batch using
the tiny random-weight fixture model, as a user runs it. The same script at 500 files, with
memory and hang watching, is the benchmark (not run here).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

N_FILES = 30  # every damage class in every container (the model takes ~1-2 s a file that decodes)
SEED = 14
DAMAGES = ["flip_body", "flip_header", "hybrid", "swap_chunks", "truncate", "zero_block"]


def test_corrupted_batch_gets_a_row_per_file_and_no_traceback(shared_dir, tmp_path):
    proc = subprocess.run(
        [
            *(sys.executable, str(REPO_ROOT / "bench" / "fuzz.py"), "--files", str(N_FILES)),
            *("--seed", str(SEED), "--out", str(tmp_path), "--timeout", "600"),
            *("--fixtures", str(shared_dir / "fixtures/sparsesync")),
        ],
        capture_output=True,
        text=True,
        timeout=1800,  # a guard only: ~1 min on an idle 2-core machine
        cwd=REPO_ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(proc.stdout)
    assert report["damages"] == DAMAGES and report["files"] == N_FILES
    assert report["exit_codes"] == [1], report  # one batch; some files fail, none stops it
    assert report["rows"] == N_FILES and report["missing_rows"] == [], report
    assert report["tracebacks"] == 0 and report["crashes"] == [] and report["hangs"] == [], report
    assert report["unexpected"] == [], report  # every failure has a cause avsync names
    assert report["inputs_modified"] == [], report
    rows = [json.loads(line) for line in (tmp_path / "fuzz.jsonl").read_text().splitlines()]
    assert sorted(os.path.basename(r["path"]) for r in rows) == sorted(os.listdir(tmp_path / "in"))
    failed = [r for r in rows if not r["ok"]]
    assert failed and all(r["error"] and "\n" not in r["error"] for r in failed)

"""A real batch over corrupted files: every file gets a result row, nothing escapes as a traceback.

The corrupted files are made here from clips the test synthesises (tests/helpers/fuzz_media.py: byte
flips in headers and bodies, truncation, zeroed blocks, swapped chunks and hybrids, in
mp4/mov/mkv/webm/ts). The batch runs as a user runs it: the `avsync` command in a subprocess,
with the tiny random-weight fixture model. bench/fuzz.py runs the same classes at scale and
measures memory and hangs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from helpers.fuzz_media import DAMAGES, make_bases, write_variants

N_FILES = 30  # every damage class in every container (the model takes ~1-2 s a file that decodes)
SEED = 14


def test_corrupted_batch_gets_a_row_per_file_and_no_traceback(shared_dir, tmp_path_factory, tmp_path):
    bases = make_bases(tmp_path_factory.mktemp("fuzz_bases"))
    files = write_variants(bases, tmp_path / "in", N_FILES, SEED)
    assert {p.name.split("_", 1)[1].rsplit(".", 1)[0] for p in files} == {d.__name__ for d in DAMAGES}
    before = {p: p.read_bytes() for p in files}
    fx = shared_dir / "fixtures/sparsesync"
    jsonl = tmp_path / "fuzz.jsonl"
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "sparsesync_cli", "predict", str(tmp_path / "in"), "--quiet"),
            *(
                "--checkpoint",
                str(fx / "tiny_sparsesync.pt"),
                "--config",
                str(fx / "cfg-tiny_sparsesync.yaml"),
            ),
            *("--jsonl", str(jsonl), "--device", "cpu"),
        ],
        capture_output=True,
        text=True,
        timeout=1200,  # a hang guard only: ~30 s on an idle 2-core machine
        env={**os.environ, "COLUMNS": "120"},
    )
    output = proc.stdout + proc.stderr
    assert "Traceback" not in output, output[-4000:]
    assert proc.returncode == 1, output[-4000:]  # some files fail (and are reported), none stops the batch
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert sorted(os.path.basename(r["path"]) for r in rows) == sorted(p.name for p in files)
    failed = [r for r in rows if not r["ok"]]
    assert failed and all(r["error"] and "\n" not in r["error"] for r in failed)
    assert not any(r["error"].startswith("unexpected error") for r in failed), [r["error"] for r in failed]
    assert all(p.read_bytes() == data for p, data in before.items())  # inputs are never modified

"""The test suite cleans up after itself."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def test_runs_keep_only_the_last_runs_failed_temporary_files(tmp_path):
    (tmp_path / "test_x.py").write_text(
        "def test_ok(tmp_path):\n    (tmp_path / 'big').write_bytes(b'x')\n\n"
        "def test_bad(tmp_path):\n    (tmp_path / 'big').write_bytes(b'x')\n    assert False\n"
    )
    root = tmp_path / "temproot"
    root.mkdir()
    env = {**os.environ, "PYTEST_DEBUG_TEMPROOT": str(root)}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", str(PYPROJECT)]
    for _ in range(3):
        subprocess.run([*cmd, "--rootdir", str(tmp_path), str(tmp_path / "test_x.py")], env=env,
                       cwd=tmp_path, capture_output=True, check=False)  # fmt: skip
    kept = sorted(str(p.relative_to(root)) for p in root.rglob("big"))
    assert len(kept) == 1 and "test_bad" in kept[0], kept

"""huggingface_hub's own cache layout, built by hand, so Hub entries can be tested offline."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def make_hub_cache(cache: Path, src: Path, repo_id: str, filename: str, revision: str, sha256: str) -> Path:
    """Put ``src`` in ``cache`` as ``repo_id``/``filename`` at ``revision`` (also ``refs/main``).

    The layout ``hf_hub_download`` reads: ``models--org--name/blobs/<sha256>`` (a copy, so a test
    may delete it), ``snapshots/<revision>/<filename>`` a relative link to the blob, and
    ``refs/main``. Returns the snapshot link.
    """
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "blobs").mkdir(parents=True)
    shutil.copyfile(src, repo / "blobs" / sha256)
    link = repo / "snapshots" / revision / filename
    link.parent.mkdir(parents=True)
    link.symlink_to(os.path.relpath(repo / "blobs" / sha256, link.parent))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    return link

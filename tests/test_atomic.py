"""The one atomic writer: a complete file with an ordinary mode appears, or nothing changes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sparsesync_cli import atomic
from sparsesync_cli.checkpoints.checksum import Digests, write_record
from sparsesync_cli.output.records import CsvWriter


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield 0o027
    os.umask(old)


def test_the_umask_is_read_without_changing_it(umask_027: int) -> None:
    assert atomic.user_umask() == umask_027
    assert os.umask(umask_027) == umask_027  # still what the user set


def test_a_written_file_has_the_content_and_the_mode_of_a_file_the_user_creates(
    tmp_path: Path, umask_027: int
) -> None:
    atomic.write_text(tmp_path / "out.txt", "hello\n")
    (tmp_path / "by-hand.txt").write_text("x")
    assert (tmp_path / "out.txt").read_text() == "hello\n"
    modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    assert modes == {"out.txt": 0o640, "by-hand.txt": 0o640}


def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(tmp_path: Path) -> None:
    dest = tmp_path / "report.csv"
    dest.write_text("old\n")
    with pytest.raises(RuntimeError), atomic.atomic_path(dest) as tmp:
        assert tmp.parent == tmp_path  # same folder: the final rename is atomic
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert [p.name for p in tmp_path.iterdir()] == ["report.csv"]
    assert dest.read_text() == "old\n"


def test_a_tool_that_needs_the_extension_gets_it(tmp_path: Path) -> None:
    with atomic.atomic_path(tmp_path / "fixed.mkv", keep_extension=True) as tmp:
        assert tmp.suffix == ".mkv" and tmp.name.startswith(".fixed.mkv.")
        tmp.write_bytes(b"data")
    assert (tmp_path / "fixed.mkv").read_bytes() == b"data"


def test_an_unwritable_folder_is_an_oserror_and_nothing_appears(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        atomic.write_bytes(tmp_path / "missing" / "x.bin", b"1")
    assert list(tmp_path.iterdir()) == []


def test_reports_and_checksum_records_use_it(tmp_path: Path, umask_027: int) -> None:
    with CsvWriter(tmp_path / "r.csv"):
        pass
    f = tmp_path / "weights.pt"
    f.write_bytes(b"w")
    assert write_record(
        tmp_path / "weights.pt.verified.json", f, Digests(sha256="0" * 64, md5="0" * 32, size=1)
    )
    for name in ("r.csv", "weights.pt.verified.json"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o640, name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.csv", "weights.pt", "weights.pt.verified.json"]

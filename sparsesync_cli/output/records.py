"""Records other tools can read: JSON Lines (one result per file, resumable) and CSV.

JSONL (``--jsonl``): one ``avsync.result/1.1`` object per line (``/1`` records are read too),
appended as each file finishes with a single ``write`` and an ``fsync``, so an interrupted batch
keeps every file it finished and a crash can at worst leave one partial last line. Reading
tolerates that line; appending to such a file first cuts it off (after checking that every
complete line is an avsync result, so a wrong ``--jsonl`` path is refused instead of modified).

Resume: re-running with the same JSONL skips files already done, i.e. files with an ``ok``
record whose resolved path, size and modification time all still match (a file that was
replaced or edited since is checked again). Failed files are always retried, since most failures
(a missing file, a network share that was down, no memory) are worth another try and a
permanent one costs one quick failure. A retried file's new record replaces its old one: at the
end of a run that appended records for files already in the report, the report is rewritten
(atomically) with each file's last record per model, so it holds one row per file and model.
That rewrite assumes one writer at a time, as resuming does.

File names that are not valid UTF-8 are kept exactly: JSONL writes their undecodable bytes as
JSON escapes (``\\udcff`` for the byte 0xFF, read back losslessly by Python's ``json``), the CSV
holds the name's bytes as they are on disk (the rest of the file is UTF-8).

CSV (``--csv``): one row per file with the flat fields (:data:`CSV_FIELDS`). Rows are collected
and the file is written to a temporary name in the same folder and moved into place when the
writer closes (also when the batch is interrupted), so a reader never sees half a CSV. Appending
rows instead would risk a crash mid-row whose open quote swallows every row after it.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..analysis.results import READABLE_SCHEMAS, SCHEMA_MAJOR, SyncResult, file_stat
from ..atomic import atomic_path
from ..errors import UsageError

CSV_FIELDS = (
    "path",
    "ok",
    "offset_sec",
    "offset_words",
    "confidence",
    "agreement",
    "drift_sec_per_min",
    "at_range_edge",
    "n_windows",
    "model",
    "error",
)

FileKey = tuple[str, int, float]


def _as_dict(result: SyncResult | dict[str, Any]) -> dict[str, Any]:
    return result.to_dict() if isinstance(result, SyncResult) else result


def _scan(path: Path) -> tuple[list[dict[str, Any]], int]:
    """(records, byte length of the complete part). Raises UsageError for a file that is not ours."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise UsageError(f"cannot read the report: {e.strerror or e}", path) from e
    records = []
    complete = data.rfind(b"\n") + 1  # bytes up to and including the last newline
    lines = data[:complete].split(b"\n")[:-1]
    tail = data[complete:]
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        records.append(_parse(line, number, path))
    if tail.strip():
        try:
            records.append(_parse(tail, len(lines) + 1, path))
            complete = len(data)  # a whole record that only lacks its newline
        except UsageError:
            pass  # the partial line of a crash mid-write: tolerated, dropped
    return records, complete


def _parse(line: bytes, number: int, path: Path) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except ValueError:
        record = None
    if not isinstance(record, dict) or record.get("schema") not in READABLE_SCHEMAS:
        raise UsageError(f"line {number} is not an {SCHEMA_MAJOR} record: not an avsync JSONL report", path)
    return record


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """All records of a JSONL report, in order (a truncated last line is skipped)."""
    return _scan(Path(path))[0]


def open_append_only(path: Path, scan: Callable[[Path], tuple[Any, int]], what: str) -> int:
    """Open a JSONL file for durable appends and return its descriptor.

    ``scan(path)`` returns ``(records, complete)``: the byte count of whole lines (and refuses a
    file of another kind). The partial line a crash left behind is cut off, and a whole record
    that lacked only its newline gets one, so the next record never runs into it.
    """
    needs_newline = False
    if path.exists():
        _, complete = scan(path)
        if complete < path.stat().st_size:
            os.truncate(path, complete)
        needs_newline = complete > 0 and _last_byte(path) != b"\n"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError as e:
        raise UsageError(f"cannot write {what}: {e.strerror or e}", path) from e
    if needs_newline:
        write_durable(fd, b"\n")
    return fd


def write_durable(fd: int, data: bytes) -> None:
    """Write all of ``data`` and fsync, so a line is on disk before the next item starts."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    os.fsync(fd)


class JsonlWriter:
    """Append-only JSONL writer; use as a context manager or call :meth:`close`."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._fd = open_append_only(self.path, _scan, "the report")  # _scan refuses a non-report

    def append(self, result: SyncResult | dict[str, Any]) -> None:
        """Write one result as one line, and make it durable before returning."""
        self._write(_line(_as_dict(result)))

    def _write(self, data: bytes) -> None:
        write_durable(self._fd, data)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _line(d: dict[str, Any]) -> bytes:
    line = json.dumps(d, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    # A name that is not valid UTF-8 reaches us with its bytes as lone surrogates (Python's
    # surrogateescape); they can only sit inside JSON strings, where backslashreplace writes
    # them as the JSON escape "\udcff", which reads back as the same str, so os.fsencode
    # gives the original bytes and resume finds the file. The file stays valid UTF-8.
    return line.encode("utf-8", "backslashreplace") + b"\n"


def drop_superseded(path: str | os.PathLike) -> int:
    """Rewrite the JSONL report at ``path`` keeping each file's last record per model (in the
    order the files first appear); returns how many records were dropped (0: left untouched).

    A re-run retries failed files and appends their new records; this keeps one row per file.
    The rewrite goes through a temporary file: a reader sees the old report or the new one.
    """
    path = Path(path)
    records = read_jsonl(path)
    latest: dict[tuple[str, Any], dict[str, Any]] = {}
    for r in records:
        latest[(os.path.realpath(r["path"]), (r.get("model") or {}).get("name"))] = r
    dropped = len(records) - len(latest)
    if dropped:
        try:
            with atomic_path(path) as tmp:
                tmp.write_bytes(b"".join(_line(r) for r in latest.values()))
        except OSError as e:
            raise UsageError(f"cannot rewrite the report: {e.strerror or e}", path) from e
    return dropped


def _last_byte(path: Path) -> bytes:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1)


def file_key(path: str | os.PathLike) -> FileKey | None:
    """(resolved path, size, mtime) of a file on disk, or None if it cannot be read."""
    size, mtime = file_stat(path)
    return None if size is None or mtime is None else (os.path.realpath(path), size, mtime)


def done_keys(jsonl_path: str | os.PathLike, *, model: str | None = None) -> set[FileKey]:
    """Keys of the files a JSONL report already holds a successful result for.

    Compare with :func:`file_key` of each input. ``model``: count only results of that model
    name (re-running with another model checks everything again). A missing report is empty.
    Relative paths in the report are resolved against the current directory.
    """
    path = Path(jsonl_path)
    if not path.exists():
        return set()
    keys = set()
    for r in read_jsonl(path):
        if not r.get("ok") or (model is not None and r.get("model", {}).get("name") != model):
            continue
        if r.get("file_size") is None or r.get("file_mtime") is None:
            continue
        keys.add((os.path.realpath(r["path"]), r["file_size"], r["file_mtime"]))
    return keys


def latest_results(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The last record per resolved path, in the order the paths first appear.

    A resumed batch leaves a failed attempt and a later success for the same file in the JSONL;
    summaries and the CSV want the latest.
    """
    latest: dict[str, dict[str, Any]] = {}
    for r in records:
        latest[os.path.realpath(r["path"])] = r  # re-assigning keeps the first position
    return list(latest.values())


def csv_row(result: SyncResult | dict[str, Any]) -> dict[str, str]:
    """The flat CSV fields of one result (empty for null, ``true``/``false`` for booleans)."""
    d = _as_dict(result)
    values = {
        "path": d["path"],
        "ok": d["ok"],
        "offset_sec": d["offset_sec"],
        "offset_words": d["offset_words"],
        "confidence": d["confidence"],
        "agreement": d["agreement"],
        "drift_sec_per_min": d["drift_sec_per_min"],
        "at_range_edge": d["at_range_edge"],
        "n_windows": len(d["windows"]),
        "model": d["model"]["name"],
        "error": d["error"],
    }
    return {k: _csv_text(v) for k, v in values.items()}


def _csv_text(v: object) -> str:
    if v is None:
        return ""
    return str(v).lower() if isinstance(v, bool) else str(v)


class CsvWriter:
    """Collects rows and writes the CSV atomically on :meth:`close` (or leaving a ``with``)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._rows: list[dict[str, str]] = []

    def add(self, result: SyncResult | dict[str, Any]) -> None:
        self._rows.append(csv_row(result))

    def close(self) -> None:
        """Write all rows to a temporary file next to the target, then move it into place."""
        try:
            # surrogateescape: a name that is not valid UTF-8 is written as its bytes on disk
            with (
                atomic_path(self.path) as tmp,
                open(tmp, "w", newline="", encoding="utf-8", errors="surrogateescape") as f,
            ):
                writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
                writer.writeheader()
                writer.writerows(self._rows)
        except OSError as e:
            raise UsageError(f"cannot write the report: {e.strerror or e}", self.path) from e

    def __enter__(self) -> CsvWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# Deprecated names (before 0.3): "report" now means the HTML report only.
JsonlReport = JsonlWriter
CsvReport = CsvWriter

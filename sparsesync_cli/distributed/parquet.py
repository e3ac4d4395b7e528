"""``--parquet DIR``: results as Parquet files, one row per file, for data teams.

Columns are the ``avsync.result`` fields (:mod:`sparsesync_cli.analysis.results`) with ``model``
a struct, ``windows`` a list of structs (``start_sec``, ``shift_sec``, ``logits``, ``probs``,
``offset_sec``, ``confidence``), ``trend`` and ``model.calibration`` as JSON text, and fields a
later schema adds kept whole in ``extra`` (JSON), so reading a part back gives the record written.
Rows are written in parts (``part-<run>-<n>.parquet``) as results
arrive, each to a temporary name and renamed when complete, so an interrupted run keeps every
part it finished, a reader never sees half a file, and ``pyarrow.dataset``/Spark/DuckDB read the
folder as one table. A re-run appends new parts; the latest row per path wins.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from ..errors import UsageError

ROWS_PER_PART = 256  # small enough that a crash loses little, large enough for columnar reads


# Nested fields whose shape may grow with the schema are stored as JSON text (read back as objects).
JSON_FIELDS = ("trend",)


def result_schema() -> Any:
    """The Arrow schema of one result row."""
    import pyarrow as pa

    f64 = pa.float64()
    window = pa.struct(
        [
            ("start_sec", f64),
            ("shift_sec", f64),
            ("logits", pa.list_(f64)),
            ("probs", pa.list_(f64)),
            ("offset_sec", f64),
            ("confidence", f64),
        ]
    )
    model = pa.struct(
        [
            ("name", pa.string()),
            ("family", pa.string()),
            ("checkpoint", pa.string()),
            ("calibration", pa.string()),
        ]
    )
    return pa.schema(
        [
            ("schema", pa.string()),
            ("path", pa.string()),
            ("ok", pa.bool_()),
            ("error", pa.string()),
            ("model", model),
            ("offset_sec", f64),
            ("offset_words", pa.string()),
            ("offset_class", pa.int64()),
            ("at_range_edge", pa.bool_()),
            ("confidence", f64),
            ("agreement", f64),
            ("drift_sec_per_min", f64),
            ("grid", pa.list_(f64)),
            ("range_sec", pa.list_(f64)),
            ("resolution_sec", f64),
            ("posterior", pa.list_(f64)),
            ("trend", pa.string()),  # JSON
            ("windows", pa.list_(window)),
            ("duration_sec", f64),
            ("file_size", pa.int64()),
            ("file_mtime", f64),
            ("elapsed_sec", f64),
            ("sign", pa.string()),
            ("clock", pa.string()),
            ("extra", pa.string()),  # JSON: fields a later schema adds, kept whole
        ]
    )


def to_row(record: dict[str, Any]) -> dict[str, Any]:
    """A result dict as a row of :func:`result_schema` (nothing is dropped)."""
    names = set(result_schema().names)
    row = {k: v for k, v in record.items() if k in names}
    model = dict(record.get("model") or {})
    calibration = model.pop("calibration", None)
    row["model"] = {**model, "calibration": None if calibration is None else json.dumps(calibration)}
    for k in JSON_FIELDS:
        row[k] = None if record.get(k) is None else json.dumps(record[k])
    extra = {k: v for k, v in record.items() if k not in names}
    row["extra"] = json.dumps(extra) if extra else None
    return row


def from_row(row: dict[str, Any]) -> dict[str, Any]:
    """The result dict a row was made from (:func:`to_row` reversed)."""
    d = dict(row)
    model = dict(d.get("model") or {})
    calibration = model.pop("calibration", None)
    if calibration is not None:
        model["calibration"] = json.loads(calibration)
    d["model"] = model
    for k in JSON_FIELDS:
        d[k] = None if d.get(k) is None else json.loads(d[k])
    extra = d.pop("extra", None)
    if extra:
        d.update(json.loads(extra))
    return d


def _need_pyarrow() -> None:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise UsageError("--parquet needs pyarrow: pip install 'sparsesync-cli[ray]'") from None


class ParquetResults:
    """Writes result dicts into ``folder`` in parts; call :meth:`close` (or use ``with``)."""

    def __init__(self, folder: str | os.PathLike, rows_per_part: int = ROWS_PER_PART) -> None:
        _need_pyarrow()
        self.folder = Path(folder)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UsageError(f"cannot create the Parquet folder: {e.strerror or e}", self.folder) from e
        self._rows: list[dict[str, Any]] = []
        self._per_part = rows_per_part
        self._run = time.strftime("%Y%m%dT%H%M%S") + f"-{os.getpid()}"
        self._n = 0

    def add(self, record: dict[str, Any]) -> None:
        self._rows.append(record)
        if len(self._rows) >= self._per_part:
            self.flush()

    def flush(self) -> None:
        """Write the rows collected so far as one part (nothing when there are none)."""
        if not self._rows:
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pylist([to_row(r) for r in self._rows], schema=result_schema())
        from ..atomic import atomic_path

        target = self.folder / f"part-{self._run}-{self._n:05d}.parquet"
        try:
            with atomic_path(target) as tmp:
                pq.write_table(table, tmp)
        except OSError as e:
            raise UsageError(f"cannot write the Parquet results: {e.strerror or e}", target) from e
        self._n += 1
        self._rows = []

    def close(self) -> None:
        self.flush()

    def __enter__(self) -> ParquetResults:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_parquet_results(folder: str | os.PathLike) -> list[dict[str, Any]]:
    """Every row of the parts in ``folder`` as ``avsync.result/1`` dicts (none when it is missing)."""
    folder = Path(folder)
    parts = sorted(folder.glob("part-*.parquet")) if folder.is_dir() else []
    if not parts:
        return []
    _need_pyarrow()
    import pyarrow.parquet as pq

    rows: list[dict[str, Any]] = []
    for part in parts:
        try:
            rows += [from_row(r) for r in pq.read_table(part, schema=result_schema()).to_pylist()]
        except (OSError, ValueError) as e:
            raise UsageError(f"not an avsync results part ({' '.join(str(e).split())})", part) from e
    return rows

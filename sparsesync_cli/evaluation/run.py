"""Running a model over a protocol: one window per item, decoded ahead of the model, in batches.

Each item computes exactly what ``avsync predict CLIP --start vstart_sec --shift offset_sec
--duration 5`` computes: the window is placed by :func:`~sparsesync_cli.analysis.windows.window_at` (the
paper's arithmetic), checked by :func:`~sparsesync_cli.analysis.windows.check_window`, and decoded by the
same reader and crop as :func:`~sparsesync_cli.analysis.predict.run_windows`; so the logits are the same
numbers. Decoding runs in a background thread a few batches ahead of the model; batches mix items
of different clips, so a GPU stays busy on datasets of one item per clip.

An item record (one JSON line, schema ``avsync.evaluation_item/1``) has ``path, vstart_sec,
offset_sec, target_class, logits, pred_class, ok, error`` plus the resolved ``file`` and the
``model`` name; an item of a randomised pass (``evaluate --passes``, :mod:`.passes`) adds
``pass``, ``row`` (of the protocol) and ``seed``, and its ``offset_sec``/``vstart_sec`` are the
drawn ones. A missing or unreadable clip becomes a failed record; the run goes on.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ..errors import AvsyncError, UsageError, unexpected
from ..output.records import open_append_only, write_durable
from .metrics import target_class
from .protocol import ProtocolItem, resolve_clip

ITEM_SCHEMA = "avsync.evaluation_item/1"
PREFETCH_BATCHES = 2

ItemProgress = Callable[[int, int], None]


def item_record(
    item: ProtocolItem,
    grid: Sequence[float],
    model_name: str,
    *,
    logits: Sequence[float] | None = None,
    error: str | None = None,
    file: str | None = None,
) -> dict[str, Any]:
    """The JSONL record of one item (``logits`` for a success, ``error`` for a failure)."""
    lg = [float(x) for x in logits] if logits is not None else None
    ok = lg is not None
    drawn = {}
    if item.draw is not None:
        drawn = {"pass": item.draw.pass_index, "row": item.draw.row, "seed": item.draw.seed}
    return {
        "schema": ITEM_SCHEMA,
        "path": item.path,
        "vstart_sec": item.vstart_sec,
        "offset_sec": item.offset_sec,
        "target_class": target_class(item.offset_sec, grid),
        "logits": lg,
        "pred_class": max(range(len(lg)), key=lg.__getitem__) if lg else None,
        "ok": ok,
        "error": error,
        "file": file,
        "model": model_name,
        **drawn,
    }


def record_key(r: dict[str, Any]) -> tuple:
    """The :attr:`ProtocolItem.key` of the item a record is of."""
    if r.get("pass") is not None:
        return r["path"], "draw", int(r["seed"]), int(r["pass"]), int(r["row"])
    return r["path"], round(float(r["vstart_sec"]), 6), round(float(r["offset_sec"]), 6)


class ItemJsonl:
    """Append-only JSONL of item records, each line made durable before the next item.

    An existing file must hold item records; a partial last line (a crash mid-write) is cut off.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._fd = open_append_only(self.path, _scan, "the JSONL")

    def append(self, record: dict[str, Any]) -> None:
        write_durable(self._fd, (json.dumps(record, allow_nan=False, separators=(",", ":")) + "\n").encode())

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> ItemJsonl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _scan(path: Path) -> tuple[list[dict[str, Any]], int]:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise UsageError(f"cannot read the JSONL: {e.strerror or e}", path) from None
    complete = data.rfind(b"\n") + 1
    records = []
    for number, line in enumerate(data[:complete].split(b"\n")[:-1], start=1):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
        except ValueError:
            r = None
        if not isinstance(r, dict) or r.get("schema") != ITEM_SCHEMA:
            raise UsageError(f"line {number} is not an {ITEM_SCHEMA} record: not an evaluation JSONL", path)
        records.append(r)
    return records, complete


def read_item_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The complete item records of an evaluation JSONL (a partial last line is ignored)."""
    return _scan(Path(path))[0]


def previous_results(path: str | os.PathLike, model_name: str) -> dict[tuple, dict[str, Any]]:
    """Successful records of ``model_name`` in a JSONL, by item key (what a resumed run skips)."""
    if not Path(path).exists():
        return {}
    return {record_key(r): r for r in read_item_jsonl(path) if r.get("ok") and r.get("model") == model_name}


def decode_items(
    items: Sequence[ProtocolItem],
    root: str | os.PathLike,
    geometry,
    batch_size: int,
    audio_stream: int | None,
    grid: Sequence[float] | None = None,
) -> Iterator[list[tuple[ProtocolItem, str | None, Any, Any, str | None]]]:
    """Batches of ``batch_size`` items as ``(item, file, frames, audio, error)``, in item order.

    Consecutive items of a clip share a reader. An item that cannot be read has ``error`` (its
    one-line cause) and no frames or audio; the others go on. The batches are the model batches
    (the Ray path decodes one batch's items per task, so its model calls equal these). An item
    with a ``draw`` gets its offset and start drawn on the model's class ``grid`` once its clip
    is open (:func:`~.passes.draw_window`); the batch holds the drawn item.
    """
    from ..analysis.predict import _read_window
    from ..analysis.windows import check_window, window_at
    from ..media.decode import MediaReader
    from .passes import draw_window

    if grid is None and any(it.draw is not None for it in items):
        raise ValueError("drawn items need the model's class grid")
    reader = None
    batch: list = []
    try:
        for item in items:
            file = resolve_clip(root, item.path)
            try:
                if file is None:
                    raise AvsyncError(f"no such clip under {root} (with or without .mp4)", item.path)
                if reader is None or reader.path != os.fspath(file):
                    if reader is not None:
                        reader.close()
                        reader = None
                    reader = MediaReader(file, audio_stream=audio_stream)
                if item.draw is not None:
                    assert grid is not None  # checked above
                    item = draw_window(item, reader.video_span, reader.audio_span, grid)
                w = window_at(item.vstart_sec, item.offset_sec)
                check_window(w, geometry, reader.video_span, reader.audio_span, path=os.fspath(file))
                frames, audio = _read_window(reader, w, geometry)
                batch.append((item, os.fspath(file), frames, audio, None))
            except AvsyncError as e:
                batch.append((item, os.fspath(file) if file else None, None, None, str(e)))
            except Exception as e:  # the per-item boundary: anything else is this item's one-line failure
                error = str(unexpected(e, os.fspath(file) if file else item.path))
                batch.append((item, os.fspath(file) if file else None, None, None, error))
            if len(batch) >= batch_size:
                yield batch
                batch = []
        if batch:
            yield batch
    finally:
        if reader is not None:
            reader.close()


def evaluate_items(
    items: Sequence[ProtocolItem],
    model,
    root: str | os.PathLike = ".",
    *,
    batch_size: int = 1,
    audio_stream: int | None = None,
    on_item: ItemProgress | None = None,
    decode_workers: int | str | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield one item record per item, in protocol order (failures included).

    ``model`` is a loaded :class:`~sparsesync_cli.sync_model.SyncModel` (its raw logits are
    recorded: a calibration is applied by the metrics, not here). ``on_item(done, total)``
    reports progress. ``decode_workers`` (N or ``"auto"``): decode chunks of ``batch_size``
    items in N worker processes (:mod:`~sparsesync_cli.distributed.batched_run`).
    """
    import numpy as np

    from ..analysis.predict import _prefetch
    from ..heap import heap_reuse

    if batch_size < 1:
        raise UsageError("batch size must be >= 1")
    name = model.setup.name
    if decode_workers is not None:
        from ..distributed.batched_run import evaluate_pooled

        pooled = evaluate_pooled(
            items, model, os.fspath(root), workers=decode_workers, batch_size=batch_size,
            audio_stream=audio_stream,
        )  # fmt: skip
        yield from _counted(pooled, len(items), on_item)
        return

    def records() -> Iterator[dict[str, Any]]:
        decoded = decode_items(items, root, model.geometry, batch_size, audio_stream, model.grid)
        # Freed activations stay mapped for the next batch, as in predict (see heap.py): without
        # this every batch faults its ~2 GB of pages in again.
        with heap_reuse():
            for batch in _prefetch(decoded, PREFETCH_BATCHES):
                good = [b for b in batch if b[4] is None]
                logits = []
                if good:
                    frames, audio = np.stack([b[2] for b in good]), np.stack([b[3] for b in good])
                    logits = model.logits(frames, audio).tolist()
                yield from batch_records([(b[0], b[1], b[4]) for b in batch], logits, model.grid, name)

    yield from _counted(records(), len(items), on_item)


def batch_records(
    batch: Sequence[tuple[ProtocolItem, str | None, str | None]],
    logits: Sequence[Sequence[float]],
    grid: Sequence[float],
    model_name: str,
) -> list[dict[str, Any]]:
    """The records of one decoded batch of ``(item, file, error)``, given the model's ``logits``
    (one row per item without an error, in order). Non-finite logits make a failed record."""
    import numpy as np

    rows = iter(logits)
    out = []
    for item, file, error in batch:
        if error is None:
            lg = next(rows)
            if not all(np.isfinite(lg)):
                error = f"{file}: non-finite logits"
            else:
                out.append(item_record(item, grid, model_name, logits=lg, file=file))
                continue
        out.append(item_record(item, grid, model_name, error=error, file=file))
    return out


def latest_by_item(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per item (the last one wins), in first-seen order."""
    by_key: dict[tuple, dict[str, Any]] = {}
    for r in records:
        by_key[record_key(r)] = r
    return list(by_key.values())


def run_protocol(
    items: Sequence[ProtocolItem],
    model,
    root: str | os.PathLike = ".",
    *,
    jsonl: str | os.PathLike | None = None,
    batch_size: int = 1,
    audio_stream: int | None = None,
    on_item: ItemProgress | None = None,
    runner: Callable[[Sequence[ProtocolItem]], Iterable[dict[str, Any]]] | None = None,
    decode_workers: int | str | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """Evaluate every item, resuming from ``jsonl`` like ``predict --jsonl``.

    Items that already have a successful record of this model in ``jsonl`` are not run again
    (failed ones are retried); every new record is appended and made durable as it arrives.
    ``runner(todo)`` computes the records of the items to run, in any order (default: here, with
    :func:`evaluate_items`; :func:`~sparsesync_cli.distributed.ray_pipeline.evaluate_on_ray`
    runs them on Ray). ``decode_workers``: see :func:`evaluate_items`. Returns ``(records in
    protocol order, number of items taken from the JSONL)``.
    """
    previous = previous_results(jsonl, model.setup.name) if jsonl is not None else {}
    todo = [it for it in items if it.key not in previous]
    if runner is None:
        new = evaluate_items(
            todo, model, root, batch_size=batch_size, audio_stream=audio_stream, on_item=on_item,
            decode_workers=decode_workers,
        )  # fmt: skip
    else:  # the same progress reports as evaluate_items gives
        new = _counted(runner(todo), len(todo), on_item)
    fresh: dict[tuple, dict[str, Any]] = {}
    writer = ItemJsonl(jsonl) if jsonl is not None else None
    try:
        for rec in new:
            fresh[record_key(rec)] = rec
            if writer is not None:
                writer.append(rec)
    finally:
        if writer is not None:
            writer.close()
    records = [previous.get(it.key) or fresh[it.key] for it in items]
    return records, len(items) - len(todo)


def _counted(records: Iterable[dict[str, Any]], total: int, on_item: ItemProgress | None) -> Iterator[dict]:
    if on_item:
        on_item(0, total)
    for done, rec in enumerate(records, start=1):
        if on_item:
            on_item(done, total)
        yield rec

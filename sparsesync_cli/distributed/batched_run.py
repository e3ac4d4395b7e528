"""A local batch with its files decoded by worker processes, windows batched across files.

``predict``, ``score`` and ``evaluate`` with ``--decode-workers N``: a :class:`.decode_pool.DecodePool`
decodes the files (the Ray path's decode units, :meth:`.work.PredictJob.decode` and the others),
this process runs the model, and each file's :class:`.work.Assembler` builds its result with the
local code. Results come out in input order, a failed file as its own row.

Model batches: the windows of all files, in input order (each file's in its own order), cut into
``batch_size`` windows per model call, so a GPU gets full batches from short clips. Which
windows share a call depends only on the files and ``batch_size``, never on the number of workers
or on timing: the logits are the same bits with 1 worker or 16 (on CPU at the same ``--threads``).
At ``batch_size`` 1 (the CPU default) they are also the bits of the in-process run; with larger
batches a window may share its call with another file's windows, which can move the logits of
an fp32 CPU model in the last bits, or more in fp16 on a GPU.

``--sample auto`` chooses each next window from the verdicts so far, so it runs in-process only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import UsageError
from .decode_pool import DecodePool, SlotLayout, auto_workers

if TYPE_CHECKING:
    from ..analysis.desync import DesyncResult
    from ..analysis.predict import PredictOptions
    from ..analysis.results import SyncResult
    from ..evaluation.protocol import ProtocolItem
    from ..sync_model import SyncModel

SLOTS_PER_WORKER = 3  # decoded windows a predict/score worker may hold ahead of the model
CHUNK_SLOTS = 2  # decoded item chunks an evaluate worker may hold ahead


def resolve_workers(value: int | str, model: SyncModel) -> int:
    """``--decode-workers N|auto`` as a number (see :func:`.decode_pool.auto_workers`)."""
    if value == "auto":
        import torch

        return auto_workers(model.setup.device, torch.get_num_threads())
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = 0
    if n < 1:
        raise UsageError(f"--decode-workers {value}: expected a positive number or auto")
    return n


class _Batcher:
    """Copies windows out of the pool's slots into model batches and runs each full batch."""

    def __init__(self, model: SyncModel, batch_size: int, layout: SlotLayout, raw: bool) -> None:
        self.model, self.batch_size, self.layout, self.raw = model, batch_size, layout, raw
        self._rows: list[tuple[dict, int]] = []  # (piece state, row in piece)
        self._frames: np.ndarray | None = None
        self._audio: np.ndarray | None = None

    def add(self, state: dict, frames: np.ndarray, audio: np.ndarray) -> list[dict]:
        """Queue a piece's windows; returns the piece states whose logits are now complete."""
        done: list[dict] = []
        for r in range(len(frames)):
            if self._frames is None:
                b = self.batch_size
                self._frames = np.empty((b, *frames.shape[1:]), np.uint8)
                self._audio = np.empty((b, *audio.shape[1:]), np.float32)
            k = len(self._rows)
            self._frames[k] = frames[r]
            self._audio[k] = audio[r]  # type: ignore[index]
            self._rows.append((state, r))
            if len(self._rows) == self.batch_size:
                done += self.flush()
        return done

    def flush(self) -> list[dict]:
        """Run the model on the queued windows (a last, partial batch)."""
        from ..analysis.predict import calibrated_logits

        if not self._rows:
            return []
        k = len(self._rows)
        frames, audio = self._frames[:k], self._audio[:k]  # type: ignore[index]
        run = self.model.logits if self.raw else lambda f, a: calibrated_logits(self.model, f, a)
        try:
            logits = run(frames, audio).numpy().astype(np.float32, copy=False)
        except Exception as e:  # the model failed on this call: its files fail, the batch goes on
            from .work import _one_line

            states = list({id(st): st for st, _ in self._rows}.values())
            for st in states:
                st["piece"]["error"], st["left"] = _one_line(e), 0
            self._rows, self._frames, self._audio = [], None, None
            return states
        done = []
        for (state, r), lg in zip(self._rows, logits, strict=True):
            state["piece"]["logits"][r] = lg
            state["left"] -= 1
            if state["left"] == 0:
                done.append(state)
        self._rows, self._frames, self._audio = [], None, None
        return done


def run_pooled(
    job: Any,
    sources: Sequence[str],
    model: SyncModel,
    *,
    workers: int,
    batch_size: int,
    piece_windows: int = 1,
    slots: int = SLOTS_PER_WORKER,
    on_piece: Callable[[int, dict], None] | None = None,
    pool_stats: dict | None = None,
    raw_logits: bool = False,
) -> Iterator[Any]:
    """``job``'s result for each of ``sources``, in order, decoded by ``workers`` processes.

    ``piece_windows``: the most windows one of the job's pieces holds (a slot's size).
    ``raw_logits``: the model's logits without its calibration (what evaluate records).
    ``on_piece(index, piece)``: called as each piece's logits are complete. ``pool_stats``, if
    given, receives the workers' peak RSS (MB) and restarts when the run ends.
    """
    from ..clock import CROP_SIZE
    from .work import Assembler

    sources = list(sources)
    if not sources:
        return
    g = model.geometry
    layout = SlotLayout(piece_windows, (g.frames, 3, CROP_SIZE, CROP_SIZE), g.samples)
    n_classes = len(model.grid)
    asm: dict[int, Assembler] = {}
    results: dict[int, Any] = {}
    out = 0
    batcher = _Batcher(model, batch_size, layout, raw_logits)

    def complete(states: list[dict]) -> None:
        for st in states:
            i, piece = st["index"], st["piece"]
            if on_piece:
                on_piece(i, piece)
            a = asm.setdefault(i, Assembler(job))
            r = a.add(piece)
            if r is not None:
                results[i] = r
                asm.pop(i, None)

    from ..heap import heap_reuse

    pool = DecodePool(job, sources, min(workers, len(sources)), layout, slots)
    # One heap for the whole batch, as iter_predictions keeps (see heap.py).
    with heap_reuse(), pool:
        try:
            for i, piece in pool.pieces():
                frames, audio = piece.pop("frames"), piece.pop("audio")
                n = 0 if piece["error"] else len(frames)
                piece["logits"] = np.zeros((n, n_classes), np.float32)
                state = {"index": i, "piece": piece, "left": n}
                complete(batcher.add(state, frames, audio) if n else [state])
                del frames, audio
                while out in results:
                    yield results.pop(out)
                    out += 1
            complete(batcher.flush())
        finally:
            if pool_stats is not None:
                pool_stats.update(peak_rss_mb=list(pool.peak_rss_mb), restarts=pool.restarts)
    while out < len(sources):
        if out not in results:  # pieces that never made a whole file (cannot happen): its row
            results[out] = job.failed(sources[out], "the decoded pieces did not make a whole file", {
                "size": -1, "mtime": float("nan")}, 0.0)  # fmt: skip
        yield results.pop(out)
        out += 1


def predict_pooled(
    paths: Sequence[str],
    model: SyncModel,
    options: PredictOptions,
    *,
    workers: int | str,
    on_window: Callable[[str, int, int], None] | None = None,
    pool_stats: dict | None = None,
) -> Iterator[SyncResult]:
    """:func:`~sparsesync_cli.analysis.predict.iter_predictions` with ``workers`` decode processes."""
    from .work import PredictJob

    if options.sampling.mode != "all":
        raise UsageError("--sample auto runs in this process only, not with --decode-workers")
    n = resolve_workers(workers, model)
    # Workers send one window per piece (small slots, a short wait for the model); the model
    # batches are cut from the stream of windows (run_pooled).
    job = PredictJob(replace(options, batch_size=1), model.setup)
    done: dict[int, int] = {}

    def on_piece(i: int, piece: dict) -> None:
        if on_window and not piece["error"]:
            done[i] = done.get(i, 0) + len(piece["logits"])
            on_window(str(piece["source"]), done[i], int(piece["n_chunks"]))

    return run_pooled(
        job, [str(p) for p in paths], model, workers=n, batch_size=options.batch_size,
        on_piece=on_piece, pool_stats=pool_stats,
    )  # fmt: skip


def score_pooled(
    paths: Sequence[str],
    model: SyncModel,
    *,
    workers: int | str,
    clip_sec: float | None = None,
    whole_file: bool = True,
    batch_size: int = 1,
) -> Iterator[DesyncResult]:
    """:func:`~sparsesync_cli.analysis.desync.score_files` with ``workers`` decode processes."""
    from ..analysis.desync import check_family
    from .work import ScoreJob

    check_family(model.setup.family)
    job = ScoreJob(model.setup, clip_sec, whole_file, 1)
    return run_pooled(job, [str(p) for p in paths], model, workers=resolve_workers(workers, model),
                      batch_size=batch_size)  # fmt: skip


def evaluate_pooled(
    items: Sequence[ProtocolItem],
    model: SyncModel,
    root: str,
    *,
    workers: int | str,
    batch_size: int = 1,
    audio_stream: int | None = None,
) -> Iterator[dict[str, Any]]:
    """:func:`~sparsesync_cli.evaluation.run.evaluate_items`' records with ``workers`` decode processes.

    Workers decode chunks of ``batch_size`` consecutive items (as the Ray path does); the model
    batches are cut from the stream of decoded items.
    """
    import os

    from .work import EvaluateJob, item_chunks

    n = resolve_workers(workers, model)
    job = EvaluateJob(model.setup, os.path.abspath(root), batch_size, audio_stream)
    chunks = item_chunks(list(items), batch_size)
    for records in run_pooled(job, chunks, model, workers=n, batch_size=batch_size,
                              piece_windows=batch_size, slots=CHUNK_SLOTS, raw_logits=True):  # fmt: skip
        yield from records

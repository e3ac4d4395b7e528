"""One file's check cut into pieces a cluster can schedule, giving the local run's answers.

A local run (:func:`~sparsesync_cli.predict.predict_file`) plans the file's windows, decodes them
``batch_size`` at a time, runs the model on each batch and combines the verdicts. Here the same
steps are split where data can move between machines:

1. :func:`decode_file` (a CPU task): open the file, plan its windows with the local planner, and
   yield one :data:`Piece` per model batch, with exactly the local run's batch composition (a
   batch's size can change float results), or one piece carrying the file's error;
2. :class:`ModelSpec` ``.load()`` + :func:`run_piece` (a model actor): the model's logits for a
   piece, on the same arrays the local run feeds it;
3. :class:`Assembler` (the driver): collects a file's pieces, in any order and even twice (a
   retried task repeats its pieces), and once all are there builds the result with the local
   code (:func:`~sparsesync_cli.predict.window_result`, ``combine_windows``).

A job says what is computed per unit: :class:`PredictJob` and :class:`ScoreJob` per file,
:class:`EvaluateJob` per chunk of protocol items (one local model batch each).

Nothing here imports Ray; :mod:`.ray_pipeline` wires it into Ray Data.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import AvsyncError, UnexpectedError
from ..media.remote import is_uri, stat_uri

if TYPE_CHECKING:
    from ..analysis.predict import PredictOptions
    from ..analysis.results import SyncResult, WindowResult
    from ..evaluation.protocol import ProtocolItem
    from ..sync_model import ModelSetup, SyncModel

# A piece is a dict of plain values and arrays (what Ray Data moves between stages):
#   source, group, chunk, n_chunks (of this group), groups (all group names, comma-joined),
#   frames (B, T, 3, 224, 224) uint8, audio (B, N) float32, starts / shifts (B,) float64,
#   duration (s), size / mtime (the object's, for URIs; -1 / nan for local files),
#   error ('' or the file's one-line cause), t0 (wall clock when the file's decode began),
#   logits (B, C) float32 once the model has run; an EvaluateJob's pieces add items (JSON: each
#   item's [file, error]; frames/audio hold the items without an error).
Piece = dict[str, Any]


@dataclass(frozen=True)
class ModelSpec:
    """Which model to load and how: the normal load path (registry cache or checkpoint file).

    The CLI builds one from its options and loads it here; ``--ray`` ships it to the actors.
    """

    name: str | None = None
    checkpoint: str | None = None
    config: str | None = None
    device: str = "auto"
    precision: str = "auto"
    threads: int | None = None
    optimize: bool = True
    calibration: dict | None = None  # the driver's applied calibration (ModelSetup.calibration)

    def load(self, progress: Callable[[str, int, int | None], None] | None = None) -> SyncModel:
        """Load the model here (downloads go through the cache and its lock, once per node).

        ``progress(name, done, total)`` is called as a checkpoint downloads.
        """
        from ..sync_model import load_model

        if self.threads:
            import torch

            torch.set_num_threads(self.threads)
        model = load_model(
            self.name,
            checkpoint=self.checkpoint,
            config=self.config,
            device=self.device,
            precision=self.precision,
            progress=progress,
            optimize=self.optimize,
        )
        if self.calibration is not None:  # checked against the model at the driver already
            model.info = replace(model.info, calibration=self.calibration)
        return model


class _PerFileJob:
    """A job whose unit of work is one media file, decoded into pieces by :func:`decode_file`."""

    def decode(self, source: str) -> Iterator[Piece]:
        return decode_file(source, self)  # type: ignore[arg-type]


@dataclass(frozen=True)
class PredictJob(_PerFileJob):
    """What ``avsync predict`` computes per file (its options, batch size included)."""

    options: PredictOptions
    setup: ModelSetup  # family, grid, window geometry and name of the model the actors load

    def reader_args(self) -> dict[str, Any]:
        return {"audio_stream": self.options.audio_stream}

    def plan(self, reader: Any, path: str) -> list[tuple[str, list[Any], int]]:
        from ..analysis.predict import plan_file_windows

        windows = plan_file_windows(reader, self.setup.geometry, self.options, path)
        return [("windows", windows, self.options.batch_size)]

    def finish(self, source: str, pieces: dict[str, list[Piece]], last: Piece, elapsed: float) -> SyncResult:
        """The file's result from its windows, as :func:`~sparsesync_cli.predict.predict_file` builds it."""
        from ..analysis.predict import combine_windows
        from ..analysis.results import Sampling
        from ..analysis.sampling import STOPPED_ALL

        setup = self.setup
        groups = _window_results(source, pieces, setup.grid)
        n = len(groups["windows"])  # the Ray path reads every window (--sample auto is refused)
        read = Sampling(sampling="all", windows_used=n, windows_total=n, stopped=STOPPED_ALL)
        result = combine_windows(
            source, setup.result_model(), setup.grid, groups["windows"], float(last["duration"]), elapsed,
            sampling=read,
        )  # fmt: skip
        return _with_object_stat(result, last)

    def failed(self, source: str, error: str, last: Piece, elapsed: float) -> SyncResult:
        from ..analysis.results import SyncResult

        setup = self.setup
        result = SyncResult.failed(
            source, error, model=setup.result_model(), grid=setup.grid, elapsed_sec=elapsed
        )
        return _with_object_stat(result, last)


@dataclass(frozen=True)
class ScoreJob(_PerFileJob):
    """What ``avsync score`` computes per file: av-benchmark's two windows and, optionally, all."""

    setup: ModelSetup
    clip_sec: float | None = None
    whole_file: bool = True
    batch_size: int = 1

    def reader_args(self) -> dict[str, Any]:
        from ..analysis.desync import AV_BENCHMARK_SHORT_SIDE

        return {"short_side": AV_BENCHMARK_SHORT_SIDE}

    def plan(self, reader: Any, path: str) -> list[tuple[str, list[Any], int]]:
        from ..analysis.desync import plan_score

        ends, whole = plan_score(reader, self.setup.geometry, self.clip_sec, self.whole_file, path)
        groups = [("ends", ends, self.batch_size)]
        return groups + ([("whole", whole, self.batch_size)] if whole else [])

    def finish(self, source: str, pieces: dict[str, list[Piece]], last: Piece, elapsed: float) -> Any:
        """The file's DeSync numbers, as :func:`~sparsesync_cli.analysis.desync.score_file` gives them."""
        from ..analysis.desync import combine_score
        from ..analysis.sampling import STOPPED_ALL

        groups = _window_results(source, pieces, self.setup.grid)
        whole = groups.get("whole")
        result = combine_score(source, groups["ends"], whole, self.setup.grid)
        if not whole:
            return result
        # as score_file records a whole-file read (the Ray path reads every window)
        return replace(result, windows_total=len(whole), sampling="all", stopped=STOPPED_ALL, skipped=0)

    def failed(self, source: str, error: str, last: Piece, elapsed: float) -> Any:
        from ..analysis.desync import DesyncResult

        return DesyncResult(path=source, ok=False, error=error)


@dataclass(frozen=True)
class EvaluateJob:
    """What ``avsync evaluate`` computes per protocol item: one window at its start and offset.

    Its unit (a Ray "source") is a chunk of ``batch_size`` consecutive items, encoded by
    :func:`item_chunks`: the local run's model batches, so the logits are the same numbers. A
    chunk's result is the list of its item records, as
    :func:`~sparsesync_cli.evaluation.run.evaluate_items` writes them. ``root``: the folder the
    items' paths are under, as every worker sees it (absolute). ``batch_size``: items per chunk
    (per model call).
    """

    setup: ModelSetup
    root: str
    batch_size: int = 1
    audio_stream: int | None = None

    def decode(self, source: str) -> Iterator[Piece]:
        """One piece: the chunk's readable items' frames and audio, and every item's file and error."""
        from ..evaluation.run import decode_items

        base = {**_empty_piece(source, time.time()), "group": "items", "n_chunks": 1, "groups": "items"}
        try:
            items = chunk_items(source)
            batches = decode_items(
                items, self.root, self.setup.geometry, len(items), self.audio_stream, self.setup.grid
            )
            decoded = [b for batch in batches for b in batch]  # one batch: the chunk is one model batch
            # each item's file and error, and the offset and start it was read at (drawn ones differ)
            rows = [[file, error, it.offset_sec, it.vstart_sec] for it, file, _, _, error in decoded]
            piece = {**base, "items": json.dumps(rows)}
            good = [b for b in decoded if b[4] is None]
            if good:
                piece.update(frames=np.stack([b[2] for b in good]), audio=np.stack([b[3] for b in good]))
            yield piece
        except Exception as e:  # decode_items keeps each item's problem to itself; this is a surprise
            yield {**base, "items": "[]", "error": _one_line(e)}

    def finish(self, source: str, pieces: dict[str, list[Piece]], last: Piece, elapsed: float) -> list[dict]:
        """The chunk's item records, in item order."""
        from ..evaluation.run import batch_records

        (piece,) = pieces["items"]
        rows = json.loads(str(piece["items"]))
        batch = [
            (replace(item, offset_sec=off, vstart_sec=start), f, e)
            for item, (f, e, off, start) in zip(chunk_items(source), rows, strict=True)
        ]
        logits = np.asarray(piece["logits"], np.float32).tolist()  # as the local run's tensor.tolist()
        return batch_records(batch, logits, self.setup.grid, self.setup.name)

    def failed(self, source: str, error: str, last: Piece, elapsed: float) -> list[dict]:
        from ..evaluation.run import item_record

        return [item_record(it, self.setup.grid, self.setup.name, error=error) for it in chunk_items(source)]


def item_chunks(items: Sequence[ProtocolItem], batch_size: int) -> list[str]:
    """Protocol items in chunks of ``batch_size``, each encoded as a string (a unit of work)."""
    return [
        json.dumps(
            {
                "chunk": i,
                "items": [_item_row(it) for it in items[lo : lo + batch_size]],
            }
        )
        for i, lo in enumerate(range(0, len(items), batch_size))
    ]  # the chunk number keeps two chunks of the same items apart


def _item_row(it: ProtocolItem) -> list:
    row = [it.path, it.offset_sec, it.vstart_sec]
    return row if it.draw is None else [*row, it.draw.seed, it.draw.pass_index, it.draw.row]


def chunk_items(source: str) -> list[ProtocolItem]:
    """The items of a chunk made by :func:`item_chunks` (floats travel exactly through JSON)."""
    from ..evaluation.protocol import Draw, ProtocolItem

    return [ProtocolItem(p, o, v, Draw(*d) if d else None) for p, o, v, *d in json.loads(source)["items"]]


def _window_results(
    source: str, pieces: dict[str, list[Piece]], grid: Sequence[float]
) -> dict[str, list[WindowResult]]:
    """Each group's window verdicts, from its pieces in chunk order."""
    from ..analysis.predict import window_result

    out: dict[str, list[WindowResult]] = {}
    for group, chunks in pieces.items():
        windows = out.setdefault(group, [])
        for p in chunks:
            logits = np.asarray(p["logits"], np.float32).tolist()  # as the local run's tensor.tolist()
            for t, shift, lg in zip(p["starts"].tolist(), p["shifts"].tolist(), logits, strict=True):
                windows.append(window_result(t, shift, lg, grid, source))
    return out


def _with_object_stat(result: SyncResult, piece: Piece) -> SyncResult:
    """An object's size and last-modified time (a local file's were read from disk already)."""
    if not is_uri(result.path) or int(piece["size"]) < 0:
        return result
    mtime = float(piece["mtime"])
    return replace(result, file_size=int(piece["size"]), file_mtime=None if np.isnan(mtime) else mtime)


def _empty_piece(source: str, t0: float) -> Piece:
    return {
        "source": source,
        "group": "",
        "chunk": 0,
        "n_chunks": 0,
        "groups": "",
        "frames": np.zeros((0, 1, 1, 1, 1), np.uint8),
        "audio": np.zeros((0, 1), np.float32),
        "starts": np.zeros(0),
        "shifts": np.zeros(0),
        "duration": float("nan"),
        "size": -1,
        "mtime": float("nan"),
        "error": "",
        "t0": t0,
    }


def _one_line(e: BaseException) -> str:
    """The cause a local batch records for this exception (UnexpectedError's words for a surprise)."""
    cause = (e if isinstance(e, AvsyncError) else UnexpectedError(e)).cause
    return " ".join(str(cause).split()) or "unknown error"


def decode_file(source: str, job: PredictJob | ScoreJob) -> Iterator[Piece]:
    """The pieces of one file: one per model batch, or a last piece carrying the file's error.

    Never raises for a bad file: whatever stops it (missing object, corrupt data, no audio)
    becomes an error piece, so the other files go on.
    """
    from ..analysis.predict import _decode_batches
    from ..analysis.windows import window_starts_sec
    from ..media.decode import MediaReader

    t0 = time.time()
    base = _empty_piece(source, t0)
    try:
        if is_uri(source):
            info = stat_uri(source)
            base.update(size=info.size, mtime=info.mtime if info.mtime is not None else float("nan"))
        geometry = job.setup.geometry
        with MediaReader(source, **job.reader_args()) as reader:
            base["duration"] = reader.info.duration_sec
            groups = job.plan(reader, source)
            base["groups"] = ",".join(g for g, _, _ in groups)
            for group, windows, batch_size in groups:
                starts = window_starts_sec(windows, geometry)
                n_chunks = -(-len(windows) // batch_size)
                batches = _decode_batches(reader, windows, batch_size, geometry)
                for i, (chunk, frames, audio) in enumerate(batches):
                    lo = i * batch_size
                    yield {
                        **base,
                        "group": group,
                        "chunk": i,
                        "n_chunks": n_chunks,
                        "frames": frames,
                        "audio": audio,
                        "starts": np.asarray(starts[lo : lo + len(chunk)], np.float64),
                        "shifts": np.asarray([w.shift_sec for w in chunk], np.float64),
                    }
    except Exception as e:  # one file's problem never stops the batch: it becomes its result
        yield {**base, "error": _one_line(e)}


def run_piece(model: SyncModel, piece: Piece) -> Piece:
    """The piece with the model's ``logits`` ``(B, C)`` float32 and without its (large) inputs."""
    out = {k: v for k, v in piece.items() if k not in ("frames", "audio")}
    if piece["error"] or len(piece["frames"]) == 0:
        out["logits"] = np.zeros((0, len(model.grid)), np.float32)
    else:
        from ..analysis.predict import calibrated_logits

        logits = calibrated_logits(model, piece["frames"], piece["audio"])
        out["logits"] = logits.numpy().astype(np.float32, copy=False)
    return out


@dataclass
class _File:
    groups: tuple[str, ...] | None = None
    n_chunks: dict[str, int] = field(default_factory=dict)
    chunks: dict[tuple[str, int], Piece] = field(default_factory=dict)

    def complete(self) -> bool:
        if self.groups is None or any(g not in self.n_chunks for g in self.groups):
            return False
        return len(self.chunks) == sum(self.n_chunks[g] for g in self.groups)


class Assembler:
    """Turns pieces, in any order and possibly repeated, into one result per file, exactly once."""

    def __init__(self, job: PredictJob | ScoreJob | EvaluateJob) -> None:
        self.job = job
        self._open: dict[str, _File] = {}
        self.finished: set[str] = set()

    def add(self, piece: Piece) -> Any:
        """Take one piece; return the file's result when this piece completes it (else None)."""
        source = str(piece["source"])
        if source in self.finished:
            return None  # a retried task's repeat, or pieces of a file that already failed
        if piece["error"]:
            return self._finish(source, piece, error=str(piece["error"]))
        f = self._open.setdefault(source, _File())
        f.groups = tuple(str(piece["groups"]).split(","))
        f.n_chunks[str(piece["group"])] = int(piece["n_chunks"])
        f.chunks[(str(piece["group"]), int(piece["chunk"]))] = piece
        if not f.complete():
            return None
        return self._finish(source, piece)

    def pending(self) -> list[str]:
        """Sources with pieces received but not complete."""
        return list(self._open)

    def _finish(self, source: str, last: Piece, error: str | None = None) -> Any:
        f = self._open.pop(source, None)
        self.finished.add(source)
        elapsed = time.time() - float(last["t0"])
        if error is None:
            assert f is not None
            try:
                pieces = {g: [f.chunks[(g, i)] for i in range(f.n_chunks[g])] for g in f.groups or ()}
                return self.job.finish(source, pieces, last, elapsed)
            except AvsyncError as e:
                error = _one_line(e)
        return self.job.failed(source, error, last, elapsed)

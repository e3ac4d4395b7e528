"""Whole-file prediction: plan windows, decode them ahead of the model, aggregate.

Data flows one way: file -> :class:`~sparsesync_cli.media.decode.MediaReader` (frames and
samples placed by presentation time) -> centre crop -> model logits per window -> aggregate ->
:class:`~sparsesync_cli.analysis.results.SyncResult`. Decoding runs in a background thread that fills a
small bounded queue, so the model never waits for the decoder on CPU and memory stays bounded.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import AvsyncError, MediaError, unexpected
from .sampling import SamplingOptions

if TYPE_CHECKING:
    import numpy as np
    import torch

    from ..sync_model import SyncModel
    from .results import ModelRecord, Sampling, SyncResult, WindowResult
    from .sampling import Sampled
    from .windows import Window

VIDEO_EXTENSIONS = (
    ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".ts", ".mts", ".m2ts", ".mpg", ".mpeg",
    ".flv", ".wmv", ".3gp", ".ogv", ".mxf",
)  # fmt: skip
PREFETCH_BATCHES = 2  # decoded batches waiting for the model: enough to hide decode time, small in memory


@dataclass(frozen=True)
class PredictOptions:
    """How to look at a file. Defaults: the whole file, one window after another, no shift."""

    start_sec: float | None = None
    duration_sec: float | None = None
    shift_sec: float = 0.0
    stride_sec: float | None = None
    batch_size: int = 1
    audio_stream: int | None = None
    sampling: SamplingOptions = field(default_factory=SamplingOptions)  # --sample all|auto

    def __post_init__(self) -> None:
        if self.start_sec is not None and not self.start_sec >= 0:
            raise ValueError(f"start_sec (--start) must be a file time >= 0 s, not {self.start_sec:g}")
        if self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if self.stride_sec is not None and self.stride_sec <= 0:
            raise ValueError("stride_sec must be > 0")
        if self.duration_sec is not None and self.duration_sec <= 0:
            raise ValueError("duration_sec must be > 0")


# progress(done_windows, total_windows) for one file
WindowProgress = Callable[[int, int], None]


def _read_window(reader, w: Window, geometry) -> tuple[np.ndarray, np.ndarray]:
    """One window's centre-cropped frames ``(T, 3, 224, 224)`` and samples ``(N,)``.

    A planned window's USED part lies inside both streams; its unused margins (Synchformer
    reads 2 frames either side of the 4.8 s it uses) may not, and are filled with the nearest
    frame. Audio outside the stream is silence (the reader's rule).
    """
    import numpy as np

    from ..features.common import center_crop_array
    from .windows import clip_range

    first, end, pad_before, pad_after = clip_range(
        w.frame_start, w.frame_start + geometry.frames, reader.video_span
    )
    frames = center_crop_array(reader.read_frames(first, end - first))
    if pad_before or pad_after:
        frames = np.concatenate(
            [np.repeat(frames[:1], pad_before, axis=0), frames, np.repeat(frames[-1:], pad_after, axis=0)]
        )
    return frames, reader.read_audio(w.sample_start, geometry.samples)


def _decode_batches(
    reader, windows: Sequence[Window], batch_size: int, geometry, skipped: list | None = None
) -> Iterator[tuple[list[Window], np.ndarray, np.ndarray]]:
    """Decode windows in order, ``batch_size`` at a time, as (windows, frames uint8, audio).

    With ``skipped`` (a list), a window whose data cannot be decoded is appended to it as
    ``(window, cause)`` and left out; without it, the MediaError propagates.
    """
    import numpy as np

    chunk: list[Window] = []
    pairs: list[tuple[np.ndarray, np.ndarray]] = []
    for w in windows:
        try:
            pairs.append(_read_window(reader, w, geometry))
        except MediaError as e:
            if skipped is None:
                raise
            skipped.append((w, e.cause))
            continue
        chunk.append(w)
        if len(chunk) == batch_size:
            yield chunk, np.stack([f for f, _ in pairs]), np.stack([a for _, a in pairs])
            chunk, pairs = [], []
    if chunk:
        yield chunk, np.stack([f for f, _ in pairs]), np.stack([a for _, a in pairs])


def _prefetch(it: Iterator, depth: int) -> Iterator:
    """Run ``it`` in a thread, ``depth`` items ahead; re-raise its exception in the consumer."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def put(item: tuple) -> bool:
        while not stop.is_set():  # never block for good: the consumer may have gone away
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in it:
                if not put((None, item)):
                    return
        except BaseException as e:  # handed to the consumer, which re-raises it
            put((e, None))
            return
        put((None, done))

    t = threading.Thread(target=work, name="avsync-decode", daemon=True)
    t.start()
    try:
        while True:
            err, item = q.get()
            if err is not None:
                raise err
            if item is done:
                return
            yield item
    finally:
        stop.set()
        t.join(timeout=5)


def calibrated_logits(model: SyncModel, frames: np.ndarray, audio: np.ndarray) -> torch.Tensor:
    """The model's logits for a batch, divided by its fitted temperature when it has one."""
    logits = model.logits(frames, audio)
    calibration = getattr(model.setup, "calibration", None)
    if calibration is not None:  # a fitted temperature (avsync evaluate --fit-calibration)
        logits = logits / calibration["temperature"]
    return logits


def window_result(
    start_sec: float, shift_sec: float, logits: Sequence[float], grid: Sequence[float], path: str | None
) -> WindowResult:
    """One window's verdict from its logits; AvsyncError when they are not finite."""
    from .results import WindowResult

    try:
        return WindowResult.from_logits(start_sec, shift_sec, logits, grid)
    except ValueError:  # non-finite logits: fp16 overflow or a broken checkpoint
        raise AvsyncError(
            f"the model gave non-finite scores for the window at {start_sec:.2f} s "
            "(with --precision fp16/bf16, try fp32)",
            path,
        ) from None


def run_windows(
    reader,
    windows: Sequence[Window],
    model: SyncModel,
    *,
    batch_size: int = 1,
    on_window: WindowProgress | None = None,
    path: str | None = None,
    skipped: list | None = None,
) -> list[WindowResult]:
    """The model's verdict on each window of an open :class:`MediaReader`, in order.

    Decoding runs one or two batches ahead of the model in a background thread. ``skipped``:
    see :func:`_decode_batches` (undecodable windows are recorded there instead of failing).
    """
    from ..heap import heap_reuse

    out: list[WindowResult] = []
    if on_window:
        on_window(0, len(windows))
    # Every window allocates the same large buffers again; reusing freed memory instead of
    # mapping fresh pages removes most of the system time on CPU (see heap.py).
    with heap_reuse():
        batches = _prefetch(
            _decode_batches(reader, windows, batch_size, model.geometry, skipped), PREFETCH_BATCHES
        )
        for chunk, frames, audio in batches:
            logits = calibrated_logits(model, frames, audio)
            for w, lg in zip(chunk, logits.tolist(), strict=True):
                t = model.geometry.used_start_sec(w)
                out.append(window_result(t, w.shift_sec, lg, model.grid, path))
            if on_window:
                on_window(len(out) + len(skipped or ()), len(windows))
    return out


@dataclass(frozen=True)
class WindowsRead:
    """The windows an analysis read: results in file order, skipped windows, how it sampled."""

    results: list[WindowResult]
    skipped: list[tuple[float, str]]  # (used-part start, s; why it could not be decoded)
    sampled: Sampled
    total: int


def analyse_windows(
    reader,
    windows: Sequence[Window],
    model: SyncModel,
    sampling: SamplingOptions,
    *,
    batch_size: int = 1,
    on_window: WindowProgress | None = None,
    path: str | None = None,
) -> WindowsRead:
    """Run the model on every window (``sampling.mode == "all"``) or as the stopping rule says.

    Windows that cannot be decoded are skipped with their cause; :class:`MediaError` when none
    of the visited windows could be decoded.
    """
    from .sampling import sample_windows
    from .windows import window_starts_sec

    times = window_starts_sec(windows, model.geometry)
    by_start = {w: i for i, w in enumerate(windows)}
    results: dict[int, WindowResult] = {}
    skipped: dict[int, str] = {}
    progress = [0]

    def evaluate(batch: list[int]) -> dict[int, tuple[float, ...]]:
        bad: list = []
        done0 = progress[0]

        def tick(done: int, _total: int) -> None:
            if on_window:
                on_window(done0 + done, len(windows))

        got = run_windows(
            reader, [windows[i] for i in batch], model, batch_size=batch_size, on_window=tick,
            path=path, skipped=bad,
        )  # fmt: skip
        progress[0] += len(batch)
        for w, cause in bad:
            skipped[by_start[w]] = cause
        decoded = [i for i in batch if i not in skipped]
        for i, r in zip(decoded, got, strict=True):
            results[i] = r
        return {i: results[i].probs for i in decoded}

    if on_window:
        on_window(0, len(windows))
    sampled = sample_windows(times, model.grid, evaluate, sampling, batch_size=batch_size)
    if not results:
        causes = sorted(set(skipped.values()))
        raise MediaError(
            f"no window could be decoded ({len(skipped)} tried): {causes[0] if causes else 'no windows'}",
            path,
        )
    return WindowsRead(
        results=[results[i] for i in sorted(results)],
        skipped=[(times[i], skipped[i]) for i in sorted(skipped)],
        sampled=sampled,
        total=len(windows),
    )


def plan_file_windows(reader, geometry, options: PredictOptions, path: str) -> list[Window]:
    """The windows ``options`` asks for in the open file (AvsyncError when there are none)."""
    from .windows import plan_windows, window_at

    # --start places the first window with the paper's arithmetic (window_at), so a window
    # given in seconds reads what the reference reads; the rest follow it every stride.
    anchor = window_at(options.start_sec, options.shift_sec) if options.start_sec is not None else None
    return plan_windows(
        reader.video_span,
        reader.audio_span,
        geometry,
        stride_sec=options.stride_sec,
        duration_sec=options.duration_sec,
        shift_sec=options.shift_sec,
        anchor=anchor,
        path=path,
    )


def predict_file(
    path: str | os.PathLike,
    model: SyncModel,
    options: PredictOptions | None = None,
    *,
    on_window: WindowProgress | None = None,
) -> SyncResult:
    """Measure the audio-visual offset of one file.

    Raises :class:`~sparsesync_cli.errors.AvsyncError` (one line naming the file and the cause)
    when the file cannot be checked; :func:`iter_predictions` turns that into a failed result.
    """
    from ..media.decode import MediaReader
    from .results import ModelRecord

    options = options or PredictOptions()
    path = os.fspath(path)
    t0 = time.perf_counter()
    with MediaReader(path, audio_stream=options.audio_stream) as reader:
        windows = plan_file_windows(reader, model.geometry, options, path)
        read = analyse_windows(
            reader, windows, model, options.sampling, batch_size=options.batch_size, on_window=on_window,
            path=path,
        )  # fmt: skip
        duration = reader.info.duration_sec
    return combine_windows(
        path, ModelRecord.of(model.setup), model.grid, read.results, duration, time.perf_counter() - t0,
        sampling=read_summary(read, options.sampling.mode),
    )  # fmt: skip


def read_summary(read: WindowsRead, mode: str) -> Sampling:
    """The result fields saying what was read (:class:`~sparsesync_cli.analysis.results.Sampling`)."""
    from .results import Sampling

    return Sampling(
        sampling=mode,
        windows_used=len(read.results),
        windows_total=read.total,
        stopped=read.sampled.stopped,
        decided=read.sampled.decided,
        skipped=tuple(read.skipped),
    )


def combine_windows(
    path: str,
    result_model: ModelRecord,
    grid: Sequence[float],
    windows: Sequence[WindowResult],
    duration_sec: float | None,
    elapsed_sec: float | None,
    *,
    sampling: Sampling | None = None,
) -> SyncResult:
    """The file's result from its windows' verdicts (the one place a file's verdict is combined)."""
    import numpy as np

    from .aggregate import aggregate
    from .results import SyncResult

    probs = np.array([w.probs for w in windows], dtype=np.float64)
    return SyncResult.from_aggregate(
        path,
        model=result_model,
        grid=grid,
        windows=windows,
        aggregate=aggregate(probs, grid, [w.start_sec for w in windows]),
        duration_sec=duration_sec,
        elapsed_sec=elapsed_sec,
        sampling=sampling,
    )


def iter_predictions(
    paths: Iterable[str | os.PathLike],
    model: SyncModel,
    options: PredictOptions | None = None,
    *,
    on_window: Callable[[str, int, int], None] | None = None,
    on_error: Callable[[str, AvsyncError], None] | None = None,
    decode_workers: int | str | None = None,
) -> Iterator[SyncResult]:
    """Predict each file in turn; a file that fails yields a failed result and the batch goes on.

    Whatever goes wrong in one file (an :class:`AvsyncError`, or any other exception, which
    becomes an :class:`~sparsesync_cli.errors.UnexpectedError` naming what failed and where)
    is that file's failed result. ``on_error(path, error)`` sees each failure as it happens
    (the CLI prints the traceback of unexpected ones with --debug).

    ``decode_workers`` (N or ``"auto"``): decode N files at once in worker processes, windows
    batched across files for the model, results in the same order
    (:mod:`~sparsesync_cli.distributed.batched_run`; failures arrive as results, not through
    ``on_error``). None: decode in a thread of this process, one file after another.
    """
    from ..heap import heap_reuse
    from .results import ModelRecord, SyncResult

    if decode_workers is not None:
        from ..distributed.batched_run import predict_pooled

        yield from predict_pooled(
            [os.fspath(p) for p in paths],
            model,
            options or PredictOptions(),
            workers=decode_workers,
            on_window=on_window,
        )
        return

    # One heap for the whole batch: each file's windows reuse the pages the previous file's
    # windows mapped, instead of every file faulting its ~2 GB in again (see heap.py).
    with heap_reuse():
        for p in paths:
            p = os.fspath(p)
            cb = (lambda done, total, _p=p: on_window(_p, done, total)) if on_window else None
            try:
                result = predict_file(p, model, options, on_window=cb)
            except Exception as e:  # the per-file boundary: nothing in one file ends the batch
                err = unexpected(e, p)
                if on_error:
                    on_error(p, err)
                result = SyncResult.failed(p, err, model=ModelRecord.of(model.setup), grid=model.grid)
            yield result


def collect_media_files(
    inputs: Iterable[str | os.PathLike],
    *,
    recursive: bool = False,
    extensions: Sequence[str] = VIDEO_EXTENSIONS,
) -> list[Path]:
    """Expand files and folders into the list of files to check, in a stable order.

    Files named explicitly are kept whatever their extension (the user asked for them); files
    found in folders are filtered by ``extensions``. A path that does not exist is kept, so it
    is reported as a failed file rather than silently skipped.
    """
    exts = {e.lower() if e.startswith(".") else "." + e.lower() for e in extensions}
    out: list[Path] = []
    seen: set[Path] = set()
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = p.rglob("*") if recursive else p.iterdir()
            files = sorted(f for f in found if f.is_file() and f.suffix.lower() in exts)
        else:
            # Named explicitly: kept whatever its extension, and when missing it fails as a
            # file of the batch (a one-line error in the results) instead of stopping the run.
            files = [p]
        for f in files:
            key = f.resolve()
            if key not in seen:
                seen.add(key)
                out.append(f)
    return out

"""``avsync score``: the DeSync metric of video-to-audio papers, per file and over a folder.

DeSync is Synchformer's offset: the mean absolute predicted offset in seconds (lower is better;
0 = in sync). Two protocols, reported side by side so a paper can cite which one it used:

- ``desync_av_benchmark``: hkchengrex/av-benchmark's protocol (see :mod:`sparsesync_cli.desync`
  for the file/line references): the first and the last 4.8 s of a clip of ``clip_sec``
  seconds from the start (default: the whole overlap of the two streams), frames scaled to a
  224 px shorter side and centre-cropped as av-benchmark reads them, argmax over the 21
  classes, mean of the two |offsets|; the dataset score is the mean over files.
- ``desync_windows`` / ``desync_aggregated``: the whole file in back-to-back 4.8 s windows with
  the same frames: the mean |argmax offset| over all windows, and |offset| of avsync's combined
  verdict (robust to junk windows).

Known differences from av-benchmark itself, all small: it scales frames with torchvision's
antialiased bicubic (we use FFmpeg's bicubic scaler at the same size), resamples audio with
torchaudio (we use FFmpeg's), and reads video and audio from separate files starting together
(we read one file by presentation timestamps).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import AvsyncError, UsageError, unexpected

if TYPE_CHECKING:
    from .sync_model import SyncModel

AV_BENCHMARK_SHORT_SIDE = 224  # av-benchmark: Resize(224, bicubic) then CenterCrop(224)
PROTOCOL = "av-benchmark first+last 4.8 s (hkchengrex/av-benchmark 050a5cd), 21-class argmax"


@dataclass(frozen=True)
class DesyncResult:
    """One file's DeSync numbers (seconds; None when not computed or the file failed)."""

    path: str
    ok: bool
    error: str | None = None
    desync_av_benchmark: float | None = None
    first_offset_sec: float | None = None
    last_offset_sec: float | None = None
    desync_windows: float | None = None
    desync_aggregated: float | None = None
    n_windows: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def score_file(
    path: str | os.PathLike,
    model: SyncModel,
    *,
    clip_sec: float | None = None,
    whole_file: bool = True,
    batch_size: int = 1,
) -> DesyncResult:
    """DeSync of one file; raises AvsyncError when it cannot be scored (see score_files)."""
    from .aggregate import aggregate
    from .desync import av_benchmark_windows, desync_aggregated, desync_av_benchmark, desync_windows
    from .media.decode import MediaReader
    from .predict import run_windows
    from .windows import plan_windows

    if model.info.family != "synchformer":
        raise UsageError("DeSync is defined with Synchformer: use --model synchformer-audioset (or another)")
    path = os.fspath(path)
    grid = model.grid
    with MediaReader(path, short_side=AV_BENCHMARK_SHORT_SIDE) as reader:
        first, last = av_benchmark_windows(reader.video_span, reader.audio_span, clip_sec, path=path)
        ends = run_windows(reader, [first, last], model, batch_size=batch_size, path=path)
        logits = [np.array(w.logits) for w in ends]
        offsets = [float(grid[int(np.argmax(z))]) for z in logits]
        fields: dict[str, Any] = {
            "desync_av_benchmark": desync_av_benchmark(logits[0], logits[1], grid),
            "first_offset_sec": offsets[0],
            "last_offset_sec": offsets[1],
        }
        if whole_file:
            windows = plan_windows(reader.video_span, reader.audio_span, model.geometry, path=path)
            results = run_windows(reader, windows, model, batch_size=batch_size, path=path)
            all_logits = np.array([w.logits for w in results])
            agg = aggregate(np.array([w.probs for w in results]), grid, [w.start_sec for w in results])
            fields.update(
                desync_windows=desync_windows(all_logits, grid),
                desync_aggregated=desync_aggregated(agg),
                n_windows=len(results),
            )
    return DesyncResult(path=path, ok=True, **fields)


def score_files(
    paths: Iterable[str | os.PathLike],
    model: SyncModel,
    *,
    on_error: Callable[[str, AvsyncError], None] | None = None,
    **kwargs: Any,
) -> Iterator[DesyncResult]:
    """Score each file; one that cannot be scored yields a failed result and the run goes on.

    Any exception in one file is its failed result (see :func:`~sparsesync_cli.predict.iter_predictions`);
    ``on_error(path, error)`` sees each failure. A UsageError (a wrong model) ends the run.
    """
    for p in paths:
        p = os.fspath(p)
        try:
            result = score_file(p, model, **kwargs)
        except UsageError:
            raise
        except Exception as e:  # the per-file boundary: nothing in one file ends the run
            err = unexpected(e, p)
            if on_error:
                on_error(p, err)
            result = DesyncResult(path=p, ok=False, error=" ".join(err.cause.split()))
        yield result


def summarize(results: Iterable[DesyncResult]) -> dict[str, Any]:
    """The dataset scores: the mean of each per-file number over the files that were scored."""
    rs = list(results)
    ok = [r for r in rs if r.ok]

    def mean(field: str) -> float | None:
        vals = [getattr(r, field) for r in ok if getattr(r, field) is not None]
        return float(np.mean(vals)) if vals else None

    return {
        "files": len(rs),
        "scored": len(ok),
        "failed": len(rs) - len(ok),
        "desync_av_benchmark": mean("desync_av_benchmark"),
        "desync_windows": mean("desync_windows"),
        "desync_aggregated": mean("desync_aggregated"),
        "protocol": PROTOCOL,
    }

"""``avsync score``: the DeSync score of video-to-audio papers, per file and over a folder, as
hkchengrex/av-benchmark computes it and over whole files.

DeSync is Synchformer's offset: the mean absolute predicted offset in seconds (lower is better;
0 = in sync). Two protocols, reported side by side by :func:`score_files` so a paper can cite
which one it used:

- ``desync_av_benchmark``: av-benchmark's protocol (below): the first and the last 4.8 s of a
  clip of ``clip_sec`` seconds from the start (default: the whole overlap of the two streams),
  frames scaled to a 224 px shorter side and centre-cropped as av-benchmark reads them, argmax
  over the 21 classes, mean of the two |offsets|; the dataset score is the mean over files.
- ``desync_windows`` / ``desync_aggregated``: the whole file in back-to-back 4.8 s windows with
  the same frames: the mean |argmax offset| over all windows, and |offset| of avsync's combined
  verdict (robust to junk windows).

Known differences from av-benchmark itself, all small: it scales frames with torchvision's
antialiased bicubic (we use FFmpeg's bicubic scaler at the same size), resamples audio with
torchaudio (we use FFmpeg's), and reads video and audio from separate files starting together
(we read one file by presentation timestamps).

What av-benchmark does (commit 050a5cd; paths relative to that repository):

1. Clip. ``--audio_length L`` seconds (no default; MMAudio uses 8 s on VGGSound) from the
   START of each stream: the first ``int(25 * L)`` frames of the video at 25 fps
   (``av_bench/data/video_dataset.py`` lines 20, 41, 70-74, 103; torio's ``frame_rate=25``
   is ffmpeg's ``fps`` filter) and the first ``int(16000 * L)`` samples of the (generated)
   audio, a separate wav/flac, mono = mean of channels, resampled to 16 kHz with
   ``torchaudio.transforms.Resample`` (``av_bench/data/audio_dataset.py`` lines 200, 208-216).
   A video with fewer frames is dropped (lines 88-93 -> ``None`` -> ``error_avoidance_collate``,
   lines 23-25); a shorter audio is replaced by the NEXT file's audio under that file's name
   (``audio_dataset.py`` lines 217-218, 224-230), so it is in effect dropped too.
2. Segments. Video: 16-frame segments every 8 frames, ``(T - 16) // 8 + 1`` of them
   (``extract_video.py`` lines 44-51); frames resized to 224 on the short side (bicubic), centre
   cropped to 224, scaled to [0, 1], normalised with mean 0.5 and std 0.5 in float32
   (``video_dataset.py`` lines 51-57). NOTE: Synchformer's own test transform (and avsync's
   reader) scales to 256 and crops 224, so av-benchmark shows the model a wider field of view.
   Audio: 10,240-sample segments every 5,120 samples (``av_bench/extract.py`` lines 22-29), mel
   power spectrogram (16 kHz, n_fft 1024, win 400, hop 160, 128 mels;
   ``av_bench/extraction_models.py`` lines 57-63), ``log(x + 1e-6)``, padded to 66 frames,
   ``(x + 4.2677393) / (2 * 4.5689974)`` (``extract.py`` lines 31-37).
3. Two windows per video. The first 14 segments and the last 14 segments
   (``av_bench/evaluate.py`` lines 180 and 185), i.e. 4.8 s each: ``[0, 4.8)`` s and
   ``[8 (S - 14) / 25, 8 (S - 14) / 25 + 4.8)`` s of the clip. For ``L = 8`` (S = 24): 0-4.8 s
   and 3.2-8.0 s. The "last 4.8 s" is the end of the CLIP, not of the file; a file longer than
   ``L`` is never looked at past ``L``.
4. Score. 21 classes on ``make_class_grid(-2, 2, 21)`` (float32 ``linspace``), ``argmax`` of the
   logits of each window, ``abs(grid[argmax])`` appended once per window, and DeSync is the mean
   of all those values over all videos (``evaluate.py`` lines 171-191), which equals the mean
   over videos of the per-video mean of the two windows (every video adds exactly two). The
   README (lines 33-35) names the checkpoint: Synchformer ``24-01-04T16-39-21`` (AudioSet).

Here the clip starts at the first moment both streams exist in file time (0 s in an ordinary
file). av-benchmark takes video and audio from separate files and assumes they start together;
for one muxed file the clock (presentation timestamps) decides instead. Scores use exact grid
values (av-benchmark's float32 grid differs by < 3e-8).

Whole-file variants (for files longer than one clip, where av-benchmark would look only at the
beginning):

- :func:`desync_windows`: the same rule (mean ``|grid[argmax]|``) over every window planned over
  the file by :func:`windows.plan_windows` with Synchformer's geometry. Comparable in scale with
  av-benchmark's numbers: it includes the per-window errors of the model.
- :func:`desync_aggregated`: ``|offset|`` of the file's aggregated verdict
  (:func:`aggregate.aggregate`), one robust number per file; junk windows do not add to it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import clock
from ..errors import AvsyncError, MediaError, UsageError, unexpected
from ..families import SYNCHFORMER
from .aggregate import Aggregate, aggregate
from .sampling import SamplingOptions
from .windows import SAMPLES_PER_FRAME, SYNCHFORMER_GEOMETRY, Span, Window

if TYPE_CHECKING:
    from ..sync_model import SyncModel

SEGMENT_FRAMES = 16  # one Synchformer segment: 0.64 s of video ...
SEGMENT_STEP_FRAMES = 8  # ... every 0.32 s
SEGMENT_SAMPLES = 10_240  # and the same 0.64 s of audio ...
SEGMENT_STEP_SAMPLES = 5_120  # ... every 0.32 s
SEGMENTS_PER_WINDOW = 14  # 14 segments = 4.8 s = one model input


def _segments(n_frames: int, n_samples: int) -> int:
    """How many segments av-benchmark cuts from a clip (``(T - size) // step + 1``)."""
    n_v = (n_frames - SEGMENT_FRAMES) // SEGMENT_STEP_FRAMES + 1
    n_a = (n_samples - SEGMENT_SAMPLES) // SEGMENT_STEP_SAMPLES + 1
    # With n_samples = int(16000 L) and n_frames = int(25 L) both are floor(25 L / 8) - 1; take
    # the smaller should float rounding ever split them (the model needs both).
    return min(n_v, n_a)


def av_benchmark_windows(
    video_span: Span, audio_span: Span, clip_sec: float | None = None, *, path: str | None = None
) -> tuple[Window, Window]:
    """The first and the last window av-benchmark scores, as Synchformer windows of this file.

    ``clip_sec``: av-benchmark's ``--audio_length``; None takes the whole overlap of the two
    streams. Raises :class:`MediaError` where av-benchmark would drop the file (shorter than the
    clip) or could not make one window (shorter than 4.8 s). Both windows are the same one when
    the clip holds exactly 14 segments; av-benchmark then counts it twice.
    """
    v0, v1 = video_span
    a0, a1 = audio_span
    g = SYNCHFORMER_GEOMETRY
    # The clip starts on the frame grid at the first moment both streams exist.
    start = max(v0, -(-a0 // SAMPLES_PER_FRAME))
    have_frames = max(0, min(v1 - start, (a1 - start * SAMPLES_PER_FRAME) // SAMPLES_PER_FRAME))
    if clip_sec is None:
        n_frames, n_samples = have_frames, have_frames * SAMPLES_PER_FRAME
    else:
        n_frames, n_samples = int(clock.VIDEO_FPS * clip_sec), int(clock.SAMPLE_RATE * clip_sec)
        if have_frames < n_frames or (have_frames * SAMPLES_PER_FRAME) < n_samples:
            raise MediaError(
                f"shorter than the clip: {have_frames / clock.VIDEO_FPS:.2f} s of audio and video, "
                f"{clip_sec:g} s needed (av-benchmark drops such files)",
                path,
            )
    n_seg = _segments(n_frames, n_samples)
    if n_seg < SEGMENTS_PER_WINDOW:
        raise MediaError(
            f"shorter than one window: {n_frames / clock.VIDEO_FPS:.1f} s of audio and video overlap, "
            f"{g.used_sec:.1f} s needed",
            path,
        )
    first_frame = start
    last_frame = start + SEGMENT_STEP_FRAMES * (n_seg - SEGMENTS_PER_WINDOW)
    first, last = (
        Window(f - g.used_frames[0], f * SAMPLES_PER_FRAME - g.used_samples[0])
        for f in (first_frame, last_frame)
    )
    clip_audio = (start * SAMPLES_PER_FRAME, start * SAMPLES_PER_FRAME + n_samples)
    for w in (first, last):  # the used parts are 14 segments inside the clip, video and audio alike
        (f0, f1), (s0, s1) = g.used_video_range(w), g.used_audio_range(w)
        assert start <= f0 and f1 <= start + n_frames and clip_audio[0] <= s0 and s1 <= clip_audio[1]
        assert f1 - f0 == SEGMENT_FRAMES + (SEGMENTS_PER_WINDOW - 1) * SEGMENT_STEP_FRAMES
    return first, last


def _abs_offsets(logits: np.ndarray, grid: Sequence[float]) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    g = np.asarray(grid, dtype=np.float64)
    if z.ndim != 2 or z.shape[1] != g.size or z.shape[0] < 1:
        raise ValueError(f"expected logits of shape (windows, {g.size}), got {z.shape}")
    return np.abs(g[np.argmax(z, axis=1)])  # argmax ties: first class, like torch.argmax


def desync_av_benchmark(
    first_logits: Sequence[float] | np.ndarray,
    last_logits: Sequence[float] | np.ndarray,
    grid: Sequence[float],
) -> float:
    """One file's DeSync as av-benchmark scores it: mean ``|offset|`` of its first and last window."""
    return float(_abs_offsets(np.stack([first_logits, last_logits]), grid).mean())


def desync_windows(logits: np.ndarray, grid: Sequence[float]) -> float:
    """Mean ``|grid[argmax]|`` over all windows of a file (``logits``: windows x classes)."""
    return float(_abs_offsets(logits, grid).mean())


def desync_aggregated(agg: Aggregate) -> float:
    """``|offset|`` of the file's aggregated verdict."""
    return abs(agg.offset_sec)


# --- Scoring files (``avsync score``) ---

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
    n_windows: int = 0  # windows the whole-file numbers come from
    windows_total: int = 0  # windows a full read of the file has
    sampling: str = "all"  # "auto": the windows were chosen by the stopping rule (fast triage)
    stopped: str | None = None  # why the whole-file read stopped
    skipped: int = 0  # windows that could not be decoded

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def score_file(
    path: str | os.PathLike,
    model: SyncModel,
    *,
    clip_sec: float | None = None,
    whole_file: bool = True,
    batch_size: int = 1,
    sampling: SamplingOptions | None = None,
) -> DesyncResult:
    """DeSync of one file; raises AvsyncError when it cannot be scored (see score_files)."""
    from ..media.decode import MediaReader
    from .predict import analyse_windows, run_windows

    check_family(model.setup.family)
    path = os.fspath(path)
    sampling = sampling or SamplingOptions()
    with MediaReader(path, short_side=AV_BENCHMARK_SHORT_SIDE) as reader:
        ends, whole = plan_score(reader, model.geometry, clip_sec, whole_file, path)
        end_results = run_windows(reader, ends, model, batch_size=batch_size, path=path)
        read = None
        if whole:
            read = analyse_windows(reader, whole, model, sampling, batch_size=batch_size, path=path)
    result = combine_score(path, end_results, read.results if read else None, model.grid)
    if read is None:
        return result
    return replace(
        result,
        windows_total=read.total,
        sampling=sampling.mode,
        stopped=read.sampled.stopped,
        skipped=len(read.skipped),
    )


def check_family(family: str) -> None:
    """UsageError unless ``family`` is Synchformer's (DeSync is defined with it)."""
    if family != SYNCHFORMER:
        raise UsageError("DeSync is defined with Synchformer: use --model synchformer-audioset (or another)")


def plan_score(reader, geometry, clip_sec: float | None, whole_file: bool, path: str) -> tuple[list, list]:
    """The windows :func:`score_file` reads: av-benchmark's first and last, and (``whole_file``) all."""
    from .windows import plan_windows

    first, last = av_benchmark_windows(reader.video_span, reader.audio_span, clip_sec, path=path)
    whole = plan_windows(reader.video_span, reader.audio_span, geometry, path=path) if whole_file else []
    return [first, last], whole


def combine_score(path: str, ends: Sequence, whole: Sequence | None, grid: Sequence[float]) -> DesyncResult:
    """A file's DeSync numbers from the window results of :func:`plan_score`'s two groups."""
    logits = [np.array(w.logits) for w in ends]
    offsets = [float(grid[int(np.argmax(z))]) for z in logits]
    fields: dict[str, Any] = {
        "desync_av_benchmark": desync_av_benchmark(logits[0], logits[1], grid),
        "first_offset_sec": offsets[0],
        "last_offset_sec": offsets[1],
    }
    if whole:
        all_logits = np.array([w.logits for w in whole])
        agg = aggregate(np.array([w.probs for w in whole]), grid, [w.start_sec for w in whole])
        fields.update(
            desync_windows=desync_windows(all_logits, grid),
            desync_aggregated=desync_aggregated(agg),
            n_windows=len(whole),
        )
    return DesyncResult(path=path, ok=True, **fields)


def score_files(
    paths: Iterable[str | os.PathLike],
    model: SyncModel,
    *,
    on_error: Callable[[str, AvsyncError], None] | None = None,
    decode_workers: int | str | None = None,
    **kwargs: Any,
) -> Iterator[DesyncResult]:
    """Score each file; one that cannot be scored yields a failed result and the run goes on.

    Any exception in one file is its failed result (see
    :func:`~sparsesync_cli.analysis.predict.iter_predictions`); ``on_error(path, error)`` sees
    each failure. A UsageError (a wrong model) ends the run. ``decode_workers`` (N or
    ``"auto"``): decode N files at once in worker processes, as ``iter_predictions`` does
    (every window is read: ``sampling`` must be ``all``).
    """
    from ..heap import heap_reuse

    if decode_workers is not None:
        from ..distributed.batched_run import score_pooled

        sampling = kwargs.pop("sampling", None)
        if sampling is not None and sampling.mode != "all":
            raise UsageError("--sample auto runs in this process only, not with --decode-workers")
        yield from score_pooled([os.fspath(p) for p in paths], model, workers=decode_workers, **kwargs)
        return

    with heap_reuse():  # one heap for the whole run, as iter_predictions does
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

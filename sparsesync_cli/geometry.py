"""What one model input is: a window on the two sample grids, and the part of it a model uses.

A :class:`Window` is a position on the two grids of the clock (25 fps frames, 16 kHz samples,
file time 0 = index 0). A :class:`WindowGeometry` says how much a model reads per window and
which part of it the model actually USES (SparseSync all of it; Synchformer the middle 4.8 s):
each family's geometry is in its entry of :mod:`sparsesync_cli.families`, and
:mod:`sparsesync_cli.analysis.windows` plans windows with it.

Ground floor: imports only :mod:`sparsesync_cli.clock` (which imports nothing), so the family
table, the checkpoint loader and ``sync_model`` can use it without the analysis package.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import clock

SAMPLES_PER_FRAME = clock.SAMPLE_RATE // clock.VIDEO_FPS  # 640 audio samples per video frame

Span = tuple[int, int]  # [first, end) indices on one grid


@dataclass(frozen=True)
class Window:
    """One model input: its first video frame and first audio sample (may be negative)."""

    frame_start: int
    sample_start: int

    @property
    def start_sec(self) -> float:
        """File time of the window's first frame."""
        return self.frame_start / clock.VIDEO_FPS

    @property
    def shift_sec(self) -> float:
        """How much later in the file the audio is read than the picture (> 0: audio early).

        Rounded to 1 µs: the audio grid resolves 62.5 µs, so nothing real is lost.
        """
        exact = (self.sample_start * clock.VIDEO_FPS - self.frame_start * clock.SAMPLE_RATE) / (
            clock.SAMPLE_RATE * clock.VIDEO_FPS
        )
        return round(exact, 6)


@dataclass(frozen=True)
class WindowGeometry:
    """How many frames/samples a model reads per window, and which part of them it uses."""

    frames: int = clock.FRAMES_PER_WINDOW
    samples: int = clock.SAMPLES_PER_WINDOW
    used_frames: Span = (0, clock.FRAMES_PER_WINDOW)
    used_samples: Span = (0, clock.SAMPLES_PER_WINDOW)

    def __post_init__(self) -> None:
        f0, f1 = self.used_frames
        s0, s1 = self.used_samples
        if not (0 <= f0 < f1 <= self.frames and 0 <= s0 < s1 <= self.samples):
            raise ValueError(
                f"used part {self.used_frames} frames / {self.used_samples} samples is not inside "
                f"a window of {self.frames} frames / {self.samples} samples"
            )
        # Picture and sound the model sees must be the same stretch of time, else every
        # prediction would carry a built-in offset.
        if f0 * SAMPLES_PER_FRAME != s0 or f1 * SAMPLES_PER_FRAME != s1:
            raise ValueError(
                f"used frames {self.used_frames} and samples {self.used_samples} are not the same time"
            )

    @property
    def used_sec(self) -> float:
        """Length of the used part in seconds (5.0 for SparseSync, 4.8 for Synchformer)."""
        return (self.used_frames[1] - self.used_frames[0]) / clock.VIDEO_FPS

    def used_video_range(self, w: Window) -> Span:
        """The frames of ``w`` that can influence the prediction."""
        return w.frame_start + self.used_frames[0], w.frame_start + self.used_frames[1]

    def used_audio_range(self, w: Window) -> Span:
        """The samples of ``w`` that can influence the prediction."""
        return w.sample_start + self.used_samples[0], w.sample_start + self.used_samples[1]

    def used_start_sec(self, w: Window) -> float:
        """File time of the first frame the model uses in ``w``."""
        return self.used_video_range(w)[0] / clock.VIDEO_FPS


SPARSESYNC_GEOMETRY = WindowGeometry()
SYNCHFORMER_GEOMETRY = WindowGeometry(used_frames=(2, 122), used_samples=(1280, 78080))

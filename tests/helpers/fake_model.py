"""A stand-in for a loaded model, for tests of the machinery around the network.

It exposes what :class:`sparsesync_cli.sync_model.SyncModel` exposes (``info``, ``grid``,
``geometry``, ``logits``) and answers each window with logits peaked at a chosen offset, so
batch, report and fix logic can be tested in milliseconds. The real networks are tested
against the authors' fixtures elsewhere (test_golden.py, test_*_model.py).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from sparsesync_cli.families import get_family
from sparsesync_cli.sync_model import ModelSetup

GRID = tuple(round(-2.0 + 0.2 * i, 6) for i in range(21))


class FakeModel:
    """``offset_at(start_sec) -> offset`` decides each window's peak class."""

    def __init__(
        self,
        offset_at: Callable[[float], float] = lambda t: 0.0,
        sharpness: float = 8.0,
        family: str = "sparsesync",
    ) -> None:
        self.setup = ModelSetup("fake", family, None, GRID, get_family(family).geometry, "cpu", "fp32")
        self.offset_at = offset_at
        self.sharpness = sharpness
        self.calls: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
        self.starts: list[float] = []

    @property
    def grid(self) -> tuple[float, ...]:
        return self.setup.grid

    @property
    def geometry(self):
        return self.setup.geometry

    def logits(self, frames, audio) -> torch.Tensor:
        frames, audio = np.asarray(frames), np.asarray(audio)
        assert frames.dtype == np.uint8 and frames.shape[1:] == (125, 3, 224, 224), frames.shape
        assert audio.dtype == np.float32 and audio.shape[1:] == (80_000,), audio.shape
        self.calls.append((frames.shape, audio.shape))
        out = []
        for _ in range(frames.shape[0]):
            t = len(self.starts) * 5.0
            self.starts.append(t)
            target = self.offset_at(t)
            out.append([-self.sharpness * abs(g - target) / 0.2 for g in GRID])
        return torch.tensor(out, dtype=torch.float32)

"""One interface over both model families: load, pre-process, run on a device.

``load_model()`` turns a registry name or a checkpoint file into a :class:`SyncModel` that takes
decoded windows (uint8 frames at the 256 px short side, 16 kHz mono float samples) and returns
class logits. The family (SparseSync or Synchformer) is recognised from the config, or from the
state dict's keys when there is no config (the bare Hugging Face Synchformer file); what differs
between the families lives in :mod:`sparsesync_cli.families`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import UsageError
from .families import family_of, get_family
from .geometry import WindowGeometry

if TYPE_CHECKING:
    import numpy as np
    import torch

    from .checkpoints.loading import Checkpoint

PRECISIONS = ("auto", "fp32", "fp16", "bf16")


@dataclass(frozen=True)
class ModelSetup:
    """How a loaded model is set up: where it came from, its classes, the window it reads, and
    where and how it runs. (A result stores only its name, family and checkpoint:
    :class:`~sparsesync_cli.analysis.results.ModelRecord`.)"""

    name: str
    family: str
    checkpoint: str | None
    grid: tuple[float, ...]
    geometry: WindowGeometry
    device: str
    precision: str
    calibration: dict | None = None  # {"file", "temperature", "model"} once a calibration is applied

    @property
    def range_sec(self) -> tuple[float, float]:
        return self.grid[0], self.grid[-1]

    @property
    def resolution_sec(self) -> float:
        return round(self.grid[1] - self.grid[0], 6) if len(self.grid) > 1 else 0.0


def resolve_device(device: str = "auto") -> str:
    """``auto`` picks CUDA when present; ``cuda`` and ``cuda:N`` are checked, not assumed."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return device
    if device == "cuda" or device.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise UsageError(f"--device {device}: CUDA is not available on this machine (use cpu or auto)")
        index = int(device.split(":")[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise UsageError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) here")
        return device
    raise UsageError(f"--device {device}: expected auto, cpu, cuda or cuda:N")


def resolve_precision(precision: str, device: str) -> str:
    """``auto`` is fp16 autocast on CUDA and fp32 on CPU (CPU half precision is slower, not faster)."""
    if precision not in PRECISIONS:
        raise UsageError(f"--precision {precision}: expected one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        return "fp16" if device.startswith("cuda") else "fp32"
    if precision == "fp16" and device == "cpu":
        raise UsageError("--precision fp16 needs CUDA; on CPU use fp32 (or bf16 on CPUs that support it)")
    return precision


class SyncModel:
    """A loaded synchronisation model: decoded windows in, offset-class logits out."""

    def __init__(self, net: torch.nn.Module, setup: ModelSetup) -> None:
        self.net = net
        self.setup = setup
        self._features = get_family(setup.family).features()

    @property
    def info(self) -> ModelSetup:
        """Deprecated name of :attr:`setup` (before 0.3)."""
        return self.setup

    @info.setter
    def info(self, setup: ModelSetup) -> None:
        self.setup = setup

    @property
    def grid(self) -> tuple[float, ...]:
        return self.setup.grid

    @property
    def geometry(self) -> WindowGeometry:
        return self.setup.geometry

    def logits(self, frames: np.ndarray | torch.Tensor, audio: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Class logits ``(B, C)`` (float32, on CPU) for a batch of windows.

        ``frames``: ``(B, 125, 3, 224, 224)`` uint8 centre crops; ``audio``: ``(B, 80000)`` float32.
        """
        import torch

        device = torch.device(self.setup.device)
        frames_t = torch.as_tensor(frames)
        audio_t = torch.as_tensor(audio)
        if device.type == "cuda":
            frames_t = frames_t.pin_memory().to(device, non_blocking=True)
            audio_t = audio_t.pin_memory().to(device, non_blocking=True)
        with torch.inference_mode():
            vid = self._features.video_input(frames_t)
            aud = self._features.audio_input(audio_t)
            dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(self.setup.precision)
            if dtype is None:
                out = self.net(vid, aud)
            else:
                with torch.autocast(device_type=device.type, dtype=dtype):
                    out = self.net(vid, aud)
        return out.float().cpu()


def build_net(checkpoint: Checkpoint) -> tuple[torch.nn.Module, str, tuple[float, ...]]:
    """The torch module for a checkpoint, its family and its class grid."""
    family = family_of(checkpoint)
    net, grid = family.build(checkpoint)
    return net, family.name, grid


def load_model(
    name: str | None = None,
    *,
    checkpoint: str | os.PathLike | None = None,
    config: str | os.PathLike | None = None,
    device: str = "auto",
    precision: str = "auto",
    progress: Callable[[str, int, int | None], None] | None = None,
    optimize: bool = True,
) -> SyncModel:
    """Load a model by registry ``name`` (downloaded and verified on first use) or from a file.

    With neither ``name`` nor ``checkpoint`` the registry's default model is used. ``config`` is
    an official ``cfg-<id>.yaml`` for checkpoints that do not carry their own. ``progress`` is
    called as ``progress(filename, done_bytes, total_bytes)`` while downloading. ``optimize``
    runs the exact fast path (:func:`~sparsesync_cli.models.fast.optimize_for_inference`:
    BatchNorm folded into the convolutions, channels-last, fused convolution+ReLU); the logits
    move by ~1e-4 at most. Turn it off to run the plain modules.
    """
    import torch

    from .checkpoints.loading import load_checkpoint

    if name is not None and checkpoint is not None:
        raise UsageError("give a model name or a checkpoint file, not both")
    dev = resolve_device(device)
    prec = resolve_precision(precision, dev)
    if checkpoint is not None:
        ckpt = load_checkpoint(checkpoint, config)
        label, source = os.path.basename(os.fspath(checkpoint)), os.fspath(checkpoint)
    else:
        from .checkpoints.cache import load_registered_checkpoint

        ckpt, entry = load_registered_checkpoint(name, progress=progress)
        label, source = entry.name, entry.checkpoint.location
    net, family, grid = build_net(ckpt)
    net = net.to(torch.device(dev)).eval()
    if optimize:
        from .models.fast import optimize_for_inference

        net = optimize_for_inference(net, dev)
    geometry = get_family(family).geometry
    return SyncModel(net, ModelSetup(label, family, source, grid, geometry, dev, prec))

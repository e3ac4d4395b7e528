"""Pre-processing that SparseSync and Synchformer share: the centre crop."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..clock import CROP_SIZE

if TYPE_CHECKING:
    import torch


def _crop_box(h: int, w: int, size: int) -> tuple[int, int]:
    if h < size or w < size:
        raise ValueError(f"frames of {w}x{h} are smaller than the {size}x{size} crop")
    return round((h - size) / 2.0), round((w - size) / 2.0)


def center_crop(frames: np.ndarray | torch.Tensor, size: int = CROP_SIZE) -> torch.Tensor:
    """Centre-crop ``(..., T, H, W, 3)`` uint8 frames to ``(..., T, 3, size, size)``.

    The offsets are ``round((H - size) / 2)`` and ``round((W - size) / 2)``, the reference's
    ``RGBSpatialCrop`` with ``is_random=False``.
    """
    import torch

    x = torch.as_tensor(frames)
    top, left = _crop_box(x.shape[-3], x.shape[-2], size)
    x = x[..., top : top + size, left : left + size, :]
    return x.movedim(-1, -3).contiguous()


def center_crop_array(frames: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """:func:`center_crop` in numpy (the same bytes), for decoders that need not import torch
    (the decode worker processes of :mod:`sparsesync_cli.distributed.decode_pool`)."""
    top, left = _crop_box(frames.shape[-3], frames.shape[-2], size)
    return np.ascontiguousarray(np.moveaxis(frames[..., top : top + size, left : left + size, :], -1, -3))

"""Pre-processing that SparseSync and Synchformer share: the centre crop."""

from __future__ import annotations

import numpy as np
import torch

from ..clock import CROP_SIZE


def center_crop(frames: np.ndarray | torch.Tensor, size: int = CROP_SIZE) -> torch.Tensor:
    """Centre-crop ``(..., T, H, W, 3)`` uint8 frames to ``(..., T, 3, size, size)``.

    The offsets are ``round((H - size) / 2)`` and ``round((W - size) / 2)``, the reference's
    ``RGBSpatialCrop`` with ``is_random=False``.
    """
    x = torch.as_tensor(frames)
    h, w = x.shape[-3], x.shape[-2]
    if h < size or w < size:
        raise ValueError(f"frames of {w}x{h} are smaller than the {size}x{size} crop")
    top, left = round((h - size) / 2.0), round((w - size) / 2.0)
    x = x[..., top : top + size, left : left + size, :]
    return x.movedim(-1, -3).contiguous()

"""S3D (Xie et al., 2018), the visual backbone of SparseSync, as a feature extractor.

Separable 3D convolutions (a 1xkxk spatial conv, then a kx1x1 temporal conv) in Inception-style
mixed blocks. Module names (``base.<i>``, ``conv_s``/``bn_s``/``conv_t``/``bn_t``,
``branch<j>``) follow the authors' port (kylemin/S3D, used by SparseSync) so official weights
load strictly. The classifier is not built: SparseSync uses the last feature map.

Input ``(B, 3, T, 224, 224)`` -> output ``(B, 1024, T', 7, 7)`` with T' = 16 for T = 125.
"""

from __future__ import annotations

import torch
from torch import nn

BN_EPS = 1e-3  # the TensorFlow original's BatchNorm epsilon, kept by the port


class Unit3d(nn.Module):
    """Conv3d (no bias) -> BatchNorm3d -> ReLU; keys ``conv``, ``bn``."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(c_in, c_out, kernel_size=1, bias=False)
        self.bn = nn.BatchNorm3d(c_out, eps=BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn(self.conv(x)))


class SepUnit3d(nn.Module):
    """A kxk spatial conv then a k temporal conv, each followed by BatchNorm and ReLU."""

    def __init__(self, c_in: int, c_out: int, k: int, stride: int = 1, pad: int = 0) -> None:
        super().__init__()
        self.conv_s = nn.Conv3d(c_in, c_out, (1, k, k), (1, stride, stride), (0, pad, pad), bias=False)
        self.bn_s = nn.BatchNorm3d(c_out, eps=BN_EPS)
        self.conv_t = nn.Conv3d(c_out, c_out, (k, 1, 1), (stride, 1, 1), (pad, 0, 0), bias=False)
        self.bn_t = nn.BatchNorm3d(c_out, eps=BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn_s(self.conv_s(x)))
        return torch.relu(self.bn_t(self.conv_t(x)))


class Mixed(nn.Module):
    """Inception block: 1x1 | 1x1 -> sep3x3 | 1x1 -> sep3x3 | maxpool3 -> 1x1, concatenated."""

    def __init__(self, c_in: int, c0: int, c1: tuple[int, int], c2: tuple[int, int], c3: int) -> None:
        super().__init__()
        self.branch0 = nn.Sequential(Unit3d(c_in, c0))
        self.branch1 = nn.Sequential(Unit3d(c_in, c1[0]), SepUnit3d(c1[0], c1[1], 3, pad=1))
        self.branch2 = nn.Sequential(Unit3d(c_in, c2[0]), SepUnit3d(c2[0], c2[1], 3, pad=1))
        self.branch3 = nn.Sequential(nn.MaxPool3d(3, stride=1, padding=1), Unit3d(c_in, c3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], dim=1)


# (input channels, branch0, branch1 (reduce, out), branch2 (reduce, out), branch3) per block
_MIXED = {
    "3b": (192, 64, (96, 128), (16, 32), 32),
    "3c": (256, 128, (128, 192), (32, 96), 64),
    "4b": (480, 192, (96, 208), (16, 48), 64),
    "4c": (512, 160, (112, 224), (24, 64), 64),
    "4d": (512, 128, (128, 256), (24, 64), 64),
    "4e": (512, 112, (144, 288), (32, 64), 64),
    "4f": (528, 256, (160, 320), (32, 128), 128),
    "5b": (832, 256, (160, 320), (32, 128), 128),
    "5c": (832, 384, (192, 384), (48, 128), 128),
}
OUT_CHANNELS = 1024


class S3D(nn.Module):
    """The S3D trunk: ``forward(x (B, 3, T, H, W)) -> (B, 1024, T', H/32, W/32)``."""

    def __init__(self) -> None:
        super().__init__()
        # Indices in `base` are part of the checkpoint keys: keep the pools where they are.
        self.base = nn.Sequential(
            SepUnit3d(3, 64, 7, stride=2, pad=3),  # 0
            nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)),  # 1
            Unit3d(64, 64),  # 2
            SepUnit3d(64, 192, 3, pad=1),  # 3
            nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)),  # 4
            Mixed(*_MIXED["3b"]),  # 5
            Mixed(*_MIXED["3c"]),  # 6
            nn.MaxPool3d(3, 2, 1),  # 7
            *(Mixed(*_MIXED[k]) for k in ("4b", "4c", "4d", "4e", "4f")),  # 8..12
            nn.MaxPool3d(2, 2, 0),  # 13
            Mixed(*_MIXED["5b"]),  # 14
            Mixed(*_MIXED["5c"]),  # 15
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x)

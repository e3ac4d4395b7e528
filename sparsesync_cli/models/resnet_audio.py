"""ResNet-18 on spectrograms: SparseSync's audio backbone, as a feature extractor.

torchvision's ResNet-18 layout (``conv1``, ``bn1``, ``layer1..4`` of two basic blocks, a
strided 1x1 ``downsample`` where the shape changes) with a 1-channel stem, without the pooling
and classifier (the authors replace them by identities). Written here so torchvision is not
needed; key names match so official weights load strictly.

Input ``(B, 1, 257, 626)`` -> output ``(B, 512, 9, 20)``.
"""

from __future__ import annotations

import torch
from torch import nn

WIDTHS = (64, 128, 256, 512)  # channels of layer1..layer4
OUT_CHANNELS = WIDTHS[-1]


class BasicBlock(nn.Module):
    """Two 3x3 convs with BatchNorm; a 1x1 conv + BatchNorm on the shortcut when the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(y + shortcut)


class ResNet18Audio(nn.Module):
    """``forward(spec (B, 1, F, T)) -> (B, 512, ceil(F/32), ceil(T/32))``."""

    # Registered by name in __init__ (the checkpoints' keys are layer1..layer4).
    layer1: nn.Sequential
    layer2: nn.Sequential
    layer3: nn.Sequential
    layer4: nn.Sequential

    def __init__(self, in_channels: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, WIDTHS[0], 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(WIDTHS[0])
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        c_in = WIDTHS[0]
        for i, width in enumerate(WIDTHS):
            stride = 1 if i == 0 else 2
            self.add_module(
                f"layer{i + 1}", nn.Sequential(BasicBlock(c_in, width, stride), BasicBlock(width, width, 1))
            )
            c_in = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(torch.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

"""Convolutional backbone shared by the template and search crops (stride 16).

Stage ``i`` opens with a stride-2 3x3 convolution to ``channels[i]`` and then stacks
``blocks[i]`` inverted-residual blocks (1x1 expand, 3x3 depthwise, 1x1 project) with
expansion ``expansion[i]``. Four stages give stride 16: a 128x128 template becomes an 8x8
map and a 256x256 search crop a 16x16 map.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class ConvBNReLU(nn.Sequential):
    """Convolution without bias, BatchNorm, optional ReLU (folds into one conv at export)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, relu: bool = True):
        layers: list[nn.Module] = [
            nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
        ]
        if relu:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class InvertedResidual(nn.Module):
    """MobileNetV2 block at constant width with an identity shortcut."""

    def __init__(self, channels: int, expansion: int):
        super().__init__()
        hidden = channels * expansion
        self.expand = ConvBNReLU(channels, hidden, 1)
        self.depthwise = ConvBNReLU(hidden, hidden, 3, groups=hidden)
        self.project = ConvBNReLU(hidden, channels, 1, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.project(self.depthwise(self.expand(x)))


class Backbone(nn.Module):
    """Four stride-2 stages; returns the stride-16 feature map."""

    def __init__(self, channels: Sequence[int], blocks: Sequence[int], expansion: Sequence[int]):
        super().__init__()
        if not (len(channels) == len(blocks) == len(expansion) == 4):
            raise ValueError("backbone needs exactly 4 stages (stride 16)")
        stages = []
        cin = 3
        for cout, nblocks, exp in zip(channels, blocks, expansion):
            layers: list[nn.Module] = [ConvBNReLU(cin, cout, 3, stride=2)]
            layers += [InvertedResidual(cout, exp) for _ in range(nblocks)]
            stages.append(nn.Sequential(*layers))
            cin = cout
        self.stages = nn.Sequential(*stages)
        self.out_channels = cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(x)

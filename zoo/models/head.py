"""Center head on the 16x16 search map: a score map, box size and sub-cell offset.

Few positions (256) and wide 3x3 convolutions: the head holds many parameters but little
compute, which is the study's remark on this design.
"""
from __future__ import annotations

import torch
from torch import nn

from zoo.models.backbone import ConvBNReLU

#: output name -> channels, in the order the network returns them
HEAD_OUTPUTS: dict[str, int] = {"score": 1, "size": 2, "offset": 2}


class Branch(nn.Sequential):
    def __init__(self, channels: int, hidden: int, out: int):
        super().__init__(
            ConvBNReLU(channels, channels, 3),
            ConvBNReLU(channels, hidden, 3),
            nn.Conv2d(hidden, out, 1),
        )


class CenterHead(nn.Module):
    """1x1 neck to ``channels`` then one conv branch per output.

    ``score`` passes through a sigmoid (probability that the target centre lies in the cell),
    ``size`` through a sigmoid (width and height as fractions of the search crop) and
    ``offset`` is the raw sub-cell offset of the centre in cell units.
    """

    def __init__(self, in_channels: int, channels: int, branch_hidden: int):
        super().__init__()
        self.neck = ConvBNReLU(in_channels, channels, 1)
        self.branches = nn.ModuleDict({name: Branch(channels, branch_hidden, out) for name, out in HEAD_OUTPUTS.items()})

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.neck(x)
        score = torch.sigmoid(self.branches["score"](x))
        size = torch.sigmoid(self.branches["size"](x))
        offset = self.branches["offset"](x)
        return score, size, offset

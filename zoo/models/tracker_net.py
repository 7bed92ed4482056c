"""The one-stream tracker network: backbone -> fusion blocks -> center head."""
from __future__ import annotations

import torch
from torch import nn

from zoo.models.backbone import Backbone
from zoo.models.fusion import Fusion
from zoo.models.head import CenterHead

#: top-level module name -> part of the model, as reported by ``zoo info``
PARTS = ("backbone", "fusion", "head")


def _tokens(feature_map: torch.Tensor) -> torch.Tensor:
    return feature_map.flatten(2).transpose(1, 2)


class TrackerNet(nn.Module):
    """``forward(template, search) -> (score, size, offset)``, all NCHW float32.

    The backbone is shared by both crops; the head reads only the search tokens.
    """

    def __init__(self, backbone: Backbone, fusion: Fusion, head: CenterHead):
        super().__init__()
        self.backbone = backbone
        self.fusion = fusion
        self.head = head

    def forward(self, template: torch.Tensor, search: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        search_map = self.backbone(search)
        b, c, h, w = search_map.shape
        _, search_tokens = self.fusion(_tokens(self.backbone(template)), _tokens(search_map))
        return self.head(search_tokens.transpose(1, 2).reshape(b, c, h, w))

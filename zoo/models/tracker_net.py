"""The one-stream tracker network: backbone -> fusion blocks -> center head."""
from __future__ import annotations

import torch
from torch import nn

from zoo.models.backbone import Backbone
from zoo.models.fusion import Fusion
from zoo.models.head import CenterHead

#: top-level module name -> part of the model, as reported by ``zoo info``
PARTS = ("backbone", "fusion", "head")


def to_tokens(feature_map: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, H*W, C) tokens.

    Written as a channels-last permute + reshape (not ``flatten(2).transpose(1, 2)``, the same
    values): a channels-last converter (onnx2tf, zoo's TFLite route before litert-torch) holds
    feature maps NHWC, so the permute vanishes. Through the (B, C, H*W)
    intermediate it could not tell tokens from channels when both are 256 (fgaf3's 16x16 search
    map) and kept the whole token stream of the split track graph channels-first, with a
    TRANSPOSE around every linear layer.
    """
    b, c, h, w = feature_map.shape
    return feature_map.permute(0, 2, 3, 1).reshape(b, h * w, c)


def to_feature_map(tokens: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(B, H*W, C) tokens -> (B, C, H, W), the inverse of :func:`to_tokens` (same channels-last route)."""
    b, _, c = tokens.shape
    return tokens.reshape(b, h, w, c).permute(0, 3, 1, 2)


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
        h, w = search_map.shape[-2:]
        _, search_tokens = self.fusion(to_tokens(self.backbone(template)), to_tokens(search_map))
        return self.head(to_feature_map(search_tokens, h, w))

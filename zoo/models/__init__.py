"""The tracker family: build a :class:`TrackerNet` from a catalog architecture."""
from __future__ import annotations

from zoo.models.backbone import Backbone
from zoo.models.fusion import BLOCK_DESIGNS, Fusion
from zoo.models.head import HEAD_OUTPUTS, CenterHead
from zoo.models.tracker_net import PARTS, TrackerNet
from zoo.schema import ArchSpec

__all__ = ["BLOCK_DESIGNS", "HEAD_OUTPUTS", "PARTS", "TrackerNet", "build_model"]


def build_model(arch: ArchSpec) -> TrackerNet:
    """Instantiate the network described by ``arch`` (eval mode, default init)."""
    bb = arch.backbone
    fu = arch.fusion
    model = TrackerNet(
        Backbone(bb.channels, bb.blocks, bb.expansion),
        Fusion(fu.kind, arch.width, fu.depth, fu.heads, fu.ffn_hidden, fu.norm),
        CenterHead(arch.width, arch.head.channels, arch.head.branch_hidden),
    )
    return model.eval()

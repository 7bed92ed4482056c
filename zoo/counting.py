"""Parameter and MAC counts, the way the study counted them.

``macs`` follows thop's convention for the layers that carry weights: a convolution costs
``out_elements * in_channels/groups * kh * kw`` and a linear layer ``out_elements *
in_features``; normalisation, activations and the attention matrix products are not counted.
``macs_total`` adds the attention products (``q @ k^T`` and ``attn @ v``), which thop misses
because they are functional matmuls.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from zoo.models import PARTS
from zoo.models.fusion import Attention


@dataclass
class Figures:
    params: int = 0
    macs: int = 0
    macs_total: int = 0

    def add(self, other: "Figures") -> None:
        self.params += other.params
        self.macs += other.macs
        self.macs_total += other.macs_total


@dataclass
class ModelFigures(Figures):
    parts: dict[str, Figures] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def _layer_macs(module: nn.Module, output: torch.Tensor) -> int:
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return output.numel() * (module.in_channels // module.groups) * kh * kw
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    return 0


@torch.no_grad()
def count_figures(model: nn.Module, inputs: dict[str, torch.Tensor]) -> ModelFigures:
    """Run one forward pass on ``inputs`` (batch 1) and count parameters and MACs per part."""
    parts: dict[str, Figures] = defaultdict(Figures)
    for name, p in model.named_parameters():
        parts[name.split(".", 1)[0]].params += p.numel()

    handles = []
    for name, module in model.named_modules():
        part = name.split(".", 1)[0]
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            def hook(mod, _inp, out, part=part):
                macs = _layer_macs(mod, out)
                parts[part].macs += macs
                parts[part].macs_total += macs
            handles.append(module.register_forward_hook(hook))
        elif isinstance(module, Attention):
            def attn_hook(mod, _inp, _out, part=part):
                parts[part].macs_total += mod.matmul_macs
            handles.append(module.register_forward_hook(attn_hook))
    try:
        model.eval()(**inputs)
    finally:
        for h in handles:
            h.remove()

    total = ModelFigures()
    for part in sorted(parts, key=lambda p: PARTS.index(p) if p in PARTS else len(PARTS)):
        total.add(parts[part])
        total.parts[part] = parts[part]
    return total

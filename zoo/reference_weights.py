"""Deterministic reference weights: realistic for conversion tests, untrained.

Every tensor is drawn from its own PCG64 stream seeded by ``sha256(seed/tensor-name)`` in
float64 and rounded to float32, so the bytes depend only on the variant's seed string and its
architecture: bit-identical on every machine (no torch RNG, no data-dependent calibration).

The draws are scaled like a trained network: He-scaled convolutions, residual branches damped
by depth, and BatchNorm/LayerNorm statistics and affine parameters kept well away from the
identity, so a broken BatchNorm fold or a dropped LayerNorm affine shows up in parity checks.
"""
from __future__ import annotations

import hashlib
import math

import numpy as np
import torch
from torch import nn

from zoo.models import TrackerNet
from zoo.models.fusion import TokenBatchNorm

SCHEME = "zoo-reference-v1"

#: head output -> (weight gain, bias centre) of its final 1x1 conv; the score logits get a
#: wide spread around a low prior so the score map has a clear peak, as a trained head's has
_HEAD_FINAL = {"score": (2.0, -2.5), "size": (0.5, -1.2), "offset": (0.5, 0.5)}


def _uniform(key: str, shape: tuple[int, ...], low: float, high: float) -> torch.Tensor:
    seed = int.from_bytes(hashlib.sha256(key.encode()).digest()[:16], "little")
    draw = np.random.Generator(np.random.PCG64(seed)).random(size=shape)
    return torch.from_numpy((low + (high - low) * draw).astype(np.float32))


def _symmetric(key: str, shape: tuple[int, ...], std: float) -> torch.Tensor:
    half_width = std * math.sqrt(3.0)
    return _uniform(key, shape, -half_width, half_width)


def reference_state_dict(model: TrackerNet, seed: str) -> dict[str, torch.Tensor]:
    """Draw every tensor of ``model.state_dict()`` for ``seed``; keys match exactly."""
    depth = len(model.fusion.blocks)
    state: dict[str, torch.Tensor] = {}

    def draw(name: str, shape: torch.Size, std: float) -> None:
        state[name] = _symmetric(f"{SCHEME}/{seed}/{name}", tuple(shape), std)

    def draw_range(name: str, shape: torch.Size, low: float, high: float) -> None:
        state[name] = _uniform(f"{SCHEME}/{seed}/{name}", tuple(shape), low, high)

    for mname, module in model.named_modules():
        p = f"{mname}." if mname else ""
        if isinstance(module, nn.Conv2d):
            fan_in = module.weight[0].numel()
            head_out = next((k for k in _HEAD_FINAL if mname == f"head.branches.{k}.2"), None)
            if head_out:
                gain, bias = _HEAD_FINAL[head_out]
                draw(f"{p}weight", module.weight.shape, gain / math.sqrt(fan_in))
                draw_range(f"{p}bias", module.bias.shape, bias - 0.2, bias + 0.2)
                continue
            # 1x1 projections closing a residual branch are damped like a trained net's
            gain = 0.5 if mname.endswith("project.0") else math.sqrt(2.0)
            draw(f"{p}weight", module.weight.shape, gain / math.sqrt(fan_in))
            if module.bias is not None:
                draw(f"{p}bias", module.bias.shape, 0.02)
        elif isinstance(module, nn.Linear):
            damp = 1.0 / math.sqrt(2.0 * depth) if mname.endswith(("attn.proj", "ffn.fc2")) else 1.0
            draw(f"{p}weight", module.weight.shape, damp / math.sqrt(module.in_features))
            draw(f"{p}bias", module.bias.shape, 0.02)
        elif isinstance(module, (nn.BatchNorm2d, TokenBatchNorm)):
            draw_range(f"{p}weight", module.weight.shape, 0.6, 1.3)
            draw_range(f"{p}bias", module.bias.shape, -0.15, 0.15)
            draw_range(f"{p}running_mean", module.running_mean.shape, -0.3, 0.3)
            draw_range(f"{p}running_var", module.running_var.shape, 0.5, 2.0)
            state[f"{p}num_batches_tracked"] = torch.tensor(0, dtype=torch.long)
        elif isinstance(module, nn.LayerNorm):
            draw_range(f"{p}weight", module.weight.shape, 0.6, 1.3)
            draw_range(f"{p}bias", module.bias.shape, -0.15, 0.15)
    if model.fusion.segment is not None:
        draw("fusion.segment", model.fusion.segment.shape, 0.1)

    expected = model.state_dict()
    if set(state) != set(expected):
        raise RuntimeError(f"reference init does not cover: {sorted(set(expected) ^ set(state))}")
    return {k: state[k] for k in expected}

"""Fold inference-time BatchNorm into the adjacent convolution or linear layer.

Conv -> BN pairs in the backbone and head fold into the conv (``fuse_conv_bn_eval``). In the
``(BN)`` fusion blocks a pre-norm BatchNorm feeds exactly one linear layer (qkv or fc1), so
``W (s*x + t) + b`` becomes ``(W diag(s)) x + (W t + b)``. The folded model computes the same
function with fewer operators, which is what the exporters ship.
"""
from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from zoo.models.backbone import ConvBNReLU
from zoo.models.fusion import FusionBlock, TokenBatchNorm


def _fold_bn_into_linear(bn: nn.BatchNorm1d, linear: nn.Linear) -> nn.Linear:
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    shift = bn.bias - bn.running_mean * scale
    fused = nn.Linear(linear.in_features, linear.out_features)
    with torch.no_grad():
        fused.weight.copy_(linear.weight * scale)
        fused.bias.copy_(linear.bias + linear.weight @ shift)
    return fused


@torch.no_grad()
def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Return an eval-mode copy of ``model`` with every BatchNorm folded away."""
    model = copy.deepcopy(model).eval()
    for module in model.modules():
        if isinstance(module, ConvBNReLU):
            module[0] = fuse_conv_bn_eval(module[0], module[1])
            module[1] = nn.Identity()
        elif isinstance(module, FusionBlock) and isinstance(module.norm1, TokenBatchNorm):
            if not module.prenorm:
                raise ValueError("BatchNorm folding needs pre-norm blocks")
            module.attn.qkv = _fold_bn_into_linear(module.norm1, module.attn.qkv)
            module.ffn.fc1 = _fold_bn_into_linear(module.norm2, module.ffn.fc1)
            module.norm1 = nn.Identity()
            module.norm2 = nn.Identity()
    leftover = [n for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if leftover:
        raise ValueError(f"BatchNorm layers left unfolded: {leftover}")
    return model

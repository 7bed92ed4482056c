"""Fusion blocks over the concatenated template + search tokens (8x8 + 16x16 = 320).

Block kinds of the study, as this catalog reads them (``BLOCK_DESIGNS``):

============  ===================  =====================  ==========  ======================
kind          attention            feed-forward           norm place  extra
============  ===================  =====================  ==========  ======================
``base``      joint, 320 tokens    MLP x4, ReLU           post-norm   template/search
                                                                      segment embeddings
``af``        joint                MLP x4, tanh-GELU      pre-norm
``faf``       asymmetric           MLP x4, tanh-GELU      pre-norm
``gaf``       joint                gated (SwiGLU)         pre-norm
``fgaf``      asymmetric           gated (SwiGLU)         pre-norm
============  ===================  =====================  ==========  ======================

*Asymmetric* attention: template tokens attend only to template tokens, search tokens attend
to all 320. It has exactly the parameters of joint attention and lets a tracker compute the
template branch once per sequence. The gated feed-forward ``W2 (silu(Wg x) * (Wv x))`` uses a
hidden width below 4C, hence fewer parameters. ``norm`` is LayerNorm or, for the ``(BN)`` rows,
BatchNorm over channels, which folds into the following linear layer at inference
(:func:`zoo.models.fold.fold_batchnorm`).

Every operator used (MatMul, Softmax, LayerNormalization, Sigmoid, Tanh) is a builtin of ONNX
opset 17, MNN, TFLite and ncnn; exact-erf GELU is avoided because TFLite only runs it as a Flex op.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class BlockDesign:
    attention: str  # "joint" | "asymmetric"
    ffn: str  # "mlp" | "glu"
    activation: str  # "relu" | "gelu_tanh" | "silu"
    prenorm: bool
    segment_embedding: bool


BLOCK_DESIGNS: dict[str, BlockDesign] = {
    "base": BlockDesign("joint", "mlp", "relu", prenorm=False, segment_embedding=True),
    "af": BlockDesign("joint", "mlp", "gelu_tanh", prenorm=True, segment_embedding=False),
    "faf": BlockDesign("asymmetric", "mlp", "gelu_tanh", prenorm=True, segment_embedding=False),
    "gaf": BlockDesign("joint", "glu", "silu", prenorm=True, segment_embedding=False),
    "fgaf": BlockDesign("asymmetric", "glu", "silu", prenorm=True, segment_embedding=False),
}


def _activation(name: str) -> nn.Module:
    return {"relu": nn.ReLU(), "gelu_tanh": nn.GELU(approximate="tanh"), "silu": nn.SiLU()}[name]


class TokenBatchNorm(nn.BatchNorm1d):
    """BatchNorm over the channel axis of (B, N, C) tokens."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


def make_norm(kind: str, dim: int) -> nn.Module:
    if kind == "layer":
        return nn.LayerNorm(dim)
    if kind == "batch":
        return TokenBatchNorm(dim)
    raise ValueError(f"unknown norm {kind!r}")


class Attention(nn.Module):
    """Multi-head attention with one fused qkv projection.

    The matrix products (q @ k^T, attn @ v) have no weights; the study's MAC count leaves them
    out, :attr:`matmul_macs` reports them for the total.
    """

    def __init__(self, dim: int, heads: int, asymmetric: bool):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.head_dim = dim // heads
        self.scale = self.head_dim**-0.5
        self.asymmetric = asymmetric
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.matmul_macs = 0

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return x.reshape(b, n, self.heads, self.head_dim).transpose(1, 2)

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        attn = torch.softmax((q * self.scale) @ k.transpose(-2, -1), dim=-1)
        self.matmul_macs += 2 * q.shape[0] * q.shape[1] * q.shape[2] * k.shape[2] * self.head_dim
        return attn @ v

    def forward(self, x: torch.Tensor, n_template: int) -> torch.Tensor:
        b, n, c = x.shape
        self.matmul_macs = 0
        q, k, v = (self._split_heads(t) for t in self.qkv(x).chunk(3, dim=-1))
        if self.asymmetric:
            t = n_template
            out = torch.cat([self._attend(q[:, :, :t], k[:, :, :t], v[:, :, :t]), self._attend(q[:, :, t:], k, v)], dim=2)
        else:
            out = self._attend(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class FeedForward(nn.Module):
    """``fc2(act(fc1 x))``; the gated form splits fc1 into gate and value halves."""

    def __init__(self, dim: int, hidden: int, gated: bool, activation: str):
        super().__init__()
        self.gated = gated
        self.fc1 = nn.Linear(dim, 2 * hidden if gated else hidden)
        self.act = _activation(activation)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc1(x)
        if self.gated:
            gate, value = h.chunk(2, dim=-1)
            h = self.act(gate) * value
        else:
            h = self.act(h)
        return self.fc2(h)


class FusionBlock(nn.Module):
    def __init__(self, dim: int, heads: int, hidden: int, design: BlockDesign, norm: str):
        super().__init__()
        self.prenorm = design.prenorm
        self.norm1 = make_norm(norm, dim)
        self.attn = Attention(dim, heads, asymmetric=design.attention == "asymmetric")
        self.norm2 = make_norm(norm, dim)
        self.ffn = FeedForward(dim, hidden, gated=design.ffn == "glu", activation=design.activation)

    def forward(self, x: torch.Tensor, n_template: int) -> torch.Tensor:
        if self.prenorm:
            x = x + self.attn(self.norm1(x), n_template)
            return x + self.ffn(self.norm2(x))
        x = self.norm1(x + self.attn(x, n_template))
        return self.norm2(x + self.ffn(x))


class Fusion(nn.Module):
    """``depth`` blocks of one kind over template + search tokens."""

    def __init__(self, kind: str, dim: int, depth: int, heads: int, hidden: int, norm: str):
        super().__init__()
        design = BLOCK_DESIGNS[kind]
        self.segment = nn.Parameter(torch.zeros(2, dim)) if design.segment_embedding else None
        self.blocks = nn.ModuleList(FusionBlock(dim, heads, hidden, design, norm) for _ in range(depth))

    def forward(self, template: torch.Tensor, search: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n_template = template.shape[1]
        if self.segment is not None:
            template = template + self.segment[0]
            search = search + self.segment[1]
        x = torch.cat([template, search], dim=1)
        for block in self.blocks:
            x = block(x, n_template)
        return x[:, :n_template], x[:, n_template:]

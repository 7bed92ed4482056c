"""Template caching: a :class:`TrackerNet` split into an ``init`` graph (template -> cache) and a
``track`` graph (search + cache -> score, size, offset) that share its parameters.

What the cache holds follows from the fusion blocks' attention design (``BLOCK_DESIGNS``), read
through :data:`CACHE_BY_ATTENTION`, never from a variant's name:

* ``joint`` attention (base, AF, GAF): template tokens attend to search tokens, so only the
  template's backbone output (its 8x8 tokens, segment embedding added) does not depend on the
  search crop. The cache is those tokens; the track graph runs every fusion block on 64 + 256
  tokens as the full graph does.
* ``asymmetric`` attention (FAF, FGAF): template tokens attend only to template tokens, so the
  whole template path through every fusion block is search-independent. The cache is each
  block's template **keys and values** after the qkv projection. The track graph then computes
  qkv, attention, projection and feed-forward for the 256 search tokens only, and never the
  template's qkv projection. Caching the template tokens entering each block instead would have
  been as small (one tensor per block instead of two, half the bytes) but the track graph would
  then recompute the K/V projection of 64 tokens in every block per frame (2*64*C*C MACs per
  block); K/V costs the track graph nothing but a concat, so it is the cheaper choice.

The split is exact: ``track(search, *init(template))`` computes the same operations on the same
values as ``TrackerNet(template, search)`` (the qkv projection of 320 tokens equals the
projections of 64 and of 256 tokens, row by row); :func:`split_model` builds both halves from one
model so they share its (possibly BatchNorm-folded) weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from zoo.models.fusion import BLOCK_DESIGNS, FusionBlock
from zoo.models.tracker_net import TrackerNet, to_feature_map, to_tokens
from zoo.schema import Variant

#: attention design -> what the init graph caches (see the module docstring)
CACHE_BY_ATTENTION: dict[str, str] = {"joint": "template_tokens", "asymmetric": "template_kv"}
#: the backbone's stride: a 128x128 template gives 8x8 tokens
STRIDE = 16


@dataclass(frozen=True)
class CacheTensor:
    """One tensor of the template cache (logical layout ``NLC``: batch, tokens, channels)."""

    name: str
    shape: tuple[int, ...]
    description: str

    @property
    def bytes(self) -> int:
        """Size in bytes at float32."""
        n = 4
        for d in self.shape:
            n *= d
        return n


def cache_kind(variant: Variant) -> str:
    """``template_tokens`` or ``template_kv``, from the variant's fusion block design."""
    return CACHE_BY_ATTENTION[BLOCK_DESIGNS[variant.arch.fusion.kind].attention]


def cache_tensors(variant: Variant) -> list[CacheTensor]:
    """The cache tensors of ``variant``'s split, in the order the init graph returns them."""
    template = next(s for s in variant.io.inputs if s.shape[-1] == variant.preprocessing.template_size)
    n_tokens = (template.shape[-2] // STRIDE) * (template.shape[-1] // STRIDE)
    width = variant.arch.width
    if cache_kind(variant) == "template_tokens":
        return [CacheTensor("cache_template", (1, n_tokens, width), "template backbone tokens (+ segment embedding)")]
    out = []
    for i in range(variant.arch.fusion.depth):
        out.append(CacheTensor(f"cache_k{i}", (1, n_tokens, width), f"fusion block {i}: template keys (after qkv)"))
        out.append(CacheTensor(f"cache_v{i}", (1, n_tokens, width), f"fusion block {i}: template values (after qkv)"))
    return out


def _attention(block: FusionBlock, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``proj(softmax(q k^T) v)`` over (B, N, C) q and (B, M, C) k, v: the block's own ops."""
    attn = block.attn
    b, n, c = q.shape
    out = attn._attend(attn._split_heads(q), attn._split_heads(k), attn._split_heads(v))
    return attn.proj(out.transpose(1, 2).reshape(b, n, c))


def _residuals(block: FusionBlock, x: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
    """The block's residual / norm / feed-forward around the attention output (pre- or post-norm)."""
    if block.prenorm:
        x = x + attended
        return x + block.ffn(block.norm2(x))
    x = block.norm1(x + attended)
    return block.norm2(x + block.ffn(x))


def _qkv(block: FusionBlock, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    h = block.norm1(x) if block.prenorm else x
    q, k, v = block.attn.qkv(h).chunk(3, dim=-1)
    return q, k, v


class InitNet(nn.Module):
    """``forward(template) -> cache tensors`` (see :func:`cache_tensors` for names and shapes)."""

    def __init__(self, model: TrackerNet, kind: str):
        super().__init__()
        self.backbone, self.fusion, self.kind = model.backbone, model.fusion, kind

    def forward(self, template: torch.Tensor) -> tuple[torch.Tensor, ...]:
        t = to_tokens(self.backbone(template))
        if self.fusion.segment is not None:
            t = t + self.fusion.segment[0]
        if self.kind == "template_tokens":
            return (t,)
        cache = []
        for block in self.fusion.blocks:
            q, k, v = _qkv(block, t)
            cache += [k, v]
            t = _residuals(block, t, _attention(block, q, k, v))
        return tuple(cache)


class TrackNet(nn.Module):
    """``forward(search, *cache) -> (score, size, offset)``; the cache as :class:`InitNet` returns it."""

    def __init__(self, model: TrackerNet, kind: str, cache_names: list[str]):
        super().__init__()
        self.backbone, self.fusion, self.head, self.kind = model.backbone, model.fusion, model.head, kind
        self.cache_names = list(cache_names)

    def forward(self, search: torch.Tensor, *cache: torch.Tensor, **named: torch.Tensor):
        cache = cache or tuple(named[n] for n in self.cache_names)
        search_map = self.backbone(search)
        h, w = search_map.shape[-2:]
        s = to_tokens(search_map)
        if self.fusion.segment is not None:
            s = s + self.fusion.segment[1]
        if self.kind == "template_tokens":
            (t,) = cache
            n_template = t.shape[1]
            x = torch.cat([t, s], dim=1)
            for block in self.fusion.blocks:
                x = block(x, n_template)
            s = x[:, n_template:]
        else:
            for i, block in enumerate(self.fusion.blocks):
                q, k, v = _qkv(block, s)
                k = torch.cat([cache[2 * i], k], dim=1)
                v = torch.cat([cache[2 * i + 1], v], dim=1)
                s = _residuals(block, s, _attention(block, q, k, v))
        return self.head(to_feature_map(s, h, w))


def split_model(model: TrackerNet, variant: Variant) -> tuple[InitNet, TrackNet]:
    """The init and track halves of ``model`` (an instance of ``variant``), sharing its parameters."""
    kind = cache_kind(variant)
    names = [t.name for t in cache_tensors(variant)]
    return InitNet(model, kind).eval(), TrackNet(model, kind, names).eval()

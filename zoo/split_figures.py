"""MACs per frame of a split (init + track graphs, :mod:`zoo.models.split`) beside the full graph,
and the size of the template cache, counted the way :mod:`zoo.counting` counts (conv + linear;
``macs_total`` adds the attention products)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from zoo.counting import ModelFigures, count_figures
from zoo.io_roles import role_inputs
from zoo.models import build_model
from zoo.models.fusion import Attention
from zoo.models.split import cache_kind, cache_tensors, split_model
from zoo.schema import Variant


@dataclass
class SplitFigures:
    full: ModelFigures  # per frame without the split
    init: ModelFigures  # once per sequence
    track: ModelFigures  # per frame with the split
    cache_bytes: int
    cache_kind: str

    def as_dict(self) -> dict:
        return asdict(self)


def _attention_products(net: torch.nn.Module, figures: ModelFigures) -> None:
    # the split's asymmetric path calls the blocks' attention products directly (no Attention.forward
    # hook fires): add what each Attention counted during the run
    extra = sum(m.matmul_macs for m in net.modules() if isinstance(m, Attention))
    figures.macs_total += extra
    if "fusion" in figures.parts:
        figures.parts["fusion"].macs_total += extra


@torch.no_grad()
def split_figures(variant: Variant, model: torch.nn.Module | None = None) -> SplitFigures:
    """Figures of the full graph, the init graph and the track graph of ``variant`` (its catalog
    weights unless ``model`` is given: counts do not depend on the weights' values)."""
    if model is None:
        model = build_model(variant.arch)
    names = role_inputs(variant)
    shapes = {s.name: s.shape for s in variant.io.inputs}
    template, search = torch.zeros(shapes[names["template"]]), torch.zeros(shapes[names["search"]])
    full = count_figures(model, {names["template"]: template, names["search"]: search})
    init, track = split_model(model, variant)
    kv = cache_kind(variant) == "template_kv"
    for m in model.modules():
        if isinstance(m, Attention):
            m.matmul_macs = 0
    init_fig = count_figures(init, {"template": template})
    if kv:
        _attention_products(init, init_fig)
    cache = init(template)
    for m in model.modules():
        if isinstance(m, Attention):
            m.matmul_macs = 0
    track_fig = count_figures(track, {"search": search, **dict(zip(track.cache_names, cache, strict=True))})
    if kv:
        _attention_products(track, track_fig)
    return SplitFigures(full, init_fig, track_fig, sum(t.bytes for t in cache_tensors(variant)), cache_kind(variant))


def split_summary(variant: Variant) -> dict:
    """Plain figures for ``zoo info``: MACs per frame full vs track graph, init MACs, cache bytes."""
    f = split_figures(variant)
    return {
        "cache_kind": f.cache_kind,
        "cache_tensors": len(cache_tensors(variant)),
        "cache_bytes": f.cache_bytes,
        "macs_full": f.full.macs,
        "macs_track": f.track.macs,
        "macs_init": f.init.macs,
        "macs_total_full": f.full.macs_total,
        "macs_total_track": f.track.macs_total,
        "macs_total_init": f.init.macs_total,
        "macs_ratio": f.full.macs / f.track.macs,
    }

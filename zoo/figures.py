"""Catalog figures as plain data: measured vs reported, per-part breakdowns, re-counts."""
from __future__ import annotations

import torch

from zoo.counting import ModelFigures, count_figures
from zoo.models import build_model
from zoo.schema import Variant
from zoo.weights import weights_status

#: the study's budgets: measured within these fractions of the reported figures
PARAMS_TOLERANCE = 0.01
MACS_TOLERANCE = 0.02


def example_inputs(variant: Variant) -> dict[str, torch.Tensor]:
    """Zero tensors with the catalog's input names and shapes (enough for counting)."""
    return {t.name: torch.zeros(t.shape, dtype=torch.float32) for t in variant.io.inputs}


def recount(variant: Variant) -> ModelFigures:
    """Build the architecture and count its parameters and MACs now."""
    return count_figures(build_model(variant.arch), example_inputs(variant))


def _delta_pct(measured: float, reported: float | None) -> float | None:
    return None if not reported else 100.0 * (measured / reported - 1.0)


def reported_dict(variant: Variant) -> dict | None:
    return None if variant.reported is None else variant.reported.model_dump()


def block_label(variant: Variant) -> str:
    """``FGAF×3``, ``AF(BN)×3``, ``base×3``: the study's block column in one token."""
    f = variant.arch.fusion
    name = "base" if f.kind == "base" else f.kind.upper()
    return f"{name}{'(BN)' if f.norm == 'batch' else ''}×{f.depth}"


def summary_row(variant: Variant) -> dict:
    """One ``zoo list`` row; ``params``/``macs``/``macs_total`` are the measured counts."""
    arch, rep, mes = variant.arch, variant.reported, variant.measured
    return {
        "name": variant.name,
        "row": rep.row if rep else None,
        "block": arch.fusion.kind,
        "block_label": block_label(variant),
        "norm": arch.fusion.norm,
        "channels": arch.width,
        "head_channels": arch.head.channels,
        "depth": arch.fusion.depth,
        "pretrain": variant.training.pretrain,
        "lasot_auc": rep.lasot_auc if rep else None,
        "params": mes.params,
        "params_m": mes.params / 1e6,
        "params_reported_m": rep.params_m if rep else None,
        "params_delta_pct": _delta_pct(mes.params / 1e6, rep.params_m if rep else None),
        "macs": mes.macs,
        "macs_m": mes.macs / 1e6,
        "macs_reported_m": rep.macs_m if rep else None,
        "macs_delta_pct": _delta_pct(mes.macs / 1e6, rep.macs_m if rep else None),
        "macs_total": mes.macs_total,
        "macs_total_m": mes.macs_total / 1e6,
        "weights": weights_status(variant),
        "weights_kind": variant.weights.provenance.kind,
        # reference weights are deterministic and untrained: the AUC beside them is the study's, not theirs
        "untrained": variant.weights.provenance.kind == "reference",
        "weights_sha256": variant.weights.sha256,
        "reported": reported_dict(variant),
    }


def part_rows(variant: Variant) -> list[dict]:
    """Per-part (backbone / fusion / head) parameters and MACs with shares of the total."""
    return figure_rows(recount(variant))


def figure_rows(figures: ModelFigures) -> list[dict]:
    """:func:`part_rows` of counted figures (e.g. a split's track graph, :mod:`zoo.split_figures`)."""
    rows = []
    for part, f in figures.parts.items():
        rows.append({
            "part": part,
            "params": f.params,
            "params_share_pct": 100.0 * f.params / figures.params,
            "macs": f.macs,
            "macs_share_pct": 100.0 * f.macs / figures.macs,
            "macs_total": f.macs_total,
            "macs_total_share_pct": 100.0 * f.macs_total / figures.macs_total,
            "macs_per_param": f.macs / f.params,
        })
    rows.append({
        "part": "total",
        "params": figures.params,
        "params_share_pct": 100.0,
        "macs": figures.macs,
        "macs_share_pct": 100.0,
        "macs_total": figures.macs_total,
        "macs_total_share_pct": 100.0,
        "macs_per_param": figures.macs / figures.params,
    })
    return rows


def within_budget(variant: Variant) -> tuple[bool, bool]:
    """(params within 1%, MACs within 2%) of the reported figures; True when nothing is reported."""
    rep = variant.reported
    if rep is None:
        return True, True
    p = abs(variant.measured.params / (rep.params_m * 1e6) - 1) <= PARAMS_TOLERANCE
    m = abs(variant.measured.macs / (rep.macs_m * 1e6) - 1) <= MACS_TOLERANCE
    return p, m

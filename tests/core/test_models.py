"""Every catalog variant rebuilt and checked: budgets, counts, shapes, BatchNorm folding."""
from __future__ import annotations

import pytest
import thop
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from tests.helpers.catalog import CATALOG, REPORTED, VARIANTS
from zoo.figures import MACS_TOLERANCE, PARAMS_TOLERANCE, example_inputs, recount
from zoo.models import build_model
from zoo.models.fold import fold_batchnorm
from zoo.weights import load_model


@pytest.mark.parametrize("name", REPORTED)
def test_budget_matches_study(name: str) -> None:
    """Measured params within 1% and MACs within 2% of the study's row."""
    v = CATALOG.get(name)
    f = recount(v)
    assert abs(f.params / (v.reported.params_m * 1e6) - 1) <= PARAMS_TOLERANCE, (f.params, v.reported.params_m)
    assert abs(f.macs / (v.reported.macs_m * 1e6) - 1) <= MACS_TOLERANCE, (f.macs, v.reported.macs_m)


@pytest.mark.parametrize("name", VARIANTS)
def test_catalog_measured_figures_are_current(name: str) -> None:
    """zoo.yaml's measured figures are what the architecture really has (torchvision-style)."""
    v = CATALOG.get(name)
    f = recount(v)
    assert (f.params, f.macs, f.macs_total) == (v.measured.params, v.measured.macs, v.measured.macs_total)
    assert sum(part.params for part in f.parts.values()) == f.params
    assert set(f.parts) == {"backbone", "fusion", "head"}


@pytest.mark.parametrize("name", ["base-c128", "fgaf3", "faf3-bn-c128", "gaf3"])
def test_counter_agrees_with_thop_and_flop_counter(name: str) -> None:
    """Cross-check: thop counts the same conv+linear MACs; torch's FlopCounter (which sees the
    attention matmuls) gives 2x macs_total."""
    v = CATALOG.get(name)
    model = build_model(v.arch)
    inputs = example_inputs(v)
    mine = recount(v)
    with FlopCounterMode(display=False) as counter:
        model(**inputs)
    assert counter.get_total_flops() == 2 * mine.macs_total

    def no_ops(m, x, y):
        m.total_ops += torch.zeros(1, dtype=torch.float64)

    skip = {nn.BatchNorm2d: no_ops, nn.BatchNorm1d: no_ops, nn.LayerNorm: no_ops, nn.ReLU: no_ops}
    thop_macs, _ = thop.profile(model, inputs=tuple(inputs.values()), verbose=False, custom_ops=skip)
    assert int(thop_macs) == mine.macs
    assert mine.macs_total > mine.macs  # attention products exist


def test_head_has_many_params_little_compute() -> None:
    """The study's remark holds in the model: the head's MACs share is below its params share."""
    f = recount(CATALOG.get("fgaf3"))
    head = f.parts["head"]
    assert head.macs / f.macs < head.params / f.params
    assert head.macs / head.params < f.parts["backbone"].macs / f.parts["backbone"].params


def test_asymmetric_attention_has_same_params_fewer_matmuls() -> None:
    af, faf = recount(CATALOG.get("af3")), recount(CATALOG.get("faf3"))
    assert (af.params, af.macs) == (faf.params, faf.macs)
    assert faf.macs_total < af.macs_total


@pytest.mark.parametrize("name", VARIANTS)
def test_forward_shapes_and_ranges(name: str) -> None:
    v = CATALOG.get(name)
    model = load_model(v)
    inputs = {k: torch.randn(t.shape, generator=torch.Generator().manual_seed(0)) for k, t in zip(["template", "search"], v.io.inputs)}
    with torch.no_grad():
        outputs = model(**inputs)
    assert [list(o.shape) for o in outputs] == [t.shape for t in v.io.outputs]
    score, size, _ = outputs
    assert torch.isfinite(torch.cat([o.flatten() for o in outputs])).all()
    assert 0 < score.min() and score.max() < 1 and score.std() > 0.01  # a map with a peak, not flat
    assert 0 < size.min() and size.max() < 1


@pytest.mark.parametrize("name", ["fgaf3-bn-c128", "af3-bn-c128", "base-c128", "fgaf3"])
def test_batchnorm_fold_is_exact(name: str) -> None:
    v = CATALOG.get(name)
    model = load_model(v)
    folded = fold_batchnorm(model)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in folded.modules())
    inputs = {t.name: torch.randn(t.shape, generator=torch.Generator().manual_seed(1)) for t in v.io.inputs}
    with torch.no_grad():
        for a, b in zip(model(**inputs), folded(**inputs)):
            torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-4)


def test_asymmetric_template_tokens_ignore_search() -> None:
    """F variants: template tokens attend only to template tokens, so changing the search crop
    leaves the template half of the fused tokens untouched (joint attention would not)."""
    for name, independent in (("faf3", True), ("af3", False)):
        model = load_model(CATALOG.get(name))
        t = torch.randn(1, 64, 256)
        outs = [model.fusion(t, torch.randn(1, 256, 256, generator=torch.Generator().manual_seed(s)))[0] for s in (1, 2)]
        assert torch.equal(outs[0], outs[1]) is independent

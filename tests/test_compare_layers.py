"""zoo compare --layers: per-module error of every runtime against PyTorch, and the first layer above its allowance.

Default tier, on the session's shared artifacts (``exported``): every runtime at fp32 and fp16
names >= 90% of the module outputs it computes and, unperturbed at fp32, reports no divergent
layer; every tensor a runtime computed is either named or listed; a weight perturbed in one
fusion block of an ONNX model and of the MNN model converted from it is reported at that block's
module path; the CLI writes its JSON and plot and refuses stray options.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from compare.layer_map import layouts, to_source_layout
from compare.layers import LayerReport, _tolerance, layers_variant
from exporters.base import BuildContext
from exporters.mnn import MnnExporter
from tests.helpers.catalog import CATALOG, DEFAULT_VARIANTS
from tests.helpers.cli import run_main
from zoo.artifacts import file_entry, read_manifest, write_manifest
from zoo.backends import RUNTIMES
from zoo.sample_inputs import sample_pairs

#: the perturbed layer: the qkv projection of the second fusion block (its ONNX node and module path)
PERTURBED_NODE = "/fusion/blocks.1/attn/qkv/MatMul"
PERTURBED_MODULE = "fusion.blocks.1.attn.qkv"
MIN_COVERAGE_PCT = 90.0


@pytest.fixture(scope="module")
def layer_reports(exported):
    """``get(variant, precision)``: every runtime's report on the shared artifacts (one input pair), computed once."""
    cache: dict[tuple[str, str], dict[str, LayerReport]] = {}

    def get(name: str, precision: str) -> dict[str, LayerReport]:
        if (name, precision) not in cache:
            v = CATALOG.get(name)
            runtimes = [r for r in RUNTIMES if precision in _precisions(r)]
            reports = layers_variant(v, runtimes, [precision], sample_pairs(v, 1), exported.out)
            cache[(name, precision)] = {r.runtime: r for r in reports}
        return cache[(name, precision)]

    return get


def _precisions(runtime: str) -> tuple[str, ...]:
    from zoo.backends import by_runtime

    return by_runtime(runtime).precisions


def check_coverage(report: LayerReport) -> None:
    """>= 90% of the module outputs the runtime computes are named among its tensors. Denominator:
    module calls whose output the exported ONNX graph carries as a tensor, minus those the runtime
    fused into the next op (a conv carrying its ReLU); folded-BatchNorm Identity modules have no
    op in the graph and are not counted."""
    assert report.error is None, report.error
    assert report.computed >= 100, report.summary()  # the whole network, not a fragment of it
    assert report.coverage_pct >= MIN_COVERAGE_PCT, (report.summary(), report.missing)
    # every tensor the runtime computed is accounted for: named, a layout copy, or listed as unnamed
    assert report.named_tensors + len(report.unmatched_tensors) + len(report.inserted_tensors) == report.tensors
    # the network's three parts are all reached, both backbone calls too
    found = {d.module for d in report.layers}
    depth = CATALOG.get(report.variant).arch.fusion.depth
    assert {f"fusion.blocks.{k}" for k in range(depth)} <= found
    assert {"backbone", "backbone#1", "head.neck", "head.branches.offset"} <= found, (report.runtime, report.missing)


@pytest.mark.parametrize("name", DEFAULT_VARIANTS)
def test_unperturbed_fp32_has_no_divergent_layer(layer_reports, name: str) -> None:
    reports = layer_reports(name, "fp32")
    assert sorted(reports) == sorted(RUNTIMES)
    for runtime, r in reports.items():
        check_coverage(r)
        assert r.first_divergent is None, (runtime, r.first_divergent)
        assert r.tolerance == "catalog" and r.atol > 0
        assert all(d.rel_err < 1e-3 and d.cosine > 0.9999 for d in r.layers), runtime


def test_fp16_layers_are_named_and_err_more_than_fp32(layer_reports) -> None:
    """fp16 artifacts (value-named runtimes through their fp32 map) are named as well, and their
    last layer errs more than at fp32: the figures come from the fp16 run, not the calibration."""
    fp32, fp16 = layer_reports("fgaf3", "fp32"), layer_reports("fgaf3", "fp16")
    assert sorted(fp16) == sorted(r for r in RUNTIMES if "fp16" in _precisions(r))
    for runtime, r in fp16.items():
        check_coverage(r)
        last16 = max(r.layers, key=lambda d: d.graph_order)
        last32 = max(fp32[runtime].layers, key=lambda d: d.graph_order)
        assert last16.module == last32.module
        assert last16.rel_err > 10 * last32.rel_err, (runtime, last16.rel_err, last32.rel_err)


def test_layouts() -> None:
    """The runners' layout rules, back to the exported graph's shape."""
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    nhwc = x.transpose(0, 2, 3, 1)
    assert "nhwc" in layouts(nhwc.shape, x.shape)
    np.testing.assert_array_equal(to_source_layout(nhwc, "nhwc", x.shape), x)
    tokens = x.reshape(1, 6, 20)
    np.testing.assert_array_equal(to_source_layout(tokens.transpose(0, 2, 1).copy(), "nwc", tokens.shape), tokens)
    assert layouts((3, 4, 5), (1, 3, 4, 5)) == ["reshape"]  # ncnn drops the batch axis
    assert layouts((320, 384, 1, 1), (1, 320, 384)) == ["reshape"]  # MNN's matmul as 1x1 conv
    assert layouts((3, 4), (1, 5, 3)) == []


def test_allowance_from_catalog_options_or_none() -> None:
    """The catalog's tolerance of the artifact's format and precision; --atol/--rtol override it; a
    precision the catalog has none for (int8 before its row exists) gets figures without a verdict."""
    v = CATALOG.get("fgaf3")
    tol = v.tolerances["mnn"]["fp16"]
    assert _tolerance(v, "mnn", "fp16", None, None) == (tol.atol, tol.rtol, "catalog")
    assert _tolerance(v, "mnn", "fp16", 0.5, None) == (0.5, tol.rtol, "options")
    assert _tolerance(v, "mnn", "int8-unknown", None, None) == (None, None, "none")
    assert _tolerance(v, "mnn", "int8-unknown", None, 0.2) == (0.0, 0.2, "options")


# -- a perturbed weight -------------------------------------------------------------------------
def _perturb_onnx(path: Path) -> None:
    model = onnx.load(str(path))
    node = next(n for n in model.graph.node if n.name == PERTURBED_NODE)
    init = next(i for i in model.graph.initializer if i.name in node.input)
    w = numpy_helper.to_array(init).copy()
    w[:, 0] += 0.5  # one output channel of the qkv projection
    init.CopyFrom(numpy_helper.from_array(w, init.name))
    onnx.save(model, str(path))


def _refresh_manifest(artifact: Path) -> None:
    manifest = read_manifest(artifact)
    manifest.files = [file_entry(artifact, f.path) for f in manifest.files]
    write_manifest(artifact, manifest)


def test_perturbed_weight_is_the_first_divergent_layer(exported, tmp_path: Path) -> None:
    """ONNX Runtime on the edited ONNX model and MNN on the model converted from it both name the
    perturbed projection, with everything before it within its allowance."""
    v = CATALOG.get("fgaf3")
    out = exported.copy(tmp_path / "art", "fgaf3", "onnx", "mnn")
    onnx_dir, mnn_dir = out / "fgaf3" / "onnx", out / "fgaf3" / "mnn"
    onnx_file = onnx_dir / read_manifest(onnx_dir).files[0].path
    _perturb_onnx(onnx_file)
    _refresh_manifest(onnx_dir)
    build = tmp_path / "build"
    build.mkdir()
    MnnExporter().convert(BuildContext(v, "fp32", build, tmp_path / "mnn.log", onnx_path=onnx_file))
    shutil.copyfile(build / "model.mnn", mnn_dir / "model.mnn")
    _refresh_manifest(mnn_dir)

    reports = {r.runtime: r for r in layers_variant(v, ["onnxruntime", "mnn"], ["fp32"], sample_pairs(v, 1), out)}
    for runtime, r in reports.items():
        first = r.first_divergent
        assert first is not None and first.module == PERTURBED_MODULE, (runtime, first)
        assert first.ratio > 10
        before = [d for d in r.layers if d.index < first.index]
        assert len(before) > 50 and all(d.ratio <= 1 for d in before), runtime
        # downstream of the block the error stays: the outputs are off by far more than fp32 rounding
        assert max(r.layers, key=lambda d: d.graph_order).rel_err > 1e-3


# -- CLI ----------------------------------------------------------------------------------------
def test_cli_layers_json_and_plot(exported, capsys, monkeypatch, tmp_path: Path) -> None:
    report, plot = tmp_path / "layers.json", tmp_path / "layers.png"
    code, out, err = run_main(capsys, monkeypatch, "compare", "fgaf3", "--layers", "--runtimes", "onnxruntime",
                              "--samples", "1", "--out", str(exported.out), "--json", str(report), "--plot", str(plot))
    assert code == 0, err
    assert "fusion.blocks.2" in out and "first above" in out
    data = json.loads(report.read_text())
    assert [(s["runtime"], s["first_divergent"]) for s in data["summary"]] == [("onnxruntime", None)]
    assert all(s["coverage_pct"] >= MIN_COVERAGE_PCT for s in data["summary"])
    assert len(data["reports"][0]["layers"]) == data["summary"][0]["matched"] > 100
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("args", [("--plot", "x.png"), ("--atol", "0.1"), ("--layers", "--threads", "1"),
                                  ("--layers", "--pytorch-vs-onnx"), ("--layers", "--atol", "nan")])
def test_cli_layers_usage_errors(capsys, monkeypatch, args) -> None:
    code, out, err = run_main(capsys, monkeypatch, "compare", "fgaf3", *args)
    assert code == 2, (out, err)
    assert "error:" in err and "Traceback" not in err

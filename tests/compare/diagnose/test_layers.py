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

from compare.diagnose.layer_map import canonical_name, layouts, to_source_layout
from compare.diagnose.layers import LayerReport, _tolerance, layers_variant
from compare.diagnose.layers_split import layers_split
from compare.diagnose.onnx_graph import ScopeResolver
from compare.runners.taps import dequantized
from exporters.base import BuildContext
from exporters.mnn import MnnExporter
from tests.helpers.artifacts import FOREIGN_ENV
from tests.helpers.catalog import CATALOG, DEFAULT_VARIANTS
from tests.helpers.cli import run_main
from tests.helpers.export import zoo
from zoo.backends import TAPPED_RUNTIMES as RUNTIMES  # the runtimes with a tensor tap
from zoo.manifest import file_entry, read_manifest, write_manifest
from zoo.models.split import cache_kind
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
            reports = layers_variant(CATALOG, v, runtimes, [precision], sample_pairs(v, 1), exported.out)
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
    # reduced precisions gated at tracker level: their atol/rtol are reported only, so no per-layer verdict
    assert v.tolerances["onnx"]["int8"].tracker is not None
    assert _tolerance(v, "onnx", "int8", None, None) == (None, None, "tracker")
    assert _tolerance(v, "onnx", "int8", 0.0, 0.05) == (0.0, 0.05, "options")


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

    reports = {r.runtime: r for r in layers_variant(CATALOG, v, ["onnxruntime", "mnn"], ["fp32"], sample_pairs(v, 1), out)}
    for runtime, r in reports.items():
        first = r.first_divergent
        assert first is not None and first.module == PERTURBED_MODULE, (runtime, first)
        assert first.ratio > 10
        before = [d for d in r.layers if d.index < first.index]
        assert len(before) > 50 and all(d.ratio <= 1 for d in before), runtime
        # downstream of the block the error stays: the outputs are off by far more than fp32 rounding
        assert max(r.layers, key=lambda d: d.graph_order).rel_err > 1e-3


# -- CLI ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix, magic", [pytest.param("png", b"\x89PNG\r\n\x1a\n", marks=pytest.mark.slow), ("pdf", b"%PDF-")])
def test_cli_layers_json_and_plot(exported, capsys, monkeypatch, tmp_path: Path, suffix, magic) -> None:
    """The plot is written in the format its suffix names (before: PNG bytes in a .pdf)."""
    report, plot = tmp_path / "layers.json", tmp_path / f"layers.{suffix}"
    code, out, err = run_main(capsys, monkeypatch, "compare", "fgaf3", "--layers", "--runtimes", "onnxruntime",
                              "--samples", "1", "--out", str(exported.out), "--json", str(report), "--plot", str(plot))
    assert code == 0, err
    assert "fusion.blocks.2" in out and "first above" in out
    data = json.loads(report.read_text())
    assert [(s["runtime"], s["first_divergent"]) for s in data["summary"]] == [("onnxruntime", None)]
    assert all(s["coverage_pct"] >= MIN_COVERAGE_PCT for s in data["summary"])
    assert len(data["reports"][0]["layers"]) == data["summary"][0]["matched"] > 100
    assert plot.read_bytes()[:len(magic)] == magic


@pytest.mark.parametrize("args", [("--plot", "x.png"), ("--layers", "--plot", "x.jpg"), ("--atol", "0.1"), ("--layers", "--threads", "1"),
                                  ("--layers", "--pytorch-vs-onnx"), ("--layers", "--atol", "nan")])
def test_cli_layers_usage_errors(capsys, monkeypatch, args) -> None:
    code, out, err = run_main(capsys, monkeypatch, "compare", "fgaf3", *args)
    assert code == 2, (out, err)
    assert "error:" in err and "Traceback" not in err


# -- reduced precisions ------------------------------------------------------------------------
def _export(out: Path, *args: str) -> None:
    proc = zoo("export", *args, "--out", str(out), "--json", "-", timeout=1800, unset=FOREIGN_ENV)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def int8_onnx(exported, tmp_path_factory) -> Path:
    """base-c128's QDQ int8 ONNX model, quantized from a copy of the shared fp32 ONNX (~20 s)."""
    out = exported.copy(tmp_path_factory.mktemp("int8") / "art", "base-c128", "onnx")
    _export(out, "base-c128", "--to", "onnx", "--precision", "int8")
    return out


def check_reduced(report: LayerReport, fp32: LayerReport) -> None:
    """Named as well as fp32; figures only (tracker-gated); every layer's error at or above fp32's and far above at the end."""
    check_coverage_reduced(report)
    assert report.tolerance == "tracker" and report.atol is None and report.first_divergent is None
    assert "tracker level" in report.note
    by_module = {d.module: d for d in fp32.layers}
    last = max(report.layers, key=lambda d: d.graph_order)
    assert last.module == max(fp32.layers, key=lambda d: d.graph_order).module
    # int8 error: percent of the scale at the outputs (1e-7 at fp32); below 50%: the values are the module's, not a mix-up
    assert 1e-2 < last.rel_err < 0.5 and last.rel_err > 100 * by_module[last.module].rel_err, last
    assert max(d.rel_err for d in report.layers) < 0.5, sorted(report.layers, key=lambda d: -d.rel_err)[:3]
    assert all(d.cosine > 0.9 for d in report.layers), [d.module for d in report.layers if d.cosine <= 0.9]


def check_coverage_reduced(report: LayerReport) -> None:
    """:func:`check_coverage` without the verdict: the quantizer's copies are listed as inserted, never unnamed."""
    assert report.error is None, report.error
    assert report.computed >= 100 and report.coverage_pct >= MIN_COVERAGE_PCT, (report.summary(), report.missing)
    assert report.named_tensors + len(report.unmatched_tensors) + len(report.inserted_tensors) == report.tensors
    found = {d.module for d in report.layers}
    assert {"backbone", "backbone#1", "fusion.blocks.0", "head.neck", "head.branches.offset"} <= found, report.missing


def test_onnx_int8_qdq_layers(int8_onnx: Path, layer_reports) -> None:
    """ONNX Runtime on a QDQ model: the tap runs the graph ORT fused (QLinearConv, QLinearMatMul, ...),
    so its outputs are the runtime's own, bit for bit; integer tensors are dequantized, and a conv's
    value carries the ReLU the quantizer folded into the uint8 range."""
    v = CATALOG.get("base-c128")
    (report,) = layers_variant(CATALOG, v, ["onnxruntime"], ["int8"], sample_pairs(v, 1), int8_onnx)
    check_reduced(report, layer_reports("base-c128", "fp32")["onnxruntime"])
    assert report.tap_drift is not None and report.tap_drift < 1e-6, report.tap_drift  # the real int8 kernels, not a float simulation
    assert len(report.unmatched_tensors) <= 8, report.unmatched_tensors  # QDQ weights, copies and ORT's transposes are inserted
    relu = [d for d in report.layers if d.module.startswith("backbone.stages.0.0")]
    assert relu and all(d.rel_err < 0.05 for d in relu), relu  # the pre-ReLU conv output would be ~1.0 off
    # with --atol/--rtol the first layer above them is named, upstream of the outputs
    (gated,) = layers_variant(CATALOG, v, ["onnxruntime"], ["int8"], sample_pairs(v, 1), int8_onnx, atol=0.0, rtol=0.02)
    assert gated.tolerance == "options" and gated.first_divergent is not None
    assert gated.first_divergent.graph_order < max(d.graph_order for d in gated.layers)


@pytest.mark.slow
def test_tflite_int8_layers(exported, layer_reports, tmp_path: Path) -> None:
    """TFLite full-integer and dynamic-range models (~90 s of conversion): integer tensors dequantized,
    named through the fp32 model's map (Keras' model_N prefix aside), the outputs by their signature names."""
    out = exported.copy(tmp_path / "art", "base-c128", "onnx", "tflite")
    _export(out, "base-c128", "--to", "tflite", "--precision", "int8", "int8-dynamic")
    v = CATALOG.get("base-c128")
    fp32 = layer_reports("base-c128", "fp32")["tflite"]
    for report in layers_variant(CATALOG, v, ["tflite"], ["int8", "int8-dynamic"], sample_pairs(v, 1), out):
        check_reduced(report, fp32)


def test_keras_prefix_and_dequantization() -> None:
    """onnx2tf's names differ between conversions only by the Keras model counter; TFLite integer
    tensors stand for ``(q - zero_point) * scale``, per channel on the quantized axis."""
    assert canonical_name("model_87/tf.nn.relu/Relu;model_87/tf.math.add/Add") == "model/tf.nn.relu/Relu;model/tf.math.add/Add"
    assert canonical_name("tfl.quantize") == "tfl.quantize"
    q = np.array([[-128, 0, 127]], np.int8)
    np.testing.assert_allclose(dequantized(q, {"scales": np.array([0.5]), "zero_points": np.array([-128])}), [[0.0, 64.0, 127.5]])
    per_channel = dequantized(np.ones((1, 2), np.int8), {"scales": np.array([1.0, 2.0]), "zero_points": np.array([0, 0]), "quantized_dimension": 1})
    np.testing.assert_allclose(per_channel, [[1.0, 2.0]])
    assert dequantized(np.ones(3, np.float32), {"scales": np.array([2.0])}) is None


# -- split artifacts -------------------------------------------------------------------------------
#: runtimes whose converter leaves no tensor equal to a LayerNorm module's output (litert-torch)
NORM_OUTPUT_ABSENT = frozenset({"tflite"})


@pytest.mark.parametrize(("name", "runtimes"), [("fgaf3", RUNTIMES), ("base-c128", ["onnxruntime"])])
def test_split_graphs_layers(split_exported, name: str, runtimes) -> None:
    """Each graph of a split artifact against the PyTorch split modules: the init graph on the
    template, the track graph on the search crop with the cache the runtime's init graph returned.
    fgaf3 (asymmetric: the init graph runs the fusion blocks' K/V path outside the block modules,
    scoped by bare module names) and base-c128 (joint: the cache is the template tokens)."""
    v = CATALOG.get(name)
    reports = layers_split(CATALOG, v, list(runtimes), ["fp32"], sample_pairs(v, 1), split_exported.out)
    assert sorted((r.runtime, r.graph) for r in reports) == sorted((rt, g) for rt in runtimes for g in ("init", "track"))
    depth = v.arch.fusion.depth
    for r in reports:
        assert r.error is None, (r.runtime, r.graph, r.error)
        # litert-torch decomposes LayerNorm and no interpreter tensor equals its affine output (the few-
        # module split graphs then sit just under the coverage floor): every other module must be found
        missing = [m for m in r.missing if not (r.runtime in NORM_OUTPUT_ABSENT and m.rsplit(".", 1)[-1].startswith("norm"))]
        coverage = 100.0 * (r.computed - len(r.missing)) / (r.computed - (len(r.missing) - len(missing)))
        assert coverage >= MIN_COVERAGE_PCT and r.computed >= 40, (r.label, r.summary(), r.missing)
        assert r.named_tensors + len(r.unmatched_tensors) + len(r.inserted_tensors) == r.tensors
        # fp32, the real cache fed in: nothing departs (a cache fed in the wrong layout shows at the first attention)
        assert r.first_divergent is None, (r.label, r.first_divergent)
        assert all(d.rel_err < 1e-3 for d in r.layers), r.label
        found = {d.module for d in r.layers}
        if r.graph == "init":
            assert "backbone" in found and not any(m.startswith("head") for m in found)
            qkv = {f"fusion.blocks.{k}.attn.qkv" for k in range(depth)}
            assert qkv <= found if cache_kind(v) == "template_kv" else not qkv & found, (r.label, sorted(found))
        else:
            assert {"backbone", "head.neck", "head.branches.offset", f"fusion.blocks.{depth - 1}.attn.qkv"} <= found, (r.label, r.missing)


def test_scope_resolver() -> None:
    """Bare-module ONNX scopes: the k-th repeat of a scope is the k-th module ending with it, in call order."""
    order = ["backbone", "fusion.blocks.0.attn.qkv", "fusion.blocks.0.ffn.fc1", "fusion.blocks.0.ffn",
             "fusion.blocks.1.attn.qkv", "fusion.blocks.1.ffn.fc1", "fusion.blocks.1.ffn"]
    resolve = ScopeResolver(order)
    assert resolve("/qkv_1/Add") == "fusion.blocks.1.attn.qkv"
    assert resolve("/ffn/fc1_1/MatMul") == "fusion.blocks.1.ffn.fc1"
    assert resolve("/ffn_1/Slice") == "fusion.blocks.1.ffn"
    assert resolve("/qkv_2/Add") is None and resolve("/Slice_7") is None

"""Reduced precisions (int8, int8-dynamic, bf16): every one of every format exports, passes the
tracker-level gate and runs for the default variants; a broken quantized model fails the gate and
is not installed; calibration and verification pairs never overlap.

One session fixture builds them all once (``zoo export ... --jobs 2``) into its own directory: the
shared ``exported`` fixture keeps to fp32/fp16, so nothing else in the suite reads these artifacts.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from compare.parity.verify import Verifier
from compare.provision import ensure
from compare.runners import open_artifact
from exporters import onnx_int8
from tests.helpers.artifacts import FOREIGN_ENV
from tests.helpers.catalog import CATALOG, DEFAULT_VARIANTS
from tests.helpers.cli import run_main
from tests.helpers.export import json_rows, zoo
from zoo.artifacts import ArtifactKey, check_files
from zoo.backends import FORMATS, REDUCED_PRECISIONS, offered
from zoo.calibration import disjoint, make_pairs, open_source, pair_digest
from zoo.catalog import Catalog
from zoo.datasets.synthetic import make_sequence, write_sequence
from zoo.manifest import read_manifest
from zoo.sample_inputs import sample_pairs
from zoo.tracker_parity import tracker_parity

REDUCED = [(f, p) for f in FORMATS for p in offered(f) if p in REDUCED_PRECISIONS]
#: reduced artifacts the default tier leaves to the slow one: ExecuTorch's int8 (pt2e calibration, then
#: the XNNPACK lowering of the quantized graph: 28 s for base-c128, 44 s in all for fgaf3 on CI's 2 cores);
#: the slow tier also runs tests/exporters/test_executorch.py::test_int8_passes_the_tracker_gate
SLOW_REDUCED = {(name, "executorch", "int8") for name in DEFAULT_VARIANTS}


def _export_into(out: Path, names: list[str], formats: list[str], precisions: list[str]) -> dict:
    report = out.parent / f"rows-{'-'.join(names)}-{'-'.join(formats)}.json"
    proc = zoo("export", *names, "--to", *formats, "--precision", *precisions, "--out", str(out),
               "--jobs", "2", "--json", str(report), timeout=2400, unset=FOREIGN_ENV)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json_rows(report)


@pytest.fixture(scope="session")
def quantized(tmp_path_factory):
    """base-c128 and fgaf3 at every reduced precision of every format (ONNX fp32 comes along), but
    :data:`SLOW_REDUCED`, which a slow test exports on demand (:func:`reduced_row`)."""
    out = tmp_path_factory.mktemp("quantized") / "art"
    formats = sorted({f for f, _ in REDUCED})
    precisions = sorted({p for _, p in REDUCED})
    slow_formats = sorted({f for _, f, _ in SLOW_REDUCED})
    rows = _export_into(out, list(DEFAULT_VARIANTS), [f for f in formats if f not in slow_formats], precisions)
    for fmt in slow_formats:
        names = [n for n in DEFAULT_VARIANTS if all((n, fmt, p) not in SLOW_REDUCED for p in precisions)]
        if names:
            rows.update(_export_into(out, names, [fmt], [p for f, p in REDUCED if f == fmt]))
    return out, rows


def reduced_row(quantized, name: str, fmt: str, precision: str) -> dict:
    """The export row of one reduced artifact, exported now if the default tier left it out."""
    out, rows = quantized
    if (name, fmt, precision) not in rows:
        rows.update(_export_into(out, [name], [fmt], [precision]))
    return rows[(name, fmt, precision)]


def _cases():
    return [pytest.param(n, f, p, marks=pytest.mark.slow) if (n, f, p) in SLOW_REDUCED else (n, f, p)
            for n in DEFAULT_VARIANTS for f, p in REDUCED]


@pytest.mark.parametrize("name,fmt,precision", _cases())
def test_reduced_precision_exports_verifies_and_runs(quantized, name: str, fmt: str, precision: str) -> None:
    out, _ = quantized
    assert reduced_row(quantized, name, fmt, precision)["status"] == "built"
    artifact = ArtifactKey(name, fmt, precision).path(out)
    manifest = read_manifest(artifact)
    assert check_files(artifact, manifest) == []
    variant = CATALOG.get(name)
    gate = variant.tolerances[fmt][precision].tracker
    t = manifest.parity.tracker
    assert gate is not None and t is not None and manifest.parity.passed and t.passed
    assert t.pairs == gate.pairs >= 64 and t.mean_iou >= gate.mean_iou and t.peak_agreement_all >= gate.peak_agreement_all
    assert t.peak_agreement is None or t.peak_agreement >= gate.peak_agreement
    q = manifest.quantization
    assert q and q["calibration"]["kind"] == "bundled" and len(q["calibration"]["sha256"]) == 64 and q["hardware"]
    assert q["recipe"] == Catalog.load().quantization.recipes[fmt][precision][q["target"]].model_dump()
    if q["recipe"]["method"] == "static":
        assert q["calibration"]["pairs"] >= 64
    # it runs: a fresh runner on a pair of another scene, outputs close to float32 at tracker level
    with open_artifact(artifact, variant) as runner, open_artifact(out / name / "onnx", variant) as ref:
        pairs = sample_pairs(variant, 4)[1:]
        got, want = [runner.infer(p) for p in pairs], [ref.infer(p) for p in pairs]
    for g in got:
        assert all(np.isfinite(v).all() for v in g.values())
    figures = tracker_parity(want, got, CATALOG.preset(variant), variant.preprocessing.search_size, gate.model_copy(update={"pairs": 8}))
    assert figures.mean_iou > 0.3


def test_compare_judges_the_export_gate_on_the_same_pairs(quantized) -> None:
    """One gate: zoo compare judges a reduced precision on the export's held-out pairs (the catalog's
    count, whatever --samples) and reaches the export's verdict and figures; with --samples equal to
    that count the table's own figures are the gate's, and the failure line counts the pairs judged."""
    from compare.comparison import Options, run
    from compare.parity.runtimes import tracker_rows
    from zoo.tracker_parity import describe_tracker_failure

    out, _ = quantized
    variant = CATALOG.get("base-c128")
    for samples in (4, 64):
        report = run(CATALOG, [variant], Options(runtimes=["onnxruntime", "tflite"], precisions=["int8"], samples=samples,
                                                 runs=0, out=out))
        assert len(report.parity) == 2
        for r, row in zip(report.parity, tracker_rows(report.parity), strict=True):
            gate = variant.tolerances[r.format][r.precision].tracker
            exported = read_manifest(ArtifactKey(variant.name, r.format, r.precision).path(out)).parity.tracker
            assert r.gate.pairs == exported.pairs == gate.pairs == row["gate_pairs"] == 64, (r.runtime, samples)
            assert r.gate.passed == exported.passed and r.passed == exported.passed
            assert r.gate.peak_agreement_all == pytest.approx(exported.peak_agreement_all)
            assert r.gate.mean_iou == pytest.approx(exported.mean_iou, abs=1e-6)
            assert row["samples"] == samples == len(r.tracking)
            if samples == gate.pairs:  # the same pairs: the per-sample figures are the gate's
                assert row["same_cell"] == round(r.gate.peak_agreement_all * samples)
                assert row["mean_iou"] == pytest.approx(r.gate.mean_iou, abs=1e-6)
            assert describe_tracker_failure(r.gate).startswith(f"tracker-level check failed on {gate.pairs} held-out pairs")


def test_int8_is_smaller_than_fp32(quantized) -> None:
    out, _ = quantized
    for name in DEFAULT_VARIANTS:
        fp32 = read_manifest(out / name / "onnx").size_bytes
        for fmt, precision in REDUCED:
            if precision.startswith("int8") and (name, fmt, precision) not in SLOW_REDUCED:
                size = read_manifest(ArtifactKey(name, fmt, precision).path(out)).size_bytes
                assert size <= 0.35 * fp32, (name, fmt, precision, size / fp32)


def test_onnx_int8_keeps_attention_softmax_layernorm_float(quantized) -> None:
    out, _ = quantized
    model = onnx.load(str(out / "fgaf3" / "onnx-int8" / "model.int8.onnx"))
    produced = {o: n for n in model.graph.node for o in n.output}
    inits = {i.name: i for i in model.graph.initializer}
    recipe = Catalog.load().quantization.recipes["onnx"]["int8"]["x86"]
    assert {"Softmax", "LayerNormalization", "MatMul:activations"} <= set(recipe.keep_float)

    def dequantized(name: str) -> bool:
        return name in produced and produced[name].op_type == "DequantizeLinear"

    norms = [n for n in model.graph.node if n.op_type == "LayerNormalization"]
    assert norms and all(i in inits and not dequantized(i) for n in norms for i in n.input[1:])  # float gamma/beta
    weight_matmuls = [n for n in model.graph.node if n.op_type in ("MatMul", "Conv") and any(
        dequantized(i) and produced[i].input[0] in inits and inits[produced[i].input[0]].data_type == onnx.TensorProto.INT8
        for i in n.input[1:])]
    assert len(weight_matmuls) > 20  # the convolutions and linear layers run on int8 weights
    consumers = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    softmaxes = [n for n in model.graph.node if n.op_type == "Softmax"]
    assert softmaxes and all(not dequantized(n.input[0]) for n in softmaxes)
    for n in softmaxes:  # attention probabilities go to a float MatMul (attn @ v), never through QuantizeLinear
        assert [c.op_type for c in consumers[n.output[0]]] == ["MatMul"]


def test_broken_quantized_model_fails_the_gate_and_is_not_installed(quantized, tmp_path, monkeypatch) -> None:
    """Corrupt the weight scales of the quantized ONNX model (what a silent mis-conversion looks like):
    the tracker-level check must fail and nothing may be installed."""
    out, _ = quantized
    real = onnx_int8.convert

    def broken(ctx, extra):
        result = real(ctx, extra)
        path = ctx.build_dir / result.files[0]
        model = onnx.load(str(path))
        for init in model.graph.initializer:
            if init.name.endswith("_scale") and init.dims:  # per-channel weight scales
                values = numpy_helper.to_array(init)
                init.CopyFrom(numpy_helper.from_array(values[::-1].copy() * 7.0, init.name))
        onnx.save(model, str(path))
        return result

    monkeypatch.setattr(onnx_int8, "convert", broken)
    dest = tmp_path / "art"
    (dest / "base-c128").mkdir(parents=True)
    import shutil

    shutil.copytree(out / "base-c128" / "onnx", dest / "base-c128" / "onnx")
    variant = CATALOG.get("base-c128")  # the smaller model: the gate must catch it on flat score maps too
    rows = [p.row for p in ensure([ArtifactKey(variant.name, "onnx", "int8")], dest, CATALOG, refresh=True)]
    assert rows[0].key == ArtifactKey(variant.name, "onnx") and rows[0].status == "reused"
    assert rows[1].status == "failed" and "tracker-level check failed" in rows[1].note, rows[1].note
    assert not (dest / "base-c128" / "onnx-int8").exists()
    assert not [p for p in (dest / ".build").iterdir() if p.name != "locks"]  # no build left behind (locks stay)


def test_swapped_outputs_fail_the_gate(quantized, tmp_path) -> None:
    """A TFLite int8 manifest with size and offset bound the wrong way round (same shape) fails."""
    out, _ = quantized
    src = out / "fgaf3" / "tflite-int8"
    import shutil

    work = tmp_path / "tflite-int8"
    shutil.copytree(src, work)
    manifest = read_manifest(work)
    size, offset = manifest.binding("outputs", "size"), manifest.binding("outputs", "offset")
    size.runtime_name, offset.runtime_name = offset.runtime_name, size.runtime_name
    variant = CATALOG.get("fgaf3")
    parity = Verifier(CATALOG)(ArtifactKey(variant.name, "tflite", "int8"), work, manifest)
    assert not parity.passed and parity.tracker is not None and parity.tracker.mean_iou < 0.3, parity.tracker


def _pairs(source, n=64):
    variant = CATALOG.get("base-c128")
    preset = CATALOG.preset(variant)
    return make_pairs(variant, preset, source, n, "calibration"), make_pairs(variant, preset, source, n, "verification")


def test_calibration_and_verification_pairs_are_disjoint(tmp_path) -> None:
    spec = Catalog.load().quantization
    assert spec.calibration_pairs >= 64
    cal, ver = _pairs(open_source(None), spec.calibration_pairs)
    assert len(cal) == len(ver) == 64 and disjoint(cal, ver)
    assert len({pair_digest(p) for p in cal}) == 64  # jittered: no two calibration pairs alike
    again, _ = _pairs(open_source(None), 64)
    assert [pair_digest(p) for p in again] == [pair_digest(p) for p in cal]  # deterministic
    # a sequence folder and a folder of images: disjoint too, and the source hash follows the bytes
    seq_root = tmp_path / "seqs"
    folder = write_sequence(make_sequence("moving", frames=8), seq_root, "otb")
    source = open_source(seq_root)
    assert source.kind == "sequences" and len(source.items) == 1
    cal, ver = _pairs(source, 16)
    assert disjoint(cal, ver)
    images = tmp_path / "images"
    images.mkdir()
    for p in sorted((folder / "img").iterdir())[:3]:
        (images / p.name).write_bytes(p.read_bytes())
    first = open_source(images)
    assert first.kind == "images" and disjoint(*_pairs(first, 16))
    (images / min(p.name for p in images.iterdir())).write_bytes(b"changed")
    assert open_source(images).sha256 != first.sha256


def test_tracker_parity_separates_identical_from_broken() -> None:
    variant = CATALOG.get("base-c128")
    gate = variant.tolerances["onnx"]["int8"].tracker
    rng = np.random.default_rng(1)
    outs = [{"score": rng.random((1, 1, 16, 16)).astype(np.float32), "size": rng.uniform(0.1, 0.3, (1, 2, 16, 16)),
             "offset": rng.random((1, 2, 16, 16))} for _ in range(16)]
    preset = CATALOG.preset(variant)
    same = tracker_parity(outs, outs, preset, 256, gate)
    assert same.passed and same.mean_iou == pytest.approx(1.0) and same.peak_agreement_all == 1.0
    broken = [{"score": o["score"][..., ::-1, ::-1].copy(), "size": o["offset"], "offset": o["size"]} for o in outs]
    bad = tracker_parity(outs, broken, preset, 256, gate)
    assert not bad.passed and bad.mean_iou < gate.mean_iou


def test_bad_calibration_path_is_one_line(capsys, monkeypatch, tmp_path) -> None:
    code, _, err = run_main(capsys, monkeypatch, "export", "base-c128", "--to", "onnx", "--precision", "int8",
                              "--calibration", str(tmp_path / "missing"), "--out", str(tmp_path / "art"))
    assert code == 2 and err.strip().startswith("error: --calibration") and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "art" / "base-c128").exists()


def test_manifest_records_target_hardware(quantized) -> None:
    out, _ = quantized
    q = json.loads((out / "fgaf3" / "onnx-int8" / "manifest.json").read_text())["quantization"]
    assert q["target"] == "x86" and "U8S8" in q["hardware"] and q["recipe"]["activations"] == "uint8"


def test_publish_and_pull_reduced_precisions(quantized, tmp_path, capsys, monkeypatch) -> None:
    from tests.helpers.hub_server import HubServer

    out, _ = quantized
    release = tmp_path / "release"
    code, _, err = run_main(capsys, monkeypatch, "publish", "base-c128", "--formats", "onnx", "tflite", "--precision", "int8",
                            "int8-dynamic", "--artifacts", str(out), "--to", str(release))
    assert code == 0, err
    for key in FOREIGN_ENV:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "cache"))
    with HubServer(release) as hub:
        code, stdout, err = run_main(capsys, monkeypatch, "pull", "base-c128", "--hub", hub.url, "--precision", "int8",
                                     "int8-dynamic", "--out", str(tmp_path / "pulled"), "--json", "-")
    assert code == 0, err
    items = {r["item"] for r in json.loads(stdout)["pulled"]}
    assert {"onnx-int8", "tflite-int8", "tflite-int8-dynamic"} <= items
    for item in ("onnx-int8", "tflite-int8", "tflite-int8-dynamic"):
        d = tmp_path / "pulled" / "base-c128" / item
        manifest = read_manifest(d)
        assert check_files(d, manifest) == [] and manifest.parity.tracker is not None and manifest.quantization


def test_track_and_bench_accept_int8(quantized, tmp_path, capsys, monkeypatch) -> None:
    out, _ = quantized
    folder = write_sequence(make_sequence("moving", frames=6), tmp_path / "seq", "otb")
    report = tmp_path / "track.json"
    code, _, err = run_main(capsys, monkeypatch, "track", "fgaf3", str(folder), "--runtime", "tflite", "--precision", "int8",
                            "--artifacts", str(out), "--json", str(report))
    assert code == 0, err
    assert json.loads(report.read_text())["tracker"] == "fgaf3@tflite-int8"
    code, _, err = run_main(capsys, monkeypatch, "bench", "base-c128", "--runtime", "onnxruntime", "--precision", "int8",
                            "--threads", "1", "--concurrency", "1", "--seconds", "0.5", "--warmup", "1", "--out", str(out), "--json", str(tmp_path / "bench.json"))
    assert code == 0, err
    rows = json.loads((tmp_path / "bench.json").read_text())
    assert "int8" in json.dumps(rows)


def test_tflite_only_recipe_fields_are_refused_elsewhere() -> None:
    from pydantic import ValidationError

    from zoo.schema import QuantizationSpec

    spec = CATALOG.quantization.model_dump()
    spec["recipes"]["onnx"]["int8"]["x86"]["float_passthrough"] = ["RESHAPE"]
    with pytest.raises(ValidationError, match="recipes.onnx.int8.x86: float_passthrough is read by the TFLite exporter only"):
        QuantizationSpec.model_validate(spec)
    spec = CATALOG.quantization.model_dump(exclude_defaults=True)
    assert QuantizationSpec.model_validate(spec).recipes["tflite"]["int8-dynamic"]["any"].min_weight_elements == 1024

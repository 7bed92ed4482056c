"""zoo export, default tier: every format for base-c128 and fgaf3 (the session's shared export,
built once through the real CLI: tests/helpers/artifacts.py), verified in its runtime, plus the
failure paths (failing converter, broken ONNX, parity above tolerance, unwritable output, unknown
format, missing package, corrupt artifact, concurrent exports, idempotent reruns)."""
from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

from compare.provision import ensure, keys_for
from compare.runners import PytorchRunner, open_artifact
from exporters.pipeline import Pipeline
from tests.helpers.catalog import CATALOG, DEFAULT_VARIANTS
from tests.helpers.export import assert_artifact_valid, json_rows, zoo
from zoo.artifacts import check_files
from zoo.backends import FORMATS, REDUCED_PRECISIONS, by_format, offered
from zoo.cli import cli
from zoo.manifest import read_manifest
from zoo.sample_inputs import SCENES, sample_pairs

OFFERED = [(f, p) for f in FORMATS for p in offered(f) if p not in REDUCED_PRECISIONS]  # reduced: test_quantization.py


@cache
def _verification_reference(name: str) -> tuple[dict, dict]:
    """The verification pair (scene 0) and PyTorch eager's outputs on it, computed here."""
    variant = CATALOG.get(name)
    inputs = sample_pairs(variant, 1)[0]
    with PytorchRunner(variant) as ref:
        return inputs, ref.infer(inputs)


@pytest.mark.parametrize("fmt,precision", OFFERED)
@pytest.mark.parametrize("name", DEFAULT_VARIANTS)
def test_export_verified_in_runtime(exported, name: str, fmt: str, precision: str) -> None:
    row = exported.rows[(name, fmt, precision)]
    assert row["status"] == "built" and row["size_mb"] > 0.5
    variant = CATALOG.get(name)
    tol = variant.tolerances[fmt][precision]
    artifact = exported.path(name, fmt, precision)
    assert Path(row["path"]) == artifact
    manifest = read_manifest(artifact)
    assert (manifest.format, manifest.precision) == (fmt, precision)
    assert manifest.weights_sha256 == variant.weights.sha256
    assert manifest.converter.flags and manifest.versions and manifest.export_seconds > 0
    assert (manifest.parity.atol, manifest.parity.rtol) == (tol.atol, tol.rtol)
    assert {o.name for o in manifest.parity.outputs} == {s.name for s in variant.io.outputs}
    for suffix in by_format(fmt).suffixes:  # the files the backend table declares, once each
        assert sum(f.path.endswith(suffix) for f in manifest.files) == 1, (suffix, manifest.files)
    # The recorded figures are the real ones: re-run the installed artifact on the verification
    # pair and recompute every figure here, in numpy, against PyTorch run here.
    inputs, expected = _verification_reference(name)
    with open_artifact(artifact, variant) as runner:
        actual = runner.infer(inputs)
    recorded = {o.name: o for o in manifest.parity.outputs}
    for spec in variant.io.outputs:
        a, b = actual[spec.name].astype(np.float64), expected[spec.name].astype(np.float64)
        diff = np.abs(a - b)
        worst = float((diff / (tol.atol + tol.rtol * np.abs(b))).max())
        o = recorded[spec.name]
        assert o.max_abs_err == pytest.approx(float(diff.max()), rel=1e-3, abs=1e-9), (spec.name, o)
        assert o.mean_abs_err == pytest.approx(float(diff.mean()), rel=1e-3, abs=1e-9), (spec.name, o)
        assert o.worst_ratio == pytest.approx(worst, rel=1e-3, abs=1e-9) and worst <= 1 and o.passed, (spec.name, o)
    assert row["max_abs_err"] == pytest.approx(max(o.max_abs_err for o in recorded.values()))
    assert_artifact_valid(artifact, variant, scene=2)


def test_bindings_follow_each_runtime(exported) -> None:
    out = exported.out
    v = CATALOG.get("fgaf3")
    ncnn = read_manifest(out / "fgaf3" / "ncnn")
    assert [b.runtime_name for b in ncnn.inputs] == ["in0", "in1"]
    assert [b.runtime_name for b in ncnn.outputs] == ["out0", "out1", "out2"]
    tfl = read_manifest(out / "fgaf3" / "tflite")
    # litert-torch keeps PyTorch's layouts and the catalog's names (signature names, not positions)
    assert all(b.layout == "NCHW" and b.runtime_name == b.name for b in tfl.inputs + tfl.outputs)
    assert tfl.binding("inputs", "search").shape == [1, 3, 256, 256]
    assert tfl.converter.name == "litert-torch" and tfl.converter.version
    assert read_manifest(out / "fgaf3" / "mnn").inputs[0].shape == v.io.inputs[0].shape


def _tflite_tensor_types(path: Path) -> set[int]:
    from ai_edge_litert import schema_py_generated as tfl_schema

    sub = tfl_schema.Model.GetRootAsModel(path.read_bytes(), 0).Subgraphs(0)
    return {sub.Tensors(i).Type() for i in range(sub.TensorsLength())}


#: ncnn's weight-blob tag for float16 data (ncnn ModelBinFromDataReader: 0x01306B47); fp32 blobs carry 0
NCNN_FP16_TAG = (0x01306B47).to_bytes(4, "little")


def test_fp16_artifacts_store_float16_weights(exported) -> None:
    """An fp16 artifact is a different, float16 model, not the fp32 one under another name:
    about half the bytes, and the weights stored as float16 where the format lets us look."""
    from ai_edge_litert import schema_py_generated as tfl_schema

    for name in DEFAULT_VARIANTS:
        for fmt in ("mnn", "ncnn", "tflite"):
            fp32, fp16 = exported.rows[(name, fmt, "fp32")], exported.rows[(name, fmt, "fp16")]
            assert fp16["size_mb"] < 0.6 * fp32["size_mb"], (name, fmt)
            m32, m16 = read_manifest(Path(fp32["path"])), read_manifest(Path(fp16["path"]))
            assert {f.sha256 for f in m32.files if not f.path.endswith(".param")}.isdisjoint(f.sha256 for f in m16.files)
        tfl32, tfl16 = (exported.path(name, "tflite", p) for p in ("fp32", "fp16"))
        assert tfl_schema.TensorType.FLOAT16 in _tflite_tensor_types(next(tfl16.glob("*.tflite")))
        assert tfl_schema.TensorType.FLOAT16 not in _tflite_tensor_types(next(tfl32.glob("*.tflite")))
        assert (exported.path(name, "ncnn", "fp16") / "model.ncnn.bin").read_bytes()[:4] == NCNN_FP16_TAG
        assert (exported.path(name, "ncnn", "fp32") / "model.ncnn.bin").read_bytes()[:4] == bytes(4)


def test_onnx_artifact_properties(exported, tmp_path) -> None:
    out = exported.out
    # a BatchNorm variant too: its BN must be folded away
    proc = zoo("export", "fgaf3-bn-c128", "--to", "onnx", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    for path, name in ((out / "fgaf3" / "onnx" / "model.onnx", "fgaf3"), (tmp_path / "fgaf3-bn-c128" / "onnx" / "model.onnx", "fgaf3-bn-c128")):
        model = onnx.load(str(path))
        onnx.checker.check_model(model, full_check=True)
        assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
        assert "BatchNormalization" not in {n.op_type for n in model.graph.node}
        meta = {p.key: p.value for p in model.metadata_props}
        variant = CATALOG.get(name)
        assert meta["variant"] == name and meta["weights_sha256"] == variant.weights.sha256
        assert meta["layout"] == "NCHW" and "mean" in meta and "std" in meta and "zoo_version" in meta
        dims = [[d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input]
        assert dims == [s.shape for s in variant.io.inputs]  # static, catalog order and names
        assert [i.name for i in model.graph.input] == [s.name for s in variant.io.inputs]


def test_variant_folders_hold_artifacts_only(exported) -> None:
    """The per-target locks live under .build/locks/, not beside the artifacts they guard."""
    assert not [p.name for p in exported.out.glob("*/*") if p.is_file()]
    assert list((exported.out / ".build" / "locks").glob("*/*.lock"))


def test_rerun_reuses_and_force_rebuilds(exported, tmp_path) -> None:
    out = exported.copy(tmp_path / "art", "base-c128", "onnx", "mnn", "ncnn")  # --force rebuilds in place
    model = out / "base-c128" / "mnn" / "model.mnn"
    before = model.stat().st_mtime_ns
    report = tmp_path / "rerun.json"
    proc = zoo("export", "base-c128", "--to", "mnn", "ncnn", "--out", str(out), "--json", str(report))
    assert proc.returncode == 0, proc.stderr
    rows = json_rows(report)
    assert {r["status"] for r in rows.values()} == {"reused"}  # onnx, mnn, ncnn
    assert "reused" in proc.stdout and model.stat().st_mtime_ns == before
    proc = zoo("export", "base-c128", "--to", "mnn", "--out", str(out), "--force", "--json", str(report))
    assert proc.returncode == 0, proc.stderr
    assert json_rows(report)[("base-c128", "mnn", "fp32")]["status"] == "rebuilt"
    assert model.stat().st_mtime_ns != before
    assert check_files(model.parent, read_manifest(model.parent)) == []


def test_corrupt_artifact_is_detected_and_rebuilt(exported, tmp_path) -> None:
    mine = exported.copy(tmp_path / "art", "base-c128", "onnx", "ncnn")
    target = mine / "base-c128" / "ncnn" / "model.ncnn.bin"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    assert check_files(target.parent, read_manifest(target.parent))
    report = tmp_path / "r.json"
    proc = zoo("export", "base-c128", "--to", "ncnn", "--out", str(mine), "--json", str(report))
    assert proc.returncode == 0, proc.stderr
    row = json_rows(report)[("base-c128", "ncnn", "fp32")]
    assert row["status"] == "rebuilt" and "corrupt" in row["note"]
    assert check_files(target.parent, read_manifest(target.parent)) == []


def _pipeline_rows(out: Path, names: list[str], formats: list[str], precisions=("fp32",), catalog=CATALOG):
    provisioned = ensure(keys_for(catalog.select(names), formats, list(precisions)), out, catalog, refresh=True)
    return {(p.key.format, p.key.precision): p.row for p in provisioned}


def _no_partial(out: Path, variant: str, dirname: str) -> None:
    assert not (out / variant / dirname).exists()
    assert [p for p in (out / ".build").iterdir() if p.name != "locks"] == []  # no build left behind (locks stay)


def test_failing_converter_installs_nothing(exported, tmp_path, monkeypatch) -> None:
    mine = exported.copy(tmp_path / "art", "base-c128", "onnx")
    from exporters.ncnn import NcnnExporter

    monkeypatch.setattr(NcnnExporter, "flags", lambda self, variant, precision: ["false"])
    rows = _pipeline_rows(mine, ["base-c128"], ["ncnn"])
    row = rows[("ncnn", "fp32")]
    assert row.status == "failed" and "pnnx failed (exit 1)" in row.note
    assert rows[("onnx", "fp32")].status == "reused"
    assert Path(row.log).is_file() and re.search(r"^\$ (\S*/)?false$", Path(row.log).read_text(), re.M)
    _no_partial(mine, "base-c128", "ncnn")


def test_broken_onnx_fails_mnn_conversion(tmp_path, monkeypatch) -> None:
    mine = tmp_path / "art"

    def broken(self, target, build_dir):
        path = build_dir / "source.onnx"
        path.write_bytes(b"this is not an onnx model")
        return path

    monkeypatch.setattr(Pipeline, "_copy_onnx", broken)
    rows = _pipeline_rows(mine, ["base-c128"], ["mnn"])
    assert rows[("onnx", "fp32")].status == "built"
    assert rows[("mnn", "fp32")].status == "failed" and "mnnconvert" in rows[("mnn", "fp32")].note
    _no_partial(mine, "base-c128", "mnn")


def test_wrong_weights_fail_verification(exported, tmp_path, monkeypatch) -> None:
    """Error injection: a converter whose model is off by one weight (here: the ONNX handed to
    the MNN converter has one conv weight nudged) must fail verification and install nothing."""
    from onnx import numpy_helper

    mine = exported.copy(tmp_path / "art", "base-c128", "onnx")
    real = Pipeline._copy_onnx

    def nudged(self, target, build_dir):
        path = real(self, target, build_dir)
        model = onnx.load(str(path))
        init = next(i for i in model.graph.initializer if len(i.dims) == 4)
        weights = numpy_helper.to_array(init).copy()
        weights.flat[0] += 0.5
        init.CopyFrom(numpy_helper.from_array(weights, init.name))
        onnx.save(model, str(path))
        return path

    monkeypatch.setattr(Pipeline, "_copy_onnx", nudged)
    rows = _pipeline_rows(mine, ["base-c128"], ["mnn"])
    row = rows[("mnn", "fp32")]
    assert row.status == "failed" and "above tolerance" in row.note, row
    assert rows[("onnx", "fp32")].status == "reused"
    _no_partial(mine, "base-c128", "mnn")


def test_parity_above_tolerance_fails_with_figures(exported, tmp_path) -> None:
    mine = exported.copy(tmp_path / "art", "base-c128", "onnx")
    strict = tmp_path / "zoo.yaml"
    # the first fp16 block is MNN's (zoo.yaml's tolerance order: onnx, mnn, tflite, ncnn)
    text, n = re.subn(r"(\n      mnn:\n(?:        #.*\n)*        fp32: \{[^}]*\}\n(?:        #.*\n)*        fp16:\n)          atol: [0-9.]+\n          rtol: [0-9.]+\n",
                      r"\1          atol: 0.00001\n          rtol: 0.0\n", CATALOG.path.read_text(), count=1)
    assert n == 1
    strict.write_text(text)
    proc = zoo("export", "base-c128", "--to", "mnn", "--precision", "fp16", "--out", str(mine), env={"ZOO_CATALOG": str(strict)})
    assert proc.returncode == 1
    assert "verification failed: above tolerance (atol 1e-05, rtol 0)" in proc.stderr
    assert "max abs err" in proc.stderr
    _no_partial(mine, "base-c128", "mnn-fp16")


def test_unwritable_output_dir_is_a_usage_error(tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    proc = zoo("export", "base-c128", "--to", "onnx", "--out", str(blocker / "artifacts"))
    assert proc.returncode == 2
    assert "not writable" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_unknown_format_suggests() -> None:
    result = CliRunner().invoke(cli, ["export", "fgaf3", "--to", "onnx", "mnnn"], standalone_mode=False)
    assert result.exception is not None and getattr(result.exception, "exit_code", None) == 2
    assert "unknown format 'mnnn' (did you mean 'mnn'" in str(result.exception)
    proc = zoo("export", "fgaf3", "--to", "tflte")
    assert proc.returncode == 2 and "did you mean 'tflite'" in proc.stderr


def test_missing_converter_names_the_extra(monkeypatch) -> None:
    import exporters.base

    real = exporters.base.version

    def fake(dist):
        if dist == "pnnx":
            raise exporters.base.PackageNotFoundError(dist)
        return real(dist)

    monkeypatch.setattr(exporters.base, "version", fake)
    result = CliRunner().invoke(cli, ["export", "fgaf3", "--to", "ncnn"], standalone_mode=False)
    assert "pip install 'zoo[ncnn]'" in str(result.exception) and result.exception.exit_code == 1


def test_concurrent_exports_yield_one_valid_artifact(tmp_path) -> None:
    out = tmp_path / "art"
    reports = [tmp_path / f"r{i}.json" for i in range(2)]
    with ThreadPoolExecutor(2) as pool:
        procs = list(pool.map(lambda r: zoo("export", "base-c128", "--to", "onnx", "--out", str(out), "--json", str(r)), reports))
    assert all(p.returncode == 0 for p in procs), [p.stderr for p in procs]
    statuses = sorted(json_rows(r)[("base-c128", "onnx", "fp32")]["status"] for r in reports)
    assert statuses == ["built", "reused"]
    assert [p.name for p in (out / "base-c128").iterdir() if not p.name.startswith(".")] == ["onnx"]
    assert_artifact_valid(out / "base-c128" / "onnx", CATALOG.get("base-c128"))


def test_sample_inputs_are_deterministic_and_image_like() -> None:
    v = CATALOG.get("fgaf3")
    a, b = sample_pairs(v, len(SCENES)), sample_pairs(v, len(SCENES))
    for pa, pb in zip(a, b):
        assert pa.keys() == {"template", "search"}
        for k in pa:
            assert pa[k].dtype == np.float32 and np.array_equal(pa[k], pb[k])
        assert pa["template"].shape == (1, 3, 128, 128) and pa["search"].shape == (1, 3, 256, 256)
        assert 0.3 < pa["search"].std() < 2.0 and -2.2 < pa["search"].min() and pa["search"].max() < 2.7
    assert not np.array_equal(a[0]["search"], a[1]["search"])

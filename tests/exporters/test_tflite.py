"""The TFLite converter (litert-torch, no TensorFlow) and quantizer (ai-edge-quantizer), below the
pipeline: offline, builtin operators only, the catalog's names and layouts in the signature, parity
with PyTorch at fp32 and fp16, the conversion cache, and one-line refusals."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("litert_torch")
pytest.importorskip("ai_edge_litert")

from exporters import tflite_convert as tc  # noqa: E402
from exporters import tflite_quant  # noqa: E402
from tests.helpers.catalog import CATALOG, REPO  # noqa: E402
from tests.helpers.tflite import run_tflite  # noqa: E402
from zoo.models import build_model  # noqa: E402
from zoo.models.fold import fold_batchnorm  # noqa: E402
from zoo.reference_weights import reference_state_dict  # noqa: E402
from zoo.sample_inputs import sample_pairs  # noqa: E402
from zoo.weights import reference_seed  # noqa: E402

TOL = {"fp32": 1e-3, "fp16": 2e-2}


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Any connection attempt from this process raises (and is recorded)."""
    attempts: list[object] = []

    def deny(self: socket.socket, address: object) -> None:
        attempts.append(address)
        raise OSError(f"test: network access to {address!r} is not allowed")

    monkeypatch.setattr(socket.socket, "connect", deny)
    monkeypatch.setattr(socket.socket, "connect_ex", deny)
    return attempts


def _module(name: str) -> torch.nn.Module:
    v = CATALOG.get(name)
    model = build_model(v.arch)  # reference weights drawn directly: parity does not need the sha256 pin
    model.load_state_dict(reference_state_dict(model, reference_seed(v)), strict=True)
    return fold_batchnorm(model.eval()).eval()


@pytest.fixture(scope="module")
def converted(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One variant converted afresh (no cache) at fp32, its fp16 cast, PyTorch's outputs on a real pair."""
    v = CATALOG.get(request.param)
    model = _module(v.name)
    ins, outs = [s.name for s in v.io.inputs], [s.name for s in v.io.outputs]
    tmp = tmp_path_factory.mktemp(v.name)
    log = tmp / "convert.log"
    fp32 = tmp / "model_float32.tflite"
    example = {s.name: torch.zeros(s.shape) for s in v.io.inputs}
    assert tc.convert_module(model, example, outs, fp32, log, identity=None) is False
    fp16 = tmp / "model_float16.tflite"
    tc.cast_weights_fp16(fp32, fp16, log)
    feed = sample_pairs(v, 2)[1]
    with torch.no_grad():
        ref = model(*(torch.from_numpy(feed[n]) for n in ins))
    return {"variant": v, "ins": ins, "outs": outs, "fp32": fp32, "fp16": fp16, "log": log, "feed": feed,
            "ref": {n: r.numpy() for n, r in zip(outs, ref, strict=True)}}


@pytest.mark.parametrize("converted", ["base-c128", "fgaf3"], indirect=True)
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_parity_builtin_names_and_layouts(converted: dict, precision: str, no_network: list[object]) -> None:
    v, path = converted["variant"], converted[precision]
    tc.check_builtin_only(path, precision)
    assert "CUSTOM" not in tc.op_names(path)
    shapes = {s.name: s.shape for s in v.io.inputs + v.io.outputs}
    bindings = tc.bind_signature(path, converted["ins"], converted["outs"], shapes)
    for name, b in bindings.items():  # the catalog's own names and NCHW shapes: no layout to undo
        assert b.signature_name == name and b.shape == list(shapes[name]) and b.perm == tuple(range(len(b.shape)))
    got = run_tflite(path, bindings, converted["feed"], num_threads=2)
    for name, ref in converted["ref"].items():
        err = float(np.abs(got[name] - ref).max())
        assert err <= TOL[precision], f"{v.name} {precision} {name}: max abs err {err:.3g}"
    assert not no_network
    if precision == "fp16":
        assert "DEQUANTIZE" in tc.op_names(path)  # float16 constants, unpacked at load
        assert path.stat().st_size < 0.6 * converted["fp32"].stat().st_size
        assert err > 0  # the weights really changed


@pytest.mark.parametrize("converted", ["base-c128"], indirect=True)
def test_int8_recipe_quantizes_and_keeps_the_named_ops_float(converted: dict, tmp_path: Path) -> None:
    recipe = CATALOG.quantization.recipes["tflite"]["int8"]["any"].model_dump()
    pairs = sample_pairs(converted["variant"], 4)
    target = tmp_path / "model_int8.tflite"
    tflite_quant.quantize(converted["fp32"], target, recipe, pairs, tmp_path / "log", "int8")
    ops = tc.op_names(target)
    assert "QUANTIZE" in ops and "DEQUANTIZE" in ops
    assert "BATCH_MATMUL" in ops  # kept float: the recipe names it
    shapes = {s.name: s.shape for s in converted["variant"].io.inputs + converted["variant"].io.outputs}
    bindings = tc.bind_signature(target, converted["ins"], converted["outs"], shapes)
    assert all(b.dtype == "float32" for b in bindings.values())  # float I/O
    got = run_tflite(target, bindings, converted["feed"])
    for name, ref in converted["ref"].items():  # int8 is judged at tracker level; here: same tensors, same scale
        assert np.corrcoef(got[name].ravel(), ref.ravel())[0, 1] > 0.9, name
    assert "add_static_config('.*', BATCH_MATMUL, NO_QUANTIZE)" in (tmp_path / "log").read_text()
    with pytest.raises(tc.TfliteConversionError, match="BATCHMATMUL.*does not know") as info:
        tflite_quant.quantize(converted["fp32"], tmp_path / "bad.tflite", {**recipe, "keep_float": ["BATCHMATMUL"]}, pairs,
                              tmp_path / "log", "int8")
    assert "\n" not in str(info.value)
    with pytest.raises(tc.TfliteConversionError, match="float_passthrough names 'RESHAP'"):
        tflite_quant.quantize(converted["fp32"], tmp_path / "bad.tflite", {**recipe, "float_passthrough": ["RESHAP"]}, pairs,
                              tmp_path / "log", "int8")


def _ops(path: Path) -> list[tuple[str, list[int], list[int]]]:
    """(kind, non-constant input tensors, output tensors) of every op in ``path``'s main graph."""
    model = tc.tfl_schema.Model.GetRootAsModel(path.read_bytes(), 0)
    sub, kinds = model.Subgraphs(0), tc.op_names(path)
    const = {t for t in range(sub.TensorsLength()) if model.Buffers(sub.Tensors(t).Buffer()).DataLength() or model.Buffers(sub.Tensors(t).Buffer()).Offset()}
    out = []
    for i, kind in enumerate(kinds):
        op = sub.Operators(i)
        ins = [t for t in (op.Inputs(j) for j in range(op.InputsLength())) if t >= 0 and t not in const]
        out.append((kind, ins, [op.Outputs(j) for j in range(op.OutputsLength())]))
    return out


def _round_trips(path: Path) -> int:
    """Ops run in int8 between a QUANTIZE and DEQUANTIZEs only: float in, float out, int8 in between."""
    ops = _ops(path)
    made_by = {t: kind for kind, _, outs in ops for t in outs}
    used_by: dict[int, list[str]] = {}
    for kind, ins, _ in ops:
        for t in ins:
            used_by.setdefault(t, []).append(kind)
    return sum(1 for kind, ins, outs in ops if kind not in ("QUANTIZE", "DEQUANTIZE") and ins
               and all(made_by.get(t) == "QUANTIZE" for t in ins) and all(set(used_by.get(t, [])) == {"DEQUANTIZE"} for t in outs))


@pytest.mark.parametrize("converted", ["base-c128"], indirect=True)
def test_float_regions_stay_whole_in_static_int8(converted: dict, tmp_path: Path) -> None:
    """litert-torch's RESHAPEs around attention products and LayerNorm statistics stay float: no
    QUANTIZE -> int8 op -> DEQUANTIZE round trip is left where the recipe names float_passthrough."""
    recipe = CATALOG.quantization.recipes["tflite"]["int8"]["any"].model_dump()
    assert recipe["float_passthrough"]
    pairs = sample_pairs(converted["variant"], 4)
    whole, cut = tmp_path / "whole.tflite", tmp_path / "cut.tflite"
    kept = tflite_quant.quantize(converted["fp32"], whole, recipe, pairs, tmp_path / "log", "int8")
    assert tflite_quant.quantize(converted["fp32"], cut, {**recipe, "float_passthrough": []}, pairs, tmp_path / "log", "int8") == 0
    assert kept > 0 and f"{kept} ops kept float by float_passthrough" in (tmp_path / "log").read_text()
    assert _round_trips(cut) > 0  # the case this guards against: the same model without the passthrough
    assert _round_trips(whole) == 0
    assert tc.op_names(whole).count("QUANTIZE") < tc.op_names(cut).count("QUANTIZE")


def _conv_weight_types(path: Path) -> list[str]:
    model = tc.tfl_schema.Model.GetRootAsModel(path.read_bytes(), 0)
    sub, types = model.Subgraphs(0), {v: k for k, v in vars(tc.tfl_schema.TensorType).items() if not k.startswith("_")}
    return [types[sub.Tensors(sub.Operators(i).Inputs(1)).Type()] for i, kind in enumerate(tc.op_names(path)) if kind == "CONV_2D"]


@pytest.mark.parametrize("converted", ["base-c128"], indirect=True)
def test_dynamic_int8_keeps_small_weights_float(converted: dict, tmp_path: Path) -> None:
    recipe = CATALOG.quantization.recipes["tflite"]["int8-dynamic"]["any"].model_dump()
    assert recipe["min_weight_elements"] == 1024
    small, every = tmp_path / "small.tflite", tmp_path / "every.tflite"
    tflite_quant.quantize(converted["fp32"], small, recipe, [], tmp_path / "log", "int8-dynamic")
    tflite_quant.quantize(converted["fp32"], every, {**recipe, "min_weight_elements": 0}, [], tmp_path / "log", "int8-dynamic")
    kept, quantized = _conv_weight_types(small), _conv_weight_types(every)
    assert set(quantized) == {"INT8"}
    assert kept[0] == "FLOAT32" and "INT8" in kept  # the 3-channel stem (under 1024 weights) stays float, the rest int8
    assert "min_weight_elements=1024" in (tmp_path / "log").read_text()


class _Pair(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.conv(a).relu(), self.conv(b).sigmoid()


def test_cache_reuses_verified_entries_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "cache"))
    torch.manual_seed(0)
    model, example = _Pair().eval(), {"a": torch.zeros(1, 3, 8, 8), "b": torch.zeros(1, 3, 8, 8)}
    identity = {"test": "pair", "seed": 0}
    first, second = tmp_path / "1.tflite", tmp_path / "2.tflite"
    assert tc.convert_module(model, example, ["x", "y"], first, tmp_path / "log", identity) is False
    assert tc.convert_module(model, example, ["x", "y"], second, tmp_path / "log", identity) is True
    assert first.read_bytes() == second.read_bytes()
    entries = list((tmp_path / "cache" / "litert-torch").glob("*/model.tflite"))
    assert len(entries) == 1 and json.loads((entries[0].parent / "done.json").read_text())["identity"] == identity
    entries[0].write_bytes(b"tampered")  # a cache file whose sha256 no longer matches is never used
    assert tc.convert_module(model, example, ["x", "y"], second, tmp_path / "log", identity) is False
    assert second.read_bytes() == first.read_bytes()
    bindings = tc.bind_signature(second, ["a", "b"], ["x", "y"], {"a": [1, 3, 8, 8], "b": [1, 3, 8, 8], "x": [1, 4, 8, 8], "y": [1, 4, 8, 8]})
    got = run_tflite(second, bindings, {"a": np.ones((1, 3, 8, 8), np.float32), "b": np.ones((1, 3, 8, 8), np.float32)})
    assert got["y"].min() > 0 and (got["x"] >= 0).all()  # sigmoid vs relu: the two outputs were not swapped


def test_wrong_names_and_output_counts_are_one_line(tmp_path: Path) -> None:
    model, example = _Pair().eval(), {"a": torch.zeros(1, 3, 8, 8), "b": torch.zeros(1, 3, 8, 8)}
    with pytest.raises(tc.TfliteConversionError, match="returns 2 tensors, the catalog names 3") as info:
        tc.convert_module(model, example, ["x", "y", "z"], tmp_path / "m.tflite", tmp_path / "log", None)
    assert "\n" not in str(info.value)
    tc.convert_module(model, example, ["x", "y"], tmp_path / "m.tflite", tmp_path / "log", None)
    shapes = {"a": [1, 3, 8, 8], "b": [1, 3, 8, 8], "score": [1, 4, 8, 8], "y": [1, 4, 8, 8]}
    with pytest.raises(tc.TfliteConversionError, match="no output 'score'"):
        tc.bind_signature(tmp_path / "m.tflite", ["a", "b"], ["score", "y"], shapes)
    with pytest.raises(tc.TfliteConversionError, match="shape"):
        tc.bind_signature(tmp_path / "m.tflite", ["a", "b"], ["y"], {**shapes, "a": [1, 8, 8, 3]})
    with pytest.raises(tc.TfliteConversionError, match="no float16 tensors"):
        tc.check_builtin_only(tmp_path / "m.tflite", "fp16")


RUN = """
import sys, numpy as np
from exporters import tflite_convert as tc
b = tc.bind_signature(sys.argv[1], ["a", "b"], ["x", "y"], {k: [1, 3 if k in "ab" else 4, 8, 8] for k in "abxy"})
from tests.helpers.tflite import run_tflite
out = run_tflite(sys.argv[1], b, {"a": np.ones((1, 3, 8, 8), np.float32), "b": np.ones((1, 3, 8, 8), np.float32)})
print("ran", out["x"].shape)
"""


def test_tflite_inference_in_the_exporter_prints_no_xnnpack_line(tmp_path: Path) -> None:
    model, example = _Pair().eval(), {"a": torch.zeros(1, 3, 8, 8), "b": torch.zeros(1, 3, 8, 8)}
    tc.convert_module(model, example, ["x", "y"], tmp_path / "m.tflite", tmp_path / "log", None)
    done = subprocess.run([sys.executable, "-c", RUN, str(tmp_path / "m.tflite")], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert "ran (1, 4, 8, 8)" in done.stdout  # the model really ran
    assert "XNNPACK" not in done.stderr + done.stdout, done.stderr


CONVERT = """
import pathlib, sys, torch
from exporters import tflite_convert as tc


class Pair(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, a, b):
        return self.conv(a).relu(), self.conv(b).sigmoid()


path = sys.argv[1]
tc.convert_module(Pair().eval(), {"a": torch.zeros(1, 3, 8, 8), "b": torch.zeros(1, 3, 8, 8)}, ["x", "y"],
                  pathlib.Path(path), pathlib.Path(path + ".log"), None)
print("converted")
"""


def test_a_fresh_conversion_prints_nothing_of_the_converter_imports(tmp_path: Path) -> None:
    """litert-torch's first import (absl's banner, torchao's missing CUDA kernels) lands in the build log, not
    on the user's terminal."""
    target = tmp_path / "m.tflite"
    done = subprocess.run([sys.executable, "-c", CONVERT, str(target)], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert "converted" in done.stdout and target.stat().st_size > 0
    assert done.stderr.strip() == "", done.stderr

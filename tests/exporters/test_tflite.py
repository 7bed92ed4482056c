"""exporters.tflite_convert: onnx2tf offline, builtin ops only, signature bindings, parity vs PyTorch.

Two real variants: the ONNX models of the session's shared export (base-c128 and fgaf3), whose
onnx2tf run the export already made and left in the session's converter cache -- so onnx2tf runs
once per variant and session, and fp16 comes from the same run. The checks here (builtin ops only,
signature bindings, parity with PyTorch computed here on other inputs) apply to that conversion.
Two tiny graphs take the failure paths with the cache off (a real, offline onnx2tf run each).
"""
from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnx2tf")
pytest.importorskip("onnxsim")
pytest.importorskip("ai_edge_litert")

import subprocess
import sys

import onnx  # noqa: E402
from ai_edge_litert import schema_py_generated as tfl_schema  # noqa: E402
from ai_edge_litert.interpreter import Interpreter  # noqa: E402
from onnxsim import simplify  # noqa: E402

from exporters import tflite_convert as tc  # noqa: E402
from tests.helpers.catalog import CATALOG, REPO  # noqa: E402
from tests.helpers.tflite import run_tflite
from zoo.models import build_model  # noqa: E402
from zoo.models.fold import fold_batchnorm  # noqa: E402
from zoo.reference_weights import reference_state_dict  # noqa: E402
from zoo.weights import reference_seed  # noqa: E402

TOL = {"fp32": 1e-3, "fp16": 2e-2}
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch's TorchScript ONNX exporter


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


def _export(model: torch.nn.Module, args: tuple[torch.Tensor, ...], ins: list[str], outs: list[str],
            path: Path) -> Path:
    torch.onnx.export(model, args, str(path), input_names=ins, output_names=outs, opset_version=17, dynamo=False)
    simplified, ok = simplify(onnx.load(str(path)))
    assert ok
    onnx.save(simplified, str(path))
    return path


@pytest.fixture(scope="module")
def variant_case(request: pytest.FixtureRequest, exported) -> dict:
    """The exported ONNX file, PyTorch reference outputs and NCHW inputs of one catalog variant."""
    v = CATALOG.get(request.param)
    model = build_model(v.arch)  # reference weights drawn directly: parity does not need the sha256 pin

    model.load_state_dict(reference_state_dict(model, reference_seed(v)), strict=True)
    model = fold_batchnorm(model.eval()).eval()
    ins, outs = [s.name for s in v.io.inputs], [s.name for s in v.io.outputs]
    feed = {s.name: tc.imagenet_like(s.shape, seed=100 + i) for i, s in enumerate(v.io.inputs)}
    with torch.no_grad():
        ref = model(*(torch.from_numpy(feed[n]) for n in ins))
    onnx_path = exported.path(v.name, "onnx") / "model.onnx"
    assert onnx_path.is_file()
    return {"name": v.name, "onnx": onnx_path, "ins": ins, "outs": outs, "feed": feed,
            "ref": {n: r.numpy() for n, r in zip(outs, ref)},
            "specs": {s.name: s for s in [*v.io.inputs, *v.io.outputs]}}


def _op_names(path: Path) -> set[str]:
    model = tfl_schema.Model.GetRootAsModel(path.read_bytes(), 0)
    names = {v: k for k, v in vars(tfl_schema.BuiltinOperator).items() if not k.startswith("_")}
    ops = set()
    for i in range(model.OperatorCodesLength()):
        oc = model.OperatorCodes(i)
        code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
        ops.add(oc.CustomCode().decode() if oc.CustomCode() else names[code])
    return ops


def _check(case: dict, precision: str, tmp_path: Path, no_network: list[object]) -> tc.TfliteResult:
    log = tmp_path / "onnx2tf.log"
    result = tc.convert_onnx_to_tflite(case["onnx"], tmp_path / "out", precision, log, case["ins"], case["outs"])
    assert not no_network
    text = log.read_text()
    assert "zoo-netguard: active" in text and "zoo-netguard: blocked" not in text
    assert result.tflite_path.is_file() and result.tflite_path.parent == tmp_path / "out"
    assert result.version == result.versions["onnx2tf"] and "-rtpo" in result.flags

    ops = _op_names(result.tflite_path)
    assert "CUSTOM" not in ops and not any(op.startswith("Flex") for op in ops), ops
    interpreter = Interpreter(model_path=str(result.tflite_path))  # no Flex delegate
    interpreter.allocate_tensors()
    signature = interpreter.get_signature_list()["serving_default"]

    for name in [*case["ins"], *case["outs"]]:
        b, spec = result.bindings[name], case["specs"][name]
        assert b.signature_name in signature["inputs" if b.role == "input" else "outputs"]
        assert b.layout == "NHWC" and b.shape == [spec.shape[i] for i in (0, 2, 3, 1)] and b.dtype == "float32"

    got = run_tflite(result.tflite_path, result.bindings, case["feed"], num_threads=2)
    for name, ref in case["ref"].items():
        assert got[name].shape == ref.shape
        err = float(np.abs(got[name] - ref).max())
        assert err <= TOL[precision], f"{case['name']} {precision} {name}: max abs err {err:.3g}"
    return result


@pytest.mark.parametrize("variant_case", ["base-c128", "fgaf3"], indirect=True)
def test_fp32_parity_builtin_offline(variant_case: dict, tmp_path: Path, no_network: list[object]) -> None:
    result = _check(variant_case, "fp32", tmp_path, no_network)
    assert result.precision == "fp32" and result.tflite_path.name == "model_float32.tflite"


@pytest.mark.parametrize("variant_case", ["fgaf3"], indirect=True)
def test_fp16_parity_from_the_same_run(variant_case: dict, tmp_path: Path, no_network: list[object]) -> None:
    case = variant_case  # fp32 first: cached by the fp32 test (run alone, this converts once here)
    tc.convert_onnx_to_tflite(case["onnx"], tmp_path / "fp32", "fp32", tmp_path / "fp32.log", case["ins"], case["outs"])
    result = _check(case, "fp16", tmp_path, no_network)
    assert result.reused  # the same onnx2tf run wrote both models
    model = tfl_schema.Model.GetRootAsModel(result.tflite_path.read_bytes(), 0)
    sub = model.Subgraphs(0)
    assert any(sub.Tensors(i).Type() == tfl_schema.TensorType.FLOAT16 for i in range(sub.TensorsLength()))


class _ErfNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.gelu(self.conv(x))  # exact GELU: Erf, a Flex op without -rtpo


@pytest.fixture(scope="module")
def erf_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("erf") / "erf.onnx"
    return _export(_ErfNet().eval(), (torch.zeros(1, 3, 32, 32),), ["image"], ["feat"], path)


def test_flex_ops_are_refused(erf_onnx: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tc, "FLAGS", ("-v", "info"))  # without -rtpo Erf
    with pytest.raises(tc.TfliteConversionError, match="FlexErf") as info:
        tc.convert_onnx_to_tflite(erf_onnx, tmp_path, "fp32", tmp_path / "log", ["image"], ["feat"], use_cache=False)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "model_float32.tflite").exists()


def test_download_attempt_is_blocked(erf_onnx: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tc, "CALIBRATION_FILE", "not-the-name-onnx2tf-looks-for.npy")
    with pytest.raises(tc.TfliteConversionError, match="network"):
        tc.convert_onnx_to_tflite(erf_onnx, tmp_path, "fp32", tmp_path / "log", ["image"], ["feat"], use_cache=False)
    assert "github.com" in (tmp_path / "log").read_text()


def test_bad_names_and_precision(erf_onnx: Path, tmp_path: Path) -> None:
    with pytest.raises(tc.TfliteConversionError, match="precision"):
        tc.convert_onnx_to_tflite(erf_onnx, tmp_path, "int8", tmp_path / "log", ["image"], ["feat"])
    with pytest.raises(tc.TfliteConversionError, match="no output 'score'"):
        tc.convert_onnx_to_tflite(erf_onnx, tmp_path, "fp32", tmp_path / "log", ["image"], ["score"])
    with pytest.raises(tc.TfliteConversionError, match="cannot map output 'score'"):
        tc.match_signature(["score"], ["size", "offset"], "output")
    assert tc.match_signature(["a:0", "x.y"], ["a__0", "x_y"], "output") == {"a:0": "a__0", "x.y": "x_y"}


TINY_MODEL = """
import sys, tensorflow as tf
class M(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([1, 8, 8, 3], tf.float32, name="x")])
    def __call__(self, x):
        return {"y": tf.nn.relu(tf.nn.conv2d(x, tf.ones([3, 3, 3, 4]), 1, "SAME"))}
m = M()
conv = tf.lite.TFLiteConverter.from_concrete_functions([m.__call__.get_concrete_function()], m)
open(sys.argv[1], "wb").write(conv.convert())
"""


RUN = """
import sys, numpy as np
from exporters import tflite_convert as tc
perm = (0, 2, 3, 1)
b = {"x": tc.TfliteBinding("x", "input", "serving_default", "x", [1, 8, 8, 3], "float32", "NHWC", perm),
     "y": tc.TfliteBinding("y", "output", "serving_default", "y", [1, 8, 8, 4], "float32", "NHWC", perm)}
out = tc.invoke_signature(sys.argv[1], [b["x"]], {"x": np.ones((1, 3, 8, 8), np.float32)}, 1)
assert out["y"].shape == (1, 8, 8, 4), out["y"].shape
print("ran", float(out["y"].max()))
"""


def test_tflite_inference_in_the_exporter_prints_no_xnnpack_line(tmp_path) -> None:
    pytest.importorskip("onnx2tf")
    pytest.importorskip("tensorflow")
    model = tmp_path / "tiny.tflite"
    subprocess.run([sys.executable, "-c", TINY_MODEL, str(model)], check=True, capture_output=True, timeout=120)
    done = subprocess.run([sys.executable, "-c", RUN, str(model)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "ran 27.0" in done.stdout  # the model really ran (3x3x3 ones)
    assert "XNNPACK" not in done.stderr + done.stdout, done.stderr

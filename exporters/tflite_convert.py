"""PyTorch -> TFLite with litert-torch: no TensorFlow, builtin operators only, I/O named as the catalog.

litert-torch (Google's PyTorch converter, ``torch.export`` -> StableHLO -> TFLite) converts the
catalog's ``nn.Module`` directly, so the TFLite file keeps PyTorch's layouts (NCHW images, NLC cache
tensors) and, fed keyword inputs and returning a dict, names its signature's tensors exactly as the
catalog does. fp16 stores the float32 model's weights as float16 (ai-edge-quantizer's float casting:
``DEQUANTIZE`` ops on constant weights, which XNNPACK unpacks once at load from ai-edge-litert 2.2).

The float32 conversion is cached in the zoo cache (keyed by the variant's architecture, weights,
graph and converter versions): fp16 and the int8 recipes start from it, and a second export of the
same model converts nothing. Each result is checked: builtin operators only, fp16 weights really
float16, and every catalog name bound to a signature name.
"""
from __future__ import annotations

import hashlib
import io
import json
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import version as dist_version
from pathlib import Path

import numpy as np
import torch
from ai_edge_litert import schema_py_generated as tfl_schema
from filelock import FileLock

from exporters.base import TORCH_TRACE_LOCK
from zoo.errors import ZooError
from zoo.fileio import sha256_file
from zoo.native import captured_output, native_quiet, native_stderr
from zoo.requirements import require
from zoo.paths import cache_dir

SIGNATURE_KEY = "serving_default"
MODEL_FILES = {"fp32": "model_float32.tflite", "fp16": "model_float16.tflite", "int8": "model_int8.tflite",
               "int8-dynamic": "model_int8_dynamic.tflite"}
#: packages whose versions determine the converted file
VERSIONED = ("torch", "litert-torch", "litert-converter", "ai-edge-quantizer", "ai-edge-litert")
#: bump when what :func:`convert_module` writes changes (part of the cache key)
CACHE_REVISION = 1


class TfliteConversionError(ZooError):
    """The TFLite conversion failed or produced an unusable model (one line; the log has details)."""


@dataclass(frozen=True)
class TfliteBinding:
    """One catalog tensor in the TFLite signature (``perm``: catalog axes -> the model's axes)."""

    name: str
    role: str  # "input" or "output"
    signature_key: str
    signature_name: str
    shape: list[int]
    dtype: str
    perm: tuple[int, ...]


class NamedIO(torch.nn.Module):
    """``module`` called with the catalog's input names as keywords, returning its outputs as a
    dict of the catalog's output names: litert-torch then names the signature's tensors so."""

    def __init__(self, module: torch.nn.Module, inputs: Sequence[str], outputs: Sequence[str]):
        super().__init__()
        self.module, self.inputs, self.outputs = module, list(inputs), list(outputs)

    def forward(self, **feeds: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.module(*(feeds[n] for n in self.inputs))
        out = out if isinstance(out, (tuple, list)) else (out,)
        if len(out) != len(self.outputs):
            raise TfliteConversionError(f"the module returns {len(out)} tensors, the catalog names {len(self.outputs)}")
        return dict(zip(self.outputs, out, strict=True))


def versions() -> dict[str, str]:
    """Versions of the converter packages (an ImportError's package name when one is missing)."""
    return {d: dist_version(d) for d in VERSIONED}


def _cache_entry(identity: dict) -> Path:
    key = hashlib.sha256(json.dumps({**identity, "versions": versions(), "revision": CACHE_REVISION}, sort_keys=True).encode())
    return cache_dir() / "litert-torch" / key.hexdigest()[:32]


def log_output(log_path: Path, title: str, python_out: str, native: list[str]) -> None:
    """Append a converter step to the build log: the call, its Python output, its native (fd 2) lines."""
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"$ {title}\n{python_out}")
        log.writelines(line + "\n" for line in native)


def _convert_now(module: torch.nn.Module, example: dict[str, torch.Tensor], outputs: Sequence[str], target: Path, log_path: Path) -> None:
    named = NamedIO(module, list(example), outputs).eval()
    buf = io.StringIO()
    with TORCH_TRACE_LOCK, captured_output(buf), native_stderr() as native, torch.no_grad():
        # imported in the capture: its imports (absl, torchao's missing CUDA kernels) print on stderr
        litert_torch = require("litert_torch", "tflite", "litert-torch (the TFLite converter)")
        try:
            litert_torch.convert(named, sample_kwargs=example).export(str(target))
        except Exception as exc:  # noqa: BLE001 - any converter failure is one line; the log keeps the rest
            log_output(log_path, "litert_torch.convert", buf.getvalue(), native.lines if native.lines else [])
            raise TfliteConversionError(f"litert-torch failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}; "
                                        f"log: {log_path}") from None
    log_output(log_path, f"litert_torch.convert(NamedIO(module), sample_kwargs={ {k: list(v.shape) for k, v in example.items()} })",
                buf.getvalue(), native.lines)


def convert_module(module: torch.nn.Module, example: dict[str, torch.Tensor], outputs: Sequence[str], target: Path,
                   log_path: Path, identity: dict | None) -> bool:
    """Write the float32 ``.tflite`` of ``module`` (inputs named and shaped as ``example``, outputs
    named ``outputs``) to ``target``; True when it came from the zoo cache. ``identity`` (what
    determines the module: architecture, weights, graph) keys the cache; None converts afresh."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if identity is None:
        _convert_now(module, example, outputs, target, log_path)
        return False
    entry = _cache_entry(identity)
    entry.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(entry) + ".lock"):
        stamp = entry / "done.json"
        if stamp.is_file():
            recorded = json.loads(stamp.read_text())
            cached = entry / "model.tflite"
            if cached.is_file() and sha256_file(cached) == recorded.get("sha256"):
                with open(log_path, "a", encoding="utf-8") as log:
                    log.write(f"reused litert-torch conversion {entry} (same architecture, weights, graph and versions)\n")
                shutil.copyfile(cached, target)
                return True
        shutil.rmtree(entry, ignore_errors=True)
        _convert_now(module, example, outputs, target, log_path)
        tmp = Path(tempfile.mkdtemp(prefix=".part-", dir=entry.parent))
        try:
            shutil.copyfile(target, tmp / "model.tflite")
            (tmp / "done.json").write_text(json.dumps({"sha256": sha256_file(target), "identity": identity}))
            tmp.rename(entry)  # whole entries only: a killed run leaves a .part- folder, never a half entry
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return False


def cast_weights_fp16(source: Path, target: Path, log_path: Path) -> None:
    """``source``'s weights stored as float16 (ai-edge-quantizer float casting, weight-only)."""
    from ai_edge_quantizer import qtyping, quantizer

    buf = io.StringIO()
    with captured_output(buf), native_stderr() as native:
        q = quantizer.Quantizer(str(source))
        q.add_weight_only_config(regex=".*", operation_name=qtyping.TFLOperationName.ALL_SUPPORTED, num_bits=16,
                                 algorithm_key=quantizer.AlgorithmName.FLOAT_CASTING)
        q.quantize().export_model(str(target), overwrite=True)
    log_output(log_path, "ai_edge_quantizer: weight-only float casting to float16 (ALL_SUPPORTED ops)", buf.getvalue(), native.lines)


def op_names(path: Path) -> list[str]:
    """The builtin operator of every op in ``path``'s main subgraph, in order (CUSTOM for custom ops)."""
    model = tfl_schema.Model.GetRootAsModel(path.read_bytes(), 0)
    names = {v: k for k, v in vars(tfl_schema.BuiltinOperator).items() if not k.startswith("_")}
    sub = model.Subgraphs(0)
    out = []
    for i in range(sub.OperatorsLength()):
        oc = model.OperatorCodes(sub.Operators(i).OpcodeIndex())
        out.append("CUSTOM" if oc.CustomCode() else names.get(max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode()), "?"))
    return out


#: a reduced precision's file must hold tensors of this type (else nothing was converted)
_REQUIRED_TYPE = {"fp16": "FLOAT16", "int8": "INT8", "int8-dynamic": "INT8"}


def check_builtin_only(path: Path, precision: str) -> None:
    """Refuse a TFLite model with Flex/custom ops, or a reduced-precision one without tensors of its type
    (float16 weights for fp16, int8 for int8 and int8-dynamic)."""
    model = tfl_schema.Model.GetRootAsModel(path.read_bytes(), 0)
    custom = []
    for i in range(model.OperatorCodesLength()):
        oc = model.OperatorCodes(i)
        if oc.CustomCode():
            custom.append(oc.CustomCode().decode())
    if custom:
        raise TfliteConversionError(f"{path.name} needs non-builtin (Flex/custom) ops {sorted(custom)}; "
                                    "the plain TFLite interpreter cannot run it")
    wanted = _REQUIRED_TYPE.get(precision)
    if wanted is not None:
        sub = model.Subgraphs(0)
        if not any(sub.Tensors(i).Type() == getattr(tfl_schema.TensorType, wanted) for i in range(sub.TensorsLength())):
            raise TfliteConversionError(f"{path.name} has no {wanted.lower()} tensors: not an {precision} model")


def bind_signature(path: Path, input_names: Sequence[str], output_names: Sequence[str],
                   shapes: dict[str, Sequence[int]]) -> dict[str, TfliteBinding]:
    """Catalog name -> its tensor in ``path``'s signature, by name (litert-torch keeps the catalog's
    names and layouts); a missing name or a shape other than the catalog's is a conversion error."""
    from ai_edge_litert.interpreter import Interpreter

    try:
        with native_quiet():  # the XNNPACK delegate's INFO line
            interpreter = Interpreter(model_path=str(path), num_threads=1)
        signatures = interpreter.get_signature_list()
    except (RuntimeError, ValueError) as exc:
        raise TfliteConversionError(f"{path.name} does not load: {exc}") from None
    key = SIGNATURE_KEY if SIGNATURE_KEY in signatures else (next(iter(signatures)) if len(signatures) == 1 else None)
    if key is None:
        raise TfliteConversionError(f"{path.name} has no {SIGNATURE_KEY!r} signature (has {sorted(signatures)})")
    runner = interpreter.get_signature_runner(key)
    details = {"input": runner.get_input_details(), "output": runner.get_output_details()}
    table: dict[str, TfliteBinding] = {}
    for role, names in (("input", input_names), ("output", output_names)):
        for n in names:
            d = details[role].get(n)
            if d is None:
                raise TfliteConversionError(f"{path.name}: the signature has no {role} {n!r} (has {sorted(details[role])})")
            shape = [int(x) for x in d["shape"]]
            if shape != list(shapes[n]):
                raise TfliteConversionError(f"{path.name}: {role} {n!r} has shape {shape}, the catalog's is {list(shapes[n])}")
            table[n] = TfliteBinding(n, role, key, n, shape, np.dtype(d["dtype"]).name, tuple(range(len(shape))))
    return table

"""ONNX -> TFLite with onnx2tf: offline, builtin operators only, I/O bound by signature names.

onnx2tf runs as a subprocess, not via ``onnx2tf.convert()``: the child gets its own cwd (where
onnx2tf looks for its calibration sample), its own TensorFlow (whose C++ logs write to fd 2:
only a child's can go to the log file without touching ours), a socket guard that makes any
network attempt fail loudly, and no ``sys.exit``/TF state leaks into the caller. One run writes
both the float32 and float16 model; the pair is cached (zoo cache, keyed by ONNX bytes, flags,
versions), so the second precision is free. Each result is checked: builtin operators only,
loads without the Flex delegate, fp16 weights really float16, every catalog name bound to a
signature name, outputs equal to ONNX Runtime's (which also settles ambiguous layouts).
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import version as dist_version
from pathlib import Path

import numpy as np
from ai_edge_litert import schema_py_generated as tfl_schema
from ai_edge_litert.interpreter import Interpreter
from filelock import FileLock

from zoo.errors import ZooError
from zoo.layouts import NHWC, to_layout
from zoo.native import native_quiet
from zoo.paths import cache_dir
from zoo.procs import run_group

if importlib.util.find_spec("onnx2tf") is None:  # the adapter maps this ImportError to "pip install zoo[tflite]"
    raise ModuleNotFoundError("No module named 'onnx2tf'", name="onnx2tf")

#: onnx2tf downloads this file when every input looks like an image; one in the cwd stops it
CALIBRATION_FILE = "calibration_image_sample_data_20x128x128x3_float32.npy"
SIGNATURE_KEY = "serving_default"
MODEL_FILES = {"fp32": "model_float32.tflite", "fp16": "model_float16.tflite"}
#: onnx2tf's defaults convert the family correctly (fp32 ~1e-6 vs PyTorch for base, AF, FAF, GAF,
#: FGAF, BN rows), so no layout flag (-kat/-k/-dsft) is used. ``-rtpo Erf``: exact-erf GELU
#: (``nn.GELU()``) would otherwise become a Flex op; its pseudo-op is builtin (1e-6) and the flag is
#: a no-op for graphs without Erf. ``-v info`` drops onnx2tf's per-op debug dump from the log.
FLAGS: tuple[str, ...] = ("-v", "info", "-rtpo", "Erf")
#: sanity bound vs ONNX Runtime, |d| <= tol * (1 + max|ref|): catches mis-conversion, not noise
VERIFY_TOL = {"fp32": 1e-3, "fp16": 3e-2}
LAYOUTS = {3: ("NCW", "NWC"), 4: ("NCHW", "NHWC"), 5: ("NCDHW", "NDHWC")}
_IO = dict[str, tuple[list[int], np.dtype]]  # ONNX tensor name -> (static shape, dtype)
_GUARD = "zoo-netguard"
_BOOTSTRAP = f"""
import socket, sys
def _deny(*args, **kwargs):
    sys.stderr.write("{_GUARD}: blocked network access %r\\n" % (args[:2],)); sys.stderr.flush()
    raise OSError("{_GUARD}: network access is disabled during conversion")
_connect = socket.socket.connect
def _connect_guard(self, address):
    return _deny(self, address) if self.family in (socket.AF_INET, socket.AF_INET6) else _connect(self, address)
socket.socket.connect = _connect_guard
socket.socket.connect_ex = _connect_guard
socket.getaddrinfo = _deny
socket.create_connection = _deny
print("{_GUARD}: active", flush=True)
from onnx2tf.onnx2tf import main
sys.argv = ["onnx2tf", *sys.argv[1:]]
sys.exit(main())
"""


class TfliteConversionError(ZooError):
    """onnx2tf failed or its model is unusable (Flex ops, unmappable names, wrong numbers)."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))  # always one line


@dataclass(frozen=True)
class TfliteBinding:
    """How one catalog tensor appears in the TFLite model's signature."""

    name: str  # catalog / ONNX name
    role: str  # "input" | "output"
    signature_key: str
    signature_name: str
    shape: list[int]  # in the TFLite model
    dtype: str
    layout: str  # "NHWC" when onnx2tf moved channels last, "NCHW" when kept; "as-is" below 3-D
    perm: tuple[int, ...]  # tflite tensor = onnx tensor.transpose(perm)


@dataclass(frozen=True)
class TfliteResult:
    tflite_path: Path
    precision: str
    flags: list[str]  # onnx2tf command-line arguments (file paths relative to its work dir)
    version: str  # onnx2tf
    versions: dict[str, str]  # onnx2tf, tensorflow, ai-edge-litert
    bindings: dict[str, TfliteBinding]  # inputs and outputs by catalog name
    max_abs_diff: dict[str, float]  # per output, vs ONNX Runtime on image-like inputs
    reused: bool = False  # True when the onnx2tf run was taken from the cache


def imagenet_like(shape: Sequence[int], seed: int) -> np.ndarray:
    """Deterministic smooth RGB-like images in [0, 1] normalized with ImageNet mean/std (NCHW)."""
    n, c, h, w = shape
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")
    img = np.full((n, c, h, w), 0.5)
    for _ in range(6):
        fy, fx, phase = rng.uniform(0.3, 4.0, (3, n, c, 1, 1))
        img += rng.uniform(0.05, 0.15, (n, c, 1, 1)) * np.sin(2 * np.pi * (fy * yy + fx * xx + phase))
    img = np.clip(img + 0.02 * rng.standard_normal(img.shape), 0.0, 1.0)
    mean = np.resize([0.485, 0.456, 0.406], c).reshape(1, c, 1, 1)
    std = np.resize([0.229, 0.224, 0.225], c).reshape(1, c, 1, 1)
    return ((img - mean) / std).astype(np.float32)


def _sample_input(shape: list[int], dtype: np.dtype, seed: int) -> np.ndarray:
    if not np.issubdtype(dtype, np.floating):
        return np.zeros(shape, dtype)
    x = imagenet_like(shape, seed) if len(shape) == 4 else np.random.default_rng(seed).standard_normal(shape)
    return x.astype(dtype)


def onnx_io(onnx_path: Path, names: list[str], outputs: bool) -> _IO:
    """Shape and dtype of the ONNX graph's inputs (``outputs``: outputs) named ``names``."""
    import onnx
    from onnx.helper import tensor_dtype_to_np_dtype

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    values = {v.name: v for v in (graph.output if outputs else graph.input)}
    found: _IO = {}
    for name in names:
        if name not in values:
            what = "output" if outputs else "input"
            raise TfliteConversionError(f"{onnx_path.name} has no {what} {name!r} (has {sorted(values)})")
        t = values[name].type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim]
        if any(d <= 0 for d in dims):
            raise TfliteConversionError(f"{onnx_path.name}: {name!r} has a dynamic shape {dims}; export static shapes")
        found[name] = (dims, np.dtype(tensor_dtype_to_np_dtype(t.elem_type)))
    return found


def run_onnx2tf(onnx_path: Path, work: Path, argv: list[str], log_path: Path, timeout: float) -> Path:
    """Run onnx2tf in ``work`` (all its output to ``log_path``); the folder with both models."""
    shutil.copyfile(onnx_path, work / "model.onnx")  # onnx2tf overwrites its input with onnxsim's
    # Deterministic stand-in for the sample onnx2tf would download; it also feeds its dummy inference.
    np.save(work / CALIBRATION_FILE, to_layout(imagenet_like((20, 3, 128, 128), 0), NHWC))
    env = dict(os.environ, PYTHONUNBUFFERED="1", CUDA_VISIBLE_DEVICES="-1")
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])  # its onnxsim CLI
    with open(log_path, "w", encoding="utf-8", errors="replace") as log:
        log.write(f"$ onnx2tf {' '.join(argv)}   (cwd {work})\n")
        log.flush()
        try:
            # its own process group, killed with everything onnx2tf started if zoo is interrupted
            proc = run_group([sys.executable, "-c", _BOOTSTRAP, *argv], cwd=work, env=env,
                             stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TfliteConversionError(f"onnx2tf timed out after {timeout:.0f} s; log: {log_path}") from None
    text = re.sub(r"\x1b\[[0-9;]*m", "", log_path.read_text(encoding="utf-8", errors="replace"))
    log_path.write_text(text, encoding="utf-8")  # without onnx2tf's colour codes
    if f"{_GUARD}: blocked" in text:
        raise TfliteConversionError(f"onnx2tf attempted network access (blocked); log: {log_path}")
    if proc.returncode != 0 or not all((work / "out" / f).is_file() for f in MODEL_FILES.values()):
        errors = [ln for ln in text.splitlines() if re.search(r"error|exception", ln, re.I)]
        last = errors[-1].strip()[:300] if errors else f"exit status {proc.returncode}"
        raise TfliteConversionError(f"onnx2tf failed ({last}); log: {log_path}")
    return work / "out"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _convert(onnx_path: Path, argv: list[str], versions: dict[str, str], log_path: Path, target: Path,
             use_cache: bool, timeout: float) -> bool:
    """Put onnx2tf's model named ``target.name`` at ``target``; True when taken from the cache.

    A cache entry holds both models of one run, keyed by the ONNX bytes, flags and versions.
    """
    with tempfile.TemporaryDirectory(prefix="onnx2tf-", dir=target.parent) as tmp:
        if not use_cache:
            shutil.copyfile(run_onnx2tf(onnx_path, Path(tmp), argv, log_path, timeout) / target.name, target)
            return False
        key = hashlib.sha256(onnx_path.read_bytes())
        key.update(json.dumps([argv, versions, CALIBRATION_FILE, "imagenet_like-v1"]).encode())
        entry = cache_dir() / "onnx2tf" / key.hexdigest()[:32]
        entry.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(entry) + ".lock"):
            stamp = entry / "done.json"
            if stamp.is_file() and all((entry / f).is_file() and _sha256(entry / f) == digest
                                       for f, digest in json.loads(stamp.read_text()).items()):
                log_path.write_text(f"reused onnx2tf run {entry} (same ONNX bytes, flags and versions)\n"
                                    + (entry / "onnx2tf.log").read_text(encoding="utf-8"), encoding="utf-8")
                shutil.copyfile(entry / target.name, target)
                return True
            shutil.rmtree(entry, ignore_errors=True)
            out = run_onnx2tf(onnx_path, Path(tmp), argv, log_path, timeout)
            keep_saved_model(out, onnx_path, argv)
            entry.mkdir()
            for f in MODEL_FILES.values():
                shutil.copyfile(out / f, entry / f)
            shutil.copyfile(log_path, entry / "onnx2tf.log")
            stamp.write_text(json.dumps({f: _sha256(entry / f) for f in MODEL_FILES.values()}))
            shutil.copyfile(out / target.name, target)
    return False


def saved_model_entry(onnx_path: Path, argv: list[str]) -> Path:
    """The zoo cache entry of onnx2tf's saved model of ``onnx_path`` run with ``argv`` (the int8
    path's source), keyed by the ONNX bytes, flags and versions."""
    versions = {d: dist_version(d) for d in ("onnx2tf", "tensorflow")}
    key = hashlib.sha256(onnx_path.read_bytes())
    key.update(json.dumps([argv, versions, "saved_model-v1"]).encode())
    return cache_dir() / "onnx2tf-saved" / key.hexdigest()[:32]


def keep_saved_model(out: Path, onnx_path: Path, argv: list[str]) -> None:
    """Keep the saved model a float conversion's onnx2tf run wrote beside its ``.tflite`` files: the
    int8 and int8-dynamic conversions of the same graph then run no onnx2tf of their own."""
    if not (out / "saved_model.pb").is_file():
        return
    entry = saved_model_entry(onnx_path, argv)
    entry.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(entry) + ".lock"):
        if (entry / "done").is_file():
            return
        shutil.rmtree(entry, ignore_errors=True)
        shutil.copytree(out, entry / "saved", ignore=shutil.ignore_patterns("*.tflite"))
        (entry / "done").write_text("ok")


def check_builtin_only(path: Path, precision: str) -> None:
    """Refuse a TFLite model with Flex/custom ops, or an ``fp16`` one without float16 tensors."""
    model = tfl_schema.Model.GetRootAsModel(path.read_bytes(), 0)
    names = {v: k for k, v in vars(tfl_schema.BuiltinOperator).items() if not k.startswith("_")}
    custom = []
    for i in range(model.OperatorCodesLength()):
        oc = model.OperatorCodes(i)
        code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
        if names.get(code) == "CUSTOM" or oc.CustomCode():
            custom.append((oc.CustomCode() or b"?").decode())
    if custom:
        raise TfliteConversionError(f"{path.name} needs non-builtin (Flex/custom) ops {sorted(custom)}; "
                                    "the plain TFLite interpreter cannot run it")
    if precision == "fp16":
        sub = model.Subgraphs(0)
        if not any(sub.Tensors(i).Type() == tfl_schema.TensorType.FLOAT16 for i in range(sub.TensorsLength())):
            raise TfliteConversionError(f"{path.name} has no float16 tensors: not an fp16-weight model")


def match_signature(names: list[str], sig_names: list[str], what: str) -> dict[str, str]:
    """Catalog name -> signature name: exact, then onnx2tf's ':' -> '__', then alphanumerics only."""
    def norm(s: str) -> str:
        return re.sub(r"[^0-9a-z]+", "_", s.lower()).strip("_")

    found: dict[str, str] = {}
    for n in names:
        hits = ([s for s in sig_names if s == n] or [s for s in sig_names if s == n.replace(":", "__")]
                or [s for s in sig_names if norm(s) == norm(n)])
        if len(hits) != 1 or hits[0] in found.values():
            raise TfliteConversionError(f"cannot map {what} {n!r} onto the TFLite signature's {what}s {sig_names}")
        found[n] = hits[0]
    return found


def layout_perms(onnx_shape: list[int], tfl_shape: list[int]) -> list[tuple[int, ...]]:
    """The permutations (identity, channels-last) that turn ``onnx_shape`` into ``tfl_shape``."""
    r = len(onnx_shape)
    cands = [tuple(range(r))] + ([(0, *range(2, r), 1)] if r >= 3 else [])
    return [p for p in dict.fromkeys(cands) if [onnx_shape[i] for i in p] == list(tfl_shape)]


def layout_name(perm: tuple[int, ...]) -> str:
    """The layout label of ``perm`` (e.g. NCHW or NHWC; ``as-is`` for ranks without labels)."""
    labels = LAYOUTS.get(len(perm))
    return "as-is" if labels is None else labels[perm != tuple(range(len(perm)))]


def invoke_signature(tflite_path: Path, inputs: list[TfliteBinding], feed: dict[str, np.ndarray],
            num_threads: int) -> dict[str, np.ndarray]:
    """Raw signature outputs (model layout) for NCHW ``feed`` keyed by catalog name."""
    with native_quiet():  # "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." on fd 2
        interpreter = Interpreter(model_path=str(tflite_path), num_threads=num_threads)
        interpreter.allocate_tensors()
    runner = interpreter.get_signature_runner(inputs[0].signature_key)
    return dict(runner(**{b.signature_name: np.ascontiguousarray(np.asarray(feed[b.name]).transpose(b.perm),
                                                                 dtype=b.dtype) for b in inputs}))


def _bind_and_verify(onnx_path: Path, target: Path, precision: str, onnx_in: _IO, onnx_out: _IO,
                     log_path: Path, kept: frozenset[str] = frozenset()) -> tuple[dict[str, TfliteBinding], dict[str, float]]:
    """Check ``target`` is builtin-only, bind catalog names to its signature, compare with ONNX Runtime."""
    input_names, output_names = list(onnx_in), list(onnx_out)
    check_builtin_only(target, precision)
    try:
        with native_quiet():  # the XNNPACK delegate's INFO line
            interpreter = Interpreter(model_path=str(target), num_threads=1)
            interpreter.allocate_tensors()
        signatures = interpreter.get_signature_list()
    except (RuntimeError, ValueError) as exc:
        raise TfliteConversionError(f"{target.name} does not load without the Flex delegate: {exc}") from None
    key = SIGNATURE_KEY if SIGNATURE_KEY in signatures else (next(iter(signatures)) if len(signatures) == 1 else None)
    if key is None:
        raise TfliteConversionError(f"{target.name} has no {SIGNATURE_KEY!r} signature (has {sorted(signatures)})")
    runner = interpreter.get_signature_runner(key)
    details = {**runner.get_input_details(), **runner.get_output_details()}
    names = {**match_signature(input_names, signatures[key]["inputs"], "input"),
             **match_signature(output_names, signatures[key]["outputs"], "output")}

    def binding(name: str, role: str, perm: tuple[int, ...]) -> TfliteBinding:
        d = details[names[name]]
        return TfliteBinding(name, role, key, names[name], [int(x) for x in d["shape"]],
                             np.dtype(d["dtype"]).name, layout_name(perm), perm)

    shapes = {n: shape for n, (shape, _) in (onnx_in | onnx_out).items()}
    cands = {n: layout_perms(shape, [int(x) for x in details[names[n]]["shape"]]) for n, shape in shapes.items()}
    for n, found in cands.items():
        if not found:
            raise TfliteConversionError(f"{n!r}: TFLite shape {details[names[n]]['shape'].tolist()} is no layout "
                                        f"of the ONNX shape {shapes[n]}")
    # Inputs: onnx2tf moves 4-D inputs channels-last unless told otherwise (-k), so an ambiguous
    # shape (C == H == W) takes NHWC, and an input kept as-is (-kat) its ONNX layout; outputs take
    # the layout that matches ONNX Runtime's numbers.
    table = {n: binding(n, "input", cands[n][0] if n in kept else cands[n][-1]) for n in input_names}
    import onnxruntime as ort

    feed = {n: _sample_input(shape, dt, seed=i + 1) for i, (n, (shape, dt)) in enumerate(onnx_in.items())}
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    ref = dict(zip(output_names, session.run(output_names, feed)))
    raw = invoke_signature(target, list(table.values()), feed, 1)
    diffs: dict[str, float] = {}
    for n in output_names:
        errs = {p: float(np.abs(raw[names[n]].transpose(np.argsort(p)) - ref[n]).max()) for p in cands[n]}
        p = min(errs, key=lambda q: errs[q])
        table[n], diffs[n] = binding(n, "output", p), errs[p]
        bound = VERIFY_TOL[precision] * (1.0 + float(np.abs(ref[n]).max()))
        if not errs[p] <= bound:  # also catches NaN
            raise TfliteConversionError(f"{target.name} does not match ONNX Runtime: {n!r} max abs diff {errs[p]:.3g}"
                                        f" > {bound:.3g}; onnx2tf mis-converted the graph; log: {log_path}")
    return {n: table[n] for n in [*input_names, *output_names]}, diffs


def convert_onnx_to_tflite(onnx_path: Path, out_dir: Path, precision: str, log_path: Path,
                           input_names: list[str], output_names: list[str], *,
                           keep_shape: tuple[str, ...] = (), use_cache: bool = True,
                           timeout: float = 1800.0) -> TfliteResult:
    """Convert ``onnx_path`` with onnx2tf into ``out_dir/model_float{32,16}.tflite``.

    ``precision`` is ``"fp32"`` (onnx2tf's float32 model) or ``"fp16"`` (its float16 model:
    weights stored as float16). Inputs named in ``keep_shape`` keep their ONNX shape (onnx2tf
    ``-kat``) instead of being moved channels-last. All converter output goes to ``log_path``; nothing is
    downloaded (a socket guard in the converter process enforces it). The model is checked to
    use builtin operators only, its signature names are mapped onto ``input_names`` /
    ``output_names`` and its outputs are compared with ONNX Runtime. Raises
    :class:`TfliteConversionError` (one line) on any failure.
    """
    if precision not in MODEL_FILES:
        raise TfliteConversionError(f"unknown TFLite precision {precision!r} (use {' or '.join(MODEL_FILES)})")
    onnx_path, out_dir, log_path = Path(onnx_path), Path(out_dir), Path(log_path)
    if not onnx_path.is_file():
        raise TfliteConversionError(f"ONNX model not found: {onnx_path}")
    onnx_in, onnx_out = onnx_io(onnx_path, input_names, False), onnx_io(onnx_path, output_names, True)
    if set(input_names) & set(output_names):
        raise TfliteConversionError(f"names both input and output: {sorted(set(input_names) & set(output_names))}")
    out_dir.mkdir(parents=True, exist_ok=True)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    versions = {d: dist_version(d) for d in ("onnx2tf", "tensorflow", "ai-edge-litert")}
    unknown = sorted(set(keep_shape) - set(input_names))
    if unknown:
        raise TfliteConversionError(f"keep_shape names no input: {unknown}")
    argv = ["-i", "model.onnx", "-o", "out", *FLAGS, *(["-kat", *keep_shape] if keep_shape else [])]
    target = out_dir / MODEL_FILES[precision]
    reused = _convert(onnx_path, argv, versions, log_path, target, use_cache, timeout)

    try:
        bindings, diffs = _bind_and_verify(onnx_path, target, precision, onnx_in, onnx_out, log_path, frozenset(keep_shape))
    except TfliteConversionError:
        target.unlink(missing_ok=True)  # never leave an unusable model behind
        raise
    return TfliteResult(tflite_path=target, precision=precision, flags=argv, version=versions["onnx2tf"],
                        versions=versions, bindings=bindings, max_abs_diff=diffs, reused=reused)

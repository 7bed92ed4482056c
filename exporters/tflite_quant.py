"""TFLite int8 and int8-dynamic: onnx2tf's saved model through ``tf.lite.TFLiteConverter``.

onnx2tf's own int8 path (``-oiqt -cind``) mis-converted fgaf3 silently (its shape check feeds all
calibration samples at once), so zoo takes the saved model onnx2tf writes beside its float models
and quantizes it with TensorFlow's converter in a child process (its logs go to the build log):

- ``static`` recipes: a representative dataset of calibration pairs (tracker-style crops, NHWC),
  builtin int8 ops, float32 I/O, and the recipe's ``keep_float`` op kinds deny-listed through
  ``tf.lite.experimental.QuantizationDebugger`` (``denylisted_ops``);
- ``dynamic`` recipes: dynamic-range quantization (int8 weights, activations at run time).

Quantized models rename their outputs (``output_0..2``) and two outputs share a shape, so outputs
are bound by verified identity: every assignment of signature outputs to catalog outputs is tried
against ONNX Runtime on probe pairs and the best must be clearly better than the next.
"""
from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from filelock import FileLock

from exporters.tflite_convert import (
    FLAGS,
    TfliteBinding,
    TfliteConversionError,
    check_builtin_only,
    invoke_signature,
    layout_name,
    layout_perms,
    match_signature,
    onnx_io,
    run_onnx2tf,
    saved_model_entry,
)
from zoo.layouts import NHWC, to_layout
from zoo.native import native_quiet
from zoo.procs import run_group

#: the best output assignment's error must be below this share of the runner-up's
MARGIN = 0.5
_CHILD = r"""
import json, sys
import numpy as np
import tensorflow as tf
saved, data, recipe_json, out = sys.argv[1:5]
recipe = json.loads(recipe_json)
calib = np.load(data)
names = sorted({k.split("/")[1] for k in calib.files})
count = len({k.split("/")[0] for k in calib.files})
def representative():
    for i in range(count):
        yield {n: calib[f"{i}/{n}"] for n in names}
conv = tf.lite.TFLiteConverter.from_saved_model(saved)
conv.optimizations = [tf.lite.Optimize.DEFAULT]
if recipe["method"] == "static":
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
    conv.inference_input_type = tf.float32
    conv.inference_output_type = tf.float32
    conv._experimental_disable_per_channel = not recipe["per_channel"]
    options = tf.lite.experimental.QuantizationDebugOptions(denylisted_ops=list(recipe["keep_float"]))
    debugger = tf.lite.experimental.QuantizationDebugger(converter=conv, debug_dataset=representative, debug_options=options)
    model = debugger.get_nondebug_quantized_model()
else:
    model = conv.convert()
open(out, "wb").write(model)
print("zoo: wrote", out, len(model), "bytes", flush=True)
"""


def _saved_model(onnx_path: Path, work: Path, argv: list[str], log_path: Path, timeout: float, use_cache: bool) -> Path:
    """onnx2tf's saved model of ``onnx_path``; cached (:func:`exporters.tflite_convert.saved_model_entry`)
    so that int8 and int8-dynamic of one graph run onnx2tf once, or not at all after its float
    conversion (:func:`exporters.tflite_convert.keep_saved_model`)."""
    if not use_cache:
        return _checked(run_onnx2tf(onnx_path, work, argv, log_path, timeout), log_path)
    entry = saved_model_entry(onnx_path, argv)
    entry.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(entry) + ".lock"):
        if not (entry / "done").is_file():
            shutil.rmtree(entry, ignore_errors=True)
            out = _checked(run_onnx2tf(onnx_path, work, argv, log_path, timeout), log_path)
            shutil.copytree(out, entry / "saved")
            (entry / "done").write_text("ok")
        else:
            with open(log_path, "a", encoding="utf-8") as log:
                log.write(f"reused onnx2tf saved model {entry} (same ONNX bytes, flags and versions)\n")
        dest = work / "saved"
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(entry / "saved", dest)
    return dest


def _checked(saved: Path, log_path: Path) -> Path:
    if not (saved / "saved_model.pb").is_file():
        raise TfliteConversionError(f"onnx2tf wrote no saved model; log: {log_path}")
    return saved


def _saved_layout(value: np.ndarray, name: str, kept: frozenset[str]) -> np.ndarray:
    """An NCHW / NLC input as onnx2tf's saved model takes it: 4-D channels-last unless kept (-kat)."""
    return np.ascontiguousarray(value if name in kept else to_layout(value, NHWC))


def _quantize(saved: Path, pairs: list[dict[str, np.ndarray]], recipe: dict, out: Path, names: dict[str, str],
              log_path: Path, timeout: float, kept: frozenset[str] = frozenset()) -> None:
    data = out.parent / "calibration.npz"
    arrays = {f"{i}/{names[k]}": _saved_layout(v, k, kept) for i, p in enumerate(pairs) for k, v in p.items()}
    np.savez(data, **arrays)
    env = dict(os.environ, PYTHONUNBUFFERED="1", CUDA_VISIBLE_DEVICES="-1", TF_CPP_MIN_LOG_LEVEL="1")
    with open(log_path, "a", encoding="utf-8", errors="replace") as log:
        log.write(f"$ tf.lite.TFLiteConverter.from_saved_model ({recipe['method']}; recipe {json.dumps(recipe)})\n")
        log.flush()
        try:
            proc = run_group([sys.executable, "-c", _CHILD, str(saved), str(data), json.dumps(recipe), str(out)],
                             cwd=out.parent, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                             timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TfliteConversionError(f"the TFLite quantizer timed out after {timeout:.0f} s; log: {log_path}") from None
    data.unlink(missing_ok=True)
    if proc.returncode != 0 or not out.is_file():
        raise TfliteConversionError(f"the TFLite quantizer failed (exit {proc.returncode}); log: {log_path}")


def bind_outputs_by_identity(raw: list[dict[str, np.ndarray]], refs: list[dict[str, np.ndarray]],
                             details: dict[str, list[int]], onnx_shapes: dict[str, list[int]]) -> dict[str, tuple[str, tuple, float]]:
    """Catalog output -> (signature output, perm, relative error): the assignment (a bijection between
    outputs whose shapes are layouts of each other) with the smallest summed relative error against
    the reference, which must beat the runner-up by :data:`MARGIN`."""
    catalog, sig = list(onnx_shapes), list(details)

    def cost(c: str, s: str) -> tuple[float, tuple] | None:
        best = None
        for p in layout_perms(onnx_shapes[c], details[s]):
            err = float(np.mean([np.abs(r[s].transpose(np.argsort(p)) - f[c]).mean() / (np.abs(f[c]).mean() + 1e-6)
                                 for r, f in zip(raw, refs, strict=True)]))
            if best is None or err < best[0]:
                best = (err, p)
        return best

    table = {(c, s): cost(c, s) for c in catalog for s in sig}
    scored = []
    for perm in itertools.permutations(sig, len(catalog)):
        cells = [table[(c, s)] for c, s in zip(catalog, perm, strict=True)]
        if all(cell is not None for cell in cells):
            scored.append((sum(cell[0] for cell in cells), perm))
    if not scored:
        raise TfliteConversionError(f"no assignment of the TFLite outputs {sig} fits the catalog's shapes")
    scored.sort(key=lambda x: x[0])
    best_total, best = scored[0]
    if not np.isfinite(best_total) or (len(scored) > 1 and not best_total < MARGIN * scored[1][0]):
        raise TfliteConversionError(f"cannot tell the quantized outputs apart: best assignment error {best_total:.3g}, "
                                    f"next {scored[1][0] if len(scored) > 1 else float('nan'):.3g}")
    return {c: (s, table[(c, s)][1], table[(c, s)][0]) for c, s in zip(catalog, best, strict=True)}


def convert_quantized(onnx_path: Path, work: Path, precision: str, recipe: dict, pairs: list[dict[str, np.ndarray]],
                      probes: list[dict[str, np.ndarray]], log_path: Path, input_names: list[str],
                      output_names: list[str], target_name: str, timeout: float = 1800.0, use_cache: bool = True,
                      keep_shape: tuple[str, ...] = ()) -> tuple[Path, dict[str, TfliteBinding], dict[str, float], list[str]]:
    """onnx2tf (saved model) + the TensorFlow quantizer: ``(model path, bindings, relative error per output, flags)``.

    ``pairs`` and ``probes`` are catalog-named NCHW (or 3-D) inputs of the graph; inputs named in
    ``keep_shape`` keep their ONNX layout (onnx2tf ``-kat``)."""
    import onnxruntime as ort

    onnx_in, onnx_out = onnx_io(onnx_path, input_names, False), onnx_io(onnx_path, output_names, True)
    kept = frozenset(keep_shape)
    argv = ["-i", "model.onnx", "-o", "out", *FLAGS, *(["-kat", *keep_shape] if keep_shape else [])]
    saved = _saved_model(onnx_path, work, argv, log_path, timeout, use_cache)
    target = work / target_name
    in_names = {n: n for n in input_names}
    _quantize(saved, pairs, recipe, target, in_names, log_path, timeout, kept)
    check_builtin_only(target, precision)
    from ai_edge_litert.interpreter import Interpreter

    try:
        with native_quiet():
            interpreter = Interpreter(model_path=str(target), num_threads=1)
            interpreter.allocate_tensors()
        signatures = interpreter.get_signature_list()
    except (RuntimeError, ValueError) as exc:
        raise TfliteConversionError(f"{target.name} does not load: {exc}") from None
    key = "serving_default" if "serving_default" in signatures else next(iter(signatures))
    runner = interpreter.get_signature_runner(key)
    in_details, out_details = runner.get_input_details(), runner.get_output_details()
    names = match_signature(input_names, signatures[key]["inputs"], "input")
    inputs = {}
    for n in input_names:
        d = in_details[names[n]]
        found = layout_perms(onnx_in[n][0], [int(x) for x in d["shape"]])
        if not found:
            raise TfliteConversionError(f"{n!r}: TFLite shape {d['shape'].tolist()} is no layout of the ONNX shape {onnx_in[n][0]}")
        perm = found[0] if n in kept else found[-1]
        inputs[n] = TfliteBinding(n, "input", key, names[n], [int(x) for x in d["shape"]], np.dtype(d["dtype"]).name, layout_name(perm), perm)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    refs = [dict(zip(output_names, session.run(output_names, p), strict=True)) for p in probes]
    raw = [invoke_signature(target, list(inputs.values()), p, 1) for p in probes]
    shapes = {s: [int(x) for x in d["shape"]] for s, d in out_details.items()}
    chosen = bind_outputs_by_identity(raw, refs, shapes, {n: onnx_out[n][0] for n in output_names})
    outputs = {c: TfliteBinding(c, "output", key, s, shapes[s], np.dtype(out_details[s]["dtype"]).name, layout_name(p), p)
               for c, (s, p, _) in chosen.items()}
    errors = {c: e for c, (_, _, e) in chosen.items()}
    return target, {**inputs, **outputs}, errors, ["onnx2tf", *argv]

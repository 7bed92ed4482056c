"""TFLite int8 and int8-dynamic: litert-torch's float32 model through ai-edge-quantizer.

- ``static`` recipes: every op ai-edge-quantizer supports gets int8 activations and int8 weights
  (per channel unless the recipe says otherwise), calibrated on the recipe's calibration pairs
  (tracker-style crops, the catalog's names and NCHW layout, as the float model takes them); the
  recipe's ``keep_float`` op kinds (TFLite builtin names, e.g. BATCH_MATMUL, SOFTMAX) and the graph's
  inputs and outputs stay float32, so callers feed and read float tensors;
- ``dynamic`` recipes: int8 weights, activations quantized at run time (XNNPACK's dynamic-range kernels).

ai-edge-quantizer keeps the signature's tensor names, so outputs are bound by name like the float
model's; the file is checked to hold int8 tensors and builtin ops only.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from exporters.tflite_convert import SIGNATURE_KEY, TfliteConversionError, check_builtin_only, log_output
from zoo.native import captured_output, native_stderr


def _op(qtyping, name: str):
    try:
        return getattr(qtyping.TFLOperationName, name)
    except AttributeError:
        known = sorted(o.name for o in qtyping.TFLOperationName)
        raise TfliteConversionError(f"keep_float names {name!r}, which ai-edge-quantizer does not know (ops: {', '.join(known)})") from None


def recipe_calls(recipe: dict) -> list[str]:
    """The quantizer configuration a recipe becomes, as the calls made (recorded in the manifest)."""
    if recipe["method"] == "dynamic":
        return ["add_dynamic_config('.*', ALL_SUPPORTED, num_bits=8, CHANNELWISE)"]
    granularity = "CHANNELWISE" if recipe.get("per_channel", True) else "TENSORWISE"
    calls = [f"add_static_config('.*', ALL_SUPPORTED, activation_num_bits=8, weight_num_bits=8, {granularity})"]
    calls += [f"add_static_config('.*', {op}, NO_QUANTIZE)" for op in [*recipe.get("keep_float", []), "INPUT", "OUTPUT"]]
    return calls


def quantize(source: Path, target: Path, recipe: dict, pairs: list[dict[str, np.ndarray]], log_path: Path,
             precision: str) -> None:
    """Write ``source`` (a float32 litert-torch model) quantized with ``recipe`` to ``target``.

    ``pairs`` are the calibration feeds (catalog names, the float model's layouts) of a static recipe."""
    from ai_edge_quantizer import qtyping, quantizer
    from ai_edge_quantizer.algorithm_manager import AlgorithmName

    if recipe["method"] not in ("static", "dynamic"):
        raise TfliteConversionError(f"TFLite has no {recipe['method']!r} quantization (use static or dynamic)")
    if recipe["method"] == "static" and not pairs:
        raise TfliteConversionError("a static int8 recipe needs calibration pairs")
    ops = qtyping.TFLOperationName
    granularity = qtyping.QuantGranularity.CHANNELWISE if recipe.get("per_channel", True) else qtyping.QuantGranularity.TENSORWISE
    buf, failure = io.StringIO(), None
    with captured_output(buf), native_stderr() as native:
        try:
            q = quantizer.Quantizer(str(source))
            if recipe["method"] == "dynamic":
                q.add_dynamic_config(".*", ops.ALL_SUPPORTED, 8, granularity)
                result = q.quantize()
            else:
                q.add_static_config(".*", ops.ALL_SUPPORTED, 8, 8, granularity)
                for name in [*recipe.get("keep_float", []), "INPUT", "OUTPUT"]:  # later configs override earlier ones
                    q.add_static_config(".*", _op(qtyping, name), 8, 8, granularity, algorithm_key=AlgorithmName.NO_QUANTIZE)
                feeds = [{k: np.ascontiguousarray(v, dtype=np.float32) for k, v in p.items()} for p in pairs]
                result = q.quantize(q.calibrate({SIGNATURE_KEY: feeds}, num_threads=1))
            result.export_model(str(target), overwrite=True)
        except TfliteConversionError as exc:
            failure = exc
        except Exception as exc:  # noqa: BLE001 - the quantizer's failure is one line; the log keeps the rest
            failure = TfliteConversionError(f"ai-edge-quantizer failed: {type(exc).__name__}: "
                                            f"{str(exc).splitlines()[0] if str(exc) else ''}; log: {log_path}")
    log_output(log_path, f"ai_edge_quantizer ({recipe['method']}; {len(pairs)} calibration pairs): " + "; ".join(recipe_calls(recipe)),
               buf.getvalue(), native.lines)
    if failure is not None:
        raise failure
    check_builtin_only(target, precision)  # builtin ops only, and int8 tensors: something was quantized


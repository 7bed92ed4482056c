"""TFLite int8 and int8-dynamic: litert-torch's float32 model through ai-edge-quantizer.

- ``static`` recipes: every op ai-edge-quantizer supports gets int8 activations and int8 weights
  (per channel unless the recipe says otherwise), calibrated on the recipe's calibration pairs
  (tracker-style crops, the catalog's names and NCHW layout, as the float model takes them); the
  recipe's ``keep_float`` op kinds (TFLite builtin names, e.g. BATCH_MATMUL, SOFTMAX) and the graph's
  inputs and outputs stay float32, so callers feed and read float tensors;
- ``float_passthrough`` (static): ops of these kinds stay float wherever every non-constant input
  comes from a float op. litert-torch lowers a 4-D matmul to RESHAPE -> BATCH_MATMUL -> RESHAPE and
  reshapes LayerNorm's statistics; quantizing those reshapes would put a QUANTIZE/DEQUANTIZE round trip
  between the attention product and its softmax (and on every LayerNorm statistic): slower and less
  accurate than leaving the float region whole (:func:`float_fed_scopes`);
- ``dynamic`` recipes: int8 weights, activations quantized at run time (XNNPACK's dynamic-range kernels);
- ``min_weight_elements``: weights with fewer elements stay float (a 3-channel stem's run-time
  quantization of a full-size image costs more than its int8 product saves).

ai-edge-quantizer keeps the signature's tensor names, so outputs are bound by name like the float
model's; the file is checked to hold int8 tensors and builtin ops only.
"""
from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np

from exporters.tflite_convert import SIGNATURE_KEY, TfliteConversionError, check_builtin_only, log_output, tfl_schema
from zoo.native import captured_output, native_stderr


def _op(qtyping, name: str):
    try:
        return getattr(qtyping.TFLOperationName, name)
    except AttributeError:
        known = sorted(o.name for o in qtyping.TFLOperationName)
        raise TfliteConversionError(f"keep_float names {name!r}, which ai-edge-quantizer does not know (ops: {', '.join(known)})") from None


def recipe_calls(recipe: dict) -> list[str]:
    """The quantizer configuration a recipe becomes, as the calls made (recorded in the manifest)."""
    min_weights = recipe.get("min_weight_elements", 0)
    tail = [f"every op config: min_weight_elements={min_weights}"] if min_weights else []
    if recipe["method"] == "dynamic":
        return ["add_dynamic_config('.*', ALL_SUPPORTED, num_bits=8, CHANNELWISE)", *tail]
    granularity = "CHANNELWISE" if recipe.get("per_channel", True) else "TENSORWISE"
    calls = [f"add_static_config('.*', ALL_SUPPORTED, activation_num_bits=8, weight_num_bits=8, {granularity})"]
    calls += [f"add_static_config('.*', {op}, NO_QUANTIZE)" for op in [*recipe.get("keep_float", []), "INPUT", "OUTPUT"]]
    if recipe.get("float_passthrough"):
        calls.append(f"add_static_config('^<scope>$', ALL_SUPPORTED, NO_QUANTIZE) for each {'/'.join(recipe['float_passthrough'])} "
                     "op fed only by float ops")
    return calls + tail


def _builtin(name: str) -> int:
    code = getattr(tfl_schema.BuiltinOperator, name, None)
    if not isinstance(code, int):
        raise TfliteConversionError(f"float_passthrough names {name!r}, which is not a TFLite builtin operator")
    return code


def float_fed_scopes(path: Path, keep_float: list[str], passthrough: list[str]) -> list[str]:
    """ai-edge-quantizer scopes (an op's output names, ``;``-joined) of the ``passthrough`` ops in
    ``path`` whose every non-constant input is produced by a float op: a ``keep_float`` op or, in
    graph order, another such passthrough op. Graph inputs do not count as float producers (the
    first conv quantizes its input wherever the QUANTIZE sits)."""
    # an unknown keep_float name is refused by the quantizer's own op list (_op), with its choices
    kept = {getattr(tfl_schema.BuiltinOperator, n) for n in keep_float if isinstance(getattr(tfl_schema.BuiltinOperator, n, None), int)}
    through = {_builtin(n) for n in passthrough}
    model = tfl_schema.Model.GetRootAsModel(path.read_bytes(), 0)
    sub = model.Subgraphs(0)

    def constant(t: int) -> bool:
        buf = model.Buffers(sub.Tensors(t).Buffer())
        return buf.DataLength() > 0 or buf.Offset() > 0

    producer: dict[int, int] = {}
    floating: set[int] = set()
    scopes = []
    for i in range(sub.OperatorsLength()):
        op = sub.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        kind = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        inputs = [t for t in (op.Inputs(j) for j in range(op.InputsLength())) if t >= 0 and not constant(t)]
        outputs = [op.Outputs(j) for j in range(op.OutputsLength())]
        if kind in kept:
            floating.add(i)
        elif kind in through and inputs and all(producer.get(t) in floating for t in inputs):
            floating.add(i)
            scopes.append("".join(sub.Tensors(t).Name().decode() + ";" for t in outputs))
        producer.update((t, i) for t in outputs)
    return scopes


def _with_min_weight_elements(q, count: int) -> None:
    """Every op config of ``q``'s recipe so far leaves weights with fewer than ``count`` elements float."""
    recipe = q.get_quantization_recipe()
    for entry in recipe:
        entry["op_config"]["min_weight_elements"] = count
    q.load_quantization_recipe(recipe)


def quantize(source: Path, target: Path, recipe: dict, pairs: list[dict[str, np.ndarray]], log_path: Path,
             precision: str) -> int:
    """Write ``source`` (a float32 litert-torch model) quantized with ``recipe`` to ``target``; returns
    how many ops ``float_passthrough`` kept float.

    ``pairs`` are the calibration feeds (catalog names, the float model's layouts) of a static recipe."""
    from ai_edge_quantizer import qtyping, quantizer
    from ai_edge_quantizer.algorithm_manager import AlgorithmName

    if recipe["method"] not in ("static", "dynamic"):
        raise TfliteConversionError(f"TFLite has no {recipe['method']!r} quantization (use static or dynamic)")
    if recipe["method"] == "static" and not pairs:
        raise TfliteConversionError("a static int8 recipe needs calibration pairs")
    ops = qtyping.TFLOperationName
    granularity = qtyping.QuantGranularity.CHANNELWISE if recipe.get("per_channel", True) else qtyping.QuantGranularity.TENSORWISE
    scopes = float_fed_scopes(source, recipe.get("keep_float", []), recipe.get("float_passthrough", [])) if recipe["method"] == "static" else []
    buf, failure = io.StringIO(), None
    with captured_output(buf), native_stderr() as native:
        try:
            q = quantizer.Quantizer(str(source))
            if recipe["method"] == "dynamic":
                q.add_dynamic_config(".*", ops.ALL_SUPPORTED, 8, granularity)
                if recipe.get("min_weight_elements"):
                    _with_min_weight_elements(q, recipe["min_weight_elements"])
                result = q.quantize()
            else:
                q.add_static_config(".*", ops.ALL_SUPPORTED, 8, 8, granularity)
                for name in [*recipe.get("keep_float", []), "INPUT", "OUTPUT"]:  # later configs override earlier ones
                    q.add_static_config(".*", _op(qtyping, name), 8, 8, granularity, algorithm_key=AlgorithmName.NO_QUANTIZE)
                for scope in scopes:
                    q.add_static_config(f"^{re.escape(scope)}$", ops.ALL_SUPPORTED, 8, 8, granularity, algorithm_key=AlgorithmName.NO_QUANTIZE)
                if recipe.get("min_weight_elements"):
                    _with_min_weight_elements(q, recipe["min_weight_elements"])
                feeds = [{k: np.ascontiguousarray(v, dtype=np.float32) for k, v in p.items()} for p in pairs]
                result = q.quantize(q.calibrate({SIGNATURE_KEY: feeds}, num_threads=1))
            result.export_model(str(target), overwrite=True)
        except TfliteConversionError as exc:
            failure = exc
        except Exception as exc:  # noqa: BLE001 - the quantizer's failure is one line; the log keeps the rest
            failure = TfliteConversionError(f"ai-edge-quantizer failed: {type(exc).__name__}: "
                                            f"{str(exc).splitlines()[0] if str(exc) else ''}; log: {log_path}")
    kept = f"; {len(scopes)} ops kept float by float_passthrough" if scopes else ""
    log_output(log_path, f"ai_edge_quantizer ({recipe['method']}; {len(pairs)} calibration pairs): " + "; ".join(recipe_calls(recipe)) + kept,
               buf.getvalue(), native.lines)
    if failure is not None:
        raise failure
    check_builtin_only(target, precision)  # builtin ops only, and int8 tensors: something was quantized
    return len(scopes)


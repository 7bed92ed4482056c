"""ONNX int8: static QDQ quantization of the verified fp32 ONNX model with ONNX Runtime's quantizer.

``onnxruntime.quantization.quantize_static`` with the catalog's recipe (``quantization:`` in
zoo.yaml): activation and weight types (U8S8 for x86, S8S8 for ARM with dot-product
instructions), per-channel weights, MinMax ranges from the calibration pairs (tracker-style crops,
:mod:`zoo.calibration`), and the op kinds the recipe keeps in float excluded by node name
(``MatMul:activations`` = MatMuls without a constant operand: the attention products). The graph
keeps the catalog's I/O names, so the bindings are the fp32 model's.
"""
from __future__ import annotations

import io
import logging
from pathlib import Path

from exporters.base import BuildContext, ConversionError, ConvertResult, nchw_bindings, package_version
from zoo.manifest import Converter
from zoo.native import captured_output
from zoo.requirements import require

MODEL_FILE = "model.int8.onnx"
TYPES = {"uint8": "QUInt8", "int8": "QInt8"}


def kept_float(model, kinds: list[str]) -> list[str]:
    """Names of the nodes whose kind the recipe keeps in float (``Op`` or ``MatMul:activations``)."""
    constants = {i.name for i in model.graph.initializer}
    constants |= {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    names = []
    for node in model.graph.node:
        for kind in kinds:
            op, _, qualifier = kind.partition(":")
            if node.op_type != op:
                continue
            if qualifier == "activations" and any(i in constants for i in node.input):
                continue
            names.append(node.name)
            break
    return names


def convert(ctx: BuildContext, extra: str) -> ConvertResult:
    """Quantize ``ctx.onnx_path`` with ``ctx.quantization`` into ``model.int8.onnx``."""
    onnx = require("onnx", extra)
    quant = require("onnxruntime.quantization", extra, "ONNX Runtime's quantizer")
    q = ctx.quantization
    if q is None or q.recipe.method != "static" or not q.pairs:
        raise ConversionError("ONNX int8 needs a static recipe with calibration pairs")
    recipe = q.recipe
    model = onnx.load(str(ctx.onnx_path))
    exclude = kept_float(model, recipe.keep_float)
    pairs = iter(q.pairs)

    class Reader(quant.CalibrationDataReader):
        def get_next(self):
            return next(pairs, None)

    kwargs = {"quant_format": "QDQ", "activation_type": TYPES[recipe.activations], "weight_type": TYPES[recipe.weights],
              "per_channel": recipe.per_channel, "calibrate_method": "MinMax"}
    out = Path(ctx.build_dir) / MODEL_FILE
    buf = io.StringIO()
    root = logging.getLogger()
    handler = logging.StreamHandler(buf)
    root.addHandler(handler)  # the quantizer logs its "pre-process first" advice through the root logger
    try:
        with captured_output(buf):
            quant.quantize_static(str(ctx.onnx_path), str(out), Reader(), quant_format=quant.QuantFormat.QDQ,
                                  activation_type=getattr(quant.QuantType, TYPES[recipe.activations]),
                                  weight_type=getattr(quant.QuantType, TYPES[recipe.weights]),
                                  per_channel=recipe.per_channel, calibrate_method=quant.CalibrationMethod.MinMax,
                                  nodes_to_exclude=exclude)
    except Exception as exc:  # noqa: BLE001 - the quantizer raises anything
        raise ConversionError(f"quantize_static failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    finally:
        root.removeHandler(handler)
        with open(ctx.log_path, "a", encoding="utf-8") as log:
            log.write(f"quantize_static {kwargs}; kept float: {exclude}\n{buf.getvalue()}")
    for leftover in Path(ctx.build_dir).glob("*.onnx-*"):  # calibration scratch files, if any
        leftover.unlink(missing_ok=True)
    qmodel = onnx.load(str(out))
    ops = {n.op_type for n in qmodel.graph.node}
    if "QuantizeLinear" not in ops:
        raise ConversionError("quantize_static produced no QuantizeLinear node: the model is not quantized")
    variant = ctx.variant
    graph_in = [i.name for i in qmodel.graph.input]
    graph_out = [o.name for o in qmodel.graph.output]
    if graph_in != [s.name for s in variant.io.inputs] or graph_out != [s.name for s in variant.io.outputs]:
        raise ConversionError(f"quantized graph I/O {graph_in} -> {graph_out} differs from the catalog's")
    flags = [(f"onnxruntime.quantization.quantize_static(model.onnx, {MODEL_FILE}, <{len(q.pairs)} calibration pairs>, "
             f"quant_format=QDQ, activation_type={TYPES[recipe.activations]}, weight_type={TYPES[recipe.weights]}, "
             f"per_channel={recipe.per_channel}, calibrate_method=MinMax, nodes_to_exclude=<{len(exclude)} nodes: "
             f"{', '.join(recipe.keep_float)}>)")]
    notes = [f"int8 QDQ for {recipe.hardware}; {len(exclude)} nodes kept in float ({', '.join(recipe.keep_float)})"]
    return ConvertResult(
        files=[MODEL_FILE], inputs=nchw_bindings(variant.io.inputs), outputs=nchw_bindings(variant.io.outputs),
        converter=Converter(name="onnxruntime.quantization", version=package_version("onnxruntime", extra), flags=flags),
        notes=notes,
    )

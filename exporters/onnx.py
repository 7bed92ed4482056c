"""ONNX: the source format of every other exporter.

``torch.onnx.export`` (TorchScript exporter, opset 17, static shapes, the catalog's tensor
names) of the BatchNorm-folded model, simplified with onnxsim (onnxslim if onnxsim fails),
checked by ``onnx.checker`` and tagged with the catalog's metadata in ``metadata_props``.
"""
from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import torch

from exporters import onnx_int8
from exporters.base import TORCH_TRACE_LOCK, BuildContext, ConversionError, ConvertResult, Exporter, append_log, nchw_bindings, package_version
from zoo.catalog import Catalog
from zoo.manifest import Converter
from zoo.models.fold import fold_batchnorm
from zoo.native import captured_output
from zoo.requirements import require
from zoo.schema import IOSpec
from zoo.version import __version__ as zoo_version
from zoo.weights import load_model

OPSET = 17
MODEL_FILE = "model.onnx"




def simplify_onnx(model, log_path: Path):
    """onnxsim, then onnxslim as a fallback; returns (model, tool name)."""
    onnx = require("onnx", "onnx")
    try:
        onnxsim = require("onnxsim", "onnx")
        simplified, ok = onnxsim.simplify(model)
        if not ok:
            raise RuntimeError("onnxsim could not validate the simplified model")
        return simplified, f"onnxsim {package_version('onnxsim', 'onnx')}"
    except Exception as exc:  # noqa: BLE001 - any onnxsim failure falls back to onnxslim
        append_log(log_path, f"onnxsim failed ({type(exc).__name__}: {exc}); trying onnxslim")
    onnxslim = require("onnxslim", "onnx")
    slimmed = onnxslim.slim(model)
    onnx.checker.check_model(slimmed)
    return slimmed, f"onnxslim {package_version('onnxslim', 'onnx')}"


class OnnxExporter(Exporter):
    name = "onnx"
    revision = 2  # 2: tokens <-> feature maps through channels-last (zoo.models.tracker_net.to_tokens / to_feature_map)

    def versions(self) -> dict[str, str]:
        return {dist: package_version(dist, self.extra) for dist in ("torch", "onnx", "onnxsim", "onnxslim", "onnxruntime")}

    def options(self, precision: str, catalog: Catalog) -> dict:
        return {"precision": precision, "opset": OPSET, "fold_batchnorm": True, "simplify": "onnxsim|onnxslim"}

    def needs_onnx_for(self, precision: str) -> bool:
        """int8 quantizes the verified fp32 model (:mod:`exporters.onnx_int8`)."""
        return precision != "fp32"

    def convert(self, ctx: BuildContext) -> ConvertResult:
        """Export, simplify, check and tag ``model.onnx`` (fp32); quantize it (int8)."""
        if ctx.precision != "fp32":
            return onnx_int8.convert(ctx, self.extra)
        onnx = require("onnx", self.extra)
        variant = ctx.variant
        model = fold_batchnorm(load_model(variant))
        dummies = tuple(torch.zeros(spec.shape) for spec in variant.io.inputs)
        model_proto, simplifier = export_module(model, dummies, variant.io, ctx.build_dir, ctx.log_path)
        pre = variant.preprocessing
        meta = {
            "variant": variant.name,
            "weights_sha256": variant.weights.sha256,
            "zoo_version": zoo_version,
            "mean": json.dumps(pre.mean),
            "std": json.dumps(pre.std),
            "scale": repr(pre.scale),
            "color": pre.color,
            "layout": "NCHW",
        }
        del model_proto.metadata_props[:]
        for key, value in meta.items():
            model_proto.metadata_props.add(key=key, value=value)
        model_proto.producer_version = zoo_version
        onnx.checker.check_model(model_proto, full_check=True)
        onnx.save(model_proto, str(ctx.build_dir / MODEL_FILE))
        ops = {node.op_type for node in model_proto.graph.node}
        append_log(ctx.log_path, f"simplified with {simplifier}; {len(model_proto.graph.node)} nodes, ops: {sorted(ops)}")
        in_names, out_names = [s.name for s in variant.io.inputs], [s.name for s in variant.io.outputs]
        flags = [f"torch.onnx.export(fold_batchnorm(model), opset_version={OPSET}, dynamo=False, do_constant_folding=True, "
                 f"input_names={in_names}, output_names={out_names})", simplifier]
        return ConvertResult(
            files=[MODEL_FILE],
            inputs=nchw_bindings(variant.io.inputs),
            outputs=nchw_bindings(variant.io.outputs),
            converter=Converter(name="torch.onnx", version=package_version("torch", "onnx"), flags=flags),
        )

    def convert_graph(self, ctx: BuildContext, probes: list[dict] | None = None) -> ConvertResult:
        """fp32: ``ctx.graph_module`` exported like the full model (no metadata: the artifact's is in
        its manifest); int8: the graph's verified fp32 ONNX quantized like the full model."""
        if ctx.graph_module is None:
            return self.convert(ctx)
        onnx = require("onnx", self.extra)
        module, args = ctx.graph_module
        model_proto, simplifier = export_module(module, args, ctx.variant.io, ctx.build_dir, ctx.log_path)
        onnx.checker.check_model(model_proto, full_check=True)
        onnx.save(model_proto, str(ctx.build_dir / MODEL_FILE))
        flags = [f"torch.onnx.export(split_model(fold_batchnorm(model)).{ctx.build_dir.name}, opset_version={OPSET}, dynamo=False)",
                 simplifier]
        return ConvertResult(files=[MODEL_FILE], inputs=nchw_bindings(ctx.variant.io.inputs), outputs=nchw_bindings(ctx.variant.io.outputs),
                             converter=Converter(name="torch.onnx", version=package_version("torch", "onnx"), flags=flags))


def export_module(module: torch.nn.Module, args: tuple, io_spec: IOSpec, build_dir: Path, log_path: Path):
    """``torch.onnx.export`` (opset 17, the catalog's tensor names) + simplify + check of ``module``:
    returns (the ONNX model, the simplifier's name). A BatchNormalization node left after folding,
    or graph I/O other than ``io_spec``'s, is a :class:`ConversionError`."""
    onnx = require("onnx", "onnx")
    in_names = [s.name for s in io_spec.inputs]
    out_names = [s.name for s in io_spec.outputs]
    raw_path = build_dir / "raw.onnx"
    kwargs = dict(input_names=in_names, output_names=out_names, opset_version=OPSET, dynamo=False, do_constant_folding=True)
    buf = io.StringIO()
    # torch.onnx.export keeps global state and redirect_stdout swaps sys.stdout for the whole
    # process: with variants exported in parallel (--jobs) one export at a time
    with TORCH_TRACE_LOCK, captured_output(buf), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(module, args, str(raw_path), **kwargs)
        except Exception as exc:  # noqa: BLE001
            append_log(log_path, buf.getvalue())
            raise ConversionError(f"torch.onnx.export failed: {type(exc).__name__}: {str(exc).splitlines()[0]}") from None
    append_log(log_path, "torch.onnx.export " + json.dumps(kwargs) + "\n" + buf.getvalue())
    model_proto = onnx.load(str(raw_path))
    raw_path.unlink()
    model_proto, simplifier = simplify_onnx(model_proto, log_path)
    if "BatchNormalization" in {node.op_type for node in model_proto.graph.node}:
        raise ConversionError("a BatchNormalization node survived folding")
    graph_in = [i.name for i in model_proto.graph.input]
    graph_out = [o.name for o in model_proto.graph.output]
    if graph_in != in_names or graph_out != out_names:
        raise ConversionError(f"ONNX graph I/O {graph_in} -> {graph_out} differs from the catalog's {in_names} -> {out_names}")
    model_proto.producer_name = "zoo"
    return model_proto, simplifier

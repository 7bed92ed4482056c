"""TFLite: the catalog's PyTorch module through litert-torch (no TensorFlow), reduced precisions through
ai-edge-quantizer (:mod:`exporters.tflite_convert`, :mod:`exporters.tflite_quant`).

Every precision starts from one float32 conversion of the BatchNorm-folded module (cached in the zoo
cache): fp16 casts its weights to float16, int8 and int8-dynamic quantize it with the catalog's
recipe. The file keeps PyTorch's layouts and the catalog's tensor names, so bindings are by name with
identity layouts. Verification then runs the artifact through ai-edge-litert's interpreter
(:class:`compare.runners.tflite.TfliteRunner`), which refuses Flex ops.

Why litert-torch and not onnx2tf (zoo's converter until 0.1): the same runtime speed and accuracy at
every precision, a fifth of the conversion time, and no TensorFlow, whose exact pins (numpy 1.26,
onnx 1.19, OpenCV 4.11) held the whole environment back: ``benchmarks/tflite_route.py``, docs/artifacts.md.
"""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import torch

from exporters.base import BuildContext, ConversionError, ConvertResult, Exporter, package_version
from zoo.manifest import Converter, GraphBinding, TensorBinding
from zoo.models.fold import fold_batchnorm
from zoo.requirements import MissingPackage
from zoo.version import __version__ as zoo_version
from zoo.weights import load_model

#: the zoo modules whose code determines a converted graph (part of the conversion cache key)
_MODEL_CODE = ("zoo/models", "exporters/split.py")
CONVERTER_PACKAGES = ("litert-torch", "litert-converter", "ai-edge-quantizer", "ai-edge-litert")


def _backend():
    try:
        from exporters import tflite_convert, tflite_quant
    except ImportError as exc:
        if exc.name and exc.name.split(".")[0] in ("litert_torch", "ai_edge_litert", "ai_edge_quantizer"):
            raise MissingPackage(f"the TFLite converter is not installed ({exc.name}): pip install 'zoo[tflite]'") from None
        raise
    return tflite_convert, tflite_quant


def _model_code_digest() -> str:
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for rel in _MODEL_CODE:
        path = root / rel
        for f in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            digest.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes())
    return digest.hexdigest()


def _identity(ctx: BuildContext, graph: str) -> dict | None:
    """What determines the float32 conversion (the zoo cache's key); None under --force."""
    if ctx.force:
        return None
    v = ctx.variant
    return {"arch": v.arch.model_dump(mode="json"), "weights": v.weights.sha256, "graph": graph,
            "io": [[s.name, list(s.shape)] for s in v.io.inputs + v.io.outputs], "zoo": zoo_version, "code": _model_code_digest()}


class TfliteExporter(Exporter):
    name = "tflite"
    revision = 2  # 2: litert-torch + ai-edge-quantizer (1: onnx2tf + tf.lite.TFLiteConverter)

    def versions(self) -> dict[str, str]:
        return {dist: package_version(dist, self.extra) for dist in ("torch", *CONVERTER_PACKAGES)}

    def options(self, precision: str, catalog) -> dict:
        return {"precision": precision, "converter": "litert-torch", "fold_batchnorm": True}

    def convert(self, ctx: BuildContext) -> ConvertResult:
        """The full model of ``ctx.variant`` at ``ctx.precision`` into one ``.tflite`` file."""
        variant = ctx.variant
        module = fold_batchnorm(load_model(variant))
        args = tuple(torch.zeros(s.shape) for s in variant.io.inputs)
        return self._convert(ctx, module, args, "full")

    def convert_graph(self, ctx: BuildContext, probes: list[dict] | None = None) -> ConvertResult:
        """One graph of a split artifact (``ctx.graph_module``): converted like a full model; the
        track graph's cache tensors keep their NLC layout (litert-torch keeps PyTorch's)."""
        if ctx.graph_module is None:
            raise ConversionError("a split TFLite graph converts from its PyTorch module (no graph_module given)")
        module, args = ctx.graph_module
        result = self._convert(ctx, module, args, ctx.build_dir.name)

        def graph(b: TensorBinding) -> GraphBinding:
            return GraphBinding(name=b.name, runtime_name=b.runtime_name, shape=b.shape, dtype=b.dtype,
                                layout=b.layout, perm=list(range(len(b.shape))))

        result.inputs = [graph(b) for b in result.inputs]
        result.outputs = [graph(b) for b in result.outputs]
        return result

    def _convert(self, ctx: BuildContext, module: torch.nn.Module, args: tuple, graph: str) -> ConvertResult:
        tflite_convert, tflite_quant = _backend()
        io = ctx.variant.io
        in_names, out_names = [s.name for s in io.inputs], [s.name for s in io.outputs]
        example = dict(zip(in_names, args, strict=True))
        target_name = tflite_convert.MODEL_FILES[ctx.precision]
        target = ctx.build_dir / target_name
        float_path = target if ctx.precision == "fp32" else ctx.build_dir / "work" / "model_float32.tflite"
        notes = ["TFLite tensors are bound by signature name, never by index; layouts are PyTorch's (litert-torch keeps them)"]
        flags = [f"litert_torch.convert(NamedIO(fold_batchnorm(model){'' if graph == 'full' else '.' + graph}), sample_kwargs={in_names})"]
        try:
            reused = tflite_convert.convert_module(module, example, out_names, float_path, ctx.log_path, _identity(ctx, graph))
            if reused:
                ctx.cached_steps.append(f"litert-torch conversion{'' if graph == 'full' else f' ({graph})'}")
            if ctx.precision == "fp16":
                tflite_convert.cast_weights_fp16(float_path, target, ctx.log_path)
                flags.append("ai_edge_quantizer: add_weight_only_config('.*', ALL_SUPPORTED, num_bits=16, FLOAT_CASTING)")
                notes.append("fp16: weights stored as float16 (DEQUANTIZE on constants, unpacked once by XNNPACK at load)")
            elif ctx.quantization is not None:
                q = ctx.quantization
                recipe = q.recipe.model_dump()
                passed = tflite_quant.quantize(float_path, target, recipe, q.pairs, ctx.log_path, ctx.precision)
                flags += [f"ai_edge_quantizer: {call}" for call in tflite_quant.recipe_calls(recipe)]
                how = (f"static int8 calibrated on {len(q.pairs)} pairs, float I/O, kept in float: {', '.join(q.recipe.keep_float) or 'nothing'}"
                       + (f", and {passed} {'/'.join(q.recipe.float_passthrough)} ops fed only by float ops" if passed else "")
                       if q.recipe.method == "static" else "dynamic-range int8 (int8 weights, activations quantized at run time)")
                if q.recipe.min_weight_elements:
                    how += f"; weights under {q.recipe.min_weight_elements} elements kept float"
                notes.append(f"ai-edge-quantizer: {how}")
            if ctx.quantization is None:  # tflite_quant.quantize checked its own file
                tflite_convert.check_builtin_only(target, ctx.precision)
            shapes = {s.name: s.shape for s in io.inputs + io.outputs}
            bindings = tflite_convert.bind_signature(target, in_names, out_names, shapes)
        except tflite_convert.TfliteConversionError as exc:
            raise ConversionError(f"TFLite{f' ({graph})' if graph != 'full' else ''}: {exc}") from None
        finally:
            shutil.rmtree(ctx.build_dir / "work", ignore_errors=True)
        converter = Converter(name="litert-torch" if ctx.quantization is None else "litert-torch+ai-edge-quantizer",
                              version=package_version("litert-torch", self.extra), flags=flags)
        specs = {s.name: s for s in io.inputs + io.outputs}

        def binding(name: str) -> TensorBinding:
            b, spec = bindings[name], specs[name]
            return TensorBinding(name=name, runtime_name=b.signature_name, shape=b.shape, dtype=b.dtype, layout=spec.layout)

        return ConvertResult(files=[target_name], inputs=[binding(n) for n in in_names], outputs=[binding(n) for n in out_names],
                             converter=converter, notes=notes)

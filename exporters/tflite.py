"""TFLite: a thin adapter over :mod:`exporters.tflite_convert` (onnx2tf, offline, builtin ops only).

``convert_onnx_to_tflite`` does the conversion (float32 or float16 weights) and reports the
signature bindings; this module turns its result into the exporter contract: the ``.tflite``
file in the build directory, NHWC bindings (catalog name -> signature key) and the converter's
flags and version. Verification then runs the artifact through ai-edge-litert's interpreter
(:class:`compare.runners.tflite.TfliteRunner`), which refuses Flex ops.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from exporters.base import BuildContext, ConversionError, ConvertResult, Exporter, package_version
from zoo.backends import by_format
from zoo.layouts import NCHW, NHWC, PERMS
from zoo.manifest import Converter, GraphBinding, TensorBinding
from zoo.requirements import MissingPackage
from zoo.sample_inputs import sample_pairs

MODEL_FILES = {"fp32": "model_float32.tflite", "fp16": "model_float16.tflite", "int8": "model_int8.tflite",
               "int8-dynamic": "model_int8_dynamic.tflite"}


def _backend():
    try:
        from exporters import tflite_convert
    except ImportError as exc:
        if exc.name and exc.name.split(".")[0] in ("onnx2tf", "tensorflow", "tf_keras", "ai_edge_litert", "onnx", "onnx_graphsurgeon"):
            raise MissingPackage(f"the TFLite converter is not installed ({exc.name}): pip install 'zoo[tflite]'") from None
        raise
    return tflite_convert


def _quant_backend():
    """:mod:`exporters.tflite_quant` (imports the converter: missing packages as in :func:`_backend`)."""
    _backend()
    from exporters import tflite_quant

    return tflite_quant


def convert_graph(ctx: BuildContext, work: Path, what: str = "", keep_shape: tuple[str, ...] = ()) -> tuple[object, str]:
    """onnx2tf of ``ctx.onnx_path`` (a graph with ``ctx.variant.io``'s inputs and outputs) in ``work``:
    the ``.tflite`` for ``ctx.precision`` moved into ``ctx.build_dir`` (``work`` removed); returns the
    converter's result (bindings, flags, self-check) and the file's name. ``what`` names the graph in
    errors; inputs in ``keep_shape`` keep their ONNX layout (onnx2tf ``-kat``)."""
    backend = _backend()
    io = ctx.variant.io
    try:
        result = backend.convert_onnx_to_tflite(
            onnx_path=ctx.onnx_path, out_dir=work, precision=ctx.precision, log_path=ctx.log_path,
            input_names=[s.name for s in io.inputs], output_names=[s.name for s in io.outputs], keep_shape=keep_shape,
            use_cache=not ctx.force,
        )
    except backend.TfliteConversionError as exc:
        raise ConversionError(f"onnx2tf{f' ({what})' if what else ''}: {exc}") from None
    if result.reused:
        ctx.cached_steps.append(f"onnx2tf run{f' ({what})' if what else ''}")
    target = MODEL_FILES[ctx.precision]
    shutil.move(str(result.tflite_path), ctx.build_dir / target)
    shutil.rmtree(work, ignore_errors=True)
    return result, target


def convert_quantized_graph(ctx: BuildContext, work: Path, probes: list[dict], keep_shape: tuple[str, ...] = ()) -> tuple[dict, str, list[str], Converter]:
    """int8 / int8-dynamic of ``ctx.onnx_path`` with ``ctx.quantization`` (:mod:`exporters.tflite_quant`):
    the model moved into ``ctx.build_dir`` (``work`` removed); returns ``(bindings, file name, notes,
    converter)``. ``probes`` are graph inputs on which the outputs are bound by identity."""
    tflite_quant = _quant_backend()
    io, q = ctx.variant.io, ctx.quantization
    try:
        path, bindings, errors, flags = tflite_quant.convert_quantized(
            ctx.onnx_path, work, ctx.precision, q.recipe.model_dump(), q.pairs, probes, ctx.log_path,
            [s.name for s in io.inputs], [s.name for s in io.outputs], MODEL_FILES[ctx.precision],
            use_cache=not ctx.force, keep_shape=keep_shape)
    except _backend().TfliteConversionError as exc:
        raise ConversionError(f"TFLite {ctx.precision}: {exc}") from None
    target = MODEL_FILES[ctx.precision]
    shutil.move(str(path), ctx.build_dir / target)
    shutil.rmtree(work, ignore_errors=True)
    how = (f"representative dataset of {len(q.pairs)} calibration pairs, builtin int8 ops, float I/O, deny-listed in float: "
           f"{', '.join(q.recipe.keep_float)}") if q.recipe.method == "static" else "dynamic-range quantization"
    notes = [f"onnx2tf saved model -> tf.lite.TFLiteConverter ({how})",
             f"outputs bound by verified identity vs ONNX Runtime on {len(probes)} probe pairs (relative error "
             + ", ".join(f"{k} {v:.2g}" for k, v in errors.items()) + "), not by shape"]
    converter = Converter(name="onnx2tf+tf.lite.TFLiteConverter", version=package_version("tensorflow", by_format("tflite").extra),
                          flags=[*flags, f"TFLiteConverter.from_saved_model(out, recipe={q.recipe.model_dump()})"])
    return bindings, target, notes, converter


class TfliteExporter(Exporter):
    name = "tflite"
    binds_by_probe = True  # quantized outputs of equal shape are told apart on probe inputs

    def versions(self) -> dict[str, str]:
        return {dist: package_version(dist, self.extra) for dist in ("onnx2tf", "tensorflow", "ai-edge-litert")}

    def convert(self, ctx: BuildContext) -> ConvertResult:
        """Convert ``ctx.onnx_path`` in a scratch directory and keep the one ``.tflite`` file."""
        variant = ctx.variant
        work = ctx.build_dir / "work"
        work.mkdir()
        if ctx.quantization is not None:
            return self._convert_quantized(ctx, work)
        result, target = convert_graph(ctx, work)
        notes = ["TFLite tensors are bound by signature name, never by index; layout as recorded (onnx2tf: NHWC)"]
        diffs = ", ".join(f"{k} {v:.2g}" for k, v in result.max_abs_diff.items())
        notes.append(f"converter self-check vs ONNX Runtime (synthetic images): max abs diff {diffs}")
        if result.reused:
            notes.append("onnx2tf run reused from the zoo cache (same ONNX bytes, flags and versions)")
        return ConvertResult(
            files=[target],
            inputs=[self._binding(spec, result.bindings) for spec in variant.io.inputs],
            outputs=[self._binding(spec, result.bindings) for spec in variant.io.outputs],
            converter=Converter(name="onnx2tf", version=result.version, flags=["onnx2tf", *result.flags]),
            notes=notes,
        )

    def _convert_quantized(self, ctx: BuildContext, work) -> ConvertResult:
        """int8 / int8-dynamic: :mod:`exporters.tflite_quant` with the catalog's recipe."""
        variant = ctx.variant
        bindings, target, notes, converter = convert_quantized_graph(ctx, work, sample_pairs(variant, 4))
        return ConvertResult(
            files=[target],
            inputs=[self._binding(spec, bindings) for spec in variant.io.inputs],
            outputs=[self._binding(spec, bindings) for spec in variant.io.outputs],
            converter=converter,
            notes=notes,
        )

    def convert_graph(self, ctx: BuildContext, probes: list[dict] | None = None) -> ConvertResult:
        """onnx2tf of one split graph, bound through its own perms.

        Token-major inputs (the track graph's cache, layout NLC) keep their ONNX layout (onnx2tf
        ``-kat``): left to itself, onnx2tf reads a 3-D input as NCW and moves it channels-last, which
        costs a transpose of every cache tensor back to tokens-first on every frame (fgaf3: 12
        TRANSPOSE ops per frame)."""
        work = ctx.build_dir / "work"
        work.mkdir()
        io_spec = ctx.variant.io
        keep = tuple(s.name for s in io_spec.inputs if s.layout != "NCHW")
        if ctx.quantization is not None:  # int8 / int8-dynamic: calibrated on the graph's own feeds
            bindings, target, notes, converter = convert_quantized_graph(ctx, work, probes, keep_shape=keep)
        else:
            result, target = convert_graph(ctx, work, ctx.build_dir.name, keep_shape=keep)
            bindings = result.bindings
            converter = Converter(name="onnx2tf", version=result.version, flags=["onnx2tf", *result.flags])
            notes = ["onnx2tf self-check vs ONNX Runtime: " + ", ".join(f"{k} {v:.2g}" for k, v in result.max_abs_diff.items())]

        def bind(spec) -> GraphBinding:
            b = bindings[spec.name]
            perm = list(b.perm)
            layout = spec.layout if perm == list(range(len(perm))) else "".join(spec.layout[i] for i in perm)
            return GraphBinding(name=spec.name, runtime_name=b.signature_name, shape=list(b.shape), dtype=b.dtype, layout=layout, perm=perm)

        return ConvertResult(files=[target], inputs=[bind(s) for s in io_spec.inputs], outputs=[bind(s) for s in io_spec.outputs],
                             converter=converter, notes=notes)

    @staticmethod
    def _binding(spec, bindings) -> TensorBinding:
        b = bindings.get(spec.name)
        if b is None:
            raise ConversionError(f"the TFLite converter reported no binding for {spec.name!r}")
        if b.layout not in (NCHW, NHWC) or PERMS[b.layout] != tuple(b.perm):
            raise ConversionError(f"{spec.name!r}: unsupported TFLite layout {b.layout} (perm {b.perm})")
        return TensorBinding(name=spec.name, runtime_name=b.signature_name, shape=list(b.shape), dtype=b.dtype, layout=b.layout)

"""ExecuTorch int8: pt2e static quantization of the PyTorch model with ``XNNPACKQuantizer``.

``torch.export.export(...).module()`` -> ``torchao.quantization.pt2e.prepare_pt2e`` with
``XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=...))`` -> one
forward per calibration pair (the catalog's pairs, :class:`exporters.base.Quantization`; a split
graph's own feeds) -> ``convert_pt2e``; the quantized module is then lowered like the float ones
(:func:`exporters.executorch.lower`), XNNPACK taking the quantize/dequantize patterns as int8 kernels.

The recipe is data (``quantization.recipes.executorch.int8`` in zoo.yaml): int8 activations and
weights (symmetric, per channel when ``per_channel``), MinMax activation ranges
(``calibration_method: minmax``, :func:`minmax_activations`); ``keep_float`` names
``torch.nn`` module classes left in float (``set_module_type(cls, None)``). XNNPACKQuantizer
annotates convolutions, linears, add, mul, cat and pooling only: the attention products, softmax
and LayerNorm stay float whatever ``keep_float`` says.
"""
from __future__ import annotations

import dataclasses
import functools
import io
import traceback
import warnings

import numpy as np
import torch

from exporters.base import BuildContext, ConversionError, append_log
from zoo.native import captured_output, native_quiet
from zoo.requirements import require


def minmax_activations(config):
    """``config`` with its activation observers MinMax (eps 2**-12, as the quantizer's own): the
    recipe's ``calibration_method``. The quantizer's default HistogramObserver took 1.9 s per fgaf3
    calibration pair on this project's 2-core machine (two minutes for the catalog's 64), MinMax 0.05 s."""
    observer = require("torchao.quantization.pt2e.observer", "executorch", "torchao's pt2e observers")
    minmax = observer.MinMaxObserver.with_args(eps=2**-12)
    act = lambda spec: None if spec is None else dataclasses.replace(spec, observer_or_fake_quant_ctr=minmax)  # noqa: E731
    return dataclasses.replace(config, input_activation=act(config.input_activation), output_activation=act(config.output_activation))


def quantizer_for(recipe):
    """The ``XNNPACKQuantizer`` a recipe describes (a ConversionError for one it cannot express)."""
    with native_quiet():  # torchao reports its missing CUDA kernels on stderr when imported
        xq = require("executorch.backends.xnnpack.quantizer.xnnpack_quantizer", "executorch", "ExecuTorch's XNNPACK quantizer")
    if recipe.method != "static" or recipe.activations != "int8" or recipe.weights != "int8":
        raise ConversionError(f"ExecuTorch int8 takes a static int8/int8 recipe, got {recipe.method} "
                              f"{recipe.activations}/{recipe.weights}")
    config = xq.get_symmetric_quantization_config(is_per_channel=recipe.per_channel)
    if recipe.calibration_method == "minmax":  # the quantizer's default is HistogramObserver (see minmax_activations)
        config = minmax_activations(config)
    quantizer = xq.XNNPACKQuantizer().set_global(config)
    for kind in recipe.keep_float:
        cls = getattr(torch.nn, kind, None)
        if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
            raise ConversionError(f"keep_float {kind!r} of the executorch recipe is not a torch.nn module class")
        quantizer.set_module_type(cls, None)
    return quantizer


def untie_shared_weights(gm: torch.fx.GraphModule) -> int:
    """Give every user of a shared parameter (the backbone run on template and search) a copy of its
    own, in place; returns how many copies were made. XNNPACKQuantizer annotates a weight once: the
    second convolution of a shared weight stayed float beside an int8 one, and XNNPACK refused the
    program at load (``Failed to create convolution node ... xnn_status_invalid_parameter``)."""
    copies = 0
    for node in list(gm.graph.nodes):
        if node.op != "get_attr" or len(node.users) < 2:
            continue
        value = functools.reduce(getattr, node.target.split("."), gm)
        if not isinstance(value, torch.Tensor):
            continue
        for k, user in enumerate(list(node.users)[1:], start=1):
            name = f"{node.target.replace('.', '_')}_untied_{k}"
            gm.register_parameter(name, torch.nn.Parameter(value.detach().clone(), requires_grad=False))
            with gm.graph.inserting_before(user):
                twin = gm.graph.get_attr(name)
            twin.meta = dict(node.meta)  # the quantizer reads the weight's shape from meta["val"]
            user.replace_input_with(node, twin)
            copies += 1
    gm.graph.lint()
    gm.recompile()
    return copies


def quantize(module: torch.nn.Module, args: tuple, ctx: BuildContext) -> tuple[torch.nn.Module, list[str], str]:
    """``module`` quantized with the recipe of ``ctx.quantization`` and calibrated on its pairs:
    (the converted module, the converter flags, a note for the manifest)."""
    with native_quiet():
        pt2e = require("torchao.quantization.pt2e.quantize_pt2e", "executorch", "torchao's pt2e quantization")
    q = ctx.quantization
    if q is None or not q.pairs:
        raise ConversionError("ExecuTorch int8 needs a static recipe with calibration pairs")
    recipe = q.recipe
    quantizer = quantizer_for(recipe)
    names = [s.name for s in ctx.variant.io.inputs]
    buf = io.StringIO()
    with captured_output(buf), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            captured = torch.export.export(module.eval(), tuple(args), strict=False).module()
            untied = untie_shared_weights(captured)
            prepared = pt2e.prepare_pt2e(captured, quantizer)
            with torch.no_grad():
                for pair in q.pairs:
                    prepared(*(torch.from_numpy(np.ascontiguousarray(pair[n], dtype=np.float32)) for n in names))
            converted = pt2e.convert_pt2e(prepared)
        except Exception as exc:  # noqa: BLE001 - pt2e raises anything
            append_log(ctx.log_path, buf.getvalue() + traceback.format_exc())
            raise ConversionError(f"pt2e quantization failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    quantized = sum(1 for n in converted.graph.nodes if "quantize_per" in str(n.target))
    append_log(ctx.log_path, buf.getvalue() + f"pt2e: {untied} shared weights untied, {len(q.pairs)} calibration pairs, "
               f"{quantized} quantize/dequantize nodes")
    if quantized == 0:
        raise ConversionError("convert_pt2e produced no quantize node: the model is not quantized")
    flags = [f"torchao.quantization.pt2e.prepare_pt2e(torch.export.export(model).module(), XNNPACKQuantizer().set_global("
             f"get_symmetric_quantization_config(is_per_channel={recipe.per_channel}), activation observer "
             f"{'MinMaxObserver' if recipe.calibration_method == 'minmax' else 'HistogramObserver'}){''.join(f'.set_module_type({k}, None)' for k in recipe.keep_float)}), "
             f"<{len(q.pairs)} calibration pairs>, convert_pt2e"]
    note = (f"int8 pt2e (XNNPACKQuantizer, symmetric, per-channel={recipe.per_channel}) for {recipe.hardware}; "
            f"{untied} shared weights untied, {quantized} quantize/dequantize nodes; float: attention products, softmax, LayerNorm"
            + (f", {', '.join(recipe.keep_float)}" if recipe.keep_float else ""))
    return converted, flags, note

"""ExecuTorch (XNNPACK): ``torch.export`` of the BatchNorm-folded model, lowered into a ``.pte``.

``torch.export.export`` -> ``executorch.exir.to_edge_transform_and_lower(...,
partitioner=[XnnpackPartitioner()])`` -> ``to_executorch()``: one method, ``forward``, whose
delegated parts run in XNNPACK and the rest in ExecuTorch's portable kernels. Converts from
PyTorch (no ONNX in between), like :mod:`exporters.onnx`.

- **fp32**: the folded model as it is.
- **fp16**: a ``.half()`` copy behind float32 I/O casts (XNNPACK takes fp16 subgraphs; the program
  keeps float32 inputs and outputs, so the bindings are fp32's). The module kinds in
  :data:`FP16_KEEP_FLOAT` compute in float32 inside the fp16 model: with LayerNorm in fp16 the
  program's outputs were off by up to 13.3 (fgaf3, ``offset``) although the same graph in PyTorch
  was within 0.0014 -- ExecuTorch 1.4.1's portable fp16 ``native_layer_norm`` (XNNPACK does not take
  LayerNorm) is the op that departs; with it in float32 the program is within 0.0015.
- **int8**: pt2e static quantization with ``XNNPACKQuantizer`` (:mod:`exporters.executorch_int8`),
  the catalog's recipe ``quantization.recipes.executorch.int8`` and its calibration pairs.

Inputs and outputs of an ExecuTorch method are positional: a binding's ``runtime_name`` is
``<method>:input:<i>`` / ``<method>:output:<i>`` (:func:`runtime_name`), the runner resolves each by
that name, never by the manifest's order. A split artifact's graphs are one ``.pte`` each (see
:meth:`ExecutorchExporter.convert_graph`).
"""
from __future__ import annotations

import contextlib
import copy
import io
import time
import traceback
import warnings
from pathlib import Path

import torch

from exporters import executorch_int8
from exporters.base import TORCH_TRACE_LOCK, BuildContext, ConversionError, ConvertResult, Exporter, append_log, nchw_bindings, package_version
from zoo.catalog import Catalog
from zoo.manifest import Converter
from zoo.models.fold import fold_batchnorm
from zoo.native import captured_output, native_quiet
from zoo.requirements import require
from zoo.schema import IOSpec
from zoo.weights import load_model

MODEL_FILE = "model.pte"
METHOD = "forward"
PARTITIONER = "XnnpackPartitioner()"
#: module kinds an fp16 program computes in float32 (see the module docstring for the measurement)
FP16_KEEP_FLOAT: tuple[str, ...] = ("LayerNorm",)


def runtime_name(kind: str, index: int, method: str = METHOD) -> str:
    """The runtime name of a method's ``index``-th input or output (``kind``: input | output); the
    runner resolves it back to the position (:func:`compare.runners.executorch.position`)."""
    return f"{method}:{kind}:{index}"


class _Float32IO(torch.nn.Module):
    """A half-precision module behind float32 inputs and outputs."""

    def __init__(self, module: torch.nn.Module):
        super().__init__()
        self.module = module

    def forward(self, *args):
        outs = self.module(*(a.half() for a in args))
        return tuple(o.float() for o in outs)


class _ContiguousOutputs(torch.nn.Module):
    """``module`` with every output made contiguous: base-c128's init graph returns the template tokens
    as a permuted view (channels-last permute + reshape), whose dim order ([2, 0, 1]) the program
    would otherwise carry on to the track graph's example cache (see :func:`lower`)."""

    def __init__(self, module: torch.nn.Module):
        super().__init__()
        self.module = module

    def forward(self, *args):
        outs = self.module(*args)
        return tuple(o.contiguous() for o in (outs if isinstance(outs, (tuple, list)) else (outs,)))


class _InFloat32(torch.nn.Module):
    """A module computed in float32 inside a half-precision model."""

    def __init__(self, module: torch.nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x):
        return self.module(x.float()).to(x.dtype)


def half_model(module: torch.nn.Module, keep_float: tuple[str, ...] = FP16_KEEP_FLOAT) -> torch.nn.Module:
    """A float16 copy of ``module`` with float32 I/O; submodules whose class is named in ``keep_float``
    keep float32 weights and arithmetic."""
    model = copy.deepcopy(module)
    kept = []

    def wrap(parent: torch.nn.Module) -> None:
        for name, child in parent.named_children():
            if type(child).__name__ in keep_float:
                wrapped = _InFloat32(child)
                setattr(parent, name, wrapped)
                kept.append(wrapped)
            else:
                wrap(child)

    wrap(model)
    model = model.half()
    for w in kept:
        w.module.float()
    return _Float32IO(model).eval()


def batched_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``aten.matmul`` of two tensors with the same batch dims as one ``bmm`` over the flattened batch.

    PyTorch's own decomposition broadcasts both operands with ``expand`` first, even when nothing
    broadcasts; XNNPACK does not take ``expand_copy``, so each attention product left 4 portable
    copies of its operands (24 in fgaf3) that split the delegated graph (19 XNNPACK subgraphs, 13
    without them) and made the fp32 program 1.2x slower (median of 6 interleaved blocks, Intel Xeon)."""
    if a.dim() == b.dim() >= 3 and a.shape[:-2] == b.shape[:-2]:
        out = torch.ops.aten.bmm.default(a.reshape(-1, *a.shape[-2:]), b.reshape(-1, *b.shape[-2:]))
        return out.reshape(*a.shape[:-2], *out.shape[-2:])
    return torch.ops.aten.matmul.default.decompose(a, b)


#: decompositions applied to the exported program before lowering (see :func:`batched_matmul`)
DECOMPOSITIONS = {torch.ops.aten.matmul.default: batched_matmul}


@contextlib.contextmanager
def shared_provenance():
    """Within the block, a copied FX node's provenance shares its ``NodeSource`` records instead of
    deep-copying them.

    Every pass that re-creates a node deep-copies the node's whole ``from_node`` history
    (``torch.fx.traceback.NodeSource.__init__``), a tree that grows with each of the ~20 passes per
    XNNPACK subgraph: 1.2-1.5 s of an 8-10 s lowering of fgaf3 (measured on the 2-CPU Xeon VM, warm).
    The records are never changed once made (only the lists holding them are, and those are still
    copied), so sharing them keeps the same provenance. Taken under :data:`TORCH_TRACE_LOCK`."""
    from torch.fx.traceback import NodeSource

    before = NodeSource.__dict__.get("__deepcopy__")
    NodeSource.__deepcopy__ = lambda self, memo: self
    try:
        yield
    finally:
        if before is None:
            del NodeSource.__deepcopy__
        else:
            NodeSource.__deepcopy__ = before


def imports():
    """``executorch.exir``, its XNNPACK partitioner module and ``executorch.devtools.backend_debug``
    (torchao, which they import, reports its missing CUDA kernels on stderr: call it in a capture)."""
    with native_quiet():
        return (require("executorch.exir", "executorch", "ExecuTorch"),
                require("executorch.backends.xnnpack.partition.xnnpack_partitioner", "executorch", "ExecuTorch's XNNPACK backend"),
                require("executorch.devtools.backend_debug", "executorch", "ExecuTorch's devtools"))


def lower(module: torch.nn.Module, args: tuple, log_path: Path) -> tuple[bytes, dict]:
    """``torch.export`` + ``to_edge_transform_and_lower`` (XNNPACK) + ``to_executorch`` of ``module``:
    the program's bytes and what was delegated (subgraphs, delegated / portable node counts, seconds)."""
    buf = io.StringIO()
    with TORCH_TRACE_LOCK, captured_output(buf), warnings.catch_warnings(), shared_provenance():
        warnings.simplefilter("ignore")
        exir, xnnpack, debug = imports()
        t0 = time.perf_counter()
        try:
            with torch.no_grad():
                program = torch.export.export(module, tuple(args), strict=False).run_decompositions(DECOMPOSITIONS)
            t1 = time.perf_counter()
            edge = exir.to_edge_transform_and_lower(program, partitioner=[xnnpack.XnnpackPartitioner()])
            info = debug.get_delegation_info(edge.exported_program().graph_module)
            data = edge.to_executorch().buffer
        except Exception as exc:  # noqa: BLE001 - torch.export and the exir passes raise anything
            append_log(log_path, buf.getvalue() + traceback.format_exc())
            raise ConversionError(f"ExecuTorch lowering failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
        t2 = time.perf_counter()
    facts = {"delegated_subgraphs": info.num_delegated_subgraphs, "delegated_nodes": info.num_delegated_nodes,
             "portable_nodes": info.num_non_delegated_nodes, "export_s": round(t1 - t0, 2), "lower_s": round(t2 - t1, 2)}
    append_log(log_path, buf.getvalue() + f"torch.export + to_edge_transform_and_lower({PARTITIONER}): {facts}\n"
               + info.get_summary())
    return bytes(data), facts


class ExecutorchExporter(Exporter):
    name = "executorch"
    revision = 2  # 2: attention products lowered as bmm (DECOMPOSITIONS)

    def versions(self) -> dict[str, str]:
        return {dist: package_version(dist, self.extra) for dist in ("torch", "executorch", "torchao")}

    def options(self, precision: str, catalog: Catalog) -> dict:
        opts = {"precision": precision, "fold_batchnorm": True, "partitioner": PARTITIONER, "method": METHOD,
                "decompositions": {str(op): fn.__name__ for op, fn in DECOMPOSITIONS.items()}}
        if precision == "fp16":
            opts["keep_float"] = list(FP16_KEEP_FLOAT)
        return opts

    def needs_onnx_for(self, precision: str) -> bool:
        """Every precision converts from PyTorch (int8 calibrates the PyTorch model)."""
        return False

    def convert(self, ctx: BuildContext) -> ConvertResult:
        """``model.pte`` of the folded catalog model at ``ctx.precision``."""
        model = fold_batchnorm(load_model(ctx.variant)).eval()
        args = tuple(torch.zeros(spec.shape) for spec in ctx.variant.io.inputs)
        return self._convert(ctx, model, args, "fold_batchnorm(model)")

    def convert_graph(self, ctx: BuildContext, probes: list[dict] | None = None) -> ConvertResult:
        """One graph of a split artifact (``ctx.graph_module``) as a ``.pte`` of its own with one method.

        Both graphs as two methods of one program (``to_edge_transform_and_lower({"init": ...,
        "track": ...})``) would be one file shared by both graphs, but the split layout
        (:mod:`exporters.split`, :class:`zoo.manifest.SplitGraphs`) gives each graph its own files,
        converted side by side, and a manifest lists each file once: so one ``forward`` per file."""
        if ctx.graph_module is None:
            return self.convert(ctx)
        module, args = ctx.graph_module
        return self._convert(ctx, module, args, f"split_model(fold_batchnorm(model)).{ctx.build_dir.name}")

    def _convert(self, ctx: BuildContext, module: torch.nn.Module, args: tuple, what: str) -> ConvertResult:
        io_spec: IOSpec = ctx.variant.io
        notes, flags = [], []
        if ctx.precision == "int8":
            module, quant_flags, note = executorch_int8.quantize(module, args, ctx)
            flags += quant_flags
            notes.append(note)
        elif ctx.precision == "fp16":
            module = half_model(module)
            flags.append(f"half_model({what}, keep_float={list(FP16_KEEP_FLOAT)}): float16 weights and arithmetic, float32 I/O")
        elif ctx.precision != "fp32":
            raise ConversionError(f"ExecuTorch offers {', '.join(self.precisions)}, not {ctx.precision}")
        # contiguous example inputs too: torch.export records their strides as the program's dim order
        # (a permuted cache: fp32 execute() fails with 0x10, fp16 lowering cannot map dim_order [2, 0, 1])
        data, facts = lower(_ContiguousOutputs(module), tuple(a.contiguous() for a in args), ctx.log_path)
        (ctx.build_dir / MODEL_FILE).write_bytes(data)
        flags.append(f"torch.export.export({what if ctx.precision == 'fp32' else 'model'}, strict=False) -> "
                     f"executorch.exir.to_edge_transform_and_lower(partitioner=[{PARTITIONER}]).to_executorch()")
        notes.append(f"XNNPACK: {facts['delegated_subgraphs']} delegated subgraphs, {facts['delegated_nodes']} nodes delegated, "
                     f"{facts['portable_nodes']} in portable kernels")
        inputs = nchw_bindings(io_spec.inputs, [runtime_name("input", i) for i in range(len(io_spec.inputs))])
        outputs = nchw_bindings(io_spec.outputs, [runtime_name("output", i) for i in range(len(io_spec.outputs))])
        return ConvertResult(files=[MODEL_FILE], inputs=inputs, outputs=outputs, notes=notes,
                             converter=Converter(name="executorch", version=package_version("executorch", self.extra), flags=flags))

"""Split export: one artifact directory holding an ``init`` graph and a ``track`` graph.

ONNX: :func:`zoo.models.split.split_model` halves of the BatchNorm-folded model, each exported
like the full model (``torch.onnx.export`` opset 17 + onnxsim/onnxslim + ``onnx.checker``) into
``init/model.onnx`` and ``track/model.onnx``. Every other format converts each of those ONNX
graphs with its own exporter, unchanged, into ``init/`` and ``track/`` (the exporter sees a
variant whose I/O is the graph's). The bindings of both graphs and the cache tensors go into
the manifest's ``graphs`` section; the manifest's top-level ``inputs``/``outputs`` stay the
catalog's (template from ``init``, search and the three maps from ``track``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import warnings

import numpy as np
import torch

from exporters.base import BuildContext, ConversionError, ConvertResult, Exporter, package_version, require
from exporters.onnx import _TORCH_EXPORT, OPSET, _log, _simplify
from exporters.tflite import convert_graph as convert_tflite_graph
from exporters.tflite import convert_quantized_graph
from zoo.artifacts import CacheEntry, Converter, GraphBinding, GraphSpec, SplitGraphs, TensorBinding
from zoo.layouts import PERMS
from zoo.models.fold import fold_batchnorm
from zoo.models.fusion import BLOCK_DESIGNS
from zoo.models.split import cache_kind, cache_tensors, split_model
from zoo.sample_inputs import role_inputs, sample_pairs
from zoo.schema import IOSpec, TensorSpec, Variant
from zoo.weights import load_model

#: bump when what a split artifact holds changes (part of the build key of split targets)
SPLIT_REVISION = 2  # 2: TFLite track graphs keep the cache tokens-first (-kat)
GRAPHS = ("init", "track")
ONNX_FILE = "model.onnx"
#: layout name -> perm (runtime tensor = logical tensor.transpose(perm))


def graph_io(variant: Variant) -> dict[str, IOSpec]:
    """The I/O of the init and track graphs: the catalog's template / search / maps plus the cache."""
    names, specs = role_inputs(variant), {s.name: s for s in variant.io.inputs}
    template, search = specs[names["template"]], specs[names["search"]]
    cache = [TensorSpec(name=c.name, shape=list(c.shape), dtype="float32", layout="NCHW", description=c.description) for c in cache_tensors(variant)]
    return {"init": IOSpec(inputs=[template], outputs=cache), "track": IOSpec(inputs=[search, *cache], outputs=list(variant.io.outputs))}


def graph_variant(variant: Variant, graph: str) -> Variant:
    """``variant`` with the I/O of one graph: what a format's exporter converts."""
    return variant.model_copy(update={"io": graph_io(variant)[graph]})


def build_info(variant: Variant) -> dict:
    """What a split target adds to the build key."""
    return {"revision": SPLIT_REVISION, "cache": [[c.name, list(c.shape)] for c in cache_tensors(variant)]}


def graph_feeds(variant: Variant, pairs: list[dict[str, np.ndarray]]) -> dict[str, list[dict[str, np.ndarray]]]:
    """The init and the track graph's inputs for catalog (template, search) pairs.

    The track graph's cache is what the fp32 init graph (PyTorch, BatchNorm folded, as exported)
    makes of the pair's template: a reduced-precision split is calibrated (and its outputs bound)
    on the caches it will really be fed, not on random tensors.
    """
    names = role_inputs(variant)
    template, search = names["template"], names["search"]
    init, _ = split_model(fold_batchnorm(load_model(variant)), variant)
    cache_names = [c.name for c in cache_tensors(variant)]
    feeds: dict[str, list[dict[str, np.ndarray]]] = {"init": [], "track": []}
    with torch.no_grad():
        for pair in pairs:
            cache = init(torch.from_numpy(np.ascontiguousarray(pair[template], dtype=np.float32)))
            feeds["init"].append({template: pair[template]})
            feeds["track"].append({search: pair[search], **{n: c.numpy() for n, c in zip(cache_names, cache, strict=True)}})
    return feeds


def _logical_layout(shape: list[int]) -> str:
    return "NCHW" if len(shape) == 4 else "NLC"


def _graph_binding(b: TensorBinding, spec: TensorSpec, perm: tuple[int, ...] | None = None) -> GraphBinding:
    """A converter's binding as a graph binding; ``perm`` from its layout unless given."""
    if perm is None:
        if b.layout == "NHWC" and len(spec.shape) == 4:
            perm = PERMS["NHWC"]
        else:
            perm = tuple(range(len(spec.shape)))
    logical = _logical_layout(spec.shape)
    layout = logical if perm == tuple(range(len(perm))) else "".join(logical[i] for i in perm)
    return GraphBinding(name=b.name, runtime_name=b.runtime_name, shape=list(b.shape), dtype=b.dtype, layout=layout, perm=list(perm))


def _export_onnx(module: torch.nn.Module, args: tuple, io_spec: IOSpec, path, log_path) -> str:
    """torch.onnx.export + simplify + check of one graph; returns the simplifier's name."""
    onnx = require("onnx", "onnx")
    in_names = [s.name for s in io_spec.inputs]
    out_names = [s.name for s in io_spec.outputs]
    raw = path.with_name("raw.onnx")
    buf = io.StringIO()
    with _TORCH_EXPORT, contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(module, args, str(raw), input_names=in_names, output_names=out_names, opset_version=OPSET, dynamo=False, do_constant_folding=True)
        except Exception as exc:  # noqa: BLE001
            _log(log_path, buf.getvalue())
            raise ConversionError(f"torch.onnx.export failed: {type(exc).__name__}: {str(exc).splitlines()[0]}") from None
    _log(log_path, f"torch.onnx.export {path.parent.name}\n" + buf.getvalue())
    proto = onnx.load(str(raw))
    raw.unlink()
    proto, simplifier = _simplify(proto, log_path)
    if "BatchNormalization" in {n.op_type for n in proto.graph.node}:
        raise ConversionError("a BatchNormalization node survived folding")
    got_in, got_out = [i.name for i in proto.graph.input], [o.name for o in proto.graph.output]
    if got_in != in_names or got_out != out_names:
        raise ConversionError(f"{path.parent.name} graph I/O {got_in} -> {got_out} differs from {in_names} -> {out_names}")
    proto.producer_name = "zoo"
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, str(path))
    return simplifier


def _convert_onnx(ctx: BuildContext) -> tuple[dict[str, tuple[list[str], list[GraphBinding], list[GraphBinding]]], Converter, list[str]]:
    variant = ctx.variant
    model = fold_batchnorm(load_model(variant))
    init, track = split_model(model, variant)
    ios = graph_io(variant)
    with torch.no_grad():
        template = torch.zeros(ios["init"].inputs[0].shape)
        cache = init(template)
    modules = {"init": (init, (template,)), "track": (track, (torch.zeros(ios["track"].inputs[0].shape), *cache))}
    graphs, simplifiers = {}, []
    for g in GRAPHS:
        (ctx.build_dir / g).mkdir()
        module, args = modules[g]
        simplifiers.append(_export_onnx(module, args, ios[g], ctx.build_dir / g / ONNX_FILE, ctx.log_path))
        bind = [
            _graph_binding(TensorBinding(name=s.name, runtime_name=s.name, shape=list(s.shape), dtype=s.dtype, layout="NCHW"), s)
            for s in ios[g].inputs + ios[g].outputs
        ]
        n_in = len(ios[g].inputs)
        graphs[g] = ([f"{g}/{ONNX_FILE}"], bind[:n_in], bind[n_in:])
    flags = [f"torch.onnx.export(split_model(fold_batchnorm(model)).{g}, opset_version={OPSET}, dynamo=False)" for g in GRAPHS]
    return graphs, Converter(name="torch.onnx", version=package_version("torch", "onnx"), flags=flags + sorted(set(simplifiers))), []


def _convert_tflite(
    exporter: Exporter, ctx: BuildContext, g: str, sub: BuildContext, probes: list[dict] | None = None
) -> tuple[list[str], list[GraphBinding], list[GraphBinding], Converter, list[str]]:
    """onnx2tf of one graph, bound through its own perms.

    The track graph's cache inputs keep their ONNX layout (onnx2tf ``-kat``): left to itself,
    onnx2tf reads a 3-D input as NCW and moves it channels-last, which costs a transpose of every
    cache tensor back to tokens-first on every frame (fgaf3: 12 TRANSPOSE ops per frame).
    """
    work = sub.build_dir / "work"
    work.mkdir()
    io_spec = sub.variant.io
    cache_inputs = {c.name for c in cache_tensors(ctx.variant)}
    keep = tuple(s.name for s in io_spec.inputs if s.name in cache_inputs)
    if sub.quantization is not None:  # int8 / int8-dynamic: calibrated on the graph's own feeds
        bindings, target, graph_notes, converter = convert_quantized_graph(sub, work, probes, keep_shape=keep)
    else:
        result, target = convert_tflite_graph(sub, work, g, keep_shape=keep)
        bindings = result.bindings
        converter = Converter(name="onnx2tf", version=result.version, flags=["onnx2tf", *result.flags])
        diffs = ", ".join(f"{k} {v:.2g}" for k, v in result.max_abs_diff.items())
        graph_notes = [f"onnx2tf self-check vs ONNX Runtime: {diffs}"]

    def bind(spec: TensorSpec) -> GraphBinding:
        b = bindings[spec.name]
        return _graph_binding(
            TensorBinding(name=spec.name, runtime_name=b.signature_name, shape=list(b.shape), dtype=b.dtype, layout="NCHW"), spec, tuple(b.perm)
        )

    return (
        [f"{g}/{target}"],
        [bind(s) for s in io_spec.inputs],
        [bind(s) for s in io_spec.outputs],
        converter,
        [f"{g}: {n}" for n in graph_notes],
    )


def convert_split(exporter: Exporter, ctx: BuildContext) -> ConvertResult:
    """Build both graphs of a split artifact of ``ctx.variant`` in ``exporter``'s format.

    ``ctx.onnx_path`` is the directory of the verified fp32 split ONNX artifact (formats that
    convert from ONNX, ONNX int8 too); the result's ``graphs`` is the manifest's ``graphs`` section.
    A reduced precision quantizes each graph with the catalog's recipe, its calibration pairs
    turned into that graph's feeds (:func:`graph_feeds`).
    """
    variant = ctx.variant
    ios = graph_io(variant)
    notes = [f"split artifact: init (template -> cache) + track (search + cache -> maps); cache = {cache_kind(variant)}"]
    q = ctx.quantization
    feeds = graph_feeds(variant, q.pairs) if q is not None and q.pairs else None
    probes = graph_feeds(variant, sample_pairs(variant, 4)) if q is not None and exporter.name == "tflite" else None
    if exporter.name == "onnx" and ctx.precision == "fp32":
        graphs, converter, more = _convert_onnx(ctx)
    else:
        graphs, converter, more = {}, None, []
        for g in GRAPHS:
            sub_dir = ctx.build_dir / g
            sub_dir.mkdir()
            sub_q = dataclasses.replace(q, pairs=feeds[g] if feeds else []) if q is not None else None
            sub = BuildContext(graph_variant(variant, g), ctx.precision, sub_dir, ctx.log_path, onnx_path=ctx.onnx_path / g / ONNX_FILE,
                               force=ctx.force, quantization=sub_q)
            _log(ctx.log_path, f"--- {g} graph")
            if exporter.name == "tflite":
                files, ins, outs, converter, extra_notes = _convert_tflite(exporter, ctx, g, sub, probes[g] if probes else None)
                more += extra_notes
            else:
                res = exporter.convert(sub)
                specs = {s.name: s for s in ios[g].inputs + ios[g].outputs}
                files = [f"{g}/{f}" for f in res.files]
                ins = [_graph_binding(b, specs[b.name]) for b in res.inputs]
                outs = [_graph_binding(b, specs[b.name]) for b in res.outputs]
                converter = res.converter
                more += [f"{g}: {n}" for n in res.notes]
            graphs[g] = (files, ins, outs)
    init_files, init_in, init_out = graphs["init"]
    track_files, track_in, track_out = graphs["track"]
    cache = [
        CacheEntry(name=c.name, shape=list(c.shape), dtype="float32", layout="NLC", bytes=c.bytes, description=c.description) for c in cache_tensors(variant)
    ]
    section = SplitGraphs(
        attention=BLOCK_DESIGNS[variant.arch.fusion.kind].attention,
        cache_kind=cache_kind(variant),
        cache=cache,
        init=GraphSpec(files=init_files, inputs=init_in, outputs=init_out),
        track=GraphSpec(files=track_files, inputs=track_in, outputs=track_out),
    )
    by_name = {b.name: b for b in init_in + track_in + track_out}
    top_in = [_top_binding(by_name[s.name]) for s in variant.io.inputs]
    top_out = [_top_binding(by_name[s.name]) for s in variant.io.outputs]
    return ConvertResult(files=init_files + track_files, inputs=top_in, outputs=top_out, converter=converter, notes=notes + more, graphs=section)


def _top_binding(b: GraphBinding) -> TensorBinding:
    layout = "NHWC" if b.perm == list(PERMS["NHWC"]) else "NCHW"
    return TensorBinding(name=b.name, runtime_name=b.runtime_name, shape=b.shape, dtype=b.dtype, layout=layout)

"""Split export: one artifact directory holding an ``init`` graph and a ``track`` graph.

Each graph goes through its format's exporter (:meth:`exporters.base.Exporter.convert_graph`, part
of the exporter contract: no format is named here), which sees a variant whose I/O is the graph's:
the fp32 ONNX exporter gets :func:`zoo.models.split.split_model`'s halves of the BatchNorm-folded
model (``init/model.onnx``, ``track/model.onnx``), every other format and precision converts those
verified ONNX graphs into ``init/`` and ``track/``. The bindings of both graphs and the cache tensors go into
the manifest's ``graphs`` section; the manifest's top-level ``inputs``/``outputs`` stay the
catalog's (template from ``init``, search and the three maps from ``track``).
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np
import torch

from exporters.base import BuildContext, ConvertResult, Exporter, append_log
from zoo.io_roles import role_inputs
from zoo.layouts import PERMS
from zoo.manifest import CacheEntry, Converter, GraphBinding, GraphSpec, SplitGraphs, TensorBinding
from zoo.models.fold import fold_batchnorm
from zoo.models.fusion import BLOCK_DESIGNS
from zoo.models.split import cache_kind, cache_tensors, split_model
from zoo.sample_inputs import sample_pairs
from zoo.schema import IOSpec, TensorSpec, Variant
from zoo.weights import load_model

#: bump when what a split artifact holds changes (part of the build key of split targets)
SPLIT_REVISION = 2  # 2: TFLite track graphs keep the cache tokens-first (-kat)
GRAPHS = ("init", "track")
ONNX_FILE = "model.onnx"
#: layout name -> perm (runtime tensor = logical tensor.transpose(perm))


def graph_io(variant: Variant) -> dict[str, IOSpec]:
    """The I/O of the init and track graphs: the catalog's template / search / maps plus the cache
    (token-major: layout NLC)."""
    names, specs = role_inputs(variant), {s.name: s for s in variant.io.inputs}
    template, search = specs[names["template"]], specs[names["search"]]
    cache = [TensorSpec(name=c.name, shape=list(c.shape), dtype="float32", layout="NLC", description=c.description) for c in cache_tensors(variant)]
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


def _graph_binding(b: TensorBinding, spec: TensorSpec) -> GraphBinding:
    """A converter's binding as a graph binding: its own perm when it states one, else from its layout."""
    if isinstance(b, GraphBinding):
        return b
    perm = list(PERMS["NHWC"]) if b.layout == "NHWC" and len(spec.shape) == 4 else list(range(len(spec.shape)))
    layout = spec.layout if b.layout != "NHWC" else "NHWC"
    return GraphBinding(name=b.name, runtime_name=b.runtime_name, shape=list(b.shape), dtype=b.dtype, layout=layout, perm=perm)


def graph_modules(variant: Variant) -> dict[str, tuple[torch.nn.Module, tuple]]:
    """The init and track halves of the BatchNorm-folded model with example inputs (the track
    graph's cache is what init makes of a zero template)."""
    init, track = split_model(fold_batchnorm(load_model(variant)), variant)
    ios = graph_io(variant)
    with torch.no_grad():
        template = torch.zeros(ios["init"].inputs[0].shape)
        cache = init(template)
    return {"init": (init, (template,)), "track": (track, (torch.zeros(ios["track"].inputs[0].shape), *cache))}


def _merged(converters: list[Converter]) -> Converter:
    """One converter record for both graphs: their flags, each once, in order."""
    flags = list(dict.fromkeys(f for c in converters for f in c.flags))
    return converters[-1].model_copy(update={"flags": flags})


def convert_split(exporter: Exporter, ctx: BuildContext) -> ConvertResult:
    """Build both graphs of a split artifact of ``ctx.variant`` with ``exporter``.

    ``ctx.onnx_path`` is the directory of the verified fp32 split ONNX artifact (formats and precisions
    that convert from ONNX); otherwise each graph is handed its PyTorch module. A reduced precision
    quantizes each graph with the catalog's recipe, its calibration pairs turned into that graph's feeds
    (:func:`graph_feeds`). The result's ``graphs`` is the manifest's ``graphs`` section.
    """
    variant = ctx.variant
    ios = graph_io(variant)
    notes = [f"split artifact: init (template -> cache) + track (search + cache -> maps); cache = {cache_kind(variant)}"]
    q = ctx.quantization
    feeds = graph_feeds(variant, q.pairs) if q is not None and q.pairs else None
    probes = graph_feeds(variant, sample_pairs(variant, 4)) if q is not None and exporter.binds_by_probe else None
    modules = None if exporter.needs_onnx_for(ctx.precision) else graph_modules(variant)

    def convert(g: str) -> ConvertResult:
        sub_dir = ctx.build_dir / g
        sub_dir.mkdir()
        sub_q = dataclasses.replace(q, pairs=feeds[g] if feeds else []) if q is not None else None
        sub = BuildContext(graph_variant(variant, g), ctx.precision, sub_dir, ctx.build_dir / f".{g}.log",
                           onnx_path=ctx.onnx_path / g / ONNX_FILE if ctx.onnx_path is not None else None, force=ctx.force,
                           quantization=sub_q, catalog=ctx.catalog, graph_module=modules[g] if modules else None)
        return exporter.convert_graph(sub, probes[g] if probes else None)

    # the two graphs convert side by side (each converter writes its own log, appended in order after)
    with ThreadPoolExecutor(len(GRAPHS)) as pool:
        futures = {g: pool.submit(convert, g) for g in GRAPHS}
        wait(futures.values())
    for g in GRAPHS:
        log = ctx.build_dir / f".{g}.log"
        append_log(ctx.log_path, f"--- {g} graph\n" + (log.read_text(encoding="utf-8", errors="replace") if log.is_file() else ""))
        log.unlink(missing_ok=True)
    graphs, converters = {}, []
    for g in GRAPHS:
        res = futures[g].result()  # a failed graph raises here, after both logs are kept
        specs = {s.name: s for s in ios[g].inputs + ios[g].outputs}
        graphs[g] = ([f"{g}/{f}" for f in res.files], [_graph_binding(b, specs[b.name]) for b in res.inputs],
                     [_graph_binding(b, specs[b.name]) for b in res.outputs])
        converters.append(res.converter)
        notes += [f"{g}: {n}" for n in res.notes]
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
    return ConvertResult(files=init_files + track_files, inputs=top_in, outputs=top_out, converter=_merged(converters), notes=notes, graphs=section)


def _top_binding(b: GraphBinding) -> TensorBinding:
    layout = "NHWC" if b.perm == list(PERMS["NHWC"]) else "NCHW"
    return TensorBinding(name=b.name, runtime_name=b.runtime_name, shape=b.shape, dtype=b.dtype, layout=layout)

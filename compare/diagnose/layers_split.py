"""``zoo compare --layers --split``: each graph of a split artifact against the PyTorch split modules.

A split artifact holds an ``init`` graph (template -> cache) and a ``track`` graph (search + cache
-> score, size, offset), exported from :func:`zoo.models.split.split_model`'s ``InitNet`` and
``TrackNet``, which share the model's submodules: their module paths are the full model's
(``backbone.stages.3``, ``fusion.blocks.1.attn.qkv``, ``head.branches.offset``).

Per input pair and graph:

- PyTorch: forward hooks on ``InitNet`` while it runs the template, then on ``TrackNet`` while it
  runs the search crop with PyTorch's own cache (the reference end to end, as the full graph's).
- The runtime: the init graph's tensors (its tap) and its real outputs (the cache, through the
  split runner's own ``init``, layouts as the track graph takes them); then the track graph's
  tensors with that cache fed in, as the split runner does per frame. A track graph's error
  therefore includes what the runtime's cache carried in.
- Names: the split artifact's fp32 ONNX graphs (``onnx-split``: ``init/model.onnx``,
  ``track/model.onnx``) play the full graph's part (:mod:`compare.diagnose.layer_map`); value-named runtimes
  are calibrated per graph on their fp32 split artifact.

Module calls the split's own code makes outside a module (``InitNet`` runs a fusion block's
qkv/attention/feed-forward as functions, so ``fusion.blocks.k`` itself is never *called*) have no
hook and are not compared; ONNX scopes of those calls that name no module path are listed as
not in the graph.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from compare.diagnose.layer_map import SourceGraph, TensorMap, map_by_values, naming
from compare.diagnose.layers import CALIBRATION_PRECISION, LayerReport, record_calls, report_from_taps
from compare.diagnose.onnx_graph import PartMapper, ScopeResolver
from compare.inputs import Pair
from compare.provision import ensure, runtime_keys
from compare.runners import open_artifact
from zoo.artifacts import ArtifactKey, Status
from zoo.backends import by_runtime
from zoo.catalog import Catalog
from zoo.errors import ZooError
from zoo.io_roles import role_inputs
from zoo.models.fold import fold_batchnorm
from zoo.models.split import split_model
from zoo.schema import Variant
from zoo.weights import load_model

GRAPHS = ("init", "track")


def split_reference(variant: Variant, pairs: list[Pair]) -> dict[str, list[dict]]:
    """``{"init": per pair calls, "track": per pair calls}`` of the PyTorch split modules (BatchNorm
    folded, fp32); the track modules run on PyTorch's own cache."""
    import torch

    names = role_inputs(variant)
    template, search = names["template"], names["search"]
    init, track = split_model(fold_batchnorm(load_model(variant)).eval(), variant)
    caches = []

    def run_init(pair):
        caches.append(init(torch.from_numpy(np.ascontiguousarray(pair[template], np.float32))))

    init_calls = record_calls(init, run_init, pairs)
    track_calls = record_calls(track, lambda item: track(torch.from_numpy(np.ascontiguousarray(item[0][search], np.float32)), *item[1]),
                               list(zip(pairs, caches, strict=True)))
    return {"init": init_calls, "track": track_calls}


def _feed(binding, logical: np.ndarray) -> np.ndarray:
    """A tap's input: 4-D arrays stay NCHW (the tap applies the binding's layout); 3-D cache
    tensors are put in the runtime's layout here (``perm``), which the taps' 4-D rule leaves alone."""
    return np.ascontiguousarray(logical.transpose(binding.perm), np.float32) if logical.ndim == 3 else logical


def split_taps(path: Path, variant: Variant, pairs: list[Pair]) -> tuple:
    """(manifest, {"init": per pair taps, "track": per pair taps}) of the split artifact in ``path``:
    the init graph on each template, the track graph on each search crop with the cache the init
    graph returned in that runtime."""
    runner = open_artifact(path, variant)
    graphs = runner.manifest.graphs
    if graphs is None:
        raise ZooError(f"{path} is not a split artifact (its manifest has no graphs section)")
    try:
        runner.load()
        init_tap, track_tap = runner.init_runner.tensor_tap(), runner.track_runner.tensor_tap()
        out = {"init": [], "track": []}
        for pair in pairs:
            (tb,) = graphs.init.inputs
            out["init"].append(init_tap.run({tb.name: pair[tb.name]}))
            cache = runner.init(pair[tb.name])  # the runtime's real cache, logical layout
            feed = {b.name: _feed(b, cache[b.name] if b.name in cache else pair[b.name]) for b in graphs.track.inputs}
            out["track"].append(track_tap.run(feed))
        return runner.manifest, out
    finally:
        runner.close()


def split_sources(variant: Variant, onnx_dir: Path, pair: Pair, reference: dict[str, list[dict]]) -> dict:
    """Per graph: (:class:`SourceGraph` of the fp32 ``onnx-split`` graph, every tensor's value on ``pair``)."""
    manifest, taps = split_taps(onnx_dir, variant, [pair])
    result = {}
    for g in GRAPHS:
        values = {t.name: t.array for t in taps[g][0]}
        spec = getattr(manifest.graphs, g)
        model = next(f for f in spec.files if f.endswith(".onnx"))
        shapes = {k: tuple(v.shape) for k, v in values.items()}
        graph = SourceGraph(onnx_dir / model, PartMapper.for_variant(variant), shapes, ScopeResolver(list(reference[g][0])))
        graph.values = values
        result[g] = (graph, values)
    return result


def layers_split(catalog: Catalog, variant: Variant, runtimes: list[str], precisions: list[str], pairs: list[Pair], out: Path,
                 atol: float | None = None, rtol: float | None = None, on_export: Callable | None = None,
                 on_progress: Callable[[str, str], None] | None = None) -> list[LayerReport]:
    """One report per runtime x precision x graph of the split artifacts of ``variant`` (exported
    where missing, with the fp32 ``onnx-split`` artifact that names them and the fp32 split
    artifact of each value-named runtime)."""
    progress = on_progress or (lambda stage, text: None)
    reports: list[LayerReport] = []
    wanted = ensure(runtime_keys([variant], runtimes, precisions, split=True), out, catalog, on_event=on_export)
    extra = [r for r in runtimes if naming(r) == "values" and CALIBRATION_PRECISION in by_runtime(r).precisions]
    for w in ensure(runtime_keys([variant], ["onnxruntime", *extra], [CALIBRATION_PRECISION], split=True), out, catalog, on_event=on_export):
        if w.status is Status.FAILED:
            raise ZooError(f"{variant.name}: split export of {w.key.format} {w.key.precision} (needed to name tensors) failed: {w.note}")
    progress("layers", f"{variant.name} split: PyTorch")
    reference = split_reference(variant, pairs)
    sources = split_sources(variant, ArtifactKey(variant.name, "onnx", CALIBRATION_PRECISION, split=True).path(out), pairs[0], reference)
    maps: dict[str, dict[str, TensorMap]] = {}
    for w in wanted:
        if not w.usable:
            for g in GRAPHS:
                reports.append(LayerReport(variant.name, w.key.runtime, w.key.format, w.key.precision, str(w.path), naming(w.key.runtime), error=w.note,
                                           skipped=w.status is Status.SKIPPED, graph=g))
            continue
        if naming(w.key.runtime) == "values" and w.key.runtime not in maps:
            progress("layers", f"{variant.name} {w.key.runtime} split: naming tensors ({CALIBRATION_PRECISION} artifact)")
            _, cal = split_taps(ArtifactKey(variant.name, w.key.format, CALIBRATION_PRECISION, split=True).path(out), variant, pairs[:1])
            maps[w.key.runtime] = {g: map_by_values(cal[g][0], sources[g][1]) for g in GRAPHS}
        progress("layers", f"{variant.name} {w.key.runtime} {w.key.precision} split")
        try:
            manifest, taps = split_taps(w.path, variant, pairs)
        except ZooError as exc:
            reports += [LayerReport(variant.name, w.key.runtime, w.key.format, w.key.precision, str(w.path), error=str(exc), graph=g) for g in GRAPHS]
            continue
        except Exception as exc:  # noqa: BLE001 - a runtime failure is a finding about this artifact
            detail = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            reports += [LayerReport(variant.name, w.key.runtime, w.key.format, w.key.precision, str(w.path), error=detail, graph=g) for g in GRAPHS]
            continue
        for g in GRAPHS:
            calibration = maps.get(w.key.runtime, {}).get(g)
            reports.append(report_from_taps(variant, w.key.runtime, manifest, str(w.path), taps[g], reference[g], sources[g][0],
                                            calibration, atol, rtol, graph=g))
    return reports


"""``zoo compare --layers``: where along the network a runtime departs from PyTorch.

PyTorch: forward hooks on every module of the BatchNorm-folded model (what the exporters ship:
the folded model's module paths are the catalog architecture's) record each call's output. Each
runtime: its tensor tap (:mod:`compare.runners.taps`) gives every intermediate tensor; the tensors
are named after module calls through the exported ONNX graph (:mod:`compare.diagnose.layer_map`).

Per matched module call, over every input pair: max abs error, mean abs error, the lowest cosine
similarity, the scale (max |PyTorch|), the relative error (max abs / scale) and the ratio of the max
abs error to its allowance ``atol + rtol * scale`` (the catalog's tolerance of the artifact's format
and precision, or ``--atol/--rtol``). The *first divergent layer* is the first module call, in the
runtime's execution order, whose ratio exceeds 1 (at equal position the deepest module is named).

What counts: a module call is *in the graph* when the exported ONNX graph holds a tensor carrying
its output (folded BatchNorm ``Identity`` modules are not); of those, the ones whose tensor the
runtime *fused away* (a conv's output when the conv carries its ReLU) are not computed by that
runtime. ``coverage_pct`` = matched / (in the graph - fused away): the share of the module outputs
the runtime computes that were found among its tensors. Runtime tensors that name no source tensor
are listed (``unmatched_tensors``), as are the layout copies a runtime inserts.

Library only: functions return dataclasses and row dicts; nothing is printed.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from compare.diagnose.layer_map import SourceGraph, TensorMap, apply_map, located, map_by_names, map_by_values, naming, tap_drift
from compare.diagnose.onnx_graph import PartMapper
from compare.inputs import Pair
from compare.parity.runtimes import cosine_similarity
from compare.provision import choose_runtimes, ensure, runtime_keys
from compare.devices.runner import device_runner
from compare.runners import open_artifact
from zoo.artifacts import ArtifactKey, Status
from zoo.backends import TAPPED_RUNTIMES, by_runtime
from zoo.catalog import Catalog
from zoo.devices import LOCAL, Device
from zoo.errors import UsageError, ZooError
from zoo.fileio import atomic_path, plot_format, writing
from zoo.manifest import read_manifest
from zoo.models.fold import fold_batchnorm
from zoo.schema import Variant
from zoo.weights import load_model

#: the precision whose artifact calibrates a value-named runtime's map
CALIBRATION_PRECISION = "fp32"
#: a tapped run whose outputs differ from the runtime's own by more than this (relative) gets a note
TAP_DRIFT_NOTE = 1e-4


@dataclass
class LayerDiff:
    """One module call of one runtime against PyTorch."""

    index: int  # execution order in the runtime (position of the first tensor carrying it)
    graph_order: int  # position of its producer in the exported ONNX graph
    module: str  # module path, '#k' for the k-th further call
    tensor: str  # the exported graph's tensor
    runtime_tensor: str
    shape: list[int]
    max_abs_err: float
    mean_abs_err: float
    cosine: float
    scale: float  # max |PyTorch|
    rel_err: float  # max abs / scale
    allowed: float | None  # atol + rtol * scale
    ratio: float | None  # max abs / allowed


@dataclass
class LayerReport:
    """Every module call of one variant in one runtime and precision."""

    variant: str
    runtime: str
    format: str
    precision: str
    artifact: str | None
    naming: str = ""
    atol: float | None = None
    rtol: float | None = None
    tolerance: str = "catalog"  # catalog | options | tracker (figures only) | none (figures only)
    samples: int = 0
    layers: list[LayerDiff] = field(default_factory=list)
    in_graph: int = 0
    fused_away: list[str] = field(default_factory=list)
    not_in_graph: list[str] = field(default_factory=list)  # 'module: why'
    missing: list[str] = field(default_factory=list)  # computed by the runtime, not found among its tensors
    unmatched_tensors: list[str] = field(default_factory=list)
    inserted_tensors: list[str] = field(default_factory=list)
    tensors: int = 0  # float tensors the runtime computed
    graph: str | None = None  # a split artifact's graph (init | track); None: the full graph
    tap_drift: float | None = None  # tapped run's outputs vs the runtime's own run (see tap_drift)
    named_tensors: int = 0  # of those, named after a source-graph tensor
    error: str | None = None
    note: str | None = None  # why there is no per-layer verdict (the allowance's source)
    skipped: bool = False  # the format does not offer the precision
    device: str = "local"  # where the runtime ran (zoo.devices)

    @property
    def computed(self) -> int:
        return self.in_graph - len(self.fused_away)

    @property
    def coverage_pct(self) -> float:
        return 100.0 * len(self.layers) / self.computed if self.computed else 0.0

    @property
    def label(self) -> str:
        """``runtime precision``, with ``-split/<graph>`` for a graph of a split artifact."""
        where = "" if self.device == "local" else f" on {self.device}"
        return f"{self.runtime}{f'-split/{self.graph}' if self.graph else ''} {self.precision}{where}"

    @property
    def allowance(self) -> str:
        """Where the allowance comes from, as one short phrase."""
        if self.atol is None:
            return {"tracker": "tracker-gated"}.get(self.tolerance, "none")
        return f"{self.atol:g}+{self.rtol:g}·scale ({self.tolerance})"

    @property
    def first_divergent(self) -> LayerDiff | None:
        return next((d for d in self.layers if d.ratio is not None and not d.ratio <= 1.0), None)

    def summary(self) -> dict:
        first = self.first_divergent
        last = max(self.layers, key=lambda d: d.graph_order) if self.layers else None
        return {
            "variant": self.variant, "runtime": self.runtime, "graph": self.graph, "precision": self.precision, "device": self.device,
            "naming": self.naming,
            "atol": self.atol, "rtol": self.rtol, "tolerance": self.tolerance, "samples": self.samples,
            "tensors": self.tensors, "named_tensors": self.named_tensors, "in_graph": self.in_graph, "fused_away": len(self.fused_away), "computed": self.computed,
            "matched": len(self.layers), "coverage_pct": self.coverage_pct, "unmatched_tensors": len(self.unmatched_tensors),
            "inserted_tensors": len(self.inserted_tensors), "allowance": self.allowance, "tap_drift": self.tap_drift,
            "first_divergent": first.module if first else None, "first_ratio": first.ratio if first else None,
            "first_rel_err": first.rel_err if first else None,
            "last_layer": last.module if last else None, "last_rel_err": last.rel_err if last else None,
            "max_ratio": max((d.ratio for d in self.layers if d.ratio is not None), default=None),
            "note": "; ".join(x for x in (self.error, self.note) if x) or None,
        }

    def as_json(self) -> dict:
        return {**self.summary(), "layers": [asdict(d) for d in self.layers], "fused_away_modules": self.fused_away,
                "not_in_graph_modules": self.not_in_graph, "missing_modules": self.missing,
                "unmatched_tensor_names": self.unmatched_tensors, "inserted_tensor_names": self.inserted_tensors}


# -- PyTorch ------------------------------------------------------------------------------------
def reference_calls(variant: Variant, pairs: list[Pair]) -> list[dict[str, list[list[np.ndarray]]]]:
    """Per pair: module path -> per call, the tensors it returned (forward hooks on every module of
    the BatchNorm-folded model, fp32, eval mode)."""
    import torch

    model = fold_batchnorm(load_model(variant)).eval()
    names = [s.name for s in variant.io.inputs]
    return record_calls(model, lambda pair: model(*[torch.from_numpy(np.ascontiguousarray(pair[n], np.float32)) for n in names]), pairs)


def record_calls(model, run: Callable, items: list) -> list[dict[str, list[list[np.ndarray]]]]:
    """Per item: module path (in ``model``) -> per call, the tensors it returned while ``run(item)`` ran."""
    import torch

    record: dict[str, list[list[np.ndarray]]] = {}

    def hook(name):
        def fn(_module, _args, output):
            outs = output if isinstance(output, (tuple, list)) else (output,)
            record.setdefault(name, []).append([o.detach().numpy().astype(np.float32, copy=True) for o in outs
                                                if isinstance(o, torch.Tensor)])
        return fn

    handles = [m.register_forward_hook(hook(name)) for name, m in model.named_modules() if name]
    result = []
    try:
        with torch.inference_mode():
            for item in items:
                record = {}
                run(item)
                result.append(record)
    finally:
        for h in handles:
            h.remove()
    return result


# -- one artifact -------------------------------------------------------------------------------
def _tolerance(variant: Variant, fmt: str, precision: str, atol: float | None, rtol: float | None, family: str | None = None):
    """(atol, rtol, source): ``options`` (``--atol/--rtol``, the other from the catalog or 0), ``catalog``,
    ``tracker`` (the catalog gates this precision at tracker level: its atol/rtol are reported only,
    so no per-layer verdict) or ``none`` (no tolerance)."""
    try:
        tol = variant.tolerance(fmt, precision, *((family,) if family else ()))
    except ZooError:
        tol = None
    if atol is not None or rtol is not None:
        return (atol if atol is not None else (tol.atol if tol else 0.0)), (rtol if rtol is not None else (tol.rtol if tol else 0.0)), "options"
    if tol is None:
        return None, None, "none"
    if tol.tracker is not None:
        return None, None, "tracker"
    return tol.atol, tol.rtol, "catalog"


def _tap(path: Path, variant: Variant, pairs: list[Pair], drift: bool = False, device: Device = LOCAL) -> tuple:
    runner = open_artifact(path, variant) if device.is_local else device_runner(device, path, variant)
    tap = runner.tensor_tap()
    try:
        taps = [tap.run(pair) for pair in pairs]
        return (runner.manifest, taps, tap_drift(runner, taps[0], pairs[0])) if drift else (runner.manifest, taps)
    finally:
        runner.close()


def compare_layers(variant: Variant, runtime: str, path: Path, pairs: list[Pair], reference: list[dict],
                   source: SourceGraph, calibration: TensorMap | None = None, atol: float | None = None,
                   rtol: float | None = None, device: Device = LOCAL, family: str | None = None) -> LayerReport:
    """Every module call of the artifact in ``path`` (run on ``device``, CPU family ``family``) against
    ``reference`` (:func:`reference_calls`).

    ``source``: the exported ONNX graph with its tensor shapes; ``calibration``: the map of a
    value-named runtime (:func:`calibrate`), ignored for name-keeping runtimes. A runtime that cannot
    load or run the artifact gives a report with ``error`` set.
    """
    names = sorted(b.name for b in read_manifest(path).inputs)
    if not set(names) <= set(pairs[0]):  # e.g. a split graph fed by another graph's output
        return LayerReport(variant.name, runtime, by_runtime(runtime).format, "?", str(path), naming(runtime),
                           error=f"its inputs {names} are not all catalog inputs {sorted(pairs[0])}: --layers feeds catalog inputs only")
    try:
        manifest, taps, drift = _tap(path, variant, pairs, drift=True, device=device)
    except ZooError as exc:
        return LayerReport(variant.name, runtime, "?", "?", str(path), error=str(exc), device=device.name)
    except Exception as exc:  # noqa: BLE001 - a runtime failure is a finding about this artifact
        detail = str(exc).splitlines()[0] if str(exc) else ""
        return LayerReport(variant.name, runtime, by_runtime(runtime).format, "?", str(path), error=f"{type(exc).__name__}: {detail}",
                           device=device.name)
    report = report_from_taps(variant, runtime, manifest, str(path), taps, reference, source, calibration, atol, rtol, family=family)
    report.device = device.name
    report.tap_drift = drift
    if drift is not None and drift > TAP_DRIFT_NOTE:
        drift_note = (f"the tapped run's outputs differ from {runtime}'s own run by {drift:.1e} of their scale: "
                      "exposing every tensor changed what it computes (QDQ groups left unfused)")
        report.note = "; ".join(x for x in (report.note, drift_note) if x)
    return report


def report_from_taps(variant: Variant, runtime: str, manifest, artifact: str, taps: list, reference: list[dict],
                     source: SourceGraph, calibration: TensorMap | None = None, atol: float | None = None,
                     rtol: float | None = None, graph: str | None = None, family: str | None = None) -> LayerReport:
    """The :class:`LayerReport` of one graph's taps (one list of :class:`Tapped` per input) against
    ``reference`` (per input: module path -> per call, its outputs) through ``source``; ``family``:
    the CPU family whose tolerance applies (default: the base family's)."""
    a, r, how = _tolerance(variant, manifest.format, manifest.precision, atol, rtol, family)
    report = LayerReport(variant.name, runtime, manifest.format, manifest.precision, artifact, naming(runtime), a, r, how,
                         len(taps), tensors=len(taps[0]), graph=graph)
    if how == "none":
        report.note = f"zoo.yaml has no {manifest.format} {manifest.precision} tolerance: figures only (pass --atol/--rtol for a verdict)"
    elif how == "tracker":
        report.note = (f"zoo.yaml gates {manifest.format} {manifest.precision} at tracker level (its atol/rtol are reported only): "
                        "figures only, no per-layer verdict (pass --atol/--rtol for one)")
    if naming(runtime) == "names":
        tmap = map_by_names(taps[0], source)
    elif calibration is None:
        report.error = "no calibration map for a value-named runtime"
        return report
    else:
        tmap = apply_map(taps[0], calibration, source)
    report.unmatched_tensors, report.inserted_tensors, report.named_tensors = tmap.unmatched, tmap.inserted, len(tmap.links)
    found = [located(t, tmap, source) for t in taps]
    calls = {m: [[tuple(x.shape) for x in call] for call in c] for m, c in reference[0].items()}
    for site in source.sites(calls):
        if site.tensor is None:
            report.not_in_graph.append(f"{site.key}: {site.note}")
            continue
        report.in_graph += 1
        if site.tensor not in found[0]:
            fused = source.fused_into(site.tensor)
            (report.fused_away if fused and fused in found[0] else report.missing).append(site.key)
            continue
        report.layers.append(_diff(site, found, reference, tmap, taps, a, r))
    report.layers.sort(key=lambda d: (d.index, -d.module.count(".")))
    return report


def _diff(site, found, reference, tmap, taps, atol, rtol) -> LayerDiff:
    index = found[0][site.tensor][0]
    max_abs, means, cosines, scale = 0.0, [], [], 0.0
    for k, got in enumerate(found):
        actual = got[site.tensor][1]
        outs = reference[k][site.module][site.call]
        expected = next((o for o in outs if o.shape == actual.shape), None)
        if expected is None:
            expected = next(o for o in outs if o.size == actual.size).reshape(actual.shape)
        diff = np.abs(actual.astype(np.float64) - expected)
        finite = bool(np.isfinite(actual).all())
        max_abs = max(max_abs, float(diff.max()) if finite else math.inf)
        means.append(float(diff.mean()) if finite else math.inf)
        cosines.append(cosine_similarity(actual, expected))
        scale = max(scale, float(np.abs(expected).max()))
    allowed = atol + rtol * scale if atol is not None else None
    ratio = (max_abs / allowed if allowed > 0 else (0.0 if max_abs == 0 else math.inf)) if allowed is not None else None
    return LayerDiff(index, site.order, site.key, site.tensor, taps[0][index].name, list(found[0][site.tensor][1].shape), max_abs,
                     float(np.mean(means)), min(cosines), scale, max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else math.inf),
                     allowed, ratio)


def source_graph(variant: Variant, onnx_dir: Path, pair: Pair) -> tuple[SourceGraph, dict[str, np.ndarray]]:
    """The exported ONNX graph of ``onnx_dir`` with every tensor's value on ``pair`` (ONNX Runtime)."""
    _, (taps,) = _tap(onnx_dir, variant, [pair])
    values = {t.name: t.array for t in taps}
    graph = SourceGraph(onnx_dir / read_manifest(onnx_dir).files[0].path, PartMapper.for_variant(variant),
                        {k: tuple(v.shape) for k, v in values.items()})
    graph.values = values
    return graph, values


def calibrate(variant: Variant, path: Path, pair: Pair, values: dict[str, np.ndarray]) -> TensorMap:
    """The name map of a value-named runtime, from its (fp32) artifact in ``path`` run on ``pair``."""
    _, (taps,) = _tap(path, variant, [pair])
    return map_by_values(taps, values)


# -- everything ---------------------------------------------------------------------------------
def layer_runtimes(names: list[str] | tuple[str, ...]) -> list[str]:
    """The runtimes ``--layers`` compares: those named (``all`` or none: every runtime with a tensor
    tap); a named runtime without one is a usage error before any work."""
    chosen = choose_runtimes(names or ("all",))
    if not names or "all" in names:
        return [r for r in chosen if r in TAPPED_RUNTIMES]
    untapped = [r for r in chosen if r not in TAPPED_RUNTIMES]
    if untapped:
        raise UsageError(f"--layers: {', '.join(untapped)} has no tensor tap; choose from {', '.join(TAPPED_RUNTIMES)}")
    return chosen


def layers_variant(catalog: Catalog, variant: Variant, runtimes: list[str], precisions: list[str], pairs: list[Pair], out: Path,
                   atol: float | None = None, rtol: float | None = None, on_export: Callable | None = None,
                   on_progress: Callable[[str, str], None] | None = None,
                   devices: tuple[tuple[Device, str], ...] = ()) -> list[LayerReport]:
    """Per-layer comparison of ``variant`` in every runtime x precision (artifacts exported where
    missing; the fp32 ONNX graph always, the fp32 artifact of a value-named runtime for its map),
    here and then on each ``(device, CPU family)`` of ``devices``."""
    if not pairs:
        raise UsageError("no input pairs")
    progress = on_progress or (lambda stage, text: None)
    wanted = ensure(runtime_keys([variant], runtimes, precisions), out, catalog, on_event=on_export)
    extra = [r for r in runtimes if naming(r) == "values" and CALIBRATION_PRECISION in by_runtime(r).precisions]
    support = ensure(runtime_keys([variant], ["onnxruntime", *extra], [CALIBRATION_PRECISION]), out, catalog, on_event=on_export)
    for w in support:
        if w.status is Status.FAILED:
            raise ZooError(f"{variant.name}: export of {w.key.format} {w.key.precision} (needed to name tensors) failed: {w.note}")
    progress("layers", f"{variant.name}: PyTorch")
    reference = reference_calls(variant, pairs)
    source, values = source_graph(variant, ArtifactKey(variant.name, "onnx", CALIBRATION_PRECISION).path(out), pairs[0])
    maps: dict[str, TensorMap] = {}
    reports = []
    for w in wanted:
        if not w.usable:
            reports.append(LayerReport(variant.name, w.key.runtime, w.key.format, w.key.precision, str(w.path), naming(w.key.runtime), error=w.note,
                                       skipped=w.status is Status.SKIPPED))
            continue
        calibration = None
        if naming(w.key.runtime) == "values":
            if w.key.runtime not in maps:
                progress("layers", f"{variant.name} {w.key.runtime}: naming tensors ({CALIBRATION_PRECISION} artifact)")
                maps[w.key.runtime] = calibrate(variant, ArtifactKey(variant.name, w.key.format, CALIBRATION_PRECISION).path(out), pairs[0], values)
            calibration = maps[w.key.runtime]
        for device, family in ((LOCAL, None), *devices):
            progress("layers", f"{variant.name} {w.key.runtime} {w.key.precision} on {device.name}")
            reports.append(compare_layers(variant, w.key.runtime, w.path, pairs, reference, source, calibration, atol, rtol,
                                          device, family))
    return reports


#: a device departs from this machine at the first module whose relative error there is this many
#: times the one here (and above :data:`DEPARTURE_FLOOR`, so that round-off noise does not count)
DEPARTURE_FACTOR = 3.0
DEPARTURE_FLOOR = 1e-3


def departure(here: LayerReport, there: LayerReport) -> tuple[LayerDiff, LayerDiff] | None:
    """The first module (in the device's execution order) where ``there`` (one artifact on a
    device) departs from ``here`` (the same artifact and inputs on this machine): (this machine's
    figures, the device's), or None when it never does."""
    mine = {d.module: d for d in here.layers}
    for d in sorted(there.layers, key=lambda x: x.index):
        local = mine.get(d.module)
        if local is not None and d.rel_err > max(DEPARTURE_FACTOR * local.rel_err, DEPARTURE_FLOOR):
            return local, d
    return None


# -- rows ---------------------------------------------------------------------------------------
def summary_rows(reports: list[LayerReport]) -> list[dict]:
    """One row per variant x runtime x precision."""
    return [r.summary() for r in reports]


def layer_rows(reports: list[LayerReport]) -> list[dict]:
    """One row per matched module call of every report, in each runtime's execution order."""
    rows = []
    for r in reports:
        first = r.first_divergent
        for d in r.layers:
            rows.append({"variant": r.variant, "runtime": r.runtime, "graph": r.graph, "precision": r.precision, "index": d.index,
                         "graph_order": d.graph_order, "module": d.module, "shape": "x".join(map(str, d.shape)),
                         "max_abs_err": d.max_abs_err, "mean_abs_err": d.mean_abs_err, "cosine": d.cosine, "scale": d.scale,
                         "rel_err": d.rel_err, "allowed": d.allowed, "ratio": d.ratio,
                         "status": "FIRST" if d is first else ("above" if d.ratio is not None and not d.ratio <= 1 else "ok")})
    return rows


def depth_rows(reports: list[LayerReport], level: int = 3) -> list[dict]:
    """Error growth along depth: one row per module (paths cut to ``level`` segments, in source
    graph order) with each runtime/precision's largest relative error there."""
    rows: dict[str, dict] = {}
    for r in reports:
        label = r.label
        for d in sorted(r.layers, key=lambda d: d.graph_order):
            key = ".".join(d.module.split("#")[0].split(".")[:level]) + (f"#{d.module.split('#')[1]}" if "#" in d.module else "")
            row = rows.setdefault(key, {"module": key, "graph_order": d.graph_order})
            row["graph_order"] = max(row["graph_order"], d.graph_order)
            row[label] = max(row.get(label, 0.0), d.rel_err)
    return sorted(rows.values(), key=lambda row: row["graph_order"])


def plot_layers(reports: list[LayerReport], path, title: str | None = None) -> None:
    """The relative error (max abs / scale) per module output along the exported graph's order,
    one line per runtime/precision, its allowance (atol + rtol x scale, over the same scale) dashed
    in the same colour, the first divergent layer circled, each part's first module named on the
    x axis (matplotlib, written atomically in the format ``path``'s suffix names)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 5.2), dpi=110)
    ticks: dict[str, int] = {}
    for r in reports:
        if not r.layers:
            continue
        by_tensor: dict[int, float] = {}
        allowance: dict[int, float] = {}
        for d in r.layers:
            by_tensor[d.graph_order] = max(by_tensor.get(d.graph_order, 0.0), d.rel_err)
            if d.allowed is not None and d.scale > 0:  # the allowance in the line's units (over the tensor's scale)
                allowance[d.graph_order] = min(allowance.get(d.graph_order, float("inf")), d.allowed / d.scale)
            head, _, call = d.module.partition("#")
            part = ".".join(head.split(".")[:3]) if head.startswith("fusion.blocks") else head.split(".")[0] + (f"#{call}" if call else "")
            if part != "fusion":  # the blocks mark it
                ticks[part] = min(ticks.get(part, d.graph_order), d.graph_order)
        xs = sorted(by_tensor)
        line = ax.plot(xs, [max(by_tensor[x], 1e-12) for x in xs], marker=".", linewidth=1, label=r.label)[0]
        if allowance:
            ax_x = sorted(allowance)
            ax.plot(ax_x, [allowance[x] for x in ax_x], linestyle="--", linewidth=0.9, color=line.get_color(),
                    alpha=0.8, label=f"{r.label}: allowance")
        first = r.first_divergent
        if first is not None:
            ax.plot([first.graph_order], [max(first.rel_err, 1e-12)], "o", markersize=11, markerfacecolor="none", color=line.get_color())
    ax.set_yscale("log")
    for x in ticks.values():
        ax.axvline(x, color="grey", alpha=0.25, linewidth=0.8)
    ordered = sorted(ticks.items(), key=lambda item: item[1])
    ax.set_xticks([x for _, x in ordered], [name for name, _ in ordered], rotation=35, ha="right", fontsize=7)
    ax.set_xlabel("module output, in the exported graph's order (ticks: where each part starts)")
    ax.set_ylabel("max abs error / max |PyTorch|")
    ax.set_title(title or "zoo compare --layers: error per layer (dashed: its allowance; circle: first above it)")
    ax.grid(alpha=0.3, which="both", axis="y")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    fig.tight_layout()
    with writing("the plot", path), atomic_path(Path(path), suffix=f".{plot_format(path)}") as tmp:
        fig.savefig(tmp, format=plot_format(path))
    plt.close(fig)

"""Per-op time of one variant in MNN or ONNX Runtime, mapped back to the model's parts.

MNN: ``MNN.Interpreter`` + ``createSession`` (``numThread``, the runner's precision mode) run
with ``runSessionWithCallBackInfo``; every op is timed with ``perf_counter`` between its begin
and end callbacks, which also give its name, type and ``getFlops()`` (MNN counts a
multiply-add as one, so these are comparable to MACs). ONNX Runtime: a session with
``enable_profiling`` (``intra_op_num_threads``, the optimized graph saved beside the trace); the
chrome-trace events of category ``Node`` named ``<node>_kernel_time`` give ``args.op_name`` and
``dur`` (us), grouped into runs by the ``model_run`` events.

Each timed profiled run alternates with one run of the artifact's ordinary runner (the same
runtime, thread count and input pair, no profiling), so both see the same machine load; after
``warmup`` rounds, ``runs`` rounds are kept. An op's time is its mean over those runs (so the
ops add up to the mean profiled run). The end-to-end latency is the median of the runner's
``last_inference_time`` (as ``zoo compare`` reports it); the profile total is also given as the
median of the per-run sums of op times; ``profile_vs_e2e`` is the median over rounds of (op
time sum of the profiled run / the end-to-end run of the same round): pairing cancels most of
what the machine's load does to both. Ops are assigned to parts by :mod:`compare.diagnose.onnx_graph`;
per-part MACs and parameters come from :func:`zoo.figures.part_rows` (``zoo info``'s figures).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from compare.diagnose.layers_split import split_reference
from compare.diagnose.onnx_graph import UNKNOWN, Graph, PartMapper, ScopeResolver
from compare.inputs import Pair, load_pairs
from compare.provision import ensure, runtime_keys
from compare.runners import open_artifact
from compare.runners.base import OpRecord
from zoo.artifacts import ArtifactKey, Status, default_out_dir
from zoo.backends import PROFILED_RUNTIMES, by_runtime
from zoo.catalog import Catalog
from zoo.errors import UsageError, ZooError
from zoo.figures import figure_rows, part_rows
from zoo.manifest import read_manifest
from zoo.names import choose
from zoo.schema import Variant
from zoo.split_figures import split_figures

#: one profiled run: its ops in execution order
Record = list[OpRecord]


def check_request(runtime: str, precision: str = "fp32") -> None:
    """A runtime this module profiles and a precision its format offers; else a usage error."""
    choose([runtime], PROFILED_RUNTIMES, "runtime")
    offered = by_runtime(runtime).precisions
    if precision not in offered:
        raise UsageError(f"{runtime} runs {', '.join(offered)} artifacts only, not {precision!r}")


@dataclass
class OpTime:
    index: int
    name: str
    type: str
    ms: float  # mean over the timed runs
    median_ms: float
    mflops: float | None  # MNN's count for the op (multiply-add = 1)
    module: str
    part: str
    block: str
    unit: str
    rule: str  # how the part was found (compare.diagnose.onnx_graph)
    share_pct: float = 0.0


@dataclass
class Profile:
    """One variant profiled in one runtime at one thread count."""

    variant: str
    runtime: str
    precision: str
    threads: int
    warmup: int
    runs: int
    depth: int  # fusion blocks in the catalog's architecture
    ops: list[OpTime]
    run_totals_ms: list[float]  # per timed run: sum of its op times
    profiled_ms: list[float]  # per timed run: wall time of the profiled call
    e2e_ms: list[float]  # per timed run: the runner without profiling
    figures: list[dict] = field(default_factory=list)  # zoo.figures.part_rows(variant)

    def totals(self) -> dict:
        profile_ms = sum(op.ms for op in self.ops)
        median, e2e = float(np.median(self.run_totals_ms)), float(np.median(self.e2e_ms))
        paired = float(np.median(np.asarray(self.run_totals_ms) / np.asarray(self.e2e_ms)))
        unknown = [op for op in self.ops if op.part == UNKNOWN]
        rules: dict[str, int] = {}
        for op in self.ops:
            rules[op.rule] = rules.get(op.rule, 0) + 1
        return {
            "variant": self.variant, "runtime": self.runtime, "precision": self.precision, "threads": self.threads,
            "warmup": self.warmup, "runs": self.runs, "ops": len(self.ops),
            "profile_ms": profile_ms, "profile_median_ms": median,
            "profiled_run_ms": float(np.median(self.profiled_ms)), "e2e_ms": e2e,
            "e2e_p90_ms": float(np.percentile(self.e2e_ms, 90)), "profile_vs_e2e": paired,
            "fusion_blocks": len({op.block for op in self.ops if op.block.startswith("fusion.blocks.")}),
            "depth": self.depth, "unassigned_ops": len(unknown),
            "unassigned_share_pct": 100.0 * sum(op.ms for op in unknown) / profile_ms, "rules": rules,
        }

    def top(self, k: int) -> list[dict]:
        ranked = sorted(self.ops, key=lambda op: op.ms, reverse=True)[:k]
        return [{"rank": i + 1, **asdict(op)} for i, op in enumerate(ranked)]

    def group(self, level: str) -> list[dict]:
        """Time per ``block`` or ``unit`` (execution order of first appearance)."""
        rows: dict[str, dict] = {}
        for op in self.ops:
            row = rows.setdefault(getattr(op, level), {level: getattr(op, level), "part": op.part, "ops": 0, "ms": 0.0, "share_pct": 0.0})
            row["ops"] += 1
            row["ms"] += op.ms
            row["share_pct"] += op.share_pct
        return list(rows.values())

    def parts(self) -> list[dict]:
        """Per part: share of time beside share of MACs and of parameters (``zoo info``'s figures)."""
        by_part = {r["part"]: r for r in self.figures if r["part"] != "total"}
        names = list(by_part) + sorted({op.part for op in self.ops} - set(by_part))
        rows = []
        for name in names:
            mine = [op for op in self.ops if op.part == name]
            fig = by_part.get(name, {})
            time_pct = sum(op.share_pct for op in mine)
            flops = [op.mflops for op in mine if op.mflops is not None]
            rows.append({
                "part": name, "ops": len(mine), "ms": sum(op.ms for op in mine), "time_share_pct": time_pct,
                "macs_share_pct": fig.get("macs_share_pct"), "macs_total_share_pct": fig.get("macs_total_share_pct"),
                "params_share_pct": fig.get("params_share_pct"), "macs": fig.get("macs"), "params": fig.get("params"),
                "mnn_mflops": sum(flops) if flops else None,
                "time_per_macs": time_pct / fig["macs_share_pct"] if fig.get("macs_share_pct") else None,
            })
        return rows

    def as_json(self, top: int = 10) -> dict:
        return {"totals": self.totals(), "top": self.top(top), "parts": self.parts(), "blocks": self.group("block"),
                "units": self.group("unit"), "ops": [asdict(op) for op in self.ops]}


def aggregate(records: list[Record], mapper: PartMapper, executed: Graph | None, source: Graph | None) -> list[OpTime]:
    """Per-op mean/median over runs (ops matched by position; every run must run the same ops)."""
    names = [r.name for r in records[0]]
    if any([r.name for r in rec] != names for rec in records):
        raise ZooError("the runtime executed different ops in different runs; cannot average them")
    seconds = np.array([[r.seconds for r in rec] for rec in records])  # runs x ops
    mean, median = seconds.mean(axis=0) * 1e3, np.median(seconds, axis=0) * 1e3
    total = float(mean.sum())
    ops = []
    for i, (a, (name, kind, flops, _)) in enumerate(zip(mapper.assign_ops(names, executed, source), records[0], strict=True)):
        ops.append(OpTime(i, name, kind, float(mean[i]), float(median[i]), flops, a.module, a.part, a.block, a.unit, a.rule,
                          100.0 * float(mean[i]) / total))
    return ops


OnEvent = Callable[[str, str], None]


def profile_variant(catalog: Catalog, variant: Variant, runtime: str, threads: int = 1, precision: str = "fp32", runs: int = 30,
                    warmup: int = 5, out: Path | None = None, on_export: Callable | None = None,
                    on_progress: OnEvent | None = None, pair: Pair | None = None, split: bool = False) -> Profile:
    """Profile ``variant`` in ``runtime`` (exporting its artifact, and for MNN the source ONNX, if missing,
    under ``out``: default ``$ZOO_ARTIFACTS`` or ``./artifacts``).

    ``split``: the split artifact's track graph, the per-frame work, fed the cache its own init
    graph made of the pair's template; parts and MACs are the track graph's
    (:func:`zoo.split_figures.split_figures`), the end-to-end run the split runner's frame.
    """

    check_request(runtime, precision)
    if runs < 1 or threads < 1 or warmup < 0:
        raise UsageError("runs and threads must be >= 1, warmup >= 0")
    progress = on_progress or (lambda stage, text: None)
    out = out if out is not None else default_out_dir()
    pair = pair if pair is not None else load_pairs(variant, 1, None)[0]
    wanted = ensure(runtime_keys([variant], [runtime], [precision], split=split), out, catalog, on_event=on_export)
    if by_runtime(runtime).needs_onnx:  # the ONNX graph it was converted from: names without a module path are looked up there
        wanted += ensure(runtime_keys([variant], ["onnxruntime"], ["fp32"], split=split), out, catalog, on_event=on_export)
    for w in wanted:
        if w.status is Status.SKIPPED:
            raise UsageError(f"{variant.name}: {w.key.runtime} {w.key.precision}: {w.note}")
        if w.status is Status.FAILED:
            raise ZooError(f"{variant.name}: export of {w.key.format} {w.key.precision} failed: {w.note}")
    path = wanted[0].path
    runner = open_artifact(path, variant, threads=threads)
    profiler = (runner.track_runner if split else runner).profiler()
    progress("profile", f"{variant.name} {runtime} {precision} {threads}T: loading")
    e2e, walls = [], []
    with runner:
        if split:  # the track graph's feed: the search crop and what this runtime's init graph cached
            search, template = runner.graphs.track.inputs[0].name, runner.graphs.init.inputs[0].name
            profiler.load({search: pair[search], **runner.init(pair[template])})
        else:
            profiler.load(pair)
        executed = Graph.from_onnx(profiler.optimized_model) if profiler.optimized_model else None
        try:
            for i in range(warmup + runs):
                runner.infer(pair)
                wall = profiler.run()
                if i >= warmup:
                    e2e.append(runner.last_inference_time * 1e3)
                    walls.append(wall * 1e3)
                progress("profile", f"{variant.name} {runtime} {threads}T: run {i + 1}/{warmup + runs}")
        finally:
            records = profiler.finish()[warmup:]  # also frees the session (and ORT's trace directory)
    if len(records) != runs:
        raise ZooError(f"{runtime}: expected {runs} profiled runs, found {len(records)}")
    onnx_dir = ArtifactKey(variant.name, "onnx", "fp32", split=split).path(out)
    files = [f.path for f in read_manifest(onnx_dir).files]
    source = Graph.from_onnx(onnx_dir / next(f for f in files if not split or f.startswith("track/")))
    mapper = PartMapper.for_variant(variant)
    if split:  # the track graph calls block internals outside their parents: bare scopes, resolved by call order
        mapper = PartMapper(mapper.modules, ScopeResolver(list(split_reference(variant, [pair])["track"][0])))
    ops = aggregate(records, mapper, executed, source)
    figures = figure_rows(split_figures(variant).track) if split else part_rows(variant)
    return Profile(variant.name, runtime + ("-split/track" if split else ""), precision, threads, warmup, runs,
                   variant.arch.fusion.depth, ops, [sum(r.seconds for r in rec) * 1e3 for rec in records], walls, e2e, figures)

"""Deployment benchmarks on the runners: thread scaling, several trackers at once, sustained runs.

Everything is measured in child processes (:mod:`compare.measure.worker`), one runtime instance each:

- a **cell** is one variant x runtime x thread count x concurrency ``c``: ``c`` processes load
  their own instance, warm up, wait at a barrier and then all run for the same ``seconds``.
  Per instance: fps = 1000 / median latency of the runtime call; aggregate fps = their sum;
  slowdown = the single instance's fps / an instance's fps at ``c`` (median and worst).
- a **sustained run** (:mod:`compare.measure.sustained`) keeps instances busy for ``duration`` seconds.
- the **speed column** puts each variant's measured 1-thread fps beside the study's
  ``speed_1thread_fps``, both as ratios to ``base-c128`` (absolute figures come from different
  machines; the ratios are comparable).

Functions return dataclasses / plain rows; the CLI (:mod:`zoo.cli.bench_cmd`) draws them.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from compare.inputs import Pair
from compare.measure.blocks import block_order, kept_blocks, rate_row, spread
from compare.measure.ceiling import CeilingBlock, MeasureKernels, ceiling_precision, ceiling_spread, measure_ceiling
from compare.measure.machine import contention
from compare.measure.worker import Measurement, MeasureTask, RunnerSpec, measure

BASELINE = "base-c128"


@dataclass
class Instance:
    """One tracker process in a cell."""

    pid: int
    runs: int
    median_ms: float
    fps: float
    start: float  # time.time() of the first and last timed run's end
    end: float
    cpu_per_wall: float
    error: str | None = None


@dataclass
class Cell:
    """One variant x runtime x threads x concurrency measurement."""

    variant: str
    runtime: str
    precision: str
    threads: int
    concurrency: int
    oversubscribed: bool  # threads x concurrency > CPUs
    aggregate_fps: float | None = None
    instance_fps_median: float | None = None
    instance_fps_worst: float | None = None
    single_fps: float | None = None  # the same threads at concurrency 1
    slowdown_median: float | None = None  # single_fps / instance_fps_median
    slowdown_worst: float | None = None
    thread_speedup: float | None = None  # concurrency-1 fps / 1-thread concurrency-1 fps
    instances: list[Instance] = field(default_factory=list)
    other_cores: float | None = None  # CPUs other processes kept busy during the timed phase
    reliable: bool = True  # False: other processes competed for the CPUs, or noisy (see ``contention``)
    contention: str | None = None
    error: str | None = None
    device: str = "local"  # where it ran (zoo.devices)
    repeats: int = 1  # interleaved blocks measured
    blocks_left_out: int = 0  # blocks under contention left out (another block was clean)
    block_fps: list[float] = field(default_factory=list)  # fps/instance (median) of each kept block
    fps_lo: float | None = None  # the interval of the blocks' fps/instance
    fps_hi: float | None = None
    spread_pct: float | None = None  # (hi - lo) / median of the blocks' latency, %; None from one block
    gflops: float | None = None  # macs x 2 x fps/instance (median), this machine's cells only
    ceiling_precision: str | None = None  # the ceiling of this cell's precision at its thread count
    ceiling_gflops: float | None = None
    ceiling_kernel: str | None = None
    ceiling_spread_pct: float | None = None
    pct_of_ceiling: float | None = None
    noisy: str | None = None  # the noisy figure(s) with their spreads
    ceiling_note: str | None = None  # why the % of ceiling is not to be trusted while the cell is

    @property
    def key(self) -> tuple:
        return self.variant, self.runtime, self.precision, self.device

    def flag(self, reason: str) -> None:
        """Mark the cell unreliable for ``reason`` (reasons accumulate)."""
        self.reliable = False
        self.contention = reason if not self.contention else f"{self.contention}; {reason}"


def _instance(m: Measurement) -> Instance:
    if not m.ok:
        return Instance(m.pid, 0, float("nan"), float("nan"), float("nan"), float("nan"), float("nan"), m.error)
    median = float(np.median(m.times_s)) * 1e3
    return Instance(m.pid, len(m.times_s), median, 1e3 / median, m.start, m.ends[-1],
                    m.cpu_s / m.wall_s if m.wall_s > 0 else float("nan"))


def run_cell(spec: RunnerSpec, pair: Pair, threads: int, concurrency: int, seconds: float,
             warmup: int = 5, min_runs: int = 5, device_options: dict | None = None) -> Cell:
    """``concurrency`` instances of ``spec`` at ``threads`` threads, started together
    (``device_options``: ``big_cores``, ``cooldown_c`` of a device's :class:`MeasureTask`)."""
    tasks = [MeasureTask(spec, pair, threads, warmup, min_runs, seconds, **(device_options or {})) for _ in range(concurrency)]
    ms = measure(tasks, concurrent=True)
    instances = [_instance(m) for m in ms]
    cpus = next((m.device_cpus for m in ms if m.device_cpus), None) or os.cpu_count() or 1
    cell = Cell(spec.variant.name, spec.key.label, spec.key.precision, threads, concurrency,
                threads * concurrency > cpus, instances=instances, device=ms[0].device if ms else spec.device.name)
    _flag_contention(cell, ms)
    errors = [i.error for i in instances if i.error]
    if errors:
        cell.error = errors[0]
        return cell
    fps = [i.fps for i in instances]
    cell.aggregate_fps = float(sum(fps))
    cell.instance_fps_median, cell.instance_fps_worst = float(np.median(fps)), float(min(fps))
    return cell


def _flag_contention(cell: Cell, ms: list[Measurement]) -> None:
    """Other processes' CPU use over the cell's timed phase: the instances run side by side behind
    a barrier, so the machine's busy time (mean of what each instance saw) minus every instance's
    own CPU time is what the rest of the machine used."""
    ok = [m for m in ms if m.ok and m.machine_busy_s is not None]
    if not ok or len(ok) != len(ms):
        return
    load = contention(float(np.mean([m.machine_busy_s for m in ok])), sum(m.cpu_s for m in ok),
                      float(np.mean([m.wall_s for m in ok])), cell.threads * cell.concurrency, cpu_count=ok[0].device_cpus)
    if load is not None:
        cell.other_cores, cell.reliable, cell.contention = load.other_cores, not load.contended, load.reason


def fill_ratios(cells: list[Cell]) -> None:
    """Slowdown vs one instance (same threads) and thread speedup vs 1 thread (concurrency 1)."""
    single = {(c.key, c.threads): c.instance_fps_median for c in cells if c.concurrency == 1 and not c.error}
    for c in cells:
        if c.error:
            continue
        c.single_fps = single.get((c.key, c.threads))
        if c.single_fps:
            c.slowdown_median = c.single_fps / c.instance_fps_median
            c.slowdown_worst = c.single_fps / c.instance_fps_worst
        one = single.get((c.key, 1))
        if one and c.concurrency == 1:
            c.thread_speedup = c.instance_fps_median / one


def merge_blocks(blocks: list[Cell]) -> Cell:
    """One cell from its interleaved blocks: the figures of the kept blocks (a block under
    contention is left out when another was clean), each instance of every block, the interval
    and spread of the blocks' fps per instance."""
    if len(blocks) == 1:
        cell = blocks[0]
        cell.block_fps = [] if cell.error else [cell.instance_fps_median]
        return cell
    failed = next((c for c in blocks if c.error), None)
    first = blocks[0]
    cell = Cell(first.variant, first.runtime, first.precision, first.threads, first.concurrency, first.oversubscribed,
                instances=[i for c in blocks for i in c.instances], device=first.device, repeats=len(blocks))
    if failed is not None:
        cell.error = failed.error
        return cell
    kept, cell.blocks_left_out = kept_blocks([not c.reliable for c in blocks])
    use = [blocks[i] for i in kept]
    cell.aggregate_fps = float(np.median([c.aggregate_fps for c in use]))
    cell.instance_fps_median = float(np.median([c.instance_fps_median for c in use]))
    cell.instance_fps_worst = float(min(c.instance_fps_worst for c in use))
    cell.block_fps = [c.instance_fps_median for c in use]
    cell.fps_lo, cell.fps_hi = min(cell.block_fps), max(cell.block_fps)
    cell.spread_pct = spread([1e3 / f for f in cell.block_fps]).pct
    others = [c.other_cores for c in use if c.other_cores is not None]
    cell.other_cores = max(others) if others else None
    if all(not c.reliable for c in use):
        cell.flag(f"{use[0].contention} (in all {len(blocks)} blocks)")
    return cell


def rate_cells(cells: list[Cell], macs: dict[tuple, int], ceilings: list[CeilingBlock]) -> None:
    """GFLOP/s per instance of this machine's cells beside the ceiling of their precision at their
    thread count, and the verdict naming the noisy figure (``macs``: per :attr:`Cell.key`)."""
    for c in cells:
        if c.error or c.device != "local" or c.key not in macs or not c.instance_fps_median:
            continue
        precision = ceiling_precision(c.precision)
        ceiling, kernel = ceiling_spread(ceilings, c.threads, precision)
        latency = spread([1e3 / f for f in c.block_fps]) if c.block_fps else None
        rate_row(c, 2.0 * macs[c.key] * c.instance_fps_median / 1e9, latency, ceiling, kernel, precision)


def run_cells(specs: list[tuple[RunnerSpec, Pair]], threads: list[int], concurrency: list[int], seconds: float,
              warmup: int = 5, on_cell: Callable[[Cell], None] | None = None, device_options: dict | None = None,
              repeats: int = 1, macs: dict[tuple, int] | None = None, kernels: MeasureKernels | None = None,
              ceilings: list[CeilingBlock] | None = None) -> list[Cell]:
    """Every spec at every thread count x concurrency (concurrency 1 is always measured), in
    ``repeats`` interleaved blocks (:mod:`compare.measure.blocks`; ``on_cell`` after each block's
    cell). With ``macs`` (MACs per call by :attr:`Cell.key`) each block first measures the
    ceilings of the cells' precisions at every thread count (appended to ``ceilings`` when a list
    is given) and this machine's cells are held against them."""
    grid = [(spec, pair, t, c) for spec, pair in specs for t in sorted(set(threads)) for c in sorted(set(concurrency) | {1})]
    local = {ceiling_precision(spec.key.precision) for spec, _ in specs if spec.device.is_local}
    measured = ceilings if ceilings is not None else []
    blocks: list[list[Cell]] = [[] for _ in grid]
    for b in range(repeats):
        if macs and local:
            measured.extend(measure_ceiling(b, t, local, kernels) for t in sorted(set(threads)))
        for i in block_order(list(range(len(grid))), b):
            spec, pair, t, c = grid[i]
            cell = run_cell(spec, pair, t, c, seconds, warmup, device_options=None if spec.device.is_local else device_options)
            blocks[i].append(cell)
            if on_cell is not None:
                on_cell(cell)
    cells = [merge_blocks(b) for b in blocks]
    fill_ratios(cells)
    if macs:
        rate_cells(cells, macs, measured)
    return cells


def cell_rows(cells: list[Cell]) -> list[dict]:
    """One row per cell; the instances (pid, runs, fps) are kept as a list in each row."""
    return [asdict(c) for c in cells]


def scaling_rows(cells: list[Cell], macs_share: dict[str, float]) -> list[dict]:
    """Per variant x runtime: fps at each thread count (one instance) and aggregate fps at each
    concurrency (1 thread each), beside the share of the variant's MACs spent in attention
    fusion (``macs_share``) -- the study expects convolutions to favour one thread and
    transformers to scale with threads."""
    rows: dict[tuple, dict] = {}
    for c in cells:
        row = rows.setdefault(c.key, {"variant": c.variant, "runtime": c.runtime, "precision": c.precision, "device": c.device,
                                      "fusion_macs_pct": macs_share.get(c.variant)})
        if c.error:
            continue
        if c.concurrency == 1:
            row[f"fps_{c.threads}t"] = c.instance_fps_median
            if c.thread_speedup is not None and c.threads > 1:
                row[f"speedup_{c.threads}t"] = c.thread_speedup
        if c.threads == 1:
            row[f"aggregate_fps_c{c.concurrency}"] = c.aggregate_fps
            if c.concurrency > 1 and c.single_fps:
                row[f"efficiency_c{c.concurrency}"] = c.aggregate_fps / (c.concurrency * c.single_fps)
    return list(rows.values())


def speed_column(cells: list[Cell], reported: dict[str, float | None]) -> list[dict]:
    """Measured 1-thread fps (one instance) beside the study's ``speed_1thread_fps``, each as a
    ratio to ``base-c128`` when it was measured too."""
    fps = {c.key: c.instance_fps_median for c in cells if c.threads == 1 and c.concurrency == 1 and not c.error}
    rows = []
    for (variant, runtime, precision, device), measured in fps.items():
        base = fps.get((BASELINE, runtime, precision, device))
        rep, rep_base = reported.get(variant), reported.get(BASELINE)
        rows.append({
            "variant": variant, "runtime": runtime, "precision": precision, "device": device, "measured_fps": measured,
            "reported_fps": rep,
            "measured_vs_base": measured / base if base else None,
            "reported_vs_base": rep / rep_base if rep and rep_base else None,
        })
    for row in rows:
        if row["measured_vs_base"] is not None and row["reported_vs_base"] is not None:
            row["ratio_agreement"] = row["measured_vs_base"] / row["reported_vs_base"]
    return rows

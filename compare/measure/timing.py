"""Latency of each runtime x thread count, beside PyTorch eager and the ceiling of its precision.

Every runtime x thread count is measured in a process of its own (:mod:`compare.measure.worker`): load,
one first run (its latency is reported), ``warmup`` runs, ``runs`` timed runs. Latency is the
runner's ``last_inference_time`` (the runtime's own call, without NCHW<->NHWC conversion).
Reported: median, p90, p99, min (ms), fps (1000 / median), first-run latency, CPU time / wall
time over the timed runs (how many cores were busy), the child's peak resident-memory increase
over load and runs, speedup vs PyTorch eager at the same thread count, and effective GFLOP/s
(``macs_total * 2 / median``) beside the ceiling of the row's precision at the same thread count
(:mod:`compare.measure.ceiling`: the best real matrix multiply of that precision, int8 GEMM for
int8 rows), measured in the same run. Thread counts above ``os.cpu_count()`` run but are flagged.

With ``repeats`` > 1 the measurement is interleaved blocks (:mod:`compare.measure.blocks`): every
row once per block, the ceiling beside each block; each row carries the interval and spread of
its block medians, the ceiling its own, and the verdict names the noisy figure.

A row is flagged unreliable (``reliable`` False, ``contention`` says why) when other processes
used more CPUs during its timed runs than the measurement left free in every block
(:func:`compare.measure.machine.contention`; a contended block is left out when another block was
clean), when its block medians are noisy, when it beats its ceiling from a single block (or with a
noisy row beside a steady ceiling), or when its speedup is relative to an unreliable PyTorch row
(one that is only noisy is named in ``noisy`` instead).
A row beyond a *noisy* ceiling stays trusted: ``ceiling_note`` says the ceiling is to blame.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from compare.inputs import Pair
from compare.measure.blocks import Verdict, block_order, kept_blocks, noise_only, rate_row, spread
from compare.measure.ceiling import CeilingBlock, MeasureKernels, ceiling_precision, ceiling_spread, measure_ceiling
from compare.measure.machine import contention
from compare.measure.worker import Measurement, MeasureTask, RunnerSpec, measure


@dataclass
class Timing:
    """One runtime at one thread count."""

    variant: str
    runtime: str
    precision: str
    threads: int
    oversubscribed: bool
    warmup: int
    runs: int
    load_s: float
    first_ms: float
    median_ms: float
    p90_ms: float
    p99_ms: float
    min_ms: float
    fps: float
    cpu_per_wall: float  # process CPU time / wall time over the timed runs
    peak_mem_mb: float | None
    pid: int = 0
    speedup_vs_pytorch: float | None = None
    gflops: float | None = None  # macs_total * 2 / median
    sgemm_gflops: float | None = None  # the float32 ceiling at this thread count (median over blocks)
    sgemm_library: str | None = None
    pct_of_sgemm: float | None = None  # gflops / sgemm_gflops x 100
    #: the ceiling of this row's precision (int8 GEMM for int8 ...): how close to the machine
    ceiling_precision: str | None = None
    ceiling_gflops: float | None = None
    ceiling_kernel: str | None = None
    ceiling_spread_pct: float | None = None  # (max - min) / median of the ceiling's blocks, %
    pct_of_ceiling: float | None = None  # gflops / ceiling_gflops x 100
    repeats: int = 1  # interleaved blocks measured
    blocks_left_out: int = 0  # blocks under contention left out (another block was clean)
    block_median_ms: list[float] = field(default_factory=list)  # each kept block's median
    median_lo_ms: float | None = None  # the interval of the block medians
    median_hi_ms: float | None = None
    spread_pct: float | None = None  # (hi - lo) / median of the block medians, %; None from one block
    noisy: str | None = None  # the noisy figure(s) with their spreads: "row 25%", "ceiling 38%"
    ceiling_note: str | None = None  # why the % of ceiling is not to be trusted while the row is
    other_cores: float | None = None  # CPUs other processes kept busy during the timed runs (worst kept block)
    reliable: bool = True  # False: measured under contention (see ``contention``)
    contention: str | None = None  # why the row is unreliable
    error: str | None = None
    device: str = "local"  # where it was timed (zoo.devices)

    def flag(self, reason: str) -> None:
        """Mark the row unreliable for ``reason`` (reasons accumulate)."""
        self.reliable = False
        self.contention = reason if not self.contention else f"{self.contention}; {reason}"


def oversubscribed(threads: int) -> bool:
    return threads > (os.cpu_count() or 1)


def timing_from(ms: Measurement | list[Measurement], spec: RunnerSpec, warmup: int) -> Timing:
    """The timing row of one child's measurement, or of one row's measurements in interleaved
    blocks (``error`` set when any block failed; contended blocks left out when one was clean)."""
    ms = [ms] if isinstance(ms, Measurement) else list(ms)
    nan = float("nan")
    m0 = ms[0]
    base = dict(variant=spec.variant.name, runtime=spec.key.label, precision=spec.key.precision, threads=m0.threads,
                oversubscribed=oversubscribed(m0.threads) if m0.device_cpus is None else m0.threads > m0.device_cpus,
                warmup=warmup, pid=m0.pid, device=m0.device if m0.device != "local" else spec.device.name, repeats=len(ms))
    failed = next((m for m in ms if not m.ok), None)
    if failed is not None:
        return Timing(**base, runs=0, load_s=nan, first_ms=nan, median_ms=nan, p90_ms=nan, p99_ms=nan,
                      min_ms=nan, fps=nan, cpu_per_wall=nan, peak_mem_mb=None, error=failed.error or "no timed run")
    loads = [contention(m.machine_busy_s, m.cpu_s, m.wall_s, m.threads, cpu_count=m.device_cpus) for m in ms]
    kept, left_out = kept_blocks([c is not None and c.contended for c in loads])
    use = [ms[i] for i in kept]
    ms_all = np.concatenate([np.asarray(m.times_s) for m in use]) * 1e3
    median = float(np.median(ms_all))
    cpu, wall = sum(m.cpu_s for m in use), sum(m.wall_s for m in use)
    peaks = [m.peak_mem_bytes for m in use if m.peak_mem_bytes is not None]
    blocks = [float(np.median(m.times_s)) * 1e3 for m in use]
    latency = spread(blocks)
    row = Timing(
        **base, runs=len(ms_all), load_s=m0.load_s, first_ms=m0.first_s * 1e3, median_ms=median,
        p90_ms=float(np.percentile(ms_all, 90)), p99_ms=float(np.percentile(ms_all, 99)), min_ms=float(ms_all.min()),
        fps=1e3 / median, cpu_per_wall=cpu / wall if wall > 0 else nan,
        peak_mem_mb=max(peaks) / 2**20 if peaks else None, blocks_left_out=left_out, block_median_ms=blocks,
        median_lo_ms=latency.lo, median_hi_ms=latency.hi, spread_pct=latency.pct,
    )
    kept_loads = [loads[i] for i in kept if loads[i] is not None]
    if kept_loads:
        worst = max(kept_loads, key=lambda c: c.other_cores)
        row.other_cores = worst.other_cores
        if worst.reason:
            row.flag(worst.reason + (f" (in all {len(ms)} blocks)" if len(ms) > 1 else ""))
    return row


def time_spec(spec: RunnerSpec, pair: Pair, threads: int, warmup: int, runs: int) -> Timing:
    """Time one runner in a fresh process."""
    return timing_from(measure_block(spec, pair, threads, warmup, runs), spec, warmup)


def measure_block(spec: RunnerSpec, pair: Pair, threads: int, warmup: int, runs: int) -> Measurement:
    """One block's measurement of one runner: a fresh process (or the spec's device)."""
    return measure([MeasureTask(spec, pair, threads, warmup, runs)])[0]


@dataclass
class TimingJob:
    """What to time for one variant: PyTorch eager (``reference``) and each runtime's artifact."""

    variant: str
    macs_total: int
    pair: Pair
    #: None on a device (PyTorch eager runs here only)
    reference: RunnerSpec | None
    runtimes: list[RunnerSpec]
    #: runtimes whose graph does other work per call (``<runtime>-split``: the track graph) -> its MACs
    macs_by_runtime: dict[str, int] = field(default_factory=dict)


def time_jobs(jobs: list[TimingJob], threads: list[int], warmup: int, runs: int,
              on_row: Callable[[Timing], None] | None = None, repeats: int = 1,
              kernels: MeasureKernels | None = None, ceilings: list[CeilingBlock] | None = None,
              on_block: Callable[[RunnerSpec, int, int], None] | None = None) -> list[Timing]:
    """Timing rows of every job at every thread count, speedup, GFLOP/s and ceilings filled in.

    Each row comes from its own child process per block, so runtimes cannot disturb each other
    (thread pools, allocator state, memory high-water marks). ``repeats`` interleaved blocks per
    thread count: each block measures the ceilings the rows' precisions need (``kernels``:
    :func:`compare.measure.ceiling.kernel_gflops` unless given; appended to ``ceilings`` when a
    list is passed), then every row (``on_block(spec, threads, block)`` before each). A runtime
    that fails to load or run gives a row with ``error`` set instead of an exception.
    """
    rows: list[Timing] = []
    measured = ceilings if ceilings is not None else []
    for n in sorted(set(threads)):
        specs = [(job, spec) for job in jobs for spec in (job.reference, *job.runtimes) if spec is not None]
        local = {ceiling_precision(spec.key.precision) for _, spec in specs if spec.device.is_local}
        blocks: list[list[Measurement]] = [[] for _ in specs]
        here: list[CeilingBlock] = []
        for b in range(repeats):
            if local:  # beside each block, before its rows (float32's too: every row has its sgemm figure)
                here.append(measure_ceiling(b, n, local | {"fp32"}, kernels))
            for i in block_order(list(range(len(specs))), b):
                job, spec = specs[i]
                if on_block is not None:
                    on_block(spec, n, b)
                blocks[i].append(measure_block(spec, job.pair, n, warmup, runs))
        measured.extend(here)
        timed = {id(spec): timing_from(blocks[i], spec, warmup) for i, (_, spec) in enumerate(specs)}
        for job in jobs:
            batch = [timed[id(s)] for s in (job.reference, *job.runtimes) if s is not None]
            ref = batch[0] if job.reference is not None else None
            rough_ref = False  # PyTorch's figure only noisy: each speedup names it instead of flagging the row
            for row in batch:
                flagged_before = not row.reliable
                verdict = _rate(row, job, here, ref, rough_ref)
                if row is ref and verdict is not None:
                    rough_ref = noise_only(verdict, flagged_before)
                if on_row is not None:
                    on_row(row)
            rows.extend(batch)
    return rows


def _rate(row: Timing, job: TimingJob, ceilings: list[CeilingBlock], ref: Timing | None, rough_ref: bool) -> Verdict | None:
    """GFLOP/s, the ceiling of the row's precision (rows of this machine only: no device row is
    judged by this machine's kernels), the verdict on noise, and the speedup vs PyTorch: relative
    to an unreliable PyTorch row it flags the row, unless PyTorch's figure is only noisy
    (``rough_ref``): then ``noisy`` names it."""
    if row.error is not None:
        return None
    gflops = 2.0 * job.macs_by_runtime.get(row.runtime, job.macs_total) / (row.median_ms / 1e3) / 1e9
    row.gflops = gflops
    latency = spread(row.block_median_ms)
    if row.device == "local":
        fp32, library = ceiling_spread(ceilings, row.threads, "fp32")
        if fp32 is not None:
            row.sgemm_gflops, row.sgemm_library, row.pct_of_sgemm = fp32.median, library, 100.0 * gflops / fp32.median
        precision = ceiling_precision(row.precision)
        ceiling, kernel = ceiling_spread(ceilings, row.threads, precision)
        verdict = rate_row(row, gflops, latency, ceiling, kernel, precision)
    else:
        verdict = rate_row(row, gflops, latency, None, None, row.precision)
    if ref is not None and ref.error is None:
        row.speedup_vs_pytorch = ref.median_ms / row.median_ms
        if not ref.reliable and row is not ref:
            if rough_ref:
                row.noisy = ", ".join(x for x in (row.noisy, f"PyTorch {ref.spread_pct:.0f}%") if x)
            else:
                row.flag("speedup relative to an unreliable PyTorch row")
    return verdict


def timing_rows(timings: list[Timing]) -> list[dict]:
    """Plain dicts of the timing rows (for tables and writers)."""
    return [asdict(t) for t in timings]


def slowest_rows(rows: list[dict], keys: tuple[str, ...] = ("variant", "runtime", "precision", "threads"),
                 fps: str = "fps") -> list[dict]:
    """Per row key, the slowest of the devices it was timed on (the study's rule: ship for the
    slower phone), with every device's figure; rows of this machine are left out."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if r.get("device", "local") != "local" and r.get(fps) is not None and r.get("error") is None:
            groups.setdefault(tuple(r[k] for k in keys), []).append(r)
    out = []
    for key, group in groups.items():
        worst = min(group, key=lambda r: r[fps])
        out.append({**dict(zip(keys, key)), "slowest_device": worst["device"], fps: worst[fps], "devices": len(group),
                    "all": ", ".join(f"{r['device']} {r[fps]:.1f}" for r in sorted(group, key=lambda r: r[fps]))})
    return out

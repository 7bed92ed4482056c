"""Latency of each runtime x thread count, beside PyTorch eager and a matrix-multiply ceiling.

Every runtime x thread count is measured in a process of its own (:mod:`compare.measure.worker`): load,
one first run (its latency is reported), ``warmup`` runs, ``runs`` timed runs. Latency is the
runner's ``last_inference_time`` (the runtime's own call, without NCHW<->NHWC conversion).
Reported: median, p90, p99, min (ms), fps (1000 / median), first-run latency, CPU time / wall
time over the timed runs (how many cores were busy), the child's peak resident-memory increase
over load and runs, speedup vs PyTorch eager at the same thread count, and effective GFLOP/s
(``macs_total * 2 / median``) beside the best float32 matrix multiply of several BLAS
libraries at the same thread count, measured in the same run. Thread counts above
``os.cpu_count()`` run but are flagged.

A row is flagged unreliable (``reliable`` False, ``contention`` says why) when other processes
used more CPUs during its timed runs than the measurement left free (the machine's busy CPU
time from ``/proc/stat`` minus the child's own: :func:`compare.measure.machine.contention`), when it
beats the sgemm ceiling (> 100 %: the ceiling or the row was measured under load), or when its
speedup is relative to an unreliable PyTorch row.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from compare.inputs import Pair
from compare.measure.machine import contention
from compare.measure.worker import Measurement, MeasureTask, RunnerSpec, measure


def _best_time(fn, repeats: int) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _torch_mm(threads: int, n: int, repeats: int) -> float:
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        gen = torch.Generator().manual_seed(0)
        a, b, out = torch.rand(n, n, generator=gen), torch.rand(n, n, generator=gen), torch.empty(n, n)
        return _best_time(lambda: torch.mm(a, b, out=out), repeats)
    finally:
        torch.set_num_threads(previous)


def _onnxruntime_mm(threads: int, n: int, repeats: int) -> float:
    import onnxruntime as ort
    from onnx import TensorProto, helper

    spec = [helper.make_tensor_value_info(k, TensorProto.FLOAT, [n, n]) for k in ("a", "b", "c")]
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "sgemm", spec[:2], spec[2:])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feed = {k: rng.random((n, n), dtype=np.float32) for k in ("a", "b")}
    return _best_time(lambda: session.run(None, feed), repeats)


#: float32 matrix multiplies the ceiling is the best of (library name -> seconds for n x n)
SGEMM_LIBRARIES: dict[str, Callable[[int, int, int], float]] = {
    "torch (MKL)": _torch_mm,
    "onnxruntime (MLAS)": _onnxruntime_mm,
}


def sgemm_gflops(threads: int, n: int = 1024, repeats: int = 5) -> dict[str, float]:
    """GFLOP/s of a float32 ``n x n`` matrix multiply per library at ``threads`` threads (best of
    ``repeats``); a library that is not installed is left out."""
    figures = {}
    for name, fn in SGEMM_LIBRARIES.items():
        try:
            figures[name] = 2.0 * n**3 / fn(threads, n, repeats) / 1e9
        except ImportError:
            continue
    return figures


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
    sgemm_gflops: float | None = None  # best library at this thread count
    sgemm_library: str | None = None
    pct_of_sgemm: float | None = None  # gflops / sgemm_gflops x 100: how close to the machine
    other_cores: float | None = None  # CPUs other processes kept busy during the timed runs
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


def timing_from(m: Measurement, spec: RunnerSpec, warmup: int) -> Timing:
    """The timing row of one child's measurement (``error`` set when it failed)."""
    nan = float("nan")
    base = dict(variant=spec.variant.name, runtime=spec.key.label, precision=spec.key.precision, threads=m.threads,
                oversubscribed=oversubscribed(m.threads) if m.device_cpus is None else m.threads > m.device_cpus,
                warmup=warmup, pid=m.pid, device=m.device if m.device != "local" else spec.device.name)
    if not m.ok:
        return Timing(**base, runs=0, load_s=nan, first_ms=nan, median_ms=nan, p90_ms=nan, p99_ms=nan,
                      min_ms=nan, fps=nan, cpu_per_wall=nan, peak_mem_mb=None, error=m.error or "no timed run")
    ms = np.asarray(m.times_s) * 1e3
    median = float(np.median(ms))
    row = Timing(
        **base, runs=len(ms), load_s=m.load_s, first_ms=m.first_s * 1e3, median_ms=median,
        p90_ms=float(np.percentile(ms, 90)), p99_ms=float(np.percentile(ms, 99)), min_ms=float(ms.min()),
        fps=1e3 / median, cpu_per_wall=m.cpu_s / m.wall_s if m.wall_s > 0 else nan,
        peak_mem_mb=None if m.peak_mem_bytes is None else m.peak_mem_bytes / 2**20,
    )
    load = contention(m.machine_busy_s, m.cpu_s, m.wall_s, m.threads, cpu_count=m.device_cpus)
    if load is not None:
        row.other_cores = load.other_cores
        if load.reason:
            row.flag(load.reason)
    return row


def time_spec(spec: RunnerSpec, pair: Pair, threads: int, warmup: int, runs: int) -> Timing:
    """Time one runner in a fresh process."""
    return timing_from(measure([MeasureTask(spec, pair, threads, warmup, runs)])[0], spec, warmup)


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
              on_row: Callable[[Timing], None] | None = None) -> list[Timing]:
    """Timing rows of every job at every thread count, speedup and GFLOP/s filled in.

    Each row comes from its own child process, so runtimes cannot disturb each other (thread
    pools, allocator state, memory high-water marks). A runtime that fails to load or run gives
    a row with ``error`` set instead of an exception.
    """
    rows: list[Timing] = []
    for n in sorted(set(threads)):
        ceiling = sgemm_gflops(n)
        best = max(ceiling, key=ceiling.get) if ceiling else None
        for job in jobs:
            batch = []
            for spec in [s for s in (job.reference, *job.runtimes) if s is not None]:
                row = time_spec(spec, job.pair, n, warmup, runs)
                if on_row is not None:
                    on_row(row)
                batch.append(row)
            ref = batch[0] if job.reference is not None else None
            for row in batch:
                if row.device == "local":  # the ceiling is this machine's sgemm: no device row is judged by it
                    row.sgemm_gflops, row.sgemm_library = (ceiling[best], best) if best else (None, None)
                if row.error is None:
                    row.gflops = 2.0 * job.macs_by_runtime.get(row.runtime, job.macs_total) / (row.median_ms / 1e3) / 1e9
                    if row.sgemm_gflops:
                        row.pct_of_sgemm = 100.0 * row.gflops / row.sgemm_gflops
                        if row.pct_of_sgemm > 100:
                            row.flag(f"{row.pct_of_sgemm:.0f}% of the sgemm ceiling is impossible: measured under load")
                    if ref is not None and ref.error is None:
                        row.speedup_vs_pytorch = ref.median_ms / row.median_ms
                        if not ref.reliable and row is not ref:
                            row.flag("speedup relative to an unreliable PyTorch row")
            rows.extend(batch)
    return rows


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

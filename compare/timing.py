"""Latency of each runtime x thread count, beside PyTorch eager and a matrix-multiply ceiling.

For every thread count: a float32 matrix multiply (torch sgemm, same thread count) gives the
machine's GFLOP/s right now; then PyTorch eager and each runtime get a fresh runner: load, one
first run (its latency is reported), ``warmup`` runs, ``runs`` timed runs. Latency is the
runner's ``last_inference_time`` (the runtime's own call, without NCHW<->NHWC conversion).
Reported: median, p90, p99, min (ms), fps (1000 / median), first-run latency, CPU time / wall
time over the timed runs (how many cores were busy), the peak resident-memory increase over
load and runs, speedup vs PyTorch eager at the same thread count, and effective GFLOP/s
(``macs_total * 2 / median``). Thread counts above ``os.cpu_count()`` run but are flagged.
"""
from __future__ import annotations

import gc
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from compare.inputs import Pair
from compare.runners import BaseRunner

_CLEAR_REFS = "/proc/self/clear_refs"


class PeakRss:
    """Peak resident-set increase (bytes) of this process over a ``with`` block.

    On Linux the kernel's high-water mark (``VmHWM``) is reset through ``/proc/self/clear_refs``
    and read at the end (exact); elsewhere a thread samples psutil's RSS every 2 ms (may miss
    short peaks). ``method`` says which one was used.
    """

    def __init__(self):
        self.method = "VmHWM delta" if self._can_reset() else "sampled RSS delta"
        self.peak_bytes: int | None = None

    @staticmethod
    def _can_reset() -> bool:
        try:
            with open(_CLEAR_REFS, "w") as fh:
                fh.write("5")
            return True
        except OSError:
            return False

    @staticmethod
    def _status(field: str) -> int:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
        raise OSError(field)

    def __enter__(self) -> "PeakRss":
        gc.collect()
        if self.method == "VmHWM delta":
            self._can_reset()
            self._start = self._status("VmRSS")
        else:
            import psutil

            self._proc = psutil.Process()
            self._start = self._sampled = self._proc.memory_info().rss
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.002):
            self._sampled = max(self._sampled, self._proc.memory_info().rss)

    def __exit__(self, *exc) -> None:
        if self.method == "VmHWM delta":
            peak = self._status("VmHWM")
        else:
            self._stop.set()
            self._thread.join()
            peak = self._sampled
        self.peak_bytes = max(0, peak - self._start)


def memory_method() -> str:
    """How :class:`PeakRss` measures on this machine."""
    return PeakRss().method


def sgemm_gflops(threads: int, n: int = 1024, repeats: int = 5) -> float:
    """Best-of-``repeats`` float32 ``n x n`` matrix-multiply GFLOP/s (torch) at ``threads`` threads."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        gen = torch.Generator().manual_seed(0)
        a, b = torch.rand(n, n, generator=gen), torch.rand(n, n, generator=gen)
        out = torch.empty(n, n)
        torch.mm(a, b, out=out)  # warm-up
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            torch.mm(a, b, out=out)
            best = min(best, time.perf_counter() - start)
    finally:
        torch.set_num_threads(previous)
    return 2.0 * n**3 / best / 1e9


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
    speedup_vs_pytorch: float | None = None
    gflops: float | None = None  # macs_total * 2 / median
    sgemm_gflops: float | None = None
    error: str | None = None


def time_runner(runner: BaseRunner, pair: Pair, threads: int, warmup: int, runs: int,
                variant: str, runtime: str, precision: str) -> Timing:
    """Load ``runner`` at ``threads`` threads, run it once, ``warmup`` times, then ``runs`` timed times."""
    if runs < 1:
        raise ValueError("runs must be >= 1")
    runner.set_threads(threads)
    with PeakRss() as memory:
        start = time.perf_counter()
        runner.load()
        load_s = time.perf_counter() - start
        try:
            runner.infer(pair)
            first = runner.last_inference_time
            for _ in range(warmup):
                runner.infer(pair)
            times = []
            cpu0, wall0 = time.process_time(), time.perf_counter()
            for _ in range(runs):
                runner.infer(pair)
                times.append(runner.last_inference_time)
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        finally:
            runner.close()
    ms = np.asarray(times) * 1e3
    median = float(np.median(ms))
    return Timing(
        variant=variant, runtime=runtime, precision=precision, threads=threads,
        oversubscribed=threads > (os.cpu_count() or 1), warmup=warmup, runs=runs, load_s=load_s,
        first_ms=first * 1e3, median_ms=median, p90_ms=float(np.percentile(ms, 90)),
        p99_ms=float(np.percentile(ms, 99)), min_ms=float(ms.min()), fps=1e3 / median,
        cpu_per_wall=cpu / wall if wall > 0 else float("nan"),
        peak_mem_mb=None if memory.peak_bytes is None else memory.peak_bytes / 2**20,
    )


RunnerFactory = Callable[[], BaseRunner]


@dataclass
class TimingJob:
    """What to time for one variant: PyTorch eager and each ``(runtime, precision, factory)``."""

    variant: str
    macs_total: int
    pair: Pair
    reference: RunnerFactory
    runtimes: list[tuple[str, str, RunnerFactory]]


def _failed_row(job: TimingJob, runtime: str, precision: str, threads: int, warmup: int, runs: int, exc: Exception) -> Timing:
    nan = float("nan")
    return Timing(job.variant, runtime, precision, threads, threads > (os.cpu_count() or 1), warmup, runs,
                  nan, nan, nan, nan, nan, nan, nan, nan, None,
                  error=f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")


def time_jobs(jobs: list[TimingJob], threads: list[int], warmup: int, runs: int,
              on_row: Callable[[Timing], None] | None = None) -> list[Timing]:
    """Timing rows of every job at every thread count, speedup and GFLOP/s filled in.

    Thread counts run in ascending order, each over all jobs, so no multi-threaded runtime has
    been created in the process before the 1-thread runs (MNN keeps a process-wide thread pool
    that makes later 1-thread runtimes spin a second core). A runtime that fails to load or run
    gives a row with ``error`` set instead of an exception.
    """
    rows: list[Timing] = []
    for n in sorted(set(threads)):
        ceiling = sgemm_gflops(n)
        for job in jobs:
            ref = time_runner(job.reference(), job.pair, n, warmup, runs, job.variant, "pytorch", "fp32")
            batch = [ref]
            for runtime, precision, factory in job.runtimes:
                try:
                    batch.append(time_runner(factory(), job.pair, n, warmup, runs, job.variant, runtime, precision))
                except Exception as exc:  # reported in the row: one runtime must not stop the others
                    batch.append(_failed_row(job, runtime, precision, n, warmup, runs, exc))
            for row in batch:
                row.sgemm_gflops = ceiling
                if row.error is None:
                    row.speedup_vs_pytorch = ref.median_ms / row.median_ms
                    row.gflops = 2.0 * job.macs_total / (row.median_ms / 1e3) / 1e9
                if on_row is not None:
                    on_row(row)
            rows.extend(batch)
    return rows


def timing_rows(timings: list[Timing]) -> list[dict]:
    """Plain dicts of the timing rows (for tables and writers)."""
    return [asdict(t) for t in timings]

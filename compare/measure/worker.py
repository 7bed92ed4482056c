"""Measurements in processes of their own: one runtime instance per child process.

Timing every runtime in one long-lived process skews the figures: MNN keeps a process-wide
thread pool, so once a 2-thread MNN runtime has existed a later 1-thread one spins a second
core; peak memory of one runtime hides in what an earlier one freed; allocator and BLAS state
carry over. Each :class:`MeasureTask` therefore runs in a fresh ``spawn`` child that builds its
runner from a picklable :class:`RunnerSpec`, loads it, runs once (first-run latency), warms up,
then times ``runs`` calls (or keeps going for ``duration_s`` seconds) and sends back a
:class:`Measurement` with its own pid.

:func:`measure` runs tasks one after another (``concurrent=False``) or all at once, each in its
own process, with a barrier so every instance starts its timed phase at the same moment (the
study's "several trackers running at the same time").
"""
from __future__ import annotations

import gc
import multiprocessing as mp
import os
import queue as queue_mod
import threading
import time
import traceback
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from compare.measure.machine import cpu_busy_seconds
from compare.runners import open_artifact
from zoo.artifacts import ArtifactKey
from zoo.backends import REFERENCE_RUNTIME, reference_runner_class
from zoo.devices import LOCAL, Device
from zoo.procs import die_with_parent, ignore_sigint, sigint_blocked
from zoo.schema import Variant

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
    def _status(field_name: str) -> int:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1]) * 1024
        raise OSError(field_name)

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


@dataclass(frozen=True)
class RunnerSpec:
    """A picklable recipe for a runner: the artifact ``key`` of ``variant`` in its directory, or
    PyTorch eager for the reference key."""

    key: ArtifactKey
    variant: Variant
    artifact: Path | None = None
    #: where it runs (timed there by :mod:`compare.measure.on_device` when not this machine)
    device: Device = LOCAL

    @classmethod
    def reference(cls, variant: Variant) -> RunnerSpec:
        return cls(ArtifactKey.for_runtime(variant.name, REFERENCE_RUNTIME), variant)

    def build(self):
        """The (unloaded) runner this spec describes."""
        if self.key.is_reference:
            return reference_runner_class()(self.variant)
        return open_artifact(self.artifact, self.variant)

    def on(self, device: Device) -> "RunnerSpec":
        """This recipe run on ``device``."""
        return dataclasses.replace(self, device=device)

    @property
    def label(self) -> str:
        where = "" if self.device.is_local else f" on {self.device.name}"
        return f"{self.variant.name} {self.key.label} {self.key.precision}{where}"


@dataclass(frozen=True)
class MeasureTask:
    """What one child process does: load ``spec`` at ``threads`` threads and time it."""

    spec: RunnerSpec
    inputs: dict[str, np.ndarray]
    threads: int
    warmup: int = 3
    runs: int = 20  # timed runs (at least this many)
    duration_s: float = 0.0  # ... and keep running until this many seconds have passed
    #: on a device: pin to its fastest cores (highest ``cpuinfo_max_freq``)
    big_cores: bool = False
    #: on a device: first wait until every thermal zone is at or below this temperature (deg C)
    cooldown_c: float | None = None


@dataclass
class Measurement:
    """What a child measured: per-run latencies and the wall-clock time each run ended."""

    pid: int
    threads: int
    load_s: float = float("nan")
    first_s: float = float("nan")
    times_s: list[float] = field(default_factory=list)  # runner.last_inference_time per timed run
    ends: list[float] = field(default_factory=list)  # time.time() at the end of each timed run
    start: float = float("nan")  # time.time() when the timed phase began
    cpu_s: float = float("nan")  # process CPU time over the timed phase
    wall_s: float = float("nan")
    peak_mem_bytes: int | None = None  # peak RSS increase over load + runs
    #: CPU seconds the whole machine was busy during the timed phase (ours included; None: unknown)
    machine_busy_s: float | None = None
    error: str | None = None
    #: measured on a device: its clock samples ``[time, max MHz, max deg C]`` (device time, like ``ends``)
    samples: list | None = None
    #: measured on a device: which one, and its CPU count
    device: str = "local"
    device_cpus: int | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.times_s)


def run_measurement(task: MeasureTask, barrier=None) -> Measurement:
    """Run ``task`` in this process (the child's body); errors are reported, not raised."""
    result = Measurement(pid=os.getpid(), threads=task.threads)
    try:
        runner = task.spec.build()
        runner.set_threads(task.threads)
        with PeakRss() as memory:
            t0 = time.perf_counter()
            runner.load()
            result.load_s = time.perf_counter() - t0
            runner.infer(task.inputs)
            result.first_s = runner.last_inference_time
            for _ in range(task.warmup):
                runner.infer(task.inputs)
            if barrier is not None:
                barrier.wait(timeout=600)
            result.start = time.time()
            deadline = time.perf_counter() + task.duration_s
            busy0, cpu0, wall0 = cpu_busy_seconds(), time.process_time(), time.perf_counter()
            while len(result.times_s) < task.runs or time.perf_counter() < deadline:
                runner.infer(task.inputs)
                result.times_s.append(runner.last_inference_time)
                result.ends.append(time.time())
            result.cpu_s, result.wall_s = time.process_time() - cpu0, time.perf_counter() - wall0
            busy1 = cpu_busy_seconds()
            if busy0 is not None and busy1 is not None:
                result.machine_busy_s = busy1 - busy0
        result.peak_mem_bytes = memory.peak_bytes
        runner.close()
    except Exception as exc:  # noqa: BLE001 - sent to the parent as the row's error
        if barrier is not None:
            barrier.abort()  # the others must not wait for an instance that will never come
        lines = str(exc).splitlines()
        result.error = f"{type(exc).__name__}: {lines[0] if lines else ''}"
        if os.environ.get("ZOO_DEBUG"):
            result.error += "\n" + traceback.format_exc()
    return result


def _child(task: MeasureTask, barrier, results) -> None:
    # Ctrl-C reaches the whole foreground process group: the parent stops the children (no
    # traceback from each of them), and a parent that dies takes them along.
    ignore_sigint()
    die_with_parent()
    results.put(run_measurement(task, barrier))


def _stop(procs: list) -> None:
    """Terminate every child still running and reap them all (kill what ignores SIGTERM)."""
    for _, p in procs:
        if p.pid is not None and p.is_alive():
            p.terminate()
    deadline = time.monotonic() + 3
    for _, p in procs:
        if p.pid is None:
            continue
        p.join(timeout=max(0.0, deadline - time.monotonic()))
        if p.is_alive():
            p.kill()
            p.join()


def _collect(procs: list, results, out: list, tasks: list[MeasureTask], timeout_s: float) -> None:
    """Start ``procs``, gather their measurements into ``out`` and reap them."""
    with sigint_blocked():  # the children start with SIGINT blocked, then ignore it
        for _, p in procs:
            p.start()
    by_pid = {p.pid: i for i, p in procs}
    deadline = time.monotonic() + timeout_s
    pending = len(procs)
    while pending and time.monotonic() < deadline:
        try:
            m = results.get(timeout=0.5)
        except queue_mod.Empty:
            if all(not p.is_alive() for _, p in procs) and results.empty():
                break
            continue
        out[by_pid[m.pid]] = m
        pending -= 1
    for i, p in procs:
        p.join(timeout=5)
        if p.is_alive():
            p.kill()
            p.join()
        if out[i] is None:
            why = f"timed out after {timeout_s:.0f} s" if p.exitcode is None or p.exitcode == -9 else f"exit code {p.exitcode}"
            out[i] = Measurement(pid=p.pid or 0, threads=tasks[i].threads, error=f"child process died ({why})")


def measure(tasks: list[MeasureTask], concurrent: bool = False, timeout_s: float = 900.0) -> list[Measurement]:
    """Run each task in a fresh process: one after another, or all at once behind a barrier.

    Results come back in task order. A child that dies (a runtime crashing in native code) or
    does not answer within ``timeout_s`` gives a :class:`Measurement` with ``error`` set.
    """
    if not tasks:
        return []
    if any(not t.spec.device.is_local for t in tasks):
        from compare.measure.on_device import measure_on_devices  # a measurement on a device, not a child here
        return measure_on_devices(tasks, concurrent, timeout_s)
    ctx = mp.get_context("spawn")
    batches = [list(enumerate(tasks))] if concurrent else [[(i, t)] for i, t in enumerate(tasks)]
    out: list[Measurement | None] = [None] * len(tasks)
    for batch in batches:
        results = ctx.Queue()
        barrier = ctx.Barrier(len(batch)) if concurrent and len(batch) > 1 else None
        procs = [(i, ctx.Process(target=_child, args=(t, barrier, results), daemon=True)) for i, t in batch]
        try:
            _collect(procs, results, out, tasks, timeout_s)
        except BaseException:  # Ctrl-C, SIGTERM (zoo.procs.Interrupted), a bug: no child outlives us
            _stop(procs)
            raise
        finally:
            results.close()
            results.join_thread()
    return out  # type: ignore[return-value]

"""Deployment benchmarks on the runners: thread scaling, several trackers at once, sustained runs.

Everything is measured in child processes (:mod:`compare.measure.worker`), one runtime instance each:

- a **cell** is one variant x runtime x thread count x concurrency ``c``: ``c`` processes load
  their own instance, warm up, wait at a barrier and then all run for the same ``seconds``.
  Per instance: fps = 1000 / median latency of the runtime call; aggregate fps = their sum;
  slowdown = the single instance's fps / an instance's fps at ``c`` (median and worst).
- a **sustained run** keeps one instance busy for ``duration`` seconds; throughput is counted per
  ``window`` (runs that ended in it / window length) while the parent samples the CPU clock and
  temperature where the machine exposes them.
- the **speed column** puts each variant's measured 1-thread fps beside the study's
  ``speed_1thread_fps``, both as ratios to ``base-c128`` (absolute figures come from different
  machines; the ratios are comparable).

Functions return dataclasses / plain rows; the CLI (:mod:`zoo.cli.bench_cmd`) draws them.
"""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from compare.inputs import Pair
from compare.measure.machine import contention, sample_clock
from compare.measure.worker import Measurement, MeasureTask, RunnerSpec, measure
from zoo.fileio import atomic_path, plot_format, writing

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
    reliable: bool = True  # False: other processes competed for the CPUs (see ``contention``)
    contention: str | None = None
    error: str | None = None
    device: str = "local"  # where it ran (zoo.devices)

    @property
    def key(self) -> tuple:
        return self.variant, self.runtime, self.precision, self.device


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


def run_cells(specs: list[tuple[RunnerSpec, Pair]], threads: list[int], concurrency: list[int], seconds: float,
              warmup: int = 5, on_cell: Callable[[Cell], None] | None = None, device_options: dict | None = None) -> list[Cell]:
    """Every spec at every thread count x concurrency (concurrency 1 is always measured)."""
    cells = []
    for spec, pair in specs:
        for t in sorted(set(threads)):
            for c in sorted(set(concurrency) | {1}):
                cell = run_cell(spec, pair, t, c, seconds, warmup, device_options=None if spec.device.is_local else device_options)
                cells.append(cell)
                if on_cell is not None:
                    on_cell(cell)
    fill_ratios(cells)
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


# -- sustained runs ---------------------------------------------------------------------------------
@dataclass
class Window:
    index: int
    t_start_s: float  # seconds since the timed phase began
    t_end_s: float
    runs: int
    fps: float  # runs that ended in the window / window length
    median_ms: float | None
    cpu_mhz: float | None
    temp_c: float | None


@dataclass
class Sustained:
    variant: str
    runtime: str
    precision: str
    threads: int
    duration_s: float
    window_s: float
    pid: int
    runs: int
    windows: list[Window]
    drop_pct: float | None  # (first window fps - last) / first x 100
    clock: str  # what the machine exposes: "cpu MHz" / "temperature" / "none"
    error: str | None = None
    concurrency: int = 1  # instances running at once in this measurement
    instance: str = "1"  # 1..N, or "all": the aggregate of the N instances
    device: str = "local"  # where it ran; a device's clock and temperature are its own


class _ClockSampler:
    """Samples CPU MHz and temperature every ``period`` seconds in a thread of the parent."""

    def __init__(self, period: float = 1.0):
        self.period, self.samples = period, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while True:
            self.samples.append((time.time(), *sample_clock()))
            if self._stop.wait(self.period):
                return

    def __enter__(self) -> "_ClockSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def _mean_or_none(values: list[float | None]) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def _windows(ends: np.ndarray, times_ms: np.ndarray, start: float, window_s: float, samples: list) -> list[Window]:
    n_windows = max(1, int(np.floor(ends.max() / window_s + 1e-9))) if len(ends) else 1  # a ragged tail is dropped
    windows = []
    for k in range(n_windows):
        lo, hi = k * window_s, (k + 1) * window_s
        inside = (ends >= lo) & (ends < hi)
        around = [x for x in samples if start + lo <= x[0] < start + hi]
        windows.append(Window(k, lo, hi, int(inside.sum()), float(inside.sum()) / window_s,
                              float(np.median(times_ms[inside])) if inside.any() else None,
                              _mean_or_none([x[1] for x in around]), _mean_or_none([x[2] for x in around])))
    return windows


def _drop(windows: list[Window]) -> float | None:
    first, last = windows[0].fps, windows[-1].fps
    return (first - last) / first * 100 if first > 0 and len(windows) > 1 else None


def run_sustained(spec: RunnerSpec, pair: Pair, threads: int, duration_s: float, window_s: float,
                  warmup: int = 5, concurrency: int = 1, device_options: dict | None = None) -> list[Sustained]:
    """``concurrency`` instances (one process each, started together) busy for ``duration_s``
    seconds; fps, CPU clock and temperature per window for each instance, and with several
    instances one more result, ``instance="all"``, whose windows count every instance's runs
    (aggregate fps) on a common time axis starting at the earliest instance's start."""
    tasks = [MeasureTask(spec, pair, threads, warmup, 1, duration_s, **(device_options or {})) for _ in range(concurrency)]
    with _ClockSampler(min(1.0, window_s / 2)) as clock:
        ms = measure(tasks, concurrent=concurrency > 1, timeout_s=duration_s + 600)
    if not spec.device.is_local:  # the device's own samples (its clock, its temperature, in its time)
        clock.samples = sorted(tuple(x) for m in ms for x in (m.samples or []))
    base = dict(variant=spec.variant.name, runtime=spec.key.label, precision=spec.key.precision, threads=threads,
                duration_s=duration_s, window_s=window_s, concurrency=concurrency,
                device=ms[0].device if ms and not spec.device.is_local else spec.device.name)
    exposed = [name for i, name in ((1, "cpu MHz"), (2, "temperature")) if any(x[i] is not None for x in clock.samples)]
    results = []
    for k, m in enumerate(ms, start=1):
        if not m.ok:
            results.append(Sustained(**base, pid=m.pid, runs=0, windows=[], drop_pct=None, clock="none", error=m.error,
                                     instance=str(k)))
            continue
        windows = _windows(np.asarray(m.ends) - m.start, np.asarray(m.times_s) * 1e3, m.start, window_s, clock.samples)
        results.append(Sustained(**base, pid=m.pid, runs=len(m.times_s), windows=windows, drop_pct=_drop(windows),
                                 clock=", ".join(exposed) or "none", instance=str(k)))
    ok = [m for m in ms if m.ok]
    if concurrency > 1 and ok:
        start = min(m.start for m in ok)
        ends = np.concatenate([np.asarray(m.ends) - start for m in ok])
        times = np.concatenate([np.asarray(m.times_s) * 1e3 for m in ok])
        windows = _windows(ends, times, start, window_s, clock.samples)
        failed = [r.error for r in results if r.error]
        results.append(Sustained(**base, pid=0, runs=len(times), windows=windows, drop_pct=_drop(windows),
                                 clock=", ".join(exposed) or "none", instance="all",
                                 error=f"{len(failed)} instance(s) failed: {failed[0]}" if failed else None))
    return results


def window_rows(runs: list[Sustained]) -> list[dict]:
    """One row per window of every sustained run."""
    return [{"variant": s.variant, "runtime": s.runtime, "precision": s.precision, "device": s.device, "threads": s.threads,
             "concurrency": s.concurrency, "instance": s.instance, **asdict(w)} for s in runs for w in s.windows]


def plot_sustained(runs: list[Sustained], path) -> None:
    """PNG of fps per window over time, one line per run (matplotlib, written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    for s in runs:
        if s.windows:
            ax.plot([(w.t_start_s + w.t_end_s) / 2 for w in s.windows], [w.fps for w in s.windows], marker="o",
                    label=f"{s.variant} {s.runtime} {s.precision} {s.threads}T"
                          + (f" ×{s.concurrency} #{s.instance}" if s.concurrency > 1 else "")
                          + ("" if s.device == "local" else f" on {s.device}")
                          + (f" (drop {s.drop_pct:.1f}%)" if s.drop_pct is not None else ""))
    ax.set_xlabel("time (s)")
    ax.set_ylabel(f"fps per {runs[0].window_s:g} s window" if runs else "fps")
    ax.set_title("zoo bench: sustained throughput")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with writing("the plot", path), atomic_path(path, suffix=f".{plot_format(path)}") as tmp:
        fig.savefig(tmp, format=plot_format(path))
    plt.close(fig)

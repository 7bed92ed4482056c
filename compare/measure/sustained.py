"""Sustained runs: instances kept busy for ``duration`` seconds; throughput is counted per
``window`` (runs that ended in it / window length) while the parent samples the CPU clock and
temperature where the machine exposes them (a device's own samples on a device).

Functions return dataclasses / plain rows; the CLI (:mod:`zoo.cli.bench_cmd`) draws them.
"""
from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass

import numpy as np

from compare.inputs import Pair
from compare.measure.machine import sample_clock
from compare.measure.worker import MeasureTask, RunnerSpec, measure
from zoo.fileio import atomic_path, plot_format, writing


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

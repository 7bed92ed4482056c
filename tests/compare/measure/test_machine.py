"""compare.measure.machine: machine facts (the clock, ``machine_info``) and timing under
contention: rows measured while other processes compete for the CPUs are flagged unreliable, in
the row (table) and in its JSON fields.

The detector is tested on synthetic figures, then on real measurements: one while a burner
process (a bounded busy loop started here) keeps a CPU busy, one without it.
"""
from __future__ import annotations

import os
import subprocess
import sys
from contextlib import contextmanager

import pytest

from compare.measure import bench, timing
from compare.measure.machine import TOLERANCE_CORES, Contention, contention, cpu_busy_seconds, machine_info
from compare.measure.timing import Timing, TimingJob, time_jobs, time_spec
from compare.measure.worker import Measurement, RunnerSpec
from zoo.artifacts import ArtifactKey
from zoo.catalog import Catalog
from zoo.sample_inputs import sample_pairs

VARIANT = "base-c128"
BURN = "import sys, time\nend = time.time() + {s}\nprint('burning', flush=True)\nwhile time.time() < end:\n    pass\n"


@contextmanager
def burner(seconds: float = 40.0, n: int = 1):
    """``n`` busy-loop processes, each stopping by itself after ``seconds`` (killed on exit); the block
    starts once every one of them is in its loop (a short measurement could otherwise end before a
    burner's Python has even started)."""
    procs = [subprocess.Popen([sys.executable, "-c", BURN.format(s=seconds)], stdout=subprocess.PIPE, text=True) for _ in range(n)]
    try:
        for p in procs:
            assert p.stdout.readline().strip() == "burning"
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


# -- the detector on synthetic figures -------------------------------------------------------------

def test_other_processes_beyond_the_free_cpus_are_contention() -> None:
    # 2 CPUs, a 2-thread measurement used 2 CPU-s per wall second; the machine was busy 3.5 CPU-s/s.
    c = contention(machine_busy_s=7.0, own_cpu_s=4.0, wall_s=2.0, cores_used=2, cpu_count=2)
    assert c.other_cores == pytest.approx(1.5) and c.free_cores == 0 and c.contended
    assert "1.5 CPUs" in c.reason


def test_an_idle_machine_or_work_on_free_cpus_is_not_contention() -> None:
    idle = contention(machine_busy_s=2.05, own_cpu_s=2.0, wall_s=2.0, cores_used=1, cpu_count=2)
    assert idle.other_cores == pytest.approx(0.025) and not idle.contended and idle.reason is None
    # a 1-thread measurement on 8 CPUs while others keep 3 busy: 7 were free
    assert not contention(8.0, 2.0, 2.0, cores_used=1, cpu_count=8).contended
    # ... but 7.5 busy ones on those 7 free CPUs is contention
    assert contention(17.0, 2.0, 2.0, cores_used=1, cpu_count=8).contended


def test_no_verdict_without_figures() -> None:
    assert contention(None, 1.0, 1.0, 1, 2) is None
    assert contention(1.0, 1.0, 0.0, 1, 2) is None
    assert contention(float("nan"), 1.0, 1.0, 1, 2) is None


def test_machine_busy_time_grows_with_a_burner() -> None:
    import time

    before = cpu_busy_seconds()
    assert before is not None
    with burner(3):
        t0 = time.perf_counter()
        time.sleep(1.0)
        busy = cpu_busy_seconds() - before
        wall = time.perf_counter() - t0
    assert busy / wall > 0.7  # the burner's core at least


def _block(median_ms: float, runs: int = 5) -> Measurement:
    """One block's measurement, as a child sends it: ``runs`` runs at ``median_ms`` on a quiet machine."""
    wall = runs * median_ms / 1e3
    return Measurement(pid=1, threads=2, load_s=0.1, first_s=median_ms / 1e3, times_s=[median_ms / 1e3] * runs,
                       cpu_s=2 * wall, wall_s=wall, machine_busy_s=2 * wall)


def _time(monkeypatch, medians: dict[str, float], macs: int, fp32_gflops: float | None) -> list[Timing]:
    """``time_jobs`` over a PyTorch row and an MNN row whose children measure ``medians``."""
    monkeypatch.setattr(timing, "measure_block", lambda spec, *a: _block(medians[spec.key.runtime]))
    kernels = (lambda names, threads: {"torch (MKL) fp32": fp32_gflops}) if fp32_gflops else (lambda names, threads: {})
    v = Catalog.load().get(VARIANT)
    mnn = RunnerSpec(ArtifactKey.for_runtime(VARIANT, "mnn"), v)
    return time_jobs([TimingJob(VARIANT, macs, {}, RunnerSpec.reference(v), [mnn])], [2], 1, 5, kernels=kernels)


def test_rows_beyond_the_sgemm_ceiling_are_flagged(monkeypatch) -> None:
    """The issue's row: PyTorch slowed down by load, a runtime at 186% of sgemm and 250x PyTorch,
    from one block (nothing tells which figure is noisy)."""
    ref, mnn = _time(monkeypatch, {"pytorch": 1736.0, "mnn": 7.0}, 651_000_000, 100.0)
    assert mnn.pct_of_sgemm == pytest.approx(186, abs=1) and not mnn.reliable and "ceiling" in mnn.contention
    assert "--repeats" in mnn.contention
    assert ref.reliable and ref.contention is None  # 0.75% of sgemm: nothing says it was disturbed here
    assert all(r.reliable for r in _time(monkeypatch, {"pytorch": 40.0, "mnn": 20.0}, 651_000_000, 100.0))


def test_speedup_against_an_unreliable_reference_is_flagged(monkeypatch) -> None:
    monkeypatch.setattr(timing, "contention", lambda *a, **k: Contention(1.0, 0.0, True))
    _, mnn = _time(monkeypatch, {"pytorch": 40.0, "mnn": 20.0}, 1, None)
    assert not mnn.reliable and "unreliable PyTorch" in mnn.contention


# -- real measurements -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def spec_pair():
    v = Catalog.load().get(VARIANT)
    return RunnerSpec.reference(v), sample_pairs(v, 1)[0]


def test_a_timing_row_measured_beside_a_burner_is_flagged(spec_pair) -> None:
    spec, pair = spec_pair
    # one burner per CPU against 2 measuring threads: the burners get about half the machine. One
    # burner against 2 threads got only 0.15 of a CPU over a 3-run measurement on CI (the scheduler's
    # slices are as long as the whole measurement), below what the detector tolerates.
    with burner(n=os.cpu_count() or 2):
        loaded = time_spec(spec, pair, threads=2, warmup=0, runs=8)
    assert loaded.error is None, loaded.error
    assert not loaded.reliable and loaded.other_cores > TOLERANCE_CORES, (loaded.other_cores, loaded.contention)
    assert "other processes used" in loaded.contention


def test_without_a_burner_the_verdict_follows_the_figure(spec_pair) -> None:
    """Tolerant on a shared machine: other sessions may really load it. The verdict must agree
    with the measured figure, and on a machine that was quiet beforehand the row is reliable."""
    spec, pair = spec_pair
    quiet_before = os.getloadavg()[0] < 0.3
    quiet = time_spec(spec, pair, threads=1, warmup=0, runs=5)
    assert quiet.error is None and quiet.other_cores is not None and quiet.other_cores >= 0
    free = max(0, (os.cpu_count() or 1) - 1)
    assert quiet.reliable == (quiet.other_cores <= free + TOLERANCE_CORES), quiet
    if quiet_before and os.getloadavg()[0] < 1.0:
        assert quiet.reliable, quiet.contention


def test_a_bench_cell_measured_beside_a_burner_is_flagged(spec_pair) -> None:
    spec, pair = spec_pair
    with burner():
        cell = bench.run_cell(spec, pair, threads=1, concurrency=2, seconds=2.0, warmup=2)
    assert cell.error is None, cell.error
    assert not cell.reliable and cell.other_cores > 0.3 and cell.contention, cell
    row = bench.cell_rows([cell])[0]  # what --json writes
    assert row["reliable"] is False and row["contention"] == cell.contention


def test_the_clock_column_is_empty_where_the_clock_is_only_nominal(monkeypatch):
    """Under a hypervisor without cpufreq, /proc/cpuinfo repeats the nominal MHz: no clock is
    reported (README: the clock column stays empty there); on bare metal it is read."""
    from compare.measure import machine
    monkeypatch.setattr(machine, "_read_numbers", lambda pattern: [])
    monkeypatch.setattr(machine, "_cpuinfo", lambda: "flags\t\t: fpu sse2 hypervisor avx512f\ncpu MHz\t\t: 2445.000\n")
    assert machine.cpu_mhz() is None and machine.clock_source().startswith("not exposed")
    monkeypatch.setattr(machine, "_cpuinfo", lambda: "flags\t\t: fpu sse2 avx512f\ncpu MHz\t\t: 3100.000\ncpu MHz\t\t: 2900.000\n")
    assert machine.cpu_mhz() == 3000.0 and "cpuinfo" in machine.clock_source()


def test_machine_info_sections() -> None:
    plain, timed = machine_info(), machine_info("peak RSS", timed=True)
    assert "memory" not in plain and "latency" not in plain
    assert timed == {**plain, "memory": "peak RSS", "latency": timed["latency"], "isolation": timed["isolation"]}
    assert list(timed)[-3:] == ["memory", "latency", "isolation"]

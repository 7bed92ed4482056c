"""compare.measure.timing: rows of interleaved blocks with the ceiling of their precision measured
beside each block. Children and kernels are replaced by figures chosen by hand (the real ones are
timed in test_machine.py and test_comparison.py), so these tests check the logic, never a speed."""
from __future__ import annotations

import itertools

import pytest

from compare.measure import timing
from compare.measure.timing import TimingJob, time_jobs
from compare.measure.worker import Measurement, RunnerSpec
from tests.helpers.catalog import CATALOG
from zoo.artifacts import ArtifactKey
from zoo.devices import parse_device

VARIANT = CATALOG.get("base-c128")
MACS = 651_000_000
INT8 = "onnxruntime MatMulInteger u8s8"


def _block(median_ms: float, runs: int = 5, busy_others: float = 0.0, error: str | None = None) -> Measurement:
    """A child's measurement: ``runs`` runs at ``median_ms``, 1 thread, other processes keeping
    ``busy_others`` CPUs busy meanwhile."""
    if error:
        return Measurement(pid=1, threads=1, error=error)
    wall = runs * median_ms / 1e3
    return Measurement(pid=1, threads=1, load_s=0.1, first_s=median_ms / 1e3, times_s=[median_ms / 1e3] * runs,
                       cpu_s=wall, wall_s=wall, machine_busy_s=wall * (1 + busy_others), peak_mem_bytes=2**20)


def _spec(runtime: str, precision: str = "fp32") -> RunnerSpec:
    return RunnerSpec(ArtifactKey.for_runtime(VARIANT.name, runtime, precision), VARIANT)


def _run(monkeypatch, blocks: dict[tuple[str, str], list[Measurement]], ceilings: list[dict[str, float]],
         runtimes: list[RunnerSpec], repeats: int, calls: list | None = None):
    """``time_jobs`` at 1 thread where each row's children measure ``blocks[(runtime, precision)]``
    in turn and each block's kernels measure ``ceilings[block]``."""
    feeds = {k: iter(v) for k, v in blocks.items()}
    figures = iter(ceilings)
    log = calls if calls is not None else []

    def measure_block(spec, pair, threads, warmup, runs):
        log.append(f"{spec.key.label} {spec.key.precision}")
        return next(feeds[(spec.key.label, spec.key.precision)])

    def kernels(names, threads):
        log.append("ceiling")
        return {k: v for k, v in next(figures).items() if k in names}

    monkeypatch.setattr(timing, "measure_block", measure_block)
    found = []
    rows = time_jobs([TimingJob(VARIANT.name, MACS, {}, RunnerSpec.reference(VARIANT), runtimes)], [1], 0, 5,
                     repeats=repeats, kernels=kernels, ceilings=found)
    return {(r.runtime, r.precision): r for r in rows}, found


def test_rows_and_the_ceiling_alternate_in_blocks(monkeypatch) -> None:
    calls = []
    steady = {"torch (MKL) fp32": 125.0}
    _run(monkeypatch, {("pytorch", "fp32"): [_block(20.0)] * 3, ("tflite", "fp32"): [_block(10.0)] * 3},
         [steady] * 3, [_spec("tflite")], repeats=3, calls=calls)
    assert calls == ["ceiling", "pytorch fp32", "tflite fp32",
                     "ceiling", "tflite fp32", "pytorch fp32",  # odd blocks run the rows in reverse
                     "ceiling", "pytorch fp32", "tflite fp32"]


def test_int8_rows_are_held_against_the_int8_ceiling(monkeypatch) -> None:
    """The issue's rows: TFLite int8 5.64 ms, fp32 12.79 ms; an int8 GEMM runs 4.08x the fp32 one.
    Against float32's ceiling the int8 row would be at 185%; against its own it is at 45%."""
    fp32 = 125.0
    per_block = [{"torch (MKL) fp32": f, INT8: 4.08 * f} for f in (fp32, fp32 * 1.01, fp32 * 0.99)]
    rows, found = _run(monkeypatch, {("pytorch", "fp32"): [_block(20.0)] * 3, ("tflite", "fp32"): [_block(12.79)] * 3,
                                     ("tflite", "int8"): [_block(5.64)] * 3},
                       per_block, [_spec("tflite"), _spec("tflite", "int8")], repeats=3)
    int8, f32 = rows[("tflite", "int8")], rows[("tflite", "fp32")]
    assert int8.ceiling_precision == "int8" and int8.ceiling_kernel == INT8
    assert int8.ceiling_gflops == pytest.approx(4.08 * fp32)
    assert int8.pct_of_ceiling == pytest.approx(100 * int8.gflops / (4.08 * fp32)) and int8.pct_of_ceiling < 50
    assert int8.pct_of_sgemm == pytest.approx(185, abs=1)  # the float32 figure stays in the row, judged by nothing
    assert int8.reliable and int8.contention is None and int8.noisy is None
    assert f32.ceiling_precision == "fp32" and f32.pct_of_ceiling == pytest.approx(81, abs=1) and f32.reliable
    assert [b.threads for b in found] == [1, 1, 1] and all(INT8 in b.kernels for b in found)


def test_beyond_a_noisy_ceiling_the_row_stays_trusted_and_the_ceiling_is_named(monkeypatch) -> None:
    """The issue's run: the sgemm ceiling moved 63 -> 87 -> 96 while the row held steady."""
    ceilings = [{"torch (MKL) fp32": f} for f in (63.0, 87.0, 96.0)]
    ms = 2 * MACS / 95e9 * 1e3  # 95 GFLOP/s: 109% of the ceiling's median
    rows, _ = _run(monkeypatch, {("pytorch", "fp32"): [_block(20.0)] * 3, ("tflite", "fp32"): [_block(ms), _block(ms * 1.01), _block(ms)]},
                   ceilings, [_spec("tflite")], repeats=3)
    row = rows[("tflite", "fp32")]
    assert row.pct_of_ceiling == pytest.approx(109, abs=1) and row.ceiling_spread_pct == pytest.approx(38, abs=1)
    assert row.reliable and row.contention is None
    assert row.noisy == "ceiling 38%" and "noisy ceiling, spread 38%" in row.ceiling_note
    assert row.spread_pct == pytest.approx(1, abs=0.1) and row.repeats == 3 and len(row.block_median_ms) == 3


def test_the_same_figures_from_one_block_are_flagged_asking_for_repeats(monkeypatch) -> None:
    ms = 2 * MACS / 95e9 * 1e3
    rows, _ = _run(monkeypatch, {("pytorch", "fp32"): [_block(20.0)], ("tflite", "fp32"): [_block(ms)]},
                   [{"torch (MKL) fp32": 63.0}], [_spec("tflite")], repeats=1)
    row = rows[("tflite", "fp32")]
    assert not row.reliable and "151% of the fp32 ceiling from 1 block" in row.contention and "--repeats" in row.contention
    assert row.spread_pct is None and row.noisy is None


def test_a_block_under_load_is_left_out_when_another_was_clean(monkeypatch) -> None:
    steady = [{"torch (MKL) fp32": 125.0}] * 3
    rows, _ = _run(monkeypatch, {("pytorch", "fp32"): [_block(20.0)] * 3,
                                 ("tflite", "fp32"): [_block(10.0), _block(19.0, busy_others=1.8), _block(10.2)]},
                   steady, [_spec("tflite")], repeats=3)
    row = rows[("tflite", "fp32")]
    assert row.reliable and row.blocks_left_out == 1 and row.runs == 10
    assert row.block_median_ms == pytest.approx([10.0, 10.2]) and row.median_hi_ms == pytest.approx(10.2)
    loaded, _ = _run(monkeypatch, {("pytorch", "fp32"): [_block(20.0)] * 2,
                                   ("tflite", "fp32"): [_block(19.0, busy_others=1.8)] * 2},
                     steady[:2], [_spec("tflite")], repeats=2)
    row = loaded[("tflite", "fp32")]
    assert not row.reliable and "in all 2 blocks" in row.contention and row.blocks_left_out == 0


def test_a_block_that_fails_fails_the_row(monkeypatch) -> None:
    rows, _ = _run(monkeypatch, {("pytorch", "fp32"): [_block(20.0)] * 2,
                                 ("tflite", "fp32"): [_block(10.0), _block(0, error="RuntimeError: boom")]},
                   [{"torch (MKL) fp32": 125.0}] * 2, [_spec("tflite")], repeats=2)
    assert rows[("tflite", "fp32")].error == "RuntimeError: boom" and rows[("pytorch", "fp32")].error is None


def test_a_device_row_is_judged_by_no_ceiling_of_this_machine(monkeypatch) -> None:
    board = _spec("tflite").on(parse_device("ssh://pi@board"))
    feeds = itertools.repeat(_block(30.0))
    monkeypatch.setattr(timing, "measure_block", lambda *a: next(feeds))
    job = TimingJob(VARIANT.name, MACS, {}, None, [board])
    found = []
    (row,) = time_jobs([job], [1], 0, 5, repeats=2, kernels=lambda names, threads: {"torch (MKL) fp32": 10.0}, ceilings=found)
    assert found == []  # no row of this machine: no ceiling measured
    assert row.device == board.device.name and row.gflops > 0 and row.reliable
    assert row.ceiling_gflops is None and row.pct_of_ceiling is None and row.sgemm_gflops is None
    assert row.repeats == 2 and row.spread_pct == 0


def test_a_noisy_pytorch_row_is_named_by_each_speedup_not_flagged_in_every_row(monkeypatch) -> None:
    """PyTorch eager's block medians spread 12% while the runtime's hold: the speedups name the
    noisy figure; a PyTorch row measured under load still flags every speedup."""
    steady = [{"torch (MKL) fp32": 125.0}] * 3
    rows, _ = _run(monkeypatch, {("pytorch", "fp32"): [_block(14.0), _block(15.9), _block(15.3)],
                                 ("tflite", "fp32"): [_block(10.0), _block(10.1), _block(10.0)]},
                   steady, [_spec("tflite")], repeats=3)
    ref, row = rows[("pytorch", "fp32")], rows[("tflite", "fp32")]
    assert not ref.reliable and ref.contention.startswith("noisy row") and ref.noisy == "row 12%"
    assert row.reliable and row.contention is None and row.noisy == "PyTorch 12%"
    loaded, _ = _run(monkeypatch, {("pytorch", "fp32"): [_block(20.0, busy_others=1.8)] * 2,
                                   ("tflite", "fp32"): [_block(10.0)] * 2},
                     steady[:2], [_spec("tflite")], repeats=2)
    assert "speedup relative to an unreliable PyTorch row" in loaded[("tflite", "fp32")].contention

"""compare.measure.ceiling: one ceiling per precision from real kernels (int8: onnxruntime's
MatMulInteger, never a factor on the float32 figure), measured per block; its spread over blocks."""
from __future__ import annotations

import pytest

from compare.measure import ceiling
from compare.measure.ceiling import (PRECISION_KERNELS, CeilingBlock, ceiling_precision, ceiling_rows, ceiling_spread,
                                     kernel_gflops, measure_ceiling)


def test_each_precision_has_its_own_kernels_and_float32_as_a_floor() -> None:
    assert "onnxruntime MatMulInteger u8s8" in PRECISION_KERNELS["int8"]
    assert "onnxruntime MatMulInteger u8s8" not in PRECISION_KERNELS["fp32"]
    assert {"torch fp16", "onnxruntime fp16"} <= set(PRECISION_KERNELS["fp16"])
    for kernels in PRECISION_KERNELS.values():
        assert set(PRECISION_KERNELS["fp32"]) <= set(kernels)  # a runtime may compute in float32
    assert ceiling_precision("int8-dynamic") == "int8-dynamic" and ceiling_precision("int4") == "fp32"


def test_the_int8_ceiling_is_a_real_integer_gemm() -> None:
    """A small MatMulInteger really runs (a figure, not a factor), beside the float32 one."""
    figures = kernel_gflops(["onnxruntime MatMulInteger u8s8", "onnxruntime (MLAS) fp32"], threads=1, n=128, repeats=1)
    assert set(figures) == {"onnxruntime MatMulInteger u8s8", "onnxruntime (MLAS) fp32"}
    assert all(g > 0 for g in figures.values())


def test_a_missing_kernel_is_left_out(monkeypatch) -> None:
    def broken(threads, n, repeats):
        raise ImportError("no such library")

    monkeypatch.setitem(ceiling.KERNELS, "torch fp16", broken)
    assert kernel_gflops(["torch fp16"], 1, n=16, repeats=1) == {}


def test_a_block_measures_the_kernels_its_precisions_need() -> None:
    asked = []

    def kernels(names, threads):
        asked.append((tuple(names), threads))
        return {n: 100.0 for n in names}

    block = measure_ceiling(2, 1, {"int8"}, kernels)
    assert block.block == 2 and block.threads == 1
    assert asked == [(PRECISION_KERNELS["int8"], 1)]
    assert block.best("int8")[0] in PRECISION_KERNELS["int8"]
    measure_ceiling(0, 2, {"fp32"}, kernels)
    assert "onnxruntime MatMulInteger u8s8" not in asked[-1][0]


def test_the_ceiling_of_a_precision_over_blocks() -> None:
    """The issue's run: the float32 ceiling moved 63 -> 87 -> 96; int8's GEMM ran ~4x float32."""
    blocks = [CeilingBlock(i, 1, {"torch (MKL) fp32": f, "onnxruntime (MLAS) fp32": f - 5,
                                  "onnxruntime MatMulInteger u8s8": 4.08 * f})
              for i, f in enumerate((63.0, 87.0, 96.0))]
    fp32, kernel = ceiling_spread(blocks, 1, "fp32")
    assert kernel == "torch (MKL) fp32" and (fp32.median, fp32.lo, fp32.hi) == (87.0, 63.0, 96.0) and fp32.noisy
    int8, kernel = ceiling_spread(blocks, 1, "int8")
    assert kernel == "onnxruntime MatMulInteger u8s8" and int8.median == pytest.approx(4.08 * 87)
    assert ceiling_spread(blocks, 2, "fp32") == (None, None)  # not measured at 2 threads
    rows = ceiling_rows(blocks, {"int8", "fp32"})
    assert [(r["precision"], r["blocks"]) for r in rows] == [("fp32", 3), ("int8", 3)]
    assert rows[0]["block_gflops"] == [63.0, 87.0, 96.0] and rows[0]["spread_pct"] == pytest.approx(100 * 33 / 87)

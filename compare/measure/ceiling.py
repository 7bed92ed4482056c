"""The machine's ceiling per precision: the best real matrix multiply of several libraries, measured
beside each block of timed runs (:mod:`compare.measure.blocks`).

A runtime row's effective GFLOP/s (``macs x 2 / median``) is held against the ceiling *of its
precision* on this CPU, never against another precision's:

- ``fp32``: float32 ``n x n`` matmul, torch (MKL) and onnxruntime (MLAS);
- ``fp16`` / ``bf16``: the half-precision matmul of torch (and onnxruntime's fp16 ``MatMul``), or
  float32 where that is faster (a runtime may compute a half-precision model in float32);
- ``int8`` / ``int8-dynamic``: onnxruntime ``MatMulInteger`` (uint8 x int8 -> int32, MLAS's
  quantized GEMM), or float32 where that is faster.

No factor is assumed between precisions: each figure is a kernel timed in this run. A library that
is not installed (or has no such kernel on this CPU) is left out.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from compare.measure.blocks import Spread, spread

#: side of the square matrices every ceiling multiplies
GEMM_N = 1024


#: a kernel whose warm-up call takes longer than this is timed by that call alone (a slow kernel,
#: e.g. fp16 emulated on a CPU without fp16 arithmetic, must not stall every block)
SLOW_S = 0.5
#: seconds each kernel keeps running (best of its calls) however few repeats were asked
MIN_S = 0.1


def _best_time(fn: Callable[[], object], repeats: int) -> float:
    start = time.perf_counter()
    fn()  # warm-up
    best = time.perf_counter() - start
    if best > SLOW_S:
        return best
    began, done = time.perf_counter(), 0
    while done < repeats or time.perf_counter() - began < MIN_S:  # a fast kernel (int8) runs for MIN_S at least
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
        done += 1
    return best


def _torch_mm(dtype_name: str) -> Callable[[int, int, int], float]:
    def run(threads: int, n: int, repeats: int) -> float:
        import torch

        dtype = getattr(torch, dtype_name)
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            gen = torch.Generator().manual_seed(0)
            a, b = (torch.rand(n, n, generator=gen).to(dtype) for _ in range(2))
            out = torch.empty(n, n, dtype=dtype)
            return _best_time(lambda: torch.mm(a, b, out=out), repeats)
        finally:
            torch.set_num_threads(previous)
    return run


def _onnxruntime(op: str, a_type: str, b_type: str, c_type: str) -> Callable[[int, int, int], float]:
    def run(threads: int, n: int, repeats: int) -> float:
        import onnxruntime as ort
        from onnx import helper

        elem = {t: helper.np_dtype_to_tensor_dtype(np.dtype(t)) for t in (a_type, b_type, c_type)}
        inputs = [helper.make_tensor_value_info(k, elem[t], [n, n]) for k, t in (("a", a_type), ("b", b_type))]
        output = [helper.make_tensor_value_info("c", elem[c_type], [n, n])]
        graph = helper.make_graph([helper.make_node(op, ["a", "b"], ["c"])], "gemm", inputs, output)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        rng = np.random.default_rng(0)
        feed = {k: (rng.random((n, n)) * 100).astype(t) for k, t in (("a", a_type), ("b", b_type))}
        return _best_time(lambda: session.run(None, feed), repeats)
    return run


#: every kernel a ceiling may come from: name -> seconds for one ``n x n`` multiply at ``threads``
KERNELS: dict[str, Callable[[int, int, int], float]] = {
    "torch (MKL) fp32": _torch_mm("float32"),
    "onnxruntime (MLAS) fp32": _onnxruntime("MatMul", "float32", "float32", "float32"),
    "torch fp16": _torch_mm("float16"),
    "onnxruntime fp16": _onnxruntime("MatMul", "float16", "float16", "float16"),
    "torch bf16": _torch_mm("bfloat16"),
    "onnxruntime MatMulInteger u8s8": _onnxruntime("MatMulInteger", "uint8", "int8", "int32"),
}
_FP32 = ("torch (MKL) fp32", "onnxruntime (MLAS) fp32")
#: precision -> the kernels whose best is its ceiling (float32 too: a runtime may compute in float32)
PRECISION_KERNELS: dict[str, tuple[str, ...]] = {
    "fp32": _FP32,
    "fp16": ("torch fp16", "onnxruntime fp16", *_FP32),
    "bf16": ("torch bf16", *_FP32),
    "int8": ("onnxruntime MatMulInteger u8s8", *_FP32),
    "int8-dynamic": ("onnxruntime MatMulInteger u8s8", *_FP32),
}


def ceiling_precision(precision: str) -> str:
    """Which ceiling a row of ``precision`` is held against (an unknown precision: float32's)."""
    return precision if precision in PRECISION_KERNELS else "fp32"


def kernel_gflops(names: list[str] | tuple[str, ...], threads: int, n: int = GEMM_N, repeats: int = 5) -> dict[str, float]:
    """GFLOP/s of each named kernel for one ``n x n`` multiply at ``threads`` threads (best of
    ``repeats``); a kernel whose library is missing or that this CPU's build lacks is left out."""
    figures = {}
    for name in names:
        try:
            figures[name] = 2.0 * n**3 / KERNELS[name](threads, n, repeats) / 1e9
        except Exception:  # noqa: BLE001 - not installed, or no such kernel here: no figure
            continue
    return figures


@dataclass
class CeilingBlock:
    """The kernels measured beside one block of timed runs, at one thread count."""

    block: int
    threads: int
    kernels: dict[str, float] = field(default_factory=dict)  # kernel -> GFLOP/s

    def best(self, precision: str) -> tuple[str, float] | None:
        """``(kernel, GFLOP/s)`` of the fastest kernel counted for ``precision``, or None."""
        found = [(k, self.kernels[k]) for k in PRECISION_KERNELS[ceiling_precision(precision)] if k in self.kernels]
        return max(found, key=lambda kv: kv[1]) if found else None


#: the ceiling measurement (``kernel_gflops``'s signature); tests and callers may pass their own
MeasureKernels = Callable[[list[str], int], dict[str, float]]


def measure_ceiling(block: int, threads: int, precisions: set[str], kernels: MeasureKernels | None = None) -> CeilingBlock:
    """The kernels the ``precisions`` need, measured now at ``threads`` threads."""
    names = list(dict.fromkeys(k for p in sorted(precisions) for k in PRECISION_KERNELS[ceiling_precision(p)]))
    return CeilingBlock(block, threads, (kernels or kernel_gflops)(names, threads))


def ceiling_spread(blocks: list[CeilingBlock], threads: int, precision: str) -> tuple[Spread | None, str | None]:
    """The ceiling of ``precision`` at ``threads`` threads over the blocks that measured it: its
    :class:`~compare.measure.blocks.Spread` (GFLOP/s) and the kernel that was fastest most often."""
    best = [b.best(precision) for b in blocks if b.threads == threads]
    best = [x for x in best if x is not None]
    if not best:
        return None, None
    names = [k for k, _ in best]
    return spread([g for _, g in best]), max(dict.fromkeys(names), key=names.count)


def ceiling_rows(blocks: list[CeilingBlock], precisions: set[str]) -> list[dict]:
    """One row per thread count x ceiling precision: the kernel, GFLOP/s (median over blocks),
    their range and spread, and every block's figure (for tables and writers)."""
    rows = []
    for threads in sorted({b.threads for b in blocks}):
        for precision in sorted({ceiling_precision(p) for p in precisions}, key=lambda p: (p != "fp32", p)):
            s, kernel = ceiling_spread(blocks, threads, precision)
            if s is None:
                continue
            figures = [b.best(precision) for b in blocks if b.threads == threads]
            rows.append({"threads": threads, "precision": precision, "kernel": kernel, "gflops": s.median,
                         "gflops_lo": s.lo, "gflops_hi": s.hi, "spread_pct": s.pct, "blocks": s.blocks,
                         "block_gflops": [round(f[1], 2) if f else None for f in figures]})
    return rows

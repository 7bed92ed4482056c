"""MNN runner: ``MNN.nn.load_module_from_file`` with a CPU runtime manager.

fp32 artifacts run with ``precision: high``; fp16 artifacts with ``precision: low`` (fp16
arithmetic where the CPU has it, as on a phone; on x86 MNN computes in fp32 anyway).
"""
from __future__ import annotations

import time

import numpy as np

from compare.runners.base import ArtifactRunner, OpRecord, native_quiet
from compare.runners.taps import MnnTap
from zoo.layouts import to_layout
from zoo.requirements import require

RUNTIME_PRECISION = {"fp32": "high", "fp16": "low"}


class MnnRunner(ArtifactRunner):
    format = "mnn"

    def config(self) -> dict:
        """MNN's CPU session configuration for this runner (threads, precision mode)."""
        return {"backend": "CPU", "numThread": self.threads,
                "precision": RUNTIME_PRECISION.get(self.manifest.precision, "high")}

    def settings(self) -> dict:
        """MNN's runtime configuration (:meth:`config`)."""
        return self.config()

    def profiler(self) -> "MnnOpProfiler":
        """A session of the same model and configuration, timed op by op through MNN's callbacks."""
        return MnnOpProfiler(self)

    def tensor_tap(self):
        """Every intermediate tensor of this artifact, for ``zoo compare --layers`` (:mod:`compare.runners.taps`)."""
        return MnnTap(self)

    def _load(self) -> None:
        with native_quiet():
            mnn = require("MNN", self.extra, "MNN")
            rt = mnn.nn.create_runtime_manager((self.config(),))
            self._expr = mnn.expr
            self._module = mnn.nn.load_module_from_file(
                str(self.model_file(".mnn")),
                [b.runtime_name for b in self.manifest.inputs],
                [b.runtime_name for b in self.manifest.outputs],
                runtime_manager=rt,
            )
        self._rt = rt

    def _close(self) -> None:
        self._module = None
        self._rt = None

    def keep_input(self, runtime_name: str, value: np.ndarray) -> object:
        """An ``MNN.expr`` variable holding ``value``, fed as it is on every call."""
        F = self._expr
        var = F.placeholder(list(np.shape(value)), F.NCHW)
        var.write(np.ascontiguousarray(value, dtype=np.float32))
        return var

    def _run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        F = self._expr
        args = []
        for b in self.manifest.inputs:
            value = feed[b.runtime_name]
            if not isinstance(value, np.ndarray):  # an MNN variable kept by the caller (split cache)
                args.append(value)
                continue
            var = F.placeholder(list(value.shape), F.NCHW)
            var.write(value)
            args.append(var)
        outs = self._module.onForward(args)
        return {b.runtime_name: np.array(F.convert(o, F.NCHW).read(), dtype=np.float32, copy=True)
                for b, o in zip(self.manifest.outputs, outs, strict=True)}


class MnnOpProfiler:
    """An ``MNN.Interpreter`` session run with ``runSessionWithCallBackInfo``: each op is timed
    between its begin and end callbacks, which also give its name, type and FLOPs (MNN counts a
    multiply-add as one). MNN does not expose the graph it runs (``optimized_model`` is None)."""

    optimized_model = None

    def __init__(self, runner: MnnRunner):
        self.runner = runner
        self.records: list[list[OpRecord]] = []

    def load(self, pair: dict[str, np.ndarray]) -> None:
        mnn = require("MNN", self.runner.extra, "MNN")
        with native_quiet():
            self._interpreter = mnn.Interpreter(str(self.runner.model_file(".mnn")))
            self._session = self._interpreter.createSession(self.runner.config())
        for b in self.runner.manifest.inputs:
            array = to_layout(pair[b.name], b.layout)
            dim = mnn.Tensor_DimensionType_Caffe if b.layout == "NCHW" else mnn.Tensor_DimensionType_Tensorflow
            host = mnn.Tensor(list(array.shape), mnn.Halide_Type_Float, np.ascontiguousarray(array, dtype=np.float32), dim)
            self._interpreter.getSessionInput(self._session, b.runtime_name).copyFrom(host)

    def run(self) -> float:
        """One profiled run; returns its wall seconds."""
        clock, record, start = time.perf_counter, [], [0.0]

        def begin(_tensors, _info):
            start[0] = clock()
            return True

        def end(_tensors, info):
            record.append(OpRecord(info.getName(), info.getType(), float(info.getFlops()), clock() - start[0]))
            return True

        t0 = clock()
        self._interpreter.runSessionWithCallBackInfo(self._session, begin, end)
        wall = clock() - t0
        self.records.append(record)
        return wall

    def finish(self) -> list[list[OpRecord]]:
        """Free the session; the op records of every run."""
        self._session = self._interpreter = None
        return self.records

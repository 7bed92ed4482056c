"""MNN runner: ``MNN.nn.load_module_from_file`` with a CPU runtime manager.

fp32 artifacts run with ``precision: high``; fp16 artifacts with ``precision: low`` (fp16
arithmetic where the CPU has it, as on a phone; on x86 MNN computes in fp32 anyway).
"""
from __future__ import annotations

import numpy as np

from compare.runners.base import ArtifactRunner, native_quiet, require

RUNTIME_PRECISION = {"fp32": "high", "fp16": "low"}


class MnnRunner(ArtifactRunner):
    format = "mnn"
    extra = "mnn"

    def _load(self) -> None:
        with native_quiet():
            mnn = require("MNN", self.extra, "MNN")
            config = {"backend": "CPU", "numThread": self.threads,
                      "precision": RUNTIME_PRECISION.get(self.manifest.precision, "high")}
            rt = mnn.nn.create_runtime_manager((config,))
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

    def _run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        F = self._expr
        args = []
        for b in self.manifest.inputs:
            var = F.placeholder(list(feed[b.runtime_name].shape), F.NCHW)
            var.write(feed[b.runtime_name])
            args.append(var)
        outs = self._module.onForward(args)
        return {b.runtime_name: np.array(F.convert(o, F.NCHW).read(), dtype=np.float32, copy=True)
                for b, o in zip(self.manifest.outputs, outs, strict=True)}

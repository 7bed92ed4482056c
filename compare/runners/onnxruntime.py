"""ONNX Runtime (CPU execution provider) runner."""
from __future__ import annotations

import numpy as np

from compare.runners.base import ArtifactRunner, require


class OnnxRuntimeRunner(ArtifactRunner):
    format = "onnx"
    extra = "onnx"

    def _load(self) -> None:
        ort = require("onnxruntime", self.extra, "ONNX Runtime")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self._session = ort.InferenceSession(str(self.model_file(".onnx")), opts, providers=["CPUExecutionProvider"])
        self._output_names = [b.runtime_name for b in self.manifest.outputs]

    def _close(self) -> None:
        self._session = None

    def _run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self._output_names, self._session.run(self._output_names, feed), strict=True))

"""TFLite runner: ``ai_edge_litert``'s interpreter (builtin ops + XNNPACK, no Flex delegate).

Inputs and outputs go through the model's signature runner by name (the manifest's
``runtime_name`` is the signature key), never by tensor index; the layout is the manifest's
(onnx2tf produces NHWC).
"""
from __future__ import annotations

import numpy as np

from compare.runners.base import ArtifactRunner, native_quiet, require
from compare.runners.taps import TfliteTap

SIGNATURE = "serving_default"


class TfliteRunner(ArtifactRunner):
    format = "tflite"

    def tensor_tap(self):
        """Every intermediate tensor of this artifact, for ``zoo compare --layers`` (:mod:`compare.runners.taps`)."""
        return TfliteTap(self, SIGNATURE)

    def _load(self) -> None:
        litert = require("ai_edge_litert.interpreter", self.extra, "ai-edge-litert")
        with native_quiet():  # "INFO: Created TensorFlow Lite XNNPACK delegate" on stderr
            interpreter = litert.Interpreter(model_path=str(self.model_file(".tflite")), num_threads=self.threads)
            interpreter.allocate_tensors()
        signatures = interpreter.get_signature_list()
        key = SIGNATURE if SIGNATURE in signatures else (next(iter(signatures)) if len(signatures) == 1 else None)
        if key is None:
            raise RuntimeError(f"{self.name}: no {SIGNATURE!r} signature (has {sorted(signatures)})")
        self._interpreter = interpreter
        self._signature = interpreter.get_signature_runner(key)
        declared = signatures[key]
        missing = [b.runtime_name for b in self.manifest.inputs if b.runtime_name not in declared["inputs"]]
        missing += [b.runtime_name for b in self.manifest.outputs if b.runtime_name not in declared["outputs"]]
        if missing:
            raise RuntimeError(f"{self.name}: signature {key!r} lacks {missing} (has {declared})")

    def _close(self) -> None:
        self._signature = None
        self._interpreter = None

    def _run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(self._signature(**feed))

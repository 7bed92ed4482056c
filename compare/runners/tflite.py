"""TFLite runner: ``ai_edge_litert``'s interpreter (builtin ops + XNNPACK, no Flex delegate).

Inputs and outputs are bound through the model's signature by name (the manifest's
``runtime_name`` is the signature key), never by position; the layout is the manifest's
(litert-torch keeps PyTorch's NCHW; artifacts converted by onnx2tf before 0.1 are NHWC, and still
run). When the signature is the interpreter's main graph (always, for the single-signature models
zoo writes), a call sets the given inputs, invokes and reads the
outputs through the signature's tensor indices: that skips the signature runner's per-call
resize + allocate and lets :meth:`TfliteRunner.keep_input` write an input (a split artifact's
cache) into the interpreter once, for every later call.
"""
from __future__ import annotations

import numpy as np

from compare.runners.base import ArtifactRunner, native_quiet
from compare.runners.taps import TfliteTap
from zoo.requirements import require

SIGNATURE = "serving_default"


class _Kept:
    """Stands in a feed for an input already written into the interpreter."""

    def __repr__(self) -> str:
        return "<kept in the interpreter>"


KEPT = _Kept()


class TfliteRunner(ArtifactRunner):
    format = "tflite"

    def tensor_tap(self):
        """Every intermediate tensor of this artifact, for ``zoo compare --layers`` (:mod:`compare.runners.taps`)."""
        return TfliteTap(self, SIGNATURE)

    def settings(self) -> dict:
        """The interpreter's keyword arguments, and the signature run."""
        return {"num_threads": self.threads, "signature": SIGNATURE}

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
        self._inputs = {n: d["index"] for n, d in self._signature.get_input_details().items()}
        self._outputs = {n: d["index"] for n, d in self._signature.get_output_details().items()}
        main = ({d["index"] for d in interpreter.get_input_details()}, {d["index"] for d in interpreter.get_output_details()})
        self._direct = main == (set(self._inputs.values()), set(self._outputs.values()))
        if self._direct:  # a live signature runner holds the interpreter, and invoke() then refuses to run
            self._signature = None
        self._kept: set[str] = set()

    def _close(self) -> None:
        self._signature = None
        self._interpreter = None
        self._kept = set()

    def keep_input(self, runtime_name: str, value: np.ndarray) -> object:
        """Write ``value`` into the interpreter's input tensor once; later calls feed :data:`KEPT` for it."""
        value = np.ascontiguousarray(value, dtype=np.float32)
        if not self._direct:
            return value
        self._interpreter.set_tensor(self._inputs[runtime_name], value)
        self._kept.add(runtime_name)
        return KEPT

    def _run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if not self._direct:
            return dict(self._signature(**feed))
        if set(feed) != set(self._inputs):
            raise RuntimeError(f"{self.name}: fed {sorted(feed)}, the signature takes {sorted(self._inputs)}")
        interpreter = self._interpreter
        for name, value in feed.items():
            if value is KEPT:
                if name not in self._kept:
                    raise RuntimeError(f"{self.name}: input {name!r} was never kept (keep_input) in this interpreter")
                continue
            interpreter.set_tensor(self._inputs[name], value)
            self._kept.discard(name)
        interpreter.invoke()
        return {name: interpreter.get_tensor(index) for name, index in self._outputs.items()}

"""Running a converted TFLite model by the converter's own bindings (catalog name -> signature
name), for the converter's tests: before a manifest exists there is no runner, so this calls the
interpreter's signature runner directly, by name, never by tensor index."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from exporters.tflite_convert import TfliteBinding
from zoo.native import native_quiet


def run_tflite(tflite_path: Path, bindings: Mapping[str, TfliteBinding], inputs: dict[str, np.ndarray],
               num_threads: int = 1) -> dict[str, np.ndarray]:
    """Run the model on catalog-layout inputs keyed by catalog name; outputs keyed by catalog name."""
    from ai_edge_litert.interpreter import Interpreter

    ins = [b for b in bindings.values() if b.role == "input"]
    missing = sorted({b.name for b in ins} - set(inputs))
    if missing:
        raise ValueError(f"missing inputs {missing} for {Path(tflite_path).name}")
    with native_quiet():  # "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." on fd 2
        interpreter = Interpreter(model_path=str(tflite_path), num_threads=num_threads)
        runner = interpreter.get_signature_runner(ins[0].signature_key)
        raw = runner(**{b.signature_name: np.ascontiguousarray(np.asarray(inputs[b.name]).transpose(b.perm), dtype=b.dtype) for b in ins})
    return {b.name: np.ascontiguousarray(raw[b.signature_name].transpose(np.argsort(b.perm)))
            for b in bindings.values() if b.role == "output"}

"""Running a converted TFLite model by the converter's own bindings (catalog name -> signature
name, layout permutation), for the converter's tests: before a manifest exists there is no
runner, so this goes through the converter's internal interpreter call."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from exporters.tflite_convert import TfliteBinding, TfliteResult, invoke_signature


def run_tflite(tflite_path: Path, bindings: TfliteResult | Mapping[str, TfliteBinding],
               inputs: dict[str, np.ndarray], num_threads: int = 1) -> dict[str, np.ndarray]:
    """Run the model on NCHW inputs keyed by catalog name; NCHW outputs keyed by catalog name.

    Inputs are transposed into the model's layout and fed through the signature runner by
    signature name (never by tensor index); ``num_threads`` sets the interpreter's threads.
    """
    table = bindings.bindings if isinstance(bindings, TfliteResult) else bindings
    ins = [b for b in table.values() if b.role == "input"]
    missing = sorted({b.name for b in ins} - set(inputs))
    if missing:
        raise ValueError(f"missing inputs {missing} for {Path(tflite_path).name}")
    raw = invoke_signature(Path(tflite_path), ins, inputs, num_threads)
    return {b.name: np.ascontiguousarray(raw[b.signature_name].transpose(np.argsort(b.perm)))
            for b in table.values() if b.role == "output"}

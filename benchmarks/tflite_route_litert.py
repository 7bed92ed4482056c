"""The litert-torch side of ``benchmarks/tflite_route.py``, run by that script in an environment of
its own (litert-torch needs numpy 2, which onnx2tf's pins forbid): converts each variant's
``nn.Module`` straight to ``.tflite`` (fp32), then fp16 weights with ai-edge-quantizer's float
casting (the counterpart of onnx2tf's float16 file), and prints one JSON line per file.

    python benchmarks/tflite_route_litert.py OUT_DIR VARIANT...
"""
from __future__ import annotations

import json
import sys
import time
from importlib import metadata
from pathlib import Path

import torch


def convert(variant: str, out: Path) -> list[dict]:
    import litert_torch

    import zoo
    from zoo.catalog import Catalog

    v = Catalog.load().get(variant)
    model = zoo.get_model(variant).eval()
    args = tuple(torch.zeros(s.shape) for s in v.io.inputs)
    fp32 = out / f"{variant}-fp32.tflite"
    t0 = time.perf_counter()
    litert_torch.convert(model, args).export(str(fp32))
    seconds = time.perf_counter() - t0
    rows = [{"variant": variant, "precision": "fp32", "path": str(fp32), "seconds": seconds, "bytes": fp32.stat().st_size}]
    from ai_edge_quantizer import qtyping, quantizer

    fp16 = out / f"{variant}-fp16.tflite"
    t1 = time.perf_counter()
    q = quantizer.Quantizer(str(fp32))
    q.add_weight_only_config(regex=".*", operation_name=qtyping.TFLOperationName.ALL_SUPPORTED, num_bits=16,
                             algorithm_key=quantizer.AlgorithmName.FLOAT_CASTING)
    q.quantize(serialize_to_path=str(fp16), enable_progress_report=False)
    rows.append({"variant": variant, "precision": "fp16", "path": str(fp16), "seconds": seconds + time.perf_counter() - t1,
                 "bytes": fp16.stat().st_size})
    return rows


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    versions = {d: metadata.version(d) for d in ("litert-torch", "ai-edge-quantizer", "litert-converter", "torch", "numpy")}
    for variant in sys.argv[2:]:
        for row in convert(variant, out):
            print(json.dumps({**row, "versions": versions}), flush=True)


if __name__ == "__main__":
    main()

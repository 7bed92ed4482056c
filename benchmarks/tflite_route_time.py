"""The timing side of ``benchmarks/tflite_route.py``: run in whichever Python holds the interpreter
to time (zoo's own, or the onnx2tf environment's older ai-edge-litert), it needs only numpy and
ai_edge_litert. Reads a JSON job from stdin, prints one JSON object on stdout:

    {"files": {label: path}, "groups": [[label, ...], ...], "threads": [1, 2, 4], "blocks": 3, "runs": 20, "warmup": 5}
    -> {"version": "2.2.0", "ms": {label: {threads: [median of each block]}}}

Blocks are interleaved: in each block every group (the files compared with each other) is timed at
each thread count one file right after the other, their order reversed every other block, a fresh interpreter per measurement (median of ``runs`` invokes
after ``warmup``) on the same random inputs.
"""
from __future__ import annotations

import json
import statistics
import sys
import time
from importlib.metadata import version

import numpy as np


def time_block(path: str, threads: int, runs: int, warmup: int) -> float:
    """Median ms of ``runs`` invokes of a fresh interpreter (after ``warmup``) on fixed random inputs."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=path, num_threads=threads)
    it.allocate_tensors()
    rng = np.random.default_rng(0)
    for d in it.get_input_details():
        it.set_tensor(d["index"], rng.standard_normal(d["shape"]).astype(d["dtype"]))
    for _ in range(warmup):
        it.invoke()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        it.invoke()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def main() -> None:
    job = json.load(sys.stdin)
    labels = list(job["files"])
    ms: dict[str, dict[str, list[float]]] = {k: {str(t): [] for t in job["threads"]} for k in labels}
    for b in range(job["blocks"]):
        print(f"timing block {b + 1}/{job['blocks']} (ai-edge-litert {version('ai-edge-litert')})", file=sys.stderr, flush=True)
        for group in job["groups"]:
            for t in job["threads"]:
                for label in group if b % 2 == 0 else group[::-1]:
                    ms[label][str(t)].append(time_block(job["files"][label], t, job["runs"], job["warmup"]))
    json.dump({"version": version("ai-edge-litert"), "ms": ms}, sys.stdout)


if __name__ == "__main__":
    main()

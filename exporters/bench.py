"""Benchmark: cold ``zoo export VARIANT --to onnx mnn tflite ncnn`` wall time (one subprocess).

``python -m exporters.bench [VARIANT] [--precision fp32 ...]`` exports into a fresh temporary
directory with a fresh cache (``ZOO_CACHE_DIR``: no converter cache, weights regenerated, nothing
reused) and prints the wall time of the whole command, the per-target
seconds from its ``--json`` rows, and the machine's CPU count.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    variant = args.pop(0) if args and not args[0].startswith("-") else "fgaf3"
    with tempfile.TemporaryDirectory(prefix="zoo-bench-") as tmp:
        report = Path(tmp) / "rows.json"
        cmd = [sys.executable, "-c", "from zoo.cli import main; main()", "export", variant,
               "--to", "onnx", "mnn", "tflite", "ncnn", *args, "--out", str(Path(tmp) / "artifacts"), "--json", str(report)]
        start = time.perf_counter()
        env = {**os.environ, "ZOO_CACHE_DIR": str(Path(tmp) / "cache")}
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            sys.stderr.write(proc.stdout + proc.stderr)
            return proc.returncode
        rows = json.loads(report.read_text())
    for r in rows:
        print(f"  {r['variant']:<14} {r['format']:<7} {r['precision']:<5} {r['status']:<8} {r['seconds']:6.1f} s  "
              f"max abs err {r['max_abs_err']:.2e}  {r['size_mb']:.2f} MB")
    print(f"cold `zoo export {variant} --to onnx mnn tflite ncnn {' '.join(args)}`: {wall:.1f} s wall "
          f"({os.cpu_count()} CPUs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

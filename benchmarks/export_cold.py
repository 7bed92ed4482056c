"""Benchmark: cold ``zoo export VARIANT --to onnx mnn tflite ncnn executorch`` wall time (one subprocess).

``python benchmarks/export_cold.py [VARIANT] [--precision fp32 ...] [--jobs N]`` (the README main
command: ``fgaf3 --precision fp32 fp16 --jobs 2``) exports into a fresh
temporary directory with a fresh cache (``ZOO_CACHE_DIR``: no converter cache, weights
regenerated, nothing reused) and prints the wall time of the whole command, the per-target
seconds from its ``--json`` rows, and the machine's CPU count. A developer script, not part of
the ``zoo`` package (``zoo bench`` measures inference, this measures exporting).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the checkout whose zoo is measured


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/export_cold.py",
                                     description=__doc__.strip().splitlines()[0])
    parser.add_argument("variant", nargs="?", default="fgaf3", help="catalog variant (default: fgaf3)")
    parser.add_argument("--precision", nargs="+", metavar="PRECISION", help="passed to zoo export (fp32 fp16)")
    parser.add_argument("--jobs", type=int, default=1, help="passed to zoo export (default: 1)")
    parser.add_argument("--to", nargs="+", default=["onnx", "mnn", "tflite", "ncnn", "executorch"], metavar="FORMAT",
                        help="formats (default: onnx mnn tflite ncnn executorch)")
    ns = parser.parse_args(argv)
    variant = ns.variant
    args = (["--precision", *ns.precision] if ns.precision else []) + ["--jobs", str(ns.jobs)]
    with tempfile.TemporaryDirectory(prefix="zoo-bench-") as tmp:
        report = Path(tmp) / "rows.json"
        cmd = [sys.executable, "-m", "zoo", "export", variant,
               "--to", *ns.to, *args, "--artifacts", str(Path(tmp) / "artifacts"), "--json", str(report)]
        start = time.perf_counter()
        env = {**os.environ, "ZOO_CACHE_DIR": str(Path(tmp) / "cache")}
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            sys.stderr.write(proc.stdout + proc.stderr)
            return proc.returncode
        rows = [r for r in json.loads(report.read_text())["artifacts"] if r["status"] != "skipped"]
    for r in rows:
        print(f"  {r['variant']:<14} {r['format']:<10} {r['precision']:<5} {r['status']:<8} {r['seconds']:6.1f} s  "
              f"max abs err {r['max_abs_err']:.2e}  {r['size_mb']:.2f} MB")
    print(f"cold `zoo export {variant} --to {' '.join(ns.to)} {' '.join(args)}`: {wall:.1f} s wall "
          f"({os.cpu_count()} CPUs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

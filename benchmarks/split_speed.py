"""Per-frame latency of the full graph vs the split track graph (template caching, issue 15).

For every variant (default: the whole catalog) and runtime (default: TFLite and ONNX Runtime, the
two fastest at 1 thread), the full artifact and the split artifact (exported where missing, both
verified against PyTorch) are loaded in this process at 1 thread. The split runner runs its init
graph once; then full and split calls alternate (interleaved, so machine load hits both alike),
each call timed as the runtime's own run (``runner.last_inference_time``). Printed: medians after
warm-up, the speed-up (full / split), MACs per frame of each graph (zoo/counting.py convention)
and the cache size.

    python benchmarks/split_speed.py [--variants fgaf3 base-c128] [--runtimes tflite onnxruntime]
                                     [--out artifacts] [--rounds 40] [--warmup 5] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # this checkout's zoo, not another installed copy

from compare.runners import open_artifact
from zoo import api
from zoo.artifacts import artifact_dir
from zoo.backends import by_runtime
from zoo.catalog import Catalog
from zoo.models.fusion import BLOCK_DESIGNS
from zoo.sample_inputs import sample_pairs
from zoo.split_figures import split_figures


def measure(variant, runtime: str, out: Path, rounds: int, warmup: int) -> dict:
    """Median ms per frame of the full and the split (track graph) artifact, interleaved, 1 thread."""
    fmt = by_runtime(runtime).format
    for split in (False, True):
        if not (artifact_dir(out, variant.name, fmt, "fp32", split) / "manifest.json").is_file():
            api.export(variant.name, fmt, "fp32", out=out, split=split)
    pair = sample_pairs(variant, 1)[0]
    full = open_artifact(artifact_dir(out, variant.name, fmt, "fp32"), variant, threads=1).load()
    split = open_artifact(artifact_dir(out, variant.name, fmt, "fp32", True), variant, threads=1).load()
    times = {"full": [], "split": []}
    try:
        split.infer(pair)  # the init graph, once
        for k in range(warmup + rounds):
            for name, runner in (("full", full), ("split", split)) if k % 2 == 0 else (("split", split), ("full", full)):
                runner.infer(pair)
                if k >= warmup:
                    times[name].append(runner.last_inference_time)
        init_ms = split.last_init_time * 1e3
    finally:
        full.close()
        split.close()
    ms = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    return {"full_ms": ms["full"], "split_ms": ms["split"], "speedup": ms["full"] / ms["split"], "init_ms": init_ms}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="*", default=None)
    parser.add_argument("--runtimes", nargs="*", default=["tflite", "onnxruntime"])
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("ZOO_ARTIFACTS") or "artifacts"))
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    catalog = Catalog.load()
    variants = catalog.select(args.variants) if args.variants else list(catalog)
    rows = []
    for v in variants:
        fig = split_figures(v)
        row = {
            "variant": v.name,
            "attention": BLOCK_DESIGNS[v.arch.fusion.kind].attention,
            "cache": fig.cache_kind,
            "cache_bytes": fig.cache_bytes,
            "macs_full_m": fig.full.macs / 1e6,
            "macs_track_m": fig.track.macs / 1e6,
            "macs_ratio": fig.full.macs / fig.track.macs,
        }
        for runtime in args.runtimes:
            t0 = time.perf_counter()
            m = measure(v, runtime, args.out, args.rounds, args.warmup)
            row.update({f"{runtime}_{k}": val for k, val in m.items()})
            print(
                f"{v.name} {runtime}: full {m['full_ms']:.2f} ms, split {m['split_ms']:.2f} ms, x{m['speedup']:.2f} ({time.perf_counter() - t0:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
        rows.append(row)
    head = ["variant", "attention", "MACs/frame full M", "MACs/frame track M", "MACs ratio", "cache bytes"]
    for runtime in args.runtimes:
        head += [f"{runtime} full ms", f"{runtime} split ms", f"{runtime} speed-up"]
    print(f"1 thread, median of {args.rounds} interleaved runs after {args.warmup} warm-up, fp32, runtime call only")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        cells = [r["variant"], r["attention"], f"{r['macs_full_m']:.1f}", f"{r['macs_track_m']:.1f}", f"{r['macs_ratio']:.2f}", f"{r['cache_bytes']:,}"]
        for runtime in args.runtimes:
            cells += [f"{r[f'{runtime}_full_ms']:.2f}", f"{r[f'{runtime}_split_ms']:.2f}", f"{r[f'{runtime}_speedup']:.2f}x"]
        print("| " + " | ".join(cells) + " |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()

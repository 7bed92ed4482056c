"""Per-frame latency of the full graph vs the split track graph (template caching).

For every variant (default: the whole catalog) and runtime (default: TFLite and ONNX Runtime, the
two fastest at 1 thread), the full artifact and the split artifact (exported where missing, both
verified against PyTorch) are loaded in this process at 1 thread. The split runner runs its init
graph once; then full and split calls alternate (interleaved, so machine load hits both alike),
each call timed as the runtime's own run (``runner.last_inference_time``). Printed: medians after
warm-up, the speed-up (full / split), MACs per frame of each graph (zoo/counting.py convention)
and the cache size.

    python benchmarks/split_speed.py [--variants fgaf3 base-c128] [--runtime tflite onnxruntime]
                                     [--artifacts artifacts] [--rounds 40] [--warmup 5] [--repeats 1]
                                     [--precision fp32] [--json FILE]
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

from compare.measure.blocks import spread
from zoo import api
from zoo.backends import RUNTIMES, by_runtime
from zoo.catalog import Catalog
from zoo.errors import UsageError, ZooError
from zoo.models.fusion import BLOCK_DESIGNS
from zoo.names import choose
from zoo.sample_inputs import sample_pairs
from zoo.split_figures import split_figures


def measure(variant, runtime: str, out: Path, rounds: int, warmup: int, repeats: int = 1, precision: str = "fp32") -> dict:
    """Per-frame ms of the full and the split (track graph) artifact, interleaved, 1 thread.

    ``repeats`` blocks of ``rounds`` rounds (after ``warmup`` rounds); a round runs both artifacts
    once, in alternating order. Per block: the speed-up as median(full) / median(split). Returned:
    the medians over all rounds, the median of the blocks' speed-ups and their range.
    """
    full = api.load_runner(variant.name, runtime, precision, threads=1, out=out)  # exported first where missing
    split = api.load_runner(variant.name, runtime, precision, threads=1, out=out, split=True)
    pair = sample_pairs(variant, 1)[0]
    blocks = []
    try:
        split.infer(pair)  # the init graph, once
        for k in range(warmup):
            full.infer(pair)
            split.infer(pair)
        for _ in range(repeats):
            times = {"full": [], "split": []}
            for k in range(rounds):
                for name, runner in (("full", full), ("split", split)) if k % 2 == 0 else (("split", split), ("full", full)):
                    runner.infer(pair)
                    times[name].append(runner.last_inference_time)
            blocks.append(times)
        init_ms = split.last_init_time * 1e3
    finally:
        full.close()
        split.close()
    speedups = spread([statistics.median(b["full"]) / statistics.median(b["split"]) for b in blocks])
    ms = {k: statistics.median([t for b in blocks for t in b[k]]) * 1e3 for k in ("full", "split")}
    return {"full_ms": ms["full"], "split_ms": ms["split"], "speedup": speedups.median,
            "speedup_min": speedups.lo, "speedup_max": speedups.hi, "speedup_spread_pct": speedups.pct, "init_ms": init_ms}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="*", default=None)
    # the zoo CLI's names (--runtime, --artifacts); --runtimes and --out are the old ones
    parser.add_argument("--runtime", "--runtimes", dest="runtimes", nargs="*", default=["tflite", "onnxruntime"])
    parser.add_argument("--artifacts", "--out", dest="out", type=Path, default=Path(os.environ.get("ZOO_ARTIFACTS") or "artifacts"))
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--precision", default="fp32", help="one precision the runtimes' formats all offer (e.g. int8 for tflite)")
    parser.add_argument("--repeats", type=int, default=1, help="blocks of --rounds rounds; the speed-up is their median")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    try:
        args.runtimes = choose(args.runtimes, RUNTIMES, "runtime")
        for runtime in args.runtimes:
            offered = by_runtime(runtime).precisions
            if args.precision not in offered:
                raise UsageError(f"{runtime} runs {', '.join(offered)} artifacts only, not {args.precision!r}")
        catalog = Catalog.load()
        variants = catalog.select(args.variants) if args.variants else list(catalog)
    except ZooError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
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
            m = measure(v, runtime, args.out, args.rounds, args.warmup, args.repeats, args.precision)
            row.update({f"{runtime}_{k}": val for k, val in m.items()})
            print(
                f"{v.name} {runtime}: full {m['full_ms']:.2f} ms, split {m['split_ms']:.2f} ms, x{m['speedup']:.3f}"
                f" (blocks x{m['speedup_min']:.3f}-x{m['speedup_max']:.3f}; {time.perf_counter() - t0:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
        rows.append(row)
    head = ["variant", "attention", "MACs/frame full M", "MACs/frame track M", "MACs ratio", "cache bytes"]
    for runtime in args.runtimes:
        head += [f"{runtime} full ms", f"{runtime} split ms", f"{runtime} speed-up"]
    print(f"1 thread, {args.precision}, runtime call only; {args.repeats} block(s) of {args.rounds} interleaved rounds after {args.warmup}"
          " warm-up; ms: medians over all rounds; speed-up: median over blocks of median(full)/median(split) [range]")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        cells = [r["variant"], r["attention"], f"{r['macs_full_m']:.1f}", f"{r['macs_track_m']:.1f}", f"{r['macs_ratio']:.2f}", f"{r['cache_bytes']:,}"]
        for runtime in args.runtimes:
            spread = f" [{r[f'{runtime}_speedup_min']:.2f}-{r[f'{runtime}_speedup_max']:.2f}]" if args.repeats > 1 else ""
            cells += [f"{r[f'{runtime}_full_ms']:.2f}", f"{r[f'{runtime}_split_ms']:.2f}", f"{r[f'{runtime}_speedup']:.2f}x{spread}"]
        print("| " + " | ".join(cells) + " |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()

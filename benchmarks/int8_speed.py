"""Reduced precisions vs float32 with zoo's own artifacts: median ms at 1 thread, speed-ups, tracker figures, size.

Exports (or reuses) every variant asked for in every format at fp32 and every reduced precision
the backend table offers (int8, int8-dynamic, bf16; fp16 with --fp16), then times every artifact at
1 thread in one process, interleaved (round r runs every artifact once, so a change in machine load
hits all of them alike), after a warm-up, on the same realistic input pair. Per artifact: median
ms, speed-up vs the same runtime's fp32 and vs the variant's fastest fp32, the tracker-level
figures recorded at export (held-out pairs: peak-cell agreement on clear peaks and over all pairs,
mean box IoU), file size and its share of the same format's fp32. Checks the issue's targets
(fgaf3: best int8 >= 2.0x the best fp32; int8 files <= 30% of fp32).

    python benchmarks/int8_speed.py [--variants base-c128 fgaf3] [--artifacts DIR] [--runs 40]
        [--warmup 8] [--fp16] [--markdown FILE] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # this checkout's zoo, not another installed copy

from compare.runners import open_artifact
from zoo.artifacts import ArtifactKey
from zoo.backends import BACKENDS, REDUCED_PRECISIONS
from zoo.catalog import Catalog
from zoo.manifest import read_manifest
from zoo.sample_inputs import sample_pairs

ZOO = [sys.executable, "-c", "from zoo.cli import main; main()"]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"}


def export(variants: list[str], precisions: list[str], out: Path, jobs: int) -> None:
    formats = [b.format for b in BACKENDS]
    cmd = [*ZOO, "export", *variants, "--to", *formats, "--precision", *precisions, "--artifacts", str(out), "--jobs", str(jobs)]
    print("$ zoo " + " ".join(cmd[3:]), file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, env=ENV, stdout=subprocess.DEVNULL, check=False)
    if proc.returncode != 0:
        sys.exit(f"zoo export failed (exit {proc.returncode})")


def measure(variant_name: str, out: Path, precisions: list[str], runs: int, warmup: int) -> list[dict]:
    """Interleaved 1-thread timing of every artifact of one variant; one row per artifact."""
    variant = Catalog.load().get(variant_name)
    pair = sample_pairs(variant, 1)[0]
    entries = []
    for b in BACKENDS:
        for p in b.precisions:
            if p not in precisions:
                continue
            path = ArtifactKey(variant_name, b.format, p).path(out)
            if (path / "manifest.json").is_file():
                runner = open_artifact(path, variant, threads=1)
                runner.load()
                entries.append((b, p, path, runner, []))
    for _ in range(warmup):
        for *_, runner, _times in entries:
            runner.infer(pair)
    for _ in range(runs):
        for *_, runner, times in entries:
            runner.infer(pair)
            times.append(runner.last_inference_time * 1000)
    rows = []
    for b, p, path, runner, times in entries:
        runner.close()
        m = read_manifest(path)
        t = m.parity.tracker
        rows.append({"variant": variant_name, "runtime": b.runtime, "precision": p, "median_ms": statistics.median(times),
                     "size_mb": m.size_bytes / 1e6, "clear_pairs": t.clear_pairs if t else None,
                     "clear_peak_agreement": t.peak_agreement if t else None, "peak_agreement_all": t.peak_agreement_all if t else None,
                     "mean_iou": t.mean_iou if t else None, "max_abs_err": max(o.max_abs_err for o in m.parity.outputs)})
    fp32 = {r["runtime"]: r for r in rows if r["precision"] == "fp32"}
    best = min(fp32.values(), key=lambda r: r["median_ms"]) if fp32 else None
    for r in rows:
        same = fp32.get(r["runtime"])
        r["vs_same_fp32"] = same["median_ms"] / r["median_ms"] if same else None
        r["vs_best_fp32"] = best["median_ms"] / r["median_ms"] if best else None
        r["size_vs_fp32"] = r["size_mb"] / same["size_mb"] if same else None
        r["best_fp32"] = f"{best['runtime']} {best['median_ms']:.1f} ms" if best else None
    return rows


def fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def markdown(rows: list[dict], targets: list[str], header: str) -> str:
    lines = [header, "", ("| variant | runtime | precision | median ms | vs same fp32 | vs best fp32 | clear-peak same cell (n) | "
                          "all same cell | mean IoU | max abs err | MB | size vs fp32 |"), "|" + "---|" * 12]
    for r in rows:
        n = "" if r["clear_pairs"] is None else f" ({r['clear_pairs']})"
        lines.append(f"| {r['variant']} | {r['runtime']} | {r['precision']} | {r['median_ms']:.2f} | {fmt(r['vs_same_fp32'], '.2f')}x | "
                     f"{fmt(r['vs_best_fp32'], '.2f')}x | {fmt(r['clear_peak_agreement'], '.2f')}{n} | {fmt(r['peak_agreement_all'], '.2f')} | "
                     f"{fmt(r['mean_iou'], '.3f')} | {r['max_abs_err']:.2g} | {r['size_mb']:.2f} | {fmt(r['size_vs_fp32'], '.0%')} |")
    return "\n".join([*lines, "", *targets, ""])


def check_targets(rows: list[dict]) -> list[str]:
    lines = []
    fg = [r for r in rows if r["variant"] == "fgaf3"]
    int8 = [r for r in fg if r["precision"].startswith("int8")]
    if int8:
        best = min(int8, key=lambda r: r["median_ms"])
        ok = best["vs_best_fp32"] >= 2.0
        lines.append(f"- target fgaf3 best int8 >= 2.0x best fp32: {best['runtime']} {best['precision']} {best['median_ms']:.2f} ms = "
                     f"{best['vs_best_fp32']:.2f}x ({best['best_fp32']}): {'met' if ok else 'NOT met'}")
    sizes = [r for r in rows if r["precision"].startswith("int8") and r["size_vs_fp32"] is not None]
    if sizes:
        worst = max(sizes, key=lambda r: r["size_vs_fp32"])
        lines.append(f"- target int8 files <= 30% of fp32: largest share {worst['size_vs_fp32']:.0%} ({worst['variant']} {worst['runtime']} "
                     f"{worst['precision']}): {'met' if worst['size_vs_fp32'] <= 0.30 else 'NOT met'}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=["base-c128", "fgaf3"])
    parser.add_argument("--artifacts", type=Path, default=REPO / "artifacts")
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=8)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--fp16", action="store_true", help="time fp16 artifacts too")
    parser.add_argument("--no-export", action="store_true", help="time what is in --artifacts only")
    parser.add_argument("--markdown", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    precisions = ["fp32", *(["fp16"] if args.fp16 else []), *REDUCED_PRECISIONS]
    if not args.no_export:
        export(args.variants, precisions, args.artifacts, args.jobs)
    rows = []
    for name in args.variants:
        print(f"timing {name} ...", file=sys.stderr, flush=True)
        rows.extend(measure(name, args.artifacts, precisions, args.runs, args.warmup))
    load = os.getloadavg()
    header = (f"1 thread, median of {args.runs} interleaved runs after {args.warmup} warm-up, {os.cpu_count()} CPUs, "
              f"load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}; tracker figures: export-time gate on 64 held-out pairs")
    text = markdown(rows, check_targets(rows), header)
    print(text)
    if args.markdown:
        args.markdown.write_text(text)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()

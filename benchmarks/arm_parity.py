"""Parity on emulated ARM kernels against this machine's, per artifact, and the per-CPU-family
tolerances it implies (the figures behind ``families:`` in zoo.yaml).

For every variant x runtime x precision asked for, the same artifacts (exported where missing)
and the same input pairs run here and on each ``arm64-emu:CPU`` device (``zoo device setup
arm64-emu`` first); PyTorch eager here is the reference. Prints, per output, the max abs error
here and on each CPU with their ratio; then per format x precision x CPU family the smallest
``atol`` that lets every element of every variant pass at the catalog's ``rtol``
(``max(|a - b| - rtol * |b|)``), the catalog's current allowance, and a suggestion (that figure
x ``--margin``, rounded up to two significant digits). Emulated time is never reported.

The catalog's weights are untrained reference weights: the figures are numerical agreement, not
tracking skill.

    python benchmarks/arm_parity.py [--variants all] [--runtimes onnxruntime mnn tflite ncnn]
        [--precisions fp32 fp16] [--cpus cortex-a76] [--samples 2] [--artifacts DIR]
        [--margin 1.5] [--json FILE] [--markdown FILE]
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # this checkout's zoo, not another installed copy

from compare.comparison import Options, run  # noqa: E402
from zoo.artifacts import default_out_dir  # noqa: E402
from zoo.catalog import Catalog  # noqa: E402
from zoo.devices import parse_device  # noqa: E402


def needed_atol(actual: list[dict], expected: list[dict], output: str, rtol: float) -> float:
    """The smallest atol for which every element passes ``|a - b| <= atol + rtol * |b|``."""
    a = np.stack([o[output] for o in actual]).astype(np.float64)
    b = np.stack([o[output] for o in expected]).astype(np.float64)
    return float(max(0.0, np.max(np.abs(a - b) - rtol * np.abs(b))))


def round_up(x: float) -> float:
    """``x`` rounded up to two significant digits (0.01234 -> 0.013)."""
    if x <= 0:
        return 0.0
    e = math.floor(math.log10(x)) - 1
    return round(math.ceil(x / 10 ** e - 1e-9) * 10 ** e, 12)


def markdown(rows: list[dict], keys: list[str]) -> str:
    def cell(v):
        return f"{v:.2e}" if isinstance(v, float) else ("-" if v is None else str(v))
    return "\n".join(["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
                     + ["| " + " | ".join(cell(r.get(k)) for k in keys) + " |" for r in rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=["all"])
    parser.add_argument("--runtimes", nargs="+", default=["onnxruntime", "mnn", "tflite", "ncnn"])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "fp16"])
    parser.add_argument("--cpus", nargs="+", default=["cortex-a76"])
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--artifacts", type=Path, default=None)
    parser.add_argument("--margin", type=float, default=1.5)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args()
    catalog = Catalog.load()
    variants = catalog.select(args.variants)
    devices = [parse_device(f"arm64-emu:{cpu}") for cpu in args.cpus]
    per_output, needs, tracking = [], {}, []
    started = time.time()
    for i, v in enumerate(variants):
        opts = Options(runtimes=args.runtimes, precisions=args.precisions, samples=args.samples, runs=0,
                       out=args.artifacts or default_out_dir(), devices=devices)
        report = run(catalog, [v], opts, on_progress=lambda stage, text: print(f"  [{time.time() - started:6.0f}s] {stage}: {text}",
                                                                                 file=sys.stderr))
        print(f"[{i + 1}/{len(variants)}] {v.name} done", file=sys.stderr)
        expected = report.outputs[(v.name, "pytorch", "fp32")]
        for r in report.parity:
            for o in r.outputs:
                row = next((x for x in per_output if (x["variant"], x["runtime"], x["precision"], x["output"])
                            == (r.variant, r.runtime, r.precision, o.output)), None)
                if row is None:
                    row = {"variant": r.variant, "runtime": r.runtime, "precision": r.precision, "output": o.output}
                    per_output.append(row)
                row[f"{r.device}"] = o.max_abs_err
                row[f"{r.device} status"] = "pass" if o.passed else "FAIL"
                key = (r.variant, r.runtime, r.precision, *(() if r.device == "local" else (r.device,)))
                tol = v.tolerance(r.format, r.precision)  # the base rtol: the family's atol is what is measured
                need = needed_atol(report.outputs[key], expected, o.output, tol.rtol)
                slot = needs.setdefault((r.format, r.precision, r.family), {"need": 0.0, "worst": "", "rtol": tol.rtol,
                                                                             "atol_now": v.tolerance(r.format, r.precision, r.family).atol})
                if need > slot["need"]:
                    slot.update(need=need, worst=f"{r.variant} {o.output} on {r.device}")
            if r.tracking:
                tracking.append({"variant": r.variant, "runtime": r.runtime, "precision": r.precision, "device": r.device,
                                 "same cell": f"{sum(t.same_cell for t in r.tracking)}/{len(r.tracking)}",
                                 "min IoU": min(t.iou for t in r.tracking),
                                 "verdict": "pass" if r.passed else ("FAIL" if r.gate is None else "gated (64 pairs: zoo export)")})
            if r.error:
                print(f"  error: {r.variant} {r.runtime} {r.precision} on {r.device}: {r.error}", file=sys.stderr)
    names = ["local", *[d.name for d in devices]]
    for row in per_output:
        for d in names[1:]:
            here, there = row.get("local"), row.get(d)
            row[f"{d} / local"] = there / here if here and there is not None else None
    keys = ["variant", "runtime", "precision", "output", *[k for d in names for k in (d, f"{d} status")],
            *[f"{d} / local" for d in names[1:]]]
    tol_rows = [{"format": f, "precision": p, "family": fam, "rtol": s["rtol"], "atol needed": s["need"],
                 "worst": s["worst"], "atol in zoo.yaml": s["atol_now"], "suggested atol": round_up(s["need"] * args.margin)}
                for (f, p, fam), s in sorted(needs.items())]
    text = ("## per output: max abs error vs PyTorch eager (here = this machine)\n\n" + markdown(per_output, keys)
            + f"\n\n## atol each CPU family needs at the catalog's rtol (margin x{args.margin})\n\n"
            + markdown(tol_rows, list(tol_rows[0]) if tol_rows else [])
            + "\n\n## tracker figures: box decoded from each run vs PyTorch's\n\n"
            + markdown(tracking, list(tracking[0]) if tracking else []) + "\n")
    print(text)
    if args.markdown:
        args.markdown.write_text(text)
    if args.json:
        args.json.write_text(json.dumps({"per_output": per_output, "tolerances": tol_rows, "tracking": tracking, "devices": names,
                                         "samples": args.samples}, indent=2, default=str))


if __name__ == "__main__":
    main()

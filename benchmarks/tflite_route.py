"""The TFLite route, decided with numbers: onnx2tf (zoo's exporter today: ONNX -> TensorFlow ->
TFLite) against litert-torch (PyTorch -> TFLite, no TensorFlow), per variant at fp32 and fp16:
conversion time, file size, parity with PyTorch, tracker-level agreement, and latency at each
thread count in the same interpreter, timed in interleaved blocks (median of each block; the
litert-torch / onnx2tf ratio per block, then its median).

litert-torch needs numpy 2, which onnx2tf's pins forbid: it runs in an environment of its own,
``--litert-python`` (a venv with ``torch==2.13.0 litert-torch==0.9.4`` and zoo's dependencies),
through ``benchmarks/tflite_route_litert.py``. Figures are this machine's CPU (say which).

    python benchmarks/tflite_route.py base-c128 fgaf3 --litert-python /tmp/venv-litert/bin/python
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from compare.inputs import load_pairs  # noqa: E402
from compare.parity.runtimes import reference_outputs, track_sample  # noqa: E402
from compare.provision import ensure, keys_for  # noqa: E402
from compare.runners import open_artifact  # noqa: E402
from exporters.tflite_quant import bind_outputs_by_identity  # noqa: E402
from compare.measure.machine import machine_info  # noqa: E402
from zoo.catalog import Catalog  # noqa: E402
from zoo.cli.tables import Column, View, label, render_text  # noqa: E402
from zoo.manifest import read_manifest  # noqa: E402
from zoo.tracking import hann2d  # noqa: E402

PRECISIONS = ("fp32", "fp16")


def interpreter(path: Path, threads: int):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path), num_threads=threads)
    it.allocate_tensors()
    return it


def run_signature(path: Path, feeds: list[np.ndarray]) -> dict[str, np.ndarray]:
    """One call of the file's serving signature with positional inputs (in its declared order)."""
    it = interpreter(path, 1)
    runner = it.get_signature_runner()
    names = list(it.get_signature_list()[next(iter(it.get_signature_list()))]["inputs"])
    return runner(**dict(zip(names, feeds)))


def litert_outputs(path: Path, variant, pairs) -> list[dict[str, np.ndarray]]:
    """The file's raw outputs (signature names) on every pair, inputs in the catalog's order."""
    names = [s.name for s in variant.io.inputs]
    return [run_signature(path, [p[n] for n in names]) for p in pairs]


def parity(variant, preset, pairs, refs, outs) -> tuple[float, float]:
    """(worst max abs error over outputs and pairs, mean tracker IoU vs PyTorch)."""
    worst = max(float(np.abs(o[k] - r[k]).max()) for o, r in zip(outs, refs) for k in r)
    rows, cols = refs[0]["score"].shape[-2:]
    window = hann2d(rows, cols) if preset.decode.window == "hann" else None
    size = variant.io.inputs[-1].shape[-1]
    ious = [track_sample(i, o, r, size, window).iou for i, (o, r) in enumerate(zip(outs, refs))]
    return worst, float(np.mean(ious))


def time_block(path: Path, threads: int, runs: int, warmup: int) -> float:
    """Median ms of ``runs`` calls (after ``warmup``) of a fresh interpreter on random inputs."""
    it = interpreter(path, threads)
    rng = np.random.default_rng(0)
    for d in it.get_input_details():
        it.set_tensor(d["index"], rng.standard_normal(d["shape"]).astype(np.float32))
    for _ in range(warmup):
        it.invoke()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        it.invoke()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("variants", nargs="*", help="catalog names (default: every variant)")
    ap.add_argument("--litert-python", default=os.environ.get("ZOO_LITERT_PYTHON"), required="ZOO_LITERT_PYTHON" not in os.environ,
                    help="the Python of the litert-torch environment (or $ZOO_LITERT_PYTHON)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--blocks", type=int, default=3, help="interleaved timing blocks")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--samples", type=int, default=4, help="verification pairs for parity and tracker agreement")
    ap.add_argument("--artifacts", type=Path, default=None, help="onnx2tf artifacts (default: a temporary folder, exported cold)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    catalog = Catalog.load()
    variants = catalog.select(args.variants or ["all"])
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="tflite-route-") as tmp:
        art = args.artifacts or Path(tmp) / "artifacts"
        print(f"onnx2tf: zoo export --to tflite --precision fp32 fp16 --force ({len(variants)} variants)", file=sys.stderr)
        provisioned = ensure(keys_for(variants, ["tflite"], list(PRECISIONS)), art, catalog, refresh=True, force=True)
        files = {}
        for w in provisioned:
            m = read_manifest(w.path)
            files[(w.key.variant, w.key.precision, "onnx2tf")] = {
                "path": w.path / m.files[0].path, "seconds": m.export_seconds, "bytes": m.size_bytes,
                "version": f"onnx2tf {m.converter.version}"}
        print("litert-torch: converting in its own environment", file=sys.stderr)
        proc = subprocess.run([args.litert_python, str(REPO / "benchmarks" / "tflite_route_litert.py"), str(Path(tmp) / "litert"),
                               *(v.name for v in variants)], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
        if proc.returncode != 0:
            raise SystemExit(f"litert-torch conversion failed: {proc.stderr[-2000:]}")
        for line in proc.stdout.splitlines():
            if line.startswith("{"):
                r = json.loads(line)
                files[(r["variant"], r["precision"], "litert-torch")] = {
                    "path": Path(r["path"]), "seconds": r["seconds"], "bytes": r["bytes"],
                    "version": f"litert-torch {r['versions']['litert-torch']}"}
        for v in variants:
            preset = catalog.preset(v)
            pairs = load_pairs(v, args.samples, None, preset, catalog.quantization)
            refs = reference_outputs(v, pairs)
            for precision in PRECISIONS:
                o2t = open_artifact(art / v.name / ("tflite" if precision == "fp32" else f"tflite-{precision}"), v)
                with o2t:
                    o2t_outs = [o2t.infer(p) for p in pairs]
                raw = litert_outputs(files[(v.name, precision, "litert-torch")]["path"], v, pairs)
                # litert-torch names its outputs output_0..: bound by value, as zoo's int8 TFLite path does
                binding = bind_outputs_by_identity(raw, refs, {k: list(a.shape) for k, a in raw[0].items()},
                                                   {k: list(a.shape) for k, a in refs[0].items()})
                lt_outs = [{c: r[sig].transpose(np.argsort(perm)) for c, (sig, perm, _) in binding.items()} for r in raw]
                for route, outs in (("onnx2tf", o2t_outs), ("litert-torch", lt_outs)):
                    err, iou = parity(v, preset, pairs, refs, outs)
                    f = files[(v.name, precision, route)]
                    rows.append({"variant": v.name, "precision": precision, "route": route, "convert_s": f["seconds"],
                                 "size_mb": f["bytes"] / 1e6, "max_abs_err": err, "tracker_iou": iou, "converter": f["version"]})
        by_key = {(r["variant"], r["precision"], r["route"]): r for r in rows}
        for b in range(args.blocks):
            print(f"timing block {b + 1}/{args.blocks}", file=sys.stderr)
            for v in variants:
                for precision in PRECISIONS:
                    for t in args.threads:
                        order = ("onnx2tf", "litert-torch") if b % 2 == 0 else ("litert-torch", "onnx2tf")
                        ms = {route: time_block(files[(v.name, precision, route)]["path"], t, args.runs, args.warmup) for route in order}
                        for route in order:
                            by_key[(v.name, precision, route)].setdefault(f"blocks_{t}t", []).append(ms[route])
                        by_key[(v.name, precision, "litert-torch")].setdefault(f"ratio_{t}t", []).append(ms["litert-torch"] / ms["onnx2tf"])
    for r in rows:
        for t in args.threads:
            r[f"ms_{t}t"] = statistics.median(r[f"blocks_{t}t"])
            if f"ratio_{t}t" in r:
                r[f"speed_{t}t"] = 1 / statistics.median(r[f"ratio_{t}t"])  # onnx2tf time / litert time: >1 = litert faster
    cols = [label("variant"), label("precision", "prec"), label("route"), Column("convert_s", "convert s", ".1f"),
            Column("size_mb", "MB", ".2f"), Column("max_abs_err", "max abs vs torch", ".2e"), Column("tracker_iou", "tracker IoU", ".4f")]
    for t in args.threads:
        cols += [Column(f"ms_{t}t", f"ms {t}T", ".2f"), Column(f"speed_{t}t", f"speed vs onnx2tf {t}T", ".2f", optional=True)]
    machine = machine_info()
    title = (f"TFLite route: onnx2tf vs litert-torch — {machine['cpu_count']} CPUs ({machine['machine']}); median of "
             f"{args.blocks} interleaved blocks of {args.runs} runs; speed = onnx2tf ms / litert-torch ms (median per-block ratio)")
    print(render_text([View("route", title, rows, cols)], None))
    if args.json:
        clean = [{k: v for k, v in r.items() if not k.startswith(("blocks_", "ratio_"))} | {
            k: v for k, v in r.items() if k.startswith(("blocks_", "ratio_"))} for r in rows]
        args.json.write_text(json.dumps({"machine": machine, "rows": clean}, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()

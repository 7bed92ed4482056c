"""The TFLite route, decided with numbers: litert-torch + ai-edge-quantizer (zoo's exporter since 0.1,
PyTorch -> TFLite, no TensorFlow) against onnx2tf + TFLiteConverter (zoo's exporter before: ONNX ->
TensorFlow -> TFLite), per variant and precision: cold conversion time, file size, parity with
PyTorch, tracker-level agreement (and, for int8, the export gate's own figures), and latency at each
thread count in the same interpreter, timed in interleaved blocks (the median of each block; the
per-block ratio onnx2tf / litert-torch, then its median).

onnx2tf pins numpy 1.26 and TensorFlow 2.19, so its side runs in an environment of its own: a
checkout of zoo before the switch (``git worktree add ../zoo-onnx2tf f83cd5b``) installed with
``pip install -e '.[all]'`` in a venv. Both routes' files are timed in this environment's
ai-edge-litert (the runtime zoo ships with) and, with ``--old-interpreter``, in the onnx2tf
environment's too. Figures hold for this machine's CPU (the title says which); no speed figure
comes from an emulated CPU.

    python benchmarks/tflite_route.py fgaf3 --onnx2tf-python ../venv-old/bin/python --onnx2tf-checkout ../zoo-onnx2tf
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from compare.inputs import load_pairs  # noqa: E402
from compare.measure.machine import machine_info  # noqa: E402
from compare.parity.runtimes import reference_outputs, track_sample  # noqa: E402
from compare.provision import ensure, keys_for  # noqa: E402
from compare.runners import open_artifact  # noqa: E402
from zoo.catalog import Catalog  # noqa: E402
from zoo.errors import ZooError  # noqa: E402
from zoo.cli.tables import Column, View, label, render_text  # noqa: E402
from zoo.manifest import read_manifest  # noqa: E402
from zoo.tracking import hann2d  # noqa: E402

PRECISIONS = ("fp32", "fp16", "int8", "int8-dynamic")
ROUTES = ("onnx2tf", "litert-torch")
TIMER = REPO / "benchmarks" / "tflite_route_time.py"


def export_onnx2tf(python: str, checkout: Path, variants: list[str], precisions: list[str], out: Path, split: bool) -> None:
    """``zoo export --to tflite --force`` with the onnx2tf checkout, in its own environment (a cold
    cache). A failed export (e.g. an int8 artifact refused by the tracker-level gate) leaves its
    artifact out, and the table says so."""
    env = {**os.environ, "PYTHONPATH": str(checkout), "ZOO_CACHE_DIR": str(out.parent / "onnx2tf-cache")}
    proc = subprocess.run([python, "-m", "zoo", "export", *variants, "--to", "tflite", "--precision", *precisions,
                           "--out", str(out), "--force", "--json", "-", *(["--split"] if split else [])], cwd=checkout, env=env, text=True,
                          capture_output=True)
    try:
        json.loads(proc.stdout)["artifacts"]
    except (ValueError, KeyError):
        raise SystemExit(f"the onnx2tf export failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}") from None


def export_litert(variants, precisions: list[str], out: Path, catalog, split: bool) -> None:
    """zoo's own export (litert-torch), cold, in this environment (a refused artifact is left out)."""
    keys = keys_for(variants, ["tflite"], precisions, split=split)
    try:
        ensure(keys, out, catalog, refresh=True, force=True)
    except ZooError as exc:  # some artifacts failed (the gate): the others are installed
        print(f"litert-torch: {exc}", file=sys.stderr)


def parity(artifact: Path, variant, preset, pairs, refs) -> tuple[float, float]:
    """(worst max abs error over outputs and pairs, mean tracker IoU vs PyTorch) of one artifact."""
    with open_artifact(artifact, variant) as runner:
        outs = [runner.infer(p) for p in pairs]
    worst = max(float(np.abs(o[k] - r[k]).max()) for o, r in zip(outs, refs, strict=True) for k in r)
    rows, cols = refs[0]["score"].shape[-2:]
    window = hann2d(rows, cols) if preset.decode.window == "hann" else None
    size = variant.io.inputs[-1].shape[-1]
    ious = [track_sample(i, o, r, size, window).iou for i, (o, r) in enumerate(zip(outs, refs, strict=True))]
    return worst, float(np.mean(ious))


def time_files(python: str, files: dict[str, Path], groups: list[list[str]], args) -> dict:
    """The timing worker (``benchmarks/tflite_route_time.py``) in ``python``'s environment."""
    job = {"files": {k: str(v) for k, v in files.items()}, "groups": groups, "threads": args.threads, "blocks": args.blocks,
           "runs": args.runs, "warmup": args.warmup}
    proc = subprocess.run([python, str(TIMER)], input=json.dumps(job), text=True, stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": ""})
    if proc.returncode != 0:
        raise SystemExit(f"the timing worker failed in {python} (exit {proc.returncode})")
    return json.loads(proc.stdout)


def speed_columns(rows: list[dict], timing: dict, threads: list[int], suffix: str) -> list[Column]:
    """ms per route and thread count (median of the blocks) and litert-torch's speed vs onnx2tf."""
    by_key = {(r["variant"], r["precision"], r["route"]): r for r in rows}
    for r in rows:
        if r["label"] not in timing["ms"]:  # failed its gate: nothing to time
            continue
        for t in threads:
            r[f"ms_{t}t{suffix}"] = statistics.median(timing["ms"][r["label"]][str(t)])
            other = by_key[(r["variant"], r["precision"], "onnx2tf")]["label"]
            if r["route"] == "litert-torch" and other in timing["ms"]:
                ratios = [a / b for a, b in zip(timing["ms"][other][str(t)], timing["ms"][r["label"]][str(t)], strict=True)]
                r[f"speed_{t}t{suffix}"] = statistics.median(ratios)  # onnx2tf ms / litert ms: > 1 = litert faster
    cols = []
    for t in threads:
        cols += [Column(f"ms_{t}t{suffix}", f"ms {t}T", ".2f", optional=True), Column(f"speed_{t}t{suffix}", f"speed {t}T", ".2f", optional=True)]
    return cols


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("variants", nargs="*", help="catalog names (default: every variant)")
    ap.add_argument("--onnx2tf-python", required=True, help="the Python of the onnx2tf environment")
    ap.add_argument("--onnx2tf-checkout", type=Path, required=True, help="zoo checked out before the switch (f83cd5b)")
    ap.add_argument("--precision", nargs="+", default=list(PRECISIONS), choices=PRECISIONS)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--blocks", type=int, default=3, help="interleaved timing blocks")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--samples", type=int, default=8, help="pairs for parity and tracker agreement")
    ap.add_argument("--old-interpreter", action="store_true", help="also time both routes' files in the onnx2tf environment's ai-edge-litert")
    ap.add_argument("--split", action="store_true", help="the split init/track artifacts instead (fp32/fp16; the track graph is timed, per frame)")
    ap.add_argument("--work", type=Path, default=None,
                    help="keep both routes' artifacts here (default: a temporary folder); a route already exported there is reused")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    if args.split:
        args.precision = [p for p in args.precision if p in ("fp32", "fp16")]
    catalog = Catalog.load()
    variants = catalog.select(args.variants or ["all"])
    names = [v.name for v in variants]
    rows: list[dict] = []
    with contextlib.ExitStack() as stack:
        tmp = args.work or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tflite-route-")))
        out = {"onnx2tf": Path(tmp) / "onnx2tf", "litert-torch": Path(tmp) / "litert"}
        print(f"onnx2tf: zoo export --to tflite --force in {args.onnx2tf_python}", file=sys.stderr)
        if not (out["onnx2tf"] / ".done").is_file():
            export_onnx2tf(args.onnx2tf_python, args.onnx2tf_checkout, names, args.precision, out["onnx2tf"], args.split)
            (out["onnx2tf"] / ".done").write_text("exported\n")
        print("litert-torch: zoo export --to tflite --force (this environment)", file=sys.stderr)
        os.environ["ZOO_CACHE_DIR"] = str(Path(tmp) / "litert-cache")  # cold: no cached conversion either
        if not (out["litert-torch"] / ".done").is_file():
            export_litert(variants, args.precision, out["litert-torch"], catalog, args.split)
            (out["litert-torch"] / ".done").write_text("exported\n")
        suffix = "-split" if args.split else ""
        files: dict[str, Path] = {}
        for v in variants:
            preset = catalog.preset(v)
            pairs = load_pairs(v, args.samples, None, preset, catalog.quantization)
            refs = reference_outputs(v, pairs)
            for precision in args.precision:
                for route in ROUTES:
                    artifact = out[route] / v.name / (("tflite" if precision == "fp32" else f"tflite-{precision}") + suffix)
                    key = f"{v.name}/{precision}/{route}"
                    if not (artifact / "manifest.json").is_file():  # not installed: failed its verification or gate
                        rows.append({"label": key, "variant": v.name, "precision": precision + suffix, "route": route, "status": "failed gate"})
                        continue
                    m = read_manifest(artifact)
                    err, iou = parity(artifact, v, preset, pairs, refs)
                    gate = m.parity.tracker
                    files[key] = artifact / (m.graphs.track.files[0] if args.split else m.files[0].path)  # split: per frame
                    rows.append({"label": key, "variant": v.name, "precision": precision + suffix, "route": route, "convert_s": m.export_seconds,
                                 "size_mb": m.size_bytes / 1e6, "max_abs_err": err, "tracker_iou": iou,
                                 "gate_iou": gate.mean_iou if gate else None,
                                 "gate_peak": gate.peak_agreement if gate else None, "converter": f"{m.converter.name} {m.converter.version}",
                                 "status": "ok"})
        groups = [[f"{v}/{p}/{r}" for r in ROUTES if f"{v}/{p}/{r}" in files] for v in names for p in args.precision]
        timing = time_files(sys.executable, files, groups, args)
        old = time_files(args.onnx2tf_python, files, groups, args) if args.old_interpreter else None
    base = [label("variant"), label("precision", "prec"), label("route"), label("status"), Column("convert_s", "convert s", ".1f", optional=True),
            Column("size_mb", "MB", ".2f", optional=True), Column("max_abs_err", "max abs vs torch", ".2e", optional=True),
            Column("tracker_iou", "tracker IoU", ".4f", optional=True),
            Column("gate_iou", "gate IoU", ".3f", optional=True), Column("gate_peak", "gate peak", ".3f", optional=True)]
    machine = machine_info()
    where = f"{machine['cpu_count']} CPUs ({machine['machine']}, {machine['processor']})"
    title = (f"TFLite route: onnx2tf vs litert-torch — {where}; ai-edge-litert {timing['version']}; median of {args.blocks} interleaved "
             f"blocks of {args.runs} runs; speed = onnx2tf ms / litert-torch ms (median per-block ratio); untrained reference weights")
    views = [View("route", title, rows, base + speed_columns(rows, timing, args.threads, ""))]
    if old is not None:
        old_cols = [label("variant"), label("precision", "prec"), label("route")] + speed_columns(rows, old, args.threads, "_old")
        views.append(View("route-old", f"the same files in the onnx2tf environment's ai-edge-litert {old['version']}", rows, old_cols))
    print(render_text(views, None))
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "timing": timing, "old_timing": old, "rows": rows}, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()

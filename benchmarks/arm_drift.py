"""Tracker drift on ARM kernels: the same artifact tracked here and on an emulated ARM CPU over the
first frames of a real sequence (OTB Crossing), compared frame by frame with ``zoo eval drift``.

Each tracker is ``zoo track VARIANT SEQ --runtime R --precision P`` (the network on the device,
the tracking loop here); the boxes go into one results folder per run and ``zoo eval drift``
gives the mean IoU between the two trajectories, the share of frames with IoU >= 0.9 / 0.5, the
first frame below 0.5 and each one's AUC against the ground truth. Emulated time is not reported.
The catalog's weights are untrained reference weights: the figures say whether ARM arithmetic
moves the tracker, not how well it tracks.

    python benchmarks/arm_drift.py [--variant base-c128] [--runtimes ncnn:fp16 mnn:fp16 onnxruntime:fp32]
        [--cpu cortex-a76] [--frames 20] [--sequence ../shared/data/otb/Crossing] [--artifacts DIR] [--markdown FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ZOO = [sys.executable, "-c", "from zoo.cli import main; main()"]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"}
SHARED = REPO.parent / "shared" / "data" / "otb" / "Crossing"


def first_frames(sequence: Path, frames: int, dest: Path) -> Path:
    """``dest/<name>``: the sequence's first ``frames`` frames and ground-truth lines (OTB layout)."""
    out = dest / sequence.name
    (out / "img").mkdir(parents=True)
    for f in sorted((sequence / "img").iterdir())[:frames]:
        os.symlink(f.resolve(), out / "img" / f.name)
    gt = (sequence / "groundtruth_rect.txt").read_text().splitlines()[:frames]
    (out / "groundtruth_rect.txt").write_text("\n".join(gt) + "\n")
    return out


def zoo(*args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([*ZOO, *args], capture_output=True, text=True, env=ENV, cwd=REPO)
    if proc.returncode != 0:
        sys.exit(f"zoo {' '.join(args)} failed:\n{proc.stderr}")
    return proc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="base-c128")
    parser.add_argument("--runtimes", nargs="+", default=["ncnn:fp16", "mnn:fp16", "onnxruntime:fp32"])
    parser.add_argument("--cpu", default="cortex-a76")
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--sequence", type=Path, default=SHARED)
    parser.add_argument("--artifacts", type=Path, default=None)
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args()
    if not (args.sequence / "groundtruth_rect.txt").is_file():
        sys.exit(f"{args.sequence}: not an OTB sequence folder (the real data lives in ../shared/data/otb)")
    device = f"arm64-emu:{args.cpu}"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        seq = first_frames(args.sequence, args.frames, tmp / "otb")
        extra = ["--artifacts", str(args.artifacts)] if args.artifacts else []
        for item in args.runtimes:
            runtime, _, precision = item.partition(":")
            folders = {}
            for where, device_args in (("local", []), (device, ["--device", device])):
                folder = tmp / f"{runtime}-{precision}-{where.replace(':', '-')}"
                folder.mkdir()
                t0 = time.time()
                zoo("track", args.variant, str(seq), "--runtime", runtime, "--precision", precision or "fp32",
                    "--boxes", str(folder / f"{seq.name}.txt"), *extra, *device_args)
                print(f"{args.variant} {runtime} {precision} on {where}: {args.frames} frames tracked "
                      f"({time.time() - t0:.0f} s wall)", file=sys.stderr)
                folders[where] = folder
            report = tmp / "drift.json"
            zoo("eval", "drift", f"here={folders['local']}", f"{args.cpu}={folders[device]}", "--dataset", "otb",
                "--root", str(tmp / "otb"), "--sequences", seq.name, "--json", str(report))
            row = next(r for r in json.loads(report.read_text())["rows"] if r.get("sequence") == seq.name)
            rows.append({"runtime": runtime, "precision": precision, "device": device, **row})
        shutil.rmtree(tmp / "otb", ignore_errors=True)
    keys = list(dict.fromkeys(k for r in rows for k in r))
    text = (f"{args.variant} on OTB {seq.name}, first {args.frames} frames; here vs {device} "
            "(untrained reference weights: agreement, not skill)\n\n| " + " | ".join(keys) + " |\n|" + "---|" * len(keys) + "\n"
            + "\n".join("| " + " | ".join(f"{r.get(k):.4g}" if isinstance(r.get(k), float) else str(r.get(k)) for k in keys) + " |"
                        for r in rows) + "\n")
    print(text)
    if args.markdown:
        args.markdown.write_text(text)


if __name__ == "__main__":
    main()

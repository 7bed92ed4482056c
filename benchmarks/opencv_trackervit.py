"""OpenCV's cv2.TrackerVit as a client of zoo's exports: what it feeds the network, how it tracks beside zoo.

1. The input transform TrackerVit applies (per-channel scale and offset, channel order), measured
   with probe models (exporters/opencv_probe.py) in the installed OpenCV and in every other OpenCV
   installed into a separate directory (``pip install --target /tmp/cv410
   opencv-python-headless==4.10.0.84``; give the directories with --cv-dirs).
2. Agreement per frame of cv2.TrackerVit (a ``zoo export --for opencv`` artifact, default Params)
   and zoo.Tracker(preset="opencv-vit") on the plain ONNX artifact in ONNX Runtime: min IoU, max
   score difference, frames, over a synthetic sequence and OTB Crossing/Couple (../shared/data/otb).
3. Speed at 1 thread (cv2.setNumThreads(1), ONNX Runtime intra-op 1): median ms per update()
   against per track() (whole loop, and the network alone), interleaved frame by frame, after a
   warm-up, median of --repeat passes.

    python benchmarks/opencv_trackervit.py [--variants base-c128 fgaf3] [--artifacts DIR]
        [--cv-dirs /tmp/cv49 /tmp/cv410 /tmp/cv412] [--repeat 3] [--markdown FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # this checkout's zoo, not another installed copy

import cv2

from compare.runners import open_artifact
from compare.tracking.opencv_client import agreement, load_trackervit, with_threshold
from compare.tracking.tracker import Tracker
from exporters.opencv_probe import write_probes
from zoo.catalog import Catalog
from zoo.datasets.frames import open_sequence_folder, read_frame, sequence_frames
from zoo.datasets.synthetic import make_sequence

OTB = REPO.parent / "shared" / "data" / "otb"
WARMUP = 3


def normalisation_rows(cv_dirs: list[str]) -> list[dict]:
    """The probe measurement under the installed OpenCV and under each directory's."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        write_probes(Path(tmp))
        for where in [None, *cv_dirs]:
            env = {**os.environ, "PYTHONPATH": os.pathsep.join([p for p in (where, str(REPO)) if p])}
            proc = subprocess.run([sys.executable, "-m", "exporters.opencv_probe", tmp], check=False, capture_output=True, text=True,
                                  env=env, cwd=REPO)
            if proc.returncode != 0:
                rows.append({"opencv": f"{where}: failed", "note": proc.stderr.strip().splitlines()[-1]})
                continue
            m = json.loads(proc.stdout)
            rows.append({"opencv": m["opencv"], "where": where or "installed", "channel_order": m["channel_order"],
                         "scale_x255": [round(255 * s, 4) for s in m["scale"]], "offset": [round(o, 4) for o in m["offset"]],
                         "residual": m["affine_residual"]})
    return rows


def sequences() -> list[tuple[str, list[np.ndarray], tuple[int, int, int, int]]]:
    seq = make_sequence("synthetic", frames=40, size=(320, 240), scene=1)
    out = [("synthetic (40 frames, scene 1)", seq.frames, tuple(int(v) for v in seq.ground_truth[0]))]
    for name in ("Crossing", "Couple"):
        folder = OTB / name
        if folder.is_dir():
            s = open_sequence_folder(folder)
            x, y, w, h = s.ground_truth[0]
            out.append((f"OTB {name}", [read_frame(p) for p in sequence_frames(s)], (int(x) - 1, int(y) - 1, int(w), int(h))))
    return out


def run(variants: list[str], artifacts: Path, repeat: int) -> tuple[list[dict], list[dict]]:
    cat = Catalog.load()
    cv2.setNumThreads(1)
    agree, speed = [], []
    seqs = sequences()
    for variant in variants:
        v = cat.get(variant)
        preset = cat.preset(variant, "opencv-vit")
        runner = open_artifact(artifacts / variant / "onnx", v, threads=1).load()
        for name, frames, box in seqs:
            passes = []
            for _ in range(repeat):
                zoo_tracker = Tracker(runner, v, preset)
                passes.append((agreement(load_trackervit(artifacts / variant / "onnx-opencv"), zoo_tracker, frames, box, name),
                               np.median(zoo_tracker.network_times[WARMUP:])))
            first = passes[0][0].summary()
            # threshold 0: every frame's box is taken (the default 0.2 rejects most frames of untrained weights)
            zero = agreement(load_trackervit(artifacts / variant / "onnx-opencv", 0.0), Tracker(runner, v, with_threshold(preset, 0.0)),
                             frames, box, name).summary()
            for label, r in (("default Params (0.2)", first), ("0", zero)):
                agree.append({"variant": variant, "sequence": name, "threshold": label, "frames": r["frames"], "min_iou": r["min_iou"],
                              "max_score_diff": r["max_score_diff"], "accepted": r["accepted"], "accept_mismatches": r["ok_mismatches"]})
            cv_ms = float(np.median([np.median(a.opencv_s[WARMUP:]) for a, _ in passes])) * 1e3
            zoo_ms = float(np.median([np.median(a.zoo_s[WARMUP:]) for a, _ in passes])) * 1e3
            net_ms = float(np.median([n for _, n in passes])) * 1e3
            speed.append({"variant": variant, "sequence": name, "trackervit_ms": round(cv_ms, 2), "trackervit_fps": round(1e3 / cv_ms, 1),
                          "zoo_ort_ms": round(zoo_ms, 2), "zoo_ort_fps": round(1e3 / zoo_ms, 1), "zoo_ort_network_ms": round(net_ms, 2),
                          "zoo_over_trackervit": round(cv_ms / zoo_ms, 2)})
        runner.close()
    return agree, speed


def markdown(title: str, rows: list[dict]) -> str:
    if not rows:
        return f"### {title}\n\n(none)\n"
    keys = list(dict.fromkeys(k for r in rows for k in r))
    lines = [f"### {title}", "", "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for r in rows:
        lines.append("| " + " | ".join(f"{r.get(k):.3g}" if isinstance(r.get(k), float) else str(r.get(k, "")) for k in keys) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=["base-c128", "fgaf3"])
    parser.add_argument("--artifacts", type=Path, default=REPO / "artifacts",
                        help="holds <variant>/onnx and <variant>/onnx-opencv (zoo export V --to onnx --for opencv)")
    parser.add_argument("--cv-dirs", nargs="*", default=[], help="directories with another OpenCV (pip install --target DIR)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    missing = [v for v in args.variants if not (args.artifacts / v / "onnx-opencv" / "manifest.json").is_file()]
    if missing:
        raise SystemExit(f"no onnx-opencv artifact for {', '.join(missing)} under {args.artifacts}: "
                         f"zoo export {' '.join(missing)} --to onnx --for opencv --artifacts {args.artifacts}")
    load_before = os.getloadavg()[0]
    norm = normalisation_rows(args.cv_dirs)
    agree, speed = run(args.variants, args.artifacts, args.repeat)
    text = (markdown("cv2.TrackerVit input transform (blob = scale/255 * frame pixel + offset, per blob channel)", norm)
            + "\n" + markdown("Agreement per frame: cv2.TrackerVit (onnx-opencv) vs zoo.Tracker(preset='opencv-vit', onnxruntime, plain onnx); "
                              "frames = frames compared (both stop when the untracked box collapses below 1 px or outgrows the frame)", agree)
            + "\n" + markdown(f"Speed at 1 thread, median ms per frame (load average {load_before:.2f} -> {os.getloadavg()[0]:.2f}, "
                              f"{os.cpu_count()} CPUs, OpenCV {cv2.__version__})", speed))
    print(text)
    if args.markdown:
        args.markdown.write_text(text)


if __name__ == "__main__":
    main()

"""Wall time of `zoo eval run` on one machine: --jobs 1 vs --jobs N vs a local Ray instance.

Builds a synthetic LaSOT-layout root (sequences from the bundled photographs, 640x360 JPEG frames)
and runs the same trackers on it with each executor, in fresh processes; checks that the raw
results (boxes and scores) are identical.

    python benchmarks/eval_run_scaling.py [--sequences 8] [--frames 300] [--variants base-c128 fgaf3]
        [--runtime tflite] [--jobs 2] [--artifacts DIR] [--markdown FILE]
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

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # this checkout's zoo, not another installed copy

from zoo.datasets.synthetic import write_dataset  # noqa: E402

ZOO = [sys.executable, "-c", "from zoo.cli import main; main()"]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"}


def results_text(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): p.read_text() for p in sorted(folder.rglob("*.txt")) if not p.name.endswith("_time.txt")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=8)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--variants", nargs="+", default=["base-c128", "fgaf3"])
    parser.add_argument("--runtime", default="tflite")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--artifacts", type=Path, default=REPO / "artifacts")
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_dataset(tmp / "lasot", "lasot", count=args.sequences, frames=args.frames, size=(640, 360))
        executors = [("--jobs 1", ["--jobs", "1"]), (f"--jobs {args.jobs}", ["--jobs", str(args.jobs)]),
                     (f"--ray local ({args.jobs} actors)", ["--ray", "local", "--jobs", str(args.jobs)])]
        rows, outputs = [], []
        for label, extra in executors:
            results = tmp / f"results{len(rows)}"
            load = os.getloadavg()[0]
            start = time.perf_counter()
            proc = subprocess.run([*ZOO, "eval", "run", *args.variants, "--dataset", "lasot", "--root", str(tmp / "lasot"),
                                   "--runtime", args.runtime, "--results", str(results), "--artifacts", str(args.artifacts),
                                   "--json", str(tmp / "run.json"), *extra], capture_output=True, text=True, env=ENV, cwd=REPO)
            wall = time.perf_counter() - start
            if proc.returncode != 0:
                raise SystemExit(proc.stderr)
            data = json.loads((tmp / "run.json").read_text())
            frames = sum(t["frames"] for t in data["trackers"])
            rows.append({"executor": label, "command_s": wall, "run_s": data["wall_s"], "frames": frames,
                         "frames_per_s": frames / data["wall_s"], "load_1min": (load + os.getloadavg()[0]) / 2})
            outputs.append(results_text(results))
            print(f"{label}: {wall:.1f} s", file=sys.stderr)
        same = all(o == outputs[0] for o in outputs[1:])
    keys = ["executor", "command_s", "run_s", "frames", "frames_per_s", "load_1min"]
    lines = [f"### zoo eval run {' '.join(args.variants)} --runtime {args.runtime}: {args.sequences} synthetic LaSOT sequences "
             f"x {args.frames} frames (640x360 JPEG)\n", "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(f"{r[k]:.2f}" if isinstance(r[k], float) else str(r[k]) for k in keys) + " |" for r in rows]
    lines.append(f"\nraw results (boxes, scores) identical across executors: {same}\n")
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        args.markdown.write_text(text)


if __name__ == "__main__":
    main()

"""How long `zoo eval analyze` takes on a LaSOT-test-size set (280 sequences, ~685k frames).

Builds a synthetic LaSOT root (the 280 official test names, groundtruth.txt + full_occlusion.txt +
out_of_view.txt; lengths drawn around LaSOT's mean) and one tracker's results in a temporary
folder, then times reading the annotations and results and computing the figures (the work of
`zoo eval analyze` for one tracker), and the whole command in a fresh process.

    python benchmarks/eval_speed.py [--frames 685000] [--keep DIR]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # this checkout's zoo, not another installed copy

from zoo.datasets import dataset_spec, load_dataset, open_results, split_names  # noqa: E402
from zoo.evaluation.analyze import evaluate  # noqa: E402


def build(root: Path, total_frames: int, seed: int = 0) -> int:
    """Write the synthetic dataset and results under ``root``; return the number of frames."""
    rng = np.random.default_rng(seed)
    names = split_names(dataset_spec("lasot"))
    lengths = rng.integers(1000, 3900, size=len(names)).astype(float)
    lengths = np.maximum(100, np.round(lengths * total_frames / lengths.sum())).astype(int)
    for name, n in zip(names, lengths):
        folder = root / "lasot" / name.split("-")[0] / name
        folder.mkdir(parents=True, exist_ok=True)
        steps = rng.normal(0, 3, size=(n, 2)).cumsum(0)
        wh = np.clip(60 + rng.normal(0, 2, size=(n, 2)).cumsum(0), 5, 400)
        gt = np.column_stack([300 + steps, wh]).round()
        absent = (rng.random(n) < 0.03).astype(int)
        gt[absent == 1] = 0
        np.savetxt(folder / "groundtruth.txt", gt, fmt="%d", delimiter=",")
        (folder / "full_occlusion.txt").write_text(",".join(map(str, absent)) + "\n")
        (folder / "out_of_view.txt").write_text(",".join("0" for _ in range(n)) + "\n")
        pred = gt + rng.normal(0, 6, size=gt.shape)
        pred[:, 2:] = np.abs(pred[:, 2:]) + 1
        out = root / "results" / "Synthetic"
        out.mkdir(parents=True, exist_ok=True)
        np.savetxt(out / f"{name}.txt", pred, fmt="%.4f", delimiter=",")
    return int(lengths.sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=685_000)
    parser.add_argument("--keep", type=Path, default=None, help="Build the set here and keep it.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        t0 = time.perf_counter()
        frames = build(root, args.frames)
        print(f"built 280 sequences, {frames} frames in {time.perf_counter() - t0:.1f} s ({root})")
        t0 = time.perf_counter()
        ds = load_dataset("lasot", root=root / "lasot")
        t1 = time.perf_counter()
        tracker = open_results(str(root / "results" / "Synthetic"), "lasot", ds.names())
        ev = evaluate(ds, [tracker])
        t2 = time.perf_counter()
        row = ev.rows()[0]
        print(f"library: annotations {t1 - t0:.2f} s + results and figures {t2 - t1:.2f} s = {t2 - t0:.2f} s "
              f"for {row['sequences']} sequences, {row['frames']} frames (AUC {row['auc']:.2f})")
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "zoo", "eval", "analyze", str(root / "results" / "Synthetic"),
                        "--dataset", "lasot", "--root", str(root / "lasot"), "--json", str(root / "report.json")],
                       check=True, capture_output=True, cwd=REPO)
        print(f"command: `zoo eval analyze` end to end (process start included) {time.perf_counter() - t0:.2f} s")


if __name__ == "__main__":
    main()

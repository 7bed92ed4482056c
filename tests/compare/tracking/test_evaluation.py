"""``zoo eval run`` and the dataset readers with frames, on synthetic sequences in every layout.

Self-contained: the sequences are built from scikit-image's bundled photographs with exact
ground truth (:mod:`zoo.datasets.synthetic`). PyTorch eager keeps these tests free of exports.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from compare.tracking.evaluation import folder_lock, run_evaluation, tracker_specs
from compare.tracking.run_record import RECORD_SUFFIX
from tests.helpers.catalog import CATALOG, REPO
from tests.helpers.mounts import tmpfs  # noqa: F401 (fixture)
from tests.helpers.tracking import run_cli
from zoo.datasets import load_dataset
from zoo.datasets.frames import open_sequence_folder, read_frame, sequence_frames
from zoo.datasets.synthetic import make_sequence, write_dataset, write_sequence
from zoo.errors import UsageError, ZooError

FRAMES = 12


@pytest.fixture(scope="module")
def lasot(tmp_path_factory) -> Path:
    """Three 12-frame LaSOT-layout sequences (names from the official test split)."""
    root = tmp_path_factory.mktemp("lasot")
    write_dataset(root, "lasot", count=3, frames=FRAMES)
    return root


@pytest.fixture(scope="module")
def reference_run(lasot, tmp_path_factory) -> Path:
    """The --jobs 1 results of base-c128 on PyTorch: what every other executor must reproduce."""
    results = tmp_path_factory.mktemp("results-jobs1")
    ds = load_dataset("lasot", root=lasot)
    specs, _ = tracker_specs(CATALOG, [CATALOG.get("base-c128")], ["pytorch"], ["fp32"], results / "artifacts")
    outcome = run_evaluation(specs, ds, results, jobs=1)
    assert outcome.tasks == 3 and not outcome.errors
    return results


def result_files(results: Path) -> dict[str, str]:
    """Boxes and scores of every sequence (times differ from run to run)."""
    return {str(p.relative_to(results)): p.read_text() for p in sorted(results.rglob("*.txt")) if not p.name.endswith("_time.txt")}


@pytest.mark.parametrize("layout", ["lasot", "lasot_ext", "tnl2k", "otb"])
def test_synthetic_sequences_in_every_layout_read_back_exactly(layout, tmp_path) -> None:
    written = write_dataset(tmp_path, layout, count=2, frames=30)
    ds = load_dataset(layout, root=tmp_path)
    assert ds.names() == [s.name for s in written]
    for seq, truth in zip(ds.sequences, written, strict=True):
        assert np.array_equal(seq.ground_truth, truth.ground_truth)
        frames = sequence_frames(seq)
        assert len(frames) == 30 and frames == sorted(frames)
        assert read_frame(frames[0]).shape == (240, 320, 3)
        if layout in ("lasot", "lasot_ext"):
            assert np.array_equal(seq.visible, truth.visible)
        if layout != "otb":
            assert seq.language == "the textured patch moving over the photograph"
    gt, visible = written[0].ground_truth, written[0].visible
    assert not visible.all() and visible[0] and visible[-1]  # leaves the frame and comes back
    assert gt[:, 2].max() > 1.3 * gt[visible][:, 2].min()  # changes scale
    assert (gt[visible][:, 0] + gt[visible][:, 2] <= 320).all() and (gt[visible][:, :2] >= 0).all()


def test_ground_truth_is_where_the_target_is() -> None:
    seq = make_sequence(frames=8)
    background = make_sequence(frames=8, target=0.0001)  # the same background with a negligible target
    for frame, box, bg in zip(seq.frames, seq.ground_truth, background.frames, strict=True):
        x, y, w, h = (int(v) for v in box)
        changed = np.argwhere(np.any(frame != bg, axis=2))
        if w:
            ys, xs = changed[:, 0], changed[:, 1]
            inside = (xs >= x) & (xs < x + w) & (ys >= y) & (ys < y + h)
            assert inside.mean() > 0.97 and xs.min() <= x + 2 and xs.max() >= x + w - 3


def test_plain_folder_and_sequence_folder(tmp_path) -> None:
    seq = make_sequence("clip", frames=5)
    folder = write_sequence(seq, tmp_path, "plain")
    opened = open_sequence_folder(folder)
    assert len(sequence_frames(opened)) == 5 and np.array_equal(opened.ground_truth, seq.ground_truth)
    assert np.array_equal(read_frame(sequence_frames(opened)[2]), seq.frames[2])  # PNG: lossless
    (folder / "0005.png").unlink()
    with pytest.raises(UsageError, match="4 frames for 5 ground-truth lines"):
        open_sequence_folder(folder)


def test_eval_run_writes_pytracking_layout(lasot, reference_run, capsys) -> None:
    folder = reference_run / "base-c128@pytorch-fp32" / "lasot"
    ds = load_dataset("lasot", root=lasot)
    for seq in ds.sequences:
        boxes = np.loadtxt(folder / f"{seq.name}.txt", delimiter="\t")
        assert boxes.shape == (FRAMES, 4) and np.allclose(boxes[0], seq.ground_truth[0])
        times = np.loadtxt(folder / f"{seq.name}_time.txt")
        scores = np.loadtxt(folder / f"{seq.name}_score.txt")
        assert times.shape == scores.shape == (FRAMES,) and (times > 0).all() and scores[0] == 1.0
    # the analysis reads them as they are
    code, stdout, stderr = run_cli(capsys, "eval", "analyze", str(reference_run / "base-c128@pytorch-fp32"),
                                   "--dataset", "lasot", "--root", str(lasot), "--json", "-")
    assert code == 0, stderr
    report = json.loads(stdout)
    assert report["rows"][0]["tracker"] == "base-c128@pytorch-fp32" and report["rows"][0]["sequences"] == 3


def test_cli_run_resumes_and_summarises(lasot, reference_run, tmp_path, capsys) -> None:
    results = tmp_path / "results"
    args = ["eval", "run", "base-c128", "--dataset", "lasot", "--root", str(lasot), "--runtime", "pytorch",
            "--results", str(results), "--sequences", "airplane-1", "airplane-9"]
    code, stdout, stderr = run_cli(capsys, *args, "--json", str(tmp_path / "first.json"))
    assert code == 0, stderr
    first = json.loads((tmp_path / "first.json").read_text())
    row = first["trackers"][0]
    assert row["tracker"] == "base-c128@pytorch-fp32" and row["sequences"] == 2 and row["frames"] == 2 * FRAMES
    assert row["network_fps"] > row["loop_fps"] > 0 and first["split_total"] == 2
    code, stdout, stderr = run_cli(capsys, *args[:-3], "--json", str(tmp_path / "second.json"))  # all 3 now
    assert code == 0, stderr
    second = json.loads((tmp_path / "second.json").read_text())
    assert second["trackers"][0]["skipped"] == 2 and second["trackers"][0]["sequences"] == 1
    assert "3 sequences of the 280-sequence test split" in stdout.replace("\n", " ")
    assert "base-c128@pytorch-fp32 ran the catalog's untrained reference weights" in " ".join(stdout.split())
    assert result_files(results) == result_files(reference_run)


def test_killed_run_leaves_only_whole_results_and_resumes(lasot, reference_run, tmp_path, capsys) -> None:
    results = tmp_path / "results"
    cmd = [sys.executable, "-c", "from zoo.cli import main; main()", "eval", "run", "base-c128", "--dataset", "lasot",
           "--root", str(lasot), "--runtime", "pytorch", "--results", str(results)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
    folder = results / "base-c128@pytorch-fp32" / "lasot"
    deadline = time.time() + 120
    while time.time() < deadline and not list(folder.glob("*_score.txt")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = [p for p in folder.glob("*.txt") if not p.stem.endswith(("_time", "_score"))]
    assert len(done) < 3, "the run finished before it could be killed"
    for path in done:  # whatever is there is whole
        assert len(path.read_text().splitlines()) == FRAMES
    code, _, stderr = run_cli(capsys, *cmd[3:])  # the rerun, in this process
    assert code == 0, stderr
    assert not list(folder.glob(".*.tmp"))
    assert result_files(results) == result_files(reference_run)


def test_two_jobs_give_the_same_results(lasot, reference_run, tmp_path) -> None:
    ds = load_dataset("lasot", root=lasot)
    specs, _ = tracker_specs(CATALOG, [CATALOG.get("base-c128")], ["pytorch"], ["fp32"], tmp_path / "artifacts")
    outcome = run_evaluation(specs, ds, tmp_path, jobs=2)
    assert not outcome.errors and len(outcome.pids) == 2 and os.getpid() not in outcome.pids
    assert result_files(tmp_path) == {k: v for k, v in result_files(reference_run).items()}


def test_ray_gives_the_same_results(lasot, reference_run, tmp_path) -> None:
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'zoo[ray]')")
    ds = load_dataset("lasot", root=lasot)
    specs, _ = tracker_specs(CATALOG, [CATALOG.get("base-c128")], ["pytorch"], ["fp32"], tmp_path / "artifacts")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        outcome = run_evaluation(specs, ds, tmp_path / "ray", jobs=2, ray_address="auto")
    finally:
        ray.shutdown()
    assert not outcome.errors and outcome.tasks == 3 and os.getpid() not in outcome.pids
    assert result_files(tmp_path / "ray") == result_files(reference_run)


def test_bad_input_is_one_line_and_writes_nothing(lasot, tmp_path, capsys) -> None:
    results = tmp_path / "results"
    base = ["eval", "run", "base-c128", "--runtime", "pytorch", "--results", str(results)]
    code, _, stderr = run_cli(capsys, *base, "--dataset", "lasott", "--root", str(lasot))
    assert code == 2 and "unknown dataset 'lasott'" in stderr and "did you mean" in stderr
    code, _, stderr = run_cli(capsys, *base, "--dataset", "lasot", "--root", str(tmp_path / "nowhere"))
    assert code == 2 and "nowhere" in stderr and len(stderr.strip().splitlines()) == 1
    # fewer frames than ground-truth lines: refused before anything runs
    broken = tmp_path / "broken"
    write_dataset(broken, "lasot", count=2, frames=6)
    (broken / "airplane" / "airplane-9" / "img" / "00000006.jpg").unlink()
    code, _, stderr = run_cli(capsys, *base, "--dataset", "lasot", "--root", str(broken))
    assert code == 2 and "5 frames for 6 ground-truth lines" in stderr and "airplane-9" in stderr
    assert not results.exists() or not list(results.rglob("*.txt"))
    # a malformed ground-truth line: file and line
    (broken / "airplane" / "airplane-9" / "img" / "00000006.jpg").write_bytes(b"not a jpeg")
    gt = broken / "airplane" / "airplane-1" / "groundtruth.txt"
    good = gt.read_text()
    gt.write_text(good.replace("\n", "\n1,2,x,4\n", 1))
    code, _, stderr = run_cli(capsys, *base, "--dataset", "lasot", "--root", str(broken))
    assert code == 2 and f"{gt}:2" in stderr.replace("\n", "")
    # an unreadable frame: that sequence fails naming the file, the others are written
    gt.write_text(good)
    code, _, stderr = run_cli(capsys, *base, "--dataset", "lasot", "--root", str(broken))
    assert code == 2 and "00000006.jpg: not a readable image" in stderr.replace("\n", "")
    folder = results / "base-c128@pytorch-fp32" / "lasot"
    assert (folder / "airplane-1.txt").is_file() and not (folder / "airplane-9.txt").exists()
    assert not list(folder.glob("airplane-9*"))


def test_otb_david_starts_at_frame_300(tmp_path) -> None:
    seq = make_sequence("David", frames=4)
    folder = write_sequence(seq, tmp_path, "otb")
    for k in reversed(range(1, 5)):  # OTB's David folder holds frames 0001-0770; its boxes start at 0300
        (folder / "img" / f"{k:04d}.jpg").rename(folder / "img" / f"{k + 299:04d}.jpg")
    for k in range(1, 300):
        (folder / "img" / f"{k:04d}.jpg").write_bytes(b"")
    ds = load_dataset("otb", root=tmp_path)
    frames = sequence_frames(ds.sequences[0])
    assert [f.name for f in frames] == ["0300.jpg", "0301.jpg", "0302.jpg", "0303.jpg"]
    assert np.array_equal(read_frame(frames[0]), read_frame(folder / "img" / "0300.jpg"))


def test_a_sequence_named_outside_the_test_split_runs(tmp_path, capsys) -> None:
    """``--sequences NAME`` runs that sequence even when it is not in the official test split;
    wildcards keep selecting within the split."""
    root, results = tmp_path / "lasot", tmp_path / "results"
    write_dataset(root, "lasot", count=2, frames=6)  # airplane-1, airplane-9: test split
    write_sequence(make_sequence("airplane-2", frames=6), root, "lasot")  # a training sequence
    assert load_dataset("lasot", root=root, patterns=["airplane-*"]).names() == ["airplane-1", "airplane-9"]
    assert sorted(load_dataset("lasot", root=root, patterns=["airplane-2", "airplane-9"]).names()) == ["airplane-2", "airplane-9"]
    code, stdout, stderr = run_cli(capsys, "eval", "run", "base-c128", "--dataset", "lasot", "--root", str(root), "--runtime", "pytorch",
                                   "--results", str(results), "--sequences", "airplane-2", "--json", "-")
    assert code == 0, stderr
    assert json.loads(stdout)["sequences"] == ["airplane-2"]
    assert (results / "base-c128@pytorch-fp32" / "lasot" / "airplane-2.txt").is_file()
    # a name that is not there at all is still refused, with a suggestion
    code, _, stderr = run_cli(capsys, "eval", "run", "base-c128", "--dataset", "lasot", "--root", str(root), "--runtime", "pytorch",
                              "--results", str(results), "--sequences", "airplane-3")
    assert code == 2 and "--sequences 'airplane-3' matches no sequence" in stderr


@pytest.mark.parametrize("damage", ["cut_last_line", "garbage", "no_record", "other_weights", "other_preset"])
def test_resume_reruns_what_it_cannot_trust(lasot, reference_run, tmp_path, damage) -> None:
    """A result counts as finished only when its files parse and its record is the current tracker's."""
    ds = load_dataset("lasot", root=lasot, patterns=["airplane-1"])
    results = tmp_path / "results"
    shutil.copytree(reference_run, results)
    specs, _ = tracker_specs(CATALOG, [CATALOG.get("base-c128")], ["pytorch"], ["fp32"], tmp_path / "artifacts")
    folder = results / specs[0].name / "lasot"
    assert run_evaluation(specs, ds, results).tasks == 0  # untouched: finished
    boxes, record = folder / "airplane-1.txt", folder / f"airplane-1{RECORD_SUFFIX}"
    if damage == "cut_last_line":
        boxes.write_text(boxes.read_text()[:-7])
    elif damage == "garbage":
        boxes.write_text("x\ty\tw\th\n" * FRAMES)
    elif damage == "no_record":
        record.unlink()
    elif damage == "other_weights":
        record.write_text(record.read_text().replace(CATALOG.get("base-c128").weights.sha256, "0" * 64))
    else:
        specs = [dataclasses.replace(specs[0], preset=specs[0].preset.model_copy(update={"description": "another loop"}))]
    assert run_evaluation(specs, ds, results).tasks == 1
    assert run_evaluation(specs, ds, results).tasks == 0  # and then it is finished


def test_a_second_run_on_the_same_results_is_refused_and_touches_nothing(lasot, reference_run, tmp_path) -> None:
    """One run per results folder: a second one neither repeats the work nor removes the live run's
    temporary files."""
    ds = load_dataset("lasot", root=lasot, patterns=["airplane-1"])
    specs, _ = tracker_specs(CATALOG, [CATALOG.get("base-c128")], ["pytorch"], ["fp32"], tmp_path / "artifacts")
    folder = tmp_path / "results" / specs[0].name / "lasot"
    folder.mkdir(parents=True)
    live = folder / ".airplane-1.txt.abc.tmp"
    live.write_text("being written by the other run")
    with folder_lock(folder):
        with pytest.raises(ZooError, match=rf"another zoo eval run \(pid {os.getpid()}\) is writing .*lasot: wait for it"):
            run_evaluation(specs, ds, tmp_path / "results")
        assert live.exists() and not (folder / "airplane-1.txt").exists()
    assert run_evaluation(specs, ds, tmp_path / "results").tasks == 1 and not live.exists()  # a stale leftover: ours now


def test_workers_die_with_a_killed_run(lasot, tmp_path) -> None:
    """SIGKILL of ``zoo eval run --jobs 2`` takes its pool workers along (they ask for a parent-death signal)."""
    cmd = [sys.executable, "-c", "from zoo.cli import main; main()", "eval", "run", "base-c128", "--dataset", "lasot",
           "--root", str(lasot), "--runtime", "pytorch", "--results", str(tmp_path / "results"), "--jobs", "2"]
    proc = subprocess.Popen(cmd, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd=REPO)
    parent, deadline = psutil.Process(proc.pid), time.time() + 120
    workers: list = []
    while time.time() < deadline and len(workers) < 2 and proc.poll() is None:
        workers = [c for c in parent.children(recursive=True) if "multiprocessing" in " ".join(c.cmdline())
                   and "resource_tracker" not in " ".join(c.cmdline())]
        time.sleep(0.05)
    assert len(workers) == 2, "the pool did not start two workers"
    proc.kill()
    proc.wait()
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, [p.pid for p in alive]


def test_an_empty_first_ground_truth_box_is_refused_before_any_run(tmp_path, capsys) -> None:
    """The tracker starts from the first ground-truth box: an empty one is named (file and line)
    before any sequence runs, not as a nameless failure in the middle of the run."""
    root, results = tmp_path / "otb", tmp_path / "results"
    write_dataset(root, "otb", count=2, frames=4)
    bad = sorted(root.glob("*/groundtruth_rect.txt"))[1]
    lines = bad.read_text().splitlines()
    bad.write_text("\n".join(["3,4,0,0", *lines[1:]]) + "\n")
    code, _, stderr = run_cli(capsys, "eval", "run", "base-c128", "--dataset", "otb", "--root", str(root), "--runtime", "pytorch",
                              "--results", str(results))
    assert code == 2 and f"{bad}:1: the first ground-truth box is 3,4,0,0" in stderr.replace("\n", ""), stderr
    assert not list(results.rglob("*.txt"))


@pytest.mark.parametrize("case", ["under_a_file", "read_only", "full"])
def test_results_that_cannot_be_written_are_one_line_naming_the_folder(tmp_path, capsys, tmpfs, case) -> None:
    """A results path under a file (exit 2), a results folder on a file system made read-only after
    a first run, a full disk (exit 1): one line naming the results folder, never "internal error"."""
    root = tmp_path / "otb"
    write_dataset(root, "otb", count=2, frames=4)
    run = ("eval", "run", "base-c128", "--dataset", "otb", "--root", str(root), "--runtime", "pytorch")
    if case == "under_a_file":
        (tmp_path / "afile").write_text("")
        results, code_wanted, reason = tmp_path / "afile" / "results", 2, "a part of this path is a file, not a folder"
    elif case == "read_only":
        def first_run(where: Path) -> None:
            code, _, stderr = run_cli(capsys, *run, "--results", str(where / "results"), "--sequences", "Synthetic1")
            assert code == 0, stderr
        results, code_wanted, reason = tmpfs("ro", size="1m", populate=first_run, ro=True) / "results", 1, "Read-only file system"
    else:
        results, code_wanted, reason = tmpfs("full", size="12k") / "results", 1, "No space left on device"
    code, _, stderr = run_cli(capsys, *run, "--results", str(results))
    last = stderr.strip().splitlines()[-1]
    assert code == code_wanted and last.startswith("error: cannot write") and reason in last, stderr
    assert str(results / "base-c128@pytorch-fp32" / "otb") in stderr.replace("\n", "") and "internal error" not in stderr

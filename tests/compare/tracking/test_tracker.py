"""Every runtime tracks: the same loop on PyTorch eager and on each exported artifact.

Default tier: base-c128 fp32 in ONNX Runtime, MNN, TFLite and ncnn tracks a 12-frame synthetic
sequence with a box per frame whose IoU to the PyTorch tracker's is >= 0.99. Slow tier: every
runtime x precision for base-c128 and fgaf3 (fp16 figures reported, not bounded: with untrained
weights the score maps are flat and fp16 may pick another cell), and the real OTB sequences.
"""
from __future__ import annotations

import re

import cv2
import numpy as np
import pytest

import zoo
from tests.helpers.catalog import REPO
from tests.helpers.tracking import OTB_ROOT, needs_otb, run_cli
from zoo.backends import BACKENDS, REDUCED_PRECISIONS
from zoo.datasets.synthetic import make_sequence
from zoo.evaluation.metrics import iou

FP32_RUNTIMES = [b.runtime for b in BACKENDS]
ALL = [(b.runtime, p) for b in BACKENDS for p in b.precisions if p not in REDUCED_PRECISIONS]  # reduced: test_quantization.py


@pytest.fixture(scope="module")
def sequence():
    return make_sequence("moving", frames=12)


@pytest.fixture(scope="module")
def fp32_artifacts(tmp_path_factory):
    """base-c128 exported to every format at fp32, once for this module."""
    out = tmp_path_factory.mktemp("track-artifacts")
    zoo.export("base-c128", [b.format for b in BACKENDS], "fp32", out=out)
    return out


def trajectory(tracker, seq) -> np.ndarray:
    tracker.initialize(seq.frames[0], seq.ground_truth[0])
    boxes = [seq.ground_truth[0]] + [tracker.track(frame)[0] for frame in seq.frames[1:]]
    return np.asarray(boxes, np.float64)


@pytest.fixture(scope="module")
def reference(sequence):
    with zoo.Tracker("base-c128", runtime="pytorch") as tracker:
        return trajectory(tracker, sequence)


@pytest.mark.parametrize("runtime", FP32_RUNTIMES)
def test_every_runtime_tracks_like_pytorch_at_fp32(runtime, sequence, reference, fp32_artifacts) -> None:
    with zoo.Tracker("base-c128", runtime=runtime, precision="fp32", threads=1, out=fp32_artifacts) as tracker:
        boxes = trajectory(tracker, sequence)
        assert len(tracker.network_times) == len(tracker.loop_times) == len(sequence.frames) - 1
        assert all(0 < n <= t for n, t in zip(tracker.network_times, tracker.loop_times, strict=True))
        assert tracker.name == f"base-c128@{runtime}-fp32"
    ious = iou(boxes, reference, pixels=False)
    print(f"{runtime} fp32 per-frame IoU to PyTorch: {np.round(ious, 4).tolist()}")
    assert ious.min() >= 0.99, f"{runtime}: frame {int(ious.argmin())} IoU {ious.min():.4f}"
    # the tracker moved: not a constant box (a loop that ignored the network would pass the IoU check)
    assert np.ptp(reference[1:, 0]) > 5 and np.ptp(reference[1:, 2]) > 1


def test_tracker_api_errors(fp32_artifacts) -> None:
    with pytest.raises(zoo.errors.UsageError, match="pytorch runs fp32 only"):
        zoo.Tracker("base-c128", runtime="pytorch", precision="fp16")
    with pytest.raises(zoo.errors.UsageError, match="unknown runtime 'tflit'"):
        zoo.Tracker("base-c128", runtime="tflit", out=fp32_artifacts)
    with pytest.raises(zoo.errors.UsageError, match="unknown tracking preset"):
        zoo.Tracker("base-c128", runtime="pytorch", preset="nope")


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["base-c128", "fgaf3"])
def test_every_runtime_and_precision(variant, sequence, tmp_path_factory) -> None:
    out = tmp_path_factory.mktemp(f"track-all-{variant}")
    zoo.export(variant, [b.format for b in BACKENDS], ["fp32", "fp16"], out=out)
    with zoo.Tracker(variant, runtime="pytorch") as tracker:
        ref = trajectory(tracker, sequence)
    for runtime, precision in ALL:
        with zoo.Tracker(variant, runtime=runtime, precision=precision, out=out) as tracker:
            ious = iou(trajectory(tracker, sequence), ref, pixels=False)
        print(f"{variant} {runtime} {precision}: mean IoU to PyTorch {ious.mean():.4f}, min {ious.min():.4f}")
        if precision == "fp32":
            assert ious.min() >= 0.99, f"{variant} {runtime}: frame {int(ious.argmin())} IoU {ious.min():.4f}"
        else:
            assert np.isfinite(ious).all() and ious[1] > 0  # it ran and the first tracked frame overlaps


@pytest.mark.slow
@needs_otb
@pytest.mark.parametrize("sequence_name", ["Crossing", "Couple"])
def test_zoo_track_runs_real_otb_sequences_on_every_runtime(sequence_name, capsys, tmp_path, fp32_artifacts) -> None:
    import json

    boxes = {}
    for runtime in ["pytorch", *FP32_RUNTIMES]:
        report = tmp_path / f"{runtime}.json"
        code, _, stderr = run_cli(capsys, "track", "base-c128", str(OTB_ROOT / sequence_name), "--runtime", runtime,
                                  "--artifacts", str(fp32_artifacts), "--json", str(report))
        assert code == 0, stderr
        data = json.loads(report.read_text())
        assert data["kind"] == "sequence" and data["summary"]["mean_iou"] is not None
        boxes[runtime] = np.asarray([f["box"] for f in data["frames"]])
    for runtime in FP32_RUNTIMES:
        ious = iou(boxes[runtime], boxes["pytorch"], pixels=False)
        assert ious.mean() >= 0.95, f"{sequence_name} {runtime}: mean IoU to PyTorch {ious.mean():.3f}"


def readme_tracking_example() -> str:
    text = (REPO / "README.md").read_text()
    section = text.split("## Tracking: `zoo track`", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_tracking_example_runs_as_written(sequence, fp32_artifacts, tmp_path, monkeypatch, capsys) -> None:
    writer = cv2.VideoWriter(str(tmp_path / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10, (320, 240))
    for frame in sequence.frames[:6]:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ZOO_ARTIFACTS", str(fp32_artifacts))
    namespace: dict = {}
    exec(compile(readme_tracking_example(), "README.md", "exec"), namespace)
    tracker = namespace["tracker"]
    assert len(tracker.network_times) == len(tracker.loop_times) == 5 and not tracker.runner.is_loaded
    assert "ms/frame, whole loop" in capsys.readouterr().out

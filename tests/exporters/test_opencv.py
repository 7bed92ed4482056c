"""``zoo export --to onnx --for opencv``: stock ``cv2.TrackerVit`` runs the artifact, and tracks
exactly as ``zoo.Tracker(..., preset="opencv-vit")`` does with the plain ONNX artifact."""
from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from compare.runners import open_artifact
from compare.tracking.opencv_client import MAX_SCORE_DIFF, MIN_IOU, OpenCVVersionWarning, agreement, load_trackervit, with_threshold
from compare.tracking.tracker import Tracker
from exporters.opencv_probe import measure, write_probes
from tests.helpers.catalog import CATALOG, DEFAULT_VARIANTS
from tests.helpers.export import zoo
from tests.helpers.tracking import OTB_ROOT, needs_otb, run_cli
from zoo.datasets.frames import open_sequence_folder, read_frame, sequence_frames
from zoo.datasets.synthetic import make_sequence

STD = np.array([0.229, 0.224, 0.225])
MEAN = np.array([0.485, 0.456, 0.406])


@pytest.fixture(scope="module")
def opencv_export(exported, tmp_path_factory) -> Path:
    """The default variants' ``onnx-opencv`` artifacts, exported through the real CLI next to a copy
    of the session's plain ONNX artifacts (which the flavour converts from, and reuses)."""
    out = tmp_path_factory.mktemp("opencv-artifacts")
    for v in DEFAULT_VARIANTS:
        exported.copy(out, v, "onnx")
    proc = zoo("export", *DEFAULT_VARIANTS, "--to", "onnx", "--for", "opencv", "--out", str(out), "--json", "-", timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = json.loads(proc.stdout)["artifacts"]
    assert {(r["variant"], r["flavour"], r["status"]) for r in rows} == \
        {(v, f, s) for v in DEFAULT_VARIANTS for f, s in ((None, "reused"), ("opencv", "built"))}
    return out


def _zoo_tracker(exported, variant: str, threshold: float | None) -> Tracker:
    v = CATALOG.get(variant)
    preset = CATALOG.preset(variant, "opencv-vit")
    if threshold is not None:
        preset = with_threshold(preset, threshold)
    return Tracker(open_artifact(exported.path(variant, "onnx"), v).load(), v, preset)


def _agree(exported, opencv_export: Path, variant: str, frames, box, threshold: float | None, name: str):
    with _zoo_tracker(exported, variant, threshold) as zoo_tracker:
        result = agreement(load_trackervit(opencv_export / variant / "onnx-opencv", threshold), zoo_tracker, frames, box, name)
    return result


def test_probe_measures_the_installed_trackervit_normalisation(tmp_path: Path) -> None:
    """The probe models recover OpenCV's blob affine; from 4.11 ``1.0 / Scalar(std)`` is a quaternion
    inverse (conj(q) / |q|^2), earlier versions divide per channel. Channel order as given (BGR)."""
    m = measure(write_probes(tmp_path))
    assert m["opencv"] == cv2.__version__ and m["channel_order"] == "BGR" and m["affine_residual"] < 1e-5
    major, minor = (int(x) for x in cv2.__version__.split(".")[:2])
    if (major, minor) >= (4, 11):
        expected_scale = np.array([STD[0], -STD[1], -STD[2]]) / (STD @ STD) / 255
    else:
        expected_scale = 1 / (255 * STD)
    assert np.allclose(m["scale"], expected_scale, rtol=1e-5)
    assert np.allclose(np.diag(m["matrix"]), m["scale"]) and np.count_nonzero(np.asarray(m["matrix"]) - np.diag(m["scale"])) == 0
    # blob channel k (frame channel k, B first) has the mean of ImageNet channel k (R first) subtracted
    assert np.allclose(m["offset"], -MEAN * 255 * np.asarray(m["scale"]), atol=1e-5)


def test_manifest_records_the_client(opencv_export: Path) -> None:
    for variant in DEFAULT_VARIANTS:
        manifest = json.loads((opencv_export / variant / "onnx-opencv" / "manifest.json").read_text())
        client = manifest["client"]
        assert client["flavour"] == "opencv" and client["version"] == cv2.__version__
        assert [o["runtime_name"] for o in manifest["outputs"]] == ["output1", "output2", "output3"]
        assert manifest["parity"]["passed"] and manifest["build_inputs"]["flavour"] == "opencv"
        runs = client["check"]["runs"]
        assert all(r["passed"] and r["min_iou"] >= MIN_IOU for r in runs.values())
        assert runs["tracking_score_threshold=0"]["accepted"] == runs["tracking_score_threshold=0"]["frames"]
        assert "client" not in json.loads((opencv_export / variant / "onnx" / "manifest.json").read_text())


@pytest.mark.parametrize("variant", DEFAULT_VARIANTS)
@pytest.mark.parametrize("threshold", [None, 0.0], ids=["default-params", "threshold-0"])
def test_trackervit_agrees_with_zoo_tracker(exported, opencv_export: Path, variant: str, threshold) -> None:
    """Every frame of a synthetic sequence (another scene than the export's own check): same box
    (IoU >= 0.99), same score (< 1e-3), same accept/reject; with threshold 0 every box is taken."""
    seq = make_sequence("scene1", frames=14, size=(320, 240), scene=1)
    result = _agree(exported, opencv_export, variant, seq.frames, seq.ground_truth[0], threshold, seq.name)
    assert result.frames >= 10  # all 13, unless the box shrank below a pixel (untrained weights): then both stop
    assert result.ious.min() >= MIN_IOU and result.score_diffs.max() < MAX_SCORE_DIFF
    assert (result.opencv_ok == result.zoo_ok).all()
    if threshold == 0.0:  # the geometry is exercised: the box moves on every frame
        assert result.opencv_ok.all() and len({tuple(b) for b in result.opencv_boxes}) > 5


def test_a_different_opencv_version_warns(opencv_export: Path, tmp_path: Path) -> None:
    src = opencv_export / "fgaf3" / "onnx-opencv"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_trackervit(src)  # the version it was built for: silent
    dst = tmp_path / "onnx-opencv"
    shutil.copytree(src, dst)
    manifest = json.loads((dst / "manifest.json").read_text())
    manifest["client"]["version"] = "4.10.0"
    (dst / "manifest.json").write_text(json.dumps(manifest))
    with pytest.warns(OpenCVVersionWarning, match=r"built for OpenCV 4\.10\.0 .* cv2 is " + cv2.__version__.replace(".", r"\.")):
        tracker = load_trackervit(dst)
    assert tracker is not None


@pytest.mark.parametrize("args, message", [
    (["--to", "tflite", "--for", "opencv"], "--for opencv builds onnx only"),
    (["--to", "onnx", "--for", "opencvv"], "did you mean 'opencv'"),
    (["--to", "onnx", "--precision", "fp16", "--for", "opencv"], "offers fp32 only"),
])
def test_bad_for_requests_are_one_line_usage_errors(capsys, tmp_path: Path, args, message) -> None:
    code, _, err = run_cli(capsys, "export", "fgaf3", *args, "--out", str(tmp_path))
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
@needs_otb
@pytest.mark.parametrize("variant", DEFAULT_VARIANTS)
@pytest.mark.parametrize("sequence", ["Crossing", "Couple"])
def test_trackervit_agrees_on_otb(exported, opencv_export: Path, variant: str, sequence: str) -> None:
    seq = open_sequence_folder(OTB_ROOT / sequence)
    frames = [read_frame(p) for p in sequence_frames(seq)]
    x, y, w, h = seq.ground_truth[0]
    box = (int(x) - 1, int(y) - 1, int(w), int(h))  # OTB is 1-based
    for threshold in (None, 0.0):
        result = _agree(exported, opencv_export, variant, frames, box, threshold, sequence)
        # untrained weights: with threshold 0 the box collapses or explodes within ~10 frames (both stop there)
        assert result.frames >= (60 if threshold is None else 8), result.summary()
        assert result.ious.min() >= MIN_IOU and result.score_diffs.max() < MAX_SCORE_DIFF, result.summary()
        assert (result.opencv_ok == result.zoo_ok).all()

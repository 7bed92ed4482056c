"""OpenCV as a client: run a ``--for opencv`` artifact in stock ``cv2.TrackerVit`` and check it
frame by frame against zoo's own tracker (preset ``opencv-vit``, the same loop).

- :func:`trackervit` / :func:`load_trackervit`: a ``cv2.TrackerVit`` with default ``Params``
  (only ``net`` set) on an artifact; the latter warns when the installed OpenCV is not the version
  the artifact was built for (its first layer undoes that version's input transform).
- :func:`agreement`: both trackers over one sequence; per-frame IoU and score difference.
- :func:`check_trackervit`: the export pipeline's check of an ``onnx-opencv`` artifact (the
  flavour's ``checker`` in :mod:`zoo.backends`): ONNX Runtime vs PyTorch on the verification
  pair brought into OpenCV's input space, then TrackerVit vs ``zoo.Tracker`` on a synthetic sequence.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from compare.parity.verify import REFERENCE
from compare.runners import PytorchRunner, runner_for
from compare.tracking.tracker import Tracker
from zoo.artifacts import ArtifactKey
from zoo.backends import by_flavour
from zoo.datasets.synthetic import make_sequence
from zoo.errors import ZooError
from zoo.evaluation.metrics import iou
from zoo.manifest import Manifest, Parity, read_manifest
from zoo.parity import compare_output

#: what an artifact must show against zoo's tracker on every frame of a sequence
MIN_IOU = 0.99
MAX_SCORE_DIFF = 1e-3
#: the export check's sequence (zoo.datasets.synthetic.make_sequence)
CHECK_SEQUENCE = {"name": "synthetic-scene0", "frames": 16, "size": (320, 240), "scene": 0}


#: the export check runs TrackerVit twice: default Params, and a threshold of 0 so that every frame's box is
#: taken (with untrained weights the score may stay below the default 0.2 and the box never move)
CHECK_THRESHOLDS = {"default Params": None, "tracking_score_threshold=0": 0.0}


def with_threshold(preset, threshold: float):
    """``preset`` with ``state.score_threshold`` replaced (TrackerVit's ``Params.tracking_score_threshold``)."""
    return preset.model_copy(update={"state": preset.state.model_copy(update={"score_threshold": float(threshold)})})


class OpenCVVersionWarning(UserWarning):
    """The installed OpenCV is not the version a ``--for opencv`` artifact was built for."""


class ClientCheckFailed(ZooError):
    """The artifact, run in its client, does not track as zoo's tracker does."""


def trackervit(model: Path | str, score_threshold: float | None = None):
    """A stock ``cv2.TrackerVit`` on ``model`` (default ``Params``: only ``net`` set, unless a
    ``score_threshold`` is given)."""
    params = cv2.TrackerVit_Params()
    params.net = str(model)
    if score_threshold is not None:
        params.tracking_score_threshold = float(score_threshold)
    return cv2.TrackerVit.create(params)


def version_problem(manifest: Manifest) -> str | None:
    """Why the installed OpenCV may not run ``manifest``'s artifact as built (None when it is the version targeted)."""
    if manifest.client is None or manifest.client.flavour != "opencv":
        return f"{manifest.variant}/{manifest.format} is not a --for opencv artifact"
    if manifest.client.version != cv2.__version__:
        return (f"{manifest.variant}: the artifact was built for OpenCV {manifest.client.version} (its first layer undoes "
                f"that version's input transform) but cv2 is {cv2.__version__}; re-export it with "
                f"'zoo export {manifest.variant} --to onnx --for opencv --force' under this OpenCV")
    return None


def load_trackervit(artifact_dir: Path | str, score_threshold: float | None = None):
    """``cv2.TrackerVit`` on the ``onnx-opencv`` artifact in ``artifact_dir`` (manifest read first);
    warns :class:`OpenCVVersionWarning` when the installed OpenCV is not the one targeted."""
    artifact_dir = Path(artifact_dir)
    manifest = read_manifest(artifact_dir)
    problem = version_problem(manifest)
    if problem is not None:
        if manifest.client is None:
            raise ZooError(problem)
        warnings.warn(problem, OpenCVVersionWarning, stacklevel=2)
    return trackervit(artifact_dir / manifest.files[0].path, score_threshold)


@dataclass
class Agreement:
    """Per tracked frame (frame 0, the initial box, excluded): both trackers' boxes and scores."""

    sequence: str
    opencv_boxes: np.ndarray  # (N, 4) TrackerVit's box (its last accepted one when update() returned false)
    zoo_boxes: np.ndarray  # (N, 4)
    opencv_scores: np.ndarray  # (N,) getTrackingScore()
    zoo_scores: np.ndarray  # (N,)
    opencv_ok: np.ndarray  # (N,) update()'s return value
    zoo_ok: np.ndarray  # (N,) the preset's threshold accepted the frame
    opencv_s: np.ndarray  # (N,) seconds per update()
    zoo_s: np.ndarray  # (N,) seconds per track() (whole loop)

    @property
    def frames(self) -> int:
        return int(self.zoo_boxes.shape[0])

    @property
    def ious(self) -> np.ndarray:
        """Per-frame IoU; identical boxes count 1 (also when degenerate, e.g. a box shrunk to 0 x 0)."""
        same = (self.opencv_boxes == self.zoo_boxes).all(axis=1)
        return np.where(same, 1.0, iou(self.opencv_boxes, self.zoo_boxes, pixels=False))

    @property
    def score_diffs(self) -> np.ndarray:
        return np.abs(self.opencv_scores - self.zoo_scores)

    def summary(self) -> dict:
        """``{sequence, frames, min_iou, max_score_diff, accepted, ok_mismatches, passed}``."""
        min_iou = float(self.ious.min()) if self.frames else 1.0
        max_diff = float(self.score_diffs.max()) if self.frames else 0.0
        mismatches = int((self.opencv_ok != self.zoo_ok).sum())
        return {"sequence": self.sequence, "frames": self.frames, "min_iou": min_iou, "max_score_diff": max_diff,
                "accepted": int(self.opencv_ok.sum()), "ok_mismatches": mismatches,
                "passed": bool(min_iou >= MIN_IOU and max_diff < MAX_SCORE_DIFF and mismatches == 0)}


def agreement(cv_tracker, zoo_tracker: Tracker, frames_rgb, init_box, sequence: str = "") -> Agreement:
    """Run ``cv_tracker`` (``cv2.TrackerVit``, fed BGR frames as cv2 gives them) and ``zoo_tracker``
    (fed the same frames as RGB) from ``init_box`` (integer x, y, w, h) over ``frames_rgb``.

    Stops early when TrackerVit's box has shrunk below 1 pixel (it cannot crop around it any more)
    or grown beyond twice the frame (its next crop would be 8 frames wide): untrained weights do
    both, as neither tracker clips the box. ``frames`` then says how many were compared."""
    import time

    box0 = tuple(int(v) for v in init_box)
    cv_box = box0
    rows: dict[str, list] = {k: [] for k in ("cvb", "zb", "cvs", "zs", "cvok", "zok", "cvt", "zt")}
    for k, rgb in enumerate(frames_rgb):
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        if k == 0:
            cv_tracker.init(bgr, box0)
            zoo_tracker.initialize(rgb, box0)
            continue
        t0 = time.perf_counter()
        ok, found = cv_tracker.update(bgr)
        rows["cvt"].append(time.perf_counter() - t0)
        if ok:
            cv_box = tuple(int(v) for v in found)
        rows["cvb"].append(cv_box)
        rows["cvs"].append(float(cv_tracker.getTrackingScore()))
        rows["cvok"].append(bool(ok))
        zbox, zscore = zoo_tracker.track(rgb)
        rows["zt"].append(zoo_tracker.loop_times[-1])
        rows["zb"].append(zbox)
        rows["zs"].append(float(zscore))
        rows["zok"].append(bool(zoo_tracker.loop.last.accepted))
        if min(cv_box[2:]) < 1 or max(cv_box[2:]) > 2 * max(rgb.shape[:2]):
            break

    def arr(key, dtype=np.float64, shape=(-1,)):
        return np.asarray(rows[key], dtype).reshape(shape)

    return Agreement(sequence, arr("cvb", shape=(-1, 4)), arr("zb", shape=(-1, 4)), arr("cvs"), arr("zs"),
                     arr("cvok", bool), arr("zok", bool), arr("cvt"), arr("zt"))


def blob_inputs(inputs: dict[str, np.ndarray], layer_weight, layer_bias) -> dict[str, np.ndarray]:
    """The network inputs ``inputs`` (catalog normalisation) as the client's blobs: the inverse of
    the artifact's first layer ``x = W @ blob + b``."""
    inverse = np.linalg.inv(np.asarray(layer_weight, np.float64))
    bias = np.asarray(layer_bias, np.float64)
    return {name: np.einsum("kc,nchw->nkhw", inverse, x.astype(np.float64) - bias[None, :, None, None]).astype(np.float32)
            for name, x in inputs.items()}


def check_trackervit(verifier, key: ArtifactKey, build_dir: Path, manifest: Manifest) -> Parity:
    """The export check of an ``onnx-opencv`` artifact: ONNX Runtime vs PyTorch (the verifier's
    pair, in OpenCV's input space) as the returned :class:`Parity`, then ``cv2.TrackerVit`` vs
    ``zoo.Tracker`` (preset ``opencv-vit``, PyTorch eager) on a synthetic sequence, recorded in
    ``manifest.client.check``; a disagreement raises :class:`ClientCheckFailed`."""
    variant = verifier.catalog.get(key.variant)
    inputs, expected = verifier.reference(variant)
    tol = variant.tolerance(key.format, key.precision)
    transform = manifest.client.input_transform
    with runner_for(build_dir, manifest) as runner:
        actual = runner.infer(blob_inputs(inputs, transform["layer_weight"], transform["layer_bias"]))
    outputs = [compare_output(spec.name, actual[spec.name], expected[spec.name], tol.atol, tol.rtol) for spec in variant.io.outputs]
    parity = Parity(reference=REFERENCE, inputs="the verification pair as cv2.TrackerVit's blobs (inverse first layer)",
                    atol=tol.atol, rtol=tol.rtol, passed=all(o.passed for o in outputs), outputs=outputs)
    if not parity.passed:
        return parity
    preset = verifier.catalog.preset(variant.name, preset_name(key))
    spec = dict(CHECK_SEQUENCE)
    seq = make_sequence(spec.pop("name"), **spec)
    runs = {}
    with PytorchRunner(variant) as runner:
        runner.load()
        for label, threshold in CHECK_THRESHOLDS.items():
            zoo_preset = preset if threshold is None else with_threshold(preset, threshold)
            zoo_tracker = Tracker(runner, variant, zoo_preset)
            runs[label] = agreement(trackervit(build_dir / manifest.files[0].path, threshold), zoo_tracker, seq.frames,
                                    seq.ground_truth[0], CHECK_SEQUENCE["name"]).summary()
    manifest.client.check = {"against": f"zoo.Tracker(preset={preset_name(key)!r}, runtime='pytorch')",
                             "min_iou_required": MIN_IOU, "max_score_diff_allowed": MAX_SCORE_DIFF, "runs": runs}
    failed = {label: r for label, r in runs.items() if not r["passed"]}
    if failed:
        label, r = next(iter(failed.items()))
        raise ClientCheckFailed(f"cv2.TrackerVit ({label}) disagrees with zoo's tracker on {r['sequence']}: min IoU "
                                f"{r['min_iou']:.4f}, max score difference {r['max_score_diff']:.2e}, "
                                f"{r['ok_mismatches']} accept/reject mismatches")
    return parity


def preset_name(key: ArtifactKey) -> str:
    """The tracking preset that mirrors the flavour's client loop."""
    return by_flavour(key.flavour).preset

"""Per-sequence errors under the two evaluation protocols.

``pytracking`` (default) follows ``calc_seq_err_robust`` and ``extract_results`` of
pytracking's ``analysis/extract_results.py``; ``toolkit`` follows ``calc_seq_err_robust.m`` and
``eval_tracker.m`` / ``plot_draw_save.m`` of the official LaSOT and TNL2K MATLAB toolkits.

=====================================  ==========================================  ==========================================
rule                                   pytracking                                  toolkit (LaSOT / TNL2K MATLAB)
=====================================  ==========================================  ==========================================
NaN in a prediction                    error (file and line)                       takes the previous frame's box
w or h < 0 in a prediction             error (file and line)                       takes the previous frame's box
w or h == 0 in a prediction            takes the previous frame's box              takes the previous frame's box
first frame                            replaced by the ground truth                replaced by the ground truth
result longer than ground truth        cut                                         cut
result shorter than ground truth       LaSOT: error; others: padded with zeros     error
valid ground truth                     w > 0 and h > 0 (and visible)               x, y, w, h all > 0
target not visible (absent)            overlap -1 and centre error infinite        frame dropped from the numerator
                                       (misses); normalized error: LaSOT           (a miss)
                                       infinite (a miss), LaSOT_ext -1 (a hit)
invalid ground truth (visible)         overlap -1 (miss), centre error infinite    overlap -1 (miss), centre errors -1
                                       (miss), normalized error -1 (a hit)         (precision hits)
visibility labels used                 LaSOT, LaSOT_ext (not TNL2K: pytracking-    absent flags of every dataset
                                       derived TNL2K readers load none)
denominator                            every frame                                 every frame (+eps)
sequence mean                          every sequence                              sequences whose curve is not all zero
overlap thresholds                     k * 0.05                                    MATLAB ``0:0.05:1``
=====================================  ==========================================  ==========================================

pytracking's dataset rule: LaSOT uses ``'lasot'`` (a shorter result is an error, invisible frames
get infinite centre errors); LaSOT_ext (``'lasot_extension_subset'``), TNL2K and OTB the default
rule. The denominator is every frame of the sequence (``extract_results`` with its default
``exclude_invalid_frames=False``; older pytracking versions divided by the valid frames outside
LaSOT).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zoo.datasets.sequence import Sequence
from zoo.datasets.textio import row_line
from zoo.errors import UsageError
from zoo.evaluation import metrics

PROTOCOLS = ("pytracking", "toolkit")


@dataclass(frozen=True)
class SequenceErrors:
    """Per-frame errors of one tracker on one sequence, ready for thresholding.

    ``overlap``/``center``/``center_norm`` cover the frames that enter the numerator;
    ``denominator`` is what the counts are divided by; ``valid`` marks frames with valid ground
    truth (for the mean overlap)."""

    overlap: np.ndarray
    center: np.ndarray
    center_norm: np.ndarray
    valid: np.ndarray
    denominator: float
    boxes: np.ndarray  # the predictions as evaluated (after the protocol's replacements)

    def curves(self, overlap_thresholds: np.ndarray = metrics.OVERLAP_THRESHOLDS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Success, precision and normalized-precision curves (fractions, not percent)."""
        d = self.denominator
        return (metrics.success_counts(self.overlap, overlap_thresholds) / d,
                metrics.precision_counts(self.center, metrics.CENTER_THRESHOLDS) / d,
                metrics.precision_counts(self.center_norm, metrics.NORM_THRESHOLDS) / d)

    def mean_overlap(self) -> float:
        """Average overlap over valid frames (pytracking's ``avg_overlap_all``)."""
        v = self.overlap[self.valid] if self.valid.shape == self.overlap.shape else self.overlap[self.overlap >= 0]
        return float(v.mean()) if v.size else float("nan")


def _check_predictions(pred: np.ndarray, path: Path | None) -> None:
    bad = np.isnan(pred).any(1) | (pred[:, 2:] < 0).any(1)
    if bad.any():
        row = int(np.argmax(bad))
        what = "NaN" if np.isnan(pred[row]).any() else "negative width or height"
        where = f"{path}:{row_line(path, row)}" if path else f"row {row + 1}"
        raise UsageError(f"{where}: {what} in a predicted box {pred[row].tolist()}")


def _fit_length(pred: np.ndarray, n: int, pad: bool, path: Path | None) -> np.ndarray:
    if pred.shape[0] >= n:
        return pred[:n]
    if not pad:
        raise UsageError(f"{path or 'result'}: {pred.shape[0]} boxes for {n} ground-truth frames (a result may be longer, never shorter)")
    return np.concatenate([pred, np.zeros((n - pred.shape[0], 4))])


def pytracking_errors(pred: np.ndarray, seq: Sequence, rule: str, use_visibility: bool = True,
                      path: Path | None = None) -> SequenceErrors:
    """pytracking's ``calc_seq_err_robust`` for one sequence, with ``extract_results``'s default
    denominator (every frame); ``rule`` is ``"lasot"`` or ``"default"``."""
    gt = seq.ground_truth
    n = gt.shape[0]
    if np.isnan(gt).any():
        row = int(np.argmax(np.isnan(gt).any(1)))
        raise UsageError(f"{seq.annotation}:{row_line(seq.annotation, row) if seq.annotation else row + 1}: NaN in the ground truth")
    _check_predictions(pred, path)
    zero = (pred[:, 2:] == 0.0).any(1)  # ground truth has no NaN here, so every zero-size row is replaced
    pred = metrics.forward_fill(pred, zero)
    pred = _fit_length(pred, n, pad=rule != "lasot", path=path)
    pred = pred.copy()
    pred[0] = gt[0]
    visible = seq.visible if use_visibility or rule == "lasot" else None
    if rule == "lasot" and visible is None:
        visible = np.ones(n, dtype=bool)
    valid = (gt[:, 2:] > 0.0).all(1)
    if visible is not None:
        valid &= visible
    center = metrics.center_error(pred, gt)
    center_norm = metrics.center_error(pred, gt, normalized=True)
    overlap = metrics.iou(pred, gt)
    center[~valid] = np.inf
    center_norm[~valid] = -1.0
    overlap[~valid] = -1.0
    if rule == "lasot":
        center_norm[~visible] = np.inf
        center[~visible] = np.inf
    return SequenceErrors(overlap, center, center_norm, valid, float(n), pred)


def toolkit_errors(pred: np.ndarray, seq: Sequence, path: Path | None = None) -> SequenceErrors:
    """The LaSOT / TNL2K MATLAB toolkits' ``calc_seq_err_robust.m`` and ``eval_tracker.m``."""
    gt = seq.ground_truth
    n = gt.shape[0]
    pred = _fit_length(pred, n, pad=False, path=path)
    bad = (np.isnan(pred).any(1) | (pred[:, 2] <= 0) | (pred[:, 3] <= 0)) & ~np.isnan(gt).any(1)
    pred = metrics.forward_fill(pred, bad).copy()
    pred[0] = gt[0]
    keep = np.ones(n, dtype=bool) if seq.visible is None else seq.visible
    p, g = pred[keep], gt[keep]
    with np.errstate(invalid="ignore"):
        center = metrics.center_error(p, g)
        center_norm = metrics.center_error(p, g, normalized=True)
        valid = (g > 0).all(1)
    overlap = np.full(len(g), -1.0)
    overlap[valid] = metrics.iou(p[valid], g[valid])
    center[~valid] = -1.0
    center_norm[~valid] = -1.0
    return SequenceErrors(overlap, center, center_norm, valid, n + np.finfo(float).eps, pred)


def sequence_errors(protocol: str, pred: np.ndarray, seq: Sequence, rule: str, use_visibility: bool,
                    path: Path | None = None) -> SequenceErrors:
    """Dispatch on ``protocol`` (``pytracking`` or ``toolkit``)."""
    if protocol == "pytracking":
        return pytracking_errors(pred, seq, rule, use_visibility, path)
    if protocol == "toolkit":
        return toolkit_errors(pred, seq, path)
    raise UsageError(f"unknown protocol {protocol!r}; choose from {', '.join(PROTOCOLS)}")

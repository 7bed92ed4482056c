"""Box metrics as small vectorized numpy functions, in the order of operations of pytracking's
``analysis/extract_results.py`` (``calc_err_center``, ``calc_iou_overlap``) and of the LaSOT/TNL2K
MATLAB toolkits (``calc_rect_int``), so frames lying exactly on a threshold fall on the same side.

Boxes are (N, 4) float64 arrays of x, y, w, h in the 1-based pixel convention: a box covers
``x .. x + w - 1``; its centre is ``x + (w - 1)/2``.
"""
from __future__ import annotations

import numpy as np

#: Overlap thresholds 0, 0.05, ..., 1.0 (21), as ``k * 0.05`` in float64 (pytracking's
#: ``torch.arange(0, 1.05, 0.05)``; some torch builds round two of them one ulp higher, which moves
#: only an overlap equal to that one double).
OVERLAP_THRESHOLDS = np.arange(21, dtype=np.float64) * 0.05
#: Centre-error thresholds 0..50 pixels (51).
CENTER_THRESHOLDS = np.arange(51, dtype=np.float64)
#: Normalized centre-error thresholds 0..0.50 (51), ``k / 100``.
NORM_THRESHOLDS = np.arange(51, dtype=np.float64) / 100.0
#: Index of the reported point on the precision curves (20 px, 0.20) and of OP50 / OP75.
PRECISION_INDEX, OP50_INDEX, OP75_INDEX = 20, 10, 15


def matlab_colon(start: float, step: float, stop: float) -> np.ndarray:
    """MATLAB's ``start:step:stop``: the first half counted up from ``start``, the second half down
    from the end point, the middle (even count) at their mean; it differs from ``numpy.arange`` in
    the last bit of some values (the MATLAB toolkits' ``0:0.05:1``)."""
    n = int(np.floor((stop - start) / step + 1e-10))
    end = start + n * step
    if abs(end - stop) < 1e-10 * max(1.0, abs(stop)):
        end = stop
    k = np.arange(n + 1, dtype=np.float64)
    values = np.where(k < n / 2, start + k * step, end - (n - k) * step)
    if n % 2 == 0:
        values[n // 2] = (start + end) / 2
    return values


def centers(boxes: np.ndarray) -> np.ndarray:
    """(N, 2) centres ``xy + 0.5 * (wh - 1)``."""
    return boxes[:, :2] + 0.5 * (boxes[:, 2:] - 1.0)


def center_error(pred: np.ndarray, gt: np.ndarray, normalized: bool = False) -> np.ndarray:
    """Distance between centres; ``normalized`` divides each centre by the ground truth's w, h
    before the difference (pytracking's and the toolkits' order), not the difference itself."""
    # empty ground truth: an invalid frame anyway; a box near the float limit (1e308) overflows to
    # an infinite distance, which every threshold counts as a miss, as it is
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        pc, gc = centers(pred), centers(gt)
        if normalized:
            pc = pc / gt[:, 2:]
            gc = gc / gt[:, 2:]
        d = pc - gc
        return np.sqrt(d[:, 0] ** 2 + d[:, 1] ** 2)


def iou(pred: np.ndarray, gt: np.ndarray, *, pixels: bool = True) -> np.ndarray:
    """Per-row intersection over union of two ``(N, 4)`` x, y, w, h arrays: zoo's one IoU.

    ``pixels=True`` (the default) is the 1-based pixel convention of pytracking's
    ``calc_iou_overlap`` and the toolkits' ``calc_rect_int``: ``x2 = x + w - 1``, intersection side
    ``min(x2) - max(x1) + 1`` clamped at 0, union ``w1*h1 + w2*h2 - intersection`` (an empty union
    gives nan or inf, as there; the protocols mask those frames). Every IoU zoo reports against
    ground truth uses it, so a figure is the one the benchmarks publish: ``zoo eval analyze``
    (success plots, AUC, OP50/75), ``zoo eval drift`` and ``zoo track``'s per-frame IoU and
    summary on a sequence with ground truth.

    ``pixels=False`` treats boxes as continuous rectangles ``x .. x + w`` (an empty union gives
    0). It is for agreement between two trackers' boxes, not accuracy: the runtime-parity and
    tracker-parity gates and the OpenCV-client check (their thresholds were set on it), where
    a box of either run is no more a pixel grid than the other.

    With areas ``w * h`` the two are the same quantity algebraically; they differ in the
    rounding of the last bit for non-integer boxes (a frame exactly on a success threshold can
    fall on either side) and on an empty union, which is why a report picks one, not both."""
    pred = np.asarray(pred, np.float64).reshape(-1, 4)
    gt = np.asarray(gt, np.float64).reshape(-1, 4)
    one = 1.0 if pixels else 0.0
    with np.errstate(over="ignore", invalid="ignore"):  # a box near the float limit: an infinite union, IoU 0
        tl = np.maximum(pred[:, :2], gt[:, :2])
        br = np.minimum(pred[:, :2] + pred[:, 2:] - one, gt[:, :2] + gt[:, 2:] - one)
        side = np.clip(br - tl + one, 0.0, None)
        inter = side[:, 0] * side[:, 1]
        union = pred[:, 2] * pred[:, 3] + gt[:, 2] * gt[:, 3] - inter
    if not pixels:
        return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / union


def forward_fill(boxes: np.ndarray, bad: np.ndarray) -> np.ndarray:
    """Replace each ``bad`` row (never row 0) by the nearest earlier good row: the effect of the
    sequential ``pred[i] = pred[i-1]`` loops of pytracking and the toolkits."""
    bad = bad.copy()
    bad[0] = False
    if not bad.any():
        return boxes
    index = np.where(bad, 0, np.arange(len(boxes)))
    np.maximum.accumulate(index, out=index)
    return boxes[index]


def success_counts(overlap: np.ndarray, thresholds: np.ndarray = OVERLAP_THRESHOLDS) -> np.ndarray:
    """Frames with overlap strictly above each threshold."""
    return (overlap[:, None] > thresholds[None, :]).sum(0)


def precision_counts(error: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Frames with centre error at or below each threshold."""
    return (error[:, None] <= thresholds[None, :]).sum(0)


def auc(success_curve: np.ndarray) -> float:
    """Success AUC: the mean of the success curve over its 21 thresholds (not a trapezoid)."""
    return float(np.mean(success_curve))

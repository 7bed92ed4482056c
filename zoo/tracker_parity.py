"""Tracker-level agreement of an artifact with float32 PyTorch: what matters for reduced precisions.

int8 moves single outputs by 0.05-0.2, so element-wise tolerances say little; what a tracker does
with the outputs is what counts. Per pair, both answers are decoded as :mod:`zoo.tracking` does
(the preset's window on the score map, the box at the peak cell): the peak cells are compared on
pairs where float32's top-two gap of the (windowed) response is at least ``min_gap`` (on flatter
maps the peak is a coin toss for any perturbation), and the decoded boxes by IoU on every pair.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from zoo.manifest import TrackerParity
from zoo.schema import TrackerGate, TrackingPreset
from zoo.tracking import decode, hann2d


def top_two_gap(score: np.ndarray, window: np.ndarray | None) -> float:
    """Difference between the two largest values of the (windowed) score map."""
    s = np.asarray(score, np.float32).reshape(score.shape[-2:])
    response = np.sort((s * window if window is not None else s).ravel())
    return float(response[-1] - response[-2])


def tracker_parity(expected: Sequence[Mapping[str, np.ndarray]], actual: Sequence[Mapping[str, np.ndarray]],
                   preset: TrackingPreset, search_size: int, gate: TrackerGate) -> TrackerParity:
    """Figures over paired outputs (``score``/``size``/``offset``, NCHW) and whether ``gate`` passes."""
    if len(expected) != len(actual) or not expected:
        raise ValueError("tracker parity needs as many artifact outputs as reference outputs (at least one)")
    rows, cols = expected[0]["score"].shape[-2:]
    window = hann2d(rows, cols) if preset.decode.window == "hann" else None
    agree, ious, gaps, finite = [], [], [], True
    for ref, out in zip(expected, actual, strict=True):
        finite = finite and all(bool(np.isfinite(out[k]).all()) for k in ("score", "size", "offset"))
        a = decode(ref["score"], ref["size"], ref["offset"], search_size, window)
        b = decode(out["score"], out["size"], out["offset"], search_size, window)
        gaps.append(top_two_gap(ref["score"], window))
        agree.append(a.cell == b.cell)
        ious.append(a.box.iou(b.box) if finite else 0.0)
    gaps_a, agree_a = np.asarray(gaps), np.asarray(agree)
    clear = gaps_a >= gate.min_gap
    share = float(agree_a[clear].mean()) if clear.any() else None
    share_all, mean_iou = float(agree_a.mean()), float(np.mean(ious))
    # no clear pair at all: the clear-peak figure cannot judge, the IoU and the all-pairs share still do
    passed = (finite and mean_iou >= gate.mean_iou and share_all >= gate.peak_agreement_all
              and (share is None or share >= gate.peak_agreement))
    return TrackerParity(pairs=len(expected), clear_pairs=int(clear.sum()), min_gap=gate.min_gap,
                         peak_agreement=share, peak_agreement_all=share_all, mean_iou=mean_iou,
                         median_gap=float(np.median(gaps_a)), min_peak_agreement=gate.peak_agreement,
                         min_peak_agreement_all=gate.peak_agreement_all,
                         min_mean_iou=gate.mean_iou, passed=bool(passed))


def describe_tracker_failure(t: TrackerParity) -> str:
    """One line: which tracker-level figure fell below its threshold."""
    clear = "n/a" if t.peak_agreement is None else f"{t.peak_agreement:.2f}"
    return (f"tracker-level check failed on {t.pairs} held-out pairs: peak cell agreement {clear} "
            f"(min {t.min_peak_agreement:.2f}, over {t.clear_pairs} pairs with top-two gap >= {t.min_gap:g}), "
            f"{t.peak_agreement_all:.2f} over all pairs (min {t.min_peak_agreement_all:.2f}), "
            f"mean box IoU {t.mean_iou:.2f} (min {t.min_mean_iou:.2f})")

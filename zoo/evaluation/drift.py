"""``zoo eval drift``: frame-by-frame agreement of two trackers' raw results on the same sequences
(typically a runtime's tracker against PyTorch's), and each one's AUC against the ground truth.

Boxes are compared as the chosen protocol evaluates them (first frame = ground truth, empty boxes
replaced by the previous one), with the same +1-pixel IoU as the benchmark figures.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from zoo.datasets.results import TrackerResults
from zoo.datasets.sequence import Dataset
from zoo.errors import UsageError
from zoo.evaluation import metrics
from zoo.evaluation.analyze import Evaluation, TrackerCurves, common_sequences
from zoo.evaluation.protocols import PROTOCOLS, sequence_errors


def agreement(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-frame IoU between two trajectories; two identical empty boxes agree (IoU 1)."""
    out = metrics.iou(a, b)
    undefined = ~np.isfinite(out)
    if undefined.any():
        out[undefined] = np.all(a[undefined] == b[undefined], axis=1).astype(float)
    return out


def _share(values: np.ndarray, threshold: float) -> float:
    return float((values >= threshold).mean() * 100.0) if values.size else float("nan")


@dataclass
class Drift:
    """Agreement of ``a`` and ``b``: per-sequence IoU traces and the rows of the report."""

    a: str
    b: str
    evaluation: Evaluation
    iou: dict[str, np.ndarray]

    def rows(self) -> list[dict]:
        """One row per sequence (worst mean IoU first) and a final ``ALL`` row."""
        ev = self.evaluation
        ta, tb = ev.trackers
        rows = []
        for i, name in enumerate(ev.sequences):
            v = self.iou[name]
            below = np.flatnonzero(v < 0.5)
            auc_a, auc_b = float(ta.success[i].mean() * 100), float(tb.success[i].mean() * 100)
            rows.append({"sequence": name, "frames": int(v.size), "mean_iou": float(v.mean()),
                         "iou_ge_0.9": _share(v, 0.9), "iou_ge_0.5": _share(v, 0.5),
                         "first_below_0.5": int(below[0]) + 1 if below.size else None,
                         "auc_a": auc_a, "auc_b": auc_b, "auc_diff": auc_b - auc_a})
        rows.sort(key=lambda r: r["mean_iou"])
        every = np.concatenate([self.iou[n] for n in ev.sequences])
        sa, sb = ev.summary(ta)["auc"], ev.summary(tb)["auc"]
        diverged = sum(1 for r in rows if r["first_below_0.5"] is not None)
        rows.append({"sequence": "ALL", "frames": int(every.size), "mean_iou": float(every.mean()),
                     "iou_ge_0.9": _share(every, 0.9), "iou_ge_0.5": _share(every, 0.5),
                     "first_below_0.5": None, "diverged": diverged, "auc_a": sa, "auc_b": sb, "auc_diff": sb - sa})
        return rows

    def worst(self, k: int) -> list[str]:
        """The ``k`` sequences with the lowest mean IoU."""
        return sorted(self.iou, key=lambda n: float(self.iou[n].mean()))[:k]


def drift(dataset: Dataset, a: TrackerResults, b: TrackerResults, protocol: str = "pytracking",
          allow_missing: bool = False, on_step: Callable[[str, str], None] | None = None) -> Drift:
    """Compare two result folders frame by frame on the dataset's sequences."""
    if protocol not in PROTOCOLS:
        raise UsageError(f"unknown protocol {protocol!r}; choose from {', '.join(PROTOCOLS)}")
    if a.name == b.name:
        b = TrackerResults(b.name + " (B)", b.folder, b.files)
    sequences, missing = common_sequences(dataset, [a, b], allow_missing)
    by_name = {s.name: s for s in dataset.sequences}
    spec = dataset.spec
    thresholds = metrics.matlab_colon(0.0, 0.05, 1.0) if protocol == "toolkit" else metrics.OVERLAP_THRESHOLDS
    S = len(sequences)
    curves = {t.name: [np.zeros((S, 21)), np.zeros((S, 51)), np.zeros((S, 51)), np.zeros(S, int), np.zeros(S, int), np.zeros(S)]
              for t in (a, b)}
    traces: dict[str, np.ndarray] = {}
    for i, name in enumerate(sequences):
        if on_step is not None:
            on_step(f"{a.name} vs {b.name}", name)
        seq = by_name[name]
        boxes = []
        for t in (a, b):
            err = sequence_errors(protocol, t.read(name), seq, spec.rule, spec.uses_visibility, t.files[name])
            c = curves[t.name]
            c[0][i], c[1][i], c[2][i] = err.curves(thresholds)
            c[3][i], c[4][i], c[5][i] = len(seq), int(err.valid.sum()), err.mean_overlap()
            boxes.append(err.boxes)
        traces[name] = agreement(*boxes)
    trackers = [TrackerCurves(t.name, *curves[t.name]) for t in (a, b)]
    ev = Evaluation(dataset, protocol, sequences, trackers, thresholds, missing)
    return Drift(a.name, b.name, ev, traces)

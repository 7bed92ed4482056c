"""``zoo eval analyze``: benchmark figures of raw results, as pytracking or the toolkits compute them.

Per tracker: success AUC (mean of the 21-point success curve averaged over sequences), OP50 and
OP75 (that curve at 0.50 and 0.75), precision at 20 px and normalized precision at 0.20 (the
precision curves at index 20), all in percent, plus the curves and per-sequence figures.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from zoo.datasets.results import TrackerResults
from zoo.datasets.sequence import Dataset
from zoo.errors import UsageError
from zoo.evaluation import metrics
from zoo.evaluation.protocols import PROTOCOLS, sequence_errors


@dataclass
class TrackerCurves:
    """Per-sequence curves of one tracker (fractions): ``success`` (S, 21), ``precision`` and
    ``norm_precision`` (S, 51); ``frames``/``valid``/``mean_overlap`` per sequence."""

    tracker: str
    success: np.ndarray
    precision: np.ndarray
    norm_precision: np.ndarray
    frames: np.ndarray
    valid: np.ndarray
    mean_overlap: np.ndarray


@dataclass
class Evaluation:
    """The figures of several trackers on the same sequences of one dataset."""

    dataset: Dataset
    protocol: str
    sequences: list[str]
    trackers: list[TrackerCurves]
    overlap_thresholds: np.ndarray
    missing: dict[str, list[str]] = field(default_factory=dict)

    def _mean(self, curves: np.ndarray, index: np.ndarray | None = None) -> np.ndarray:
        """Mean over sequences (toolkit: sequences whose curve is all zero are left out)."""
        c = curves if index is None else curves[index]
        if self.protocol == "toolkit":
            c = c[c.sum(1) > np.finfo(float).eps]
        return c.mean(0) * 100.0 if len(c) else np.zeros(curves.shape[1])

    def summary(self, t: TrackerCurves, index: np.ndarray | None = None) -> dict:
        """Figures (percent) and curves of tracker ``t`` over all sequences or those in ``index``."""
        success = self._mean(t.success, index)
        prec = self._mean(t.precision, index)
        norm = self._mean(t.norm_precision, index)
        return {"auc": metrics.auc(success), "op50": float(success[metrics.OP50_INDEX]),
                "op75": float(success[metrics.OP75_INDEX]), "precision": float(prec[metrics.PRECISION_INDEX]),
                "norm_precision": float(norm[metrics.PRECISION_INDEX]), "success_curve": success.tolist(),
                "precision_curve": prec.tolist(), "norm_precision_curve": norm.tolist()}

    def rows(self) -> list[dict]:
        """One row per tracker: tracker, dataset, protocol, sequences, frames, figures, curves."""
        return [{"tracker": t.tracker, "dataset": self.dataset.name, "protocol": self.protocol,
                 "sequences": len(self.sequences), "frames": int(t.frames.sum()), **self.summary(t)}
                for t in self.trackers]

    def sequence_rows(self) -> list[dict]:
        """One row per tracker and sequence (percent)."""
        rows = []
        absent = {s.name: s.absent for s in self.dataset.sequences}
        for t in self.trackers:
            for i, name in enumerate(self.sequences):
                rows.append({"tracker": t.tracker, "sequence": name, "frames": int(t.frames[i]),
                             "valid": int(t.valid[i]), "absent": absent.get(name, 0),
                             "auc": float(t.success[i].mean() * 100), "op50": float(t.success[i, metrics.OP50_INDEX] * 100),
                             "op75": float(t.success[i, metrics.OP75_INDEX] * 100),
                             "precision": float(t.precision[i, metrics.PRECISION_INDEX] * 100),
                             "norm_precision": float(t.norm_precision[i, metrics.PRECISION_INDEX] * 100),
                             "mean_overlap": _finite(t.mean_overlap[i] * 100)})
        return rows

    def attribute_rows(self, min_sequences: int = 1) -> list[dict]:
        """Success AUC per attribute (rows) and tracker (columns named after the trackers), with
        the number of sequences carrying the attribute; empty without attribute annotations."""
        ds = self.dataset
        if not ds.has_attributes():
            return []
        by_name = {s.name: s for s in ds.sequences}
        flags = np.stack([by_name[n].attributes for n in self.sequences])
        rows = []
        for k, (abbr, title) in enumerate(ds.spec.attributes):
            index = np.flatnonzero(flags[:, k])
            if len(index) < min_sequences:
                continue
            row = {"attribute": abbr, "name": title, "sequences": int(len(index))}
            for t in self.trackers:
                s = self.summary(t, index)
                row[t.tracker] = s["auc"]
                row.setdefault("_curves", {})[t.tracker] = s
            rows.append(row)
        return rows


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def common_sequences(dataset: Dataset, trackers: list[TrackerResults], allow_missing: bool) -> tuple[list[str], dict[str, list[str]]]:
    """The sequences every tracker has a result for; without ``allow_missing`` any gap is an error
    that lists the missing sequences."""
    names = dataset.names()
    missing = {t.name: t.missing(names) for t in trackers}
    missing = {k: v for k, v in missing.items() if v}
    if missing and not allow_missing:
        parts = []
        for tracker, seqs in missing.items():
            shown = ", ".join(seqs[:8]) + (f", ... ({len(seqs)} in all)" if len(seqs) > 8 else "")
            parts.append(f"{tracker} ({trackers[[t.name for t in trackers].index(tracker)].folder}) lacks {shown}")
        raise UsageError("results missing: " + "; ".join(parts) + " (--allow-missing evaluates the sequences all trackers have)")
    gone = {s for seqs in missing.values() for s in seqs}
    common = [n for n in names if n not in gone]
    if not common:
        raise UsageError("no sequence has results from every tracker")
    return common, missing


def evaluate(dataset: Dataset, trackers: list[TrackerResults], protocol: str = "pytracking",
             allow_missing: bool = False, on_step: Callable[[str, str], None] | None = None) -> Evaluation:
    """Evaluate every tracker on the dataset's sequences under ``protocol``."""
    if protocol not in PROTOCOLS:
        raise UsageError(f"unknown protocol {protocol!r}; choose from {', '.join(PROTOCOLS)}")
    names = [t.name for t in trackers]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise UsageError(f"two result folders are named {dupes[0]!r}: name them with NAME=DIR")
    sequences, missing = common_sequences(dataset, trackers, allow_missing)
    by_name = {s.name: s for s in dataset.sequences}
    spec = dataset.spec
    thresholds = metrics.matlab_colon(0.0, 0.05, 1.0) if protocol == "toolkit" else metrics.OVERLAP_THRESHOLDS
    out = []
    for t in trackers:
        S = len(sequences)
        succ, prec, norm = np.zeros((S, 21)), np.zeros((S, 51)), np.zeros((S, 51))
        frames, valid, mean_ov = np.zeros(S, int), np.zeros(S, int), np.zeros(S)
        for i, name in enumerate(sequences):
            if on_step is not None:
                on_step(t.name, name)
            seq = by_name[name]
            path = t.files[name]
            err = sequence_errors(protocol, t.read(name), seq, spec.rule, spec.uses_visibility, path)
            succ[i], prec[i], norm[i] = err.curves(thresholds)
            frames[i], valid[i], mean_ov[i] = len(seq), int(err.valid.sum()), err.mean_overlap()
        out.append(TrackerCurves(t.name, succ, prec, norm, frames, valid, mean_ov))
    return Evaluation(dataset, protocol, sequences, out, thresholds, missing)

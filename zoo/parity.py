"""Parity of an artifact's outputs with the PyTorch reference, per output, against a tolerance.

An element passes when ``|a - b| <= atol + rtol * |b|`` (``a`` the artifact, ``b`` PyTorch;
numpy's ``allclose`` rule); an output passes when every element does and nothing is NaN/inf.
"""
from __future__ import annotations

import numpy as np

from zoo.manifest import OutputParity, Parity
from zoo.tracker_parity import describe_tracker_failure


def compare_output(name: str, actual: np.ndarray, expected: np.ndarray, atol: float, rtol: float) -> OutputParity:
    """Figures for one output (shapes must agree)."""
    a = np.asarray(actual, dtype=np.float64)
    b = np.asarray(expected, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"output {name!r}: shape {list(a.shape)} differs from the reference's {list(b.shape)}")
    diff = np.abs(a - b)
    finite = bool(np.isfinite(a).all())
    big = np.abs(b) > atol
    rel = float((diff[big] / np.abs(b[big])).max()) if big.any() else 0.0
    ratio = float((diff / (atol + rtol * np.abs(b))).max()) if atol + rtol > 0 else (0.0 if not diff.any() else float("inf"))
    if not finite:
        ratio = float("inf")
    return OutputParity(
        name=name,
        max_abs_err=float(diff.max()) if finite else float("inf"),
        mean_abs_err=float(diff.mean()) if finite else float("inf"),
        max_rel_err=rel if finite else float("inf"),
        worst_ratio=ratio,
        passed=finite and ratio <= 1.0,
    )


def describe_failure(outputs: list[OutputParity], atol: float, rtol: float) -> str:
    """One line: the outputs above tolerance and their figures."""
    bad = [o for o in outputs if not o.passed]
    parts = [f"{o.name} max abs err {o.max_abs_err:.3g}, max rel err {o.max_rel_err:.3g}, {o.worst_ratio:.3g}x the allowance"
             for o in bad]
    return f"above tolerance (atol {atol:g}, rtol {rtol:g}): " + "; ".join(parts)


def parity_failure(parity: Parity) -> str:
    """Why ``parity`` failed, in one line: the tracker-level gate's figures where it decides (reduced
    precisions), the element-wise ones otherwise."""
    if parity.tracker is not None and not parity.tracker.passed:
        return describe_tracker_failure(parity.tracker)
    if not all(o.passed for o in parity.outputs) and parity.tracker is None:
        return describe_failure(parity.outputs, parity.atol, parity.rtol)
    for d in parity.devices:
        if not d.passed:
            where = f"on {d.device} ({d.family} tolerance): "
            if d.tracker is not None:
                return where + describe_tracker_failure(d.tracker)
            return where + describe_failure(d.outputs, d.atol, d.rtol)
    return describe_failure(parity.outputs, parity.atol, parity.rtol)

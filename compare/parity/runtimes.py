"""Parity of each runtime with PyTorch eager: raw error figures and what the tracker would see.

Per variant x runtime x precision x output (over all samples together): max abs error, mean abs
error, max relative error, the lowest per-sample cosine similarity, NaN/Inf counts, and
pass/fail against the catalog tolerance of the artifact's format and precision (the rule of
:mod:`zoo.parity`: every element within ``atol + rtol * |reference|`` and nothing
non-finite). Per sample, the tracker-aware figures: does the (windowed, as the tracking preset
decodes) score-map peak land on the same cell, and the IoU and centre distance (pixels of the
search crop) between the box decoded from the runtime's outputs and the one decoded from PyTorch's.

Reduced precisions are judged by the catalog's tracker-level gate on its own held-out pairs
(:func:`zoo.calibration.held_out_pairs`: the pairs and the count the export's verifier judges), not
on the samples compared: the same gate, the same pairs, the same verdict as ``zoo export``. The
default samples are the first of those pairs, so ``--samples`` equal to the gate's count compares
exactly the gate's pairs.

Library only: functions return dataclasses and plain row dicts; nothing is printed.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from compare.devices.runner import device_runner
from compare.inputs import Pair
from compare.runners import BaseRunner, PytorchRunner, open_artifact
from zoo.calibration import held_out_pairs
from zoo.devices import LOCAL, Device, local_family
from zoo.errors import ZooError
from zoo.manifest import TrackerParity
from zoo.parity import compare_output
from zoo.schema import QuantizationSpec, TrackingPreset, Variant
from zoo.tracker_parity import tracker_parity
from zoo.tracking import decode, hann2d

#: the head outputs :func:`zoo.tracking.decode` needs
TRACKER_OUTPUTS = ("score", "size", "offset")


@dataclass
class OutputDiff:
    """One output of one runtime against PyTorch, over every sample."""

    variant: str
    runtime: str
    precision: str
    output: str
    samples: int
    max_abs_err: float
    mean_abs_err: float
    max_rel_err: float  # max |a-b|/|b| over elements with |b| > atol
    min_cosine: float  # lowest per-sample cosine similarity of the flattened outputs
    worst_ratio: float  # max |a-b| / (atol + rtol*|b|); passes when <= 1
    atol: float
    rtol: float
    nan_count: int
    inf_count: int
    passed: bool


@dataclass
class SampleTracking:
    """The box decoded from one sample's outputs, runtime vs PyTorch (search-crop pixels)."""

    sample: int
    reference_cell: tuple[int, int]
    cell: tuple[int, int]
    same_cell: bool
    iou: float
    center_px: float
    reference_score: float
    score: float


@dataclass
class RuntimeParity:
    """Everything measured for one variant in one runtime and precision."""

    variant: str
    runtime: str
    format: str
    precision: str
    artifact: str | None
    outputs: list[OutputDiff] = field(default_factory=list)
    tracking: list[SampleTracking] = field(default_factory=list)
    error: str | None = None  # the runtime could not load or run the artifact
    #: reduced precisions: the catalog's tracker-level gate over these samples (it decides, not atol/rtol)
    gate: TrackerParity | None = None
    #: where it ran (:mod:`zoo.devices`) and that CPU's family, whose tolerance judged it
    device: str = "local"
    family: str = field(default_factory=local_family)

    @property
    def passed(self) -> bool:
        if self.gate is not None:
            return self.error is None and bool(self.outputs) and self.gate.passed and all(o.passed for o in self.outputs)
        return self.error is None and bool(self.outputs) and all(o.passed for o in self.outputs)


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine of the flattened arrays (1.0 when both are all zeros, NaN when either is not finite)."""
    x, y = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        return float("nan")
    nx, ny = np.linalg.norm(x), np.linalg.norm(y)
    if nx == 0 and ny == 0:
        return 1.0
    if nx == 0 or ny == 0:
        return 0.0
    return float(np.dot(x, y) / (nx * ny))


def diff_output(variant: str, runtime: str, precision: str, output: str, actual: list[np.ndarray],
                expected: list[np.ndarray], atol: float, rtol: float) -> OutputDiff:
    """Error figures of one output over all samples (``actual``/``expected``: one array per sample)."""
    a, b = np.stack(actual), np.stack(expected)
    figures = compare_output(output, a, b, atol, rtol)
    cosines = [cosine_similarity(x, y) for x, y in zip(actual, expected, strict=True)]
    return OutputDiff(
        variant=variant, runtime=runtime, precision=precision, output=output, samples=len(actual),
        max_abs_err=figures.max_abs_err, mean_abs_err=figures.mean_abs_err, max_rel_err=figures.max_rel_err,
        min_cosine=float("nan") if any(math.isnan(c) for c in cosines) else min(cosines),
        worst_ratio=figures.worst_ratio, atol=atol, rtol=rtol,
        nan_count=int(np.isnan(a).sum()), inf_count=int(np.isinf(a).sum()), passed=figures.passed,
    )


def track_sample(index: int, actual: dict[str, np.ndarray], expected: dict[str, np.ndarray], crop_size: int,
                 window: np.ndarray | None = None) -> SampleTracking:
    """Decode the box from both output sets (``window``: the preset's, as the tracker and the gate
    decode) and compare them (cell, IoU, centre distance)."""
    ref = decode(expected["score"], expected["size"], expected["offset"], crop_size, window)
    got = decode(actual["score"], actual["size"], actual["offset"], crop_size, window)
    iou = got.box.iou(ref.box)
    center = got.box.center_distance(ref.box)
    return SampleTracking(
        sample=index, reference_cell=ref.cell, cell=got.cell, same_cell=got.cell == ref.cell,
        iou=iou if math.isfinite(iou) else float("nan"), center_px=center if math.isfinite(center) else float("inf"),
        reference_score=ref.score, score=got.score,
    )


def run_all(runner: BaseRunner, pairs: list[Pair]) -> list[dict[str, np.ndarray]]:
    """``runner``'s outputs for every pair (the runner is loaded if needed)."""
    return [runner.infer(pair) for pair in pairs]


def reference_outputs(variant: Variant, pairs: list[Pair], threads: int = 1) -> list[dict[str, np.ndarray]]:
    """PyTorch eager (fp32, catalog weights, BatchNorm unfolded) outputs for every pair."""
    runner = PytorchRunner(variant)
    runner.set_threads(threads)
    with runner:
        return run_all(runner, pairs)


def compare_outputs(variant: Variant, runtime: str, fmt: str, precision: str, actual: list[dict[str, np.ndarray]],
                    expected: list[dict[str, np.ndarray]], preset: TrackingPreset, artifact: str | None = None,
                    device: str = "local", family: str | None = None,
                    gate_outputs: tuple[list, list] | None = None) -> RuntimeParity:
    """Parity and tracker figures of given outputs (one dict per sample) against the reference;
    ``preset``: the tracking preset the tracker-level gate decodes with; ``family``: the CPU family
    the outputs were computed on (its tolerance judges them; default: this machine's);
    ``gate_outputs``: ``(reference, artifact)`` outputs on the gate's held-out pairs, which the
    tracker-level gate judges (without them: the samples given)."""
    result = RuntimeParity(variant.name, runtime, fmt, precision, artifact, device=device, family=family or local_family())
    try:
        tol = variant.tolerance(fmt, precision, result.family)
    except ZooError as exc:
        result.error = str(exc)
        return result
    for spec in variant.io.outputs:
        result.outputs.append(diff_output(variant.name, runtime, precision, spec.name,
                                          [o[spec.name] for o in actual], [o[spec.name] for o in expected],
                                          tol.atol, tol.rtol))
    if all(name in expected[0] for name in TRACKER_OUTPUTS):
        crop = variant.preprocessing.search_size
        rows, cols = expected[0]["score"].shape[-2:]
        window = hann2d(rows, cols) if preset.decode.window == "hann" else None
        result.tracking = [track_sample(i, a, e, crop, window) for i, (a, e) in enumerate(zip(actual, expected, strict=True))]
        if tol.tracker is not None:
            # int8 error is 0.05-0.2 by nature: element-wise figures are reported (only NaN/Inf fail),
            # the tracker-level gate of the catalog decides, on its held-out pairs
            want, got = gate_outputs if gate_outputs is not None else (expected, actual)
            result.gate = tracker_parity(want, got, preset, crop, tol.tracker)
            for o in result.outputs:
                o.passed = o.nan_count == 0 and o.inf_count == 0
    return result


def compare_artifact(variant: Variant, runtime: str, artifact_dir: Path, pairs: list[Pair],
                     expected: list[dict[str, np.ndarray]], preset: TrackingPreset, threads: int = 1,
                     keep_outputs: dict | None = None, device: Device = LOCAL, family: str | None = None,
                     gate: Callable[[int], tuple[list[Pair], list[dict[str, np.ndarray]]]] | None = None) -> RuntimeParity:
    """Run the artifact in ``artifact_dir`` on every pair (on ``device``, whose CPU family is
    ``family``) and compare with ``expected``; a precision gated at tracker level also runs on the
    gate's held-out pairs, ``gate(count) -> (pairs, reference outputs)``.

    A runtime that cannot load or run the artifact gives a failed result with ``error`` set
    rather than an exception. ``keep_outputs``, when given, receives the runtime's outputs
    (keyed ``(variant, runtime, precision)``, with the device's name appended off this machine).
    """
    where = {"device": device.name, "family": family or local_family()}
    try:
        runner = open_artifact(artifact_dir, variant, threads=threads) if device.is_local \
            else device_runner(device, artifact_dir, variant, threads=threads)
    except ZooError as exc:
        return RuntimeParity(variant.name, runtime, "?", "?", str(artifact_dir), error=str(exc), **where)
    manifest = runner.manifest
    gate_pairs = gate_refs = None
    try:
        tracker_gate = variant.tolerance(manifest.format, manifest.precision, where["family"]).tracker
    except ZooError:
        tracker_gate = None
    if tracker_gate is not None and gate is not None:
        gate_pairs, gate_refs = gate(tracker_gate.pairs)
    try:
        with runner:
            actual = run_all(runner, pairs)
            gate_actual = None
            if gate_pairs is not None:  # the samples' own outputs where the gate's pairs are the first samples
                prefix = len(gate_pairs) <= len(pairs) and all(g is p for g, p in zip(gate_pairs, pairs))
                gate_actual = actual[:len(gate_pairs)] if prefix else run_all(runner, gate_pairs)
    except Exception as exc:  # any runtime failure is a finding about this artifact, not a crash
        detail = str(exc).splitlines()[0] if str(exc) else ""
        return RuntimeParity(variant.name, runtime, manifest.format, manifest.precision, str(artifact_dir),
                             error=f"{type(exc).__name__}: {detail}", **where)
    if keep_outputs is not None:
        keep_outputs[(variant.name, runtime, manifest.precision, *(() if device.is_local else (device.name,)))] = actual
    result = compare_outputs(variant, runtime, manifest.format, manifest.precision, actual, expected, preset, str(artifact_dir),
                             **where, gate_outputs=(gate_refs, gate_actual) if gate_actual is not None else None)
    return result


def compare_variant(variant: Variant, artifacts: list[tuple[str, Path]], pairs: list[Pair], preset: TrackingPreset, threads: int = 1,
                    keep_outputs: dict | None = None,
                    on_result: Callable[[RuntimeParity], None] | None = None,
                    devices: tuple[tuple[Device, str], ...] = (),
                    quantization: QuantizationSpec | None = None) -> list[RuntimeParity]:
    """Every ``(runtime, artifact_dir)`` of one variant against PyTorch on the same ``pairs``:
    here, then on each ``(device, its CPU family)`` of ``devices``. Precisions gated at tracker level
    are judged on the gate's held-out pairs (jittered as ``quantization`` says: the catalog's).

    The reference runs once per set of pairs; ``keep_outputs`` (optional) collects every output set keyed by
    ``(variant, runtime, precision)``, PyTorch's under ``(variant, "pytorch", "fp32")``.
    """
    expected = reference_outputs(variant, pairs, threads)
    if keep_outputs is not None:
        keep_outputs[(variant.name, "pytorch", "fp32")] = expected
    held: dict[int, tuple[list[Pair], list[dict[str, np.ndarray]]]] = {}

    def gate(count: int) -> tuple[list[Pair], list[dict[str, np.ndarray]]]:
        if count not in held:
            gate_pairs = held_out_pairs(variant, preset, count, quantization)
            same = len(gate_pairs) <= len(pairs) and all(
                all(np.array_equal(g[k], p[k]) for k in g) for g, p in zip(gate_pairs, pairs))
            held[count] = (pairs[:count], expected[:count]) if same else (gate_pairs, reference_outputs(variant, gate_pairs, threads))
        return held[count]

    results = []
    for (device, family), (runtime, artifact_dir) in ((d, a) for d in ((LOCAL, None), *devices) for a in artifacts):
        result = compare_artifact(variant, runtime, artifact_dir, pairs, expected, preset, threads, keep_outputs, device, family,
                                  gate)
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results


# -- rows (for tables and the JSON/CSV/Markdown writers) -------------------------------------------
def parity_rows(results: list[RuntimeParity]) -> list[dict]:
    """One row per variant x runtime x precision x output (one error row for a runtime that failed)."""
    rows = []
    for r in results:
        if r.error is not None and not r.outputs:
            rows.append({"variant": r.variant, "runtime": r.runtime, "precision": r.precision, "device": r.device,
                         "family": r.family, "output": None, "status": "error", "note": r.error})
            continue
        for o in r.outputs:
            row = {k: v for k, v in asdict(o).items() if k != "passed"}
            row.update(device=r.device, family=r.family)
            row["status"] = "pass" if o.passed and r.error is None else "FAIL"
            row["note"] = r.error
            if r.gate is not None and r.error is None:
                row["note"] = "reported only: this precision is gated at tracker level (tracker table)"
            rows.append(row)
    return rows


def tracker_rows(results: list[RuntimeParity]) -> list[dict]:
    """One row per variant x runtime x precision: same-cell count, IoU and centre-distance extremes."""
    rows = []
    for r in results:
        if not r.tracking:
            continue
        ious = [t.iou for t in r.tracking]
        rows.append({
            "variant": r.variant, "runtime": r.runtime, "precision": r.precision, "device": r.device, "samples": len(r.tracking),
            "same_cell": sum(t.same_cell for t in r.tracking),
            "min_iou": min(ious), "mean_iou": float(np.mean(ious)),
            "max_center_px": max(t.center_px for t in r.tracking),
            "max_score_diff": max(abs(t.score - t.reference_score) for t in r.tracking),
            **(_gate_columns(r.gate) if r.gate is not None else {}),
        })
    return rows


def device_rows(results: list[RuntimeParity]) -> list[dict]:
    """Per output of every result off this machine: the device's error beside this machine's for
    the same artifact and the same inputs, their ratio, and the verdict of the device family's tolerance."""
    here = {(r.variant, r.runtime, r.precision, o.output): o for r in results if r.device == "local" for o in r.outputs}
    rows = []
    for r in results:
        if r.device == "local":
            continue
        if r.error is not None and not r.outputs:
            rows.append({"variant": r.variant, "runtime": r.runtime, "precision": r.precision, "device": r.device,
                         "family": r.family, "output": None, "status": "error", "note": r.error})
        for o in r.outputs:
            local = here.get((r.variant, r.runtime, r.precision, o.output))
            rows.append({"variant": r.variant, "runtime": r.runtime, "precision": r.precision, "device": r.device,
                         "family": r.family, "output": o.output, "max_abs_err": o.max_abs_err,
                         "local_max_abs_err": local.max_abs_err if local else None,
                         "ratio": o.max_abs_err / local.max_abs_err if local and local.max_abs_err > 0 else None,
                         "atol": o.atol, "rtol": o.rtol, "worst_ratio": o.worst_ratio,
                         "status": "pass" if o.passed and r.error is None else "FAIL", "note": r.error})
    return rows


def _gate_columns(g: TrackerParity) -> dict:
    """The tracker-level gate's figures beside the others (reduced precisions)."""
    return {"gate_pairs": g.pairs, "gate_mean_iou": g.mean_iou,
            "clear_pairs": g.clear_pairs, "clear_peak_agreement": g.peak_agreement, "peak_agreement_all": g.peak_agreement_all,
            "gate": "pass" if g.passed else "FAIL", "gate_min_iou": g.min_mean_iou, "gate_min_clear_peak": g.min_peak_agreement,
            "gate_min_all": g.min_peak_agreement_all}


def sample_rows(results: list[RuntimeParity]) -> list[dict]:
    """Per-sample tracker figures (for JSON): one row per variant x runtime x precision x sample."""
    return [{"variant": r.variant, "runtime": r.runtime, "precision": r.precision, **asdict(t)}
            for r in results for t in r.tracking]

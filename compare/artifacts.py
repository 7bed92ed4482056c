"""Runtimes by name and the artifacts they run: found under the artifacts directory, exported
through :mod:`exporters.pipeline` where missing.

A runtime's name is its runner's module name in :mod:`compare.runners` (``onnxruntime``,
``mnn``, ``tflite``, ``ncnn``) and its format the runner's key in ``RUNNERS``; ``pytorch`` is
the eager reference. A new runtime therefore needs only its runner module (and its line in the
registry).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from compare.runners import RUNNERS
from exporters.manifest import read_manifest
from zoo.catalog import did_you_mean
from zoo.errors import UsageError, ZooError
from zoo.schema import Variant

REFERENCE_RUNTIME = "pytorch"


def runtime_formats() -> dict[str, str]:
    """Runtime name -> artifact format, in registry order (the reference excluded)."""
    return {cls.__module__.rsplit(".", 1)[-1]: fmt for fmt, cls in RUNNERS.items()}


def choose_runtimes(names: list[str] | tuple[str, ...]) -> list[str]:
    """Validate runtime names (``all`` = every runtime); unknown ones are a usage error."""
    known = runtime_formats()
    chosen: list[str] = []
    for name in names:
        for item in (known if name == "all" else [name]):
            if item == REFERENCE_RUNTIME:
                continue  # always the reference
            if item not in known:
                choices = [*known, REFERENCE_RUNTIME]
                raise UsageError(f"unknown runtime {item!r}{did_you_mean(item, choices)}; choose from {', '.join(choices)}")
            if item not in chosen:
                chosen.append(item)
    return [r for r in known if r in chosen]


@dataclass
class Wanted:
    """One artifact a comparison needs."""

    variant: Variant
    runtime: str
    format: str
    precision: str
    path: Path
    status: str = "found"  # found | built | failed | skipped
    note: str | None = None


def artifact_dir(out: Path, variant: str, fmt: str, precision: str) -> Path:
    """``out/<variant>/<format>[-<precision>]`` (the layout of ``zoo export``)."""
    return Path(out) / variant / (fmt if precision == "fp32" else f"{fmt}-{precision}")


def _present(path: Path) -> bool:
    try:
        read_manifest(path)
        return True
    except ZooError:
        return False


def ensure_artifacts(variants: list[Variant], runtimes: list[str], precisions: list[str], out: Path,
                     on_event: Callable | None = None, jobs: int = 1) -> list[Wanted]:
    """The artifacts for every variant x runtime x precision, exporting those that are missing.

    Existing artifacts (a readable manifest) are used as they are: comparing them is the point,
    so a damaged one shows up as a parity failure instead of being silently rebuilt. Missing
    ones go through the export pipeline (which verifies them before installing); a precision a
    format does not offer is ``skipped``, a failed export ``failed`` with the pipeline's note.
    ``on_event(target, stage)`` is the pipeline's progress callback.
    """
    from exporters import get_exporter
    from exporters.pipeline import Pipeline, Target

    formats = runtime_formats()
    wanted: list[Wanted] = []
    for v in variants:
        for runtime in runtimes:
            fmt = formats[runtime]
            offered = get_exporter(fmt).precisions
            for precision in precisions:
                w = Wanted(v, runtime, fmt, precision, artifact_dir(out, v.name, fmt, precision))
                if precision not in offered:
                    w.status, w.note = "skipped", f"{fmt} offers {', '.join(offered)} only"
                elif not _present(w.path):
                    w.status = "missing"
                wanted.append(w)
    missing = [w for w in wanted if w.status == "missing"]
    if not missing:
        return wanted
    targets: list[Target] = []
    for v in variants:
        mine = [Target(w.variant, w.format, w.precision) for w in missing if w.variant.name == v.name]
        if any(get_exporter(t.format).needs_onnx for t in mine) and not any(t.format == "onnx" for t in mine):
            mine.insert(0, Target(v, "onnx", "fp32"))  # the pipeline converts from (and reuses) the ONNX artifact
        targets.extend(mine)
    for fmt in dict.fromkeys(t.format for t in targets):  # a missing converter: one line, before any work
        get_exporter(fmt).versions()
    rows = Pipeline(out, jobs=jobs, on_event=on_event).run(targets)
    by_key = {(r.variant, r.format, r.precision): r for r in rows}
    for w in missing:
        row = by_key[(w.variant.name, w.format, w.precision)]
        w.status = "failed" if row.status == "failed" else "built"
        w.note = row.note if row.status == "failed" else None
    return wanted


def runner_specs(variants: list[Variant], runtimes: list[str], precision: str, out: Path,
                 on_event: Callable | None = None) -> tuple[list, list[Wanted]]:
    """Picklable runner recipes (:class:`compare.worker.RunnerSpec`) for every variant x runtime,
    ``pytorch`` meaning the eager reference; artifacts are exported where missing. Returns the
    specs of usable artifacts and the :class:`Wanted` list (failed / skipped ones carry a note)."""
    from compare.worker import RunnerSpec

    artifact_runtimes = [r for r in runtimes if r != REFERENCE_RUNTIME]
    wanted = ensure_artifacts(variants, artifact_runtimes, [precision], out, on_event=on_event) if artifact_runtimes else []
    usable = {(w.variant.name, w.runtime): w for w in wanted if w.status in ("found", "built")}
    specs = []
    for v in variants:
        for runtime in runtimes:
            if runtime == REFERENCE_RUNTIME:
                specs.append(RunnerSpec(REFERENCE_RUNTIME, "fp32", v))
            elif (v.name, runtime) in usable:
                specs.append(RunnerSpec(runtime, precision, v, usable[(v.name, runtime)].path))
    return specs, wanted

"""Runtimes by name and the artifacts they run: found under the artifacts directory (checked
against their manifests and the catalog), exported through :mod:`exporters.pipeline` where missing.

Runtime names, their formats and the precisions each offers come from :mod:`zoo.backends`;
``pytorch`` is the eager reference.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from compare.measure.worker import RunnerSpec
from compare.parity.verify import Verifier
from exporters import get_exporter
from exporters.pipeline import Pipeline, Target, build_order
from zoo.artifacts import MANIFEST_NAME, artifact_dir, verified_manifest
from zoo.backends import REFERENCE_RUNTIME, RUNTIMES, by_runtime
from zoo.names import choose
from zoo.schema import Variant


def choose_runtimes(names: list[str] | tuple[str, ...]) -> list[str]:
    """Validated runtime names in table order (``all`` = every runtime; ``pytorch``, the reference,
    is always run and dropped here); unknown ones are a usage error with a suggestion."""
    return choose([n for n in names if n != REFERENCE_RUNTIME], RUNTIMES, "runtime", default=("all",) if not names else ())


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
    split: bool = False  # an init + track split artifact

    @property
    def label(self) -> str:
        """The runtime as tables show it: ``onnxruntime``, or ``onnxruntime-split`` for a split artifact."""
        return self.runtime + ("-split" if self.split else "")


def ensure_artifacts(variants: list[Variant], runtimes: list[str], precisions: list[str], out: Path,
                     on_event: Callable | None = None, jobs: int = 1, split: bool = False) -> list[Wanted]:
    """The artifacts for every variant x runtime x precision, exporting those that are missing.

    An existing artifact is checked against its manifest (sizes, cached sha256) and the catalog
    before use: a corrupt or stale one is a :class:`zoo.artifacts.CorruptArtifact` naming the file
    and the command that rebuilds it. Missing ones go through the export pipeline (which verifies
    them before installing); a precision a format does not offer is ``skipped``, a failed export
    ``failed`` with the pipeline's note. ``on_event(target, stage)`` is the pipeline's callback.
    ``split``: the init + track split artifacts (``<format>[-<precision>]-split``) instead.
    """
    wanted: list[Wanted] = []
    for v in variants:
        for runtime in runtimes:
            backend = by_runtime(runtime)
            for precision in precisions:
                w = Wanted(v, runtime, backend.format, precision, artifact_dir(out, v.name, backend.format, precision, split), split=split)
                if precision not in backend.precisions:
                    w.status, w.note = "skipped", f"{backend.format} offers {', '.join(backend.precisions)} only"
                elif (w.path / MANIFEST_NAME).is_file():
                    verified_manifest(w.path, v)
                else:
                    w.status = "missing"
                wanted.append(w)
    missing = [w for w in wanted if w.status == "missing"]
    if not missing:
        return wanted
    targets: list[Target] = []
    for v in variants:
        mine = [w for w in missing if w.variant.name == v.name]
        if mine:
            targets += build_order([v], list(dict.fromkeys(w.format for w in mine)),
                                   list(dict.fromkeys(w.precision for w in mine)), split=split)[0]
    targets = [t for t in targets if t.format == "onnx" or any(
        (w.variant.name, w.format, w.precision) == (t.variant.name, t.format, t.precision) for w in missing)]
    for fmt in dict.fromkeys(t.format for t in targets):  # a missing converter: one line, before any work
        get_exporter(fmt).versions()
    rows = Pipeline(out, Verifier(), jobs=jobs, on_event=on_event).run(targets)
    by_key = {(r.variant, r.format, r.precision): r for r in rows}
    for w in missing:
        row = by_key[(w.variant.name, w.format, w.precision)]
        w.status = "failed" if row.status == "failed" else "built"
        w.note = row.note if row.status == "failed" else None
    return wanted


def runner_specs(variants: list[Variant], runtimes: list[str], precision: str, out: Path,
                 on_event: Callable | None = None, split: bool = False) -> tuple[list, list[Wanted]]:
    """Picklable runner recipes (:class:`compare.measure.worker.RunnerSpec`) for every variant x runtime,
    ``pytorch`` meaning the eager reference; artifacts are exported where missing. Returns the
    specs of usable artifacts and the :class:`Wanted` list (failed / skipped ones carry a note).
    ``split``: each runtime's split artifact too, right after it (runtime ``<runtime>-split``: its
    init graph runs once, each timed call is the track graph)."""
    artifact_runtimes = [r for r in runtimes if r != REFERENCE_RUNTIME]
    wanted = ensure_artifacts(variants, artifact_runtimes, [precision], out, on_event=on_event) if artifact_runtimes else []
    usable = {(w.variant.name, w.runtime): w for w in wanted if w.status in ("found", "built")}
    wanted_split = ensure_artifacts(variants, artifact_runtimes, [precision], out, on_event=on_event, split=True) \
        if split and artifact_runtimes else []
    usable_split = {(w.variant.name, w.runtime): w for w in wanted_split if w.status in ("found", "built")}
    specs = []
    for v in variants:
        for runtime in runtimes:
            if runtime == REFERENCE_RUNTIME:
                specs.append(RunnerSpec(REFERENCE_RUNTIME, "fp32", v))
            elif (v.name, runtime) in usable:
                specs.append(RunnerSpec(runtime, precision, v, usable[(v.name, runtime)].path))
            if split and (v.name, runtime) in usable_split:
                w = usable_split[(v.name, runtime)]
                specs.append(RunnerSpec(w.label, precision, v, w.path))
    return specs, wanted + wanted_split

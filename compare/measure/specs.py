"""Runner recipes for measurements, their artifacts provisioned through the one door.

Kept apart from :mod:`compare.measure.worker`, which every measurement child imports: the door
imports the export pipeline (and torch), a child must not.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from compare.measure.worker import RunnerSpec
from compare.provision import Provisioned, ensure
from zoo.artifacts import ArtifactKey
from zoo.catalog import Catalog
from zoo.schema import Variant
from zoo.split_figures import split_summary


def runner_specs(catalog: Catalog, variants: list[Variant], runtimes: list[str], precision: str, artifacts_dir: Path,
                 on_event: Callable | None = None, split: bool = False) -> tuple[list[RunnerSpec], list[Provisioned]]:
    """Runner recipes for every variant x runtime (``pytorch``: the eager reference), artifacts
    provisioned through :func:`compare.provision.ensure`. Returns the specs of usable artifacts and
    every provisioned artifact (failed / skipped ones carry a note). ``split``: each runtime's split
    artifact too, right after it (its init graph runs once, each timed call is the track graph)."""
    keys = []
    for v in variants:  # the reference beside the artifacts whatever their precision; each split artifact after its full one
        for runtime in runtimes:
            key = ArtifactKey.for_runtime(v.name, runtime, precision)
            keys += [key] if key.is_reference else [key] + ([ArtifactKey.for_runtime(v.name, runtime, precision, True)] if split else [])
    provisioned = ensure(keys, artifacts_dir, catalog, on_event=on_event)
    by_name = {v.name: v for v in variants}
    specs = [RunnerSpec(p.key, by_name[p.key.variant], p.path) for p in provisioned if p.usable]
    return specs, [p for p in provisioned if not p.key.is_reference]


def macs_per_call(spec: RunnerSpec) -> int:
    """MACs (attention products included) of one timed call of ``spec``: the whole network, or the
    track graph of a split artifact (its init graph runs once, outside the timed calls)."""
    if spec.key.split:
        return split_summary(spec.variant)["macs_total_track"]
    return spec.variant.measured.macs_total

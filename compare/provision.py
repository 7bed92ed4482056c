"""The one door to every artifact: :func:`ensure` (keys, artifacts folder, catalog) -> provisioned artifacts.

Every command and the Python API get their artifacts here, and only here is the export pipeline
(:mod:`exporters.pipeline`) driven: the catalog in use is passed down to it and to the verifier,
the weights of every variant involved are materialised once with that catalog's hub
(:func:`zoo.weights.ensure_weights`), missing converters are reported before any work, and an
installed artifact is checked against its manifest and the catalog before anyone loads it.

Keys come from :func:`keys_for` (``zoo export``'s variants x formats x precisions) or
:func:`runtime_keys` (variants x runtimes x precisions; ``pytorch`` is the eager reference, whose
only "artifact" is its verified weights).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from compare.parity.verify import Verifier
from exporters import get_exporter, get_flavour_exporter
from exporters.pipeline import Pipeline
from exporters.plan import Row, build_order
from zoo.artifacts import ArtifactKey, Status, verified_manifest
from zoo.backends import FORMATS, REDUCED_PRECISIONS, REFERENCE_RUNTIME, RUNTIMES, by_flavour
from zoo.calibration import CalibrationSource, calibration_pairs, open_source
from zoo.catalog import Catalog
from zoo.errors import UsageError, ZooError
from zoo.hub.resolve import resolve_hub
from zoo.devices import Device
from zoo.manifest import MANIFEST_NAME, read_manifest, write_manifest
from zoo.parity import parity_failure
from zoo.names import choose
from zoo.schema import Variant
from zoo.weights import ensure_weights


def choose_runtimes(names: list[str] | tuple[str, ...]) -> list[str]:
    """Validated runtime names in table order (``all`` = every runtime; ``pytorch``, the reference,
    is always run and dropped here); unknown ones are a usage error with a suggestion."""
    return choose([n for n in names if n != REFERENCE_RUNTIME], RUNTIMES, "runtime", default=("all",) if not names else ())


def keys_for(variants: list[Variant], formats: list[str], precisions: list[str], flavour: str | None = None,
             split: bool = False) -> list[ArtifactKey]:
    """The artifacts ``zoo export`` is asked for, per variant in format order. ``flavour`` (``--for``)
    builds that client's artifact of its one format; it does not combine with ``split``."""
    if flavour is not None:
        spec = by_flavour(flavour)
        if split:
            raise UsageError(f"--for {flavour} builds the client's single-graph artifact; it does not combine with --split")
        if list(formats) != [spec.format]:
            raise UsageError(f"--for {flavour} builds {spec.format} only ({spec.title}), not {' '.join(formats)}")
        bad = [p for p in precisions if p not in spec.precisions]
        if bad:
            raise UsageError(f"--for {flavour} offers {', '.join(spec.precisions)} only, not {', '.join(bad)}")
    return [ArtifactKey(v.name, fmt, p, flavour, split) for v in variants for fmt in FORMATS if fmt in formats for p in precisions]


def plan(keys: list[ArtifactKey]) -> list[ArtifactKey]:
    """What :func:`ensure` with ``refresh`` will build or reuse, in build order (sources first);
    a request with nothing to export is a usage error."""
    return build_order(keys)[0]


def runtime_keys(variants: list[Variant], runtimes: list[str], precisions: list[str], split: bool = False) -> list[ArtifactKey]:
    """One key per variant x runtime x precision (``pytorch``: the reference, which runs fp32 only)."""
    return [ArtifactKey.for_runtime(v.name, runtime, p, split) for v in variants for runtime in runtimes for p in precisions
            if runtime != REFERENCE_RUNTIME or p == "fp32"]


@dataclass
class Provisioned:
    """One artifact after the door: where it is and what became of it."""

    key: ArtifactKey
    #: its directory (None for the PyTorch reference)
    path: Path | None
    status: Status
    #: why it was skipped or failed, or how it was (re)built
    note: str | None = None
    #: the export pipeline's row when the pipeline handled it (size, error, seconds, log)
    row: Row | None = None

    @property
    def usable(self) -> bool:
        return self.status.usable


def prime_weights(variants: list[Variant], catalog: Catalog) -> None:
    """Materialise and verify every variant's weights with the catalog's hub (once, before any
    runner or converter loads them; a worker process then finds them in the cache)."""
    hub = resolve_hub(catalog_hub=catalog.hub)
    for v in variants:
        ensure_weights(v, hub)


def ensure(keys: list[ArtifactKey], artifacts_dir: Path, catalog: Catalog, *, refresh: bool = False, force: bool = False,
           jobs: int = 1, on_event: Callable[[ArtifactKey, str], None] | None = None,
           calibration: str | CalibrationSource | None = None,
           int8_target: str | None = None, verify_on: tuple[Device, ...] = ()) -> list[Provisioned]:
    """Provision ``keys`` under ``artifacts_dir`` with ``catalog``: the only caller of the export pipeline.

    An installed artifact is checked against its manifest (sizes, cached sha256) and the catalog: a
    corrupt or stale one is a :class:`zoo.manifest.CorruptArtifact` naming the file and the command
    that rebuilds it; it is ``found``. Missing ones are exported (and verified before they are
    installed): ``built``, or ``failed`` with the pipeline's note; a precision the format does not
    offer is ``skipped``. ``refresh`` (``zoo export``): every key goes through the pipeline, which
    reuses an artifact with the same build key (``reused``) and rebuilds the rest (``force``: all);
    the result then also holds the ONNX sources the others convert from, in build order, and the
    skipped keys last. ``on_event(key, stage)`` reports the pipeline's progress.

    ``verify_on``: devices every artifact must also pass on (its CPU family's tolerance). A new
    artifact failing there is not installed; an installed one without a passing record for a device
    is run there, and the record is added to its manifest (``failed`` when it does not pass).
    """
    artifacts_dir = Path(artifacts_dir)
    prime_weights([catalog.get(name) for name in dict.fromkeys(k.variant for k in keys)], catalog)
    if refresh:
        ordered, skipped = build_order(keys)
        todo = [Provisioned(k, k.path(artifacts_dir), Status.MISSING) for k in ordered]
        done = [Provisioned(r.key, r.key.path(artifacts_dir), Status.SKIPPED, r.note, r) for r in skipped]
        _export(todo, artifacts_dir, catalog, force, jobs, on_event, calibration, int8_target, verify_on)
        _verify_installed(todo, catalog, verify_on, on_event)
        return todo + done
    result = [_installed(k, artifacts_dir, catalog) for k in keys]
    missing = [p for p in result if p.status is Status.MISSING]
    if missing:
        ordered, _ = build_order([p.key for p in missing])
        by_key = {p.key: p for p in missing}
        todo = [by_key.get(k) or Provisioned(k, k.path(artifacts_dir), Status.MISSING) for k in ordered]
        _export(todo, artifacts_dir, catalog, force, jobs, on_event, calibration, int8_target, verify_on)
    _verify_installed(result, catalog, verify_on, on_event)
    return result


def _installed(key: ArtifactKey, artifacts_dir: Path, catalog: Catalog) -> Provisioned:
    if key.is_reference:
        return Provisioned(key, None, Status.FOUND, "PyTorch eager, the catalog's weights")
    path = key.path(artifacts_dir)
    if not key.offered:
        return Provisioned(key, path, Status.SKIPPED, f"{key.format} offers {', '.join(key.offered_precisions)} only")
    if (path / MANIFEST_NAME).is_file():
        verified_manifest(path, catalog.get(key.variant))
        return Provisioned(key, path, Status.FOUND)
    return Provisioned(key, path, Status.MISSING)


def _verify_installed(provisioned: list[Provisioned], catalog: Catalog, devices: tuple[Device, ...], on_event) -> None:
    """Run each installed artifact lacking a passing record for one of ``devices`` there; record it."""
    if not devices:
        return
    verifier = Verifier(catalog, devices)
    for p in provisioned:
        if p.status not in (Status.FOUND, Status.REUSED) or p.key.is_reference or p.key.flavour:
            continue
        manifest = read_manifest(p.path)
        variant = catalog.get(p.key.variant)
        done = {d.device for d in manifest.parity.devices  # a record judged by today's tolerance of its family
                if d.passed and (d.atol, d.rtol) == _family_allowance(variant, p.key, d.family)}
        for device in devices:
            if device.name in done:
                continue
            if on_event is not None:
                on_event(p.key, f"verifying on {device.name}")
            record = verifier.on_device(device, p.key, p.path, manifest)
            if not record.passed:
                p.status = Status.FAILED
                p.note = f"{p.key.name}: installed, but fails " + parity_failure(manifest.parity.model_copy(update={"devices": [record]}))
                if p.row is not None:
                    p.row.status, p.row.note = p.status, p.note
                break
            kept = [d for d in manifest.parity.devices if d.device != device.name]
            manifest.parity = manifest.parity.model_copy(update={"devices": [*kept, record]})
            write_manifest(p.path, manifest)


def _family_allowance(variant: Variant, key: ArtifactKey, family: str) -> tuple[float, float] | None:
    try:
        tol = variant.tolerance(key.format, key.precision, family)
    except ZooError:
        return None
    return tol.atol, tol.rtol


def open_calibration(keys: list[ArtifactKey], catalog: Catalog,
                     calibration: str | CalibrationSource | None) -> CalibrationSource | None:
    """The calibration source ``--calibration`` names, opened, with the calibration pairs of every
    variant whose ``keys`` calibrate already cut (the pipeline reuses them); None without
    ``calibration`` or reduced precisions. A bad path, an image above the pixel limit or a source
    too small for the catalog's count of distinct pairs is a usage error (one line, before any work)."""
    if calibration is None or not any(k.precision in REDUCED_PRECISIONS for k in keys):
        return None
    source = open_source(calibration)
    spec = catalog.quantization
    if spec is None:
        return source
    for name in dict.fromkeys(k.variant for k in keys if k.precision in REDUCED_PRECISIONS
                              and any(r.calibration_method != "none"
                                      for r in spec.recipes.get(k.format, {}).get(k.precision, {}).values())):
        variant = catalog.get(name)
        calibration_pairs(variant, catalog.preset(variant), source, spec)
    return source


def _export(todo: list[Provisioned], artifacts_dir: Path, catalog: Catalog, force: bool, jobs: int, on_event,
            calibration: str | CalibrationSource | None, int8_target: str | None, verify_on: tuple[Device, ...] = ()) -> None:
    """Run the pipeline over ``todo`` (build order) and record each row's outcome in place."""
    keys = [p.key for p in todo]
    source = open_calibration(keys, catalog, calibration)  # a bad --calibration: one line, exit 2, before any work
    for fmt in dict.fromkeys(k.format for k in keys):  # a missing converter: one line, before any work
        get_exporter(fmt).versions()
    for flavour in dict.fromkeys(k.flavour for k in keys if k.flavour):
        get_flavour_exporter(flavour).versions()
    pipeline = Pipeline(artifacts_dir, Verifier(catalog, verify_on), catalog, force=force, jobs=jobs, on_event=on_event,
                        calibration=source if source is not None else calibration, int8_target=int8_target)
    for p, row in zip(todo, pipeline.run(keys), strict=True):
        p.status, p.note, p.row = row.status, row.note, row

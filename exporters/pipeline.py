"""Export orchestration: plan, build, verify, install; atomic, locked, idempotent.

For each variant the ONNX artifact is built (or reused) first when any requested format converts
from it. Each target ``<out>/<variant>/<format>[-<precision>]`` is built under a per-target file
lock in a temporary directory inside ``<out>/.build`` (same file system), verified in its own
runtime against PyTorch eager on a fixed realistic input pair, given its ``manifest.json`` and
only then moved into place. A target whose manifest has the same build key (weights, catalog
I/O and preprocessing, options, tolerance, toolchain versions) and whose files still match their
sha256 is reused; a corrupt one is rebuilt. Failures never leave a partial artifact: the build
directory is removed and its log kept in ``<out>/.logs``.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from filelock import FileLock

from exporters import get_exporter, get_flavour_exporter
from exporters.base import BuildContext, Exporter, Quantization
from exporters.split import build_info as split_build_info
from exporters.split import convert_split
from zoo.artifacts import SPLIT_SUFFIX, ClientTarget, Manifest, Parity, check_bindings, check_files, file_entry, read_manifest, write_manifest
from zoo.backends import FORMATS, REDUCED_PRECISIONS, by_flavour, flavour_dirname
from zoo.calibration import make_pairs, open_source
from zoo.catalog import Catalog
from zoo.errors import UsageError, ZooError
from zoo.fileio import swap_dir
from zoo.parity import describe_failure
from zoo.schema import Variant
from zoo.tracker_parity import describe_tracker_failure
from zoo.version import __version__ as zoo_version

#: ``verify(target, build_dir, manifest) -> Parity``: runs the built artifact in its runtime and
#: compares it with the reference (the compare layer provides it: :mod:`compare.parity.verify`)
Verifier = Callable[["Target", Path, Manifest], Parity]


class ExportFailed(ZooError):
    """A target could not be exported or failed verification."""


@dataclass(frozen=True)
class Target:
    variant: Variant
    format: str
    precision: str
    #: a flavour of zoo.backends.FLAVOURS (``zoo export --for``), None for the plain artifact
    flavour: str | None = None
    #: an init + track split artifact (exporters.split) instead of the full graph
    split: bool = False

    @property
    def dirname(self) -> str:
        return flavour_dirname(self.format, self.precision, self.flavour) + (SPLIT_SUFFIX if self.split else "")

    @property
    def label(self) -> str:
        return f"{self.variant.name} {self.dirname}"


@dataclass
class Row:
    """One line of the summary (and of ``--json``)."""

    variant: str
    format: str
    precision: str
    status: str  # built | rebuilt | reused | failed | skipped
    size_mb: float | None = None
    max_abs_err: float | None = None
    seconds: float | None = None
    path: str | None = None
    note: str | None = None
    log: str | None = None
    flavour: str | None = None
    split: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


def build_order(variants: list[Variant], formats: list[str], precisions: list[str],
                flavour: str | None = None, split: bool = False) -> tuple[list[Target], list[Row]]:
    """Targets in build order (ONNX first per variant, added when a format needs it) and skip rows;
    ``split``: init + track split artifacts (their ONNX source is the split ONNX artifact).

    A precision a format does not offer is skipped with a note; when nothing at all remains the
    request is a usage error. With ``flavour`` (``--for``) the targets are that flavour of its format.
    """
    if flavour is not None:
        if split:
            raise UsageError(f"--for {flavour} builds the client's single-graph artifact; it does not combine with --split")
        return _flavour_order(variants, formats, precisions, flavour)
    targets: list[Target] = []
    skipped: list[Row] = []
    for variant in variants:
        wanted = []
        for fmt in FORMATS:
            if fmt not in formats:
                continue
            exporter = get_exporter(fmt)
            for precision in precisions:
                if precision in exporter.precisions:
                    wanted.append(Target(variant, fmt, precision, split=split))
                else:
                    skipped.append(Row(variant.name, fmt, precision, "skipped",
                                       note=f"{fmt} offers {', '.join(exporter.precisions)} only"))
        source = Target(variant, "onnx", "fp32", split=split)
        if wanted and any(get_exporter(t.format).needs_onnx_for(t.precision) for t in wanted):
            # the fp32 ONNX artifact first: the others (ONNX int8 too) convert from it
            wanted = [source] + [t for t in wanted if t != source]
        targets.extend(wanted)
    if not targets:
        raise UsageError("nothing to export: " + "; ".join(sorted({r.note for r in skipped if r.note})))
    return targets, skipped


def _flavour_order(variants: list[Variant], formats: list[str], precisions: list[str], flavour: str) -> tuple[list[Target], list[Row]]:
    spec = by_flavour(flavour)
    if list(formats) != [spec.format]:
        raise UsageError(f"--for {flavour} builds {spec.format} only ({spec.title}), not {' '.join(formats)}")
    bad = [p for p in precisions if p not in spec.precisions]
    if bad:
        raise UsageError(f"--for {flavour} offers {', '.join(spec.precisions)} only, not {', '.join(bad)}")
    targets = []
    for variant in variants:
        targets += [Target(variant, spec.format, "fp32")] + [Target(variant, spec.format, p, flavour) for p in precisions]
    return targets, []


def _exporter(target: Target) -> Exporter:
    return get_flavour_exporter(target.flavour) if target.flavour else get_exporter(target.format)


def _prepare_out_dir(out: Path) -> None:
    try:
        (out / ".build").mkdir(parents=True, exist_ok=True)
        (out / ".logs").mkdir(exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out / ".build", prefix=".probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UsageError(f"output directory {out} is not writable: {exc.strerror or exc}") from None


def _digest(data: dict) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


class Pipeline:
    """Export targets into ``out``, each checked by ``verify`` before it is installed;
    ``on_event(target, stage)`` reports progress."""

    def __init__(self, out: Path, verify: Verifier, force: bool = False, jobs: int = 1,
                 on_event: Callable[[Target, str], None] | None = None, calibration: str | None = None,
                 int8_target: str | None = None):
        self.out = Path(out).absolute()
        #: reduced precisions: --calibration (None: the bundled photographs) and --int8-target
        self.calibration, self.int8_target = calibration, int8_target
        self._spec, self._source, self._pairs = None, None, {}
        self._quant_lock = threading.Lock()
        self.verify = verify
        self.force = force
        self.jobs = max(1, int(jobs))
        self.on_event = on_event or (lambda target, stage: None)

    # -- public --------------------------------------------------------------------------------
    def run(self, targets: list[Target]) -> list[Row]:
        """Export every target (variants in parallel up to ``jobs``); rows in ``targets`` order."""
        _prepare_out_dir(self.out)
        by_variant: dict[str, list[Target]] = {}
        for t in targets:
            by_variant.setdefault(t.variant.name, []).append(t)
        if self.jobs == 1 or len(by_variant) == 1:
            results = [self._run_variant(ts) for ts in by_variant.values()]
        else:
            with ThreadPoolExecutor(self.jobs) as pool:
                results = list(pool.map(self._run_variant, by_variant.values()))
        rows = {(r.variant, r.format, r.precision, r.flavour, r.split): r for rs in results for r in rs}
        return [rows[(t.variant.name, t.format, t.precision, t.flavour, t.split)] for t in targets]

    def target_dir(self, target: Target) -> Path:
        return self.out / target.variant.name / target.dirname

    # -- per variant ---------------------------------------------------------------------------
    def _run_variant(self, targets: list[Target]) -> list[Row]:
        rows, onnx_row = [], None
        for target in targets:
            exporter = _exporter(target)
            if exporter.needs_onnx_for(target.precision) and (onnx_row is None or onnx_row.status == "failed"):
                rows.append(Row(target.variant.name, target.format, target.precision, "failed",
                                note="needs the ONNX artifact, which failed", flavour=target.flavour, split=target.split))
                continue
            row = self._export(target, exporter)
            if target.format == "onnx" and target.precision == "fp32" and target.flavour is None:
                onnx_row = row
            rows.append(row)
        return rows

    def _build_inputs(self, target: Target, exporter: Exporter) -> dict:
        v = target.variant
        versions = exporter.versions()
        source = None
        if exporter.needs_onnx_for(target.precision):
            onnx = get_exporter("onnx")
            versions = {**onnx.versions(), **versions}
            source = self._build_inputs(Target(v, "onnx", "fp32", split=target.split), onnx)
        extra = {"flavour": target.flavour} if target.flavour else {}  # plain targets keep their build key
        if target.precision in REDUCED_PRECISIONS:  # only then: fp32/fp16 build keys stay what they were
            extra["quantization"] = self._quantization(target).record()
        if target.split:  # full targets keep their keys
            extra["split"] = split_build_info(v)
        return {
            **extra,
            "variant": v.name, "weights_sha256": v.weights.sha256, "format": target.format,
            "precision": target.precision, "io": v.io.model_dump(), "preprocessing": v.preprocessing.model_dump(),
            "tolerance": self._tolerance(target), "options": exporter.options(target.precision),
            "exporter_revision": exporter.revision, "versions": versions, "zoo_version": zoo_version,
            "source_onnx": _digest(source) if source else None,
        }

    @staticmethod
    def _tolerance(target: Target) -> dict:
        tol = target.variant.tolerances.get(target.format, {}).get(target.precision)
        if tol is None:
            raise ExportFailed(f"zoo.yaml has no {target.format} {target.precision} tolerance for {target.variant.name}")
        return tol.model_dump(exclude_none=True)

    def _quantization(self, target: Target) -> Quantization:
        """The recipe and calibration pairs of a reduced-precision target (computed once per variant/recipe)."""
        with self._quant_lock:
            if self._spec is None:
                self._spec = Catalog.load().quantization
                if self._spec is None:
                    raise ExportFailed("zoo.yaml has no quantization: block (recipes of reduced precisions)")
            if self._source is None:
                self._source = open_source(self.calibration)
            spec = self._spec
            recipes = spec.recipes.get(target.format, {}).get(target.precision, {})
            wanted = self.int8_target or spec.default_target
            key = wanted if wanted in recipes else "any"
            if key not in recipes:
                raise ExportFailed(f"zoo.yaml has no {target.format} {target.precision} recipe for target {wanted!r} "
                                   f"(has {', '.join(recipes) or 'none'})")
            recipe = recipes[key]
            cache_key = (target.variant.name, recipe.calibration_method != "none")
            if cache_key not in self._pairs:
                pairs = []
                if recipe.calibration_method != "none":
                    preset = Catalog.load().preset(target.variant)
                    pairs = make_pairs(target.variant, preset, self._source, spec.calibration_pairs, "calibration",
                                       spec.jitter_shift, spec.jitter_scale)
                self._pairs[cache_key] = pairs
            return Quantization(recipe, wanted if key != "any" else "any", self._source, self._pairs[cache_key])

    def _export(self, target: Target, exporter: Exporter) -> Row:
        start = time.perf_counter()
        row = Row(target.variant.name, target.format, target.precision, "failed", flavour=target.flavour, split=target.split)
        try:
            build_inputs = self._build_inputs(target, exporter)
            key = _digest(build_inputs)
            dest = self.target_dir(target)
            dest.parent.mkdir(parents=True, exist_ok=True)
            with FileLock(str(dest.parent / f".{target.dirname}.lock")):
                reuse_note = self._existing(dest, key, target.variant)
                if reuse_note is None:
                    manifest = read_manifest(dest)
                    row.status, row.note = "reused", "same weights, options and toolchain"
                else:
                    self.on_event(target, "building")
                    manifest = self._build(target, exporter, build_inputs, key, dest)
                    row.status = "rebuilt" if reuse_note else "built"
                    row.note = reuse_note or None
            row.size_mb = manifest.size_bytes / 1e6
            row.max_abs_err = max(o.max_abs_err for o in manifest.parity.outputs)
            row.path = str(dest)
        except ZooError as exc:
            row.note = str(exc)
            row.log = getattr(exc, "log_path", None)
        except OSError as exc:
            row.note = f"{target.label}: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")
        row.seconds = time.perf_counter() - start
        self.on_event(target, row.status)
        return row

    def _existing(self, dest: Path, key: str, variant: Variant) -> str | None:
        """None when ``dest`` holds a reusable artifact, else why it is (re)built ('' when absent)."""
        if not dest.exists():
            return ""
        try:
            manifest = read_manifest(dest)
        except ZooError:
            return "existing artifact had no valid manifest: rebuilt"
        if self.force:
            return "--force: rebuilt"
        if manifest.build_key != key:
            return "weights, options or toolchain changed: rebuilt"
        problems = check_files(dest, manifest)
        if problems:
            return f"existing artifact was corrupt ({problems[0]}): rebuilt"
        problems = check_bindings(manifest, variant)
        if problems:
            return f"existing manifest does not match zoo.yaml ({problems[0]}): rebuilt"
        return None

    # -- build, verify, install ----------------------------------------------------------------
    def _build(self, target: Target, exporter: Exporter, build_inputs: dict, key: str, dest: Path) -> Manifest:
        build_root = self.out / ".build"
        for stale in build_root.glob(f"{target.variant.name}--{target.dirname}--*"):
            shutil.rmtree(stale, ignore_errors=True)  # left by a killed run; we hold the target lock
        build_dir = Path(tempfile.mkdtemp(prefix=f"{target.variant.name}--{target.dirname}--", dir=build_root))
        os.chmod(build_dir, 0o755)  # mkdtemp makes it 0700; the installed artifact is for everyone
        log_path = build_dir / "export.log"
        log_path.touch()
        try:
            ctx = BuildContext(target.variant, target.precision, build_dir, log_path, force=self.force)
            if target.precision in REDUCED_PRECISIONS:
                ctx.quantization = self._quantization(target)
            if exporter.needs_onnx_for(target.precision):
                ctx.onnx_path = self._copy_onnx(target, build_dir)
            t0 = time.perf_counter()
            self.on_event(target, "converting")
            result = convert_split(exporter, ctx) if target.split else exporter.convert(ctx)
            if ctx.onnx_path is not None and ctx.onnx_path.is_dir():
                shutil.rmtree(ctx.onnx_path)
            elif ctx.onnx_path is not None:
                ctx.onnx_path.unlink(missing_ok=True)
            export_seconds = time.perf_counter() - t0
            manifest = Manifest(
                variant=target.variant.name, format=target.format, precision=target.precision,
                files=[file_entry(build_dir, f) for f in result.files], inputs=result.inputs, outputs=result.outputs,
                weights_sha256=target.variant.weights.sha256, zoo_version=zoo_version, converter=result.converter,
                versions=build_inputs["versions"], build_key=key, build_inputs=build_inputs,
                export_seconds=round(export_seconds, 3), verify_seconds=0.0,
                parity=Parity(reference="", inputs="", atol=0, rtol=0, passed=False, outputs=[]),
                created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), notes=result.notes,
                client=ClientTarget(**result.client) if result.client else None,
                quantization=ctx.quantization.record() if ctx.quantization else None,
                graphs=result.graphs,
            )
            self.on_event(target, "verifying")
            t1 = time.perf_counter()
            manifest.parity = self.verify(target, build_dir, manifest)
            manifest.verify_seconds = round(time.perf_counter() - t1, 3)
            if not manifest.parity.passed:
                why = (describe_tracker_failure(manifest.parity.tracker) if manifest.parity.tracker is not None
                       else describe_failure(manifest.parity.outputs, manifest.parity.atol, manifest.parity.rtol))
                raise ExportFailed(f"{target.label}: verification failed: " + why)
            write_manifest(build_dir, manifest)
            self._install(build_dir, dest)
            return manifest
        except Exception as exc:
            kept = self.out / ".logs" / f"{target.variant.name}--{target.dirname}.log"
            try:
                shutil.copyfile(log_path, kept)
            except OSError:
                kept = None
            shutil.rmtree(build_dir, ignore_errors=True)
            err = exc if isinstance(exc, ZooError) else ExportFailed(
                f"{target.label}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            if isinstance(exc, ZooError) and not str(exc).startswith(target.label):
                err = type(exc)(f"{target.label}: {exc}")
            err.log_path = str(kept) if kept else None
            raise err from exc

    def _copy_onnx(self, target: Target, build_dir: Path) -> Path:
        """Copy the installed, verified ONNX model under its lock (a concurrent --force may replace it)."""
        onnx_dir = self.target_dir(Target(target.variant, "onnx", "fp32", split=target.split))
        if target.split:
            return self._copy_split_onnx(onnx_dir, build_dir)
        with FileLock(str(onnx_dir.parent / ".onnx.lock")):
            manifest = read_manifest(onnx_dir)
            src = onnx_dir / manifest.files[0].path
            dst = build_dir / "source.onnx"
            shutil.copyfile(src, dst)
        return dst

    def _copy_split_onnx(self, onnx_dir: Path, build_dir: Path) -> Path:
        """Copy both graphs of the installed split ONNX artifact into ``build_dir/source/``."""
        dst = build_dir / "source"
        with FileLock(str(onnx_dir.parent / f".{onnx_dir.name}.lock")):
            manifest = read_manifest(onnx_dir)
            for entry in manifest.files:
                (dst / entry.path).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(onnx_dir / entry.path, dst / entry.path)
        return dst

    def _install(self, build_dir: Path, dest: Path) -> None:
        """Move the verified build into place (an existing artifact is swapped out whole)."""
        swap_dir(build_dir, dest, self.out / ".build")

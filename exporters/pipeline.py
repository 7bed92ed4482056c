"""Export orchestration: plan, build, verify, install; atomic, locked, idempotent.

For each variant the ONNX artifact is built (or reused) first when any requested format converts
from it. Each artifact (:class:`zoo.artifacts.ArtifactKey`, in ``<out>/<variant>/<key.dirname>``) is
built under a per-artifact file lock in a temporary directory inside ``<out>/.build`` (same file system), verified in its own
runtime against PyTorch eager on a fixed realistic input pair, given its ``manifest.json`` and
only then moved into place. An artifact whose manifest has the same build key (weights, catalog
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
from pathlib import Path

from filelock import FileLock

from exporters import get_exporter
from exporters.base import BuildContext, Exporter, Quantization
from exporters.isolated import ProcessBuilds, WorkerLost
from exporters.plan import Row, exporter_of
from exporters.split import build_info as split_build_info
from exporters.split import convert_split
from zoo.artifacts import ArtifactKey, Status, artifact_lock, first_problem
from zoo.backends import REDUCED_PRECISIONS, by_format
from zoo.calibration import CalibrationSource, calibration_pairs, open_source
from zoo.catalog import Catalog
from zoo.errors import UsageError, ZooError
from zoo.fileio import swap_dir
from zoo.manifest import ClientTarget, Manifest, Parity, file_entry, read_manifest, write_manifest
from zoo.parity import parity_failure
from zoo.schema import Variant
from zoo.version import __version__ as zoo_version

#: ``verify(key, build_dir, manifest) -> Parity``: runs the built artifact in its runtime and
#: compares it with the reference (the compare layer provides it: :mod:`compare.parity.verify`)
Verifier = Callable[[ArtifactKey, Path, Manifest], Parity]


class ExportFailed(ZooError):
    """An artifact could not be exported or failed verification."""


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
    """Export keys into ``out``, each checked by ``verify`` before it is installed;
    ``on_event(key, stage)`` reports progress."""

    def __init__(self, out: Path, verify: Verifier, catalog: Catalog, force: bool = False, jobs: int = 1,
                 on_event: Callable[[ArtifactKey, str], None] | None = None,
                 calibration: str | CalibrationSource | None = None, int8_target: str | None = None):
        self.out = Path(out).absolute()
        #: variants, presets and the quantization recipes come from the catalog in use (never reloaded here)
        self.catalog = catalog
        #: reduced precisions: --calibration (None: the bundled calibration images; or a source already
        #: opened, whose pairs are then cut once) and --int8-target
        self.calibration, self.int8_target = calibration, int8_target
        self._source, self._pairs = None, {}
        self._quant_lock = threading.Lock()
        self.verify = verify
        self.force = force
        self.jobs = max(1, int(jobs))
        self._slots = threading.BoundedSemaphore(self.jobs)
        self.on_event = on_event or (lambda key, stage: None)
        self._processes: ProcessBuilds | None = None  # during run(): builds of own-process formats (jobs > 1)

    def settings(self) -> dict:
        """What a worker process needs to build like this pipeline (:mod:`exporters.isolated`)."""
        return {"out": self.out, "verify": self.verify, "catalog": self.catalog, "force": self.force,
                "calibration": self.calibration, "int8_target": self.int8_target}

    # -- public --------------------------------------------------------------------------------
    def run(self, keys: list[ArtifactKey]) -> list[Row]:
        """Export every key, up to ``jobs`` at once (variants in parallel, and within a variant the
        artifacts converted from its ONNX source); rows in ``keys`` order."""
        _prepare_out_dir(self.out)
        by_variant: dict[str, list[ArtifactKey]] = {}
        for k in keys:
            by_variant.setdefault(k.variant, []).append(k)
        if self.jobs > 1 and any(by_format(k.format).own_process for k in keys):
            self._processes = ProcessBuilds(self.settings(), self.on_event, self.jobs)
        finished = False
        try:
            tasks = [lambda ts=ts: self._run_variant(ts) for ts in by_variant.values()]
            results = self._in_threads(tasks) if self.jobs > 1 and len(tasks) > 1 else [t() for t in tasks]
            finished = True
        finally:
            if self._processes is not None:
                self._processes.close(abort=not finished)  # interrupted: the workers are killed, not awaited
                self._processes = None
        rows = {r.key: r for rs in results for r in rs}
        return [rows[k] for k in keys]

    # -- per variant ---------------------------------------------------------------------------
    def _run_variant(self, keys: list[ArtifactKey]) -> list[Row]:
        """The variant's ONNX sources, and beside them (up to ``jobs`` builds at once) every format's
        artifacts: one format's precisions one after another, float first (they share converter runs:
        one cached litert-torch conversion gives TFLite fp32 and is the source of its fp16 and int8).
        Formats that convert from PyTorch start at once (own-process ones first: the longest builds,
        :mod:`exporters.isolated`); those converting from ONNX wait for it."""
        sources = [k for k in keys if k == k.source]
        of_format: dict[tuple, list[ArtifactKey]] = {}
        for k in sorted((k for k in keys if k not in sources), key=lambda k: k.precision in REDUCED_PRECISIONS):
            of_format.setdefault((k.format, k.flavour), []).append(k)  # float first: reduced ones reuse its converter run
        rows: dict[ArtifactKey, Row] = {}
        sources_done = threading.Event()

        def export_sources() -> list[Row]:
            try:
                done = [self._export(k) for k in sources]
                rows.update((r.key, r) for r in done)
                return done
            finally:
                sources_done.set()

        def one(key: ArtifactKey) -> Row:
            if not exporter_of(key).needs_onnx_for(key.precision):
                return self._export(key)
            sources_done.wait()
            source = rows.get(key.source)
            if source is None or source.status is Status.FAILED:
                return Row.of(key, Status.FAILED, note="needs the ONNX artifact, which failed")
            return self._export(key)

        def needs_onnx(group: list[ArtifactKey]) -> bool:
            return any(exporter_of(k).needs_onnx_for(k.precision) for k in group)

        # own-process formats first (the longest builds); the sources before any group that waits for
        # them, so that a worker thread waiting for the sources never waits for a task not yet started
        groups = sorted(of_format.values(), key=lambda g: (needs_onnx(g), not by_format(g[0].format).own_process))
        tasks = [lambda g=g: [one(k) for k in g] for g in groups]
        tasks.insert(sum(not needs_onnx(g) for g in groups), export_sources)
        done = self._in_threads(tasks) if self.jobs > 1 and len(tasks) > 1 else [t() for t in tasks]
        rows.update((r.key, r) for rs in done for r in rs)
        return [rows[k] for k in keys]

    def _in_threads(self, tasks: list[Callable[[], list]]) -> list:
        """Each task's result, the tasks run in ``jobs`` threads, started in order. Interrupted (Ctrl-C,
        SIGTERM), the worker processes are killed before the threads are awaited: a build in a worker
        would otherwise run to its end."""
        pool = ThreadPoolExecutor(self.jobs)
        try:
            futures = [pool.submit(t) for t in tasks]
            return [f.result() for f in futures]
        except BaseException:
            if self._processes is not None:
                self._processes.close(abort=True)
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _build_inputs(self, key: ArtifactKey, exporter: Exporter) -> dict:
        v = self.catalog.get(key.variant)
        versions = exporter.versions()
        source = None
        if exporter.needs_onnx_for(key.precision):
            onnx = get_exporter("onnx")
            versions = {**onnx.versions(), **versions}
            source = self._build_inputs(key.source, onnx)
        extra = {"flavour": key.flavour} if key.flavour else {}  # plain artifacts keep their build key
        if key.precision in REDUCED_PRECISIONS:  # only then: fp32/fp16 build keys stay what they were
            extra["quantization"] = self._quantization(key).record()
        if key.split:  # full artifacts keep their keys
            extra["split"] = split_build_info(v)
        return {
            **extra,
            "variant": v.name, "weights_sha256": v.weights.sha256, "format": key.format,
            "precision": key.precision, "io": v.io.model_dump(), "preprocessing": v.preprocessing.model_dump(),
            # the families' tolerances judge device records (re-checked when they change), not the build
            "tolerance": v.tolerance(key.format, key.precision).model_dump(exclude_none=True, exclude={"families"}),
            "options": exporter.options(key.precision, self.catalog),
            "exporter_revision": exporter.revision, "versions": versions, "zoo_version": zoo_version,
            "source_onnx": _digest(source) if source else None,
        }

    def _quantization(self, key: ArtifactKey) -> Quantization:
        """The recipe and calibration pairs of a reduced-precision artifact (computed once per variant/recipe)."""
        with self._quant_lock:
            spec = self.catalog.quantization
            if spec is None:
                raise ExportFailed("zoo.yaml has no quantization: block (recipes of reduced precisions)")
            if self._source is None:
                self._source = open_source(self.calibration)
            recipes = spec.recipes.get(key.format, {}).get(key.precision, {})
            wanted = self.int8_target or spec.default_target
            recipe_key = wanted if wanted in recipes else "any"
            if recipe_key not in recipes:
                raise ExportFailed(f"zoo.yaml has no {key.format} {key.precision} recipe for target {wanted!r} "
                                   f"(has {', '.join(recipes) or 'none'})")
            recipe = recipes[recipe_key]
            cache_key = (key.variant, recipe.calibration_method != "none")
            if cache_key not in self._pairs:
                pairs = []
                if recipe.calibration_method != "none":
                    variant = self.catalog.get(key.variant)
                    pairs = calibration_pairs(variant, self.catalog.preset(variant), self._source, spec)
                self._pairs[cache_key] = pairs
            return Quantization(recipe, wanted if recipe_key != "any" else "any", self._source, self._pairs[cache_key])

    def _export(self, key: ArtifactKey) -> Row:
        with self._slots:  # at most ``jobs`` builds at once, over all variants
            if self._processes is None or not by_format(key.format).own_process:
                return self.export_here(key)
            try:
                return self._processes.build(key)
            except WorkerLost as exc:
                self.on_event(key, Status.FAILED)
                return Row.of(key, Status.FAILED, note=str(exc))

    def export_here(self, key: ArtifactKey) -> Row:
        """Build (or reuse) ``key`` in this process: its row, never an exception for a failed build."""
        exporter = exporter_of(key)
        start = time.perf_counter()
        row = Row.of(key, Status.FAILED)
        try:
            build_inputs = self._build_inputs(key, exporter)
            build_key = _digest(build_inputs)
            dest = key.path(self.out)
            dest.parent.mkdir(parents=True, exist_ok=True)
            with self._lock(key.variant, key.dirname):
                reuse_note = self._existing(dest, build_key, self.catalog.get(key.variant))
                if reuse_note is None:
                    manifest = read_manifest(dest)
                    row.status, row.note = Status.REUSED, "same weights, options and toolchain"
                else:
                    self.on_event(key, "building")
                    manifest, row.cached_steps = self._build(key, exporter, build_inputs, build_key, dest)
                    row.status = Status.REBUILT if reuse_note else Status.BUILT
                    cached = f"conversion reused from the zoo cache: {', '.join(row.cached_steps)}" if row.cached_steps else ""
                    row.note = "; ".join(n for n in (reuse_note, cached) if n) or None
            row.size_mb = manifest.size_bytes / 1e6
            row.max_abs_err = max(o.max_abs_err for o in manifest.parity.outputs)
            row.path = str(dest)
        except ZooError as exc:
            row.note = str(exc)
            row.log = getattr(exc, "log_path", None)
        except OSError as exc:
            row.note = f"{key.name}: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")
        row.seconds = time.perf_counter() - start
        self.on_event(key, row.status)
        return row

    def _existing(self, dest: Path, build_key: str, variant: Variant) -> str | None:
        """None when ``dest`` holds a reusable artifact, else why it is (re)built ('' when absent)."""
        if not dest.exists():
            return ""
        try:
            manifest = read_manifest(dest)
        except ZooError:
            return "existing artifact had no valid manifest: rebuilt"
        if self.force:
            return "--force: rebuilt"
        if manifest.build_key != build_key:
            return "weights, options or toolchain changed: rebuilt"
        found = first_problem(dest, manifest, variant)
        if found is not None:
            return f"existing artifact is unusable ({found[1]}): rebuilt"
        return None

    # -- build, verify, install ----------------------------------------------------------------
    def _build(self, key: ArtifactKey, exporter: Exporter, build_inputs: dict, build_key: str, dest: Path) -> tuple[Manifest, list[str]]:
        build_root = self.out / ".build"
        for stale in build_root.glob(f"{key.variant}--{key.dirname}--*"):
            shutil.rmtree(stale, ignore_errors=True)  # left by a killed run; we hold the key lock
        build_dir = Path(tempfile.mkdtemp(prefix=f"{key.variant}--{key.dirname}--", dir=build_root))
        os.chmod(build_dir, 0o755)  # mkdtemp makes it 0700; the installed artifact is for everyone
        log_path = build_dir / "export.log"
        log_path.touch()
        try:
            variant = self.catalog.get(key.variant)
            ctx = BuildContext(variant, key.precision, build_dir, log_path, force=self.force, catalog=self.catalog)
            if key.precision in REDUCED_PRECISIONS:
                ctx.quantization = self._quantization(key)
            if exporter.needs_onnx_for(key.precision):
                ctx.onnx_path = self._copy_onnx(key, build_dir)
            t0 = time.perf_counter()
            self.on_event(key, "converting")
            result = convert_split(exporter, ctx) if key.split else exporter.convert(ctx)
            if ctx.onnx_path is not None and ctx.onnx_path.is_dir():
                shutil.rmtree(ctx.onnx_path)
            elif ctx.onnx_path is not None:
                ctx.onnx_path.unlink(missing_ok=True)
            export_seconds = time.perf_counter() - t0
            manifest = Manifest(
                variant=key.variant, format=key.format, precision=key.precision,
                files=[file_entry(build_dir, f) for f in result.files], inputs=result.inputs, outputs=result.outputs,
                weights_sha256=variant.weights.sha256, zoo_version=zoo_version, converter=result.converter,
                versions=build_inputs["versions"], build_key=build_key, build_inputs=build_inputs,
                export_seconds=round(export_seconds, 3), verify_seconds=0.0,
                parity=Parity(reference="", inputs="", atol=0, rtol=0, passed=False, outputs=[]),
                created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), notes=result.notes,
                client=ClientTarget(**result.client) if result.client else None,
                quantization=ctx.quantization.record() if ctx.quantization else None,
                graphs=result.graphs,
            )
            self.on_event(key, "verifying")
            t1 = time.perf_counter()
            manifest.parity = self.verify(key, build_dir, manifest)
            manifest.verify_seconds = round(time.perf_counter() - t1, 3)
            if not manifest.parity.passed:
                raise ExportFailed(f"{key.name}: verification failed: " + parity_failure(manifest.parity))
            write_manifest(build_dir, manifest)
            self._install(build_dir, dest)
            return manifest, list(ctx.cached_steps)
        except Exception as exc:
            kept = self.out / ".logs" / f"{key.variant}--{key.dirname}.log"
            try:
                shutil.copyfile(log_path, kept)
            except OSError:
                kept = None
            shutil.rmtree(build_dir, ignore_errors=True)
            err = exc if isinstance(exc, ZooError) else ExportFailed(
                f"{key.name}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            if isinstance(exc, ZooError) and not str(exc).startswith(key.name):
                err = type(exc)(f"{key.name}: {exc}")
            err.log_path = str(kept) if kept else None
            raise err from exc

    def _lock(self, variant: str, dirname: str) -> FileLock:
        """The lock of one artifact directory (:func:`zoo.artifacts.artifact_lock`)."""
        return artifact_lock(self.out, variant, dirname)

    def _copy_onnx(self, key: ArtifactKey, build_dir: Path) -> Path:
        """Copy the installed, verified ONNX model under its lock (a concurrent --force may replace it)."""
        onnx_dir = key.source.path(self.out)
        if key.split:
            return self._copy_split_onnx(onnx_dir, build_dir)
        with self._lock(key.variant, onnx_dir.name):
            manifest = read_manifest(onnx_dir)
            src = onnx_dir / manifest.files[0].path
            dst = build_dir / "source.onnx"
            shutil.copyfile(src, dst)
        return dst

    def _copy_split_onnx(self, onnx_dir: Path, build_dir: Path) -> Path:
        """Copy both graphs of the installed split ONNX artifact into ``build_dir/source/``."""
        dst = build_dir / "source"
        with self._lock(onnx_dir.parent.name, onnx_dir.name):
            manifest = read_manifest(onnx_dir)
            for entry in manifest.files:
                (dst / entry.path).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(onnx_dir / entry.path, dst / entry.path)
        return dst

    def _install(self, build_dir: Path, dest: Path) -> None:
        """Move the verified build into place (an existing artifact is swapped out whole)."""
        swap_dir(build_dir, dest, self.out / ".build")

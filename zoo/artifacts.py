"""The artifact as one value every layer shares: :class:`ArtifactKey` (which artifact: variant,
format, precision, flavour, split; its directory, label and runtime), :class:`Status` (what became
of it), and the checks that an installed artifact is intact and still fits the catalog.

One manifest (:mod:`zoo.manifest`) per artifact directory ``<artifacts>/<variant>/<key.dirname>/``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from filelock import FileLock

from zoo.backends import REFERENCE_RUNTIME, by_flavour, by_format, by_runtime
from zoo.fileio import sha256_cached
from zoo.layouts import shape_in
from zoo.manifest import MANIFEST_NAME, CorruptArtifact, CorruptSplitManifest, Manifest, StaleArtifact, manifest_digest, read_manifest
from zoo.schema import Variant

#: directory suffix of a split artifact (init + track graphs), e.g. ``fgaf3/tflite-fp16-split``
SPLIT_SUFFIX = "-split"


def default_out_dir() -> Path:
    """``$ZOO_ARTIFACTS`` or ``./artifacts``: where ``zoo export`` installs artifacts."""
    return Path(os.environ.get("ZOO_ARTIFACTS") or "artifacts")


class Status(StrEnum):
    """What became of one artifact a command asked for (``zoo export``'s status column)."""

    FOUND = "found"  # installed already, checked against its manifest and the catalog
    BUILT = "built"
    REBUILT = "rebuilt"
    REUSED = "reused"  # the pipeline found an identical verified artifact (same build key)
    FAILED = "failed"
    SKIPPED = "skipped"  # the format does not offer the precision
    MISSING = "missing"  # not installed (before provisioning)

    @property
    def usable(self) -> bool:
        """The artifact is installed and verified."""
        return self in (Status.FOUND, Status.BUILT, Status.REBUILT, Status.REUSED)

    @property
    def final(self) -> bool:
        """A provisioning outcome (not a stage or the state before it)."""
        return self is not Status.MISSING


@dataclass(frozen=True, order=True)
class ArtifactKey:
    """The identity of one artifact: which variant, in which format and precision, for which client
    flavour, full or split. It owns the artifact's directory name, its label in tables and the
    runtime that runs it; ``format == "pytorch"`` is the eager reference (weights only, no files)."""

    variant: str
    format: str
    precision: str = "fp32"
    #: a flavour of zoo.backends.FLAVOURS (``zoo export --for``), None for the plain artifact
    flavour: str | None = None
    #: an init + track split artifact instead of the full graph
    split: bool = False

    @classmethod
    def for_runtime(cls, variant: str, runtime: str, precision: str = "fp32", split: bool = False) -> ArtifactKey:
        """The key of ``runtime``'s artifact (``pytorch``: the reference, never split)."""
        if runtime == REFERENCE_RUNTIME:
            return cls(variant, REFERENCE_RUNTIME, "fp32")
        return cls(variant, by_runtime(runtime).format, precision, split=split)

    @classmethod
    def of(cls, manifest: Manifest) -> ArtifactKey:
        """The key of an installed artifact, read from its manifest."""
        return cls(manifest.variant, manifest.format, manifest.precision,
                   manifest.client.flavour if manifest.client else None, manifest.graphs is not None)

    @property
    def is_reference(self) -> bool:
        return self.format == REFERENCE_RUNTIME

    @property
    def runtime(self) -> str:
        """The runtime that runs it (``pytorch`` for the reference)."""
        return REFERENCE_RUNTIME if self.is_reference else by_format(self.format).runtime

    @property
    def offered_precisions(self) -> tuple[str, ...]:
        """The precisions its format (or flavour) offers."""
        if self.is_reference:
            return ("fp32",)
        return by_flavour(self.flavour).precisions if self.flavour else by_format(self.format).precisions

    @property
    def offered(self) -> bool:
        return self.precision in self.offered_precisions

    @property
    def dirname(self) -> str:
        """``<format>[-<precision>][-<flavour>][-split]``: its directory under ``<artifacts>/<variant>/``."""
        name = self.format if self.precision == "fp32" else f"{self.format}-{self.precision}"
        return name + (f"-{self.flavour}" if self.flavour else "") + (SPLIT_SUFFIX if self.split else "")

    def path(self, root: Path | str) -> Path:
        """``root/<variant>/<dirname>``."""
        return Path(root) / self.variant / self.dirname

    @property
    def label(self) -> str:
        """The runtime as tables show it: ``onnxruntime``, ``onnxruntime-split``."""
        return self.runtime + (SPLIT_SUFFIX if self.split else "")

    @property
    def name(self) -> str:
        """``<variant> <dirname>`` (progress lines, error messages)."""
        return f"{self.variant} {self.dirname}"

    @property
    def source(self) -> ArtifactKey:
        """The verified fp32 ONNX artifact it converts from (the split one for a split artifact)."""
        return ArtifactKey(self.variant, "onnx", "fp32", split=self.split)

    @property
    def plain(self) -> ArtifactKey:
        """The plain artifact a flavour converts from."""
        return ArtifactKey(self.variant, self.format, "fp32") if self.flavour else self


def check_files(artifact_dir: Path, manifest: Manifest) -> list[str]:
    """Problems with the artifact's files (missing, size or sha256 mismatch); empty when intact.

    Sizes are compared first; hashes are cached per (file, size, mtime) within the process."""
    problems = []
    for entry in manifest.files:
        path = Path(artifact_dir) / entry.path
        if not path.is_file():
            problems.append(f"{entry.path} is missing")
        elif path.stat().st_size != entry.bytes:
            problems.append(f"{entry.path} has {path.stat().st_size} bytes, manifest says {entry.bytes}")
        elif sha256_cached(path) != entry.sha256:
            problems.append(f"{entry.path} sha256 differs from the manifest")
    return problems


def check_bindings(manifest: Manifest, variant: Variant) -> list[str]:
    """Problems between the manifest's I/O bindings and the catalog's I/O spec of ``variant``:
    names (in order), shapes (in the binding's layout), dtypes. Empty when they agree."""
    problems = []
    if manifest.variant != variant.name:
        problems.append(f"manifest is for variant {manifest.variant!r}, not {variant.name!r}")
    for kind, specs in (("inputs", variant.io.inputs), ("outputs", variant.io.outputs)):
        bindings = getattr(manifest, kind)
        if [b.name for b in bindings] != [s.name for s in specs]:
            problems.append(f"{kind} {[b.name for b in bindings]} differ from the catalog's {[s.name for s in specs]}")
            continue
        for b, s in zip(bindings, specs, strict=True):
            if b.shape != shape_in(s.shape, b.layout):
                problems.append(f"{kind[:-1]} {b.name!r} has shape {b.shape} ({b.layout}), the catalog says {s.shape} (NCHW)")
            if b.dtype != s.dtype:
                problems.append(f"{kind[:-1]} {b.name!r} has dtype {b.dtype}, the catalog says {s.dtype}")
    return problems


def rebuild_hint(manifest: Manifest | None, artifact_dir: Path) -> str:
    """The command that rebuilds the artifact in ``artifact_dir``."""
    if manifest is None:
        return f"remove {artifact_dir} and export it again"
    out = Path(artifact_dir).parent.parent
    split = " --split" if manifest.graphs is not None else ""
    return (f"rebuild it with 'zoo export {manifest.variant} --to {manifest.format} --precision {manifest.precision}{split} "
            f"--artifacts {out} --force'")


def artifact_lock(root: Path, variant: str, dirname: str) -> FileLock:
    """The lock of the artifact directory ``root/variant/dirname``, the one every writer of it takes
    (``zoo export``'s pipeline, ``zoo pull``, ``zoo cache rm``). Kept under ``root/.build/locks/`` so
    that a variant's folder holds artifacts only; never deleted (another process may wait on it)."""
    where = Path(root) / ".build" / "locks" / variant
    where.mkdir(parents=True, exist_ok=True)
    return FileLock(str(where / f"{dirname}.lock"))


def verified_manifest(artifact_dir: Path, variant: Variant) -> Manifest:
    """The manifest of ``artifact_dir`` after checking every file against it and its bindings
    against the catalog; a :class:`CorruptArtifact` naming the file and the rebuild command if not."""
    manifest = read_manifest(artifact_dir)
    found = first_problem(artifact_dir, manifest, variant)
    if found is not None:
        error, problem = found
        raise error(f"{artifact_dir}: {problem}; {rebuild_hint(manifest, artifact_dir)}")
    return manifest


def first_problem(artifact_dir: Path, manifest: Manifest, variant: Variant) -> tuple[type[CorruptArtifact], str] | None:
    """What is wrong with the installed artifact ``artifact_dir`` of ``variant`` (its parsed
    ``manifest``), first found first: other weights, a file that is missing or changed, a split
    section that does not fit the architecture, bindings that differ from the catalog, a manifest
    edited after export (its digest; last, so that the checks that can name a field do). ``None``
    when it can be used; else the error class and the problem."""
    if manifest.weights_sha256 != variant.weights.sha256:
        return StaleArtifact, (f"built from other weights (sha256 {manifest.weights_sha256[:12]}) than the catalog's "
                               f"{variant.name} ({variant.weights.sha256[:12]})")
    problems = check_files(artifact_dir, manifest)
    if problems:
        return CorruptArtifact, f"{problems[0]}: the artifact is corrupt"
    problems = check_split(manifest, variant)
    if problems:
        return CorruptSplitManifest, f"{MANIFEST_NAME}: {problems[0]}"
    problems = check_bindings(manifest, variant)
    if problems:
        return CorruptArtifact, f"{MANIFEST_NAME}: {problems[0]}: it does not match zoo.yaml"
    if manifest.digest is None:
        return CorruptArtifact, f"{MANIFEST_NAME} has no digest (written by hand or by an older zoo)"
    if manifest.digest != manifest_digest(manifest):
        return CorruptArtifact, f"{MANIFEST_NAME} was changed after export (its digest does not match its content)"
    return None


def check_split(manifest: Manifest, variant: Variant) -> list[str]:
    """Problems with a split artifact's ``graphs`` section: its cache tensors (names, shapes) must be
    the ones the variant's architecture caches (:func:`zoo.models.split.cache_tensors`) and be
    exactly the init graph's outputs and the track graph's inputs besides the search crop."""
    g = manifest.graphs
    if g is None:
        return []
    from zoo.models.split import cache_tensors  # torch: only for split artifacts

    expected = {c.name: list(c.shape) for c in cache_tensors(variant)}
    names = [c.name for c in g.cache]
    problems = [f"cache tensor {n!r} is not one of {variant.name}'s cache tensors {list(expected)}" for n in names if n not in expected]
    problems += [f"cache tensor {n!r} is missing from the graphs section" for n in expected if n not in names]
    problems += [f"cache tensor {c.name!r} has shape {c.shape}, {variant.name} caches {expected[c.name]}"
                 for c in g.cache if c.name in expected and c.shape != expected[c.name]]
    init_out = [b.name for b in g.init.outputs]
    track_in = [b.name for b in g.track.inputs if b.name not in {s.name for s in variant.io.inputs}]
    if init_out != names:
        problems.append(f"init graph outputs {init_out} differ from the cache tensors {names}")
    if track_in != names:
        problems.append(f"track graph cache inputs {track_in} differ from the cache tensors {names}")
    missing = [f for f in g.init.files + g.track.files if f not in {e.path for e in manifest.files}]
    problems += [f"graph file {f!r} is not in the manifest's file list" for f in missing]
    return problems

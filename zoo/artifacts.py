"""The artifact description every layer shares: where an artifact lives, its ``manifest.json``
(what it is, how it was built, how well it matched PyTorch), and the checks that it is intact and
still fits the catalog.

One manifest per artifact directory ``<artifacts>/<variant>/<ArtifactKey.dirname>/``. Runners read
the I/O bindings from it (catalog name -> the runtime's own tensor name, shape, layout), the
pipeline reads the build key from it to decide whether an existing artifact can be reused, and
the file list (sha256 + bytes) lets anyone check the artifact is intact.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from zoo.backends import REFERENCE_RUNTIME, by_flavour, by_format, by_runtime, flavour_dirname
from zoo.errors import ZooError
from zoo.fileio import atomic_write_bytes, sha256_cached
from zoo.layouts import shape_in
from zoo.schema import Variant

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1
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
        return flavour_dirname(self.format, self.precision, self.flavour) + (SPLIT_SUFFIX if self.split else "")

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


class CorruptArtifact(ZooError):
    """An artifact's files no longer match its manifest, or its manifest no longer fits the catalog."""


class CorruptSplitManifest(CorruptArtifact):
    """A split artifact's ``graphs`` section (cache tensors, graph I/O) does not fit the variant: bad input."""

    exit_code = 2


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FileEntry(_Model):
    path: str = Field(description="relative to the artifact directory")
    sha256: str
    bytes: int


class TensorBinding(_Model):
    """One input or output: the catalog's name and how the runtime knows it."""

    name: str = Field(description="catalog name (zoo.yaml io)")
    runtime_name: str = Field(description="the tensor / blob / signature name inside the artifact")
    shape: list[int] = Field(description="shape in the runtime's layout")
    dtype: str
    layout: Literal["NCHW", "NHWC", "NLC"]


class GraphBinding(TensorBinding):
    """An input or output of one graph of a split artifact; cache tensors are 3-D (``NLC``:
    batch, tokens, channels), so the layout is free text and ``perm`` is the truth:
    runtime tensor = logical tensor (NCHW / NLC) ``.transpose(perm)``."""

    layout: str
    perm: list[int]


class GraphSpec(_Model):
    """One graph (``init`` or ``track``) of a split artifact."""

    files: list[str] = Field(description="its files (relative to the artifact directory)")
    inputs: list[GraphBinding]
    outputs: list[GraphBinding]


class CacheEntry(_Model):
    """One template-cache tensor: an output of ``init`` and an input of ``track``."""

    name: str
    shape: list[int] = Field(description="logical shape (NLC: batch, tokens, channels)")
    dtype: str
    layout: str
    bytes: int
    description: str = ""


class SplitGraphs(_Model):
    """The ``graphs`` section of a split artifact's manifest (:mod:`zoo.models.split`)."""

    attention: str = Field(description="the fusion blocks' attention design (zoo.models.fusion.BLOCK_DESIGNS)")
    cache_kind: str = Field(description="template_tokens | template_kv")
    cache: list[CacheEntry]
    init: GraphSpec
    track: GraphSpec

    @property
    def cache_bytes(self) -> int:
        return sum(c.bytes for c in self.cache)


class Converter(_Model):
    name: str
    version: str
    flags: list[str] = Field(description="the exact command line / call arguments")


class OutputParity(_Model):
    """Artifact vs PyTorch eager (fp32, unfolded) for one output on the verification input.

    ``max_rel_err`` is max |a-b|/|b| over elements with |b| > atol; ``worst_ratio`` is
    max |a-b| / (atol + rtol*|b|): the output passes when it is <= 1.
    """

    name: str
    max_abs_err: float
    mean_abs_err: float
    max_rel_err: float
    worst_ratio: float
    passed: bool


class TrackerParity(_Model):
    """Tracker-level agreement with float32 PyTorch on held-out pairs (reduced precisions; see
    :mod:`zoo.tracker_parity`)."""

    pairs: int
    clear_pairs: int = Field(description="pairs whose float32 top-two gap is >= min_gap")
    min_gap: float
    peak_agreement: float | None = Field(description="share of clear pairs with the same peak cell (None: no clear pair)")
    peak_agreement_all: float = Field(description="the same share over every pair")
    mean_iou: float = Field(description="mean IoU of the decoded boxes over every pair")
    median_gap: float
    min_peak_agreement: float
    min_peak_agreement_all: float = 0.0
    min_mean_iou: float
    passed: bool


class Parity(_Model):
    reference: str
    inputs: str
    atol: float
    rtol: float
    passed: bool
    outputs: list[OutputParity]
    #: reduced precisions: the tracker-level gate (then ``passed`` is its verdict)
    tracker: TrackerParity | None = None


class ClientTarget(_Model):
    """What a flavoured artifact (``zoo export --for NAME``) was built for: the client, the version
    of it the artifact targets, the input transform measured in that version and the check of the
    artifact in the client itself (e.g. ``cv2.TrackerVit`` against ``zoo.Tracker`` on a sequence)."""

    flavour: str
    client: str
    version: str = Field(description="the client module's __version__ the artifact targets")
    input_transform: dict = Field(description="what the client feeds the network, measured with probe models")
    check: dict = Field(default_factory=dict, description="the artifact run in the client, against zoo's tracker")


class Manifest(_Model):
    manifest_version: Literal[1] = MANIFEST_VERSION
    variant: str
    format: str
    precision: str
    files: list[FileEntry]
    inputs: list[TensorBinding]
    outputs: list[TensorBinding]
    weights_sha256: str
    zoo_version: str
    converter: Converter
    versions: dict[str, str] = Field(description="converter and runtime package versions")
    build_key: str = Field(description="sha256 of everything that determines the artifact")
    build_inputs: dict = Field(description="what build_key hashes")
    export_seconds: float
    verify_seconds: float
    parity: Parity
    created: str
    notes: list[str] = []
    #: set for a flavoured artifact (``zoo export --for``); None for a plain one
    client: ClientTarget | None = None
    #: reduced precisions: recipe, target hardware, calibration source (kind, path, sha256) and pair counts
    quantization: dict | None = None
    #: split artifacts only: the init and track graphs and the template cache between them
    graphs: SplitGraphs | None = None

    def binding(self, kind: Literal["inputs", "outputs"], name: str) -> TensorBinding:
        for b in getattr(self, kind):
            if b.name == name:
                return b
        raise ZooError(f"{self.variant}/{self.format}: manifest has no {kind[:-1]} {name!r}")

    @property
    def size_bytes(self) -> int:
        return sum(f.bytes for f in self.files)


def file_entry(root: Path, rel: str) -> FileEntry:
    """The manifest entry (relative path, sha256, size) of ``root/rel``."""
    path = root / rel
    return FileEntry(path=rel, sha256=sha256_cached(path), bytes=path.stat().st_size)


def read_manifest(artifact_dir: Path) -> Manifest:
    """Parse ``artifact_dir/manifest.json``; a missing or invalid manifest is a ZooError."""
    path = Path(artifact_dir) / MANIFEST_NAME
    try:
        return Manifest.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise ZooError(f"no {MANIFEST_NAME} in {artifact_dir}: not an exported artifact") from None
    except (OSError, ValueError, ValidationError) as exc:
        first = str(exc).splitlines()[0]
        raise CorruptArtifact(f"invalid {path}: {first}") from None


def write_manifest(artifact_dir: Path, manifest: Manifest) -> None:
    """Write ``manifest.json`` atomically (readable by everyone, like the model files)."""
    data = manifest.model_dump(mode="json")
    if data.get("client") is None:  # plain artifacts keep the manifest they always had
        data.pop("client", None)
    text = json.dumps(data, indent=2) + "\n"
    path = Path(artifact_dir) / MANIFEST_NAME
    atomic_write_bytes(path, text.encode("utf-8"))
    path.chmod(0o644)


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


def verified_manifest(artifact_dir: Path, variant: Variant) -> Manifest:
    """The manifest of ``artifact_dir`` after checking every file against it and its bindings
    against the catalog; a :class:`CorruptArtifact` naming the file and the rebuild command if not."""
    manifest = read_manifest(artifact_dir)
    problems = check_files(artifact_dir, manifest)
    if problems:
        raise CorruptArtifact(f"{artifact_dir}: {problems[0]}: the artifact is corrupt; {rebuild_hint(manifest, artifact_dir)}")
    problems = check_split(manifest, variant)
    if problems:
        raise CorruptSplitManifest(f"{artifact_dir}/{MANIFEST_NAME}: {problems[0]}; {rebuild_hint(manifest, artifact_dir)}")
    problems = check_bindings(manifest, variant)
    if problems:
        raise CorruptArtifact(f"{artifact_dir}/{MANIFEST_NAME}: {problems[0]}: it does not match zoo.yaml; "
                              f"{rebuild_hint(manifest, artifact_dir)}")
    return manifest


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

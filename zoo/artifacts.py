"""The artifact description every layer shares: where an artifact lives, its ``manifest.json``
(what it is, how it was built, how well it matched PyTorch), and the checks that it is intact and
still fits the catalog.

One manifest per artifact directory ``<out>/<variant>/<format>[-<precision>]/``. Runners read
the I/O bindings from it (catalog name -> the runtime's own tensor name, shape, layout), the
pipeline reads the build key from it to decide whether an existing artifact can be reused, and
the file list (sha256 + bytes) lets anyone check the artifact is intact.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from zoo.backends import artifact_dirname
from zoo.errors import ZooError
from zoo.fileio import atomic_write_bytes, sha256_cached
from zoo.schema import TensorSpec, Variant

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1


def default_out_dir() -> Path:
    """``$ZOO_ARTIFACTS`` or ``./artifacts``: where ``zoo export`` installs artifacts."""
    return Path(os.environ.get("ZOO_ARTIFACTS") or "artifacts")


def artifact_dir(out: Path | str, variant: str, fmt: str, precision: str) -> Path:
    """``out/<variant>/<format>[-<precision>]``: the directory of one artifact."""
    return Path(out) / variant / artifact_dirname(fmt, precision)


class CorruptArtifact(ZooError):
    """An artifact's files no longer match its manifest, or its manifest no longer fits the catalog."""


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
    layout: Literal["NCHW", "NHWC"]


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


def _expected_shape(spec: TensorSpec, layout: str) -> list[int]:
    shape = list(spec.shape)
    if layout == "NHWC" and len(shape) == 4:
        return [shape[0], shape[2], shape[3], shape[1]]
    return shape


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
            if b.shape != _expected_shape(s, b.layout):
                problems.append(f"{kind[:-1]} {b.name!r} has shape {b.shape} ({b.layout}), the catalog says {s.shape} (NCHW)")
            if b.dtype != s.dtype:
                problems.append(f"{kind[:-1]} {b.name!r} has dtype {b.dtype}, the catalog says {s.dtype}")
    return problems


def rebuild_hint(manifest: Manifest | None, artifact_dir: Path) -> str:
    """The command that rebuilds the artifact in ``artifact_dir``."""
    if manifest is None:
        return f"remove {artifact_dir} and export it again"
    out = Path(artifact_dir).parent.parent
    return (f"rebuild it with 'zoo export {manifest.variant} --to {manifest.format} --precision {manifest.precision} "
            f"--out {out} --force'")


def verified_manifest(artifact_dir: Path, variant: Variant) -> Manifest:
    """The manifest of ``artifact_dir`` after checking every file against it and its bindings
    against the catalog; a :class:`CorruptArtifact` naming the file and the rebuild command if not."""
    manifest = read_manifest(artifact_dir)
    problems = check_files(artifact_dir, manifest)
    if problems:
        raise CorruptArtifact(f"{artifact_dir}: {problems[0]}: the artifact is corrupt; {rebuild_hint(manifest, artifact_dir)}")
    problems = check_bindings(manifest, variant)
    if problems:
        raise CorruptArtifact(f"{artifact_dir}/{MANIFEST_NAME}: {problems[0]}: it does not match zoo.yaml; "
                              f"{rebuild_hint(manifest, artifact_dir)}")
    return manifest

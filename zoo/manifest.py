"""The manifest of an artifact directory (``manifest.json``): what the artifact is, how it was
built, how well it matched PyTorch, and its files with their sha256.

Runners read the I/O bindings from it (catalog name -> the runtime's own tensor name, shape,
layout), the pipeline reads the build key from it to decide whether an existing artifact can be
reused, and the file list (sha256 + bytes) lets anyone check the artifact is intact
(:mod:`zoo.artifacts` has the checks). ``digest`` is the sha256 of the manifest's own content: a
manifest edited after export (outputs swapped, graphs pointed at other files) is refused even when
every field still looks plausible.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from zoo.errors import ZooError
from zoo.fileio import atomic_write_bytes, sha256_cached

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1


class CorruptArtifact(ZooError):
    """An artifact's files no longer match its manifest, or its manifest no longer fits the catalog."""


class StaleArtifact(CorruptArtifact):
    """An artifact built from other weights than the catalog's (``zoo register`` since, or another catalog)."""


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


class DeviceParity(_Model):
    """The same verification on a device's kernels (``zoo export --verify-on DEVICE``), judged by the
    tolerance of the device's CPU family."""

    device: str
    family: str
    machine: str
    #: what each runtime detects on that CPU (MNN's feature line, ncnn's cpu_support_* flags)
    features: dict = Field(default_factory=dict)
    runtime_version: str | None = None
    atol: float
    rtol: float
    passed: bool
    outputs: list[OutputParity]
    tracker: TrackerParity | None = None
    checked: str = Field(description="when (UTC, ISO 8601)")


class Parity(_Model):
    reference: str
    inputs: str
    atol: float
    rtol: float
    #: this machine's verdict and every device's (``devices``)
    passed: bool
    outputs: list[OutputParity]
    #: reduced precisions: the tracker-level gate (then ``passed`` is its verdict)
    tracker: TrackerParity | None = None
    devices: list[DeviceParity] = Field(default_factory=list)


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
    #: sha256 of every other field (:func:`manifest_digest`), written by :func:`write_manifest`
    digest: str | None = None

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
    """Parse ``artifact_dir/manifest.json``; a missing or invalid manifest is a ZooError (naming
    the first offending field)."""
    path = Path(artifact_dir) / MANIFEST_NAME
    try:
        return Manifest.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise ZooError(f"no {MANIFEST_NAME} in {artifact_dir}: not an exported artifact") from None
    except ValidationError as exc:
        raise CorruptArtifact(f"invalid {path}: {validation_problem(exc)}") from None
    except (OSError, ValueError) as exc:
        first = str(exc).splitlines()[0]
        raise CorruptArtifact(f"invalid {path}: {first}") from None


def validation_problem(exc: ValidationError) -> str:
    """A pydantic error as one line naming the field: ``field graphs.track.files.0: Input should be
    a valid string (got 3)`` (and how many more problems there are)."""
    errors = exc.errors()
    first = errors[0]
    where = ".".join(str(part) for part in first.get("loc", ())) or "(top level)"
    got = first.get("input")
    shown = "" if isinstance(got, (dict, list)) or got is None else f" (got {json.dumps(got)[:60]})"
    more = f"; and {len(errors) - 1} more" if len(errors) > 1 else ""
    return f"field {where}: {first.get('msg', 'invalid')}{shown}{more}"


def _content(manifest: Manifest) -> dict:
    data = manifest.model_dump(mode="json")
    if data.get("client") is None:  # plain artifacts keep the manifest they always had
        data.pop("client", None)
    data.pop("digest", None)
    return data


def manifest_digest(manifest: Manifest) -> str:
    """sha256 of the manifest's content without ``digest`` (keys sorted, compact JSON)."""
    return hashlib.sha256(json.dumps(_content(manifest), sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def write_manifest(artifact_dir: Path, manifest: Manifest) -> None:
    """Write ``manifest.json`` atomically with its :func:`manifest_digest` (readable by everyone,
    like the model files)."""
    data = _content(manifest)
    data["digest"] = manifest_digest(manifest)
    text = json.dumps(data, indent=2) + "\n"
    path = Path(artifact_dir) / MANIFEST_NAME
    atomic_write_bytes(path, text.encode("utf-8"))
    path.chmod(0o644)

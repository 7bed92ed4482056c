"""``manifest.json`` of an installed artifact: what it is, how it was built, how well it matched.

One manifest per artifact directory ``<out>/<variant>/<format>[-<precision>]/``. Runners read
the I/O bindings from it (catalog name -> the runtime's own tensor name, shape, layout), the
pipeline reads the build key from it to decide whether an existing artifact can be reused, and
the file list (sha256 + bytes) lets anyone check the artifact is intact.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from zoo.errors import ZooError
from zoo.fileio import atomic_write_bytes, sha256_file

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1


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


class Parity(_Model):
    reference: str
    inputs: str
    atol: float
    rtol: float
    passed: bool
    outputs: list[OutputParity]


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

    def binding(self, kind: Literal["inputs", "outputs"], name: str) -> TensorBinding:
        for b in getattr(self, kind):
            if b.name == name:
                return b
        raise ZooError(f"{self.variant}/{self.format}: manifest has no {kind[:-1]} {name!r}")

    @property
    def size_bytes(self) -> int:
        return sum(f.bytes for f in self.files)


def file_entry(root: Path, rel: str) -> FileEntry:
    path = root / rel
    return FileEntry(path=rel, sha256=sha256_file(path), bytes=path.stat().st_size)


def read_manifest(artifact_dir: Path) -> Manifest:
    """Parse ``artifact_dir/manifest.json``; a missing or invalid manifest is a ZooError."""
    path = Path(artifact_dir) / MANIFEST_NAME
    try:
        return Manifest.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise ZooError(f"no {MANIFEST_NAME} in {artifact_dir}: not an exported artifact") from None
    except (OSError, ValueError, ValidationError) as exc:
        first = str(exc).splitlines()[0]
        raise ZooError(f"invalid {path}: {first}") from None


def write_manifest(artifact_dir: Path, manifest: Manifest) -> None:
    """Write ``manifest.json`` atomically (readable by everyone, like the model files)."""
    text = json.dumps(manifest.model_dump(mode="json"), indent=2) + "\n"
    path = Path(artifact_dir) / MANIFEST_NAME
    atomic_write_bytes(path, text.encode("utf-8"))
    path.chmod(0o644)


def check_files(artifact_dir: Path, manifest: Manifest) -> list[str]:
    """Problems with the artifact's files (missing, size or sha256 mismatch); empty when intact."""
    problems = []
    for entry in manifest.files:
        path = Path(artifact_dir) / entry.path
        if not path.is_file():
            problems.append(f"{entry.path} is missing")
        elif path.stat().st_size != entry.bytes:
            problems.append(f"{entry.path} has {path.stat().st_size} bytes, manifest says {entry.bytes}")
        elif sha256_file(path) != entry.sha256:
            problems.append(f"{entry.path} sha256 differs from the manifest")
    return problems

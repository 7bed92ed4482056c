"""``index.json``: what a release tree holds, per variant, format and precision.

::

    {"index_version": 1, "zoo_version": "0.1.0", "base_url": null,
     "variants": {"fgaf3": {
        "weights": {"file": "fgaf3.safetensors", "url": "weights/fgaf3/fgaf3.safetensors",
                    "sha256": "...", "bytes": 1234, "provenance": "reference"},
        "artifacts": [{"format": "onnx", "precision": "fp32", "zoo_version": "0.1.0",
                       "versions": {"onnx": "1.19.1", ...},
                       "files": [{"path": "model.onnx", "url": "artifacts/fgaf3/onnx/model.onnx",
                                  "sha256": "...", "bytes": 13726386},
                                 {"path": "manifest.json", ...}],
                       "manifest": {... the artifact's manifest.json ...}}]}}}

Every ``url`` is relative to ``base_url`` (when set) or to the directory holding index.json;
every ``url`` and ``path`` must be a plain relative path (no ``..``, no absolute path): an index
that names anything else is refused as a whole.
"""
from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from zoo.artifacts import ArtifactKey
from zoo.errors import ZooError
from zoo.hub.resolve import safe_relpath
from zoo.manifest import MANIFEST_NAME, Manifest
from zoo.schema import Format, Precision, Sha256

INDEX_VERSION = 1


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FileRef(_Strict):
    """One file of the release: where it goes (``path``), where it is (``url``), what it is."""

    path: str = Field(description="relative to the artifact directory (weights: the file name)")
    url: str = Field(description="relative to the release's base URL")
    sha256: Sha256
    bytes: int = Field(ge=0)

    @field_validator("path", "url")
    @classmethod
    def _safe(cls, v: str) -> str:
        return safe_relpath(v)


class WeightsRef(FileRef):
    """The variant's safetensors weights (never a pickle)."""

    provenance: Literal["reference", "trained"]

    @field_validator("path")
    @classmethod
    def _safetensors(cls, v: str) -> str:
        if "/" in v or not v.endswith(".safetensors"):
            raise ValueError(f"weights must be a plain .safetensors file name, got {v!r}")
        return v


class ArtifactRef(_Strict):
    """One exported artifact: its model files, then its manifest.json."""

    format: Format
    precision: Precision
    zoo_version: str
    versions: dict[str, str]
    files: list[FileRef] = Field(min_length=2)
    manifest: Manifest

    @property
    def split(self) -> bool:
        """An init + track split artifact (its manifest has a ``graphs`` section)."""
        return self.manifest.graphs is not None

    @property
    def dirname(self) -> str:
        return ArtifactKey(self.manifest.variant, self.format, self.precision, split=self.split).dirname

    @property
    def manifest_file(self) -> FileRef:
        return next(f for f in self.files if f.path == MANIFEST_NAME)

    @property
    def size_bytes(self) -> int:
        return sum(f.bytes for f in self.files)

    @model_validator(mode="after")
    def _consistent(self) -> "ArtifactRef":
        for f in self.manifest.files:
            safe_relpath(f.path)
        paths = [f.path for f in self.files]
        if len(set(paths)) != len(paths) or MANIFEST_NAME not in paths:
            raise ValueError(f"files of {self.dirname} must be unique and include {MANIFEST_NAME}")
        m = self.manifest
        if (m.format, m.precision) != (self.format, self.precision):
            raise ValueError(f"manifest of {self.dirname} is for {m.format} {m.precision}")
        listed = {f.path: (f.sha256, f.bytes) for f in self.files if f.path != MANIFEST_NAME}
        if listed != {f.path: (f.sha256, f.bytes) for f in m.files}:
            raise ValueError(f"files of {self.dirname} differ from its manifest's")
        return self


class VariantRef(_Strict):
    weights: WeightsRef | None = None
    artifacts: list[ArtifactRef] = []

    def artifact(self, fmt: str, precision: str, split: bool = False) -> ArtifactRef | None:
        return next((a for a in self.artifacts if (a.format, a.precision, a.split) == (fmt, precision, split)), None)


class Index(_Strict):
    index_version: Literal[1] = INDEX_VERSION
    zoo_version: str
    base_url: str | None = None
    variants: dict[str, VariantRef]

    def dumps(self) -> bytes:
        """Canonical bytes: sorted keys, two-space indent, trailing newline (reproducible)."""
        return (json.dumps(self.model_dump(mode="json"), sort_keys=True, indent=2) + "\n").encode()


def parse_index(data: bytes, source: str) -> Index:
    """Validate index bytes from ``source``; anything malformed or unsafe is one ZooError line."""
    try:
        return Index.model_validate(json.loads(data))
    except ValueError as exc:
        if isinstance(exc, ValidationError):
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "(top level)"
            raise ZooError(f"refusing the index from {source}: {where}: {err['msg'].removeprefix('Value error, ')}") from None
        raise ZooError(f"index from {source} is not JSON: {exc}") from None

"""What an export run builds and in which order: :func:`build_order` and the summary :class:`Row`."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from exporters import get_exporter, get_flavour_exporter
from exporters.base import Exporter
from zoo.artifacts import ArtifactKey, Status
from zoo.errors import UsageError


@dataclass
class Row:
    """One line of the summary (and of ``--json``)."""

    variant: str
    format: str
    precision: str
    status: Status  # built | rebuilt | reused | failed | skipped
    size_mb: float | None = None
    max_abs_err: float | None = None
    seconds: float | None = None
    path: str | None = None
    note: str | None = None
    log: str | None = None
    flavour: str | None = None
    split: bool = False
    #: conversion steps taken from the zoo cache (status stays built: the artifact was assembled and verified)
    cached_steps: list[str] = field(default_factory=list)

    @property
    def key(self) -> ArtifactKey:
        return ArtifactKey(self.variant, self.format, self.precision, self.flavour, self.split)

    @classmethod
    def of(cls, key: ArtifactKey, status: Status, **fields) -> Row:
        return cls(key.variant, key.format, key.precision, status, flavour=key.flavour, split=key.split, **fields)

    def as_dict(self) -> dict:
        return {**asdict(self), "status": str(self.status)}


def build_order(keys: list[ArtifactKey]) -> tuple[list[ArtifactKey], list[Row]]:
    """``keys`` in build order and the skip rows of those whose format does not offer their precision.

    Per variant, the artifact another one converts from comes first: the fp32 ONNX artifact (the split
    one for split keys) before every format that converts from it (ONNX int8 too), a flavour's plain
    artifact before the flavour. When nothing at all remains the request is a usage error.
    """
    ordered: list[ArtifactKey] = []
    skipped: list[Row] = []
    for variant in dict.fromkeys(k.variant for k in keys):
        wanted = []
        for key in (k for k in keys if k.variant == variant):
            if not key.offered:
                skipped.append(Row.of(key, Status.SKIPPED, note=f"{key.format}{' --for ' + key.flavour if key.flavour else ''} "
                                      f"offers {', '.join(key.offered_precisions)} only"))
                continue
            before = [key.plain] if key.flavour else [key.source] if exporter_of(key).needs_onnx_for(key.precision) else []
            wanted += [k for k in before + [key] if k not in wanted]
        sources = [k for k in wanted if k.format == "onnx" and k.precision == "fp32" and k.flavour is None]
        ordered += sources + [k for k in wanted if k not in sources]
    if not ordered:
        raise UsageError("nothing to export: " + "; ".join(sorted({r.note for r in skipped if r.note})))
    return ordered, skipped


def exporter_of(key: ArtifactKey) -> Exporter:
    """The exporter that builds ``key`` (its flavour's, else its format's)."""
    return get_flavour_exporter(key.flavour) if key.flavour else get_exporter(key.format)

"""The session's split export (fixture ``split_exported`` in ``tests/conftest.py``): the default-tier
variants (fgaf3: asymmetric attention, base-c128: joint) as init + track split artifacts in every
format and precision, built once through the real ``zoo export --split`` CLI. Read-only by
convention, like the shared full export: copy what you change."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from tests.helpers.artifacts import FOREIGN_ENV
from tests.helpers.catalog import DEFAULT_VARIANTS
from tests.helpers.export import zoo
from zoo.artifacts import ArtifactKey
from zoo.backends import FORMATS

#: the precisions the split tests build (fp32 + fp16)
SPLIT_PRECISIONS = ("fp32", "fp16")


@dataclass
class SplitExport:
    out: Path
    rows: list[dict]
    seconds: float

    def path(self, variant: str, fmt: str, precision: str = "fp32") -> Path:
        return ArtifactKey(variant, fmt, precision, split=True).path(self.out)

    def row(self, variant: str, fmt: str, precision: str) -> dict:
        (row,) = [r for r in self.rows if (r["variant"], r["format"], r["precision"]) == (variant, fmt, precision)]
        return row


def export_split_set(out: Path) -> SplitExport:
    """``zoo export base-c128 fgaf3 --to <every format> --precision <every precision> --split --jobs 2 --json -``."""
    import json

    start = time.perf_counter()
    proc = zoo(
        "export",
        *DEFAULT_VARIANTS,
        "--to",
        *FORMATS,
        "--precision",
        *SPLIT_PRECISIONS,
        "--split",
        "--out",
        str(out),
        "--jobs",
        "2",
        "--json",
        "-",
        timeout=1800,
        unset=FOREIGN_ENV,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return SplitExport(out, json.loads(proc.stdout)["artifacts"], time.perf_counter() - start)

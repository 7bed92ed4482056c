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
#: (format, precision) split artifacts the default tier leaves to the slow one (built on demand by
#: :meth:`SplitExport.row`): ExecuTorch's fp16 lowering of both graphs, ~20 s a variant
SLOW_SPLIT = {("executorch", "fp16")}


@dataclass
class SplitExport:
    out: Path
    rows: list[dict]
    seconds: float

    def path(self, variant: str, fmt: str, precision: str = "fp32") -> Path:
        return ArtifactKey(variant, fmt, precision, split=True).path(self.out)

    def row(self, variant: str, fmt: str, precision: str) -> dict:
        """The export row of one split artifact (exported now if the default tier left it out)."""
        found = [r for r in self.rows if (r["variant"], r["format"], r["precision"]) == (variant, fmt, precision)]
        if not found:
            self.rows += _export(self.out, [variant], [fmt], [precision])
            found = [r for r in self.rows if (r["variant"], r["format"], r["precision"]) == (variant, fmt, precision)]
        (row,) = found
        return row


def _export(out: Path, variants: list[str], formats: list[str], precisions: list[str]) -> list[dict]:
    import json

    proc = zoo("export", *variants, "--to", *formats, "--precision", *precisions, "--split", "--out", str(out),
               "--jobs", "2", "--json", "-", timeout=1800, unset=FOREIGN_ENV)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return [r for r in json.loads(proc.stdout)["artifacts"] if r["split"]]


def export_split_set(out: Path) -> SplitExport:
    """``zoo export base-c128 fgaf3 --to <every format> --precision <every precision> --split --jobs 2 --json -``,
    but :data:`SLOW_SPLIT` (one more call for the formats that leave a precision out)."""
    start = time.perf_counter()
    slow = {f for f, _ in SLOW_SPLIT}
    rows = _export(out, list(DEFAULT_VARIANTS), [f for f in FORMATS if f not in slow], list(SPLIT_PRECISIONS))
    for fmt in sorted(slow):
        rows += _export(out, list(DEFAULT_VARIANTS), [fmt], [p for p in SPLIT_PRECISIONS if (fmt, p) not in SLOW_SPLIT])
    return SplitExport(out, rows, time.perf_counter() - start)

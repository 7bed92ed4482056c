"""The session's shared export (fixture ``exported`` in ``tests/conftest.py``).

The default-tier variants (:data:`tests.helpers.catalog.DEFAULT_VARIANTS`) are exported to every
format and precision once per session, through the real ``zoo export`` CLI, into one directory
that the pipeline, comparison, bench, profile, hub and tflite tests (tests/exporters/,
tests/compare/, tests/core/test_hub.py) all read. The directory is shared, so it is read-only by convention: a test that corrupts, rebuilds
or removes an artifact first copies what it changes into its own ``tmp_path``
(:meth:`SharedExport.copy`). The fixture checks at the end of the session that no installed file
changed (:meth:`SharedExport.snapshot`).
"""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.helpers.catalog import DEFAULT_VARIANTS
from tests.helpers.export import json_rows, zoo
from zoo.artifacts import ArtifactKey
from zoo.backends import FORMATS, PRECISIONS, REDUCED_PRECISIONS

#: what the shared export builds: every precision but the reduced ones (int8, int8-dynamic, bf16),
#: which tests/exporters/test_quantization.py builds once in a fixture of its own
SHARED_PRECISIONS = tuple(p for p in PRECISIONS if p not in REDUCED_PRECISIONS)

#: settings that would send the export to a hub or another catalog (the tests set their own)
FOREIGN_ENV = ("ZOO_HUB", "ZOO_OFFLINE", "ZOO_ALLOW_HTTP", "ZOO_HUB_TIMEOUT", "ZOO_HUB_RETRIES", "ZOO_HUB_BACKOFF",
               "ZOO_CATALOG", "ZOO_ARTIFACTS")


@dataclass
class SharedExport:
    """Where the shared artifacts are and what the one ``zoo export`` run reported."""

    out: Path
    #: the ``--json`` rows of the build, by (variant, format, precision)
    rows: dict[tuple[str, str, str], dict]
    seconds: float
    files: dict[str, tuple[int, int]] = field(default_factory=dict)

    def path(self, variant: str, fmt: str, precision: str = "fp32") -> Path:
        return ArtifactKey(variant, fmt, precision).path(self.out)

    def copy(self, dest: Path, variant: str, *dirnames: str) -> Path:
        """Copy ``variant``'s artifacts (all of them, or the directories named) to
        ``dest/<variant>/``, for a test that changes them; returns ``dest``."""
        src = self.out / variant
        for name in dirnames or [p.name for p in src.iterdir() if p.is_dir()]:
            shutil.copytree(src / name, dest / variant / name)
        return dest

    def snapshot(self) -> dict[str, tuple[int, int]]:
        """(size, mtime) of every installed file (build and log directories aside)."""
        return {str(p.relative_to(self.out)): (p.stat().st_size, p.stat().st_mtime_ns)
                for v in DEFAULT_VARIANTS for p in sorted((self.out / v).rglob("*")) if p.is_file()}


def export_default_set(out: Path) -> SharedExport:
    """``zoo export base-c128 fgaf3 --to <every format> --precision <every precision> --jobs 2 --json -``
    into ``out``. The report goes to stdout, which must then hold nothing else: every converter and
    runtime the export runs (in-process verification included) keeps its output off stdout."""
    report = out.parent / f"{out.name}-first-run.json"
    start = time.perf_counter()
    proc = zoo("export", *DEFAULT_VARIANTS, "--to", *FORMATS, "--precision", *SHARED_PRECISIONS, "--out", str(out),
               "--jobs", "2", "--json", "-", timeout=1800, unset=FOREIGN_ENV)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report.write_text(proc.stdout)  # json_rows() parses it: anything but JSON on stdout fails here
    shared = SharedExport(out, json_rows(report), time.perf_counter() - start)
    shared.files = shared.snapshot()
    return shared

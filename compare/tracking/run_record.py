"""What made a finished sequence result, so that a resumed ``zoo eval run`` trusts only its own.

Beside ``<seq>.txt``, ``<seq>_time.txt`` and ``<seq>_score.txt`` (pytracking's layout) a run writes
``<seq>_run.json`` last: the tracker, the sha256 of the artifact's files (the manifest's), the
weights, the tracking preset and the frame count. A sequence counts as finished only when the three
result files parse (one line per frame: four finite numbers per box, one per time and score) and
the record equals the one the current tracker would write; anything else is run again.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path

from compare.tracking.tracker import TrackerSpec
from zoo.datasets.sequence import Sequence
from zoo.fileio import atomic_write_bytes
from zoo.manifest import read_manifest

RECORD_SUFFIX = "_run.json"
_SPLIT = re.compile(r"[\s,]+")


def spec_record(spec: TrackerSpec) -> dict:
    """The part of every sequence's record that comes from the tracker (read once per tracker)."""
    artifact = None
    if spec.artifact is not None:
        files = sorted(f"{f.path}:{f.sha256}" for f in read_manifest(Path(spec.artifact)).files)
        artifact = hashlib.sha256("\n".join(files).encode()).hexdigest()
    preset = json.dumps(spec.preset.model_dump(mode="json"), sort_keys=True)
    return {"tracker": spec.name, "weights_sha256": spec.variant.weights.sha256, "artifact_sha256": artifact,
            "preset_sha256": hashlib.sha256(preset.encode()).hexdigest()}


def sequence_record(tracker: dict, seq: Sequence) -> dict:
    """The record of one sequence run by the tracker whose :func:`spec_record` is ``tracker``."""
    return {**tracker, "sequence": seq.name, "frames": len(seq)}


def write_record(folder: Path, seq_name: str, record: dict) -> None:
    """Write the record (after the result files: it marks them finished)."""
    atomic_write_bytes(folder / f"{seq_name}{RECORD_SUFFIX}", (json.dumps(record, indent=1) + "\n").encode())


def _parses(path: Path, values: int, lines: int) -> bool:
    """``path`` holds exactly ``lines`` lines of ``values`` finite numbers each."""
    try:
        with open(path, "rb") as fh:
            rows = [line.decode().strip() for line in fh]
    except (OSError, UnicodeDecodeError):
        return False
    rows = [r for r in rows if r]
    if len(rows) != lines:
        return False
    try:
        return all(len(parts := _SPLIT.split(r)) == values and all(math.isfinite(float(p)) for p in parts) for r in rows)
    except ValueError:
        return False


def is_finished(folder: Path, seq: Sequence, record: dict) -> bool:
    """The sequence's three result files parse, one line per frame, and its record is ``record``."""
    try:
        stored = json.loads((folder / f"{seq.name}{RECORD_SUFFIX}").read_text())
    except (OSError, ValueError):
        return False
    return (stored == record and _parses(folder / f"{seq.name}.txt", 4, len(seq))
            and _parses(folder / f"{seq.name}_time.txt", 1, len(seq)) and _parses(folder / f"{seq.name}_score.txt", 1, len(seq)))

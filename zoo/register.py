"""``zoo register``: adopt a trained checkpoint as a variant's weights, and the catalog's
self-check (measured figures and reference weights recomputed from the architecture)."""
from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path

from zoo.catalog import Catalog, update_variant
from zoo.checkpoints import match_state_dict, read_checkpoint
from zoo.errors import ZooError
from zoo.figures import recount
from zoo.fileio import atomic_write_bytes, os_reason, sha256_file
from zoo.models import build_model
from zoo.paths import weights_path
from zoo.schema import Variant
from zoo.weights import reference_weights_bytes, serialize_state_dict


@dataclass(frozen=True)
class Registered:
    variant: str
    file: str
    sha256: str
    bytes: int
    cache_path: Path
    source_sha256: str
    tensors: int


def register_checkpoint(catalog: Catalog, name: str, checkpoint: Path, description: str | None = None) -> Registered:
    """Load ``checkpoint`` strictly into ``name``'s architecture, store it as safetensors in
    the cache and pin its sha256 and provenance in the catalog file."""
    variant = catalog.get(name)
    state = match_state_dict(build_model(variant.arch), read_checkpoint(checkpoint), checkpoint.name)
    source_sha = sha256_file(checkpoint)
    meta = {"variant": name, "provenance": "trained", "source": checkpoint.name, "source_sha256": source_sha}
    data = serialize_state_dict(state, meta)
    sha = hashlib.sha256(data).hexdigest()
    file_name = f"{name}.safetensors"
    path = weights_path(sha, file_name)
    try:
        atomic_write_bytes(path, data)
    except OSError as exc:
        raise ZooError(f"cannot store the weights in the cache ({path.parents[2]}): {os_reason(exc)}; "
                       "nothing was registered") from None
    weights = {
        "file": file_name,
        "format": "safetensors",
        "sha256": sha,
        "bytes": len(data),
        "provenance": {
            "kind": "trained",
            "description": description or f"trained checkpoint registered from {checkpoint.name}",
            "source": f"{checkpoint.name} (sha256 {source_sha})",
            "registered": dt.date.today().isoformat(),
        },
        "url": None,
    }
    update_variant(catalog.path, name, {"weights": weights})
    return Registered(name, file_name, sha, len(data), path, source_sha, len(state))


def check_rows(variants: list[Variant]) -> list[dict]:
    """Recompute each variant's figures (and reference weights hash) and compare with the file."""
    rows = []
    for v in variants:
        f = recount(v)
        row = {
            "name": v.name,
            "params": f.params, "params_catalog": v.measured.params,
            "macs": f.macs, "macs_catalog": v.measured.macs,
            "macs_total": f.macs_total, "macs_total_catalog": v.measured.macs_total,
            "weights_sha256": None, "weights_sha256_catalog": v.weights.sha256, "weights_bytes": None,
        }
        if v.weights.provenance.kind == "reference":
            data = reference_weights_bytes(v)
            row["weights_sha256"] = hashlib.sha256(data).hexdigest()
            row["weights_bytes"] = len(data)
        row["ok"] = (
            f.params == v.measured.params and f.macs == v.measured.macs and f.macs_total == v.measured.macs_total
            and row["weights_sha256"] in (None, v.weights.sha256)
        )
        rows.append(row)
    return rows


def refresh_catalog(catalog: Catalog, rows: list[dict]) -> list[str]:
    """Write recomputed figures (and reference hashes) into the catalog file; return changed names."""
    changed = []
    for row in rows:
        if row["ok"]:
            continue
        changes: dict = {"measured": {"params": row["params"], "macs": row["macs"], "macs_total": row["macs_total"]}}
        if row["weights_sha256"]:
            changes.update({"weights.sha256": row["weights_sha256"], "weights.bytes": row["weights_bytes"]})
        update_variant(catalog.path, row["name"], changes)
        changed.append(row["name"])
    return changed

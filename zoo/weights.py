"""Weights of catalog variants: materialise, verify by sha256, load into a model.

Weights live in the user cache keyed by their sha256 (:func:`zoo.paths.weights_path`). A
reference variant's file is regenerated deterministically when absent and must hash to the
sha256 pinned in ``zoo.yaml``; trained weights come from ``zoo register``. With a hub configured
(``$ZOO_HUB`` or ``hub:`` in ``zoo.yaml``) and not offline, weights missing from the cache are
pulled from it first (:mod:`zoo.hub`). Nothing is trusted until its hash matches.
"""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import torch
from filelock import FileLock
from safetensors.torch import load_file, save

from zoo.errors import WeightsError, ZooError
from zoo.fileio import atomic_write_bytes, os_reason, sha256_file, verified_file
from zoo.hub.fetch import fetch_weights
from zoo.hub.resolve import HubConfig, resolve_hub
from zoo.models import TrackerNet, build_model
from zoo.paths import weights_path
from zoo.reference_weights import SCHEME, reference_state_dict
from zoo.schema import Variant

log = logging.getLogger(__name__)


def reference_seed(variant: Variant) -> str:
    """The seed string of a reference variant (its provenance may pin another one)."""
    return variant.weights.provenance.seed or variant.name


def serialize_state_dict(state: dict[str, torch.Tensor], metadata: dict[str, str]) -> bytes:
    """safetensors bytes, byte-for-byte deterministic for equal tensors and metadata.

    The library writes its JSON header from a hash map, so key order (and hence the file's
    sha256) can change from run to run. The header is re-serialised with sorted keys and
    padded to 8 bytes; tensor offsets are relative to the data section and stay valid.
    """
    raw = save({k: v.contiguous() for k, v in state.items()}, metadata=metadata)
    header_len = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + header_len])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + raw[8 + header_len :]


def reference_weights_bytes(variant: Variant) -> bytes:
    """Generate the reference weights file of ``variant`` (bit-identical everywhere)."""
    model = build_model(variant.arch)
    state = reference_state_dict(model, reference_seed(variant))
    meta = {"variant": variant.name, "provenance": "reference, untrained", "scheme": SCHEME}
    return serialize_state_dict(state, meta)


def weights_status(variant: Variant) -> str:
    """``cached`` (in the cache; hash checked at load), ``regenerable`` (reference weights not
    yet generated) or ``missing``."""
    if weights_path(variant.weights.sha256, variant.weights.file).is_file():
        return "cached"
    return "regenerable" if variant.weights.provenance.kind == "reference" else "missing"


def _readable_and_verified(path: Path, sha256: str) -> bool:
    """``path`` hashes to ``sha256`` (without the lock, deleting nothing)."""
    try:
        return path.is_file() and sha256_file(path) == sha256
    except OSError:
        return False


def ensure_weights(variant: Variant, hub: HubConfig | None = None) -> Path:
    """Return the verified local path of ``variant``'s weights.

    Not in the cache: pulled from the hub when one is configured and not offline (``hub``: the
    settings of the catalog in use, e.g. ``resolve_hub(catalog_hub=catalog.hub)``; None: the
    environment's ``$ZOO_HUB`` / ``$ZOO_OFFLINE`` only); reference weights the hub does not serve (or that fail to
    download) are regenerated instead. Everything is checked against the pinned sha256.
    A cache that cannot be written (full, read-only) is a :class:`WeightsError` naming it; a
    read-only cache that already holds verified weights still serves them.
    """
    spec = variant.weights
    path = weights_path(spec.sha256, spec.file)
    try:
        return _ensure_weights(variant, hub)
    except OSError as exc:
        if _readable_and_verified(path, spec.sha256):
            return path  # verified: only the lock file could not be created
        raise WeightsError(f"weights of {variant.name!r}: cannot write the cache ({path.parent.parent}): "
                           f"{os_reason(exc)}") from None


def _ensure_weights(variant: Variant, hub: HubConfig | None) -> Path:
    spec = variant.weights
    path = weights_path(spec.sha256, spec.file)
    lock = FileLock(str(path.parent) + ".lock")
    with lock:
        if verified_file(path, spec.sha256):
            return path
    cfg = hub if hub is not None else resolve_hub()
    why = "offline" if cfg.offline else "no hub configured"
    if not cfg.offline and (cfg.url or (spec.url and "://" in spec.url)):
        try:
            if fetch_weights(variant, cfg) is not None:
                return path
            why = f"hub {cfg.url} does not serve them"
        except ZooError as exc:
            if spec.provenance.kind != "reference":
                raise
            why = f"pulling them failed: {exc}"
            log.warning("weights of %s: %s; regenerating the reference weights", variant.name, why)
    with lock:
        if verified_file(path, spec.sha256):
            return path
        if spec.provenance.kind != "reference":
            raise WeightsError(
                f"weights of {variant.name!r} ({spec.file}, sha256 {spec.sha256[:12]}...) are not in the cache; "
                f"register the checkpoint with 'zoo register {variant.name} FILE' or pull them with 'zoo pull {variant.name}' ({why})"
            )
        data = reference_weights_bytes(variant)
        actual = hashlib.sha256(data).hexdigest()
        if actual != spec.sha256:
            raise WeightsError(
                f"regenerated reference weights of {variant.name!r} hash to {actual}, "
                f"zoo.yaml pins {spec.sha256}: the architecture or generator changed"
            )
        atomic_write_bytes(path, data)
    return path


def load_model(variant: Variant, hub: HubConfig | None = None) -> TrackerNet:
    """Build ``variant`` and load its verified weights strictly (eval mode); ``hub`` as for
    :func:`ensure_weights`."""
    model = build_model(variant.arch)
    model.load_state_dict(load_file(str(ensure_weights(variant, hub))), strict=True)
    return model.eval()

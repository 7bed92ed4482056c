"""Fetch a hub's index and a variant's weights into the cache (the part of the hub that
:mod:`zoo.weights` needs; :mod:`zoo.release.pull` builds on it)."""
from __future__ import annotations

from pathlib import Path

from zoo.errors import ZooError
from zoo.fileio import atomic_write_bytes, os_reason
from zoo.hub.download import Reporter, Transfer
from zoo.hub.index import Index, parse_index
from zoo.hub.resolve import HubConfig, base_url, check_url, file_url
from zoo.hub.store import hub_index_path
from zoo.paths import weights_path
from zoo.schema import Variant


def fetch_index(cfg: HubConfig, transfer: Transfer, reporter: Reporter | None = None) -> Index:
    """The hub's index, validated, and saved in the cache for offline use."""
    url = cfg.index_url
    data = transfer.get_bytes(url, "index.json", reporter)
    index = parse_index(data, url)
    try:
        atomic_write_bytes(hub_index_path(url), data)
    except OSError as exc:
        raise ZooError(f"cannot save the hub index in the cache: {os_reason(exc)}") from None
    return index



def fetch_weights(variant: Variant, cfg: HubConfig, index: Index | None = None) -> Path | None:
    """Download ``variant``'s weights from ``weights.url`` or the hub's index (``index``, fetched
    when not given) into the cache.

    Returns the verified path, or None when the hub does not serve these weights (by hash).
    """
    spec = variant.weights
    dest = weights_path(spec.sha256, spec.file)
    with Transfer(cfg) as transfer:
        if spec.url and "://" in spec.url:
            url = check_url(spec.url, cfg.allow_http, what=f"weights.url of {variant.name}")
        else:
            index = index or fetch_index(cfg, transfer)
            base = base_url(cfg, index.base_url)
            vref = index.variants.get(variant.name)
            if spec.url:
                url = file_url(base, spec.url)
            elif vref is None or vref.weights is None or vref.weights.sha256 != spec.sha256:
                return None
            else:
                url = file_url(base, vref.weights.url)
        transfer.fetch(url, dest, spec.sha256, spec.bytes, f"{variant.name}/{spec.file}")
    return dest

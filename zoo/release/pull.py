"""``zoo pull`` and the weights resolution: from a hub's index into the cache, verified.

Online: fetch ``index.json`` (kept in the cache for ``--offline``), choose the artifacts asked
for, download every file not already in the cache (:class:`zoo.hub.download.Transfer`, several
at once), then assemble each artifact directory under ``<cache>/artifacts`` and, with ``out``,
copy it into an artifacts directory where ``zoo export`` and ``zoo compare`` find it. Offline:
the same from the cache alone; anything missing is named exactly.
"""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from zoo.artifacts import ArtifactKey, check_files
from zoo.backends import FORMATS, PRECISIONS, offered
from zoo.errors import ZooError
from zoo.fileio import os_reason, verified_file
from zoo.hub.download import Outcome, Reporter, Transfer
from zoo.hub.fetch import fetch_index
from zoo.hub.index import ArtifactRef, Index, VariantRef, parse_index
from zoo.hub.resolve import HubConfig, base_url, file_url
from zoo.hub.store import artifact_cache_root, blob_path, hub_index_path, install_artifact
from zoo.manifest import MANIFEST_NAME, Manifest, read_manifest
from zoo.paths import weights_path
from zoo.schema import Variant
from zoo.weights import ensure_weights


@dataclass(frozen=True)
class FileJob:
    label: str
    url: str
    dest: Path
    sha256: str
    bytes: int


@dataclass(frozen=True)
class PullItem:
    """One row of a pull: a variant's weights (``artifact`` None) or one of its artifacts."""

    variant: Variant
    item: str  # "weights" or the artifact's directory name
    artifact: ArtifactRef | None
    files: list[FileJob]
    blobs: dict[str, Path]  # cache path of every artifact file, by its path in the artifact


def cached_index(cfg: HubConfig) -> Index | None:
    """The index last fetched from ``cfg``'s hub, if any (no network)."""
    if cfg.url is None or not hub_index_path(cfg.index_url).is_file():
        return None
    return parse_index(hub_index_path(cfg.index_url).read_bytes(), f"the cached copy of {cfg.index_url}")


def select_artifacts(name: str, vref: VariantRef, formats: list[str] | None, precisions: list[str] | None,
                     hub: str, split: bool = False) -> list[ArtifactRef]:
    """The published artifacts of one variant that were asked for (None: everything published).

    An explicitly requested format (or format and precision) the hub does not publish is an error
    that lists what it does publish. ``split``: the split artifacts (init + track graphs) instead.
    """
    published = ", ".join(a.dirname for a in vref.artifacts) or "none"
    chosen = []
    for fmt in formats or [f for f in FORMATS if any(a.format == f and a.split == split for a in vref.artifacts)]:
        precs = precisions or [a.precision for a in vref.artifacts if a.format == fmt and a.split == split]
        wanted = [p for p in precs if p in offered(fmt)]
        if not wanted and formats:
            raise ZooError(f"hub {hub} publishes no {fmt} artifact of {name} (published: {published})")
        for prec in wanted:
            art = vref.artifact(fmt, prec, split)
            if art is None:
                raise ZooError(f"hub {hub} does not publish {name} {fmt} {prec}{' split' if split else ''} (published: {published})")
            chosen.append(art)
    return chosen


def _weights_job(v: Variant, vref: VariantRef, base: str) -> FileJob | None:
    w = vref.weights
    if w is None:
        return None
    if w.sha256 != v.weights.sha256:
        raise ZooError(f"the hub's weights of {v.name} hash to {w.sha256[:12]}…, zoo.yaml pins {v.weights.sha256[:12]}…: "
                       "the hub was published from another catalog")
    return FileJob(f"{v.name}/{w.path}", file_url(base, w.url), weights_path(w.sha256, v.weights.file), w.sha256, w.bytes)


def _blobs(art: ArtifactRef) -> dict[str, Path]:
    """Cache path of every file of ``art`` (keyed by hash), by its path in the artifact."""
    return {f.path: blob_path(f.sha256, Path(f.path).name) for f in art.files}


def _artifact_jobs(v: Variant, art: ArtifactRef, base: str) -> tuple[list[FileJob], dict[str, Path]]:
    if art.manifest.weights_sha256 != v.weights.sha256:
        raise ZooError(f"the hub's {v.name} {art.dirname} was built from weights {art.manifest.weights_sha256[:12]}…, "
                       f"zoo.yaml pins {v.weights.sha256[:12]}…")
    blobs = _blobs(art)
    jobs = [FileJob(f"{v.name}/{art.dirname}/{f.path}", file_url(base, f.url), blobs[f.path], f.sha256, f.bytes)
            for f in art.files]
    return jobs, blobs


def _install(v: Variant, art: ArtifactRef, blobs: dict[str, Path], out: Path | None) -> Path:
    try:
        return _install_checked(v, art, blobs, out)
    except OSError as exc:
        raise ZooError(f"{v.name} {art.dirname}: cannot install it: {os_reason(exc)}") from None


def _install_checked(v: Variant, art: ArtifactRef, blobs: dict[str, Path], out: Path | None) -> Path:
    manifest = Manifest.model_validate(json.loads(blobs[MANIFEST_NAME].read_bytes()))
    if manifest != art.manifest:
        raise ZooError(f"{v.name} {art.dirname}: manifest.json differs from the index's copy: refused")
    sha = art.manifest_file.sha256
    install_artifact(artifact_cache_root(), v.name, art.dirname, blobs, link=True, expected_manifest_sha=sha)
    if out is None:
        return artifact_cache_root() / v.name / art.dirname
    install_artifact(Path(out), v.name, art.dirname, blobs, link=False, expected_manifest_sha=sha)
    return Path(out) / v.name / art.dirname


def _status(outcomes: list[Outcome]) -> str:
    kinds = {o.status for o in outcomes}
    return "resumed" if "resumed" in kinds else "downloaded" if "downloaded" in kinds else "cached"


def pull(variants: list[Variant], formats: list[str] | None, precisions: list[str] | None, cfg: HubConfig,
         out: Path | None = None, reporter: Reporter | None = None, jobs: int = 4, split: bool = False) -> list[dict]:
    """Pull weights and artifacts of ``variants`` into the cache (and ``out``); one row per item.
    ``split``: the split artifacts (init + track graphs) instead of the full ones."""
    if cfg.offline:
        return pull_offline(variants, formats, precisions, cfg, out, split)
    reporter = reporter or Reporter()
    with Transfer(cfg) as transfer:
        index = fetch_index(cfg, transfer, reporter)
        base = base_url(cfg, index.base_url)
        items: list[PullItem] = []
        for v in variants:
            vref = index.variants.get(v.name)
            if vref is None:
                raise ZooError(f"hub {cfg.url} does not publish {v.name} (it has: {', '.join(index.variants) or 'nothing'})")
            arts = select_artifacts(v.name, vref, formats, precisions, cfg.url, split)
            wjob = _weights_job(v, vref, base)
            items.append(PullItem(v, "weights", None, [wjob] if wjob else [], {}))
            items.extend(PullItem(v, art.dirname, art, *_artifact_jobs(v, art, base)) for art in arts)
        unique = list({j.dest: j for it in items for j in it.files}.values())
        pool = ThreadPoolExecutor(max(1, jobs))
        try:
            done = dict(zip([j.dest for j in unique], pool.map(
                lambda j: transfer.fetch(j.url, j.dest, j.sha256, j.bytes, j.label, reporter), unique)))
        except BaseException as exc:
            if not isinstance(exc, Exception):  # Ctrl-C, SIGTERM: in-flight transfers stop at their next chunk
                transfer.cancel()
            pool.shutdown(wait=True, cancel_futures=not isinstance(exc, Exception))
            raise
        pool.shutdown()
    rows = []
    for it in items:
        outcomes = [done[j.dest] for j in it.files]
        if it.artifact is None:
            rows.append(_weights_row(it.variant, outcomes))
        else:
            path = _install(it.variant, it.artifact, it.blobs, out)
            rows.append({"variant": it.variant.name, "item": it.item, "files": len(it.files),
                         "bytes": it.artifact.size_bytes, "status": _status(outcomes), "path": str(path)})
    return rows


def _weights_row(v: Variant, outcomes: list[Outcome]) -> dict:
    w = v.weights
    if outcomes:
        status = _status(outcomes)
    elif verified_file(weights_path(w.sha256, w.file), w.sha256):
        status = "cached"
    elif w.provenance.kind == "reference":
        ensure_weights(v, HubConfig(url=None, offline=True))
        status = "regenerated"
    else:
        status = "not on hub"
    path = weights_path(w.sha256, w.file)
    return {"variant": v.name, "item": "weights", "files": 1, "bytes": w.bytes, "status": status,
            "path": str(path) if path.is_file() else None}


def pull_offline(variants: list[Variant], formats: list[str] | None, precisions: list[str] | None,
                 cfg: HubConfig, out: Path | None = None, split: bool = False) -> list[dict]:
    """``zoo pull --offline``: the same result from the cache alone, or an error naming every
    missing file (with the cached index) or artifact (without one)."""
    index = cached_index(cfg)
    rows, missing = [], []
    for v in variants:
        w = v.weights
        if verified_file(weights_path(w.sha256, w.file), w.sha256) or w.provenance.kind == "reference":
            rows.append(_weights_row(v, []))
        else:
            missing.append(f"{v.name} weights {w.file} (sha256 {w.sha256})")
        vref = index.variants.get(v.name) if index else None
        if vref is None:
            found, lost = _cached_dirs(v.name, formats, precisions, split)
            if lost and not found:
                lost[-1] += (f" (the cached index of {cfg.url} does not list {v.name})" if index else
                             " (and no index of this hub in the cache: pull once online)")
            missing += lost
            rows += [{"variant": v.name, "item": d.name, "files": len(m.files) + 1, "bytes": m.size_bytes,
                      "status": "cached", "path": str(_materialise(v.name, d, out))} for d, m in found]
            continue
        for art in select_artifacts(v.name, vref, formats, precisions, cfg.url or "?", split):
            blobs = _blobs(art)
            lost = [f"{v.name} {art.dirname} {f.path} (sha256 {f.sha256}, {f.bytes:,} bytes)"
                    for f in art.files if not verified_file(blobs[f.path], f.sha256)]
            if lost:
                missing += lost
                continue
            path = _install(v, art, blobs, out)
            rows.append({"variant": v.name, "item": art.dirname, "files": len(art.files), "bytes": art.size_bytes,
                         "status": "cached", "path": str(path)})
    if missing:
        raise ZooError(f"offline: not in the cache: {'; '.join(missing)}")
    return rows


def _intact(d: Path) -> tuple[Path, Manifest] | None:
    try:
        m = read_manifest(d)
    except ZooError:
        return None
    return None if check_files(d, m) else (d, m)


def _cached_dirs(name: str, formats: list[str] | None, precisions: list[str] | None, split: bool = False) -> tuple[list, list[str]]:
    """Intact cached artifact dirs of ``name`` that match the request, and what is missing."""
    root = artifact_cache_root() / name
    found, lost = [], []
    for fmt in formats or FORMATS:
        keys = [ArtifactKey(name, fmt, p, split=split) for p in (precisions or PRECISIONS) if p in offered(fmt)]
        hits = [h for h in (_intact(k.path(root.parent)) for k in keys) if h]
        found += hits
        if formats and precisions:
            have = {d.name for d, _ in hits}
            lost += [k.name for k in keys if k.dirname not in have]
        elif formats and not hits:
            lost.append(f"{name} {fmt} (any precision)")
    if not formats and not found:
        lost.append(f"{name}: no artifacts")
    return found, lost


def _materialise(name: str, d: Path, out: Path | None) -> Path:
    if out is None:
        return d
    files = {f.path: d / f.path for f in read_manifest(d).files} | {MANIFEST_NAME: d / MANIFEST_NAME}
    install_artifact(Path(out), name, d.name, files, link=False)
    return Path(out) / name / d.name

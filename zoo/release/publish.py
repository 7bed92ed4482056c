"""``zoo publish``: a release tree of weights, artifacts and ``index.json`` for a static host.

::

    DIR/index.json
    DIR/weights/<variant>/<file>.safetensors
    DIR/artifacts/<variant>/<format>[-fp16]/<model files> + manifest.json

Every artifact is checked against its manifest (and the catalog's weights hash) before anything
is written; a corrupt or stale one is refused, a missing one is an error naming the
``zoo export`` command that builds it. Files are copied byte for byte and the index is canonical
JSON without timestamps, so the same inputs give a byte-identical tree. The tree is assembled
beside ``DIR`` and swapped in whole: an interrupted publish leaves the previous tree untouched.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from zoo.artifacts import SPLIT_SUFFIX, ArtifactKey, check_bindings, check_files, check_split, default_out_dir
from zoo.backends import offered
from zoo.errors import UsageError, ZooError
from zoo.fileio import os_reason, sha256_file
from zoo.hub.index import ArtifactRef, FileRef, Index, VariantRef, WeightsRef, parse_index
from zoo.hub.resolve import INDEX_NAME, HubConfig, check_url
from zoo.hub.store import swap_in
from zoo.manifest import MANIFEST_NAME, read_manifest
from zoo.schema import Variant
from zoo.version import __version__
from zoo.weights import ensure_weights


@dataclass
class Published:
    """What a publish wrote: one row per weights file or artifact, and the index's hash."""

    rows: list[dict]
    index_sha256: str
    files: int
    bytes: int


def _release_files(dest: Path) -> set[str] | None:
    """The files (relative paths) of the release whose ``index.json`` is in ``dest``, or None
    when that index does not validate."""
    try:
        index = parse_index((dest / INDEX_NAME).read_bytes(), str(dest / INDEX_NAME))
    except (ZooError, OSError):
        return None
    listed = {INDEX_NAME}
    for vref in index.variants.values():
        if vref.weights is not None:
            listed.add(vref.weights.url)
        listed.update(f.url for art in vref.artifacts for f in art.files)
    return listed


def _check_dest(dest: Path) -> None:
    """``dest`` may be replaced: absent, empty, or exactly a previous zoo release.

    A release is a directory whose ``index.json`` validates and whose every file (and folder)
    is one that index lists; anything else there (a stray file, a symlink, a source tree that
    happens to hold an ``index.json``) means ``dest`` is not ours to delete: one line, exit 2.
    """
    if dest.is_symlink():
        raise UsageError(f"--to {dest}: is a symbolic link; name the directory itself")
    if dest.exists() and not dest.is_dir():
        raise UsageError(f"--to {dest}: exists and is not a directory")
    if dest.is_dir() and any(dest.iterdir()):
        if not (dest / INDEX_NAME).is_file():
            raise UsageError(f"--to {dest}: not empty and not a zoo release (no {INDEX_NAME}); refusing to overwrite it")
        listed = _release_files(dest)
        if listed is None:
            raise UsageError(f"--to {dest}: its {INDEX_NAME} is not a valid zoo release index; refusing to overwrite it")
        folders = {str(p) for rel in listed for p in Path(rel).parents if str(p) != "."}
        for p in sorted(dest.rglob("*")):
            rel = p.relative_to(dest).as_posix()
            ok = rel in folders if p.is_dir() and not p.is_symlink() else (rel in listed and p.is_file() and not p.is_symlink())
            if not ok:
                raise UsageError(f"--to {dest}: {rel} is not part of the zoo release there; "
                                 "refusing to overwrite it (publish into an empty or new directory)")
    parent = dest.absolute().parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise UsageError(f"--to {dest}: cannot create it ({parent} is not a writable directory)")


def release_targets(variants: list[Variant], formats: list[str], precisions: list[str], src: Path,
                    split: bool = False) -> list[tuple[Variant, str, str, Path]]:
    """Every (variant, format, precision, artifact dir) to publish; missing ones are one error.
    ``split``: the split artifacts (``<format>[-<precision>]-split``) too."""
    targets, missing = [], {}
    for v in variants:
        for fmt in formats:
            for prec in precisions:
                if prec not in offered(fmt):
                    continue
                for path in [ArtifactKey(v.name, fmt, prec, split=s).path(src) for s in ([False, True] if split else [False])]:
                    if (path / MANIFEST_NAME).is_file():
                        targets.append((v, fmt, prec, path))
                    else:
                        missing.setdefault(v.name, []).append((fmt, prec, path.name))
    if missing:
        out = "" if Path(src) == default_out_dir() else f" --artifacts {src}"
        what = "; ".join(f"{n} {', '.join(d for _, _, d in m)}" for n, m in missing.items())
        cmds = " && ".join(
            f"zoo export {n} --to {' '.join(dict.fromkeys(f for f, _, _ in m))} --precision {' '.join(dict.fromkeys(p for _, p, _ in m))}"
            f"{out}{' --split' if split_missing else ''}"
            for n, m in missing.items() for split_missing in sorted({d.endswith(SPLIT_SUFFIX) for _, _, d in m}))
        raise UsageError(f"not exported in {src}: {what}; build them first: {cmds}")
    if not targets:
        raise UsageError("nothing to publish: no format offers the requested precision")
    return targets


def _verified_artifact(v: Variant, fmt: str, prec: str, path: Path):
    manifest = read_manifest(path)
    rebuild = f"rebuild it with 'zoo export {v.name} --to {fmt} --precision {prec} --force'"
    if (manifest.variant, manifest.format, manifest.precision) != (v.name, fmt, prec):
        raise ZooError(f"{path}: manifest describes {manifest.variant} {manifest.format} {manifest.precision}; refusing to publish it")
    if manifest.weights_sha256 != v.weights.sha256:
        raise ZooError(f"{path}: built from weights {manifest.weights_sha256[:12]}…, zoo.yaml pins "
                       f"{v.weights.sha256[:12]}…: stale artifact, {rebuild}")
    problems = check_files(path, manifest)
    if problems:
        raise ZooError(f"{path}: {problems[0]}: refusing to publish a corrupt artifact; {rebuild}")
    problems = check_bindings(manifest, v) + check_split(manifest, v)
    if problems:
        raise ZooError(f"{path}: {problems[0]}: the manifest does not match zoo.yaml; refusing to publish it; {rebuild}")
    return manifest


def _copy(src: Path, root: Path, rel: str, sha256: str) -> FileRef:
    dst = root / rel
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    os.chmod(dst, 0o644)
    if sha256_file(dst) != sha256:
        raise ZooError(f"{src} changed while it was copied; publish again")
    return FileRef(path=Path(rel).name, url=rel, sha256=sha256, bytes=dst.stat().st_size)


def _write_tree(root: Path, targets, weights_paths: dict[str, Path], base_url: str | None) -> list[dict]:
    variants: dict[str, dict] = {}
    rows: list[dict] = []
    for v in {t[0].name: t[0] for t in targets}.values():
        w = v.weights
        ref = _copy(weights_paths[v.name], root, f"weights/{v.name}/{w.file}", w.sha256)
        variants[v.name] = {"weights": WeightsRef(**ref.model_dump(), provenance=w.provenance.kind), "artifacts": []}
        rows.append({"variant": v.name, "item": "weights", "files": 1, "bytes": ref.bytes, "url": ref.url})
    for v, fmt, prec, path, manifest in targets:
        base = f"artifacts/{v.name}/{path.name}"  # <format>[-<precision>][-split]
        files = [_copy(path / f.path, root, f"{base}/{f.path}", f.sha256) for f in manifest.files]
        refs = [f.model_copy(update={"path": e.path}) for f, e in zip(files, manifest.files)]
        refs.append(_copy(path / MANIFEST_NAME, root, f"{base}/{MANIFEST_NAME}", sha256_file(path / MANIFEST_NAME)))
        art = ArtifactRef(format=fmt, precision=prec, zoo_version=manifest.zoo_version, versions=manifest.versions,
                          files=refs, manifest=manifest)
        variants[v.name]["artifacts"].append(art)
        rows.append({"variant": v.name, "item": art.dirname, "files": len(refs), "bytes": art.size_bytes, "url": base + "/"})
    index = Index(zoo_version=__version__, base_url=base_url,
                  variants={name: VariantRef(**entry) for name, entry in variants.items()})
    (root / INDEX_NAME).write_bytes(index.dumps())
    os.chmod(root / INDEX_NAME, 0o644)
    return rows


def publish(variants: list[Variant], formats: list[str], precisions: list[str], src: Path, dest: Path,
            base_url: str | None = None, allow_http: bool = False, hub: HubConfig | None = None, split: bool = False) -> Published:
    """Write the release tree of ``variants`` x ``formats`` x ``precisions`` from ``src`` to ``dest``.

    ``dest`` must be absent, empty or an earlier release (it is replaced whole). ``base_url``,
    when given, is recorded in the index as where clients fetch the files from. ``hub``: where
    weights missing from the cache come from (see :func:`zoo.weights.ensure_weights`). ``split``:
    each artifact's split form (init + track graphs) too.
    """
    if base_url:
        check_url(base_url, allow_http, what="--base-url", error=UsageError)
        base_url = base_url.rstrip("/") + "/"
    _check_dest(dest)
    targets = [(*t, _verified_artifact(*t)) for t in release_targets(variants, formats, precisions, src, split)]  # refuse before writing
    weights_paths = {t[0].name: ensure_weights(t[0], hub) for t in targets}
    dest = dest.absolute()
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.publish-", dir=dest.parent))
        try:
            rows = _write_tree(tmp, targets, weights_paths, base_url)
            _check_dest(dest)  # again: something may have been added while the tree was written
            swap_in(tmp, dest, dest.parent)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    except OSError as exc:
        raise ZooError(f"cannot write the release beside {dest}: {os_reason(exc)}; "
                       "the partial tree was removed") from None
    data = (dest / INDEX_NAME).read_bytes()
    n_files = sum(r["files"] for r in rows)
    return Published(rows, hashlib.sha256(data).hexdigest(), n_files + 1, sum(r["bytes"] for r in rows) + len(data))

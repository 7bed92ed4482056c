"""The hash-keyed cache that pulls install into (under :func:`zoo.paths.cache_dir`).

::

    weights/<sha256>/<file>.safetensors   weights: pulled, regenerated or registered
    files/<sha256>/<name>                 every pulled artifact file (manifest.json too)
    artifacts/<variant>/<format>[-fp16]/  pulled artifacts laid out like `zoo export`'s,
                                          hard links to files/ (copies where links fail)
    hubs/<sha256(url)[:16]>/index.json    the last index fetched from each hub (for --offline)
    tmp/<sha256>.part                     interrupted downloads, resumed with HTTP Range

A file becomes visible under ``weights/`` or ``files/`` only by an atomic rename after its
sha256 matched; an artifact directory only after every file re-checked against its manifest.
Each file has a lock (``<dir>.lock`` beside its hash directory) and each artifact directory one
(:func:`zoo.artifacts.artifact_lock`, the one ``zoo export`` takes), so concurrent pulls wait for each other instead of
downloading twice or seeing half a file.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock

from zoo.artifacts import artifact_lock, check_files
from zoo.errors import ZooError
from zoo.fileio import sha256_file, swap_dir
from zoo.manifest import MANIFEST_NAME, read_manifest
from zoo.paths import cache_dir, weights_path

#: what converters and devices keep in the cache: reused when their inputs match, rebuilt when removed
TOOL_CACHES = {
    "litert-torch": "litert-torch float32 conversions (reused for the same architecture, weights, graph and versions)",
    "devices": "emulated devices (arm64 userland and wheels; zoo device setup)",
}
SUBDIRS = ("weights", "files", "artifacts", "hubs", "tmp", *TOOL_CACHES)


def blob_path(sha256: str, name: str) -> Path:
    """Cache location of a pulled artifact file, keyed by its content hash."""
    return cache_dir() / "files" / sha256 / name


def part_path(sha256: str) -> Path:
    """Where the download of ``sha256`` accumulates until it is verified."""
    return cache_dir() / "tmp" / f"{sha256}.part"


def file_lock(path: Path) -> FileLock:
    """The lock of a hash-keyed file: ``<hash dir>.lock`` (the same one :mod:`zoo.weights` takes)."""
    path.parent.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(path.parent) + ".lock")


def artifact_cache_root() -> Path:
    """``<cache>/artifacts``: pulled artifacts, ``<variant>/<format>[-<precision>]/`` below it."""
    return cache_dir() / "artifacts"


def hub_index_path(index_url: str) -> Path:
    """Where the last index fetched from ``index_url`` is kept for offline use."""
    return cache_dir() / "hubs" / hashlib.sha256(index_url.encode()).hexdigest()[:16] / "index.json"


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def install_artifact(root: Path, variant: str, dirname: str, files: dict[str, Path],
                     link: bool = True, expected_manifest_sha: str | None = None) -> str:
    """Place an artifact at ``root/<variant>/<dirname>`` from verified local files, atomically.

    ``files`` maps each relative path (``manifest.json`` included) to its source. The directory is
    assembled in ``root/.build``, its manifest re-read and every file re-hashed against it, and only
    then swapped in under the directory's lock (the lock ``zoo export`` takes for the same target).
    Returns ``cached`` when an intact copy with the same manifest was already there, else
    ``installed``.
    """
    dest = root / variant / dirname
    dest.parent.mkdir(parents=True, exist_ok=True)
    with artifact_lock(root, variant, dirname):
        want = expected_manifest_sha or sha256_file(files[MANIFEST_NAME])
        if (dest / MANIFEST_NAME).is_file() and sha256_file(dest / MANIFEST_NAME) == want \
                and not check_files(dest, read_manifest(dest)):
            return "cached"
        (root / ".build").mkdir(parents=True, exist_ok=True)
        build = Path(tempfile.mkdtemp(prefix=f"{variant}--{dirname}--", dir=root / ".build"))
        try:
            for rel, src in files.items():
                (_link_or_copy if link else _copy)(src, build / rel)
            problems = check_files(build, read_manifest(build))
            if problems:
                raise ZooError(f"{variant} {dirname}: {problems[0]}: not installed")
            swap_in(build, dest, root / ".build")
        finally:
            shutil.rmtree(build, ignore_errors=True)
    return "installed"


def swap_in(new: Path, dest: Path, scratch: Path) -> None:
    """Put directory ``new`` at ``dest`` (readable by all); an existing ``dest`` is first moved into
    ``scratch`` (same file system), then deleted, so ``dest`` is never half old, half new."""
    os.chmod(new, 0o755)
    swap_dir(new, dest, scratch)


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)


def _tree_bytes(paths: list[Path], seen: set[tuple[int, int]]) -> int:
    """Bytes of the files below ``paths``, each inode counted once across calls sharing ``seen``."""
    total = 0
    for top in paths:
        for p in ([top] if top.is_file() else top.rglob("*") if top.is_dir() else []):
            if p.is_file() and not p.is_symlink():
                st = p.stat()
                if (st.st_dev, st.st_ino) not in seen:
                    seen.add((st.st_dev, st.st_ino))
                    total += st.st_size
    return total


def _manifest_shas(artifact_dir: Path) -> set[str]:
    try:
        m = read_manifest(artifact_dir)
    except ZooError:
        return set()
    return {f.sha256 for f in m.files} | {sha256_file(artifact_dir / MANIFEST_NAME)}


def scan(weights_owner: Callable[[str], str | None]) -> dict:
    """What the cache holds, per variant, plus what belongs to none (partial downloads, stray files).

    ``weights_owner(sha256)`` names the variant whose pinned weights have that hash (or None).
    Sizes count each file once even where artifact directories hard-link into ``files/``.
    """
    root = cache_dir()
    seen: set[tuple[int, int]] = set()
    variants: dict[str, dict] = {}

    def entry(name: str) -> dict:
        return variants.setdefault(name, {"variant": name, "weights": None, "artifacts": [], "bytes": 0})

    referenced: set[str] = set()
    art_root = artifact_cache_root()
    for vdir in sorted(p for p in art_root.glob("*") if p.is_dir() and not p.name.startswith(".")):
        for adir in sorted(p for p in vdir.iterdir() if p.is_dir()):
            e = entry(vdir.name)
            shas = _manifest_shas(adir)
            referenced |= shas
            blobs = [root / "files" / s for s in shas]
            size = _tree_bytes([adir, *blobs], seen)
            e["artifacts"].append({"dir": adir.name, "bytes": size, "path": str(adir), "intact": bool(shas)})
            e["bytes"] += size
    for wdir in sorted(p for p in (root / "weights").glob("*") if p.is_dir()):
        files = [p for p in wdir.iterdir() if p.is_file()]
        if not files:
            continue
        e = entry(weights_owner(wdir.name) or f"(unknown {wdir.name[:12]})")
        size = _tree_bytes([wdir], seen)
        e["weights"] = {"file": files[0].name, "sha256": wdir.name, "bytes": size}
        e["bytes"] += size
    stray = [p for p in (root / "files").glob("*") if p.is_dir() and p.name not in referenced]
    tools = [{"kind": name, "what": what, "entries": sum(1 for p in (root / name).glob("*") if p.is_dir()),
              "bytes": _tree_bytes([root / name], set()), "path": str(root / name)}
             for name, what in TOOL_CACHES.items() if (root / name).is_dir()]
    partial = sorted((root / "tmp").glob("*.part"))
    return {
        "cache": str(root),
        "variants": list(variants.values()),
        "unreferenced_bytes": _tree_bytes(stray, seen),
        "partial_downloads": [{"sha256": p.stem, "bytes": p.stat().st_size} for p in partial],
        "partial_bytes": _tree_bytes(partial, seen),
        "tools": tools,
        "total_bytes": _tree_bytes([root / d for d in SUBDIRS], set()),
    }


def remove_variant(variant: str, weights_sha256: str | None, keep_shas: set[str]) -> int:
    """Delete ``variant``'s pulled artifacts, the files only they used, and its weights.

    ``keep_shas`` are hashes other variants still need (their weights or artifact files).
    Returns the bytes freed. Each piece is removed under its lock.
    """
    root = cache_dir()
    seen: set[tuple[int, int]] = set()
    freed = 0
    vdir = artifact_cache_root() / variant
    shas: set[str] = set()
    if vdir.is_dir():
        for adir in [p for p in vdir.iterdir() if p.is_dir()]:
            shas |= _manifest_shas(adir)
            with artifact_lock(artifact_cache_root(), variant, adir.name):
                freed += _tree_bytes([adir], seen)
                shutil.rmtree(adir, ignore_errors=True)
        shutil.rmtree(vdir, ignore_errors=True)
    for sha in sorted(shas - keep_shas):
        blob_dir = root / "files" / sha
        if blob_dir.is_dir():
            with FileLock(str(blob_dir) + ".lock"):
                freed += _tree_bytes([blob_dir], seen)
                shutil.rmtree(blob_dir, ignore_errors=True)
            Path(str(blob_dir) + ".lock").unlink(missing_ok=True)
    if weights_sha256 and weights_sha256 not in keep_shas:
        wdir = weights_path(weights_sha256, "x").parent
        if wdir.is_dir():
            with FileLock(str(wdir) + ".lock"):
                freed += _tree_bytes([wdir], seen)
                shutil.rmtree(wdir, ignore_errors=True)
            Path(str(wdir) + ".lock").unlink(missing_ok=True)
    return freed


def remove_all() -> int:
    """Empty every part of the cache that zoo manages here; returns the bytes freed."""
    root = cache_dir()
    freed = _tree_bytes([root / d for d in SUBDIRS], set())
    for d in SUBDIRS:
        shutil.rmtree(root / d, ignore_errors=True)
    return freed


def cached_artifact_shas() -> dict[str, set[str]]:
    """Variant -> hashes its cached artifacts use (to keep shared files when removing another)."""
    out: dict[str, set[str]] = {}
    for vdir in [p for p in artifact_cache_root().glob("*") if p.is_dir() and not p.name.startswith(".")]:
        for adir in [p for p in vdir.iterdir() if p.is_dir()]:
            out.setdefault(vdir.name, set()).update(_manifest_shas(adir))
    return out


def cached_variants() -> list[str]:
    """Names of variants with pulled artifacts in the cache."""
    root = artifact_cache_root()
    return sorted(p.name for p in root.glob("*") if p.is_dir() and not p.name.startswith("."))

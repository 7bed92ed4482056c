"""Where zoo keeps its files: the catalog, the user cache (weights, artifacts)."""
from __future__ import annotations

import os
from pathlib import Path

import platformdirs

PACKAGE_DIR = Path(__file__).resolve().parent


def catalog_path() -> Path:
    """``$ZOO_CATALOG``, else the zoo.yaml shipped in the wheel, else the source checkout's."""
    env = os.environ.get("ZOO_CATALOG")
    if env:
        return Path(env).expanduser()
    packaged = PACKAGE_DIR / "zoo.yaml"
    if packaged.is_file():
        return packaged
    return PACKAGE_DIR.parent / "zoo.yaml"


def cache_dir() -> Path:
    """``$ZOO_CACHE_DIR``, else the platform's user cache directory for zoo."""
    env = os.environ.get("ZOO_CACHE_DIR")
    return Path(env).expanduser() if env else Path(platformdirs.user_cache_dir("zoo", appauthor=False))


def weights_path(sha256: str, file_name: str) -> Path:
    """Cache location of a weights file, keyed by its content hash."""
    return cache_dir() / "weights" / sha256 / file_name

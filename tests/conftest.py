"""Shared test set-up: an isolated weights/artifact cache and the catalog."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from zoo.catalog import Catalog
from zoo.paths import catalog_path

REPO = Path(__file__).resolve().parent.parent
CATALOG = Catalog.load()
VARIANTS = CATALOG.names
REPORTED = [v.name for v in CATALOG if v.reported is not None]


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every test session gets its own cache: nothing from the user's cache leaks in."""
    cache = tmp_path_factory.mktemp("zoo-cache")
    old = os.environ.get("ZOO_CACHE_DIR")
    os.environ["ZOO_CACHE_DIR"] = str(cache)
    yield cache
    if old is None:
        os.environ.pop("ZOO_CACHE_DIR", None)
    else:
        os.environ["ZOO_CACHE_DIR"] = old


@pytest.fixture
def catalog_copy(tmp_path: Path) -> Path:
    """A writable copy of zoo.yaml for tests that edit the catalog."""
    dst = tmp_path / "zoo.yaml"
    shutil.copyfile(catalog_path(), dst)
    return dst

"""Shared test set-up: an isolated weights/artifact cache, a writable catalog copy, and the
session's one export of the default-tier variants (:mod:`tests.helpers.artifacts`).

Helpers live in the package ``tests.helpers``; constants such as the catalog are imported from
:mod:`tests.helpers.catalog`, never from this file.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.helpers.artifacts import SharedExport, export_default_set
from tests.helpers.split import SplitExport, export_split_set
from zoo.paths import catalog_path


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


@pytest.fixture(scope="session")
def exported(isolated_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> SharedExport:
    """base-c128 and fgaf3 in every format and precision, exported once per session through the
    real CLI into one shared directory. Read-only: copy what you change (``exported.copy``).
    Checked at the end of the session: a test that changed an installed file fails here."""
    shared = export_default_set(tmp_path_factory.mktemp("shared-artifacts"))
    yield shared
    changed = sorted(k for k, v in shared.snapshot().items() if shared.files.get(k) != v)
    changed += sorted(set(shared.files) - set(shared.snapshot()))
    assert not changed, f"tests changed the shared artifacts (copy them first): {changed}"


@pytest.fixture(scope="session")
def split_exported(isolated_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> SplitExport:
    """base-c128 (joint attention) and fgaf3 (asymmetric) as init + track split artifacts in every
    format and precision, exported once per session through ``zoo export --split``. Read-only."""
    return export_split_set(tmp_path_factory.mktemp("split-artifacts"))


@pytest.fixture
def catalog_copy(tmp_path: Path) -> Path:
    """A writable copy of zoo.yaml for tests that edit the catalog."""
    dst = tmp_path / "zoo.yaml"
    shutil.copyfile(catalog_path(), dst)
    return dst


@pytest.fixture(scope="session")
def arm64_emu(isolated_cache: Path) -> dict:
    """The emulated aarch64 device, set up once per session in the isolated cache (its record)."""
    from tests.helpers.devices import arm64_emu_or_skip
    return arm64_emu_or_skip()

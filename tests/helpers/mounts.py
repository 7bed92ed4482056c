"""Real full and read-only file systems for tests: small tmpfs mounts (needs root / CAP_SYS_ADMIN).

``chmod 0o555`` does not stop root, so read-only is a tmpfs remounted ``ro``; full is a tmpfs
of a few KiB, where writes fail with ENOSPC exactly as on a full disk. Where mounting is not
allowed the test is skipped with the reason.
"""
from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


def _mount(*args: str) -> None:
    proc = subprocess.run(["mount", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip() or 'mount failed'}): needs root")


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    """``tmpfs(name, size="64k", populate=None, ro=False)``: a fresh tmpfs mounted at tmp_path/name.

    ``populate(path)`` runs before a read-only remount. Every mount is undone after the test.
    """
    mounted: list[Path] = []

    def make(name: str, size: str = "64k", populate: Callable[[Path], None] | None = None, ro: bool = False) -> Path:
        where = tmp_path / name
        where.mkdir()
        _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where))
        mounted.append(where)
        if populate:
            populate(where)
        if ro:
            _mount("-o", "remount,ro", str(where))
        return where

    yield make
    for where in reversed(mounted):
        subprocess.run(["umount", "-l", str(where)], capture_output=True)

"""Small file helpers: atomic writes, an atomic directory swap, streaming and cached sha256, and
OS errors as short phrases."""
from __future__ import annotations

import errno
import hashlib
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: (real path, size, mtime_ns, inode) -> sha256 of files hashed by this process
_HASHES: dict[tuple[str, int, int, int], str] = {}
_HASHES_LOCK = threading.Lock()


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_cached(path: Path) -> str:
    """:func:`sha256_file`, remembered per (file, size, mtime, inode) for the life of the process:
    an unchanged file is hashed once however often it is checked; a rewritten one again."""
    st = os.stat(path)
    key = (os.path.realpath(path), st.st_size, st.st_mtime_ns, st.st_ino)
    with _HASHES_LOCK:
        if key in _HASHES:
            return _HASHES[key]
    digest = sha256_file(Path(path))
    with _HASHES_LOCK:
        _HASHES[key] = digest
    return digest


def verified_file(path: Path, sha256: str, size: int | None = None) -> bool:
    """``path`` exists with the expected size and sha256. A file that exists but does not match is
    deleted (never served); the caller holds the file's lock."""
    path = Path(path)
    if not path.is_file():
        return False
    if (size is None or path.stat().st_size == size) and sha256_cached(path) == sha256:
        return True
    path.unlink(missing_ok=True)
    return False


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` only on success."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; the result should look like any written file
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def atomic_write_bytes(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` through a temporary file and a rename."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def swap_dir(new: Path, dest: Path, scratch: Path) -> None:
    """Put directory ``new`` at ``dest`` (same file system): an existing ``dest`` is first renamed
    into a temporary folder under ``scratch``, then removed, so ``dest`` is never half-written."""
    old = None
    if dest.exists():
        scratch.mkdir(parents=True, exist_ok=True)
        old = Path(tempfile.mkdtemp(prefix=f"{dest.parent.name}--{dest.name}--old-", dir=scratch))
        os.replace(dest, old / "previous")
    os.replace(new, dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def os_reason(exc: OSError) -> str:
    """``exc`` as a short phrase: ``No space left on device``, ``Read-only file system: /x`` ...

    A full device is named by the caller: the file an ENOSPC carries may be the copy's source.
    """
    text = exc.strerror or str(exc) or type(exc).__name__
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return text
    return f"{text}: {exc.filename}" if exc.filename else text

"""Small file helpers: atomic writes, an atomic directory swap, streaming and cached sha256, and
OS errors as short phrases.

Every file the toolchain writes goes through :func:`atomic_path` (or :func:`atomic_write_bytes`),
which applies the one rule of :func:`output_target`:

- a regular file, new or existing, is written beside itself and renamed onto its path when
  complete, so it is never half-written (a failed write leaves the old file as it was);
- a symbolic link is followed: its final target is written that way, and the link stays;
- a character device (``/dev/null``, a terminal) or a FIFO is written through, in place, as is
  an open descriptor (``/dev/stdout``, ``/dev/fd/3``: a pipe, a terminal or the file it is);
- ``-`` is standard output;
- nothing else is replaced: a directory, a socket or a block device is an :class:`OSError`.
"""
from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import stat
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from zoo.errors import UsageError, ZooError

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


class Target(NamedTuple):
    """Where and how an output is written (:func:`output_target`)."""

    #: ``"file"`` (a regular file: replaced by a rename), ``"through"`` (a character device or a
    #: FIFO: written in place) or ``"stdout"`` (``-``)
    kind: str
    #: the path written: a symbolic link's final target (``-`` for stdout)
    path: Path


#: a process's open descriptor: its link names a pipe or socket that no path reaches (``pipe:[123]``)
_DESCRIPTOR = re.compile(r"^/(proc/(self|\d+)|dev)/fd/\d+$")


def _open_descriptor(path: Path) -> bool:
    """``path`` is, or links to, an open descriptor (``/dev/stdout`` -> ``/proc/self/fd/1``)."""
    current = os.path.abspath(path.expanduser())
    for _ in range(40):  # the kernel's limit on links followed
        if _DESCRIPTOR.match(current):
            return True
        if not os.path.islink(current):
            return False
        current = os.path.normpath(os.path.join(os.path.dirname(current), os.readlink(current)))
    return False


def file_kind(mode: int) -> str:
    """What an ``st_mode`` is, as a message says it: "a regular file", "a directory", "a FIFO",
    "a character device", "a block device", "a socket"."""
    for test, name in ((stat.S_ISREG, "a regular file"), (stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def read_regular(path: Path | str, max_bytes: int, what: str) -> bytes:
    """The bytes of a regular file (a symlink is followed), at most ``max_bytes``: a FIFO, a
    device, a directory or a larger file is a one-line :class:`UsageError` naming ``what`` the
    file should have been, never a hang or a read until memory runs out."""
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise UsageError(f"{path}: is {file_kind(st.st_mode)}, not {what}")
        if st.st_size > max_bytes:
            raise UsageError(f"{path}: {st.st_size / 2**20:.0f} MiB is too large for {what} (max {max_bytes >> 20} MiB)")
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise UsageError(f"{path}: larger than {max_bytes >> 20} MiB: not {what}")
    return data


def output_target(target: Path | str) -> Target:
    """How an output at ``target`` is written, the rule every writer follows (see the module's
    docstring). A symbolic link is followed to its final target (created if missing). A
    directory, a socket, a block device or a link loop raises :class:`OSError` naming ``target``."""
    if str(target) == "-":
        return Target("stdout", Path("-"))
    if _open_descriptor(Path(target)):  # /dev/stdout, /dev/fd/3: the descriptor's file, pipe or terminal, in place
        return Target("through", Path(target))
    real = Path(os.path.realpath(Path(target).expanduser()))
    try:
        mode = os.stat(real).st_mode
    except FileNotFoundError:
        return Target("file", real)
    except OSError as exc:  # a link loop, a path under a file ...
        raise OSError(exc.errno, exc.strerror, str(target)) from None
    if stat.S_ISREG(mode):
        return Target("file", real)
    if stat.S_ISCHR(mode) or stat.S_ISFIFO(mode):
        return Target("through", real)
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, "Is a directory", str(target))
    raise OSError(errno.EINVAL, f"{file_kind(mode)}, not replaced (outputs are regular files, character devices or FIFOs)", str(target))


def _write_through(out: Target, data: bytes | None = None, source: Path | None = None) -> None:
    """Write ``data`` (or the bytes of file ``source``) into a character device, a FIFO or stdout."""
    if out.kind == "stdout":
        sys.stdout.flush()
        stream = getattr(sys.stdout, "buffer", None)
        if stream is None:  # a text-only stdout (some embedding): bytes of UTF-8 text only
            sys.stdout.write((data if data is not None else Path(source).read_bytes()).decode("utf-8"))
            sys.stdout.flush()
            return
    else:
        stream = open(out.path, "wb")  # noqa: SIM115 - closed below; a FIFO blocks here until read
    try:
        if data is not None:
            stream.write(data)
        else:
            with open(source, "rb") as src:
                shutil.copyfileobj(src, stream, 1 << 20)
        stream.flush()
    except OSError as exc:
        if exc.filename is None and out.kind != "stdout":
            raise OSError(exc.errno, exc.strerror, str(out.path)) from None
        raise
    finally:
        if out.kind != "stdout":
            stream.close()


@contextmanager
def atomic_path(target: Path | str, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path (ending in ``suffix``) to write ``target``'s bytes to; when the block
    ends without an error they become ``target`` by :func:`output_target`'s rule: renamed onto a
    regular file (a symlink's target), copied into a character device, a FIFO or stdout (``-``).
    An error in the block leaves ``target`` untouched. The temporary file lives beside a regular
    target (same file system: the rename is atomic), in the system's temporary folder otherwise."""
    out = output_target(target)
    folder = None
    if out.kind == "file":
        folder = out.path.parent
        folder.mkdir(parents=True, exist_ok=True)
    name = out.path.name if out.kind != "stdout" else "stdout"
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=suffix, dir=folder)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; the result should look like any written file
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if out.kind == "file":
            os.replace(tmp_path, out.path)
        else:
            _write_through(out, source=tmp_path)
    finally:
        tmp_path.unlink(missing_ok=True)


def atomic_write_bytes(target: Path | str, data: bytes) -> None:
    """Write ``data`` to ``target`` by :func:`output_target`'s rule: a regular file through a
    temporary file and a rename; a character device, a FIFO or stdout (``-``) directly."""
    out = output_target(target)
    if out.kind != "file":
        _write_through(out, data=data)
        return
    with atomic_path(out.path) as tmp:
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


#: errnos that mean the path itself is wrong (a usage error), not the machine's state
PATH_ERRNOS = (errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG, errno.ELOOP, errno.EINVAL)


def write_failure(what: str, where: Path | str, exc: OSError) -> ZooError:
    """The one-line error for failing to write ``what`` at ``where``: a :class:`UsageError` when
    the path cannot hold it (under a file, a directory in the way), else a :class:`ZooError` (full
    disk, read-only file system, no permission), both naming ``where`` and the reason."""
    reason = exc.strerror or type(exc).__name__
    if exc.errno == errno.ENOTDIR:
        reason = "a part of this path is a file, not a folder"
    cls = UsageError if exc.errno in PATH_ERRNOS else ZooError
    return cls(f"cannot write {what} in {where}: {reason}")


@contextmanager
def writing(what: str, where: Path | str) -> Iterator[None]:
    """Run the block that writes ``what`` at ``where``; an :class:`OSError` in it becomes
    :func:`write_failure`'s one line (naming ``where``: the error's own file may be a temporary)."""
    try:
        yield
    except OSError as exc:
        raise write_failure(what, where, exc) from None


#: picture formats a ``--plot FILE`` may name (matplotlib writes each natively)
PLOT_FORMATS = ("png", "pdf", "svg")


def plot_format(path: Path | str) -> str:
    """The picture format ``path``'s suffix names (``png`` for ``-`` and for a device or FIFO
    without one); a :class:`UsageError` for another suffix, so a ``.pdf`` never holds PNG bytes."""
    suffix = Path(str(path)).suffix.lower().lstrip(".")
    if not suffix and (str(path) == "-" or not Path(path).is_file() and Path(path).exists()):
        return "png"
    if suffix not in PLOT_FORMATS:
        raise UsageError(f"{path}: a plot is written as {', '.join('.' + f for f in PLOT_FORMATS)}; "
                         f"'{Path(str(path)).suffix or '(no suffix)'}' is none of them")
    return suffix

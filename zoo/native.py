"""Output that libraries print on their own: silence it, or capture it, for a block.

Bottom layer (no zoo imports): used by the exporters (converters, the TFLite interpreter that
verifies a conversion) and by the runners (:mod:`compare.runners` re-exports :func:`native_quiet`).

Both redirect something process-wide (file descriptors 1 and 2; ``sys.stdout``/``sys.stderr``)
while ``zoo export --jobs N`` converts and verifies in several threads at once. Done naively, two
overlapping blocks restore each other's redirect and leave the process writing to ``/dev/null``
or into a buffer (``zoo export --json -`` then exits 0 with nothing on stdout); so the fd-level
silence is shared and counted (the last block out restores the real descriptors) and Python-level
captures take turns.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import tempfile
import threading

_FDS_LOCK = threading.Lock()
#: fd -> (blocks inside, the real descriptor's copy, the /dev/null descriptor)
_SILENCED: dict[int, tuple[int, int, int]] = {}
_CAPTURE_LOCK = threading.RLock()


@contextlib.contextmanager
def native_quiet(fds: tuple[int, ...] = (1, 2)):
    """Send the process's C-level stdout/stderr to /dev/null for the block (runtimes that print
    banners on import or load, e.g. TFLite's "INFO: Created TensorFlow Lite XNNPACK delegate").
    Blocks may overlap across threads: the descriptors come back when the last one ends."""
    with _FDS_LOCK:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd in fds:
            depth, saved, devnull = _SILENCED.get(fd, (0, -1, -1))
            if depth == 0:
                saved, devnull = os.dup(fd), os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, fd)
            _SILENCED[fd] = (depth + 1, saved, devnull)
    try:
        yield
    finally:
        with _FDS_LOCK:
            for fd in fds:
                depth, saved, devnull = _SILENCED[fd]
                if depth == 1:
                    os.dup2(saved, fd)
                    os.close(saved)
                    os.close(devnull)
                    del _SILENCED[fd]
                else:
                    _SILENCED[fd] = (depth - 1, saved, devnull)


@contextlib.contextmanager
def captured_output(buf: io.StringIO):
    """``sys.stdout`` and ``sys.stderr`` into ``buf`` for the block (a converter's chatter, kept for
    its build log). Captures take turns across threads: the swap is process-wide."""
    with _CAPTURE_LOCK, contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        yield buf


#: ffmpeg's ``[mov,mp4,m4a,3gp,3g2,mj2 @ 0x5578bec67500] `` line prefix
_AV_PREFIX = re.compile(r"^\[[^\]]* @ 0x[0-9a-f]+\]\s*")


class NativeLines:
    """What a C library printed on stderr during a :func:`native_stderr` block (after it ends)."""

    def __init__(self):
        self.lines: list[str] = []

    @property
    def first(self) -> str | None:
        """The first line without ffmpeg's ``[demuxer @ 0x...]`` prefix (None when nothing was printed)."""
        return _AV_PREFIX.sub("", self.lines[0]).strip() if self.lines else None


@contextlib.contextmanager
def native_stderr(limit: int = 1 << 20):
    """C-level stderr (fd 2: ffmpeg's and libjpeg's messages) into a temporary file for the block;
    the yielded :class:`NativeLines` holds its first ``limit`` bytes as lines afterwards, for the
    caller to summarise in one line. Inside a :func:`native_quiet` block it captures nothing (the
    output already goes nowhere); blocks of either kind may start inside it."""
    result = NativeLines()
    sink = None
    with _FDS_LOCK:
        sys.stderr.flush()
        if _SILENCED.get(2, (0, -1, -1))[0] == 0:
            sink = tempfile.TemporaryFile()
            saved, target = os.dup(2), os.dup(sink.fileno())
            os.dup2(target, 2)
            _SILENCED[2] = (1, saved, target)
        else:
            depth, saved, target = _SILENCED[2]
            _SILENCED[2] = (depth + 1, saved, target)
    try:
        yield result
    finally:
        with _FDS_LOCK:
            depth, saved, target = _SILENCED[2]
            if depth == 1:
                os.dup2(saved, 2)
                os.close(saved)
                os.close(target)
                del _SILENCED[2]
            else:
                _SILENCED[2] = (depth - 1, saved, target)
        if sink is not None:
            sink.seek(0)
            result.lines = [line for line in sink.read(limit).decode("utf-8", "replace").splitlines() if line.strip()]
            sink.close()

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
import sys
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

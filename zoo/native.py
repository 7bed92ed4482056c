"""Native libraries that print on their own: silence the C-level stdout/stderr for a block.

Bottom layer (no zoo imports): used by the exporters (the TFLite interpreter that verifies a
conversion) and by the runners (:mod:`compare.runners` re-exports :func:`native_quiet`).
"""
from __future__ import annotations

import contextlib
import os
import sys


@contextlib.contextmanager
def native_quiet(fds: tuple[int, ...] = (1, 2)):
    """Send the process's C-level stdout/stderr to /dev/null for the block (runtimes that print
    banners on import or load, e.g. TFLite's "INFO: Created TensorFlow Lite XNNPACK delegate").
    File descriptors are process-wide: keep the block short."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(fd) for fd in fds]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in fds:
            os.dup2(devnull, fd)
        yield
    finally:
        for fd, copy in zip(fds, saved):
            os.dup2(copy, fd)
            os.close(copy)
        os.close(devnull)

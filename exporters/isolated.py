"""Builds in worker processes: the formats whose :class:`zoo.backends.Backend` declares ``own_process``.

Under ``zoo export --jobs N`` (N > 1) such a format's builds run in a spawned worker process of its own
(one pool per format, up to N workers, reused across the run so the converter is imported once), and
the rest of the pipeline goes on in the parent. Two reasons, declared per backend: a converter that is
not safe beside other PyTorch work in one process (litert-torch), and one whose lowering is pure Python
and holds the GIL for seconds (ExecuTorch's FX passes), so that threads cannot overlap it with anything.

The worker builds with the very same code path (:meth:`exporters.pipeline.Pipeline.export_here`, jobs=1,
the parent's catalog object, verifier and calibration source pickled once at worker start: no file is
re-read below the top) and relays its progress events to the parent through a queue; the artifact lock
is a file lock, so parent and workers exclude each other on the same artifact.
"""
from __future__ import annotations

import atexit
import contextlib
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from exporters.plan import Row
from zoo.artifacts import ArtifactKey
from zoo.errors import ZooError
from zoo.procs import exit_with_parent_process, ignore_sigint, sigint_blocked

_STOP = None  # the relay's end marker
_PID = "pid"  # a worker's first event: its process id
_worker: Any = None  # the exporters.pipeline.Pipeline a worker process builds with


def _start_worker(settings: dict[str, Any], events) -> None:
    """Worker initializer: the pipeline it builds with, whose events go to the parent's queue."""
    global _worker
    from exporters.pipeline import Pipeline

    ignore_sigint()  # Ctrl-C is the parent's business: it kills the workers (ProcessBuilds.close)
    exit_with_parent_process()  # a SIGKILLed zoo export leaves no worker converting (started by a pipeline thread)
    events.put((_PID, os.getpid()))
    _worker = Pipeline(**settings, jobs=1, on_event=lambda key, stage: events.put((key, stage)))
    atexit.register(_skip_teardown)


def _skip_teardown() -> None:
    """At a worker's exit, leave without the interpreter's module teardown: with torch and a converter
    loaded it took ~1 s per worker (measured, 2-CPU Xeon VM), and the parent waits for it. Runs after
    the worker has sent its last result and multiprocessing's own exit hooks (the event queue is a
    ``SimpleQueue``: each put is written through at once, nothing is left to flush)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _build(key: ArtifactKey) -> Row:
    assert _worker is not None, "worker not initialised"
    return _worker.export_here(key)


class WorkerLost(ZooError):
    """A build's worker process died before it returned the build's row."""


class ProcessBuilds:
    """Per-format process pools for one pipeline run; :meth:`close` when the run is over."""

    def __init__(self, settings: dict[str, Any], on_event: Callable[[ArtifactKey, str], None], workers: int):
        self._settings, self._on_event, self._workers = settings, on_event, max(1, workers)
        self._context = multiprocessing.get_context("spawn")  # never fork a process that holds torch's threads
        self._events = self._context.SimpleQueue()
        self._relay = threading.Thread(target=self._forward, name="zoo-build-events", daemon=True)
        self._relay.start()
        self._pools: dict[str, ProcessPoolExecutor] = {}
        self._pids: list[int] = []
        self._closed = False
        self._lock = threading.Lock()

    def _forward(self) -> None:
        while (item := self._events.get()) is not _STOP:
            if item[0] == _PID:
                self._pids.append(item[1])
            else:
                self._on_event(*item)

    def build(self, key: ArtifactKey) -> Row:
        """Build ``key`` in its format's worker pool and wait for its row."""
        with self._lock:
            if self._closed:
                raise WorkerLost(f"{key.name}: not built: the run was stopped")
            pool = self._pools.get(key.format)
            if pool is None:
                pool = self._pools[key.format] = ProcessPoolExecutor(
                    self._workers, mp_context=self._context, initializer=_start_worker,
                    initargs=(self._settings, self._events))
        try:
            with sigint_blocked():  # a worker is spawned inside submit: no Ctrl-C half-way through its start
                future = pool.submit(_build, key)
            return future.result()
        except BrokenProcessPool:
            with self._lock:  # the next build of this format gets a fresh pool
                if self._pools.get(key.format) is pool:
                    del self._pools[key.format]
            pool.shutdown(wait=False)
            raise WorkerLost(f"{key.name}: the {key.format} build process exited abruptly (out of memory, a signal, or a "
                             "script that starts zoo with jobs > 1 without an `if __name__ == \"__main__\":` guard)") from None

    def close(self, abort: bool = False) -> None:
        """Stop the workers (after their builds; ``abort``: at once, killed) and the event relay
        (called again after an abort, it returns at once)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if abort:
            for pid in self._pids:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
        for pool in self._pools.values():  # every pool told first: the workers leave side by side
            pool.shutdown(wait=False, cancel_futures=True)
        for pool in self._pools.values():
            pool.shutdown(wait=True)
        self._events.put(_STOP)
        self._relay.join(timeout=10)
        self._events.close()

"""How many threads (or threads x instances) a request may ask for: one rule for the CLI's
``--threads``/``--concurrency`` (:func:`zoo.cli.options.counts`) and the Python API's ``threads=``."""
from __future__ import annotations

import os

from zoo.errors import UsageError

#: how many threads x instances per CPU a request may ask for without --allow-oversubscribe
OVERSUBSCRIBE = 8


def resource_limit() -> int:
    """The most threads (or threads x instances) a command runs without ``--allow-oversubscribe``:
    ``OVERSUBSCRIBE`` x the CPUs this process may use."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return OVERSUBSCRIBE * max(1, cpus)


def check_count(n, what: str, allow_oversubscribe: bool = False,
                lift: str = "pass --allow-oversubscribe to run it anyway") -> int:
    """``n`` as a whole number >= 1 and at most :func:`resource_limit` (unless ``allow_oversubscribe``):
    an ``int`` (not a bool, a float or a string); anything else is a one-line usage error."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise UsageError(f"{what} must be a whole number, got {n!r}")
    if n < 1:
        raise UsageError(f"{what} must be >= 1, got {n}")
    limit = resource_limit()
    if n > limit and not allow_oversubscribe:
        raise UsageError(f"{what} {n} is more than this machine can run ({limit} = {OVERSUBSCRIBE} x "
                         f"{limit // OVERSUBSCRIBE} CPUs); {lift} (risks exhausting memory and stalling the machine)")
    return n

"""Choosing names from a fixed list: exact names, wildcards, ``all``, and "did you mean"."""
from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Iterable

from zoo.errors import UsageError


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` or an empty string."""
    close = difflib.get_close_matches(word, list(choices), n=3, cutoff=0.5)
    if not close:
        return ""
    return " (did you mean " + " or ".join(repr(c) for c in close) + "?)"


def choose(values: Iterable[str], choices: tuple[str, ...], what: str, default: tuple[str, ...] = ()) -> list[str]:
    """The ``choices`` named by ``values`` (names, wildcards such as ``tfl*``, ``all``), once each,
    in the order of ``choices``; ``default`` when ``values`` is empty. An unknown name is a usage
    error with a "did you mean" and the list of choices."""
    chosen: set[str] = set()
    for value in list(values) or list(default):
        if value == "all":
            hits = list(choices)
        elif any(c in value for c in "*?["):
            hits = fnmatch.filter(choices, value)
        else:
            hits = [value] if value in choices else []
        if not hits:
            raise UsageError(f"unknown {what} {value!r}{did_you_mean(value, choices)}; choose from {', '.join(choices)}")
        chosen.update(hits)
    return [c for c in choices if c in chosen]

"""Option types shared by commands: a path that may not be empty, a float that must be finite.

``--to ""`` or ``--out ""`` would silently mean the current directory (``Path("")`` is ``.``),
so an empty path is a usage error (exit 2) before anything runs. ``nan`` and ``inf`` pass
click's range checks (comparisons with NaN are false), so :class:`FiniteFloatRange` refuses
them explicitly.
"""
from __future__ import annotations

import math
from pathlib import Path

import click


class NonEmptyPath(click.Path):
    """``click.Path`` that refuses an empty (or blank) value instead of reading it as ``.``."""

    def convert(self, value, param, ctx):
        if isinstance(value, str) and not value.strip():
            self.fail("an empty path is not allowed (use '.' for the current directory)", param, ctx)
        return super().convert(value, param, ctx)


def nonempty_path(**kwargs) -> NonEmptyPath:
    """A :class:`NonEmptyPath` returning :class:`pathlib.Path` (``click.Path`` keyword arguments)."""
    kwargs.setdefault("path_type", Path)
    return NonEmptyPath(**kwargs)


class FiniteFloatRange(click.FloatRange):
    """``click.FloatRange`` that also refuses ``nan`` and ``inf``."""

    def convert(self, value, param, ctx):
        rv = super().convert(value, param, ctx)
        if not math.isfinite(rv):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return rv

"""Interleaved repeated blocks: what a figure is worth on a shared machine.

A timing run is ``repeats`` blocks. Each block measures every row once (one process each, the
order reversed on odd blocks so a drift in machine load hits every row alike) with the ceiling
(:mod:`compare.measure.ceiling`) measured beside it, at the start of the block. Per row, the
blocks give:

- its figures (median, p90, ... over the runs of the blocks kept) and the **interval** of its
  block medians (min-max) with the **spread**: ``(max - min) / median`` of the block medians, %;
- which blocks are kept: a block whose timed runs saw other processes compete for the CPUs
  (:func:`compare.measure.machine.contention`) is left out when another block was clean, so more
  repeats make a row reliable when the machine allows it;
- beside the ceiling's own spread, the **verdict** (:func:`judge`): which figure is noisy (the
  row's, the ceiling's, both, named with their spreads), and whether a row above 100 % of its
  precision's ceiling is the row's fault or the ceiling's.

Functions here are pure: they take block figures and return stats and verdicts.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: a figure whose block medians spread more than this (%) is noisy
NOISY_SPREAD_PCT = 10.0
#: bounds of ``--repeats``
MAX_REPEATS = 20


def block_order(items: list, block: int) -> list:
    """The rows of block ``block`` in the order they are measured (reversed on odd blocks)."""
    return list(items) if block % 2 == 0 else list(reversed(items))


@dataclass(frozen=True)
class Spread:
    """A figure measured in several blocks: its median over them, their range and spread."""

    median: float
    lo: float
    hi: float
    blocks: int

    @property
    def pct(self) -> float | None:
        """``(hi - lo) / median`` in %; None from a single block (nothing to compare)."""
        if self.blocks < 2 or not self.median:
            return None
        return 100.0 * (self.hi - self.lo) / self.median

    @property
    def noisy(self) -> bool:
        return self.pct is not None and self.pct > NOISY_SPREAD_PCT


def spread(values: list[float]) -> Spread | None:
    """The :class:`Spread` of one figure's block values (None without any finite value)."""
    v = [float(x) for x in values if x is not None and np.isfinite(x)]
    if not v:
        return None
    return Spread(float(np.median(v)), min(v), max(v), len(v))


def kept_blocks(contended: list[bool]) -> tuple[list[int], int]:
    """The blocks a row's figures come from: the uncontended ones when there are any, else all;
    and how many were left out."""
    clean = [i for i, c in enumerate(contended) if not c]
    if clean and len(clean) < len(contended):
        return clean, len(contended) - len(clean)
    return list(range(len(contended))), 0


def _pct(s: Spread | None) -> str:
    return "n/a" if s is None or s.pct is None else f"{s.pct:.0f}%"


@dataclass(frozen=True)
class Verdict:
    """What the blocks say about one row beside its ceiling."""

    #: the noisy figure(s), named: "row", "ceiling", "row and ceiling"; None when both are steady
    noisy: str | None
    #: why the row's own figure cannot be trusted (the row is flagged unreliable); None: it can
    row_reason: str | None
    #: why the % of ceiling cannot be trusted while the row can (the ceiling is to blame)
    ceiling_note: str | None


def judge(row: Spread | None, ceiling: Spread | None, pct_of_ceiling: float | None, precision: str) -> Verdict:
    """The verdict on a row whose block medians spread as ``row`` (latency) and whose precision's
    ceiling spread as ``ceiling`` (GFLOP/s), at ``pct_of_ceiling`` of that ceiling.

    A noisy row (block medians spread more than :data:`NOISY_SPREAD_PCT`) is unreliable. Above
    100 % of the ceiling, the noisier of the two figures is blamed: a noisy ceiling leaves the row
    trusted (the % is not); a steady ceiling and a steady row mean the runtime's kernels beat that
    ceiling (fewer multiplies than the MAC count, a faster kernel): a note, not a fault of the row.
    From one block nobody can tell which is noisy: the row is flagged, asking for ``--repeats``.
    """
    names = [n for n, s in (("row", row), ("ceiling", ceiling)) if s is not None and s.noisy]
    noisy = " and ".join(names) or None
    r, c = _pct(row), _pct(ceiling)
    row_reason = ceiling_note = None
    if row is not None and row.noisy:
        row_reason = f"noisy row: block medians {row.lo:.2f}-{row.hi:.2f} ms, spread {r} (the {precision} ceiling's: {c})"
    if pct_of_ceiling is not None and pct_of_ceiling > 100:
        beyond = f"{pct_of_ceiling:.0f}% of the {precision} ceiling"
        one_block = (row is None or row.blocks < 2) and (ceiling is None or ceiling.blocks < 2)
        if one_block:
            row_reason = f"{beyond} from 1 block: the row or the ceiling is noisy (--repeats 3 tells which)"
        elif ceiling is not None and ceiling.noisy and (row is None or row.pct is None or ceiling.pct >= row.pct):
            ceiling_note = f"{beyond}: noisy ceiling, spread {c} (the row's: {r})"
        elif row_reason is not None:
            row_reason = f"{beyond}: {row_reason}"
        else:
            ceiling_note = f"{beyond}, both steady (row {r}, ceiling {c}): the runtime beats this ceiling's kernels"
    elif ceiling is not None and ceiling.noisy:
        ceiling_note = f"noisy {precision} ceiling, spread {c} (the row's: {r}): % ceil is rough"
    return Verdict(noisy, row_reason, ceiling_note)


def noisy_label(verdict: Verdict, row: Spread | None, ceiling: Spread | None) -> str | None:
    """A short cell for tables: each noisy figure with its spread (``row 25%``, ``ceiling 38%``)."""
    if verdict.noisy is None:
        return None
    parts = [f"{n} {_pct(s)}" for n, s in (("row", row), ("ceiling", ceiling)) if s is not None and s.noisy]
    return ", ".join(parts)


def rate_row(row, gflops: float, latency: Spread | None, ceiling: Spread | None, kernel: str | None, precision: str) -> Verdict:
    """Fill a timing row's (or bench cell's) ceiling and noise fields from its effective
    ``gflops``, its block latencies and its precision's ceiling, and flag it when its own figure
    is to blame (``row.flag``); returns the verdict. The row names: ``gflops``, ``ceiling_precision``,
    ``ceiling_gflops``, ``ceiling_kernel``, ``ceiling_spread_pct``, ``pct_of_ceiling``, ``noisy``,
    ``ceiling_note``."""
    row.gflops = gflops
    if ceiling is not None:
        row.ceiling_precision = precision
        row.ceiling_gflops, row.ceiling_kernel, row.ceiling_spread_pct = ceiling.median, kernel, ceiling.pct
        row.pct_of_ceiling = 100.0 * gflops / ceiling.median if ceiling.median else None
    verdict = judge(latency, ceiling, row.pct_of_ceiling, precision)
    row.noisy, row.ceiling_note = noisy_label(verdict, latency, ceiling), verdict.ceiling_note
    if verdict.row_reason:
        row.flag(verdict.row_reason)
    return verdict


def noise_only(verdict: Verdict, flagged_before: bool) -> bool:
    """The verdict flagged a row that was trusted before only because its block medians spread
    (no contention, nothing beyond its ceiling): the row's figure is rough, not wrong."""
    return not flagged_before and verdict.row_reason is not None and verdict.row_reason.startswith("noisy row")

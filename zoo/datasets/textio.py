"""Numeric text files of tracking benchmarks: boxes (x,y,w,h per line) and 0/1 flags.

:func:`boxes_text` is the one writer of box files, :func:`read_table` the one reader.

Readers are fast on well-formed files (``numpy.loadtxt``) and fall back to a line-by-line parse
that either accepts the file (mixed separators, trailing separators) or raises
:class:`zoo.errors.UsageError` with one line naming the file and the line number.
"""
from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np

from zoo.errors import UsageError
from zoo.fileio import read_regular

_SPLIT = re.compile(r"[\s,;]+")
#: the largest annotation or result file read (LaSOT's longest sequence has ~10k lines of ~20 bytes)
MAX_TEXT_BYTES = 64 << 20
#: byte-order marks of encodings an annotation file is never written in (UTF-32 before UTF-16: FF FE 00 00 starts both)
_WIDE_BOMS = ((b"\xff\xfe\x00\x00", "UTF-32-LE"), (b"\x00\x00\xfe\xff", "UTF-32-BE"),
              (b"\xff\xfe", "UTF-16-LE"), (b"\xfe\xff", "UTF-16-BE"))


def _read_text(path: Path) -> str:
    """A regular file's text (a symlink is followed); a FIFO, a device or an oversized file is a
    one-line UsageError, never a hang or a read until memory runs out."""
    data = read_regular(path, MAX_TEXT_BYTES, "a text file")
    for bom, encoding in _WIDE_BOMS:
        if data.startswith(bom):
            raise UsageError(f"{path}: is {encoding} text (it starts with that byte-order mark); save it as UTF-8")
    return data.decode("utf-8-sig", errors="replace")  # a UTF-8 byte-order mark (Notepad's) is dropped


def _fields(line: str) -> list[str]:
    return [f for f in _SPLIT.split(line.strip()) if f]


def _slow_rows(path: Path, text: str, ncols: int, what: str) -> tuple[np.ndarray, list[int]]:
    """Parse line by line; return the rows and the 1-based line number of each row."""
    rows: list[list[float]] = []
    lines: list[int] = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = _fields(line)
        if not fields:
            continue
        if len(fields) != ncols:
            raise UsageError(f"{path}:{number}: expected {ncols} numbers ({what}), found {len(fields)}: {line.strip()[:60]!r}")
        try:
            rows.append([float(f) for f in fields])
        except ValueError:
            raise UsageError(f"{path}:{number}: not a number in {line.strip()[:60]!r}") from None
        lines.append(number)
    return np.asarray(rows, dtype=np.float64).reshape(-1, ncols), lines


def line_numbers(path: Path) -> list[int]:
    """1-based line number of each non-blank line (row ``i`` of a table is on line ``result[i]``)."""
    return [n for n, line in enumerate(_read_text(path).splitlines(), start=1) if line.strip()]


def read_table(path: Path, ncols: int = 4, what: str = "x,y,w,h") -> np.ndarray:
    """Rows of ``ncols`` numbers separated by commas, tabs or spaces, as a float64 array ``(N, ncols)``.

    Blank lines are skipped. An empty file, a line with another number of fields or a field that
    is not a number raises :class:`UsageError` naming the file and line.
    """
    path = Path(path)
    text = _read_text(path)
    if not text.strip():
        raise UsageError(f"{path}:1: empty file (expected {ncols} numbers per line: {what})")
    first = next(line for line in text.splitlines() if line.strip())
    delimiter = "," if "," in first else None
    try:
        data = np.loadtxt(io.StringIO(text), delimiter=delimiter, dtype=np.float64, ndmin=2)
        if data.shape[1] == ncols:
            return data
    except ValueError:
        pass
    return _slow_rows(path, text, ncols, what)[0]


#: pytracking's raw results (``<seq>.txt`` of ``zoo eval run``): tab separated, as pytracking's
#: ``_save_tracker_output`` writes them (``np.savetxt(..., delimiter='\t')``) and its
#: ``extract_results`` reads them (``load_text(..., delimiter=('\t', ','))``)
RESULTS_DELIMITER = "\t"
#: ``zoo track --out``'s boxes file: comma separated (its documented ``x,y,w,h`` per line, the
#: format ``--init`` takes and OTB's ground truth uses)
TRACK_DELIMITER = ","


def boxes_text(boxes, delimiter: str = TRACK_DELIMITER, decimals: int = 3) -> str:
    """Box files' text: one ``x<d>y<d>w<d>h`` line per box (``decimals`` places), ``delimiter``
    :data:`RESULTS_DELIMITER` for ``zoo eval run``'s results, :data:`TRACK_DELIMITER` for ``zoo
    track --out``; :func:`read_table` reads both back."""
    return "".join(delimiter.join(f"{float(v):.{decimals}f}" for v in row) + "\n" for row in boxes)


def read_flags(path: Path) -> np.ndarray:
    """0/1 flags (one per line, or one comma-separated line) as a float64 vector."""
    path = Path(path)
    text = _read_text(path)
    tokens = _SPLIT.split(text.strip())
    if not tokens or tokens == [""]:
        raise UsageError(f"{path}:1: empty file (expected 0/1 flags)")
    try:
        return np.array(tokens, dtype=np.float64)
    except ValueError:
        pass
    for number, line in enumerate(text.splitlines(), start=1):
        for field in _fields(line):
            try:
                float(field)
            except ValueError:
                raise UsageError(f"{path}:{number}: not a number: {field[:40]!r}") from None
    raise UsageError(f"{path}: cannot parse flags")  # pragma: no cover - the loop above finds the field


def row_line(path: Path, row: int) -> int:
    """The 1-based line number holding table row ``row`` (blank lines are not rows)."""
    numbers = line_numbers(path)
    return numbers[row] if row < len(numbers) else row + 1

"""Render row data as a rich table, JSON, CSV or Markdown. Only the CLI draws; library code
returns plain rows (lists of dicts)."""
from __future__ import annotations

import csv
import io
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from zoo.errors import ZooError
from zoo.fileio import atomic_write_bytes

_CONSOLES: dict[str, Console] = {}
_STATE = {"tables_to_stderr": False}


def _width(stream) -> int | None:
    # Piped output (CI logs, files) gets a wide page instead of rich's 80-column default.
    return None if stream.isatty() or "COLUMNS" in os.environ else 160


def err() -> Console:
    """The console on stderr: progress, notes, errors."""
    if "err" not in _CONSOLES:
        _CONSOLES["err"] = Console(stderr=True, width=_width(sys.stderr))
    return _CONSOLES["err"]


def out() -> Console:
    """The console tables are drawn on: stdout, or stderr once a report goes to stdout."""
    if _STATE["tables_to_stderr"]:
        return err()
    if "out" not in _CONSOLES:
        _CONSOLES["out"] = Console(width=_width(sys.stdout))
    return _CONSOLES["out"]


def tables_to_stderr() -> None:
    """A machine-readable report goes to stdout (``--json -``): draw everything else on stderr."""
    _STATE["tables_to_stderr"] = True


def reset() -> None:
    """Forget the consoles and the stdout routing (each CLI invocation starts afresh)."""
    _CONSOLES.clear()
    _STATE["tables_to_stderr"] = False


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    fmt: str = ""  # format spec for numbers, e.g. ".3f"
    justify: str = "right"
    #: 0 = always shown; higher numbers are dropped first when the terminal is too narrow
    drop: int = 0


#: the key of every per-runtime row: which variant, in which runtime, at which precision
KEY_COLUMNS = (Column("variant", "variant", justify="left"), Column("runtime", "runtime", justify="left"),
               Column("precision", "prec", justify="left"))


def _cell(value: Any, fmt: str) -> str:
    if value is None:
        return "-"
    if fmt and isinstance(value, (int, float)) and not isinstance(value, bool):
        return format(value, fmt)
    return str(value)


def fit_columns(rows: Sequence[dict], columns: Sequence[Column], width: int) -> list[Column]:
    """The columns that fit ``width`` characters: droppable ones (``drop`` > 0, highest first) are
    left out until the widest cells fit; text columns may still wrap."""
    cols = list(columns)

    def need(cs: list[Column]) -> int:
        return sum(max([len(c.title.split()[0]) if c.justify == "left" else len(c.title)]
                       + [len(_cell(r.get(c.key), c.fmt)) for r in rows if c.justify != "left"] + [4]) + 3
                   for c in cs) + 1

    while need(cols) > width and any(c.drop for c in cols):
        worst = max((c for c in cols if c.drop), key=lambda c: c.drop)
        cols.remove(worst)
    return cols


def rich_table(rows: Sequence[dict], columns: Sequence[Column], title: str | None = None,
               width: int | None = None) -> Table:
    """A rich table of ``rows``; columns that do not fit the console are dropped by priority
    (the title says how many; ``--json``/``--csv`` keep all) and text columns wrap."""
    width = width or out().width
    shown = fit_columns(rows, columns, width)
    if len(shown) < len(columns):
        hidden = len(columns) - len(shown)
        title = f"{title or ''} ({hidden} column{'s' if hidden > 1 else ''} hidden at this width: see --json/--csv)".strip()
    table = Table(title=title, header_style="bold")
    for col in shown:
        table.add_column(col.title, justify=col.justify, no_wrap=col.justify != "left", overflow="fold")
    for row in rows:
        table.add_row(*(_cell(row.get(c.key), c.fmt) for c in shown))
    return table


def to_json(data: Any) -> str:
    return json.dumps(data, indent=2, default=str) + "\n"


def to_csv(rows: Sequence[dict], columns: Sequence[Column]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([c.key for c in columns])
    for row in rows:
        writer.writerow(["" if row.get(c.key) is None else row.get(c.key) for c in columns])
    return buf.getvalue()


def to_markdown(rows: Sequence[dict], columns: Sequence[Column]) -> str:
    lines = ["| " + " | ".join(c.title for c in columns) + " |"]
    lines.append("|" + "|".join("---:" if c.justify == "right" else "---" for c in columns) + "|")
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(c.key), c.fmt) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def tables_csv(tables: dict[str, list[dict]]) -> str:
    """All tables in one CSV: a leading ``table`` column, then every key of every row (the union)."""
    keys = list(dict.fromkeys(["table", *(k for rows in tables.values() for row in rows for k in row)]))
    rows = [{"table": name, **row} for name, rows in tables.items() for row in rows]
    return to_csv(rows, [Column(k, k) for k in keys])


def write_text(path: Path, text: str) -> None:
    """Write a report atomically ('-' means stdout)."""
    if str(path) == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        try:
            atomic_write_bytes(Path(path), text.encode("utf-8"))
        except OSError as exc:
            raise ZooError(f"cannot write {path}: {exc.strerror or exc}") from None


def write_reports(rows: Sequence[dict], columns: Sequence[Column], json_file: Path | None = None,
                  csv_file: Path | None = None, markdown_file: Path | None = None, payload: Any = None) -> None:
    """Write the reports asked for: JSON (``payload`` or the rows), CSV and Markdown of the rows."""
    if json_file is not None:
        write_text(json_file, to_json(rows if payload is None else payload))
    if csv_file is not None:
        write_text(csv_file, to_csv(rows, columns))
    if markdown_file is not None:
        write_text(markdown_file, to_markdown(rows, columns))


def progress_bar(*, counted: bool = False):
    """The CLI's rich progress display on stderr (transient); ``counted`` adds a bar and N/M."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = [SpinnerColumn(), TextColumn("{task.description}")]
    if counted:
        columns += [BarColumn(), MofNCompleteColumn()]
    return Progress(*columns, TimeElapsedColumn(), console=err(), transient=True)


def export_reporter(progress, task, lock=None):
    """An export-pipeline ``on_event(target, stage)`` callback: final stages (built, reused,
    failed...) are printed as lines above the progress display, the others update ``task``."""
    import contextlib

    guard = lock or contextlib.nullcontext()

    def on_event(target, stage: str) -> None:
        with guard:
            if stage in ("built", "rebuilt", "reused", "failed"):
                progress.console.print(f"export {target.label}: {stage}", highlight=False)
            else:
                progress.update(task, description=f"export {target.label}: {stage}")

    return on_event

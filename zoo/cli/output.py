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

import click
from rich.console import Console
from rich.table import Table

from zoo.fileio import atomic_write_bytes

# Piped output (CI logs, files) gets a wide page instead of rich's 80-column default.
_PIPE_WIDTH = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 160
console = Console(width=_PIPE_WIDTH)
err_console = Console(stderr=True, width=_PIPE_WIDTH)


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    fmt: str = ""  # format spec for numbers, e.g. ".3f"
    justify: str = "right"


def _cell(value: Any, fmt: str) -> str:
    if value is None:
        return "-"
    if fmt and isinstance(value, (int, float)) and not isinstance(value, bool):
        return format(value, fmt)
    return str(value)


def rich_table(rows: Sequence[dict], columns: Sequence[Column], title: str | None = None) -> Table:
    table = Table(title=title, header_style="bold")
    for col in columns:
        table.add_column(col.title, justify=col.justify, no_wrap=True)
    for row in rows:
        table.add_row(*(_cell(row.get(c.key), c.fmt) for c in columns))
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


def write_text(path: Path, text: str) -> None:
    """Write a report atomically ('-' means stdout)."""
    if str(path) == "-":
        console.file.write(text)
    else:
        atomic_write_bytes(Path(path), text.encode("utf-8"))


def progress_bar(*, counted: bool = False):
    """The CLI's rich progress display on stderr (transient); ``counted`` adds a bar and N/M."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = [SpinnerColumn(), TextColumn("{task.description}")]
    if counted:
        columns += [BarColumn(), MofNCompleteColumn()]
    return Progress(*columns, TimeElapsedColumn(), console=err_console, transient=True)


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


class ReportPath(click.ParamType):
    """A file the command will write (or ``-``): checked when the options are parsed, so a long
    run never ends in an unwritable path. Missing parent folders are created at write time."""

    name = "FILE"

    def convert(self, value, param, ctx):
        if str(value) == "-":
            return Path("-")
        path = Path(value).expanduser()
        if path.is_dir():
            self.fail(f"{path} is a directory", param, ctx)
        ancestor = path.parent
        while not ancestor.exists() and ancestor != ancestor.parent:
            ancestor = ancestor.parent
        if not ancestor.is_dir() or not os.access(ancestor, os.W_OK):
            self.fail(f"cannot write {path}: {ancestor} is not a writable directory", param, ctx)
        return path


REPORT_FILE = ReportPath()

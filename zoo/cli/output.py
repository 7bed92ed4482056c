"""The CLI's consoles, progress display and report files. Tables are drawn by
:mod:`zoo.cli.tables` (one renderer); only the CLI draws, library code returns plain rows."""
from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from zoo.artifacts import Status
from zoo.errors import ZooError
from zoo.fileio import atomic_write_bytes
from zoo.version import __version__
from zoo.cli.tables import Column, View, label, note, render_text, views_csv, views_json, views_markdown  # noqa: F401 (re-exported)

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


#: the key of every per-runtime row: which variant, in which runtime, at which precision
KEY_COLUMNS = (label("variant"), label("runtime"), label("precision", "prec"))


def table_width(console: Console | None = None) -> int | None:
    """The width tables are drawn at on ``console`` (default: :func:`out`): its width on a terminal
    or under ``$COLUMNS``; None (each table's natural width) for a file or a pipe."""
    console = console or out()
    return console.width if console.is_terminal or "COLUMNS" in os.environ else None


def show(views: Sequence[View], console: Console | None = None, width: int | None = None) -> None:
    """Draw ``views`` on ``console`` (default: :func:`out`) by the one set of width rules
    (:mod:`zoo.cli.tables`)."""
    console = console or out()
    text = render_text([v for v in views if v.draw], width or table_width(console), terminal=console)
    console.file.write(text)
    console.file.flush()


def report_json(views: Sequence[View], payload: dict | None = None) -> dict:
    """A command's JSON report: its data (``payload``) and the ``tables`` it drew, which
    ``zoo report`` redraws."""
    return {**(payload or {}), "zoo_version": __version__, "tables": views_json(views)}


def to_json(data: Any) -> str:
    return json.dumps(data, indent=2, default=str) + "\n"


def write_text(path: Path, text: str) -> None:
    """Write a report by :func:`zoo.fileio.output_target`'s rule: a regular file atomically (a
    symlink's target), a character device or a FIFO in place, ``-`` to stdout."""
    try:
        atomic_write_bytes(Path(path), text.encode("utf-8"))
    except OSError as exc:
        raise ZooError(f"cannot write {path}: {exc.strerror or exc}") from None


def write_views(views: Sequence[View], json_file: Path | None = None, csv_file: Path | None = None,
                markdown_file: Path | None = None, payload: dict | None = None, preamble: str = "",
                csv_tagged: bool | None = None) -> None:
    """Write the reports asked for: JSON (``payload`` and the tables), CSV and Markdown of every
    table (all their columns; ``csv_tagged``: a ``table`` column even for one table)."""
    if json_file is not None:
        write_text(json_file, to_json(report_json(views, payload)))
    if csv_file is not None:
        write_text(csv_file, views_csv(views, csv_tagged))
    if markdown_file is not None:
        write_text(markdown_file, views_markdown(views, preamble))


def emit(views: Sequence[View], json_file: Path | None = None, csv_file: Path | None = None,
         markdown_file: Path | None = None, payload: dict | None = None, preamble: str = "",
         csv_tagged: bool | None = None) -> None:
    """Draw ``views`` and write the reports asked for: what every command does with its tables."""
    show(views)
    write_views(views, json_file, csv_file, markdown_file, payload, preamble, csv_tagged)


def emit_rows(name: str, rows: list[dict], columns: Sequence[Column], title: str, reports: tuple,
              payload: dict | None = None) -> None:
    """:func:`emit` for a one-table command: the JSON holds the rows under ``name`` (and
    ``payload``'s keys). ``reports``: the json, csv and markdown files (each may be None)."""
    emit([View(name, title, rows, list(columns))], *reports, payload={name: rows, **(payload or {})})


def progress_bar(*, counted: bool = False, info: bool = False, eta: bool = False):
    """The CLI's progress display on stderr: rich's (transient) on a terminal; elsewhere (a pipe,
    a CI log) plain lines, since rich draws nothing there (:class:`LineProgress`). ``counted``
    adds a bar and N/M, ``info`` a task's ``info`` field (e.g. a rate; also on the plain lines),
    ``eta`` the estimated time left. Descriptions and info are plain text, never rich markup (they
    carry paths and names). Every command's progress goes through here."""
    from rich.progress import BarColumn, MofNCompleteColumn, SpinnerColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns = [SpinnerColumn(), TextColumn("{task.description}", markup=False)]
    if counted:
        columns += [BarColumn(), MofNCompleteColumn()]
    if info:
        columns.append(TextColumn("{task.fields[info]}", markup=False))
    columns.append(TimeElapsedColumn())
    if eta:
        columns += [TextColumn("ETA"), TimeRemainingColumn()]
    return _progress_class()(*columns, console=err(), transient=True)


_PROGRESS_CLASS = None


def _progress_class():
    """:class:`LineProgress`, defined on first use (rich.progress is imported lazily)."""
    global _PROGRESS_CLASS
    if _PROGRESS_CLASS is None:
        from rich.progress import Progress

        class LineProgress(Progress):
            """A rich Progress that, when its console is not a terminal, prints plain lines instead:
            ``[  12s] description (3/10)`` when a description changes (at most one line per
            ``interval`` seconds, the latest one wins), a reminder every ``heartbeat`` seconds of
            silence, and a line when a counted task completes. Nothing is printed in the first
            ``quiet_start`` seconds, so work that ends (or fails with its one-line error) sooner
            prints no progress at all."""

            interval = 2.0
            heartbeat = 15.0
            quiet_start = 2.0

            def __init__(self, *columns, console=None, **kwargs):
                console = console or err()
                self._plain = not console.is_terminal
                super().__init__(*columns, console=console, disable=self._plain or kwargs.pop("disable", False), **kwargs)
                self._t0 = time.monotonic()
                self._last_line = float("-inf")
                self._printed: dict = {}  # task id -> last line printed for it
                self._stop_ticker = threading.Event()
                self._ticker = threading.Thread(target=self._tick, daemon=True) if self._plain else None

            def start(self) -> None:
                super().start()
                if self._ticker is not None and not self._ticker.is_alive():
                    self._ticker.start()

            def stop(self) -> None:
                self._stop_ticker.set()
                if self._ticker is not None and self._ticker.is_alive() and self._ticker is not threading.current_thread():
                    self._ticker.join(timeout=1)
                super().stop()

            def _line(self, task) -> str:
                count = f" ({task.completed:g}/{task.total:g})" if task.total else ""
                info = task.fields.get("info")
                return f"{task.description}{count}" + (f", {info}" if info else "")

            def _emit(self, force: bool = False) -> None:
                now = time.monotonic()
                if now - self._t0 < self.quiet_start or (not force and now - self._last_line < self.interval):
                    return
                with self._lock:
                    tasks = [t for t in self._tasks.values() if t.visible]
                for task in tasks:
                    line = self._line(task)
                    stale = now - self._last_line >= self.heartbeat
                    if line != self._printed.get(task.id) or stale:
                        self._printed[task.id] = line
                        self._last_line = now
                        self.console.print(f"[{now - self._t0:5.0f}s] {line}", markup=False, highlight=False,
                                           soft_wrap=True)

            def _tick(self) -> None:
                while not self._stop_ticker.wait(0.5):
                    self._emit()

            def add_task(self, *args, **kwargs):
                kwargs.setdefault("info", "")  # the info column's field, present on every task
                task_id = super().add_task(*args, **kwargs)
                if self._plain:
                    self._emit(force=True)
                return task_id

            def update(self, task_id, **kwargs) -> None:
                super().update(task_id, **kwargs)
                if self._plain:
                    self._emit(force=self._finished(task_id))

            def advance(self, task_id, advance: float = 1) -> None:
                super().advance(task_id, advance)
                if self._plain:
                    self._emit(force=self._finished(task_id))

            def _finished(self, task_id) -> bool:
                task = self._tasks.get(task_id)
                return bool(task and task.total and task.completed >= task.total)

        _PROGRESS_CLASS = LineProgress
    return _PROGRESS_CLASS


#: the export pipeline's final stages (its others: building, converting, verifying)
FINAL_STAGES = frozenset({Status.BUILT, Status.REBUILT, Status.REUSED, Status.FAILED})


def export_reporter(progress, task, lock=None, *, advance: bool = False, prefix: str = "export "):
    """The export-pipeline ``on_event(key, stage)`` callback of every command: final stages
    (built, rebuilt, reused, failed) are printed as ``<prefix><key.name>: <stage>`` lines above the
    progress display (and ``advance`` the task by one: ``zoo export`` counts its artifacts), the
    others update ``task``'s description. ``lock`` guards it when exports run in threads."""
    import contextlib

    guard = lock or contextlib.nullcontext()

    def on_event(key, stage: str) -> None:
        with guard:
            if stage in FINAL_STAGES:
                if advance:
                    progress.advance(task)
                progress.console.print(f"{prefix}{key.name}: {stage}", markup=False, highlight=False)
            else:
                progress.update(task, description=f"{prefix}{key.name}: {stage}")

    return on_event

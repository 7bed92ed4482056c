"""Every command's tables at 80, 100 and 120 columns and in a file: every line fits, every label
column is there, every number shown is intact (parsed back and compared with the report's value),
long notes are footnotes, and what a width leaves out is named in the title.

The reports are real ``--json`` files of each command (``tests/data/reports/``, see its README);
they are drawn through the one renderer every command uses (:mod:`zoo.cli.tables`) and through
``zoo report``."""
from __future__ import annotations

import json
import math
from pathlib import Path

import click
import pytest

from tests.helpers.cli import run  # noqa: F401 (fixture)
from zoo.cli import cli
from zoo.cli.tables import NOTE_INLINE, View, cell, render_text, terminal_columns, views_from_json

REPORTS = Path(__file__).resolve().parents[1] / "data" / "reports"
WIDTHS = (80, 100, 120)
#: every command that writes --json, and the report it wrote
COMMAND_REPORTS = {
    "list": "list.json", "info": "info.json", "weights": "weights.json", "catalog check": "check.json",
    "export": "export.json", "compare": "compare.json", "compare --layers": "layers.json", "bench": "bench.json",
    "benchmark": "benchmark.json", "profile": "profile.json", "track": "track.json", "eval run": "evalrun.json",
    "eval analyze": "analyze.json", "eval drift": "drift.json", "device list": "devices.json",
    "device check": "devcheck.json", "publish": "publish.json", "pull": "pull.json", "cache list": "cache.json",
}


def _views(name: str) -> list[View]:
    return views_from_json(json.loads((REPORTS / name).read_text()))


def _drawn() -> list[tuple[str, int, int]]:
    return [(name, i, w) for name in sorted(set(COMMAND_REPORTS.values())) for i, v in enumerate(_views(name)) for w in WIDTHS]


def _json_commands(group: click.Group, prefix: str = "") -> set[str]:
    found = set()
    for name, command in group.commands.items():
        path = f"{prefix}{name}"
        if isinstance(command, click.Group):
            found |= _json_commands(command, path + " ")
        elif any(p.name == "json_file" for p in command.params):
            found.add(path)
    return found


def test_every_command_with_a_json_report_has_one_here() -> None:
    """A new command that writes --json gets a report in tests/data/reports (and so the width test)."""
    missing = _json_commands(cli) - {c.split(" --")[0] for c in COMMAND_REPORTS}
    assert not missing, f"no sample report for: {sorted(missing)}"
    assert all((REPORTS / f).is_file() for f in COMMAND_REPORTS.values())


def _body_rows(text: str) -> tuple[str, list[list[str]]]:
    """The title (above the table), and each body line's cells."""
    lines = text.splitlines()
    top = next(i for i, line in enumerate(lines) if line.startswith("┏"))
    head = next(i for i, line in enumerate(lines) if line.startswith("┡"))
    bottom = next(i for i, line in enumerate(lines) if line.startswith("└"))
    title = " ".join(" ".join(lines[:top]).split())
    return title, [[c.strip() for c in line.split("│")[1:-1]] for line in lines[head + 1:bottom]]


@pytest.mark.parametrize("name,index,width", _drawn())
def test_a_table_reads_at_every_width(name: str, index: int, width: int) -> None:
    view = _views(name)[index]
    text = render_text([view], width)
    assert max(len(line) for line in text.splitlines()) <= width, f"{name} {view.name}: a line is wider than {width}"
    if not view.rows:
        return
    title, rows = _body_rows(text)
    if not view.draw:  # a table kept for the files (every op, every layer): its long names may fold
        return
    assert len(rows) == len(view.rows), f"{view.name}: one line per row (nothing wrapped)"
    shown = terminal_columns(view)
    missing = " ".join(title.split("[not shown at this width:", 1)[1:])
    for row, cells in zip(view.rows, rows):
        for col in shown:
            expected = cell(row.get(col.key), col.fmt)
            if col.note and len(expected) > NOTE_INLINE:
                assert "".join(expected.split()) in "".join(text.split()), f"{col.key}: footnote missing"
                continue
            if col.label:
                assert expected in cells, f"{view.name}: label {col.key}={expected!r} missing at {width}"
            elif col.justify == "right" and expected not in cells:
                assert f" {col.title}" in f" {missing}", f"{view.name}: {col.key}={expected!r} neither shown nor named as left out"
            if col.justify == "right" and expected in cells and isinstance(row.get(col.key), float):
                value = float(expected.replace(",", ""))  # parsed back: the figure the report holds
                assert math.isclose(value, row[col.key], rel_tol=0.06, abs_tol=10 ** -_decimals(col.fmt)), (col.key, expected)


def _decimals(fmt: str) -> int:
    if "e" in fmt:
        return 300
    digits = fmt.rstrip("f%eg").split(".")[-1]
    return int(digits) if digits.isdigit() else 0


@pytest.mark.parametrize("name", sorted(set(COMMAND_REPORTS.values())))
def test_zoo_report_redraws_every_report_at_80_columns_and_in_a_file(name: str, tmp_path, run) -> None:
    code, out, err = run("report", str(REPORTS / name), "--width", "80")
    assert code == 0, err
    assert max(len(line) for line in out.splitlines()) <= 80
    md = tmp_path / "r.md"
    code, out, err = run("report", str(REPORTS / name), "--markdown", str(md))
    assert code == 0 and md.read_text().count("## ") >= 1, err
    views = _views(name)
    natural = render_text(views, None)  # a file: each table at its natural width, every column
    for view in views:
        if view.draw and view.rows:
            assert "not shown at this width" not in natural

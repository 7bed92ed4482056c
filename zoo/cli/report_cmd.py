"""``zoo report FILE.json``: redraw a report any zoo command wrote (its ``tables``) at another
width, or as Markdown, CSV or a self-contained HTML page."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import click

from zoo.cli.html_page import Page, Picture, Section
from zoo.cli.options import REPORT_FILE, distinct_outputs
from zoo.cli.output import show, write_text
from zoo.cli.tables import View, views_csv, views_from_json, views_markdown
from zoo.errors import UsageError
from zoo.fileio import read_regular

#: the largest report read (an evaluation of LaSOT's 280 sequences with every tracker is ~10 MiB)
MAX_REPORT_BYTES = 256 << 20


def load_report(path: Path) -> tuple[dict, list[View]]:
    """A JSON report and its views; a file that is not one is a one-line UsageError."""
    data = read_regular(path, MAX_REPORT_BYTES, "a JSON report")
    try:
        payload = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise UsageError(f"{path}: is not UTF-8 text: not a JSON report") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}:{exc.lineno}:{exc.colno}: not JSON: {exc.msg}") from None
    try:
        views = views_from_json(payload)
    except ValueError as exc:
        raise UsageError(f"{path}: {exc}") from None
    return payload, views


def report_page(path: Path, payload: dict, views: list[View]) -> Page:
    """The HTML page of a redrawn report: every table (the files' tables too), then the pictures
    it names (``plot``/``plots`` entries that are PNG or SVG files still on disk)."""
    named = payload.get("plots") or ([payload["plot"]] if payload.get("plot") else [])
    pictures = [Picture.from_file(Path(p)) for p in named
                if isinstance(p, str) and p.lower().endswith((".png", ".svg")) and Path(p).is_file()]
    caveats = [v.caption for v in views if "untrained reference weights" in v.caption]
    sections = [Section(v.title or v.name, views=[v]) for v in views]
    if pictures:
        sections.append(Section("plots", pictures=pictures))
    return Page(title=f"zoo report: {path.name}", lead=f"zoo {payload.get('zoo_version', '?')}; {len(views)} tables",
                caveat=caveats[0] if caveats else "", sections=sections)


@click.command("report")
@click.argument("report_file", metavar="FILE.json", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--width", type=click.IntRange(40, 1000), default=None,
              help="Draw the tables at N columns [default: the terminal's; a file or pipe: each table's natural width].")
@click.option("--all", "every_table", is_flag=True,
              help="Also draw the tables a command keeps for its files (every layer, every op, per sequence).")
@click.option("--markdown", "markdown_file", type=REPORT_FILE, default=None, help="Write every table as Markdown ('-': stdout).")
@click.option("--csv", "csv_file", type=REPORT_FILE, default=None, help="Write every table as CSV ('-': stdout).")
@click.option("--html", "html_file", type=REPORT_FILE, default=None,
              help="Write one self-contained HTML page: every table and the plots the report names ('-': stdout).")
def report_cmd(report_file: Path, width: int | None, every_table: bool, markdown_file, csv_file, html_file) -> None:
    """Redraw FILE.json, a report a zoo command wrote with --json, at another width or as
    Markdown, CSV or HTML (e.g. zoo report compare.json --width 80)."""
    distinct_outputs({"--markdown": markdown_file, "--csv": csv_file, "--html": html_file}, {"FILE.json": report_file})
    payload, views = load_report(report_file)
    if every_table:
        views = [replace(v, draw=True) for v in views]
    files = [f for f in (markdown_file, csv_file, html_file) if f is not None]
    if not files or width is not None:
        show(views, width=width)
    if markdown_file is not None:
        write_text(markdown_file, views_markdown(views))
    if csv_file is not None:
        write_text(csv_file, views_csv(views))
    if html_file is not None:
        write_text(html_file, report_page(report_file, payload, views).html())

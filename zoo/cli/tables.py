"""The one table renderer of the CLI: a report is a list of :class:`View` (rows + declared
columns), drawn at any width, or written as JSON, CSV, Markdown or HTML.

Width rules (every command, every table):

- label columns (``label=True``: what a row is, and its verdict) are never dropped;
- numbers are never cut or wrapped: a column that does not fit is dropped whole, highest ``drop``
  first (columns without a ``drop`` go last, rightmost first), and the title names what was left out;
- long free text (``note=True`` columns: reasons, errors) becomes a numbered footnote under the
  table unless the whole table fits the width with it inline (a file always gets footnotes);
- a file or a pipe gets the table's natural width, whatever the terminal.

Only the CLI draws; library code returns plain rows (lists of dicts)."""
from __future__ import annotations

import csv
import html
import io
import json
import textwrap
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

#: a note cell longer than this becomes a footnote (shorter ones, like "ok" or "-", stay inline)
NOTE_INLINE = 16
#: a wrapping text column (a path) is not folded below this width
MIN_FOLD = 12


@dataclass(frozen=True)
class Column:
    """One declared column of a table."""

    key: str
    title: str
    fmt: str = ""  # format spec for numbers, e.g. ".3f"
    justify: str = "right"
    #: the higher, the sooner the column leaves a narrow terminal; 0: only after every numbered one
    drop: int = 0
    #: identifies the row (or gives its verdict): never dropped
    label: bool = False
    #: free text: a long cell becomes a footnote
    note: bool = False
    #: left out of the terminal when no row has a value in it (JSON/CSV/Markdown keep it)
    optional: bool = False
    #: drawn in the terminal at all (JSON/CSV/Markdown keep every column)
    terminal: bool = True

    def as_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v != getattr(_DEFAULT, k) or k in ("key", "title")}

    @classmethod
    def from_json(cls, data: dict) -> "Column":
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


_DEFAULT = Column("", "")


def label(key: str, title: str | None = None) -> Column:
    """A left-justified label column (never dropped)."""
    return Column(key, title or key, justify="left", label=True)


def note(key: str, title: str | None = None, **kw) -> Column:
    """A free-text column whose long cells become footnotes."""
    return Column(key, title or key, justify="left", note=True, **kw)


@dataclass
class View:
    """One table of a report: its rows, every declared column, a title and an optional caption
    (drawn under it)."""

    name: str
    title: str
    rows: list[dict]
    columns: list[Column]
    caption: str = ""
    #: terminal only: columns left out on purpose (e.g. a device column when every row is local)
    hidden: tuple[str, ...] = field(default_factory=tuple)
    #: drawn in the terminal (False: a long table kept for the files, e.g. every layer's row)
    draw: bool = True

    def as_json(self) -> dict:
        return {"name": self.name, "title": self.title, "caption": self.caption, "hidden": list(self.hidden),
                "draw": self.draw, "columns": [c.as_json() for c in self.columns], "rows": self.rows}

    @classmethod
    def from_json(cls, data: dict) -> "View":
        return cls(name=str(data["name"]), title=str(data.get("title", "")), rows=list(data["rows"]),
                   columns=[Column.from_json(c) for c in data["columns"]], caption=str(data.get("caption") or ""),
                   hidden=tuple(data.get("hidden") or ()), draw=bool(data.get("draw", True)))


def cell(value: Any, fmt: str = "") -> str:
    """A value as the tables show it: ``-`` for none, numbers by the column's format."""
    if value is None:
        return "-"
    if fmt and isinstance(value, (int, float)) and not isinstance(value, bool):
        return format(value, fmt)
    if isinstance(value, float):
        return format(value, "g")
    return str(value)


def _empty(value: Any) -> bool:
    return value is None or value is False or value == ""


def terminal_columns(view: View) -> list[Column]:
    """The columns worth drawing in a terminal: not hidden, no all-empty optional ones."""
    return [c for c in view.columns if c.terminal and c.key not in view.hidden
            and not (c.optional and all(_empty(r.get(c.key)) for r in view.rows))]


@dataclass
class Layout:
    """How a view is drawn at one width: the columns shown, their widths, the cells (footnote
    markers in place of long notes), the footnotes and the columns left out."""

    columns: list[Column]
    widths: list[int]
    cells: list[list[str]]
    footnotes: list[str]
    left_out: list[Column]


def _longest_word(text: str) -> int:
    return max((len(w) for w in text.split()), default=0)


def table_width(widths: Sequence[int]) -> int:
    """Characters a rich table with these column widths takes (one space of padding each side and a
    rule between columns and at both edges)."""
    return sum(w + 3 for w in widths) + 1


def layout(view: View, width: int | None) -> Layout:
    """Fit ``view`` in ``width`` characters (None: its natural width)."""
    cols = terminal_columns(view)
    texts: dict[str, list[str]] = {c.key: [cell(r.get(c.key), c.fmt) for r in view.rows] for c in cols}
    footnotes: list[str] = []
    inline = [max([len(c.title), *(len(t) for t in texts[c.key])]) for c in cols]
    fits = width is not None and table_width(inline) <= width  # notes inline when nothing else must give
    for c in cols:
        if c.note and not fits:
            for i, text in enumerate(texts[c.key]):
                if len(text) > NOTE_INLINE:
                    if text not in footnotes:
                        footnotes.append(text)
                    texts[c.key][i] = f"[{footnotes.index(text) + 1}]"
    # a column is as wide as its longest cell and its title on one line; when that does not fit,
    # titles wrap at spaces first, then columns leave (numbered drops first), then text folds
    compact = {c.key: max([1, _longest_word(c.title), *(len(t) for t in texts[c.key])]) for c in cols}
    full = {c.key: max(compact[c.key], len(c.title)) for c in cols}
    shown = list(cols)
    left_out: list[Column] = []
    if width is not None and table_width([full[c.key] for c in shown]) > width:
        def order(c: Column) -> tuple:  # numbered drops first (highest first), then the rest rightmost first
            return (1, c.drop, 0) if c.drop else (0, 0, shown.index(c))

        while table_width([compact[c.key] for c in shown]) > width:
            droppable = [c for c in shown if not c.label]
            if not droppable:
                break
            worst = max(droppable, key=order)
            shown.remove(worst)
            left_out.append(worst)
        widths = {c.key: compact[c.key] for c in shown}
        for c in shown:  # room left: titles back on one line, left to right
            extra = full[c.key] - widths[c.key]
            if extra and table_width(list(widths.values())) + extra <= width:
                widths[c.key] = full[c.key]
    else:
        widths = {c.key: full[c.key] for c in shown}
    if width is not None:  # labels alone too wide: fold the widest text column, a character at a time
        while table_width(list(widths.values())) > width:
            text_cols = [c for c in shown if c.justify == "left" and widths[c.key] > MIN_FOLD]
            if not text_cols:
                break
            widest = max(text_cols, key=lambda c: widths[c.key])
            widths[widest.key] -= 1
    order_back = [c for c in cols if c in shown]
    return Layout(columns=order_back, widths=[widths[c.key] for c in order_back],
                  cells=[[texts[c.key][i] for c in order_back] for i in range(len(view.rows))],
                  footnotes=footnotes, left_out=[c for c in cols if c in left_out])


def _title(view: View, lay: Layout) -> str:
    title = view.title
    if lay.left_out:
        names = ", ".join(c.title for c in lay.left_out)
        title = f"{title} [not shown at this width: {names}; see --json/--csv or zoo report --width]".strip()
    return title


def rich_renderables(view: View, width: int | None) -> list:
    """The rich table of ``view`` at ``width`` and its footnote and caption lines."""
    lay = layout(view, width)
    table = Table(title=Text(_title(view, lay)) if (view.title or lay.left_out) else None, header_style="bold",
                  box=box.HEAVY_HEAD)
    for col, w in zip(lay.columns, lay.widths):
        # width fixed to the longest cell: numbers and names never wrap; headers wrap at spaces
        table.add_column(Text(col.title), justify=col.justify, width=w, overflow="fold", no_wrap=False)
    for row in lay.cells:
        table.add_row(*(Text(c) for c in row))
    parts: list = [table]
    for i, text in enumerate(lay.footnotes, 1):
        parts.append(Text(_wrap(f"[{i}] {text}", width, indent=len(f"[{i}] "))))
    if view.caption:
        parts.append(Text(_wrap(view.caption, width)))
    return parts


def _wrap(text: str, width: int | None, indent: int = 0) -> str:
    if width is None:
        return text
    return "\n".join(textwrap.fill(line, width=max(width, 20), subsequent_indent=" " * indent, break_on_hyphens=False)
                     for line in text.splitlines())


def natural_width(view: View) -> int:
    """The width a view takes with every terminal column shown."""
    lay = layout(view, None)
    return table_width(lay.widths)


def render_text(views: Sequence[View], width: int | None, *, terminal: Console | None = None) -> str:
    """The views drawn as text at ``width`` (None: each at its natural width, as for a file),
    styled like ``terminal`` when given (colour codes only where it is a terminal)."""
    buf = io.StringIO()
    page = width or max([natural_width(v) for v in views] + [40])
    kwargs = {}
    if terminal is not None and terminal.is_terminal:
        kwargs = {"force_terminal": True, "color_system": terminal.color_system}
    else:
        kwargs = {"color_system": None, "force_terminal": False}
    console = Console(file=buf, width=page, legacy_windows=False, **kwargs)
    for view in views:
        for part in rich_renderables(view, width):
            console.print(part, markup=False, highlight=False, soft_wrap=width is None and not isinstance(part, Table))
    return buf.getvalue()


# --- files: JSON, CSV, Markdown, HTML -----------------------------------------------------------

def views_json(views: Sequence[View]) -> list[dict]:
    """The views as JSON values (a report's ``tables`` key)."""
    return [v.as_json() for v in views]


def views_from_json(data: Any) -> list[View]:
    """The views of a report zoo wrote (its ``tables`` key); ValueError names what is missing."""
    if not isinstance(data, dict) or not isinstance(data.get("tables"), list):
        raise ValueError("it has no 'tables' list: it was not written by a zoo command's --json")
    views = []
    for i, t in enumerate(data["tables"]):
        if not isinstance(t, dict) or not isinstance(t.get("rows"), list) or not isinstance(t.get("columns"), list):
            raise ValueError(f"tables[{i}] lacks its rows or columns")
        try:
            views.append(View.from_json(t))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"tables[{i}] is malformed ({exc})") from None
        if not all(isinstance(r, dict) for r in views[-1].rows):
            raise ValueError(f"tables[{i}] has a row that is not an object")
    return views


def to_csv(rows: Sequence[dict], columns: Sequence[Column]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([c.key for c in columns])
    for row in rows:
        writer.writerow(["" if row.get(c.key) is None else _csv_value(row.get(c.key)) for c in columns])
    return buf.getvalue()


def _csv_value(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, (dict, list)) else value


def views_csv(views: Sequence[View], tagged: bool | None = None) -> str:
    """Every declared column, then every other field the rows hold (a CSV keeps all the data); one
    table as its own CSV, several (or ``tagged``) in one with a leading ``table`` column."""
    def columns(vs: Sequence[View]) -> list[Column]:
        declared = {c.key: c for v in vs for c in v.columns}
        extra = [k for v in vs for r in v.rows for k in r if k not in declared]
        return [*declared.values(), *(Column(k, k) for k in dict.fromkeys(extra))]

    if len(views) == 1 and not tagged:
        return to_csv(views[0].rows, columns(views))
    rows = [{"table": v.name, **r} for v in views for r in v.rows]
    return to_csv(rows, [Column("table", "table"), *columns(views)])


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(rows: Sequence[dict], columns: Sequence[Column]) -> str:
    lines = ["| " + " | ".join(_md(c.title) for c in columns) + " |"]
    lines.append("|" + "|".join("---:" if c.justify == "right" else "---" for c in columns) + "|")
    for row in rows:
        lines.append("| " + " | ".join(_md(cell(row.get(c.key), c.fmt)) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def views_markdown(views: Sequence[View], preamble: str = "") -> str:
    """Every view as a ``## title`` section with a Markdown table of all its columns."""
    parts = [preamble] if preamble else []
    for v in views:  # the comment names the table (a stable anchor for scripts); the heading is its title
        parts.append((f"## {_md(v.title)}\n\n" if v.title else "") + f"<!-- table: {v.name} -->\n\n" + to_markdown(v.rows, v.columns)
                     + (f"\n{v.caption}\n" if v.caption else ""))
    return "\n".join(parts)


def view_html(view: View) -> str:
    """One view as an HTML ``<table>`` (every column but hidden and all-empty optional ones; the
    caption under it). Every string escaped."""
    e = html.escape
    columns = [c for c in view.columns if c.key not in view.hidden
               and not (c.optional and all(_empty(r.get(c.key)) for r in view.rows))]
    head = "".join(f'<th class="{e(c.justify)}">{e(c.title)}</th>' for c in columns)
    body = "".join("<tr>" + "".join(f'<td class="{e(c.justify)}">{e(cell(r.get(c.key), c.fmt))}</td>'
                                    for c in columns) + "</tr>" for r in view.rows)
    caption = f"<caption>{e(view.title)}</caption>" if view.title else ""
    after = f'<p class="caption">{e(view.caption)}</p>' if view.caption else ""
    return (f'<div class="table" data-table="{e(view.name)}"><table>{caption}<thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table>{after}</div>")

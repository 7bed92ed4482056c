"""One self-contained HTML page of a report: inline CSS, tables from :func:`zoo.cli.tables.view_html`,
pictures embedded as data URIs. No script, no font, no request to any server: the page opens
from a file on a machine with no network, and every string in it is escaped."""
from __future__ import annotations

import base64
import html
import mimetypes
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from zoo.cli.tables import View, view_html

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto; max-width: 100rem;
       padding: 0 1rem; color: #1b1f24; background: #fff; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; } h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #d0d7de; }
p.lead { color: #57606a; margin-top: 0; }
.caveat { background: #fff8c5; border: 1px solid #d4a72c; padding: .6rem .9rem; border-radius: 6px; }
.ship { background: #dafbe1; border: 1px solid #4ac26b; padding: .6rem .9rem; border-radius: 6px; font-weight: 600; }
.table { overflow-x: auto; margin: .8rem 0; }
table { border-collapse: collapse; font-size: .85rem; }
caption { text-align: left; font-weight: 600; padding: .3rem 0; }
th, td { border: 1px solid #d0d7de; padding: .25rem .5rem; white-space: nowrap; }
th { background: #f6f8fa; } td.right, th.right { text-align: right; font-variant-numeric: tabular-nums; }
td.left, th.left { text-align: left; }
tbody tr:nth-child(even) { background: #f9fafb; }
p.caption { color: #57606a; font-size: .85rem; white-space: pre-wrap; }
figure { margin: 1rem 0; } figure img { max-width: 100%; border: 1px solid #d0d7de; }
figcaption { color: #57606a; font-size: .85rem; }
"""


@dataclass
class Picture:
    """A picture on the page: its bytes, their MIME type, a caption."""

    data: bytes
    mime: str
    caption: str

    @classmethod
    def from_file(cls, path: Path, caption: str = "") -> "Picture":
        mime = mimetypes.guess_type(str(path))[0] or "application/octet-stream"
        return cls(Path(path).read_bytes(), mime, caption or Path(path).name)

    def html(self) -> str:
        uri = f"data:{self.mime};base64,{base64.b64encode(self.data).decode('ascii')}"
        return (f'<figure><img src="{uri}" alt="{html.escape(self.caption)}">'
                f"<figcaption>{html.escape(self.caption)}</figcaption></figure>")


@dataclass
class Section:
    """A headed part of the page: paragraphs, tables and pictures, in that order."""

    heading: str
    views: Sequence[View] = ()
    pictures: Sequence[Picture] = ()
    paragraphs: Sequence[str] = ()
    #: CSS class of the paragraphs ("caveat", "ship" or "")
    tone: str = ""

    def html(self) -> str:
        cls = f' class="{self.tone}"' if self.tone else ""
        parts = [f"<section><h2>{html.escape(self.heading)}</h2>"]
        parts += [f"<p{cls}>{html.escape(p)}</p>" for p in self.paragraphs]
        parts += [view_html(v) for v in self.views]
        parts += [p.html() for p in self.pictures]
        return "".join(parts) + "</section>"


@dataclass
class Page:
    """The page: a title, a lead line, a caveat box and its sections."""

    title: str
    lead: str = ""
    caveat: str = ""
    sections: list[Section] = field(default_factory=list)

    def html(self) -> str:
        e = html.escape
        head = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
                f'<meta name="viewport" content="width=device-width, initial-scale=1">'
                f"<title>{e(self.title)}</title><style>{STYLE}</style></head><body>")
        body = [f"<h1>{e(self.title)}</h1>"]
        if self.lead:
            body.append(f'<p class="lead">{e(self.lead)}</p>')
        if self.caveat:
            body.append(f'<p class="caveat">{e(self.caveat)}</p>')
        body += [s.html() for s in self.sections]
        return head + "".join(body) + "</body></html>\n"

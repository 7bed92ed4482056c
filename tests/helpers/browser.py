"""A real browser for the HTML reports: Debian's headless Chromium (the README's test command
installs it), started by the test on a file:// page with no network, for a screenshot and the
rendered DOM."""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


def _chromium(page: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    if CHROMIUM is None:
        pytest.skip("no Chromium here (the README's test command installs Debian's chromium)")
    with tempfile.TemporaryDirectory(prefix="zoo-chromium-") as profile:
        return subprocess.run([CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                               "--hide-scrollbars", f"--user-data-dir={profile}", "--proxy-server=127.0.0.1:9",
                               *args, page.absolute().as_uri()],
                              capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def screenshot(page: Path, png: Path, width: int = 1280, height: int = 2400) -> Path:
    """Chromium's screenshot of ``page`` (a window of ``width`` x ``height``) in ``png``."""
    proc = _chromium(page, f"--screenshot={png}", f"--window-size={width},{height}")
    assert png.is_file(), proc.stderr[-2000:]
    return png


def rendered_dom(page: Path) -> str:
    """The DOM Chromium built from ``page`` (after parsing and layout), serialised."""
    proc = _chromium(page, "--dump-dom")
    assert proc.returncode == 0 and "<table" in proc.stdout, proc.stderr[-2000:]
    return proc.stdout


class _Tables(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._name: str | None = None
        self._cell: list[str] | None = None
        self._row: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "div" and "data-table" in attrs:
            self._name = attrs["data-table"]
            self.tables.setdefault(self._name, [])
        elif tag == "tr" and self._name is not None:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None and self._name is not None:
            self.tables[self._name].append(self._row)
            self._row = None
        elif tag == "table":
            self._name = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def dom_tables(dom: str) -> dict[str, list[list[str]]]:
    """Each ``data-table`` table of a rendered page: its rows of cell texts (the header row first)."""
    parser = _Tables()
    parser.feed(dom)
    return parser.tables

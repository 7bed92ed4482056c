"""``zoo report FILE.json``: a report redrawn at any width, as Markdown, CSV and a self-contained
HTML page (rendered in headless Chromium); bad files are one line and exit 2."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers.browser import dom_tables, rendered_dom
from tests.helpers.cli import run  # noqa: F401 (fixture)

REPORTS = Path(__file__).resolve().parents[1] / "data" / "reports"


def test_a_report_redraws_at_the_width_asked_and_keeps_its_caveat(run) -> None:
    for width in (80, 120):
        code, out, err = run("report", str(REPORTS / "evalrun.json"), "--width", str(width))
        assert code == 0, err
        assert max(len(line) for line in out.splitlines()) <= width
        assert "untrained reference weights" in " ".join(out.split())


def test_all_draws_the_tables_kept_for_files(run) -> None:
    code, out, _ = run("report", str(REPORTS / "analyze.json"), "--width", "120")
    assert code == 0 and "per sequence" not in out
    code, out, _ = run("report", str(REPORTS / "analyze.json"), "--width", "120", "--all")
    assert code == 0 and "per sequence" in out


def test_the_html_page_holds_every_table_and_renders_in_chromium(run, tmp_path) -> None:
    page = tmp_path / "r.html"
    code, _, err = run("report", str(REPORTS / "compare.json"), "--html", str(page))
    assert code == 0, err
    tables = dom_tables(rendered_dom(page))
    data = json.loads((REPORTS / "compare.json").read_text())
    for t in data["tables"]:
        head, *body = tables[t["name"]]
        assert len(body) == len(t["rows"]) and head[0] == t["columns"][0]["title"], t["name"]


@pytest.mark.parametrize("content,needle", [
    (b"", "not JSON"), (b"{\n  \"a\": [1,\n", "not JSON"), (b"\xff\xfe{}", "not UTF-8"),
    (b"[1, 2]", "no 'tables' list"), (b'{"tables": [{"name": "x"}]}', "lacks its rows or columns"),
])
def test_a_file_that_is_not_a_report_is_one_line_and_exit_2(run, tmp_path, content, needle) -> None:
    bad = tmp_path / "bad.json"
    bad.write_bytes(content)
    code, out, err = run("report", str(bad))
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1 and out == "", err


def test_a_device_a_folder_or_the_input_itself_as_output_is_refused(run, tmp_path) -> None:
    code, _, err = run("report", "/dev/null")
    assert code == 2 and "is a character device, not a JSON report" in err
    code, _, err = run("report", str(tmp_path))
    assert code == 2 and len(err.strip().splitlines()) == 1
    report = tmp_path / "r.json"
    report.write_bytes((REPORTS / "list.json").read_bytes())
    code, _, err = run("report", str(report), "--markdown", str(report))
    assert code == 2 and "which this command reads" in err
    assert report.read_bytes() == (REPORTS / "list.json").read_bytes()

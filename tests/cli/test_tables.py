"""The one table renderer (zoo.cli.tables): what a narrow terminal drops and keeps, footnotes,
a file's natural width, and the views' JSON round trip."""
from __future__ import annotations

from zoo.cli.tables import Column, View, label, layout, note, render_text, views_csv, views_from_json, views_json, views_markdown

ROWS = [{"variant": "base-c128", "runtime": "onnxruntime", "ms": 12.3456, "p90": 13.5, "p99": 14.25, "mem": 1234.5,
         "why": "other processes used 0.5 CPUs while 0 were free", "status": "pass"},
        {"variant": "fgaf3", "runtime": "mnn", "ms": 1234567.891, "p90": None, "p99": 2.0, "mem": 3.0, "why": "ok",
         "status": "FAIL"}]
COLUMNS = [label("variant"), label("runtime"), Column("ms", "median ms", ".3f"), Column("p90", "p90 ms", ".2f", drop=2),
           Column("p99", "p99 ms", ".2f", drop=3), Column("mem", "memory MB", ".1f"), note("why", "unreliable"), label("status")]
VIEW = View("timing", "a timing table", ROWS, COLUMNS)


def test_a_narrow_terminal_drops_numbers_whole_by_priority_and_keeps_every_label() -> None:
    lay = layout(VIEW, 60)
    shown = [c.key for c in lay.columns]
    assert {"variant", "runtime", "status"} <= set(shown)
    assert {"p90", "p99"} <= {c.key for c in lay.left_out}
    widest = len(render_text([VIEW], None).splitlines()[1])  # the table's top rule, at its natural width
    first = next(layout(VIEW, w).left_out for w in range(widest, 40, -1) if layout(VIEW, w).left_out)
    assert [c.key for c in first] == ["p99"]  # the first to leave: the highest drop
    text = render_text([VIEW], 60)
    assert max(len(line) for line in text.splitlines()) <= 60
    assert "1234567.891" in text and "…" not in text  # a number is whole or absent, never cut
    assert "not shown at this width: " in " ".join(text.split()) and "p99 ms" in text


def test_long_notes_become_numbered_footnotes_and_short_ones_stay() -> None:
    text = render_text([VIEW], 100)
    assert "│ [1]" in text and "│ ok " in text
    assert "[1] other processes used 0.5 CPUs while 0 were free" in text


def test_a_file_gets_every_column_at_its_natural_width() -> None:
    wide = View("wide", "t", [{"k": "x", **{f"c{i}": float(i) for i in range(40)}}],
                [label("k"), *(Column(f"c{i}", f"column {i}", ".1f", drop=i + 1) for i in range(40))])
    text = render_text([wide], None)
    assert all(f"{i}.0" in text for i in range(40)) and "not shown" not in text
    assert max(len(line) for line in text.splitlines()) > 200
    assert max(len(line) for line in render_text([wide], 80).splitlines()) <= 80


def test_labels_too_wide_for_the_width_fold_instead_of_leaving() -> None:
    long = View("x", "", [{"name": "n" * 150, "v": 1.5}], [label("name"), Column("v", "v", ".1f")])
    text = render_text([long], 80)
    assert max(len(line) for line in text.splitlines()) <= 80 and text.count("n") >= 150


def test_views_survive_json_and_every_file_format() -> None:
    (back,) = views_from_json({"tables": views_json([VIEW])})
    assert back == VIEW
    md = views_markdown([back])
    assert md.startswith("## a timing table") and "| median ms |" in md and "1234567.891" in md
    csv_text = views_csv([back])
    assert csv_text.splitlines()[0].split(",")[:3] == ["variant", "runtime", "ms"]
    for bad, reason in (([], "no 'tables'"), ({"tables": [{"rows": []}]}, "lacks its rows or columns"),
                        ({"tables": [{"name": "t", "rows": [1], "columns": []}]}, "not an object")):
        try:
            views_from_json(bad)
        except ValueError as exc:
            assert reason in str(exc)
        else:
            raise AssertionError(bad)

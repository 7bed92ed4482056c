"""zoo.cli.output: progress on stderr when it is not a terminal (plain, throttled lines), tables
at 80 columns, JSON on stdout that is nothing but JSON, report paths checked before the run."""
from __future__ import annotations

import io
import json
import re

from rich.console import Console

from tests.helpers.cli import (
    one_line,
    onnx_export,  # noqa: F401 (fixture)
    run_main,
    zoo_as_user,
    zoo_here,  # noqa: F401 (fixture)
)
from zoo.cli import output
from zoo.datasets.synthetic import make_sequence, write_dataset, write_sequence

VARIANT = "base-c128"
LINE = re.compile(r"^\[\s*\d+s\] ")


def test_catalog_check_shows_progress_on_a_piped_stderr(capsys, monkeypatch, tmp_path) -> None:
    """``zoo catalog check`` with stderr not a terminal (captured): plain progress lines per
    variant on stderr, the table on stdout. The 2 s of silence a progress display keeps at its
    start is lifted so the check need not take that long."""
    monkeypatch.setattr(output._progress_class(), "quiet_start", 0.0)
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path))  # weights regenerated: real work per variant
    code, out, err = run_main(capsys, monkeypatch, "catalog", "check", "fgaf*")
    assert code == 0, err
    lines = err.splitlines()
    assert any(LINE.match(ln) and "check fgaf" in ln for ln in lines), err
    assert all(LINE.match(ln) for ln in lines), err  # nothing else, no blank lines from rich
    assert "fgaf3" in out  # the table itself is unchanged, on stdout


def test_plain_progress_is_throttled_and_reports_completion(monkeypatch) -> None:
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=False, width=120)
    monkeypatch.setattr(output, "err", lambda: console)
    with output.progress_bar(counted=True) as progress:
        progress.quiet_start = 0  # report from the first moment (the default waits 2 s)
        task = progress.add_task("start", total=100)
        for i in range(100):  # a hundred changes in well under the throttle interval
            progress.update(task, description=f"item {i}")
            progress.advance(task)
    lines = buf.getvalue().splitlines()
    assert 2 <= len(lines) <= 4, lines
    assert all(LINE.match(ln) for ln in lines), lines
    assert lines[0].endswith("start (0/100)") and lines[-1].endswith("item 99 (100/100)"), lines


def test_work_that_ends_quickly_prints_no_progress(monkeypatch) -> None:
    """A command that fails at once says its one error line and nothing else."""
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=False, width=120)
    monkeypatch.setattr(output, "err", lambda: console)
    with output.progress_bar(counted=True) as progress:
        task = progress.add_task("start", total=3)
        for _ in range(3):
            progress.advance(task)
    assert buf.getvalue() == ""


def test_terminal_progress_stays_rich(monkeypatch) -> None:
    console = Console(file=io.StringIO(), force_terminal=True, width=120)
    monkeypatch.setattr(output, "err", lambda: console)
    progress = output.progress_bar()
    assert not progress._plain and not progress.disable


def test_track_and_eval_run_show_plain_progress_on_a_piped_stderr(capsys, monkeypatch, tmp_path) -> None:
    """``zoo track`` and ``zoo eval run`` use the CLI's one progress helper: with stderr not a
    terminal (captured) their progress is plain ``[  Ns] ...`` lines, not rich's (which draws
    nothing there). The 2 s of silence at the start is lifted so short runs report too."""
    monkeypatch.setattr(output._progress_class(), "quiet_start", 0.0)
    clip = make_sequence("Clip", frames=6)
    folder = write_sequence(clip, tmp_path / "otb", "otb")
    code, _, err = run_main(capsys, monkeypatch, "track", "base-c128", str(folder), "--runtime", "pytorch")
    assert code == 0, err
    assert any(LINE.match(ln) and "track base-c128@pytorch-fp32" in ln for ln in err.splitlines()), err

    write_dataset(tmp_path / "lasot", "lasot", count=1, frames=6)
    code, _, err = run_main(capsys, monkeypatch, "eval", "run", "base-c128", "--dataset", "lasot", "--root", str(tmp_path / "lasot"),
                            "--runtime", "pytorch", "--results", str(tmp_path / "results"))
    assert code == 0, err
    assert any(LINE.match(ln) and "eval run" in ln for ln in err.splitlines()), err


# -- tables and machine-readable output -------------------------------------------------------

def test_json_to_stdout_is_json_for_every_table_command(onnx_export):
    for args in (("list",), ("info", VARIANT), ("weights", VARIANT)):
        proc = zoo_as_user(*args, "--json", "-")
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout), args


def test_a_report_path_that_cannot_be_created_fails_before_the_run(zoo_here):
    one_line(zoo_here("bench", VARIANT, "--runtime", "pytorch", "--json", "/proc/zoo-report.json"), 2,
             "/proc/zoo-report.json")


def test_tables_stay_readable_at_80_columns():
    proc = zoo_as_user("list", env={"COLUMNS": "80"})
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "…" not in proc.stdout  # columns are dropped whole, never squeezed to ellipses
    assert any(line.startswith("│ fgaf3 ") for line in lines)  # the variant column is whole
    assert "not shown at this width" in proc.stdout
    wide = zoo_as_user("weights", VARIANT, env={"COLUMNS": "200"})
    assert f"│ {VARIANT}" in wide.stdout and "reference" in wide.stdout

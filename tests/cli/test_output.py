"""Progress on stderr when it is not a terminal (issue 10 item 11): plain, throttled lines."""
from __future__ import annotations

import io
import re

from rich.console import Console

from tests.helpers.cli import run_main
from zoo.cli import output
from zoo.datasets.synthetic import make_sequence, write_dataset, write_sequence

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

"""Square brackets in what the user typed (paths, ``NAME=DIR`` tracker names) are printed as typed:
never read as rich markup, neither in messages nor in table titles, headers and progress lines.

The consoles are made terminals (``force_terminal``), as a user's are: rich draws its live
progress there, which is where a description like ``[/]: Basketball`` used to fail."""
from __future__ import annotations

import functools
import json
import re

import pytest
from rich.console import Console

from tests.helpers.catalog import REPO
from tests.helpers.cli import run, usage_line  # noqa: F401 (fixture)
from zoo.cli import output
from zoo.datasets.synthetic import make_sequence, write_dataset, write_sequence

OTB = REPO / "tests" / "data" / "otb"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.fixture
def terminal(monkeypatch):
    """Every console the CLI makes is a terminal (colours, live progress), wide enough for titles."""
    monkeypatch.setattr(output, "Console", functools.partial(Console, force_terminal=True))
    monkeypatch.setenv("COLUMNS", "400")


def _plain(text: str) -> str:
    return ANSI.sub("", text).replace("\r", "")


def test_eval_analyze_prints_bracketed_names_and_paths(run, terminal, tmp_path) -> None:
    plots = tmp_path / "p[red]q"
    code, out, err = run("eval", "analyze", f"[/]={OTB / 'results' / 'ATOM'}", f"x[bold]y={OTB / 'results' / 'CFNet'}",
                         "--dataset", "otb", "--root", str(OTB), "--per-sequence", "--plot", str(plots))
    assert code == 0, err
    assert "internal error" not in err and "Traceback" not in err
    text = _plain(out)
    assert "│ [/] " in text and "│ x[bold]y " in text  # the table cells and the legend's names as typed
    assert f"plots: {plots} (6 files" in text
    assert sorted(p.name for p in plots.iterdir())[:2] == ["norm_precision.pdf", "norm_precision.png"]


def test_track_prints_a_bracketed_source_and_video_as_typed(run, terminal, tmp_path) -> None:
    folder = write_sequence(make_sequence("Clip", frames=3), tmp_path / "in" / "[", "otb")  # in/[/Clip
    video = tmp_path / "clip[final].mp4"
    code, out, err = run("track", "base-c128", str(folder), "--runtime", "pytorch", "--video", str(video))
    assert code == 0, err
    text = _plain(out)
    assert f"zoo track base-c128@pytorch-fp32 on {folder} (sequence" in text
    assert f"video: {video}\n" in text and video.is_file()
    code, _, err = run("track", "base-c128", str(tmp_path / "in" / "[" / "x]"), "--runtime", "pytorch")
    assert code == 2 and f"{tmp_path}/in/[/x]: no such file or folder" in usage_line(_plain(err))


def test_eval_run_with_a_bracketed_results_folder_writes_its_report(run, terminal, tmp_path) -> None:
    write_dataset(tmp_path / "lasot", "lasot", count=1, frames=4)
    results, report = tmp_path / "res" / "m[/x]", tmp_path / "em.json"
    code, out, err = run("eval", "run", "base-c128", "--dataset", "lasot", "--root", str(tmp_path / "lasot"),
                         "--runtime", "pytorch", "--results", str(results), "--json", str(report))
    assert code == 0, err
    squeezed = "".join(_plain(out).split())  # the title wraps at the table's width
    assert "".join(f"results in {results}".split()) in squeezed
    assert json.loads(report.read_text())["results"] == str(results)


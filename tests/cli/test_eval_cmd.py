"""`zoo eval analyze` / `zoo eval drift` through the command line."""
from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.helpers.catalog import REPO
from zoo.cli import cli, main
from zoo.errors import UsageError
from zoo.evaluation.plots import legend_entries

DATA = REPO / "tests" / "data"
LASOT = DATA / "lasot-sample"
OTB = DATA / "otb"
REF = json.loads((LASOT / "reference_metrics_SiamBAN.json").read_text())["_overall"]


def invoke(*args: str):
    return CliRunner().invoke(cli, ["eval", *args], catch_exceptions=True)


def zoo(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "zoo", "eval", *args], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "COLUMNS": "200"}, timeout=120)


def test_analyze_json_to_stdout_tables_to_stderr() -> None:
    result = invoke("analyze", str(LASOT / "results" / "SiamBAN"), "--dataset", "lasot", "--root", str(LASOT), "--json", "-")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    row = report["rows"][0]
    assert (row["tracker"], row["dataset"], row["sequences"], row["frames"]) == ("SiamBAN", "lasot", 10, 27613)
    for key in ("auc", "op50", "op75", "precision", "norm_precision"):
        assert row[key] == pytest.approx(REF[key], abs=1e-3)
    assert len(row["success_curve"]) == 21 and len(row["precision_curve"]) == 51 and len(row["norm_precision_curve"]) == 51
    assert len(report["per_sequence"]) == 10 and len(report["missing_annotations"]) == 270
    assert "SiamBAN" in result.stderr and "31.43" in result.stderr


def test_analyze_otb_reports_and_plots(tmp_path: Path) -> None:
    trackers = sorted(str(p) for p in (OTB / "results").iterdir())
    result = invoke("analyze", *trackers, "--dataset", "OTB100", "--root", str(OTB), "--plot", str(tmp_path / "plots"),
                    "--csv", str(tmp_path / "r.csv"), "--markdown", str(tmp_path / "r.md"))
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert names == sorted(f"{k}.{e}" for k in ("success", "precision", "norm_precision") for e in ("png", "pdf"))
    assert (tmp_path / "plots" / "success.png").read_bytes()[:4] == b"\x89PNG"
    rows = list(csv.DictReader(io.StringIO((tmp_path / "r.csv").read_text())))
    overall = {r["tracker"]: r for r in rows if r["sequence"] == "ALL"}
    assert len(overall) == 10 and len(rows) == 30
    # ATOM: mean of its two reference AUCs (79.206 and 80.136), best of the ten
    assert float(overall["ATOM"]["auc"]) == pytest.approx((79.206 + 80.136) / 2, abs=1e-3)
    assert rows[0]["tracker"] == "ATOM"
    assert "| ATOM |" in (tmp_path / "r.md").read_text()


def test_legend_sorted_with_values() -> None:
    entries = legend_entries({"SiamFC": 58.2, "DiMP50": 57.14, "ATOM": 51.5})
    assert [label for _, label in entries] == ["[58.2] SiamFC", "[57.1] DiMP50", "[51.5] ATOM"]


def _partial_results(tmp_path: Path) -> Path:
    partial = tmp_path / "Partial"
    partial.mkdir()
    for p in sorted((LASOT / "results" / "SiamBAN").glob("*.txt"))[:7]:
        shutil.copy(p, partial / p.name)
    return partial


def test_missing_sequences_error_or_allow_missing(tmp_path: Path) -> None:
    partial = _partial_results(tmp_path)
    full = str(LASOT / "results" / "SiamBAN")
    result = invoke("analyze", full, str(partial), "--dataset", "lasot", "--root", str(LASOT))
    assert isinstance(result.exception, UsageError)
    missing = sorted(p.stem for p in (LASOT / "results" / "SiamBAN").glob("*.txt"))[7:]
    assert all(name in str(result.exception) for name in missing) and "Partial" in str(result.exception)
    result = invoke("analyze", full, str(partial), "--dataset", "lasot", "--root", str(LASOT), "--allow-missing", "--json", "-")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert len(report["sequences"]) == 7 and sorted(report["missing_results"]["Partial"]) == missing
    assert {r["sequences"] for r in report["rows"]} == {7}
    assert report["rows"][0]["auc"] == pytest.approx(report["rows"][1]["auc"])  # same files, same figures
    assert "--allow-missing: 7 of 10" in result.stderr.replace("\n", " ")


def test_sequences_pattern_and_toolkit_protocol() -> None:
    result = invoke("analyze", f"Mine={LASOT / 'results' / 'SiamBAN'}", "--dataset", "lasot", "--root", str(LASOT),
                    "--sequences", "car-*", "tiger-6", "--protocol", "toolkit", "--json", "-")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["protocol"] == "toolkit" and sorted(report["sequences"]) == ["car-2", "tiger-6"]
    ref = json.loads((LASOT / "reference_metrics_SiamBAN.json").read_text())
    # no absent frame and no empty ground truth in these two: the toolkit agrees with pytracking
    assert report["rows"][0]["tracker"] == "Mine"
    assert report["rows"][0]["auc"] == pytest.approx((ref["car-2"]["auc"] + ref["tiger-6"]["auc"]) / 2, abs=1e-3)


def test_drift_command(tmp_path: Path) -> None:
    a = str(LASOT / "results" / "SiamBAN")
    result = invoke("drift", a, f"Copy={a}", "--dataset", "lasot", "--root", str(LASOT), "--sequences", "bear-4",
                    "zebra-10", "--plot", str(tmp_path), "--json", "-")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["rows"]
    assert [r["sequence"] for r in rows][-1] == "ALL" and len(rows) == 3
    assert all(r["mean_iou"] == pytest.approx(1.0) and r["auc_diff"] == pytest.approx(0.0) for r in rows)
    assert (tmp_path / "drift_iou.png").is_file() and (tmp_path / "drift_iou.pdf").is_file()


@pytest.mark.parametrize(("make", "expected"), [
    (lambda d: (d / "airplane-1.txt").write_text("1,2,3,4\n1,2,3\n"), "airplane-1.txt:2: expected 4 numbers"),
    (lambda d: (d / "airplane-1.txt").write_text("1,2,3,4\n1,2,nan,4\n"), "airplane-1.txt:2: NaN"),
    (lambda d: (d / "airplane-1.txt").write_text("1,2,3,4\n1,2,-3,4\n"), "airplane-1.txt:2: negative width"),
    (lambda d: (d / "airplane-1.txt").write_text(""), "airplane-1.txt:1: empty file"),
    (lambda d: (d / "notes.md").write_text("x"), "no .txt result files"),
])
def test_bad_input_exit_2_one_line(tmp_path: Path, monkeypatch, capsys, make, expected: str) -> None:
    folder = tmp_path / "T"
    folder.mkdir()
    make(folder)
    monkeypatch.setattr(sys, "argv", ["zoo", "eval", "analyze", str(folder), "--dataset", "lasot", "--root", str(LASOT),
                                      "--sequences", "airplane-1"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert exit_info.value.code == 2 and len(lines) == 1 and expected in lines[0], err


def test_python_m_zoo_bad_line_exit_2(tmp_path: Path) -> None:
    (tmp_path / "airplane-1.txt").write_text("1,2,3,4\n1;2;3\n")
    proc = zoo("analyze", str(tmp_path), "--dataset", "lasot", "--root", str(LASOT), "--sequences", "airplane-1")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert [line for line in proc.stderr.splitlines() if line.strip()] == [
        f"error: {tmp_path / 'airplane-1.txt'}:2: expected 4 numbers (x,y,w,h), found 3: '1;2;3'"]


def test_unknown_dataset_suggests() -> None:
    result = invoke("analyze", str(OTB / "results" / "ATOM"), "--dataset", "lasotext", "--root", str(OTB))
    # an alias of lasot_ext, accepted: the error is that this root holds no LaSOT_ext sequence
    assert isinstance(result.exception, UsageError) and "no LaSOT_ext sequences" in str(result.exception)
    result = invoke("analyze", str(OTB / "results" / "ATOM"), "--dataset", "tnl2", "--root", str(OTB))
    assert isinstance(result.exception, UsageError) and "did you mean 'tnl2k'" in str(result.exception)


def test_analyze_and_drift_say_which_trackers_ran_untrained_weights(tmp_path: Path) -> None:
    """A results folder named as zoo names its runs (<variant>@<runtime>-<precision>) is the
    catalog's reference weights: the summary says so; a published tracker's folder is not named."""
    ours = tmp_path / "base-c128@tflite-fp32"
    shutil.copytree(OTB / "results" / "ATOM", ours)
    result = invoke("analyze", str(OTB / "results" / "ATOM"), str(ours), "--dataset", "otb", "--root", str(OTB))
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "note: base-c128@tflite-fp32 ran the catalog's untrained reference weights" in text and "ATOM ran" not in text
    result = invoke("drift", str(OTB / "results" / "ATOM"), str(ours), "--dataset", "otb", "--root", str(OTB))
    assert result.exit_code == 0 and "base-c128@tflite-fp32 ran the catalog's untrained" in " ".join(result.output.split())

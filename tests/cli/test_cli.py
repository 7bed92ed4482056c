"""The installed `zoo` command: JSON/CSV/Markdown output, exit codes, one-line errors."""
from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers.catalog import CATALOG
from tests.helpers.cli import (
    one_line,
    run_main,
    zoo_here,  # noqa: F401 (fixture)
)
from zoo.cli import cli

ZOO = shutil.which("zoo")
pytestmark = pytest.mark.skipif(ZOO is None, reason="zoo console script not installed")


def console_script(*args: str) -> subprocess.CompletedProcess:
    """The installed ``zoo`` console script in a fresh process."""
    return subprocess.run([ZOO, *args], capture_output=True, text=True, timeout=300)


@pytest.fixture
def run(capsys, monkeypatch):
    """``zoo ARGS`` through the real entry point in this process (``env`` set for the call): the
    console script itself is run once, by the first test."""
    def go(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
        for key, value in (env or {}).items():
            monkeypatch.setenv(key, value)
        return subprocess.CompletedProcess(args, *run_main(capsys, monkeypatch, *args))
    return go


def test_list_json_has_measured_and_reported() -> None:
    proc = console_script("list", "--json", "-")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)["variants"]
    assert [r["name"] for r in rows] == CATALOG.names
    by_name = {r["name"]: r for r in rows}
    fgaf3 = by_name["fgaf3"]
    assert fgaf3["row"] == 6 and fgaf3["params"] == CATALOG.get("fgaf3").measured.params
    assert fgaf3["macs"] < fgaf3["macs_total"]
    assert fgaf3["reported"]["params_m"] == 3.417 and fgaf3["reported"]["speed_1thread_fps"] == 37
    assert by_name["fgaf5"]["reported"] is None and by_name["fgaf5"]["row"] is None
    for r in rows:
        if r["reported"]:
            assert abs(r["params_delta_pct"]) <= 1.0 and abs(r["macs_delta_pct"]) <= 2.0


def test_list_wildcard_csv_and_markdown(run) -> None:
    proc = run("list", "fgaf*", "--csv", "-")
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert [r["name"] for r in rows] == ["fgaf3", "fgaf4", "fgaf2", "fgaf5", "fgaf3-bn-c128"]
    md = run("list", "af3", "--markdown", "-").stdout.splitlines()
    assert md[0].startswith("## zoo catalog (1 of ") and md[2] == "<!-- table: variants -->"
    assert md[4].startswith("| variant |") and md[6].startswith("| af3 |") and len(md) == 7


def test_list_table_shows_budget_verdict(run) -> None:
    proc = run("list")
    assert proc.returncode == 0
    assert "fgaf3-bn-c128" in proc.stdout and "every reported variant is within the study's budget" in proc.stdout


def test_list_says_the_reference_weights_are_untrained(run) -> None:
    """The study's AUC stands beside each variant: reference weights must not read as its skill."""
    rows = json.loads(run("list", "--json", "-").stdout)["variants"]
    assert all(r["untrained"] == (CATALOG.get(r["name"]).weights.provenance.kind == "reference") for r in rows)
    proc = run("list", "base-c128", env={"COLUMNS": "120"})
    table_row = next(line for line in proc.stdout.splitlines() if "base-c128" in line)
    assert table_row.rstrip(" │").endswith("reference (untrained)") and "not tracking skill" in proc.stdout


def test_info_json_breaks_down_parts(run) -> None:
    proc = run("info", "fgaf3", "--json", "-")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    parts = {p["part"]: p for p in info["parts"]}
    assert set(parts) == {"backbone", "fusion", "head", "total"}
    assert sum(parts[p]["params"] for p in ("backbone", "fusion", "head")) == parts["total"]["params"] == info["measured"]["params"]
    assert sum(parts[p]["macs"] for p in ("backbone", "fusion", "head")) == info["measured"]["macs"]
    assert parts["head"]["params_share_pct"] > parts["head"]["macs_share_pct"]
    assert info["weights"]["sha256"] == CATALOG.get("fgaf3").weights.sha256
    table = run("info", "base-c128")
    assert table.returncode == 0 and "backbone" in table.stdout and "row 1: LaSOT AUC 58.81" in table.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("info", "fgaf"), "unknown variant 'fgaf' (did you mean 'fgaf5' or 'fgaf4' or 'fgaf3'?)"),
        (("list", "nothing*"), "no variant matches 'nothing*'"),
        (("register", "fgaf3", "/nonexistent/ckpt.pth"), "checkpoint not found"),
        (("list", "--catalog", "/nonexistent/zoo.yaml"), "catalog not found"),
        (("list", "--bogus"), "No such option '--bogus'"),
    ],
)
def test_bad_input_exits_2_with_one_line(run, args: tuple[str, ...], message: str) -> None:
    proc = run(*args)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    if args[0] != "list" or "--bogus" not in args:
        assert len(proc.stderr.strip().splitlines()) == 1


def test_schema_error_is_one_line(run, catalog_copy: Path) -> None:
    catalog_copy.write_text(catalog_copy.read_text().replace("        heads: 8\n", "        heads: 8\n        hedas: 8\n", 1))
    proc = run("list", "--catalog", str(catalog_copy))
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: zoo.yaml: variant 'base-c256': arch.fusion.hedas: unknown key"


def test_catalog_check_detects_drift(run, catalog_copy: Path) -> None:
    ok = run("catalog", "check", "fgaf2", "--json", "-", "--catalog", str(catalog_copy))
    assert ok.returncode == 0 and json.loads(ok.stdout)["checks"][0]["ok"] is True
    text = catalog_copy.read_text()
    old = f"      params: {CATALOG.get('fgaf2').measured.params}\n"
    catalog_copy.write_text(text.replace(old, "      params: 123\n", 1))
    bad = run("catalog", "check", "fgaf2", "--json", "-", "--catalog", str(catalog_copy))
    assert bad.returncode == 1 and json.loads(bad.stdout)["checks"][0]["ok"] is False
    fixed = run("catalog", "refresh", "fgaf2", "--catalog", str(catalog_copy))
    assert fixed.returncode == 0 and catalog_copy.read_text() == text


def test_weights_command_verifies(run, tmp_path: Path) -> None:
    proc = run("weights", "base-c128", "--json", "-")
    assert proc.returncode == 0, proc.stderr
    row = json.loads(proc.stdout)["weights"][0]
    assert Path(row["path"]).is_file() and row["sha256"] == CATALOG.get("base-c128").weights.sha256


# -- one name per meaning: --artifacts DIR everywhere, the old spellings hidden aliases ----------------

def _params(command: str, *args: str) -> dict:
    """The values ``zoo COMMAND ARGS`` parses to (click only: nothing runs)."""
    cmd = cli.commands[command] if command != "eval run" else cli.commands["eval"].commands["run"]
    with cmd.make_context(command, list(args)) as ctx:
        return ctx.params


ARTIFACT_COMMANDS = {  # command: (arguments before --artifacts, the parameter it fills)
    "export": (("fgaf3", "--to", "onnx"), "out_dir"),
    "compare": (("fgaf3",), "out_dir"),
    "bench": (("fgaf3", "--runtime", "pytorch"), "out_dir"),
    "profile": (("fgaf3",), "out_dir"),
    "pull": (("fgaf3",), "out_dir"),
    "publish": (("fgaf3", "--to", "release"), "src"),
    "track": (("fgaf3", "clip.mp4"), "artifacts_dir"),
    "eval run": (("fgaf3", "--dataset", "otb", "--root", "data"), "artifacts_dir"),
}


@pytest.mark.parametrize("command", ARTIFACT_COMMANDS)
def test_every_command_takes_the_artifacts_folder_as_artifacts(command, capsys, monkeypatch) -> None:
    args, dest = ARTIFACT_COMMANDS[command]
    assert _params(command, *args, "--artifacts", "art")[dest] == Path("art")
    code, stdout, _ = run_main(capsys, monkeypatch, *command.split(), "--help")
    assert code == 0 and "--artifacts DIR" in stdout and "--out" not in stdout


@pytest.mark.parametrize("command", ["export", "compare", "bench", "profile", "pull"])
def test_out_is_a_hidden_alias_of_artifacts_where_it_meant_that(command, capsys, monkeypatch) -> None:
    args, dest = ARTIFACT_COMMANDS[command]
    assert _params(command, *args, "--out", "old")[dest] == Path("old")
    # its errors name the documented option
    code, _, err = run_main(capsys, monkeypatch, *command.split(), *args, "--out", "")
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "'--artifacts'" in lines[0] and "empty path" in lines[0], err


@pytest.mark.parametrize("command", ["compare", "bench", "eval run"])
def test_runtime_is_the_name_and_runtimes_a_hidden_alias(command, capsys, monkeypatch) -> None:
    args = {"compare": ("fgaf3",), "bench": ("fgaf3",), "eval run": ("fgaf3", "--dataset", "otb", "--root", "data")}[command]
    for spelling in ("--runtime", "--runtimes"):
        assert _params(command, *args, spelling, "onnxruntime", "mnn,tflite")["runtimes"] == ("onnxruntime", "mnn", "tflite")
    code, stdout, _ = run_main(capsys, monkeypatch, *command.split(), "--help")
    assert code == 0 and "--runtime RUNTIME..." in stdout and "--runtimes" not in stdout


def test_track_boxes_file_is_boxes_with_out_a_hidden_alias(capsys, monkeypatch) -> None:
    for spelling in ("--boxes", "--out"):
        assert _params("track", "fgaf3", "clip.mp4", spelling, "boxes.txt")["boxes_file"] == Path("boxes.txt")
    code, stdout, _ = run_main(capsys, monkeypatch, "track", "--help")
    assert code == 0 and "--boxes FILE" in stdout and "--out" not in stdout


@pytest.mark.parametrize("spelling", ["--boxes", "--out"])
def test_track_boxes_given_a_directory_points_to_artifacts(spelling, tmp_path, capsys, monkeypatch) -> None:
    code, _, err = run_main(capsys, monkeypatch, "track", "fgaf3", str(tmp_path), "--runtime", "pytorch", spelling, str(tmp_path))
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "is a directory" in lines[0], err
    assert "the artifacts folder is --artifacts DIR" in lines[0]


def test_click_usage_errors_are_one_line(zoo_here):
    one_line(zoo_here("export", "--to", "onnx"), 2, "Missing argument", "zoo export --help")
    one_line(zoo_here("expor"), 2, "export")
    one_line(zoo_here("list", "--bogus"), 2, "--bogus")

"""Careless and hostile input (issue 10): each case is one clear line and the right exit code,
machine-readable output stays machine-readable, and corrupt or stale artifacts are refused
before any runtime loads them."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.cli import run_main

REPO = Path(__file__).resolve().parent.parent
VARIANT = "base-c128"


def zoo(*args: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the CLI as a user would (a fresh process), from the repository root."""
    return subprocess.run([sys.executable, "-m", "zoo", *args], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, **(env or {})}, timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.fixture
def zoo_here(capsys, monkeypatch):
    """Run the CLI's entry point in this process (fast: no interpreter start-up and imports) for
    errors raised before any work starts; returns what a subprocess run would."""
    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.CompletedProcess(args, *run_main(capsys, monkeypatch, *args))
    return run


def one_line(proc: subprocess.CompletedProcess, code: int, *needles: str) -> str:
    """The process exited with ``code`` and said one line on stderr containing every needle."""
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == code, (proc.returncode, proc.stderr[-2000:])
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    """An artifacts directory holding the ONNX artifact of VARIANT, exported through the CLI
    with its summary as JSON on stdout (which must then be nothing but JSON)."""
    out = tmp_path_factory.mktemp("reliability") / "artifacts"
    proc = zoo("export", VARIANT, "--to", "onnx", "--out", str(out), "--json", "-")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)  # the table and progress went to stderr
    assert [(r["variant"], r["format"], r["status"]) for r in rows] == [(VARIANT, "onnx", "built")]
    assert "zoo export" in proc.stderr  # the table is still drawn, on stderr
    return out


def _copy_artifacts(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".build", ".logs", "*.lock"))
    return dst


def test_json_to_stdout_is_json_for_every_table_command(exported):
    for args in (("list",), ("info", VARIANT), ("weights", VARIANT)):
        proc = zoo(*args, "--json", "-")
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout), args


def test_compare_refuses_a_corrupt_artifact_naming_the_file_and_the_fix(exported, tmp_path):
    art = _copy_artifacts(exported, tmp_path / "art")
    model = art / VARIANT / "onnx" / "model.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size: only the sha256 can tell
    model.write_bytes(bytes(data))
    proc = zoo("compare", VARIANT, "--runtimes", "onnxruntime", "--runs", "0", "--samples", "1", "--out", str(art))
    one_line(proc, 1, "model.onnx", "sha256", "zoo export base-c128 --to onnx", "--force")


def test_a_manifest_edited_away_from_the_catalog_is_refused_or_rebuilt(exported, tmp_path):
    art = _copy_artifacts(exported, tmp_path / "art")
    path = art / VARIANT / "onnx" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["inputs"][1]["shape"] = [1, 3, 320, 320]
    path.write_text(json.dumps(manifest))
    one_line(zoo("compare", VARIANT, "--runtimes", "onnxruntime", "--runs", "0", "--samples", "1", "--out", str(art)),
             1, "search", "[1, 3, 320, 320]", "zoo.yaml")
    one_line(zoo("publish", VARIANT, "--formats", "onnx", "--artifacts", str(art), "--to", str(tmp_path / "rel")),
             1, "search", "zoo.yaml")
    assert not (tmp_path / "rel").exists()
    proc = zoo("export", VARIANT, "--to", "onnx", "--out", str(art), "--json", "-")
    assert proc.returncode == 0, proc.stderr
    (row,) = json.loads(proc.stdout)
    assert row["status"] == "rebuilt" and "zoo.yaml" in row["note"]
    assert json.loads(path.read_text())["inputs"][1]["shape"] == [1, 3, 256, 256]


@pytest.mark.parametrize("args, needle", [
    (("compare", VARIANT, "--runtimes", "onnxruntime", "--threads", "100000"), "--threads 100000"),
    (("compare", VARIANT, "--runtimes", "onnxruntime", "--threads", "1000"), "--threads 1000"),
    (("bench", VARIANT, "--runtime", "pytorch", "--concurrency", "10000"), "--concurrency 10000"),
    (("bench", VARIANT, "--runtime", "pytorch", "--threads", "8", "--concurrency", "8"), "= 64 threads"),
    (("profile", VARIANT, "--runtime", "onnxruntime", "--threads", "5000"), "--threads 5000"),
])
def test_threads_and_instances_are_bounded_by_the_machine(zoo_here, args, needle):
    one_line(zoo_here(*args), 2, needle, "--allow-oversubscribe")


@pytest.mark.parametrize("args, option", [
    (("bench", VARIANT, "--runtime", "pytorch", "--seconds", "nan"), "--seconds"),
    (("bench", VARIANT, "--runtime", "pytorch", "--duration", "nan"), "--duration"),
    (("bench", VARIANT, "--runtime", "pytorch", "--duration", "5", "--window", "inf"), "--window"),
    (("pull", VARIANT, "--timeout", "nan", "--offline"), "--timeout"),
    (("pull", VARIANT, "--timeout", "-inf", "--offline"), "--timeout"),
])
def test_float_options_refuse_nan_and_infinity(zoo_here, args, option):
    one_line(zoo_here(*args), 2, option)


@pytest.mark.parametrize("args", [
    ("export", VARIANT, "--to", "onnx", "--out", ""),
    ("compare", VARIANT, "--out", ""),
    ("bench", VARIANT, "--runtime", "pytorch", "--out", ""),
    ("profile", VARIANT, "--out", ""),
    ("publish", VARIANT, "--to", ""),
    ("pull", VARIANT, "--out", "", "--offline"),
    ("list", "--json", ""),
])
def test_an_empty_path_is_a_usage_error(zoo_here, args):
    one_line(zoo_here(*args), 2, "empty path")


def test_a_npy_given_to_inputs_is_one_line(zoo_here, tmp_path):
    bad = tmp_path / "pair.npy"
    np.save(bad, np.zeros((1, 3, 128, 128), np.float32))
    one_line(zoo_here("compare", VARIANT, "--runtimes", "onnxruntime", "--inputs", str(bad),
                      "--out", str(tmp_path / "a")), 2, "pair.npy", ".npz")


def test_a_report_path_that_cannot_be_created_fails_before_the_run(zoo_here):
    one_line(zoo_here("bench", VARIANT, "--runtime", "pytorch", "--json", "/proc/zoo-report.json"), 2,
             "/proc/zoo-report.json")


def test_click_usage_errors_are_one_line(zoo_here):
    one_line(zoo_here("export", "--to", "onnx"), 2, "Missing argument", "zoo export --help")
    one_line(zoo_here("expor"), 2, "export")
    one_line(zoo_here("list", "--bogus"), 2, "--bogus")


def test_tables_stay_readable_at_80_columns():
    proc = zoo("list", env={"COLUMNS": "80"})
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "…" not in proc.stdout  # columns are dropped whole, never squeezed to ellipses
    assert any(line.startswith("│ fgaf3 ") for line in lines)  # the variant column is whole
    assert "hidden at this width" in proc.stdout
    wide = zoo("weights", VARIANT, env={"COLUMNS": "200"})
    assert f"│ {VARIANT}" in wide.stdout and "reference" in wide.stdout


def test_the_clock_column_is_empty_where_the_clock_is_only_nominal(monkeypatch):
    """Under a hypervisor without cpufreq, /proc/cpuinfo repeats the nominal MHz: no clock is
    reported (README: the clock column stays empty there); on bare metal it is read."""
    from compare.measure import machine
    monkeypatch.setattr(machine, "_read_numbers", lambda pattern: [])
    monkeypatch.setattr(machine, "_cpuinfo", lambda: "flags\t\t: fpu sse2 hypervisor avx512f\ncpu MHz\t\t: 2445.000\n")
    assert machine.cpu_mhz() is None and machine.clock_source().startswith("not exposed")
    monkeypatch.setattr(machine, "_cpuinfo", lambda: "flags\t\t: fpu sse2 avx512f\ncpu MHz\t\t: 3100.000\ncpu MHz\t\t: 2900.000\n")
    assert machine.cpu_mhz() == 3000.0 and "cpuinfo" in machine.clock_source()

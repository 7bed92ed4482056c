"""The real CLI entry point run in this process (fast: no interpreter start-up) or as a user runs
it (a fresh process), for tests of what a command says and how it exits; fixtures ``run`` and
``zoo_here`` (import them into a test module: ``# noqa: F401 (fixture)``) and ``onnx_export``."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.catalog import REPO
from zoo.cli import main


def run_main(capsys, monkeypatch, *args: str) -> tuple[int, str, str]:
    """``zoo ARGS...`` through :func:`zoo.cli.main`: (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["zoo", *args])
    capsys.readouterr()
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out, err = capsys.readouterr()
    return code, out, err


#: the hub settings a test must not inherit from the environment it runs in
HUB_ENV = ("ZOO_HUB", "ZOO_OFFLINE", "ZOO_ALLOW_HTTP", "ZOO_HUB_TIMEOUT", "ZOO_HUB_RETRIES", "ZOO_HUB_BACKOFF")


def zoo_as_user(*args: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
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


@pytest.fixture
def run(capsys, monkeypatch):
    """Run ``zoo ARGS...`` in-process through the real entry point: (exit code, stdout, stderr)."""
    for key in HUB_ENV:
        monkeypatch.delenv(key, raising=False)
    return lambda *args: run_main(capsys, monkeypatch, *args)


def one_line(proc: subprocess.CompletedProcess, code: int, *needles: str) -> str:
    """The process exited with ``code`` and said one line on stderr containing every needle."""
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == code, (proc.returncode, proc.stderr[-2000:])
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def error_line(err: str) -> str:
    """The single error line of ``err`` (no traceback, no 'internal error')."""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err and "internal error" not in err, err
    return lines[0]


def usage_line(err: str) -> str:
    """A usage error (exit 2) is one line, 'error: ...', no traceback."""
    assert "Traceback" not in err and "internal error" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    return lines[0]


@pytest.fixture(scope="module")
def onnx_export(tmp_path_factory) -> Path:
    """An artifacts directory holding the ONNX artifact of base-c128, exported through the CLI
    with its summary as JSON on stdout (which must then be nothing but JSON)."""
    variant = "base-c128"
    out = tmp_path_factory.mktemp("onnx-export") / "artifacts"
    proc = zoo_as_user("export", variant, "--to", "onnx", "--out", str(out), "--json", "-")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)["artifacts"]  # the table and progress went to stderr
    assert [(r["variant"], r["format"], r["status"]) for r in rows] == [(variant, "onnx", "built")]
    assert "zoo export" in proc.stderr  # the table is still drawn, on stderr
    return out


def copy_artifacts(src: Path, dst: Path) -> Path:
    """A writable copy of an artifacts directory (no build scratch, logs or locks)."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".build", ".logs", "*.lock"))
    return dst

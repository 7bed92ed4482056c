"""exporters.base: the converter tools an exporter runs, found beside the running Python."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from exporters.base import run_tool
from zoo.requirements import MissingPackage


def test_tools_are_found_beside_the_running_python(tmp_path, monkeypatch) -> None:
    """``/path/to/venv/bin/zoo export --to ncnn`` with the venv's bin not on PATH finds pnnx."""
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    tool = bin_dir / "faketool"
    tool.write_text("#!/bin/sh\necho converted \"$@\"\n")
    tool.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(bin_dir / "python"))
    monkeypatch.setenv("PATH", os.defpath)
    log = tmp_path / "build.log"
    run_tool(["faketool", "a=1"], log, cwd=tmp_path, what="faketool", extra="ncnn")
    assert f"$ faketool a=1\n# faketool: {tool}\nconverted a=1" in log.read_text()
    with pytest.raises(MissingPackage, match=r"nosuchtool \(nosuchtool\) is not installed: pip install 'zoo\[ncnn\]'"):
        run_tool(["nosuchtool"], log, cwd=tmp_path, what="nosuchtool", extra="ncnn")


def test_pnnx_is_found_without_path(monkeypatch) -> None:
    real = Path(sys.executable).parent / "pnnx"
    if not real.is_file():
        pytest.skip("pnnx is not installed beside this Python")
    monkeypatch.setenv("PATH", os.defpath)
    from exporters.base import find_tool

    assert find_tool("pnnx") == str(real)

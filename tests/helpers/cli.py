"""The real CLI entry point run in this process (fast: no interpreter start-up), for tests of
what a command says and how it exits."""
from __future__ import annotations

import sys

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

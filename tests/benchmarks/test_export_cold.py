"""benchmarks/export_cold.py: the export benchmark is a script of its own, documented in the README."""
from __future__ import annotations

import subprocess
import sys

from tests.helpers.catalog import REPO


def test_export_benchmark_is_a_script_under_benchmarks() -> None:
    assert not (REPO / "exporters" / "bench.py").exists()
    done = subprocess.run([sys.executable, "benchmarks/export_cold.py", "--help"], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert "usage:" in done.stdout and "cold" in done.stdout
    assert "benchmarks/export_cold.py" in (REPO / "README.md").read_text()

"""zoo bench --duration with --concurrency: N instances sustained at once, per instance and aggregate."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.helpers.catalog import REPO


@pytest.mark.slow  # the default tier's test_bench.py::test_cli_sustained_run_writes_windows_and_a_plot runs 1 and 2 instances too
def test_sustained_run_of_two_instances_reports_each_and_the_aggregate(tmp_path):
    plot = tmp_path / "sustained.png"
    proc = subprocess.run([sys.executable, "-m", "zoo", "bench", "base-c128", "--runtime", "pytorch", "--duration", "3",
                           "--window", "1", "--concurrency", "2", "--warmup", "1", "--plot", str(plot), "--json", "-"],
                          capture_output=True, text=True, cwd=REPO, timeout=600, env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    runs = report["sustained"]
    assert [(r["concurrency"], r["instance"]) for r in runs] == [(2, "1"), (2, "2"), (2, "all")]
    instances, aggregate = runs[:2], runs[2]
    assert len({r["pid"] for r in instances}) == 2 and all(r["error"] is None for r in runs)
    assert all(r["runs"] > 0 and len(r["windows"]) >= 2 for r in instances)
    # the aggregate counts every run of both instances, on one time axis
    assert aggregate["runs"] == sum(r["runs"] for r in instances)
    per_window = sum(w["runs"] for w in aggregate["windows"])
    assert per_window <= aggregate["runs"] and per_window >= sum(sum(w["runs"] for w in r["windows"]) for r in instances) - 2
    assert aggregate["windows"][0]["fps"] > max(r["windows"][0]["fps"] for r in instances) * 0.99
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

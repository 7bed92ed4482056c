"""zoo.procs: converter subprocesses started beside JAX (litert-torch imports it) print no fork warning."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """
import subprocess
import jax  # registers the at-fork hook that warns once its backend has threads
jax.numpy.zeros(1).block_until_ready()
from zoo.procs import run_group
done = run_group(["/bin/echo", "child ran"], stdout=subprocess.PIPE, text=True)
print(done.stdout.strip())
"""


def test_run_group_beside_jax_prints_no_fork_warning() -> None:
    pytest.importorskip("jax", reason="jax comes with litert-torch (the tflite extra)")
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "child ran"
    assert "fork" not in done.stderr, done.stderr
